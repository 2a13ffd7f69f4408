// GaussianRng: golden SHA-256 of the stream (identical on Node, Deno and Bun), stream invariants,
// state hand-off and distribution checks (src/rng.ts).
import assert from "node:assert/strict";
import { runtimeName, test } from "./harness.ts";
import { GaussianRng, portableLog, type RngState } from "../src/rng.ts";

// SHA-256 of the little-endian f32 bytes of the first 4096 normals. Recorded once; also reproduced
// by an independent Python implementation (xoshiro128** + polar with math.log).
const GOLDEN: Array<[number, string]> = [
  [0, "2c352d49e57df3bb966188cc1878088f1b72e82a163e09c7779fef63b0ea224d"],
  [1, "4e4a3f27831cde0df5aecc0a607ab6f77bba409dd8e5c21fb09159d3f50123bb"],
  [2 ** 31 + 5, "0d2118b02e6511585e9ad8be95cb1209bbc86ebbcbf7393239322ea8513acb21"],
];

async function sha256Hex(a: Float32Array): Promise<string> {
  const bytes = new Uint8Array(a.byteLength); // a copy backed by a plain ArrayBuffer (BufferSource)
  bytes.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const h = await globalThis.crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}

test(`golden hashes of the noise stream (${runtimeName})`, async () => {
  for (const [seed, hex] of GOLDEN) {
    const got = await sha256Hex(new GaussianRng(seed).fill(new Float32Array(4096)));
    assert.equal(got, hex, `seed ${seed} on ${runtimeName}`);
  }
  // A bigint seed names the same stream as the equal number.
  const big = await sha256Hex(new GaussianRng(BigInt(2 ** 31 + 5)).fill(new Float32Array(4096)));
  assert.equal(big, GOLDEN[2][1]);
});

test("xoshiro128** matches the reference test vector", () => {
  const rng = GaussianRng.fromState({ algorithm: "xoshiro128**/polar", version: 1, words: [1, 2, 3, 4], spare: null });
  const got = Array.from({ length: 6 }, () => rng.nextUint32());
  assert.deepEqual(got, [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
});

test("the stream does not depend on how requests are chunked", () => {
  const whole = new GaussianRng(7).fill(new Float32Array(1000));
  const rng = new GaussianRng(7);
  const parts: number[] = [];
  for (const n of [1, 3, 0, 7, 100, 389, 500]) parts.push(...rng.fill(new Float32Array(n)));
  assert.deepEqual(Float32Array.from(parts), whole);
  const t = new GaussianRng(7).normal([2, 5, 10, 10]);
  assert.deepEqual(t.shape, [2, 5, 10, 10]);
  assert.deepEqual(t.data, whole);
});

test("state() survives JSON and continues the stream exactly (odd position, spare pending)", () => {
  const a = new GaussianRng(2024);
  a.fill(new Float32Array(1001));
  const s: RngState = JSON.parse(JSON.stringify(a.state()));
  assert.notEqual(s.spare, null);
  const b = GaussianRng.fromState(s);
  assert.deepEqual(b.fill(new Float32Array(777)), a.fill(new Float32Array(777)));
  assert.throws(() => GaussianRng.fromState({ ...s, words: [0, 0, 0, 0] }), /all-zero/);
  assert.throws(() => GaussianRng.fromState({ ...s, version: 2 as 1 }), /version 1/);
});

test("seeds are validated", () => {
  assert.throws(() => new GaussianRng(-1), /non-negative safe integer/);
  assert.throws(() => new GaussianRng(1.5), /non-negative safe integer/);
  assert.throws(() => new GaussianRng(2n ** 64n), /2\^64/);
  assert.doesNotThrow(() => new GaussianRng(2n ** 64n - 1n));
  assert.notDeepEqual(new GaussianRng(0).fill(new Float32Array(8)), new GaussianRng(1).fill(new Float32Array(8)));
});

test("portableLog agrees with Math.log to ~1 ulp", () => {
  let worst = 0;
  const rng = new GaussianRng(3);
  for (let k = 0; k < 20000; k++) {
    const x = (rng.nextUint32() + 1) * 2 ** -32 * 2 ** ((k % 80) - 40);
    worst = Math.max(worst, Math.abs(portableLog(x) - Math.log(x)) / Math.max(Math.abs(Math.log(x)), 1e-300));
  }
  for (const x of [1, 0.5, 2, 1 - 2 ** -40, 1 + 2 ** -30, 2 ** -62, 1e300]) {
    worst = Math.max(worst, Math.abs(portableLog(x) - Math.log(x)) / Math.max(Math.abs(Math.log(x)), 1e-300));
  }
  assert.ok(worst < 1e-15, `worst relative error ${worst}`);
  assert.throws(() => portableLog(0), /positive/);
});

test("the distribution is standard normal (moments and tails of 400k draws)", () => {
  const n = 400_000;
  const z = new GaussianRng(12345).fill(new Float32Array(n));
  let s1 = 0, s2 = 0, s3 = 0, s4 = 0, over2 = 0, over3 = 0, over4 = 0;
  for (const v of z) {
    s1 += v; s2 += v * v; s3 += v * v * v; s4 += v * v * v * v;
    const a = Math.abs(v);
    if (a > 2) over2++;
    if (a > 3) over3++;
    if (a > 4) over4++;
    assert.ok(Number.isFinite(v));
  }
  const mean = s1 / n, variance = s2 / n - mean * mean;
  // Standard errors: mean 1/sqrt(n) = 0.0016, var sqrt(2/n) = 0.0022, skew sqrt(6/n), kurtosis sqrt(24/n).
  assert.ok(Math.abs(mean) < 0.008, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.011, `variance ${variance}`);
  assert.ok(Math.abs(s3 / n) < 0.02, `skewness ${s3 / n}`);
  assert.ok(Math.abs(s4 / n - 3) < 0.04, `kurtosis ${s4 / n}`);
  // Two-sided tail masses: P(|z| > 2) = 0.04550, > 3 = 0.002700, > 4 = 6.3e-5; 5 standard errors.
  const tail = (count: number, p: number) => Math.abs(count / n - p) < 5 * Math.sqrt((p * (1 - p)) / n);
  assert.ok(tail(over2, 0.0455003), `P(|z|>2) = ${over2 / n}`);
  assert.ok(tail(over3, 0.0026998), `P(|z|>3) = ${over3 / n}`);
  assert.ok(tail(over4, 0.0000633), `P(|z|>4) = ${over4 / n}`);
});
