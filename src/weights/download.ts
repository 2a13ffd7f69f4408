// Weights by URL: a streamed download with progress (bytes so far of the total), an optional SHA-256 check
// (FIPS 180-4, via Web Crypto), and a cache — a folder on servers, the Cache API in browsers and workers —
// with a clear error when storage is full.
import { DicError } from "../errors.ts";
import { readEnv } from "../env.ts";
import { HAS_FILE_SYSTEM, isFile, readBytes, removePath, writeFileAtomic } from "../fs.ts";

/** Why a download failed. */
export type DownloadErrorCode =
  | "bad_option" | "http" | "network" | "truncated" | "checksum" | "storage_full" | "cache" | "aborted"
  | "bad_range"; // a Range answer that does not match the request (wrong bytes, 416, a file that changed mid-load)

/** A failed download: `code` says why, `url` names the source. */
export class DownloadError extends DicError<DownloadErrorCode> {
  constructor(code: DownloadErrorCode, readonly url: string, message: string, options?: { cause?: unknown }) {
    super(code, `${url}: ${message} [${code}]`, options);
    this.name = "DownloadError";
  }
}

/** Progress of a download: bytes received so far and the total when the server says it. */
export interface DownloadProgress {
  url: string;
  loaded: number;
  /** From Content-Length; null when the server does not send it (or compresses the body). */
  total: number | null;
  /** True when the bytes came from the cache (one call with loaded === total). */
  fromCache: boolean;
}

/** Where downloaded weights are kept. */
export interface WeightsCache {
  /** Says where (a folder, or the Cache API store's name). */
  readonly where: string;
  get(url: string): Promise<Uint8Array | null>;
  put(url: string, bytes: Uint8Array): Promise<void>;
  delete(url: string): Promise<void>;
}

/** Options of `downloadWeights` (and `loadModel(url, { download })`). */
export interface DownloadOptions {
  /** Called as bytes arrive. */
  onProgress?: (p: DownloadProgress) => void;
  /**
   * Expected SHA-256 of the file (64 hex digits); a mismatch fails and is never cached. A hash covers the
   * whole file, so with `sha256` a loader downloads the whole file and checks it instead of reading ranges.
   */
  sha256?: string;
  /**
   * Loaders only: read an http(s) URL with Range requests, only the tensors needed (default true, when no
   * `sha256` is given and no whole copy is cached). false downloads the whole file.
   */
  ranges?: boolean;
  /** Loaders only: called with a one-line note when a load falls back (e.g. the server ignored Range). */
  onNotice?: (line: string) => void;
  /**
   * true (default): servers cache in `DIC_CACHE_DIR`, else `$XDG_CACHE_HOME/dic-sdk`, else `~/.cache/dic-sdk`;
   * browsers and workers in the Cache API store "dic-sdk-weights". A string names the folder (servers) or
   * the store (browsers); false disables caching; or pass your own `WeightsCache`.
   */
  cache?: boolean | string | WeightsCache;
  signal?: AbortSignal;
}

const STORE = "dic-sdk-weights";

/** Name of the default Cache API store of weights (whole files and ranges). */
export const DEFAULT_CACHE_STORE = STORE;

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 of bytes as 64 lowercase hex digits. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  if (typeof crypto !== "object" || !crypto.subtle) {
    throw new Error("SHA-256 needs Web Crypto (crypto.subtle), which browsers give only to secure contexts (https: or localhost)");
  }
  return hex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

function isStorageFull(e: unknown): boolean {
  const err = e as { name?: string; code?: string };
  return err?.name === "QuotaExceededError" || err?.code === "ENOSPC" || err?.code === "EDQUOT";
}

/** Server cache: one file per URL, named by the SHA-256 of the URL (plus the file's own name, for people). */
export class FolderCache implements WeightsCache {
  constructor(readonly where: string) {}
  private async path(url: string): Promise<string> {
    const name = (new URL(url).pathname.split("/").pop() || "weights").replace(/[^\w.-]+/g, "_").slice(-80);
    const key = (await sha256Hex(new TextEncoder().encode(url))).slice(0, 32);
    return `${this.where.replace(/\/+$/, "")}/${key}-${name}`;
  }
  async get(url: string): Promise<Uint8Array | null> {
    const p = await this.path(url);
    return (await isFile(p)) ? readBytes(p) : null;
  }
  /** The path of the cached copy of `url`, or null when there is none (lets a loader read it by tensor). */
  async cachedFile(url: string): Promise<string | null> {
    const p = await this.path(url);
    return (await isFile(p)) ? p : null;
  }
  async put(url: string, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(await this.path(url), bytes);
  }
  async delete(url: string): Promise<void> {
    await removePath(await this.path(url));
  }
}

interface CacheLike {
  match(key: string): Promise<Response | undefined>;
  put(key: string, res: Response): Promise<void>;
  delete(key: string): Promise<boolean>;
}

/** Browser/worker cache: the Cache API (`caches.open(name)`), keyed by URL. */
export class CacheApiCache implements WeightsCache {
  constructor(readonly where: string = STORE) {}
  private open(): Promise<CacheLike> {
    return (globalThis as unknown as { caches: { open(n: string): Promise<CacheLike> } }).caches.open(this.where);
  }
  async get(url: string): Promise<Uint8Array | null> {
    const hit = await (await this.open()).match(url);
    return hit ? new Uint8Array(await hit.arrayBuffer()) : null;
  }
  async put(url: string, bytes: Uint8Array): Promise<void> {
    const body = bytes as Uint8Array<ArrayBuffer>;
    await (await this.open()).put(url, new Response(body, { headers: { "content-type": "application/octet-stream", "content-length": String(bytes.length) } }));
  }
  async delete(url: string): Promise<void> {
    await (await this.open()).delete(url);
  }
}

/** The default server cache folder (DIC_CACHE_DIR, XDG_CACHE_HOME/dic-sdk, HOME/.cache/dic-sdk), or null. */
export function defaultCacheDir(): string | null {
  const dir = readEnv("DIC_CACHE_DIR");
  if (dir) return dir;
  const xdg = readEnv("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/dic-sdk`;
  const home = readEnv("HOME") ?? readEnv("USERPROFILE");
  return home ? `${home}/.cache/dic-sdk` : null;
}

/** The cache `options.cache` asks for here, or null for none. */
export function resolveCache(option: DownloadOptions["cache"] = true): WeightsCache | null {
  if (option === false) return null;
  if (typeof option === "object") return option;
  if (HAS_FILE_SYSTEM) {
    const dir = typeof option === "string" ? option : defaultCacheDir();
    return dir ? new FolderCache(dir) : null;
  }
  if (typeof (globalThis as { caches?: unknown }).caches === "object") return new CacheApiCache(typeof option === "string" ? option : STORE);
  return null;
}

async function readBody(res: Response, url: string, onProgress?: DownloadOptions["onProgress"]): Promise<Uint8Array> {
  const len = Number(res.headers.get("content-length"));
  // NOTE: with Content-Encoding the length counts compressed bytes, not what the body stream yields.
  const total = res.headers.get("content-encoding") || !(len >= 0) || res.headers.get("content-length") === null ? null : len;
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  let buf = new Uint8Array(total ?? 1 << 20);
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > buf.length) {
      const grown = new Uint8Array(Math.max(buf.length * 2, loaded + value.length));
      grown.set(buf.subarray(0, loaded));
      buf = grown;
    }
    buf.set(value, loaded);
    loaded += value.length;
    onProgress?.({ url, loaded, total, fromCache: false });
  }
  if (total !== null && loaded !== total) throw new DownloadError("truncated", url, `connection ended after ${loaded} of ${total} bytes`);
  return loaded === buf.length ? buf : buf.slice(0, loaded);
}

async function checkSum(bytes: Uint8Array, want: string | undefined, url: string, where: string): Promise<void> {
  if (want === undefined) return;
  const got = await sha256Hex(bytes);
  if (got !== want.toLowerCase()) throw new DownloadError("checksum", url, `SHA-256 of the ${where} is ${got}, expected ${want.toLowerCase()}`);
}

/**
 * Downloads weights (or any file) by URL, streaming with progress, checking an optional SHA-256 and
 * caching the verified bytes (see `DownloadOptions.cache`). A cached copy is used without a request; a
 * cached copy that fails the checksum is dropped and downloaded again. Errors are `DownloadError`s whose
 * `code` is bad_option, http, network, truncated, checksum, storage_full, cache or aborted.
 *
 * @example
 * import { downloadWeights, loadModel } from "dic-sdk";
 * const bytes = await downloadWeights("https://example.com/dic-s.safetensors", {
 *   sha256: "9f86d0...", onProgress: ({ loaded, total }) => console.log(loaded, total),
 * });
 * const model = await loadModel(bytes); // or loadModel(url, { download: { sha256, onProgress } })
 */
export async function downloadWeights(source: string | URL | Response, options: DownloadOptions = {}): Promise<Uint8Array> {
  const url = typeof source === "string" ? source : source instanceof URL ? source.href : source.url || "<response>";
  if (options.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(options.sha256)) {
    throw new DownloadError("bad_option", url, `sha256 must be 64 hex digits, got "${options.sha256}"`);
  }
  const cache = source instanceof Response ? null : resolveCache(options.cache);
  if (cache) {
    const hit = await cache.get(url).catch(() => null);
    if (hit) {
      try {
        await checkSum(hit, options.sha256, url, `cached copy in ${cache.where}`);
        options.onProgress?.({ url, loaded: hit.length, total: hit.length, fromCache: true });
        return hit;
      } catch {
        await cache.delete(url).catch(() => {}); // stale or corrupt: fetch it again
      }
    }
  }
  let res: Response;
  if (source instanceof Response) {
    res = source;
  } else {
    try {
      res = await fetch(url, { signal: options.signal });
    } catch (e) {
      const aborted = options.signal?.aborted || (e as Error).name === "AbortError";
      throw new DownloadError(aborted ? "aborted" : "network", url, `download failed: ${(e as Error).message}`, { cause: e });
    }
  }
  if (!res.ok) throw new DownloadError("http", url, `HTTP ${res.status} ${res.statusText}`.trim());
  let bytes: Uint8Array;
  try {
    bytes = await readBody(res, url, options.onProgress);
  } catch (e) {
    if (e instanceof DownloadError) throw e;
    const aborted = options.signal?.aborted || (e as Error).name === "AbortError";
    throw new DownloadError(aborted ? "aborted" : "network", url, `download interrupted: ${(e as Error).message}`, { cause: e });
  }
  await checkSum(bytes, options.sha256, url, "download");
  if (cache) {
    try {
      await cache.put(url, bytes);
    } catch (e) {
      const mb = (bytes.length / 1e6).toFixed(1);
      if (isStorageFull(e)) {
        throw new DownloadError("storage_full", url, `storage is full: cannot cache ${mb} MB of weights in ${cache.where} ` +
          `(${(e as Error).message}); free some space, choose another cache (cache: "<folder or store>") or pass cache: false`, { cause: e });
      }
      throw new DownloadError("cache", url, `could not cache ${mb} MB in ${cache.where}: ${(e as Error).message}`, { cause: e });
    }
  }
  return bytes;
}
