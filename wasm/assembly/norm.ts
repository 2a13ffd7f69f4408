// The normalising pre-op of the DiC block and head on NHWC activations: F.group_norm / channel
// F.layer_norm statistics (two passes, f64 totals), then act((x - mean) * a + b) with per-(n, c)
// coefficients a, b that fold the norm affine and the modulate (computed by the host driver). The
// apply pass writes either a plain tensor (normalize) or the padded conv input P (conv3x3.ts).
import { gelu4 } from "./gelu";
import { hsum, laneMask, storeLanes } from "./simd";

/**
 * Totals over the hw pixels of one NHWC image of channels [q, q + 4): sum of x, or of (x - center[c])^2
 * when center != 0 (center: f32 [ceil(c/4)*4] of this image). out: f64 [ceil(c/4)*4]. f32 partial sums
 * over 16 pixels, flushed into f64. Each quad is summed the same way whoever runs it (thread-count invariant).
 */
function quadTotals(img: usize, hw: i32, c: i32, q: i32, center: usize, out: usize): void {
  const px = <usize>c << 2;
  const mq = center ? v128.load(center + (<usize>q << 2)) : f32x4.splat(0);
  let lo = f64x2.splat(0), hi = f64x2.splat(0);
  let p = 0;
  while (p < hw) {
    const end = min(hw, p + 16);
    let acc = f32x4.splat(0);
    let ptr = img + <usize>p * px + (<usize>q << 2);
    if (center) {
      for (; p < end; p++, ptr += px) {
        const d = f32x4.sub(v128.load(ptr), mq);
        acc = f32x4.add(acc, f32x4.mul(d, d));
      }
    } else {
      for (; p < end; p++, ptr += px) acc = f32x4.add(acc, v128.load(ptr));
    }
    lo = f64x2.add(lo, f64x2.promote_low_f32x4(acc));
    hi = f64x2.add(hi, f64x2.promote_low_f32x4(v128.shuffle<f32>(acc, acc, 2, 3, 0, 1)));
  }
  v128.store(out + (<usize>q << 3), lo);
  v128.store(out + (<usize>q << 3), hi, 16);
}

/**
 * quadTotals for the units [u0, u1) of N * ceil(C/4) (unit u: image u / quads, channels 4 (u % quads) on; a
 * thread's share) of x [N][HW][C]. centers: f32 [N][ceil(C/4)*4] or 0; out: f64 [N][ceil(C/4)*4].
 */
export function channelTotalsUnits(x: usize, n: i32, hw: i32, c: i32, centers: usize, out: usize, u0: i32, u1: i32): void {
  const quads = (c + 3) >> 2;
  const cPad = <usize>quads << 2;
  for (let u = u0; u < u1; u++) {
    const b = u / quads, q = (u - b * quads) << 2;
    const img = x + ((<usize>b * <usize>hw * <usize>c) << 2);
    quadTotals(img, hw, c, q, centers ? centers + ((<usize>b * cPad) << 2) : 0, out + ((<usize>b * cPad) << 3));
  }
}

/**
 * From channel sums (f64 [N][ceil(C/4)*4], channelTotalsUnits): each group's mean to stats[(n * groups + g)
 * * 2] and to every channel of the group in meanC (f32 [N][ceil(C/4)*4], zero past C).
 */
export function groupMeans(sums: usize, n: i32, hw: i32, c: i32, groups: i32, stats: usize, meanC: usize): void {
  const cPad = (c + 3) & ~3;
  const cg = c / groups;
  const count = <f64>cg * <f64>hw;
  for (let b = 0; b < n; b++) {
    const sb = sums + ((<usize>b * <usize>cPad) << 3), mb = meanC + ((<usize>b * <usize>cPad) << 2);
    for (let g = 0; g < groups; g++) {
      let s: f64 = 0;
      for (let i = g * cg; i < (g + 1) * cg; i++) s += load<f64>(sb + (<usize>i << 3));
      const mean = s / count;
      store<f32>(stats + (<usize>((b * groups + g) * 2) << 2), <f32>mean);
      for (let i = g * cg; i < (g + 1) * cg; i++) store<f32>(mb + (<usize>i << 2), <f32>mean);
    }
    for (let i = c; i < cPad; i++) store<f32>(mb + (<usize>i << 2), 0);
  }
}

/** From centred channel sums of squares (channelTotalsUnits about groupMeans' meanC): 1/sqrt(var + eps) to stats[... * 2 + 1]. */
export function groupInvStd(sums: usize, n: i32, hw: i32, c: i32, groups: i32, eps: f32, stats: usize): void {
  const cPad = (c + 3) & ~3;
  const cg = c / groups;
  const count = <f64>cg * <f64>hw;
  for (let b = 0; b < n; b++) {
    const sb = sums + ((<usize>b * <usize>cPad) << 3);
    for (let g = 0; g < groups; g++) {
      let s: f64 = 0;
      for (let i = g * cg; i < (g + 1) * cg; i++) s += load<f64>(sb + (<usize>i << 3));
      store<f32>(stats + (<usize>((b * groups + g) * 2 + 1) << 2), <f32>(1.0 / Math.sqrt(s / count + <f64>eps)));
    }
  }
}

/** Layer-norm (over channels) statistics per pixel of x [P][C]: stats[p * 2 + {0, 1}] = mean, 1/sqrt(var + eps). */
export function layerStats(x: usize, pixels: i32, c: i32, eps: f32, stats: usize): void {
  const px = <usize>c << 2;
  const tail = laneMask(c & 3 ? c & 3 : 4);
  const last = (c - 1) & ~3;
  for (let p = 0; p < pixels; p++) {
    const ptr = x + <usize>p * px;
    let acc = f32x4.splat(0);
    for (let q = 0; q < last; q += 4) acc = f32x4.add(acc, v128.load(ptr + (<usize>q << 2)));
    acc = f32x4.add(acc, v128.and(v128.load(ptr + (<usize>last << 2)), tail));
    const mean = hsum(acc) / <f32>c;
    const mv = f32x4.splat(mean);
    let sq = f32x4.splat(0);
    for (let q = 0; q < last; q += 4) {
      const d = f32x4.sub(v128.load(ptr + (<usize>q << 2)), mv);
      sq = f32x4.add(sq, f32x4.mul(d, d));
    }
    const d = v128.and(f32x4.sub(v128.load(ptr + (<usize>last << 2)), mv), tail);
    sq = f32x4.add(sq, f32x4.mul(d, d));
    store<f32>(stats + (<usize>p << 3), mean);
    store<f32>(stats + (<usize>p << 3), <f32>(1.0 / Math.sqrt(<f64>(hsum(sq) / <f32>c) + <f64>eps)), 4);
  }
}

/**
 * dst = act((x - mean) * a + b) for x [N][H][W][C]. layer == 0: mean = meanC[n][c] (group norm, the
 * inverse std is folded into a); layer == 1: mean and inverse std per pixel from stats. a, b, meanC:
 * f32 [N][ceil(C/4)*4]. dst: [N][dstHp][dstWp][dstCp] written at (y + off, x + off); other pixels and
 * channels of dst are left as they are (zero padding).
 */
export function preApply(x: usize, n: i32, h: i32, w: i32, c: i32, layer: i32, meanC: usize, a: usize, b: usize, stats: usize,
  gelu: i32, dst: usize, dstHp: i32, dstWp: i32, dstCp: i32, off: i32): void {
  preApplyRows(x, n, h, w, c, layer, meanC, a, b, stats, gelu, dst, dstHp, dstWp, dstCp, off, 0, n * h);
}

/** preApply for the image rows [r0, r1) of the N * H only (r = n * H + y; a thread's share). */
export function preApplyRows(x: usize, n: i32, h: i32, w: i32, c: i32, layer: i32, meanC: usize, a: usize, b: usize, stats: usize,
  gelu: i32, dst: usize, dstHp: i32, dstWp: i32, dstCp: i32, off: i32, r0: i32, r1: i32): void {
  const cPad = (c + 3) & ~3;
  const px = <usize>c << 2;
  const dpx = <usize>dstCp << 2;
  for (let r = r0; r < r1; r++) {
    const img = r / h, y = r - img * h;
    const co = (<usize>img * <usize>cPad) << 2;
    let src = x + (<usize>(img * h + y) * <usize>w) * px;
    let out = dst + (<usize>(img * dstHp + y + off) * <usize>dstWp + <usize>off) * dpx;
    for (let xx = 0; xx < w; xx++, src += px, out += dpx) {
      if (layer) {
        const st = stats + (<usize>((img * h + y) * w + xx) << 3);
        const mv = f32x4.splat(load<f32>(st)), iv = f32x4.splat(load<f32>(st, 4));
        for (let q = 0; q < c; q += 4) {
          const qo = co + (<usize>q << 2);
          let v = f32x4.mul(f32x4.sub(v128.load(src + (<usize>q << 2)), mv), iv);
          v = f32x4.add(f32x4.mul(v, v128.load(a + qo)), v128.load(b + qo));
          storeLanes(out + (<usize>q << 2), gelu ? gelu4(v) : v, c - q);
        }
      } else {
        for (let q = 0; q < c; q += 4) {
          const qo = co + (<usize>q << 2);
          const v = f32x4.add(f32x4.mul(f32x4.sub(v128.load(src + (<usize>q << 2)), v128.load(meanC + qo)), v128.load(a + qo)), v128.load(b + qo));
          storeLanes(out + (<usize>q << 2), gelu ? gelu4(v) : v, c - q);
        }
      }
    }
  }
}

/** Copies x [N][H][W][C] into dst [N][dstHp][dstWp][dstCp] at (y + off, x + off) (the conv input without a pre-op). */
export function padCopy(x: usize, n: i32, h: i32, w: i32, c: i32, dst: usize, dstHp: i32, dstWp: i32, dstCp: i32, off: i32): void {
  const px = <usize>c << 2;
  const dpx = <usize>dstCp << 2;
  for (let img = 0; img < n; img++) {
    for (let y = 0; y < h; y++) {
      let src = x + (<usize>(img * h + y) * <usize>w) * px;
      let out = dst + (<usize>(img * dstHp + y + off) * <usize>dstWp + <usize>off) * dpx;
      if (dpx == px) {
        memory.copy(out, src, <usize>w * px);
        continue;
      }
      for (let xx = 0; xx < w; xx++, src += px, out += dpx) memory.copy(out, src, px);
    }
  }
}
