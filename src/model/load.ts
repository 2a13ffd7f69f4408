// Binds a safetensors file to a DiC graph: configuration from the file's `__metadata__["config"]`
// (JSON with the official constructor names) plus caller overrides, tensor table checked against
// the configuration, then every tensor converted to f32 and uploaded once.
import type { Backend, TensorRole } from "../backend/contract.ts";
import type { SafetensorsFile, SafetensorsHeader } from "../weights/safetensors.ts";
import { checkTensors, tensorToF32, WeightsError } from "../weights/safetensors.ts";
import { countPeak, type ReadPlan, tensorValues, type WeightSource } from "../weights/source.ts";
import { type DiCConfig, type DiCConfigInput, resolveConfig } from "./config.ts";
import { DiCGraph } from "./dic.ts";
import { expectedParams, type ModelPart, partParams } from "./params.ts";

/** Metadata key that carries the model configuration as a JSON object. */
export const CONFIG_METADATA_KEY = "config";

/**
 * Resolves the configuration of a weights file: the JSON in `__metadata__.config` (if any), then
 * `overrides` (a preset name or official fields) on top. Throws naming the file for bad JSON.
 */
export function configForFile(header: Pick<SafetensorsHeader, "metadata" | "source">, overrides: DiCConfigInput = {}): DiCConfig {
  const raw = header.metadata[CONFIG_METADATA_KEY];
  let fromFile: DiCConfigInput = {};
  if (raw !== undefined) {
    try {
      fromFile = JSON.parse(raw);
    } catch {
      throw new WeightsError("bad_metadata", header.source, `__metadata__.${CONFIG_METADATA_KEY} is not valid JSON`);
    }
    if (typeof fromFile !== "object" || fromFile === null || Array.isArray(fromFile)) {
      throw new WeightsError("bad_metadata", header.source, `__metadata__.${CONFIG_METADATA_KEY} must be a JSON object`);
    }
  }
  try {
    // A preset override replaces the file's sizes; explicit fields win over both.
    return resolveConfig(overrides, resolveConfig(fromFile));
  } catch (e) {
    throw new WeightsError("bad_metadata", header.source, `configuration: ${(e as Error).message}`);
  }
}

/** Checks the tensor table of `header` against `config` (missing, unexpected, wrong shapes). */
export function checkDiCTensors(header: Pick<SafetensorsHeader, "tensors">, config: DiCConfig, source: string): void {
  checkTensors(header, expectedParams(config), source);
}

/** The upload role hint of parameter `name` of rank `rank` (lets a backend pack weights at load). */
export function roleOf(name: string, rank: number): TensorRole {
  if (name.includes("embedding_table")) return "table";
  if (rank === 4) return name.endsWith("skip.weight") ? "conv1x1.weight" : "conv3x3.weight";
  if (rank === 2) return "linear.weight";
  return "vector";
}

function checkFinite(data: Float32Array, source: string, name: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new WeightsError("bad_value", source, `holds a non-finite value (${data[i]}) at index ${i}`, name);
    }
  }
}

/** Uploads every tensor of a checked file (or those of `part`) and returns the graph. */
export function bindDiC(file: SafetensorsFile, config: DiCConfig, backend: Backend, part: ModelPart = "full"): DiCGraph {
  checkDiCTensors(file, config, file.source);
  const weights = new Map<string, ReturnType<Backend["upload"]>>();
  for (const [name, shape] of partParams(config, part)) {
    const data = file.getF32(name);
    checkFinite(data, file.source, name);
    weights.set(name, backend.upload({ shape, data }, roleOf(name, shape.length)));
  }
  return new DiCGraph(backend, config, weights, part);
}

/** Options of `bindDiCFrom`. */
export interface BindOptions {
  /** The tensors to load (default "full": all). */
  part?: ModelPart;
  /** Called with each tensor's raw bytes before they are dropped (e.g. to keep a copy for a rebind). */
  keep?: (name: string, bytes: Uint8Array) => void;
  /** How reads are coalesced (the source's defaults otherwise). */
  plan?: ReadPlan;
}

/**
 * Binds a DiC graph from a weight source, tensor by tensor: the header is checked against `config` (the
 * whole table, whatever the part), then each tensor of the part is read, converted to f32, checked,
 * uploaded and dropped, so the load holds one read's bytes at a time, never the file. Then the source's
 * `verify` (e.g. a SHA-256 of the whole stream) runs; on any error the tensors uploaded so far are freed.
 */
export async function bindDiCFrom(source: WeightSource, config: DiCConfig, backend: Backend, options: BindOptions = {}): Promise<DiCGraph> {
  const part = options.part ?? "full";
  const header = await source.header();
  checkDiCTensors(header, config, source.name);
  const params = partParams(config, part);
  const weights = new Map<string, ReturnType<Backend["upload"]>>();
  try {
    for await (const t of source.tensors(params.keys(), options.plan)) {
      const { name, bytes } = t;
      const { data, copied } = tensorValues(t);
      countPeak(source.info, t, copied, data.byteLength);
      checkFinite(data, source.name, name);
      options.keep?.(name, bytes);
      const shape = params.get(name)!;
      weights.set(name, backend.upload({ shape, data }, roleOf(name, shape.length)));
    }
    await source.verify?.();
  } catch (e) {
    for (const t of weights.values()) backend.free(t);
    throw e;
  }
  return new DiCGraph(backend, config, weights, part);
}

/** Binds a graph from raw tensor bytes kept by `bindDiCFrom`'s `keep` (a synchronous rebind on another backend). */
export function bindDiCKept(kept: ReadonlyMap<string, Uint8Array>, header: Pick<SafetensorsHeader, "tensors">, config: DiCConfig, backend: Backend, part: ModelPart = "full"): DiCGraph {
  const weights = new Map<string, ReturnType<Backend["upload"]>>();
  for (const [name, shape] of partParams(config, part)) {
    weights.set(name, backend.upload({ shape, data: tensorToF32(kept.get(name)!, header.tensors.get(name)!) }, roleOf(name, shape.length)));
  }
  return new DiCGraph(backend, config, weights, part);
}
