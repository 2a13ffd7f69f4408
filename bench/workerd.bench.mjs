// bench/workerd: what a request costs inside workerd (Cloudflare Workers' runtime, single thread, the wasm
// kernels as compiled modules), next to the same work in Node on one thread, each runtime its own process:
//   1. one default-model generation (examples/workerd/config.capnp, default 20 steps), client wall time
//      and the worker's own server-timing;
//   2. the edge part of a `unet`-cut generation of a DiC preset (random weights; embeddings + encoder +
//      latent stage per step, with guidance, against a stand-in host: bench/workerd/edge-part-worker.js).
// Needs `npm run build` and workerd (.ci/setup). Run: node bench/workerd.bench.mjs [--preset DiC-S]
// [--steps 20] [--rounds 3] [--json]
import { spawn, execSync } from "node:child_process";
import { mkdtempSync, copyFileSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as esbuild from "esbuild";
import { WORKERD_WASM, workerdPlugin } from "../bundle/build.mjs";

const root = new URL("../", import.meta.url).pathname;
const dist = (p) => import(root + "dist/" + p);
const { values } = parseArgs({ options: { preset: { type: "string", default: "DiC-S" }, steps: { type: "string", default: "20" }, rounds: { type: "string", default: "3" }, json: { type: "boolean" } } });
const STEPS = Number(values.steps), ROUNDS = Number(values.rounds);
const WORKERD = existsSync(root + "node_modules/@cloudflare/workerd-linux-64/bin/workerd") ? root + "node_modules/@cloudflare/workerd-linux-64/bin/workerd" : root + "node_modules/.bin/workerd";

const freePort = () => new Promise((res) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function startWorkerd(config) {
  const port = await freePort();
  const proc = spawn(WORKERD, ["serve", config, "--socket-addr", `http=127.0.0.1:${port}`], { stdio: ["ignore", "inherit", "inherit"], detached: true });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try { await (await fetch(url + "/")).arrayBuffer(); return { url, stop: () => process.kill(-proc.pid, "SIGKILL") }; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  throw new Error("workerd did not answer");
}

async function timed(fn) { const t0 = performance.now(); const r = await fn(); return { ms: performance.now() - t0, r }; }

const rows = [];
const { generate, loadDefaultModel, loadModel } = await dist("sdk/index.js");

// 1. The default model, one generation.
{
  const w = await startWorkerd(root + "examples/workerd/config.capnp");
  const first = await timed(async () => (await fetch(`${w.url}/generate?label=sneaker&seed=0`)).arrayBuffer());
  const wall = [], server = [];
  for (let i = 1; i <= ROUNDS; i++) {
    const { ms, r } = await timed(() => fetch(`${w.url}/generate?label=sneaker&seed=${i}`));
    await r.arrayBuffer();
    wall.push(ms);
    server.push(Number(/dur=([\d.]+)/.exec(r.headers.get("server-timing") ?? "")?.[1]));
    if (r.headers.get("x-dic-backend") !== "wasm") throw new Error(`workerd ran ${r.headers.get("x-dic-backend")}`);
  }
  w.stop();
  const { createBackend } = await dist("src/backend/registry.js");
  const one = await loadDefaultModel((await createBackend("wasm", { threads: 1 })).backend);
  await generate({ model: one, label: "sneaker", seed: 0 });
  const node = [];
  for (let i = 1; i <= ROUNDS; i++) node.push((await timed(() => generate({ model: one, label: "sneaker", seed: i }))).ms);
  one.backend.close?.();
  rows.push({ what: "default model, one 20-step generation", workerd_ms: median(wall), workerd_server_timing_ms: median(server), workerd_first_ms: first.ms, node_1thread_ms: median(node) });
}

// 2. The edge part of a unet-cut generation of a preset with random weights.
{
  const { PRESETS, resolveConfig } = await dist("src/model/config.js");
  const { randomWeights } = await dist("bench/lib/random-dic.js");
  const { writeSafetensors } = await dist("src/weights/safetensors.js");
  const { runEdgeGeneration } = await dist("src/protocol/edge.js");
  const { encodeTensor } = await dist("src/protocol/tensor-codec.js");
  const { outChannels } = await dist("src/model/config.js");
  const cfg = resolveConfig(PRESETS[values.preset]);
  const tensors = {};
  for (const [k, v] of randomWeights(cfg, 1)) tensors[k] = { dtype: "F16", shape: v.shape, data: v.data };
  const dir = mkdtempSync(join(tmpdir(), "dic-bench-workerd-"));
  const bytes = writeSafetensors(tensors, { config: JSON.stringify(cfg) });
  writeFileSync(join(dir, "weights.safetensors"), bytes);
  await esbuild.build({
    absWorkingDir: root, entryPoints: ["bench/workerd/edge-part-worker.js"], outfile: join(dir, "worker.js"), bundle: true, format: "esm",
    platform: "browser", conditions: ["workerd", "worker", "browser"], minify: true, logLevel: "warning",
    plugins: [workerdPlugin, { name: "weights", setup: (b) => b.onResolve({ filter: /weights\.safetensors$/ }, () => ({ path: "./weights.safetensors", external: true })) }],
  });
  for (const f of WORKERD_WASM) copyFileSync(root + "wasm/build/" + f, join(dir, f));
  writeFileSync(join(dir, "config.capnp"), `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (services = [(name = "main", worker = .w)], sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")]);
const w :Workerd.Worker = (modules = [(name = "worker.js", esModule = embed "worker.js"), ${WORKERD_WASM.map((f) => `(name = "${f}", wasm = embed "${f}")`).join(", ")}, (name = "weights.safetensors", data = embed "weights.safetensors")], compatibilityDate = "2026-11-01");
`);
  const w = await startWorkerd(join(dir, "config.capnp"));
  const first = await timed(async () => (await fetch(`${w.url}/edge-part?steps=1`)).json());
  const wall = [], inside = [];
  let backend = "";
  for (let i = 0; i < ROUNDS; i++) {
    const { ms, r } = await timed(async () => (await fetch(`${w.url}/edge-part?steps=${STEPS}`)).json());
    wall.push(ms);
    inside.push(r.ms);
    backend = r.backend;
  }
  w.stop();
  // The same edge part in this Node process, one thread.
  const { createBackend } = await dist("src/backend/registry.js");
  const nb = (await createBackend("wasm", { threads: 1 })).backend;
  const model1 = await loadModel(bytes, { backend: nb });
  const pool = { async request(frames) { const s = frames[1]; const S = cfg.input_size, n = s.y.length; return [{ v: s.v, session: s.session, seq: 1, type: "step_result", step: s.step, out: encodeTensor({ shape: [n, outChannels(cfg), S, S], data: new Float32Array(n * outChannels(cfg) * S * S) }, "f32") }]; } };
  const run = () => runEdgeGeneration({ graph: model1.graph, weightsSha256: new Uint8Array(32), pixelRange: null }, pool, {
    session: "s-bench", cut: "unet", settings: { labels: [1], steps: STEPS, sampler: "ddim", eta: 0, cfg_scale: 1.5, cfg_mode: "standard", seed: 1 },
  });
  await run();
  const node = [];
  for (let i = 0; i < ROUNDS; i++) node.push((await timed(run)).ms);
  nb.close?.();
  rows.push({ what: `${values.preset} unet-cut edge part, ${STEPS} steps, guidance (batch 2)`, workerd_ms: median(wall), workerd_inside_ms: median(inside), workerd_first_ms: first.ms, node_1thread_ms: median(node), workerd_backend: backend, weights_file_mb: bytes.length / 1e6 });
}

const cpu = execSync("lscpu | grep 'Model name' | head -1").toString().replace(/Model name:\s*/, "").trim();
const wd = execSync(`${WORKERD} --version`).toString().trim();
console.log(`bench/workerd: ${cpu}, ${wd}, Node ${process.version}; median of ${ROUNDS} rounds`);
console.log("| work | workerd ms | workerd (own clock) ms | workerd first request ms | Node 1 thread ms | workerd / Node |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  const own = r.workerd_server_timing_ms ?? r.workerd_inside_ms;
  console.log(`| ${r.what} | ${r.workerd_ms.toFixed(0)} | ${own.toFixed(0)} | ${r.workerd_first_ms.toFixed(0)} | ${r.node_1thread_ms.toFixed(0)} | ${(r.workerd_ms / r.node_1thread_ms).toFixed(2)} |`);
}
if (values.json) console.log(JSON.stringify(rows, null, 2));
process.exit(0);
