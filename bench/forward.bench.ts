// bench/forward: DiC-S forward latency per backend at batch 1 and 2 — validate, then time, then a
// table (ms, GFLOP/s counting 2 x MACs of direct convolution, peak RSS and wasm memory). `--json` prints
// JSON too. Peers in the same run, at the same thread count: PyTorch CPU eager, and with `--peers` the
// same DiC-S exported to ONNX (reference/export_peers.py) on onnxruntime-web (WASM SIMD) and
// onnxruntime-node (native); TF.js has no ONNX importer, so it is a peer of bench/conv3x3 only.
// Run: node dist/bench/forward.bench.js [--backend js] [--config DiC-S] [--batch 1,2] [--reps 3] [--threads 1]
//        [--peers torch,ort-web,ort-node] [--json]
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
import { modelsDir, ortNode, ortWeb, peerMissing, type PeerInput, type PeerRunner, relL2, timeIt } from "./peers.ts";

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
    peers: { type: "string", default: "" },
  },
});
const threads = Number(values.threads);
const onnxPeers = values.peers!.split(",").filter((p) => p === "ort-web" || p === "ort-node") as ("ort-web" | "ort-node")[];
if (values.peers!.split(",").includes("none")) values.peer = "none";

const { backend, reason } = await createBackend(values.backend as BackendName, { threads });
const config = resolveConfig(parseConfigArg(values.config!));
const macs = forwardMacs(config);

// 1. Validate: this backend against the PyTorch fixture when it exists (npm run fixtures).
// (With ONNX peers the exported DiC-S is validated instead, below: one model in memory, for the memory figures.)
let validation = onnxPeers.length ? "on the exported DiC-S (below)" : "skipped (no fixture; run npm run fixtures)";
if (!onnxPeers.length) try {
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

// 2. Time: random weights of the configuration, median of reps after one warm-up; with ONNX peers, the
// weights exported with their model (validated against PyTorch's output first, then each peer vs ours).
const peerNotes: string[] = [];
let graph: DiCGraph;
const runners = new Map<string, PeerRunner>();
if (onnxPeers.length) {
  if (values.config !== "DiC-S") throw new Error("bench/forward: --peers runs the exported DiC-S only (--config DiC-S)");
  const w = await readSafetensorsFile(`${modelsDir()}dic-s.safetensors`).catch((e) => {
    throw new Error(`bench/forward: ${(e as Error).message} — run npm run bench:peers:models`);
  });
  const io = await readSafetensorsFile(`${modelsDir()}dic-s_io.safetensors`);
  const { configForFile } = await import("../src/model/load.ts");
  graph = bindDiC(w, configForFile(w), backend);
  const [xs, ts, ys, want] = [io.getF32("x"), Array.from(io.getF32("t")), Array.from(io.getF32("y")), io.getF32("out")];
  const x = backend.upload({ shape: [...io.tensors.get("x")!.shape], data: xs });
  const mine = (await backend.download(graph.forward(x, ts, ys))).data;
  const err = relL2(mine, want);
  if (!(err <= 1e-4)) throw new Error(`bench/forward: ours vs PyTorch on the exported DiC-S: relative L2 ${err}`);
  peerNotes.push(`exported DiC-S: ours vs PyTorch ${err.toExponential(2)}`);
  const onnxPath = `${modelsDir()}dic-s.onnx`;
  for (const p of onnxPeers) {
    const missing = await peerMissing(p === "ort-web" ? "onnxruntime-web" : "onnxruntime-node");
    if (missing) {
      peerNotes.push(`${p}: missing (${missing})`);
      continue;
    }
    const { readFileSync } = await import("node:fs");
    const r = p === "ort-web" ? await ortWeb(readFileSync(onnxPath), threads) : await ortNode(onnxPath, threads);
    const out = await r.run(onnxFeeds(xs, ts, ys, io.tensors.get("x")!.shape as number[]));
    const e = relL2(out, mine);
    if (!(e <= 1e-4)) throw new Error(`bench/forward: ${p} vs ours relative L2 ${e}`);
    runners.set(p, r);
    peerNotes.push(`${p}: ${p === "ort-web" ? "onnxruntime-web" : "onnxruntime-node"} ${r.version} ${p === "ort-web" ? "WASM SIMD" : "native CPU"}, ${threads} thread(s), vs ours ${e.toExponential(2)}`);
  }
} else {
  const weights = new Map([...randomWeights(config, 1)].map(([k, v]) => [k, backend.upload(v)]));
  graph = new DiCGraph(backend, config, weights);
}

function onnxFeeds(x: Float32Array, t: number[], y: number[], shape: number[]): Record<string, PeerInput> {
  return {
    x: { data: x, shape },
    t: { data: Float32Array.from(t), shape: [t.length] },
    y: { data: BigInt64Array.from(y.map((v) => BigInt(v))), shape: [y.length] },
  };
}
const peerMs = new Map<string, number>(); // "peer/batch" -> ms
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
  const xh = new GaussianRng(2).normal([n, config.in_channels, s, s]);
  for (const [p, r] of runners) peerMs.set(`${p}/${n}`, await timeIt(Number(values.reps), () => r.run(onnxFeeds(xh.data, t, y, xh.shape))));
  backend.free(x);
}
for (const r of runners.values()) r.close?.();

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
  for (const q of runners.keys()) {
    const v = peerMs.get(`${q}/${r.batch}`);
    r[`${q}Ms`] = v === undefined ? null : +v.toFixed(1);
    r[`${q}Ratio`] = v === undefined ? null : +((r.ms as number) / v).toFixed(2);
  }
}

console.log(`bench/forward: ${values.config} (${(paramCount(config) / 1e6).toFixed(2)} M params, ${(macs / 1e9).toFixed(2)} GMAC/sample)`);
console.log(`runtime ${env.runtime} ${env.version}; backend ${backend.description} [${reason}]`);
console.log(`validation: ${validation}`);
for (const n of peerNotes) console.log(n);
console.log(`peer: ${peerNote}`);
const extra = [...runners.keys()];
console.log(`| batch | ms (median) | GFLOP/s | peak RSS MiB | wasm memory MiB (peak live) | torch ms | ours / torch |${extra.map((q) => ` ${q} ms | ours / ${q} |`).join("")}`);
console.log(`| --- | --- | --- | --- | --- | --- | --- |${extra.map(() => " --- | --- |").join("")}`);
for (const r of rows) {
  const mem = r.wasmMemMiB === null ? "n/a" : `${r.wasmMemMiB} (${r.peakLiveMiB})`;
  console.log(`| ${r.batch} | ${r.ms} | ${r.gflops} | ${r.peakRssMiB ?? "n/a"} | ${mem} | ${r.peerMs ?? "n/a"} | ${r.ratio ?? "n/a"} |${extra.map((q) => ` ${r[`${q}Ms`] ?? "n/a"} | ${r[`${q}Ratio`] ?? "n/a"} |`).join("")}`);
}
if (values.json) console.log(JSON.stringify({ bench: "forward", config: values.config, backend: backend.name, description: backend.description, threads, runtime: env.runtime, validation, peer: peerNote, peers: peerNotes, rows }));
(backend as { close?: () => void }).close?.();
