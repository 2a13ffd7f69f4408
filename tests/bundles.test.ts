// The esbuild bundles (bundle/build.mjs): a browser ES module of the whole API and an edge module worker
// with the default model inlined. Each stays within its size budget and holds no Node built-in, no dynamic
// import() and no require(); the edge worker answers a PNG when imported as a plain module. (Running both in
// a real browser and in a Web Worker, where Deno/Bun/process do not exist: tests/browser.test.ts.)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "./harness.ts";
import { pngSize } from "./package-install.ts";

interface Built { path: string; bytes: number; budget: number; inputs: string[]; imports: { path: string }[] }
const bundler: { buildBundles(outDir: string): Promise<unknown>; WORKERD_WASM: string[] } = await import("../bundle/build.mjs");
const built = await bundler.buildBundles(mkdtempSync(join(tmpdir(), "dic-bundles-"))) as Record<"browser" | "edge" | "workerd" | "workerdEdge" | "workerdRemote", Built>;
/** The workerd bundles import their kernels as modules (beside them); the others import nothing. */
const allowedImports = (name: string) => (name.startsWith("workerd") ? bundler.WORKERD_WASM.map((f) => "./" + f) : []);

test("bundles: within their size budgets", () => {
  for (const [name, b] of Object.entries(built)) {
    console.log(`bundle ${name}: ${(b.bytes / 1024).toFixed(1)} KiB (budget ${(b.budget / 1024).toFixed(0)} KiB)`);
    assert.ok(b.bytes <= b.budget, `${name} bundle is ${b.bytes} bytes, over its budget of ${b.budget}`);
    assert.ok(b.bytes > 20_000, `${name} bundle suspiciously small (${b.bytes} bytes)`);
  }
  // The weights travel inside the workers, not inside the browser bundle (browsers fetch them).
  for (const w of [built.edge, built.workerd, built.workerdEdge]) assert.ok(w.inputs.some((p) => p.endsWith("models/dic-fashion.safetensors")));
  // The workerd builds go through the workerd entry, which registers the kernels as modules.
  for (const w of [built.workerd, built.workerdEdge, built.workerdRemote]) assert.ok(w.inputs.includes("sdk/workerd.ts"), w.inputs.filter((p) => p.startsWith("sdk/")).join(", "));
  // The edge with no weights carries no model.
  assert.ok(!built.workerdRemote.inputs.some((p) => p.endsWith(".safetensors")));
  assert.ok(!built.edge.inputs.includes("sdk/workerd.ts"));
  assert.ok(!built.browser.inputs.some((p) => p.endsWith(".safetensors")));
});

test("bundles: no Node built-ins, no dynamic import(), no require(); the file-system module is swapped out", () => {
  for (const [name, b] of Object.entries(built)) {
    assert.deepEqual(b.imports.map((i) => i.path).sort(), allowedImports(name).sort(), `${name} bundle imports ${JSON.stringify(b.imports)}`);
    assert.ok(b.inputs.includes("src/fs-none.ts") && !b.inputs.includes("src/fs.ts"), `${name}: ${b.inputs.filter((p) => p.includes("fs")).join(", ")}`);
    assert.ok(!b.inputs.some((p) => p.includes("sdk/cli.ts")), `${name} bundles the CLI`);
    // A guarded `process.getBuiltinModule("node:...")` probe (the wasm thread pool's worker_threads lookup)
    // is no import: it returns nothing where Node built-ins do not exist, so it is allowed.
    const code = readFileSync(b.path, "utf8").replace(/getBuiltinModule\??\.?\(\s*["'`]node:[a-z_/]+["'`]\s*\)/g, "getBuiltinModule(BUILTIN)");
    assert.doesNotMatch(code, /["'`]node:[a-z]/, `${name}: names a node: module`);
    assert.doesNotMatch(code, /\bimport\s*\(/, `${name}: dynamic import()`);
    assert.doesNotMatch(code, /\brequire\s*\(/, `${name}: require()`);
    // Runtime globals are only read behind typeof guards or optional chaining (src/env.ts).
    for (const g of ["Deno", "Bun"]) {
      const uses = code.match(new RegExp(`\\b${g}\\b`, "g"))?.length ?? 0;
      const guarded = code.match(new RegExp(`typeof ${g}\\b`, "g"))?.length ?? 0;
      assert.ok(guarded >= 1 && uses <= 3 * guarded, `${name}: ${uses} uses of ${g}, ${guarded} typeof guards`);
    }
    assert.doesNotMatch(code, /(?<![.\w])process\./, `${name}: reads process.* directly`);
  }
});

test("bundles: the edge worker answers GET /generate with a PNG, and 404/400 otherwise", async () => {
  const worker = (await import(built.edge.path)).default as { fetch(r: Request): Promise<Response> };
  const r = await worker.fetch(new Request("https://edge.example/generate?label=bag&seed=3&steps=3"));
  assert.equal(r.status, 200, await r.clone().text());
  assert.equal(r.headers.get("content-type"), "image/png");
  assert.deepEqual(pngSize(new Uint8Array(await r.arrayBuffer())), [28, 28]);
  assert.equal((await worker.fetch(new Request("https://edge.example/"))).status, 404);
  const bad = await worker.fetch(new Request("https://edge.example/generate?label=hat"));
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /unknown label "hat"/);
});

test("product sources: no eval, no new Function, no import() of a computed specifier (edge platforms forbid code generation)", async () => {
  const { readdirSync } = await import("node:fs");
  const root = new URL("../", import.meta.url).pathname;
  const files = ["src", "sdk", "examples"].flatMap((d) => (readdirSync(root + d, { recursive: true }) as string[]).filter((f) => /\.(ts|mjs|js)$/.test(f)).map((f) => `${d}/${f}`));
  assert.ok(files.length > 50, `only ${files.length} source files found`);
  for (const f of files) {
    const code = readFileSync(root + f, "utf8").replace(/^\s*\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");
    assert.doesNotMatch(code, /\beval\s*\(/, `${f}: eval(`);
    assert.doesNotMatch(code, /\bnew\s+Function\b|[^.\w]Function\s*\(/, `${f}: new Function`);
    assert.doesNotMatch(code, /\bimport\s*\(\s*[^"'\s]/, `${f}: import() of a computed specifier`);
  }
});
