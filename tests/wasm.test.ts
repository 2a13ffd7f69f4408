// What is specific to the wasm backend (the shared op suite and the forward parity run on it anyway):
// which build runs, Winograd vs direct conv3x3 around the size switch, weights with and without a role
// hint, the GELU polynomial against the f64 erf, and memory that stops growing across forwards.
import assert from "node:assert/strict";
import type { NormPreOp, Tensor } from "../src/backend/contract.ts";
import { JsBackend } from "../src/backend/js/index.ts";
import { gelu } from "../src/backend/js/gelu.ts";
import { createWasmBackend, probeWasm, relaxedSimdSupported, type WasmBackend } from "../src/backend/wasm/index.ts";
import { GaussianRng } from "../src/rng.ts";
import { numel } from "../src/tensor.ts";
import { loadModel } from "../sdk/model.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, runtimeName, test } from "./harness.ts";
import { FAST_F32_VS_JS } from "./tolerances.ts";

/** Winograd F(4x4,3x3) vs the direct im2col path on the same inputs (both f32; Winograd's transforms round more). */
const WINOGRAD_VS_DIRECT = 1e-5;
/** GELU on random N(0, 4) inputs vs the f64 erf reference: relative L2 (the f32 rounding of the output is ~3e-8). */
const GELU_VS_F64 = 2e-7;
/** The relaxed-SIMD build (fused multiply-add where the engine fuses) vs the plain build: rounding, amplified by Winograd. */
const RELAXED_VS_PLAIN = 1e-5;
/** A conv3x3 weight rebuilt from its Winograd form (least squares in f64 from f32 values) vs as uploaded. */
const WEIGHT_RESTORE = 1e-6;

const why = probeWasm();
if (why) console.log(`wasm [${runtimeName}]: not run: ${why}`);
const wasmTest = why ? (_name: string, _fn: () => unknown) => {} : test;
const rng = new GaussianRng(7);
const rand = (shape: number[], scale = 1) => ({ shape, data: rng.fill(new Float32Array(numel(shape))).map((v) => v * scale) });

wasmTest(`wasm [${runtimeName}]: picks relaxed SIMD exactly where the engine accepts it, and says so`, async () => {
  const b = await createWasmBackend();
  const relaxed = relaxedSimdSupported();
  assert.equal(b.variant, relaxed ? "relaxed-simd" : "simd");
  assert.match(b.description, relaxed ? /relaxed SIMD/ : /plain SIMD/);
  console.log(`wasm [${runtimeName}]: ${b.description}`);
  if (!relaxed) await assert.rejects(createWasmBackend({ variant: "relaxed-simd" }), /relaxed-SIMD/);
});

wasmTest(`wasm [${runtimeName}]: relaxed and plain SIMD builds agree`, async () => {
  if (!relaxedSimdSupported()) return console.log(`wasm [${runtimeName}]: relaxed SIMD not accepted here, only the plain build runs`);
  const outs = [];
  const [xh, wh] = [rand([2, 24, 9, 9]), rand([16, 24, 3, 3], 0.1)];
  for (const variant of ["simd", "relaxed-simd"] as const) {
    const b = await createWasmBackend({ variant });
    const [x, w] = [b.upload(xh), b.upload(wh, "conv3x3.weight")];
    outs.push((await b.download(b.conv3x3(x, w, null, { norm: "group", groups: 4, eps: 1e-5, act: "gelu" }))).data);
  }
  const err = relL2(outs[1], outs[0]);
  console.log(`wasm [${runtimeName}]: relaxed vs plain conv3x3 relative L2 ${err.toExponential(2)}`);
  assert.ok(err <= RELAXED_VS_PLAIN, `relaxed vs plain: ${err}`);
});

wasmTest(`wasm [${runtimeName}]: Winograd and direct conv3x3 agree (and match js) at sizes around the switch`, async () => {
  const wino = await createWasmBackend({ conv3x3: "winograd" });
  const direct = await createWasmBackend({ conv3x3: "direct" });
  const js = new JsBackend();
  let worst = 0;
  for (const [n, ci, co, h, w] of [[1, 5, 7, 1, 1], [2, 6, 9, 2, 3], [1, 8, 16, 3, 3], [2, 7, 5, 4, 4], [1, 16, 8, 5, 5],
    [1, 12, 12, 7, 7], [2, 9, 13, 8, 8], [1, 16, 24, 9, 9], [1, 4, 8, 4, 9], [1, 8, 4, 13, 6], [1, 32, 32, 12, 12]]) {
    const [x, wt, bias, cond] = [rand([n, ci, h, w]), rand([co, ci, 3, 3], 0.2), rand([co]), rand([n, 2 * ci])];
    const run = async (b: WasmBackend | JsBackend) => {
      const t = [b.upload(x), b.upload(wt, "conv3x3.weight"), b.upload(bias, "vector"), b.upload(cond)];
      const pre: NormPreOp = { norm: "group", groups: ci % 2 ? 1 : 2, eps: 1e-5, act: "gelu",
        modulate: { scale: { tensor: t[3], offset: 0 }, shift: { tensor: t[3], offset: ci } } };
      const out: Tensor = b.conv3x3(t[0], t[1], t[2], pre);
      const host = (await b.download(out)).data;
      for (const u of [...t, out]) b.free(u);
      return host;
    };
    const [a, d, ref] = [await run(wino), await run(direct), await run(js)];
    const e = relL2(a, d);
    worst = Math.max(worst, e);
    assert.ok(e <= WINOGRAD_VS_DIRECT, `[${n}, ${ci}, ${h}, ${w}] -> ${co}: Winograd vs direct relative L2 ${e}`);
    assert.ok(relL2(a, ref) <= FAST_F32_VS_JS && relL2(d, ref) <= FAST_F32_VS_JS, `[${n}, ${ci}, ${h}, ${w}] -> ${co}: vs js`);
  }
  console.log(`wasm [${runtimeName}]: Winograd vs direct worst relative L2 ${worst.toExponential(2)}`);
});

wasmTest(`wasm [${runtimeName}]: weights give the same results with or without a role hint, and download unchanged`, async () => {
  const b = await createWasmBackend();
  const [x, w3, w1, lw] = [rand([2, 6, 8, 8]), rand([10, 6, 3, 3]), rand([10, 6, 1, 1]), rand([12, 6])];
  const xt = b.upload(x);
  const xl = b.upload(rand([3, 6]));
  const hinted = [b.upload(w3, "conv3x3.weight"), b.upload(w1, "conv1x1.weight"), b.upload(lw, "linear.weight")];
  const plain = [b.upload(w3), b.upload(w1), b.upload(lw)];
  const outs = async (ws: Tensor[]) => [
    (await b.download(b.conv3x3(xt, ws[0], null))).data, (await b.download(b.conv1x1(xt, ws[1], null))).data,
    (await b.download(b.linear(xl, ws[2], null, "silu"))).data,
  ];
  const [a, c] = [await outs(hinted), await outs(plain)];
  a.forEach((v, i) => assert.deepEqual(v, c[i], `op ${i}: hinted vs plain upload`));
  // A hinted conv3x3 weight is kept in Winograd form only; download rebuilds it (f32 rounding of the transform).
  const back = (await b.download(hinted[0])).data;
  assert.ok(relL2(back, w3.data) <= WEIGHT_RESTORE, `conv3x3 weight downloads as uploaded: ${relL2(back, w3.data)}`);
  assert.deepEqual((await b.download(plain[0])).data, w3.data, "unhinted conv3x3 weight downloads unchanged");
  // ...and rebuilds it for the direct path (tiny images) too.
  const tiny = b.upload(rand([1, 6, 2, 3]));
  const direct = await createWasmBackend({ conv3x3: "direct" });
  const dw = (await direct.download(direct.conv3x3(direct.upload((await b.download(tiny))), direct.upload(w3, "conv3x3.weight"), null))).data;
  assert.ok(relL2((await b.download(b.conv3x3(tiny, hinted[0], null))).data, dw) <= 1e-6, "direct path from a rebuilt weight");
  // An activation made by an op (NHWC inside) used as a weight: packed from its NCHW view.
  const made = b.add(plain[0], plain[0]);
  const twice = (await b.download(b.conv3x3(xt, made, null))).data;
  assert.ok(relL2(twice, a[0].map((v) => 2 * v)) <= 1e-6, "weight made by an op");
});

wasmTest(`wasm [${runtimeName}]: GELU polynomial vs the f64 erf`, async () => {
  const b = await createWasmBackend();
  const k = b.core.k;
  const xs = new Float32Array(200_003);
  const noise = rng.fill(new Float32Array(xs.length));
  for (let i = 0; i < xs.length; i++) xs[i] = i < 100_000 ? -8 + (16 * i) / 100_000 : 2 * noise[i];
  const p = b.core.heap.alloc(xs.length * 8);
  b.core.f32().set(xs, p >> 2);
  k.gelu(p, p + xs.length * 4, xs.length);
  const got = b.core.f32().slice((p >> 2) + xs.length, (p >> 2) + 2 * xs.length);
  b.core.heap.release(p);
  const want = Array.from(xs, gelu);
  let maxAbs = 0;
  for (let i = 0; i < 100_000; i++) maxAbs = Math.max(maxAbs, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(xs[i])));
  const err = relL2(got.subarray(100_000), want.slice(100_000));
  console.log(`wasm [${runtimeName}]: GELU max |error| / max(1, |x|) ${maxAbs.toExponential(2)} on [-8, 8], relative L2 ${err.toExponential(2)} on N(0, 4)`);
  assert.ok(maxAbs <= 5e-7, `GELU max error ${maxAbs}`);
  assert.ok(err <= GELU_VS_F64, `GELU relative L2 ${err}`);
});

wasmTest(`wasm [${runtimeName}]: memory stops growing across repeated forwards`, async () => {
  const b = await createWasmBackend();
  const base = `${fixturesDir}forward_odd`;
  const model = await loadModel(`${base}_weights.safetensors`, { backend: b });
  const inputs = await readSafetensorsFile(`${base}_inputs.safetensors`);
  const x = { shape: [...inputs.tensors.get("x")!.shape], data: inputs.getF32("x") };
  const loaded = b.memoryStats();
  const after = [];
  let first: Float32Array | null = null;
  for (let i = 0; i < 4; i++) {
    const out = await model.forward(x, inputs.getF32("t"), inputs.getF32("y"));
    first ??= out.data;
    assert.deepEqual(out.data, first, `forward ${i} gives the same result`);
    after.push(b.memoryStats());
  }
  console.log(`wasm [${runtimeName}]: odd model: weights ${loaded.liveBytes} bytes live; after 4 forwards ${JSON.stringify(after[3])}`);
  // The first forward may add packed weight forms made on first use; after it nothing changes.
  for (const s of after) {
    assert.equal(s.liveBytes, after[0].liveBytes, "a forward leaves nothing allocated");
    assert.equal(s.committedBytes, after[0].committedBytes, "memory grew after the first forward");
    assert.equal(s.peakLiveBytes, after[0].peakLiveBytes, "peak grew after the first forward");
  }
});
