// What both ends of a session agree on (docs/protocol.md section 5): the model (configuration and
// weights hash), tensor shapes at each cut point, and the checks a host runs on a hello.
import type { DiCGraph } from "../model/dic.ts";
import { type DiCConfig, type DiCConfigInput, labelRows, outChannels, resolveConfig, stageChannels } from "../model/config.ts";
import type { HostTensor } from "../tensor.ts";
import { ProtocolError } from "./errors.ts";
import type { FrameOf } from "./frames.ts";
import { toHex } from "./auth.ts";
import { WIRE_DTYPES } from "./tensor-codec.ts";

/**
 * What identifies a model between the two ends without its weights: an edge with no weights (the
 * `remote` cut only) holds just this, taken from a host's `/v1/info`.
 */
export interface ModelIdentity {
  config: DiCConfig;
  /** SHA-256 of the weights file's bytes; both ends must hold the same. */
  weightsSha256: Uint8Array;
  /** Pixel range of a pixel-space model (its samples are images), null for latent models. */
  pixelRange: [number, number] | null;
}

/** The `__metadata__` keys a host publishes in `/v1/info` so that an edge with no weights can serve the model. */
export const PUBLISHED_METADATA = ["class_names", "sampling_defaults", "pixel_range"] as const;

/** A model as one end of the protocol holds it. */
export interface ServedModel {
  graph: DiCGraph;
  /** SHA-256 of the weights file's bytes; both ends must hold the same. */
  weightsSha256: Uint8Array;
  /** Pixel range of a pixel-space model (its samples are images), null for latent models. */
  pixelRange: [number, number] | null;
  /** The weights file's `__metadata__` (a host publishes PUBLISHED_METADATA of it in `/v1/info`). */
  metadata?: Readonly<Record<string, string>>;
  /**
   * Decodes final samples to pixels for the `vae` cut. Default: the samples themselves for a
   * pixel-space model; latent models need a VAE decoder here.
   */
  decodePixels?: (x: HostTensor) => Promise<{ image: HostTensor; range: [number, number] }>;
}

/** Per-row shapes [C, H, W] at the `unet` cut: skips in push order and the bottleneck. */
export function unetCutShapes(cfg: DiCConfig): { skips: number[][]; bottleneck: number[] } {
  const ch = stageChannels(cfg);
  const s = cfg.input_size;
  const skips: number[][] = [];
  for (let level = 0; level < 2; level++) {
    const d = cfg.depth[level];
    for (let b = 0; b < d; b++) if ((d - 1 - b) % cfg.skip_stride === 0) skips.push([ch[level], s >> level, s >> level]);
  }
  return { skips, bottleneck: [ch[2], s / 4, s / 4] };
}

/** Per-row shape of the model output [outC, S, S] and of a sample [C, S, S]. */
export function sampleShapes(cfg: DiCConfig): { out: number[]; x: number[] } {
  return { out: [outChannels(cfg), cfg.input_size, cfg.input_size], x: [cfg.in_channels, cfg.input_size, cfg.input_size] };
}

/** The configuration fields a hello carries (official constructor names). */
export function helloConfig(cfg: DiCConfig): Record<string, unknown> {
  return { ...cfg, depth: [...cfg.depth], mult_channels: [...cfg.mult_channels] };
}

/**
 * Host-side checks of a hello against the served model: weights hash (`weights_mismatch`),
 * configuration (`model_mismatch`), reply dtype and labels (`bad_request`).
 */
export function checkHello(hello: FrameOf<"hello">, model: ServedModel): void {
  const got = hello.model.weights_sha256;
  if (toHex(got) !== toHex(model.weightsSha256)) {
    throw new ProtocolError("weights_mismatch", `hello names weights ${toHex(got).slice(0, 16)}..., this host serves ${toHex(model.weightsSha256).slice(0, 16)}...`);
  }
  const cfg = model.graph.config as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(cfg)) {
    if (JSON.stringify(hello.model.config[k]) !== JSON.stringify(v)) {
      throw new ProtocolError("model_mismatch", `hello.model.config.${k} is ${JSON.stringify(hello.model.config[k])}, this host's model has ${JSON.stringify(v)}`);
    }
  }
  if (!(WIRE_DTYPES as readonly string[]).includes(hello.dtype)) {
    throw new ProtocolError("bad_request", `hello.dtype: "${hello.dtype}" is not one of ${WIRE_DTYPES.join(", ")}`);
  }
  const rows = labelRows(model.graph.config);
  hello.generation.labels.forEach((y, i) => {
    if (y >= rows) throw new ProtocolError("bad_request", `hello.generation.labels[${i}] = ${y} is outside 0..${rows - 1}`);
  });
}

/** A model identity and published metadata, as read from a host's `/v1/info`. */
export interface HostModelInfo extends ModelIdentity {
  metadata: Record<string, string>;
}

/**
 * Reads the `model` object of a host's `/v1/info` answer (what an edge with no weights serves from):
 * the configuration (validated by resolveConfig, so its bounds hold), the weights hash (64 hex digits),
 * the pixel range and the PUBLISHED_METADATA strings. Throws a ProtocolError `bad_frame` naming the field.
 */
export function parseHostModelInfo(info: unknown, from: string): HostModelInfo {
  const bad = (what: string) => new ProtocolError("bad_frame", `${from}/v1/info: ${what}`);
  const m = (info as { model?: unknown } | null)?.model as Record<string, unknown> | undefined;
  if (!m || typeof m !== "object") throw bad("no model object");
  let config: DiCConfig;
  try {
    config = resolveConfig(m.config as DiCConfigInput);
  } catch (e) {
    throw bad(`model.config: ${(e as Error).message}`);
  }
  const hex = m.weights_sha256;
  if (typeof hex !== "string" || !/^[0-9a-f]{64}$/.test(hex)) throw bad("model.weights_sha256 must be 64 hex digits");
  const weightsSha256 = Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16));
  const pr = m.pixel_range;
  const pixelRange = pr === null || pr === undefined ? null : Array.isArray(pr) && pr.length === 2 && pr.every(Number.isFinite) && pr[0] < pr[1] ? [pr[0], pr[1]] as [number, number] : null;
  if (pr !== null && pr !== undefined && pixelRange === null) throw bad("model.pixel_range must be [low, high] or null");
  const metadata: Record<string, string> = {};
  const md = (m.metadata ?? {}) as Record<string, unknown>;
  for (const k of PUBLISHED_METADATA) {
    if (md[k] === undefined) continue;
    if (typeof md[k] !== "string") throw bad(`model.metadata.${k} must be a string`);
    metadata[k] = md[k] as string;
  }
  return { config, weightsSha256, pixelRange, metadata };
}
