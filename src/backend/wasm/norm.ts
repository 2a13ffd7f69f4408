// The fused input pre-op `act((norm(x) * weight + bias) * (1 + scale) + shift)` over wasm/assembly/norm.ts:
// statistics in wasm, per-(n, c) coefficients folded here (a = inv * weight * (1 + scale), b = bias *
// (1 + scale) + shift), then one apply pass straight into its destination: the conv input P or a tensor.
import type { NormPreOp } from "../contract.ts";
import { SHORT_MIN_FLOATS, type WasmCore } from "./core.ts";
import type { WasmTensor } from "./tensor.ts";
import { OP_CHANNEL_TOTALS, OP_PRE } from "./threads.ts";

interface Slice {
  ptr: number;
  k: number;
  offset: number;
}

/** A validated pre-op with pointers. */
export interface ResolvedPre {
  layer: boolean;
  groups: number;
  eps: number;
  weight: number; // 0 when absent
  bias: number;
  scale: Slice | null;
  shift: Slice | null;
  gelu: boolean;
  /** SiLU runs as a second pass over the destination (SiLU(0) = 0 keeps the padding zero). */
  silu: boolean;
}

/** Resolves the tensors of `pre` for x (validated by the checked layer, contract.ts). */
export function resolvePre(core: WasmCore, pre: NormPreOp, x: WasmTensor, op: string): ResolvedPre {
  const slice = (s: { tensor: import("../contract.ts").Tensor; offset: number }): Slice => {
    const t = core.own(s.tensor, op);
    return { ptr: t.ptr, k: t.shape[1], offset: s.offset };
  };
  return {
    layer: pre.norm === "layer",
    groups: pre.groups ?? 0,
    eps: pre.eps,
    weight: pre.weight ? core.own(pre.weight, op).ptr : 0,
    bias: pre.bias ? core.own(pre.bias, op).ptr : 0,
    scale: pre.modulate ? slice(pre.modulate.scale) : null,
    shift: pre.modulate ? slice(pre.modulate.shift) : null,
    gelu: pre.act === "gelu",
    silu: pre.act === "silu",
  };
}

/**
 * Group-norm statistics of x [N][HW][C] (wasm/assembly/norm.ts): channel sums, the group means, sums of squares
 * about them, the inverse deviations. The two passes over x are short commands split by channel quad
 * (WasmCore.short) around the serial group sums: the same arithmetic, so the same result at every thread count.
 * scratch: f64 [N][ceil(C/4)*4] then f32 [N][ceil(C/4)*4] (the channel means).
 */
function groupStats(core: WasmCore, src: number, n: number, hw: number, c: number, groups: number, eps: number, stats: number, scratch: number): void {
  const k = core.k, units = n * Math.ceil(c / 4);
  const meanC = scratch + 8 * units * 4;
  const pass = (centers: number) => core.short(OP_CHANNEL_TOTALS, [src, n, hw, c, centers, scratch],
    () => k.channelTotalsUnits(src, n, hw, c, centers, scratch, 0, units), n * hw * c >= SHORT_MIN_FLOATS);
  pass(0);
  k.groupMeans(scratch, n, hw, c, groups, stats, meanC);
  pass(meanC);
  k.groupInvStd(scratch, n, hw, c, groups, eps, stats);
}

/**
 * Writes act(pre(x)) for x [N, C, H, W] into dst [N][dstHp][dstWp][dstCp] at (y + off, x + off); the rest
 * of dst is left untouched (the caller zeroes padding).
 */
export function applyPre(core: WasmCore, x: WasmTensor, pre: ResolvedPre, dst: number, dstHp: number, dstWp: number, dstCp: number, off: number): void {
  const [n, c, h, w] = x.shape;
  const hw = h * w;
  const cPad = Math.ceil(c / 4) * 4;
  const src = core.nhwc(x);
  const coef = core.scratch(3 * n * cPad);
  const statsLen = pre.layer ? n * hw * 2 : n * pre.groups * 2;
  const stats = core.scratch(statsLen);
  const scratch = core.scratch(3 * n * cPad); // groupStats: f64 channel sums, then f32 channel means, per image
  try {
    if (pre.layer) core.k.layerStats(src, n * hw, c, pre.eps, stats);
    else groupStats(core, src, n, hw, c, pre.groups, pre.eps, stats, scratch);
    const m = core.f32();
    const [meanC, a, b] = [coef >> 2, (coef >> 2) + n * cPad, (coef >> 2) + 2 * n * cPad];
    const st = stats >> 2;
    const cg = pre.layer ? 1 : c / pre.groups;
    for (let img = 0; img < n; img++) {
      for (let ch = 0; ch < cPad; ch++) {
        const i = img * cPad + ch;
        if (ch >= c) {
          m[meanC + i] = m[a + i] = m[b + i] = 0;
          continue;
        }
        const wv = pre.weight ? m[(pre.weight >> 2) + ch] : 1;
        const bv = pre.bias ? m[(pre.bias >> 2) + ch] : 0;
        const sc = pre.scale ? m[(pre.scale.ptr >> 2) + img * pre.scale.k + pre.scale.offset + ch] : 0;
        const sh = pre.shift ? m[(pre.shift.ptr >> 2) + img * pre.shift.k + pre.shift.offset + ch] : 0;
        const g = img * pre.groups + Math.floor(ch / cg);
        const inv = pre.layer ? 1 : m[st + 2 * g + 1];
        m[meanC + i] = pre.layer ? 0 : m[st + 2 * g];
        m[a + i] = inv * wv * (1 + sc);
        m[b + i] = bv * (1 + sc) + sh;
      }
    }
    const args = [src, n, h, w, c, pre.layer ? 1 : 0, coef, coef + 4 * n * cPad, coef + 8 * n * cPad, stats, pre.gelu ? 1 : 0, dst, dstHp, dstWp, dstCp, off] as const;
    if (core.pool && n * h >= 2) core.pool.run(OP_PRE, args);
    else core.k.preApply(...args);
    if (pre.silu) core.k.siluSimd(dst, dst, n * dstHp * dstWp * dstCp);
  } finally {
    core.heap.release(scratch);
    core.heap.release(stats);
    core.heap.release(coef);
  }
}
