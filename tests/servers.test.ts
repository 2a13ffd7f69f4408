// Servers under load and abuse, in-process on loopback (every runtime): refusals answered over
// node:http, edge admission control, health of upstreams.
import assert from "node:assert/strict";
import { createHostHandler, loadServingModel } from "../sdk/serve.ts";
import { toNodeListener } from "../sdk/node-adapter.ts";
import { importSecret, signFrames } from "../src/protocol/auth.ts";
import { decodeFrame } from "../src/protocol/frames.ts";
import { test } from "./harness.ts";
import { checkRefusals, modelFacts, modelPath, SECRET, unetFrames } from "./protocol-refusals.ts";

declare const Deno: { permissions: { querySync(d: { name: string }): { state: string } } } | undefined;
const netAllowed = typeof Deno === "undefined" || Deno.permissions.querySync({ name: "net" }).state === "granted";
if (!netAllowed) console.log("servers: skipped under deno test without --allow-net (the tests listen on 127.0.0.1)");

const served = await loadServingModel(modelPath, "js");

type NodeServer = import("node:http").Server;
async function nodeServer(handler: (r: Request) => Promise<Response>): Promise<{ url: string; server: NodeServer; close(): Promise<void> }> {
  const http = await import("node:http");
  const server = http.createServer(toNodeListener(handler));
  const url = await new Promise<string>((r) => server.listen(0, "127.0.0.1", () => r(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
  return {
    url, server,
    close: async () => {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}

if (netAllowed) {
  test("node:http host: a stale request gets 401 and its error frame, not a reset; every refusal is answered", async () => {
    const host = await nodeServer(await createHostHandler({ model: served, secret: SECRET }));
    try {
      const body = await signFrames(await importSecret(SECRET), unetFrames(await modelFacts(), "s-stale"), { now: Date.now() - 10 * 60_000, audience: new URL(host.url).host });
      const res = await fetch(`${host.url}/v1/run`, { method: "POST", body: body as Uint8Array<ArrayBuffer> });
      assert.equal(res.status, 401);
      const f = decodeFrame(new Uint8Array(await res.arrayBuffer()).subarray(4));
      assert.equal(f.type === "error" && f.code, "stale");
      await checkRefusals((b) => fetch(`${host.url}/v1/run`, { method: "POST", body: b as Uint8Array<ArrayBuffer> }), new URL(host.url).host);
    } finally {
      await host.close();
    }
  });

  test("node:http: a handler that throws answers 500 with code internal and no message, path or stack", async () => {
    const srv = await nodeServer(() => Promise.reject(new Error("boom at /secret/path/file.ts:12")));
    try {
      const res = await fetch(`${srv.url}/x`, { method: "POST", body: "abc" });
      assert.equal(res.status, 500);
      const text = await res.text();
      assert.equal(JSON.parse(text).code, "internal");
      assert.ok(!/secret|boom|\.ts/.test(text), text);
    } finally {
      await srv.close();
    }
  });
}

/** A node:http server that takes requests and never answers (a hung host). */
async function hungServer(): Promise<{ url: string; close(): Promise<void> }> {
  const http = await import("node:http");
  const held: import("node:http").ServerResponse[] = [];
  const server = http.createServer((_req, res) => void held.push(res));
  const url = await new Promise<string>((r) => server.listen(0, "127.0.0.1", () => r(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
  return {
    url,
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}

const post = (body: BodyInit, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  new Request("http://edge.test/v1/generate", { method: "POST", body, headers: { "content-type": "application/json", ...headers }, signal, ...({ duplex: "half" } as object) });

if (netAllowed) {
  test("edge admission: work limit, strict numbers, nesting and body limits are refused with stable codes", async () => {
    const { createEdgeHandler } = await import("../sdk/serve.ts");
    const hung = await hungServer();
    try {
      const edge = await createEdgeHandler({ model: served, upstreams: [hung.url], secret: SECRET });
      // 64 labels x 1000 steps: refused from the request alone, with the limit in the message.
      const t0 = performance.now();
      const big = await edge(post(JSON.stringify({ labels: Array(64).fill(1), steps: 1000 })));
      const ms = performance.now() - t0;
      const bj = await big.json();
      assert.equal(big.status, 422);
      assert.equal(bj.code, "work_limit");
      assert.match(bj.message, /16384000/);
      assert.equal(bj.limit, 16384000);
      assert.ok(ms < 5000, `refused in ${ms} ms`);
      // Strict numbers: each refusal names its field.
      for (const [k, v] of [["steps", true], ["steps", [3]], ["steps", "0x10"], ["steps", 2.5], ["seed", "1e400"], ["scale", " 2"], ["eta", {}]] as const) {
        const r = await edge(post(JSON.stringify({ labels: [1], [k]: v })));
        const j = await r.json();
        assert.equal(r.status, 422, `${k}: ${JSON.stringify(v)}`);
        assert.deepEqual([j.code, j.field], ["bad_request", k], `${k}: ${JSON.stringify(v)}: ${j.message}`);
      }
      for (const labels of [[[1]], { a: 1 }, true]) {
        const j = await (await edge(post(JSON.stringify({ labels })))).json();
        assert.deepEqual([j.code, j.field], ["bad_request", "labels"], JSON.stringify(labels));
      }
      // Nesting 10,000 deep is a 422, never a 500.
      const deep = await edge(post(`{"labels":${"[".repeat(10_000)}${"]".repeat(10_000)}}`));
      assert.equal(deep.status, 422);
      assert.deepEqual([(await deep.json()).field], ["body"]);
      assert.equal((await edge(post("{nope"))).status, 422);
      // A 100 MB body is refused once the limit is passed: the edge pulls little more than 1 MiB of it.
      let pulled = 0;
      const chunk = new Uint8Array(64 * 1024).fill(0x20);
      const endless = new ReadableStream<Uint8Array>({
        pull(c) {
          if (pulled >= 100e6) return c.close();
          pulled += chunk.length;
          c.enqueue(chunk);
        },
      });
      const huge = await edge(post(endless));
      assert.equal(huge.status, 413);
      assert.deepEqual([(await huge.json()).code], ["too_large"]);
      assert.ok(pulled <= (1 << 20) + 4 * chunk.length, `pulled ${pulled} bytes`);
      // Unknown paths and methods get codes too.
      const nf = await edge(new Request("http://edge.test/nope"));
      assert.deepEqual([nf.status, (await nf.json()).code], [404, "not_found"]);
      const put = await edge(new Request("http://edge.test/v1/generate", { method: "PUT", body: "{}" }));
      assert.deepEqual([put.status, (await put.json()).code, put.headers.get("allow")], [405, "method_not_allowed", "GET, POST"]);
      // A declared length above the limit is refused before reading.
      const declared = await edge(post("{}", { "content-length": String(100e6) }));
      assert.equal(declared.status, 413);
    } finally {
      await hung.close();
    }
  });

  test("edge admission: a full queue answers 503 with Retry-After; the deadline stops a run with 504", async () => {
    const { createEdgeHandler } = await import("../sdk/serve.ts");
    const hung = await hungServer();
    try {
      const edge = await createEdgeHandler({ model: served, upstreams: [hung.url], secret: SECRET, maxConcurrent: 1, maxQueue: 1, deadlineMs: 60_000 });
      const a = new AbortController(), b = new AbortController();
      const req = (signal: AbortSignal) => edge(post(JSON.stringify({ labels: [1], steps: 2, format: "png" }), {}, signal));
      const first = req(a.signal); // runs (its host never answers)
      await new Promise((r) => setTimeout(r, 50));
      const second = req(b.signal); // waits in the queue
      await new Promise((r) => setTimeout(r, 50));
      const third = await req(new AbortController().signal);
      assert.equal(third.status, 503);
      assert.ok(Number(third.headers.get("retry-after")) >= 1, `retry-after ${third.headers.get("retry-after")}`);
      assert.equal((await third.json()).code, "busy");
      a.abort();
      b.abort();
      assert.equal((await first).status, 499);
      assert.equal((await second).status, 499);

      const timed = await createEdgeHandler({ model: served, upstreams: [hung.url], secret: SECRET, deadlineMs: 300 });
      const t0 = performance.now();
      const late = await timed(post(JSON.stringify({ labels: [1], steps: 2, format: "png" })));
      assert.equal(late.status, 504);
      assert.equal((await late.json()).code, "deadline");
      assert.ok(performance.now() - t0 < 10_000);
    } finally {
      await hung.close();
    }
  });

  test("node:http edge: a 100 MB body gets 413, not a reset", async () => {
    const { createEdgeHandler } = await import("../sdk/serve.ts");
    const srv = await nodeServer(await createEdgeHandler({ model: served, upstreams: ["http://127.0.0.1:9"], secret: SECRET }));
    try {
      let sent = 0;
      const chunk = new Uint8Array(1 << 20).fill(0x20);
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent >= 100) return c.close();
          sent++;
          c.enqueue(chunk);
        },
      });
      const res = await fetch(`${srv.url}/v1/generate`, { method: "POST", body, headers: { "content-type": "application/json" }, ...({ duplex: "half" } as object) });
      assert.equal(res.status, 413);
      assert.equal((await res.json()).code, "too_large");
    } finally {
      await srv.close();
    }
  });
}

if (netAllowed) {
  test("upstream health: a hung host of two costs a 4-step generation one short timeout, is marked down, and is probed back", async () => {
    const http = await import("node:http");
    const { UpstreamPool } = await import("../src/protocol/upstream.ts");
    const { runEdgeGeneration } = await import("../src/protocol/edge.ts");
    const host = toNodeListener(await createHostHandler({ model: served, secret: SECRET }));
    let hung = true;
    const held: import("node:http").ServerResponse[] = [];
    const flaky = http.createServer((req, res) => (hung ? void held.push(res) : host(req, res)));
    const real = await nodeServer(await createHostHandler({ model: served, secret: SECRET }));
    const flakyUrl = await new Promise<string>((r) => flaky.listen(0, "127.0.0.1", () => r(`http://127.0.0.1:${(flaky.address() as { port: number }).port}`)));
    const log: string[] = [];
    // The hung host is first in turn; the default idle timeout (30 s) is left as it is.
    const pool = new UpstreamPool({ urls: [flakyUrl, real.url], key: await importSecret(SECRET), log: (l) => log.push(l), probeAfterMs: 200 });
    const sm = { graph: served.model.graph, weightsSha256: served.weightsSha256, pixelRange: served.model.pixelRange };
    const settings = { labels: [3], steps: 4, sampler: "ddim", eta: 0, cfg_scale: 1, cfg_mode: "standard", seed: 4 };
    try {
      const t0 = performance.now();
      await runEdgeGeneration(sm, pool, { session: "s-hung-1", cut: "unet", settings });
      const first = performance.now() - t0;
      assert.ok(first < 15_000, `4 steps with a hung host took ${first} ms`);
      assert.deepEqual(pool.up, [false, true]);
      assert.ok(log.some((l) => /marked down \(no answer for 5000 ms\)/.test(l)), log.join("\n"));
      // Now the pace of steps is known: timeouts are short, and the down host is skipped.
      const t1 = performance.now();
      await runEdgeGeneration(sm, pool, { session: "s-hung-2", cut: "unet", settings });
      const second = performance.now() - t1;
      assert.ok(second < 5_000, `4 steps with the hung host down took ${second} ms`);
      assert.ok(pool.timeoutFor("step", 0) < 5_000, `adaptive timeout ${pool.timeoutFor("step", 0)} ms`);
      // The host recovers: a probe brings it back.
      hung = false;
      for (const res of held) res.destroy();
      for (let i = 0; i < 100 && !pool.up[0]; i++) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(pool.up, [true, true], log.join("\n"));
      assert.ok(log.some((l) => /is back/.test(l)));
    } finally {
      pool.close();
      for (const res of held) res.destroy();
      flaky.closeAllConnections?.();
      await new Promise((r) => flaky.close(r));
      await real.close();
    }
  });
}

test("host: authenticates before it buffers; pre-auth reads are capped and bounded in time; stalled bodies time out", async () => {
  const { hostProtocolHandler: hostHandler } = await import("../src/protocol/host.ts");
  const key = await importSecret(SECRET);
  const sm = { graph: served.model.graph, weightsSha256: served.weightsSha256, pixelRange: served.model.pixelRange };
  const handler = hostHandler({ model: sm, key, authTimeoutMs: 300, readTimeoutMs: 300 });
  const run = (body: Uint8Array | ReadableStream<Uint8Array>) => handler(new Request("http://host.test/v1/run", { method: "POST", body: body as BodyInit, ...({ duplex: "half" } as object) }));
  const codeOf = async (res: Response) => {
    const f = decodeFrame(new Uint8Array(await res.arrayBuffer()).subarray(4));
    return [res.status, f.type === "error" ? f.code : f.type];
  };
  const frames = unetFrames(await modelFacts(), "s-auth-first");
  const aud = { audience: "host.test" };
  /** The auth frame of a request, then `then` (bytes, or a stall), counting what the host pulled. */
  const stream = (auth: Uint8Array, then: "endless" | "stall" | Uint8Array) => {
    const counter = { pulled: 0 };
    let sentAuth = false;
    const chunk = new Uint8Array(1 << 20);
    return {
      counter,
      body: new ReadableStream<Uint8Array>({
        pull(c) {
          if (!sentAuth) {
            sentAuth = true;
            counter.pulled += auth.length;
            return c.enqueue(auth);
          }
          if (then === "stall") return new Promise(() => {});
          if (then !== "endless") {
            c.enqueue(then);
            return c.close();
          }
          if (counter.pulled > 126 * 2 ** 20) return c.close();
          counter.pulled += chunk.length;
          c.enqueue(chunk);
        },
      }),
    };
  };
  const authOf = (body: Uint8Array) => body.subarray(0, 4 + new DataView(body.buffer, body.byteOffset).getUint32(0));
  // A forged request (wrong secret) with a 126 MiB body: refused from its auth frame, the body is not read.
  const forged = await signFrames(await importSecret("not-the-shared-secret-at-all"), frames, aud);
  const f1 = stream(authOf(forged), "endless");
  assert.deepEqual(await codeOf(await run(f1.body)), [401, "unauthenticated"]);
  assert.ok(f1.counter.pulled < 4 << 20, `the host pulled ${f1.counter.pulled} bytes of a forged request`);
  // The genuine auth frame with a body that is not the one signed: refused once the body is read.
  const good = await signFrames(key, frames, aud);
  const tampered = good.slice();
  tampered[tampered.length - 3] ^= 1;
  assert.deepEqual(await codeOf(await run(tampered)), [401, "unauthenticated"]);
  // Its nonce was spent when the auth frame verified (a replay is refused before its body is read).
  assert.deepEqual(await codeOf(await run(good)), [409, "replayed"]);
  assert.deepEqual(await codeOf(await run(await signFrames(key, frames, aud))), [200, "step_result"]);
  // Nothing (or a stalled auth frame) within the auth deadline: timeout.
  const t0 = performance.now();
  assert.deepEqual(await codeOf(await run(new ReadableStream({ pull: () => new Promise(() => {}) }))), [408, "timeout"]);
  assert.ok(performance.now() - t0 < 10_000);
  // Authenticated, then the body stalls: each read has a deadline.
  const s2 = stream(authOf(await signFrames(key, frames, aud)), "stall");
  assert.deepEqual(await codeOf(await run(s2.body)), [408, "timeout"]);
  // A length prefix above the auth frame's cap is refused before reading it.
  assert.deepEqual(await codeOf(await run(new Uint8Array([0, 0, 0x20, 0, 1, 2, 3]))), [413, "too_large"]);
  // Signed (within the window) before the host started: stale, so a restart cannot be replayed into.
  const early = await signFrames(key, frames, { ...aud, now: Date.now() - 5_000 });
  const res = await run(early);
  const f = decodeFrame(new Uint8Array(await res.arrayBuffer()).subarray(4));
  assert.equal(res.status, 401);
  assert.ok(f.type === "error" && f.code === "stale" && /before this host started/.test(f.message), JSON.stringify(f));
});
