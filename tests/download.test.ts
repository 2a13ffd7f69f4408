// Weights by URL (src/weights/download.ts) against a local HTTP server: streamed download with total progress,
// SHA-256 check, the server cache folder (and the Cache API where the runtime has one), every failure with
// its code — storage full included — and loadModel/generate from a URL.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../sdk/cli.ts";
import { generate, loadModel } from "../sdk/index.ts";
import { CacheApiCache, DownloadError, type DownloadProgress, downloadWeights, sha256Hex, type WeightsCache } from "../src/weights/download.ts";
import { test } from "./harness.ts";
import { repoRoot } from "./package-install.ts";

const weights = new Uint8Array(readFileSync(repoRoot + "models/dic-fashion.safetensors"));
const digest = await sha256Hex(weights);
const requests: Record<string, number> = {};

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  requests[path] = (requests[path] ?? 0) + 1;
  if (path.startsWith("/model")) {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": weights.length });
    res.end(weights);
  } else if (path === "/chunked.safetensors") {
    res.writeHead(200, { "content-type": "application/octet-stream" }); // no length: chunked encoding
    for (let i = 0; i < weights.length; i += 256 * 1024) res.write(weights.subarray(i, i + 256 * 1024));
    res.end();
  } else if (path === "/truncated.safetensors") {
    res.writeHead(200, { "content-length": weights.length });
    res.write(weights.subarray(0, 100_000), () => setTimeout(() => res.destroy(), 50));
  } else if (path === "/slow.safetensors") {
    res.writeHead(200, { "content-length": weights.length });
    let i = 0;
    const tick = () => {
      if (res.destroyed || i >= weights.length) return res.end();
      res.write(weights.subarray(i, i += 65536));
      setTimeout(tick, 20);
    };
    tick();
  } else {
    res.writeHead(404).end("no such file");
  }
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
const hasCacheApi = typeof (globalThis as { caches?: unknown }).caches === "object";
let open = hasCacheApi ? 4 : 3; // tests below; the last one to finish closes the server
const closeWhenDone = () => { if (--open === 0) { server.closeAllConnections?.(); server.close(); } };

async function rejects(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof DownloadError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

test("download: streamed with total progress and a SHA-256 check; loadModel and generate from a URL", async () => {
  try {
    const seen: DownloadProgress[] = [];
    const bytes = await downloadWeights(`${base}/model-a.safetensors`, { cache: false, sha256: digest, onProgress: (p) => seen.push({ ...p }) });
    assert.deepEqual(bytes, weights);
    assert.ok(seen.length >= 1);
    for (const [i, p] of seen.entries()) {
      assert.equal(p.total, weights.length);
      assert.equal(p.fromCache, false);
      if (i > 0) assert.ok(p.loaded > seen[i - 1].loaded);
    }
    assert.equal(seen[seen.length - 1].loaded, weights.length);
    // Without Content-Length the total is unknown, the bytes still arrive whole.
    const chunked: DownloadProgress[] = [];
    assert.deepEqual(await downloadWeights(`${base}/chunked.safetensors`, { cache: false, onProgress: (p) => chunked.push(p) }), weights);
    assert.ok(chunked.every((p) => p.total === null) && chunked[chunked.length - 1].loaded === weights.length);
    // loadModel(url) with download options, then generate.
    let last = 0;
    const model = await loadModel(`${base}/model-b.safetensors`, { backend: "js", download: { cache: false, sha256: digest.toUpperCase(), onProgress: (p) => (last = p.loaded) } });
    assert.equal(last, weights.length);
    const r = await generate({ model, label: "bag", steps: 2, seed: 1 });
    assert.equal(r.images[0].labelName, "Bag");
    // The CLI: --model URL with --sha256, a progress line on a terminal; a wrong digest ends with status 1.
    const out = join(mkdtempSync(join(tmpdir(), "dic-cli-url-")), "bag.png");
    const lines: string[] = [], errs: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => errs.push(l), progress: (t: string) => lines.push(t) };
    const args = ["generate", "--model", `${base}/model-cli.safetensors`, "--no-cache", "--label", "bag", "--steps", "2", "--out", out];
    assert.equal(await runCli([...args, "--sha256", digest], io), 0, errs.join("\n"));
    assert.ok(lines.some((l) => l.startsWith(`weights: 1.9 / 1.9 MB`)), lines.join("|"));
    assert.ok(existsSync(out));
    assert.equal(await runCli([...args, "--sha256", "f".repeat(64)], io), 1);
    assert.match(errs[errs.length - 1], /^dic: error: .*model-cli\.safetensors: SHA-256 of the download is [0-9a-f]{64}, expected f{64} \[checksum\]$/);
  } finally {
    closeWhenDone();
  }
});

test("download: cached in a folder on servers; a cache hit makes no request; bad copies are fetched again", async () => {
  try {
    const dir = mkdtempSync(join(tmpdir(), "dic-cache-"));
    const url = `${base}/model-cached.safetensors`;
    assert.deepEqual(await downloadWeights(url, { cache: dir, sha256: digest }), weights);
    assert.equal(requests["/model-cached.safetensors"], 1);
    const files = readdirSync(dir);
    assert.equal(files.length, 1);
    assert.match(files[0], /^[0-9a-f]{32}-model-cached\.safetensors$/);
    const progress: DownloadProgress[] = [];
    assert.deepEqual(await downloadWeights(url, { cache: dir, sha256: digest, onProgress: (p) => progress.push(p) }), weights);
    assert.equal(requests["/model-cached.safetensors"], 1, "served from the cache");
    assert.deepEqual(progress, [{ url, loaded: weights.length, total: weights.length, fromCache: true }]);
    // A corrupted cached copy fails its checksum, is dropped and downloaded again.
    const corrupt = weights.slice();
    corrupt[1000] ^= 1;
    writeFileSync(join(dir, files[0]), corrupt);
    assert.deepEqual(await downloadWeights(url, { cache: dir, sha256: digest }), weights);
    assert.equal(requests["/model-cached.safetensors"], 2);
    // DIC_CACHE_DIR is the default folder.
    const envDir = mkdtempSync(join(tmpdir(), "dic-cache-env-"));
    const proc = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process;
    const before = proc.env.DIC_CACHE_DIR;
    proc.env.DIC_CACHE_DIR = envDir;
    try {
      await downloadWeights(`${base}/model-env.safetensors`);
    } finally {
      if (before === undefined) delete proc.env.DIC_CACHE_DIR;
      else proc.env.DIC_CACHE_DIR = before;
    }
    assert.equal(readdirSync(envDir).length, 1);
  } finally {
    closeWhenDone();
  }
});

test("download: clear errors for HTTP failures, wrong checksums (never cached), truncation, aborts and full storage", async () => {
  try {
    const dir = mkdtempSync(join(tmpdir(), "dic-cache-"));
    await rejects(downloadWeights(`${base}/missing.safetensors`, { cache: dir }), "http", /missing\.safetensors: HTTP 404/);
    await rejects(downloadWeights(`${base}/model-x.safetensors`, { cache: dir, sha256: "ab" }), "bad_option", /64 hex digits/);
    await rejects(downloadWeights(`${base}/model-bad.safetensors`, { cache: dir, sha256: "0".repeat(64) }), "checksum", new RegExp(`SHA-256 of the download is ${digest}, expected 0{64}`));
    assert.deepEqual(readdirSync(dir), [], "a file that failed its checksum is not cached");
    await assert.rejects(downloadWeights(`${base}/truncated.safetensors`, { cache: false }), (e: unknown) => {
      assert.ok(e instanceof DownloadError && ["truncated", "network"].includes(e.code), String(e));
      assert.match((e as Error).message, /truncated\.safetensors/);
      return true;
    });
    const ac = new AbortController();
    await rejects(downloadWeights(`${base}/slow.safetensors`, { cache: false, signal: ac.signal, onProgress: () => ac.abort() }), "aborted", /slow\.safetensors/);
    // Storage full: the ENOSPC of a full disk and the QuotaExceededError of a browser's Cache API.
    const full = (error: Error): WeightsCache => ({ where: "/full/disk", get: async () => null, put: () => Promise.reject(error), delete: async () => {} });
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    await rejects(downloadWeights(`${base}/model-full.safetensors`, { cache: full(enospc) }), "storage_full", /storage is full: cannot cache 1\.9 MB of weights in \/full\/disk .*cache: false/);
    await rejects(downloadWeights(`${base}/model-full.safetensors`, { cache: full(new DOMException("quota", "QuotaExceededError")) }), "storage_full", /storage is full/);
    // A cache folder that cannot be written for another reason says so too.
    const file = join(dir, "not-a-folder");
    writeFileSync(file, "x");
    await rejects(downloadWeights(`${base}/model-y.safetensors`, { cache: file }), "cache", /could not cache/);
    assert.ok(existsSync(file));
  } finally {
    closeWhenDone();
  }
});

// Node and Bun have no Cache API (globalThis.caches); it is exercised here under Deno and in Chromium, storage
// quota included (tests/browser.test.ts).
if (hasCacheApi) test("download: the Cache API store (browsers, workers; Deno has it too)", async () => {
  try {
    const store = new CacheApiCache(`dic-test-${Date.now()}`);
    const url = `${base}/model-cacheapi.safetensors`;
    assert.deepEqual(await downloadWeights(url, { cache: store, sha256: digest }), weights);
    let fromCache = false;
    assert.deepEqual(await downloadWeights(url, { cache: store, onProgress: (p) => (fromCache = p.fromCache) }), weights);
    assert.ok(fromCache);
    assert.equal(requests["/model-cacheapi.safetensors"], 1);
    await (globalThis as unknown as { caches: { delete(n: string): Promise<boolean> } }).caches.delete(store.where);
  } finally {
    closeWhenDone();
  }
});
