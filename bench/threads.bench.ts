// bench/threads: thread scaling of the wasm backend on a whole DiC forward. One backend per thread count
// in one process, the same random weights; validates that every thread count gives the single-thread
// output (relative L2 <= 1e-6), then times them interleaved (1, 2, 1, 2, ...) so that a load that drifts
// during the run hits every count alike; prints median ms, GFLOP/s and the speed-up over 1 thread.
// Run: node dist/bench/threads.bench.js [--config DiC-S] [--threads 1,2] [--batch 1,2] [--reps 5] [--json]
import { parseArgs } from "node:util";
import { createWasmBackend, type WasmBackend } from "../src/backend/wasm/index.ts";
import { env, processArgs } from "../src/env.ts";
import { parseConfigArg, resolveConfig } from "../src/model/config.ts";
import { DiCGraph } from "../src/model/dic.ts";
import { roleOf } from "../src/model/load.ts";
import { forwardMacs } from "../src/model/params.ts";
import { randomWeights } from "./lib/random-dic.ts";
import { GaussianRng } from "../src/rng.ts";
import { median, relL2 } from "./peers.ts";

const { values } = parseArgs({
  args: processArgs(),
  options: {
    config: { type: "string", default: "DiC-S" }, threads: { type: "string", default: "1,2" },
    batch: { type: "string", default: "1,2" }, reps: { type: "string", default: "5" }, json: { type: "boolean" },
  },
});
const config = resolveConfig(parseConfigArg(values.config!));
const macs = forwardMacs(config);
const counts = values.threads!.split(",").map(Number);
const host = randomWeights(config, 1);
const runs: { threads: number; backend: WasmBackend; graph: DiCGraph }[] = [];
for (const threads of counts) {
  const backend = await createWasmBackend({ threads });
  runs.push({ threads, backend, graph: new DiCGraph(backend, config, new Map([...host].map(([k, v]) => [k, backend.upload(v, roleOf(k, v.shape.length))]))) });
}

const rows: { batch: number; threads: number; ms: number; gflops: number; speedup: number; err: number }[] = [];
for (const n of values.batch!.split(",").map(Number)) {
  const s = config.input_size;
  const x = new GaussianRng(2).normal([n, config.in_channels, s, s]);
  const t = Array.from({ length: n }, (_, i) => 100 + i * 300), y = Array.from({ length: n }, (_, i) => i % config.num_classes);
  const once = async (r: (typeof runs)[number]) => {
    const xt = r.backend.upload(x);
    const out = r.graph.forward(xt, t, y);
    const d = await r.backend.download(out);
    r.backend.free(out);
    r.backend.free(xt);
    return d.data;
  };
  const outs: Float32Array[] = [];
  for (const r of runs) outs.push(await once(r)); // validation, and the warm-up of every count
  const errs = outs.map((o) => relL2(o, outs[0]));
  if (!errs.every((e) => e <= 1e-6)) throw new Error(`bench/threads: thread counts disagree: ${errs.join(", ")}`);
  const times = runs.map(() => [] as number[]);
  for (let rep = 0; rep < Number(values.reps); rep++) {
    for (let i = 0; i < runs.length; i++) {
      const t0 = performance.now();
      await once(runs[i]);
      times[i].push(performance.now() - t0);
    }
  }
  const base = median(times[0]);
  runs.forEach((r, i) => {
    const ms = median(times[i]);
    rows.push({ batch: n, threads: r.threads, ms: +ms.toFixed(1), gflops: +((2 * macs * n) / (ms * 1e6)).toFixed(2), speedup: +(base / ms).toFixed(2), err: errs[i] });
  });
}
for (const r of runs) r.backend.close();

console.log(`bench/threads: ${values.config}, runtime ${env.runtime} ${env.version}; ${runs.at(-1)!.backend.description}`);
console.log(`validation: every thread count vs ${counts[0]} thread(s), relative L2 <= 1e-6 (worst ${Math.max(...rows.map((r) => r.err)).toExponential(2)}); timed interleaved, median of ${values.reps}`);
console.log("| batch | threads | ms (median) | GFLOP/s | speed-up vs first |\n| --- | --- | --- | --- | --- |");
for (const r of rows) console.log(`| ${r.batch} | ${r.threads} | ${r.ms} | ${r.gflops} | ${r.speedup} |`);
if (values.json) console.log(JSON.stringify({ bench: "threads", config: values.config, runtime: env.runtime, rows }));
