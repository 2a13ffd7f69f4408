// One runner of bench/forward's matrix, in its own process: the exported DiC-S (bench/peers/models) at one
// thread count, batch 1 and 2 on the exported inputs, one warm-up then `--reps` timed forwards per batch.
// Prints one JSON line: what ran (runtime, versions, thread settings, execution provider), the times of
// every rep, and (with --outputs) the outputs, which bench/forward compares across runners.
// Runners: `ours` (the wasm backend, under whichever runtime runs this file), `ort-node` (onnxruntime-node,
// native CPU provider), `ort-web` (onnxruntime-web, WASM SIMD). The two onnxruntimes never share a process:
// onnxruntime-web registers its WASM backend as "cpu" in the shared onnxruntime-common, and a "native"
// session in that process then runs on WASM.
// Run: node dist/bench/forward-run.js --runner ours|ort-node|ort-web --threads 1 [--batch 1,2] [--reps 3] [--outputs]
//      (Deno: deno run -A bench/forward-run.ts ..., Bun: bun bench/forward-run.ts ...)
import { parseArgs } from "node:util";
import { env, processArgs } from "../src/env.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { modelsDir, peerRequire, type PeerInput, relL2 } from "./peers.ts";

const { values } = parseArgs({
  args: processArgs(),
  options: {
    runner: { type: "string", default: "ours" }, threads: { type: "string", default: "1" },
    batch: { type: "string", default: "1,2" }, reps: { type: "string", default: "3" }, outputs: { type: "boolean" },
  },
});
const threads = Number(values.threads);
const batches = values.batch!.split(",").map(Number);
const reps = Number(values.reps);
const io = await readSafetensorsFile(`${modelsDir()}dic-s_io.safetensors`);
const xShape = io.tensors.get("x")!.shape as number[];
const [xs, ts, ys, want] = [io.getF32("x"), Array.from(io.getF32("t")), Array.from(io.getF32("y")), io.getF32("out")];
const per = xs.length / xShape[0], perOut = want.length / xShape[0];
if (Math.max(...batches) > xShape[0]) throw new Error(`bench/forward-run: the exported inputs have batch ${xShape[0]}`);

type Forward = (n: number) => Promise<Float32Array>;
const info: Record<string, unknown> = { runner: values.runner, threads, runtime: env.runtime, runtimeVersion: env.version };
let forward: Forward;
let close = () => {};

if (values.runner === "ours") {
  const { createBackend } = await import("../src/backend/registry.ts");
  const { bindDiC, configForFile } = await import("../src/model/load.ts");
  const { backend } = await createBackend("wasm", { threads });
  const w = await readSafetensorsFile(`${modelsDir()}dic-s.safetensors`);
  const graph = bindDiC(w, configForFile(w), backend);
  info.description = backend.description;
  info.settings = `wasm backend, ${threads} thread(s) (caller + ${threads - 1} worker(s))`;
  forward = async (n) => {
    const x = backend.upload({ shape: [n, ...xShape.slice(1)], data: xs.subarray(0, n * per) });
    const out = graph.forward(x, ts.slice(0, n), ys.slice(0, n));
    const d = await backend.download(out);
    backend.free(out);
    backend.free(x);
    return d.data;
  };
  close = () => (backend as { close?: () => void }).close?.();
} else if (values.runner === "ort-node" || values.runner === "ort-web") {
  const r = await peerRequire();
  if (!r) throw new Error("bench/peers not installed (npm run bench:peers:install)");
  const native = values.runner === "ort-node";
  const ort = r(native ? "onnxruntime-node" : "onnxruntime-web");
  let session;
  if (native) {
    const settings = { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all", executionMode: "sequential", executionProviders: ["cpu"] };
    session = await ort.InferenceSession.create(`${modelsDir()}dic-s.onnx`, settings);
    info.settings = `intraOpNumThreads ${threads}, interOpNumThreads 1, executionMode sequential, graphOptimizationLevel all, executionProviders [cpu]`;
  } else {
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.simd = true;
    const { readFileSync } = await import("node:fs");
    session = await ort.InferenceSession.create(readFileSync(`${modelsDir()}dic-s.onnx`), { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    info.settings = `env.wasm.numThreads ${threads}, simd, executionProviders [wasm], graphOptimizationLevel all`;
  }
  // Which onnxruntime packages this process loaded, and the session handler that runs: the native one
  // is onnxruntime-node's binding; onnxruntime-web's is its WASM handler.
  const cache = Object.keys((r as unknown as { cache?: Record<string, unknown> }).cache ?? {});
  info.loaded = ["onnxruntime-node", "onnxruntime-web"].filter((p) => cache.some((k) => k.includes(`/node_modules/${p}/`)));
  info.handler = (session as { handler?: object }).handler?.constructor?.name ?? "unknown";
  const { readFileSync } = await import("node:fs");
  info.version = JSON.parse(readFileSync(`${modelsDir()}../node_modules/${native ? "onnxruntime-node" : "onnxruntime-web"}/package.json`, "utf8")).version;
  if (native && (info.loaded as string[]).includes("onnxruntime-web")) throw new Error("bench/forward-run: onnxruntime-web is loaded in the onnxruntime-node process");
  forward = async (n) => {
    const feeds: Record<string, unknown> = {};
    const inputs: Record<string, PeerInput> = {
      x: { data: xs.subarray(0, n * per), shape: [n, ...xShape.slice(1)] },
      t: { data: Float32Array.from(ts.slice(0, n)), shape: [n] },
      y: { data: BigInt64Array.from(ys.slice(0, n).map((v) => BigInt(v))), shape: [n] },
    };
    for (const [k, v] of Object.entries(inputs)) feeds[k] = new ort.Tensor(v.data instanceof BigInt64Array ? "int64" : "float32", v.data, v.shape);
    const out = await session.run(feeds);
    return out[session.outputNames[0]].data as Float32Array;
  };
  close = () => void session.release?.();
} else {
  throw new Error(`bench/forward-run: unknown runner ${values.runner}`);
}

const rows: { batch: number; times: number[]; vsPyTorch: number; out?: number[] }[] = [];
for (const n of batches) {
  const first = await forward(n); // the warm-up, and the output checked against PyTorch's
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await forward(n);
    times.push(performance.now() - t0);
  }
  rows.push({ batch: n, times, vsPyTorch: relL2(first, want.subarray(0, n * perOut)), ...(values.outputs ? { out: Array.from(first) } : {}) });
}
close();
console.log(JSON.stringify({ ...info, rows }));
