// File and URL access for Node, Deno and Bun (node:fs works in all three), imported lazily so that
// browser and edge bundles that never touch the file system never load it.

/** Writes bytes to a path, creating parent folders. */
export async function writeBytes(path: string, bytes: Uint8Array): Promise<void> {
  const fs = await import("node:fs/promises");
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  if (dir) await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path, bytes);
}

/** Reads a whole file. */
export async function readBytes(path: string): Promise<Uint8Array> {
  const fs = await import("node:fs/promises");
  return new Uint8Array(await fs.readFile(path));
}

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
