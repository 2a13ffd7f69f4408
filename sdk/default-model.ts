// The embedded default model: a small class-conditional pixel-space DiC trained on Fashion-MNIST,
// shipped in models/ (see models/README.md). Nothing is downloaded: the file travels with the package.
import type { Backend } from "../src/backend/contract.ts";
import { DiCModel, loadModel } from "./model.ts";

/** File name of the embedded default model under models/. */
export const DEFAULT_MODEL_FILE = "dic-fashion.safetensors";

// NOTE: sources run from sdk/ (Deno, Bun, tests) and the Node build from dist/sdk/, so the models
// folder is one or two levels up; both are tried for file: URLs.
const CANDIDATES = [`../models/${DEFAULT_MODEL_FILE}`, `../../models/${DEFAULT_MODEL_FILE}`];

async function fileExists(url: URL): Promise<boolean> {
  try {
    const fs = await import("node:fs/promises");
    // NOTE: stat, not access: Deno's node:fs access() asks for --allow-sys (uid).
    return (await fs.stat(decodeURIComponent(url.pathname))).isFile();
  } catch {
    return false;
  }
}

/** URL of the default model's weights next to this module (file: on servers, http(s): in browsers). */
export async function defaultModelUrl(): Promise<URL> {
  const urls = CANDIDATES.map((c) => new URL(c, import.meta.url));
  if (urls[0].protocol !== "file:") return urls[0];
  for (const u of urls) if (await fileExists(u)) return u;
  throw new Error(`default model: ${DEFAULT_MODEL_FILE} not found next to the package (looked at ${urls.map((u) => decodeURIComponent(u.pathname)).join(", ")})`);
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
  if (typeof backend !== "string") return defaultModelUrl().then((u) => loadModel(u, { backend }));
  let p = cache.get(key);
  if (!p) {
    p = defaultModelUrl().then((u) => loadModel(u, { backend }));
    p.catch(() => cache.delete(key));
    cache.set(key, p);
  }
  return p;
}
