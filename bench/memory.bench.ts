// bench/memory: peak process memory and time per weight storage mode of the wasm backend (one thread), for
// DiC-S and DiC-B forwards (batch 2), DiC-B's `unet` edge part (embedders, encoder, latent stage: only its
// tensors loaded) and the SD-VAE decoder (32x32 latent -> 256 px), random non-zero
// weights. Every row runs in its own child process (this program with --child), so that its peak RSS is
// its own; "above tiny" subtracts the peak of the same child running a tiny DiC (the runtime, the module
// and the SDK's own code). Weights are generated one tensor at a time into one reused buffer and uploaded (a
// streaming loader's pattern: the f32 model never exists whole in JS, nor as a trail of garbage), except in the "file" rows, which write an f32
// safetensors file first and load it with loadModel (today's loader reads the whole file: its bytes count).
// Output equality: each compact row's output vs the fast row's (relative L2), same seed. `--models default`
// adds the default model's per-forward error of int8 (file and storage) and f16 vs f32.
// Run: node dist/bench/memory.bench.js [--models dics,dicb,dicb-edge,dics-edge,vae] [--modes fast,f16,int8,budget] [--budget 128]
//        [--reps 3] [--json]       (Deno/Bun: deno run -A bench/memory.bench.ts, bun bench/memory.bench.ts)
import { parseArgs } from "node:util";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend } from "../src/backend/contract.ts";
import { createWasmBackend, type StorageMode } from "../src/backend/wasm/index.ts";
import { env, processArgs } from "../src/env.ts";
import { resolveConfig } from "../src/model/config.ts";
import { bindDiC, roleOf } from "../src/model/load.ts";
import { DiCGraph } from "../src/model/dic.ts";
import { expectedParams } from "../src/model/params.ts";
import { GaussianRng } from "../src/rng.ts";
import { relL2 } from "../src/tensor.ts";
import { bindVAE, estimateDecodeBytes, expectedVAEParams, SD_VAE_CONFIG } from "../src/vae/index.ts";
import { decodeLatents } from "../src/vae/tiled.ts";
import { parseSafetensors, type SafetensorsFile, writeSafetensors } from "../src/weights/safetensors.ts";
import { quantizeSafetensors } from "../src/weights/quantize.ts";
import { repoRoot } from "./root.ts";
import { loadModel } from "../sdk/model.ts";

const { values } = parseArgs({
  args: processArgs(),
  options: {
    models: { type: "string", default: "dics,dicb,dicb-edge,vae" }, modes: { type: "string", default: "fast,f16,int8,budget" },
    budget: { type: "string", default: "128" }, "vae-budget": { type: "string", default: "300" }, reps: { type: "string", default: "3" },
    json: { type: "boolean" }, child: { type: "string" }, out: { type: "string" }, file: { type: "string" },
  },
});

const MiB = 1048576;
/** Peak resident set size of this process so far (MiB). */
function peakRssMiB(): number {
  const p = (globalThis as { process?: { resourceUsage?: () => { maxRSS: number } } }).process;
  return p?.resourceUsage ? p.resourceUsage().maxRSS / 1024 : NaN;
}

/**
 * Uniform values of variance 1 from an xorshift32 stream. (GaussianRng's f64 arithmetic grows the JS heap by
 * ~50 MiB over a DiC-S worth of values, which would count in the peak this program measures.)
 */
function fillUniform(out: Float32Array, seed: number): Float32Array {
  let x = (seed * 2654435761) | 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x / 2147483648) * 1.7320508;
  }
  return out;
}

/**
 * A SafetensorsFile whose tensors are made when read: random (uniform, variance 1), fan-in scaled, non-zero (as bench/lib/random-dic.ts).
 * `reuse`: every tensor is returned in the same buffer (valid until the next read), as a streaming loader that
 * reads each tensor into one buffer would hand them to the backend (which copies what it keeps).
 */
function randomFile(params: Map<string, number[]>, seed: number, shapeOf = (s: number[]) => s, reuse = false): SafetensorsFile {
  const tensors = new Map([...params].map(([name, shape]) => [name, { dtype: "F32" as const, shape: shapeOf(shape), begin: 0, end: 0 }]));
  let i = 0;
  let buffer = new Float32Array(0);
  const getF32 = (name: string) => {
    const shape = shapeOf(params.get(name)!);
    const count = shape.reduce((a, b) => a * b, 1);
    if (reuse && buffer.length < count) buffer = new Float32Array(count);
    const data = fillUniform(reuse ? buffer.subarray(0, count) : new Float32Array(count), seed + 7919 * (i++));
    const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 0;
    for (let k = 0; k < data.length; k++) {
      if (fanIn) data[k] /= Math.sqrt(fanIn);
      else if (name.includes("norm") && name.endsWith("weight")) data[k] = 1 + 0.2 * data[k];
      else data[k] *= 0.1;
      if (data[k] === 0) data[k] = 1e-3;
    }
    return data;
  };
  return { source: "<random>", fileSize: 0, headerLength: 0, dataStart: 0, dataEnd: 0, metadata: {}, tensors, getBytes: () => new Uint8Array(0), getF32 };
}

interface ChildResult {
  peakRssMiB: number;
  loadMs: number;
  ms: number;
  weights: Record<string, number>;
  scratchBytes: number;
  activationPeakBytes: number;
  committedBytes: number;
  plan: string;
}

const presets: Record<string, string> = { dics: "DiC-S", dicb: "DiC-B", tiny: "tiny", "dics-edge": "DiC-S", "dicb-edge": "DiC-B" };

/** The tensors of the `unet` cut's edge part (embedders, encoder, latent stage): what an edge loads. */
const isEdgeTensor = (name: string) => !/^(dec_blocks|ups|output|final_layer|out_proj)\./.test(name);

async function child(spec: string, outPath: string): Promise<void> {
  const [model, mode] = spec.split(":");
  const reps = Number(values.reps);
  const budget = mode === "budget" ? Number(model === "vae" ? values["vae-budget"] : values.budget) * MiB : undefined;
  const storage: StorageMode = mode === "budget" ? "auto" : mode === "write" ? "fast" : (mode as StorageMode);
  // The VAE under a budget keeps what a 16x16-latent tile needs for activations (as loadVAE does) and tiles to it.
  const vaeReserve = model === "vae" && budget !== undefined ? Math.min(Math.floor(budget / 2), estimateDecodeBytes(SD_VAE_CONFIG, 16, 16)) : undefined;
  const backend: Backend = await createWasmBackend({ threads: 1, storage, memoryBudget: budget, activationReserve: vaeReserve });
  const t0 = performance.now();
  let run: () => Promise<Float32Array>;
  if (model === "vae") {
    const config = SD_VAE_CONFIG;
    const graph = bindVAE(randomFile(new Map(expectedVAEParams(config)), 11, (s) => (s.length === 2 ? [s[0], s[1], 1, 1] : s), true), backend);
    const z = { shape: [1, 4, 32, 32], data: new GaussianRng(5).fill(new Float32Array(4096)) };
    run = async () => (await decodeLatents(graph, z, { memoryBudgetBytes: vaeReserve })).image.data;
  } else {
    const config = model === "tiny"
      ? resolveConfig({ input_size: 8, hidden_size: 16, depth: [1, 1, 1, 1, 1], num_classes: 10 })
      : resolveConfig({ preset: presets[model] as "DiC-S" });
    const n = 2;
    const x = { shape: [n, config.in_channels, config.input_size, config.input_size], data: new GaussianRng(3).fill(new Float32Array(n * config.in_channels * config.input_size ** 2)) };
    if (mode === "write") {
      // An f32 file in the official layout (for the rows that load it as `dic forward --model F` does).
      const rnd = randomFile(new Map(expectedParams(config)), 1);
      const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
      for (const [name, shape] of expectedParams(config)) tensors[name] = { dtype: "F32", shape, data: rnd.getF32(name) };
      writeFileSync(outPath, writeSafetensors(tensors, { config: JSON.stringify(config) }));
      return;
    }
    let graph: Awaited<ReturnType<typeof bindDiC>>;
    if (model.endsWith("-edge")) {
      // The edge side of the `unet` cut: only its tensors are loaded; it runs encode and downloads the bottleneck.
      const params = new Map([...expectedParams(config)].filter(([name]) => isEdgeTensor(name)));
      const file = randomFile(params, 1, undefined, true);
      backend.planStorage?.([...params].map(([name, shape]) => ({ shape, role: roleOf(name, shape.length) })));
      const weights = new Map([...params].map(([name, shape]) => [name, backend.upload({ shape, data: file.getF32(name) }, roleOf(name, shape.length))]));
      const g = new DiCGraph(backend, config, weights);
      run = async () => {
        const xt = backend.upload(x);
        const enc = g.encode(xt, [500, 100], [1, 2]);
        const out = (await backend.download(enc.bottleneck)).data;
        for (const t of [xt, enc.bottleneck, ...enc.skips]) backend.free(t);
        return out;
      };
    } else {
      if (values.file) {
        graph = (await loadModel(values.file, { backend })).graph;
      } else {
        graph = bindDiC(randomFile(new Map(expectedParams(config)), 1, undefined, true), config, backend);
      }
      run = async () => (await graph.forwardHost(x, [500, 100], [1, 2])).data;
    }
  }
  const loadMs = performance.now() - t0;
  let out = await run(); // warm-up: first use
  let best = Infinity;
  for (let r = 0; r < (model === "vae" ? 1 : reps); r++) {
    const t = performance.now();
    out = await run();
    best = Math.min(best, performance.now() - t);
  }
  const rep = backend.storageReport!();
  writeFileSync(outPath, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
  const res: ChildResult = { peakRssMiB: peakRssMiB(), loadMs, ms: best, weights: rep.weights, scratchBytes: rep.scratchBytes,
    activationPeakBytes: rep.activationPeakBytes, committedBytes: rep.committedBytes, plan: rep.plan };
  console.log(`RESULT ${JSON.stringify(res)}`);
}

function selfCommand(): string[] {
  const p = (globalThis as { process?: { execPath: string; argv: string[] } }).process!;
  if (env.runtime === "deno") return [p.execPath, "run", "-A", new URL(import.meta.url).pathname];
  return [p.execPath, p.argv[1]];
}

/** The default model (models/dic-fashion.safetensors), per forward: int8 (file and storage) and f16 vs its f32 output on js. */
async function defaultModelAccuracy(): Promise<void> {
  const path = new URL("models/dic-fashion.safetensors", repoRoot()).pathname;
  const f32 = readFileSync(path);
  const q8 = quantizeSafetensors(parseSafetensors(f32, path));
  const ref = await loadModel(f32, { backend: "js" });
  const c = ref.config;
  const x = { shape: [4, c.in_channels, c.input_size, c.input_size], data: fillUniform(new Float32Array(4 * c.in_channels * c.input_size ** 2), 9) };
  const t = [999, 500, 100, 10], y = [0, 3, 6, 9];
  const want = (await ref.forward(x, t, y)).data;
  console.log("");
  console.log("| default model, batch 4 | relative L2 vs f32 (js) |");
  console.log("| --- | --- |");
  for (const [label, src, storage] of [["int8 file on js", q8, null], ["int8 file on wasm fast", q8, "fast"], ["wasm f16 storage", f32, "f16"],
    ["wasm int8 storage", f32, "int8"], ["int8 file on wasm int8 storage", q8, "int8"]] as const) {
    const m = await loadModel(src, { backend: storage === null ? "js" : await createWasmBackend({ threads: 1, storage }) });
    console.log(`| ${label} | ${relL2((await m.forward(x, t, y)).data, want).toExponential(2)} |`);
  }
}

async function main(): Promise<void> {
  if (values.child) return child(values.child, values.out!);
  const dir = mkdtempSync(join(tmpdir(), "dic-membench-"));
  const spawn = (spec: string, file?: string): (ChildResult & { out: Float32Array }) | { error: string } => {
    const outPath = join(dir, spec.replace(":", "-") + (file ? "-file" : "") + ".f32");
    const [cmd, ...args] = selfCommand();
    const r = spawnSync(cmd, [...args, "--child", spec, "--out", outPath, "--reps", values.reps!, "--budget", values.budget!, "--vae-budget", values["vae-budget"]!, ...(file ? ["--file", file] : [])],
      { encoding: "utf8", maxBuffer: 1 << 26 });
    if (spec.endsWith(":write")) return r.status === 0 ? { error: "" } : { error: `writing the file: status ${r.status}` };
    const line = (r.stdout ?? "").split("\n").find((l) => l.startsWith("RESULT "));
    if (!line) {
      const lines = (r.stderr ?? "").trim().split("\n");
      return { error: (lines.find((l) => /^\w*Error: /.test(l.trim())) ?? lines.find((l) => /Error/.test(l)) ?? `status ${r.status}`).trim().slice(0, 300) };
    }
    const b = readFileSync(outPath);
    return { ...JSON.parse(line.slice(7)), out: new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4) };
  };
  const tiny = spawn("tiny:fast");
  if ("error" in tiny) throw new Error(`tiny baseline failed: ${tiny.error}`);
  console.log(`bench/memory: ${env.runtime} ${env.version}, wasm one thread; baseline (tiny DiC run) peak RSS ${tiny.peakRssMiB.toFixed(0)} MiB`);
  console.log("");
  console.log("| model | mode | peak RSS MiB | above tiny MiB | wasm memory MiB | weights MiB (by form) | activation peak MiB | scratch MiB | load ms | time ms | vs fast | rel. L2 vs fast |");
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  const rows: unknown[] = [];
  const f = (b: number) => (b / MiB).toFixed(1);
  for (const model of values.models!.split(",").filter((m) => m !== "default")) {
    let fast: (ChildResult & { out: Float32Array }) | null = null;
    const modes = values.modes!.split(",");
    const runs: [string, string | undefined][] = modes.map((m) => [m, undefined]);
    if ((model === "dics" || model === "dicb") && modes.includes("budget")) {
      spawn(`${model}:write`, undefined); // writes <dir>/<model>-write.f32, an f32 safetensors file
      runs.push(["budget", join(dir, `${model}-write.f32`)]);
    }
    for (const [mode, file] of runs) {
      const r = spawn(`${model}:${mode}`, file);
      const label = `${mode === "budget" ? `budget ${model === "vae" ? values["vae-budget"] : values.budget} MiB` : mode}${file ? " (f32 file via loadModel)" : ""}`;
      if ("error" in r) {
        console.log(`| ${model} | ${label} | failed: ${r.error} |`);
        rows.push({ model, mode: label, error: r.error });
        continue;
      }
      if (mode === "fast") fast = r;
      const weights = Object.entries(r.weights).map(([k, v]) => `${k} ${f(v)}`).join(" + ");
      const err = fast ? relL2(r.out, fast.out) : NaN;
      console.log(`| ${model} | ${label} | ${r.peakRssMiB.toFixed(0)} | ${(r.peakRssMiB - tiny.peakRssMiB).toFixed(0)} | ${f(r.committedBytes)} | ${weights} | ${f(r.activationPeakBytes)} | ${f(r.scratchBytes)} | ${r.loadMs.toFixed(0)} | ${r.ms.toFixed(0)} | ${fast ? (r.ms / fast.ms).toFixed(2) : "n/a"} | ${fast ? err.toExponential(2) : "n/a"} |`);
      rows.push({ model, mode: label, ...r, out: undefined, aboveTinyMiB: r.peakRssMiB - tiny.peakRssMiB, relL2VsFast: err, timeVsFast: fast ? r.ms / fast.ms : null });
    }
  }
  rmSync(dir, { recursive: true });
  if (values.models!.split(",").includes("default")) await defaultModelAccuracy();
  // Time ratios from separate processes are noisy on a shared machine: the DiC modes again, in this one
  // process, forwards interleaved round by round (best of --reps).
  const timing: Record<string, Record<string, number>> = {};
  for (const model of values.models!.split(",").filter((m) => m === "dics" || m === "dicb")) {
    const config = resolveConfig({ preset: presets[model] as "DiC-S" });
    const x = { shape: [2, config.in_channels, config.input_size, config.input_size], data: fillUniform(new Float32Array(2 * config.in_channels * config.input_size ** 2), 3) };
    const graphs: [string, Awaited<ReturnType<typeof bindDiC>>][] = [];
    for (const mode of values.modes!.split(",")) {
      const budget = mode === "budget" ? Number(values.budget) * MiB : undefined;
      const b = await createWasmBackend({ threads: 1, storage: mode === "budget" ? "auto" : (mode as StorageMode), memoryBudget: budget });
      try {
        graphs.push([mode, bindDiC(randomFile(new Map(expectedParams(config)), 1, undefined, true), config, b)]);
      } catch (e) {
        console.log(`${model} ${mode}: ${(e as Error).message}`);
      }
    }
    const best: Record<string, number> = {};
    for (let r = 0; r < Number(values.reps) + 1; r++) {
      for (const [mode, g] of graphs) {
        const t = performance.now();
        await g.forwardHost(x, [500, 100], [1, 2]);
        if (r > 0) best[mode] = Math.min(best[mode] ?? Infinity, performance.now() - t);
      }
    }
    timing[model] = best;
    for (const [, g] of graphs) (g.backend as { close?: () => void }).close?.();
  }
  if (Object.keys(timing).length) {
    console.log("");
    console.log(`| model | ${values.modes!.split(",").map((m) => `${m} ms (vs fast)`).join(" | ")} |`);
    console.log(`| --- | ${values.modes!.split(",").map(() => "---").join(" | ")} |`);
    for (const [model, t] of Object.entries(timing)) {
      console.log(`| ${model} | ${values.modes!.split(",").map((m) => (t[m] === undefined ? "n/a" : `${t[m].toFixed(0)} (${(t[m] / t.fast).toFixed(2)})`)).join(" | ")} |`);
    }
  }
  if (values.json) console.log(JSON.stringify({ runtime: env.runtime, version: env.version, baselinePeakRssMiB: tiny.peakRssMiB, rows, interleavedMs: timing }));
}

await main();
