// bench/gpu: DiC forward throughput on the webgpu backend — validate, then time, then tables:
//   1. images/s per model (DiC-S, DiC-B, DiC-XL) x batch (1, 8, 32, 64) x precision (f32, f16 where the
//      adapter has shader-f16), next to PyTorch on the same GPU (reference/bench_gpu_torch.py: fp32, TF32,
//      fp16 with cuDNN) when CUDA is there;
//   2. per-kernel GPU time of one forward from timestamp queries (where the device has them), with the
//      conv3x3 GFLOP/s achieved (compare with the card's FMA peak);
//   3. CPU vs GPU: the wasm backend on this host's CPU next to webgpu at batch 1 and 8.
// `--dry` runs the same program at tiny sizes on whatever adapter exists (CI: lavapipe) so it cannot rot.
//
// Run (real GPU, Deno): deno run -A bench/gpu.bench.ts [--models DiC-S,DiC-B,DiC-XL] [--batches 1,8,32,64] [--reps 5] [--json]
// Dry run (CI):         deno run -A bench/gpu.bench.ts --dry
import { parseArgs } from "node:util";
import type { Backend } from "../src/backend/contract.ts";
import { createWasmBackend } from "../src/backend/wasm/index.ts";
import { createWebGpuBackend, type KernelTiming, webGpuAdapterFacts, type WebGpuBackend } from "../src/backend/webgpu/index.ts";
import { env, processArgs } from "../src/env.ts";
import { type DiCConfig, parseConfigArg, resolveConfig } from "../src/model/config.ts";
import { DiCGraph } from "../src/model/dic.ts";
import { forwardMacs } from "../src/model/params.ts";
import { randomWeights } from "./lib/random-dic.ts";
import { GaussianRng } from "../src/rng.ts";
import { repoRoot } from "./root.ts";

const { values } = parseArgs({
  args: processArgs(),
  options: {
    dry: { type: "boolean" }, json: { type: "boolean" },
    models: { type: "string" }, batches: { type: "string" }, reps: { type: "string" },
    precisions: { type: "string" }, torch: { type: "string", default: "/usr/bin/python3" }, "no-torch": { type: "boolean" },
    "no-wasm": { type: "boolean" },
  },
});

const dry = Boolean(values.dry);
/** Dry mode: a DiC-S-shaped model at 16x16 with one block per stage and 16 base channels. */
const DRY_CONFIG = '{"input_size":16,"hidden_size":16,"depth":[1,1,1,1,1],"num_classes":10}';
const models = (values.models ?? (dry ? "dry" : "DiC-S,DiC-B,DiC-XL")).split(/,(?![^{]*})/); // a JSON config may hold commas
const batches = (values.batches ?? (dry ? "1,2" : "1,8,32,64")).split(",").map(Number);
const reps = Number(values.reps ?? (dry ? 1 : 5));
const facts = await webGpuAdapterFacts();
if (!facts) throw new Error("bench/gpu: no WebGPU adapter here (Deno: install a Vulkan driver; see bench/README.md)");
const precisions = (values.precisions ?? (facts.f16 ? "f32,f16" : "f32")).split(",") as ("f32" | "f16")[];

function configOf(name: string): DiCConfig {
  return resolveConfig(parseConfigArg(name === "dry" ? DRY_CONFIG : name));
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  const e = Math.sqrt(num / den);
  return Number.isFinite(e) ? e : Infinity;
}

/** A model with random weights on a backend, and a forward that returns host data. */
function bind(backend: Backend, config: DiCConfig) {
  const weights = new Map([...randomWeights(config, 1)].map(([k, v]) => [k, backend.upload(v, roleOf(k, v.shape))]));
  const graph = new DiCGraph(backend, config, weights);
  const inputs = (n: number) => {
    const s = config.input_size;
    return {
      x: new GaussianRng(2).normal([n, config.in_channels, s, s]),
      t: Array.from({ length: n }, (_, i) => 100 + ((i * 300) % 900)),
      y: Array.from({ length: n }, (_, i) => i % config.num_classes),
    };
  };
  return {
    inputs,
    async forward(inp: ReturnType<typeof inputs>) {
      const x = backend.upload(inp.x);
      const out = graph.forward(x, inp.t, inp.y);
      const host = await backend.download(out);
      backend.free(out);
      backend.free(x);
      return host.data;
    },
    free: () => weights.forEach((w) => backend.free(w)),
  };
}

function roleOf(name: string, shape: number[]) {
  if (shape.length === 4 && shape[2] === 3) return "conv3x3.weight" as const;
  if (shape.length === 4 && shape[2] === 1) return "conv1x1.weight" as const;
  if (shape.length === 2 && name.includes("embedding_table")) return "table" as const;
  if (shape.length === 2) return "linear.weight" as const;
  return "vector" as const;
}

async function timeForward(run: () => Promise<unknown>): Promise<number> {
  await run(); // warm-up: pipelines, pooled buffers
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** FLOPs of one conv3x3 dispatch from its label "conv3x3 [N, Ci, H, W] x [Co, Ci, 3, 3]...". */
function convFlops(label: string): number {
  const m = /^conv3x3 \[(\d+), (\d+), (\d+), (\d+)\] x \[(\d+),/.exec(label);
  return m ? 2 * Number(m[1]) * Number(m[2]) * Number(m[3]) * Number(m[4]) * Number(m[5]) * 9 : 0;
}

// ----- 1. validate (webgpu vs wasm at batch 1, same random weights), then time -----------------------------
const wasm = values["no-wasm"] ? null : await createWasmBackend();
const rows: { model: string; precision: string; batch: number; ms: number; imgPerS: number; gflops: number }[] = [];
const validations: string[] = [];
const kernels: { model: string; precision: string; batch: number; timings: { kind: string; ms: number; share: number; gflops: number | null }[]; note: string }[] = [];
const cpu: { model: string; batch: number; wasmImgPerS: number | null; gpuImgPerS: number }[] = [];

for (const name of models) {
  const config = configOf(name);
  const macs = forwardMacs(config);
  const ref = wasm ? bind(wasm, config) : null;
  const refOut = ref ? await ref.forward(ref.inputs(1)) : null;
  for (const precision of precisions) {
    const gpu: WebGpuBackend = await createWebGpuBackend({ f16: precision === "f16" });
    const m = bind(gpu, config);
    if (refOut) {
      const err = relL2(await m.forward(m.inputs(1)), refOut);
      const tol = precision === "f16" ? 1e-2 : 1e-4;
      validations.push(`${name} ${precision}: relative L2 vs wasm ${err.toExponential(2)} (<= ${tol})`);
      if (!(err <= tol)) throw new Error(`bench/gpu: validation failed: ${name} ${precision} relative L2 ${err} vs wasm`);
    }
    for (const n of batches) {
      const inp = m.inputs(n);
      let ms: number;
      try {
        ms = await timeForward(() => m.forward(inp));
      } catch (e) {
        console.error(`bench/gpu: ${name} ${precision} batch ${n}: ${(e as Error).message.split("\n")[0]}`);
        continue;
      }
      rows.push({ model: name, precision, batch: n, ms: +ms.toFixed(2), imgPerS: +((n * 1000) / ms).toFixed(2), gflops: +((2 * macs * n) / (ms * 1e6)).toFixed(2) });
    }
    // ----- 2. per-kernel timings of one forward at the largest batch that ran --------------------------------
    const nk = Math.max(...rows.filter((r) => r.model === name && r.precision === precision).map((r) => r.batch), batches[0]);
    if (gpu.profile(true)) {
      await m.forward(m.inputs(nk));
      const t: KernelTiming[] = await gpu.timings();
      gpu.profile(false);
      const byKind = new Map<string, { ms: number; flops: number }>();
      for (const k of t) {
        const kind = k.label.split(" ")[0];
        const e = byKind.get(kind) ?? { ms: 0, flops: 0 };
        e.ms += k.ms;
        e.flops += convFlops(k.label);
        byKind.set(kind, e);
      }
      const total = [...byKind.values()].reduce((a, e) => a + e.ms, 0);
      kernels.push({
        model: name, precision, batch: nk, note: `${t.length} dispatches`,
        timings: [...byKind].sort((a, b) => b[1].ms - a[1].ms).map(([kind, e]) => ({
          kind, ms: +e.ms.toFixed(3), share: +(e.ms / total).toFixed(3), gflops: e.flops ? +(e.flops / (e.ms * 1e6)).toFixed(2) : null,
        })),
      });
    } else {
      kernels.push({ model: name, precision, batch: nk, note: "no timestamp-query on this device", timings: [] });
    }
    m.free();
    gpu.destroy();
  }
  // ----- 3. CPU (wasm) vs GPU ----------------------------------------------------------------------------------
  for (const n of batches.filter((b) => b <= 8)) {
    const g = rows.find((r) => r.model === name && r.precision === "f32" && r.batch === n);
    if (!g) continue;
    let w: number | null = null;
    if (ref) {
      const inp = ref.inputs(n);
      w = +((n * 1000) / (await timeForward(() => ref.forward(inp)))).toFixed(2);
    }
    cpu.push({ model: name, batch: n, wasmImgPerS: w, gpuImgPerS: g.imgPerS });
  }
  ref?.free();
}

// ----- PyTorch on the same GPU (CUDA), when there is one --------------------------------------------------------
let torchNote = "not run (--no-torch)";
const torch = new Map<string, number>();
if (!values["no-torch"] && !dry) {
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync(values.torch!, [`${repoRoot().pathname}reference/bench_gpu_torch.py`, "--models", models.join(","), "--batches", batches.join(","), "--reps", String(reps)], { encoding: "utf8" });
  if (r.status === 0) {
    const j = JSON.parse(r.stdout.trim().split("\n").pop()!);
    torchNote = `PyTorch ${j.torch} on ${j.device}`;
    for (const row of j.rows) torch.set(`${row.model}:${row.mode}:${row.batch}`, row.img_per_s);
  } else {
    torchNote = `unavailable (${(r.stderr || String(r.error)).trim().split("\n").pop()})`;
  }
} else if (dry) torchNote = "not run in --dry";

// ----- tables ----------------------------------------------------------------------------------------------------
console.log(`bench/gpu${dry ? " --dry" : ""}: runtime ${env.runtime} ${env.version}; adapter "${facts.name}"${facts.fallback ? " (fallback/software)" : ""}; shader-f16 ${facts.f16 ? "yes" : "no"}`);
console.log(`validation: ${validations.join("; ") || "skipped (--no-wasm)"}`);
console.log(`PyTorch: ${torchNote}`);
console.log("\n| model | precision | batch | ms | images/s | GFLOP/s | PyTorch fp32 / TF32 / fp16 img/s | webgpu / PyTorch same precision |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  const p = (mode: string) => torch.get(`${r.model}:${mode}:${r.batch}`);
  const same = r.precision === "f16" ? p("fp16") : p("fp32");
  const peer = [p("fp32"), p("tf32"), p("fp16")].map((v) => (v === undefined ? "n/a" : v.toFixed(1))).join(" / ");
  console.log(`| ${r.model} | ${r.precision} | ${r.batch} | ${r.ms} | ${r.imgPerS} | ${r.gflops} | ${peer} | ${same ? (r.imgPerS / same).toFixed(2) : "n/a"} |`);
}
for (const k of kernels) {
  console.log(`\nper-kernel GPU time, ${k.model} ${k.precision} batch ${k.batch} (${k.note}):`);
  if (!k.timings.length) continue;
  console.log("| kernel | ms | share | GFLOP/s (conv3x3) |\n| --- | --- | --- | --- |");
  for (const t of k.timings) console.log(`| ${t.kind} | ${t.ms} | ${(100 * t.share).toFixed(1)}% | ${t.gflops ?? ""} |`);
}
console.log("\nCPU vs GPU (images/s):\n| model | batch | wasm (CPU) | webgpu f32 | GPU / CPU |\n| --- | --- | --- | --- | --- |");
for (const c of cpu) console.log(`| ${c.model} | ${c.batch} | ${c.wasmImgPerS ?? "n/a"} | ${c.gpuImgPerS} | ${c.wasmImgPerS ? (c.gpuImgPerS / c.wasmImgPerS).toFixed(2) : "n/a"} |`);
if (values.json) {
  console.log(JSON.stringify({ bench: "gpu", dry, runtime: env.runtime, adapter: facts, validations, torch: torchNote, rows, kernels, cpu, torchRows: Object.fromEntries(torch) }));
}
