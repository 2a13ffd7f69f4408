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

  /** The handle behind `t`, checked to belong to this backend and not freed. */
  own(t: Tensor, op: string): WasmTensor {
    return own(this, t, op);
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
    this.heap.release(t.ptr);
    if (t.other) this.heap.release(t.other);
    for (const p of t.packs.values()) this.heap.release(p);
    t.other = 0;
    t.packs.clear();
  }
}
