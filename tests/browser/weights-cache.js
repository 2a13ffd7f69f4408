// Page-side half of the browser weights test (tests/browser.test.ts): downloads the default model's file by
// URL into the Cache API store twice (the second from the cache), then, after the test has shrunk the
// origin's quota, tries again into a fresh store and reports the error.
import { downloadWeights, sha256Hex } from "../../bundles/dic-sdk.browser.js";

const url = new URL("/models/dic-fashion.safetensors", location.href).href;

export async function cacheTwice(store) {
  await caches.delete(store);
  const progress = [];
  const first = await downloadWeights(url, { cache: store, onProgress: (p) => progress.push(p) });
  const digest = await sha256Hex(first);
  let fromCache = null;
  const second = await downloadWeights(url, { cache: store, sha256: digest, onProgress: (p) => (fromCache = p.fromCache) });
  const cached = await (await caches.open(store)).match(url);
  return {
    bytes: first.length, same: first.length === second.length && first.every((b, i) => b === second[i]),
    progressCalls: progress.length, lastProgress: progress[progress.length - 1], fromCache, cachedBytes: cached ? (await cached.arrayBuffer()).byteLength : 0,
  };
}

export async function downloadIntoFullStorage(store) {
  await caches.delete(store);
  try {
    await downloadWeights(url, { cache: store });
    return { error: null };
  } catch (e) {
    return { error: { name: e.name, code: e.code, message: e.message } };
  }
}
