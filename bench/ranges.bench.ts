// bench/ranges: bytes a load reads for each part of the `unet` cut, through loadModel(url, { part }) against
// a local HTTP server that honours Range and counts the bytes it serves. Models: the embedded default model
// and DiC-S / DiC-B at the official 32x32x4 latent shape (f32 files of zero weights: only the layout matters).
// Run: node --expose-gc dist/bench/ranges.bench.js [--models default,DiC-S,DiC-B] [--json]   (or: bun bench/ranges.bench.ts)
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { processArgs } from "../src/env.ts";
import type { Backend, Tensor } from "../src/backend/contract.ts";
import { resolveConfig, type DiCConfig } from "../src/model/config.ts";
import { expectedParams, type ModelPart } from "../src/model/params.ts";
import { loadModel } from "../sdk/model.ts";
import type { HostTensor } from "../src/tensor.ts";
import { repoRoot } from "./root.ts";

const { values } = parseArgs({ args: processArgs(), options: { models: { type: "string", default: "default,DiC-S,DiC-B" }, json: { type: "boolean" } } });

/** A backend that keeps nothing: the bench measures reads, not uploads. */
const nullBackend = { name: "null", description: "null", upload: (t: HostTensor) => ({ shape: t.shape }) as unknown as Tensor, free: () => {} } as unknown as Backend;

/** Writes a safetensors file of zero f32 weights for `config`, tensor by tensor (never whole in memory). */
function writeZeros(path: string, config: DiCConfig): number {
  const params = [...expectedParams(config)].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const header: Record<string, unknown> = { __metadata__: { config: JSON.stringify(config) } };
  let off = 0;
  for (const [name, shape] of params) {
    const n = 4 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: "F32", shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  json = new TextEncoder().encode(JSON.stringify(header).padEnd(padded, " "));
  const fd = openSync(path, "w");
  const len = new Uint8Array(8);
  new DataView(len.buffer).setUint32(0, padded, true);
  writeSync(fd, len);
  writeSync(fd, json);
  const zeros = new Uint8Array(1 << 20);
  for (let left = off; left > 0; left -= zeros.length) writeSync(fd, zeros, 0, Math.min(left, zeros.length));
  closeSync(fd);
  return 8 + padded + off;
}

const dir = mkdtempSync(join(tmpdir(), "dic-ranges-bench-"));
const files: { model: string; path: string; size: number }[] = [];
for (const m of values.models!.split(",")) {
  if (m === "default") {
    const path = join(repoRoot().pathname, "models/dic-fashion.safetensors");
    files.push({ model: "default (dic-fashion)", path, size: statSync(path).size });
  } else {
    const path = join(dir, `${m}.safetensors`);
    files.push({ model: `${m} 32x32x4`, path, size: writeZeros(path, resolveConfig({ preset: m as "DiC-S" })) });
  }
}

let served = 0;
// Serves byte ranges read from disk (no Range: the whole file), counting what it sends.
const server = createServer((req, res) => {
  const f = files[Number(new URL(req.url ?? "/", "http://x").pathname.slice(1))];
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
  const a = m ? Number(m[1]) : 0, b = m ? Math.min(Number(m[2]), f.size - 1) : f.size - 1;
  const body = new Uint8Array(b - a + 1);
  const fd = openSync(f.path, "r");
  readSync(fd, body, 0, body.length, a);
  closeSync(fd);
  served += body.length;
  res.writeHead(m ? 206 : 200, { "content-length": body.length, ...(m ? { "content-range": `bytes ${a}-${b}/${f.size}` } : {}) }).end(body);
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

const rows: Record<string, unknown>[] = [];
for (const [i, f] of files.entries()) {
  for (const part of ["encode", "decode", "full"] as ModelPart[]) {
    served = 0;
    const t0 = performance.now();
    const model = await loadModel(`${base}/${i}`, { backend: nullBackend, part, download: { cache: false } });
    const ms = performance.now() - t0;
    const info = model.loadInfo!;
    rows.push({ model: f.model, part, fileBytes: f.size, bytesRead: info.bytesRead, servedBytes: served, share: info.bytesRead / f.size, requests: info.requests, tensors: info.tensors, ms: Math.round(ms) });
  }
}
// The load's own memory: a file-handle load of every tensor onto the null backend, array-buffer bytes
// sampled after a collection at every tensor (needs a collector: node --expose-gc, or Bun), next to the
// load's own count (loadInfo.peakBytes: the largest read plus the largest f32 copy).
const gc = (globalThis as { gc?: () => void }).gc ?? ((globalThis as { Bun?: { gc(f: boolean): void } }).Bun ? () => (globalThis as unknown as { Bun: { gc(f: boolean): void } }).Bun.gc(true) : null);
const mem = () => (globalThis as unknown as { process?: { memoryUsage(): { arrayBuffers: number } } }).process?.memoryUsage().arrayBuffers ?? 0;
const peaks: Record<string, unknown>[] = [];
if (gc) {
  const { fileSource } = await import("../src/weights/source.ts");
  const { bindDiCFrom, configForFile } = await import("../src/model/load.ts");
  for (const f of files) {
    const src = fileSource(f.path);
    const header = await src.header();
    gc();
    const base = mem();
    let peak = base, seen = 0;
    await bindDiCFrom(src, configForFile(header), nullBackend, { keep: () => { seen++; gc(); peak = Math.max(peak, mem()); } });
    await src.close();
    peaks.push({ model: f.model, fileBytes: f.size, peakExtraBytes: peak - base, loadInfoPeak: src.info.peakBytes });
  }
}
server.close();
rmSync(dir, { recursive: true, force: true });

const mb = (n: number) => (n / 1e6).toFixed(2);
console.log("| model | part | file MB | read MB | served MB | share | requests | tensors | ms |");
console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  console.log(`| ${r.model} | ${r.part} | ${mb(r.fileBytes as number)} | ${mb(r.bytesRead as number)} | ${mb(r.servedBytes as number)} | ${((r.share as number) * 100).toFixed(1)}% | ${r.requests} | ${r.tensors} | ${r.ms} |`);
}
if (peaks.length) {
  console.log("\n| model (file handle, full load) | file MB | peak extra array-buffer MB | loadInfo.peakBytes MB |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const p of peaks) console.log(`| ${p.model} | ${mb(p.fileBytes as number)} | ${mb(p.peakExtraBytes as number)} | ${mb(p.loadInfoPeak as number)} |`);
} else console.log("\n(peak memory of a file-handle load: run with node --expose-gc, or under Bun)");
if (values.json) console.log(JSON.stringify({ bench: "ranges", rows, peaks }));
