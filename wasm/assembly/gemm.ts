// C[M,N] = A[M,K] * B[K,N] (+ bias[N]): the GEMM of the backend. B is packed by packB into panels of 8
// columns ([ceil(N/8)][K][8], zero-padded) and A's elements are broadcast; 4x8 register blocks of f32x4
// accumulators (8 of the 16 xmm registers V8 has on x86-64). `gemm`: A row-major (conv1x1, linear, im2col
// conv3x3), with a 1x8 block for the last rows; `gemmPackedA`: A packed by fours of rows (the 36 Winograd
// products, whose A the input transform writes in that layout).
import { madd } from "./simd";

let TMP: usize = memory.data(4 * 8 * 4, 16); // per thread: see setGemmScratch

/** Bytes of per-thread scratch the GEMM needs. */
export const GEMM_SCRATCH_BYTES: usize = 4 * 8 * 4;

/** Points this instance's GEMM scratch at `p` (GEMM_SCRATCH_BYTES bytes, 16-aligned): one block per thread. */
export function setGemmScratch(p: usize): void {
  TMP = p;
}
/** Rows per block: the block's slice of A (~128 KiB) stays in L2 while every panel of B sweeps it. */
const A_BLOCK_FLOATS = 32768;

/** Packs B[k][n] = src[k * rowStride + n * colStride] (K x N) into 8-column panels at dst (zero-padded). */
export function packB(src: usize, k: i32, n: i32, rowStride: i32, colStride: i32, dst: usize): void {
  const panels = (n + 7) >> 3;
  memory.fill(dst, 0, (<usize>panels * <usize>k) << 5);
  for (let j = 0; j < n; j++) {
    const p = dst + ((<usize>(j >> 3) * <usize>k) << 5) + (<usize>(j & 7) << 2);
    const s = src + (<usize>j * <usize>colStride << 2);
    for (let kk = 0; kk < k; kk++) {
      store<f32>(p + (<usize>kk << 5), load<f32>(s + (<usize>kk * <usize>rowStride << 2)));
    }
  }
}

/** Copies rows x cols of the 4x8 TMP block to C (the right edge of C, where a full panel would overrun). */
@inline function storeTmp(cp: usize, cRow: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < cols; q++) store<f32>(cp + <usize>r * cRow + (<usize>q << 2), load<f32>(TMP + (<usize>(r * 8 + q) << 2)));
  }
}

/** C[4 rows][8 cols] at cp (row stride cRow bytes) from rows a0..a3 of A and one panel bp of B. */
@inline function block4x8(a0: usize, a1: usize, a2: usize, a3: usize, bp: usize, k: i32, bias: usize, cp: usize, cRow: usize, cols: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  if (bias) {
    c00 = v128.load(bias);
    c01 = v128.load(bias, 16);
  }
  let c10 = c00, c11 = c01, c20 = c00, c21 = c01, c30 = c00, c31 = c01;
  const end = <usize>k << 2;
  for (let off: usize = 0; off < end; off += 4) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let s = v128.load32_splat(a0 + off);
    c00 = madd(s, b0, c00); c01 = madd(s, b1, c01);
    s = v128.load32_splat(a1 + off);
    c10 = madd(s, b0, c10); c11 = madd(s, b1, c11);
    s = v128.load32_splat(a2 + off);
    c20 = madd(s, b0, c20); c21 = madd(s, b1, c21);
    s = v128.load32_splat(a3 + off);
    c30 = madd(s, b0, c30); c31 = madd(s, b1, c31);
    bp += 32;
  }
  if (cols == 8) {
    v128.store(cp, c00); v128.store(cp, c01, 16);
    v128.store(cp + cRow, c10); v128.store(cp + cRow, c11, 16);
    v128.store(cp + 2 * cRow, c20); v128.store(cp + 2 * cRow, c21, 16);
    v128.store(cp + 3 * cRow, c30); v128.store(cp + 3 * cRow, c31, 16);
  } else {
    v128.store(TMP, c00); v128.store(TMP, c01, 16);
    v128.store(TMP, c10, 32); v128.store(TMP, c11, 48);
    v128.store(TMP, c20, 64); v128.store(TMP, c21, 80);
    v128.store(TMP, c30, 96); v128.store(TMP, c31, 112);
    storeTmp(cp, cRow, 4, cols);
  }
}

/** C[1 row][8 cols]: the rows left over below the last full 4-row block (and the M = 1, 2 of linear). */
@inline function block1x8(a0: usize, bp: usize, k: i32, bias: usize, cp: usize, cols: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  if (bias) {
    c00 = v128.load(bias);
    c01 = v128.load(bias, 16);
  }
  const end = <usize>k << 2;
  for (let off: usize = 0; off < end; off += 4) {
    const s = v128.load32_splat(a0 + off);
    c00 = madd(s, v128.load(bp), c00);
    c01 = madd(s, v128.load(bp, 16), c01);
    bp += 32;
  }
  if (cols == 8) {
    v128.store(cp, c00); v128.store(cp, c01, 16);
  } else {
    v128.store(TMP, c00); v128.store(TMP, c01, 16);
    storeTmp(cp, 0, 1, cols);
  }
}

/**
 * C = A * B for A packed by rows in fours (group g = rows 4g..4g+3 is [K][4] at a + g * groupStride floats;
 * the layout winogradInput writes): the four broadcasts of a k step come from one pointer at fixed offsets,
 * which leaves V8 fewer address computations per k step than four row pointers. Rows past M, up to a
 * multiple of 4, are computed and stored too (ldc floats per row).
 */
export function gemmPackedA(m: i32, n: i32, k: i32, a: usize, groupStride: i32, b: usize, c: usize, ldc: i32): void {
  const panels = (n + 7) >> 3;
  const groupBytes = <usize>k << 4;
  const groupStep = <usize>groupStride << 2;
  const panelBytes = <usize>k << 5;
  const cRow = <usize>ldc << 2;
  const groups = (m + 3) >> 2;
  for (let j = 0; j < panels; j++) {
    const b0p = b + <usize>j * panelBytes;
    for (let g = 0; g < groups; g++) {
      let ap = a + <usize>g * groupStep;
      let bp = b0p;
      let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      const aEnd = ap + groupBytes;
      // One k step a turn: unrolling by two measured level on V8 and 5-10% slower on JavaScriptCore.
      for (; ap < aEnd; ap += 16, bp += 32) {
        const b0 = v128.load(bp), b1 = v128.load(bp, 16);
        let s = v128.load32_splat(ap);
        c00 = madd(s, b0, c00); c01 = madd(s, b1, c01);
        s = v128.load32_splat(ap, 4);
        c10 = madd(s, b0, c10); c11 = madd(s, b1, c11);
        s = v128.load32_splat(ap, 8);
        c20 = madd(s, b0, c20); c21 = madd(s, b1, c21);
        s = v128.load32_splat(ap, 12);
        c30 = madd(s, b0, c30); c31 = madd(s, b1, c31);
      }
      const cp = c + (<usize>(g << 2)) * cRow + (<usize>j << 5);
      v128.store(cp, c00); v128.store(cp, c01, 16);
      v128.store(cp + cRow, c10); v128.store(cp + cRow, c11, 16);
      v128.store(cp + 2 * cRow, c20); v128.store(cp + 2 * cRow, c21, 16);
      v128.store(cp + 3 * cRow, c30); v128.store(cp + 3 * cRow, c31, 16);
    }
  }
}

/**
 * C = A * B (+ bias). m, n, k: sizes; a: A (lda floats per row); b: packed B; c: C (ldc floats per row);
 * bias: N floats or 0. NOTE: reads up to 28 bytes past the end of bias (the allocator pads every block)
 * and writes only C[0..m)[0..n).
 */
export function gemm(m: i32, n: i32, k: i32, a: usize, lda: i32, b: usize, c: usize, ldc: i32, bias: usize): void {
  const panels = (n + 7) >> 3;
  const rowBytes = <usize>lda << 2;
  const panelBytes = <usize>k << 5;
  const cRow = <usize>ldc << 2;
  const mc = max(4, (A_BLOCK_FLOATS / max(k, 1)) & ~3);
  for (let i0 = 0; i0 < m; i0 += mc) {
    const i1 = min(m, i0 + mc);
    for (let j = 0; j < panels; j++) {
      const bp = b + <usize>j * panelBytes;
      const bj = bias ? bias + (<usize>j << 5) : 0;
      const cols = min(8, n - (j << 3));
      let i = i0;
      for (; i + 4 <= i1; i += 4) {
        const a0 = a + <usize>i * rowBytes;
        block4x8(a0, a0 + rowBytes, a0 + 2 * rowBytes, a0 + 3 * rowBytes, bp, k, bj, c + <usize>i * cRow + (<usize>j << 5), cRow, cols);
      }
      for (; i < i1; i++) block1x8(a + <usize>i * rowBytes, bp, k, bj, c + <usize>i * cRow + (<usize>j << 5), cols);
    }
  }
}
