// Strict structural check of one MessagePack value before it is decoded (docs/protocol.md section 3):
// only the standard types (no ext types, so no msgpackr records or typed arrays), string map keys,
// bounded depth and counts, lengths within the bytes at hand, integers within 2^53.
import { ProtocolError } from "./errors.ts";

/** Bounds of the structural check. */
export interface MsgpackLimits {
  /** Deepest nesting of maps and arrays. */
  maxDepth: number;
  /** Most entries of one map or array. */
  maxEntries: number;
  /** Most values in the whole frame. */
  maxValues: number;
}

/** The limits frames of the protocol are checked with (the same in v1 and v2). */
export const FRAME_MSGPACK_LIMITS: MsgpackLimits = { maxDepth: 8, maxEntries: 4096, maxValues: 65536 };

function fail(msg: string, at: number): never {
  throw new ProtocolError("bad_frame", `MessagePack: ${msg} at byte ${at}`);
}

/**
 * Walks the single MessagePack value that must fill `bytes` exactly; throws a `bad_frame`
 * ProtocolError on anything outside the subset the protocol allows. Allocates nothing.
 */
export function checkMsgpack(bytes: Uint8Array, limits: MsgpackLimits = FRAME_MSGPACK_LIMITS): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  let pos = 0;
  let values = 0;
  const need = (n: number) => {
    if (n > end - pos) fail(`${n} bytes announced, ${end - pos} left`, pos);
  };
  const len = (size: 1 | 2 | 4): number => {
    need(size);
    const v = size === 1 ? bytes[pos] : size === 2 ? dv.getUint16(pos) : dv.getUint32(pos);
    pos += size;
    return v;
  };
  // Returns whether the value was a string (map keys must be).
  const value = (depth: number, isKey: boolean): void => {
    if (++values > limits.maxValues) fail(`more than ${limits.maxValues} values`, pos);
    need(1);
    const at = pos;
    const b = bytes[pos++];
    let strLen = -1;
    if (b >= 0xa0 && b <= 0xbf) strLen = b & 0x1f;
    else if (b === 0xd9) strLen = len(1);
    else if (b === 0xda) strLen = len(2);
    else if (b === 0xdb) strLen = len(4);
    if (strLen >= 0) {
      need(strLen);
      if (isKey && strLen === 9 && String.fromCharCode(...bytes.subarray(pos, pos + 9)) === "__proto__") fail("key __proto__", at);
      pos += strLen;
      return;
    }
    if (isKey) fail(`map key of type 0x${b.toString(16)} (keys must be strings)`, at);
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return;
    let count = -1, isMap = false;
    if (b >= 0x80 && b <= 0x8f) { count = b & 0x0f; isMap = true; }
    else if (b >= 0x90 && b <= 0x9f) count = b & 0x0f;
    else if (b === 0xdc) count = len(2);
    else if (b === 0xdd) count = len(4);
    else if (b === 0xde) { count = len(2); isMap = true; }
    else if (b === 0xdf) { count = len(4); isMap = true; }
    if (count >= 0) {
      if (depth >= limits.maxDepth) fail(`nesting deeper than ${limits.maxDepth}`, at);
      if (count > limits.maxEntries) fail(`${count} entries (limit ${limits.maxEntries})`, at);
      // Every entry takes at least one byte: a count beyond the bytes left is a lie.
      if (count * (isMap ? 2 : 1) > end - pos) fail(`${count} entries announced, ${end - pos} bytes left`, at);
      for (let i = 0; i < count; i++) {
        if (isMap) value(depth + 1, true);
        value(depth + 1, false);
      }
      return;
    }
    switch (b) {
      case 0xc4: need(len(1)); pos += bytes[pos - 1]; return;
      case 0xc5: { const n = len(2); need(n); pos += n; return; }
      case 0xc6: { const n = len(4); need(n); pos += n; return; }
      case 0xca: need(4); pos += 4; return;
      case 0xcb: need(8); pos += 8; return;
      case 0xcc: case 0xd0: need(1); pos += 1; return;
      case 0xcd: case 0xd1: need(2); pos += 2; return;
      case 0xce: case 0xd2: need(4); pos += 4; return;
      case 0xcf: case 0xd3: {
        need(8);
        const v = b === 0xcf ? dv.getBigUint64(pos) : dv.getBigInt64(pos);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) fail("64-bit integer beyond 2^53", at);
        pos += 8;
        return;
      }
    }
    fail(`type byte 0x${b.toString(16)} is not allowed (extension types and 0xc1 are refused)`, at);
  };
  value(0, false);
  if (pos !== end) fail(`${end - pos} trailing bytes after the value`, pos);
}
