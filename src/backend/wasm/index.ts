// The `wasm` backend: AssemblyScript kernels compiled with WebAssembly SIMD (wasm/assembly, embedded by
// wasm/build.mjs), one linear memory, NHWC activations, Winograd F(4x4,3x3) conv3x3 over a 4x8 f32x4
// GEMM, single thread. Parity with the js reference: tests/ops.test.ts, tests/wasm.test.ts.
import type { Backend, ChannelSlice, NormPreOp, StorageReport, Tensor, TensorRole } from "../contract.ts";
import { checked, OP_NAMES, type OpName } from "../contract.ts";
import type { HostTensor } from "../../tensor.ts";
import { numel, shapeStr } from "../../tensor.ts";
import type { MemoryStats } from "./allocator.ts";
import { type Conv3x3Path, conv1x1, conv3x3, linear, packed, WINOGRAD_MIN_SIZE } from "./conv.ts";
import { SHORT_MIN_FLOATS, WasmCore } from "./core.ts";
import { buildLoadable, checkWasmModules, loadKernels, loadSharedKernels, probeWasm, relaxedSimdSupported, wasmBytes, type WasmModules, type WasmVariant } from "./module.ts";
import { availableCores, CONTROL_BYTES, OP_GATE_ADD, ThreadPool, threadsUnavailable } from "./threads.ts";
import { applyPre, resolvePre } from "./norm.ts";
import { attention, upsampleNearest } from "./attention.ts";
import { WasmTensor } from "./tensor.ts";
import { conv3x3Bytes, isConv3x3, MemoryBudgetError, mib, type PlannedTensor, planStorage, type StorageMode, type StoragePlan } from "./storage.ts";
import { f32ToF16Bits } from "../../f16.ts";
import { dequantize, quantizeInt8 } from "../../weights/int8.ts";

export { MemoryBudgetError, type MemoryBudgetCode, type StorageMode } from "./storage.ts";

export { probeWasm, relaxedSimdSupported, setWasmModules, WASM_BUILDS, type WasmBuild, type WasmModules, type WasmVariant } from "./module.ts";
export { availableCores, threadsUnavailable } from "./threads.ts";
export type { MemoryStats } from "./allocator.ts";

/** Options of createWasmBackend. */
export interface WasmOptions {
  /** Which build runs (default: relaxed SIMD where the engine validates it, else plain SIMD). */
  variant?: WasmVariant;
  /** conv3x3 algorithm: "auto" (Winograd for H, W >= 4, else direct), or always one (tests, benchmarks). */
  conv3x3?: Conv3x3Path;
  /**
   * Threads that share conv work, the caller included (default: min(available cores, 4) where workers and a
   * shared memory exist, else 1). 1: the single-thread build with no workers. More than 1 where threads
   * cannot run is an error.
   */
  threads?: number;
  /**
   * Precompiled kernel modules (or their bytes) by build name, for platforms that refuse to compile wasm
   * from bytes (Cloudflare Workers, Vercel Edge): `{ simd, "relaxed-simd" }` imported from
   * `dic-sdk/wasm/dic-simd.wasm` and `dic-sdk/wasm/dic-relaxed-simd.wasm` as modules. Builds not given come
   * from setWasmModules (the `dic-sdk/workerd` entry registers the shipped ones), else the embedded bytes.
   */
  modules?: WasmModules;
  /**
   * How conv3x3 weights are stored (storage.ts): "fast" (Winograd f32, 4x a 3x3 kernel), "f16" or "int8"
   * (3x3 kernels expanded per layer, just in time, into one reused scratch), or "auto": fast where the
   * budget allows, compact for the rest. Default: "auto" with a memoryBudget, else "fast".
   */
  storage?: StorageMode;
  /**
   * Most bytes the backend's linear memory may take: weights, expansion scratch, activations and per-op
   * scratch. Loaders plan the storage of a model against it before uploading (planStorage); an allocation
   * past it throws MemoryBudgetError ("memory_budget_exceeded"), a model that cannot fit at all
   * MemoryBudgetError ("memory_budget_too_small"), both saying how many bytes it would need.
   */
  memoryBudget?: number;
  /** Bytes of the budget the plan keeps for activations and per-op scratch (default: 1/8 of it, at least min(8 MiB, 1/4 of it)). */
  activationReserve?: number;
}

/** Default thread count: min(available cores, 4) where threads can run, else 1. */
export function defaultThreads(): number {
  return threadsUnavailable() === null ? Math.max(1, Math.min(availableCores(), 4)) : 1;
}

/** Memory of the threads build: 64 KiB pages, up to the wasm32 limit of 4 GiB. */
const SHARED_MAX_PAGES = 65536;

/** Creates the wasm backend (compiles the kernels). Throws when the requested variant cannot run here. */
export async function createWasmBackend(options: WasmOptions = {}): Promise<WasmBackend> {
  const modules = options.modules === undefined ? undefined : checkWasmModules(options.modules, "createWasmBackend: modules");
  const cannot = probeWasm(modules);
  if (cannot !== null) throw new Error(`wasm backend: ${cannot}`);
  const engineRelaxed = relaxedSimdSupported();
  const relaxed = engineRelaxed && buildLoadable("relaxed-simd", modules);
  const variant = options.variant ?? (relaxed ? "relaxed-simd" : "simd");
  if (variant === "relaxed-simd" && !engineRelaxed) throw new Error("wasm backend: this engine does not accept the relaxed-SIMD build");
  if (!buildLoadable(variant, modules)) throw new Error(`wasm backend: the ${variant} build was not given as a precompiled module, and this runtime refuses to compile it from bytes`);
  const why = variant === "relaxed-simd" ? "relaxed SIMD (f32x4.relaxed_madd)"
    : `plain SIMD (${options.variant ? "requested" : engineRelaxed ? "the relaxed-SIMD build was not given as a module" : "relaxed SIMD not accepted by this engine"})`;
  const threads = options.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new Error(`wasm backend: threads ${threads} is not an integer in 1..256`);
  const storage = options.storage ?? (options.memoryBudget === undefined ? "fast" : "auto");
  if (!["fast", "f16", "int8", "auto"].includes(storage)) throw new Error(`wasm backend: unknown storage "${storage}" (fast, f16, int8, auto)`);
  const budget = options.memoryBudget ?? null;
  if (budget !== null && !(Number.isFinite(budget) && budget > 0)) throw new Error(`wasm backend: memoryBudget must be a positive number of bytes, got ${budget}`);
  const reserve = options.activationReserve ?? (budget === null ? 0 : Math.floor(Math.max(Math.min(8 << 20, budget / 4), budget / 8)));
  const make = (core: WasmCore, note: string) => {
    const b = new WasmBackend(core, variant, why, options.conv3x3 ?? "auto", note, storage, budget, reserve);
    core.heap.limit = budget;
    if (budget !== null && core.k.memory.buffer.byteLength > budget) {
      throw new MemoryBudgetError("memory_budget_too_small", budget, core.k.memory.buffer.byteLength, `wasm backend: memory budget ${mib(budget)} is below the kernels' own memory (${mib(core.k.memory.buffer.byteLength)})`);
    }
    return b;
  };
  const single = async (note: string) => make(new WasmCore(await loadKernels(variant, modules)), note);
  if (threads === 1) return single(options.threads === undefined ? `single thread (${threadsUnavailable() ?? "1 core"})` : "single thread");
  const no = threadsUnavailable();
  if (no !== null) throw new Error(`wasm backend: ${threads} threads requested but ${no}`);
  try {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: SHARED_MAX_PAGES, shared: true });
    const core = new WasmCore(await loadSharedKernels(variant, memory));
    const ctl = core.heap.alloc(CONTROL_BYTES);
    const scratch = Array.from({ length: threads }, () => core.heap.alloc(core.k.scratchBytes()));
    core.pool = await ThreadPool.start(core.k, wasmBytes(variant, true), threads, ctl, (i) => scratch[i]);
    return make(core, `${threads} threads (shared memory, ${threads - 1} worker${threads > 2 ? "s" : ""})`);
  } catch (e) {
    // Asked for explicitly: say why not. By default: one thread (e.g. a page whose CSP forbids blob: workers).
    if (options.threads !== undefined) throw e;
    return single(`single thread (threads failed to start: ${(e as Error).message})`);
  }
}

/** The ops this backend computes (its supports declaration; the registry reads it without creating one). */
export const WASM_OPS: readonly OpName[] = OP_NAMES;

export class WasmBackend implements Backend {
  readonly name = "wasm";
  readonly description: string;

  /** @internal the kernels and the allocator (tests reach the kernels through it). */
  readonly core: WasmCore;

  /** The storage plan of the model being loaded (planStorage), or the default for uploads without one. */
  private plan: StoragePlan;
  /** Bytes of Winograd-f32 storage used beyond the compact form (against plan.fastAllowance). */
  private fastUsed = 0;

  constructor(core: WasmCore, readonly variant: WasmVariant, why: string, readonly conv3x3Path: Conv3x3Path, threading: string,
    readonly storage: StorageMode = "fast", readonly memoryBudget: number | null = null, readonly activationReserve = 0) {
    this.core = core;
    core.lean = storage !== "fast" || memoryBudget !== null;
    const conv = conv3x3Path === "auto" ? `Winograd F(4x4,3x3) conv3x3 for H, W >= ${WINOGRAD_MIN_SIZE}, im2col GEMM below` : `conv3x3 forced to ${conv3x3Path}`;
    const mem = storage === "fast" && memoryBudget === null ? "" : `, conv3x3 weights ${storage === "auto" ? "by budget" : storage}${memoryBudget === null ? "" : ` (memory budget ${mib(memoryBudget)})`}`;
    this.description = `wasm: AssemblyScript kernels, ${why}, ${conv}, 4x8 f32x4 GEMM, NHWC, ${threading}${mem}`;
    // Without a plan: the mode as asked ("auto": f16 under a budget, since the model's size is unknown).
    const compact = storage === "f16" || storage === "int8" ? storage : storage === "auto" && memoryBudget !== null ? "f16" : null;
    this.plan = { compact, fastAllowance: compact ? 0 : Infinity, scratchCap: 0, expectedBytes: 0, hostReserve: 0, summary: compact ? `${compact} 3x3 kernels (no plan)` : "Winograd f32" };
    checked(this);
  }

  /**
   * Plans the storage of the tensors a loader is about to upload (storage.ts planStorage) against the
   * memory budget; throws MemoryBudgetError ("memory_budget_too_small") when even the most compact storage
   * does not fit. Returns the plan's summary line.
   */
  planStorage(tensors: readonly PlannedTensor[]): string {
    const base = this.core.heap.stats().liveBytes + this.core.k.heapBase();
    this.plan = planStorage(tensors, this.storage, this.memoryBudget, this.activationReserve, base, this.core.pool !== null);
    if (this.memoryBudget !== null) this.core.heap.limit = this.memoryBudget - this.plan.hostReserve;
    this.fastUsed = 0;
    return this.plan.summary;
  }

  /** Weight bytes by form, the expansion scratch and the activation peak (see StorageReport). */
  storageReport(): StorageReport {
    const st = this.core.heap.stats();
    const weights: Record<string, number> = {};
    for (const [k, v] of this.core.weightBytes) if (v > 0) weights[k] = v;
    return { weights, scratchBytes: this.core.expandBytes, activationPeakBytes: st.peakActivationBytes, committedBytes: st.committedBytes,
      budgetBytes: this.memoryBudget, plan: this.plan.summary };
  }

  /** The compact form a new conv3x3 weight [co, ci, 3, 3] gets, or null: Winograd f32. */
  private compactFor(co: number, ci: number): "f16" | "int8" | null {
    const c = this.plan.compact;
    if (c === null || this.conv3x3Path === "direct") return c;
    const b = conv3x3Bytes(co, ci);
    const extra = b["winograd-f32"] - b[c];
    if (this.fastUsed + extra <= this.plan.fastAllowance) {
      this.fastUsed += extra;
      return null;
    }
    return c;
  }

  /**
   * Uploads a conv3x3 weight already quantized to int8 with one scale per output channel (w[o] = q[o] *
   * scale[o]; an int8 weights file, see README "int8 weights"): kept as is wherever the plan stores it
   * compactly (int8 is smaller than f16 and exact to the file), dequantized into Winograd form otherwise.
   */
  uploadInt8(t: { shape: number[]; data: Int8Array; scale: Float32Array }, role: TensorRole = "conv3x3.weight"): Tensor {
    const s = t.shape;
    const co = s[0];
    if (t.data.length !== numel(s) || t.scale.length !== co) throw new Error(`uploadInt8: shape ${shapeStr(s)} vs ${t.data.length} values and ${t.scale.length} scales`);
    const compact = isConv3x3(s, role) ? this.compactFor(co, s[1]) : null;
    if (compact === null) return this.uploadAs({ shape: s, data: dequantize(t.data, t.scale, co) }, role, null);
    return this.core.pinned(() => this.storeInt8(s, t.data, t.scale));
  }

  /** Threads that share conv work (1: no workers). */
  get threads(): number {
    return this.core.pool?.threads ?? 1;
  }

  /** Stops the worker threads (if any); the backend must not be used afterwards. Idempotent. */
  close(): void {
    this.core.pool?.close();
  }

  /** Memory counters (the wasm memory never shrinks: committedBytes is the peak). */
  memoryStats(): MemoryStats {
    return this.core.heap.stats();
  }

  /** Whether this backend computes `op` (its supports declaration). */
  supports(op: OpName): boolean {
    return WASM_OPS.includes(op);
  }

  upload(t: HostTensor, role: TensorRole = "activation"): Tensor {
    return this.uploadAs(t, role, isConv3x3(t.shape, role) ? this.compactFor(t.shape[0], t.shape[1]) : null);
  }

  private uploadAs(t: HostTensor, role: TensorRole, compact: "f16" | "int8" | null): Tensor {
    const s = t.shape;
    const weight = role !== "activation";
    const c = compact ? this.core.pinned(() => this.uploadCompact(t, compact)) : null;
    if (c) return c;
    // Under a compact plan linear weights (the blocks' affine layers, the embedders' MLPs) are compact too.
    if (role === "linear.weight" && s.length === 2 && this.plan.compact && s[0] > 0 && s[1] > 0) {
      const l = this.core.pinned(() => this.uploadCompactLinear(t, this.plan.compact!));
      if (l) return l;
    }
    const run = () => {
      const u = this.core.tensor(t.shape, "nchw");
      this.core.f32().set(t.data, u.ptr >> 2);
      // Pack weights once, now, for the path they will run on (the other forms are made on first use).
      try {
        if (isConv3x3(s, role) && this.conv3x3Path !== "direct") {
          packed(this.core, u, "winograd");
          this.core.dropRaw(u); // only the Winograd form stays (restored on demand: download, direct path)
        }
        if ((role === "conv1x1.weight" && s.length === 4 && s[2] === 1 && s[3] === 1) || (role === "linear.weight" && s.length === 2)) {
          packed(this.core, u, "gemm");
          this.core.dropRaw(u); // lean: only the packed form stays
        }
      } catch (e) {
        this.core.release(u);
        throw e;
      }
      if (weight) {
        const bytes = (u.ptr ? this.core.heap.sizeOf(u.ptr) : 0) + [...u.packs.values()].reduce((a, p) => a + this.core.heap.sizeOf(p), 0);
        this.core.countForm(u, u.packs.has("winograd") ? "winograd-f32" : "f32", bytes);
      }
      return u;
    };
    return weight ? this.core.pinned(run) : run();
  }

  /**
   * A conv3x3 weight kept as a 3x3 kernel in f16, or int8 with per-output-channel scales (max |w| / 127), in
   * the kernels' interleaved layout [ceil(Co/4)][Ci][9][4] (wasm/assembly/conv3x3.ts compactIndex). A weight
   * with values beyond f16's range stays in Winograd f32 form.
   */
  private uploadCompact(t: HostTensor, kind: "f16" | "int8"): WasmTensor | null {
    const [co] = t.shape;
    const count = t.data.length, per = count / co, padded = Math.ceil(co / 4) * 4 * per;
    if (kind === "f16") {
      for (let i = 0; i < count; i++) if (Math.abs(t.data[i]) >= 65520) return null;
      const p = this.core.heap.alloc(padded * 2);
      const h = new Uint16Array(this.core.k.memory.buffer, p, padded);
      h.fill(0);
      for (let o = 0; o < co; o++) {
        const d = (o >> 2) * per * 4 + (o & 3);
        for (let j = 0; j < per; j++) h[d + 4 * j] = f32ToF16Bits(t.data[o * per + j]);
      }
      const u = new WasmTensor(this.core, [...t.shape], 0, "nchw");
      u.compact = { kind, ptr: p, scales: 0 };
      this.core.countForm(u, "f16", this.core.heap.sizeOf(p));
      return u;
    }
    const { q, scale } = quantizeInt8(t.data, co);
    return this.storeInt8(t.shape, q, scale);
  }

  /** A linear weight [N, K] in f16 or int8 (per-row scales), in the GEMM's packed panel layout [ceil(N/8)][K][8]. */
  private uploadCompactLinear(t: HostTensor, kind: "f16" | "int8"): WasmTensor | null {
    const [n, k] = t.shape, padded = Math.ceil(n / 8) * 8 * k;
    const at = (j: number, kk: number) => ((j >> 3) * k + kk) * 8 + (j & 7);
    const u = new WasmTensor(this.core, [...t.shape], 0, "nchw");
    if (kind === "f16") {
      for (let i = 0; i < t.data.length; i++) if (Math.abs(t.data[i]) >= 65520) return null;
      const p = this.core.heap.alloc(padded * 2);
      const h = new Uint16Array(this.core.k.memory.buffer, p, padded);
      h.fill(0);
      for (let j = 0; j < n; j++) for (let kk = 0; kk < k; kk++) h[at(j, kk)] = f32ToF16Bits(t.data[j * k + kk]);
      u.compact = { kind, ptr: p, scales: 0, panels: true };
      this.core.countForm(u, "f16", this.core.heap.sizeOf(p));
      return u;
    }
    const { q, scale } = quantizeInt8(t.data, n);
    const p = this.core.heap.alloc(padded), sc = this.core.heap.alloc(Math.ceil(n / 8) * 32);
    const dst = new Int8Array(this.core.k.memory.buffer, p, padded);
    dst.fill(0);
    for (let j = 0; j < n; j++) for (let kk = 0; kk < k; kk++) dst[at(j, kk)] = q[j * k + kk];
    const f = this.core.f32();
    f.fill(0, sc >> 2, (sc >> 2) + Math.ceil(n / 8) * 8);
    f.set(scale, sc >> 2);
    u.compact = { kind, ptr: p, scales: sc, panels: true };
    this.core.countForm(u, "int8", this.core.heap.sizeOf(p) + this.core.heap.sizeOf(sc));
    return u;
  }

  /** Stores int8 values ([Co][...], torch layout) and their scales as a compact weight (interleaved). */
  private storeInt8(shape: readonly number[], q: Int8Array, scale: Float32Array): WasmTensor {
    const co = shape[0], per = q.length / co, padded = Math.ceil(co / 4) * 4 * per;
    const p = this.core.heap.alloc(padded), sc = this.core.heap.alloc(co * 4);
    const dst = new Int8Array(this.core.k.memory.buffer, p, padded);
    dst.fill(0);
    for (let o = 0; o < co; o++) {
      const d = (o >> 2) * per * 4 + (o & 3);
      for (let j = 0; j < per; j++) dst[d + 4 * j] = q[o * per + j];
    }
    this.core.f32().set(scale, sc >> 2);
    const u = new WasmTensor(this.core, [...shape], 0, "nchw");
    u.compact = { kind: "int8", ptr: p, scales: sc };
    this.core.countForm(u, "int8", this.core.heap.sizeOf(p) + this.core.heap.sizeOf(sc));
    return u;
  }

  download(t: Tensor): Promise<HostTensor> {
    const v = this.core.own(t, "download", false);
    const packedOnly = v.ptr === 0;
    this.core.restoreRaw(v);
    const had = v.other;
    const src = this.core.nchw(v) >> 2;
    const data = this.core.f32().slice(src, src + numel(v.shape));
    if (v.other !== had) {
      this.core.heap.release(v.other); // a transposed copy made only for this download
      v.other = 0;
    }
    if (packedOnly) this.core.dropRaw(v);
    return Promise.resolve({ shape: [...v.shape], data });
  }

  free(t: Tensor): void {
    this.core.release(this.core.own(t, "free", false));
  }

  conv3x3(x: Tensor, w: Tensor, bias: Tensor | null, pre?: NormPreOp): Tensor {
    this.core.pool?.warm(); // its commands follow its JS and the group statistics: overlap a worker's wake-up with them
    return conv3x3(this.core, x, w, bias, pre, this.conv3x3Path, this.plan.scratchCap);
  }

  conv1x1(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
    return conv1x1(this.core, x, w, bias);
  }

  linear(x: Tensor, w: Tensor, bias: Tensor | null, inputAct: "silu" | "none" = "none"): Tensor {
    return linear(this.core, x, w, bias, inputAct);
  }

  normalize(x: Tensor, pre: NormPreOp): Tensor {
    const xv = this.core.own(x, "normalize");
    const resolved = resolvePre(this.core, pre, xv, "normalize");
    const [, c, h, w] = xv.shape;
    const out = this.core.tensor(xv.shape, "nhwc");
    applyPre(this.core, xv, resolved, out.ptr, h, w, c, 0);
    return out;
  }

  gateAdd(h: Tensor, gate: ChannelSlice | null, residual: Tensor): Tensor {
    const hv = this.core.own(h, "gateAdd"), rv = this.core.own(residual, "gateAdd");
    const [n, c, hh, w] = hv.shape;
    let g = 0, k = 0, off = 0;
    if (gate) {
      const gv = this.core.own(gate.tensor, "gateAdd");
      k = gv.shape[1];
      g = gv.ptr;
      off = gate.offset;
    }
    const out = this.core.tensor(hv.shape, "nhwc");
    const args = [this.core.nhwc(hv), g, k, off, this.core.nhwc(rv), out.ptr, n, hh * w, c] as const;
    this.core.short(OP_GATE_ADD, args, () => this.core.k.gateAdd(...args), n * hh * w * c >= SHORT_MIN_FLOATS);
    return out;
  }

  add(a: Tensor, b: Tensor): Tensor {
    const av = this.core.own(a, "add"), bv = this.core.own(b, "add");
    const layout = av.shape.length === 4 && (av.layout === "nhwc" || bv.layout === "nhwc") ? "nhwc" : "nchw";
    const ptr = (t: WasmTensor) => (layout === "nhwc" ? this.core.nhwc(t) : t.ptr);
    const out = this.core.tensor(av.shape, layout);
    this.core.k.add(ptr(av), ptr(bv), out.ptr, numel(av.shape));
    return out;
  }

  gather(table: Tensor, ids: readonly number[]): Tensor {
    const tv = this.core.own(table, "gather");
    const d = tv.shape[1];
    const out = this.core.tensor([ids.length, d], "nchw");
    const m = this.core.f32();
    ids.forEach((id, r) => m.copyWithin((out.ptr >> 2) + r * d, (tv.ptr >> 2) + id * d, (tv.ptr >> 2) + (id + 1) * d));
    return out;
  }

  pixelShuffle(x: Tensor, r: number): Tensor {
    const xv = this.core.own(x, "pixelShuffle");
    const [n, c, h, w] = xv.shape;
    const out = this.core.tensor([n, c / (r * r), h * r, w * r], "nhwc");
    this.core.k.pixelShuffle(this.core.nhwc(xv), out.ptr, n, c, h, w, r);
    return out;
  }

  pixelUnshuffle(x: Tensor, r: number): Tensor {
    const xv = this.core.own(x, "pixelUnshuffle");
    const [n, c, h, w] = xv.shape;
    const out = this.core.tensor([n, c * r * r, h / r, w / r], "nhwc");
    this.core.k.pixelUnshuffle(this.core.nhwc(xv), out.ptr, n, c, h, w, r);
    return out;
  }

  concat(a: Tensor, b: Tensor): Tensor {
    const av = this.core.own(a, "concat"), bv = this.core.own(b, "concat");
    const [n, ca, h, w] = av.shape;
    const cb = bv.shape[1];
    const out = this.core.tensor([n, ca + cb, h, w], "nhwc");
    this.core.k.concat(this.core.nhwc(av), ca, this.core.nhwc(bv), cb, out.ptr, n * h * w);
    return out;
  }

  upsampleNearest(x: Tensor, r: number): Tensor {
    return upsampleNearest(this.core, x, r);
  }

  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    return attention(this.core, q, k, v);
  }
}
