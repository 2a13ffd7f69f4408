// Frechet distance between two Gaussians fitted to feature sets (Heusel et al. 2017, the FID formula):
// d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), in f64. Tr (S1 S2)^{1/2} = Tr (sqrt(S1) S2 sqrt(S1))^{1/2},
// a symmetric PSD matrix, so both square roots come from symmetric (cyclic Jacobi) eigendecompositions.
import type { HostTensor } from "../../src/tensor.ts";

/** Mean [d] and covariance [d, d] (row-major, divided by n - 1 like numpy.cov) of n feature vectors. */
export interface FeatureStats {
  n: number;
  d: number;
  mean: Float64Array;
  cov: Float64Array;
}

/** Mean and unbiased covariance of the rows of features [N, D] (N >= 2). */
export function featureStats(features: Pick<HostTensor, "shape" | "data">): FeatureStats {
  if (features.shape.length !== 2) throw new Error(`featureStats: features must be [N, D], got [${features.shape.join(", ")}]`);
  const [n, d] = features.shape;
  if (n < 2) throw new Error(`featureStats: need at least 2 feature vectors, got ${n}`);
  const x = features.data;
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j] += x[r * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const centred = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) centred[j] = x[r * d + j] - mean[j];
    for (let i = 0; i < d; i++) {
      const ci = centred[i];
      for (let j = i; j < d; j++) cov[i * d + j] += ci * centred[j];
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = cov[i * d + j] / (n - 1);
      cov[i * d + j] = v;
      cov[j * d + i] = v;
    }
  }
  return { n, d, mean, cov };
}

/**
 * Eigenvalues and eigenvectors (columns of `vectors`, row-major [d, d]) of a symmetric matrix by cyclic
 * Jacobi rotations (Numerical Recipes `jacobi`): slow (O(d^3) per sweep) but unconditionally stable and
 * accurate to a few ulps of the matrix norm, also for singular or repeated-eigenvalue matrices.
 */
export function symmetricEigen(matrix: ArrayLike<number>, d: number): { values: Float64Array; vectors: Float64Array } {
  if (matrix.length !== d * d) throw new Error(`symmetricEigen: ${matrix.length} values for a ${d}x${d} matrix`);
  const a = Float64Array.from(matrix);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  let norm = 0;
  for (let i = 0; i < d * d; i++) norm += a[i] * a[i];
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q] * a[p * d + q];
    // NOTE: relative to the whole matrix: rotations below this change no eigenvalue by more than rounding.
    if (off <= 1e-32 * norm || off === 0) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q];
        if (apq === 0) continue;
        const theta = (a[q * d + q] - a[p * d + p]) / (2 * apq);
        const t = Math.abs(theta) > 1e150 ? 1 / (2 * theta) : Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < d; k++) { // columns p, q
          const akp = a[k * d + p], akq = a[k * d + q];
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) { // rows p, q
          const apk = a[p * d + k], aqk = a[q * d + k];
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        a[p * d + q] = 0;
        a[q * d + p] = 0;
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p], vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = a[i * d + i];
  return { values, vectors: v };
}

/** sqrt of a symmetric PSD matrix: V diag(sqrt(max(l, 0))) V^T (tiny negative eigenvalues are rounding). */
export function symmetricSqrt(matrix: ArrayLike<number>, d: number): Float64Array {
  const { values, vectors } = symmetricEigen(matrix, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const r = Math.sqrt(Math.max(values[k], 0));
    if (r === 0) continue;
    for (let i = 0; i < d; i++) {
      const vik = vectors[i * d + k] * r;
      for (let j = 0; j < d; j++) out[i * d + j] += vik * vectors[j * d + k];
    }
  }
  return out;
}

function matmul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k];
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += aik * b[k * d + j];
    }
  }
  return out;
}

/** Tr (S1 S2)^{1/2} for symmetric PSD S1, S2: the sum of sqrt of the eigenvalues of sqrt(S1) S2 sqrt(S1). */
export function traceSqrtProduct(s1: ArrayLike<number>, s2: ArrayLike<number>, d: number): number {
  const r = symmetricSqrt(s1, d);
  const m = matmul(matmul(r, Float64Array.from(s2), d), r, d);
  for (let i = 0; i < d; i++) {
    for (let j = i + 1; j < d; j++) { // symmetrise away the rounding of the products
      const avg = 0.5 * (m[i * d + j] + m[j * d + i]);
      m[i * d + j] = avg;
      m[j * d + i] = avg;
    }
  }
  let tr = 0;
  for (const l of symmetricEigen(m, d).values) tr += Math.sqrt(Math.max(l, 0));
  return tr;
}

/** Frechet distance between the Gaussians of two feature sets (same dimension). */
export function frechetDistance(a: FeatureStats, b: FeatureStats): number {
  if (a.d !== b.d) throw new Error(`frechetDistance: feature dimensions differ (${a.d} vs ${b.d})`);
  const d = a.d;
  let dm = 0, tr = 0;
  for (let i = 0; i < d; i++) {
    dm += (a.mean[i] - b.mean[i]) ** 2;
    tr += a.cov[i * d + i] + b.cov[i * d + i];
  }
  return dm + tr - 2 * traceSqrtProduct(a.cov, b.cov, d);
}
