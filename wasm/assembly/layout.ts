// Element-wise and data-movement ops on NHWC activations: NCHW <-> NHWC, torch.nn.PixelShuffle /
// PixelUnshuffle, torch.cat(dim=1), the DiC gate (gate * h + residual), add, and SiLU for linear inputs.
import { madd, storeLanes } from "./simd";

/** [N][C][HW] -> [N][HW][C]. */
export function nchwToNhwc(src: usize, dst: usize, n: i32, c: i32, hw: i32): void {
  for (let b = 0; b < n; b++) {
    const s = src + ((<usize>b * <usize>c * <usize>hw) << 2);
    const d = dst + ((<usize>b * <usize>c * <usize>hw) << 2);
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < hw; p++) store<f32>(d + (<usize>(p * c + ch) << 2), load<f32>(s + (<usize>(ch * hw + p) << 2)));
    }
  }
}

/** [N][HW][C] -> [N][C][HW]. */
export function nhwcToNchw(src: usize, dst: usize, n: i32, c: i32, hw: i32): void {
  for (let b = 0; b < n; b++) {
    const s = src + ((<usize>b * <usize>c * <usize>hw) << 2);
    const d = dst + ((<usize>b * <usize>c * <usize>hw) << 2);
    for (let p = 0; p < hw; p++) {
      for (let ch = 0; ch < c; ch++) store<f32>(d + (<usize>(ch * hw + p) << 2), load<f32>(s + (<usize>(p * c + ch) << 2)));
    }
  }
}

/** PixelShuffle(r): out[n][y*r+i][x*r+j][c] = in[n][y][x][c*r*r + i*r + j]; cin = C*r*r. */
export function pixelShuffle(src: usize, dst: usize, n: i32, cin: i32, h: i32, w: i32, r: i32): void {
  const c = cin / (r * r);
  const ow = w * r;
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const s = src + (<usize>((b * h + y) * w + x) * <usize>cin << 2);
        for (let i = 0; i < r; i++)
          for (let j = 0; j < r; j++) {
            const d = dst + (<usize>((b * h * r + y * r + i) * ow + x * r + j) * <usize>c << 2);
            const k = i * r + j;
            for (let ch = 0; ch < c; ch++) store<f32>(d + (<usize>ch << 2), load<f32>(s + (<usize>(ch * r * r + k) << 2)));
          }
      }
}

/** PixelUnshuffle(r): out[n][y][x][c*r*r + i*r + j] = in[n][y*r+i][x*r+j][c]. */
export function pixelUnshuffle(src: usize, dst: usize, n: i32, c: i32, h: i32, w: i32, r: i32): void {
  const oh = h / r, ow = w / r, cout = c * r * r;
  for (let b = 0; b < n; b++)
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++) {
        const d = dst + (<usize>((b * oh + y) * ow + x) * <usize>cout << 2);
        for (let i = 0; i < r; i++)
          for (let j = 0; j < r; j++) {
            const s = src + (<usize>((b * h + y * r + i) * w + x * r + j) * <usize>c << 2);
            const k = i * r + j;
            for (let ch = 0; ch < c; ch++) store<f32>(d + (<usize>(ch * r * r + k) << 2), load<f32>(s + (<usize>ch << 2)));
          }
      }
}

/** Channel concat of a [P][ca] and b [P][cb] into dst [P][ca + cb]. */
export function concat(a: usize, ca: i32, b: usize, cb: i32, dst: usize, pixels: i32): void {
  const ab = <usize>ca << 2, bb = <usize>cb << 2;
  for (let p = 0; p < pixels; p++) {
    memory.copy(dst, a + <usize>p * ab, ab);
    memory.copy(dst + ab, b + <usize>p * bb, bb);
    dst += ab + bb;
  }
}

/** dst = gate[n][off + c] * h + residual on [N][HW][C]; gate rows have k floats (gate == 0: no gate). */
export function gateAdd(h: usize, gate: usize, k: i32, off: i32, res: usize, dst: usize, n: i32, hw: i32, c: i32): void {
  gateAddPixels(h, gate, k, off, res, dst, n, hw, c, 0, n * hw);
}

/** gateAdd for the pixels [p0, p1) of the N * HW only (a thread's share). */
export function gateAddPixels(h: usize, gate: usize, k: i32, off: i32, res: usize, dst: usize, n: i32, hw: i32, c: i32, p0: i32, p1: i32): void {
  const px = <usize>c << 2;
  for (let i = p0; i < p1; i++) {
    const b = i / hw;
    const g = gate + (<usize>(b * k + off) << 2);
    const p = <usize>i * px;
    for (let q = 0; q < c; q += 4) {
      const o = p + (<usize>q << 2);
      const gv = gate ? v128.load(g + (<usize>q << 2)) : f32x4.splat(1);
      storeLanes(dst + o, madd(gv, v128.load(h + o), v128.load(res + o)), c - q);
    }
  }
}

/** dst = a + b over count floats. */
export function add(a: usize, b: usize, dst: usize, count: i32): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    const o = <usize>i << 2;
    v128.store(dst + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < count; i++) {
    const o = <usize>i << 2;
    store<f32>(dst + o, load<f32>(a + o) + load<f32>(b + o));
  }
}

/** dst = x * sigmoid(x) over count floats (F.silu). */
export function silu(src: usize, dst: usize, count: i32): void {
  for (let i = 0; i < count; i++) {
    const o = <usize>i << 2;
    const x = load<f32>(src + o);
    store<f32>(dst + o, <f32>(<f64>x / (1.0 + Math.exp(-<f64>x))));
  }
}
