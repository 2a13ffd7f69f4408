// Host tensors: f32 NCHW arrays with a shape, the currency between the SDK, the graph and backends.

/** A dense host tensor. `data` is row-major (NCHW for images); its length is the product of `shape`. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Makes a host tensor, checking that data and shape agree. */
export function hostTensor(shape: number[], data?: Float32Array, name = "tensor"): HostTensor {
  const n = numel(shape);
  if (data === undefined) return { shape: [...shape], data: new Float32Array(n) };
  if (data.length !== n) {
    throw new Error(`${name}: shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
  }
  return { shape: [...shape], data };
}

/** "[2, 4, 32, 32]" — used in error messages. */
export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Relative L2 error ||a - b|| / ||b||, computed in f64; NaN anywhere gives Infinity. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relL2: length ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    if (Number.isNaN(d)) return Infinity;
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num) / Math.sqrt(den || 1e-300);
}
