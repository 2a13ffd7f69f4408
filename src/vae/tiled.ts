// Decoding host latents into images, whole or in overlapping tiles chosen by a memory budget. Tiles are
// decoded one at a time and blended with linear ramps across their overlaps (weights normalised per
// pixel). Tiling is approximate: GroupNorm statistics and the mid-block attention see one tile, not
// the whole latent; tests/vae.test.ts measures how closely tiled and untiled results agree.
import { scope } from "../backend/contract.ts";
import type { HostTensor } from "../tensor.ts";
import { shapeStr } from "../tensor.ts";
import type { VAEConfig } from "./config.ts";
import type { VAEDecoderGraph } from "./decoder.ts";
import { decoderWidths } from "./params.ts";

/** Options of {@link decodeLatents}. */
export interface DecodeOptions {
  /**
   * Activation memory the decode may use, in bytes (weights not included). When the whole latent does
   * not fit, it is decoded in tiles of the largest size that fits. Default: no limit (untiled).
   */
  memoryBudgetBytes?: number;
  /** Force a tile size in latent pixels (overrides the budget); 0 or absent: chosen by the budget. */
  tile?: number;
  /** Overlap of neighbouring tiles in latent pixels (default tile / 4, at least 1). */
  overlap?: number;
}

/** What {@link decodeLatents} returns. */
export interface DecodeResult {
  /** Images [N, out_channels, h * upscale, w * upscale], roughly in [-1, 1]. */
  image: HostTensor;
  /** Tile size in latent pixels (null: untiled), overlap, and tiles per image. */
  tile: number | null;
  overlap: number;
  tiles: number;
  /** The activation estimate of one decode at the chosen size, in bytes. */
  estimatedBytes: number;
}

/**
 * Rough peak activation memory of decoding one h x w latent (one sample): the largest activation
 * (pixels x channels) times the tensors alive around a conv (input, output, residual, padded input and
 * the Winograd transforms of the wasm backend), plus the attention scores. Calibrated against the wasm
 * backend's peak live bytes (bench/vae.bench.ts prints both).
 */
export function estimateDecodeBytes(cfg: VAEConfig, h: number, w: number): number {
  const rev = decoderWidths(cfg);
  let largest = 0;
  let prev = rev[0];
  rev.forEach((c, i) => {
    const px = h * w * 4 ** i;
    largest = Math.max(largest, px * Math.max(prev, c));
    if (i < rev.length - 1) largest = Math.max(largest, px * 4 * c);
    prev = c;
  });
  const tokens = h * w;
  return ACTIVATION_FACTOR * 4 * largest + 4 * Math.min(tokens * tokens, 1 << 22) + 8 * tokens * rev[0];
}
/** Live copies of the largest activation during a conv (see estimateDecodeBytes). */
const ACTIVATION_FACTOR = 8;

/** Tile sizes tried, largest first (latent pixels). */
const TILE_SIZES = [96, 64, 48, 32, 24, 16, 12, 8];

/** Decodes one latent [1, C, h, w] to pixels on the host; frees what it uploads and makes, also on a throw. */
function decodeOne(vae: VAEDecoderGraph, z: HostTensor): Promise<Float32Array> {
  return scope(vae.backend, async (s) => (await s.download(s.track(vae.decode(s.upload(z))))).data);
}

/** Start offsets of tiles of size `t` covering [0, n) with at least `o` overlap; the last tile ends at n. */
function starts(n: number, t: number, o: number): number[] {
  if (t >= n) return [0];
  const s: number[] = [];
  for (let p = 0; ; p += t - o) {
    if (p + t >= n) {
      s.push(n - t);
      break;
    }
    s.push(p);
  }
  return s;
}

/** Per-pixel blend weights of a tile along one axis: linear ramps over the overlaps with its neighbours. */
function ramp(k: number, st: number[], t: number, up: number): Float64Array {
  const len = t * up;
  const wts = new Float64Array(len).fill(1);
  const left = k > 0 ? (st[k - 1] + t - st[k]) * up : 0;
  const right = k < st.length - 1 ? (st[k] + t - st[k + 1]) * up : 0;
  for (let i = 0; i < len; i++) {
    if (left > 0) wts[i] = Math.min(wts[i], (i + 0.5) / left);
    if (right > 0) wts[i] = Math.min(wts[i], (len - i - 0.5) / right);
  }
  return wts;
}

/**
 * Decodes latents [N, C, h, w] (diffusion-model space) into images. Untiled when no budget is given or the
 * estimate fits; otherwise (or with `tile`) in overlapping tiles blended linearly. One sample and one tile
 * at a time.
 *
 * @example
 * const { image, tiles } = await decodeLatents(vae, latents, { memoryBudgetBytes: 300e6 });
 */
export async function decodeLatents(vae: VAEDecoderGraph, latents: HostTensor, opts: DecodeOptions = {}): Promise<DecodeResult> {
  const cfg = vae.config;
  const [n, c, h, w] = latents.shape;
  if (latents.shape.length !== 4 || c !== cfg.latent_channels || h < 1 || w < 1) {
    throw new Error(`VAE decode: latents have shape ${shapeStr(latents.shape)}, expected [N, ${cfg.latent_channels}, h, w]`);
  }
  const budget = opts.memoryBudgetBytes;
  if (budget !== undefined && !(budget > 0)) throw new Error(`VAE decode: memoryBudgetBytes must be > 0, got ${budget}`);
  let tile = opts.tile ?? 0;
  if (!Number.isInteger(tile) || tile < 0) throw new Error(`VAE decode: tile must be a non-negative integer, got ${tile}`);
  if (tile === 0 && budget !== undefined && estimateDecodeBytes(cfg, h, w) > budget) {
    const fit = TILE_SIZES.find((t) => t < Math.max(h, w) && estimateDecodeBytes(cfg, Math.min(t, h), Math.min(t, w)) <= budget);
    if (fit === undefined) {
      const min = TILE_SIZES[TILE_SIZES.length - 1];
      throw new Error(`VAE decode: memory budget ${budget} bytes is below the ${estimateDecodeBytes(cfg, min, min)} bytes a ${min}x${min} tile needs`);
    }
    tile = fit;
  }
  const up = vae.upscale;
  const oc = cfg.out_channels;
  const [oh, ow] = [h * up, w * up];
  const out = new Float32Array(n * oc * oh * ow);
  if (tile === 0 || (tile >= h && tile >= w)) {
    for (let s = 0; s < n; s++) {
      const z = { shape: [1, c, h, w], data: latents.data.subarray(s * c * h * w, (s + 1) * c * h * w) };
      out.set(await decodeOne(vae, z), s * oc * oh * ow);
    }
    return { image: { shape: [n, oc, oh, ow], data: out }, tile: null, overlap: 0, tiles: 1, estimatedBytes: estimateDecodeBytes(cfg, h, w) };
  }
  const overlap = opts.overlap ?? Math.max(1, Math.floor(tile / 4));
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= tile) throw new Error(`VAE decode: overlap must be an integer in [0, ${tile - 1}], got ${overlap}`);
  const [th, tw] = [Math.min(tile, h), Math.min(tile, w)];
  const ys = starts(h, th, overlap), xs = starts(w, tw, overlap);
  const acc = new Float64Array(oc * oh * ow);
  const wsum = new Float64Array(oh * ow);
  const tileLatent = new Float32Array(c * th * tw);
  for (let s = 0; s < n; s++) {
    acc.fill(0);
    wsum.fill(0);
    for (let ky = 0; ky < ys.length; ky++) {
      const wy = ramp(ky, ys, th, up);
      for (let kx = 0; kx < xs.length; kx++) {
        const wx = ramp(kx, xs, tw, up);
        const [y0, x0] = [ys[ky], xs[kx]];
        for (let ch = 0; ch < c; ch++) {
          for (let y = 0; y < th; y++) {
            const src = ((s * c + ch) * h + y0 + y) * w + x0;
            tileLatent.set(latents.data.subarray(src, src + tw), (ch * th + y) * tw);
          }
        }
        const pix = await decodeOne(vae, { shape: [1, c, th, tw], data: tileLatent });
        const [ph, pw] = [th * up, tw * up];
        for (let y = 0; y < ph; y++) {
          const oy = y0 * up + y;
          for (let x = 0; x < pw; x++) {
            const wt = wy[y] * wx[x];
            const o = oy * ow + x0 * up + x;
            wsum[o] += wt;
            for (let ch = 0; ch < oc; ch++) acc[ch * oh * ow + o] += wt * pix[(ch * ph + y) * pw + x];
          }
        }
      }
    }
    const base = s * oc * oh * ow;
    for (let ch = 0; ch < oc; ch++) {
      for (let i = 0; i < oh * ow; i++) out[base + ch * oh * ow + i] = acc[ch * oh * ow + i] / wsum[i];
    }
  }
  return { image: { shape: [n, oc, oh, ow], data: out }, tile, overlap, tiles: ys.length * xs.length, estimatedBytes: estimateDecodeBytes(cfg, th, tw) };
}
