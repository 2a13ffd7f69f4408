// Binds a safetensors file to a DiC graph: configuration from the file's `__metadata__["config"]`
// (JSON with the official constructor names) plus caller overrides, tensor table checked against
// the configuration, then every tensor converted to f32 and uploaded once.
import type { Backend, Tensor, TensorRole } from "../backend/contract.ts";
import type { SafetensorsFile, SafetensorsHeader } from "../weights/safetensors.ts";
import { checkTensors, tensorToF32, WeightsError } from "../weights/safetensors.ts";
import { dequantize, INT8_SCALE_SUFFIX } from "../weights/int8.ts";
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

/** One tensor as the loaders upload it: f32 values, or an int8 file's weight with its per-output-channel scales. */
export type LoadedTensor =
  | { name: string; f32: Float32Array; bytes: Uint8Array }
  | { name: string; int8: Int8Array; scale: Float32Array };

/**
 * Uploads one tensor: an int8 weight stays int8 where the backend keeps conv3x3 weights that way
 * (uploadInt8; its scales are checked finite), else its values are uploaded as f32 (int8 dequantized),
 * checked finite first. `transform` edits f32 values before the upload (the VAE's post_quant_conv).
 */
export function uploadLoaded(t: LoadedTensor, shape: number[], role: TensorRole, backend: Backend, source: string, transform?: (data: Float32Array) => void): Tensor {
  if ("int8" in t) {
    const bad = t.scale.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new WeightsError("bad_value", source, `holds a non-finite int8 scale (${t.scale[bad]}) at index ${bad}`, t.name);
    if (role === "conv3x3.weight" && backend.uploadInt8 && !transform) return backend.uploadInt8({ shape, data: t.int8, scale: t.scale }, role);
  }
  const data = "int8" in t ? dequantize(t.int8, t.scale, shape[0]) : t.f32;
  checkFinite(data, source, t.name);
  transform?.(data);
  return backend.upload({ shape, data }, role);
}

/** The tensors of a SafetensorsFile in memory, as uploadLoaded takes them. */
export function fileTensor(file: SafetensorsFile, name: string): LoadedTensor {
  const q = file.getInt8?.(name);
  return q ? { name, int8: q.data, scale: q.scale } : { name, f32: file.getF32(name), bytes: file.getBytes(name) };
}

/**
 * Reads `names` from a weight source in file order, one tensor at a time, pairing each int8 weight of an
 * int8 file with its scale companion (read alongside; writers put the F32 scales before the I8 weights,
 * and a weight whose scale comes later waits for it). Peaks are counted into `source.info`.
 */
export async function* readTensors(source: WeightSource, header: SafetensorsHeader, names: Iterable<string>, plan?: ReadPlan): AsyncGenerator<LoadedTensor> {
  const wanted = [...names];
  const int8 = new Set(wanted.filter((n) => header.int8Scales?.has(n)));
  const scales = new Map<string, Float32Array>();
  const waiting = new Map<string, Int8Array>();
  const request = [...wanted, ...[...int8].map((n) => n + INT8_SCALE_SUFFIX)];
  for await (const t of source.tensors(request, plan)) {
    const base = t.name.endsWith(INT8_SCALE_SUFFIX) ? t.name.slice(0, -INT8_SCALE_SUFFIX.length) : null;
    if (base !== null && int8.has(base) && !header.tensors.has(t.name)) {
      const scale = tensorToF32(t.bytes, t.entry);
      scales.set(base, scale);
      const q = waiting.get(base);
      if (q) {
        waiting.delete(base);
        yield { name: base, int8: q, scale };
      }
    } else if (int8.has(t.name)) {
      const q = new Int8Array(t.bytes.slice().buffer); // the source's buffer is only valid until the next read
      countPeak(source.info, t, true, q.byteLength);
      const scale = scales.get(t.name);
      if (scale) yield { name: t.name, int8: q, scale };
      else waiting.set(t.name, q);
    } else {
      const { data, copied } = tensorValues(t);
      countPeak(source.info, t, copied, data.byteLength);
      yield { name: t.name, f32: data, bytes: t.bytes };
    }
  }
  if (waiting.size) throw new WeightsError("bad_entry", source.name, "int8 tensor read without its scale", [...waiting.keys()][0]);
}

/** Asks the backend to plan its weight storage for the tensors of `params` (memory budgets). */
function planFor(backend: Backend, params: Iterable<[string, number[]]>): void {
  backend.planStorage?.([...params].map(([name, shape]) => ({ shape, role: roleOf(name, shape.length) })));
}

/** Uploads every tensor of a checked file (or those of `part`) and returns the graph. */
export function bindDiC(file: SafetensorsFile, config: DiCConfig, backend: Backend, part: ModelPart = "full"): DiCGraph {
  checkDiCTensors(file, config, file.source);
  const params = partParams(config, part);
  planFor(backend, params);
  const weights = new Map<string, Tensor>();
  try {
    for (const [name, shape] of params) weights.set(name, uploadLoaded(fileTensor(file, name), shape, roleOf(name, shape.length), backend, file.source));
  } catch (e) {
    for (const t of weights.values()) backend.free(t);
    throw e;
  }
  return new DiCGraph(backend, config, weights, part);
}

/** Options of `bindDiCFrom`. */
export interface BindOptions {
  /** The tensors to load (default "full": all). */
  part?: ModelPart;
  /**
   * Called with each tensor before it is dropped (to keep a copy for a rebind): its raw bytes, or for an
   * int8 weight its dequantized values.
   */
  keep?: (name: string, value: Uint8Array | Float32Array) => void;
  /** How reads are coalesced (the source's defaults otherwise). */
  plan?: ReadPlan;
}

/**
 * Binds a DiC graph from a weight source, tensor by tensor: the header is checked against `config` (the
 * whole table, whatever the part), the backend plans its storage, then each tensor of the part is read,
 * converted, checked, uploaded and dropped, so the load holds one read's bytes at a time, never the file.
 * Then the source's `verify` (e.g. a SHA-256 of the whole stream) runs; on any error the tensors uploaded
 * so far are freed.
 */
export async function bindDiCFrom(source: WeightSource, config: DiCConfig, backend: Backend, options: BindOptions = {}): Promise<DiCGraph> {
  const part = options.part ?? "full";
  const header = await source.header();
  checkDiCTensors(header, config, source.name);
  const params = partParams(config, part);
  planFor(backend, params);
  const weights = new Map<string, Tensor>();
  try {
    for await (const t of readTensors(source, header, params.keys(), options.plan)) {
      const shape = params.get(t.name)!;
      options.keep?.(t.name, "int8" in t ? dequantize(t.int8, t.scale, shape[0]) : t.bytes);
      weights.set(t.name, uploadLoaded(t, shape, roleOf(t.name, shape.length), backend, source.name));
    }
    await source.verify?.();
  } catch (e) {
    for (const t of weights.values()) backend.free(t);
    throw e;
  }
  return new DiCGraph(backend, config, weights, part);
}

/** Binds a graph from the tensors kept by `bindDiCFrom`'s `keep` (a synchronous rebind on another backend). */
export function bindDiCKept(kept: ReadonlyMap<string, Uint8Array | Float32Array>, header: Pick<SafetensorsHeader, "tensors">, config: DiCConfig, backend: Backend, part: ModelPart = "full"): DiCGraph {
  const weights = new Map<string, Tensor>();
  for (const [name, shape] of partParams(config, part)) {
    const v = kept.get(name)!;
    weights.set(name, backend.upload({ shape, data: v instanceof Float32Array ? v : tensorToF32(v, header.tensors.get(name)!) }, roleOf(name, shape.length)));
  }
  return new DiCGraph(backend, config, weights, part);
}
