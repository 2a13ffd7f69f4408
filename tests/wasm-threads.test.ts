// The wasm backend's worker threads: threads on and off give the same results (conv3x3 on both paths with
// and without the fused pre-op, conv1x1, a tiny-model forward), the description says the mode, bad thread
// counts are refused by name (option, --threads, DIC_THREADS), a closed pool refuses work, and a process
// that never closes its backend still exits.
import assert from "node:assert/strict";
import type { NormPreOp } from "../src/backend/contract.ts";
import { createWasmBackend, defaultThreads, probeWasm, threadsUnavailable, type WasmBackend } from "../src/backend/wasm/index.ts";
import { OP_CHANNEL_TOTALS, OP_GATE_ADD, OP_GEMM, OP_GEMM_COLS } from "../src/backend/wasm/threads.ts";
import { createBackend } from "../src/backend/registry.ts";
import { resolveConfig } from "../src/model/config.ts";
import { DiCGraph } from "../src/model/dic.ts";
import { randomWeights } from "../bench/lib/random-dic.ts";
import { GaussianRng } from "../src/rng.ts";
import { numel } from "../src/tensor.ts";
import { runCli } from "../sdk/cli.ts";
import { relL2, runtimeCommand, runtimeName, test } from "./harness.ts";

/** Threads on vs off (the bound; the split does not change the order of any sum, so it is 0 today). */
const THREADS_VS_SINGLE = 1e-6;

const why = probeWasm() ?? threadsUnavailable();
if (why) console.log(`wasm threads [${runtimeName}]: not run: ${why}`);
const threadTest = why ? (_name: string, _fn: () => unknown) => {} : test;
const rng = new GaussianRng(11);
const rand = (shape: number[], scale = 1) => ({ shape, data: rng.fill(new Float32Array(numel(shape))).map((v) => v * scale) });

async function backends(threads: number, conv3x3: "auto" | "direct" = "auto"): Promise<[WasmBackend, WasmBackend]> {
  return [await createWasmBackend({ threads: 1, conv3x3 }), await createWasmBackend({ threads, conv3x3 })];
}

threadTest(`wasm threads [${runtimeName}]: default count, description, bad counts`, async () => {
  const n = defaultThreads();
  assert.ok(n >= 1 && n <= 4, `default ${n}`);
  const b = await createWasmBackend({ threads: 2 });
  assert.equal(b.threads, 2);
  assert.match(b.description, /2 threads \(shared memory, 1 worker\)/);
  b.close();
  b.close(); // idempotent
  const one = await createWasmBackend({ threads: 1 });
  assert.equal(one.threads, 1);
  assert.match(one.description, /single thread/);
  for (const bad of [0, 1.5, -2, 1000]) await assert.rejects(createWasmBackend({ threads: bad }), /threads .* not an integer in 1\.\.256/);
  console.log(`wasm threads [${runtimeName}]: default ${n}; ${b.description}`);
});

threadTest(`wasm threads [${runtimeName}]: conv3x3 (Winograd and direct, with and without pre-op) and conv1x1 match one thread`, async () => {
  let worst = 0;
  for (const [threads, path] of [[2, "auto"], [3, "auto"], [2, "direct"]] as const) {
    const [one, many] = await backends(threads, path);
    for (const [n, ci, co, h, w] of [[1, 5, 7, 1, 1], [2, 6, 9, 2, 3], [1, 12, 12, 7, 7], [2, 9, 13, 8, 8], [1, 16, 24, 9, 9],
      [3, 8, 4, 13, 6], [2, 32, 40, 16, 16], [1, 24, 10, 4, 5], [1, 70, 67, 8, 8]]) {
      const [x, wt, bias, cond, w1] = [rand([n, ci, h, w]), rand([co, ci, 3, 3], 0.2), rand([co]), rand([n, 2 * ci]), rand([ci, co, 1, 1], 0.3)];
      const groups = ci % 3 === 0 ? 3 : 1;
      const run = async (b: WasmBackend, pre: boolean) => {
        const c = b.upload(cond);
        const op: NormPreOp = { norm: "group", groups, eps: 1e-5, act: "gelu", modulate: { scale: { tensor: c, offset: ci }, shift: { tensor: c, offset: 0 } } };
        const xs = b.upload(x);
        const out = b.conv3x3(xs, b.upload(wt, "conv3x3.weight"), b.upload(bias), pre ? op : undefined);
        const o1 = b.conv1x1(out, b.upload(w1, "conv1x1.weight"), null);
        return [(await b.download(out)).data, (await b.download(o1)).data];
      };
      for (const pre of [false, true]) {
        const [a, b] = [await run(one, pre), await run(many, pre)];
        for (let i = 0; i < 2; i++) {
          const err = relL2(b[i], a[i]);
          worst = Math.max(worst, err);
          assert.ok(err <= THREADS_VS_SINGLE, `${threads} threads ${path} [${n},${ci},${h},${w}]->${co} pre ${pre} output ${i}: ${err}`);
        }
      }
    }
    many.close();
  }
  console.log(`wasm threads [${runtimeName}]: conv worst relative L2 threads vs single ${worst.toExponential(2)}`);
});

threadTest(`wasm threads [${runtimeName}]: short commands on the pool (channel totals, column-split GEMM, gateAdd) match their serial kernels bit for bit`, async () => {
  // ThreadPool.runShort takes the pool or the serial kernel depending on whether a worker sleeps: both must agree exactly.
  const b = await createWasmBackend({ threads: 3 });
  const core = b.core, k = core.k, pool = core.pool!;
  const put = (data: Float32Array) => {
    const p = core.heap.alloc(data.length * 4 + 64);
    core.f32().set(data, p >> 2);
    return p;
  };
  const get = (p: number, len: number) => core.f32().slice(p >> 2, (p >> 2) + len);
  const f64 = (p: number, len: number) => new Float64Array(core.k.memory.buffer, p, len).slice();
  for (const [n, hw, c] of [[1, 64, 96], [2, 49, 70], [3, 25, 13], [1, 9, 384]]) {
    const quads = Math.ceil(c / 4), units = n * quads;
    const x = put(rand([n * hw * c]).data);
    const centers = put(rand([n * quads * 4]).data);
    for (const center of [0, centers]) {
      const [s1, s2] = [core.heap.alloc(units * 32), core.heap.alloc(units * 32)];
      k.channelTotalsUnits(x, n, hw, c, center, s1, 0, units);
      pool.run(OP_CHANNEL_TOTALS, [x, n, hw, c, center, s2]);
      assert.deepStrictEqual(f64(s2, units * 4), f64(s1, units * 4), `channel totals [${n},${hw},${c}] centred ${center !== 0}`);
    }
    const [h, res, gate] = [put(rand([n * hw * c]).data), put(rand([n * hw * c]).data), put(rand([n * (2 * c + 3)]).data)];
    for (const g of [0, gate]) {
      const [d1, d2] = [core.heap.alloc(n * hw * c * 4), core.heap.alloc(n * hw * c * 4)];
      k.gateAdd(h, g, 2 * c + 3, 3, res, d1, n, hw, c);
      pool.run(OP_GATE_ADD, [h, g, 2 * c + 3, 3, res, d2, n, hw, c]);
      assert.deepStrictEqual(get(d2, n * hw * c), get(d1, n * hw * c), `gateAdd [${n},${hw},${c}] gate ${g !== 0}`);
    }
  }
  for (const [m, kk, nn] of [[1, 96, 288], [2, 77, 67], [3, 384, 1152], [1, 5, 9]]) {
    const a = put(rand([m * kk]).data), bias = put(rand([nn + 8]).data);
    const w = core.heap.alloc(Math.ceil(nn / 8) * 8 * kk * 4);
    k.packB(put(rand([kk * nn]).data), kk, nn, nn, 1, w);
    const [c1, c2] = [core.heap.alloc(m * nn * 4), core.heap.alloc(m * nn * 4)];
    k.gemm(m, nn, kk, a, kk, w, c1, nn, bias);
    pool.run(OP_GEMM_COLS, [m, nn, kk, a, kk, w, c2, nn, bias]);
    assert.deepStrictEqual(get(c2, m * nn), get(c1, m * nn), `column-split gemm ${m}x${kk}x${nn}`);
  }
  b.close();
});

threadTest(`wasm threads [${runtimeName}]: tiny-model forward matches one thread`, async () => {
  const config = resolveConfig({ input_size: 8, in_channels: 3, hidden_size: 12, depth: [1, 1, 1, 1, 1], num_classes: 5 });
  const host = randomWeights(config, 3);
  const [x, t, y] = [rand([2, 3, 8, 8]), [10, 500], [1, 4]];
  const outs: Float32Array[] = [];
  for (const threads of [1, 2]) {
    const b = await createWasmBackend({ threads });
    const g = new DiCGraph(b, config, new Map([...host].map(([k, v]) => [k, b.upload(v)])));
    outs.push((await b.download(g.forward(b.upload(x), t, y))).data);
    b.close();
  }
  const err = relL2(outs[1], outs[0]);
  console.log(`wasm threads [${runtimeName}]: tiny forward threads vs single relative L2 ${err.toExponential(2)}`);
  assert.ok(err <= THREADS_VS_SINGLE, `forward: ${err}`);
  assert.ok(outs[0].some((v) => v !== 0));
});

threadTest(`wasm threads [${runtimeName}]: every worker takes chunks`, async () => {
  const b = await createWasmBackend({ threads: 3 });
  const [x, w] = [b.upload(rand([2, 32, 16, 16])), b.upload(rand([32, 32, 3, 3], 0.2), "conv3x3.weight")];
  // Workers claim chunks as they wake; on a busy machine the caller may take a whole command, so allow many.
  for (let i = 0; i < 200 && !b.core.pool!.chunksRun().slice(1).every((c) => c > 0); i++) b.free(b.conv3x3(x, w, null));
  const runs = b.core.pool!.chunksRun();
  console.log(`wasm threads [${runtimeName}]: chunks run per thread ${runs.join(", ")}`);
  assert.ok(runs.slice(1).every((c) => c > 0), `a worker ran no chunk: ${runs}`);
  b.close();
});

threadTest(`wasm threads [${runtimeName}]: a closed backend refuses work`, async () => {
  const b = await createWasmBackend({ threads: 2 });
  const x = b.upload(rand([1, 4, 8, 8]));
  const w = b.upload(rand([4, 4, 3, 3]), "conv3x3.weight");
  b.close();
  assert.throws(() => b.conv3x3(x, w, null), /used after close/);
});

threadTest(`wasm threads [${runtimeName}]: a trap in a shared op throws and closes the pool instead of hanging`, async () => {
  const b = await createWasmBackend({ threads: 2 });
  // A GEMM whose output lies past the end of memory: every thread that runs a chunk traps.
  assert.throws(() => b.core.pool!.run(OP_GEMM, [64, 8, 4, 0, 4, 0, 0x7ff00000, 8, 0]), /out of bounds|failed/i);
  assert.throws(() => b.conv3x3(b.upload(rand([1, 4, 8, 8])), b.upload(rand([4, 4, 3, 3])), null), /used after close/);
});

threadTest(`wasm threads [${runtimeName}]: a process that never closes its threaded backend exits`, async () => {
  const { spawnSync } = await import("node:child_process");
  const file = new URL("./wasm-threads-exit.mjs", import.meta.url).pathname;
  const { exe } = runtimeCommand("tests/wasm-threads-exit.mjs");
  const args = runtimeName === "deno" ? ["run", "-A", file] : [file];
  const t0 = performance.now();
  const r = spawnSync(exe, args, { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, `exit status ${r.status} signal ${r.signal}: ${r.stderr}`);
  assert.match(r.stdout, /2 threads.*center 18$/m);
  console.log(`wasm threads [${runtimeName}]: child exited in ${(performance.now() - t0).toFixed(0)} ms`);
});

threadTest(`wasm threads [${runtimeName}]: thread count from the registry, --threads and DIC_THREADS`, async () => {
  const { backend } = await createBackend("wasm", { threads: 3 });
  assert.match(backend.description, /3 threads \(shared memory, 2 workers\)/);
  (backend as WasmBackend).close();
  const out: string[] = [], err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  assert.equal(await runCli(["backends", "--backend", "wasm", "--threads", "2"], io), 0);
  assert.match(out.at(-1)!, /^wasm +-> .*2 threads \(shared memory, 1 worker\)/);
  assert.equal(await runCli(["backends", "--threads", "0"], io), 1);
  assert.match(err.at(-1)!, /--threads: expected an integer in 1\.\.256, got "0"/);
  const { spawnSync } = await import("node:child_process");
  const { exe, args } = runtimeCommand("sdk/bin.ts");
  const proc = (globalThis as { process?: { env: Record<string, string> } }).process;
  for (const [value, want, status] of [["2", /2 threads/, 0], ["1", /single thread/, 0], ["two", /DIC_THREADS="two" is not a positive integer/, 1]] as const) {
    const r = spawnSync(exe, [...args, "backends", "--backend", "wasm"], { encoding: "utf8", env: { ...proc?.env, DIC_THREADS: value } });
    assert.equal(r.status, status, `DIC_THREADS=${value}: ${r.stderr}`);
    assert.match(r.stdout + r.stderr, want);
  }
});
