// loadVAE(): an SD-VAE decoder (AutoencoderKL safetensors, e.g. sd-vae-ft-ema or -mse
// diffusion_pytorch_model.safetensors) from a path, URL, bytes or Response, bound to a backend.
import type { Backend } from "../src/backend/contract.ts";
import type { BackendName } from "../src/backend/registry.ts";
import { toRGBA, type RgbaImage } from "../src/image.ts";
import type { HostTensor } from "../src/tensor.ts";
import { bindVAEFrom, type DecodeOptions, decodeLatents, type DecodeResult, estimateDecodeBytes, latentPreview, type VAEConfig, type VAEConfigInput, vaeConfigForFile, type VAEDecoderGraph } from "../src/vae/index.ts";
import { openWeightSource } from "../src/weights/open.ts";
import type { WeightLoadInfo } from "../src/weights/source.ts";
import { type ModelSource, resolveBackend } from "./model.ts";

/** Options of `loadVAE`. */
export interface LoadVAEOptions {
  /** "auto" (default), "wasm", "js", or a Backend instance (e.g. the DiC model's, to share it). */
  backend?: BackendName | Backend;
  /** Overrides what the file's shapes and metadata say (e.g. `{ scaling_factor: 0.13025 }`). */
  config?: VAEConfigInput;
  /**
   * Most bytes the backend's memory may take (as in LoadModelOptions.memoryBudget). The plan keeps what a
   * 16x16-latent tile needs for activations, or half the budget if less, and `decode` then tiles to fit that
   * unless given its own memoryBudgetBytes.
   */
  memoryBudget?: number;
}

/** An SD-VAE decoder ready to turn latents into pictures. */
export class VAEModel {
  /** @internal use `loadVAE`. */
  constructor(
    readonly graph: VAEDecoderGraph,
    /** Why this backend runs. */
    readonly backendReason: string,
    /** Where the weights came from (path, URL or "<bytes>"). */
    readonly source: string,
    /** How the weights were read (mode, bytes read of the file's size, requests; see `DiCModel.loadInfo`). */
    readonly loadInfo: WeightLoadInfo | null = null,
  ) {}

  /** The decoder configuration (widths read from the file's tensor shapes). */
  get config(): VAEConfig {
    return this.graph.config;
  }

  /** The backend that runs the decoder. */
  get backend(): Backend {
    return this.graph.backend;
  }

  /**
   * Decodes latents [N, latent_channels, h, w] (as a latent DiC samples them; divided by scaling_factor
   * here) into images [N, 3, 8h, 8w] in about [-1, 1]; tiled when `memoryBudgetBytes` or `tile` says so.
   *
   * @example
   * const vae = await loadVAE("sd-vae-ft-ema/diffusion_pytorch_model.safetensors");
   * const { image } = await vae.decode(latents, { memoryBudgetBytes: 400e6 });
   */
  decode(latents: HostTensor, options: DecodeOptions = {}): Promise<DecodeResult> {
    const budget = options.memoryBudgetBytes ?? this.activationBudget;
    return decodeLatents(this.graph, latents, budget === undefined ? options : { ...options, memoryBudgetBytes: budget });
  }

  /** @internal the activation memory a `memoryBudget` load kept for decodes (their default tiling budget). */
  activationBudget?: number;

  /** Decodes latents into RGBA pictures (values clamped from [-1, 1]). */
  async decodeToRGBA(latents: HostTensor, options: DecodeOptions = {}): Promise<RgbaImage[]> {
    return toRGBA((await this.decode(latents, options)).image, [-1, 1]);
  }

  /** Frees the decoder's weights on its backend. */
  dispose(): void {
    this.graph.dispose();
  }
}

/**
 * A fast approximate picture of SD latents without the decoder (a linear map per latent pixel; 8x smaller
 * than the decode): for step previews in `onProgress`.
 *
 * @example
 * await generate({ model, vae, label: 207, onProgress: (p) => show(previewLatents(p.x)[0]) });
 */
export function previewLatents(latents: HostTensor): RgbaImage[] {
  return toRGBA(latentPreview(latents), [-1, 1]);
}


/**
 * Loads an SD-VAE decoder: diffusers AutoencoderKL safetensors (full VAE or decoder only; current or legacy
 * attention names; f32, f16 or bf16), configuration read from the tensor shapes. Only the decoder's
 * tensors are read, one at a time (a path through a file handle, a URL by HTTP Range, a Response as a
 * stream); `vae.loadInfo` says how many bytes that took.
 *
 * @example
 * import { loadVAE } from "dic-sdk";
 * const vae = await loadVAE("vae/diffusion_pytorch_model.safetensors", { backend: "wasm" });
 * console.log(vae.config.block_out_channels); // [128, 256, 512, 512]
 */
export async function loadVAE(source: ModelSource, options: LoadVAEOptions = {}): Promise<VAEModel> {
  const overrides = options.config ?? {};
  // The tensor table is checked before the data is read; then only the decoder's tensors are read, one by
  // one (a path through a file handle, a URL by HTTP Range, without the weights cache, a Response as a stream).
  const src = await openWeightSource(source, { download: { cache: false }, partial: true });
  try {
    const header = await src.header();
    // Under a budget the plan keeps what a 16x16-latent tile of the decode needs for activations.
    const budget = options.memoryBudget;
    const reserve = budget === undefined ? undefined : Math.min(Math.floor(budget / 2), estimateDecodeBytes(vaeConfigForFile(header, overrides), 16, 16));
    const { backend, reason } = await resolveBackend(options.backend, budget, reserve);
    const graph = await bindVAEFrom(src, backend, overrides);
    const vae = new VAEModel(graph, reason, src.name, Object.freeze({ ...src.info }));
    if (reserve !== undefined && backend.name === "wasm") vae.activationBudget = reserve;
    return vae;
  } finally {
    await src.close();
  }
}
