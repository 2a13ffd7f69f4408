// bench/forward: DiC forward latency per backend at batch 1 and 2 — validate, then time, then a
// table (ms, GFLOP/s counting 2 x MACs of direct convolution, peak RSS and wasm memory). `--json` prints
// JSON too. PyTorch CPU eager on the same configuration and thread count in the same run.
// With --matrix (or --peers): the exported DiC-S against onnxruntime-node, onnxruntime-web and PyTorch, ours
// on Node 24, Node 20, Deno and Bun, every runner in its own process, interleaved rounds (bench/lib/forward-matrix.ts).
// TF.js has no ONNX importer, so it is a peer of bench/conv3x3 only.
// Run: node dist/bench/forward.bench.js [--backend js] [--config DiC-S] [--batch 1,2] [--reps 3] [--threads 1] [--json]
//      node dist/bench/forward.bench.js --matrix [--rounds 3] [--reps 2] [--threads 1,2] [--batch 1,2]
//        [--runtimes node24,node20,deno,bun] [--peers ort-node,ort-web,torch] [--base DIR [--base-runtimes node24,deno]] [--json]
//      (--base: another built checkout of ours, e.g. main, timed in the same rounds: before/after in one run)
import { parseArgs } from "node:util";
import { type BackendName, createBackend } from "../src/backend/registry.ts";
import { env, processArgs } from "../src/env.ts";
import { parseConfigArg, resolveConfig } from "../src/model/config.ts";
import { DiCGraph } from "../src/model/dic.ts";
import { forwardMacs, paramCount } from "../src/model/params.ts";
import { randomWeights } from "./lib/random-dic.ts";
import { GaussianRng } from "../src/rng.ts";
import { bindDiC } from "../src/model/load.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { repoRoot } from "./root.ts";
import { runMatrix } from "./lib/forward-matrix.ts";

function rssMiB(): number | null {
  const proc = (globalThis as { process?: { memoryUsage?: () => { rss: number } } }).process;
  return proc?.memoryUsage ? proc.memoryUsage().rss / 2 ** 20 : null;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const { values } = parseArgs({
  args: processArgs(),
  options: {
    backend: { type: "string", default: "js" }, config: { type: "string", default: "DiC-S" },
    batch: { type: "string", default: "1,2" }, reps: { type: "string", default: "3" }, json: { type: "boolean" },
    fixture: { type: "string", default: new URL("tests/fixtures/gen/forward_dics", repoRoot()).pathname },
    peer: { type: "string", default: "torch" }, threads: { type: "string", default: "1" },
    peers: { type: "string" }, matrix: { type: "boolean" }, rounds: { type: "string", default: "3" },
    runtimes: { type: "string", default: "node24,node20,deno,bun" }, base: { type: "string" }, "base-runtimes": { type: "string", default: "node24,deno" },
  },
});
const list = (s: string) => s.split(",").filter(Boolean);
if (values.matrix || (values.peers && list(values.peers).some((p) => p.startsWith("ort-")))) {
  // The exported DiC-S against the ONNX peers: never in this process (bench/lib/forward-matrix.ts says why).
  const args = processArgs();
  runMatrix({
    runtimes: list(values.runtimes!), peers: list(values.peers ?? "ort-node,ort-web,torch"),
    threads: list(args.includes("--threads") ? values.threads! : "1,2").map(Number), batches: list(values.batch!).map(Number),
    rounds: Number(values.rounds), reps: Number(args.includes("--reps") ? values.reps : "2"), json: Boolean(values.json),
    base: values.base, baseRuntimes: list(values["base-runtimes"]!),
  });
  (globalThis as { process?: { exit(c: number): never } }).process?.exit(0);
}
const threads = Number(values.threads);
if (values.peers && list(values.peers).includes("none")) values.peer = "none";

const { backend, reason } = await createBackend(values.backend as BackendName, { threads });
const config = resolveConfig(parseConfigArg(values.config!));
const macs = forwardMacs(config);

// 1. Validate: this backend against the PyTorch fixture when it exists (npm run fixtures).
let validation = "skipped (no fixture; run npm run fixtures)";
try {
  const w = await readSafetensorsFile(`${values.fixture}_weights.safetensors`);
  const inputs = await readSafetensorsFile(`${values.fixture}_inputs.safetensors`);
  const want = (await readSafetensorsFile(`${values.fixture}_out.safetensors`)).getF32("out");
  const { configForFile } = await import("../src/model/load.ts");
  const g = bindDiC(w, configForFile(w), backend);
  const x = backend.upload({ shape: [...inputs.tensors.get("x")!.shape], data: inputs.getF32("x") });
  const out = await backend.download(g.forward(x, Array.from(inputs.getF32("t")), Array.from(inputs.getF32("y"))));
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) { num += (out.data[i] - want[i]) ** 2; den += want[i] ** 2; }
  const err = Math.sqrt(num / den);
  if (!(err <= 1e-4)) throw new Error(`validation failed: relative L2 ${err} vs PyTorch`);
  validation = `relative L2 ${err.toExponential(2)} vs PyTorch (${values.fixture.split("/").pop()})`;
} catch (e) {
  if ((e as { code?: string }).code !== "ENOENT" && !String(e).includes("ENOENT")) throw e;
}

// 2. Time: random weights of the configuration, median of reps after one warm-up.
const weights = new Map([...randomWeights(config, 1)].map(([k, v]) => [k, backend.upload(v)]));
const graph = new DiCGraph(backend, config, weights);

const rows: Record<string, number | string | null>[] = [];
for (const n of values.batch!.split(",").map(Number)) {
  const s = config.input_size;
  const x = backend.upload(new GaussianRng(2).normal([n, config.in_channels, s, s]));
  const t = Array.from({ length: n }, (_, i) => 100 + i * 300), y = Array.from({ length: n }, (_, i) => i % config.num_classes);
  const times: number[] = [];
  for (let r = 0; r <= Number(values.reps); r++) {
    const t0 = performance.now();
    const out = graph.forward(x, t, y);
    await backend.download(out);
    backend.free(out);
    if (r > 0) times.push(performance.now() - t0);
  }
  const ms = median(times);
  const mem = (backend as { memoryStats?: () => { committedBytes: number; peakLiveBytes: number } }).memoryStats?.();
  rows.push({
    batch: n, ms: +ms.toFixed(1), gflops: +((2 * macs * n) / (ms * 1e6)).toFixed(2), peakRssMiB: rssMiB() && +rssMiB()!.toFixed(0),
    wasmMemMiB: mem ? +(mem.committedBytes / 2 ** 20).toFixed(0) : null, peakLiveMiB: mem ? +(mem.peakLiveBytes / 2 ** 20).toFixed(0) : null,
  });
  backend.free(x);
}

// 3. Peer in the same run: PyTorch CPU eager on the same configuration and thread count.
const peer = new Map<number, number>();
let peerNote = "none";
if (values.peer === "torch") {
  const root = repoRoot().pathname;
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync("/usr/bin/python3", [`${root}reference/bench_forward_torch.py`, "--config", values.config!,
    "--batch", values.batch!, "--threads", values.threads!, "--reps", values.reps!], { encoding: "utf8", env: { ...(globalThis as any).process?.env, OMP_NUM_THREADS: values.threads } });
  if (r.status === 0) {
    const j = JSON.parse(r.stdout.trim().split("\n").pop()!);
    for (const row of j.rows) peer.set(row.batch, row.ms);
    peerNote = `PyTorch ${j.torch} CPU eager, ${j.threads} thread(s)`;
  } else {
    peerNote = `PyTorch unavailable (${(r.stderr || String(r.error)).trim().split("\n").pop()})`;
  }
}
for (const r of rows) {
  const p = peer.get(r.batch as number);
  r.peerMs = p === undefined ? null : +p.toFixed(1);
  r.ratio = p === undefined ? null : +((r.ms as number) / p).toFixed(2);
}

console.log(`bench/forward: ${values.config} (${(paramCount(config) / 1e6).toFixed(2)} M params, ${(macs / 1e9).toFixed(2)} GMAC/sample)`);
console.log(`runtime ${env.runtime} ${env.version}; backend ${backend.description} [${reason}]`);
console.log(`validation: ${validation}`);
console.log(`peer: ${peerNote}`);
console.log("| batch | ms (median) | GFLOP/s | peak RSS MiB | wasm memory MiB (peak live) | torch ms | ours / torch |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  const mem = r.wasmMemMiB === null ? "n/a" : `${r.wasmMemMiB} (${r.peakLiveMiB})`;
  console.log(`| ${r.batch} | ${r.ms} | ${r.gflops} | ${r.peakRssMiB ?? "n/a"} | ${mem} | ${r.peerMs ?? "n/a"} | ${r.ratio ?? "n/a"} |`);
}
if (values.json) console.log(JSON.stringify({ bench: "forward", config: values.config, backend: backend.name, description: backend.description, threads, runtime: env.runtime, validation, peer: peerNote, rows }));
(backend as { close?: () => void }).close?.();
