// Single-head self-attention over the pixels of an NCHW image, the VAE mid block's core:
// softmax(Q K^T / sqrt(C)) V with the H*W positions as tokens (torch F.scaled_dot_product_attention on
// [N, HW, C]). f64 scores, softmax and sums, rounded to f32 once at the end.

/** q, k, v [N, C, HW] -> out [N, C, HW]. */
export function attention(q: Float32Array, k: Float32Array, v: Float32Array, n: number, c: number, hw: number): Float32Array {
  const out = new Float32Array(n * c * hw);
  const scale = 1 / Math.sqrt(c);
  const s = new Float64Array(hw);
  const acc = new Float64Array(c);
  // Token-major copies so that the inner loops run over contiguous channels.
  const qt = new Float64Array(hw * c), kt = new Float64Array(hw * c), vt = new Float64Array(hw * c);
  for (let b = 0; b < n; b++) {
    const base = b * c * hw;
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < hw; p++) {
        qt[p * c + ch] = q[base + ch * hw + p];
        kt[p * c + ch] = k[base + ch * hw + p];
        vt[p * c + ch] = v[base + ch * hw + p];
      }
    }
    for (let p = 0; p < hw; p++) {
      let max = -Infinity;
      for (let j = 0; j < hw; j++) {
        let dot = 0;
        for (let ch = 0; ch < c; ch++) dot += qt[p * c + ch] * kt[j * c + ch];
        s[j] = dot * scale;
        if (s[j] > max) max = s[j];
      }
      let sum = 0;
      for (let j = 0; j < hw; j++) {
        s[j] = Math.exp(s[j] - max);
        sum += s[j];
      }
      acc.fill(0);
      for (let j = 0; j < hw; j++) {
        const wgt = s[j] / sum;
        for (let ch = 0; ch < c; ch++) acc[ch] += wgt * vt[j * c + ch];
      }
      for (let ch = 0; ch < c; ch++) out[base + ch * hw + p] = acc[ch];
    }
  }
  return out;
}
