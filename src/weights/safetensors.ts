// Safetensors reader and writer (the Hugging Face format: u64 LE header length, JSON header, raw LE data),
// validating the header before anything is allocated; reference: huggingface/safetensors `safetensors/src/tensor.rs`.
// NOTE: no runtime built-ins here (browsers run this file); reading from disk lives in read-file.ts.
import { DicError } from "../errors.ts";
import { f32ToF16Bits } from "../f16.ts";
import { dequantize, INT8_METADATA, INT8_SCALE_SUFFIX } from "./int8.ts";

export { f32ToF16Bits };

/** Storage dtypes the reader understands; every one converts to f32 in `getF32`. */
export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8";

/** Bytes per element of each storage dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = Object.freeze({
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1,
});

/** Largest JSON header accepted (the limit of the reference Rust implementation). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Stable machine-readable reasons for a `WeightsError`. */
export type WeightsErrorCode =
  | "truncated" // file shorter than the 8-byte length prefix
  | "header_too_large" // header length above MAX_HEADER_BYTES or Number.MAX_SAFE_INTEGER
  | "header_out_of_range" // header length runs past the end of the file
  | "short_prefix" // caller passed fewer bytes than the header needs
  | "bad_header" // header is not UTF-8 JSON, or not a JSON object
  | "duplicate_key" // a key appears twice in one object of the header (JSON.parse would keep the last)
  | "bad_metadata" // __metadata__ is not an object of strings
  | "bad_entry" // tensor entry missing fields or with fields of the wrong type
  | "unknown_dtype" // dtype name not in SafetensorsDtype (or not writable)
  | "bad_shape" // negative or non-integer dimension
  | "size_mismatch" // byte range size != numel * dtype size (or data length != numel when writing)
  | "offsets_out_of_range" // byte range beyond the data buffer (incl. a file truncated in the data)
  | "overlapping_tensors" // two entries share bytes
  | "unknown_tensor" // getF32/getBytes for a name the file does not hold
  | "missing_tensors" // checkTensors: expected names absent
  | "unexpected_tensors" // checkTensors: names the model does not know
  | "shape_mismatch" // checkTensors: shape differs from the expected one
  | "bad_value"; // writeSafetensors: integer dtype given a non-integer or out-of-range value

/** A weights-file problem; `message` is one line naming the file and, where there is one, the tensor. */
export class WeightsError extends DicError<WeightsErrorCode> {
  override name = "WeightsError";
  readonly source: string;
  readonly tensor: string | undefined;

  constructor(code: WeightsErrorCode, source: string, detail: string, tensor?: string) {
    // JSON.stringify quotes the tensor name and escapes any newline it holds: messages stay one line.
    super(code, `${source}: ${tensor === undefined ? "" : `tensor ${JSON.stringify(tensor)}: `}${detail} [${code}]`);
    this.source = source;
    this.tensor = tensor;
  }
}

/** One header entry; `begin`/`end` are byte offsets relative to the start of the data buffer. */
export interface TensorEntry {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** A validated header: everything but the tensor data. */
export interface SafetensorsHeader {
  /** Name used in error messages (usually the path). */
  readonly source: string;
  /** Size of the whole file in bytes, as given to the parser. */
  readonly fileSize: number;
  /** Length N of the JSON header. */
  readonly headerLength: number;
  /** File offset of the data buffer (8 + N). */
  readonly dataStart: number;
  /** Bytes of the data buffer the tensors use (largest `end`); the reader needs no more than this. */
  readonly dataEnd: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensor table in header order (an int8 file's "<name>_scale" companions are not in it: see int8Scales). */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  /**
   * An int8 file (`__metadata__.quantization = "int8-per-channel"`, src/weights/int8.ts): the F32 [Co] scale
   * entry of each I8 tensor, by the I8 tensor's name. getF32 returns those tensors dequantized.
   */
  readonly int8Scales?: ReadonlyMap<string, TensorEntry>;
}

/** A header with its data: tensors can be read. */
export interface SafetensorsFile extends SafetensorsHeader {
  /** The raw little-endian bytes of a tensor (a view, not a copy). */
  getBytes(name: string): Uint8Array;
  /** A fresh Float32Array with the tensor's values converted from its storage dtype (int8 files: dequantized). */
  getF32(name: string): Float32Array;
  /** An int8 file's tensor as stored: int8 values and one scale per output channel; null for other tensors. */
  getInt8?(name: string): { data: Int8Array; scale: Float32Array } | null;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const TWO_32 = 4294967296;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isDtype(v: string): v is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, v);
}

function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * Reads and checks the u64 little-endian header length from the first 8 bytes of a file of `fileSize`
 * bytes; returns N so a caller knows how many more bytes to read. Throws `truncated`, `header_too_large`
 * or `header_out_of_range`.
 */
export function safetensorsHeaderLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) throw new WeightsError("truncated", source, `file has ${fileSize} bytes, fewer than the 8-byte header length`);
  if (prefix.length < 8) throw new WeightsError("short_prefix", source, `need the first 8 bytes, got ${prefix.length}`);
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = view.getUint32(0, true), hi = view.getUint32(4, true);
  // NOTE: hi >= 2^21 means the u64 exceeds 2^53 - 1; the two halves keep the arithmetic exact.
  if (hi >= 0x200000) {
    throw new WeightsError("header_too_large", source, `header length 0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")} exceeds Number.MAX_SAFE_INTEGER`);
  }
  const n = hi * TWO_32 + lo;
  if (n > MAX_HEADER_BYTES) throw new WeightsError("header_too_large", source, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (8 + n > fileSize) throw new WeightsError("header_out_of_range", source, `header length ${n} runs past the end of the ${fileSize}-byte file`);
  return n;
}

function parseEntry(name: string, raw: unknown, source: string): TensorEntry {
  if (!isObject(raw)) throw new WeightsError("bad_entry", source, "entry is not an object", name);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== "string") throw new WeightsError("bad_entry", source, "dtype missing or not a string", name);
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === "number")) {
    throw new WeightsError("bad_entry", source, "shape missing or not an array of numbers", name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => typeof o === "number")) {
    throw new WeightsError("bad_entry", source, "data_offsets missing or not [begin, end]", name);
  }
  if (!isDtype(dtype)) {
    throw new WeightsError("unknown_dtype", source, `unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(", ")})`, name);
  }
  const dims = shape as number[];
  if (!dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new WeightsError("bad_shape", source, `shape ${shapeStr(dims)} has a negative or non-integer dimension`, name);
  }
  const [begin, end] = offsets as number[];
  if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin) {
    throw new WeightsError("bad_entry", source, `data_offsets [${begin}, ${end}] are not integers with 0 <= begin <= end`, name);
  }
  const numel = dims.reduce((a, d) => a * d, 1);
  const bytes = numel * DTYPE_BYTES[dtype];
  if (bytes !== end - begin) {
    throw new WeightsError("size_mismatch", source, `${dtype} ${shapeStr(dims)} needs ${bytes} bytes, data_offsets [${begin}, ${end}] span ${end - begin}`, name);
  }
  return { dtype, shape: Object.freeze([...dims]), begin, end };
}

/**
 * The first key that appears twice in one object of a JSON text (after unescaping), or null. Walks the
 * bytes once; the text has already been parsed, so it is well formed.
 */
function duplicateKey(json: Uint8Array): { key: string; path: string } | null {
  // One entry per open container: the keys seen (objects) or null (arrays), and the key that opened it.
  const stack: { keys: Set<string> | null; name: string }[] = [];
  let lastKey = "";
  const dec = new TextDecoder();
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === 0x7b) stack.push({ keys: new Set(), name: lastKey });
    else if (c === 0x5b) stack.push({ keys: null, name: lastKey });
    else if (c === 0x7d || c === 0x5d) stack.pop();
    else if (c === 0x22) {
      const start = i;
      for (i++; json[i] !== 0x22; i++) if (json[i] === 0x5c) i++;
      const top = stack[stack.length - 1];
      let j = i + 1;
      while (json[j] === 0x20 || json[j] === 0x09 || json[j] === 0x0a || json[j] === 0x0d) j++;
      if (top?.keys && json[j] === 0x3a) {
        const key = JSON.parse(dec.decode(json.subarray(start, i + 1))) as string;
        if (top.keys.has(key)) return { key, path: stack.slice(1).map((s) => s.name).join(".") };
        top.keys.add(key);
        lastKey = key;
      }
    }
  }
  return null;
}

/**
 * Validates a header from only the first bytes of a file: `prefix` must hold at least the first 8 + N
 * bytes (see `safetensorsHeaderLength`), `fileSize` is the size of the whole file. Nothing is allocated
 * for tensor data, so a header claiming 100 GB fails here, before any read of the data.
 */
export function parseSafetensorsHeader(prefix: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const n = safetensorsHeaderLength(prefix, fileSize, source);
  if (prefix.length < 8 + n) throw new WeightsError("short_prefix", source, `header needs ${8 + n} bytes, got ${prefix.length}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(prefix.subarray(8, 8 + n)));
  } catch (e) {
    throw new WeightsError("bad_header", source, `header is not valid UTF-8 JSON (${String((e as Error).message ?? e).split("\n")[0]})`);
  }
  if (!isObject(json)) throw new WeightsError("bad_header", source, "header is not a JSON object");
  const dup = duplicateKey(prefix.subarray(8, 8 + n));
  if (dup !== null) throw new WeightsError("duplicate_key", source, `header names ${JSON.stringify(dup.key)} twice${dup.path ? ` in ${dup.path}` : ""}`);

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorEntry>();
  const dataSize = fileSize - 8 - n;
  let dataEnd = 0;
  for (const [name, raw] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isObject(raw)) throw new WeightsError("bad_metadata", source, "__metadata__ is not an object");
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== "string") throw new WeightsError("bad_metadata", source, `__metadata__ value of ${JSON.stringify(k)} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const entry = parseEntry(name, raw, source);
    if (entry.end > dataSize) {
      throw new WeightsError("offsets_out_of_range", source, `data_offsets [${entry.begin}, ${entry.end}] exceed the ${dataSize}-byte data buffer`, name);
    }
    tensors.set(name, entry);
    dataEnd = Math.max(dataEnd, entry.end);
  }

  // Overlap check over non-empty ranges sorted by start: each must begin at or after the furthest end so far.
  const ranges = [...tensors].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  let prev: [string, TensorEntry] | undefined;
  for (const cur of ranges) {
    if (prev !== undefined && cur[1].begin < prev[1].end) {
      throw new WeightsError("overlapping_tensors", source, `bytes [${cur[1].begin}, ${cur[1].end}) overlap tensor ${JSON.stringify(prev[0])} at [${prev[1].begin}, ${prev[1].end})`, cur[0]);
    }
    if (prev === undefined || cur[1].end > prev[1].end) prev = cur;
  }

  const int8Scales = new Map<string, TensorEntry>();
  if (metadata.quantization === INT8_METADATA) {
    for (const [name, e] of tensors) {
      const sc = tensors.get(name + INT8_SCALE_SUFFIX);
      if (e.dtype !== "I8") continue;
      if (!sc || sc.dtype !== "F32" || sc.shape.length !== 1 || sc.shape[0] !== e.shape[0]) {
        throw new WeightsError("bad_entry", source, `int8 tensor needs an F32 [${e.shape[0]}] tensor ${JSON.stringify(name + INT8_SCALE_SUFFIX)} (one scale per output channel)`, name);
      }
      int8Scales.set(name, sc);
    }
    for (const name of int8Scales.keys()) tensors.delete(name + INT8_SCALE_SUFFIX);
  }

  return Object.freeze({ source, fileSize, headerLength: n, dataStart: 8 + n, dataEnd, metadata: Object.freeze(metadata), tensors, int8Scales });
}

let f16Table: Float32Array | undefined;

/** Exact IEEE half -> number, subnormals, infinities and NaN included (no Float16Array needed). */
function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero (signed) and subnormals
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

function halfTable(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToNumber(h);
  }
  return f16Table;
}

function toF32(bytes: Uint8Array, dtype: SafetensorsDtype, numel: number): Float32Array {
  const out = new Float32Array(numel);
  const aligned = bytes.byteOffset % DTYPE_BYTES[dtype] === 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32":
      if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
      else for (let i = 0; i < numel; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case "F16": {
      const table = halfTable();
      if (LITTLE_ENDIAN && aligned) {
        const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, numel);
        for (let i = 0; i < numel; i++) out[i] = table[u16[i]];
      } else for (let i = 0; i < numel; i++) out[i] = table[view.getUint16(2 * i, true)];
      break;
    }
    case "BF16": {
      // bf16 is the top half of an f32: shifting the bits up is exact for every value, NaN included.
      const bits = new Uint32Array(out.buffer);
      if (LITTLE_ENDIAN && aligned) {
        const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, numel);
        for (let i = 0; i < numel; i++) bits[i] = u16[i] << 16;
      } else for (let i = 0; i < numel; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
    case "F64": for (let i = 0; i < numel; i++) out[i] = view.getFloat64(8 * i, true); break;
    // i64 as two i32 halves: exact for |v| < 2^53, then rounded to f32 like every other dtype.
    case "I64": for (let i = 0; i < numel; i++) out[i] = view.getInt32(8 * i + 4, true) * TWO_32 + view.getUint32(8 * i, true); break;
    case "I32": for (let i = 0; i < numel; i++) out[i] = view.getInt32(4 * i, true); break;
    case "I16": for (let i = 0; i < numel; i++) out[i] = view.getInt16(2 * i, true); break;
    case "I8": for (let i = 0; i < numel; i++) out[i] = view.getInt8(i); break;
    case "U8": out.set(bytes); break;
  }
  return out;
}

/** A fresh Float32Array with the values of one tensor's raw bytes (`entry` from a validated header). */
export function tensorToF32(bytes: Uint8Array, entry: TensorEntry): Float32Array {
  return toF32(bytes, entry.dtype, (entry.end - entry.begin) / DTYPE_BYTES[entry.dtype]);
}

/**
 * Joins a validated header with its data buffer (the file's bytes from `header.dataStart` on; at least
 * `header.dataEnd` of them). Lets a caller read the header and the data separately (disk, HTTP ranges).
 */
export function attachSafetensorsData(header: SafetensorsHeader, data: Uint8Array): SafetensorsFile {
  const { source } = header;
  if (data.length < header.dataEnd) {
    throw new WeightsError("offsets_out_of_range", source, `data buffer has ${data.length} bytes, the tensors need ${header.dataEnd}`);
  }
  const entry = (name: string): TensorEntry => {
    const e = header.tensors.get(name);
    if (e === undefined) throw new WeightsError("unknown_tensor", source, "no such tensor in the file", name);
    return e;
  };
  const getBytes = (name: string): Uint8Array => {
    const e = entry(name);
    return data.subarray(e.begin, e.end);
  };
  const getInt8 = (name: string): { data: Int8Array; scale: Float32Array } | null => {
    const e = entry(name), sc = header.int8Scales?.get(name);
    if (sc === undefined) return null;
    const q = data.subarray(e.begin, e.end);
    return { data: new Int8Array(q.buffer, q.byteOffset, q.length).slice(), scale: toF32(data.subarray(sc.begin, sc.end), "F32", sc.shape[0]) };
  };
  const getF32 = (name: string): Float32Array => {
    const e = entry(name);
    const q = getInt8(name);
    if (q) return dequantize(q.data, q.scale, e.shape[0]);
    return toF32(data.subarray(e.begin, e.end), e.dtype, (e.end - e.begin) / DTYPE_BYTES[e.dtype]);
  };
  return Object.freeze({ ...header, getBytes, getF32, getInt8 });
}

/** Parses a whole safetensors file held in memory; tensor reads are views of `bytes` until converted. */
export function parseSafetensors(bytes: Uint8Array, source: string): SafetensorsFile {
  const header = parseSafetensorsHeader(bytes, bytes.length, source);
  return attachSafetensorsData(header, bytes.subarray(header.dataStart));
}

/**
 * Checks a file's tensor table against the names and shapes a model expects (model-agnostic). Works on a
 * bare header, so a loader can reject a wrong checkpoint before reading its data. Throws
 * `missing_tensors`, then `unexpected_tensors`, then `shape_mismatch` (first offender named, others counted).
 */
export function checkTensors(
  file: Pick<SafetensorsHeader, "tensors">,
  expected: ReadonlyMap<string, readonly number[]>,
  source: string,
): void {
  const list = (names: string[]): string =>
    names.slice(0, 5).map((s) => JSON.stringify(s)).join(", ") + (names.length > 5 ? ` and ${names.length - 5} more` : "");
  const missing = [...expected.keys()].filter((k) => !file.tensors.has(k));
  if (missing.length > 0) {
    throw new WeightsError("missing_tensors", source, `${missing.length} expected tensor(s) missing: ${list(missing)}`);
  }
  const unexpected = [...file.tensors.keys()].filter((k) => !expected.has(k));
  if (unexpected.length > 0) {
    throw new WeightsError("unexpected_tensors", source, `${unexpected.length} unexpected tensor(s): ${list(unexpected)}`);
  }
  const wrong = [...expected].filter(([k, shape]) => {
    const got = file.tensors.get(k)!.shape;
    return got.length !== shape.length || got.some((d, i) => d !== shape[i]);
  });
  if (wrong.length > 0) {
    const [name, shape] = wrong[0];
    const more = wrong.length > 1 ? ` (and ${wrong.length - 1} more shape mismatch(es))` : "";
    throw new WeightsError("shape_mismatch", source, `expected shape ${shapeStr(shape)}, got ${shapeStr(file.tensors.get(name)!.shape)}${more}`, name);
  }
}

/** Tensor input of `writeSafetensors`; `data` holds numel(shape) values in row-major order. */
export interface TensorToWrite {
  dtype: "F32" | "F16" | "I64" | "I32" | "I8";
  shape: number[];
  data: ArrayLike<number> | Float32Array;
}


/**
 * Serialises tensors to safetensors bytes. Tensors are laid out by decreasing element size, then by name
 * (as the Hugging Face writer does), so every tensor stays aligned to its element size; the header is padded
 * with spaces to a multiple of 8. F16 rounds to nearest even; I64/I32 values must be exact integers in range.
 */
export function writeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const source = "writeSafetensors";
  const writable = ["F32", "F16", "I64", "I32", "I8"];
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new WeightsError("bad_metadata", source, `metadata value of ${JSON.stringify(k)} is not a string`);
    }
    header.__metadata__ = { ...metadata };
  }
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name];
    if (name === "__metadata__") throw new WeightsError("bad_entry", source, "the name __metadata__ is reserved", name);
    if (!writable.includes(t.dtype)) throw new WeightsError("unknown_dtype", source, `cannot write dtype ${JSON.stringify(t.dtype)} (writable: ${writable.join(", ")})`, name);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new WeightsError("bad_shape", source, `shape ${shapeStr(t.shape)} has a negative or non-integer dimension`, name);
    }
    const numel = t.shape.reduce((a, d) => a * d, 1);
    if (t.data.length !== numel) throw new WeightsError("size_mismatch", source, `shape ${shapeStr(t.shape)} needs ${numel} values, got ${t.data.length}`, name);
  }
  names.sort((a, b) => DTYPE_BYTES[tensors[b].dtype] - DTYPE_BYTES[tensors[a].dtype] || (a < b ? -1 : a > b ? 1 : 0));
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const size = t.data.length * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, padded % TWO_32, true);
  view.setUint32(4, Math.floor(padded / TWO_32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);

  const base = 8 + padded;
  for (const name of names) {
    const t = tensors[name];
    const at = base + (header[name] as { data_offsets: number[] }).data_offsets[0];
    const n = t.data.length;
    const bad = (i: number): WeightsError =>
      new WeightsError("bad_value", source, `value ${t.data[i]} at index ${i} is not a ${t.dtype} integer`, name);
    switch (t.dtype) {
      case "F32":
        if (LITTLE_ENDIAN && t.data instanceof Float32Array) out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, 4 * n), at);
        else for (let i = 0; i < n; i++) view.setFloat32(at + 4 * i, t.data[i], true);
        break;
      case "F16": for (let i = 0; i < n; i++) view.setUint16(at + 2 * i, f32ToF16Bits(t.data[i]), true); break;
      case "I32":
        for (let i = 0; i < n; i++) {
          const v = t.data[i];
          if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) throw bad(i);
          view.setInt32(at + 4 * i, v, true);
        }
        break;
      case "I8":
        for (let i = 0; i < n; i++) {
          const v = t.data[i];
          if (!Number.isInteger(v) || v < -128 || v > 127) throw bad(i);
          view.setInt8(at + i, v);
        }
        break;
      case "I64":
        for (let i = 0; i < n; i++) {
          const v = t.data[i];
          if (!Number.isSafeInteger(v)) throw bad(i);
          const hi = Math.floor(v / TWO_32);
          view.setUint32(at + 8 * i, v - hi * TWO_32, true);
          view.setInt32(at + 8 * i + 4, hi, true);
        }
        break;
    }
  }
  return out;
}
