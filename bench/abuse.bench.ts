// bench/abuse: `dic serve` edges and hosts on loopback under hostile and heavy requests, per runtime
// (issue 15 targets): an oversized generation refused in < 1 s; a 100 MB body refused with 413 while the
// edge grows < 100 MiB; 4 forged 126 MiB requests grow a host < 150 MiB; a stale request gets 401; the
// edge's /healthz stays < 250 ms while it makes a 64-image PNG. Growth is of the peak RSS (VmHWM).
// Run after `npm run build`: node dist/bench/abuse.bench.js [--runtimes node,deno,bun] [--json]
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { processArgs } from "../src/env.ts";
import { importSecret, signFrames } from "../src/protocol/auth.ts";
import { repoRoot } from "./root.ts";
import { PROTOCOL_VERSION } from "../src/protocol/frames.ts";

const ROOT = repoRoot().pathname;
const { values } = parseArgs({ args: processArgs(), options: { runtimes: { type: "string", default: "node,deno,bun" }, json: { type: "boolean" } } });
const COMMANDS: Record<string, string[]> = {
  node: [process.execPath, `${ROOT}dist/sdk/bin.js`],
  deno: [existsSync(`${ROOT}node_modules/deno/deno`) ? `${ROOT}node_modules/deno/deno` : "deno", "run", "-A", `${ROOT}sdk/bin.ts`],
  bun: [`${ROOT}node_modules/.bin/bun`, `${ROOT}sdk/bin.ts`],
};
const dir = mkdtempSync(join(tmpdir(), "dic-abuse-"));
const SECRET = "bench-shared-secret-0123456789";
writeFileSync(join(dir, "secret"), SECRET);

function serve(rt: string, args: string[]): Promise<{ url: string; proc: ChildProcess }> {
  const [exe, ...pre] = COMMANDS[rt];
  const proc = spawn(exe, [...pre, "serve", "--port", "0", "--secret-file", join(dir, "secret"), "--quiet", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  return new Promise((resolve, reject) => {
    let buf = "";
    proc.stderr!.on("data", (d) => {
      buf += d;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(buf);
      if (m) resolve({ url: m[1], proc });
    });
    proc.on("exit", (c) => reject(new Error(`${rt} serve exited ${c}: ${buf}`)));
  });
}

const peakMiB = (pid: number) => Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A body of `mb` MiB of spaces, streamed. */
function bigBody(mb: number, head?: Uint8Array): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(1 << 20).fill(0x20);
  let sent = 0;
  return new ReadableStream({
    pull(c) {
      if (head && sent === 0) {
        sent++;
        return c.enqueue(head);
      }
      if (sent++ >= mb) return c.close();
      c.enqueue(chunk);
    },
  });
}

async function post(url: string, body: BodyInit, headers: Record<string, string> = {}): Promise<number | string> {
  try {
    const res = await fetch(url, { method: "POST", body, headers, ...({ duplex: "half" } as object) });
    await res.arrayBuffer();
    return res.status;
  } catch (e) {
    return `error: ${((e as Error).cause as Error)?.message ?? (e as Error).message}`;
  }
}

const rows: Record<string, unknown>[] = [];
for (const rt of values.runtimes!.split(",")) {
  const host = await serve(rt, ["--role", "host", "--backend", "wasm"]);
  const edge = await serve(rt, ["--role", "edge", "--backend", "wasm", "--upstream", host.url]);
  try {
    await sleep(500);
    const row: Record<string, unknown> = { runtime: rt };
    // An oversized generation.
    let t0 = performance.now();
    const big = await fetch(`${edge.url}/v1/generate`, { method: "POST", body: JSON.stringify({ labels: Array(64).fill(1), steps: 1000 }) });
    row.workLimit = `${big.status} ${(await big.json()).code} in ${(performance.now() - t0).toFixed(0)} ms`;
    // A 100 MB body at the edge.
    let before = peakMiB(edge.proc.pid!);
    const s100 = await post(`${edge.url}/v1/generate`, bigBody(100), { "content-type": "application/json" });
    await sleep(300);
    row.body100MB = `${s100}, edge peak +${(peakMiB(edge.proc.pid!) - before).toFixed(1)} MiB`;
    // Four forged 126 MiB requests at the host, at once.
    const forgedAuth = await signFrames(await importSecret("not-the-shared-secret-at-all"), [
      { v: PROTOCOL_VERSION, session: "s-forged", seq: 1, type: "latent", x: { dtype: "f32", shape: [1], data: new Uint8Array(4), crc32: 0 } } as never,
    ], { audience: new URL(host.url).host });
    const auth = forgedAuth.subarray(0, 4 + new DataView(forgedAuth.buffer).getUint32(0));
    before = peakMiB(host.proc.pid!);
    const forged = await Promise.all(Array.from({ length: 4 }, () => post(`${host.url}/v1/run`, bigBody(126, auth))));
    await sleep(300);
    row.forged4x126MiB = `${forged.join("/")}, host peak +${(peakMiB(host.proc.pid!) - before).toFixed(1)} MiB`;
    // A stale request.
    const stale = await signFrames(await importSecret(SECRET), [{ v: PROTOCOL_VERSION, session: "s-stale", seq: 1, type: "latent", x: { dtype: "f32", shape: [1], data: new Uint8Array(4), crc32: 0 } } as never], { now: Date.now() - 600_000, audience: new URL(host.url).host });
    row.stale = await post(`${host.url}/v1/run`, stale as Uint8Array<ArrayBuffer>);
    // /healthz while the edge makes a 64-image PNG.
    t0 = performance.now();
    let done = false;
    const png = fetch(`${edge.url}/v1/generate?${Array.from({ length: 64 }, (_, i) => `label=${i % 10}`).join("&")}&steps=20&format=png&seed=1`).then(async (r) => {
      const n = (await r.arrayBuffer()).byteLength;
      done = true;
      return `${r.status} ${n} bytes`;
    });
    let worst = 0, polls = 0;
    while (!done) {
      const t = performance.now();
      await (await fetch(`${edge.url}/healthz`)).text();
      worst = Math.max(worst, performance.now() - t);
      polls++;
      await sleep(50);
    }
    row.healthzDuringPng = `${await png} in ${((performance.now() - t0) / 1000).toFixed(1)} s; worst /healthz ${worst.toFixed(0)} ms of ${polls}`;
    rows.push(row);
  } finally {
    host.proc.kill("SIGKILL");
    edge.proc.kill("SIGKILL");
  }
}
for (const r of rows) {
  console.log(`${r.runtime}:`);
  for (const [k, v] of Object.entries(r)) if (k !== "runtime") console.log(`  ${k.padEnd(18)} ${v}`);
}
if (values.json) console.log(JSON.stringify(rows));
