// Tensors on the wire (docs/protocol.md section 4): dtype f32 | f16 (IEEE 754 binary16, round to
// nearest even), shape, little-endian bytes and their CRC-32. Sizes are checked before allocating.
import { type HostTensor, shapeStr } from "../tensor.ts";
import { crc32 } from "../crc32.ts";
import { ProtocolError } from "./errors.ts";
import { f16BitsToF32, f32ToF16Bits } from "../f16.ts";

export { f16BitsToF32, f32ToF16Bits };

/** Element types a tensor may travel as. */
export const WIRE_DTYPES = ["f32", "f16"] as const;
/** One of WIRE_DTYPES. */
export type WireDtype = (typeof WIRE_DTYPES)[number];

/** A tensor as it sits in a frame: not yet checked against a model, not yet converted. */
export interface WireTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array;
  crc32: number;
}

/** Most dimensions a wire tensor may have. */
export const MAX_RANK = 8;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;


let F16_TABLE: Float32Array | null = null;

/** The f32 value of every binary16 bit pattern (256 KiB, built on first use). */
function f16Table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) F16_TABLE[h] = f16BitsToF32(h);
  }
  return F16_TABLE;
}

/** Bytes per element of a wire dtype. */
export function dtypeBytes(dtype: WireDtype): number {
  return dtype === "f32" ? 4 : 2;
}

/** Encodes a host tensor as a wire tensor (a fresh little-endian byte copy and its CRC-32). */
export function encodeTensor(t: HostTensor, dtype: WireDtype = "f32"): WireTensor {
  const n = t.data.length;
  let bytes: Uint8Array;
  if (dtype === "f32") {
    bytes = new Uint8Array(n * 4);
    if (LITTLE_ENDIAN) bytes.set(new Uint8Array(t.data.buffer, t.data.byteOffset, n * 4));
    else {
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, t.data[i], true);
    }
  } else {
    const halves = new Uint16Array(n);
    for (let i = 0; i < n; i++) halves[i] = f32ToF16Bits(t.data[i]);
    bytes = new Uint8Array(halves.buffer);
    if (!LITTLE_ENDIAN) {
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, halves[i], true);
    }
  }
  return { dtype, shape: [...t.shape], data: bytes, crc32: crc32(bytes) };
}

/** Checks the fields of a wire tensor taken from a decoded frame (`what` names it in errors). */
export function checkWireTensor(v: unknown, what: string): WireTensor {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new ProtocolError("bad_frame", `${what}: expected a tensor map {dtype, shape, data, crc32}`);
  const o = v as Record<string, unknown>;
  if (typeof o.dtype !== "string") throw new ProtocolError("bad_frame", `${what}.dtype: expected a string`);
  const shape = o.shape;
  if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ProtocolError("bad_frame", `${what}.shape: expected at most ${MAX_RANK} non-negative integers`);
  }
  if (!(o.data instanceof Uint8Array)) throw new ProtocolError("bad_frame", `${what}.data: expected MessagePack bin`);
  if (!(Number.isInteger(o.crc32) && (o.crc32 as number) >= 0 && (o.crc32 as number) <= 0xffffffff)) {
    throw new ProtocolError("bad_frame", `${what}.crc32: expected an unsigned 32-bit integer`);
  }
  return { dtype: o.dtype, shape: shape as number[], data: o.data, crc32: o.crc32 as number };
}

/**
 * Checks dtype, shape against `expected` (null entries match any size) and byte length of a wire
 * tensor, allocating nothing; returns its dtype and element count.
 */
export function checkTensorLayout(w: WireTensor, expected: readonly (number | null)[], what: string): { dtype: WireDtype; n: number } {
  if (!(WIRE_DTYPES as readonly string[]).includes(w.dtype)) {
    throw new ProtocolError("bad_tensor", `${what}: dtype "${w.dtype}" is not one of ${WIRE_DTYPES.join(", ")}`);
  }
  const dtype = w.dtype as WireDtype;
  const ok = w.shape.length === expected.length && w.shape.every((d, i) => expected[i] === null || expected[i] === d);
  if (!ok) {
    throw new ProtocolError("bad_tensor", `${what}: shape ${shapeStr(w.shape)} does not match the model's [${expected.map((d) => d ?? "N").join(", ")}]`);
  }
  let n = 1;
  for (const d of w.shape) n *= d;
  if (w.data.length !== n * dtypeBytes(dtype)) {
    throw new ProtocolError("bad_tensor", `${what}: ${w.data.length} bytes for ${dtype} shape ${shapeStr(w.shape)} (expected ${n * dtypeBytes(dtype)})`);
  }
  return { dtype, n };
}

/**
 * Turns a wire tensor into a host tensor after checking, in this order and before allocating: dtype,
 * shape against `expected`, byte length, CRC-32; then that every value is finite. Each failure is a
 * ProtocolError naming `what`.
 */
export function decodeTensor(w: WireTensor, expected: readonly (number | null)[], what: string): HostTensor {
  const { dtype, n } = checkTensorLayout(w, expected, what);
  const crc = crc32(w.data);
  if (crc !== w.crc32) throw new ProtocolError("checksum_mismatch", `${what}: CRC-32 of the data is ${crc}, the frame says ${w.crc32}`);
  const out = new Float32Array(n);
  if (dtype === "f32") {
    if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(w.data);
    else {
      const dv = new DataView(w.data.buffer, w.data.byteOffset, w.data.length);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
    }
  } else {
    const table = f16Table();
    if (LITTLE_ENDIAN) {
      // An aligned copy, so that the halves can be read as one Uint16Array.
      const halves = new Uint16Array(n);
      new Uint8Array(halves.buffer).set(w.data);
      for (let i = 0; i < n; i++) out[i] = table[halves[i]];
    } else {
      const dv = new DataView(w.data.buffer, w.data.byteOffset, w.data.length);
      for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(i * 2, true)];
    }
  }
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(out[i])) throw new ProtocolError("non_finite", `${what}: value ${out[i]} at index ${i}`);
  }
  return { shape: [...w.shape], data: out };
}
