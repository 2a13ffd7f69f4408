// The `webgpu` backend: WGSL kernels (kernels/*.wgsl, embedded by kernels/embed.mjs) on a GPUDevice. Conv3x3,
// conv1x1 and linear run as one tiled implicit-GEMM kernel with the norm pre-op fused into the input-tile
// load; NCHW storage; every op is encoded into one pending command encoder and nothing is read back
// until `download`. Parity with the js reference: tests/ops.test.ts, tests/webgpu.test.ts.
import type { Backend, ChannelSlice, NormPreOp, Tensor, TensorRole } from "../contract.ts";
import { checked, OP_NAMES, type OpName } from "../contract.ts";
import type { WebGpuReport } from "../../capabilities.ts";
import type { HostTensor } from "../../tensor.ts";
import { numel, shapeStr } from "../../tensor.ts";
import { decodeHalf, encodeHalf } from "./f16.ts";
import { adapterFacts, batchChunks, type Bind, type Dispatch, GpuRuntime, type KernelTiming, requestAdapter } from "./runtime.ts";

export { WebGpuDeviceLostError, type KernelTiming } from "./runtime.ts";

/** Options of createWebGpuBackend. */
export interface WebGpuOptions {
  /** Store tensors and compute element-wise ops in f16 (needs the adapter feature "shader-f16"). Default false. */
  f16?: boolean;
  /** Accept a fallback (software) adapter. Default true; `auto` selection passes false. */
  allowFallback?: boolean;
  /**
   * conv3x3 kernel: "gemm" (tiled implicit GEMM in workgroup memory, for GPUs), "rows" (register-blocked
   * rows without workgroup memory, for CPU adapters), or "auto" (default: rows on a fallback adapter).
   */
  conv3x3?: "auto" | "gemm" | "rows";
}

/** Says whether a WebGPU adapter exists here: null when one does, else why not. Never throws. */
export async function probeWebGpu(): Promise<string | null> {
  try {
    const { adapter, why } = await requestAdapter();
    return adapter ? null : why;
  } catch (e) {
    return `WebGPU probe failed: ${(e as Error).message}`;
  }
}

/** Adapter limits that matter for compute (bytes or counts), as doctor reports them. */
const REPORTED_LIMITS = [
  "maxBufferSize", "maxStorageBufferBindingSize", "maxStorageBuffersPerShaderStage", "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxComputeWorkgroupsPerDimension",
] as const;

/**
 * The adapter this backend would run on, as `doctor()` reports it: the same lookup as the backend's own
 * (navigator.gpu, else the `webgpu` npm package under Node and Bun), so the report and the backend list
 * always agree. No device is created. Never throws.
 */
export async function webGpuReport(): Promise<WebGpuReport> {
  let found;
  try {
    found = await requestAdapter();
  } catch (e) {
    return { available: false, why: `WebGPU probe failed: ${(e as Error).message}` };
  }
  const adapter = found.adapter;
  if (!adapter) return { available: false, why: found.why };
  const info = ((adapter as unknown as { info?: Record<string, unknown> }).info ?? {});
  const str = (k: string) => (typeof info[k] === "string" ? info[k] as string : "");
  const limits: Record<string, number> = {};
  const all = adapter.limits as unknown as Record<string, number>;
  for (const k of REPORTED_LIMITS) if (typeof all[k] === "number") limits[k] = all[k];
  return {
    available: true,
    adapter: { vendor: str("vendor"), architecture: str("architecture"), device: str("device"), description: str("description"), isFallbackAdapter: adapterFacts(adapter).fallback },
    limits,
    features: [...adapter.features].sort(),
  };
}

/** The adapter auto-selection would get, or null: its name and whether it is a fallback (software) adapter. */
export async function webGpuAdapterFacts(): Promise<{ name: string; fallback: boolean; f16: boolean } | null> {
  const { adapter } = await requestAdapter();
  if (!adapter) return null;
  const f = adapterFacts(adapter);
  return { name: f.name, fallback: f.fallback, f16: f.features.includes("shader-f16") };
}

/** Creates the webgpu backend on a fresh device. Throws when no adapter fits the options. */
export async function createWebGpuBackend(options: WebGpuOptions = {}): Promise<WebGpuBackend> {
  const { adapter, why } = await requestAdapter();
  if (!adapter) throw new Error(`webgpu backend: ${why}`);
  const facts = adapterFacts(adapter);
  if (facts.fallback && options.allowFallback === false) throw new Error(`webgpu backend: only a fallback (software) adapter is present (${facts.name})`);
  const f16 = options.f16 ?? false;
  if (f16 && !facts.features.includes("shader-f16")) throw new Error(`webgpu backend: f16 needs the adapter feature "shader-f16", which ${facts.name} lacks`);
  const want = ["maxStorageBufferBindingSize", "maxBufferSize", "maxComputeWorkgroupStorageSize", "maxComputeInvocationsPerWorkgroup",
    "maxComputeWorkgroupSizeX", "maxComputeWorkgroupSizeY", "maxStorageBuffersPerShaderStage"] as const;
  const requiredLimits: Record<string, number> = {};
  for (const k of want) requiredLimits[k] = adapter.limits[k];
  const requiredFeatures: GPUFeatureName[] = [];
  if (f16) requiredFeatures.push("shader-f16");
  if (facts.features.includes("timestamp-query")) requiredFeatures.push("timestamp-query");
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: "dic-sdk" });
  const path = options.conv3x3 ?? "auto";
  return new WebGpuBackend(new GpuRuntime(device, facts, f16), path === "auto" ? (facts.fallback ? "rows" : "gemm") : path);
}

class GpuTensor implements Tensor {
  freed = false;
  /** The weight repacked k-major for conv_rows.wgsl, made on first use. */
  packed: GPUBuffer | null = null;
  constructor(readonly shape: readonly number[], readonly buffer: GPUBuffer, readonly rt: GpuRuntime) {}
}

/** Prepared pre-op: what the consuming kernel needs (its Coef buffer, constants and PreArgs words). */
interface PreparedPre {
  coef: GPUBuffer;
  consts: { PRE: number; ACT: number };
  statsOff: number;
  groups: number;
  cpg: number;
}

/** The ops this backend computes (its supports declaration; the registry reads it without creating one). */
export const WEBGPU_OPS: readonly OpName[] = OP_NAMES;

/** The WebGPU backend (see the file comment). */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  /** A lost GPU device: generate() continues on wasm. */
  readonly deviceLossFallback = "wasm";
  readonly description: string;

  constructor(readonly rt: GpuRuntime, readonly conv3x3Path: "gemm" | "rows" = "gemm") {
    const t = rt.tile;
    const kind = rt.facts.fallback ? "fallback (software) adapter" : "hardware adapter";
    const conv = conv3x3Path === "gemm" ? `implicit-GEMM conv3x3 ${t.TM}x${t.TN}x${t.TK} tiles` : "row-blocked conv3x3 (CPU adapter)";
    this.description = `webgpu: WGSL kernels on "${rt.facts.name}" (${kind}), ${rt.f16 ? "f16 storage" : "f32"}, ` +
      `${conv}, GEMM conv1x1/linear, fused norm pre-op, one command encoder per forward`;
    checked(this);
  }

  /** Whether tensors are stored in f16. */
  get f16(): boolean {
    return this.rt.f16;
  }

  /** Whether the adapter is a fallback (software) one. */
  get fallbackAdapter(): boolean {
    return this.rt.facts.fallback;
  }

  /** Per-kernel GPU timings with timestamp queries (false where the device lacks "timestamp-query"). */
  profile(on: boolean): boolean {
    return this.rt.setProfiling(on);
  }

  /** The kernel timings recorded since `profile(true)` (or the last call). */
  timings(): Promise<KernelTiming[]> {
    return this.rt.collectTimings();
  }

  /** Waits for all submitted work and reports any error (downloads do this too). */
  sync(): Promise<void> {
    return this.rt.sync("sync");
  }

  /** Releases the device; the backend cannot be used afterwards. */
  destroy(): void {
    this.rt.destroy();
  }

  /** The contract's name for `destroy`. */
  close(): void {
    this.destroy();
  }

  private own(t: Tensor, op: string): GpuTensor {
    if (!(t instanceof GpuTensor) || t.rt !== this.rt) throw new Error(`${op}: tensor does not belong to this webgpu backend`);
    if (t.freed) throw new Error(`${op}: tensor ${shapeStr(t.shape)} was freed`);
    return t;
  }

  private make(shape: readonly number[]): GpuTensor {
    return new GpuTensor([...shape], this.rt.acquire(numel(shape) * this.rt.elementBytes), this.rt);
  }

  /** Whether this backend computes `op` (its supports declaration). */
  supports(op: OpName): boolean {
    return WEBGPU_OPS.includes(op);
  }

  upload(t: HostTensor, _role?: TensorRole): Tensor {
    this.rt.checkAlive("upload");
    const src = this.rt.f16 ? encodeHalf(t.data) : t.data;
    return new GpuTensor([...t.shape], this.rt.upload(new Uint8Array(src.buffer, src.byteOffset, src.byteLength)), this.rt);
  }

  async download(t: Tensor): Promise<HostTensor> {
    const v = this.own(t, "download");
    const n = numel(v.shape);
    const bytes = await this.rt.read(`download ${shapeStr(v.shape)}`, v.buffer, n * this.rt.elementBytes);
    const data = this.rt.f16 ? decodeHalf(new Uint16Array(bytes, 0, n)) : new Float32Array(bytes, 0, n);
    return { shape: [...v.shape], data };
  }

  free(t: Tensor): void {
    const v = this.own(t, "free");
    v.freed = true;
    this.rt.release(v.buffer);
    if (v.packed) this.rt.release(v.packed);
  }

  // ----- helpers -------------------------------------------------------------------------------------------

  /** Bind the [first, first + count) samples of a tensor whose samples are `per` elements. */
  private part(t: GpuTensor, first: number, count: number, per: number): Bind {
    const e = this.rt.elementBytes;
    return { buffer: t.buffer, offset: first * per * e, size: Math.max(4, Math.ceil((count * per * e) / 4) * 4) };
  }

  private chunks(n: number, perSample: number[], maxCount = Infinity): [number, number][] {
    const e = this.rt.elementBytes;
    const out = batchChunks(n, perSample.map((p) => p * e), this.rt.bindingLimit, this.rt.align);
    if (out.length === 1 && n <= maxCount) return out;
    const split: [number, number][] = [];
    for (const [s, c] of out) for (let i = 0; i < c; i += Math.max(1, maxCount)) split.push([s + i, Math.min(Math.max(1, maxCount), c - i)]);
    return split;
  }

  private grid(count: number): [number, number, number] {
    const groups = Math.max(1, Math.ceil(count / 256));
    const x = Math.min(groups, this.rt.limits.maxComputeWorkgroupsPerDimension);
    return [x, Math.ceil(groups / x), 1];
  }

  private slice(s: ChannelSlice, op: string): { t: GpuTensor; k: number; offset: number } {
    const t = this.own(s.tensor, op);
    return { t, k: t.shape[1], offset: s.offset };
  }

  /** Encodes a (validated) pre-op's coefficient and statistics kernels; returns what the consumer binds. */
  private preparePre(pre: NormPreOp, x: GpuTensor, op: string, dispatches: Dispatch[]): PreparedPre {
    const [n, c, h, w] = x.shape;
    const hw = h * w;
    const wt = pre.weight ? this.own(pre.weight, op) : null;
    const bt = pre.bias ? this.own(pre.bias, op) : null;
    const sc = pre.modulate ? this.slice(pre.modulate.scale, op) : null;
    const sh = pre.modulate ? this.slice(pre.modulate.shift, op) : null;
    const groups = pre.norm === "group" ? pre.groups! : 0;
    const stats = pre.norm === "group" ? n * groups : n * hw;
    const statsOff = 2 * n * c;
    const coef = this.rt.acquire((statsOff + 2 * stats) * 4);
    const empty = { buffer: this.rt.empty };
    dispatches.push({
      kernel: "norm_coef",
      params: [n, c, (wt ? 1 : 0) | (sc ? 2 : 0), sc?.k ?? 0, sc?.offset ?? 0, sh?.k ?? 0, sh?.offset ?? 0],
      reads: [wt ? { buffer: wt.buffer } : empty, bt ? { buffer: bt.buffer } : empty, sc ? { buffer: sc.t.buffer } : empty, sh ? { buffer: sh.t.buffer } : empty],
      writes: [{ buffer: coef }],
      groups: this.grid(n * c),
    });
    const per = c * hw;
    for (const [n0, nc] of this.chunks(n, [per], pre.norm === "group" ? Math.floor(65535 * 65535 / groups) : Infinity)) {
      const jobs = pre.norm === "group" ? nc * groups : nc * hw;
      const gx = Math.min(jobs, this.rt.limits.maxComputeWorkgroupsPerDimension);
      dispatches.push({
        kernel: "norm_stats",
        entry: pre.norm === "group" ? "group_stats" : "layer_stats",
        // NOTE: barriers are costly on CPU adapters: a narrower reduction there.
        consts: pre.norm === "group" ? { WG: this.rt.facts.fallback ? 32 : 256 } : undefined,
        params: [nc, n0, c, hw, groups, statsOff, pre.eps],
        floats: [6],
        reads: [this.part(x, n0, nc, per)],
        writes: [{ buffer: coef }],
        groups: pre.norm === "group" ? [gx, Math.ceil(jobs / gx), 1] : this.grid(jobs),
      });
    }
    return {
      coef,
      consts: { PRE: pre.norm === "group" ? 1 : 2, ACT: pre.act === "gelu" ? 1 : pre.act === "silu" ? 2 : 0 },
      statsOff,
      groups: Math.max(groups, 1),
      cpg: groups ? c / groups : 1,
    };
  }

  /** The implicit GEMM: x [N, Ci, H, W], weight [Co, Ci * taps] (flattened), optional pre-op or input act. */
  private gemm(op: string, x: GpuTensor, w: GpuTensor, bias: GpuTensor | null, taps: 1 | 9, pre: NormPreOp | undefined, inputAct: "silu" | "none", outShape: number[]): GpuTensor {
    const [n, ci, h, wd] = x.shape.length === 4 ? x.shape : [x.shape[0], x.shape[1], 1, 1];
    const co = w.shape[0];
    const hw = h * wd;
    const label = `${op} ${shapeStr(x.shape)} x ${shapeStr(w.shape)}${pre ? ` with ${pre.norm} norm pre-op` : ""}`;
    const dispatches: Dispatch[] = [];
    const prep = pre ? this.preparePre(pre, x, op, dispatches) : null;
    const out = this.make(outShape);
    const t = this.rt.tile;
    const consts = {
      TAPS: taps, HAS_BIAS: bias ? 1 : 0, TM: t.TM, TN: t.TN, TK: t.TK, WX: t.WX, WY: t.WY,
      PRE: prep?.consts.PRE ?? 0, ACT: prep ? prep.consts.ACT : inputAct === "silu" ? 2 : 0,
    };
    let packedNow: GPUBuffer | null = null;
    if (taps === 9 && this.conv3x3Path === "rows") {
      const cop = Math.ceil(co / 8) * 8;
      if (!w.packed) {
        const kdim = ci * 9;
        w.packed = this.rt.acquire(kdim * cop * this.rt.elementBytes);
        packedNow = w.packed;
        dispatches.unshift({ kernel: "pack", entry: "pack_kmajor", params: [kdim * cop, co, kdim, cop], reads: [{ buffer: w.buffer }], writes: [{ buffer: w.packed }], groups: this.grid(kdim * cop) });
      }
      const wq = Math.ceil(wd / 4);
      for (const [n0, nc] of this.chunks(n, [ci * hw, co * hw], Math.floor((65535 * 64) / Math.max(1, h * wq)))) {
        if (nc * hw === 0 || co === 0) continue;
        dispatches.push({
          kernel: "conv_rows", preop: true, consts: { HAS_BIAS: consts.HAS_BIAS, PRE: consts.PRE, ACT: consts.ACT },
          params: [nc, n0, ci, h, wd, co, prep?.statsOff ?? 0, prep?.groups ?? 1, prep?.cpg ?? 1, cop],
          reads: [this.part(x, n0, nc, ci * hw), { buffer: w.packed }, { buffer: bias?.buffer ?? this.rt.empty }, { buffer: prep?.coef ?? this.rt.empty }],
          writes: [this.part(out, n0, nc, co * hw)],
          groups: [Math.ceil((nc * h * wq) / 64), cop / 8, 1],
        });
      }
    }
    const maxCount = Math.floor((65535 * t.TN) / Math.max(1, hw));
    for (const [n0, nc] of taps === 9 && this.conv3x3Path === "rows" ? [] : this.chunks(n, [ci * hw, co * hw], maxCount)) {
      if (nc * hw === 0 || co === 0) continue;
      dispatches.push({
        kernel: "gemm_conv", preop: true, consts,
        params: [nc, n0, ci, h, wd, co, prep?.statsOff ?? 0, prep?.groups ?? 1, prep?.cpg ?? 1],
        reads: [this.part(x, n0, nc, ci * hw), { buffer: w.buffer }, { buffer: bias?.buffer ?? this.rt.empty }, { buffer: prep?.coef ?? this.rt.empty }],
        writes: [this.part(out, n0, nc, co * hw)],
        groups: [Math.ceil((nc * hw) / t.TN), Math.ceil(co / t.TM), 1],
      });
    }
    try {
      this.rt.run(label, dispatches);
    } catch (e) {
      this.rt.release(out.buffer);
      if (packedNow) {
        this.rt.release(packedNow); // never filled: pack again next time
        w.packed = null;
      }
      throw e;
    } finally {
      if (prep) this.rt.release(prep.coef);
    }
    return out;
  }

  /** Encodes an element-wise / layout kernel over `count` outputs, chunked by batch when bindings are too big. */
  private simple(label: string, kernel: string, entry: string, out: GpuTensor, inputs: { t: GpuTensor; per: number }[], perOut: number, params: (n0: number, nc: number) => number[], extra: Bind[] = []): GpuTensor {
    const n = out.shape[0] ?? 1;
    const dispatches: Dispatch[] = [];
    for (const [n0, nc] of this.chunks(n, [...inputs.map((i) => i.per), perOut])) {
      const count = nc * perOut;
      if (count === 0) continue;
      dispatches.push({
        kernel, entry, params: params(n0, nc),
        reads: [...inputs.map((i) => this.part(i.t, n0, nc, i.per)), ...extra],
        writes: [this.part(out, n0, nc, perOut)],
        groups: this.grid(count),
      });
    }
    try {
      this.rt.run(label, dispatches);
    } catch (e) {
      this.rt.release(out.buffer);
      throw e;
    }
    return out;
  }

  // ----- the contract ----------------------------------------------------------------------------------------

  conv3x3(x: Tensor, w: Tensor, bias: Tensor | null, pre?: NormPreOp): Tensor {
    const xv = this.own(x, "conv3x3"), wv = this.own(w, "conv3x3");
    const [n, ci, h, wd] = xv.shape;
    const co = wv.shape[0];
    const bv = bias ? this.own(bias, "conv3x3") : null;
    return this.gemm("conv3x3", xv, wv, bv, 9, pre, "none", [n, co, h, wd]);
  }

  conv1x1(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
    const xv = this.own(x, "conv1x1"), wv = this.own(w, "conv1x1");
    const [n, ci, h, wd] = xv.shape;
    const co = wv.shape[0];
    const bv = bias ? this.own(bias, "conv1x1") : null;
    return this.gemm("conv1x1", xv, wv, bv, 1, undefined, "none", [n, co, h, wd]);
  }

  linear(x: Tensor, w: Tensor, bias: Tensor | null, inputAct: "silu" | "none" = "none"): Tensor {
    const xv = this.own(x, "linear"), wv = this.own(w, "linear");
    const [n, k] = xv.shape;
    const m = wv.shape[0];
    const bv = bias ? this.own(bias, "linear") : null;
    return this.gemm("linear", xv, wv, bv, 1, undefined, inputAct, [n, m]);
  }

  normalize(x: Tensor, pre: NormPreOp): Tensor {
    const xv = this.own(x, "normalize");
    const [n, c, h, w] = xv.shape;
    const hw = h * w;
    const dispatches: Dispatch[] = [];
    const prep = this.preparePre(pre, xv, "normalize", dispatches);
    const out = this.make(xv.shape);
    for (const [n0, nc] of this.chunks(n, [c * hw])) {
      if (nc * c * hw === 0) continue;
      dispatches.push({
        kernel: "normalize", preop: true, consts: prep.consts,
        params: [nc, n0, c, hw, prep.statsOff, prep.groups, prep.cpg],
        reads: [this.part(xv, n0, nc, c * hw), { buffer: prep.coef }],
        writes: [this.part(out, n0, nc, c * hw)],
        groups: this.grid(nc * c * hw),
      });
    }
    try {
      this.rt.run(`normalize ${shapeStr(xv.shape)} (${pre.norm} norm)`, dispatches);
    } catch (e) {
      this.rt.release(out.buffer);
      throw e;
    } finally {
      this.rt.release(prep.coef);
    }
    return out;
  }

  gateAdd(h: Tensor, gate: ChannelSlice | null, residual: Tensor): Tensor {
    const hv = this.own(h, "gateAdd"), rv = this.own(residual, "gateAdd");
    const [n, c, hh, w] = hv.shape;
    const per = c * hh * w;
    if (!gate) return this.addTensors("gateAdd", hv, rv);
    const g = this.slice(gate, "gateAdd");
    return this.simple(`gateAdd ${shapeStr(hv.shape)}`, "eltwise", "gate_add", this.make(hv.shape), [{ t: hv, per }, { t: rv, per }], per,
      (n0, nc) => [nc * per, c, hh * w, g.k, g.offset, n0], [{ buffer: g.t.buffer }]);
  }

  add(a: Tensor, b: Tensor): Tensor {
    const av = this.own(a, "add"), bv = this.own(b, "add");
    return this.addTensors("add", av, bv);
  }

  private addTensors(op: string, av: GpuTensor, bv: GpuTensor): GpuTensor {
    const total = numel(av.shape);
    const n = av.shape.length ? av.shape[0] : 1;
    const per = n ? total / n : 0;
    const out = this.make(av.shape);
    if (!av.shape.length) {
      return this.simple(`${op} ${shapeStr(av.shape)}`, "eltwise", "add", out, [{ t: av, per: 1 }, { t: bv, per: 1 }], 1, () => [1], [{ buffer: this.rt.empty }]);
    }
    return this.simple(`${op} ${shapeStr(av.shape)}`, "eltwise", "add", out, [{ t: av, per }, { t: bv, per }], per, (_n0, nc) => [nc * per], [{ buffer: this.rt.empty }]);
  }

  gather(table: Tensor, ids: readonly number[]): Tensor {
    const tv = this.own(table, "gather");
    const d = tv.shape[1];
    const out = this.make([ids.length, d]);
    if (ids.length * d === 0) return out;
    const e = this.rt.elementBytes;
    try {
      this.rt.run(`gather ${ids.length} rows of ${shapeStr(tv.shape)}`, [{
        kernel: "layout", entry: "gather", params: [ids.length * d, d, ...ids],
        reads: [{ buffer: tv.buffer }, { buffer: this.rt.empty }],
        writes: [{ buffer: out.buffer, size: Math.max(4, Math.ceil((ids.length * d * e) / 4) * 4) }],
        groups: this.grid(ids.length * d),
      }]);
    } catch (err) {
      this.rt.release(out.buffer);
      throw err;
    }
    return out;
  }

  pixelShuffle(x: Tensor, r: number): Tensor {
    const xv = this.own(x, "pixelShuffle");
    const [n, c, h, w] = xv.shape;
    const per = c * h * w;
    return this.simple(`pixelShuffle ${shapeStr(xv.shape)} r=${r}`, "layout", "pixel_shuffle", this.make([n, c / (r * r), h * r, w * r]), [{ t: xv, per }], per,
      (_n0, nc) => [nc * per, c / (r * r), h * r, w * r, r], [{ buffer: this.rt.empty }]);
  }

  pixelUnshuffle(x: Tensor, r: number): Tensor {
    const xv = this.own(x, "pixelUnshuffle");
    const [n, c, h, w] = xv.shape;
    const per = c * h * w;
    return this.simple(`pixelUnshuffle ${shapeStr(xv.shape)} r=${r}`, "layout", "pixel_unshuffle", this.make([n, c * r * r, h / r, w / r]), [{ t: xv, per }], per,
      (_n0, nc) => [nc * per, c * r * r, h / r, w / r, r], [{ buffer: this.rt.empty }]);
  }

  concat(a: Tensor, b: Tensor): Tensor {
    const av = this.own(a, "concat"), bv = this.own(b, "concat");
    const [n, ca, h, w] = av.shape;
    const cb = bv.shape[1];
    const hw = h * w;
    return this.simple(`concat ${shapeStr(av.shape)} + ${shapeStr(bv.shape)}`, "layout", "concat", this.make([n, ca + cb, h, w]),
      [{ t: av, per: ca * hw }, { t: bv, per: cb * hw }], (ca + cb) * hw, (_n0, nc) => [nc * (ca + cb) * hw, ca, cb, hw]);
  }

  /** Nearest-neighbour enlargement by an integer factor: [N, C, H, W] -> [N, C, H*r, W*r] (F.interpolate "nearest"). */
  upsampleNearest(x: Tensor, r: number): Tensor {
    const xv = this.own(x, "upsampleNearest");
    const [n, c, h, w] = xv.shape;
    const per = c * h * w * r * r;
    return this.simple(`upsampleNearest ${shapeStr(xv.shape)} r=${r}`, "layout", "upsample_nearest", this.make([n, c, h * r, w * r]), [{ t: xv, per: c * h * w }], per,
      (_n0, nc) => [nc * per, c, h * r, w * r, r], [{ buffer: this.rt.empty }]);
  }

  /**
   * Single-head attention over the H*W positions as tokens of dimension C: each [N, C, H, W];
   * out[n, :, p] = sum_j softmax_j(q[n, :, p] . k[n, :, j] / sqrt(C)) v[n, :, j].
   */
  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const qv = this.own(q, "attention"), kv = this.own(k, "attention"), vv = this.own(v, "attention");
    const [n, c, h, w] = qv.shape;
    const t = h * w;
    const out = this.make(qv.shape);
    if (n * c * t === 0) return out;
    const scores = this.rt.acquire(n * t * t * 4);
    const params = [n, c, t, 1 / Math.sqrt(c)];
    try {
      this.rt.run(`attention ${shapeStr(qv.shape)}`, [
        { kernel: "attention", entry: "scores", params, floats: [3], reads: [{ buffer: qv.buffer }, { buffer: kv.buffer }], writes: [{ buffer: scores }], groups: this.grid(n * t * t) },
        { kernel: "attention", entry: "softmax", params, floats: [3], reads: [{ buffer: qv.buffer }, { buffer: kv.buffer }], writes: [{ buffer: scores }],
          groups: [Math.min(n * t, 65535), Math.ceil((n * t) / 65535), 1] },
        { kernel: "attention_mix", params, floats: [3], reads: [{ buffer: scores }, { buffer: vv.buffer }], writes: [{ buffer: out.buffer }], groups: this.grid(n * c * t) },
      ]);
    } catch (e) {
      this.rt.release(out.buffer);
      throw e;
    } finally {
      this.rt.release(scores);
    }
    return out;
  }
}
