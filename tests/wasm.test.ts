// What is specific to the wasm backend (the shared op suite and the forward parity run on it anyway):
// which build runs, Winograd vs direct conv3x3 around the size switch, weights with and without a role
// hint, the GELU polynomial against the f64 erf, and memory that stops growing across forwards.
import assert from "node:assert/strict";
import type { NormPreOp, Tensor } from "../src/backend/contract.ts";
import { JsBackend } from "../src/backend/js/index.ts";
import { gelu } from "../src/backend/js/gelu.ts";
import { createWasmBackend, MemoryBudgetError, probeWasm, relaxedSimdSupported, threadsUnavailable, type WasmBackend } from "../src/backend/wasm/index.ts";
import { quantizeSafetensors } from "../src/weights/quantize.ts";
import { parseSafetensors } from "../src/weights/safetensors.ts";
import { GaussianRng } from "../src/rng.ts";
import { numel } from "../src/tensor.ts";
import { loadModel } from "../sdk/model.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, runtimeName, test } from "./harness.ts";
import { COMPACT_F16_VS_JS_FORWARD, COMPACT_F16_VS_JS_OP, COMPACT_INT8_VS_JS_OP, FAST_F32_VS_JS } from "./tolerances.ts";

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
  // Edges: NaN stays NaN, GELU(inf) = inf, large negative x gives exactly 0 (as torch; no residual of the
  // rational at the clamp times x, on engines that fuse relaxed_madd or not). GELU(-inf) is 0, its limit
  // (torch computes -inf * 0 = NaN).
  const edge = new Float32Array([NaN, Infinity, -Infinity, -1e30, -40, 0, 40, 1e30]);
  const q = b.core.heap.alloc(edge.length * 8);
  b.core.f32().set(edge, q >> 2);
  k.gelu(q, q + edge.length * 4, edge.length);
  const e = Array.from(b.core.f32().slice((q >> 2) + edge.length, (q >> 2) + 2 * edge.length));
  b.core.heap.release(q);
  assert.deepStrictEqual(e.map(String), ["NaN", "Infinity", "0", "0", "0", "0", "40", String(Math.fround(1e30))], `GELU edges ${e}`);
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

// ----- storage modes (src/backend/wasm/storage.ts) and the memory budget ---------------------------------

wasmTest(`wasm [${runtimeName}]: f16 and int8 conv3x3 storage match js at odd sizes and channel counts, one thread and with workers`, async () => {
  const js = new JsBackend();
  const threads = threadsUnavailable() === null ? [1, 2] : [1];
  for (const t of threads) {
    for (const [storage, tol] of [["f16", COMPACT_F16_VS_JS_OP], ["int8", COMPACT_INT8_VS_JS_OP]] as const) {
      for (const path of ["auto", "winograd", "direct"] as const) {
        const b = await createWasmBackend({ storage, conv3x3: path, threads: t });
        let worst = 0;
        for (const [n, ci, co, h, w] of [[1, 5, 7, 1, 1], [2, 6, 9, 2, 3], [2, 7, 5, 4, 4], [1, 12, 13, 7, 7], [2, 9, 13, 8, 8],
          [1, 16, 24, 9, 9], [2, 3, 11, 17, 5], [1, 33, 70, 6, 10], [1, 40, 136, 5, 5]]) {
          const [x, wt, bias, cond] = [rand([n, ci, h, w]), rand([co, ci, 3, 3], 0.2), rand([co]), rand([n, 2 * ci])];
          const run = async (bk: WasmBackend | JsBackend) => {
            const u = [bk.upload(x), bk.upload(wt, "conv3x3.weight"), bk.upload(bias, "vector"), bk.upload(cond)];
            const pre: NormPreOp = { norm: "group", groups: 1, eps: 1e-5, act: "gelu", modulate: { scale: { tensor: u[3], offset: 0 }, shift: { tensor: u[3], offset: ci } } };
            const out = bk.conv3x3(u[0], u[1], u[2], pre);
            const got = [(await bk.download(out)).data, (await bk.download(u[1])).data];
            for (const v of [...u, out]) bk.free(v);
            return got;
          };
          const [[a, aw], [r]] = [await run(b), await run(js)];
          const e = relL2(a, r);
          worst = Math.max(worst, e);
          assert.ok(e <= tol, `${storage} ${path} threads ${t} [${n}, ${ci}, ${h}, ${w}] -> ${co}: relative L2 ${e} > ${tol}`);
          // download gives the stored kernel: f16 / int8 rounding of the uploaded one, never more.
          assert.ok(relL2(aw, wt.data) <= tol, `${storage}: downloaded weight`);
        }
        const report = b.storageReport();
        assert.ok((report.weights[storage] ?? 0) === 0 && (report.weights["winograd-f32"] ?? 0) === 0, `all freed: ${JSON.stringify(report)}`);
        if (path === "auto") console.log(`wasm [${runtimeName}]: ${storage} storage, ${t} thread(s): worst conv3x3 relative L2 vs js ${worst.toExponential(2)}`);
        b.close();
      }
    }
  }
});

wasmTest(`wasm [${runtimeName}]: a memory budget picks compact storage, stays within it, and says what a too-small one would need`, async () => {
  const base = `${fixturesDir}forward_odd`;
  const inputs = await readSafetensorsFile(`${base}_inputs.safetensors`);
  const x = { shape: [...inputs.tensors.get("x")!.shape], data: inputs.getF32("x") };
  const forward = async (b: WasmBackend) => {
    const model = await loadModel(`${base}_weights.safetensors`, { backend: b });
    return (await model.forward(x, inputs.getF32("t"), inputs.getF32("y"))).data;
  };
  const fast = await createWasmBackend({ threads: 1 });
  const ref = await forward(fast);
  const fastBytes = fast.storageReport().committedBytes;
  // Ample: everything fast, same result.
  const ample = await createWasmBackend({ threads: 1, memoryBudget: 64 << 20, activationReserve: 4 << 20 });
  assert.deepEqual(await forward(ample), ref);
  assert.deepEqual(Object.keys(ample.storageReport().weights).sort(), ["f32", "winograd-f32"]);
  // 60% of what the fast form took: f16 for some layers, the rest fast, within the budget.
  const budget = Math.floor(fastBytes * 0.6);
  const tight = await createWasmBackend({ threads: 1, memoryBudget: budget, activationReserve: 1 << 19 });
  const out = await forward(tight);
  const r = tight.storageReport();
  console.log(`wasm [${runtimeName}]: odd model, fast ${fastBytes} bytes; budget ${budget}: ${JSON.stringify(r)}`);
  assert.ok(r.weights.f16 > 0, "some layers compact");
  assert.ok(r.committedBytes <= budget, `memory ${r.committedBytes} > budget ${budget}`);
  assert.ok(relL2(out, ref) <= COMPACT_F16_VS_JS_FORWARD, `budget run vs fast: ${relL2(out, ref)}`);
  // Too small for the model: a clear error with a stable code and the bytes it would need.
  const small = await createWasmBackend({ threads: 1, memoryBudget: 1 << 20, activationReserve: 1 << 18 });
  const err = await loadModel(`${base}_weights.safetensors`, { backend: small }).then(() => null, (e) => e);
  assert.ok(err instanceof MemoryBudgetError, `got ${err}`);
  assert.equal(err.code, "memory_budget_too_small");
  assert.ok(err.needBytes > 1 << 20 && /needs \d+\.\d MiB/.test(err.message), err.message);
  // Fits the plan but not the run (no room left for activations): fails on the allocation, saying how much.
  const need = r.committedBytes;
  const run = await createWasmBackend({ threads: 1, memoryBudget: need - (r.activationPeakBytes >> 1), activationReserve: 0 });
  const e2 = await forward(run).then(() => null, (e) => e);
  if (e2 !== null) {
    assert.ok(e2 instanceof MemoryBudgetError && e2.code === "memory_budget_exceeded", `got ${e2}`);
    assert.ok(e2.needBytes > e2.budgetBytes, e2.message);
  }
  // loadModel takes memoryBudget and passes it to the wasm backend it creates.
  const viaLoad = await loadModel(`${base}_weights.safetensors`, { backend: "wasm", memoryBudget: budget });
  assert.match(viaLoad.backend.description, /memory budget/);
  await assert.rejects(loadModel(`${base}_weights.safetensors`, { backend: "wasm", memoryBudget: 300_000 }), (e: Error) => (e as MemoryBudgetError).code === "memory_budget_too_small");
});

wasmTest(`wasm [${runtimeName}]: int8 weights files: the reader hides the scales, js dequantizes, wasm keeps int8`, async () => {
  const base = `${fixturesDir}forward_tiny_weights.safetensors`;
  const file = await readSafetensorsFile(base);
  const bytes = quantizeSafetensors(file);
  const q = parseSafetensors(bytes, "<int8>");
  assert.equal(q.metadata.quantization, "int8-per-channel");
  assert.deepEqual([...q.tensors.keys()].sort(), [...file.tensors.keys()].sort(), "same tensor names: the _scale companions are hidden");
  const name = [...file.tensors].find(([, e]) => e.shape.length === 4 && e.shape[2] === 3)![0];
  assert.equal(q.tensors.get(name)!.dtype, "I8");
  const deq = q.getF32(name), orig = file.getF32(name);
  assert.ok(relL2(deq, orig) <= COMPACT_INT8_VS_JS_OP, `dequantized vs original ${relL2(deq, orig)}`);
  const b = await createWasmBackend({ storage: "int8", threads: 1 });
  await loadModel(bytes, { backend: b });
  const r = b.storageReport();
  assert.ok(r.weights.int8 > 0 && !r.weights["winograd-f32"], JSON.stringify(r));
  // The file's int8 values and scales are kept as they are: the weight downloads as the file dequantizes it.
  const u = b.uploadInt8({ shape: [...q.tensors.get(name)!.shape], ...q.getInt8!(name)! });
  assert.deepEqual((await b.download(u)).data, deq);
  assert.ok(bytes.length < file.dataEnd / 1.5, `int8 file ${bytes.length} bytes vs ${file.dataEnd}`);
});

wasmTest(`wasm [${runtimeName}]: compact modes keep linear weights f16 / int8 and conv1x1 weights packed only; both download and run like js`, async () => {
  const js = new JsBackend();
  for (const [storage, tol] of [["f16", COMPACT_F16_VS_JS_OP], ["int8", COMPACT_INT8_VS_JS_OP]] as const) {
    const b = await createWasmBackend({ storage, threads: 1 });
    for (const [n, k, m] of [[2, 37, 19], [1, 256, 300], [3, 8, 8]]) {
      const [x, w, bias] = [rand([n, k]), rand([m, k], 0.1), rand([m])];
      const run = async (bk: WasmBackend | JsBackend) => {
        const u = [bk.upload(x), bk.upload(w, "linear.weight"), bk.upload(bias, "vector")];
        const out = bk.linear(u[0], u[1], u[2], "silu");
        const got = [(await bk.download(out)).data, (await bk.download(u[1])).data];
        for (const v of [...u, out]) bk.free(v);
        return got;
      };
      const [[a, aw], [r]] = [await run(b), await run(js)];
      assert.ok(relL2(a, r) <= tol, `${storage} linear [${n}, ${k}] -> ${m}: ${relL2(a, r)}`);
      assert.ok(relL2(aw, w.data) <= tol, `${storage} linear weight download: ${relL2(aw, w.data)}`);
    }
    const [x, w] = [rand([2, 13, 5, 6]), rand([11, 13, 1, 1], 0.2)];
    const u = [b.upload(x), b.upload(w, "conv1x1.weight")];
    assert.deepEqual((await b.download(u[1])).data, w.data, "conv1x1 weight rebuilt from its packed form");
    const want = js.conv1x1(js.upload(x), js.upload(w), null);
    assert.ok(relL2((await b.download(b.conv1x1(u[0], u[1], null))).data, (await js.download(want)).data) <= FAST_F32_VS_JS);
    b.close();
  }
});
