// loadModel(): weights from a path, URL, bytes or Response, bound to a backend, with forward().
import type { Backend } from "../src/backend/contract.ts";
import { type BackendName, type BackendOptions, createBackend } from "../src/backend/registry.ts";
import { type DiCConfig, type DiCConfigInput, parseConfigArg } from "../src/model/config.ts";
import type { DiCGraph } from "../src/model/dic.ts";
import { bindDiCFrom, bindDiCKept, configForFile } from "../src/model/load.ts";
import { checkModelPart, type ModelPart } from "../src/model/params.ts";
import { openWeightSource } from "../src/weights/open.ts";
import type { WeightLoadInfo, WeightSource } from "../src/weights/source.ts";
import type { DownloadOptions } from "../src/weights/download.ts";
import { DicError } from "../src/errors.ts";
import { type CfgMode, checkCfgMode } from "../src/samplers/guidance.ts";
import { checkSamplerName, type SamplerName } from "../src/samplers/index.ts";
import { type HostTensor, hostTensor, shapeStr } from "../src/tensor.ts";

/** Where weights come from: a file path, an http(s)/file URL, raw bytes, or a fetch Response. */
export type ModelSource = string | URL | Uint8Array | ArrayBuffer | Response;

/** Options of `loadModel`. */
export interface LoadModelOptions {
  /** "auto" (default), "webgpu", "wasm", "js" (see BACKEND_NAMES), or a Backend instance (e.g. from createBackend). */
  backend?: BackendName | Backend;
  /** wasm: threads that share each convolution, the caller included (default: env DIC_THREADS, else min(cores, 4)). */
  threads?: number;
  /** webgpu: store tensors in f16 where the adapter has "shader-f16" (default false). */
  f16?: boolean;
  /** Overrides the configuration stored in the file: a preset name ("DiC-S") or official fields. */
  config?: string | DiCConfigInput;
  /**
   * For http(s) URLs and Responses: progress, SHA-256 check and caching (see `downloadWeights`). A URL is
   * read with HTTP Range requests, only the tensors `part` needs, the ranges kept in the Cache API where
   * the runtime has one; a server that ignores Range is read once as a stream (`loadInfo.notice` says so).
   * With `sha256` the whole file is downloaded and checked instead (a hash covers the whole file). On
   * servers a `full` load with the folder cache on downloads the whole file into the cache, as before;
   * `ranges: false` always downloads whole.
   */
  download?: DownloadOptions;
  /**
   * Most bytes the backend's memory may take (wasm: weights, expansion scratch and activations; README
   * "Memory budget"): weights are stored compactly (f16 or int8 3x3 kernels) where the fast form does not fit.
   * Too small a budget throws MemoryBudgetError (`code` "memory_budget_too_small") saying what it would need.
   */
  memoryBudget?: number;
  /**
   * The tensors to load (default "full"): "encode" (embedders, encoder, latent stage: the edge of the
   * `unet` cut) or "decode" (decoder, head and the conditions they take: its host). A part's model runs
   * only its half of the network; `forward` needs "full". Any part reads tensor by tensor: a file through
   * a file handle, a URL by Range, a Response as a stream; the whole file is never held at once.
   */
  part?: ModelPart;
}

/**
 * What a weights file says about its model without the weights: the configuration and the
 * `__metadata__` (class names, pixel range, sampling defaults). A DiCModel is one with its weights bound
 * to a backend; an edge with no weights (the `remote` cut) serves from a card alone (`loadRemoteModel`).
 */
export class DiCModelCard {
  constructor(
    /** The resolved configuration (official constructor names). */
    readonly config: DiCConfig,
    /** The weights file's `__metadata__`. */
    readonly metadata: Readonly<Record<string, string>>,
    /** Where the weights came from (path, URL, "<bytes>", or the host a card was read from). */
    readonly source: string,
  ) {}

  /** Class names from the file's `__metadata__.class_names` (JSON array), or null when absent. */
  get classNames(): string[] | null {
    const raw = this.metadata.class_names;
    if (raw === undefined) return null;
    try {
      const v = JSON.parse(raw);
      if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v;
    } catch { /* reported below */ }
    throw new Error(`${this.source}: __metadata__.class_names must be a JSON array of strings`);
  }

  /**
   * Pixel range of a pixel-space model (`__metadata__.pixel_range`, e.g. "[-1, 1]"), or null for a
   * latent model (whose samples need a VAE decoder to become images).
   */
  get pixelRange(): [number, number] | null {
    const raw = this.metadata.pixel_range;
    if (raw === undefined) return null;
    const v = JSON.parse(raw);
    if (!Array.isArray(v) || v.length !== 2 || !v.every(Number.isFinite) || !(v[0] < v[1])) {
      throw new Error(`${this.source}: __metadata__.pixel_range must be "[low, high]", got ${raw}`);
    }
    return [v[0], v[1]];
  }

  /**
   * Sampling settings the model's authors measured as the best speed/quality trade-off
   * (`__metadata__.sampling_defaults`, JSON `{sampler, steps, cfg_scale, cfg_mode}`); empty when absent.
   */
  get samplingDefaults(): { sampler?: SamplerName; steps?: number; cfgScale?: number; cfgMode?: CfgMode } {
    const raw = this.metadata.sampling_defaults;
    if (raw === undefined) return {};
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(raw);
    } catch {
      throw new Error(`${this.source}: __metadata__.sampling_defaults is not valid JSON`);
    }
    return {
      sampler: v.sampler === undefined ? undefined : checkSamplerName(String(v.sampler)),
      steps: typeof v.steps === "number" ? v.steps : undefined,
      cfgScale: typeof v.cfg_scale === "number" ? v.cfg_scale : undefined,
      cfgMode: v.cfg_mode === undefined ? undefined : checkCfgMode(String(v.cfg_mode)),
    };
  }

  /**
   * Resolves a class given by index or by name: case-insensitive, ignoring spaces and dashes, and
   * each "/"-separated part of a name counts ("t-shirt", "top" and "T-shirt/top" all work).
   */
  resolveLabel(label: string | number): number {
    const n = this.config.num_classes;
    const names = this.classNames;
    if (typeof label === "number" || /^-?\d+$/.test(label)) {
      const i = Number(label);
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`label ${label} outside 0..${n - 1}`);
      return i;
    }
    const key = (s: string) => s.toLowerCase().replace(/[\s_-]+/g, "");
    const want = key(label);
    const hit = names?.findIndex((name) => key(name) === want || name.split("/").some((part) => key(part) === want)) ?? -1;
    if (hit < 0) {
      const valid = names ? names.map((s) => `"${s}"`).join(", ") : "none (this model has no class names; use 0.." + (n - 1) + ")";
      throw new Error(`unknown label "${label}"; valid names: ${valid}`);
    }
    return hit;
  }

}

/** A DiC model ready to run on a backend. */
export class DiCModel extends DiCModelCard {
  /** @internal use `loadModel`. */
  constructor(
    readonly graph: DiCGraph,
    /** Why this backend runs (explicit option, environment, or auto priority). */
    readonly backendReason: string,
    metadata: Readonly<Record<string, string>>,
    source: string,
    /**
     * How the weights were read: mode (memory, file, ranges, stream, download), bytes read of the file's
     * size, requests, and a `notice` when the load fell back (e.g. a server that ignored Range).
     */
    readonly loadInfo: WeightLoadInfo | null = null,
  ) {
    super(graph.config, metadata, source);
  }

  /** The tensors this model holds: "full", or one part of the `unet` cut ("encode", "decode"). */
  get part(): ModelPart {
    return this.graph.part;
  }

  /**
   * @internal Binds the same weights to another backend; set only for backends that can lose their
   * device (webgpu), so that `generate()` can continue on wasm.
   */
  rebind?: (backend: Backend, reason: string) => DiCModel;

  /** @internal Set by `loadModel` when it created the backend (so `dispose` closes it). */
  ownsBackend = false;
  private isDisposed = false;

  /** Whether `dispose` ran. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /**
   * Frees the weights and, when `loadModel` created the backend, closes it (stopping its worker
   * threads); a Backend instance passed in stays open. The model cannot run afterwards. Idempotent.
   * Also `await using model = await loadModel(...)` where the runtime has `Symbol.asyncDispose`.
   *
   * @example
   * const model = await loadModel("dic-s.safetensors");
   * try { await generate({ model, label: 3 }); } finally { model.dispose(); }
   */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.graph.freeWeights();
    if (this.ownsBackend) this.backend.close();
  }

  /** The backend that runs this model. */
  get backend(): Backend {
    return this.graph.backend;
  }

  /**
   * One network evaluation: x [N, in_channels, S, S], t (timesteps, one per row), y (labels).
   * Returns [N, out_channels, S, S]: eps, then the variance values when the model learns sigma.
   *
   * @example
   * const model = await loadModel("dic-s.safetensors");
   * const out = await model.forward({ shape: [1, 4, 32, 32], data: new Float32Array(4096) }, [500], [207]);
   */
  async forward(x: HostTensor, t: ArrayLike<number>, y: ArrayLike<number>): Promise<HostTensor> {
    if (this.isDisposed) throw new Error(`forward: the model ${this.source} was disposed`);
    const c = this.config;
    if (x.shape.length !== 4 || x.shape[1] !== c.in_channels || x.shape[2] !== c.input_size || x.shape[3] !== c.input_size) {
      throw new Error(`forward: x has shape ${shapeStr(x.shape)}, expected [N, ${c.in_channels}, ${c.input_size}, ${c.input_size}]`);
    }
    return this.graph.forwardHost(hostTensor(x.shape, x.data, "x"), Array.from(t), Array.from(y));
  }
}

// `await using`: defined where the runtime has the symbol (Node 20.4+, Deno, Bun, recent browsers).
const asyncDispose = (Symbol as { asyncDispose?: symbol }).asyncDispose;
if (asyncDispose) {
  Object.defineProperty(DiCModel.prototype, asyncDispose, {
    value(this: DiCModel) {
      this.dispose();
      return Promise.resolve();
    },
  });
}

/** The backend option of the loaders: a Backend instance as given, else one created by the registry. */
export async function resolveBackend(
  option: BackendName | Backend | undefined,
  memoryBudget?: number,
  activationReserve?: number,
  created: Pick<BackendOptions, "threads" | "f16"> = {},
): Promise<{ backend: Backend; reason: string }> {
  if (typeof option === "object") {
    if (memoryBudget !== undefined) throw new Error("memoryBudget: the loader creates no backend when given an instance; pass memoryBudget to createWasmBackend instead");
    if (created.threads !== undefined || created.f16 !== undefined) {
      throw new DicError("conflicting_options", "threads and f16 configure a backend that is created; a Backend instance was given (create it with those options instead)", { field: "backend" });
    }
    return { backend: option, reason: `${option.name} (instance given)` };
  }
  if (memoryBudget !== undefined && !(Number.isFinite(memoryBudget) && memoryBudget > 0)) throw new Error(`memoryBudget must be a positive number of bytes, got ${memoryBudget}`);
  const choice = await createBackend(option, { ...created, memoryBudget, activationReserve: memoryBudget === undefined ? undefined : activationReserve });
  if (memoryBudget !== undefined && choice.backend.name !== "wasm") choice.reason += "; memoryBudget not applied (only the wasm backend takes one)";
  return choice;
}

/**
 * Loads DiC weights (safetensors with official PyTorch key names; f32, f16 or bf16 storage) and
 * binds them to a backend. The configuration comes from the file's `__metadata__.config` JSON and
 * can be overridden with `options.config`. The header is validated before any tensor data is read; then
 * each tensor is read, converted and uploaded in turn (a path through a file handle, an http(s) URL by
 * HTTP Range requests, a Response as a stream), so the whole file is never held at once. `options.part`
 * loads one side of the `unet` cut only; `model.loadInfo` says how the bytes were read and how many.
 *
 * @example
 * import { loadModel } from "dic-sdk";
 * const model = await loadModel("weights/dic-s.safetensors", { backend: "js", config: "DiC-S" });
 * console.log(model.config.hidden_size, model.backend.description);
 * // The edge of a unet cut: only the embedders, encoder and latent stage, read by Range.
 * const edge = await loadModel("https://example.com/dic-s.safetensors", { part: "encode" });
 * console.log(edge.loadInfo?.bytesRead, "of", edge.loadInfo?.fileSize, edge.loadInfo?.notice ?? "");
 */
export async function loadModel(source: ModelSource, options: LoadModelOptions = {}): Promise<DiCModel> {
  const part = checkModelPart(options.part ?? "full");
  const src = await openWeightSource(source, { download: options.download, partial: part !== "full" });
  try {
    return await loadModelFrom(src, options);
  } finally {
    await src.close();
  }
}

/**
 * Binds a DiC model from an open weight source (the caller closes it): header checked against the
 * configuration first, then the tensors of `options.part` one by one.
 * @internal shared by loadModel and loadServingModel.
 */
export async function loadModelFrom(src: WeightSource, options: Omit<LoadModelOptions, "download"> = {}): Promise<DiCModel> {
  const overrides = typeof options.config === "string" ? parseConfigArg(options.config) : (options.config ?? {});
  const part = checkModelPart(options.part ?? "full");
  // The header is checked against the configuration before any tensor data is read.
  const header = await src.header();
  const config = configForFile(header, overrides);
  const { backend, reason } = await resolveBackend(options.backend, options.memoryBudget, undefined, { threads: options.threads, f16: options.f16 });
  // A model on a backend that can lose its device (webgpu) keeps the raw tensor bytes (an int8 weight's
  // values) so that generate() can continue on the backend's deviceLossFallback.
  const kept = backend.deviceLossFallback ? new Map<string, Uint8Array | Float32Array>() : null;
  const owned = typeof options.backend !== "object";
  let model: DiCModel;
  try {
    const graph = await bindDiCFrom(src, config, backend, { part, keep: kept ? (n, v) => kept.set(n, v.slice()) : undefined });
    model = new DiCModel(graph, reason, header.metadata, src.name, Object.freeze({ ...src.info }));
  } catch (e) {
    if (owned) backend.close(); // weights refused: nothing may keep the backend's threads alive
    throw e;
  }
  model.ownsBackend = owned;
  if (kept) {
    const info = model.loadInfo;
    model.rebind = (b, why) => {
      const m = new DiCModel(bindDiCKept(kept, header, config, b, part), why, header.metadata, src.name, info);
      m.ownsBackend = true;
      return m;
    };
  }
  return model;
}
