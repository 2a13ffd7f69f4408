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
      const body = await signFrames(await importSecret(SECRET), unetFrames(await modelFacts(), "s-stale"), { now: Date.now() - 10 * 60_000 });
      const res = await fetch(`${host.url}/v1/run`, { method: "POST", body: body as Uint8Array<ArrayBuffer> });
      assert.equal(res.status, 401);
      const f = decodeFrame(new Uint8Array(await res.arrayBuffer()).subarray(4));
      assert.equal(f.type === "error" && f.code, "stale");
      await checkRefusals((b) => fetch(`${host.url}/v1/run`, { method: "POST", body: b as Uint8Array<ArrayBuffer> }));
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
