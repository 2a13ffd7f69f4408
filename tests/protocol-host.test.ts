// The host handler in-process (every runtime): each refusal of docs/protocol.md section 8 gets its
// error frame and status and the host keeps serving; a unet step equals the graph's own decode.
import assert from "node:assert/strict";
import { loadServingModel, createHostHandler } from "../sdk/serve.ts";
import { decodeFrame } from "../src/protocol/frames.ts";
import { decodeTensor } from "../src/protocol/tensor-codec.ts";
import { test } from "./harness.ts";
import { checkRefusals, modelFacts, modelPath, SECRET, unetFrames, validBody } from "./protocol-refusals.ts";

const served = await loadServingModel(modelPath, "js");
const handler = await createHostHandler({ model: served, secret: SECRET });
const send = (body: Uint8Array) => handler(new Request("http://host.test/v1/run", { method: "POST", body: body as Uint8Array<ArrayBuffer> }));

test("host handler: every refusal has its error frame and status, and the host keeps serving", async () => {
  await checkRefusals(send, "host.test");
});

test("host handler: a unet step returns the decoder output of the graph", async () => {
  const res = await send(await validBody("s-decode"));
  assert.equal(res.status, 200);
  const f = decodeFrame(new Uint8Array(await res.arrayBuffer()).subarray(4));
  assert.equal(f.type, "step_result");
  if (f.type !== "step_result") return;
  const frames = unetFrames(await modelFacts(), "s-decode");
  const step = frames[1];
  if (step.type !== "step") throw new Error("unreachable");
  const g = served.model.graph, b = g.backend;
  const cfg = g.config;
  const [bottleneck, ...skips] = [step.bottleneck, ...step.skips].map((w) => b.upload(decodeTensor(w, w.shape, "t")));
  const want = await b.download(g.decode({ bottleneck, skips }, [999], [7]));
  const got = decodeTensor(f.out, [1, 2 * cfg.in_channels, cfg.input_size, cfg.input_size], "out");
  assert.deepEqual(got.data, want.data);
});

test("host handler: info, unknown paths and methods", async () => {
  const info = await (await handler(new Request("http://host.test/v1/info"))).json();
  assert.deepEqual(info.versions, [2]);
  assert.equal(info.model.weights_sha256.length, 64);
  assert.equal((await handler(new Request("http://host.test/nope"))).status, 404);
  const wrongMethod = await handler(new Request("http://host.test/v1/run"));
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get("allow"), "POST");
});

test("dic serve: bad flags end with one line naming the problem", async () => {
  const { runCli } = await import("../sdk/cli.ts");
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(`${tmpdir()}/dic-serve-flags-`);
  writeFileSync(`${dir}/short`, "tooshort\n");
  writeFileSync(`${dir}/ok`, SECRET);
  const cases: [string[], RegExp][] = [
    [["serve", "--port", "0", "--secret-file", `${dir}/ok`], /--role: expected host or edge/],
    [["serve", "--role", "gpu", "--port", "0", "--secret-file", `${dir}/ok`], /--role/],
    [["serve", "--role", "host", "--port", "99999", "--secret-file", `${dir}/ok`], /--port/],
    [["serve", "--role", "host", "--port", "0"], /missing --secret-file/],
    [["serve", "--role", "host", "--port", "0", "--secret-file", `${dir}/absent`], /absent/],
    [["serve", "--role", "host", "--port", "0", "--secret-file", `${dir}/short`], /8 bytes; the shared secret needs at least 16/],
    [["serve", "--role", "edge", "--port", "0", "--secret-file", `${dir}/ok`], /missing --upstream/],
    [["serve", "--role", "edge", "--port", "0", "--secret-file", `${dir}/ok`, "--upstream", "gpu-1:8701"], /not an http\(s\) URL/],
    [["serve", "--role", "host", "--port", "0", "--secret-file", `${dir}/ok`, "--upstream", "http://x:1"], /--upstream is for --role edge/],
    [["serve", "--role", "host", "--port", "0", "--secret-file", `${dir}/ok`, "--remote"], /--remote is for --role edge/],
    [["serve", "--role", "host", "--port", "0", "--secret-file", `${dir}/ok`, "--memory-budget", "0x10"], /--memory-budget: expected a number of MiB > 0/],
    [["serve", "--role", "host", "--port", "0", "--secret-file", `${dir}/ok`, "--memory-budget", "0.05"], /memory budget .* (needs|would need|below)/],
    [["serve", "--role", "edge", "--port", "0", "--secret-file", `${dir}/ok`, "--upstream", "http://x:1", "--remote", "--model", "w.safetensors"], /--remote: an edge with no weights takes no --model/],
    [["serve", "--role", "edge", "--port", "0", "--secret-file", `${dir}/ok`, "--upstream", "http://x:1", "--max-work", "0x10"], /--max-work: expected an integer >= 1/],
    [["serve", "--role", "edge", "--port", "0", "--secret-file", `${dir}/ok`, "--upstream", "http://x:1", "--deadline", "soon"], /--deadline: expected a number/],
    [["serve", "--role", "host", "--port", "0", "--secret-file", `${dir}/ok`, "--max-work", "4"], /are for --role edge/],
    // One number parser for every flag: plain decimal only, so hex, blanks and a half port are refused.
    [["serve", "--role", "host", "--port", "0x50", "--secret-file", `${dir}/ok`], /--port: expected an integer in 0\.\.65535/],
    [["serve", "--role", "host", "--port", "", "--secret-file", `${dir}/ok`], /--port: expected an integer/],
    [["serve", "--role", "host", "--port", "80.5", "--secret-file", `${dir}/ok`], /--port: expected an integer/],
    [["serve", "--role", "host", "--secret-file", `${dir}/ok`], /missing --port/],
    [["serve", "--role", "edge", "--port", "0", "--secret-file", `${dir}/ok`, "--upstream", "http://x:1", "--max-concurrent", "2.5"], /--max-concurrent: expected an integer >= 1/],
    [["serve", "--role", "edge", "--port", "0", "--secret-file", `${dir}/ok`, "--upstream", "http://x:1", "--deadline", "0x10"], /--deadline: expected a number >= 0\.001/],
  ];
  for (const [args, re] of cases) {
    const err: string[] = [];
    const code = await runCli(args, { out: () => {}, err: (l) => err.push(l) });
    assert.equal(code, 1, args.join(" "));
    assert.equal(err.length, 1, `${args.join(" ")}: ${JSON.stringify(err)}`);
    assert.match(err[0], re);
  }
});

// NOTE: the suite's `deno test` runs without --allow-net, so under Deno this test needs that flag; it
// runs under vitest and bun test (and deno test --allow-net), and the Deno edge's retries are covered
// by tests/protocol-serve.test.ts.
declare const Deno: { permissions: { querySync(d: { name: string }): { state: string } } } | undefined;
const netAllowed = typeof Deno === "undefined" || Deno.permissions.querySync({ name: "net" }).state === "granted";
if (!netAllowed) console.log("protocol-host: timeout/retry test skipped under deno test without --allow-net");
if (netAllowed) test("a step that times out on one upstream is retried on the next (node:http adapter)", async () => {
  const http = await import("node:http");
  const { toNodeListener } = await import("../sdk/node-adapter.ts");
  const { UpstreamPool } = await import("../src/protocol/upstream.ts");
  const { runEdgeGeneration } = await import("../src/protocol/edge.ts");
  const { importSecret } = await import("../src/protocol/auth.ts");
  const listen = (s: import("node:http").Server) => new Promise<string>((r) => s.listen(0, "127.0.0.1", () => r(`http://127.0.0.1:${(s.address() as { port: number }).port}`)));
  const hung: import("node:http").ServerResponse[] = [];
  const silent = http.createServer((_req, res) => void hung.push(res)); // takes the request, never answers
  const real = http.createServer(toNodeListener(handler));
  const urls = [await listen(silent), await listen(real)];
  const log: string[] = [];
  try {
    const pool = new UpstreamPool({ urls, key: await importSecret(SECRET), idleTimeoutMs: 1000, log: (l) => log.push(l) });
    const sm = { graph: served.model.graph, weightsSha256: served.weightsSha256, pixelRange: served.model.pixelRange };
    const settings = { labels: [3], steps: 2, sampler: "ddim", eta: 0, cfg_scale: 1, cfg_mode: "standard", seed: 4 };
    const r = await runEdgeGeneration(sm, pool, { session: "s-timeout", cut: "unet", settings });
    const { generate } = await import("../sdk/generate.ts");
    const want = await generate({ model: served.model, labels: [3], steps: 2, sampler: "ddim", cfgScale: 1, seed: 4 });
    assert.deepEqual(r.x!.data, want.latents.data);
    assert.ok(log.some((l) => /no answer for 1000 ms/.test(l)), log.join("\n"));
  } finally {
    for (const res of hung) res.destroy();
    silent.closeAllConnections?.();
    real.closeAllConnections?.();
    await new Promise((r) => silent.close(r));
    await new Promise((r) => real.close(r));
  }
});

test("host handler: a handoff's sampler state is the sampler's to read; a wrong one is refused before the answer starts", async () => {
  const { signFrames, importSecret } = await import("../src/protocol/auth.ts");
  const { encodeTensor } = await import("../src/protocol/tensor-codec.ts");
  const f = await modelFacts();
  const key = await importSecret(SECRET);
  const c = f.config;
  const x = encodeTensor({ shape: [1, c.in_channels, c.input_size, c.input_size], data: new Float32Array(c.in_channels * c.input_size ** 2).fill(0.1) });
  const elements = c.in_channels * c.input_size ** 2;
  const handoff = async (sampler: string, state: Uint8Array | null, session: string) => {
    const [hello] = unetFrames(f, session, { hello: { cut: "handoff", generation: { labels: [7], steps: 6, sampler, eta: 0, cfg_scale: 1, cfg_mode: "standard", seed: 1 } } });
    const body = await signFrames(key, [hello, { v: hello.v, session, seq: 2, type: "handoff", preview_every: 0, state: { x, next_step: 3, rng: null, sampler_state: state } }], { audience: "host.test" });
    const res = await send(body);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const frame = decodeFrame(bytes.subarray(4, 4 + new DataView(bytes.buffer).getUint32(0)));
    return [res.status, frame.type === "error" ? `${frame.code}: ${frame.message}` : frame.type];
  };
  const good = new Uint8Array(4 + 4 * elements);
  new DataView(good.buffer).setUint32(0, 3, true); // made by step 2 = schedule index 6 - 1 - 2
  const [status] = await handoff("dpmpp2m", good, "s-state-ok");
  assert.equal(status, 200);
  const wrongIndex = good.slice();
  new DataView(wrongIndex.buffer).setUint32(0, 4, true);
  for (const [sampler, state, why] of [
    ["dpmpp2m", good.subarray(0, 40), /dpmpp2m state: 40 bytes/],
    ["dpmpp2m", wrongIndex, /schedule index 4/],
    ["dpmpp2m", null, /needs state.sampler_state/],
    ["ddim", good, /carries no state/],
  ] as const) {
    const [st, what] = await handoff(sampler, state, `s-state-${sampler}-${state?.length ?? 0}-${state?.[0] ?? "x"}`);
    assert.equal(st, 422, String(what));
    assert.match(String(what), /^bad_request: /);
    assert.match(String(what), why);
  }
});

test("host admission: a full host answers busy (503, Retry-After) before it reads the body; a streamed handoff holds its slot until it ends", async () => {
  const { signFrames, importSecret } = await import("../src/protocol/auth.ts");
  const { encodeTensor } = await import("../src/protocol/tensor-codec.ts");
  const small = await createHostHandler({ model: served, secret: SECRET, maxConcurrent: 1, maxQueue: 1 });
  const post = (body: Uint8Array | ReadableStream<Uint8Array>) => small(new Request("http://host.test/v1/run", { method: "POST", body: body as BodyInit, duplex: "half" } as RequestInit));
  const f = await modelFacts();
  const c = f.config;
  const x = encodeTensor({ shape: [1, c.in_channels, c.input_size, c.input_size], data: new Float32Array(c.in_channels * c.input_size ** 2).fill(0.1) });
  const [hello] = unetFrames(f, "s-admit-long", { hello: { cut: "handoff", generation: { labels: [7], steps: 40, sampler: "ddim", eta: 0, cfg_scale: 1, cfg_mode: "standard", seed: 1 } } });
  const long = await signFrames(await importSecret(SECRET), [hello, { v: hello.v, session: "s-admit-long", seq: 2, type: "handoff", preview_every: 0, state: { x, next_step: 0, rng: null, sampler_state: null } }], { audience: "host.test" });
  // 1: a 40-step handoff takes the one slot and streams its answer.
  const first = await post(long);
  assert.equal(first.status, 200);
  // 2: queued; its body is not read while it waits (a stream that never delivers more than the auth frame would hang it otherwise).
  const queuedBody = await validBody("s-admit-queued");
  const authLen = 4 + new DataView(queuedBody.buffer, queuedBody.byteOffset).getUint32(0);
  let pulls = 0;
  const queuedStream = new ReadableStream<Uint8Array>({
    pull(ctl) {
      pulls++;
      if (pulls === 1) ctl.enqueue(queuedBody.subarray(0, authLen));
      else {
        ctl.enqueue(queuedBody.subarray(authLen));
        ctl.close();
      }
    },
  }, { highWaterMark: 0 });
  const queued = post(queuedStream);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(pulls, 1, "a queued request's body is read only up to its auth frame");
  // 3: the queue is full: busy at once, with a hint when to retry.
  const third = await post(await validBody("s-admit-third"));
  assert.equal(third.status, 503);
  assert.ok(Number(third.headers.get("retry-after")) >= 1, "Retry-After");
  const err = decodeFrame(new Uint8Array(await third.arrayBuffer()).subarray(4));
  assert.equal(err.type === "error" && err.code, "busy");
  assert.match(err.type === "error" ? err.message : "", /host is at its limit \(1 running, 1 queued\)/);
  // The handoff ends; the queued request then runs and succeeds.
  const frames = new Uint8Array(await first.arrayBuffer());
  assert.ok(frames.length > 0);
  const q = await queued;
  assert.equal(q.status, 200);
  const qf = decodeFrame(new Uint8Array(await q.arrayBuffer()).subarray(4));
  assert.equal(qf.type, "step_result");
  // And the slot is free again.
  assert.equal((await post(await validBody("s-admit-after"))).status, 200);
});
