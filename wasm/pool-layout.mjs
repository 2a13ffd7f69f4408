// The one definition of the thread pool's command protocol: its op codes and the layout of the control
// block in shared memory. wasm/generate.mjs writes it out for both sides: wasm/assembly/pool-layout.ts
// (byte offsets, for parallel.ts) and src/backend/wasm/pool-layout.ts (i32 slots, for threads.ts).

/** Op codes of a command, with what each runs (split into chunks by parallel.ts). */
export const OPS = [
  { name: "WINOGRAD_INPUT", code: 1, doc: "conv3x3 Winograd input transform, split by tile group and block of 32 channels. Args as winogradInput." },
  { name: "WINOGRAD_GEMM", code: 2, doc: "The 36 Winograd GEMMs, split by product and part of its tile groups. Args as winogradGemmUnits (less u0, u1)." },
  { name: "WINOGRAD_OUTPUT", code: 3, doc: "Winograd output transform, split by tile and block of 32 output channels. Args as winogradOutput." },
  { name: "GEMM", code: 4, doc: "gemm split by rows (multiples of 4). Args as gemm." },
  { name: "DIRECT", code: 5, doc: "Direct conv3x3 (im2col + GEMM), split by output pixel. Args as directConv." },
  { name: "PRE", code: 6, doc: "The fused pre-op pass (norm, modulate, GELU into the padded conv input), split by image row. Args as preApply." },
  { name: "CHANNEL_TOTALS", code: 8, doc: "Group-norm channel sums (or sums of squares about the group means), split by image and block of four channels. Args as channelTotalsUnits (less u0, u1)." },
  { name: "GEMM_COLS", code: 9, doc: "gemm split by panels of 8 columns (few rows: linear). Args as gemm." },
  { name: "GATE_ADD", code: 10, doc: "gateAdd split by pixel. Args as gateAdd." },
  { name: "WINOGRAD_COMPACT", code: 7, doc: "The 36 Winograd GEMMs of a compact weight, split by chunk of output channels. Args as winogradGemmCompactRange (less j0, j1)." },
];

/** Bytes of the control block: room for 256 threads' counters. */
export const CONTROL_BYTES = 2048;

/** The control block's i32 slots, by index. */
export const SLOTS = [
  { name: "GENERATION", slot: 0, doc: "Bumped per command (the claim word's generation); workers sleep on their worker set's wake block (threads.ts)." },
  { name: "DONE", slot: 1, doc: "Chunks done; the thread that finishes the last one wakes the caller." },
  { name: "OP", slot: 2, doc: "The command's op code (OPS)." },
  { name: "CLAIM", slot: 3, doc: "Claim word: generation << 16 | next chunk." },
  { name: "CHUNKS", slot: 4, doc: "Chunks the host wants the command split into." },
  { name: "ARGS", slot: 5, doc: "First of the command's arguments (up to COUNTS - ARGS of them)." },
  { name: "COUNTS", slot: 32, doc: "Slot COUNTS + i: chunks run by worker i (1-based)." },
  { name: "FAULT", slot: CONTROL_BYTES / 4 - 1, doc: "Set by a worker whose chunk failed (a trap): the caller then throws instead of waiting forever." },
];
