// bench/vae: SD-VAE decode time per backend for 32x32 and 64x64 latents (256 and 512 px) at the real widths,
// untiled and tiled — validate, then time, then a table (ms, GFLOP/s counting 2 x MACs, memory), with PyTorch
// CPU (reference/bench_vae_torch.py) in the same run. `--json` prints JSON too.
// Run: node dist/bench/vae.bench.js [--backend wasm,js] [--sizes 32,64] [--js-max 8] [--reps 1] [--threads 1] [--peer torch|none] [--json]
import { parseArgs } from "node:util";
import type { Backend, Tensor } from "../src/backend/contract.ts";
import { type BackendName, createBackend } from "../src/backend/registry.ts";
import type { MemoryStats } from "../src/backend/wasm/allocator.ts";
import { env, processArgs } from "../src/env.ts";
import { GaussianRng } from "../src/rng.ts";
import { bindVAE, decodeLatents, estimateDecodeBytes, resolveVAEConfig, vaeDecodeMacs, vaeParamCount, VAEDecoderGraph } from "../src/vae/index.ts";
import { randomVAEWeights } from "./lib/random-vae.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { repoRoot } from "./root.ts";

const MiB = 2 ** 20;
function rssMiB(): number | null {
  const proc = (globalThis as { process?: { memoryUsage?: () => { rss: number } } }).process;
  return proc?.memoryUsage ? proc.memoryUsage().rss / MiB : null;
}
const stats = (b: Backend): MemoryStats | null => ("memoryStats" in b ? (b as unknown as { memoryStats(): MemoryStats }).memoryStats() : null);
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

const { values } = parseArgs({
  args: processArgs(),
  options: {
    backend: { type: "string", default: "wasm,js" }, sizes: { type: "string", default: "32,64" }, "js-max": { type: "string", default: "8" },
    reps: { type: "string", default: "1" }, threads: { type: "string", default: "1" }, peer: { type: "string", default: "torch" },
    widths: { type: "string", default: "128,256,512,512" }, json: { type: "boolean" },
  },
});
const cfg = resolveVAEConfig({ block_out_channels: values.widths!.split(",").map(Number) });
const sizes = values.sizes!.split(",").map(Number);
const jsMax = Number(values["js-max"]);
const reps = Number(values.reps);
const root = repoRoot().pathname;

interface Row { backend: string; size: number; mode: string; tiles: number; ms: number | null; gflops: number | null; memMiB: number | null; estMiB: number; note: string }
const rows: Row[] = [];
const validations: string[] = [];

for (const name of values.backend!.split(",")) {
  const probe = await createBackend(name as BackendName);
  // 1. Validate against the PyTorch fixture at the real widths (npm run fixtures writes it).
  try {
    const w = await readSafetensorsFile(`${root}tests/fixtures/gen/vae_real_weights.safetensors`);
    const io = await readSafetensorsFile(`${root}tests/fixtures/gen/vae_real_io.safetensors`);
    const vae = bindVAE(w, probe.backend);
    const { image } = await decodeLatents(vae, { shape: [...io.tensors.get("latent")!.shape], data: io.getF32("latent") });
    vae.dispose();
    const want = io.getF32("image");
    let num = 0, den = 0;
    for (let i = 0; i < want.length; i++) { num += (image.data[i] - want[i]) ** 2; den += want[i] ** 2; }
    const err = Math.sqrt(num / den);
    if (!(err <= 1e-4)) throw new Error(`bench/vae: ${name} validation failed: relative L2 ${err} vs PyTorch`);
    validations.push(`${name}: relative L2 ${err.toExponential(2)} vs PyTorch (real widths, 4x4 latent)`);
  } catch (e) {
    if (!String(e).includes("ENOENT")) throw e;
    validations.push(`${name}: skipped (no fixture; run npm run fixtures)`);
  }
  // 2. Time: random weights, a fresh backend per row so that its peak memory is that row's.
  for (const size of sizes) {
    for (const mode of ["untiled", "tiled"]) {
      const tile = mode === "tiled" ? size / 2 : 0;
      const overlap = Math.max(1, size / 8);
      const est = estimateDecodeBytes(cfg, tile || size, tile || size) / MiB;
      const base = { backend: name, size, mode: tile ? `tile ${tile}, overlap ${overlap}` : "untiled", estMiB: +est.toFixed(0) };
      if (name === "js" && size > jsMax) {
        rows.push({ ...base, tiles: 0, ms: null, gflops: null, memMiB: null, note: `skipped: js above --js-max ${jsMax}` });
        continue;
      }
      const { backend } = await createBackend(name as BackendName);
      const weights = new Map<string, Tensor>([...randomVAEWeights(cfg, 1)].map(([k, v]) => [k, backend.upload(v, v.shape.length === 4 ? (v.shape[2] === 3 ? "conv3x3.weight" : "conv1x1.weight") : "vector")]));
      const vae = new VAEDecoderGraph(backend, cfg, weights);
      const weightsLive = stats(backend)?.liveBytes ?? 0;
      const latent = new GaussianRng(2).normal([1, cfg.latent_channels, size, size]);
      const times: number[] = [];
      let tiles = 1, note = "";
      try {
        for (let r = 0; r < reps; r++) {
          const t0 = performance.now();
          const res = await decodeLatents(vae, latent, tile ? { tile, overlap } : {});
          times.push(performance.now() - t0);
          tiles = res.tiles;
        }
      } catch (e) {
        note = `failed: ${(e as Error).message.slice(0, 120)}`;
      }
      const s = stats(backend);
      const ms = times.length ? median(times) : null;
      const macs = vaeDecodeMacs(cfg, tile || size, tile || size) * tiles;
      rows.push({
        ...base, tiles, ms: ms && +ms.toFixed(0), gflops: ms && +((2 * macs) / (ms * 1e6)).toFixed(1),
        memMiB: s ? +((s.peakLiveBytes - weightsLive) / MiB).toFixed(0) : rssMiB() && +rssMiB()!.toFixed(0),
        note: note || (s ? `weights ${(weightsLive / MiB).toFixed(0)} MiB, committed ${(s.committedBytes / MiB).toFixed(0)} MiB` : "memory = process peak RSS"),
      });
      vae.dispose();
    }
  }
}

// 3. Peer in the same run: PyTorch CPU eager, same widths, untiled.
const peer = new Map<number, { ms: number; peakRssMiB: number }>();
let peerNote = "none";
if (values.peer === "torch") {
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync("/usr/bin/python3", [`${root}reference/bench_vae_torch.py`, "--sizes", values.sizes!, "--widths", values.widths!,
    "--threads", values.threads!, "--reps", values.reps!], { encoding: "utf8", env: { ...(globalThis as any).process?.env, OMP_NUM_THREADS: values.threads } });
  if (r.status === 0) {
    const j = JSON.parse(r.stdout.trim().split("\n").pop()!);
    for (const row of j.rows) peer.set(row.size, row);
    peerNote = `PyTorch ${j.torch} CPU eager, ${j.threads} thread(s), untiled`;
  } else {
    peerNote = `PyTorch unavailable (${(r.stderr || String(r.error)).trim().split("\n").pop()})`;
  }
}

console.log(`bench/vae: SD-VAE decoder, widths ${cfg.block_out_channels} (${(vaeParamCount(cfg) / 1e6).toFixed(2)} M params); ` +
  sizes.map((s) => `${s}x${s} latent = ${(vaeDecodeMacs(cfg, s, s) / 1e9).toFixed(0)} GMAC`).join(", "));
console.log(`runtime ${env.runtime} ${env.version}; validation: ${validations.join("; ")}`);
console.log(`peer: ${peerNote}`);
console.log("memory: wasm = peak live activation bytes (weights excluded); js = process peak RSS; est = estimateDecodeBytes per tile");
console.log("| backend | latent | mode | tiles | ms | GFLOP/s | memory MiB | est MiB | PyTorch ms (RSS MiB) | ours / PyTorch | note |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  const p = peer.get(r.size);
  const ratio = p && r.ms ? (r.ms / p.ms).toFixed(2) : "n/a";
  console.log(`| ${r.backend} | ${r.size}x${r.size} | ${r.mode} | ${r.tiles || "-"} | ${r.ms ?? "-"} | ${r.gflops ?? "-"} | ${r.memMiB ?? "-"} | ${r.estMiB} | ${p ? `${p.ms.toFixed(0)} (${p.peakRssMiB})` : "n/a"} | ${ratio} | ${r.note} |`);
}
if (values.json) console.log(JSON.stringify({ bench: "vae", widths: cfg.block_out_channels, runtime: env.runtime, validations, peer: peerNote, rows, torch: [...peer.values()] }));
