// Reads the small safetensors fixtures written by reference/safetensors_io.py (F32/F64/I64/I32 only),
// for the sampler tests; the product's validated reader is src/weights/safetensors.ts.
import { readFileSync } from "node:fs";

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
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  delete header.__metadata__;
  const entries = header as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const get = (name: string) => {
    const e = entries[name];
    if (!e) throw new Error(`${path}: no tensor "${name}" (has ${Object.keys(entries).join(", ")})`);
    const [a, b] = e.data_offsets;
    return { e, dv: new DataView(bytes.buffer, bytes.byteOffset + base + a, b - a) };
  };
  const read = (name: string): number[] => {
    const { e, dv } = get(name);
    const size = { F32: 4, F64: 8, I64: 8, I32: 4 }[e.dtype];
    if (!size) throw new Error(`${path}: tensor "${name}" has unsupported dtype ${e.dtype}`);
    const out: number[] = [];
    for (let o = 0; o < dv.byteLength; o += size) {
      if (e.dtype === "F32") out.push(dv.getFloat32(o, true));
      else if (e.dtype === "F64") out.push(dv.getFloat64(o, true));
      else if (e.dtype === "I32") out.push(dv.getInt32(o, true));
      else out.push(Number(dv.getBigInt64(o, true)));
    }
    return out;
  };
  return {
    path,
    metadata,
    shapes: Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, v.shape])),
    f32: (name) => Float32Array.from(read(name)),
    ints: (name) => read(name),
    has: (name) => name in entries,
  };
}
