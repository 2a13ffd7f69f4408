// Weights by range inside workerd (Cloudflare Workers' runtime): the latent-streaming edge worker
// (examples/workerd/edge-handler.ts, built into bundles/workerd/) given DIC_WEIGHTS_URL reads only the
// encoder's tensors from a loopback server that honours Range and counts the bytes it serves, the host
// (`dic serve --role host --part decode --sha256 HEX`) only the decoder's, and a unet generation between
// them gives what one process computes, bit for bit.
// NOTE: spawns workerd and a Node host itself, so it runs under vitest only.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generate, loadDefaultModel } from "../sdk/index.ts";
import { sha256Hex } from "../src/weights/download.ts";
import { type Frame, FRAMES_MEDIA_TYPE } from "../src/protocol/frames.ts";
import { FrameReader } from "../src/protocol/stream.ts";
import { decodeTensor } from "../src/protocol/tensor-codec.ts";
import { runtimeName, test } from "./harness.ts";
import { repoRoot as root } from "./package-install.ts";
import { freePort, type ServerProcess, startServer } from "./processes.ts";
import { serveFolder } from "./workerd-config.ts";

const SECRET = "a-long-random-shared-secret-for-workerd-range-tests";

if (runtimeName !== "node") {
  console.log(`workerd ranges: process test runs under vitest only; skipped in ${runtimeName}`);
} else {
  test("workerd: the edge worker reads only the encoder's tensors by HTTP Range, and its unet generation equals one process", async () => {
    const weights = new Uint8Array(readFileSync(`${root}models/dic-fashion.safetensors`));
    // Bytes served and requests per path: /edge.safetensors for the worker, /host.safetensors for the host.
    const served: Record<string, number> = {}, ranged: Record<string, number> = {};
    let whole = 0;
    const files = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
      if (!m) {
        whole++;
        res.writeHead(200, { "content-length": weights.length }).end(weights);
        return;
      }
      ranged[path] = (ranged[path] ?? 0) + 1;
      const a = Number(m[1]), b = Math.min(Number(m[2]), weights.length - 1);
      served[path] = (served[path] ?? 0) + b - a + 1;
      res.writeHead(206, { "content-range": `bytes ${a}-${b}/${weights.length}`, "content-length": b - a + 1 }).end(weights.subarray(a, b + 1));
    });
    await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
    const filesUrl = `http://127.0.0.1:${(files.address() as { port: number }).port}`;
    const digest = await sha256Hex(weights);
    const dir = mkdtempSync(join(tmpdir(), "dic-workerd-ranges-"));
    const secretFile = join(dir, "secret");
    writeFileSync(secretFile, SECRET + "\n");
    const port = await freePort();
    const procs: ServerProcess[] = [];
    try {
      // The host from the CLI, holding only the decoder's tensors, read by Range too.
      const host = await startServer(process.execPath, [`${root}dist/sdk/bin.js`, "serve", "--role", "host", "--port", String(port), "--secret-file", secretFile,
        "--backend", "js", "--model", `${filesUrl}/host.safetensors`, "--part", "decode", "--sha256", digest], port);
      procs.push(host);
      const edgeDir = join(dir, "edge");
      mkdirSync(edgeDir);
      for (const f of readdirSync(`${root}bundles/workerd`)) if (/^edge-handler\.js$|\.wasm$/.test(f)) copyFileSync(`${root}bundles/workerd/${f}`, join(edgeDir, f));
      const edge = await serveFolder(edgeDir, "edge-handler.js", {
        DIC_UPSTREAMS: host.url, DIC_SECRET: SECRET, DIC_BACKEND: "js", DIC_WEIGHTS_URL: `${filesUrl}/edge.safetensors`, DIC_WEIGHTS_SHA256: digest,
      }, true);
      procs.push(edge);
      const labels = [7], steps = 4, seed = 11;
      const res = await fetch(`${edge.url}/v1/generate`, { method: "POST", body: JSON.stringify({ labels, steps, seed, cut: "unet" }), headers: { accept: FRAMES_MEDIA_TYPE, "content-type": "application/json" } });
      assert.equal(res.status, 200, await res.clone().text());
      const reader = new FrameReader(res.body!, 1 << 26);
      let fin: Frame | null = null;
      for (let f = await reader.next(); f; f = await reader.next()) if (f.type !== "preview") fin = f;
      assert.equal(fin?.type, "final", JSON.stringify(fin));
      if (fin?.type !== "final") return;
      const got = decodeTensor(fin.x!, [1, 1, 28, 28], "final.x");
      const want = (await generate({ model: await loadDefaultModel("js"), labels, steps, seed })).latents;
      assert.ok(got.data.every((v, i) => Object.is(v, want.data[i])), "the unet cut through a range-loaded edge in workerd");
      for (const [side, path] of [["edge (workerd)", "/edge.safetensors"], ["host (dic serve --part decode)", "/host.safetensors"]]) {
        console.log(`workerd ranges: the ${side} read ${served[path]} of ${weights.length} bytes (${(100 * served[path] / weights.length).toFixed(1)}%) in ${ranged[path]} range requests`);
        assert.ok(ranged[path] >= 2 && served[path] < 0.7 * weights.length, `${path}: ${served[path]} bytes in ${ranged[path]} requests`);
      }
      assert.equal(whole, 0, "no whole-file request");
      assert.ok(served["/host.safetensors"] < 0.5 * weights.length);
      assert.ok(host.log.some((l) => /host listening on .*part decode: \d+ of 1912972 bytes read/.test(l)), host.log.join("\n"));
    } finally {
      for (const p of procs) p.stop();
      files.closeAllConnections?.();
      await new Promise((r) => files.close(r));
    }
  });
}
