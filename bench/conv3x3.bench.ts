// bench/conv3x3: the DiC conv3x3 layer shapes (C -> C channels, stride 1, pad 1, bias) at batch 1 and 2 on
// the wasm backend vs onnxruntime-web (WASM SIMD, same thread count), TensorFlow.js WASM (XNNPACK),
// onnxruntime-node (native) and PyTorch CPU, all in this run and at one thread count. Validates first: ours
// vs PyTorch's stored output, then every peer vs ours; then times (median) and prints ms, GFLOP/s (2 x
// direct-conv MACs) and our time ratio to each peer. `--json` adds one JSON line.
// onnxruntime-node runs in a child process of its own (this script with --ort-node-child; see bench/peers.ts
// ortNode for why it never shares a process with onnxruntime-web), validated there against PyTorch's output.
// Setup: npm run bench:peers:install && npm run bench:peers:models (see bench/README.md).
// Run: node dist/bench/conv3x3.bench.js [--threads 1] [--batch 1,2] [--reps 5] [--shapes 96x32,384x8] [--peers ort-web,tfjs,ort-node,torch] [--json]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createWasmBackend } from "../src/backend/wasm/index.ts";
import { env, processArgs } from "../src/env.ts";
import { GaussianRng } from "../src/rng.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { modelsDir, ortNode, ortWeb, peerMissing, type PeerRunner, relL2, tfjsWasm, timeIt, torchPeer } from "./peers.ts";

const ALL_SHAPES = ["96x32", "192x16", "384x8", "384x32", "768x16", "1536x8"];
const { values } = parseArgs({
  args: processArgs(),
  options: {
    threads: { type: "string", default: "1" }, batch: { type: "string", default: "1,2" }, reps: { type: "string", default: "5" },
    shapes: { type: "string", default: ALL_SHAPES.join(",") }, peers: { type: "string", default: "ort-web,tfjs,ort-node,torch" },
    json: { type: "boolean" }, "ort-node-child": { type: "boolean" },
  },
});
const threads = Number(values.threads), reps = Number(values.reps);
const batches = values.batch!.split(",").map(Number);
const VALIDATE = 1e-4;

if (values["ort-node-child"]) {
  // The child: onnxruntime-node alone in this process; times every shape and batch, checks it against
  // PyTorch's stored output (batch <= 2), prints one JSON line.
  const out: Record<string, { ms: number; err: number | null }> = {};
  let version = "";
  for (const shape of values.shapes!.split(",")) {
    const [c, h] = shape.split("x").map(Number);
    const file = await readSafetensorsFile(`${modelsDir()}conv_${shape}.safetensors`);
    const [x2, want] = [file.getF32("x"), file.getF32("out")];
    const r = await ortNode(`${modelsDir()}conv_${shape}.onnx`, threads);
    version = r.version;
    const rng = new GaussianRng(5);
    for (const n of batches) {
      const xs = n === 2 ? x2 : n === 1 ? x2.subarray(0, c * h * h) : rng.normal([n, c, h, h]).data;
      const feed = { x: { data: xs, shape: [n, c, h, h] } };
      const y = await r.run(feed);
      const err = n <= 2 ? relL2(y, want.subarray(0, y.length)) : null;
      if (err !== null && !(err <= VALIDATE)) throw new Error(`bench/conv3x3: ${shape} batch ${n}: ort-node vs PyTorch relative L2 ${err}`);
      out[`${shape}/${n}`] = { ms: await timeIt(reps, () => r.run(feed)), err };
    }
    r.close?.();
  }
  console.log(JSON.stringify({ version, rows: out }));
  (globalThis as { process?: { exit(c: number): never } }).process?.exit(0);
}
const wanted = new Set(values.peers!.split(",").filter(Boolean));
const PEERS = ["ort-web", "tfjs", "ort-node", "torch"] as const;

const ours = await createWasmBackend({ threads });
const notes: Record<string, string> = {};
const missing: Record<string, string> = {};
for (const p of PEERS) {
  if (!wanted.has(p)) missing[p] = "not requested";
  else if (p !== "torch") {
    const why = await peerMissing(p === "ort-web" ? "onnxruntime-web" : p === "ort-node" ? "onnxruntime-node" : "@tensorflow/tfjs-backend-wasm");
    if (why) missing[p] = why;
  }
}

// onnxruntime-node first, in its own process (see --ort-node-child above).
const nodeMs = new Map<string, { ms: number; err: number | null }>();
if (!missing["ort-node"]) {
  const { spawnSync } = await import("node:child_process");
  const proc = (globalThis as unknown as { process: { execPath: string; argv: string[] } }).process;
  const r = spawnSync(proc.execPath, [proc.argv[1], "--ort-node-child", "--threads", String(threads), "--batch", values.batch!, "--reps", String(reps), "--shapes", values.shapes!], { encoding: "utf8", maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`bench/conv3x3: the onnxruntime-node process failed: ${(r.stderr || String(r.error)).trim().split("\n").slice(-3).join(" | ")}`);
  const j = JSON.parse(r.stdout.trim().split("\n").pop()!);
  for (const [k, v] of Object.entries(j.rows)) nodeMs.set(k, v as { ms: number; err: number | null });
  notes["ort-node"] = `onnxruntime-node ${j.version} native CPU (its own process, validated against PyTorch's output), ${threads} thread(s)`;
}

// PyTorch (its own process): timings of every shape and batch at this thread count.
const torchMs = new Map<string, number>();
if (!missing.torch) {
  const r = await torchPeer(["time", "--what", "conv", "--batch", values.batch!, "--threads", String(threads), "--reps", String(reps)], threads);
  if (r.ok) {
    for (const row of r.json.rows) torchMs.set(`${row.channels}x${row.size}/${row.batch}`, row.ms);
    notes.torch = `PyTorch ${r.json.torch} CPU eager, ${r.json.threads} thread(s)`;
  } else missing.torch = `PyTorch unavailable: ${r.why}`;
}

type Row = { shape: string; batch: number; gflop: number; ms: Record<string, number | null>; err: Record<string, number | null> };
const rows: Row[] = [];
const rng = new GaussianRng(5);
for (const shape of values.shapes!.split(",")) {
  const [c, h] = shape.split("x").map(Number);
  const file = await readSafetensorsFile(`${modelsDir()}conv_${shape}.safetensors`).catch((e) => {
    throw new Error(`bench/conv3x3: ${(e as Error).message} — run npm run bench:peers:models`);
  });
  const [weight, bias, x2, want] = ["weight", "bias", "x", "out"].map((k) => file.getF32(k));
  const w = ours.upload({ shape: [c, c, 3, 3], data: weight }, "conv3x3.weight");
  const b = ours.upload({ shape: [c], data: bias });
  const onnx = readFileSync(`${modelsDir()}conv_${shape}.onnx`);
  const runners: Partial<Record<(typeof PEERS)[number], PeerRunner>> = {};
  if (!missing["ort-web"]) {
    const r = await ortWeb(onnx, threads);
    runners["ort-web"] = r;
    notes["ort-web"] = `onnxruntime-web ${r.version} WASM SIMD, ${threads} thread(s)`;
  }
  let tfConv: ((x: Float32Array, n: number) => Float32Array) | null = null;
  if (!missing.tfjs) {
    const tf = await tfjsWasm();
    notes.tfjs = `TensorFlow.js ${tf.version_core} WASM backend (XNNPACK), 1 thread (TF.js WASM runs single-threaded in Node)`;
    // HWIO filter from OIHW; NHWC in and out (transposes outside the timed call).
    const hwio = new Float32Array(9 * c * c);
    for (let o = 0; o < c; o++) for (let i = 0; i < c; i++) for (let k = 0; k < 9; k++) hwio[(k * c + i) * c + o] = weight[(o * c + i) * 9 + k];
    const filter = tf.tensor4d(hwio, [3, 3, c, c]), tb = tf.tensor1d(bias);
    tfConv = (x, n) => {
      const xt = tf.tensor4d(x, [n, h, h, c]);
      const y = tf.fused.conv2d({ x: xt, filter, strides: 1, pad: "same", bias: tb });
      const out = y.dataSync() as Float32Array;
      xt.dispose();
      y.dispose();
      return out;
    };
  }
  const nchwToNhwc = (a: Float32Array, n: number) => {
    const o = new Float32Array(a.length);
    for (let b0 = 0; b0 < n; b0++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * h; p++) o[(b0 * h * h + p) * c + ch] = a[(b0 * c + ch) * h * h + p];
    return o;
  };
  for (const n of batches) {
    const xs = n === 2 ? x2 : n === 1 ? x2.subarray(0, c * h * h) : rng.normal([n, c, h, h]).data;
    const xt = ours.upload({ shape: [n, c, h, h], data: xs });
    const runOurs = async () => {
      const y = ours.conv3x3(xt, w, b);
      const d = await ours.download(y);
      ours.free(y);
      return d.data;
    };
    const mine = await runOurs();
    const err: Row["err"] = {};
    if (n <= 2) {
      err.ours = relL2(mine, want.subarray(0, mine.length));
      if (!(err.ours <= VALIDATE)) throw new Error(`bench/conv3x3: ${shape} batch ${n}: ours vs PyTorch relative L2 ${err.ours}`);
    }
    const ms: Row["ms"] = { ours: await timeIt(reps, runOurs) };
    const feed = { x: { data: xs, shape: [n, c, h, h] } };
    const nat = nodeMs.get(`${shape}/${n}`);
    if (nat) {
      ms["ort-node"] = nat.ms;
      err["ort-node"] = nat.err;
    }
    for (const p of ["ort-web"] as const) {
      const r = runners[p];
      if (!r) continue;
      err[p] = relL2(await r.run(feed), mine);
      if (!(err[p]! <= VALIDATE)) throw new Error(`bench/conv3x3: ${shape} batch ${n}: ${p} vs ours relative L2 ${err[p]}`);
      ms[p] = await timeIt(reps, () => r.run(feed));
    }
    if (tfConv) {
      const xn = nchwToNhwc(xs, n);
      err.tfjs = relL2(tfConv(xn, n), nchwToNhwc(mine, n));
      if (!(err.tfjs <= VALIDATE)) throw new Error(`bench/conv3x3: ${shape} batch ${n}: tfjs vs ours relative L2 ${err.tfjs}`);
      ms.tfjs = await timeIt(reps, () => tfConv!(xn, n));
    }
    ms.torch = torchMs.get(`${shape}/${n}`) ?? null;
    ours.free(xt);
    rows.push({ shape, batch: n, gflop: (2 * n * h * h * c * c * 9) / 1e9, ms, err });
  }
  for (const r of Object.values(runners)) r.close?.();
  ours.free(w);
  ours.free(b);
}
ours.close();

const fmt = (v: number | null | undefined, d = 2) => (v === null || v === undefined ? "n/a" : v.toFixed(d));
console.log(`bench/conv3x3: runtime ${env.runtime} ${env.version}; ${threads} thread(s); median of ${reps}`);
console.log(`ours: ${ours.description}`);
for (const p of PEERS) console.log(`${p}: ${missing[p] ? `missing (${missing[p]})` : notes[p] ?? "(no shape ran)"}`);
const worst = (p: string) => {
  const v = rows.map((r) => r.err[p]).filter((e): e is number => typeof e === "number");
  return v.length ? Math.max(...v).toExponential(2) : "n/a";
};
console.log(`validation (relative L2, worst over shapes; limit ${VALIDATE}): ours vs PyTorch's output ${worst("ours")}; ${PEERS.filter((p) => p !== "torch").map((p) => `${p} vs ${p === "ort-node" ? "PyTorch" : "ours"} ${worst(p)}`).join(", ")}`);
const cols = ["ours", ...PEERS] as const;
console.log(`| shape | batch | GFLOP | ${cols.map((p) => `${p} ms (GFLOP/s)`).join(" | ")} | ${PEERS.map((p) => `ours/${p}`).join(" | ")} |`);
console.log(`| --- | --- | --- | ${cols.map(() => "---").join(" | ")} | ${PEERS.map(() => "---").join(" | ")} |`);
for (const r of rows) {
  const cell = (p: string) => (r.ms[p] == null ? "n/a" : `${fmt(r.ms[p])} (${fmt(r.gflop / (r.ms[p]! / 1e3), 1)})`);
  const ratio = (p: string) => (r.ms[p] == null ? "n/a" : `${fmt(r.ms.ours! / r.ms[p]!)}`);
  console.log(`| ${r.shape.replace("x", "@")}x${r.shape.split("x")[1]} | ${r.batch} | ${fmt(r.gflop, 3)} | ${cols.map(cell).join(" | ")} | ${PEERS.map(ratio).join(" | ")} |`);
}
console.log("ours/peer: our time over the peer's (below 1: we are faster).");
if (values.json) console.log(JSON.stringify({ bench: "conv3x3", runtime: env.runtime, threads, backend: ours.description, peers: { ...notes, ...Object.fromEntries(Object.entries(missing).map(([k, v]) => [k, `missing: ${v}`])) }, rows }));
