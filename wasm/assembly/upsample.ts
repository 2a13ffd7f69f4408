// Nearest-neighbour upsampling by an integer factor on NHWC activations (F.interpolate mode="nearest"):
// out[n][y][x][c] = in[n][y / r][x / r][c]. Each output row is written once and copied r - 1 times.

/** src [N][H][W][C] -> dst [N][H*r][W*r][C]. */
export function upsampleNearest(src: usize, dst: usize, n: i32, h: i32, w: i32, c: i32, r: i32): void {
  const px = <usize>c << 2;
  const rowBytes = <usize>(w * r) * px;
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      let s = src + (<usize>(b * h + y) * <usize>w) * px;
      const first = dst + (<usize>(b * h + y) * <usize>r) * rowBytes;
      let d = first;
      for (let x = 0; x < w; x++, s += px) {
        for (let i = 0; i < r; i++, d += px) memory.copy(d, s, px);
      }
      for (let i = 1; i < r; i++) memory.copy(first + <usize>i * rowBytes, first, rowBytes);
    }
  }
}
