// Protocol v1 codec (docs/protocol.md sections 3-6): CRC-32, f16, every frame type round trip, the
// strict MessagePack subset, tensor checks, HMAC auth, and a fuzz of mutated/truncated frames.
import assert from "node:assert/strict";
import { Packr } from "msgpackr";
import { importSecret, NonceCache, signFrames, verifyAuth } from "../src/protocol/auth.ts";
import { crc32 } from "../src/crc32.ts";
import { ProtocolError } from "../src/protocol/errors.ts";
import { decodeFrame, encodeFrame, type Frame, expectFrame } from "../src/protocol/frames.ts";
import { checkMsgpack } from "../src/protocol/msgpack-check.ts";
import { FrameReader } from "../src/protocol/stream.ts";
import { decodeTensor, encodeTensor, f16BitsToF32, f32ToF16Bits } from "../src/protocol/tensor-codec.ts";
import { test } from "./harness.ts";

const hdr = { v: 2, session: "s-test", seq: 1 };
const tensor = (shape: number[], f = (i: number) => Math.sin(i) * 3) => {
  let n = 1;
  for (const d of shape) n *= d;
  return { shape, data: Float32Array.from({ length: n }, (_, i) => f(i)) };
};
const code = (re: string) => (e: unknown) => e instanceof ProtocolError && e.code === re;

test("crc32 matches the zlib check values", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32(new Uint8Array([0])), 0xd202ef8d);
  // Tail lengths 1..3 after the 4-byte blocks.
  assert.equal(crc32(new TextEncoder().encode("The quick brown fox jumps over the lazy dog")), 0x414fa339);
  // The table-driven loop against the bit-at-a-time definition, every length 0..64 and one long buffer.
  const bitwise = (b: Uint8Array) => {
    let c = 0xffffffff;
    for (const x of b) {
      c ^= x;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    }
    return (c ^ 0xffffffff) >>> 0;
  };
  const data = Uint8Array.from({ length: 5000 }, (_, i) => (i * 2654435761) >>> 24);
  for (let n = 0; n <= 64; n++) assert.equal(crc32(data.subarray(3, 3 + n)), bitwise(data.subarray(3, 3 + n)), `length ${n}`);
  assert.equal(crc32(data), bitwise(data));
});

test("f16 rounding is IEEE round-to-nearest-even, with subnormals, overflow and NaN", () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001],
    [2 ** -14, 0x0400], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0.1, 0x2e66], [1 / 3, 0x3555],
  ];
  for (const [v, bits] of cases) assert.equal(f32ToF16Bits(v), bits, `f16(${v})`);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
  // Every finite f16 survives f16 -> f32 -> f16.
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00) continue;
    assert.equal(f32ToF16Bits(f16BitsToF32(h)), h === 0x8000 ? 0x8000 : h);
  }
});

test("every frame type survives encode -> decode", () => {
  const t = encodeTensor(tensor([2, 3, 4, 4]));
  const frames: Frame[] = [
    { ...hdr, type: "auth", ts: Date.now(), nonce: "abcdefghijklmnop", length: 123456, audience: "[::1]:8701", digest: new Uint8Array(32).fill(1), mac: new Uint8Array(32).fill(2) },
    {
      ...hdr, type: "hello", versions: [2], cut: "unet", dtype: "f16",
      model: { config: { input_size: 28, depth: [2, 2, 2, 2, 2] }, weights_sha256: new Uint8Array(32).fill(3) },
      generation: { labels: [1, 7], steps: 20, sampler: "dpmpp2m", eta: 0, cfg_scale: 2.5, cfg_mode: "standard", seed: 12345 },
    },
    { ...hdr, type: "step", step: 3, t: [999, 999], y: [1, 10], bottleneck: t, skips: [t, t] },
    { ...hdr, type: "step_result", step: 3, out: t },
    { ...hdr, type: "handoff", preview_every: 2, state: { x: t, next_step: 4, rng: { algorithm: "xoshiro128**/polar", version: 1, words: [1, 2, 0xffffffff, 4], spare: 0.25 }, sampler_state: new Uint8Array([3, 0, 0, 0, 1, 2, 3, 4]) } },
    { ...hdr, type: "latent", x: t },
    { ...hdr, type: "preview", step: 1, total_steps: 6, t: 799, x: null },
    { ...hdr, type: "final", x: null, image: t, pixel_range: [-1, 1] },
    { ...hdr, type: "error", code: "stale", status: 401, message: "old", step: null, versions: [2] },
  ];
  for (const f of frames) {
    const wire = encodeFrame(f);
    assert.equal(new DataView(wire.buffer).getUint32(0), wire.length - 4, `${f.type}: length prefix`);
    const back = decodeFrame(wire.subarray(4));
    assert.deepEqual(normalize(back), normalize(f), f.type);
  }
  const x = decodeTensor(expectFrame(decodeFrame(encodeFrame(frames[5]).subarray(4)), "latent").x, [2, 3, 4, 4], "x");
  assert.deepEqual(x.data, tensor([2, 3, 4, 4]).data);
});

/** Plain objects with Uint8Array contents as arrays (Buffer vs Uint8Array compare equal). */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null && x !== undefined).map(([k, x]) => [k, normalize(x)]));
  return v;
}

test("only plain MessagePack is accepted: extensions, non-string keys, deep nesting and lies are refused", () => {
  const plain = new Packr({ useRecords: false, variableMapSize: true });
  assert.doesNotThrow(() => checkMsgpack(plain.pack({ a: [1, 2.5, "x", null, true, new Uint8Array(3)] })));
  const bad: [string, Uint8Array][] = [
    ["fixext 1", new Uint8Array([0x81, 0xa1, 0x61, 0xd4, 0x01, 0x00])],
    ["ext 8 (timestamp)", new Uint8Array([0x81, 0xa1, 0x61, 0xc7, 0x0c, 0xff, ...new Array(12).fill(0)])],
    ["msgpackr record", new Packr({ useRecords: true }).pack([{ a: 1 }, { a: 2 }])],
    ["reserved 0xc1", new Uint8Array([0xc1])],
    ["integer map key", new Uint8Array([0x81, 0x01, 0x02])],
    ["__proto__ key", new Uint8Array([0x81, 0xa9, ...new TextEncoder().encode("__proto__"), 0x80])],
    ["array claiming 2^32-1 entries", new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01])],
    ["str longer than the frame", new Uint8Array([0xdb, 0x7f, 0xff, 0xff, 0xff, 0x61])],
    ["bin longer than the frame", new Uint8Array([0xc6, 0x10, 0x00, 0x00, 0x00, 0x61])],
    ["nesting 9 deep", new Uint8Array([...new Array(9).fill(0x91), 0x01])],
    ["uint64 beyond 2^53", new Uint8Array([0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0])],
    ["trailing bytes", new Uint8Array([0x80, 0x00])],
    ["truncated float", new Uint8Array([0xcb, 0, 0])],
  ];
  for (const [what, bytes] of bad) assert.throws(() => checkMsgpack(bytes), code("bad_frame"), what);
});

test("frame validation names the field and refuses wrong versions with the supported list", () => {
  const enc = (o: unknown) => new Packr({ useRecords: false }).pack(o);
  assert.throws(() => decodeFrame(enc({ v: 1, type: "latent", session: "s", seq: 0 })), (e) => code("unsupported_version")(e) && JSON.stringify((e as ProtocolError).extra.versions) === "[2]");
  assert.throws(() => decodeFrame(enc([1, 2])), code("bad_frame"));
  assert.throws(() => decodeFrame(enc({ v: 2, type: "nope", session: "s", seq: 0 })), /unknown type "nope"/);
  assert.throws(() => decodeFrame(enc({ v: 2, type: "latent", session: "bad session!", seq: 0 })), /session/);
  assert.throws(() => decodeFrame(enc({ v: 2, type: "latent", session: "s", seq: 0, x: { dtype: "f32", shape: [1], data: "abcd", crc32: 0 } })), /latent\.x\.data: expected MessagePack bin/);
  assert.throws(() => decodeFrame(enc({ v: 2, type: "step", session: "s", seq: 0, skips: [], step: 1000 })), /step\.step/);
  assert.throws(() => decodeFrame(enc({ v: 2, type: "hello", session: "s", seq: 0, cut: "pixels" })), (e) => code("bad_frame")(e) || code("unsupported_cut")(e));
});

test("tensor checks: dtype, shape, size, checksum, NaN/Inf, in that order", () => {
  const good = encodeTensor(tensor([1, 2, 3, 3]));
  assert.deepEqual(decodeTensor(good, [null, 2, 3, 3], "x").data, tensor([1, 2, 3, 3]).data);
  assert.throws(() => decodeTensor({ ...good, dtype: "f64" }, [1, 2, 3, 3], "x"), code("bad_tensor"));
  assert.throws(() => decodeTensor(good, [1, 2, 3, 4], "x"), (e) => code("bad_tensor")(e) && /shape \[1, 2, 3, 3\]/.test((e as Error).message));
  assert.throws(() => decodeTensor({ ...good, data: good.data.subarray(4) }, [1, 2, 3, 3], "x"), /68 bytes/);
  const flipped = good.data.slice();
  flipped[5] ^= 1;
  assert.throws(() => decodeTensor({ ...good, data: flipped }, [1, 2, 3, 3], "x"), code("checksum_mismatch"));
  for (const v of [NaN, Infinity, -Infinity]) {
    assert.throws(() => decodeTensor(encodeTensor(tensor([1, 2, 3, 3], (i) => (i === 7 ? v : i))), [1, 2, 3, 3], "x"), code("non_finite"));
  }
  const half = decodeTensor(encodeTensor(tensor([1, 2, 3, 3]), "f16"), [1, 2, 3, 3], "x");
  const ref = tensor([1, 2, 3, 3]).data;
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(half.data[i] - ref[i]) <= Math.abs(ref[i]) * 2 ** -11 + 1e-7, `f16 ${i}`);
});

test("HMAC auth: good requests pass; stale, tampered, wrong-key, misdirected, wrong-length and replayed ones are refused", async () => {
  const key = await importSecret("0123456789abcdef-secret");
  const other = await importSecret("another-secret-of-16+");
  const frames: Frame[] = [{ ...hdr, type: "latent", x: encodeTensor(tensor([1, 1, 2, 2])) }];
  const split = async (body: Uint8Array) => {
    const r = new FrameReader(new Response(body as Uint8Array<ArrayBuffer>).body!, 1 << 20);
    const a = expectFrame(decodeFrame((await r.nextRaw())!.body), "auth");
    const rest = (await r.nextRaw())!.wire;
    return { a, rest };
  };
  const nonces = new NonceCache(60_000);
  const now = 1_800_000_000_000;
  const audience = "gpu-1.test:8701";
  const at = (t: number, audiences = [audience]) => ({ now: t, audiences });
  const { a, rest } = await split(await signFrames(key, frames, { now, audience }));
  assert.equal(a.length, rest.length);
  assert.equal(a.audience, audience);
  await verifyAuth(key, a, rest, nonces, at(now + 1000));
  await assert.rejects(verifyAuth(key, a, rest, nonces, at(now + 2000)), code("replayed"));
  // Each case signs afresh: a MAC that verifies spends the nonce before the body is checked.
  const fresh = async () => split(await signFrames(key, frames, { now, audience }));
  const s2 = await fresh();
  await assert.rejects(verifyAuth(key, s2.a, s2.rest, nonces, at(now + 61_000)), code("stale"));
  await assert.rejects(verifyAuth(key, s2.a, s2.rest, nonces, { ...at(now), notBefore: now + 1 }), code("stale"));
  await assert.rejects(verifyAuth(other, s2.a, s2.rest, nonces, at(now)), code("unauthenticated"));
  await assert.rejects(verifyAuth(key, { ...s2.a, session: "s-other" }, s2.rest, nonces, at(now)), code("unauthenticated"));
  // The length and the audience are signed: changing either breaks the MAC.
  await assert.rejects(verifyAuth(key, { ...s2.a, length: s2.a.length + 1 }, s2.rest, nonces, at(now)), code("unauthenticated"));
  await assert.rejects(verifyAuth(key, { ...s2.a, audience: "gpu-2.test:8701" }, s2.rest, nonces, at(now, ["gpu-2.test:8701"])), code("unauthenticated"));
  // A genuine request for another host: misdirected (its nonce is not spent here).
  await assert.rejects(verifyAuth(key, s2.a, s2.rest, nonces, at(now, ["gpu-2.test:8701"])), code("misdirected"));
  const tampered = s2.rest.slice();
  tampered[tampered.length - 1] ^= 0x40;
  await assert.rejects(verifyAuth(key, s2.a, tampered, nonces, at(now)), code("unauthenticated"));
  const s3 = await fresh();
  await assert.rejects(verifyAuth(key, s3.a, concat2(s3.rest, s3.rest), nonces, at(now)), code("unauthenticated"));
  const s4 = await fresh();
  await assert.rejects(verifyAuth(key, s4.a, s4.rest.subarray(0, s4.rest.length - 1), nonces, at(now)), code("unauthenticated"));
  const s5 = await fresh();
  await verifyAuth(key, s5.a, s5.rest, nonces, at(now));
  await assert.rejects(importSecret("short"), /at least 16/);
});

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

test("the frame reader refuses a length beyond the limit before reading it, and truncation", async () => {
  const huge = new Uint8Array([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
  await assert.rejects(new FrameReader(new Response(huge).body!, 1 << 20).nextRaw(), code("too_large"));
  const wire = encodeFrame({ ...hdr, type: "preview", step: 0, total_steps: 1, t: 0, x: null });
  await assert.rejects(new FrameReader(new Response(wire.slice(0, wire.length - 1)).body!, 1 << 20).nextRaw(), code("bad_frame"));
  await assert.rejects(new FrameReader(new Response(wire.slice(0, 2)).body!, 1 << 20).nextRaw(), code("bad_frame"));
  // Chunked delivery of two frames, one byte at a time.
  const two = new Uint8Array([...wire, ...wire]);
  const body = new ReadableStream<Uint8Array>({ start(c) { for (const b of two) c.enqueue(new Uint8Array([b])); c.close(); } });
  const r = new FrameReader(body, 1 << 20);
  assert.equal((await r.next())?.type, "preview");
  assert.equal((await r.next())?.type, "preview");
  assert.equal(await r.next(), null);
});

test("fuzz: 12,000 mutated and truncated frames never crash, hang or allocate without bound", () => {
  // Deterministic xorshift so that a failure reproduces.
  let s = 0x9e3779b9;
  const rand = (n: number) => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    return (s >>> 0) % n;
  };
  const t = encodeTensor(tensor([2, 3, 4, 4]));
  const seeds = [
    encodeFrame({ ...hdr, type: "step", step: 3, t: [999, 999], y: [1, 10], bottleneck: t, skips: [t, t] }),
    encodeFrame({ ...hdr, type: "handoff", preview_every: 2, state: { x: t, next_step: 4, rng: { algorithm: "xoshiro128**/polar", version: 1, words: [1, 2, 3, 4], spare: null }, sampler_state: null } }),
    encodeFrame({ ...hdr, type: "hello", versions: [2], cut: "handoff", dtype: "f32", model: { config: { a: 1 }, weights_sha256: new Uint8Array(32) }, generation: { labels: [1], steps: 4, sampler: "ddim", eta: 0, cfg_scale: 1, cfg_mode: "standard", seed: null } }),
    encodeFrame({ ...hdr, type: "auth", ts: 1, nonce: "abcdefghijklmnopq", length: 10, audience: "host.test:8701", digest: new Uint8Array(32), mac: new Uint8Array(32) }),
  ].map((w) => w.subarray(4));
  const t0 = performance.now();
  let accepted = 0, refused = 0;
  const N = 12_000;
  for (let i = 0; i < N; i++) {
    const base = seeds[i % seeds.length];
    let b = base.slice();
    const kind = rand(4);
    if (kind === 0) b = b.subarray(0, rand(b.length)); // truncated
    else if (kind === 1) for (let k = 0, m = 1 + rand(8); k < m; k++) b[rand(b.length)] = rand(256); // random bytes
    else if (kind === 2) { // a length/count byte set to a huge value
      const at = rand(Math.min(b.length, 200));
      b[at] = [0xdd, 0xdf, 0xc6, 0xdb, 0xcf, 0xc7][rand(6)];
    } else b = new Uint8Array([...b.subarray(0, rand(b.length)), ...Array.from({ length: rand(16) }, () => rand(256)), ...b.subarray(rand(b.length))]);
    try {
      const f = decodeFrame(b);
      // Whatever decodes must be usable: its tensors go through the same checks a host runs.
      for (const v of Object.values(f)) {
        if (v && typeof v === "object" && "crc32" in (v as object)) {
          try { decodeTensor(v as never, (v as { shape: number[] }).shape, "t"); } catch (e) { if (!(e instanceof ProtocolError)) throw e; }
        }
      }
      accepted++;
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw new Error(`fuzz case ${i} (kind ${kind}) threw a non-protocol error: ${(e as Error).stack}`);
      refused++;
    }
  }
  const ms = performance.now() - t0;
  assert.equal(accepted + refused, N);
  assert.ok(refused > N / 2, `most mutations must be refused (refused ${refused})`);
  assert.ok(ms < 60_000, `fuzz took ${ms} ms`);
});
