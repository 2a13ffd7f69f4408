// The only module that touches the file system (Node, Deno and Bun all provide node:fs). Bundles for
// browsers and edge workers swap it for src/fs-none.ts (package.json "browser" field; bundle/build.mjs),
// so no node: module and no dynamic import() reaches them.

/** The calls the SDK makes on an open file. */
export interface ReadableFile {
  size(): Promise<number>;
  /** Reads into `into` at `position`; returns the bytes read (fewer at end of file). */
  read(into: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

/** Whether the runtime has a file system (false in the browser/edge build of this module). */
export const HAS_FILE_SYSTEM = true;

function fsp(): Promise<typeof import("node:fs/promises")> {
  return import("node:fs/promises");
}

/** Opens a file for reading. */
export async function openFile(path: string): Promise<ReadableFile> {
  const fh = await (await fsp()).open(path, "r");
  return {
    size: async () => (await fh.stat()).size,
    read: async (into, offset, length, position) => (await fh.read(into, offset, length, position)).bytesRead,
    close: () => fh.close(),
  };
}

/** Reads a whole file. */
export async function readBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await (await fsp()).readFile(path));
}

/** Writes bytes to a path, creating parent folders. */
export async function writeBytes(path: string, bytes: Uint8Array): Promise<void> {
  const fs = await fsp();
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  if (dir) await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path, bytes);
}

/** True when `path` is an existing regular file. */
export async function isFile(path: string): Promise<boolean> {
  try {
    // NOTE: stat, not access: Deno's node:fs access() asks for --allow-sys (uid).
    return (await (await fsp()).stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Writes a file whole or not at all (a temporary file renamed into place), creating parent folders. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const fs = await fsp();
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await fs.mkdir(dir, { recursive: true });
  const tmp = `${path}.${Date.now()}-${Math.random().toString(36).slice(2)}.part`;
  try {
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, path);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
}

/** Removes a file or folder tree if it exists. */
export async function removePath(path: string): Promise<void> {
  await (await fsp()).rm(path, { recursive: true, force: true });
}
