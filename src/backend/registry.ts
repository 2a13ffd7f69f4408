// The only module that knows the concrete backends. Selection order: explicit option, then the
// DIC_BACKEND environment variable, then the first available by priority — and it always says why.
import { type Backend, checked, type OpName } from "./contract.ts";
import { JS_OPS, JsBackend } from "./js/index.ts";
import { createWasmBackend, probeWasm, WASM_OPS, type WasmModules } from "./wasm/index.ts";

export { setWasmModules, WASM_BUILDS, type WasmBuild, type WasmModules } from "./wasm/index.ts";
import { createWebGpuBackend, probeWebGpu, WEBGPU_OPS, webGpuAdapterFacts, webGpuReport as webgpuAdapterReport } from "./webgpu/index.ts";
import type { WebGpuReport } from "../capabilities.ts";
import { readEnv } from "../env.ts";

/** Names accepted by `backend` options and `--backend`. */
export const BACKEND_NAMES = ["auto", "js", "wasm", "webgpu"] as const;
/** One of BACKEND_NAMES. */
export type BackendName = (typeof BACKEND_NAMES)[number];

/** A created backend and the reason it was chosen. */
export interface BackendChoice {
  backend: Backend;
  reason: string;
}

/** Options passed to the backend that gets created. */
export interface BackendOptions {
  /** wasm: threads sharing conv work (default: env DIC_THREADS, else min(cores, 4) where threads exist). */
  threads?: number;
  /** wasm: precompiled kernel modules by build name, for platforms that refuse to compile from bytes (see createWasmBackend). */
  modules?: WasmModules;
  /** wasm: the memory budget in bytes (createWasmBackend's memoryBudget); other backends do not take one. */
  memoryBudget?: number;
  /** wasm: bytes of the budget its plan keeps for activations (createWasmBackend's activationReserve). */
  activationReserve?: number;
  /** wasm: how conv3x3 weights are stored ("fast", "f16", "int8", "auto"; createWasmBackend's storage). */
  storage?: "fast" | "f16" | "int8" | "auto";
  /** webgpu: store tensors in f16 where the adapter has "shader-f16" (default false). */
  f16?: boolean;
  /**
   * The ops the caller will run: `auto` passes over a backend whose supports declaration lacks one, and a
   * requested backend that lacks one is an error naming it. Default: no requirement.
   */
  ops?: readonly OpName[];
}

interface Entry {
  name: Exclude<BackendName, "auto">;
  priority: number;
  /** The ops its backend computes (its folder's supports declaration), read without creating it. */
  ops: readonly OpName[];
  probe: (o: BackendOptions) => Promise<string | null>; // null when available, else why not
  create: (o: BackendOptions) => Promise<Backend>;
  /** Why `auto` passes over it although it can run (e.g. only a software adapter), or null. */
  autoSkip?: () => Promise<string | null>;
}

/** The thread count: the option, else env DIC_THREADS (checked), else undefined (the backend's default). */
function threadsOption(o: BackendOptions): number | undefined {
  if (o.threads !== undefined) return o.threads;
  const v = readEnv("DIC_THREADS");
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`backend: DIC_THREADS="${v}" is not a positive integer`);
  return n;
}

const ENTRIES: Entry[] = [
  { name: "js", priority: 0, ops: JS_OPS, probe: () => Promise.resolve(null), create: () => Promise.resolve(new JsBackend()) },
  { name: "wasm", priority: 10, ops: WASM_OPS, probe: (o) => Promise.resolve(probeWasm(o.modules)), create: (o) => createWasmBackend({ threads: threadsOption(o), modules: o.modules, memoryBudget: o.memoryBudget, storage: o.storage, activationReserve: o.activationReserve }) },
  {
    name: "webgpu", priority: 20, ops: WEBGPU_OPS, probe: probeWebGpu, create: (o) => createWebGpuBackend({ f16: o.f16 }),
    autoSkip: async () => {
      const a = await webGpuAdapterFacts();
      return a?.fallback ? `only a fallback (software) adapter, "${a.name}", slower than wasm (ask for it with --backend webgpu or DIC_BACKEND=webgpu)` : null;
    },
  },
];

/** The ops of `options.ops` that an entry's backend does not compute, as a reason, or null. */
function missingOps(e: Entry, options: BackendOptions): string | null {
  const lacks = (options.ops ?? []).filter((op) => !e.ops.includes(op));
  return lacks.length ? `does not support ${lacks.join(", ")}` : null;
}

/** Reports, for every backend, whether it can run here and why not. */
export async function listBackends(options: BackendOptions = {}): Promise<{ name: Exclude<BackendName, "auto">; available: boolean; why: string }[]> {
  return Promise.all(ENTRIES.map(async (e) => {
    const why = await e.probe(options);
    return { name: e.name, available: why === null, why: why ?? "available" };
  }));
}

/** Creates the requested backend ("auto" or undefined: env DIC_BACKEND, then priority) with `options`. */
export async function createBackend(requested?: BackendName, options: BackendOptions = {}): Promise<BackendChoice> {
  let name: string | undefined = requested;
  let source = "requested";
  if (name === undefined || name === "auto") {
    const fromEnv = readEnv("DIC_BACKEND");
    if (fromEnv && fromEnv !== "auto") {
      name = fromEnv;
      source = "DIC_BACKEND";
    }
  }
  if (name !== undefined && name !== "auto") {
    const entry = ENTRIES.find((e) => e.name === name);
    if (!entry) throw new Error(`backend: unknown "${name}" (${source}); valid: ${BACKEND_NAMES.join(", ")}`);
    const why = missingOps(entry, options) ?? (await entry.probe(options));
    if (why !== null) throw new Error(`backend: "${name}" (${source}) cannot run here: ${why}`);
    return { backend: checked(await entry.create(options)), reason: `${name} (${source})` };
  }
  const skipped: string[] = [];
  for (const e of [...ENTRIES].sort((a, b) => b.priority - a.priority)) {
    const why = missingOps(e, options) ?? (await e.probe(options)) ?? (await e.autoSkip?.()) ?? null;
    if (why === null) {
      const extra = skipped.length ? `; skipped ${skipped.join("; ")}` : "";
      return { backend: checked(await e.create(options)), reason: `${e.name} (auto: highest-priority backend available${extra})` };
    }
    skipped.push(`${e.name}: ${why}`);
  }
  throw new Error(`backend: none available (${skipped.join("; ")})`);
}

/**
 * The WebGPU adapter as the webgpu backend finds it (doctor's report: the same lookup as the backend's, so
 * the two agree). A wrapper, so that the published types name no WebGPU type.
 */
export function webGpuReport(): Promise<WebGpuReport> {
  return webgpuAdapterReport();
}
