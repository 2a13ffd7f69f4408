// Binds an AutoencoderKL safetensors file (diffusers layout; full VAE or decoder only) to the VAE decoder
// graph: configuration from the tensor shapes (plus an optional `__metadata__.config` JSON and caller
// overrides), tensor table checked with legacy attention names mapped, then every tensor uploaded once.
import type { Backend, Tensor, TensorRole } from "../backend/contract.ts";
import type { SafetensorsFile, SafetensorsHeader } from "../weights/safetensors.ts";
import { WeightsError } from "../weights/safetensors.ts";
import type { WeightSource } from "../weights/source.ts";
import { resolveVAEConfig, SD_VAE_CONFIG, type VAEConfig, type VAEConfigInput } from "./config.ts";
import { VAEDecoderGraph } from "./decoder.ts";
import { fileTensor, type LoadedTensor, readTensors, uploadLoaded } from "../model/load.ts";
import { canonicalVAEName, expectedVAEParams, isDecoderTensor } from "./params.ts";

type Header = Pick<SafetensorsHeader, "tensors" | "metadata" | "source">;

/**
 * The decoder configuration of a file: SD's defaults, then widths, depth and channels read from the tensor
 * shapes, then `__metadata__.config` (JSON, e.g. {"norm_groups": 2}), then `overrides`.
 */
export function vaeConfigForFile(header: Header, overrides: VAEConfigInput = {}): VAEConfig {
  const names = [...header.tensors.keys()].filter(isDecoderTensor);
  if (names.length === 0) {
    throw new WeightsError("missing_tensors", header.source, "holds no VAE decoder tensors (decoder.*, post_quant_conv.*): is this an AutoencoderKL file?");
  }
  const shape = (n: string) => header.tensors.get(n)?.shape;
  const inferred: VAEConfigInput = {};
  const levels = new Set<number>();
  const resnets = new Set<number>();
  for (const n of names) {
    const m = /^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\./.exec(n);
    if (m) levels.add(Number(m[1]));
    if (m && m[1] === "0") resnets.add(Number(m[2]));
  }
  const widths = [...Array(levels.size).keys()].map((i) => shape(`decoder.up_blocks.${i}.resnets.0.conv1.weight`)?.[0]);
  if (levels.size > 0 && widths.every((c) => c !== undefined)) inferred.block_out_channels = (widths as number[]).reverse();
  if (resnets.size > 0) inferred.layers_per_block = resnets.size - 1;
  const lat = shape("decoder.conv_in.weight")?.[1];
  if (lat !== undefined) inferred.latent_channels = lat;
  const out = shape("decoder.conv_out.weight")?.[0];
  if (out !== undefined) inferred.out_channels = out;
  let fromMeta: VAEConfigInput = {};
  const raw = header.metadata.config;
  if (raw !== undefined) {
    try {
      fromMeta = JSON.parse(raw);
    } catch {
      throw new WeightsError("bad_metadata", header.source, "__metadata__.config is not valid JSON");
    }
    if (typeof fromMeta !== "object" || fromMeta === null || Array.isArray(fromMeta)) {
      throw new WeightsError("bad_metadata", header.source, "__metadata__.config must be a JSON object");
    }
    // Keep only the VAE's fields: a file may carry other tools' settings next to them.
    fromMeta = Object.fromEntries(Object.entries(fromMeta).filter(([k]) => k in SD_VAE_CONFIG));
  }
  try {
    return resolveVAEConfig({ ...inferred, ...fromMeta, ...overrides });
  } catch (e) {
    throw new WeightsError("bad_metadata", header.source, (e as Error).message);
  }
}

/**
 * Checks the decoder tensors of `header` against `config`: every expected tensor present once (under its
 * current or a legacy name), no unknown decoder tensor, shapes equal (attention projections may be
 * [C, C] Linear or [C, C, 1, 1] conv weights). Encoder tensors are ignored. Returns canonical -> file name.
 */
export function checkVAETensors(header: Pick<SafetensorsHeader, "tensors">, config: VAEConfig, source: string): Map<string, string> {
  const expected = expectedVAEParams(config);
  const found = new Map<string, string>();
  const unexpected: string[] = [];
  for (const name of header.tensors.keys()) {
    if (!isDecoderTensor(name)) continue;
    const c = canonicalVAEName(name);
    if (!expected.has(c)) unexpected.push(name);
    else if (found.has(c)) throw new WeightsError("unexpected_tensors", source, `holds both ${JSON.stringify(found.get(c))} and ${JSON.stringify(name)} for the same parameter`, name);
    else found.set(c, name);
  }
  const list = (names: string[]) => names.slice(0, 5).map((s) => JSON.stringify(s)).join(", ") + (names.length > 5 ? ` and ${names.length - 5} more` : "");
  const missing = [...expected.keys()].filter((k) => !found.has(k));
  if (missing.length) {
    throw new WeightsError("missing_tensors", source, `${missing.length} VAE decoder tensor(s) missing: ${list(missing)} (config ${JSON.stringify(config)})`);
  }
  if (unexpected.length) throw new WeightsError("unexpected_tensors", source, `${unexpected.length} unexpected VAE decoder tensor(s): ${list(unexpected)}`);
  for (const [c, want] of expected) {
    const name = found.get(c)!;
    const got = header.tensors.get(name)!.shape;
    const asConv = want.length === 2 && got.length === 4 && got[2] === 1 && got[3] === 1;
    const ok = asConv ? got[0] === want[0] && got[1] === want[1] : got.length === want.length && got.every((d, i) => d === want[i]);
    if (!ok) throw new WeightsError("shape_mismatch", source, `has shape [${got.join(", ")}], expected [${want.join(", ")}]`, name);
  }
  return found;
}

function roleOf(shape: readonly number[]): TensorRole {
  if (shape.length === 4) return shape[2] === 3 ? "conv3x3.weight" : "conv1x1.weight";
  return "vector";
}

/** The shape a VAE parameter is uploaded with: attention projections run as 1x1 convolutions over the pixels. */
function uploadShape(shape: readonly number[]): number[] {
  return shape.length === 2 ? [shape[0], shape[1], 1, 1] : [...shape];
}

/** Lets the backend plan its weight storage for the decoder's parameters (memory budgets). */
function planVAE(backend: Backend, config: VAEConfig): void {
  backend.planStorage?.([...expectedVAEParams(config).values()].map((shape) => ({ shape: uploadShape(shape), role: roleOf(uploadShape(shape)) })));
}

/** Uploads one decoder tensor (canonical name `c`); post_quant_conv's weight absorbs 1 / scaling_factor. */
function uploadVAETensor(weights: Map<string, Tensor>, backend: Backend, config: VAEConfig, c: string, t: LoadedTensor, source: string): void {
  const up = uploadShape(expectedVAEParams(config).get(c)!);
  const scale = c === "post_quant_conv.weight" ? (data: Float32Array) => { for (let i = 0; i < data.length; i++) data[i] /= config.scaling_factor; } : undefined;
  weights.set(c, uploadLoaded(t, up, roleOf(up), backend, source, scale));
}

/** Uploads the decoder's tensors of a checked file and returns the graph. */
export function bindVAE(file: SafetensorsFile, backend: Backend, overrides: VAEConfigInput = {}): VAEDecoderGraph {
  const config = vaeConfigForFile(file, overrides);
  const names = checkVAETensors(file, config, file.source);
  planVAE(backend, config);
  const weights = new Map<string, Tensor>();
  try {
    for (const [c] of expectedVAEParams(config)) uploadVAETensor(weights, backend, config, c, fileTensor(file, names.get(c)!), file.source);
  } catch (e) {
    for (const t of weights.values()) backend.free(t);
    throw e;
  }
  return new VAEDecoderGraph(backend, config, weights);
}

/**
 * Binds the decoder from a weight source, tensor by tensor (read, convert, upload, drop): the header is
 * checked first, then only the decoder's tensors are read (a full VAE file's encoder is never read).
 */
export async function bindVAEFrom(source: WeightSource, backend: Backend, overrides: VAEConfigInput = {}): Promise<VAEDecoderGraph> {
  const header = await source.header();
  const config = vaeConfigForFile(header, overrides);
  const names = checkVAETensors(header, config, source.name);
  const canonical = new Map([...names].map(([c, n]) => [n, c]));
  planVAE(backend, config);
  const weights = new Map<string, Tensor>();
  try {
    for await (const t of readTensors(source, header, names.values())) uploadVAETensor(weights, backend, config, canonical.get(t.name)!, t, source.name);
    await source.verify?.();
  } catch (e) {
    for (const t of weights.values()) backend.free(t);
    throw e;
  }
  return new VAEDecoderGraph(backend, config, weights);
}
