// Binds a safetensors file to a DiC graph: configuration from the file's `__metadata__["config"]`
// (JSON with the official constructor names) plus caller overrides, tensor table checked against
// the configuration, then every tensor converted to f32 and uploaded once.
import type { Backend, Tensor, TensorRole } from "../backend/contract.ts";
import type { SafetensorsFile, SafetensorsHeader } from "../weights/safetensors.ts";
import { checkTensors, WeightsError } from "../weights/safetensors.ts";
import { type DiCConfig, type DiCConfigInput, resolveConfig } from "./config.ts";
import { DiCGraph } from "./dic.ts";
import { expectedParams } from "./params.ts";

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

/**
 * Uploads an int8 file's conv3x3 weight as int8 where the backend keeps int8 (uploadInt8), else null (the
 * caller uploads getF32's dequantized values). Scales are checked finite first.
 */
export function uploadInt8(file: SafetensorsFile, name: string, shape: number[], role: TensorRole, backend: Backend): Tensor | null {
  if (role !== "conv3x3.weight" || !backend.uploadInt8) return null;
  const q = file.getInt8?.(name);
  if (!q) return null;
  const bad = q.scale.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new WeightsError("bad_value", file.source, `holds a non-finite int8 scale (${q.scale[bad]}) at index ${bad}`, name);
  return backend.uploadInt8({ shape, data: q.data, scale: q.scale }, role);
}

/** Uploads every tensor of a checked file and returns the graph. */
export function bindDiC(file: SafetensorsFile, config: DiCConfig, backend: Backend): DiCGraph {
  checkDiCTensors(file, config, file.source);
  const weights = new Map<string, ReturnType<Backend["upload"]>>();
  backend.planStorage?.([...expectedParams(config)].map(([name, shape]) => ({ shape, role: roleOf(name, shape.length) })));
  for (const [name, shape] of expectedParams(config)) {
    const int8 = uploadInt8(file, name, shape, roleOf(name, shape.length), backend);
    if (int8) {
      weights.set(name, int8);
      continue;
    }
    const data = file.getF32(name);
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new WeightsError("bad_value", file.source, `holds a non-finite value (${data[i]}) at index ${i}`, name);
      }
    }
    weights.set(name, backend.upload({ shape, data }, roleOf(name, shape.length)));
  }
  return new DiCGraph(backend, config, weights);
}
