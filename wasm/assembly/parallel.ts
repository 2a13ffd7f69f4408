// Work sharing for the threads build: the host writes one command (an op and its arguments) into a control
// block in the shared memory, and every thread — the caller and each worker — runs `task` on it, claiming
// chunks (ranges of tile groups, Winograd products, tiles, output rows, pre-op image rows, channel quads, GEMM
// column panels or pixels) until none is left. The host
// waits for the last chunk before the next command, which separates the stages.
import { CONV_SCRATCH_BYTES, im2colRange, setConvScratch, TRANSFORM_BLOCK, winogradGemmCompactRange, winogradGemmUnits, winogradInputUnits, winogradOutputUnits } from "./conv3x3";
import { gemm, GEMM_SCRATCH_BYTES, setGemmScratch } from "./gemm";
import { gateAddPixels } from "./layout";
import { channelTotalsUnits, preApplyRows } from "./norm";
import { ARGS, CHUNKS, CLAIM, DONE, OP, OP_CHANNEL_TOTALS, OP_DIRECT, OP_GATE_ADD, OP_GEMM, OP_GEMM_COLS, OP_PRE, OP_WINOGRAD_COMPACT, OP_WINOGRAD_GEMM,
  OP_WINOGRAD_INPUT, OP_WINOGRAD_OUTPUT } from "./pool-layout";

// Control block and op codes: wasm/pool-layout.mjs (generated into ./pool-layout.ts). Threads claim chunks
// until none are left (dynamic: a thread the OS descheduled does less, not the others' wait), and the
// thread that finishes the last chunk wakes the caller. A worker that wakes after the command is over finds
// its generation gone from the claim word and touches nothing.
/** Bytes of scratch one thread needs (setScratch). */
export function scratchBytes(): usize {
  return CONV_SCRATCH_BYTES + GEMM_SCRATCH_BYTES;
}

/** Points this instance's scratch at `p` (scratchBytes() bytes, 16-aligned); each worker gets its own block. */
export function setScratch(p: usize): void {
  setConvScratch(p);
  setGemmScratch(p + CONV_SCRATCH_BYTES);
}

@inline function arg(ctl: usize, i: i32): i32 {
  return load<i32>(ctl + ARGS + (<usize>i << 2));
}

/** Start of chunk `index` of `count` over [0, total), rounded to multiples of `align`. */
@inline function cut(total: i32, index: i32, count: i32, align: i32): i32 {
  if (index >= count) return total;
  const n = (total + align - 1) / align;
  return min(total, <i32>((<i64>n * index / count) * align));
}

/** Claims the next chunk of command `gen`: its index, or -1 when none is left or the command is over. */
@inline function claim(ctl: usize, gen: i32, chunks: i32): i32 {
  if (ASC_FEATURE_THREADS) {
    for (;;) {
      const v = atomic.load<i32>(ctl + CLAIM);
      if ((v >>> 16) != (gen & 0x7fff) || (v & 0xffff) >= chunks) return -1;
      if (atomic.cmpxchg<i32>(ctl + CLAIM, v, v + 1) == v) return v & 0xffff;
    }
  }
  const v = load<i32>(ctl + CLAIM);
  if ((v & 0xffff) >= chunks) return -1;
  store<i32>(ctl + CLAIM, v + 1);
  return v & 0xffff;
}

@inline function finish(ctl: usize, chunks: i32): void {
  if (ASC_FEATURE_THREADS) {
    if (atomic.add<i32>(ctl + DONE, 1) + 1 == chunks) atomic.notify(ctl + DONE, 1);
  } else {
    store<i32>(ctl + DONE, load<i32>(ctl + DONE) + 1);
  }
}

/** Units of work of the command at ctl and their alignment. */
function units(ctl: usize): i32 {
  const op = load<i32>(ctl + OP);
  if (op == OP_WINOGRAD_INPUT) return ((arg(ctl, 1) * arg(ctl, 5) * arg(ctl, 6) + 3) >> 2) * ((arg(ctl, 4) + TRANSFORM_BLOCK - 1) / TRANSFORM_BLOCK);
  if (op == OP_WINOGRAD_GEMM) return 36 * max(1, arg(ctl, 6));
  if (op == OP_WINOGRAD_OUTPUT) return arg(ctl, 2) * arg(ctl, 3) * arg(ctl, 4) * ((arg(ctl, 7) + TRANSFORM_BLOCK - 1) / TRANSFORM_BLOCK);
  if (op == OP_GEMM) return (arg(ctl, 0) + 3) >> 2;
  if (op == OP_DIRECT) return (arg(ctl, 1) * arg(ctl, 5) * arg(ctl, 6) + 3) >> 2;
  if (op == OP_PRE) return arg(ctl, 1) * arg(ctl, 2);
  if (op == OP_WINOGRAD_COMPACT) return (arg(ctl, 7) + arg(ctl, 11) - 1) / arg(ctl, 11);
  if (op == OP_CHANNEL_TOTALS) return arg(ctl, 1) * ((arg(ctl, 3) + 3) >> 2);
  if (op == OP_GEMM_COLS) return (arg(ctl, 1) + 7) >> 3;
  if (op == OP_GATE_ADD) return arg(ctl, 6) * arg(ctl, 7);
  return 0;
}

/** Number of chunks the command at ctl splits into (the host sets the wish in slot CHUNKS). */
export function chunkCount(ctl: usize): i32 {
  return max(1, min(units(ctl), load<i32>(ctl + CHUNKS)));
}

let chunksRun = 0; // per instance, i.e. per thread

/** Chunks this thread (instance) has run so far (diagnostics: is every worker taking part?). */
export function chunksDone(): i32 {
  return chunksRun;
}

/** Runs chunks of command `gen` in the control block at ctl until none is left. */
export function task(ctl: usize, gen: i32): void {
  const chunks = chunkCount(ctl);
  const total = units(ctl);
  for (;;) {
    const c = claim(ctl, gen, chunks);
    if (c < 0) return;
    run(ctl, cut(total, c, chunks, 1), cut(total, c + 1, chunks, 1));
    chunksRun++;
    finish(ctl, chunks);
  }
}

/** Units [u0, u1) of the command at ctl. */
function run(ctl: usize, u0: i32, u1: i32): void {
  const op = load<i32>(ctl + OP);
  if (op == OP_WINOGRAD_INPUT) {
    winogradInputUnits(<usize>arg(ctl, 0), arg(ctl, 1), arg(ctl, 2), arg(ctl, 3), arg(ctl, 4), arg(ctl, 5), arg(ctl, 6), <usize>arg(ctl, 7), u0, u1);
  } else if (op == OP_WINOGRAD_GEMM) {
    winogradGemmUnits(arg(ctl, 0), arg(ctl, 1), arg(ctl, 2), <usize>arg(ctl, 3), <usize>arg(ctl, 4), <usize>arg(ctl, 5), max(1, arg(ctl, 6)), u0, u1);
  } else if (op == OP_WINOGRAD_OUTPUT) {
    winogradOutputUnits(<usize>arg(ctl, 0), arg(ctl, 1), arg(ctl, 2), arg(ctl, 3), arg(ctl, 4), arg(ctl, 5), arg(ctl, 6), arg(ctl, 7),
      <usize>arg(ctl, 8), <usize>arg(ctl, 9), u0, u1);
  } else if (op == OP_GEMM) {
    const m = arg(ctl, 0), n = arg(ctl, 1), k = arg(ctl, 2), lda = arg(ctl, 4), ldc = arg(ctl, 7);
    const r0 = u0 << 2, r1 = min(m, u1 << 2);
    gemm(r1 - r0, n, k, <usize>arg(ctl, 3) + ((<usize>r0 * <usize>lda) << 2), lda, <usize>arg(ctl, 5),
      <usize>arg(ctl, 6) + ((<usize>r0 * <usize>ldc) << 2), ldc, <usize>arg(ctl, 8));
  } else if (op == OP_DIRECT) {
    const n = arg(ctl, 1), cp = arg(ctl, 4), h = arg(ctl, 5), w = arg(ctl, 6), co = arg(ctl, 9);
    const r0 = u0 << 2, r1 = min(n * h * w, u1 << 2);
    const col = <usize>arg(ctl, 7);
    im2colRange(<usize>arg(ctl, 0), n, arg(ctl, 2), arg(ctl, 3), cp, h, w, col, r0, r1);
    const k = 9 * cp;
    gemm(r1 - r0, co, k, col + ((<usize>r0 * <usize>k) << 2), k, <usize>arg(ctl, 8), <usize>arg(ctl, 11) + ((<usize>r0 * <usize>co) << 2), co, <usize>arg(ctl, 10));
  } else if (op == OP_WINOGRAD_COMPACT) {
    winogradGemmCompactRange(arg(ctl, 0), arg(ctl, 1), arg(ctl, 2), <usize>arg(ctl, 3), <usize>arg(ctl, 4), arg(ctl, 5), <usize>arg(ctl, 6), arg(ctl, 7),
      arg(ctl, 8), <usize>arg(ctl, 9), <usize>arg(ctl, 10), arg(ctl, 11), arg(ctl, 12), u0, u1);
  } else if (op == OP_CHANNEL_TOTALS) {
    channelTotalsUnits(<usize>arg(ctl, 0), arg(ctl, 1), arg(ctl, 2), arg(ctl, 3), <usize>arg(ctl, 4), <usize>arg(ctl, 5), u0, u1);
  } else if (op == OP_GEMM_COLS) {
    const n = arg(ctl, 1), k = arg(ctl, 2), c0 = u0 << 3, c1 = min(n, u1 << 3), bias = <usize>arg(ctl, 8);
    gemm(arg(ctl, 0), c1 - c0, k, <usize>arg(ctl, 3), arg(ctl, 4), <usize>arg(ctl, 5) + ((<usize>u0 * <usize>k) << 5),
      <usize>arg(ctl, 6) + (<usize>c0 << 2), arg(ctl, 7), bias ? bias + (<usize>c0 << 2) : 0);
  } else if (op == OP_GATE_ADD) {
    gateAddPixels(<usize>arg(ctl, 0), <usize>arg(ctl, 1), arg(ctl, 2), arg(ctl, 3), <usize>arg(ctl, 4), <usize>arg(ctl, 5), arg(ctl, 6), arg(ctl, 7), arg(ctl, 8), u0, u1);
  } else if (op == OP_PRE) {
    preApplyRows(<usize>arg(ctl, 0), arg(ctl, 1), arg(ctl, 2), arg(ctl, 3), arg(ctl, 4), arg(ctl, 5), <usize>arg(ctl, 6), <usize>arg(ctl, 7),
      <usize>arg(ctl, 8), <usize>arg(ctl, 9), arg(ctl, 10), <usize>arg(ctl, 11), arg(ctl, 12), arg(ctl, 13), arg(ctl, 14), arg(ctl, 15), u0, u1);
  }
}
