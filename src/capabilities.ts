// What the engine can do, probed without running anything heavy: WebAssembly SIMD / relaxed SIMD / threads
// (by validating tiny hand-assembled modules, WebAssembly binary spec section 5), SharedArrayBuffer and
// cross-origin isolation and core count. Used by `doctor()` (the WebGPU adapter it reports comes from the webgpu
// backend itself, webGpuReport, so the two always agree).

/** Facts about the engine that decide which backends and options can run. */
export interface Capabilities {
  webAssembly: boolean;
  /**
   * null when WebAssembly compiles and instantiates from bytes here; else the runtime's refusal (Cloudflare
   * Workers and Vercel Edge only take modules the platform compiled).
   */
  wasmFromBytesRefused: string | null;
  /** 128-bit SIMD (v128). */
  simd: boolean;
  /** Relaxed SIMD (f32x4.relaxed_madd and friends). */
  relaxedSimd: boolean;
  /** Shared WebAssembly memory (the threads proposal) can be declared. */
  wasmThreads: boolean;
  sharedArrayBuffer: boolean;
  /** Browsers: whether the page is cross-origin isolated (needed for SharedArrayBuffer); null elsewhere. */
  crossOriginIsolated: boolean | null;
  /** Logical cores the runtime reports (navigator.hardwareConcurrency), null when it does not say. */
  hardwareConcurrency: number | null;
}

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
// type section: one type () -> v128; function section: one function of that type
const V128_FN = [0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00];
const SPLAT0 = [0x41, 0x00, 0xfd, 0x0f]; // i32.const 0; i8x16.splat

function code(body: number[]): number[] {
  const fn = [0x00, ...body, 0x0b]; // no locals, body, end
  const section = [0x01, fn.length, ...fn];
  return [0x0a, section.length, ...section];
}

/** (func (result v128) (i8x16.splat (i32.const 0))) */
const SIMD_MODULE = [...HEADER, ...V128_FN, ...code(SPLAT0)];
/** (func (result v128) (f32x4.relaxed_madd a b c)), opcode 0xfd 0x105 */
const RELAXED_MODULE = [...HEADER, ...V128_FN, ...code([...SPLAT0, ...SPLAT0, ...SPLAT0, 0xfd, 0x85, 0x02])];
/** (memory 1 1 shared) */
const SHARED_MEMORY_MODULE = [...HEADER, 0x05, 0x04, 0x01, 0x03, 0x01, 0x01];

function validates(bytes: number[]): boolean {
  try {
    return typeof WebAssembly === "object" && WebAssembly.validate(new Uint8Array(bytes));
  } catch {
    return false;
  }
}

let bytesRefused: string | null | undefined;

/**
 * null when this runtime compiles and instantiates WebAssembly from bytes, else its reason (Cloudflare
 * Workers: "Wasm code generation disallowed by embedder"). Tries a real compile and instantiation of the
 * empty module, not only `validate`, which such platforms allow. Cached: the answer holds for the isolate.
 */
export function compileFromBytesRefused(): string | null {
  if (bytesRefused === undefined) {
    try {
      if (typeof WebAssembly !== "object") throw new Error("no WebAssembly in this runtime");
      new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(HEADER)), {});
      bytesRefused = null;
    } catch (e) {
      bytesRefused = (e as Error)?.message || String(e);
    }
  }
  return bytesRefused;
}

/** Probes the engine (cheap: a few module validations and one compile of the empty module). */
export function probeCapabilities(): Capabilities {
  const g = globalThis as { crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number }; document?: unknown };
  return {
    webAssembly: typeof WebAssembly === "object" && typeof WebAssembly.validate === "function",
    wasmFromBytesRefused: compileFromBytesRefused(),
    simd: validates(SIMD_MODULE),
    relaxedSimd: validates(RELAXED_MODULE),
    wasmThreads: validates(SHARED_MEMORY_MODULE),
    sharedArrayBuffer: typeof SharedArrayBuffer === "function",
    crossOriginIsolated: typeof g.crossOriginIsolated === "boolean" ? g.crossOriginIsolated : null,
    hardwareConcurrency: typeof g.navigator?.hardwareConcurrency === "number" ? g.navigator.hardwareConcurrency : null,
  };
}

/** The WebGPU adapter the webgpu backend would run on (navigator.gpu, or the `webgpu` npm package under Node and Bun), or why there is none. */
export interface WebGpuReport {
  available: boolean;
  /** Why not, when unavailable. */
  why?: string;
  /** GPUAdapterInfo fields (vendor, architecture, device, description) and whether it is a software/fallback adapter. */
  adapter?: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter: boolean | null };
  /** Adapter limits that matter for compute (bytes or counts). */
  limits?: Record<string, number>;
  features?: string[];
}

