// Input pre-ops of the DiC block and head (and the VAE decoder): GroupNorm / channel LayerNorm, optional
// per-sample modulate x*(1+scale)+shift, optional GELU or SiLU. Mirrors F.group_norm and F.layer_norm (biased variance).
import { gelu, silu } from "./gelu.ts";

/** Resolved pre-op with host arrays (the js backend's view of a NormPreOp). */
export interface HostPreOp {
  norm: "group" | "layer";
  groups: number;
  eps: number;
  weight: Float32Array | null;
  bias: Float32Array | null;
  /** [N, K] arrays and channel offsets of scale and shift. */
  scale: { data: Float32Array; k: number; offset: number } | null;
  shift: { data: Float32Array; k: number; offset: number } | null;
  act: "gelu" | "silu" | "none";
}

/** Applies the pre-op to x [N,C,H,W] and returns a new array. */
export function applyPreOp(x: Float32Array, n: number, c: number, hw: number, pre: HostPreOp): Float32Array {
  const out = new Float32Array(x.length);
  if (pre.norm === "group") groupNorm(x, out, n, c, hw, pre.groups, pre.eps);
  else layerNorm(x, out, n, c, hw, pre.eps);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const wv = pre.weight ? pre.weight[ch] : 1;
      const bv = pre.bias ? pre.bias[ch] : 0;
      const sc = pre.scale ? pre.scale.data[b * pre.scale.k + pre.scale.offset + ch] : 0;
      const sh = pre.shift ? pre.shift.data[b * pre.shift.k + pre.shift.offset + ch] : 0;
      const base = (b * c + ch) * hw;
      for (let i = 0; i < hw; i++) {
        // NOTE: round to f32 after the norm affine, like torch, before modulating.
        let v = Math.fround(out[base + i] * wv + bv);
        if (pre.scale) v = v * (1 + sc) + sh;
        out[base + i] = pre.act === "gelu" ? gelu(v) : pre.act === "silu" ? silu(v) : v;
      }
    }
  }
  return out;
}

function groupNorm(x: Float32Array, out: Float32Array, n: number, c: number, hw: number, groups: number, eps: number): void {
  if (groups <= 0 || c % groups !== 0) throw new Error(`group norm: ${c} channels do not split into ${groups} groups`);
  const size = (c / groups) * hw;
  for (let g = 0; g < n * groups; g++) {
    const base = g * size;
    let mean = 0;
    for (let i = 0; i < size; i++) mean += x[base + i];
    mean /= size;
    let v = 0;
    for (let i = 0; i < size; i++) {
      const d = x[base + i] - mean;
      v += d * d;
    }
    const inv = 1 / Math.sqrt(v / size + eps);
    for (let i = 0; i < size; i++) out[base + i] = (x[base + i] - mean) * inv;
  }
}

function layerNorm(x: Float32Array, out: Float32Array, n: number, c: number, hw: number, eps: number): void {
  for (let b = 0; b < n; b++) {
    const base = b * c * hw;
    for (let p = 0; p < hw; p++) {
      let mean = 0;
      for (let ch = 0; ch < c; ch++) mean += x[base + ch * hw + p];
      mean /= c;
      let v = 0;
      for (let ch = 0; ch < c; ch++) {
        const d = x[base + ch * hw + p] - mean;
        v += d * d;
      }
      const inv = 1 / Math.sqrt(v / c + eps);
      for (let ch = 0; ch < c; ch++) out[base + ch * hw + p] = (x[base + ch * hw + p] - mean) * inv;
    }
  }
}
