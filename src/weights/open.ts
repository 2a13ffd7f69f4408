// Which weight source a loader reads from, by the kind of source it was given and the download options:
//   bytes                        -> in memory
//   a path or file: URL          -> a file handle, tensor by tensor
//   a Response                   -> read once as a stream (with sha256: through a hash, checked at the end)
//   an http(s) URL, with sha256  -> with a cache: a whole download, checked and cached before anything is
//                                   bound; without one (cache: false): one GET read as a stream through the
//                                   hash, checked after the tensors are bound (they are freed on a mismatch)
//   an http(s) URL, cached whole -> the cached copy (a file handle on servers, a stream in the Cache API)
//   an http(s) URL, otherwise    -> Range requests for the header and the tensors needed, ranges kept in the
//                                   Cache API where it exists; a server that ignores Range is read as a stream.
//   On servers, a load of every tensor ("full") with the folder cache on keeps today's whole-file cache.
import { CacheApiCache, DEFAULT_CACHE_STORE, DownloadError, type DownloadOptions, downloadWeights, FolderCache, resolveCache } from "./download.ts";
import { httpRangeSource, openRangeCache } from "./http-source.ts";
import { Sha256 } from "./sha256.ts";
import { fileSource, fileStream, memorySource, streamSource, type StreamWeightSource, type WeightSource } from "./source.ts";

/** What a loader accepts as weights. */
export type WeightsInput = string | URL | Uint8Array | ArrayBuffer | Response;

/** Options of `openWeightSource`. */
export interface OpenWeightsOptions {
  download?: DownloadOptions;
  /** True when the loader needs only some tensors (a part of a cut): ranges pay off most then. */
  partial?: boolean;
}

function responseSource(res: Response, name: string, download: DownloadOptions, fromCache = false, hash?: Sha256): StreamWeightSource {
  if (!res.ok) throw new DownloadError("http", name, `HTTP ${res.status} ${res.statusText}`.trim());
  if (!res.body) throw new DownloadError("truncated", name, "the response has no body");
  const len = res.headers.get("content-length");
  // NOTE: with Content-Encoding the length counts compressed bytes, not what the body yields.
  const size = len !== null && !res.headers.get("content-encoding") && Number(len) >= 0 ? Number(len) : null;
  return streamSource(res.body, name, {
    size,
    onBytes: (loaded, total) => download.onProgress?.({ url: name, loaded, total, fromCache }),
    onShort: (got, want) => new DownloadError("truncated", name, `connection ended after ${got} bytes, the file needs ${want}`),
    hash,
  });
}

function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A Response read once as a stream through a SHA-256, checked against `want` after the tensors are bound. */
function verifiedResponse(res: Response, name: string, download: DownloadOptions, want: string): WeightSource {
  const hash = new Sha256();
  const src = responseSource(res, name, download, false, hash);
  src.verify = async () => {
    await src.finish();
    const got = hexOf(hash.digest());
    if (got !== want.toLowerCase()) throw new DownloadError("checksum", name, `SHA-256 of the download is ${got}, expected ${want.toLowerCase()}`);
  };
  return src;
}

async function get(url: string, download: DownloadOptions): Promise<Response> {
  try {
    return await fetch(url, { signal: download.signal });
  } catch (e) {
    const aborted = download.signal?.aborted || (e as Error).name === "AbortError";
    throw new DownloadError(aborted ? "aborted" : "network", url, `download failed: ${(e as Error).message}`, { cause: e });
  }
}

function checkSha256Option(sha256: string, name: string): void {
  if (!/^[0-9a-fA-F]{64}$/.test(sha256)) throw new DownloadError("bad_option", name, `sha256 must be 64 hex digits, got "${sha256}"`);
}

/** Opens the weight source for `input` (see the table at the top of this file). */
export async function openWeightSource(input: WeightsInput, options: OpenWeightsOptions = {}): Promise<WeightSource> {
  const download = options.download ?? {};
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) {
    return memorySource(input instanceof Uint8Array ? input : new Uint8Array(input));
  }
  if (input instanceof Response) {
    const name = input.url || "<response>";
    if (download.sha256 === undefined) return responseSource(input, name, download);
    checkSha256Option(download.sha256, name);
    return verifiedResponse(input, name, download, download.sha256);
  }
  const text = typeof input === "string" ? input : input.href;
  if (!/^https?:\/\//i.test(text)) {
    return fileSource(text.startsWith("file:") ? decodeURIComponent(new URL(text).pathname) : text);
  }
  const whole = async (): Promise<WeightSource> => {
    const src = memorySource(await downloadWeights(text, download), text);
    src.info.mode = "download";
    return src;
  };
  const cache = resolveCache(download.cache);
  if (download.sha256 !== undefined) {
    // A hash covers the whole file: with a cache, a whole download (checked, then cached); without one, a
    // single GET read as a stream through the hash, checked once the tensors are bound.
    checkSha256Option(download.sha256, text);
    if (cache !== null) return whole();
    return verifiedResponse(await get(text, download), text, download, download.sha256);
  }
  if (download.ranges === false) return whole();
  if (cache instanceof FolderCache) {
    const path = await cache.cachedFile(text).catch(() => null);
    if (path !== null) {
      const src = fileSource(path, { name: text });
      const header = src.header.bind(src);
      let told = false;
      src.header = async () => {
        const h = await header();
        if (!told) download.onProgress?.({ url: text, loaded: src.info.fileSize, total: src.info.fileSize, fromCache: (told = true) });
        return h;
      };
      return src;
    }
    if (!options.partial) return whole();
  }
  let store = null;
  if (cache instanceof CacheApiCache || (cache === null && download.cache !== false && typeof download.cache !== "object")) {
    store = await openRangeCache(cache instanceof CacheApiCache ? cache.where : typeof download.cache === "string" ? download.cache : DEFAULT_CACHE_STORE);
    // A whole copy cached by downloadWeights is read as a stream, tensor by tensor.
    const hit = await store?.match(text).catch(() => undefined);
    if (hit?.body) return responseSource(hit, text, download, true);
  }
  return httpRangeSource(text, { cache: store, onProgress: download.onProgress, onNotice: download.onNotice, signal: download.signal });
}

/**
 * A source read once, start to end, every byte through an incremental SHA-256: a server names its weights
 * by the file's hash without holding the file (a path through a file handle, a URL by one GET, a Response).
 * `digest` reads the rest of the file after the tensors were bound and returns the hash.
 */
export async function openHashedStream(input: string | URL | Response, download: DownloadOptions = {}): Promise<{ source: StreamWeightSource; digest: () => Promise<Uint8Array> }> {
  const hash = new Sha256();
  let source: StreamWeightSource;
  if (input instanceof Response) {
    source = responseSource(input, input.url || "<response>", download, false, hash);
  } else {
    const text = typeof input === "string" ? input : input.href;
    if (/^https?:\/\//i.test(text)) {
      source = responseSource(await get(text, download), text, download, false, hash);
    } else {
      const path = text.startsWith("file:") ? decodeURIComponent(new URL(text).pathname) : text;
      const { body, size } = await fileStream(path);
      source = streamSource(body, path, { size, hash });
      source.info.mode = "file";
    }
  }
  return {
    source,
    digest: async () => {
      await source.finish();
      return hash.digest();
    },
  };
}
