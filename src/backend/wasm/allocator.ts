// Best-fit allocator over the wasm linear memory (above the module's static data): tensors, packed weights
// and per-op scratch. Freed blocks coalesce with their neighbours and the top retreats, so a sampling loop
// that frees what it allocates reaches a steady state after its first forward instead of growing memory.

import { MemoryBudgetError, mib } from "./storage.ts";

const ALIGN = 64;
/** NOTE: every block has this many spare bytes: kernels may read (never write) a partial vector past the end. */
const SLACK = 64;
const PAGE = 65536;

interface Block {
  ptr: number;
  size: number;
}

/** Memory counters of a backend, in bytes. */
export interface MemoryStats {
  /** Size of the wasm memory (it never shrinks): what the process holds. */
  committedBytes: number;
  /** Bytes in live blocks now, and the most there ever were. */
  liveBytes: number;
  peakLiveBytes: number;
  /** Number of times the memory grew. */
  grows: number;
  /** Most live bytes outside pinned blocks (weights, the expansion scratch): activations and per-op scratch. */
  peakActivationBytes: number;
  /** Limit on the memory's size (the memory budget), or null. */
  budgetBytes: number | null;
}

export class Allocator {
  private readonly free: Block[] = []; // sorted by ptr, no two adjacent
  private readonly sizes = new Map<number, number>();
  private top: number;
  private live = 0;
  private peak = 0;
  private grows = 0;
  /** Bytes of live blocks that are not activations (weights, the expansion scratch). */
  pinned = 0;
  private readonly pinnedBlocks = new Set<number>();
  /** While true, new blocks count as pinned (the core sets it around weight uploads and packing). */
  pinning = false;
  private peakActivation = 0;
  /** Largest size the memory may reach (bytes), or null; passing it throws MemoryBudgetError. */
  limit: number | null = null;

  constructor(private readonly memory: WebAssembly.Memory, base: number) {
    this.top = Math.ceil(base / ALIGN) * ALIGN;
  }

  /** Returns the byte offset of a new block of at least `bytes` bytes (contents undefined). */
  alloc(bytes: number): number {
    const size = Math.ceil((bytes + SLACK) / ALIGN) * ALIGN;
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i];
      if (f.size >= size && (best < 0 || f.size < this.free[best].size)) best = i;
    }
    let ptr: number;
    if (best >= 0) {
      const f = this.free[best];
      ptr = f.ptr;
      if (f.size - size >= ALIGN) {
        f.ptr += size;
        f.size -= size;
      } else {
        this.free.splice(best, 1);
        this.sizes.set(ptr, f.size);
        return this.count(ptr, f.size);
      }
    } else {
      ptr = this.top;
      this.top += size;
      const need = this.top - this.memory.buffer.byteLength;
      if (this.limit !== null && this.top > this.limit) {
        const top = this.top;
        this.top -= size;
        throw new MemoryBudgetError("memory_budget_exceeded", this.limit, top,
          `wasm backend: memory limit ${mib(this.limit)} (the memory budget less the loader's share) exceeded: allocating ${bytes} bytes takes the memory to ${mib(top)} (${mib(this.live)} live, of which ${mib(this.pinned)} weights and expansion scratch)`);
      }
      if (need > 0) {
        // Grow by at least 1/8 of the memory so that a growing model does not grow page by page (never past the budget).
        let pages = Math.max(Math.ceil(need / PAGE), Math.ceil(this.memory.buffer.byteLength / PAGE / 8));
        if (this.limit !== null) pages = Math.max(Math.ceil(need / PAGE), Math.min(pages, Math.floor(this.limit / PAGE) - this.memory.buffer.byteLength / PAGE));
        try {
          this.memory.grow(pages);
        } catch (e) {
          this.top -= size;
          throw new Error(`wasm backend: out of memory allocating ${bytes} bytes (memory ${this.memory.buffer.byteLength} bytes): ${(e as Error).message}`);
        }
        this.grows++;
      }
    }
    this.sizes.set(ptr, size);
    return this.count(ptr, size);
  }

  private count(ptr: number, size: number): number {
    if (this.pinning) {
      this.pinned += size;
      this.pinnedBlocks.add(ptr);
    }
    this.live += size;
    this.peak = Math.max(this.peak, this.live);
    this.peakActivation = Math.max(this.peakActivation, this.live - this.pinned);
    return ptr;
  }

  /** Returns a block to the free list. */
  release(ptr: number): void {
    const size = this.sizes.get(ptr);
    if (size === undefined) throw new Error(`wasm backend: release of unknown block ${ptr}`);
    this.sizes.delete(ptr);
    this.live -= size;
    if (this.pinnedBlocks.delete(ptr)) this.pinned -= size;
    let lo = 0, hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.free[mid].ptr < ptr) lo = mid + 1;
      else hi = mid;
    }
    let block: Block = { ptr, size };
    const prev = this.free[lo - 1];
    if (prev && prev.ptr + prev.size === ptr) {
      prev.size += size;
      block = prev;
      lo--;
    } else {
      this.free.splice(lo, 0, block);
    }
    const next = this.free[lo + 1];
    if (next && block.ptr + block.size === next.ptr) {
      block.size += next.size;
      this.free.splice(lo + 1, 1);
    }
    if (block.ptr + block.size === this.top) {
      this.top = block.ptr;
      this.free.splice(lo, 1);
    }
  }

  /** Bytes the block at ptr takes (its alignment and slack included). */
  sizeOf(ptr: number): number {
    return this.sizes.get(ptr) ?? 0;
  }

  stats(): MemoryStats {
    return { committedBytes: this.memory.buffer.byteLength, liveBytes: this.live, peakLiveBytes: this.peak, grows: this.grows,
      peakActivationBytes: this.peakActivation, budgetBytes: this.limit };
  }
}
