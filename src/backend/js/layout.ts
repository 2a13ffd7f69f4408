// Data-movement ops on NCHW arrays: torch.nn.PixelShuffle / PixelUnshuffle and torch.cat(dim=1).

/** [N, C*r*r, H, W] -> [N, C, H*r, W*r]: out[n,c,y*r+i,x*r+j] = in[n, c*r*r + i*r + j, y, x]. */
export function pixelShuffle(x: Float32Array, n: number, cin: number, h: number, w: number, r: number): Float32Array {
  const c = cin / (r * r);
  const out = new Float32Array(x.length);
  const oh = h * r, ow = w * r;
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < r; i++)
        for (let j = 0; j < r; j++) {
          const src = (b * cin + ch * r * r + i * r + j) * h * w;
          const dst = (b * c + ch) * oh * ow;
          for (let y = 0; y < h; y++)
            for (let xx = 0; xx < w; xx++) out[dst + (y * r + i) * ow + xx * r + j] = x[src + y * w + xx];
        }
  return out;
}

/** Inverse of pixelShuffle: [N, C, H, W] -> [N, C*r*r, H/r, W/r]. */
export function pixelUnshuffle(x: Float32Array, n: number, c: number, h: number, w: number, r: number): Float32Array {
  const oh = h / r, ow = w / r;
  const cout = c * r * r;
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < r; i++)
        for (let j = 0; j < r; j++) {
          const dst = (b * cout + ch * r * r + i * r + j) * oh * ow;
          const src = (b * c + ch) * h * w;
          for (let y = 0; y < oh; y++)
            for (let xx = 0; xx < ow; xx++) out[dst + y * ow + xx] = x[src + (y * r + i) * w + xx * r + j];
        }
  return out;
}

/** Channel concat of [N,Ca,HW] and [N,Cb,HW]. */
export function concat(a: Float32Array, ca: number, b: Float32Array, cb: number, n: number, hw: number): Float32Array {
  const out = new Float32Array(n * (ca + cb) * hw);
  for (let i = 0; i < n; i++) {
    out.set(a.subarray(i * ca * hw, (i + 1) * ca * hw), i * (ca + cb) * hw);
    out.set(b.subarray(i * cb * hw, (i + 1) * cb * hw), (i * (ca + cb) + ca) * hw);
  }
  return out;
}
