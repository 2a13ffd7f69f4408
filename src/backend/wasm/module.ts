// Loads the kernels of wasm/assembly and picks the build: relaxed SIMD where the engine validates it
// (Deno, Bun, Chromium, workerd; Node 20 only with --experimental-wasm-relaxed-simd), else plain SIMD.
// Two ways in: the builds embedded as base64 (wasm/build.mjs; no file access, no fetch and no dynamic
// import, so the same path works in Node, Deno, Bun and browsers), or precompiled `WebAssembly.Module`s
// handed over by the platform where compiling from bytes is forbidden (Cloudflare Workers / workerd,
// Vercel Edge): `setWasmModules`, the `modules` option of createWasmBackend, or the `dic-sdk/workerd`
// entry, which imports the shipped .wasm files as modules.
import { compileFromBytesRefused } from "../../capabilities.ts";
import { WASM_RELAXED_SIMD, WASM_RELAXED_SIMD_THREADS, WASM_SIMD, WASM_SIMD_THREADS } from "./binary.ts";
import type { Bytes } from "../../bytes.ts";

/** Which build of the kernels runs. */
export type WasmVariant = "relaxed-simd" | "simd";

export type { Kernels } from "./kernels.ts";
import type { Kernels } from "./kernels.ts";

/** The builds by name; each ships as `dic-sdk/wasm/dic-<build>.wasm` (wasm/build/ in the repository). */
export const WASM_BUILDS = ["simd", "relaxed-simd", "simd-threads", "relaxed-simd-threads"] as const;
/** One of WASM_BUILDS. */
export type WasmBuild = (typeof WASM_BUILDS)[number];

/**
 * Compiled modules (or their bytes) of the single-thread builds, by build name. Edge platforms that
 * refuse to compile wasm from bytes hand over modules imported as modules
 * (`import simd from "dic-sdk/wasm/dic-simd.wasm"`); the embedded base64 builds are used for any build
 * not given. (The threads builds always come from the embedded bytes: such platforms have no workers.)
 */
export type WasmModules = Partial<Record<"simd" | "relaxed-simd", WebAssembly.Module | Uint8Array | ArrayBuffer>>;

const registered: WasmModules = {};

/**
 * Registers precompiled kernel modules for every wasm backend created afterwards in this isolate (the
 * `dic-sdk/workerd` entry calls it with the shipped modules). Throws on an unknown build name or a value
 * that is neither a WebAssembly.Module nor bytes.
 */
export function setWasmModules(modules: WasmModules): void {
  Object.assign(registered, checkWasmModules(modules, "setWasmModules"));
}

/** Checks the keys and values of a WasmModules object (`where` names the option in errors). */
export function checkWasmModules(modules: WasmModules, where: string): WasmModules {
  if (typeof modules !== "object" || modules === null) throw new TypeError(`${where}: expected an object of modules by build name, got ${modules === null ? "null" : typeof modules}`);
  for (const [k, v] of Object.entries(modules)) {
    if (k !== "simd" && k !== "relaxed-simd") throw new TypeError(`${where}: unknown wasm build "${k}" (expected "simd" or "relaxed-simd")`);
    if (v === undefined) continue;
    const ok = (typeof WebAssembly === "object" && v instanceof WebAssembly.Module) || v instanceof Uint8Array || v instanceof ArrayBuffer;
    if (!ok) throw new TypeError(`${where}: "${k}" must be a WebAssembly.Module or its bytes`);
  }
  return modules;
}

/** The module given for a build (the option first, then setWasmModules), or undefined. */
function givenModule(variant: WasmVariant, modules?: WasmModules): WebAssembly.Module | Uint8Array | ArrayBuffer | undefined {
  return modules?.[variant] ?? registered[variant];
}

/** Whether a precompiled WebAssembly.Module (not bytes) is at hand for the build. */
function hasCompiledModule(variant: WasmVariant, modules?: WasmModules): boolean {
  const m = givenModule(variant, modules);
  return m !== undefined && typeof WebAssembly === "object" && m instanceof WebAssembly.Module;
}

/** Whether `variant` can be loaded here: from a given compiled module, or from bytes where compiling is allowed. */
export function buildLoadable(variant: WasmVariant, modules?: WasmModules): boolean {
  return hasCompiledModule(variant, modules) || compileFromBytesRefused() === null;
}

const decoded = new Map<string, Uint8Array<ArrayBuffer>>();

/** The module bytes of a build (`threads`: the build that imports a shared memory). */
export function wasmBytes(variant: WasmVariant, threads = false): Bytes {
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

/**
 * null when the wasm backend can run here (`modules`: the option of createWasmBackend, added to what
 * setWasmModules registered), else why not: no WebAssembly, no SIMD, or compiling from bytes refused with
 * no precompiled module given.
 */
export function probeWasm(modules?: WasmModules): string | null {
  if (typeof WebAssembly !== "object" || typeof WebAssembly.validate !== "function") return "no WebAssembly in this runtime";
  if (!WebAssembly.validate(wasmBytes("simd"))) return "this engine does not support WebAssembly SIMD (v128)";
  if (!buildLoadable("simd", modules) && !(relaxedSimdSupported() && buildLoadable("relaxed-simd", modules))) {
    return `this runtime refuses to compile WebAssembly from bytes (${compileFromBytesRefused()}) and no precompiled module was given ` +
      `(import from "dic-sdk/workerd", or pass the modules of dic-sdk/wasm/*.wasm to setWasmModules or createWasmBackend({ modules }))`;
  }
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

/**
 * Instantiates a build: from its given module (`modules`, then setWasmModules), else compiled from the
 * embedded bytes (asynchronously: browsers refuse large synchronous compiles).
 */
export async function loadKernels(variant: WasmVariant, modules?: WasmModules): Promise<Kernels> {
  const given = givenModule(variant, modules);
  if (given instanceof WebAssembly.Module) return (await WebAssembly.instantiate(given, {})).exports as unknown as Kernels;
  const { instance } = await WebAssembly.instantiate((given ?? wasmBytes(variant)) as BufferSource, {});
  return instance.exports as unknown as Kernels;
}

/** Instantiates the threads build of `variant` over a shared memory (its `memory` is that memory). */
export async function loadSharedKernels(variant: WasmVariant, memory: WebAssembly.Memory): Promise<Kernels> {
  const { instance } = await WebAssembly.instantiate(wasmBytes(variant, true), { env: { memory } });
  return { ...(instance.exports as unknown as Kernels), memory };
}
