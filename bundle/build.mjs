// Builds the web bundles with esbuild (`npm run build:bundles`, part of `npm run build`):
//   bundles/dic-sdk.browser.js  the whole public API as one ES module for browsers (the default model is
//                               fetched from ../models/ next to it, i.e. from the served package)
//   bundles/edge-worker.js      examples/edge-worker.ts as an edge-platform module worker, the default
//                               model's weights inlined (no file system, no fetch of our own files)
//   bundles/workerd/            the same worker for Cloudflare Workers / workerd, which refuse to compile
//                               wasm from bytes: built against sdk/workerd.ts (the `workerd` entry), its
//                               wasm kernels left as module imports (./dic-simd.wasm, ...) and copied
//                               beside it; examples/workerd/config.capnp serves them; edge-handler.js
//                               is the latent-streaming edge (examples/workerd/edge-handler.ts),
//                               remote-edge.js the edge with no weights (examples/workerd/remote-edge.ts)
// Both target platform "browser": src/fs.ts becomes src/fs-none.ts through package.json "browser", so no
// node: module, no dynamic import() and no require() reaches them; tests/bundles.test.ts checks that
// and the size budgets below.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));

/** Bundles and their size budgets in bytes (checked by tests/bundles.test.ts). */
export const BUNDLES = {
  // the four wasm builds (base64, ~115 KiB) and the WGSL sources are a large part of the browser bundle;
  // 400 KiB since the compact weight storage, the streaming (Range) loader and the server limits (375 KiB)
  browser: { entry: "sdk/index.ts", out: "bundles/dic-sdk.browser.js", budget: 400 * 1024 },
  // the weights (1.9 MB, base64 in the bundle) dominate the worker
  edge: { entry: "examples/edge-worker.ts", out: "bundles/edge-worker.js", budget: 3 * 1024 * 1024 },
  // the same worker for workerd: the kernels travel as .wasm modules beside it, not inside it
  workerd: { entry: "examples/edge-worker.ts", out: "bundles/workerd/edge-worker.js", budget: 3 * 1024 * 1024, workerd: true },
  // the latent-streaming edge (createEdgeHandler) for workerd, the default model inlined
  workerdEdge: { entry: "examples/workerd/edge-handler.ts", out: "bundles/workerd/edge-handler.js", budget: 3 * 1024 * 1024, workerd: true },
  // an edge with no weights (the remote cut): no model inside, so it stays small
  workerdRemote: { entry: "examples/workerd/remote-edge.ts", out: "bundles/workerd/remote-edge.js", budget: 512 * 1024, workerd: true },
};

/** The wasm builds the workerd bundle imports as modules (single-thread: isolates have no workers). */
export const WORKERD_WASM = ["dic-simd.wasm", "dic-relaxed-simd.wasm"];

/**
 * esbuild plugin of the workerd bundle: the SDK's entry becomes sdk/workerd.ts (which imports the kernels
 * as modules and registers them), and each .wasm import stays an import of a module beside the bundle.
 */
export const workerdPlugin = {
  name: "dic-workerd",
  setup(build) {
    build.onResolve({ filter: /\/sdk\/index\.ts$/ }, () => ({ path: join(root, "sdk/workerd.ts") }));
    build.onResolve({ filter: /\.wasm$/ }, (a) => ({ path: "./" + basename(a.path), external: true }));
  },
};

/**
 * Builds every bundle into `outDir` (default: bundles/ of the repository; tests pass a temporary folder).
 * Returns name -> { path, bytes, budget, inputs, imports } (imports: what the output still imports).
 */
export async function buildBundles(outDir = root + "bundles") {
  mkdirSync(outDir, { recursive: true });
  const result = {};
  for (const [name, b] of Object.entries(BUNDLES)) {
    const outfile = join(outDir, b.out.slice("bundles/".length));
    mkdirSync(dirname(outfile), { recursive: true });
    const r = await esbuild.build({
      absWorkingDir: root,
      entryPoints: [b.entry],
      outfile,
      bundle: true,
      format: "esm",
      platform: "browser",
      conditions: name === "browser" ? ["browser"] : ["workerd", "worker", "browser"],
      plugins: b.workerd ? [workerdPlugin] : [],
      target: "es2022",
      minify: true,
      sourcemap: false,
      legalComments: "none",
      loader: { ".safetensors": "binary" },
      metafile: true,
      logLevel: "warning",
    });
    const [outPath, out] = Object.entries(r.metafile.outputs)[0];
    const path = outfile;
    if (b.workerd) for (const f of WORKERD_WASM) copyFileSync(join(root, "wasm/build", f), join(dirname(outfile), f));
    result[name] = { path, bytes: out.bytes, budget: b.budget, inputs: Object.keys(r.metafile.inputs), imports: out.imports, outPath };
    writeFileSync(path.replace(/\.js$/, ".meta.json"), JSON.stringify(r.metafile));
  }
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const built = await buildBundles();
  for (const [name, r] of Object.entries(built)) {
    console.log(`bundle ${name}: ${r.path.slice(root.length)} ${(r.bytes / 1024).toFixed(1)} KiB (budget ${(BUNDLES[name].budget / 1024).toFixed(0)} KiB)`);
  }
}
