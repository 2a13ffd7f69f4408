// bench/profile: where one DiC forward's time goes on the wasm backend, by kernel. Wraps the backend's
// kernel calls and its thread pool's commands with a clock (one process, one thread count), runs a warm-up
// and `--reps` forwards, and prints per kernel: calls, ms per forward, share, and for the Winograd GEMM and
// the 1x1/linear GEMMs their GFLOP/s. "pool:" rows are commands shared by every thread (their time is the
// caller's wait for the last chunk); "serial:" rows run on the caller alone. The clock costs ~1 us a call.
// Run: node dist/bench/profile.bench.js [--config DiC-S] [--threads 1] [--batch 1] [--reps 5] [--by-shape] [--json]
//      (Deno: deno run -A bench/profile.bench.ts ..., Bun: bun bench/profile.bench.ts ...)
import { parseArgs } from "node:util";
import { createWasmBackend } from "../src/backend/wasm/index.ts";
import * as layout from "../src/backend/wasm/pool-layout.ts";
import { env, processArgs } from "../src/env.ts";
import { parseConfigArg, resolveConfig } from "../src/model/config.ts";
import { DiCGraph } from "../src/model/dic.ts";
import { roleOf } from "../src/model/load.ts";
import { GaussianRng } from "../src/rng.ts";
import { randomWeights } from "./lib/random-dic.ts";

const { values } = parseArgs({
  args: processArgs(),
  options: {
    config: { type: "string", default: "DiC-S" }, threads: { type: "string", default: "1" },
    batch: { type: "string", default: "1" }, reps: { type: "string", default: "5" }, json: { type: "boolean" }, "by-shape": { type: "boolean" },
  },
});
const config = resolveConfig(parseConfigArg(values.config!));
const threads = Number(values.threads), n = Number(values.batch), reps = Number(values.reps);
const backend = await createWasmBackend({ threads });
const host = randomWeights(config, 1);
const graph = new DiCGraph(backend, config, new Map([...host].map(([k, v]) => [k, backend.upload(v, roleOf(k, v.shape.length))])));

const opNames = new Map<number, string>();
for (const [k, v] of Object.entries(layout)) if (k.startsWith("OP_") && typeof v === "number") opNames.set(v, k.slice(3).toLowerCase());

type Row = { calls: number; ms: number; flop: number };
const rows = new Map<string, Row>();
let on = false;
const add = (key: string, ms: number, flop: number) => {
  if (!on) return;
  const r = rows.get(key) ?? { calls: 0, ms: 0, flop: 0 };
  r.calls++;
  r.ms += ms;
  r.flop += flop;
  rows.set(key, r);
};
// FLOPs of the GEMM-shaped commands, from their arguments (as wasm/assembly/parallel.ts reads them).
const flopOf = (name: string, a: readonly number[]): number => {
  if (name === "winograd_gemm") return 2 * 36 * Math.ceil(a[0] / 4) * 4 * a[1] * a[2];
  if (name === "gemm") return 2 * a[0] * a[1] * a[2];
  if (name === "winogradGemm") return 2 * 36 * Math.ceil(a[0] / 4) * 4 * a[1] * a[2];
  return 0;
};

// --by-shape: the Winograd GEMM rows split by tiles x Cp x CoPad.
const shapeOf = (name: string, a: readonly number[]) =>
  values["by-shape"] && (name === "winogradGemm" || name === "winograd_gemm") ? ` ${a[0]}x${a[1]}x${a[2]}` : "";
const core = backend.core;
// The kernels object may be the instance's (read-only) exports: wrap a copy.
const k: Record<string, unknown> = { ...(core.k as unknown as Record<string, unknown>) };
(core as unknown as { k: unknown }).k = k;
const skip = new Set(["memory", "task", "chunkCount", "chunksDone", "heapBase", "scratchBytes", "setScratch"]);
for (const name of Object.keys(k)) {
  const f = k[name];
  if (typeof f !== "function" || skip.has(name)) continue;
  k[name] = (...a: number[]) => {
    const t0 = performance.now();
    const r = (f as (...x: number[]) => unknown)(...a);
    add(`serial:${name}${shapeOf(name, a)}`, performance.now() - t0, name === "gemm" ? 2 * a[0] * a[1] * a[2] : flopOf(name, a));
    return r;
  };
}
const pool = core.pool;
if (pool) {
  const run = pool.run.bind(pool);
  pool.run = (op: number, args: readonly number[], chunks?: number) => {
    const name = opNames.get(op) ?? `op${op}`;
    const t0 = performance.now();
    run(op, args, chunks);
    add(`pool:${name}${shapeOf(name, args)}`, performance.now() - t0, flopOf(name, args));
  };
}

const s = config.input_size;
const x = new GaussianRng(2).normal([n, config.in_channels, s, s]);
const t = Array.from({ length: n }, (_, i) => 100 + i * 300), y = Array.from({ length: n }, (_, i) => i % config.num_classes);
const once = async () => {
  const xt = backend.upload(x);
  const t0 = performance.now();
  const out = graph.forward(xt, t, y);
  const d = await backend.download(out);
  const ms = performance.now() - t0;
  backend.free(out);
  backend.free(xt);
  if (!d.data.every(Number.isFinite)) throw new Error("bench/profile: the forward gave non-finite values");
  return ms;
};
await once();
on = true;
const totals: number[] = [];
for (let i = 0; i < reps; i++) totals.push(await once());
backend.close();
const total = totals.reduce((a, b) => a + b, 0) / reps;
const list = [...rows].map(([key, r]) => ({ key, calls: r.calls / reps, ms: r.ms / reps, share: r.ms / reps / total, gflops: r.flop ? r.flop / (r.ms * 1e6) : 0 }))
  .sort((a, b) => b.ms - a.ms);
const inKernels = list.reduce((a, r) => a + r.ms, 0);
if (values.json) {
  console.log(JSON.stringify({ runtime: env.runtime, version: env.version, config: values.config, threads, batch: n, totalMs: total, rows: list }));
} else {
  console.log(`bench/profile: ${values.config}, batch ${n}, ${threads} thread(s), ${env.runtime} ${env.version}, ${backend.description}; ${reps} forwards, ${total.toFixed(1)} ms each (mean)`);
  console.log("| kernel | calls | ms | share | GFLOP/s |\n| --- | --- | --- | --- | --- |");
  for (const r of list) console.log(`| ${r.key} | ${r.calls} | ${r.ms.toFixed(2)} | ${(100 * r.share).toFixed(1)}% | ${r.gflops ? r.gflops.toFixed(1) : ""} |`);
  console.log(`| outside the kernels (graph, JS, allocation) | | ${(total - inKernels).toFixed(2)} | ${(100 * (total - inKernels) / total).toFixed(1)}% | |`);
}
