// The `dic` command: forward and sample are also the project's parity tools, so their flags are
// stable. Every bad input ends with status 1 and a one-line error (a stack trace with --verbose).
import { parseArgs } from "node:util";
import { createBackend, listBackends } from "../src/backend/registry.ts";
import type { Backend } from "../src/backend/contract.ts";
import { stderrIsTTY } from "../src/env.ts";
import { writeBytes } from "../src/io.ts";
import { parseConfigArg } from "../src/model/config.ts";
import { CFG_MODES, type CfgMode } from "../src/samplers/guidance.ts";
import { SAMPLER_NAMES, type SamplerName } from "../src/samplers/index.ts";
import type { HostTensor } from "../src/tensor.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { type SafetensorsFile, writeSafetensors } from "../src/weights/safetensors.ts";
import { makeGrid, encodePNG } from "../src/image.ts";
import { loadDefaultModel } from "./default-model.ts";
import type { DownloadOptions } from "../src/download.ts";
import { doctor, formatDoctorReport, storageLines } from "./doctor.ts";
import { generate } from "./generate.ts";
import { type DiCModel, loadModel } from "./model.ts";
import { loadVAE, previewLatents } from "./vae.ts";
import { runServe, SERVE_OPTIONS } from "./serve-cli.ts";

/** Where the CLI writes; tests capture it. */
export interface CliIO {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Rewrites the current terminal line (progress); omitted when not a TTY. */
  progress?: (text: string) => void;
}

const USAGE = `usage: dic <command> [options]

commands:
  generate [--model W.safetensors] --label sneaker [--label 3 ...] | --grid [--per-class 2]  --out IMAGE.png [--scale 4]
           [--steps N] [--sampler ddim|ddpm|dpmpp2m] [--cfg S] [--cfg-mode standard|reference] [--seed 1] [--backend auto|webgpu|wasm|js]
           images from a pixel-space model (default: the embedded Fashion-MNIST model); several labels
           write IMAGE-1.png, IMAGE-2.png, ...; --grid writes one labelled grid of every class;
           --scale enlarges pixels (nearest neighbour; default 1, grid 3)
           latent models (in_channels 4): add --vae VAE.safetensors (SD-VAE decoder, e.g. sd-vae-ft-ema) and
           optionally --vae-memory MB (decode in tiles above this activation memory)
  forward  --model W.safetensors [--config DiC-S|<json>] --inputs IN.safetensors --out OUT.safetensors [--backend auto|webgpu|wasm|js]
           IN holds x (f32, N x C x H x W), t and y (length N); OUT holds out (f32, N x out_channels x H x W)
  sample   --model W.safetensors [--config ...] --label 3 [--label 7 ...] --steps 50 --sampler ddim|ddpm|dpmpp2m
           [--eta 0] [--cfg 1.5] [--cfg-mode standard|reference] [--seed 1 | --init-noise Z.safetensors]
           --out LATENT.safetensors [--backend auto|webgpu|wasm|js]    OUT holds x (N x C x H x W)
  decode   --vae VAE.safetensors --latents LATENT.safetensors --out IMAGE.png [--vae-memory MB] [--preview] [--backend auto|webgpu|wasm|js]
           SD-VAE decode of latents written by dic sample (tensor x, N x 4 x h x w); several write IMAGE-1.png, ...;
           --preview writes the cheap linear latent-to-RGB preview instead (h x w, approximate)
  backends [--backend B] [--threads N]  list the backends, whether each can run here, and which auto (or B) picks
  serve    --role host --port P --secret-file F [--listen 127.0.0.1] [--model W.safetensors] [--backend auto|wasm|js]
           [--vae VAE.safetensors [--vae-memory MB]]   (latent model: the host decodes the vae cut)
  serve    --role edge --port P --upstream URL [--upstream URL ...] --secret-file F [--listen ...] [--model ... | --remote]
           [--max-work N] [--max-concurrent 4] [--max-queue 64] [--deadline 300] [--max-body 1048576]
           (admission: images x steps x pixels per request, running and queued generations, seconds, JSON bytes)
           latent streaming (docs/protocol.md): a host finishes work at a cut point; an edge serves
           POST/GET /v1/generate (labels, steps, sampler, guidance, seed, cut) and calls the hosts;
           --remote: an edge with no weights (the hosts run every step: cut=remote)
           --part decode (host) / encode (edge): only that side's tensors of the unet cut, with --sha256 HEX
           (the file's hash, taken as given) read by HTTP Range or a file handle; without it hashed as it streams
  doctor   [--json] [--no-parity]   runtime, SIMD/threads/WebGPU facts, backends and why, what auto picks,
           and a conv3x3 parity check of each backend against js (status 1 when one fails)

common options: --verbose (stack traces), --quiet (no progress), --help,
  --threads N (wasm: threads sharing conv work; default env DIC_THREADS, else min(cores, 4) where threads exist)
  --memory-budget MB (forward, sample, generate, decode, serve; wasm: most MiB its memory may take; weights are then
    stored as f16 / int8 3x3 kernels where the fast Winograd form does not fit; too small: an error saying what it needs)
--model may be an http(s) URL: downloaded with progress, cached (DIC_CACHE_DIR, else ~/.cache/dic-sdk;
  --no-cache to skip) and checked with --sha256 HEX when given; with --no-cache and no --sha256 it is read
  tensor by tensor with HTTP Range requests (a note says so when the server ignores Range)`;

/** A user error: printed as one line, exit status 1. */
class UsageError extends Error {}

/** --backend as given, or, with --threads N / --memory-budget MB, a backend created with them. */
async function backendArg(v: Record<string, unknown>): Promise<string | Backend | undefined> {
  if (v.threads === undefined && v["memory-budget"] === undefined) return v.backend as string | undefined;
  const threads = v.threads === undefined ? undefined : num(v.threads as string, "threads", 1, (n) => Number.isInteger(n) && n >= 1 && n <= 256, "an integer in 1..256");
  return (await createBackend(v.backend as string | undefined, { threads, memoryBudget: memoryBudgetArg(v) })).backend;
}

/** --memory-budget MB (MiB) in bytes, or undefined. */
function memoryBudgetArg(v: Record<string, unknown>): number | undefined {
  const mb = v["memory-budget"] === undefined ? undefined : num(v["memory-budget"] as string, "memory-budget", 0, (n) => n > 0, "a number of MiB > 0");
  return mb === undefined ? undefined : Math.floor(mb * 1048576);
}

function defaultIO(): CliIO {
  const tty = stderrIsTTY();
  return {
    out: (l) => console.log(l),
    err: (l) => console.error(l),
    progress: tty ? (t) => (globalThis as { process?: { stderr: { write(s: string): void } } }).process?.stderr.write(`\r${t}`) : undefined,
  };
}

function need(v: string | undefined, flag: string): string {
  if (v === undefined || v === "") throw new UsageError(`missing --${flag}`);
  return v;
}

function num(v: string | undefined, flag: string, fallback: number, check: (n: number) => boolean, what: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || !check(n)) throw new UsageError(`--${flag}: expected ${what}, got "${v}"`);
  return n;
}

function tensorOf(file: SafetensorsFile, name: string, source: string): HostTensor {
  const entry = file.tensors.get(name);
  if (!entry) throw new UsageError(`${source}: no tensor "${name}" (has: ${[...file.tensors.keys()].join(", ") || "none"})`);
  return { shape: [...entry.shape], data: file.getF32(name) };
}

function vectorOf(file: SafetensorsFile, name: string, source: string, n: number, integer: boolean): number[] {
  const t = tensorOf(file, name, source);
  if (t.data.length !== n || t.shape.length > 1) {
    throw new UsageError(`${source}: tensor "${name}" has shape [${t.shape.join(", ")}], expected [${n}] (one per batch row)`);
  }
  const v = Array.from(t.data);
  for (const x of v) {
    if (!Number.isFinite(x) || (integer && !Number.isInteger(x))) {
      throw new UsageError(`${source}: tensor "${name}" holds ${x}, expected ${integer ? "integers" : "finite numbers"}`);
    }
  }
  return v;
}

async function cmdForward(v: Record<string, unknown>, io: CliIO): Promise<void> {
  const inputs = need(v.inputs as string, "inputs");
  const out = need(v.out as string, "out");
  const model = await loadModel(need(v.model as string, "model"), {
    backend: await backendArg(v),
    config: v.config ? parseConfigArg(v.config as string) : undefined,
    download: downloadFlags(v, io),
  });
  const file = await readSafetensorsFile(inputs);
  const x = tensorOf(file, "x", inputs);
  const c = model.config;
  if (x.shape.length !== 4 || x.shape[1] !== c.in_channels || x.shape[2] !== c.input_size || x.shape[3] !== c.input_size) {
    throw new UsageError(`${inputs}: tensor "x" has shape [${x.shape.join(", ")}], expected [N, ${c.in_channels}, ${c.input_size}, ${c.input_size}]`);
  }
  const n = x.shape[0];
  const t = vectorOf(file, "t", inputs, n, false);
  const y = vectorOf(file, "y", inputs, n, true);
  const t0 = performance.now();
  const res = await model.forward(x, t, y);
  const ms = performance.now() - t0;
  await writeBytes(out, writeSafetensors({ out: { dtype: "F32", shape: res.shape, data: res.data } }, {
    backend: model.backend.name, config: JSON.stringify(c),
  }));
  io.err(`forward: ${model.backend.description}; [${res.shape.join(", ")}] in ${ms.toFixed(0)} ms -> ${out}`);
  const report = model.backend.storageReport?.();
  if (v.verbose && report) for (const line of storageLines(report)) io.err(`forward: ${line}`);
}

async function cmdSample(v: Record<string, unknown>, io: CliIO): Promise<void> {
  const out = need(v.out as string, "out");
  const labels = ((v.label as string[] | undefined) ?? []).map((l) => num(l, "label", 0, (n) => Number.isInteger(n) && n >= 0, "a class index"));
  if (labels.length === 0) throw new UsageError("missing --label (give one per sample)");
  const flags = samplingFlags(v);
  if (v.seed !== undefined && v["init-noise"] !== undefined) throw new UsageError("give --seed or --init-noise, not both");
  const model = await loadModel(need(v.model as string, "model"), {
    backend: await backendArg(v),
    config: v.config ? parseConfigArg(v.config as string) : undefined,
    download: downloadFlags(v, io),
  });
  let initNoise: HostTensor | undefined;
  if (v["init-noise"] !== undefined) {
    const path = v["init-noise"] as string;
    initNoise = tensorOf(await readSafetensorsFile(path), "x", path);
    const c = model.config;
    const want = [labels.length, c.in_channels, c.input_size, c.input_size];
    if (initNoise.shape.join() !== want.join()) {
      throw new UsageError(`${path}: tensor "x" has shape [${initNoise.shape.join(", ")}], expected [${want.join(", ")}] (one row per --label)`);
    }
  }
  const quiet = Boolean(v.quiet);
  const r = await generate({
    model, labels, steps: 50, sampler: "ddim", ...defined(flags), initNoise, onProgress: progressBar(io, quiet),
  });
  await writeBytes(out, writeSafetensors({ x: { dtype: "F32", shape: r.latents.shape, data: r.latents.data } }, {
    seed: String(r.seed), sampler: r.sampler, steps: String(r.steps), cfg_scale: String(r.cfgScale), cfg_mode: r.cfgMode,
    labels: JSON.stringify(r.labels), backend: model.backend.name,
  }));
  if (!quiet) io.err(`sample: ${r.sampler} ${r.steps} steps, ${labels.length} sample(s), seed ${r.seed}, ${(r.timings.totalMs / 1000).toFixed(1)} s on ${model.backend.description} -> ${out}`);
}

/** Options shared by sample and generate: sampler, steps, eta, guidance and seed. */
function samplingFlags(v: Record<string, unknown>) {
  const sampler = v.sampler as string | undefined;
  if (sampler !== undefined && !(SAMPLER_NAMES as readonly string[]).includes(sampler)) {
    throw new UsageError(`--sampler: unknown "${sampler}" (valid: ${SAMPLER_NAMES.join(", ")})`);
  }
  const cfgMode = v["cfg-mode"] as string | undefined;
  if (cfgMode !== undefined && !(CFG_MODES as readonly string[]).includes(cfgMode)) {
    throw new UsageError(`--cfg-mode: unknown "${cfgMode}" (valid: ${CFG_MODES.join(", ")})`);
  }
  const opt = (flag: string, check: (n: number) => boolean, what: string) =>
    v[flag] === undefined ? undefined : num(v[flag] as string, flag, 0, check, what);
  return {
    sampler: sampler as SamplerName | undefined,
    cfgMode: cfgMode as CfgMode | undefined,
    steps: opt("steps", (n) => Number.isInteger(n) && n >= 1 && n <= 1000, "an integer in 1..1000"),
    eta: opt("eta", (n) => n >= 0 && n <= 1, "a number in [0, 1]"),
    cfgScale: opt("cfg", (n) => n >= 0, "a number >= 0"),
    seed: opt("seed", (n) => Number.isSafeInteger(n) && n >= 0, "a non-negative integer"),
  };
}

/** The entries of `o` that are not undefined (so spreading them keeps earlier defaults). */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as Partial<T>;
}

function progressBar(io: CliIO, quiet: boolean) {
  if (quiet || !io.progress) return undefined;
  const t0 = performance.now();
  return (p: { step: number; totalSteps: number }) => {
    const width = 24, done = Math.round(((p.step + 1) / p.totalSteps) * width);
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    io.progress!(`[${"#".repeat(done)}${"-".repeat(width - done)}] ${p.step + 1}/${p.totalSteps} steps ${secs}s `);
    if (p.step + 1 === p.totalSteps) io.progress!("\n");
  };
}

async function cmdGenerate(v: Record<string, unknown>, io: CliIO): Promise<void> {
  const out = need(v.out as string, "out");
  if (!/\.png$/i.test(out)) throw new UsageError(`--out: "${out}" must end in .png`);
  const grid = Boolean(v.grid);
  const asked = (v.label as string[] | undefined) ?? [];
  if (grid && asked.length) throw new UsageError("give --label or --grid, not both");
  if (!grid && asked.length === 0) throw new UsageError("missing --label (a class name or index; or --grid for every class)");
  const perClass = num(v["per-class"] as string, "per-class", 1, (n) => Number.isInteger(n) && n >= 1 && n <= 64, "an integer in 1..64");
  const scale = num(v.scale as string, "scale", grid ? 3 : 1, (n) => Number.isInteger(n) && n >= 1 && n <= 32, "an integer in 1..32");
  const model: DiCModel = v.model
    ? await loadModel(v.model as string, { backend: await backendArg(v), config: v.config ? parseConfigArg(v.config as string) : undefined, download: downloadFlags(v, io) })
    : await loadDefaultModel((await backendArg(v)) ?? "auto");
  const vaePath = v.vae as string | undefined;
  if (model.pixelRange === null && vaePath === undefined) {
    throw new UsageError(`${model.source}: a latent model (no __metadata__.pixel_range); give --vae VAE.safetensors (SD-VAE decoder) or use dic sample`);
  }
  if (model.pixelRange !== null && vaePath !== undefined) throw new UsageError(`--vae: ${model.source} is a pixel-space model, it takes no VAE`);
  const vaeMemoryMb = num(v["vae-memory"] as string, "vae-memory", 0, (x) => x > 0, "a number of megabytes > 0");
  const vae = vaePath === undefined ? undefined : await loadVAE(vaePath, { backend: model.backend });
  const n = model.config.num_classes;
  const labels: (string | number)[] = grid
    ? Array.from({ length: perClass * n }, (_, i) => i % n)
    : asked;
  const quiet = Boolean(v.quiet);
  const r = await generate({
    model, labels, ...samplingFlags(v), onProgress: progressBar(io, quiet), vae, vaeMemoryBudget: vaeMemoryMb ? vaeMemoryMb * 1e6 : undefined,
  });
  const written: string[] = [];
  if (grid) {
    const names = model.classNames ?? [];
    const img = makeGrid(r.images, { columns: n, labels: r.images.map((im) => names[im.label] ?? String(im.label)), scale, padding: 2 });
    await writeBytes(out, await encodePNG(img, { text: { software: "dic-sdk", sampler: r.sampler, steps: String(r.steps), seed: String(r.seed) } }));
    written.push(out);
  } else {
    for (const [i, img] of r.images.entries()) {
      const path = r.images.length === 1 ? out : out.replace(/(\.png)$/i, `-${i + 1}$1`);
      // Nearest-neighbour upscaling keeps the model's pixels exact, only bigger.
      const png = scale === 1 ? await img.toPNG() : await encodePNG(makeGrid([img], { columns: 1, scale, padding: 0 }), {
        text: { software: "dic-sdk", label: img.labelName ?? String(img.label), sampler: r.sampler, steps: String(r.steps), seed: String(r.seed) },
      });
      await writeBytes(path, png);
      written.push(path);
    }
  }
  if (!quiet) {
    io.err(`generate: ${r.images.length} image(s), ${r.sampler} ${r.steps} steps, cfg ${r.cfgScale}, seed ${r.seed}, ` +
      `${(r.timings.totalMs / 1000).toFixed(1)} s${r.timings.decodeMs !== undefined ? ` (VAE decode ${(r.timings.decodeMs / 1000).toFixed(1)} s)` : ""} on ${model.backend.name} -> ${written.length > 3 ? `${written[0]} ... ${written[written.length - 1]}` : written.join(", ")}`);
  }
}

async function cmdDecode(v: Record<string, unknown>, io: CliIO): Promise<void> {
  const out = need(v.out as string, "out");
  if (!/\.png$/i.test(out)) throw new UsageError(`--out: "${out}" must end in .png`);
  const path = need(v.latents as string, "latents");
  const latents = tensorOf(await readSafetensorsFile(path), "x", path);
  const vaeMemoryMb = num(v["vae-memory"] as string, "vae-memory", 0, (x) => x > 0, "a number of megabytes > 0");
  const t0 = performance.now();
  let images;
  if (v.preview) {
    if (latents.shape.length !== 4 || latents.shape[1] !== 4) throw new UsageError(`${path}: tensor "x" has shape [${latents.shape.join(", ")}], expected [N, 4, h, w]`);
    images = previewLatents(latents);
  } else {
    // loadVAE makes the backend itself under a budget: it keeps a tile's activations and tiles to them.
    const budget = memoryBudgetArg(v);
    const vae = await loadVAE(need(v.vae as string, "vae"), budget === undefined ? { backend: await backendArg(v) } : { backend: v.backend as string | undefined, memoryBudget: budget });
    const c = vae.config.latent_channels;
    if (latents.shape.length !== 4 || latents.shape[1] !== c) throw new UsageError(`${path}: tensor "x" has shape [${latents.shape.join(", ")}], expected [N, ${c}, h, w]`);
    images = await vae.decodeToRGBA(latents, { memoryBudgetBytes: vaeMemoryMb ? vaeMemoryMb * 1e6 : undefined });
  }
  const written: string[] = [];
  for (const [i, img] of images.entries()) {
    const file = images.length === 1 ? out : out.replace(/(\.png)$/i, `-${i + 1}$1`);
    await writeBytes(file, await encodePNG(img, { text: { software: "dic-sdk", source: path.split("/").pop() ?? "", decode: v.preview ? "linear preview" : "SD-VAE" } }));
    written.push(file);
  }
  if (!v.quiet) io.err(`decode: ${images.length} image(s) ${images[0].width}x${images[0].height} in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${written.join(", ")}`);
}

async function cmdBackends(v: Record<string, unknown>, io: CliIO): Promise<void> {
  for (const b of await listBackends()) io.out(`${b.name.padEnd(8)} ${b.available ? "available" : "unavailable"}: ${b.why}`);
  const picked = await backendArg({ ...v, backend: v.backend ?? "auto" });
  const auto = typeof picked === "object" ? { reason: `${picked.name} (--threads)`, backend: picked } : await createBackend(picked);
  io.out(`${String(v.backend ?? "auto").padEnd(8)} -> ${auto.reason}: ${auto.backend.description}`);
  (auto.backend as { close?: () => void }).close?.();
}

/** --sha256 / --no-cache and a download progress line, for --model given as an http(s) URL. */
function downloadFlags(v: Record<string, unknown>, io: CliIO): DownloadOptions {
  const quiet = Boolean(v.quiet);
  return {
    sha256: v.sha256 as string | undefined,
    cache: !v["no-cache"],
    onNotice: (line) => io.err(`dic: note: ${line}`),
    onProgress: quiet || !io.progress ? undefined : ({ loaded, total, fromCache }) => {
      const mb = (n: number) => (n / 1e6).toFixed(1);
      if (fromCache) io.progress!(`weights: ${mb(loaded)} MB from the cache\n`);
      else io.progress!(`weights: ${mb(loaded)}${total === null ? "" : ` / ${mb(total)}`} MB ` + (loaded === total ? "\n" : ""));
    },
  };
}

async function cmdDoctor(v: Record<string, unknown>, io: CliIO): Promise<number> {
  const report = await doctor({ parity: !v["no-parity"] });
  if (v.json) io.out(JSON.stringify(report, null, 2));
  else for (const line of formatDoctorReport(report)) io.out(line);
  return report.ok ? 0 : 1;
}

/**
 * Runs the `dic` command line with `args` (without the program name) and returns the exit status.
 *
 * @example
 * const status = await runCli(["forward", "--model", "w.safetensors", "--inputs", "in.safetensors", "--out", "out.safetensors"]);
 */
export async function runCli(args: string[], io: CliIO = defaultIO()): Promise<number> {
  const verbose = args.includes("--verbose");
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        model: { type: "string" }, config: { type: "string" }, inputs: { type: "string" }, out: { type: "string" },
        backend: { type: "string" }, label: { type: "string", multiple: true }, steps: { type: "string" },
        sampler: { type: "string" }, eta: { type: "string" }, cfg: { type: "string" }, "cfg-mode": { type: "string" },
        seed: { type: "string" }, "init-noise": { type: "string" }, verbose: { type: "boolean" },
        quiet: { type: "boolean" }, help: { type: "boolean", short: "h" }, grid: { type: "boolean" },
        "per-class": { type: "string" }, scale: { type: "string" }, vae: { type: "string" }, "vae-memory": { type: "string" }, threads: { type: "string" }, "memory-budget": { type: "string" },
        ...SERVE_OPTIONS,
        json: { type: "boolean" }, "no-parity": { type: "boolean" }, sha256: { type: "string" }, "no-cache": { type: "boolean" },
        latents: { type: "string" }, preview: { type: "boolean" },
      },
    });
    const cmd = positionals[0];
    if (values.help || cmd === undefined || cmd === "help") {
      io.out(USAGE);
      return cmd === undefined && !values.help ? 1 : 0;
    }
    if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
    if (cmd === "forward") await cmdForward(values, io);
    else if (cmd === "sample") await cmdSample(values, io);
    else if (cmd === "generate") await cmdGenerate(values, io);
    else if (cmd === "decode") await cmdDecode(values, io);
    else if (cmd === "backends") await cmdBackends(values, io);
    else if (cmd === "serve") await runServe(values, io);
    else if (cmd === "doctor") return await cmdDoctor(values, io);
    else throw new UsageError(`unknown command "${cmd}" (commands: generate, forward, sample, decode, backends, serve, doctor; see --help)`);
    return 0;
  } catch (e) {
    const err = e as Error;
    const msg = (err.message || String(e)).split("\n")[0];
    io.err(`dic: error: ${msg}`);
    if (verbose && err.stack) io.err(err.stack);
    return 1;
  }
}
