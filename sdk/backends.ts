// Creating a backend directly, with its options: the public face of src/backend (whose classes carry
// types, e.g. WebGPU's, that a user's TypeScript need not know).
import type { Backend } from "../src/backend/contract.ts";
import { createWasmBackend as createWasm } from "../src/backend/wasm/index.ts";
import { createWebGpuBackend as createWebGpu } from "../src/backend/webgpu/index.ts";

/** Options of `createWasmBackend`. */
export interface WasmBackendOptions {
  /**
   * Threads that share each convolution, the caller included (default: env DIC_THREADS, else min(cores, 4)
   * where workers and SharedArrayBuffer exist, else 1). Results are identical at any count.
   */
  threads?: number;
}

/** Options of `createWebGpuBackend`. */
export interface WebGpuBackendOptions {
  /** Store tensors in f16 where the adapter has "shader-f16" (an error where it has not). Default false. */
  f16?: boolean;
}

/**
 * The wasm backend (AssemblyScript WASM-SIMD kernels, worker threads over shared memory).
 *
 * @example
 * import { createWasmBackend, loadModel } from "dic-sdk";
 * const model = await loadModel("dic-s.safetensors", { backend: await createWasmBackend({ threads: 2 }) });
 */
export function createWasmBackend(options: WasmBackendOptions = {}): Promise<Backend> {
  return createWasm({ threads: options.threads });
}

/**
 * The webgpu backend (WGSL compute shaders) on the adapter navigator.gpu (or the webgpu npm package) gives.
 *
 * @example
 * import { createWebGpuBackend, generate, loadModel } from "dic-sdk";
 * const model = await loadModel("dic-s.safetensors", { backend: await createWebGpuBackend({ f16: true }) });
 */
export function createWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<Backend> {
  return createWebGpu({ f16: options.f16 });
}
