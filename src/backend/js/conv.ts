// Direct 3x3 (stride 1, pad 1) and 1x1 convolutions on NCHW f32 arrays: torch.nn.functional.conv2d.
// The reference path: float64 accumulation, no reordering tricks beyond a zero-padded input plane.

/** 3x3 conv. x [N,Ci,H,W] (already pre-processed), w [Co,Ci,3,3], bias [Co] or null. */
export function conv3x3(
  x: Float32Array, n: number, ci: number, h: number, w: number,
  weight: Float32Array, co: number, bias: Float32Array | null,
): Float32Array {
  const hw = h * w;
  const pw = w + 2;
  const padPlane = (h + 2) * pw;
  const out = new Float32Array(n * co * hw);
  const padded = new Float32Array(ci * padPlane); // NOTE: borders stay zero: that is the padding.
  const acc = new Float64Array(hw);
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < ci; c++) {
      const src = (b * ci + c) * hw;
      const dst = c * padPlane;
      for (let y = 0; y < h; y++) {
        padded.set(x.subarray(src + y * w, src + y * w + w), dst + (y + 1) * pw + 1);
      }
    }
    for (let o = 0; o < co; o++) {
      acc.fill(bias ? bias[o] : 0);
      for (let c = 0; c < ci; c++) {
        const k = (o * ci + c) * 9;
        const w0 = weight[k], w1 = weight[k + 1], w2 = weight[k + 2];
        const w3 = weight[k + 3], w4 = weight[k + 4], w5 = weight[k + 5];
        const w6 = weight[k + 6], w7 = weight[k + 7], w8 = weight[k + 8];
        const base = c * padPlane;
        for (let y = 0; y < h; y++) {
          const r0 = base + y * pw, r1 = r0 + pw, r2 = r1 + pw;
          const oy = y * w;
          for (let xx = 0; xx < w; xx++) {
            acc[oy + xx] +=
              w0 * padded[r0 + xx] + w1 * padded[r0 + xx + 1] + w2 * padded[r0 + xx + 2] +
              w3 * padded[r1 + xx] + w4 * padded[r1 + xx + 1] + w5 * padded[r1 + xx + 2] +
              w6 * padded[r2 + xx] + w7 * padded[r2 + xx + 1] + w8 * padded[r2 + xx + 2];
          }
        }
      }
      out.set(acc, (b * co + o) * hw);
    }
  }
  return out;
}

/** 1x1 conv. x [N,Ci,H,W], w [Co,Ci], bias [Co] or null. */
export function conv1x1(
  x: Float32Array, n: number, ci: number, hw: number,
  weight: Float32Array, co: number, bias: Float32Array | null,
): Float32Array {
  const out = new Float32Array(n * co * hw);
  const acc = new Float64Array(hw);
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < co; o++) {
      acc.fill(bias ? bias[o] : 0);
      for (let c = 0; c < ci; c++) {
        const wv = weight[o * ci + c];
        const src = (b * ci + c) * hw;
        for (let i = 0; i < hw; i++) acc[i] += wv * x[src + i];
      }
      out.set(acc, (b * co + o) * hw);
    }
  }
  return out;
}
