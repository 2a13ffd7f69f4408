// Tensor-by-tensor weight loading (src/weights/source.ts, http-source.ts, open.ts; src/model/params.ts parts)
// against a local HTTP server that honours Range (or not) and counts the bytes it serves: each side of the
// unet cut reads only its tensors, a server that ignores Range still works and the load says so, the parts
// compute exactly what the whole model does, broken answers fail with their codes, ranges are cached, and
// a file is read through a handle in bounded pieces, never whole.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../sdk/cli.ts";
import { generate } from "../sdk/generate.ts";
import { type Frame, FRAMES_MEDIA_TYPE } from "../src/protocol/frames.ts";
import { FrameReader } from "../src/protocol/stream.ts";
import { decodeTensor } from "../src/protocol/tensor-codec.ts";
import { CacheApiCache, DownloadError, loadModel, loadServingModel } from "../sdk/index.ts";
import type { Backend, Tensor } from "../src/backend/contract.ts";
import { createBackend } from "../src/backend/registry.ts";
import { resolveConfig } from "../src/model/config.ts";
import type { DiCGraph } from "../src/model/dic.ts";
import { bindDiCFrom, configForFile } from "../src/model/load.ts";
import { expectedParams, partParams } from "../src/model/params.ts";
import { sha256Hex } from "../src/weights/download.ts";
import { httpRangeSource, type RangeCacheStore } from "../src/weights/http-source.ts";
import { WeightsError, writeSafetensors } from "../src/weights/safetensors.ts";
import { Sha256 } from "../src/weights/sha256.ts";
import { randomVAEWeights } from "../bench/lib/random-vae.ts";
import { expectedVAEParams, resolveVAEConfig } from "../src/vae/index.ts";
import { loadVAE } from "../sdk/vae.ts";
import { fileSource } from "../src/weights/source.ts";
import type { HostTensor } from "../src/tensor.ts";
import { test } from "./harness.ts";
import { repoRoot } from "./package-install.ts";

const weights = new Uint8Array(readFileSync(repoRoot + "models/dic-fashion.safetensors"));
// A small SD-VAE-shaped decoder with an encoder beside it (as in a full VAE file): loadVAE reads the decoder only.
const vaeConfig = resolveVAEConfig({ block_out_channels: [8, 8, 16, 16], layers_per_block: 1, norm_groups: 4 });
const vaeTensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
for (const [name, t] of randomVAEWeights(vaeConfig, 9)) vaeTensors[name] = { dtype: "F32", shape: expectedVAEParams(vaeConfig).get(name)!, data: t.data };
vaeTensors["encoder.conv_in.weight"] = { dtype: "F32", shape: [64, 3, 3, 3], data: new Float32Array(64 * 27).fill(0.5) };
vaeTensors["encoder.mid.big"] = { dtype: "F32", shape: [256, 1024], data: new Float32Array(256 * 1024).fill(0.25) };
vaeTensors["quant_conv.weight"] = { dtype: "F32", shape: [8, 8, 1, 1], data: new Float32Array(64).fill(1) };
const vaeBytes = writeSafetensors(vaeTensors, { config: JSON.stringify({ norm_groups: 4 }) });
const served: Record<string, number> = {}; // bytes of body sent per path
const requests: Record<string, number> = {};

function parseRange(h: string | undefined, size: number): [number, number] | null {
  const m = /^bytes=(\d+)-(\d*)$/.exec(h ?? "");
  if (!m) return null;
  return [Number(m[1]), m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1)];
}

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  requests[path] = (requests[path] ?? 0) + 1;
  const send = (status: number, headers: Record<string, string | number>, body: Uint8Array) => {
    served[path] = (served[path] ?? 0) + body.length;
    res.writeHead(status, { "content-type": "application/octet-stream", "content-length": body.length, ...headers });
    res.end(body);
  };
  const file = path.startsWith("/cut-data/") ? weights.subarray(0, weights.length - 5000) : path.startsWith("/vae/") ? vaeBytes : weights;
  const range = parseRange(req.headers.range, file.length);
  if (path.startsWith("/norange/") || range === null) return send(200, {}, file);
  const [a, b] = range;
  if (a >= file.length) return send(416, { "content-range": `bytes */${file.length}` }, new Uint8Array(0));
  if (path.startsWith("/bad-range/") && a > 0) return send(206, { "content-range": `bytes ${a + 1}-${b + 1}/${file.length}` }, file.subarray(a + 1, b + 2));
  if (path.startsWith("/changed/") && a > 0) return send(206, { "content-range": `bytes ${a}-${b}/${file.length + 1}` }, file.subarray(a, b + 1));
  if (path.startsWith("/retagged/") && a > 0) return send(206, { "content-range": `bytes ${a}-${b}/${file.length}`, etag: '"v2"' }, file.subarray(a, b + 1));
  if (path.startsWith("/short/") && a > 0) {
    // Declares the whole range, sends half of it, then drops the connection.
    res.writeHead(206, { "content-range": `bytes ${a}-${b}/${file.length}`, "content-length": b - a + 1 });
    res.write(file.subarray(a, a + ((b - a + 1) >> 1)), () => setTimeout(() => res.destroy(), 20));
    served[path] = (served[path] ?? 0) + ((b - a + 1) >> 1);
    return;
  }
  // As a cross-origin response that does not expose Content-Range: the body length alone.
  if (path.startsWith("/no-content-range/")) return send(206, {}, file.subarray(a, b + 1));
  if (path.startsWith("/gone/") && a > 0) return send(416, { "content-range": `bytes */${file.length}` }, new Uint8Array(0));
  send(206, { "content-range": `bytes ${a}-${b}/${file.length}`, "accept-ranges": "bytes", etag: '"v1"' }, file.subarray(a, b + 1));
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
let open = 7; // tests below; the last one to finish closes the server
const closeWhenDone = () => { if (--open === 0) { server.closeAllConnections?.(); server.close(); } };

const js = (await createBackend("js")).backend;
const probe = { x: { shape: [2, 1, 28, 28], data: Float32Array.from({ length: 2 * 784 }, (_, i) => Math.sin(i * 0.37)) }, t: [17, 640], y: [3, 10] };

/** The unet cut run across two graphs: encode on `edge`, tensors through the host, decode on `host`. */
async function acrossCut(edge: DiCGraph, host: DiCGraph): Promise<HostTensor> {
  const xe = edge.backend.upload(probe.x);
  const enc = edge.encode(xe, probe.t, probe.y);
  edge.backend.free(xe);
  const wire = await Promise.all([enc.bottleneck, ...enc.skips].map((t) => edge.backend.download(t)));
  for (const t of [enc.bottleneck, ...enc.skips]) edge.backend.free(t);
  const [bottleneck, ...skips] = wire.map((w) => host.backend.upload(w));
  const out = host.decode({ bottleneck, skips }, probe.t, probe.y);
  try {
    return await host.backend.download(out);
  } finally {
    host.backend.free(out);
  }
}

async function rejectsWith(p: Promise<unknown>, kind: typeof DownloadError | typeof WeightsError, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof kind, String(e));
    assert.equal((e as { code: string }).code, code, (e as Error).message);
    assert.match((e as Error).message, message);
    return true;
  });
}

test("ranges: each side of the unet cut reads only its tensors by Range; the parts compute exactly the whole model", async () => {
  try {
    const whole = await loadModel(weights, { backend: "js" });
    const reference = await whole.forward(probe.x, probe.t, probe.y);
    const cfg = whole.config;
    const dataStart = 8 + Number(new DataView(weights.buffer, weights.byteOffset).getBigUint64(0, true));
    const partBytes = (part: "encode" | "decode") => {
      const h = JSON.parse(new TextDecoder().decode(weights.subarray(8, dataStart)));
      return [...partParams(cfg, part).keys()].reduce((a, k) => a + h[k].data_offsets[1] - h[k].data_offsets[0], 0);
    };

    const edge = await loadModel(`${base}/edge.safetensors`, { backend: "js", part: "encode", download: { cache: false } });
    const host = await loadModel(`${base}/host.safetensors`, { backend: "js", part: "decode", download: { cache: false } });
    for (const [m, path, part] of [[edge, "/edge.safetensors", "encode"], [host, "/host.safetensors", "decode"]] as const) {
      const info = m.loadInfo!;
      assert.equal(m.part, part);
      assert.equal(info.mode, "ranges");
      assert.equal(info.notice, null);
      assert.equal(info.fileSize, weights.length);
      assert.equal(info.bytesRead, served[path], "the server counted what the load counted");
      assert.equal(info.tensorBytes, partBytes(part));
      assert.equal(info.tensors, partParams(cfg, part).size);
      // The header request plus a few coalesced reads, and little beyond the part's own bytes.
      assert.ok(info.requests <= 8, `${info.requests} requests`);
      assert.ok(info.bytesRead < partBytes(part) + 64 * 1024 + 4 * 64 * 1024, `${path}: ${info.bytesRead} bytes read for ${partBytes(part)} of tensors`);
      console.log(`ranges: part ${part}: ${info.bytesRead} of ${weights.length} bytes (${(100 * info.bytesRead / weights.length).toFixed(1)}%), ${info.requests} requests`);
    }
    // This model's encoder and latent stage hold 61% of its bytes, the decoder and head 41%.
    assert.ok(served["/edge.safetensors"] < 0.7 * weights.length && served["/host.safetensors"] < 0.5 * weights.length);
    // The edge holds no decoder tensor, the host no encoder tensor, and each says what it cannot run.
    assert.deepEqual([...partParams(cfg, "encode").keys()].filter((k) => partParams(cfg, "decode").has(k)).sort(), ["t_embedder_ls.0.mlp.0.bias", "t_embedder_ls.0.mlp.0.weight", "t_embedder_ls.0.mlp.2.bias", "t_embedder_ls.0.mlp.2.weight", "t_embedder_ls.1.mlp.0.bias", "t_embedder_ls.1.mlp.0.weight", "t_embedder_ls.1.mlp.2.bias", "t_embedder_ls.1.mlp.2.weight", "y_embedder_ls.0.embedding_table.weight", "y_embedder_ls.1.embedding_table.weight"]);
    assert.equal(partParams(cfg, "encode").size + partParams(cfg, "decode").size - 10, expectedParams(cfg).size);
    await assert.rejects(edge.forward(probe.x, probe.t, probe.y), /loaded with part "encode"/);
    await assert.rejects(host.forward(probe.x, probe.t, probe.y), /loaded with part "decode"/);
    const xh = host.backend.upload(probe.x);
    assert.throws(() => host.graph.encode(xh, probe.t, probe.y), /encode needs the "encode" part/);
    host.backend.free(xh);

    // Exactly the whole model's output, across the cut and for a full load by ranges.
    const cut = await acrossCut(edge.graph, host.graph);
    assert.deepEqual(cut.shape, reference.shape);
    assert.deepEqual(cut.data, reference.data);
    const full = await loadModel(`${base}/full.safetensors`, { backend: "js", download: { cache: false } });
    assert.equal(full.loadInfo!.mode, "ranges");
    assert.deepEqual((await full.forward(probe.x, probe.t, probe.y)).data, reference.data);
    // The same from a file path (file handle) and from a Response (stream), per part.
    const dir = mkdtempSync(join(tmpdir(), "dic-ranges-"));
    writeFileSync(join(dir, "w.safetensors"), weights);
    const edgeFile = await loadModel(join(dir, "w.safetensors"), { backend: "js", part: "encode" });
    assert.equal(edgeFile.loadInfo!.mode, "file");
    assert.ok(edgeFile.loadInfo!.bytesRead < 0.65 * weights.length);
    const hostStream = await loadModel(new Response(weights as Uint8Array<ArrayBuffer>), { backend: "js", part: "decode" });
    assert.equal(hostStream.loadInfo!.mode, "stream");
    assert.deepEqual((await acrossCut(edgeFile.graph, hostStream.graph)).data, reference.data);
  } finally {
    closeWhenDone();
  }
});

test("ranges: a server that ignores Range is read once as a stream, and the load says so", async () => {
  try {
    const reference = await (await loadModel(weights, { backend: "js" })).forward(probe.x, probe.t, probe.y);
    const progress: number[] = [];
    const edge = await loadModel(`${base}/norange/w.safetensors`, { backend: "js", part: "encode", download: { cache: false, onProgress: (p) => progress.push(p.loaded) } });
    const info = edge.loadInfo!;
    assert.equal(info.mode, "stream");
    assert.match(info.notice ?? "", /norange\/w\.safetensors: the server ignored the Range request \(HTTP 200, whole file\); reading the whole file \(1912972 bytes\)/);
    assert.equal(requests["/norange/w.safetensors"], 1, "one request, read as it streams");
    assert.ok(progress.length > 0 && progress.every((v, i) => i === 0 || v >= progress[i - 1]));
    const host = await loadModel(`${base}/norange/h.safetensors`, { backend: "js", part: "decode", download: { cache: false } });
    assert.deepEqual((await acrossCut(edge.graph, host.graph)).data, reference.data);
    // A full model too, with the notice as a callback.
    const notes: string[] = [];
    const full = await loadModel(`${base}/norange/f.safetensors`, { backend: "js", download: { cache: false, onNotice: (l) => notes.push(l) } });
    assert.deepEqual((await full.forward(probe.x, probe.t, probe.y)).data, reference.data);
    assert.deepEqual(notes, [full.loadInfo!.notice]);
    // The CLI prints it as one line.
    const lines: string[] = [], errs: string[] = [];
    const out = join(mkdtempSync(join(tmpdir(), "dic-ranges-cli-")), "bag.png");
    const status = await runCli(["generate", "--model", `${base}/norange/cli.safetensors`, "--no-cache", "--backend", "js", "--label", "bag", "--steps", "1", "--out", out], { out: (l) => lines.push(l), err: (l) => errs.push(l) });
    assert.equal(status, 0, errs.join("\n"));
    // dic serve --part: each role holds its own side.
    const secretFile = join(mkdtempSync(join(tmpdir(), "dic-ranges-secret-")), "secret");
    writeFileSync(secretFile, "a-long-shared-secret!\n");
    for (const [role, part] of [["host", "encode"], ["edge", "decode"]]) {
      const serveErrs: string[] = [];
      const args = ["serve", "--role", role, "--port", "0", "--secret-file", secretFile, "--part", part, ...(role === "edge" ? ["--upstream", "http://127.0.0.1:9"] : [])];
      assert.equal(await runCli(args, { out: () => {}, err: (l) => serveErrs.push(l) }), 1);
      assert.match(serveErrs.join("\n"), new RegExp(`--part: a ${role} of the unet cut holds ${role === "host" ? "decode" : "encode"}`));
    }
    assert.deepEqual(errs.filter((l) => l.startsWith("dic: note: ")), [`dic: note: ${base}/norange/cli.safetensors: the server ignored the Range request (HTTP 200, whole file); reading the whole file (1912972 bytes) once, in order, keeping only the tensors needed`]);
  } finally {
    closeWhenDone();
  }
});

test("ranges: wrong ranges, short bodies, 416, a changed file and truncated files fail with their codes", async () => {
  try {
    const opts = { backend: "js" as const, part: "encode" as const, download: { cache: false } };
    await rejectsWith(loadModel(`${base}/bad-range/w.safetensors`, opts), DownloadError, "bad_range", /asked for bytes \d+-\d+, the server sent "bytes /);
    await rejectsWith(loadModel(`${base}/changed/w.safetensors`, opts), DownloadError, "bad_range", /the file is now 1912973 bytes, it was 1912972/);
    await rejectsWith(loadModel(`${base}/retagged/w.safetensors`, opts), DownloadError, "bad_range", /the file's ETag is now "v2", it was "v1"/);
    await rejectsWith(loadModel(`${base}/gone/w.safetensors`, opts), DownloadError, "bad_range", /outside the file \(HTTP 416\)/);
    await assert.rejects(loadModel(`${base}/short/w.safetensors`, opts), (e: unknown) => {
      assert.ok(e instanceof DownloadError && ["truncated", "network"].includes(e.code), String(e));
      assert.match((e as Error).message, /short\/w\.safetensors/);
      return true;
    });
    // A file cut in its data: the header check (against the size the server reports) fails before any tensor is read.
    const before = requests["/cut-data/w.safetensors"] ?? 0;
    await rejectsWith(loadModel(`${base}/cut-data/w.safetensors`, opts), WeightsError, "offsets_out_of_range", /exceed the \d+-byte data buffer/);
    assert.equal(requests["/cut-data/w.safetensors"] - before, 1, "only the header was asked for");
    // The same file served whole (no Range): the stream ends inside a tensor.
    const cut = weights.subarray(0, weights.length - 5000);
    await rejectsWith(loadModel(new Response(cut as Uint8Array<ArrayBuffer>), { backend: "js", part: "decode" }), DownloadError, "truncated", /connection ended after \d+ bytes, the file needs \d+/);
    // A corrupt header through a file handle keeps its WeightsError code; nothing past the header is read.
    const bad = weights.slice();
    new DataView(bad.buffer).setUint32(0, 0xfffffff0, true);
    await rejectsWith(loadModel(bad, { backend: "js", part: "encode" }), WeightsError, "header_too_large", /exceeds the 100000000-byte limit/);
    const dir = mkdtempSync(join(tmpdir(), "dic-ranges-bad-"));
    writeFileSync(join(dir, "bad.safetensors"), bad);
    await rejectsWith(loadModel(join(dir, "bad.safetensors"), { backend: "js", part: "encode" }), WeightsError, "header_too_large", /bad\.safetensors/);
    // With sha256 and no cache, one GET streams through the hash; a mismatch fails after the bind, freeing it.
    const digest = await sha256Hex(weights);
    const checked = await loadModel(`${base}/norange/sha.safetensors`, { backend: "js", part: "encode", download: { cache: false, sha256: digest } });
    assert.equal(checked.loadInfo!.mode, "stream");
    assert.equal(checked.loadInfo!.bytesRead, weights.length, "a hash covers the whole file");
    const uploads: number[] = [];
    const counting = { ...js, upload: (t: HostTensor, role?: string) => (uploads.push(1), js.upload(t, role as never)), free: (t: Tensor) => (uploads.pop(), js.free(t)) } as Backend;
    await rejectsWith(loadModel(new Response(weights as Uint8Array<ArrayBuffer>), { backend: counting, download: { sha256: "e".repeat(64) } }), DownloadError, "checksum", new RegExp(`SHA-256 of the download is ${digest}, expected e{64}`));
    assert.equal(uploads.length, 0, "every tensor uploaded before the mismatch was freed");
    await rejectsWith(loadModel(`${base}/sha-bad.safetensors`, { backend: "js", download: { cache: false, sha256: "0".repeat(64) } }), DownloadError, "checksum", /expected 0{64}/);
    // Without a readable Content-Range the size comes from the header, and the load still works.
    const hidden = await loadModel(`${base}/no-content-range/w.safetensors`, { backend: "js", part: "encode", download: { cache: false } });
    assert.equal(hidden.loadInfo!.mode, "ranges");
    assert.equal(hidden.loadInfo!.fileSize, weights.length);
    // A file that shrank after its header was read (its handle reports the old size): offsets_out_of_range.
    const { openFile } = await import("../src/fs.ts");
    const shrunk = join(dir, "shrunk.safetensors");
    writeFileSync(shrunk, weights.subarray(0, weights.length - 5000));
    const lying = async (p: string) => ({ ...(await openFile(p)), size: async () => weights.length });
    const src = fileSource(shrunk, { open: lying });
    await rejectsWith(bindDiCFrom(src, configForFile(await src.header()), js, { part: "decode" }), WeightsError, "offsets_out_of_range", /file ended \d+ bytes into a \d+-byte read/);
    await src.close();
    // A wrong model: the tensor table is checked as a whole, whatever the part.
    await rejectsWith(loadModel(weights, { backend: "js", part: "encode", config: { hidden_size: 32 } }), WeightsError, "shape_mismatch", /expected shape/);
  } finally {
    closeWhenDone();
  }
});

test("ranges: kept in a range cache (the Cache API where the runtime has one): a second load asks the server nothing", async () => {
  try {
    const store = new Map<string, Response>();
    const memoryStore: RangeCacheStore = {
      match: async (k) => store.get(k)?.clone(),
      put: async (k, r) => void store.set(k, r),
    };
    const cfgOf = async (src: ReturnType<typeof httpRangeSource>) => configForFile(await src.header());
    const url = `${base}/cached/w.safetensors`;
    const first = httpRangeSource(url, { cache: memoryStore });
    const g1 = await bindDiCFrom(first, await cfgOf(first), js, { part: "encode" });
    assert.ok(store.size >= 2);
    const servedBefore = served["/cached/w.safetensors"];
    const second = httpRangeSource(url, { cache: memoryStore });
    const g2 = await bindDiCFrom(second, await cfgOf(second), js, { part: "encode" });
    assert.equal(served["/cached/w.safetensors"], servedBefore, "nothing served the second time");
    assert.equal(second.info.requests, 0);
    assert.equal(second.info.bytesFromCache, second.info.bytesRead);
    assert.equal(second.info.bytesRead, first.info.bytesRead);
    const host = await loadModel(weights, { backend: "js", part: "decode" });
    assert.deepEqual((await acrossCut(g2, host.graph)).data, (await acrossCut(g1, host.graph)).data);
    // The real Cache API (Deno here; browsers and workers), through loadModel's download.cache.
    if (typeof (globalThis as { caches?: unknown }).caches === "object") {
      const name = `dic-test-ranges-${Date.now()}`;
      const apiUrl = `${base}/cacheapi/w.safetensors`;
      const a = await loadModel(apiUrl, { backend: "js", part: "encode", download: { cache: new CacheApiCache(name) } });
      const mid = served["/cacheapi/w.safetensors"];
      const b = await loadModel(apiUrl, { backend: "js", part: "encode", download: { cache: new CacheApiCache(name) } });
      assert.equal(served["/cacheapi/w.safetensors"], mid);
      assert.equal(b.loadInfo!.bytesFromCache, a.loadInfo!.bytesRead);
      await (globalThis as unknown as { caches: { delete(n: string): Promise<boolean> } }).caches.delete(name);
    }
  } finally {
    closeWhenDone();
  }
});

/** A backend that keeps nothing: lets a test see the load's own memory, not the model's. */
function nullBackend(): Backend {
  return { name: "null", upload: (t: HostTensor) => ({ shape: t.shape }) as unknown as Tensor, free: () => {} } as unknown as Backend;
}

/** A full garbage collection where the runtime offers one (Bun.gc; Node's gc, exposed through node:v8), else null. */
async function collectGarbage(): Promise<(() => void) | null> {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun) return () => bun.gc(true);
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === "function") return g;
  if (typeof (globalThis as { Deno?: unknown }).Deno !== "undefined") return null;
  try {
    const v8 = await import("node:v8");
    const vm = await import("node:vm");
    v8.setFlagsFromString("--expose-gc");
    const fn = vm.runInNewContext("gc") as unknown;
    return typeof fn === "function" ? (fn as () => void) : null;
  } catch {
    return null;
  }
}

test("ranges: a file is read through a handle in bounded reads; the load's peak memory is not the file's size", async () => {
  try {
    // A 58 MB f32 model (hidden 64, DiC depths), zero weights: only the bytes matter here.
    const config = resolveConfig({ hidden_size: 64, depth: [6, 6, 5, 6, 6], input_size: 16, in_channels: 4, num_classes: 10 });
    const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
    for (const [name, shape] of expectedParams(config)) tensors[name] = { dtype: "F32", shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
    const dir = mkdtempSync(join(tmpdir(), "dic-ranges-file-"));
    const path = join(dir, "big.safetensors");
    let size: number;
    {
      const bytes = writeSafetensors(tensors, { config: JSON.stringify(config) });
      size = bytes.length;
      writeFileSync(path, bytes);
    }
    for (const k of Object.keys(tensors)) delete tensors[k];
    assert.ok(size > 50e6, `${size}`);
    const { openFile } = await import("../src/fs.ts");
    const reads: number[] = [];
    const counting = async (p: string) => {
      const fh = await openFile(p);
      return { ...fh, read: (into: Uint8Array, offset: number, length: number, position: number) => (reads.push(length), fh.read(into, offset, length, position)) };
    };
    const gc = await collectGarbage();
    const mem = () => (globalThis as unknown as { process?: { memoryUsage(): { arrayBuffers: number } } }).process?.memoryUsage().arrayBuffers ?? 0;
    gc?.();
    const baseline = mem();
    let peak = baseline, seen = 0;
    const src = fileSource(path, { open: counting });
    const header = await src.header();
    const graph = await bindDiCFrom(src, configForFile(header), nullBackend(), {
      keep: () => {
        if (seen++ % 8 !== 0) return; // a collection per sample: every 8th tensor keeps the test quick
        gc?.();
        peak = Math.max(peak, mem());
      },
    });
    await src.close();
    assert.equal(graph.part, "full");
    const largest = Math.max(...[...header.tensors.values()].map((e) => e.end - e.begin));
    assert.ok(reads.length > 10, `${reads.length} reads`);
    assert.ok(Math.max(...reads) <= Math.max(4 * 1024 * 1024, largest), `largest read ${Math.max(...reads)}`);
    assert.equal(src.info.bytesRead, size);
    assert.equal(src.info.largestReadBytes, Math.max(...reads));
    // The load's own count: a read plus at most one f32 copy (an f32 tensor read alone is used in place).
    assert.ok(src.info.peakBytes >= largest && src.info.peakBytes <= src.info.largestReadBytes + largest && src.info.peakBytes < size / 4, `${src.info.peakBytes}`);
    if (gc !== null && mem() > 0) {
      const extra = peak - baseline;
      console.log(`ranges: file of ${size} bytes loaded with a peak of ${extra} extra array-buffer bytes (largest read ${Math.max(...reads)})`);
      assert.ok(extra < size / 4, `peak ${extra} of a ${size}-byte file`);
    }
    // The encode part reads only its share of the file.
    const edge = fileSource(path);
    await bindDiCFrom(edge, configForFile(await edge.header()), nullBackend(), { part: "encode" });
    await edge.close();
    assert.ok(edge.info.bytesRead < 0.7 * size, `${edge.info.bytesRead} of ${size}`);
  } finally {
    closeWhenDone();
  }
});

test("ranges: loadServingModel loads a part; with weightsSha256 a URL part is read by Range, and the hosts serve only their cuts", async () => {
  try {
    const digest = await sha256Hex(weights);
    const edge = await loadServingModel(`${base}/serve/w.safetensors`, "js", { part: "encode", weightsSha256: digest, download: { cache: false } });
    assert.equal(edge.model.loadInfo!.mode, "ranges");
    assert.ok(edge.model.loadInfo!.bytesRead < 0.65 * weights.length);
    assert.equal(Array.from(edge.weightsSha256, (b) => b.toString(16).padStart(2, "0")).join(""), digest);
    // Without the hash the whole file is read and hashed (bytes), or streamed through a hash (path, URL, Response).
    const host = await loadServingModel(weights, "js", { part: "decode" });
    assert.deepEqual(host.weightsSha256, edge.weightsSha256);
    const dir = mkdtempSync(join(tmpdir(), "dic-ranges-serve-"));
    writeFileSync(join(dir, "w.safetensors"), weights);
    const fromPath = await loadServingModel(join(dir, "w.safetensors"), "js", { part: "decode" });
    const fromUrl = await loadServingModel(`${base}/norange/serve.safetensors`, "js", { part: "encode" });
    const fromResponse = await loadServingModel(new Response(weights as Uint8Array<ArrayBuffer>), "js");
    for (const m of [fromPath, fromUrl, fromResponse]) assert.deepEqual(m.weightsSha256, edge.weightsSha256);
    assert.equal(fromPath.model.loadInfo!.bytesRead, weights.length, "the whole file passes through the hash");
    // A given hash with every tensor: the file is read whole anyway, so it is checked.
    const checkedFull = await loadServingModel(join(dir, "w.safetensors"), "js", { weightsSha256: digest.toUpperCase() });
    assert.deepEqual(checkedFull.weightsSha256, edge.weightsSha256);
    await assert.rejects(loadServingModel(join(dir, "w.safetensors"), "js", { weightsSha256: "1".repeat(64) }), /the weights' SHA-256 is [0-9a-f]{64}, weightsSha256 says 1{64}/);
    assert.equal(fromUrl.model.part, "encode");
    assert.deepEqual((await fromResponse.model.forward(probe.x, probe.t, probe.y)).data, (await acrossCut(fromUrl.model.graph, fromPath.model.graph)).data);
    // A stream cut short fails rather than naming a hash of part of a file.
    await assert.rejects(loadServingModel(new Response(weights.slice(0, weights.length - 10) as Uint8Array<ArrayBuffer>, { headers: { "content-length": String(weights.length - 10) } }), "js"), WeightsError);
    assert.equal(host.model.part, "decode");
    await assert.rejects(loadServingModel(weights, "js", { part: "decode", weightsSha256: "0".repeat(64) }), /weightsSha256 says 0{64}/);
    const { createEdgeHandler, createHostHandler } = await import("../sdk/serve.ts");
    const { toNodeListener } = await import("../sdk/node-adapter.ts");
    const secret = "a-long-shared-secret!";
    const handler = await createHostHandler({ model: host, secret });
    const info = await (await handler(new Request("http://h/v1/info"))).json();
    assert.deepEqual(info.cuts, ["unet", "vae"]);
    // A unet generation between an edge holding only "encode" (read by Range) and a host holding only
    // "decode": the same samples, bit for bit, as one process with the whole model; other cuts are refused.
    const hostServer = createServer(toNodeListener(handler));
    await new Promise<void>((r) => hostServer.listen(0, "127.0.0.1", r));
    try {
      const edgeHandler = await createEdgeHandler({ model: edge, upstreams: [`http://127.0.0.1:${(hostServer.address() as { port: number }).port}`], secret });
      const ask = { labels: [1, 7], steps: 3, sampler: "ddim", guidance: 1.5, seed: 5 };
      const res = await edgeHandler(new Request("http://edge.test/v1/generate", { method: "POST", body: JSON.stringify({ ...ask, cut: "unet" }), headers: { accept: FRAMES_MEDIA_TYPE } }));
      assert.equal(res.status, 200);
      const reader = new FrameReader(res.body!, 1 << 26);
      let fin: Frame | null = null;
      for (let f = await reader.next(); f; f = await reader.next()) if (f.type !== "preview") fin = f;
      assert.equal(fin?.type, "final", JSON.stringify(fin));
      if (fin?.type !== "final") return;
      const whole = await loadModel(weights, { backend: "js" });
      const api = await generate({ model: whole, labels: [1, 7], steps: 3, sampler: "ddim", cfgScale: 1.5, seed: 5 });
      const x = decodeTensor(fin.x!, [2, 1, 28, 28], "final.x");
      assert.deepEqual(x.data, api.latents.data);
      const refused = await edgeHandler(new Request("http://edge.test/v1/generate", { method: "POST", body: JSON.stringify({ ...ask, cut: "handoff" }), headers: { accept: "application/json" } }));
      // The edge API streams NDJSON: the refusal is its error line.
      const lines = (await refused.text()).trim().split("\n").map((l) => JSON.parse(l));
      const err = lines.find((l) => l.type === "error");
      assert.equal(err?.code, "unsupported_cut", JSON.stringify(lines));
      assert.match(err.message, /holds only the "encode" part of the model's weights; it runs the unet cut only, not "handoff"/);
    } finally {
      hostServer.closeAllConnections?.();
      await new Promise((r) => hostServer.close(r));
    }
  } finally {
    closeWhenDone();
  }
});

test("ranges: the incremental SHA-256 (src/weights/sha256.ts) equals Web Crypto's at every block boundary", async () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 65537]) {
    const data = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 255);
    for (const piece of [1, 7, 64, 1 << 20]) {
      const h = new Sha256();
      for (let i = 0; i < n; i += piece) h.update(data.subarray(i, i + piece));
      assert.equal(Array.from(h.digest(), (b) => b.toString(16).padStart(2, "0")).join(""), await sha256Hex(data), `n=${n} piece=${piece}`);
    }
  }
});

test("ranges: loadVAE reads only the decoder's tensors (by Range, through a file handle, from a stream) and decodes as from bytes", async () => {
  try {
    const reference = await loadVAE(vaeBytes, { backend: "js" });
    const latents = { shape: [1, 4, 4, 4], data: Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)) };
    const want = (await reference.decode(latents)).image;
    const decoderBytes = [...expectedVAEParams(vaeConfig).keys()].reduce((a, k) => a + 4 * vaeTensors[k].data.length, 0);
    const dir = mkdtempSync(join(tmpdir(), "dic-ranges-vae-"));
    writeFileSync(join(dir, "vae.safetensors"), vaeBytes);
    const byRange = await loadVAE(`${base}/vae/full.safetensors`, { backend: "js" });
    const byFile = await loadVAE(join(dir, "vae.safetensors"), { backend: "js" });
    const byStream = await loadVAE(new Response(vaeBytes as Uint8Array<ArrayBuffer>), { backend: "js" });
    assert.equal(byRange.loadInfo!.mode, "ranges");
    assert.equal(byFile.loadInfo!.mode, "file");
    for (const m of [byRange, byFile]) {
      assert.equal(m.loadInfo!.tensorBytes, decoderBytes);
      assert.ok(m.loadInfo!.bytesRead < vaeBytes.length - 1_000_000, `${m.loadInfo!.mode}: ${m.loadInfo!.bytesRead} of ${vaeBytes.length}`);
    }
    assert.equal(served["/vae/full.safetensors"], byRange.loadInfo!.bytesRead);
    for (const m of [byRange, byFile, byStream]) assert.deepEqual((await m.decode(latents)).image.data, want.data);
  } finally {
    closeWhenDone();
  }
});
