// Loads the kernels of wasm/assembly (embedded as base64 by wasm/build.mjs: no file access, no fetch and no
// dynamic import, so the same path works in Node, Deno, Bun, browsers and edge workers) and picks the build:
// relaxed SIMD where the engine validates it (Deno, Bun, Chromium; Node 20 only with
// --experimental-wasm-relaxed-simd), else plain SIMD.
import { WASM_RELAXED_SIMD, WASM_RELAXED_SIMD_THREADS, WASM_SIMD, WASM_SIMD_THREADS } from "./binary.ts";

/** Which build of the kernels runs. */
export type WasmVariant = "relaxed-simd" | "simd";

type Ptr = number;
/** The exports of wasm/assembly/index.ts. Pointers are byte offsets into `memory`. */
export interface Kernels {
  memory: WebAssembly.Memory;
  heapBase(): Ptr;
  gemm(m: number, n: number, k: number, a: Ptr, lda: number, b: Ptr, c: Ptr, ldc: number, bias: Ptr): void;
  packB(src: Ptr, k: number, n: number, rowStride: number, colStride: number, dst: Ptr): void;
  winogradWeights(w: Ptr, co: number, ci: number, cp: number, dst: Ptr): void;
  directWeights(w: Ptr, co: number, ci: number, cp: number, dst: Ptr): void;
  /** Winograd / direct packed weights from a kernel stored as f32 (kind 0), f16 (1) or int8 times per-Co scales (2). */
  expandWinograd(src: Ptr, kind: number, scales: Ptr, co: number, ci: number, cp: number, dst: Ptr): void;
  expandDirect(src: Ptr, kind: number, scales: Ptr, co: number, ci: number, cp: number, dst: Ptr): void;
  /** Winograd GEMMs / direct conv of a compact weight, expanded `chunk` output channels at a time into `scratch`. */
  winogradGemmCompact(tiles: number, cp: number, coPad: number, v: Ptr, src: Ptr, kind: number, scales: Ptr, co: number, ci: number, m: Ptr, scratch: Ptr, chunk: number): void;
  expandPanels(src: Ptr, kind: number, scales: Ptr, k: number, p0: number, p1: number, dst: Ptr): void;
  directConvCompact(p: Ptr, n: number, hp: number, wp: number, cp: number, h: number, w: number, col: Ptr, src: Ptr, kind: number, scales: Ptr,
    co: number, ci: number, bias: Ptr, out: Ptr, scratch: Ptr, chunk: number): void;
  winogradInput(p: Ptr, n: number, hp: number, wp: number, cp: number, tilesY: number, tilesX: number, v: Ptr): void;
  winogradGemm(tiles: number, cp: number, coPad: number, v: Ptr, u: Ptr, m: Ptr): void;
  winogradOutput(m: Ptr, coPad: number, n: number, tilesY: number, tilesX: number, h: number, w: number, co: number, bias: Ptr, out: Ptr): void;
  directConv(p: Ptr, n: number, hp: number, wp: number, cp: number, h: number, w: number, col: Ptr, wd: Ptr, co: number, bias: Ptr, out: Ptr): void;
  groupStats(x: Ptr, n: number, hw: number, c: number, groups: number, eps: number, stats: Ptr, scratch: Ptr): void;
  layerStats(x: Ptr, pixels: number, c: number, eps: number, stats: Ptr): void;
  preApply(x: Ptr, n: number, h: number, w: number, c: number, layer: number, meanC: Ptr, a: Ptr, b: Ptr, stats: Ptr,
    gelu: number, dst: Ptr, dstHp: number, dstWp: number, dstCp: number, off: number): void;
  padCopy(x: Ptr, n: number, h: number, w: number, c: number, dst: Ptr, dstHp: number, dstWp: number, dstCp: number, off: number): void;
  nchwToNhwc(src: Ptr, dst: Ptr, n: number, c: number, hw: number): void;
  nhwcToNchw(src: Ptr, dst: Ptr, n: number, c: number, hw: number): void;
  pixelShuffle(src: Ptr, dst: Ptr, n: number, cin: number, h: number, w: number, r: number): void;
  pixelUnshuffle(src: Ptr, dst: Ptr, n: number, c: number, h: number, w: number, r: number): void;
  concat(a: Ptr, ca: number, b: Ptr, cb: number, dst: Ptr, pixels: number): void;
  gateAdd(h: Ptr, gate: Ptr, k: number, off: number, res: Ptr, dst: Ptr, n: number, hw: number, c: number): void;
  add(a: Ptr, b: Ptr, dst: Ptr, count: number): void;
  silu(src: Ptr, dst: Ptr, count: number): void;
  gelu(src: Ptr, dst: Ptr, count: number): void;
  siluSimd(src: Ptr, dst: Ptr, count: number): void;
  softmaxRows(s: Ptr, rows: number, cols: number, scale: number): void;
  upsampleNearest(src: Ptr, dst: Ptr, n: number, h: number, w: number, c: number, r: number): void;
  /** Runs chunks of command `gen` in the control block at ctl until none is left (wasm/assembly/parallel.ts). */
  task(ctl: Ptr, gen: number): void;
  chunkCount(ctl: Ptr): number;
  /** Chunks this instance (thread) has run. */
  chunksDone(): number;
  scratchBytes(): number;
  setScratch(p: Ptr): void;
}

const decoded = new Map<string, Uint8Array<ArrayBuffer>>();

/** The module bytes of a build (`threads`: the build that imports a shared memory). */
export function wasmBytes(variant: WasmVariant, threads = false): Uint8Array<ArrayBuffer> {
  const key = `${variant}${threads ? "+threads" : ""}`;
  let bytes = decoded.get(key);
  if (!bytes) {
    const s = atob(threads ? (variant === "simd" ? WASM_SIMD_THREADS : WASM_RELAXED_SIMD_THREADS) : (variant === "simd" ? WASM_SIMD : WASM_RELAXED_SIMD));
    bytes = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    decoded.set(key, bytes);
  }
  return bytes;
}

/** null when the plain SIMD build can run here, else why not. */
export function probeWasm(): string | null {
  if (typeof WebAssembly !== "object" || typeof WebAssembly.validate !== "function") return "no WebAssembly in this runtime";
  if (!WebAssembly.validate(wasmBytes("simd"))) return "this engine does not support WebAssembly SIMD (v128)";
  return null;
}

/** Whether this engine accepts the relaxed-SIMD build. */
export function relaxedSimdSupported(): boolean {
  try {
    return WebAssembly.validate(wasmBytes("relaxed-simd"));
  } catch {
    return false;
  }
}

/** Compiles and instantiates a build (asynchronously: browsers refuse large synchronous compiles). */
export async function loadKernels(variant: WasmVariant): Promise<Kernels> {
  const { instance } = await WebAssembly.instantiate(wasmBytes(variant), {});
  return instance.exports as unknown as Kernels;
}

/** Instantiates the threads build of `variant` over a shared memory (its `memory` is that memory). */
export async function loadSharedKernels(variant: WasmVariant, memory: WebAssembly.Memory): Promise<Kernels> {
  const { instance } = await WebAssembly.instantiate(wasmBytes(variant, true), { env: { memory } });
  return { ...(instance.exports as unknown as Kernels), memory };
}
