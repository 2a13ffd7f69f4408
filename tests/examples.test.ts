// The examples in examples/, run as users run them: the Deno server under deno test, the Bun server under
// bun test (Deno.serve and Bun.serve exist only there), the Node script under vitest. The edge worker is
// bundled and exercised in tests/bundles.test.ts (and in a browser Web Worker in tests/browser.test.ts);
// the browser page in tests/browser.test.ts.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runtimeName, test } from "./harness.ts";
import { pngSize, repoRoot } from "./package-install.ts";

const proc = (globalThis as unknown as { process: { execPath: string; env: Record<string, string> } }).process;

/** Starts a server example on a free port and resolves with its base URL once it prints "listening on". */
function startServer(exe: string, args: string[]): Promise<{ base: string; child: ChildProcess }> {
  const child = spawn(exe, args, { cwd: repoRoot, env: { ...proc.env, PORT: "0" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill(); reject(new Error(`server did not start in 60 s: ${out}`)); }, 60_000);
    const onData = (d: Uint8Array) => {
      out += new TextDecoder().decode(d);
      const m = out.match(/listening on (http:\/\/localhost:\d+)/);
      if (m) { clearTimeout(timer); resolve({ base: m[1], child }); }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${out}`)); });
  });
}

async function checkServer(base: string): Promise<void> {
  const r = await fetch(`${base}/generate?label=sneaker&seed=2&steps=3`);
  assert.equal(r.status, 200, await r.clone().text());
  assert.equal(r.headers.get("content-type"), "image/png");
  assert.deepEqual(pngSize(new Uint8Array(await r.arrayBuffer())), [28, 28]);
  const same = new Uint8Array(await (await fetch(`${base}/generate?label=7&seed=2&steps=3`)).arrayBuffer());
  const again = new Uint8Array(await (await fetch(`${base}/generate?label=7&seed=2&steps=3`)).arrayBuffer());
  assert.deepEqual(same, again, "same seed, same picture");
  const bad = await fetch(`${base}/generate?label=hat`);
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /unknown label "hat"/);
  const missing = await fetch(`${base}/nothing`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once("exit", r));
  child.kill();
  await exited;
}

if (runtimeName === "deno") {
  test("examples/deno-server.ts answers GET /generate with a PNG", async () => {
    const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
    // Both server examples type-check as written (a PNG is a valid Response body, and so on).
    const check = spawnSync(deno, ["check", "examples/deno-server.ts", "examples/bun-server.ts"], { cwd: repoRoot, encoding: "utf8", env: { ...proc.env, NO_COLOR: "1" } });
    assert.equal(check.status, 0, check.stderr);
    const { base, child } = await startServer(deno, ["run", "--allow-net", "--allow-read", "--allow-env", "examples/deno-server.ts"]);
    try {
      await checkServer(base);
    } finally {
      await stop(child);
    }
  });
}

if (runtimeName === "bun") {
  test("examples/bun-server.ts answers GET /generate with a PNG", async () => {
    const { base, child } = await startServer(proc.execPath, ["examples/bun-server.ts"]);
    try {
      await checkServer(base);
    } finally {
      await stop(child);
    }
  });
}

if (runtimeName === "node") {
  test("examples/node-generate.mjs writes one PNG per class name", () => {
    const dir = mkdtempSync(join(tmpdir(), "dic-example-"));
    const r = spawnSync(proc.execPath, ["examples/node-generate.mjs", "sneaker", "ankle boot"], {
      cwd: repoRoot, encoding: "utf8", env: { ...proc.env, OUT_DIR: dir }, timeout: 300_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /sneaker\.png: 28x28/);
    for (const f of ["sneaker.png", "ankle-boot.png"]) assert.deepEqual(pngSize(new Uint8Array(readFileSync(join(dir, f)))), [28, 28]);
  });
}
