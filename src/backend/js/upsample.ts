// Nearest-neighbour upsampling by an integer factor on NCHW arrays: F.interpolate(x, scale_factor=r,
// mode="nearest"), i.e. out[n,c,y,x] = in[n,c,floor(y/r),floor(x/r)].

/** [N, C, H, W] -> [N, C, H*r, W*r] (nc = N*C planes). */
export function upsampleNearest(x: Float32Array, nc: number, h: number, w: number, r: number): Float32Array {
  const ow = w * r;
  const out = new Float32Array(nc * h * r * ow);
  const row = new Float32Array(ow);
  for (let p = 0; p < nc; p++) {
    for (let y = 0; y < h; y++) {
      const src = (p * h + y) * w;
      for (let xx = 0; xx < ow; xx++) row[xx] = x[src + Math.floor(xx / r)];
      for (let i = 0; i < r; i++) out.set(row, (p * h * r + y * r + i) * ow);
    }
  }
  return out;
}
