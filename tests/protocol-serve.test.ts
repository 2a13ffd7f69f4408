// `dic serve` as real processes on 127.0.0.1, a different runtime on each side (edge on Deno; hosts on
// Bun and Node): every cut point against single-process generation, a host killed mid-generation,
// every refusal answered by a live host, and 16 concurrent generations through nginx to two hosts.
//
// NOTE: these tests spawn processes in every runtime they need themselves, so they run under one
// test runner only (vitest on Node, the suite's first runner): running them again from deno test and
// bun test would repeat the same processes and triple the wall time. The in-process protocol tests
// (protocol-codec, protocol-host) run under all three runners.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BackendName, generate, loadDefaultModel } from "../sdk/index.ts";
import { decodeFrame, type Frame, FRAMES_MEDIA_TYPE } from "../src/protocol/frames.ts";
import { FrameReader } from "../src/protocol/stream.ts";
import { decodeTensor } from "../src/protocol/tensor-codec.ts";
import type { HostTensor } from "../src/tensor.ts";
import { relL2, runtimeName, test } from "./harness.ts";
import { checkRefusals, SECRET, validBody } from "./protocol-refusals.ts";
import { FAST_F32_VS_JS } from "./tolerances.ts";

const root = new URL("../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "dic-serve-"));
const secretFile = join(dir, "secret");
writeFileSync(secretFile, SECRET + "\n");

type Runtime = "node" | "deno" | "bun";
// NOTE: node_modules/.bin/deno is a Node wrapper around the binary; each server runs in its own
// process group and stop() kills the group, so no wrapper leaves a server behind.
const COMMANDS: Record<Runtime, string[]> = {
  node: [process.execPath, `${root}dist/sdk/bin.js`],
  deno: [existsSync(`${root}node_modules/deno/deno`) ? `${root}node_modules/deno/deno` : `${root}node_modules/.bin/deno`, "run", "-A", `${root}sdk/bin.ts`],
  bun: [`${root}node_modules/.bin/bun`, `${root}sdk/bin.ts`],
};

interface Server {
  url: string;
  proc: ChildProcess;
  log: string[];
  stop(): void;
}

/** Starts `dic serve` in `runtime` on a free port and waits for its "listening on" line. */
function serve(runtime: Runtime, args: string[]): Promise<Server> {
  const [exe, ...pre] = COMMANDS[runtime];
  const proc = spawn(exe, [...pre, "serve", "--port", "0", "--secret-file", secretFile, ...args], { stdio: ["ignore", "pipe", "pipe"], detached: true });
  const log: string[] = [];
  const stop = () => {
    try {
      process.kill(-proc.pid!, "SIGKILL");
    } catch { /* already gone */ }
  };
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`${runtime} ${args.join(" ")}: no "listening" line in 60 s:\n${log.join("\n")}`)), 60_000);
    proc.stderr!.on("data", (d) => {
      buf += d;
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) {
        log.push(l);
        const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(l);
        if (m) {
          clearTimeout(timer);
          resolve({ url: m[1], proc, log, stop });
        }
      }
    });
    proc.on("exit", (c) => {
      clearTimeout(timer);
      stop();
      reject(new Error(`${runtime} serve exited with ${c}:\n${log.join("\n")}${buf}`));
    });
  });
}

/** Runs a generation through an edge in the frames format; returns previews and the final frame. */
async function viaEdge(edge: string, req: Record<string, unknown>, onPreview?: (f: Frame) => void, signal?: AbortSignal) {
  const res = await fetch(`${edge}/v1/generate`, { method: "POST", body: JSON.stringify(req), headers: { accept: FRAMES_MEDIA_TYPE, "content-type": "application/json" }, signal });
  if (res.status !== 200) throw new Error(`edge answered ${res.status}: ${await res.text()}`);
  const reader = new FrameReader(res.body!, 1 << 26);
  const previews: Frame[] = [];
  for (let f = await reader.next(); f; f = await reader.next()) {
    if (f.type === "preview") {
      previews.push(f);
      onPreview?.(f);
    } else if (f.type === "final") return { previews, final: f };
    else throw new Error(`edge answered ${JSON.stringify(f.type === "error" ? f.message : f.type)}`);
  }
  throw new Error("edge stream ended without a final frame");
}

function finalSamples(f: Frame & { type: "final" }, n: number): HostTensor {
  const t = f.x ?? f.image;
  assert.ok(t, "final frame without x or image");
  return decodeTensor(t, [n, 1, 28, 28], "final");
}

async function reference(backend: BackendName, labels: number[], steps: number, seed: number): Promise<HostTensor> {
  return (await generate({ model: await loadDefaultModel(backend), labels, steps, seed })).latents;
}

function sameBits(a: HostTensor, b: HostTensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, what);
  const bad = a.data.findIndex((v, i) => !Object.is(v, b.data[i]));
  assert.equal(bad, -1, `${what}: differs at ${bad} (${a.data[bad]} vs ${b.data[bad]}), relL2 ${relL2(a.data, b.data)}`);
}

if (runtimeName !== "node") {
  console.log(`protocol-serve: process tests run under vitest only (they spawn Deno, Bun and Node themselves); skipped in ${runtimeName}`);
} else {
  test("every cut point through a Deno edge and a Bun host equals single-process generation (js: bit for bit)", async () => {
    const host = await serve("bun", ["--role", "host", "--backend", "js"]);
    const edge = await serve("deno", ["--role", "edge", "--backend", "js", "--upstream", host.url]);
    try {
      // Model defaults: dpmpp2m (handoff carries its saved state), guidance 2 (doubled batch on the wire).
      const labels = [7], steps = 4, seed = 11;
      const want = await reference("js", labels, steps, seed);
      for (const [cut, extra] of [["unet", {}], ["handoff", { handoff_step: 2 }], ["handoff", { handoff_step: 1 }], ["vae", {}]] as const) {
        const r = await viaEdge(edge.url, { labels, steps, seed, cut, ...extra });
        assert.deepEqual(r.previews.map((p) => p.type === "preview" && p.step), [0, 1, 2, 3], `${cut}: one preview per step`);
        sameBits(finalSamples(r.final, labels.length), want, `${cut} ${JSON.stringify(extra)}`);
      }
      // The host did the work of each cut (its stderr may trail the answers a little).
      await waitFor(async () => [/unet step 3 ok/, /handoff ok/, /vae ok/].every((re) => host.log.some((l) => re.test(l))), host.log.join("\n"));
      // f16 on the wire: lossy, but close.
      const half = await viaEdge(edge.url, { labels, steps, seed, cut: "unet", dtype: "f16" });
      const err = relL2(finalSamples(half.final, 1).data, want.data);
      assert.ok(err > 0 && err < 1e-2, `f16 unet relL2 ${err}`);
    } finally {
      host.stop();
      edge.stop();
    }
  });

  test("across backends: a wasm edge (Deno) and a wasm host (Node) stay within 1e-4 of the js reference; PNG and NDJSON formats", async () => {
    const host = await serve("node", ["--role", "host", "--backend", "wasm"]);
    const edge = await serve("deno", ["--role", "edge", "--backend", "wasm", "--upstream", host.url]);
    try {
      const labels = [5], steps = 4, seed = 3;
      const want = await reference("js", labels, steps, seed);
      for (const cut of ["unet", "handoff", "vae"]) {
        const got = finalSamples((await viaEdge(edge.url, { labels, steps, seed, cut })).final, 1);
        const err = relL2(got.data, want.data);
        assert.ok(err <= FAST_F32_VS_JS, `${cut}: relL2 ${err} vs js`);
      }
      // The browser formats: a PNG, and NDJSON progress then the result; bad requests get 422 at once.
      const png = await fetch(`${edge.url}/v1/generate?label=sneaker&steps=3&seed=1&format=png&scale=2`);
      assert.equal(png.headers.get("content-type"), "image/png");
      const bytes = new Uint8Array(await png.arrayBuffer());
      assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47]);
      assert.equal(new DataView(bytes.buffer).getUint32(16), 56, "28 px x scale 2");
      const nd = await fetch(`${edge.url}/v1/generate`, { method: "POST", body: JSON.stringify({ labels: ["bag", 3], steps: 3, seed: 2, cut: "handoff" }) });
      assert.equal(nd.headers.get("content-type"), "application/x-ndjson");
      const lines = (await nd.text()).trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(lines.slice(0, -1).map((l) => [l.type, l.step]), [["progress", 0], ["progress", 1], ["progress", 2]]);
      const result = lines[lines.length - 1];
      assert.equal(result.type, "result", JSON.stringify(result));
      assert.deepEqual(result.images.map((i: { label_name: string }) => i.label_name), ["Bag", "Dress"]);
      assert.ok(result.images.every((i: { png_base64: string }) => atob(i.png_base64).startsWith("\x89PNG")));
      for (const q of ["label=unicorn", "label=1&steps=0", "label=1&cut=pixels", "label=1&sampler=euler"]) {
        const bad = await fetch(`${edge.url}/v1/generate?${q}`);
        assert.equal(bad.status, 422, q);
        assert.equal((await bad.json()).code, "bad_request", q);
      }
    } finally {
      host.stop();
      edge.stop();
    }
  });

  test("a host killed mid-generation: the edge retries on the other upstream and the result is unchanged", async () => {
    const a = await serve("node", ["--role", "host", "--backend", "js"]);
    const b = await serve("bun", ["--role", "host", "--backend", "js"]);
    const edge = await serve("deno", ["--role", "edge", "--backend", "js", "--upstream", a.url, "--upstream", b.url]);
    try {
      const labels = [9], steps = 6, seed = 5;
      const want = await reference("js", labels, steps, seed);
      let killed = false;
      const r = await viaEdge(edge.url, { labels, steps, seed, cut: "unet" }, (p) => {
        if (p.type === "preview" && p.step === 1 && !killed) {
          killed = true;
          b.stop();
        }
      });
      assert.ok(killed);
      sameBits(finalSamples(r.final, 1), want, "unet with a host killed at step 2");
      // stderr may trail the HTTP answer a little.
      await waitFor(async () => edge.log.some((l) => /attempt 1 failed .*trying the next upstream/.test(l)), `the edge must have retried:\n${edge.log.join("\n")}`);
      await waitFor(async () => b.log.some((l) => /unet step 1 ok/.test(l)), "the killed host served steps before it died");
      // Handoff with the killed host first in line, and the handoff host killed while it streams.
      const c = await serve("bun", ["--role", "host", "--backend", "js"]);
      const edge2 = await serve("deno", ["--role", "edge", "--backend", "js", "--upstream", c.url, "--upstream", a.url]);
      try {
        const want2 = await reference("js", labels, 6, seed);
        let killedC = false;
        const r2 = await viaEdge(edge2.url, { labels, steps: 6, seed, cut: "handoff", handoff_step: 1 }, (p) => {
          if (p.type === "preview" && p.step === 2 && !killedC) {
            killedC = true;
            c.stop();
          }
        });
        assert.ok(killedC);
        sameBits(finalSamples(r2.final, 1), want2, "handoff with its host killed while streaming");
        assert.deepEqual(r2.previews.map((p) => p.type === "preview" && p.step), [0, 1, 2, 3, 4, 5], "each step reported once");
        await waitFor(async () => edge2.log.some((l) => /handoff at 1 attempt 1 failed/.test(l)), `the handoff must have been retried:\n${edge2.log.join("\n")}`);
      } finally {
        c.stop();
        edge2.stop();
      }
    } finally {
      a.stop();
      b.stop();
      edge.stop();
    }
  });

  test("one SIGSTOP-hung host of two: a 4-step generation finishes in under 15 s, on a warm and on a fresh edge", async () => {
    const a = await serve("node", ["--role", "host", "--backend", "wasm"]);
    const b = await serve("node", ["--role", "host", "--backend", "wasm"]);
    const edge = await serve("node", ["--role", "edge", "--backend", "wasm", "--upstream", b.url, "--upstream", a.url]);
    let edge2: Server | undefined;
    try {
      const req = { labels: [2], steps: 4, seed: 9, cut: "unet" };
      await viaEdge(edge.url, req); // warm: the edge has seen the pace of steps
      process.kill(b.proc.pid!, "SIGSTOP");
      const t0 = performance.now();
      await viaEdge(edge.url, { ...req, seed: 10 });
      const warm = performance.now() - t0;
      edge2 = await serve("node", ["--role", "edge", "--backend", "wasm", "--upstream", b.url, "--upstream", a.url]);
      const t1 = performance.now();
      await viaEdge(edge2.url, { ...req, seed: 11 });
      const fresh = performance.now() - t1;
      console.log(`protocol-serve: 4 steps with one of two hosts SIGSTOPped: warm edge ${warm.toFixed(0)} ms, fresh edge ${fresh.toFixed(0)} ms`);
      assert.ok(warm < 15_000 && fresh < 15_000, `warm ${warm} ms, fresh ${fresh} ms`);
      await waitFor(async () => edge.log.some((l) => /marked down/.test(l)), edge.log.join("\n"));
    } finally {
      try {
        process.kill(b.proc.pid!, "SIGCONT");
      } catch { /* gone */ }
      a.stop();
      b.stop();
      edge.stop();
      edge2?.stop();
    }
  });

  test("a client that closes its request cancels the work on the host", async () => {
    const host = await serve("bun", ["--role", "host", "--backend", "js"]);
    const edge = await serve("deno", ["--role", "edge", "--backend", "js", "--upstream", host.url]);
    try {
      const ac = new AbortController();
      const seen: number[] = [];
      await assert.rejects(viaEdge(edge.url, { labels: [1], steps: 60, seed: 1, cut: "handoff", handoff_step: 1 }, (p) => {
        if (p.type === "preview") seen.push(p.step);
        if (seen.length === 3) ac.abort();
      }, ac.signal));
      assert.deepEqual(seen, [0, 1, 2], "previews stream while the host works");
      await waitFor(async () => host.log.some((l) => /handoff cancelled by the peer/.test(l)), `the host must stop:\n${host.log.join("\n")}`);
      assert.ok(!host.log.some((l) => /handoff ok/.test(l)), "the cancelled run must not finish");
    } finally {
      host.stop();
      edge.stop();
    }
  });

  test("a live Bun host answers every refusal with its error frame and status, and keeps serving", async () => {
    const host = await serve("bun", ["--role", "host", "--backend", "wasm"]);
    try {
      await checkRefusals((body) => fetch(`${host.url}/v1/run`, { method: "POST", body: body as Uint8Array<ArrayBuffer> }), new URL(host.url).host);
      assert.equal(host.proc.exitCode, null, "host still running");
    } finally {
      host.stop();
    }
  });

  test("a request captured on its way to one host is refused by another sharing the secret (audience)", async () => {
    const a = await serve("deno", ["--role", "host", "--backend", "js"]);
    const b = await serve("bun", ["--role", "host", "--backend", "js", "--audience", "gpu-b.test"]);
    const send = async (url: string, body: Uint8Array) => {
      const res = await fetch(`${url}/v1/run`, { method: "POST", body: body as Uint8Array<ArrayBuffer> });
      const f = decodeFrame(new Uint8Array(await res.arrayBuffer()).subarray(4));
      return [res.status, f.type === "error" ? f.code : f.type];
    };
    try {
      // a answers to its own host:port (no --audience), b only to the name it was given.
      const forA = await validBody("s-captured-a", new URL(a.url).host);
      assert.deepEqual(await send(b.url, forA), [421, "misdirected"]);
      assert.deepEqual(await send(a.url, forA), [200, "step_result"]);
      const forB = await validBody("s-captured-b", "gpu-b.test");
      assert.deepEqual(await send(a.url, forB), [421, "misdirected"]);
      assert.deepEqual(await send(b.url, forB), [200, "step_result"]);
      // b no longer answers to the name it is addressed by.
      assert.deepEqual(await send(b.url, await validBody("s-b-by-port", new URL(b.url).host)), [421, "misdirected"]);
    } finally {
      a.stop();
      b.stop();
    }
  });

  test("16 concurrent generations through one edge and two hosts behind nginx", async () => {
    // Hosts behind one balancer share an audience, which the edge signs for.
    const a = await serve("node", ["--role", "host", "--backend", "wasm", "--audience", "dic-pool"]);
    const b = await serve("bun", ["--role", "host", "--backend", "wasm", "--audience", "dic-pool"]);
    const nginxDir = mkdtempSync(join(tmpdir(), "dic-nginx-"));
    const port = await freePort();
    const conf = `
worker_processes 1;
daemon off;
pid ${nginxDir}/nginx.pid;
error_log ${nginxDir}/error.log warn;
events { worker_connections 256; }
http {
  access_log ${nginxDir}/access.log;
  client_body_temp_path ${nginxDir}/body;
  proxy_temp_path ${nginxDir}/proxy;
  fastcgi_temp_path ${nginxDir}/fastcgi;
  uwsgi_temp_path ${nginxDir}/uwsgi;
  scgi_temp_path ${nginxDir}/scgi;
  upstream dic_hosts { server ${a.url.slice(7)}; server ${b.url.slice(7)}; }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 64m;
    location / {
      proxy_pass http://dic_hosts;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_next_upstream error timeout http_502 http_503;
    }
  }
}`;
    writeFileSync(join(nginxDir, "nginx.conf"), conf);
    const exe = existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";
    const nginx = spawn(exe, ["-p", nginxDir, "-e", join(nginxDir, "error.log"), "-c", join(nginxDir, "nginx.conf")], { stdio: ["ignore", "pipe", "pipe"] });
    let nginxErr = "";
    nginx.stderr!.on("data", (d) => (nginxErr += d));
    const edge = await serve("deno", ["--role", "edge", "--backend", "wasm", "--upstream", `http://127.0.0.1:${port}`, "--audience", "dic-pool"]);
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, `nginx did not come up: ${nginxErr}`);
      const steps = 3;
      const jobs = Array.from({ length: 16 }, (_, i) => ({ labels: [i % 10], steps, seed: 100 + i, cut: i % 4 === 3 ? "handoff" : "unet" }));
      const results = await Promise.all(jobs.map((j) => viaEdge(edge.url, j)));
      for (const [i, r] of results.entries()) {
        const want = await reference("wasm", jobs[i].labels, steps, jobs[i].seed);
        const err = relL2(finalSamples(r.final, 1).data, want.data);
        assert.ok(err <= FAST_F32_VS_JS, `generation ${i}: relL2 ${err}`);
      }
      // Both hosts did work: the balancer spread the requests.
      for (const h of [a, b]) await waitFor(async () => h.log.filter((l) => / ok$/.test(l)).length >= 4, `a host served too little:\n${h.log.slice(-5).join("\n")}`);
    } finally {
      edge.stop();
      nginx.kill("SIGTERM");
      a.stop();
      b.stop();
      await new Promise((r) => nginx.once("exit", r));
    }
  });
}

async function waitFor(ok: () => Promise<boolean>, msg: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      if (await ok()) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(msg);
}

async function freePort(): Promise<number> {
  const net = await import("node:net");
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

