// The WebGPU runtime under the backend: finding an adapter (navigator.gpu, or the `webgpu` npm package
// in Node/Bun), pipelines compiled once per (kernel, entry, constants), pooled storage buffers, one
// command encoder collecting every dispatch until something needs the results, dispatch parameters in
// an arena written once per submission (no round trip), validation errors and device loss as exceptions.
import { quietGpuEnvironment } from "../../env.ts";
import { loadNpmGpu } from "./npm-gpu.ts";
import { WGSL } from "./kernels.ts";

/** GPUBufferUsage / GPUMapMode values (the globals do not exist where WebGPU is absent). */
export const USAGE = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, STORAGE: 128, QUERY_RESOLVE: 512 } as const;
const MAP_READ = 1;

/** Thrown when the GPU device is lost: the work since the last download is gone, the backend is unusable. */
export class WebGpuDeviceLostError extends Error {
  /** Lets callers that do not import this module recognise the error. */
  readonly deviceLost = true;
  constructor(message: string) {
    super(message);
    this.name = "WebGpuDeviceLostError";
  }
}

/** Where a GPU object comes from, found once. */
let gpuPromise: Promise<{ gpu: GPU | null; why: string; via: string }> | null = null;

/** navigator.gpu (Deno, browsers), else the `webgpu` npm package (Dawn) when installed, else null and why. */
export function findGpu(): Promise<{ gpu: GPU | null; why: string; via: string }> {
  gpuPromise ??= (async () => {
    quietGpuEnvironment();
    const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (nav?.gpu) return { gpu: nav.gpu, why: "", via: "navigator.gpu" };
    const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
    if (!proc?.versions?.node) return { gpu: null, why: "no navigator.gpu in this runtime", via: "" };
    // NOTE: Node and Bun only (see npm-gpu.ts).
    const r = await loadNpmGpu();
    if (r.gpu) return { gpu: r.gpu, why: "", via: "the webgpu npm package" };
    return { gpu: null, why: `no navigator.gpu, and ${r.why}`, via: "" };
  })();
  return gpuPromise;
}

/** What an adapter is: its name, and whether it is a fallback (software) adapter. */
export interface AdapterFacts {
  name: string;
  fallback: boolean;
  features: string[];
}

/** Reads an adapter's description and fallback flag (adapter.info, or the older adapter.isFallbackAdapter). */
export function adapterFacts(a: GPUAdapter): AdapterFacts {
  const info = (a as { info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).info;
  const fallback = Boolean(info?.isFallbackAdapter ?? (a as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  const name = [info?.description, info?.vendor && `vendor ${info.vendor}`, info?.architecture].filter(Boolean).join(", ") || "unnamed adapter";
  return { name, fallback, features: [...a.features] };
}

/** Requests an adapter; null with the reason when there is none. */
export async function requestAdapter(): Promise<{ adapter: GPUAdapter | null; why: string }> {
  const { gpu, why } = await findGpu();
  if (!gpu) return { adapter: null, why };
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
    return adapter ? { adapter, why: "" } : { adapter: null, why: "navigator.gpu.requestAdapter() found no adapter" };
  } catch (e) {
    return { adapter: null, why: `requestAdapter failed: ${(e as Error).message}` };
  }
}

/** Tile shape of the GEMM kernel, chosen from the device limits. */
export interface GemmTile {
  TM: number;
  TN: number;
  TK: number;
  WX: number;
  WY: number;
}

/** The largest tile of a short list whose workgroup memory and invocation count fit the device. */
export function chooseTile(limits: GPUSupportedLimits, elementBytes: number, fallback: boolean): GemmTile {
  const options: GemmTile[] = [
    { TM: 64, TN: 64, TK: 16, WX: 16, WY: 16 },
    { TM: 32, TN: 32, TK: 16, WX: 8, WY: 8 },
    { TM: 32, TN: 32, TK: 8, WX: 8, WY: 8 },
    { TM: 16, TN: 16, TK: 8, WX: 4, WY: 4 },
  ];
  // NOTE: a CPU (fallback) adapter such as lavapipe JIT-compiles a kernel at its first dispatch, in time that
  // grows steeply with the workgroup size (64x64x16 tiles: ~40 s on lavapipe, 32x32x8: ~4 s), and runs the
  // smaller tile as fast: it gets the small one.
  for (const t of fallback ? options.slice(2) : options) {
    const storage = (t.TM + t.TN) * t.TK * elementBytes;
    if (storage <= limits.maxComputeWorkgroupStorageSize && t.WX * t.WY <= limits.maxComputeInvocationsPerWorkgroup &&
      t.WX <= limits.maxComputeWorkgroupSizeX && t.WY <= limits.maxComputeWorkgroupSizeY) return t;
  }
  throw new Error(`webgpu: workgroup limits too small (storage ${limits.maxComputeWorkgroupStorageSize} bytes, ${limits.maxComputeInvocationsPerWorkgroup} invocations)`);
}

/** A buffer range bound to one binding. */
export interface Bind {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

/** One dispatch: kernel file, entry point, constants, parameter words, bindings (read-only ones first), grid. */
export interface Dispatch {
  kernel: string;
  entry?: string;
  consts?: Record<string, number>;
  /** Uses preop.wgsl. */
  preop?: boolean;
  params: ArrayLike<number>;
  /** Indices (into params) holding f32 values; the rest are u32. */
  floats?: readonly number[];
  reads: Bind[];
  writes: Bind[];
  groups: [number, number, number];
}

const ARENA_BYTES = 1 << 16;

interface ArenaChunk {
  buffer: GPUBuffer;
  words: Uint32Array;
  used: number; // bytes
}

interface PoolEntry {
  buffer: GPUBuffer;
  batch: number; // the submission in which it was freed
}

/** Per-kernel GPU time from timestamp queries, when profiling is on and the adapter has them. */
export interface KernelTiming {
  label: string;
  ms: number;
}

/** Device, pipelines, buffers and the pending command encoder of one backend instance. */
export class GpuRuntime {
  readonly limits: GPUSupportedLimits;
  readonly align: number;
  readonly tile: GemmTile;
  lost: GPUDeviceLostInfo | null = null;
  /** Largest storage binding used (the device's maxStorageBufferBindingSize; tests lower it to exercise splitting). */
  bindingLimit: number;
  private destroyed = false;
  private readonly pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  private readonly pool = new Map<number, PoolEntry[]>();
  private readonly staging: GPUBuffer[] = [];
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private arena: ArenaChunk | null = null;
  private readonly arenaUsed: ArenaChunk[] = [];
  private readonly arenaFree: ArenaChunk[] = [];
  private batch = 0;
  private batchOps: string[] = [];
  private errors: Promise<string | null>[] = [];
  private readonly placeholder: GPUBuffer;
  /** Bytes held in live tensors and the pool. */
  allocatedBytes = 0;
  // Profiling (timestamp-query): one pass per dispatch with begin/end timestamps.
  private profiling = false;
  private querySet: GPUQuerySet | null = null;
  private queryLabels: string[] = [];
  private timings: KernelTiming[] = [];
  private readonly maxQueries = 4096;

  constructor(readonly device: GPUDevice, readonly facts: AdapterFacts, readonly f16: boolean) {
    this.limits = device.limits;
    this.align = device.limits.minStorageBufferOffsetAlignment;
    this.bindingLimit = device.limits.maxStorageBufferBindingSize;
    this.tile = chooseTile(device.limits, f16 ? 2 : 4, facts.fallback);
    this.placeholder = device.createBuffer({ size: 16, usage: USAGE.STORAGE, label: "placeholder" });
    device.lost.then((info) => {
      if (!this.destroyed) this.lost = info;
    });
  }

  /** Bytes per stored element. */
  get elementBytes(): number {
    return this.f16 ? 2 : 4;
  }

  /** Throws the device-lost error if the device is gone. */
  checkAlive(op: string): void {
    if (this.destroyed) throw new Error(`${op}: this webgpu backend was destroyed`);
    if (this.lost) throw new WebGpuDeviceLostError(`${op}: WebGPU device lost (${this.lost.reason}): ${this.lost.message || "no message"}`);
  }

  /** A buffer for bind slots an op leaves empty. */
  get empty(): GPUBuffer {
    return this.placeholder;
  }

  /** A storage buffer of at least `bytes` (rounded to 16), from the pool when one is free. */
  acquire(bytes: number, forWrite = false): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const list = this.pool.get(size);
    if (list?.length) {
      // NOTE: a buffer written by queue.writeBuffer must not be one that commands still pending in the
      // encoder read: queue writes run before the pending command buffer. Take only flushed ones.
      const i = forWrite ? list.findIndex((e) => e.batch < this.batch) : list.length - 1;
      if (i >= 0) return list.splice(i, 1)[0].buffer;
    }
    if (size > this.limits.maxBufferSize) throw new Error(`webgpu: a buffer of ${size} bytes exceeds this device's maxBufferSize ${this.limits.maxBufferSize}`);
    this.allocatedBytes += size;
    return this.device.createBuffer({ size, usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST });
  }

  /** Returns a buffer to the pool (it may be reused by later dispatches at once: GPU work runs in order). */
  release(buffer: GPUBuffer): void {
    const list = this.pool.get(buffer.size) ?? [];
    list.push({ buffer, batch: this.batch });
    this.pool.set(buffer.size, list);
  }

  /** Writes host bytes into a fresh or flushed pooled buffer. */
  upload(bytes: Uint8Array): GPUBuffer {
    const buf = this.acquire(bytes.byteLength, true);
    const padded = bytes.byteLength % 4 ? (() => {
      const p = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      p.set(bytes);
      return p;
    })() : bytes;
    if (padded.byteLength) this.device.queue.writeBuffer(buf, 0, padded.buffer, padded.byteOffset, padded.byteLength);
    return buf;
  }

  private pipeline(d: Dispatch): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout } {
    const entry = d.entry ?? "main";
    const consts = Object.entries(d.consts ?? {}).sort(([a], [b]) => a.localeCompare(b));
    const key = `${d.kernel}:${entry}:${d.reads.length}:${d.writes.length}:${consts.map(([k, v]) => `${k}=${v}`).join(",")}`;
    let p = this.pipelines.get(key);
    if (p) return p;
    let body = WGSL[d.kernel];
    if (body === undefined) throw new Error(`webgpu: no kernel ${d.kernel}.wgsl`);
    let code = WGSL.common + "\n" + (d.preop ? WGSL.preop + "\n" : "") + body;
    for (const [k, v] of consts) {
      const re = new RegExp(`const ${k}: u32 = \\d+u;`);
      if (!re.test(code)) throw new Error(`webgpu: kernel ${d.kernel} has no constant ${k}`);
      code = code.replace(re, `const ${k}: u32 = ${v}u;`);
    }
    if (this.f16) code = "enable f16;\n" + code.replace("alias ST = f32;", "alias ST = f16;");
    const module = this.device.createShaderModule({ code, label: `${d.kernel}.wgsl` });
    const entries: GPUBindGroupLayoutEntry[] = [];
    const n = 1 + d.reads.length + d.writes.length;
    for (let i = 0; i < n; i++) {
      entries.push({ binding: i, visibility: 4 /* COMPUTE */, buffer: { type: i <= d.reads.length ? "read-only-storage" : "storage" } });
    }
    const layout = this.device.createBindGroupLayout({ entries });
    const pipeline = this.device.createComputePipeline({
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: entry },
      label: `${d.kernel}:${entry}`,
    });
    p = { pipeline, layout };
    this.pipelines.set(key, p);
    return p;
  }

  /** Reserves parameter words in the arena and returns their binding. */
  private params(d: Dispatch): Bind {
    const bytes = Math.max(16, d.params.length * 4);
    const span = Math.ceil(bytes / this.align) * this.align;
    if (!this.arena || this.arena.used + span > this.arena.words.byteLength) {
      if (this.arena) this.arenaUsed.push(this.arena);
      const size = Math.max(ARENA_BYTES, span);
      const i = this.arenaFree.findIndex((c) => c.words.byteLength >= size);
      this.arena = i >= 0 ? this.arenaFree.splice(i, 1)[0] : {
        buffer: this.device.createBuffer({ size, usage: USAGE.STORAGE | USAGE.COPY_DST, label: "params" }),
        words: new Uint32Array(size / 4),
        used: 0,
      };
      this.arena.used = 0;
    }
    const a = this.arena;
    const base = a.used / 4;
    const f = new Float32Array(a.words.buffer);
    const floats = new Set(d.floats ?? []);
    for (let i = 0; i < d.params.length; i++) {
      if (floats.has(i)) f[base + i] = d.params[i];
      else a.words[base + i] = d.params[i] >>> 0;
    }
    a.used += span;
    return { buffer: a.buffer, offset: base * 4, size: bytes };
  }

  /**
   * Encodes a group of dispatches of one op. Errors from creating pipelines and bind groups are caught
   * by an error scope and reported, with `label` (op and shapes), by the next `sync`.
   */
  run(label: string, dispatches: Dispatch[]): void {
    this.checkAlive(label);
    this.device.pushErrorScope("validation");
    this.device.pushErrorScope("out-of-memory");
    try {
      for (const d of dispatches) {
        for (const g of d.groups) {
          if (g > this.limits.maxComputeWorkgroupsPerDimension) {
            throw new Error(`${label}: ${g} workgroups in one dimension exceed this device's ${this.limits.maxComputeWorkgroupsPerDimension}`);
          }
        }
        for (const b of [...d.reads, ...d.writes]) {
          const size = b.size ?? b.buffer.size - (b.offset ?? 0);
          if (size > this.bindingLimit) {
            throw new Error(`${label}: a binding of ${size} bytes exceeds this device's maxStorageBufferBindingSize ${this.bindingLimit}`);
          }
        }
        const { pipeline, layout } = this.pipeline(d);
        const binds = [this.params(d), ...d.reads, ...d.writes];
        const group = this.device.createBindGroup({
          layout,
          entries: binds.map((b, i) => ({ binding: i, resource: { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } })),
        });
        const pass = this.beginPass(d.kernel === "gemm_conv" || d.kernel === "conv_rows" ? label : `${d.kernel}.${d.entry ?? "main"} (${label})`);
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
        if (this.profiling) this.endPass();
      }
    } finally {
      const oom = this.device.popErrorScope();
      const val = this.device.popErrorScope();
      this.errors.push(Promise.all([val, oom]).then(([v, o]) => {
        const e = v ?? o;
        return e ? `${label}: WebGPU ${v ? "validation" : "out-of-memory"} error: ${e.message}` : null;
      }));
    }
    this.batchOps.push(label);
  }

  private beginPass(label: string): GPUComputePassEncoder {
    this.encoder ??= this.device.createCommandEncoder({ label: "dic forward" });
    if (this.pass) return this.pass;
    if (this.profiling && this.querySet && this.queryLabels.length < this.maxQueries / 2) {
      const i = this.queryLabels.length;
      this.queryLabels.push(label);
      this.pass = this.encoder.beginComputePass({
        label,
        timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
    } else {
      this.pass = this.encoder.beginComputePass({ label: this.profiling ? label : "dic ops" });
    }
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Submits everything encoded so far (with its parameter arena written first). */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.arena) {
      this.arenaUsed.push(this.arena);
      this.arena = null;
    }
    for (const c of this.arenaUsed) this.device.queue.writeBuffer(c.buffer, 0, c.words.buffer, 0, c.used);
    const ops = this.batchOps;
    this.device.pushErrorScope("validation");
    this.device.queue.submit([this.encoder.finish()]);
    this.errors.push(this.device.popErrorScope().then((e) => e ? `${describeBatch(ops)}: WebGPU validation error at submit: ${e.message}` : null));
    this.arenaFree.push(...this.arenaUsed.splice(0));
    this.encoder = null;
    this.batchOps = [];
    this.batch++;
  }

  /** Flushes, then throws the first error any op reported since the last sync. */
  async sync(op: string): Promise<void> {
    this.flush();
    const pending = this.errors.splice(0);
    const msgs = (await Promise.all(pending)).filter((m): m is string => m !== null);
    this.checkAlive(op);
    if (msgs.length) throw new Error(msgs[0] + (msgs.length > 1 ? ` (and ${msgs.length - 1} more errors)` : ""));
  }

  /** Copies `bytes` of a buffer to the host (flushing pending work first). */
  async read(op: string, buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.checkAlive(op);
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const i = this.staging.findIndex((b) => b.size === size);
    const stage = i >= 0 ? this.staging.splice(i, 1)[0] : this.device.createBuffer({ size, usage: USAGE.MAP_READ | USAGE.COPY_DST, label: "download" });
    this.encoder ??= this.device.createCommandEncoder({ label: "dic forward" });
    this.endPass();
    this.encoder.copyBufferToBuffer(buffer, 0, stage, 0, Math.min(size, buffer.size));
    this.batchOps.push(`${op} copy`);
    await this.sync(op);
    try {
      await stage.mapAsync(MAP_READ, 0, size);
    } catch (e) {
      // NOTE: a device destroyed or reset under us rejects the map before device.lost settles; give it a moment.
      await Promise.race([this.device.lost.then((info) => (this.lost ??= this.destroyed ? null : info)), new Promise((r) => setTimeout(r, 2000))]);
      this.checkAlive(op);
      throw new Error(`${op}: mapping the result failed: ${(e as Error).message}`);
    }
    const out = stage.getMappedRange(0, size).slice(0, bytes);
    stage.unmap();
    if (this.staging.length < 8) this.staging.push(stage);
    else stage.destroy();
    return out;
  }

  /** Turns per-kernel timestamp queries on (where the device has "timestamp-query") or off. */
  setProfiling(on: boolean): boolean {
    if (on && !this.device.features.has("timestamp-query")) return false;
    this.flush();
    this.profiling = on;
    if (on && !this.querySet) this.querySet = this.device.createQuerySet({ type: "timestamp", count: this.maxQueries });
    this.queryLabels = [];
    this.timings = [];
    return on;
  }

  /** Resolves the timestamps recorded since profiling was turned on (or last collected). */
  async collectTimings(): Promise<KernelTiming[]> {
    if (!this.querySet || !this.queryLabels.length) return [];
    this.flush();
    const n = this.queryLabels.length * 2;
    const resolve = this.device.createBuffer({ size: n * 8, usage: USAGE.QUERY_RESOLVE | USAGE.COPY_SRC });
    const enc = this.device.createCommandEncoder();
    enc.resolveQuerySet(this.querySet, 0, n, resolve, 0);
    this.encoder = enc;
    const bytes = await this.read("timestamps", resolve, n * 8);
    resolve.destroy();
    const t = new BigUint64Array(bytes);
    const out = this.queryLabels.map((label, i) => ({ label, ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6 }));
    this.queryLabels = [];
    return out;
  }

  /** Releases the device (tests and benchmarks; the backend is unusable afterwards). */
  destroy(): void {
    this.destroyed = true;
    this.device.destroy();
  }
}

function describeBatch(ops: string[]): string {
  const shown = ops.slice(-4).join("; ");
  return ops.length > 4 ? `one of ${ops.length} ops submitted together (last: ${shown})` : `ops ${shown}`;
}

/** Batch chunks [first, count] such that every per-sample binding stays within `limit` bytes and aligned offsets. */
export function batchChunks(n: number, perSample: number[], limit: number, align: number): [number, number][] {
  const biggest = Math.max(...perSample);
  if (biggest * n <= limit) return [[0, n]];
  let step = 1;
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  for (const p of perSample) {
    if (p === 0) continue;
    const need = align / gcd(p % align || align, align);
    step = (step * need) / gcd(step, need);
  }
  const fit = Math.floor(limit / biggest);
  const count = Math.floor(fit / step) * step;
  if (count < 1) throw new Error(`one sample of ${biggest} bytes does not fit maxStorageBufferBindingSize ${limit} in aligned chunks`);
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += count) out.push([s, Math.min(count, n - s)]);
  return out;
}
