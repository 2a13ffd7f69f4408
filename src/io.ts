// File and URL access: files through src/fs.ts (the one module that touches node:fs; browser and edge
// bundles get src/fs-none.ts instead), URLs through fetch.

export { readBytes, writeBytes } from "./fs.ts";

/** Fetches a URL into bytes, with a clear error for HTTP failures. */
export async function fetchBytes(url: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`${url}: download failed: ${(e as Error).message}`);
  }
  return responseBytes(res, url);
}

/** Reads a Response body, failing on HTTP errors. */
export async function responseBytes(res: Response, source: string): Promise<Uint8Array> {
  if (!res.ok) throw new Error(`${source}: HTTP ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}
