// Safetensors reader/writer: round trips for every dtype, one test per error code, the fail-fast header
// path, reading from disk, and a cross-check against a file written by PyTorch (reference/fixtures_safetensors.py).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryUsage } from "node:process";
import { fixturesDir, test } from "./harness.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import {
  checkTensors,
  f32ToF16Bits,
  parseSafetensors,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  WeightsError,
  writeSafetensors,
  type WeightsErrorCode,
} from "../src/weights/safetensors.ts";

const SRC = "model.safetensors";

/** A file from header text and data bytes; `declared` overrides the u64 header length. */
function build(headerText: string, data: Uint8Array | number = 0, declared?: bigint): Uint8Array {
  const h = new TextEncoder().encode(headerText);
  const d = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

const buildObj = (header: unknown, data: Uint8Array | number = 0): Uint8Array => build(JSON.stringify(header), data);

function checkError(e: unknown, code: WeightsErrorCode, source: string, tensor?: string): true {
  assert.ok(e instanceof WeightsError, `expected a WeightsError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  assert.equal(e.source, source);
  assert.ok(e.message.includes(source), `message does not name the file: ${e.message}`);
  assert.ok(!e.message.includes("\n"), "message is not one line");
  if (tensor !== undefined) {
    assert.equal(e.tensor, tensor);
    assert.ok(e.message.includes(JSON.stringify(tensor)), `message does not name the tensor: ${e.message}`);
  }
  return true;
}

function throwsCode(fn: () => unknown, code: WeightsErrorCode, tensor?: string, source = SRC): void {
  assert.throws(fn, (e) => checkError(e, code, source, tensor));
}

/** Bit-exact equality that tells -0 from 0 and accepts NaN == NaN. */
function sameValues(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Object.is(got[i], want[i]), `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
}

const f32 = (xs: number[]): number[] => xs.map(Math.fround);

test("F32 round trip with metadata, scalar and empty tensors", () => {
  const w = [1.5, -0, 3e-38, 1e38, Infinity, -Infinity, NaN, 1 / 3];
  const bytes = writeSafetensors(
    { "blocks.0.w": { dtype: "F32", shape: [2, 4], data: new Float32Array(w) }, s: { dtype: "F32", shape: [], data: [7] }, e: { dtype: "F32", shape: [0, 5], data: [] } },
    { format: "pt", note: "héllo" },
  );
  const file = parseSafetensors(bytes, SRC);
  assert.deepEqual({ ...file.metadata }, { format: "pt", note: "héllo" });
  assert.deepEqual([...file.tensors.keys()].sort(), ["blocks.0.w", "e", "s"]);
  assert.deepEqual(file.tensors.get("blocks.0.w")!.shape, [2, 4]);
  assert.equal(file.tensors.get("blocks.0.w")!.dtype, "F32");
  sameValues(file.getF32("blocks.0.w"), f32(w), "w");
  sameValues(file.getF32("s"), [7], "scalar");
  assert.equal(file.getF32("e").length, 0);
  // Header padded with spaces to a multiple of 8; each tensor aligned to its element size.
  for (const e of file.tensors.values()) assert.equal(e.begin % 4, 0);
  for (let len = 1; len <= 9; len++) {
    const b = writeSafetensors({ ["n".repeat(len)]: { dtype: "F16", shape: [1], data: [1] } });
    const h = parseSafetensors(b, SRC);
    assert.equal(h.headerLength % 8, 0);
    assert.match(new TextDecoder().decode(b.subarray(8, h.dataStart)), /^\{.*\} *$/);
  }
});

test("F16 round trip: subnormals, inf, NaN, negative zero, largest finite", () => {
  const vals = [0, -0, 2 ** -24, -(2 ** -24), 1023 * 2 ** -24, 2 ** -14, 1, -2.5, 65504, -65504, Infinity, -Infinity, NaN, 0.333251953125];
  const file = parseSafetensors(writeSafetensors({ h: { dtype: "F16", shape: [vals.length], data: vals } }), SRC);
  assert.equal(file.tensors.get("h")!.end - file.tensors.get("h")!.begin, 2 * vals.length);
  sameValues(file.getF32("h"), vals, "f16");
});

test("f32 -> f16 is exact on every half and rounds halfway cases to even", () => {
  const file = parseSafetensors(writeSafetensors({ all: { dtype: "F16", shape: [65536], data: new Uint16Array(65536) } }), SRC);
  assert.ok(file.getF32("all").every((v) => v === 0));
  // Decode every half through the reader, re-encode, compare bits (NaNs only need to stay NaN).
  const every = new Uint8Array(131072);
  const raw = new DataView(every.buffer);
  for (let h = 0; h < 65536; h++) raw.setUint16(2 * h, h, true);
  const decoded = parseSafetensors(buildObj({ a: { dtype: "F16", shape: [65536], data_offsets: [0, 131072] } }, every), SRC).getF32("a");
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) assert.ok(Number.isNaN(decoded[h]) && (f32ToF16Bits(decoded[h]) & 0x7fff) > 0x7c00, `NaN ${h}`);
    else assert.equal(f32ToF16Bits(decoded[h]), h, `half 0x${h.toString(16)}`);
  }
  // Midpoints between neighbouring positive halves go to the even one; just above goes up.
  for (let h = 0; h < 0x7bff; h += 37) {
    const mid = (decoded[h] + decoded[h + 1]) / 2; // exact in f32 for halves
    assert.equal(f32ToF16Bits(mid), h % 2 === 0 ? h : h + 1, `midpoint after 0x${h.toString(16)}`);
  }
  assert.equal(f32ToF16Bits(65519), 0x7bff);
  assert.equal(f32ToF16Bits(65520), 0x7c00);
  assert.equal(f32ToF16Bits(2 ** -25), 0);
  assert.equal(f32ToF16Bits(-(2 ** -25) * 1.5), 0x8001);
});

test("BF16, F64 and small integer dtypes decode to f32", () => {
  const bf = [0x0000, 0x8000, 0x3f80, 0xc049, 0x7f80, 0xff80, 0x7fc0, 0x0001];
  const data = new Uint8Array(16 + 16 + 6 + 3 + 3);
  const dv = new DataView(data.buffer);
  bf.forEach((b, i) => dv.setUint16(2 * i, b, true));
  dv.setFloat64(16, 0.1, true);
  dv.setFloat64(24, -1e300, true);
  [-32768, 7, 32767].forEach((v, i) => dv.setInt16(32 + 2 * i, v, true));
  [-128, 0, 127].forEach((v, i) => dv.setInt8(38 + i, v));
  [0, 200, 255].forEach((v, i) => dv.setUint8(41 + i, v));
  const file = parseSafetensors(buildObj({
    b: { dtype: "BF16", shape: [8], data_offsets: [0, 16] },
    d: { dtype: "F64", shape: [2], data_offsets: [16, 32] },
    s: { dtype: "I16", shape: [3], data_offsets: [32, 38] },
    c: { dtype: "I8", shape: [3], data_offsets: [38, 41] },
    u: { dtype: "U8", shape: [1, 3], data_offsets: [41, 44] },
  }, data), SRC);
  const b = file.getF32("b");
  sameValues(b.subarray(0, 6), [0, -0, 1, -3.140625, Infinity, -Infinity], "bf16");
  assert.ok(Number.isNaN(b[6]));
  assert.equal(b[7], 2 ** -133); // bf16 subnormal
  sameValues(file.getF32("d"), [Math.fround(0.1), -Infinity], "f64");
  sameValues(file.getF32("s"), [-32768, 7, 32767], "i16");
  sameValues(file.getF32("c"), [-128, 0, 127], "i8");
  sameValues(file.getF32("u"), [0, 200, 255], "u8");
});

test("I64 and I32 round trip, and unaligned tensors read correctly", () => {
  const big = [0, 1, 999, -5, 2 ** 40 + 3, -(2 ** 33), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];
  const file = parseSafetensors(writeSafetensors({
    t: { dtype: "I64", shape: [8], data: big },
    y: { dtype: "I32", shape: [4], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0, 1000]) },
  }), SRC);
  sameValues(file.getF32("t"), f32(big), "i64");
  sameValues(file.getF32("y"), f32([-(2 ** 31), 2 ** 31 - 1, 0, 1000]), "i32");
  const lo = new DataView(file.getBytes("t").buffer, file.getBytes("t").byteOffset);
  assert.equal(lo.getBigInt64(8 * 4, true), BigInt(2 ** 40 + 3));
  assert.equal(lo.getBigInt64(8 * 7, true), BigInt(Number.MIN_SAFE_INTEGER));
  // A one-byte tensor first pushes the f32 and f16 tensors off their natural alignment.
  const d = new Uint8Array(1 + 8 + 4 + 2);
  const dv = new DataView(d.buffer);
  dv.setUint16(13, 0xc049, true);
  dv.setFloat32(1, -1.25, true);
  dv.setFloat32(5, 3.5, true);
  dv.setUint16(9, 0x3c00, true);
  dv.setUint16(11, 0x8001, true);
  const un = parseSafetensors(build(JSON.stringify({
    a: { dtype: "U8", shape: [1], data_offsets: [0, 1] },
    f: { dtype: "F32", shape: [2], data_offsets: [1, 9] },
    h: { dtype: "F16", shape: [2], data_offsets: [9, 13] },
    g: { dtype: "BF16", shape: [1], data_offsets: [13, 15] },
  }) + " ", d), SRC); // odd header length: data start unaligned too
  sameValues(un.getF32("f"), [-1.25, 3.5], "unaligned f32");
  sameValues(un.getF32("h"), [1, -(2 ** -24)], "unaligned f16");
  sameValues(un.getF32("g"), [-3.140625], "unaligned bf16");
});

test("file and header errors each carry their code, the file name and the tensor", () => {
  const ok = { w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  throwsCode(() => parseSafetensors(new Uint8Array(5), SRC), "truncated");
  throwsCode(() => parseSafetensors(build("{}", 0, 1000n), SRC), "header_out_of_range");
  throwsCode(() => parseSafetensors(build("{}", 0, 200_000_000n), SRC), "header_too_large");
  throwsCode(() => parseSafetensors(build("{}", 0, 2n ** 60n), SRC), "header_too_large");
  throwsCode(() => parseSafetensors(build("{}", 0, 2n ** 64n - 1n), SRC), "header_too_large");
  throwsCode(() => parseSafetensorsHeader(buildObj(ok, 8).subarray(0, 20), 100, SRC), "short_prefix");
  throwsCode(() => safetensorsHeaderLength(new Uint8Array(4), 100, SRC), "short_prefix");
  throwsCode(() => parseSafetensors(build("{not json"), SRC), "bad_header");
  throwsCode(() => parseSafetensors(build("[1, 2]"), SRC), "bad_header");
  throwsCode(() => parseSafetensors(build("null"), SRC), "bad_header");
  throwsCode(() => parseSafetensors(build(""), SRC), "bad_header");
  const badUtf8 = build("{\"a\":1}");
  badUtf8[10] = 0xff;
  throwsCode(() => parseSafetensors(badUtf8, SRC), "bad_header");
  throwsCode(() => parseSafetensors(buildObj({ __metadata__: { a: 1 } }), SRC), "bad_metadata");
  throwsCode(() => parseSafetensors(buildObj({ __metadata__: ["x"] }), SRC), "bad_metadata");
});

test("tensor entry errors each carry their code, the file name and the tensor", () => {
  const entry = (e: unknown, data = 64) => () => parseSafetensors(buildObj({ ok: { dtype: "U8", shape: [0], data_offsets: [0, 0] }, "x.w": e }, data), SRC);
  throwsCode(entry(5), "bad_entry", "x.w");
  throwsCode(entry(null), "bad_entry", "x.w");
  throwsCode(entry({ shape: [2], data_offsets: [0, 8] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: "F32", data_offsets: [0, 8] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: "F32", shape: [2] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: 4, shape: [2], data_offsets: [0, 8] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: "F32", shape: "2", data_offsets: [0, 8] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: "F32", shape: ["2"], data_offsets: [0, 8] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: "F32", shape: [2], data_offsets: [0, 4, 8] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: "F32", shape: [2], data_offsets: [8, 0] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: "F32", shape: [2], data_offsets: [-8, 0] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: "F32", shape: [2], data_offsets: [0.5, 8.5] }), "bad_entry", "x.w");
  throwsCode(entry({ dtype: "Q4_K", shape: [2], data_offsets: [0, 8] }), "unknown_dtype", "x.w");
  throwsCode(entry({ dtype: "f32", shape: [2], data_offsets: [0, 8] }), "unknown_dtype", "x.w");
  throwsCode(entry({ dtype: "F32", shape: [-2], data_offsets: [0, 8] }), "bad_shape", "x.w");
  throwsCode(entry({ dtype: "F32", shape: [1.5], data_offsets: [0, 8] }), "bad_shape", "x.w");
  throwsCode(entry({ dtype: "F32", shape: [3], data_offsets: [0, 8] }), "size_mismatch", "x.w");
  throwsCode(entry({ dtype: "F16", shape: [2, 2], data_offsets: [0, 16] }), "size_mismatch", "x.w");
  throwsCode(entry({ dtype: "F32", shape: [2], data_offsets: [60, 68] }), "offsets_out_of_range", "x.w");
  // A name with a newline in it still gives a one-line message.
  throwsCode(() => parseSafetensors(buildObj({ "a\nb": { dtype: "X", shape: [], data_offsets: [0, 0] } }), SRC), "unknown_dtype", "a\nb");
});

test("data truncated, overlapping tensors and unknown names are errors", () => {
  const good = writeSafetensors({ a: { dtype: "F32", shape: [4], data: [1, 2, 3, 4] }, b: { dtype: "F32", shape: [2], data: [5, 6] } });
  throwsCode(() => parseSafetensors(good.subarray(0, good.length - 1), SRC), "offsets_out_of_range", "b");
  const overlap = (a: number[], b: number[]) => () => parseSafetensors(buildObj({
    a: { dtype: "F32", shape: [(a[1] - a[0]) / 4], data_offsets: a },
    b: { dtype: "F32", shape: [(b[1] - b[0]) / 4], data_offsets: b },
  }, 32), SRC);
  throwsCode(overlap([0, 16], [12, 20]), "overlapping_tensors");
  throwsCode(overlap([8, 16], [0, 32]), "overlapping_tensors");
  throwsCode(overlap([0, 8], [0, 8]), "overlapping_tensors");
  overlap([0, 8], [8, 16])(); // touching is fine
  overlap([4, 4], [0, 8])(); // an empty tensor shares no bytes
  const file = parseSafetensors(good, SRC);
  throwsCode(() => file.getF32("c"), "unknown_tensor", "c");
  throwsCode(() => file.getBytes("c"), "unknown_tensor", "c");
});

test("checkTensors reports missing, unexpected and mismatched tensors", () => {
  const names = Array.from({ length: 9 }, (_, i) => `layer.${i}`);
  const file = parseSafetensors(writeSafetensors(Object.fromEntries(names.map((n) => [n, { dtype: "F32" as const, shape: [2, 1], data: [0, 0] }]))), SRC);
  const exp = new Map(names.map((n) => [n, [2, 1]]));
  checkTensors(file, exp, SRC);
  const more = new Map([...exp, ...Array.from({ length: 7 }, (_, i) => [`extra.${i}`, [1]] as [string, number[]])]);
  assert.throws(() => checkTensors(file, more, SRC), (e) => {
    checkError(e, "missing_tensors", SRC);
    assert.match((e as Error).message, /7 expected tensor\(s\) missing: "extra.0", .*"extra.4" and 2 more/);
    return true;
  });
  const fewer = new Map(names.slice(0, 7).map((n) => [n, [2, 1]]));
  assert.throws(() => checkTensors(file, fewer, SRC), (e) => checkError(e, "unexpected_tensors", SRC) && /2 unexpected tensor\(s\): "layer.7", "layer.8"/.test((e as Error).message));
  const wrong = new Map(exp);
  wrong.set("layer.3", [1, 2]);
  wrong.set("layer.5", [2]);
  assert.throws(() => checkTensors(file, wrong, SRC), (e) => {
    checkError(e, "shape_mismatch", SRC, "layer.3");
    assert.match((e as Error).message, /expected shape \[1, 2\], got \[2, 1\] \(and 1 more/);
    return true;
  });
});

test("writeSafetensors rejects bad input", () => {
  const w = "writeSafetensors";
  throwsCode(() => writeSafetensors({ a: { dtype: "F32", shape: [3], data: [1, 2] } }), "size_mismatch", "a", w);
  throwsCode(() => writeSafetensors({ a: { dtype: "F32", shape: [-1], data: [] } }), "bad_shape", "a", w);
  throwsCode(() => writeSafetensors({ a: { dtype: "BF16" as "F32", shape: [1], data: [1] } }), "unknown_dtype", "a", w);
  throwsCode(() => writeSafetensors({ a: { dtype: "I64", shape: [1], data: [0.5] } }), "bad_value", "a", w);
  throwsCode(() => writeSafetensors({ a: { dtype: "I64", shape: [1], data: [2 ** 60] } }), "bad_value", "a", w);
  throwsCode(() => writeSafetensors({ a: { dtype: "I32", shape: [1], data: [2 ** 31] } }), "bad_value", "a", w);
  throwsCode(() => writeSafetensors({ __metadata__: { dtype: "F32", shape: [0], data: [] } }), "bad_entry", "__metadata__", w);
  throwsCode(() => writeSafetensors({}, { a: 1 as unknown as string }), "bad_metadata", undefined, w);
});

test("a header claiming a 100 GB tensor fails at once without allocating it", async () => {
  const huge = { w: { dtype: "F32", shape: [25_000, 1_000_000], data_offsets: [0, 100_000_000_000] } };
  const bytes = buildObj(huge, 16);
  const before = memoryUsage();
  const t0 = performance.now();
  throwsCode(() => parseSafetensors(bytes, SRC), "offsets_out_of_range", "w");
  // The header alone validates against a file that really is that large: no data is touched.
  const header = parseSafetensorsHeader(bytes, bytes.length - 16 + 100_000_000_000, SRC);
  assert.equal(header.dataEnd, 100_000_000_000);
  checkTensors(header, new Map([["w", [25_000, 1_000_000]]]), SRC);
  const dir = mkdtempSync(join(tmpdir(), "dic-st-"));
  try {
    const path = join(dir, "huge.safetensors");
    writeFileSync(path, bytes);
    await assert.rejects(readSafetensorsFile(path), (e) => checkError(e, "offsets_out_of_range", path, "w"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(performance.now() - t0 < 1000, "took over a second");
  const after = memoryUsage();
  assert.ok(after.rss - before.rss < 1e9, `rss grew by ${after.rss - before.rss}`);
  assert.ok((after.arrayBuffers ?? 0) - (before.arrayBuffers ?? 0) < 1e9, "array buffers grew");
});

test("readSafetensorsFile reads from disk, checks expected shapes first, and reports truncation", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dic-st-"));
  try {
    const bytes = writeSafetensors({
      "x_embedder.proj.weight": { dtype: "F16", shape: [2, 3], data: [1, -2, 0.5, 65504, -0, 2 ** -24] },
      t: { dtype: "I64", shape: [2], data: [999, 0] },
    }, { format: "pt" });
    const path = join(dir, "m.safetensors");
    writeFileSync(path, bytes);
    const file = await readSafetensorsFile(path);
    assert.equal(file.source, path);
    assert.equal(file.metadata.format, "pt");
    sameValues(file.getF32("x_embedder.proj.weight"), [1, -2, 0.5, 65504, -0, 2 ** -24], "disk f16");
    sameValues(file.getF32("t"), [999, 0], "disk i64");
    await readSafetensorsFile(path, new Map([["x_embedder.proj.weight", [2, 3]], ["t", [2]]]));
    await assert.rejects(readSafetensorsFile(path, new Map([["x_embedder.proj.weight", [3, 2]], ["t", [2]]])),
      (e) => checkError(e, "shape_mismatch", path, "x_embedder.proj.weight"));
    const cut = join(dir, "cut.safetensors");
    writeFileSync(cut, bytes.subarray(0, bytes.length - 3));
    await assert.rejects(readSafetensorsFile(cut), (e) => checkError(e, "offsets_out_of_range", cut));
    const tiny = join(dir, "tiny.safetensors");
    writeFileSync(tiny, new Uint8Array(3));
    await assert.rejects(readSafetensorsFile(tiny), (e) => checkError(e, "truncated", tiny));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("reads the PyTorch-written fixture: f32, f16, bf16, int64 and torch's f16 rounding", async () => {
  const path = join(fixturesDir, "safetensors_dtypes.safetensors");
  assert.ok(existsSync(path), `${path} missing: run /usr/bin/python3 reference/fixtures_safetensors.py tests/fixtures/gen`);
  const file = await readSafetensorsFile(path);
  assert.deepEqual({ ...file.metadata }, { format: "pt", purpose: "dtype cross-check" });
  sameValues(file.getF32("f32"), f32([1.5, -2.25, 3e-38, 1e38, -0, 7]), "f32");
  assert.deepEqual(file.tensors.get("f16")!.shape, [2, 6]);
  sameValues(file.getF32("f16"), [0, -0, 2 ** -24, -(2 ** -24), 1023 * 2 ** -24, 2 ** -14, 1, -2.5, 65504, Infinity, -Infinity, NaN], "f16");
  sameValues(file.getF32("bf16"), [0, -0, 1, -3.140625, 2 ** 100, 2 ** -133, Infinity, NaN], "bf16");
  sameValues(file.getF32("i64"), f32([0, 1, 999, -5, 2 ** 40 + 3, -(2 ** 33)]), "i64");
  sameValues(file.getF32("scalar"), [42], "scalar");
  assert.deepEqual(file.tensors.get("empty")!.shape, [0, 3]);
  // Our f32 -> f16 rounding must produce torch's bits for every rounding case.
  const src = file.getF32("round_src");
  const ours = parseSafetensors(writeSafetensors({ r: { dtype: "F16", shape: [src.length], data: src } }), "ours");
  assert.deepEqual([...ours.getBytes("r")], [...file.getBytes("round_f16")]);
  sameValues(ours.getF32("r"), file.getF32("round_f16"), "round_f16");
  sameValues(file.getF32("round_bf16").subarray(0, 4), [0.10009765625, -0.10009765625, 1, 1], "round_bf16");
  // Parsing in memory gives the same table as reading from disk.
  const whole = new Uint8Array(await (await import("node:fs/promises")).readFile(path));
  assert.deepEqual([...parseSafetensors(whole, path).tensors], [...file.tensors]);
});

test("a key twice in one object of the header is refused (duplicate_key), not last-one-wins", () => {
  const e = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}';
  for (const [text, key] of [
    [`{"a":${e},"b":${e},"a":${e}}`, "a"],
    [`{"a":${e},"\\u0061":${e}}`, "a"], // the same key escaped differently
    [`{"__metadata__":{"config":"{}","config":"{}"},"a":${e}}`, "config"],
    [`{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, "dtype"],
  ] as const) {
    assert.throws(() => parseSafetensors(build(text, 8), SRC), (err) => checkError(err, "duplicate_key", SRC) && err instanceof Error && err.message.includes(JSON.stringify(key)), text);
  }
  // The same name in different objects, in strings or in values is fine.
  const ok = parseSafetensors(build(`{"__metadata__":{"a":"a:a"},"a":${e}}`, 4), SRC);
  assert.deepEqual([...ok.tensors.keys()], ["a"]);
});
