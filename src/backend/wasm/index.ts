// The `wasm` backend: AssemblyScript kernels compiled with WebAssembly SIMD (wasm/assembly, embedded by
// wasm/build.mjs), one linear memory, NHWC activations, Winograd F(4x4,3x3) conv3x3 over a 4x8 f32x4
// GEMM, single thread. Parity with the js reference: tests/ops.test.ts, tests/wasm.test.ts.
import type { Backend, ChannelSlice, NormPreOp, Tensor, TensorRole } from "../contract.ts";
import { expectShape } from "../contract.ts";
import type { HostTensor } from "../../tensor.ts";
import { numel, shapeStr } from "../../tensor.ts";
import type { MemoryStats } from "./allocator.ts";
import { type Conv3x3Path, conv1x1, conv3x3, linear, packed, WINOGRAD_MIN_SIZE } from "./conv.ts";
import { WasmCore } from "./core.ts";
import { buildLoadable, checkWasmModules, loadKernels, loadSharedKernels, probeWasm, relaxedSimdSupported, wasmBytes, type WasmModules, type WasmVariant } from "./module.ts";
import { availableCores, CONTROL_BYTES, ThreadPool, threadsUnavailable } from "./threads.ts";
import { applyPre, resolvePre } from "./norm.ts";
import { attention, upsampleNearest } from "./attention.ts";
import { checkFactor, checkSlice, type WasmTensor } from "./tensor.ts";

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
  const single = async (note: string) => new WasmBackend(new WasmCore(await loadKernels(variant, modules)), variant, why, options.conv3x3 ?? "auto", note);
  if (threads === 1) return single(options.threads === undefined ? `single thread (${threadsUnavailable() ?? "1 core"})` : "single thread");
  const no = threadsUnavailable();
  if (no !== null) throw new Error(`wasm backend: ${threads} threads requested but ${no}`);
  try {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: SHARED_MAX_PAGES, shared: true });
    const core = new WasmCore(await loadSharedKernels(variant, memory));
    const ctl = core.heap.alloc(CONTROL_BYTES);
    const scratch = Array.from({ length: threads }, () => core.heap.alloc(core.k.scratchBytes()));
    core.pool = await ThreadPool.start(core.k, wasmBytes(variant, true), threads, ctl, (i) => scratch[i]);
    return new WasmBackend(core, variant, why, options.conv3x3 ?? "auto", `${threads} threads (shared memory, ${threads - 1} worker${threads > 2 ? "s" : ""})`);
  } catch (e) {
    // Asked for explicitly: say why not. By default: one thread (e.g. a page whose CSP forbids blob: workers).
    if (options.threads !== undefined) throw e;
    return single(`single thread (threads failed to start: ${(e as Error).message})`);
  }
}

export class WasmBackend implements Backend {
  readonly name = "wasm";
  readonly description: string;

  /** @internal the kernels and the allocator (tests reach the kernels through it). */
  readonly core: WasmCore;

  constructor(core: WasmCore, readonly variant: WasmVariant, why: string, readonly conv3x3Path: Conv3x3Path, threading: string) {
    this.core = core;
    const conv = conv3x3Path === "auto" ? `Winograd F(4x4,3x3) conv3x3 for H, W >= ${WINOGRAD_MIN_SIZE}, im2col GEMM below` : `conv3x3 forced to ${conv3x3Path}`;
    this.description = `wasm: AssemblyScript kernels, ${why}, ${conv}, 4x8 f32x4 GEMM, NHWC, ${threading}`;
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

  upload(t: HostTensor, role: TensorRole = "activation"): Tensor {
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`upload: shape ${shapeStr(t.shape)} has a negative or fractional dimension`);
    if (t.data.length !== numel(t.shape)) throw new Error(`upload: shape ${shapeStr(t.shape)} vs ${t.data.length} values`);
    const u = this.core.tensor(t.shape, "nchw");
    this.core.f32().set(t.data, u.ptr >> 2);
    // Pack weights once, now, for the path they will run on (the other forms are made on first use).
    const s = t.shape;
    try {
      if (role === "conv3x3.weight" && s.length === 4 && s[2] === 3 && s[3] === 3 && this.conv3x3Path !== "direct") {
        packed(this.core, u, "winograd");
        this.core.dropRaw(u); // only the Winograd form stays (restored on demand: download, direct path)
      }
      if ((role === "conv1x1.weight" && s.length === 4 && s[2] === 1 && s[3] === 1) || (role === "linear.weight" && s.length === 2)) {
        packed(this.core, u, "gemm");
      }
    } catch (e) {
      this.core.release(u);
      throw e;
    }
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
    return conv3x3(this.core, x, w, bias, pre, this.conv3x3Path);
  }

  conv1x1(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
    return conv1x1(this.core, x, w, bias);
  }

  linear(x: Tensor, w: Tensor, bias: Tensor | null, inputAct: "silu" | "none" = "none"): Tensor {
    return linear(this.core, x, w, bias, inputAct);
  }

  normalize(x: Tensor, pre: NormPreOp): Tensor {
    const xv = this.core.own(x, "normalize");
    expectShape("normalize", "x", xv.shape, [null, null, null, null]);
    const resolved = resolvePre(this.core, pre, xv, "normalize");
    const [, c, h, w] = xv.shape;
    const out = this.core.tensor(xv.shape, "nhwc");
    applyPre(this.core, xv, resolved, out.ptr, h, w, c, 0);
    return out;
  }

  gateAdd(h: Tensor, gate: ChannelSlice | null, residual: Tensor): Tensor {
    const hv = this.core.own(h, "gateAdd"), rv = this.core.own(residual, "gateAdd");
    expectShape("gateAdd", "h", hv.shape, [null, null, null, null]);
    expectShape("gateAdd", "residual", rv.shape, hv.shape);
    const [n, c, hh, w] = hv.shape;
    let g = 0, k = 0, off = 0;
    if (gate) {
      const gv = this.core.own(gate.tensor, "gateAdd");
      k = checkSlice(gv, gate.offset, n, c, "gateAdd");
      g = gv.ptr;
      off = gate.offset;
    }
    const out = this.core.tensor(hv.shape, "nhwc");
    this.core.k.gateAdd(this.core.nhwc(hv), g, k, off, this.core.nhwc(rv), out.ptr, n, hh * w, c);
    return out;
  }

  add(a: Tensor, b: Tensor): Tensor {
    const av = this.core.own(a, "add"), bv = this.core.own(b, "add");
    expectShape("add", "b", bv.shape, av.shape);
    const layout = av.shape.length === 4 && (av.layout === "nhwc" || bv.layout === "nhwc") ? "nhwc" : "nchw";
    const ptr = (t: WasmTensor) => (layout === "nhwc" ? this.core.nhwc(t) : t.ptr);
    const out = this.core.tensor(av.shape, layout);
    this.core.k.add(ptr(av), ptr(bv), out.ptr, numel(av.shape));
    return out;
  }

  gather(table: Tensor, ids: readonly number[]): Tensor {
    const tv = this.core.own(table, "gather");
    expectShape("gather", "table", tv.shape, [null, null]);
    const [v, d] = tv.shape;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= v) throw new Error(`gather: index ${id} outside the table's ${v} rows`);
    }
    const out = this.core.tensor([ids.length, d], "nchw");
    const m = this.core.f32();
    ids.forEach((id, r) => m.copyWithin((out.ptr >> 2) + r * d, (tv.ptr >> 2) + id * d, (tv.ptr >> 2) + (id + 1) * d));
    return out;
  }

  pixelShuffle(x: Tensor, r: number): Tensor {
    const xv = this.core.own(x, "pixelShuffle");
    checkFactor("pixelShuffle", r);
    expectShape("pixelShuffle", "x", xv.shape, [null, null, null, null]);
    const [n, c, h, w] = xv.shape;
    if (c % (r * r) !== 0) throw new Error(`pixelShuffle: ${c} channels not divisible by ${r * r}`);
    const out = this.core.tensor([n, c / (r * r), h * r, w * r], "nhwc");
    this.core.k.pixelShuffle(this.core.nhwc(xv), out.ptr, n, c, h, w, r);
    return out;
  }

  pixelUnshuffle(x: Tensor, r: number): Tensor {
    const xv = this.core.own(x, "pixelUnshuffle");
    checkFactor("pixelUnshuffle", r);
    expectShape("pixelUnshuffle", "x", xv.shape, [null, null, null, null]);
    const [n, c, h, w] = xv.shape;
    if (h % r !== 0 || w % r !== 0) throw new Error(`pixelUnshuffle: ${h}x${w} not divisible by ${r}`);
    const out = this.core.tensor([n, c * r * r, h / r, w / r], "nhwc");
    this.core.k.pixelUnshuffle(this.core.nhwc(xv), out.ptr, n, c, h, w, r);
    return out;
  }

  concat(a: Tensor, b: Tensor): Tensor {
    const av = this.core.own(a, "concat"), bv = this.core.own(b, "concat");
    expectShape("concat", "a", av.shape, [null, null, null, null]);
    const [n, ca, h, w] = av.shape;
    expectShape("concat", "b", bv.shape, [n, null, h, w]);
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
