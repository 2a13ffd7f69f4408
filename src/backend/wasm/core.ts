// What every op of the wasm backend shares: the kernels, the allocator over their memory, views that
// survive memory growth, and layout conversion of 4-D tensors (NCHW uploads <-> NHWC activations).
import type { Tensor } from "../contract.ts";
import { f16BitsToF32 } from "../../f16.ts";
import { numel } from "../../tensor.ts";
import { Allocator } from "./allocator.ts";
import type { Kernels } from "./module.ts";
import { own, WasmTensor } from "./tensor.ts";
import type { ThreadPool } from "./threads.ts";

/** Floats from which an elementwise or statistics pass is worth splitting over the pool (WasmCore.short). */
export const SHORT_MIN_FLOATS = 4096;

export class WasmCore {
  readonly heap: Allocator;
  private view = new Float32Array(0);

  /** The worker pool that shares conv work (threads build), or null: everything runs on the caller. */
  pool: ThreadPool | null = null;

  /** GEMM-packed weights keep only their packed form (compact modes and budgets: see storage.ts). */
  lean = false;
  /** Bytes of weights by the form they are held in (storage.ts WeightForm). */
  readonly weightBytes = new Map<string, number>();
  /** The one scratch block compact conv3x3 weights are expanded into, and what it holds now. */
  private expandPtr = 0;
  private expandSize = 0;
  private expanded: { t: WasmTensor; wino: boolean } | null = null;
  /** Largest expansion the scratch has held (bytes). */
  expandPeak = 0;

  constructor(readonly k: Kernels) {
    this.heap = new Allocator(k.memory, k.heapBase());
  }

  /**
   * A command of a few microseconds' work: on the pool (ThreadPool.runShort: only while its workers poll)
   * when there is a pool and the work is `big` enough to split, else `serial` on this thread. Both compute
   * the same bits.
   */
  short(op: number, args: readonly number[], serial: () => void, big: boolean): void {
    if (this.pool && big) this.pool.runShort(op, args, serial);
    else serial();
  }

  /** A Float32Array over the whole memory (re-made after the memory grew). */
  f32(): Float32Array {
    if (this.view.buffer !== this.k.memory.buffer) this.view = new Float32Array(this.k.memory.buffer);
    return this.view;
  }

  /**
   * The handle behind `t`, checked to belong to this backend and not freed; its values are in memory
   * (`raw` false: a conv3x3 weight may stay in packed form only, for conv3x3 itself).
   */
  own(t: Tensor, op: string, raw = true): WasmTensor {
    const v = own(this, t, op);
    if (raw) this.restoreRaw(v);
    return v;
  }

  /**
   * Frees the torch-layout values of a conv3x3 weight once its Winograd form exists (that form is 4x the
   * size; keeping both made weights 5x their size). restoreRaw rebuilds them if ever needed (download,
   * the direct path, use as an activation).
   */
  dropRaw(t: WasmTensor): void {
    if (!t.ptr || t.other || t.layout !== "nchw") return;
    if (!t.packs.has("winograd") && !t.compact && !(this.lean && t.packs.has("gemm"))) return;
    this.heap.release(t.ptr);
    t.ptr = 0;
  }

  /** Runs `fn` with new blocks counted as weights (pinned), not activations. */
  pinned<T>(fn: () => T): T {
    const was = this.heap.pinning;
    this.heap.pinning = true;
    try {
      return fn();
    } finally {
      this.heap.pinning = was;
    }
  }

  /** Records that t's weight is held in `form`, `bytes` bytes (for StorageReport). */
  countForm(t: WasmTensor, form: "winograd-f32" | "f16" | "int8" | "f32", bytes: number): void {
    if (t.form) this.weightBytes.set(t.form, (this.weightBytes.get(t.form) ?? 0) - t.formBytes);
    t.form = form;
    t.formBytes = bytes;
    this.weightBytes.set(form, (this.weightBytes.get(form) ?? 0) + bytes);
  }

  /**
   * The packed form (Winograd when `wino`, else direct) of compact conv3x3 weight t, expanded into the
   * shared scratch block (grown to the largest layer; reused when t is already there).
   */
  expand(t: WasmTensor, wino: boolean): number {
    const c = t.compact!;
    if (this.expanded && this.expanded.t === t && this.expanded.wino === wino) return this.expandPtr;
    const [co, ci] = t.shape;
    const cp = Math.ceil(ci / 4) * 4, coPad = Math.ceil(co / 8) * 8;
    this.compactScratch((wino ? 36 : 9) * cp * coPad * 4);
    const kind = c.kind === "f16" ? 1 : 2;
    if (wino) this.k.expandWinograd(c.ptr, kind, c.scales, co, ci, cp, this.expandPtr);
    else this.k.expandDirect(c.ptr, kind, c.scales, co, ci, cp, this.expandPtr);
    this.expanded = { t, wino };
    return this.expandPtr;
  }

  /** The expansion scratch, grown to at least `bytes` (its contents are then undefined). */
  compactScratch(bytes: number): number {
    if (bytes > this.expandSize) {
      this.expanded = null;
      if (this.expandPtr) this.heap.release(this.expandPtr);
      this.expandPtr = 0;
      this.expandSize = 0;
      this.expandPtr = this.pinned(() => this.heap.alloc(bytes));
      this.expandSize = bytes;
    }
    this.expanded = null;
    this.expandPeak = Math.max(this.expandPeak, this.heap.sizeOf(this.expandPtr));
    return this.expandPtr;
  }

  /** Bytes of the expansion scratch now (0 until a compact weight ran). */
  get expandBytes(): number {
    return this.expandPtr ? this.heap.sizeOf(this.expandPtr) : 0;
  }

  /**
   * Rebuilds dropped conv3x3 weights g from their Winograd form U = G g G^T as g = P U P^T (P = G's
   * least-squares left inverse, f64): equal to the uploaded values up to f32 rounding (relative ~1e-7).
   */
  restoreRaw(t: WasmTensor): void {
    if (t.ptr) return;
    if (t.compact) return this.restoreCompact(t);
    if (!t.packs.has("winograd")) return this.restoreGemm(t);
    const u = t.packs.get("winograd")!;
    const [co, ci] = t.shape;
    const cp = Math.ceil(ci / 4) * 4, coPad = Math.ceil(co / 8) * 8;
    const ptr = this.heap.alloc(co * ci * 9 * 4);
    const m = this.f32();
    const pStride = cp * coPad;
    const P = winogradLeftInverse();
    const tile = new Float64Array(36), half = new Float64Array(18);
    for (let o = 0; o < co; o++) {
      for (let i = 0; i < ci; i++) {
        const base = (u >> 2) + ((o >> 3) * cp + i) * 8 + (o & 7);
        for (let p = 0; p < 36; p++) tile[p] = m[base + p * pStride];
        for (let r = 0; r < 3; r++) {
          for (let s = 0; s < 6; s++) {
            let acc = 0;
            for (let k = 0; k < 6; k++) acc += P[r * 6 + k] * tile[k * 6 + s];
            half[r * 6 + s] = acc;
          }
        }
        const dst = (ptr >> 2) + (o * ci + i) * 9;
        for (let r = 0; r < 3; r++) {
          for (let c = 0; c < 3; c++) {
            let acc = 0;
            for (let k = 0; k < 6; k++) acc += half[r * 6 + k] * P[c * 6 + k];
            m[dst + r * 3 + c] = acc;
          }
        }
      }
    }
    t.ptr = ptr;
  }

  /** Rebuilds the f32 values of a compact conv3x3 weight (exact: f16 and int8 * scale are f32 values). */
  private restoreCompact(t: WasmTensor): void {
    const c = t.compact!;
    if (c.panels) {
      const [n, k] = t.shape, padded = Math.ceil(n / 8) * 8 * k;
      const ptr = this.heap.alloc(n * k * 4);
      const m = this.f32();
      const h = c.kind === "f16" ? new Uint16Array(this.k.memory.buffer, c.ptr, padded) : null;
      const q = c.kind === "int8" ? new Int8Array(this.k.memory.buffer, c.ptr, padded) : null;
      for (let j = 0; j < n; j++) {
        const s = q ? m[(c.scales >> 2) + j] : 1;
        for (let kk = 0; kk < k; kk++) {
          const i = ((j >> 3) * k + kk) * 8 + (j & 7);
          m[(ptr >> 2) + j * k + kk] = h ? f16BitsToF32(h[i]) : q![i] * s;
        }
      }
      t.ptr = ptr;
      return;
    }
    const count = numel(t.shape), co = t.shape[0], per = count / co, padded = Math.ceil(co / 4) * 4 * per;
    const ptr = this.heap.alloc(count * 4);
    const m = this.f32();
    // The interleaved layout of the kernels: [ceil(Co/4)][Ci][9][4] (wasm/assembly/conv3x3.ts compactIndex).
    const h = c.kind === "f16" ? new Uint16Array(this.k.memory.buffer, c.ptr, padded) : null;
    const q = c.kind === "int8" ? new Int8Array(this.k.memory.buffer, c.ptr, padded) : null;
    for (let o = 0; o < co; o++) {
      const s = q ? m[(c.scales >> 2) + o] : 1, src = (o >> 2) * per * 4 + (o & 3), dst = (ptr >> 2) + o * per;
      for (let j = 0; j < per; j++) m[dst + j] = h ? f16BitsToF32(h[src + 4 * j]) : q![src + 4 * j] * s;
    }
    t.ptr = ptr;
  }

  /** Rebuilds the torch-layout values of a GEMM-packed weight (lean mode) from its packed form. */
  private restoreGemm(t: WasmTensor): void {
    const p = t.packs.get("gemm");
    if (p === undefined) throw new Error(`wasm backend: tensor [${t.shape.join(", ")}] has no values`);
    const [co, ci] = t.shape;
    const ptr = this.heap.alloc(co * ci * 4);
    const m = this.f32();
    for (let o = 0; o < co; o++) {
      for (let i = 0; i < ci; i++) m[(ptr >> 2) + o * ci + i] = m[(p >> 2) + ((o >> 3) * ci + i) * 8 + (o & 7)];
    }
    t.ptr = ptr;
  }

  /** A new tensor with uninitialised memory. */
  tensor(shape: readonly number[], layout: "nchw" | "nhwc"): WasmTensor {
    return new WasmTensor(this, [...shape], this.heap.alloc(numel(shape) * 4), shape.length === 4 ? layout : "nchw");
  }

  /** Scratch memory of `floats` f32 for the duration of an op (release with heap.release). */
  scratch(floats: number): number {
    return this.heap.alloc(floats * 4);
  }

  /** Pointer to t in NHWC order (4-D) or as stored (other ranks). */
  nhwc(t: WasmTensor): number {
    if (t.shape.length !== 4 || t.layout === "nhwc") return t.ptr;
    if (!t.other) {
      const [n, c, h, w] = t.shape;
      t.other = this.heap.alloc(numel(t.shape) * 4);
      this.k.nchwToNhwc(t.ptr, t.other, n, c, h * w);
    }
    return t.other;
  }

  /** Pointer to t in NCHW (row-major) order. */
  nchw(t: WasmTensor): number {
    if (t.layout === "nchw") return t.ptr;
    if (!t.other) {
      const [n, c, h, w] = t.shape;
      t.other = this.heap.alloc(numel(t.shape) * 4);
      this.k.nhwcToNchw(t.ptr, t.other, n, c, h * w);
    }
    return t.other;
  }

  /** Releases a tensor's memory, its layout copy and its packed forms. */
  release(t: WasmTensor): void {
    t.freed = true;
    if (this.expanded?.t === t) this.expanded = null;
    if (t.compact) {
      this.heap.release(t.compact.ptr);
      if (t.compact.scales) this.heap.release(t.compact.scales);
      t.compact = null;
    }
    if (t.form) this.countForm(t, t.form, 0);
    if (t.ptr) this.heap.release(t.ptr);
    if (t.other) this.heap.release(t.other);
    for (const p of t.packs.values()) this.heap.release(p);
    t.other = 0;
    t.packs.clear();
  }
}

let leftInverse: Float64Array | null = null;
/** P = (G^T G)^-1 G^T (3 x 6, row-major) for the F(4x4,3x3) weight transform G (6 x 3). */
function winogradLeftInverse(): Float64Array {
  if (leftInverse) return leftInverse;
  const G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]];
  const A = [0, 1, 2].map((r) => [0, 1, 2].map((c) => G.reduce((s, g) => s + g[r] * g[c], 0))); // G^T G
  // 3x3 inverse by cofactors.
  const [[a, b, c], [d, e, f], [g, h, i]] = A;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  const inv = [[e * i - f * h, c * h - b * i, b * f - c * e], [f * g - d * i, a * i - c * g, c * d - a * f], [d * h - e * g, b * g - a * h, a * e - b * d]]
    .map((row) => row.map((v) => v / det));
  leftInverse = new Float64Array(18);
  for (let r = 0; r < 3; r++) for (let k = 0; k < 6; k++) leftInverse[r * 6 + k] = inv[r].reduce((s, v, j) => s + v * G[k][j], 0);
  return leftInverse;
}
