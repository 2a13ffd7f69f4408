// conv3x3, conv1x1 and linear over wasm/assembly (conv3x3.ts, gemm.ts). conv3x3 writes the (pre-op'd)
// input once into a zero-padded copy P, then runs Winograd F(4x4,3x3) (weights transformed once, at
// upload or first use) or, for tiny images, im2col + GEMM. A conv3x3 weight uploaded with its role hint is
// kept in Winograd form only (the torch-layout copy is dropped: see WasmCore.dropRaw); other weights keep
// their torch layout next to the packed forms.
import type { NormPreOp, Tensor } from "../contract.ts";
import type { WasmCore } from "./core.ts";
import { applyPre, resolvePre } from "./norm.ts";
import { compactChunk, compactCosts, conv3x3Bytes } from "./storage.ts";
import type { WasmTensor } from "./tensor.ts";
import { OP_DIRECT, OP_GEMM, OP_GEMM_COLS, OP_WINOGRAD_COMPACT, OP_WINOGRAD_GEMM, OP_WINOGRAD_INPUT, OP_WINOGRAD_OUTPUT } from "./threads.ts";

/** How conv3x3 picks its algorithm: by image size (auto), or always one of them (tests, benchmarks). */
export type Conv3x3Path = "auto" | "winograd" | "direct";

/** Smallest H and W for which `auto` picks Winograd (F(4x4) on 3x3 images already needs 4x fewer multiplies). */
export const WINOGRAD_MIN_SIZE = 4;

const ceil = (v: number, m: number) => Math.ceil(v / m) * m;

/** The packed form `kind` of weight w, made on first use and kept with it. */
export function packed(core: WasmCore, w: WasmTensor, kind: "winograd" | "direct" | "gemm"): number {
  let p = w.packs.get(kind);
  if (p !== undefined) return p;
  core.restoreRaw(w);
  const [co, ci] = w.shape;
  const raw = core.nchw(w);
  p = core.pinned(() => {
    if (kind === "gemm") {
      const q = core.heap.alloc(ceil(co, 8) * ci * 4);
      core.k.packB(raw, ci, co, 1, ci, q);
      return q;
    }
    const cp = ceil(ci, 4);
    const q = core.heap.alloc((kind === "winograd" ? 36 : 9) * cp * ceil(co, 8) * 4);
    if (kind === "winograd") core.k.winogradWeights(raw, co, ci, cp, q);
    else core.k.directWeights(raw, co, ci, cp, q);
    return q;
  });
  w.packs.set(kind, p);
  return p;
}

/**
 * The algorithm a conv3x3 runs: a forced path as given; a weight held in Winograd form by image size (auto);
 * a compact weight by the cost of its expansion plus its multiplies (storage.ts compactCosts), Winograd
 * only where its form fits the expansion scratch the budget allows.
 */
export function chooseConv3x3(path: Conv3x3Path, w: WasmTensor, n: number, h: number, wd: number, scratchCap: number): boolean {
  if (path !== "auto") return path === "winograd";
  if (Math.min(h, wd) < WINOGRAD_MIN_SIZE) return false;
  if (!w.compact) return true;
  const [co, ci] = w.shape;
  if (scratchCap > 0 && conv3x3Bytes(co, ci)["winograd-f32"] > scratchCap) return false;
  const c = compactCosts(n, h, wd, ci, co);
  return c.winograd <= c.direct;
}

export function conv3x3(core: WasmCore, x: Tensor, w: Tensor, bias: Tensor | null, pre: NormPreOp | undefined, path: Conv3x3Path, scratchCap = 0): WasmTensor {
  const op = "conv3x3";
  const xv = core.own(x, op), wv = core.own(w, op, false);
  const [n, ci, h, wd] = xv.shape;
  const co = wv.shape[0];
  const resolved = pre ? resolvePre(core, pre, xv, op) : null;
  const biasPtr = bias ? core.own(bias, op).ptr : 0;
  const cp = ceil(ci, 4);
  const wino = chooseConv3x3(path, wv, n, h, wd, scratchCap);
  const [tilesY, tilesX] = wino ? [Math.ceil(h / 4), Math.ceil(wd / 4)] : [0, 0];
  const [hp, wp] = wino ? [tilesY * 4 + 2, tilesX * 4 + 2] : [h + 2, wd + 2];
  // A compact weight: expanded a chunk of output channels at a time inside the kernel and used while the
  // chunk's form is in cache; one thread reuses one chunk block, workers take chunks (each its own block,
  // so the scratch is the whole form). The direct path with workers expands the whole form first.
  const chunked = wv.compact !== null && (!core.pool || wino);
  const kind = wv.compact?.kind === "f16" ? 1 : 2;
  const chunk = compactChunk(wino, cp, co);
  if (core.pool) chunk.chunk = Math.min(chunk.chunk, Math.max(8, ceil(Math.ceil(co / (core.pool.threads * 4)), 8)));
  const chunkStride = ceil(36 * (cp * chunk.chunk * 4 + 64), 64);
  const weights = chunked ? core.compactScratch(core.pool ? Math.ceil(co / chunk.chunk) * chunkStride : chunk.bytes)
    : wv.compact ? core.expand(wv, wino) : packed(core, wv, wino ? "winograd" : "direct");
  const out = core.tensor([n, co, h, wd], "nhwc");
  // P: the conv input after the pre-op, zero-padded by one pixel (and to whole tiles), channels to Cp.
  const held: number[] = [];
  try {
    const pIn = core.scratch(n * hp * wp * cp);
    held.push(pIn);
    core.f32().fill(0, pIn >> 2, (pIn >> 2) + n * hp * wp * cp);
    if (resolved) applyPre(core, xv, resolved, pIn, hp, wp, cp, 1);
    else core.k.padCopy(core.nhwc(xv), n, h, wd, ci, pIn, hp, wp, cp, 1);
    if (wino) {
      const tiles = n * tilesY * tilesX, rows = ceil(tiles, 4), coPad = ceil(co, 8);
      const v = core.scratch(9 * core.k.winogradPlaneBytes(rows, cp)); // 36 planes (floats: bytes / 4)
      held.push(v);
      const m = core.scratch(9 * core.k.winogradPlaneBytes(rows, coPad));
      held.push(m);
      if (core.pool) {
        core.pool.run(OP_WINOGRAD_INPUT, [pIn, n, hp, wp, cp, tilesY, tilesX, v]);
        if (chunked) {
          core.pool.run(OP_WINOGRAD_COMPACT, [tiles, cp, coPad, v, wv.compact!.ptr, kind, wv.compact!.scales, co, ci, m, weights, chunk.chunk, chunkStride]);
        } else {
          // Each product split by tile groups into one part per thread (where there are groups enough), one
          // part a chunk: the threads share each product's weights as they stream in (winogradGemmUnits).
          const parts = Math.min(core.pool.threads, rows >> 2);
          core.pool.run(OP_WINOGRAD_GEMM, [tiles, cp, coPad, v, weights, m, parts], 36 * parts);
        }
        core.pool.run(OP_WINOGRAD_OUTPUT, [m, coPad, n, tilesY, tilesX, h, wd, co, biasPtr, out.ptr]);
      } else {
        core.k.winogradInput(pIn, n, hp, wp, cp, tilesY, tilesX, v);
        if (chunked) core.k.winogradGemmCompact(tiles, cp, coPad, v, wv.compact!.ptr, kind, wv.compact!.scales, co, ci, m, weights, chunk.chunk);
        else core.k.winogradGemm(tiles, cp, coPad, v, weights, m);
        core.k.winogradOutput(m, coPad, n, tilesY, tilesX, h, wd, co, biasPtr, out.ptr);
      }
    } else {
      const col = core.scratch(n * h * wd * 9 * cp);
      held.push(col);
      if (chunked) {
        core.k.directConvCompact(pIn, n, hp, wp, cp, h, wd, col, wv.compact!.ptr, kind, wv.compact!.scales, co, ci, biasPtr, out.ptr, weights, chunk.chunk);
      } else if (core.pool) core.pool.run(OP_DIRECT, [pIn, n, hp, wp, cp, h, wd, col, weights, co, biasPtr, out.ptr]);
      else core.k.directConv(pIn, n, hp, wp, cp, h, wd, col, weights, co, biasPtr, out.ptr);
    }
  } catch (e) {
    core.release(out);
    throw e;
  } finally {
    for (const p of held) core.heap.release(p);
  }
  return out;
}

export function conv1x1(core: WasmCore, x: Tensor, w: Tensor, bias: Tensor | null): WasmTensor {
  const op = "conv1x1";
  const xv = core.own(x, op), wv = core.own(w, op, false);
  const [n, ci, h, wd] = xv.shape;
  const co = wv.shape[0];
  const biasPtr = bias ? core.own(bias, op).ptr : 0;
  const [weights, input] = [packed(core, wv, "gemm"), core.nhwc(xv)];
  const out = core.tensor([n, co, h, wd], "nhwc");
  if (core.pool && n * h * wd >= 8) core.pool.run(OP_GEMM, [n * h * wd, co, ci, input, ci, weights, out.ptr, co, biasPtr]);
  else core.k.gemm(n * h * wd, co, ci, input, ci, weights, out.ptr, co, biasPtr);
  return out;
}

/** Multiply-adds of a linear from which it may run on the thread pool. */
const POOL_LINEAR_MIN = 32768;

/** Bytes of packed panels a compact linear weight expands at a time. */
const CHUNK_PANEL_BYTES = 512 << 10;

export function linear(core: WasmCore, x: Tensor, w: Tensor, bias: Tensor | null, inputAct: "silu" | "none"): WasmTensor {
  const op = "linear";
  const xv = core.own(x, op), wv = core.own(w, op, false);
  const [n, k] = xv.shape;
  const m = wv.shape[0];
  const biasPtr = bias ? core.own(bias, op).ptr : 0;
  const weights = wv.compact ? 0 : packed(core, wv, "gemm");
  const input = inputAct === "silu" ? core.scratch(n * k) : xv.ptr;
  try {
    if (input !== xv.ptr) core.k.silu(xv.ptr, input, n * k);
    const out = core.tensor([n, m], "nchw");
    if (wv.compact) {
      // Compact linear weight: its packed panels expanded a chunk at a time into the shared scratch.
      const c = wv.compact, panels = Math.ceil(m / 8), per = Math.max(1, Math.floor(CHUNK_PANEL_BYTES / (k * 32)));
      const scr = core.compactScratch(Math.min(panels, per) * k * 32);
      for (let p0 = 0; p0 < panels; p0 += per) {
        const p1 = Math.min(panels, p0 + per);
        core.k.expandPanels(c.ptr, c.kind === "f16" ? 1 : 2, c.scales, k, p0, p1, scr);
        core.k.gemm(n, Math.min(m, p1 * 8) - p0 * 8, k, input, k, scr, out.ptr + p0 * 32, m, biasPtr ? biasPtr + p0 * 32 : 0);
      }
    } else {
      // Few rows: split by column panel where it is big enough.
      core.short(OP_GEMM_COLS, [n, m, k, input, k, weights, out.ptr, m, biasPtr], () => core.k.gemm(n, m, k, input, k, weights, out.ptr, m, biasPtr),
        m >= 64 && n * m * k >= POOL_LINEAR_MIN);
    }
    return out;
  } finally {
    if (input !== xv.ptr) core.heap.release(input);
  }
}
