// The `dic` command: forward and sample are also the project's parity tools, so their flags are
// stable. Each command declares its flags in one table (sdk/cli-args.ts) that parses them and prints
// its help. Every bad input ends with status 1 and a one-line error (a stack trace with --verbose).
import { BACKEND_NAMES, type BackendName, createBackend, listBackends } from "../src/backend/registry.ts";
import type { Backend } from "../src/backend/contract.ts";
import { setVerbose, stderrIsTTY } from "../src/env.ts";
import { writeBytes } from "../src/io.ts";
import { parseConfigArg } from "../src/model/config.ts";
import { CFG_MODES } from "../src/samplers/guidance.ts";
import { SAMPLER_NAMES } from "../src/samplers/index.ts";
import { didYouMean, validateSettings } from "../src/settings.ts";
import type { HostTensor } from "../src/tensor.ts";
import { VERSION } from "../src/version.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { type SafetensorsFile, writeSafetensors } from "../src/weights/safetensors.ts";
import { makeGrid, encodePNG } from "../src/image.ts";
import { type Flag, type FlagTable, type FlagValues, formatHelp, numberFlag, parseFlags, UsageError, wrap } from "./cli-args.ts";
import { loadDefaultModel } from "./default-model.ts";
import type { DownloadOptions } from "../src/weights/download.ts";
import { doctor, formatDoctorReport, storageLines } from "./doctor.ts";
import { generate } from "./generate.ts";
import { type DiCModel, loadModel } from "./model.ts";
import { loadVAE, previewLatents } from "./vae.ts";
import { runServe, SERVE_FLAGS, type ServeFlags } from "./serve-cli.ts";

/** Where the CLI writes; tests capture it. */
export interface CliIO {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Rewrites the current terminal line (progress); omitted when not a TTY. */
  progress?: (text: string) => void;
}

const COMMON: FlagTable = {
  help: { type: "boolean", short: "h", help: "print this help" },
  verbose: { type: "boolean", help: "stack traces on errors, and what the WebGPU probe printed" },
  quiet: { type: "boolean", help: "no progress and no summary line" },
};
const BACKEND: FlagTable = {
  backend: { type: "string", value: "NAME", choices: BACKEND_NAMES, help: "backend that runs the model (default auto, or env DIC_BACKEND)" },
  threads: { type: "string", value: "N", help: "wasm: threads sharing each convolution (default env DIC_THREADS, else min(cores, 4))" },
};
const MEMORY: FlagTable = {
  "memory-budget": { type: "string", value: "MB", help: "wasm: most MiB its memory may take; weights are then stored as f16 / int8 3x3 kernels where the fast form does not fit" },
};
const WEIGHTS: FlagTable = {
  config: { type: "string", value: "PRESET|JSON", help: "override the file's configuration: DiC-S, DiC-B, DiC-XL, DiC-H or JSON fields" },
  sha256: { type: "string", value: "HEX", help: "--model as an http(s) URL: the download must have this SHA-256" },
  "no-cache": { type: "boolean", help: "--model as an http(s) URL: skip the download cache" },
};
const SAMPLING: FlagTable = {
  steps: { type: "string", value: "N", help: "sampling steps, 1..1000 (default: the model's, else 50)" },
  sampler: { type: "string", value: "NAME", choices: SAMPLER_NAMES, help: "sampler (default: the model's, else ddim)" },
  eta: { type: "string", value: "E", help: "DDIM stochasticity in [0, 1] (default 0)" },
  cfg: { type: "string", value: "S", help: "classifier-free guidance scale, 1 = none (default: the model's, else 1)" },
  "cfg-mode": { type: "string", value: "MODE", choices: CFG_MODES, help: "guidance on every channel, or the official first-3-channels quirk" },
  seed: { type: "string", value: "N", help: "seed of the noise (same image on every runtime; random when absent)" },
};

/** A command: its flags, help and what it runs. */
interface Command {
  usage: string;
  /** One line in `dic --help` (fits 80 columns with the name). */
  summary: string;
  description: string;
  flags: FlagTable;
  run: (v: FlagValues, io: CliIO) => Promise<number | void>;
}

const COMMANDS: Record<string, Command> = {
  generate: {
    usage: "(--label NAME|INDEX ... | --grid) --out IMAGE.png [options]",
    summary: "images from a DiC model (default: the embedded Fashion-MNIST model)",
    description: "Generates images from a pixel-space model (default: the embedded Fashion-MNIST model). Several labels write " +
      "IMAGE-1.png, IMAGE-2.png, ...; --grid writes one labelled grid of every class. A latent model (in_channels 4) needs --vae " +
      "(the SD-VAE decoder, e.g. sd-vae-ft-ema).",
    flags: {
      model: { type: "string", value: "W.safetensors", help: "weights: a path or an http(s) URL (default: the embedded model)" },
      label: { type: "string", multiple: true, value: "NAME|INDEX", help: "class of one image, by name or index" },
      grid: { type: "boolean", help: "one labelled grid of every class instead of --label" },
      "per-class": { type: "string", value: "N", help: "--grid: images per class, 1..64 (default 1)" },
      out: { type: "string", value: "IMAGE.png", help: "where the PNG goes" },
      scale: { type: "string", value: "K", help: "enlarge pixels K times, nearest neighbour, 1..32 (default 1, grid 3)" },
      ...SAMPLING,
      vae: { type: "string", value: "VAE.safetensors", help: "latent model: the SD-VAE decoder (path or http(s) URL)" },
      "vae-memory": { type: "string", value: "MB", help: "decode in tiles above this activation memory" },
      ...WEIGHTS, ...BACKEND, ...MEMORY, ...COMMON,
    },
    run: cmdGenerate,
  },
  forward: {
    usage: "--model W.safetensors --inputs IN.safetensors --out OUT.safetensors [options]",
    summary: "one network evaluation of saved inputs (the parity tool)",
    description: "Runs the network once. IN holds x (f32, N x C x H x W), t and y (length N); OUT holds out " +
      "(f32, N x out_channels x H x W).",
    flags: {
      model: { type: "string", value: "W.safetensors", help: "weights: a path or an http(s) URL" },
      inputs: { type: "string", value: "IN.safetensors", help: "tensors x, t and y" },
      out: { type: "string", value: "OUT.safetensors", help: "where tensor out goes" },
      ...WEIGHTS, ...BACKEND, ...MEMORY, ...COMMON,
    },
    run: cmdForward,
  },
  sample: {
    usage: "--model W.safetensors --label INDEX ... --out LATENT.safetensors [options]",
    summary: "samples of any DiC model as a tensor (latents, no decoding)",
    description: "Runs the sampler and writes the final samples as tensor x (N x C x H x W) with the settings in its metadata.",
    flags: {
      model: { type: "string", value: "W.safetensors", help: "weights: a path or an http(s) URL" },
      label: { type: "string", multiple: true, value: "INDEX", help: "class index of one sample" },
      out: { type: "string", value: "LATENT.safetensors", help: "where tensor x goes" },
      ...SAMPLING,
      "init-noise": { type: "string", value: "Z.safetensors", help: "initial noise (tensor x) instead of --seed" },
      ...WEIGHTS, ...BACKEND, ...MEMORY, ...COMMON,
    },
    run: cmdSample,
  },
  decode: {
    usage: "--vae VAE.safetensors --latents LATENT.safetensors --out IMAGE.png [options]",
    summary: "latents written by dic sample to PNGs (SD-VAE, or a cheap preview)",
    description: "Decodes latents (tensor x, N x 4 x h x w) with the SD-VAE decoder; several write IMAGE-1.png, ... " +
      "--preview writes the cheap linear latent-to-RGB picture instead (h x w, approximate, no VAE needed).",
    flags: {
      vae: { type: "string", value: "VAE.safetensors", help: "the SD-VAE decoder (path or http(s) URL)" },
      latents: { type: "string", value: "LATENT.safetensors", help: "tensor x from dic sample" },
      out: { type: "string", value: "IMAGE.png", help: "where the PNG goes" },
      "vae-memory": { type: "string", value: "MB", help: "decode in tiles above this activation memory" },
      preview: { type: "boolean", help: "the linear preview instead of the VAE" },
      ...BACKEND, ...MEMORY, ...COMMON,
    },
    run: cmdDecode,
  },
  backends: {
    usage: "[--backend NAME] [--threads N]",
    summary: "which backends can run here, and which one auto (or --backend) picks",
    description: "Lists every backend, whether it can run here and why not, and which one auto (or --backend) picks.",
    flags: { ...BACKEND, ...COMMON },
    run: cmdBackends,
  },
  serve: {
    usage: "--role host|edge --port P --secret-file F [options]",
    summary: "latent streaming: a GPU host, or an edge serving /v1/generate",
    description: "Latent streaming (docs/protocol.md): a host finishes work at a cut point; an edge serves POST/GET " +
      "/v1/generate (labels, steps, sampler, guidance, seed, cut) and calls the hosts.",
    flags: { ...SERVE_FLAGS, ...COMMON },
    run: (v, io) => runServe(v as ServeFlags, io),
  },
  doctor: {
    usage: "[--json] [--no-parity]",
    summary: "runtime facts, backends and why, and a parity check of each backend",
    description: "Reports the runtime, WebAssembly SIMD / threads, the WebGPU adapter, every backend and why it can or cannot " +
      "run, what auto picks, what the WebGPU probe printed (suppressed), and a conv3x3 parity check of each backend " +
      "against js (exit status 1 when one fails).",
    flags: {
      json: { type: "boolean", help: "print the report as JSON" },
      "no-parity": { type: "boolean", help: "skip the parity checks" },
      ...COMMON,
    },
    run: cmdDoctor,
  },
};

/** The overview printed by `dic --help`. */
function globalHelp(): string {
  const lines = [`dic ${VERSION}: run DiC diffusion models (Conv3x3 U-Nets) anywhere JavaScript runs`, "", "usage: dic <command> [options]", "", "commands:"];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)}${c.summary}`);
  lines.push("", "dic <command> --help lists the options of one command.", "");
  lines.push(...wrap(`backends: ${BACKEND_NAMES.join(", ")}; samplers: ${SAMPLER_NAMES.join(", ")}; guidance modes: ${CFG_MODES.join(", ")}.`, 80, 0));
  lines.push("--version prints the version; --verbose adds stack traces and lets the WebGPU", "probe's native messages through (as env DIC_DEBUG=1 does).");
  return lines.map((l) => (l.length > 80 ? wrap(l, 80, 2, 0).join("\n") : l)).join("\n");
}

/** --backend as given, or, with --threads N / --memory-budget MB, a backend created with them. */
async function backendArg(v: FlagValues): Promise<BackendName | Backend | undefined> {
  if (v.threads === undefined && v["memory-budget"] === undefined) return v.backend as BackendName | undefined;
  const threads = v.threads === undefined ? undefined : num(v.threads as string, "threads", 1, (n) => Number.isInteger(n) && n >= 1 && n <= 256, "an integer in 1..256");
  return (await createBackend(v.backend as BackendName | undefined, { threads, memoryBudget: memoryBudgetArg(v) })).backend;
}

/** --memory-budget MB (MiB) in bytes, or undefined. */
function memoryBudgetArg(v: FlagValues): number | undefined {
  const mb = v["memory-budget"] === undefined ? undefined : num(v["memory-budget"] as string, "memory-budget", 0, (n) => n > 0, "a number of MiB > 0");
  return mb === undefined ? undefined : Math.floor(mb * 1048576);
}

/** Why a file operation failed, in words (the runtime's error codes). */
const FILE_ERRORS: Record<string, string> = {
  ENOENT: "no such file or folder", EACCES: "permission denied", EPERM: "permission denied", EISDIR: "it is a folder",
  ENOTDIR: "a part of the path is not a folder", EROFS: "read-only file system", ENOSPC: "no space left on the device",
  EEXIST: "a part of the path is not a folder" /* mkdir of a parent that is a file */, ENAMETOOLONG: "the name is too long",
};

/** Runs `fn` on the file named by --flag; a file-system failure becomes "--flag: cannot read PATH: why". */
async function onFile<T>(flag: string, path: string, verb: "read" | "write", fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code in FILE_ERRORS) {
      throw new UsageError(`--${flag}: cannot ${verb} ${path}: ${FILE_ERRORS[code]}`, `--${flag}`);
    }
    throw e;
  }
}

/** Writes the output named by --flag. */
function writeOut(flag: string, path: string, bytes: Uint8Array): Promise<void> {
  return onFile(flag, path, "write", () => writeBytes(path, bytes));
}

/** Reads the safetensors file named by --flag. */
function readTensors(flag: string, path: string): Promise<SafetensorsFile> {
  return onFile(flag, path, "read", () => readSafetensorsFile(path));
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
  return v === undefined ? fallback : numberFlag(v, flag, check, what);
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

async function cmdForward(v: FlagValues, io: CliIO): Promise<void> {
  const inputs = need(v.inputs as string, "inputs");
  const out = need(v.out as string, "out");
  const model = await modelArg(v, io);
  const file = await readTensors("inputs", inputs);
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
  await writeOut("out", out, writeSafetensors({ out: { dtype: "F32", shape: res.shape, data: res.data } }, {
    backend: model.backend.name, config: JSON.stringify(c),
  }));
  io.err(`forward: ${model.backend.description}; [${res.shape.join(", ")}] in ${ms.toFixed(0)} ms -> ${out}`);
  const report = model.backend.storageReport?.();
  if (v.verbose && report) for (const line of storageLines(report)) io.err(`forward: ${line}`);
}

async function cmdSample(v: FlagValues, io: CliIO): Promise<void> {
  const out = need(v.out as string, "out");
  const labels = ((v.label as string[] | undefined) ?? []).map((l) => num(l, "label", 0, (n) => Number.isInteger(n) && n >= 0, "a class index"));
  if (labels.length === 0) throw new UsageError("missing --label (give one per sample)");
  const flags = samplingFlags(v);
  if (v.seed !== undefined && v["init-noise"] !== undefined) throw new UsageError("give --seed or --init-noise, not both");
  const model = await modelArg(v, io);
  let initNoise: HostTensor | undefined;
  if (v["init-noise"] !== undefined) {
    const path = v["init-noise"] as string;
    initNoise = tensorOf(await readTensors("init-noise", path), "x", path);
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
  await writeOut("out", out, writeSafetensors({ x: { dtype: "F32", shape: r.latents.shape, data: r.latents.data } }, {
    seed: String(r.seed), sampler: r.sampler, steps: String(r.steps), cfg_scale: String(r.cfgScale), cfg_mode: r.cfgMode,
    labels: JSON.stringify(r.labels), backend: model.backend.name,
  }));
  if (!quiet) io.err(`sample: ${r.sampler} ${r.steps} steps, ${labels.length} sample(s), seed ${r.seed}, ${(r.timings.totalMs / 1000).toFixed(1)} s on ${model.backend.description} -> ${out}`);
}

/** Options shared by sample and generate (sampler, steps, eta, guidance, seed), checked by src/settings.ts. */
function samplingFlags(v: FlagValues) {
  const { steps, sampler, eta, cfgScale, cfgMode, seed } = validateSettings(
    { steps: v.steps, sampler: v.sampler, eta: v.eta, cfgScale: v.cfg, cfgMode: v["cfg-mode"], seed: v.seed },
    { text: true, names: { steps: "--steps", sampler: "--sampler", eta: "--eta", cfgScale: "--cfg", cfgMode: "--cfg-mode", seed: "--seed" } },
  );
  return { steps, sampler, eta, cfgScale, cfgMode, seed };
}

/** --model (required unless `optional`) loaded with --config, --backend, --threads and the download flags. */
async function modelArg(v: FlagValues, io: CliIO, optional = false): Promise<DiCModel> {
  if (optional && v.model === undefined) return loadDefaultModel((await backendArg(v)) ?? "auto");
  const path = need(v.model as string, "model");
  return onFile("model", path, "read", async () => loadModel(path, {
    backend: await backendArg(v),
    config: v.config ? parseConfigArg(v.config as string) : undefined,
    download: downloadFlags(v, io),
  }));
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

async function cmdGenerate(v: FlagValues, io: CliIO): Promise<void> {
  const out = need(v.out as string, "out");
  if (!/\.png$/i.test(out)) throw new UsageError(`--out: "${out}" must end in .png`);
  const grid = Boolean(v.grid);
  const asked = (v.label as string[] | undefined) ?? [];
  if (grid && asked.length) throw new UsageError("give --label or --grid, not both");
  if (!grid && asked.length === 0) throw new UsageError("missing --label (a class name or index; or --grid for every class)");
  const perClass = num(v["per-class"] as string, "per-class", 1, (n) => Number.isInteger(n) && n >= 1 && n <= 64, "an integer in 1..64");
  const scale = num(v.scale as string, "scale", grid ? 3 : 1, (n) => Number.isInteger(n) && n >= 1 && n <= 32, "an integer in 1..32");
  const flags = samplingFlags(v);
  const model = await modelArg(v, io, true);
  const vaePath = v.vae as string | undefined;
  if (model.pixelRange === null && vaePath === undefined) {
    throw new UsageError(`${model.source}: a latent model (no __metadata__.pixel_range); give --vae VAE.safetensors (SD-VAE decoder) or use dic sample`);
  }
  if (model.pixelRange !== null && vaePath !== undefined) throw new UsageError(`--vae: ${model.source} is a pixel-space model, it takes no VAE`);
  const vaeMemoryMb = num(v["vae-memory"] as string, "vae-memory", 0, (x) => x > 0, "a number of megabytes > 0");
  const vae = vaePath === undefined ? undefined : await onFile("vae", vaePath, "read", () => loadVAE(vaePath, { backend: model.backend }));
  const n = model.config.num_classes;
  const labels: (string | number)[] = grid
    ? Array.from({ length: perClass * n }, (_, i) => i % n)
    : asked;
  const quiet = Boolean(v.quiet);
  const r = await generate({
    model, labels, ...flags, onProgress: progressBar(io, quiet), vae, vaeMemoryBudget: vaeMemoryMb ? vaeMemoryMb * 1e6 : undefined,
  });
  const written: string[] = [];
  if (grid) {
    const names = model.classNames ?? [];
    const img = makeGrid(r.images, { columns: n, labels: r.images.map((im) => names[im.label] ?? String(im.label)), scale, padding: 2 });
    await writeOut("out", out, await encodePNG(img, { text: { software: "dic-sdk", sampler: r.sampler, steps: String(r.steps), seed: String(r.seed) } }));
    written.push(out);
  } else {
    for (const [i, img] of r.images.entries()) {
      const path = r.images.length === 1 ? out : out.replace(/(\.png)$/i, `-${i + 1}$1`);
      // Nearest-neighbour upscaling keeps the model's pixels exact, only bigger.
      const png = scale === 1 ? await img.toPNG() : await encodePNG(makeGrid([img], { columns: 1, scale, padding: 0 }), {
        text: { software: "dic-sdk", label: img.labelName ?? String(img.label), sampler: r.sampler, steps: String(r.steps), seed: String(r.seed) },
      });
      await writeOut("out", path, png);
      written.push(path);
    }
  }
  if (!quiet) {
    io.err(`generate: ${r.images.length} image(s), ${r.sampler} ${r.steps} steps, cfg ${r.cfgScale}, seed ${r.seed}, ` +
      `${(r.timings.totalMs / 1000).toFixed(1)} s${r.timings.decodeMs !== undefined ? ` (VAE decode ${(r.timings.decodeMs / 1000).toFixed(1)} s)` : ""} on ${model.backend.name} -> ${written.length > 3 ? `${written[0]} ... ${written[written.length - 1]}` : written.join(", ")}`);
  }
}

async function cmdDecode(v: FlagValues, io: CliIO): Promise<void> {
  const out = need(v.out as string, "out");
  if (!/\.png$/i.test(out)) throw new UsageError(`--out: "${out}" must end in .png`);
  const path = need(v.latents as string, "latents");
  const latents = tensorOf(await readTensors("latents", path), "x", path);
  const vaeMemoryMb = num(v["vae-memory"] as string, "vae-memory", 0, (x) => x > 0, "a number of megabytes > 0");
  const t0 = performance.now();
  let images;
  if (v.preview) {
    if (latents.shape.length !== 4 || latents.shape[1] !== 4) throw new UsageError(`${path}: tensor "x" has shape [${latents.shape.join(", ")}], expected [N, 4, h, w]`);
    images = previewLatents(latents);
  } else {
    const vaePath = need(v.vae as string, "vae");
    // loadVAE makes the backend itself under a budget: it keeps a tile's activations and tiles to them.
    const budget = memoryBudgetArg(v);
    const options = budget === undefined ? { backend: await backendArg(v) } : { backend: v.backend as BackendName | undefined, memoryBudget: budget };
    const vae = await onFile("vae", vaePath, "read", () => loadVAE(vaePath, options));
    const c = vae.config.latent_channels;
    if (latents.shape.length !== 4 || latents.shape[1] !== c) throw new UsageError(`${path}: tensor "x" has shape [${latents.shape.join(", ")}], expected [N, ${c}, h, w]`);
    images = await vae.decodeToRGBA(latents, { memoryBudgetBytes: vaeMemoryMb ? vaeMemoryMb * 1e6 : undefined });
  }
  const written: string[] = [];
  for (const [i, img] of images.entries()) {
    const file = images.length === 1 ? out : out.replace(/(\.png)$/i, `-${i + 1}$1`);
    await writeOut("out", file, await encodePNG(img, { text: { software: "dic-sdk", source: path.split("/").pop() ?? "", decode: v.preview ? "linear preview" : "SD-VAE" } }));
    written.push(file);
  }
  if (!v.quiet) io.err(`decode: ${images.length} image(s) ${images[0].width}x${images[0].height} in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${written.join(", ")}`);
}

async function cmdBackends(v: FlagValues, io: CliIO): Promise<void> {
  for (const b of await listBackends()) io.out(`${b.name.padEnd(8)} ${b.available ? "available" : "unavailable"}: ${b.why}`);
  const picked = await backendArg({ ...v, backend: v.backend ?? "auto" });
  const auto = typeof picked === "object" ? { reason: `${picked.name} (--threads)`, backend: picked } : await createBackend(picked ?? "auto");
  io.out(`${String(v.backend ?? "auto").padEnd(8)} -> ${auto.reason}: ${auto.backend.description}`);
  (auto.backend as { close?: () => void }).close?.();
}

/** --sha256 / --no-cache and a download progress line, for --model given as an http(s) URL. */
function downloadFlags(v: FlagValues, io: CliIO): DownloadOptions {
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

async function cmdDoctor(v: FlagValues, io: CliIO): Promise<number> {
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
  if (verbose) setVerbose(true);
  try {
    const at = args.findIndex((a) => !a.startsWith("-"));
    const name = at < 0 ? undefined : args[at];
    if (name === undefined || name === "help") {
      if (args.includes("--version")) {
        io.out(`dic-sdk ${VERSION}`);
        return 0;
      }
      const topic = name === "help" ? args[at + 1] : undefined;
      if (topic !== undefined && COMMANDS[topic]) {
        io.out(commandHelp(topic));
        return 0;
      }
      const asked = name === "help" || args.includes("--help") || args.includes("-h");
      const stray = args.find((a) => a !== "--help" && a !== "-h" && a !== "--verbose" && a !== "help" && a !== topic);
      if (stray !== undefined) throw new UsageError(`${stray} needs a command first (dic <command> ${stray}); see dic --help`);
      if (asked) io.out(globalHelp());
      else io.err(globalHelp());
      return asked ? 0 : 1;
    }
    const cmd = COMMANDS[name];
    if (!cmd) {
      const hint = didYouMean(name, Object.keys(COMMANDS));
      throw new UsageError(`unknown command "${name}"${hint ? ` (did you mean "${hint}"?)` : ""}; commands: ${Object.keys(COMMANDS).join(", ")} (see dic --help)`);
    }
    const rest = [...args.slice(0, at), ...args.slice(at + 1)];
    if (rest.includes("--help") || rest.includes("-h")) {
      io.out(commandHelp(name));
      return 0;
    }
    const { values, positionals } = parseFlags(name, rest, cmd.flags, otherFlags(name));
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}" (see dic ${name} --help)`);
    return (await cmd.run(values, io)) ?? 0;
  } catch (e) {
    const err = e as Error;
    const msg = (err.message || String(e)).split("\n")[0];
    io.err(`dic: error: ${msg}`);
    if (verbose && err.stack) io.err(err.stack);
    return 1;
  }
}

/** The help of one command, generated from its flag table. */
function commandHelp(name: string): string {
  const c = COMMANDS[name];
  return formatHelp(name, c.usage, c.description, c.flags);
}

/** Every flag of the commands other than `name`, with the commands that take it. */
function otherFlags(name: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [other, c] of Object.entries(COMMANDS)) {
    if (other === name) continue;
    for (const f of Object.keys(c.flags)) m.set(f, [...(m.get(f) ?? []), other]);
  }
  return m;
}

/** The option tables, for tests and tools: each command's flags by name. */
export function commandFlags(): Record<string, Readonly<Record<string, Flag>>> {
  return Object.fromEntries(Object.entries(COMMANDS).map(([k, c]) => [k, c.flags]));
}
