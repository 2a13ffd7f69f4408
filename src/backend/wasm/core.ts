// What every op of the wasm backend shares: the kernels, the allocator over their memory, views that
// survive memory growth, and layout conversion of 4-D tensors (NCHW uploads <-> NHWC activations).
import type { Tensor } from "../contract.ts";
import { numel } from "../../tensor.ts";
import { Allocator } from "./allocator.ts";
import type { Kernels } from "./module.ts";
import { own, WasmTensor } from "./tensor.ts";
import type { ThreadPool } from "./threads.ts";

export class WasmCore {
  readonly heap: Allocator;
  private view = new Float32Array(0);

  /** The worker pool that shares conv work (threads build), or null: everything runs on the caller. */
  pool: ThreadPool | null = null;

  constructor(readonly k: Kernels) {
    this.heap = new Allocator(k.memory, k.heapBase());
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
    if (!t.ptr || !t.packs.has("winograd") || t.other || t.layout !== "nchw") return;
    this.heap.release(t.ptr);
    t.ptr = 0;
  }

  /**
   * Rebuilds dropped conv3x3 weights g from their Winograd form U = G g G^T as g = P U P^T (P = G's
   * least-squares left inverse, f64): equal to the uploaded values up to f32 rounding (relative ~1e-7).
   */
  restoreRaw(t: WasmTensor): void {
    if (t.ptr) return;
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
