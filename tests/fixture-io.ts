// Synchronous view of a sampler fixture (written by reference/fixtures_sampling.py), on top of the
// product's validated safetensors reader.
import { readFileSync } from "node:fs";
import { parseSafetensors } from "../src/weights/safetensors.ts";

/** One fixture file: tensors (numbers widened to Float32Array or number[]) and the string metadata. */
export interface Fixture {
  path: string;
  metadata: Record<string, string>;
  shapes: Record<string, number[]>;
  f32(name: string): Float32Array;
  ints(name: string): number[];
  has(name: string): boolean;
}

/** Loads a fixture, with errors naming the file and tensor. */
export function readFixture(path: string): Fixture {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot read fixture (run \`python3 reference/fixtures_sampling.py tests/fixtures/gen\`): ${e}`);
  }
  const file = parseSafetensors(bytes, path);
  return {
    path,
    metadata: { ...file.metadata },
    shapes: Object.fromEntries([...file.tensors].map(([k, v]) => [k, [...v.shape]])),
    f32: (name) => file.getF32(name),
    // NOTE: labels and timesteps are small integers, exact in f32.
    ints: (name) => Array.from(file.getF32(name)),
    has: (name) => file.tensors.has(name),
  };
}
