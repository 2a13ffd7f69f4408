// bench/stream: the latent streaming protocol (docs/protocol.md) — validate a remote generation
// against a local one, then (1) bytes per step and per image for each cut point and dtype at DiC-S
// and DiC-XL shapes, (2) codec encode/decode MB/s, (3) unet step latency p50/p99 on loopback with 1,
// 16 and 64 concurrent sessions against a `dic serve --role host` process, with the peak RSS of the edge
// (this process) and of the host after each. `--json` prints JSON too.
// Run: node dist/bench/stream.bench.js [--steps 50] [--sessions 1,16,64] [--session-steps 8] [--json]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { BackendName } from "../src/backend/registry.ts";
import { env, processArgs } from "../src/env.ts";
import { outChannels, PRESETS, resolveConfig, type DiCConfig } from "../src/model/config.ts";
import { importSecret, signFrames } from "../src/protocol/auth.ts";
import { crc32 } from "../src/crc32.ts";
import { runEdgeGeneration } from "../src/protocol/edge.ts";
import { decodeFrame, encodeFrame, type Frame, PROTOCOL_VERSION, SUPPORTED_VERSIONS } from "../src/protocol/frames.ts";
import { helloConfig, unetCutShapes } from "../src/protocol/session.ts";
import { decodeTensor, encodeTensor, type WireDtype } from "../src/protocol/tensor-codec.ts";
import { UpstreamPool } from "../src/protocol/upstream.ts";
import { runSampler } from "../src/pipeline.ts";
import { loadServingModel } from "../sdk/serve.ts";
import { repoRoot } from "./root.ts";

const { values } = parseArgs({
  args: processArgs(),
  options: {
    steps: { type: "string", default: "50" }, sessions: { type: "string", default: "1,16,64" },
    "session-steps": { type: "string", default: "8" }, json: { type: "boolean" }, backend: { type: "string", default: "wasm" },
  },
});
const STEPS = Number(values.steps);
const SECRET = "bench-shared-secret-0123456789";
const root = repoRoot().pathname;

const zeros = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
const session = "s-bench-000000000000000000";
const gen = { labels: [1], steps: STEPS, sampler: "ddim", eta: 0, cfg_scale: 1.5, cfg_mode: "standard", seed: 1 };
const hdr = { v: PROTOCOL_VERSION, session, seq: 1 };

function hello(cfg: DiCConfig, cut: "unet" | "handoff" | "vae", dtype: WireDtype): Frame {
  return { ...hdr, type: "hello", versions: [...SUPPORTED_VERSIONS], cut, dtype, model: { config: helloConfig(cfg), weights_sha256: new Uint8Array(32) }, generation: gen };
}

/** Bytes on the wire (auth + hello + work, and the answer) for one image with guidance (2 rows). */
async function wireBytes(cfg: DiCConfig, dtype: WireDtype) {
  const key = await importSecret(SECRET);
  const rows = 2, n = 1, S = cfg.input_size;
  const sh = unetCutShapes(cfg);
  const x = [n, cfg.in_channels, S, S];
  const stepReq = (await signFrames(key, [hello(cfg, "unet", dtype), {
    ...hdr, type: "step", step: 0, t: [999, 999], y: [1, 1000],
    bottleneck: encodeTensor(zeros([rows, ...sh.bottleneck]), dtype), skips: sh.skips.map((s) => encodeTensor(zeros([rows, ...s]), dtype)),
  }], { audience: "bench-host" })).length;
  const stepRes = encodeFrame({ ...hdr, type: "step_result", step: 0, out: encodeTensor(zeros([rows, outChannels(cfg), S, S]), dtype) }).length;
  // handoff state always travels as f32 (x and, for dpmpp2m, its saved x0 prediction); previews without x.
  const handoffReq = (await signFrames(key, [hello(cfg, "handoff", dtype), {
    ...hdr, type: "handoff", preview_every: 0,
    state: { x: encodeTensor(zeros(x)), next_step: STEPS / 2, rng: null, sampler_state: new Uint8Array(4 + 4 * x.reduce((a, b) => a * b, 1)) },
  }], { audience: "bench-host" })).length;
  const preview = encodeFrame({ ...hdr, type: "preview", step: 1, total_steps: STEPS, t: 500, x: null }).length;
  const handoffRes = encodeFrame({ ...hdr, type: "final", x: encodeTensor(zeros(x), dtype), image: null, pixel_range: null }).length + (STEPS / 2) * preview;
  const vaeReq = (await signFrames(key, [hello(cfg, "vae", dtype), { ...hdr, type: "latent", x: encodeTensor(zeros(x), dtype) }], { audience: "bench-host" })).length;
  // The VAE of the official models (SD-VAE, factor 8) returns 3 x 8S x 8S pixels.
  const vaeRes = encodeFrame({ ...hdr, type: "final", x: null, image: encodeTensor(zeros([n, 3, 8 * S, 8 * S]), dtype), pixel_range: [-1, 1] }).length;
  return {
    unetStep: stepReq + stepRes, unetStepUp: stepReq, unetStepDown: stepRes, unetImage: STEPS * (stepReq + stepRes),
    handoffImage: handoffReq + handoffRes, vaeImage: vaeReq + vaeRes,
  };
}

const MiB = 2 ** 20;

/** Peak resident memory (VmHWM) of a process in MiB, from /proc (Linux); null where that is not readable. */
function peakRssMiB(pid: number | "self"): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}
const fmt = (b: number) => (b >= MiB ? `${(b / MiB).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`);

// 0. Validate: a unet generation through a host process equals the local loop.
const served = await loadServingModel(undefined, values.backend as BackendName);
const exe = env.runtime === "node" ? [process.execPath, `${root}dist/sdk/bin.js`] : env.runtime === "bun" ? [process.execPath, `${root}sdk/bin.ts`] : [(globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath(), "run", "-A", `${root}sdk/bin.ts`];
const { writeFileSync, mkdtempSync } = await import("node:fs");
const tmp = mkdtempSync(`${(await import("node:os")).tmpdir()}/dic-stream-bench-`);
writeFileSync(`${tmp}/secret`, SECRET);
const host = spawn(exe[0], [...exe.slice(1), "serve", "--role", "host", "--port", "0", "--secret-file", `${tmp}/secret`, "--backend", values.backend!, "--quiet"], { stdio: ["ignore", "ignore", "pipe"] });
const hostUrl: string = await new Promise((resolve, reject) => {
  let buf = "";
  host.stderr!.on("data", (d) => {
    buf += d;
    const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(buf);
    if (m) resolve(m[1]);
  });
  host.on("exit", (c) => reject(new Error(`host exited ${c}: ${buf}`)));
});
try {
  const pool = new UpstreamPool({ urls: [hostUrl], key: await importSecret(SECRET) });
  const cfg = served.model.config;
  const settings = { labels: [7], steps: 4, sampler: "ddim", eta: 0, cfg_scale: 2, cfg_mode: "standard", seed: 1 };
  const sm = { graph: served.model.graph, weightsSha256: served.weightsSha256, pixelRange: served.model.pixelRange };
  const remote = await runEdgeGeneration(sm, pool, { session: "s-validate", cut: "unet", settings });
  const local = await runSampler({
    model: (x, t, y) => served.model.forward(x, t, y), learnSigma: cfg.learn_sigma, numClasses: cfg.num_classes, labels: [7],
    shape: [cfg.in_channels, cfg.input_size, cfg.input_size], steps: 4, sampler: "ddim", cfgScale: 2, seed: 1,
  });
  let diff = 0;
  for (let i = 0; i < local.x.data.length; i++) diff = Math.max(diff, Math.abs(local.x.data[i] - remote.x!.data[i]));
  if (diff !== 0) throw new Error(`validation failed: remote unet generation differs from the local loop by ${diff}`);
  const validation = "remote unet generation == local loop (bit for bit, same runtime and backend)";

  // 1. Bytes.
  const bytes: Record<string, unknown>[] = [];
  for (const preset of ["DiC-S", "DiC-XL"] as const) {
    const c = resolveConfig({ ...PRESETS[preset], preset });
    for (const dtype of ["f32", "f16"] as const) bytes.push({ model: preset, dtype, ...(await wireBytes(c, dtype)) });
  }

  // 2. Codec throughput on a DiC-XL unet step (2 rows): encode = tensors + frame; decode = frame + tensors.
  const xl = resolveConfig({ preset: "DiC-XL" });
  const sh = unetCutShapes(xl);
  const rnd = (shape: number[]) => {
    const t = zeros(shape);
    for (let i = 0; i < t.data.length; i++) t.data[i] = Math.sin(i * 0.001);
    return t;
  };
  const tensors = [rnd([2, ...sh.bottleneck]), ...sh.skips.map((s) => rnd([2, ...s]))];
  const codec: Record<string, unknown>[] = [];
  for (const dtype of ["f32", "f16"] as const) {
    const reps = dtype === "f32" ? 5 : 3;
    let wire = new Uint8Array(0);
    const te: number[] = [], td: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      const enc = tensors.map((t) => encodeTensor(t, dtype));
      wire = encodeFrame({ ...hdr, type: "step", step: 0, t: [999, 999], y: [1, 1000], bottleneck: enc[0], skips: enc.slice(1) });
      const t1 = performance.now();
      const f = decodeFrame(wire.subarray(4));
      if (f.type !== "step") throw new Error("unreachable");
      [f.bottleneck, ...f.skips].forEach((w, i) => decodeTensor(w, tensors[i].shape, "t"));
      td.push(performance.now() - t1);
      te.push(t1 - t0);
    }
    const raw = tensors.reduce((a, t) => a + t.data.length * 4, 0);
    const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
    codec.push({ dtype, frameMiB: wire.length / MiB, encodeMBs: raw / 1e6 / (med(te) / 1000), decodeMBs: raw / 1e6 / (med(td) / 1000) });
  }
  const crcBuf = new Uint8Array(64 * MiB).map((_, i) => i * 31);
  const c0 = performance.now();
  crc32(crcBuf);
  const crcMBs = crcBuf.length / 1e6 / ((performance.now() - c0) / 1000);

  // 3. Latency: concurrent unet sessions of the default model against the host process.
  const latency: Record<string, unknown>[] = [];
  const sessionSteps = Number(values["session-steps"]);
  // Warm-up: both processes compile their hot paths before anything is timed.
  await runEdgeGeneration(sm, pool, { session: "s-warmup", cut: "unet", settings: { ...settings, steps: sessionSteps } });
  for (const n of values.sessions!.split(",").map(Number)) {
    const t0 = performance.now();
    const runs = await Promise.all(Array.from({ length: n }, (_, i) => runEdgeGeneration(sm, pool, {
      session: `s-lat-${n}-${i}`, cut: "unet", settings: { ...settings, labels: [i % 10], steps: sessionSteps, seed: i },
    })));
    const wall = performance.now() - t0;
    const all = runs.flatMap((r) => r.remoteMs).sort((a, b) => a - b);
    const q = (p: number) => all[Math.min(all.length - 1, Math.floor(p * all.length))];
    latency.push({ sessions: n, steps: all.length, p50: q(0.5), p99: q(0.99), stepsPerSec: all.length / (wall / 1000), edgeRssMiB: peakRssMiB("self"), hostRssMiB: peakRssMiB(host.pid!) });
  }

  const os = await import("node:os");
  const load = os.loadavg().map((x) => x.toFixed(2)).join(" ");
  console.log(`bench/stream — ${env.runtime} ${env.version}, host: dic serve --role host (${env.runtime}, ${values.backend}) on ${hostUrl}; ${os.cpus().length} CPUs, load average ${load}`);
  console.log(`validation: ${validation}\n`);
  console.log(`Bytes on the wire per image (1 label, guidance on = 2 rows, ${STEPS} steps; requests include auth + hello):`);
  console.log("| model | dtype | unet per step (up + down) | unet per image | handoff per image | vae per image |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const b of bytes as { model: string; dtype: string; unetStep: number; unetStepUp: number; unetStepDown: number; unetImage: number; handoffImage: number; vaeImage: number }[]) {
    console.log(`| ${b.model} | ${b.dtype} | ${fmt(b.unetStep)} (${fmt(b.unetStepUp)} + ${fmt(b.unetStepDown)}) | ${fmt(b.unetImage)} | ${fmt(b.handoffImage)} | ${fmt(b.vaeImage)} |`);
  }
  console.log("\nCodec on a DiC-XL unet step frame (2 rows; MB/s of f32 tensor data):");
  console.log("| dtype | frame | encode MB/s | decode MB/s |");
  console.log("| --- | --- | --- | --- |");
  for (const c of codec as { dtype: string; frameMiB: number; encodeMBs: number; decodeMBs: number }[]) {
    console.log(`| ${c.dtype} | ${c.frameMiB.toFixed(2)} MiB | ${c.encodeMBs.toFixed(0)} | ${c.decodeMBs.toFixed(0)} |`);
  }
  console.log(`CRC-32 alone: ${crcMBs.toFixed(0)} MB/s`);
  console.log(`\nunet step latency, default model (28x28), loopback, ${sessionSteps} steps per session (ms, remote request incl. auth + decode):`);
  console.log("| sessions | steps | p50 ms | p99 ms | steps/s | edge peak RSS MiB | host peak RSS MiB |");
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const l of latency as { sessions: number; steps: number; p50: number; p99: number; stepsPerSec: number; edgeRssMiB: number | null; hostRssMiB: number | null }[]) {
    const mib = (v: number | null) => (v === null ? "n/a" : v.toFixed(0));
    console.log(`| ${l.sessions} | ${l.steps} | ${l.p50.toFixed(1)} | ${l.p99.toFixed(1)} | ${l.stepsPerSec.toFixed(1)} | ${mib(l.edgeRssMiB)} | ${mib(l.hostRssMiB)} |`);
  }
  if (values.json) console.log(JSON.stringify({ runtime: env.runtime, version: env.version, validation, bytes, codec, crcMBs, latency }));
} finally {
  host.kill("SIGKILL");
}
