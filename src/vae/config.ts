// Configuration of the Stable Diffusion VAE decoder (diffusers AutoencoderKL's decode path): the
// fields and defaults of the sd-vae-ft-ema / -mse checkpoints, which DiC's official latents use.

/** Decoder configuration, with AutoencoderKL's constructor names. */
export interface VAEConfig {
  /** Encoder widths per level; the decoder runs them in reverse (default [128, 256, 512, 512]). */
  block_out_channels: number[];
  /** The decoder's up blocks hold layers_per_block + 1 ResNet blocks (default 2, so 3). */
  layers_per_block: number;
  /** Latent channels (default 4). */
  latent_channels: number;
  /** Image channels (default 3). */
  out_channels: number;
  /** GroupNorm groups of every norm (default 32, eps 1e-6). */
  norm_groups: number;
  /** Latents are divided by this before decoding (default 0.18215, SD 1.x / 2.x). */
  scaling_factor: number;
}

/** What a caller or a file's `__metadata__.config` may set. */
export type VAEConfigInput = Partial<VAEConfig>;

/** The configuration of stabilityai/sd-vae-ft-ema and sd-vae-ft-mse. */
export const SD_VAE_CONFIG: Readonly<VAEConfig> = Object.freeze({
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  latent_channels: 4,
  out_channels: 3,
  norm_groups: 32,
  scaling_factor: 0.18215,
});

/** GroupNorm epsilon of every norm of the decoder. */
export const VAE_NORM_EPS = 1e-6;

const positiveInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v > 0;

/** Fills `input` over `base` (default SD's) and validates every field, naming the bad one. */
export function resolveVAEConfig(input: VAEConfigInput = {}, base: Readonly<VAEConfig> = SD_VAE_CONFIG): VAEConfig {
  const known = new Set(Object.keys(SD_VAE_CONFIG));
  for (const k of Object.keys(input)) if (!known.has(k)) throw new Error(`VAE config: unknown field "${k}" (${[...known].join(", ")})`);
  const c: VAEConfig = { ...base, block_out_channels: [...base.block_out_channels], ...input } as VAEConfig;
  if (!Array.isArray(c.block_out_channels) || c.block_out_channels.length < 1 || !c.block_out_channels.every(positiveInt)) {
    throw new Error(`VAE config: block_out_channels must be a non-empty list of positive integers, got ${JSON.stringify(c.block_out_channels)}`);
  }
  for (const f of ["layers_per_block", "latent_channels", "out_channels", "norm_groups"] as const) {
    if (!positiveInt(c[f]) && !(f === "layers_per_block" && c[f] === 0)) throw new Error(`VAE config: ${f} must be a positive integer, got ${JSON.stringify(c[f])}`);
  }
  if (!(typeof c.scaling_factor === "number" && Number.isFinite(c.scaling_factor) && c.scaling_factor > 0)) {
    throw new Error(`VAE config: scaling_factor must be a number > 0, got ${JSON.stringify(c.scaling_factor)}`);
  }
  for (const ch of c.block_out_channels) {
    if (ch % c.norm_groups !== 0) throw new Error(`VAE config: norm_groups ${c.norm_groups} does not divide block width ${ch}`);
  }
  return c;
}

/** Pixels per latent pixel: 2^(levels - 1) (8 for SD's four levels). */
export function vaeUpscale(cfg: VAEConfig): number {
  return 2 ** (cfg.block_out_channels.length - 1);
}
