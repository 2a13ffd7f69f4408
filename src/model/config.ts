// DiC model configuration with the official constructor argument names (dic_models.DiC), the
// four presets of the paper, and validation that names the offending field.

/** A fully resolved DiC configuration (official constructor names). */
export interface DiCConfig {
  input_size: number;
  in_channels: number;
  hidden_size: number;
  /** Blocks per stage: encoder 0, encoder 1, latent, decoder 1, decoder 0. */
  depth: number[];
  /** Channel multipliers of the same five stages. */
  mult_channels: number[];
  num_classes: number;
  learn_sigma: boolean;
  skip_stride: number;
  class_dropout_prob: number;
}

/** Partial configuration as users write it: any official field, plus an optional preset name. */
export type DiCConfigInput = Partial<DiCConfig> & { preset?: PresetName } & Record<string, unknown>;

/** Names of the official presets. */
export const PRESET_NAMES = ["DiC-S", "DiC-B", "DiC-XL", "DiC-H"] as const;
/** One of PRESET_NAMES. */
export type PresetName = (typeof PRESET_NAMES)[number];

/** Official presets (DiC_S/B/XL/H of the release; mult [1,2,4,2,1], skip_stride 3). */
export const PRESETS: Record<PresetName, Pick<DiCConfig, "hidden_size" | "depth">> = {
  "DiC-S": { hidden_size: 96, depth: [6, 6, 5, 6, 6] },
  "DiC-B": { hidden_size: 192, depth: [6, 6, 5, 6, 6] },
  "DiC-XL": { hidden_size: 384, depth: [7, 7, 8, 7, 7] },
  "DiC-H": { hidden_size: 384, depth: [14, 14, 10, 14, 14] },
};

/** Defaults of the official DiC_default constructor for ImageNet 256 latents. */
export const DEFAULT_CONFIG: DiCConfig = {
  input_size: 32,
  in_channels: 4,
  hidden_size: 96,
  depth: [6, 6, 5, 6, 6],
  mult_channels: [1, 2, 4, 2, 1],
  num_classes: 1000,
  learn_sigma: true,
  skip_stride: 3,
  class_dropout_prob: 0.1,
};

// Official constructor arguments that select the DiC block variant; only the values DiC_default
// uses are supported. Others (num_heads, mlp_ratio, ...) are unused by DiC and accepted.
const FIXED_ARGS: Record<string, unknown> = {
  block_type: "unetblock", actf: [1, 1], norm_type: "gnorm", norm_type1: "gnorm", actinada: 1, affinef: 3,
  actfunc: "gelu", affine: 0, blockconfig: 0, num_groups: 32, min_channels: 4,
};
const IGNORED_ARGS = new Set(["num_heads", "mlp_ratio", "rep", "ffn_type", "preset"]);

/** GroupNorm groups of the official block: min(32, channels // 4). */
export function groupsFor(channels: number): number {
  return Math.min(32, Math.floor(channels / 4));
}

/** Channels of each of the five stages. */
export function stageChannels(cfg: DiCConfig): number[] {
  return cfg.mult_channels.map((m) => cfg.hidden_size * m);
}

/** Output channels: 2 * in_channels with learned sigma (eps, then variance values). */
export function outChannels(cfg: DiCConfig): number {
  return cfg.in_channels * (cfg.learn_sigma ? 2 : 1);
}

/** Rows of each label table: num_classes, plus the null class when label dropout was used. */
export function labelRows(cfg: DiCConfig): number {
  return cfg.num_classes + (cfg.class_dropout_prob > 0 ? 1 : 0);
}

/** Parses a preset name or a JSON object string (as given to `--config`). */
export function parseConfigArg(arg: string): DiCConfigInput {
  if ((PRESET_NAMES as readonly string[]).includes(arg)) return { preset: arg as PresetName };
  let parsed: unknown;
  try {
    parsed = JSON.parse(arg);
  } catch {
    throw new Error(`config: "${arg}" is neither a preset (${PRESET_NAMES.join(", ")}) nor a JSON object`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`config: expected a JSON object, got ${JSON.stringify(parsed)}`);
  }
  return parsed as DiCConfigInput;
}

/**
 * Resolves a configuration: `base` (e.g. from a weights file), then the preset, then the fields given.
 * Three-entry `depth`/`mult_channels` are mirrored the official way. Throws naming the bad field.
 */
export function resolveConfig(input: DiCConfigInput = {}, base: DiCConfig = DEFAULT_CONFIG): DiCConfig {
  for (const [k, v] of Object.entries(input)) {
    if (k in FIXED_ARGS) {
      if (JSON.stringify(v) !== JSON.stringify(FIXED_ARGS[k])) {
        throw new Error(`config.${k}: only ${JSON.stringify(FIXED_ARGS[k])} (the DiC block) is supported, got ${JSON.stringify(v)}`);
      }
    } else if (!(k in DEFAULT_CONFIG) && !IGNORED_ARGS.has(k)) {
      throw new Error(`config: unknown field "${k}" (known: ${Object.keys(DEFAULT_CONFIG).join(", ")}, preset)`);
    }
  }
  let cfg: DiCConfig = { ...base, depth: [...base.depth], mult_channels: [...base.mult_channels] };
  if (input.preset !== undefined) {
    const p = PRESETS[input.preset];
    if (!p) throw new Error(`config.preset: unknown "${input.preset}" (valid: ${PRESET_NAMES.join(", ")})`);
    cfg = { ...cfg, ...p, depth: [...p.depth], mult_channels: [1, 2, 4, 2, 1], skip_stride: 3 };
  }
  for (const k of Object.keys(DEFAULT_CONFIG) as (keyof DiCConfig)[]) {
    if (input[k] !== undefined) (cfg as unknown as Record<string, unknown>)[k] = input[k];
  }
  cfg.depth = mirror(cfg.depth, "depth", (d) => [d[1] + 1, d[0] + 1]);
  cfg.mult_channels = mirror(cfg.mult_channels, "mult_channels", (m) => [m[1], m[0]]);
  validate(cfg);
  return cfg;
}

/**
 * Upper bounds of the configuration fields, checked before anything is derived from them (a weights
 * file's config alone must not make the loader build a list of a million tensor names). Generous: the
 * largest official model, DiC-H, has depth 14, hidden 384, multipliers up to 4 and 1000 classes.
 */
export const CONFIG_LIMITS = {
  depth: 256,
  hidden_size: 16384,
  mult_channels: 64,
  num_classes: 1_000_000,
  input_size: 4096,
  in_channels: 1024,
  skip_stride: 256,
} as const;

function mirror(v: unknown, field: string, tail: (v: number[]) => number[]): number[] {
  // NOTE: the length is checked before the entries, so a huge list is refused without a walk over it.
  if (Array.isArray(v) && v.length !== 3 && v.length !== 5) throw new Error(`config.${field}: expected 3 or 5 entries (3 levels), got ${v.length}`);
  const max = CONFIG_LIMITS[field as "depth" | "mult_channels"];
  if (Array.isArray(v) && v.some((x) => typeof x === "number" && x > max)) {
    throw new Error(`config.${field}: entries above ${max} are refused, got ${JSON.stringify(v)}`);
  }
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x > 0)) {
    throw new Error(`config.${field}: expected a list of positive integers, got ${JSON.stringify(v)}`);
  }
  if (v.length === 3) return [...v, ...tail(v)];
  if (v.length !== 5) throw new Error(`config.${field}: expected 3 or 5 entries (3 levels), got ${v.length}`);
  return [...v];
}

function positiveInt(cfg: DiCConfig, k: keyof DiCConfig): void {
  const v = cfg[k];
  if (!Number.isInteger(v) || (v as number) <= 0) throw new Error(`config.${k}: expected a positive integer, got ${JSON.stringify(v)}`);
  const max = CONFIG_LIMITS[k as keyof typeof CONFIG_LIMITS];
  if (max !== undefined && (v as number) > max) throw new Error(`config.${k}: ${v} is above the limit of ${max}`);
}

function validate(cfg: DiCConfig): void {
  for (const k of ["input_size", "in_channels", "hidden_size", "num_classes", "skip_stride"] as const) positiveInt(cfg, k);
  if (typeof cfg.learn_sigma !== "boolean") throw new Error(`config.learn_sigma: expected true or false, got ${JSON.stringify(cfg.learn_sigma)}`);
  const p = cfg.class_dropout_prob;
  if (typeof p !== "number" || !(p >= 0 && p < 1)) throw new Error(`config.class_dropout_prob: expected a number in [0, 1), got ${JSON.stringify(p)}`);
  if (cfg.input_size % 4 !== 0) throw new Error(`config.input_size: ${cfg.input_size} must be divisible by 4 (two 2x downsamplings)`);
  const d = cfg.depth;
  // Each encoder level saves ceil(depth / skip_stride) skips that its decoder level must consume.
  for (const [e, dd] of [[0, 4], [1, 3]]) {
    const saved = Math.ceil(d[e] / cfg.skip_stride), used = Math.ceil(d[dd] / cfg.skip_stride);
    if (saved !== used) {
      throw new Error(`config.depth/skip_stride: encoder stage ${e} (${d[e]} blocks) saves ${saved} skips but decoder stage ${dd} (${d[dd]} blocks) consumes ${used}, with skip_stride ${cfg.skip_stride}`);
    }
  }
  const m = cfg.mult_channels;
  if (m[3] !== m[1] || !m.slice(0, 3).includes(m[4])) {
    throw new Error(`config.mult_channels: decoder multipliers must match encoder ones (conditions are shared), got ${JSON.stringify(m)}`);
  }
  const ch = stageChannels(cfg);
  // Every GroupNorm of the network must split its channels evenly: min(32, C // 4) groups.
  const widths = new Set<number>([...ch, ch[3] + ch[1], ch[4] + ch[0]]);
  for (const c of widths) {
    const g = groupsFor(c);
    if (g < 1 || c % g !== 0) {
      throw new Error(`config.hidden_size/mult_channels: a block with ${c} channels needs min(32, ${c} // 4) = ${g} GroupNorm groups, which do not divide it`);
    }
  }
  if (ch[1] % 4 !== 0 || ch[2] % 4 !== 0) {
    throw new Error(`config.hidden_size/mult_channels: downsampling convs need stage channels divisible by 4, got ${ch[1]} and ${ch[2]}`);
  }
}
