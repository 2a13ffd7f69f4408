// Weight storage of the wasm backend and the memory budget that picks it (README.md "Memory budget and weight storage").
//
// A conv3x3 weight is kept in one of three forms:
//   "winograd-f32": the Winograd F(4x4,3x3) form U = G g G^T, f32 (36 values per kernel: 4x a 3x3 kernel);
//                   no work per conv (the fast default).
//   "f16":          the 3x3 kernel as IEEE binary16 (2 bytes a tap, 1/8 of the Winograd form).
//   "int8":         the 3x3 kernel as int8 times one f32 scale per output channel (w = q * scale[o]).
// A compact weight is expanded just in time, when its conv runs, into one scratch block the backend reuses
// for every layer: the Winograd form, or the direct (im2col) form where that costs less at the layer's
// image size (see chooseConv3x3 in conv.ts). In the compact modes linear weights are f16 / int8 too (in the
// GEMM's panel layout, expanded a chunk at a time); conv1x1 weights, vectors and tables stay f32, and the
// GEMM-packed f32 ones keep only their packed form.
//
// The budget covers the backend's whole linear memory: weights, the expansion scratch, activations and
// per-op scratch. Loaders describe the model before uploading it (planStorage), so the plan sees every
// weight before the first one arrives: the backend then receives one tensor at a time and picks its form on
// the spot (a loader that streams tensors from a file handle or Range reads needs nothing else).

/** How conv3x3 weights are stored: "fast" (Winograd f32), "f16", "int8", or "auto" (the budget decides). */
export type StorageMode = "fast" | "f16" | "int8" | "auto";

/** The form one weight is held in (the keys of StorageReport.weights). */
export type WeightForm = "winograd-f32" | "f16" | "int8" | "f32";

import { MemoryBudgetError } from "../contract.ts";

export { MemoryBudgetError, type MemoryBudgetCode } from "../contract.ts";

/** Bytes as "12.3 MiB". */
export const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;

const ceil = (v: number, m: number) => Math.ceil(v / m) * m;
/** What the allocator takes for a block of `bytes` (its alignment and slack; see allocator.ts). */
export const blockBytes = (bytes: number): number => ceil(bytes + 64, 64);

/** Bytes of each form of a [co, ci, 3, 3] weight. */
export function conv3x3Bytes(co: number, ci: number): Record<"winograd-f32" | "direct-f32" | "f16" | "int8", number> {
  const cp = ceil(ci, 4), coPad = ceil(co, 8);
  return {
    "winograd-f32": blockBytes(36 * cp * coPad * 4),
    "direct-f32": blockBytes(9 * cp * coPad * 4),
    f16: blockBytes(co * ci * 9 * 2),
    int8: blockBytes(co * ci * 9) + blockBytes(co * 4),
  };
}

/** Bytes of one chunk's expanded form a single-thread compact conv aims at (about an L2 cache). */
const CHUNK_BYTES = 512 << 10;

/**
 * Output channels per expansion chunk of a single-thread compact conv (a multiple of 8) and the scratch it
 * takes: the chunk's Winograd (or direct) form is used while it is in cache, and the whole form never exists.
 */
export function compactChunk(wino: boolean, cp: number, co: number): { chunk: number; bytes: number } {
  const perChannel = (wino ? 36 : 9) * cp * 4;
  const chunk = Math.min(ceil(co, 8), Math.max(8, Math.floor(CHUNK_BYTES / perChannel / 8) * 8));
  return { chunk, bytes: perChannel * chunk + (wino ? 36 * 64 : 0) }; // Winograd planes are a cache line apart (conv3x3.ts chunkPlaneStride)
}

/** One tensor a loader is about to upload. */
export interface PlannedTensor {
  shape: readonly number[];
  role: string;
}

export const isConv3x3 = (shape: readonly number[], role: string): boolean =>
  role === "conv3x3.weight" && shape.length === 4 && shape[2] === 3 && shape[3] === 3;

const isGemm = (shape: readonly number[], role: string): boolean =>
  (role === "conv1x1.weight" && shape.length === 4 && shape[2] === 1 && shape[3] === 1) || (role === "linear.weight" && shape.length === 2);

/** Bytes an upload takes outside conv3x3 weights (`lean`: GEMM-packed weights keep only the packed form). */
export function otherBytes(shape: readonly number[], role: string, lean: boolean, compact: "f16" | "int8" | null = null): number {
  const n = shape.reduce((a, d) => a * d, 1);
  if (compact && role === "linear.weight" && shape.length === 2) {
    const padded = ceil(shape[0], 8) * shape[1];
    return compact === "f16" ? blockBytes(padded * 2) : blockBytes(padded) + blockBytes(ceil(shape[0], 8) * 4);
  }
  if (isGemm(shape, role)) {
    const [co, ci] = shape;
    const pack = blockBytes(ceil(co, 8) * ci * 4);
    return lean ? pack : pack + blockBytes(n * 4);
  }
  return blockBytes(n * 4);
}

/** The storage plan of a model under a budget. */
export interface StoragePlan {
  /** Compact form of the conv3x3 weights that are not kept fast. */
  compact: "f16" | "int8" | null;
  /** Bytes of Winograd-f32 storage the uploads may still use beyond the compact form (Infinity: all fast). */
  fastAllowance: number;
  /** Largest expansion the scratch may take (bytes): larger Winograd forms run direct instead. */
  scratchCap: number;
  /** Bytes the plan expects: weights, expansion scratch, activation reserve. */
  expectedBytes: number;
  /** One line: what was picked and why. */
  summary: string;
  /** Bytes of the budget left to the host side of the load (see planStorage); the memory may take the rest. */
  hostReserve: number;
}

/**
 * Picks storage for `tensors` under `budget` bytes (null: no budget), leaving `reserve` bytes for
 * activations and per-op scratch, `base` bytes being the module's own memory. "auto": all fast if it fits,
 * else f16 (then int8) with as many layers upgraded to fast as the rest of the budget allows, else a
 * MemoryBudgetError naming what the smallest storage needs. An explicit mode is checked, never changed.
 */
export function planStorage(tensors: readonly PlannedTensor[], mode: StorageMode, budget0: number | null, reserve: number, base: number, workers: boolean): StoragePlan {
  // The load's own peak counts against the budget: a loader holds one tensor's f32 values while the backend
  // converts them, so the largest tensor's f32 size stays outside the wasm memory (bench/memory measures
  // the rest of the host side within a few MiB when the loader reads each tensor into one reused buffer).
  const hostReserve = budget0 === null ? 0 : tensors.reduce((a, t) => Math.max(a, t.shape.reduce((x, d) => x * d, 1) * 4), 0);
  const budget = budget0 === null ? null : budget0 - hostReserve;
  const convs = tensors.filter((t) => isConv3x3(t.shape, t.role)).map((t) => ({
    ...conv3x3Bytes(t.shape[0], t.shape[1]), chunk: blockBytes(compactChunk(true, ceil(t.shape[1], 4), t.shape[0]).bytes),
  }));
  const sum = (k: "winograd-f32" | "f16" | "int8") => convs.reduce((a, c) => a + c[k], 0);
  const others = (lean: boolean, compact: "f16" | "int8" | null = null) =>
    tensors.filter((t) => !isConv3x3(t.shape, t.role)).reduce((a, t) => a + otherBytes(t.shape, t.role, lean, compact), 0);
  const maxLinearChunk = tensors.filter((t) => t.role === "linear.weight" && t.shape.length === 2)
    .reduce((a, t) => Math.max(a, blockBytes(Math.min(Math.ceil(t.shape[0] / 8), Math.max(1, Math.floor((512 << 10) / (t.shape[1] * 32)))) * t.shape[1] * 32)), 0);
  const maxWino = convs.reduce((a, c) => Math.max(a, c["winograd-f32"]), 0);
  const maxDirect = convs.reduce((a, c) => Math.max(a, c["direct-f32"]), 0);
  const maxChunk = convs.reduce((a, c) => Math.max(a, c.chunk), 0);
  const fastTotal = base + others(false) + sum("winograd-f32") + reserve;
  const fits = (need: number) => budget === null || need <= budget;
  const budgetStr = budget === null ? "no budget" : `budget ${mib(budget0!)} (${mib(budget)} for the wasm memory, ${mib(hostReserve)} for the loader's per-tensor buffers)`;
  if (mode === "fast" || (mode === "auto" && fits(fastTotal))) {
    if (!fits(fastTotal)) throw tooSmall(budget0!, fastTotal + hostReserve, `storage "fast" needs ${mib(fastTotal)} (weights in Winograd f32 form + ${mib(reserve)} for activations); ${budgetStr}; try storage "auto"`);
    return { compact: null, fastAllowance: Infinity, scratchCap: 0, expectedBytes: fastTotal, hostReserve, summary: `Winograd f32 (${mib(sum("winograd-f32"))} of conv3x3 weights), ${budgetStr}` };
  }
  const kinds: ("f16" | "int8")[] = mode === "auto" ? ["f16", "int8"] : [mode];
  let smallest = Infinity;
  for (const kind of kinds) {
    const fixed = base + others(true, kind) + sum(kind) + reserve;
    // Scratch: one thread expands a chunk of output channels at a time (see compactChunk); with workers the
    // whole form: the largest Winograd form if it fits, else the largest direct form (those layers then run direct).
    for (const s0 of workers ? [maxWino, maxDirect] : [maxChunk]) {
      const scratch = Math.max(s0, maxLinearChunk);
      const need = fixed + scratch;
      smallest = Math.min(smallest, need);
      if (!fits(need)) continue;
      // Upgrades leave 1/16 of the budget free: the allocator's free list fragments (best fit, coalescing).
      const allowance = budget === null ? 0 : Math.max(0, budget - need - budget / 16);
      return {
        compact: kind,
        fastAllowance: mode === "auto" ? allowance : 0,
        scratchCap: workers ? s0 : 0,
        expectedBytes: need,
        hostReserve,
        summary: `${kind} 3x3 kernels (${mib(sum(kind))}) expanded into a ${mib(scratch)} scratch${!workers ? " (a chunk of output channels at a time)" : s0 === maxWino ? "" : " (direct form where Winograd would not fit)"}, linear weights ${kind}` +
          `${mode === "auto" ? `, up to ${mib(allowance)} more kept in Winograd f32 form` : ""}, ${mib(reserve)} for activations, ${budgetStr}`,
      };
    }
  }
  throw tooSmall(budget0!, smallest + hostReserve, `memory budget ${mib(budget0!)} is too small for this model: the most compact storage (${kinds[kinds.length - 1]} 3x3 kernels, ${workers ? "direct-form" : "chunked"} scratch, ${mib(reserve)} for activations, ${mib(hostReserve)} for the loader) needs ${mib(smallest + hostReserve)}`);
}

function tooSmall(budget: number, need: number, detail: string): MemoryBudgetError {
  return new MemoryBudgetError("memory_budget_too_small", budget, need, `wasm backend: ${detail}`);
}

/** Compact-weight conv cost model: which algorithm a layer runs (see chooseConv3x3 in conv.ts). */
export interface PathCosts {
  winograd: number;
  direct: number;
}

/**
 * Cost of a compact conv3x3 layer in multiply-add units, Winograd vs direct, counting the expansion each
 * needs: Winograd multiplies 36 * tiles * Cp * CoPad plus ~WINO_EXPAND per (co, ci) kernel to expand, direct
 * 9 * pixels * Cp * CoPad plus a copy per tap. Measured on a 384-channel 8x8 layer at batch 2 (bench/NOTES.md,
 * bench/memory): the chunked Winograd expansion costs ~40 multiply-adds a kernel (0.4 ms of 3.3 ms), so
 * Winograd wins down to the 8x8 latent stage at batch 1; the whole-form expansion (before chunking) did not.
 */
export function compactCosts(n: number, h: number, w: number, ci: number, co: number): PathCosts {
  const cp = ceil(ci, 4), coPad = ceil(co, 8);
  const tiles = n * Math.ceil(h / 4) * Math.ceil(w / 4);
  return {
    winograd: 36 * ceil(tiles, 4) * cp * coPad + WINO_EXPAND * co * ci + 200 * tiles * cp,
    direct: 9 * n * h * w * cp * coPad + DIRECT_EXPAND * co * ci,
  };
}
/** Expansion cost per kernel in multiply-add units of the GEMM (Winograd form; direct form). */
export const WINO_EXPAND = 40, DIRECT_EXPAND = 15;
