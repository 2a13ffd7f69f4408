// Browser and edge-worker stand-in for src/fs.ts (same exports): there is no file system, so every
// call fails with an error that says what to pass instead. Swapped in by package.json "browser" and
// bundle/build.mjs.
import type { ReadableFile } from "./fs.ts";

export type { ReadableFile } from "./fs.ts";

/** Whether the runtime has a file system (false here). */
export const HAS_FILE_SYSTEM = false;

function none(what: string, path: string): Error {
  return new Error(`${path}: cannot ${what} a file path in a browser or edge worker (no file system); pass a URL, bytes or a Response instead`);
}

/** Always fails: no file system. */
export function openFile(path: string): Promise<ReadableFile> {
  return Promise.reject(none("open", path));
}

/** Always fails: no file system. */
export function readBytes(path: string): Promise<Uint8Array> {
  return Promise.reject(none("read", path));
}

/** Always fails: no file system. */
export function writeBytes(path: string, _bytes: Uint8Array): Promise<void> {
  return Promise.reject(none("write", path));
}

/** Always false: no file system. */
export function isFile(_path: string): Promise<boolean> {
  return Promise.resolve(false);
}

/** Always fails: no file system. */
export function writeFileAtomic(path: string, _bytes: Uint8Array): Promise<void> {
  return Promise.reject(none("write", path));
}

/** Always fails: no file system. */
export function removePath(path: string): Promise<void> {
  return Promise.reject(none("remove", path));
}
