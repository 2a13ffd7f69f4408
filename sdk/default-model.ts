// The embedded default model: a small class-conditional pixel-space DiC trained on Fashion-MNIST,
// shipped in models/ (see models/README.md). Nothing is downloaded: the file travels with the package
// (browsers fetch it from where the page serves the package).
import type { Backend } from "../src/backend/contract.ts";
import { DiCModel, loadModel } from "./model.ts";
import { HAS_FILE_SYSTEM, isFile } from "../src/fs.ts";

/** File name of the embedded default model under models/. */
export const DEFAULT_MODEL_FILE = "dic-fashion.safetensors";

// NOTE: sources run from sdk/ (Deno, Bun, tests), the Node build from dist/sdk/ and the browser bundle
// from bundles/, so the models folder is one or two levels up; both are tried for file: URLs.
const CANDIDATES = [`../models/${DEFAULT_MODEL_FILE}`, `../../models/${DEFAULT_MODEL_FILE}`];

/**
 * URL of the default model's weights next to this module: a file: URL on servers (Node, Deno, Bun;
 * checked to exist), an http(s): URL where the package is served to a browser (`bundles/` or
 * `dist/sdk/`: the page must serve the package's `models/` folder too). Edge workers have neither:
 * there, pass the bytes (`import weights from "dic-sdk/models/dic-fashion.safetensors"` with the
 * bundler's binary loader; see examples/edge-worker.ts) as `model`.
 */
export async function defaultModelUrl(): Promise<URL> {
  const here = import.meta.url;
  let urls: URL[];
  try {
    urls = CANDIDATES.map((c) => new URL(c, here));
  } catch {
    throw new Error(`default model: this module has no URL (${String(here)}) to find ${DEFAULT_MODEL_FILE} from; pass the weights as \`model\` (bytes, URL or Response)`);
  }
  if (urls[0].protocol !== "file:") return /\/dist\/sdk\/[^/]*$/.test(new URL(here).pathname) ? urls[1] : urls[0];
  for (const u of urls) if (await isFile(decodeURIComponent(u.pathname))) return u;
  const hint = HAS_FILE_SYSTEM ? "" : " (no file system here: pass the weights as `model`, e.g. bytes bundled with the worker)";
  throw new Error(`default model: ${DEFAULT_MODEL_FILE} not found next to the package (looked at ${urls.map((u) => decodeURIComponent(u.pathname)).join(", ")})${hint}`);
}

const cache = new Map<string, Promise<DiCModel>>();

/**
 * Loads (once per backend) the embedded default model.
 *
 * @example
 * const model = await loadDefaultModel();
 * console.log(model.classNames); // ["T-shirt/top", "Trouser", ...]
 */
export function loadDefaultModel(backend: string | Backend = "auto"): Promise<DiCModel> {
  const key = typeof backend === "string" ? backend : `instance:${backend.name}`;
  // NOTE: not cached by downloadWeights: in browsers the page's HTTP cache already keeps the served file,
  // and a URL-keyed copy would outlive an update of the package.
  const load = (u: URL) => loadModel(u, { backend, download: { cache: false } });
  if (typeof backend !== "string") return defaultModelUrl().then(load);
  let p = cache.get(key);
  // A disposed model is loaded afresh.
  if (p) p = p.then((m) => (m.disposed ? reload() : m));
  if (!p) p = reload();
  return p;

  function reload(): Promise<DiCModel> {
    const fresh = defaultModelUrl().then(load);
    fresh.catch(() => cache.delete(key));
    cache.set(key, fresh);
    return fresh;
  }
}
