// Work sharing for the threads build: the host writes one command (an op and its arguments) into a control
// block in the shared memory, and every thread — the caller as index 0 and each worker — runs `task` on it,
// which does that thread's share: a contiguous range of tile groups, Winograd products, tiles or output rows.
// The host's barrier (Atomics.wait/notify on the same block) separates the stages. Single-threaded builds
// export this too (count 1 runs the whole op), so the host has one code path for the split.
import { CONV_SCRATCH_BYTES, im2colRange, setConvScratch, winogradGemmRange, winogradInputRange, winogradOutputRange } from "./conv3x3";
import { gemm, GEMM_SCRATCH_BYTES, setGemmScratch } from "./gemm";

// Control block: i32 slots. 0: generation (bumped per command), 1: threads still running, 2: op, 3..: arguments.
const OP = 8;
const ARGS = 12;

/** conv3x3 Winograd input transform, split by tile groups. Args as winogradInput. */
export const OP_WINOGRAD_INPUT = 1;
/** The 36 Winograd GEMMs, split by product. Args as winogradGemm. */
export const OP_WINOGRAD_GEMM = 2;
/** Winograd output transform, split by tile. Args as winogradOutput. */
export const OP_WINOGRAD_OUTPUT = 3;
/** gemm split by rows (multiples of 4). Args as gemm. */
export const OP_GEMM = 4;
/** Direct conv3x3 (im2col + GEMM), split by output pixel. Args as directConv. */
export const OP_DIRECT = 5;

/** Bytes of scratch one thread needs (setScratch). */
export function scratchBytes(): usize {
  return CONV_SCRATCH_BYTES + GEMM_SCRATCH_BYTES;
}

/** Points this instance's scratch at `p` (scratchBytes() bytes, 16-aligned); each worker gets its own block. */
export function setScratch(p: usize): void {
  setConvScratch(p);
  setGemmScratch(p + CONV_SCRATCH_BYTES);
}

@inline function arg(ctl: usize, i: i32): i32 {
  return load<i32>(ctl + ARGS + (<usize>i << 2));
}

/** Start of share `index` of `count` over [0, total), rounded to multiples of `align`. */
@inline function cut(total: i32, index: i32, count: i32, align: i32): i32 {
  if (index >= count) return total;
  const units = (total + align - 1) / align;
  return min(total, <i32>((<i64>units * index / count) * align));
}

/** Runs share `index` of `count` of the command in the control block at ctl. */
export function task(ctl: usize, index: i32, count: i32): void {
  const op = load<i32>(ctl + OP);
  if (op == OP_WINOGRAD_INPUT) {
    const n = arg(ctl, 1), tilesY = arg(ctl, 5), tilesX = arg(ctl, 6);
    const groups = (n * tilesY * tilesX + 3) >> 2;
    const g0 = cut(groups, index, count, 1), g1 = cut(groups, index + 1, count, 1);
    if (g0 < g1) winogradInputRange(<usize>arg(ctl, 0), n, arg(ctl, 2), arg(ctl, 3), arg(ctl, 4), tilesY, tilesX, <usize>arg(ctl, 7), g0, g1);
  } else if (op == OP_WINOGRAD_GEMM) {
    const p0 = cut(36, index, count, 1), p1 = cut(36, index + 1, count, 1);
    if (p0 < p1) winogradGemmRange(arg(ctl, 0), arg(ctl, 1), arg(ctl, 2), <usize>arg(ctl, 3), <usize>arg(ctl, 4), <usize>arg(ctl, 5), p0, p1);
  } else if (op == OP_WINOGRAD_OUTPUT) {
    const n = arg(ctl, 2), tilesY = arg(ctl, 3), tilesX = arg(ctl, 4);
    const tiles = n * tilesY * tilesX;
    const t0 = cut(tiles, index, count, 1), t1 = cut(tiles, index + 1, count, 1);
    if (t0 < t1) {
      winogradOutputRange(<usize>arg(ctl, 0), arg(ctl, 1), n, tilesY, tilesX, arg(ctl, 5), arg(ctl, 6), arg(ctl, 7),
        <usize>arg(ctl, 8), <usize>arg(ctl, 9), t0, t1);
    }
  } else if (op == OP_GEMM) {
    const m = arg(ctl, 0), n = arg(ctl, 1), k = arg(ctl, 2), lda = arg(ctl, 4), ldc = arg(ctl, 7);
    const r0 = cut(m, index, count, 4), r1 = cut(m, index + 1, count, 4);
    if (r0 < r1) {
      gemm(r1 - r0, n, k, <usize>arg(ctl, 3) + ((<usize>r0 * <usize>lda) << 2), lda, <usize>arg(ctl, 5),
        <usize>arg(ctl, 6) + ((<usize>r0 * <usize>ldc) << 2), ldc, <usize>arg(ctl, 8));
    }
  } else if (op == OP_DIRECT) {
    const n = arg(ctl, 1), cp = arg(ctl, 4), h = arg(ctl, 5), w = arg(ctl, 6), co = arg(ctl, 9);
    const pixels = n * h * w;
    const r0 = cut(pixels, index, count, 4), r1 = cut(pixels, index + 1, count, 4);
    if (r0 < r1) {
      const col = <usize>arg(ctl, 7);
      im2colRange(<usize>arg(ctl, 0), n, arg(ctl, 2), arg(ctl, 3), cp, h, w, col, r0, r1);
      const k = 9 * cp;
      gemm(r1 - r0, co, k, col + ((<usize>r0 * <usize>k) << 2), k, <usize>arg(ctl, 8), <usize>arg(ctl, 11) + ((<usize>r0 * <usize>co) << 2), co, <usize>arg(ctl, 10));
    }
  }
}
