// doctor(): what this runtime can run and why — the runtime, engine capabilities, the WebGPU adapter,
// every backend with the reason it is or is not available, what `auto` picks, and a quick conv3x3 parity
// check of each available backend against the js reference. `dic doctor` prints it.
import { type Backend, scope, type StorageReport } from "../src/backend/contract.ts";
import { loadDefaultModel } from "./default-model.ts";
import { createBackend, listBackends, webGpuReport } from "../src/backend/registry.ts";
import { type Capabilities, probeCapabilities, type WebGpuReport } from "../src/capabilities.ts";
import { env, type RuntimeName, suppressedOutput } from "../src/env.ts";
import { FAST_F32_VS_JS } from "../src/numerics.ts";
import { GaussianRng } from "../src/rng.ts";
import { type HostTensor, relL2 } from "../src/tensor.ts";

/** A fast f32 backend must match js to this relative L2 error: the policy's FAST_F32_VS_JS (src/numerics.ts). */
export const DOCTOR_PARITY_TOLERANCE = FAST_F32_VS_JS;

/** One backend's parity check: a GroupNorm+GELU pre-op and a conv3x3 with bias, against the js backend. */
export interface ParityCheck {
  backend: string;
  /** What ran (the backend's description), or null when it could not be created. */
  description: string | null;
  /** Relative L2 error vs js; null when it failed to run. */
  relL2: number | null;
  ok: boolean;
  ms: number;
  error?: string;
}

/** The environment report of `doctor()`. */
export interface DoctorReport {
  runtime: { name: RuntimeName; version: string };
  capabilities: Capabilities;
  webgpu: WebGpuReport;
  backends: { name: string; available: boolean; why: string }[];
  /** The backend `backend: "auto"` picks here and why (DIC_BACKEND counts), or the error when none can run. */
  auto: { name: string | null; reason: string };
  /** One entry per available backend (js against itself included, as a control); empty with `parity: false`. */
  parity: ParityCheck[];
  /** The embedded default model on wasm in each weight storage mode (with parity checks only; empty without wasm). */
  memory: MemoryCheck[];
  /** True when every available backend passed its parity check. */
  ok: boolean;
  /**
   * What the SDK kept off stderr while probing (native WebGPU messages: Mesa's XDG_RUNTIME_DIR lines,
   * Dawn's warnings about rejected Vulkan devices); shown as they are with --verbose or env DIC_DEBUG.
   */
  suppressed: string[];
}

/** One storage mode of the wasm backend on the default model: what its memory holds after a batch-2 forward. */
export interface MemoryCheck {
  storage: "fast" | "f16" | "int8";
  report: StorageReport | null;
  /** Forward time and relative L2 vs the fast mode's output (0 for fast itself). */
  ms: number;
  relL2: number | null;
  error?: string;
}

/** Options of `doctor`. */
export interface DoctorOptions {
  /** Run the parity checks (default true; each is one small conv, well under a second). */
  parity?: boolean;
}

// The check case: odd spatial size and channel counts that are not multiples of 4 (the awkward edges of
// tiled kernels), batch 2, non-zero data everywhere.
const N = 2, CI = 12, CO = 10, H = 9, W = 7, GROUPS = 3;

function randomTensor(rng: GaussianRng, shape: number[], scale = 1): HostTensor {
  const data = rng.fill(new Float32Array(shape.reduce((a, b) => a * b, 1)));
  for (let i = 0; i < data.length; i++) data[i] *= scale;
  return { shape, data };
}

async function conv(b: Backend, inputs: HostTensor[]): Promise<Float32Array> {
  const [x, w, bias, gw, gb] = inputs;
  return scope(b, async (s) => {
    const t = [s.upload(x), s.upload(w, "conv3x3.weight"), s.upload(bias, "vector"), s.upload(gw, "vector"), s.upload(gb, "vector")];
    const out = s.track(b.conv3x3(t[0], t[1], t[2], { norm: "group", groups: GROUPS, eps: 1e-5, weight: t[3], bias: t[4], act: "gelu" }));
    return (await s.download(out)).data;
  });
}

/**
 * Reports what this runtime can run: runtime and engine features (SIMD, relaxed SIMD, threads,
 * SharedArrayBuffer, cross-origin isolation), the WebGPU adapter and its limits, every backend and why it
 * is or is not available, the backend `auto` picks, and a conv3x3 parity check of each available backend
 * against js. Works in every runtime (browsers and workers included).
 *
 * @example
 * import { doctor, formatDoctorReport } from "dic-sdk";
 * const report = await doctor();
 * console.log(formatDoctorReport(report)); // or inspect report.backends, report.auto, report.parity
 */
export async function doctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const [webgpu, backends] = await Promise.all([webGpuReport(), listBackends()]);
  let auto: DoctorReport["auto"];
  try {
    const choice = await createBackend("auto");
    auto = { name: choice.backend.name, reason: `${choice.reason}: ${choice.backend.description}` };
  } catch (e) {
    auto = { name: null, reason: (e as Error).message };
  }
  const parity: ParityCheck[] = [];
  if (options.parity !== false) {
    const rng = new GaussianRng(20251127);
    const inputs = [
      randomTensor(rng, [N, CI, H, W]), randomTensor(rng, [CO, CI, 3, 3], 0.2), randomTensor(rng, [CO], 0.1),
      randomTensor(rng, [CI], 0.5), randomTensor(rng, [CI], 0.1),
    ];
    for (const x of inputs[3].data.keys()) inputs[3].data[x] += 1; // norm weight around 1
    const want = await conv((await createBackend("js")).backend, inputs);
    for (const entry of backends.filter((b) => b.available)) {
      const t0 = performance.now();
      let description: string | null = null;
      try {
        const { backend } = await createBackend(entry.name);
        description = backend.description;
        const err = relL2(await conv(backend, inputs), want);
        parity.push({ backend: entry.name, description, relL2: err, ok: err <= DOCTOR_PARITY_TOLERANCE, ms: performance.now() - t0 });
      } catch (e) {
        parity.push({ backend: entry.name, description, relL2: null, ok: false, ms: performance.now() - t0, error: (e as Error).message });
      }
    }
  }
  const memory: MemoryCheck[] = [];
  if (options.parity !== false && backends.some((b) => b.name === "wasm" && b.available)) {
    let fast: Float32Array | null = null;
    let x: HostTensor | null = null;
    for (const storage of ["fast", "f16", "int8"] as const) {
      const t0 = performance.now();
      let backend: Backend | null = null;
      try {
        backend = (await createBackend("wasm", { storage, threads: 1 })).backend;
        const model = await loadDefaultModel(backend);
        const c = model.config;
        x ??= randomTensor(new GaussianRng(20251201), [2, c.in_channels, c.input_size, c.input_size]);
        const out = (await model.forward(x, [500, 100], [1, 2])).data;
        fast ??= out;
        memory.push({ storage, report: backend.storageReport?.() ?? null, ms: performance.now() - t0, relL2: relL2(out, fast) });
      } catch (e) {
        memory.push({ storage, report: null, ms: performance.now() - t0, relL2: null, error: (e as Error).message });
      } finally {
        (backend as { close?: () => void } | null)?.close?.();
      }
    }
  }
  return {
    runtime: { name: env.runtime, version: env.version },
    capabilities: probeCapabilities(),
    webgpu,
    backends,
    auto,
    parity,
    memory,
    ok: parity.every((p) => p.ok),
    suppressed: [...suppressedOutput()],
  };
}

const yes = (b: boolean | null) => (b === null ? "n/a" : b ? "yes" : "no");

/** Formats a `doctor()` report as the lines `dic doctor` prints. */
export function formatDoctorReport(r: DoctorReport): string[] {
  const c = r.capabilities;
  const lines = [
    `runtime   ${r.runtime.name} ${r.runtime.version}`,
    `wasm      WebAssembly ${yes(c.webAssembly)}, SIMD ${yes(c.simd)}, relaxed SIMD ${yes(c.relaxedSimd)}, threads (shared memory) ${yes(c.wasmThreads)}, compile from bytes ${c.wasmFromBytesRefused === null ? "yes" : `refused (${c.wasmFromBytesRefused})`}`,
    `threads   SharedArrayBuffer ${yes(c.sharedArrayBuffer)}, cross-origin isolated ${yes(c.crossOriginIsolated)}, cores ${c.hardwareConcurrency ?? "unknown"}`,
  ];
  if (r.webgpu.available && r.webgpu.adapter) {
    const a = r.webgpu.adapter;
    const name = [a.description, a.vendor && `vendor ${a.vendor}`, a.architecture, a.device && `device ${a.device}`].filter(Boolean).join(", ");
    lines.push(`webgpu    adapter: ${name || "unnamed"}${a.isFallbackAdapter ? " (fallback/software adapter)" : ""}`);
    lines.push(`          limits: ${Object.entries(r.webgpu.limits ?? {}).map(([k, v]) => `${k} ${v}`).join(", ")}`);
    if (r.webgpu.features?.length) lines.push(`          features: ${r.webgpu.features.join(", ")}`);
  } else {
    lines.push(`webgpu    unavailable: ${r.webgpu.why}`);
  }
  for (const b of r.backends) lines.push(`backend   ${b.name.padEnd(8)} ${b.available ? "available" : "unavailable"}: ${b.why}`);
  lines.push(`auto      -> ${r.auto.reason}`);
  for (const note of r.suppressed) lines.push(`quiet     ${note}`);
  for (const p of r.parity) {
    const what = p.relL2 === null ? `failed: ${p.error}` : `conv3x3 vs js rel. L2 ${p.relL2.toExponential(2)} (limit ${DOCTOR_PARITY_TOLERANCE.toExponential(0)})`;
    lines.push(`parity    ${p.backend.padEnd(8)} ${p.ok ? "ok  " : "FAIL"} ${what}, ${p.ms.toFixed(0)} ms${p.description ? ` [${p.description}]` : ""}`);
  }
  for (const m of r.memory) {
    if (!m.report) {
      lines.push(`memory    wasm ${m.storage.padEnd(4)} failed: ${m.error}`);
      continue;
    }
    const [first, ...rest] = storageLines(m.report);
    lines.push(`memory    wasm ${m.storage.padEnd(4)} default model, batch 2: ${first}; load + forward ${m.ms.toFixed(0)} ms, rel. L2 vs fast ${m.relL2 === null ? "n/a" : m.relL2.toExponential(2)}`);
    for (const l of rest) lines.push(`          ${l}`);
  }
  return lines;
}

const mib = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;

/** A backend's StorageReport as lines: weight bytes by storage form, the activation peak, the scratch, the plan. */
export function storageLines(r: StorageReport): string[] {
  const weights = Object.entries(r.weights).map(([form, b]) => `${form} ${mib(b)}`).join(" + ") || "none";
  return [
    `weights ${weights}; activation peak ${mib(r.activationPeakBytes)}; expansion scratch ${mib(r.scratchBytes)}; memory ${mib(r.committedBytes)}${r.budgetBytes === null ? "" : ` of a ${mib(r.budgetBytes)} budget`}`,
    `storage plan: ${r.plan}`,
  ];
}
