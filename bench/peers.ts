// The peers of bench/conv3x3 and bench/forward: onnxruntime-web (WASM SIMD), TensorFlow.js with its WASM
// backend, onnxruntime-node (native) and PyTorch CPU (reference/export_peers.py). The npm peers live in
// bench/peers (npm run bench:peers:install; not part of npm ci), the ONNX models and their weights in
// bench/peers/models (npm run bench:peers:models). Node only: the peers are Node packages.
import { repoRoot } from "./root.ts";

/** A peer that can run one model at one thread count. */
export interface PeerRunner {
  /** Runs the model on inputs (name -> {data, shape, int64?}); returns the first output (NCHW f32). */
  run(inputs: Record<string, PeerInput>): Promise<Float32Array>;
  close?(): void;
}
export interface PeerInput {
  data: Float32Array | BigInt64Array;
  shape: number[];
}

type Req = ((id: string) => any) & { resolve(id: string): string }; // eslint-disable-line @typescript-eslint/no-explicit-any

let req: Req | null | undefined;
/** require() rooted at bench/peers, or null when the peers are not installed. */
export async function peerRequire(): Promise<Req | null> {
  if (req !== undefined) return req;
  const { createRequire } = await import("node:module");
  const { existsSync } = await import("node:fs");
  const dir = new URL("bench/peers/", repoRoot()).pathname;
  req = existsSync(dir + "node_modules") ? createRequire(dir + "package.json") : null;
  return req;
}

/** Directory of the exported peer models (bench/peers/models). */
export function modelsDir(): string {
  return new URL("bench/peers/models/", repoRoot()).pathname;
}

/** Why a peer cannot run, or null. */
export async function peerMissing(name: string): Promise<string | null> {
  const r = await peerRequire();
  if (!r) return "bench/peers not installed (npm run bench:peers:install)";
  try {
    r.resolve(name);
    return null;
  } catch {
    return `${name} not installed in bench/peers (npm run bench:peers:install)`;
  }
}

let ortWebThreads: number | null = null;
/** onnxruntime-web (WASM, SIMD; numThreads is fixed per process at its first session). */
export async function ortWeb(model: Uint8Array, threads: number): Promise<PeerRunner & { version: string }> {
  const r = (await peerRequire())!;
  if (loaded(r, "onnxruntime-node")) throw new Error("bench/peers: onnxruntime-web asked for in a process that loaded onnxruntime-node (run each in its own process)");
  const ort = r("onnxruntime-web");
  if (ortWebThreads === null) {
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.simd = true;
    ortWebThreads = threads;
  } else if (ortWebThreads !== threads) {
    throw new Error(`onnxruntime-web already runs with ${ortWebThreads} threads in this process`);
  }
  const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  return ortRunner(ort, session, ort.env.versions?.web ?? "");
}

/** Whether this process has loaded the npm package `name` from bench/peers. */
function loaded(r: Req, name: string): boolean {
  const cache = (r as unknown as { cache?: Record<string, unknown> }).cache ?? {};
  return Object.keys(cache).some((k) => k.includes(`/node_modules/${name}/`));
}

/**
 * onnxruntime-node (its native CPU execution provider). Only in a process that has not loaded
 * onnxruntime-web (and ortWeb refuses once this ran): onnxruntime-web registers its WASM backend under the
 * name "cpu" in the shared onnxruntime-common, and a "native" session in that process ran on WASM
 * (measured: the same speed and output bits as onnxruntime-web), which made earlier native figures 2x slow.
 * bench/forward and bench/conv3x3 run onnxruntime-node in a process of its own.
 */
export async function ortNode(modelPath: string, threads: number): Promise<PeerRunner & { version: string }> {
  const r = (await peerRequire())!;
  if (loaded(r, "onnxruntime-web")) throw new Error("bench/peers: onnxruntime-node asked for in a process that loaded onnxruntime-web (run it in its own process)");
  const ort = r("onnxruntime-node");
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all", executionMode: "sequential", executionProviders: ["cpu"],
  });
  return ortRunner(ort, session, ort.env.versions?.node ?? "");
}

/** The thread settings ortNode uses, for the logs. */
export const ORT_NODE_SETTINGS = "intraOpNumThreads T, interOpNumThreads 1, executionMode sequential, graphOptimizationLevel all, executionProviders [cpu]";

function ortRunner(ort: any, session: any, version: string): PeerRunner & { version: string } { // eslint-disable-line @typescript-eslint/no-explicit-any
  return {
    version,
    async run(inputs) {
      const feeds: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(inputs)) feeds[k] = new ort.Tensor(v.data instanceof BigInt64Array ? "int64" : "float32", v.data, v.shape);
      const out = await session.run(feeds);
      return out[session.outputNames[0]].data as Float32Array;
    },
    close: () => void session.release?.(),
  };
}

let tfReady: any = null; // eslint-disable-line @typescript-eslint/no-explicit-any
/** TensorFlow.js core with the WASM backend (XNNPACK; single-threaded in Node). */
export async function tfjsWasm(): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (tfReady) return tfReady;
  const r = (await peerRequire())!;
  const tf = r("@tensorflow/tfjs-core");
  r("@tensorflow/tfjs-backend-wasm");
  const silent = console.warn;
  console.warn = () => {};
  try {
    await tf.setBackend("wasm");
    await tf.ready();
  } finally {
    console.warn = silent;
  }
  tfReady = tf;
  return tf;
}

/** Runs reference/export_peers.py (system python3 with torch); its last stdout line parsed as JSON. */
export async function torchPeer(args: string[], threads: number): Promise<{ ok: true; json: any } | { ok: false; why: string }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync("/usr/bin/python3", [new URL("reference/export_peers.py", repoRoot()).pathname, ...args], {
    encoding: "utf8", maxBuffer: 1 << 26,
    env: { ...(globalThis as any).process?.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) }, // eslint-disable-line @typescript-eslint/no-explicit-any
  });
  if (r.status !== 0) return { ok: false, why: (r.stderr || String(r.error)).trim().split("\n").pop() ?? "failed" };
  return { ok: true, json: JSON.parse(r.stdout.trim().split("\n").pop()!) };
}

/** Median of a list. */
export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median wall time (ms) of `reps` calls after one warm-up. */
export async function timeIt(reps: number, fn: () => unknown): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r <= reps; r++) {
    const t0 = performance.now();
    await fn();
    if (r > 0) times.push(performance.now() - t0);
  }
  return median(times);
}

/** Relative L2 of a vs b in f64. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / (den || 1e-300));
}
