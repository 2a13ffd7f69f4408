// Conv3x3 (stride 1, pad 1) on NHWC activations: Winograd F(4x4,3x3) (Lavin & Gray 2016, points 0, +-1,
// +-2, inf: Y = A^T [(G g G^T) . (B^T d B)] A) and a direct im2col path for tiny images. Both read a
// zero-padded, channel-padded copy P of the input ([N][Hp][Wp][Cp], Cp = ceil(Ci/4)*4) that the pre-op
// pass writes (norm.ts), and both end in gemm.ts.
import { gemm, gemmPackedA } from "./gemm";
import { constant, storeLanes } from "./simd";

// Scratch of one thread (memory.data for the main one; each worker of the threads build points these at its
// own block with setConvScratch, since static data is shared when the memory is).
let SCR: usize = memory.data(36 * 16, 16); // one 6x6 tile of f32x4 between the two passes of a transform

/**
 * Winograd weights U = G g G^T for w [Co][Ci][3][3] (torch layout), computed in f64, stored for the GEMM
 * as 36 packed B matrices: dst[p][ceil(Co/8)][Cp][8] (K = Cp input channels, N = Co, zero-padded). The 36
 * values of the eight kernels of a panel row are made in the TILES scratch first, then stored as one 32-byte
 * row per plane: the planes are often a multiple of 4 KiB apart (one L1 set), and 36 scattered f32 stores
 * per kernel made this transform most of a model's load time (DiC-S: 904 of 1020 ms).
 */
export function winogradWeights(w: usize, co: i32, ci: i32, cp: i32, dst: usize): void {
  const coPad = (co + 7) & ~7;
  const pStride = (<usize>cp * <usize>coPad) << 2;
  memory.fill(dst, 0, pStride * 36);
  for (let ob = 0; ob < co; ob += 8) {
    for (let i = 0; i < ci; i++) {
      if (ob + 8 > co) memory.fill(TILES, 0, 36 * 32); // the last panel's lanes past Co stay zero
      for (let o = ob; o < min(co, ob + 8); o++) {
        const g = w + ((<usize>(o * ci + i) * 9) << 2);
        const lane = TILES + (<usize>(o - ob) << 2);
        // t = G g (6x3, f64 in SCR: t[r][col] at r * 24 + col * 8), then U = t G^T (6x6)
        for (let col = 0; col < 3; col++) {
          gSix(<f64>load<f32>(g + (<usize>col << 2)), <f64>load<f32>(g + (<usize>(3 + col) << 2)), <f64>load<f32>(g + (<usize>(6 + col) << 2)),
            SCR + (<usize>col << 3), 24, false);
        }
        for (let r = 0; r < 6; r++) {
          const t = SCR + <usize>r * 24;
          gSix(load<f64>(t), load<f64>(t, 8), load<f64>(t, 16), lane + (<usize>(r * 6) << 5), 32, true);
        }
      }
      const base = dst + ((<usize>(ob >> 3) * <usize>cp + <usize>i) << 5);
      for (let p = 0; p < 36; p++) {
        const src = TILES + (<usize>p << 5);
        v128.store(base + <usize>p * pStride, v128.load(src));
        v128.store(base + <usize>p * pStride, v128.load(src, 16), 16);
      }
    }
  }
}

/**
 * The six rows of G times (a, b, c), in f64, to out + r * stride: as f32 (`narrow`) or f64. Reciprocal
 * multiplies instead of the divisions by 4, 6, 12 and 24 (these were most of a model's load time).
 */
@inline function gSix(a: f64, b: f64, c: f64, out: usize, stride: usize, narrow: bool): void {
  const sixth: f64 = 1.0 / 6, ac = a + c;
  const a24 = a * (1.0 / 24), b12 = b * (1.0 / 12), c6 = c * sixth;
  const v0 = a * 0.25, v1 = -(ac + b) * sixth, v2 = -(ac - b) * sixth, v3 = a24 + b12 + c6, v4 = a24 - b12 + c6;
  if (narrow) {
    store<f32>(out, <f32>v0); store<f32>(out + stride, <f32>v1); store<f32>(out + 2 * stride, <f32>v2);
    store<f32>(out + 3 * stride, <f32>v3); store<f32>(out + 4 * stride, <f32>v4); store<f32>(out + 5 * stride, <f32>c);
  } else {
    store<f64>(out, v0); store<f64>(out + stride, v1); store<f64>(out + 2 * stride, v2);
    store<f64>(out + 3 * stride, v3); store<f64>(out + 4 * stride, v4); store<f64>(out + 5 * stride, c);
  }
}

/** Direct-path weights: packed B with K = 9 * Cp rows ordered (ky, kx, ci), N = Co. */
export function directWeights(w: usize, co: i32, ci: i32, cp: i32, dst: usize): void {
  const k = 9 * cp;
  memory.fill(dst, 0, (<usize>((co + 7) >> 3) * <usize>k) << 5);
  for (let o = 0; o < co; o++) {
    const col = dst + ((<usize>(o >> 3) * <usize>k) << 5) + (<usize>(o & 7) << 2);
    for (let i = 0; i < ci; i++) {
      for (let tap = 0; tap < 9; tap++) {
        store<f32>(col + (<usize>(tap * cp + i) << 5), load<f32>(w + ((<usize>(o * ci + i) * 9 + tap) << 2)));
      }
    }
  }
}

// The transforms' constant factors, read with `constant` (simd.ts; they are used 12 times per tile and
// block of four channels).
const K: usize = memory.data<f32>([2, 4, 5, 8], 16);
@inline function two(): v128 { return constant(K, 0); }
@inline function four(): v128 { return constant(K, 1); }
@inline function five(): v128 { return constant(K, 2); }
@inline function eight(): v128 { return constant(K, 3); }

/** One column (or row) of B^T d, d given as six f32x4 at stride `s` bytes, results to six slots at stride `o`. */
@inline function inputColumn(src: usize, s: usize, dst: usize, o: usize): void {
  const d0 = v128.load(src), d1 = v128.load(src + s), d2 = v128.load(src + 2 * s);
  const d3 = v128.load(src + 3 * s), d4 = v128.load(src + 4 * s), d5 = v128.load(src + 5 * s);
  const c4 = four(), c5 = five(), c2 = two();
  const a = f32x4.sub(d4, f32x4.mul(c4, d2));
  const b = f32x4.sub(d3, f32x4.mul(c4, d1));
  const c = f32x4.sub(d4, d2);
  const e = f32x4.mul(c2, f32x4.sub(d3, d1));
  v128.store(dst, f32x4.add(f32x4.sub(f32x4.mul(c4, d0), f32x4.mul(c5, d2)), d4));
  v128.store(dst + o, f32x4.add(a, b));
  v128.store(dst + 2 * o, f32x4.sub(a, b));
  v128.store(dst + 3 * o, f32x4.add(c, e));
  v128.store(dst + 4 * o, f32x4.sub(c, e));
  v128.store(dst + 5 * o, f32x4.add(f32x4.sub(f32x4.mul(c4, d1), f32x4.mul(c5, d3)), d5));
}

/** 4x4 transpose of f32 lanes: rows r0..r3 (a tile's four channels each) -> columns (a channel's four tiles). */
@inline function storeTransposed(r0: v128, r1: v128, r2: v128, r3: v128, dst: usize): void {
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(dst, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), 16);
  v128.store(dst, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), 32);
  v128.store(dst, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), 48);
}

let TILES: usize = memory.data(36 * 4 * 16, 16); // 36 transformed vectors of the four tiles of a group

/** Bytes of per-thread scratch the conv kernels need (see setConvScratch). */
export const CONV_SCRATCH_BYTES: usize = 36 * 16 + 36 * 4 * 16;

/** Points this instance's conv scratch at `p` (CONV_SCRATCH_BYTES bytes, 16-aligned): one block per thread. */
export function setConvScratch(p: usize): void {
  SCR = p;
  TILES = p + 36 * 16;
}

/**
 * V = B^T d B for every 6x6 tile d of P, packed for gemmPackedA: V[p][t / 4][Cp][t % 4], planes p
 * winogradPlaneBytes(ceil(T/4)*4, Cp) apart (tile t = (n * tilesY
 * + ty) * tilesX + tx, origin (4 ty, 4 tx) in P; tiles past the last one, up to a multiple of 4, repeat it).
 * P: [N][Hp][Wp][Cp] with Hp >= 4 tilesY + 2, Wp >= 4 tilesX + 2.
 */
export function winogradInput(pIn: usize, n: i32, hp: i32, wp: i32, cp: i32, tilesY: i32, tilesX: i32, v: usize): void {
  winogradInputRange(pIn, n, hp, wp, cp, tilesY, tilesX, v, 0, (n * tilesY * tilesX + 3) >> 2);
}

/**
 * Bytes from one of the 36 planes of V or M (rows x width f32, both multiples of 4: a whole number of cache
 * lines) to the next: the plane, plus one cache line when its line count is even, so that the 36 planes start
 * in 36 different L1 sets. Planes a multiple of 4 KiB apart put a tile's 36 loads (output transform) or
 * stores (input transform) in one 12-way set; measured: both transforms ~2-3x slower (DiC-S planes are
 * 6, 3 and 1.5 x 4 KiB at 32x32x96, 16x16x192 and 8x8x384).
 */
export function winogradPlaneBytes(rows: i32, width: i32): usize {
  const b = (<usize>rows * <usize>width) << 2;
  return (b >> 6) & 1 ? b : b + 64;
}

/** Channels (multiples of 4) per unit of work of the threaded input and output transforms. */
export const TRANSFORM_BLOCK: i32 = 32;

/**
 * winogradInput for the work units [u0, u1) only (a thread's share): unit u is tile group u / blocks and its
 * channels [32 b, 32 b + 32) for b = u % blocks, blocks = ceil(Cp / 32); small images (one tile group at 8x8)
 * still split across threads that way.
 */
export function winogradInputUnits(pIn: usize, n: i32, hp: i32, wp: i32, cp: i32, tilesY: i32, tilesX: i32, v: usize, u0: i32, u1: i32): void {
  const blocks = (cp + TRANSFORM_BLOCK - 1) / TRANSFORM_BLOCK;
  for (let u = u0; u < u1; u++) {
    const g = u / blocks, b = u - g * blocks;
    inputBlock(pIn, n, hp, wp, cp, tilesY, tilesX, v, g, g + 1, b * TRANSFORM_BLOCK, min(cp, (b + 1) * TRANSFORM_BLOCK));
  }
}

/** winogradInput for the tile groups [g0, g1) only. */
export function winogradInputRange(pIn: usize, n: i32, hp: i32, wp: i32, cp: i32, tilesY: i32, tilesX: i32, v: usize, g0: i32, g1: i32): void {
  inputBlock(pIn, n, hp, wp, cp, tilesY, tilesX, v, g0, g1, 0, cp);
}

/** winogradInput for the tile groups [g0, g1) and the channels [c0, c1) (multiples of 4) only. */
function inputBlock(pIn: usize, n: i32, hp: i32, wp: i32, cp: i32, tilesY: i32, tilesX: i32, v: usize, g0: i32, g1: i32, c0: i32, c1: i32): void {
  const perImage = tilesY * tilesX;
  const tiles = n * perImage;
  const groups = (tiles + 3) >> 2;
  const px = <usize>cp << 2; // bytes per pixel
  const row = <usize>wp * px;
  const groupBytes = <usize>cp << 4;
  const pStride = winogradPlaneBytes(groups << 2, cp);
  for (let g = g0; g < g1; g++) {
    const out = v + <usize>g * groupBytes;
    const o0 = tileOrigin(pIn, g * 4, tiles, perImage, tilesX, hp, wp, px);
    const o1 = tileOrigin(pIn, g * 4 + 1, tiles, perImage, tilesX, hp, wp, px);
    const o2 = tileOrigin(pIn, g * 4 + 2, tiles, perImage, tilesX, hp, wp, px);
    const o3 = tileOrigin(pIn, g * 4 + 3, tiles, perImage, tilesX, hp, wp, px);
    for (let c: usize = <usize>c0 << 2; c < (<usize>c1 << 2); c += 16) {
      for (let r = 0; r < 4; r++) {
        const origin = (r == 0 ? o0 : r == 1 ? o1 : r == 2 ? o2 : o3) + c;
        // columns: SCR[i][j] = (B^T d)[i][j]; rows: TILES[i*6 + j][r] = (SCR B)[i][j]
        for (let j = 0; j < 6; j++) inputColumn(origin + <usize>j * px, row, SCR + (<usize>j << 4), 96);
        for (let i = 0; i < 6; i++) inputColumn(SCR + <usize>i * 96, 16, TILES + <usize>(i * 6 * 64 + r * 16), 64);
      }
      const dst = out + (c << 2);
      for (let p = 0; p < 36; p++) {
        const s = TILES + <usize>(p * 64);
        storeTransposed(v128.load(s), v128.load(s, 16), v128.load(s, 32), v128.load(s, 48), dst + <usize>p * pStride);
      }
    }
  }
}

/** Byte address in P of tile t's top-left input pixel (t clamped to the last tile). */
@inline function tileOrigin(pIn: usize, t: i32, tiles: i32, perImage: i32, tilesX: i32, hp: i32, wp: i32, px: usize): usize {
  t = min(t, tiles - 1);
  const b = t / perImage, rem = t - b * perImage;
  const ty = rem / tilesX, tx = rem - ty * tilesX;
  return pIn + (<usize>(b * hp + ty * 4) * <usize>wp + <usize>(tx * 4)) * px;
}

/**
 * The 36 GEMMs M[p] = V[p] (T x Cp) * U[p] (Cp x CoPad), M: [36][ceil(T/4)*4][CoPad] (planes
 * winogradPlaneBytes(ceil(T/4)*4, CoPad) apart, as V's). (A tile-major M, which
 * the output transform would read contiguously, measured slower: the GEMM then writes rows 36 planes apart.)
 */
export function winogradGemm(tiles: i32, cp: i32, coPad: i32, v: usize, u: usize, m: usize): void {
  winogradGemmUnits(tiles, cp, coPad, v, u, m, 1, 0, 36);
}

/**
 * winogradGemm for the work units [u0, u1) of 36 * parts (a thread's share): unit u is product u / parts,
 * tile groups [g0, g1) of its `parts` equal parts, g = u % parts. Threads claim units in order, so with parts
 * > 1 they work on the same product, and the weights one of them streams in are in the shared L3 for the
 * others (with one product per thread they streamed parts-times the weights). Each M element is computed
 * the same way whatever the split.
 */
export function winogradGemmUnits(tiles: i32, cp: i32, coPad: i32, v: usize, u: usize, m: usize, parts: i32, u0: i32, u1: i32): void {
  const rows = (tiles + 3) & ~3;
  const groups = rows >> 2;
  const vStride = winogradPlaneBytes(rows, cp);
  const uStride = (<usize>cp * <usize>coPad) << 2;
  const mStride = winogradPlaneBytes(rows, coPad);
  for (let w = u0; w < u1; w++) {
    const p = w / parts, part = w - p * parts;
    const g0 = groups * part / parts, g1 = groups * (part + 1) / parts;
    if (g1 <= g0) continue;
    gemmPackedA((g1 - g0) << 2, coPad, cp, v + <usize>p * vStride + <usize>g0 * (<usize>cp << 4), 4 * cp, u + <usize>p * uStride,
      m + <usize>p * mStride + <usize>(g0 << 2) * (<usize>coPad << 2), coPad);
  }
}

/** Four outputs of A^T m for six f32x4 at stride s bytes, to four slots at stride o. */
@inline function outputColumn(src: usize, s: usize, dst: usize, o: usize): void {
  const m0 = v128.load(src), m1 = v128.load(src + s), m2 = v128.load(src + 2 * s);
  const m3 = v128.load(src + 3 * s), m4 = v128.load(src + 4 * s), m5 = v128.load(src + 5 * s);
  const s12 = f32x4.add(m1, m2), d12 = f32x4.sub(m1, m2);
  const s34 = f32x4.add(m3, m4), d34 = f32x4.sub(m3, m4);
  v128.store(dst, f32x4.add(f32x4.add(m0, s12), s34));
  v128.store(dst + o, f32x4.add(d12, f32x4.mul(two(), d34)));
  v128.store(dst + 2 * o, f32x4.add(s12, f32x4.mul(four(), s34)));
  v128.store(dst + 3 * o, f32x4.add(f32x4.add(d12, f32x4.mul(eight(), d34)), m5));
}

/** Row i of (A^T M) A + bias from the six f32x4 at src, stored to the first `cols` pixels at dst. */
@inline function outputRow(src: usize, bias: v128, dst: usize, px: usize, cols: i32, lanes: i32): void {
  const m0 = v128.load(src), m1 = v128.load(src, 16), m2 = v128.load(src, 32);
  const m3 = v128.load(src, 48), m4 = v128.load(src, 64), m5 = v128.load(src, 80);
  const s12 = f32x4.add(m1, m2), d12 = f32x4.sub(m1, m2);
  const s34 = f32x4.add(m3, m4), d34 = f32x4.sub(m3, m4);
  storeLanes(dst, f32x4.add(f32x4.add(f32x4.add(m0, s12), s34), bias), lanes);
  if (cols > 1) storeLanes(dst + px, f32x4.add(f32x4.add(d12, f32x4.add(d34, d34)), bias), lanes);
  if (cols > 2) storeLanes(dst + 2 * px, f32x4.add(f32x4.add(s12, f32x4.mul(four(), s34)), bias), lanes);
  if (cols > 3) storeLanes(dst + 3 * px, f32x4.add(f32x4.add(f32x4.add(d12, f32x4.mul(eight(), d34)), m5), bias), lanes);
}

/** out [N][H][W][Co] = A^T M A + bias (M: [36][T][CoPad]), cropping tiles that overhang the bottom and right edges. */
export function winogradOutput(m: usize, coPad: i32, n: i32, tilesY: i32, tilesX: i32, h: i32, w: i32, co: i32, bias: usize, out: usize): void {
  winogradOutputRange(m, coPad, n, tilesY, tilesX, h, w, co, bias, out, 0, n * tilesY * tilesX);
}

/** winogradOutput for the work units [u0, u1) only (a thread's share): tile u / blocks, channels [32 b, 32 b + 32), b = u % blocks. */
export function winogradOutputUnits(m: usize, coPad: i32, n: i32, tilesY: i32, tilesX: i32, h: i32, w: i32, co: i32, bias: usize, out: usize, u0: i32, u1: i32): void {
  const blocks = (co + TRANSFORM_BLOCK - 1) / TRANSFORM_BLOCK;
  for (let u = u0; u < u1; u++) {
    const t = u / blocks, b = u - t * blocks;
    outputBlock(m, coPad, n, tilesY, tilesX, h, w, co, bias, out, t, t + 1, b * TRANSFORM_BLOCK, min(co, (b + 1) * TRANSFORM_BLOCK));
  }
}

/** winogradOutput for the tiles [t0, t1) only. */
export function winogradOutputRange(m: usize, coPad: i32, n: i32, tilesY: i32, tilesX: i32, h: i32, w: i32, co: i32, bias: usize, out: usize, t0: i32, t1: i32): void {
  outputBlock(m, coPad, n, tilesY, tilesX, h, w, co, bias, out, t0, t1, 0, co);
}

/** winogradOutput for the tiles [t0, t1) and the output channels [c0, c1) (c0 a multiple of 4) only. */
function outputBlock(m: usize, coPad: i32, n: i32, tilesY: i32, tilesX: i32, h: i32, w: i32, co: i32, bias: usize, out: usize, t0: i32, t1: i32, c0: i32, c1: i32): void {
  const tStride = <usize>coPad << 2;
  const pStride = winogradPlaneBytes((n * tilesY * tilesX + 3) & ~3, coPad);
  const px = <usize>co << 2;
  const perImage = tilesY * tilesX;
  for (let t = t0; t < t1; t++) {
    const b = t / perImage, rem = t - b * perImage;
    const ty = rem / tilesX, tx = rem - ty * tilesX;
    const rows = min(4, h - ty * 4), cols = min(4, w - tx * 4);
    const src = m + <usize>t * tStride;
    const dst = out + (<usize>(b * h + ty * 4) * <usize>w + <usize>(tx * 4)) * px;
    for (let c = c0; c < c1; c += 4) {
      const cb = <usize>c << 2;
      // columns: SCR[i][j] = (A^T M)[i][j], i < 4
      for (let j = 0; j < 6; j++) outputColumn(src + cb + <usize>j * pStride, 6 * pStride, SCR + (<usize>j << 4), 96);
      const bv = bias ? v128.load(bias + cb) : f32x4.splat(0);
      const lanes = co - c;
      for (let i = 0; i < rows; i++) outputRow(SCR + <usize>i * 96, bv, dst + <usize>(i * w) * px + cb, px, cols, lanes);
    }
  }
}

/** im2col for the direct path: col[(n*H + y)*W + x][(ky*3 + kx)*Cp + c] = P[n][y+ky][x+kx][c]. */
export function im2col(pIn: usize, n: i32, hp: i32, wp: i32, cp: i32, h: i32, w: i32, col: usize): void {
  im2colRange(pIn, n, hp, wp, cp, h, w, col, 0, n * h * w);
}

/** im2col for the output pixels [r0, r1) (rows of col) only. */
export function im2colRange(pIn: usize, n: i32, hp: i32, wp: i32, cp: i32, h: i32, w: i32, col: usize, r0: i32, r1: i32): void {
  const px = <usize>cp << 2;
  let dst = col + <usize>r0 * 9 * px;
  for (let r = r0; r < r1; r++) {
    const b = r / (h * w), rem = r - b * h * w;
    const y = rem / w, x = rem - y * w;
    for (let ky = 0; ky < 3; ky++) {
      const src = pIn + (<usize>(b * hp + y + ky) * <usize>wp + <usize>x) * px;
      memory.copy(dst, src, 3 * px);
      dst += 3 * px;
    }
  }
}

/** Direct conv3x3 from P: out [N*H*W][Co] = col * Wd + bias. `col` is scratch of N*H*W*9*Cp floats. */
export function directConv(pIn: usize, n: i32, hp: i32, wp: i32, cp: i32, h: i32, w: i32, col: usize, wd: usize, co: i32, bias: usize, out: usize): void {
  im2col(pIn, n, hp, wp, cp, h, w, col);
  gemm(n * h * w, co, 9 * cp, col, 9 * cp, wd, out, co, bias);
}

// ----- compact weight storage: 3x3 kernels kept in f16 or int8 and expanded per layer, just in time -----

/** Storage kinds of expandWinograd / expandDirect: f16 (IEEE binary16 bits) or int8 times a per-Co scale. */
const KIND_F16 = 1, KIND_I8 = 2;

/** IEEE binary16 bits -> f32 (exact: subnormals, infinities and NaN included). */
@inline function halfToFloat(h: u32): f32 {
  const s = (h & 0x8000) << 16;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e == 0) {
    const v = <f32>m * 5.9604644775390625e-8; // m * 2^-24
    return s ? -v : v;
  }
  if (e == 31) return reinterpret<f32>(s | 0x7f800000 | (m << 13));
  return reinterpret<f32>(s | ((e + 112) << 23) | (m << 13));
}

/**
 * Element `idx` of a compact kernel, in f32 (int8: before its scale). Compact kernels are stored four
 * output channels interleaved, [ceil(Co/4)][Ci][9][4] (see compactIndex), so that one load gives a tap of
 * the four channels expandWinogradRange transforms together.
 */
@inline function tapOf(src: usize, kind: i32, idx: usize): f32 {
  if (kind == KIND_F16) return halfToFloat(<u32>load<u16>(src + (idx << 1)));
  if (kind == KIND_I8) return <f32>load<i8>(src + idx);
  return load<f32>(src + (idx << 2));
}

/** Index of tap `tap` of kernel (o, i) in the interleaved compact layout [ceil(Co/4)][Ci][9][4]. */
@inline function compactIndex(o: i32, i: i32, tap: i32, ci: i32): usize {
  return ((<usize>(o >> 2) * <usize>ci + <usize>i) * 9 + <usize>tap) * 4 + <usize>(o & 3);
}

/** One tap of four interleaved output channels at element `idx` (a multiple of 4), as f32x4 (int8: before scales). */
@inline function tap4(src: usize, kind: i32, idx: usize): v128 {
  if (kind == KIND_F16) {
    // binary16 -> f32 without branches: magnitude bits moved to f32 position and scaled by 2^112 (exact for
    // normals and subnormals; compact storage holds no infinities or NaN), then the sign.
    const h = v128.load16x4_u(src + (idx << 1));
    const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
    const mag = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
    return v128.or(f32x4.mul(mag, f32x4.splat(reinterpret<f32>(0x77800000))), sign);
  }
  if (kind == KIND_I8) return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(src + idx))));
  return v128.load(src + (idx << 2));
}

/** Per-output-channel scale (1 when there are none). */
@inline function scaleOf(scales: usize, o: i32): f32 {
  return scales ? load<f32>(scales + (<usize>o << 2)) : 1;
}


/** Six rows of G times the column (a, b, c) of four kernels, stored at dst + r * stride. */
@inline function gColumn(a: v128, b: v128, c: v128, dst: usize, stride: usize): void {
  const sixth = f32x4.splat(1.0 / 6), q = f32x4.splat(0.25);
  const a24 = f32x4.mul(a, f32x4.splat(1.0 / 24)), b12 = f32x4.mul(b, f32x4.splat(1.0 / 12)), c6 = f32x4.mul(c, sixth);
  const ac = f32x4.add(a, c);
  v128.store(dst, f32x4.mul(a, q));
  v128.store(dst + stride, f32x4.neg(f32x4.mul(f32x4.add(ac, b), sixth)));
  v128.store(dst + 2 * stride, f32x4.neg(f32x4.mul(f32x4.sub(ac, b), sixth)));
  v128.store(dst + 3 * stride, f32x4.add(f32x4.add(a24, b12), c6));
  v128.store(dst + 4 * stride, f32x4.add(f32x4.sub(a24, b12), c6));
  v128.store(dst + 5 * stride, c);
}

/**
 * winogradWeights from compact storage, in f32 and four output channels at a time (the four are adjacent
 * lanes of the packed B panel): dst[p][ceil(Co/8)][Cp][8] = (G g G^T)[p] of w = tap * scale[o].
 */
export function expandWinograd(src: usize, kind: i32, scales: usize, co: i32, ci: i32, cp: i32, dst: usize): void {
  expandWinogradRange(src, kind, scales, co, ci, cp, 0, co, dst, (<usize>cp * <usize>((co + 7) & ~7)) << 2);
}

/**
 * Bytes between the 36 planes of a chunk's expanded form: one cache line more than the plane, because a
 * plane of a multiple of 4 KiB would put the 36 stores of every kernel in the same L1 set (measured: the
 * expansion of a 384 x 384 layer 5x slower).
 */
@inline function chunkPlaneStride(cp: i32, cw: i32): usize {
  return ((<usize>cp * <usize>cw) << 2) + 64;
}

/**
 * expandWinograd for output channels [o0, o1) only (o0 a multiple of 8): dst[p][ceil((o1 - o0)/8)][Cp][8],
 * planes `pStride` bytes apart.
 */
export function expandWinogradRange(src: usize, kind: i32, scales: usize, co: i32, ci: i32, cp: i32, o0: i32, o1: i32, dst: usize, pStride: usize): void {
  const cw = (o1 - o0 + 7) & ~7;
  const plane = (<usize>cp * <usize>cw) << 2;
  if (ci < cp || o1 - o0 < cw) for (let p = 0; p < 36; p++) memory.fill(dst + <usize>p * pStride, 0, plane); // padding stays zero
  for (let o = o0; o < o1; o += 4) {
    // Lanes past o1 have scale 0 (their stored taps are zero-padded anyway).
    const s0 = scaleOf(scales, o);
    const s1 = o + 1 < o1 ? scaleOf(scales, o + 1) : <f32>0;
    const s2 = o + 2 < o1 ? scaleOf(scales, o + 2) : <f32>0;
    const s3 = o + 3 < o1 ? scaleOf(scales, o + 3) : <f32>0;
    const sc = f32x4(s0, s1, s2, s3);
    const lane = o - o0;
    for (let i = 0; i < ci; i++) {
      const at = compactIndex(o, i, 0, ci);
      // t = G g: column c of g is taps (c, 3 + c, 6 + c), to SCR[r * 3 + c] (this thread's conv scratch: 18 of its 36 slots)
      for (let c = 0; c < 3; c++) {
        const g0 = f32x4.mul(tap4(src, kind, at + (<usize>c << 2)), sc);
        const g1 = f32x4.mul(tap4(src, kind, at + (<usize>(3 + c) << 2)), sc);
        const g2 = f32x4.mul(tap4(src, kind, at + (<usize>(6 + c) << 2)), sc);
        gColumn(g0, g1, g2, SCR + (<usize>c << 4), 48);
      }
      // U = t G^T: row r of t (three f32x4) -> six values per row
      const base = dst + ((<usize>(lane >> 3) * <usize>cp + <usize>i) << 5) + (<usize>(lane & 7) << 2);
      for (let r = 0; r < 6; r++) {
        const t = SCR + <usize>r * 48;
        gColumn(v128.load(t), v128.load(t, 16), v128.load(t, 32), base + <usize>(r * 6) * pStride, pStride);
      }
    }
  }
}

/**
 * The 36 Winograd GEMMs of a compact weight, `chunk` output channels at a time: each chunk's Winograd form
 * is expanded into `scratch` (36 * Cp * chunk floats, small enough to stay in cache) and used at once, so
 * the whole form never exists. M as winogradGemm writes it. `chunk`: a multiple of 8.
 */
export function winogradGemmCompact(tiles: i32, cp: i32, coPad: i32, v: usize, src: usize, kind: i32, scales: usize, co: i32, ci: i32, m: usize, scratch: usize, chunk: i32): void {
  winogradGemmCompactRange(tiles, cp, coPad, v, src, kind, scales, co, ci, m, scratch, chunk, 0, 0, (co + chunk - 1) / chunk);
}

/**
 * winogradGemmCompact for the chunks [j0, j1) only (a thread's share): chunk j is expanded at scratch + j *
 * chunkStride (0: every chunk in the same block, one thread).
 */
export function winogradGemmCompactRange(tiles: i32, cp: i32, coPad: i32, v: usize, src: usize, kind: i32, scales: usize, co: i32, ci: i32, m: usize,
  scratch: usize, chunk: i32, chunkStride: i32, j0: i32, j1: i32): void {
  const rows = (tiles + 3) & ~3;
  const vStride = winogradPlaneBytes(rows, cp);
  const mStride = winogradPlaneBytes(rows, coPad);
  for (let j = j0; j < j1; j++) {
    const c0 = j * chunk;
    const c1 = min(co, c0 + chunk);
    const at = scratch + <usize>j * <usize>chunkStride;
    const cw = (c1 - c0 + 7) & ~7;
    const uStride = chunkPlaneStride(cp, cw);
    expandWinogradRange(src, kind, scales, co, ci, cp, c0, c1, at, uStride);
    for (let p = 0; p < 36; p++) {
      gemmPackedA(rows, cw, cp, v + <usize>p * vStride, 4 * cp, at + <usize>p * uStride, m + <usize>p * mStride + (<usize>c0 << 2), coPad);
    }
  }
}

/**
 * Direct conv3x3 of a compact weight from P, `chunk` output channels at a time (each chunk's direct form
 * expanded into `scratch`, 9 * Cp * chunk floats): out [N*H*W][Co] = col * Wd + bias.
 */
export function directConvCompact(pIn: usize, n: i32, hp: i32, wp: i32, cp: i32, h: i32, w: i32, col: usize, src: usize, kind: i32, scales: usize, co: i32, ci: i32, bias: usize, out: usize, scratch: usize, chunk: i32): void {
  im2col(pIn, n, hp, wp, cp, h, w, col);
  for (let c0 = 0; c0 < co; c0 += chunk) {
    const c1 = min(co, c0 + chunk);
    expandDirectRange(src, kind, scales, co, ci, cp, c0, c1, scratch);
    gemm(n * h * w, c1 - c0, 9 * cp, col, 9 * cp, scratch, out + (<usize>c0 << 2), co, bias ? bias + (<usize>c0 << 2) : 0);
  }
}

/** directWeights from compact storage: packed B with K = 9 * Cp rows ordered (ky, kx, ci), N = Co. */
export function expandDirect(src: usize, kind: i32, scales: usize, co: i32, ci: i32, cp: i32, dst: usize): void {
  expandDirectRange(src, kind, scales, co, ci, cp, 0, co, dst);
}

/** expandDirect for output channels [o0, o1) only (o0 a multiple of 8). */
export function expandDirectRange(src: usize, kind: i32, scales: usize, co: i32, ci: i32, cp: i32, o0: i32, o1: i32, dst: usize): void {
  const k = 9 * cp;
  memory.fill(dst, 0, (<usize>((o1 - o0 + 7) >> 3) * <usize>k) << 5);
  for (let o = o0; o < o1; o++) {
    const col = dst + ((<usize>((o - o0) >> 3) * <usize>k) << 5) + (<usize>((o - o0) & 7) << 2);
    const s = scaleOf(scales, o);
    for (let i = 0; i < ci; i++) {
      for (let tap = 0; tap < 9; tap++) store<f32>(col + (<usize>(tap * cp + i) << 5), tapOf(src, kind, compactIndex(o, i, tap, ci)) * s);
    }
  }
}

/**
 * GEMM-packed B panels ([ceil(N/8)][K][8], gemm.ts packB) from compact storage in the same layout, panels
 * [p0, p1): f16 bits, or int8 times a scale per column (scales: ceil(N/8) * 8 floats, zero-padded). dst
 * receives panel p0 first. The compact linear weights' expansion (a GEMM with few rows reads each once).
 */
export function expandPanels(src: usize, kind: i32, scales: usize, k: i32, p0: i32, p1: i32, dst: usize): void {
  for (let p = p0; p < p1; p++) {
    const s0 = scales ? v128.load(scales + (<usize>p << 5)) : f32x4.splat(1);
    const s1 = scales ? v128.load(scales + (<usize>p << 5), 16) : f32x4.splat(1);
    const base = <usize>p * <usize>k * 8;
    const out = dst + ((<usize>(p - p0) * <usize>k) << 5);
    for (let kk = 0; kk < k; kk++) {
      const idx = base + (<usize>kk << 3);
      v128.store(out + (<usize>kk << 5), f32x4.mul(tap4(src, kind, idx), s0));
      v128.store(out + (<usize>kk << 5), f32x4.mul(tap4(src, kind, idx + 4), s1), 16);
    }
  }
}
