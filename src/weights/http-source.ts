// Weights by URL read with HTTP Range requests: the first bytes (the 8-byte length and the JSON header,
// validated before anything else is read), then only the tensors asked for, adjacent ones coalesced into
// one request. Ranges are kept in the Cache API where the runtime has one (browsers, workers, Deno). A
// server that ignores Range (200 with the whole body) is read as a stream, once, and the load says so.
import { DownloadError, type DownloadProgress } from "./download.ts";
import { parseSafetensorsHeader, safetensorsHeaderLength, type SafetensorsHeader } from "./safetensors.ts";
import { newLoadInfo, randomAccessTensors, type ReadPlan, streamSource, type TensorBytes, type WeightSource } from "./source.ts";

/** The part of the Cache API (a `Cache`) the range store uses. */
export interface RangeCacheStore {
  match(key: string): Promise<Response | undefined>;
  put(key: string, res: Response): Promise<void>;
}

/** Options of `httpRangeSource`. */
export interface HttpRangeOptions {
  signal?: AbortSignal;
  /** Where ranges are kept (a Cache API `Cache`); null or absent: no range cache. */
  cache?: RangeCacheStore | null;
  /** Called as bytes arrive: loaded counts every byte read, total the bytes planned so far. */
  onProgress?: (p: DownloadProgress) => void;
  /** Called once with a one-line note when the load cannot do what was asked (a server that ignores Range). */
  onNotice?: (line: string) => void;
  /** Length of the first request, which usually holds the whole header (default 64 KiB). */
  firstReadBytes?: number;
  /** Bytes between two wanted tensors below which they are read in one request (default 64 KiB). */
  gapBytes?: number;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

/** Header name under which cached ranges record the size of the whole file. */
const SIZE_HEADER = "x-dic-file-size";

/** Cache key of bytes [begin, end) of `url`: the URL with a query parameter (the Cache API ignores fragments). */
export function rangeCacheKey(url: string, begin: number, end: number): string {
  return `${url}${url.includes("?") ? "&" : "?"}dic-bytes=${begin}-${end}`;
}

/** Parses `bytes a-b/total` (total may be `*`). */
function parseContentRange(v: string | null): { start: number; end: number; total: number | null } | null {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v ?? "");
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === "*" ? null : Number(m[3]) };
}

type Got = { kind: "bytes"; bytes: Uint8Array; total: number | null; etag: string | null } | { kind: "whole"; res: Response };

/**
 * A weight source over an http(s) URL read by Range. Errors are DownloadErrors (http, network, aborted,
 * truncated, bad_range) or WeightsErrors for the file's format, with the same codes as a whole read.
 */
export function httpRangeSource(url: string, options: HttpRangeOptions = {}): WeightSource {
  const info = newLoadInfo(url, "ranges");
  const doFetch = options.fetch ?? ((u: string, init: RequestInit) => fetch(u, init));
  const first = Math.max(8, options.firstReadBytes ?? 64 * 1024);
  let header: SafetensorsHeader | undefined;
  let fallback: WeightSource | undefined;
  let size: number | null = null;
  let etag: string | null = null;
  let planned = 0;
  // The first read runs past the header into the data: those bytes serve the first tensors.
  let head: Uint8Array = new Uint8Array(0);

  const progress = (fromCache: boolean) => options.onProgress?.({ url, loaded: info.bytesRead, total: planned, fromCache });
  const failed = (e: unknown, what: string): DownloadError => {
    if (e instanceof DownloadError) return e;
    const aborted = options.signal?.aborted || (e as Error)?.name === "AbortError";
    return new DownloadError(aborted ? "aborted" : "network", url, `${what} failed: ${(e as Error)?.message ?? e}`, { cause: e });
  };

  async function readExactly(res: Response, want: number, what: string): Promise<Uint8Array> {
    const out = new Uint8Array(want);
    let got = 0;
    if (!res.body) {
      const all = new Uint8Array(await res.arrayBuffer());
      if (all.length > want) throw new DownloadError("bad_range", url, `${what}: the server sent ${all.length} bytes for a ${want}-byte range`);
      out.set(all);
      got = all.length;
      info.bytesRead += got;
    } else {
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (got + value.length > want) throw new DownloadError("bad_range", url, `${what}: the server sent more than the ${want} bytes of the range`);
          out.set(value, got);
          got += value.length;
          info.bytesRead += value.length;
          progress(false);
        }
      } finally {
        reader.releaseLock();
      }
    }
    if (got < want) throw new DownloadError("truncated", url, `${what}: connection ended after ${got} of ${want} bytes`);
    return out;
  }

  /** Bytes [begin, end) of the file, from the range cache or one request; `whole` when the server ignored Range. */
  async function get(begin: number, end: number, what: string, allowWhole: boolean): Promise<Got> {
    const key = rangeCacheKey(url, begin, end);
    if (options.cache) {
      const hit = await options.cache.match(key).catch(() => undefined);
      if (hit) {
        const bytes = new Uint8Array(await hit.arrayBuffer());
        const total = Number(hit.headers.get(SIZE_HEADER));
        const tag = hit.headers.get("etag");
        // A cached range of another version of the file (other size or ETag than the header's) is read again.
        if (bytes.length <= end - begin && (size === null || total === size) && (etag === null || tag === null || tag === etag)) {
          info.bytesRead += bytes.length;
          info.bytesFromCache += bytes.length;
          progress(true);
          return { kind: "bytes", bytes, total: Number.isSafeInteger(total) && total > 0 ? total : null, etag: tag };
        }
      }
    }
    // NOTE: only Range, which is CORS-safelisted for one range: If-Range would cost a preflight request
    // cross-origin; a changed file shows in its size or ETag instead (checked below).
    const headers: Record<string, string> = { range: `bytes=${begin}-${end - 1}` };
    let res: Response;
    try {
      info.requests++;
      res = await doFetch(url, { headers, signal: options.signal });
    } catch (e) {
      throw failed(e, `${what} request`);
    }
    if (res.status === 200) {
      if (allowWhole) return { kind: "whole", res };
      await res.body?.cancel().catch(() => {});
      throw new DownloadError("bad_range", url, `${what}: the server answered a Range request with the whole file (HTTP 200) after honouring Range before; did the file change during the load?`);
    }
    if (res.status === 416) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadError("bad_range", url, `${what}: bytes ${begin}-${end - 1} are outside the file (HTTP 416)`);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadError("http", url, `HTTP ${res.status} ${res.statusText}`.trim());
    }
    if (res.status !== 206) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadError("bad_range", url, `${what}: HTTP ${res.status} is not a partial response (206)`);
    }
    // Cross-origin responses may hide Content-Range (Access-Control-Expose-Headers): then the body length decides.
    const cr = res.headers.get("content-range");
    const range = parseContentRange(cr);
    if (cr !== null && (range === null || range.start !== begin || range.end > end - 1 || (range.total !== null && range.end !== Math.min(end, range.total) - 1))) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadError("bad_range", url, `${what}: asked for bytes ${begin}-${end - 1}, the server sent "${cr}"`);
    }
    const total = range?.total ?? null;
    if (size !== null && total !== null && total !== size) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadError("bad_range", url, `${what}: the file is now ${total} bytes, it was ${size} when its header was read (it changed during the load)`);
    }
    const tag = res.headers.get("etag");
    if (etag !== null && tag !== null && tag !== etag) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadError("bad_range", url, `${what}: the file's ETag is now ${tag}, it was ${etag} when its header was read (it changed during the load)`);
    }
    const want = range !== null ? range.end - range.start + 1 : end - begin;
    let bytes: Uint8Array;
    try {
      bytes = await readExactly(res, want, what);
    } catch (e) {
      throw failed(e, `${what} read`);
    }
    if (options.cache) {
      const h: Record<string, string> = { "content-type": "application/octet-stream", "content-length": String(bytes.length) };
      if (total !== null) h[SIZE_HEADER] = String(total);
      if (tag !== null) h.etag = tag;
      // NOTE: the Cache API refuses 206 responses; a range is stored as a plain 200 under its own key.
      await options.cache.put(key, new Response(bytes as Uint8Array<ArrayBuffer>, { headers: h })).catch(() => {});
    }
    return { kind: "bytes", bytes, total, etag: tag };
  }

  const source: WeightSource = {
    name: url,
    info,
    async header() {
      if (header !== undefined) return header;
      planned = first;
      const r = await get(0, first, "header", true);
      if (r.kind === "whole") {
        const res = r.res;
        const len = res.headers.get("content-length");
        const known = len !== null && !res.headers.get("content-encoding") && Number(len) >= 0 ? Number(len) : null;
        if (!res.body) throw new DownloadError("truncated", url, "the server answered with an empty body");
        info.mode = "stream";
        info.notice = `${url}: the server ignored the Range request (HTTP 200, whole file); reading the whole file${known === null ? "" : ` (${known} bytes)`} once, in order, keeping only the tensors needed`;
        options.onNotice?.(info.notice);
        planned = known ?? 0;
        const counted = info.bytesRead;
        fallback = streamSource(res.body, url, {
          size: known,
          onBytes: (loaded) => {
            info.bytesRead = counted + loaded;
            progress(false);
          },
          onShort: (got, want) => new DownloadError("truncated", url, `connection ended after ${got} bytes, the file needs ${want}`),
        });
        try {
          header = await fallback.header();
        } catch (e) {
          throw e instanceof DownloadError || (e as Error).name === "WeightsError" ? e : failed(e, "header read");
        }
        info.fileSize = fallback.info.fileSize;
        return header;
      }
      etag = r.etag;
      size = r.total;
      // Without a readable size, the header is checked against the largest it may claim; reads find the end.
      const fileSize = size ?? (r.bytes.length < first ? r.bytes.length : Number.MAX_SAFE_INTEGER);
      const n = safetensorsHeaderLength(r.bytes.subarray(0, 8), fileSize, url);
      let prefix = r.bytes;
      if (prefix.length < 8 + n) {
        planned += 8 + n - prefix.length;
        const rest = await get(prefix.length, 8 + n, "header", false);
        if (rest.kind !== "bytes") throw new Error("unreachable");
        const joined = new Uint8Array(8 + n);
        joined.set(prefix);
        joined.set(rest.bytes, prefix.length);
        prefix = joined;
      }
      header = parseSafetensorsHeader(prefix.subarray(0, 8 + n), fileSize, url);
      head = prefix;
      info.fileSize = size ?? header.dataStart + header.dataEnd;
      return header;
    },
    async *tensors(names, plan: ReadPlan = {}): AsyncGenerator<TensorBytes> {
      const h = await source.header();
      if (fallback !== undefined) {
        yield* fallback.tensors(names, plan);
        info.tensors = fallback.info.tensors;
        info.tensorBytes = fallback.info.tensorBytes;
        info.largestReadBytes = fallback.info.largestReadBytes;
        return;
      }
      yield* randomAccessTensors(h, info, names, plan, options.gapBytes ?? 64 * 1024, async (b, e) => {
        // Bytes the first read already holds are not asked for again.
        const from = h.dataStart + b, to = h.dataStart + e;
        const have = Math.max(0, Math.min(head.length, to) - from);
        if (have === to - from) return head.subarray(from, to);
        planned += to - from - have;
        const r = await get(from + have, to, `tensor data [${b + have}, ${e})`, false);
        if (r.kind !== "bytes") throw new Error("unreachable");
        if (r.bytes.length < to - from - have) throw new DownloadError("truncated", url, `tensor data [${b + have}, ${e}): the file ends after ${r.bytes.length} of ${to - from - have} bytes`);
        if (have === 0) return r.bytes;
        const joined = new Uint8Array(to - from);
        joined.set(head.subarray(from, from + have));
        joined.set(r.bytes, have);
        return joined;
      });
    },
    async close() {
      await fallback?.close();
    },
  };
  return source;
}

/** The Cache API store named `name`, or null where the runtime has no Cache API. */
export async function openRangeCache(name: string): Promise<RangeCacheStore | null> {
  const caches = (globalThis as { caches?: { open?(n: string): Promise<RangeCacheStore> } }).caches;
  if (typeof caches?.open !== "function") return null;
  try {
    return await caches.open(name);
  } catch {
    return null; // e.g. an opaque origin, or storage the user refused
  }
}
