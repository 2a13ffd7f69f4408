// Weight sources: "read the header, then read byte ranges of tensors on demand", so that a loader binds
// tensors one by one (read, convert, upload, drop) and never holds the whole file. Implementations here:
// bytes in memory, a file handle (servers; through src/fs.ts, which browser builds swap for a stand-in)
// and a Response or byte stream read once from start to end. HTTP Range reads live in http-source.ts.
import { openFile, type ReadableFile } from "../fs.ts";
import { INT8_SCALE_SUFFIX } from "./int8.ts";
import type { Sha256 } from "./sha256.ts";
import {
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  type SafetensorsHeader,
  type TensorEntry,
  tensorToF32,
  WeightsError,
} from "./safetensors.ts";

/** One tensor's raw little-endian bytes, as a source hands it over. */
export interface TensorBytes {
  readonly name: string;
  readonly entry: TensorEntry;
  /** Valid until the consumer asks for the next tensor (a source may reuse or drop the buffer). */
  readonly bytes: Uint8Array;
  /** Size of the buffer the source allocated for the read that holds these bytes (0: a view of memory it was given). */
  readonly readBytes: number;
  /** True when `bytes` is a fresh buffer holding this tensor alone: the consumer may keep it (no copy needed). */
  readonly owned: boolean;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The tensor's values as f32: the source's own buffer viewed in place when it holds this f32 tensor alone
 * (little-endian hosts), else a converted copy (f16/bf16/...). `copied` says which, for memory accounting.
 */
export function tensorValues(t: TensorBytes): { data: Float32Array; copied: boolean } {
  const n = (t.entry.end - t.entry.begin) / 4;
  if (t.owned && t.entry.dtype === "F32" && LITTLE_ENDIAN && t.bytes.byteOffset === 0) {
    return { data: new Float32Array(t.bytes.buffer, 0, n), copied: false };
  }
  return { data: tensorToF32(t.bytes, t.entry), copied: true };
}

/** Counts a tensor's conversion into `info.peakBytes` (its read buffer plus any f32 copy). */
export function countPeak(info: WeightLoadInfo, t: TensorBytes, copied: boolean, f32Bytes: number): void {
  info.peakBytes = Math.max(info.peakBytes, t.readBytes + (copied ? f32Bytes : 0));
}

/** How a load read its weights: what the model's `loadInfo` reports. */
export interface WeightLoadInfo {
  /** Where the weights came from (path, URL, "<bytes>" or "<response>"). */
  readonly source: string;
  /**
   * "memory" (bytes given), "file" (a file handle), "ranges" (HTTP Range requests), "stream" (a Response
   * or a server that ignored Range, read once from start to end), "download" (a whole verified download).
   */
  mode: "memory" | "file" | "ranges" | "stream" | "download";
  /** Size of the whole file. */
  fileSize: number;
  /** Bytes read from the source (disk, network or cache), header included. */
  bytesRead: number;
  /** Of those, bytes that came from the Cache API's range store. */
  bytesFromCache: number;
  /** HTTP requests made (0 for memory and file sources). */
  requests: number;
  /** Tensors handed to the backend. */
  tensors: number;
  /** Bytes of tensor data handed to the backend (before conversion to f32). */
  tensorBytes: number;
  /** The largest single buffer a read held (a coalesced run of tensors, or one tensor). */
  largestReadBytes: number;
  /**
   * The load's own transient peak, as the binder counts it: a read buffer plus the f32 copy made from it
   * (none for an f32 tensor read alone: its buffer is used in place); what a memory budget must leave room
   * for besides the weights themselves.
   */
  peakBytes: number;
  /** A one-line note when the load could not do what was asked (e.g. the server ignored Range), else null. */
  notice: string | null;
}

/** Options a loader passes to a source's `tensors`. */
export interface ReadPlan {
  /** Adjacent tensors closer than this many bytes are read in one range (default per source). */
  gapBytes?: number;
  /** Upper bound of one coalesced read (a larger tensor is still read whole). Default 4 MiB for files, 8 MiB for HTTP. */
  maxReadBytes?: number;
}

/** A safetensors file read piece by piece. */
export interface WeightSource {
  readonly name: string;
  /** Live counters of what has been read so far. */
  readonly info: WeightLoadInfo;
  /** Reads and validates the header (once; later calls return the same object) before any tensor data. */
  header(): Promise<SafetensorsHeader>;
  /**
   * Yields the named tensors' bytes in file order (call once per source for a stream). Unknown names throw
   * `unknown_tensor`; data past the end of the file throws `offsets_out_of_range` (or a DownloadError).
   */
  tensors(names: Iterable<string>, plan?: ReadPlan): AsyncIterable<TensorBytes>;
  /**
   * Called by a loader after the last tensor it needs: reads what is left and checks it (e.g. the file's
   * SHA-256); throws to abort the load. Absent when there is nothing to check.
   */
  verify?(): Promise<void>;
  /** Releases the file handle or cancels the stream. */
  close(): Promise<void>;
}

/** A fresh `WeightLoadInfo` for a source. */
export function newLoadInfo(source: string, mode: WeightLoadInfo["mode"]): WeightLoadInfo {
  return { source, mode, fileSize: 0, bytesRead: 0, bytesFromCache: 0, requests: 0, tensors: 0, tensorBytes: 0, largestReadBytes: 0, peakBytes: 0, notice: null };
}

/** Header entries of `names` sorted by offset; throws `unknown_tensor` for a name the file lacks. */
export function entriesInFileOrder(header: SafetensorsHeader, names: Iterable<string>): { name: string; entry: TensorEntry }[] {
  const list: { name: string; entry: TensorEntry }[] = [];
  for (const name of new Set(names)) {
    // An int8 file's scale companions ("<name>_scale") are hidden from the table but readable by name.
    const entry = header.tensors.get(name) ??
      (name.endsWith(INT8_SCALE_SUFFIX) ? header.int8Scales?.get(name.slice(0, -INT8_SCALE_SUFFIX.length)) : undefined);
    if (entry === undefined) throw new WeightsError("unknown_tensor", header.source, "no such tensor in the file", name);
    list.push({ name, entry });
  }
  return list.sort((a, b) => a.entry.begin - b.entry.begin || a.entry.end - b.entry.end);
}

/** A run of tensors read with one request: file-data offsets [begin, end). */
export interface ReadGroup {
  begin: number;
  end: number;
  members: { name: string; entry: TensorEntry }[];
}

/**
 * Coalesces tensors (in file order) into reads: a tensor joins the current read when the gap before it
 * is at most `gapBytes` and the read stays within `maxReadBytes`.
 */
export function coalesce(list: { name: string; entry: TensorEntry }[], gapBytes: number, maxReadBytes: number): ReadGroup[] {
  const groups: ReadGroup[] = [];
  for (const m of list) {
    const g = groups[groups.length - 1];
    if (g !== undefined && m.entry.begin >= g.begin && m.entry.begin - g.end <= gapBytes && Math.max(g.end, m.entry.end) - g.begin <= maxReadBytes) {
      g.end = Math.max(g.end, m.entry.end);
      g.members.push(m);
    } else {
      groups.push({ begin: m.entry.begin, end: m.entry.end, members: [m] });
    }
  }
  return groups;
}

const DEFAULT_MAX_READ = 8 * 1024 * 1024;

/**
 * The `tensors` of a random-access source: coalesced reads through `read(begin, end)` (file-data offsets;
 * must return exactly end - begin bytes or throw), each split into its tensors.
 */
export async function* randomAccessTensors(
  header: SafetensorsHeader,
  info: WeightLoadInfo,
  names: Iterable<string>,
  plan: ReadPlan,
  defaultGap: number,
  read: (begin: number, end: number) => Promise<Uint8Array>,
  /** False when reads are views of memory the caller already holds (nothing new is allocated). */
  allocates = true,
): AsyncGenerator<TensorBytes> {
  const groups = coalesce(entriesInFileOrder(header, names), plan.gapBytes ?? defaultGap, plan.maxReadBytes ?? DEFAULT_MAX_READ);
  for (const g of groups) {
    const buf = await read(g.begin, g.end);
    if (allocates) info.largestReadBytes = Math.max(info.largestReadBytes, buf.length);
    const alone = allocates && g.members.length === 1 && buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength;
    for (const { name, entry } of g.members) {
      info.tensors++;
      info.tensorBytes += entry.end - entry.begin;
      const bytes = buf.subarray(entry.begin - g.begin, entry.end - g.begin);
      yield { name, entry, bytes, readBytes: allocates ? buf.byteLength : 0, owned: alone && bytes.byteLength === buf.byteLength };
    }
  }
}

/** A source over bytes already in memory (tensor bytes are views, nothing is copied). */
export function memorySource(bytes: Uint8Array, name = "<bytes>"): WeightSource {
  const info = newLoadInfo(name, "memory");
  let header: SafetensorsHeader | undefined;
  return {
    name,
    info,
    async header() {
      if (header === undefined) {
        header = parseSafetensorsHeader(bytes, bytes.length, name);
        info.fileSize = bytes.length;
        info.bytesRead = header.dataStart;
      }
      return header;
    },
    async *tensors(names, plan = {}) {
      const h = await this.header();
      const data = bytes.subarray(h.dataStart);
      // Memory reads are free: one "read" per tensor, no coalescing needed.
      yield* randomAccessTensors(h, info, names, { maxReadBytes: 0, ...plan }, 0, async (b, e) => {
        info.bytesRead += e - b;
        return data.subarray(b, e);
      }, false);
    },
    async close() {},
  };
}

// File reads are chunked: one read() may return fewer bytes than asked, and runtimes cap a single read.
const FILE_CHUNK = 64 * 1024 * 1024;

/** Reads into `into` from `position` (chunked); returns the bytes read, fewer at the end of the file. */
export async function readAt(fh: ReadableFile, into: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const len = Math.min(FILE_CHUNK, into.length - done);
    const got = await fh.read(into, done, len, position + done);
    if (got === 0) break; // end of file: the caller reports the shortfall
    done += got;
  }
  return done;
}

/**
 * A source over a file handle (servers: Node, Deno, Bun): the first 8 bytes, then the header, then each
 * coalesced run of tensors, so the load's own peak is one read (4 MiB by default, or the largest tensor).
 * `open` defaults to src/fs.ts `openFile` (a stand-in that fails in browser builds).
 */
export function fileSource(path: string, options: { open?: (path: string) => Promise<ReadableFile>; name?: string } = {}): WeightSource {
  const open = options.open ?? openFile;
  const name = options.name ?? path;
  const info = newLoadInfo(name, "file");
  let fh: ReadableFile | undefined;
  let header: SafetensorsHeader | undefined;
  return {
    name,
    info,
    async header() {
      if (header !== undefined) return header;
      fh ??= await open(path);
      const size = await fh.size();
      info.fileSize = size;
      const first = new Uint8Array(Math.min(8, size));
      info.bytesRead += await readAt(fh, first, 0);
      const n = safetensorsHeaderLength(first, size, name);
      const prefix = new Uint8Array(8 + n);
      prefix.set(first);
      info.bytesRead += await readAt(fh, prefix.subarray(8), 8);
      header = parseSafetensorsHeader(prefix, size, name);
      return header;
    },
    async *tensors(names, plan = {}) {
      const h = await this.header();
      const handle = fh!;
      yield* randomAccessTensors(h, info, names, { maxReadBytes: 4 * 1024 * 1024, ...plan }, 64 * 1024, async (b, e) => {
        const buf = new Uint8Array(e - b);
        const got = await readAt(handle, buf, h.dataStart + b);
        info.bytesRead += got;
        // A file that shrank after the header was read is truncated in the data.
        if (got < buf.length) {
          throw new WeightsError("offsets_out_of_range", name, `file ended ${got} bytes into a ${buf.length}-byte read at data offset ${b} (truncated after the header was read?)`);
        }
        return buf;
      });
    },
    async close() {
      const h = fh;
      fh = undefined;
      await h?.close();
    },
  };
}

/** Reads a byte stream in order: exact-length takes and skips over a reader. */
class StreamCursor {
  private chunk: Uint8Array = new Uint8Array(0);
  private at = 0;
  /** Bytes consumed from the stream so far. */
  position = 0;
  constructor(
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly onBytes: (n: number) => void,
    private readonly hash?: Sha256,
  ) {}

  private async fill(): Promise<boolean> {
    const { done, value } = await this.reader.read();
    if (done) return false;
    this.chunk = value;
    this.at = 0;
    this.hash?.update(value);
    this.onBytes(value.length);
    return true;
  }

  /** Reads the stream to its end (every byte passes through the hash); returns the bytes skipped. */
  async drain(): Promise<number> {
    let n = this.chunk.length - this.at;
    this.at = this.chunk.length;
    while (await this.fill()) {
      n += this.chunk.length;
      this.at = this.chunk.length;
    }
    this.position += n;
    return n;
  }

  /** Exactly `n` bytes (fewer only at the end of the stream). */
  async take(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.at >= this.chunk.length && !(await this.fill())) break;
      const k = Math.min(n - got, this.chunk.length - this.at);
      out.set(this.chunk.subarray(this.at, this.at + k), got);
      this.at += k;
      got += k;
    }
    this.position += got;
    return got === n ? out : out.subarray(0, got);
  }

  /** Skips `n` bytes; returns how many were skipped (fewer only at the end of the stream). */
  async skip(n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      if (this.at >= this.chunk.length && !(await this.fill())) break;
      const k = Math.min(n - done, this.chunk.length - this.at);
      this.at += k;
      done += k;
    }
    this.position += done;
    return done;
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => {});
  }
}

/** Options of `streamSource`. */
export interface StreamSourceOptions {
  /** Size of the whole file when known (Content-Length); without it the header is checked against
   *  the largest size it allows and a short stream fails when a tensor is read. */
  size?: number | null;
  /** Called as bytes arrive: bytes so far and the size. */
  onBytes?: (loaded: number, total: number | null) => void;
  /** Turns a failed or short read into the caller's error (e.g. a DownloadError); default WeightsError. */
  onShort?: (got: number, want: number) => Error;
  /** Every byte of the stream passes through this hash (see `StreamWeightSource.finish`). */
  hash?: Sha256;
}

/** A stream source that can read the rest of its stream (e.g. to finish a hash of the whole file). */
export interface StreamWeightSource extends WeightSource {
  /** Reads the stream to its end; returns the size of the whole stream. */
  finish(): Promise<number>;
}

/**
 * A source over a byte stream read once, from start to end (a fetch Response body, a server that ignored
 * Range): the header, then every byte in order, keeping only the tensors asked for, one at a time.
 */
export function streamSource(body: ReadableStream<Uint8Array>, name: string, options: StreamSourceOptions = {}): StreamWeightSource {
  const info = newLoadInfo(name, "stream");
  const known = options.size ?? null;
  const cursor = new StreamCursor(body.getReader(), (n) => {
    info.bytesRead += n;
    options.onBytes?.(info.bytesRead, known);
  }, options.hash);
  const short = (got: number, want: number, what: string): Error =>
    options.onShort?.(got, want) ?? new WeightsError("offsets_out_of_range", name, `stream ended after ${got} bytes, ${what} needs ${want}`);
  let header: SafetensorsHeader | undefined;
  let used = false;
  return {
    name,
    info,
    async header() {
      if (header !== undefined) return header;
      // An unknown size lets the header claim any data length up to 2^53; reads then find the real end.
      const size = known ?? Number.MAX_SAFE_INTEGER;
      const first = await cursor.take(8);
      if (first.length < 8) {
        if (known === null) throw new WeightsError("truncated", name, `stream has ${first.length} bytes, fewer than the 8-byte header length`);
        if (first.length < known) throw short(first.length, 8, "the header length");
      }
      const n = safetensorsHeaderLength(first, size, name);
      const rest = await cursor.take(n);
      if (rest.length < n) throw short(8 + rest.length, 8 + n, "the header");
      const prefix = new Uint8Array(8 + n);
      prefix.set(first);
      prefix.set(rest, 8);
      header = parseSafetensorsHeader(prefix, size, name);
      info.fileSize = known ?? header.dataStart + header.dataEnd;
      return header;
    },
    async *tensors(names) {
      const h = await this.header();
      if (used) throw new Error(`${name}: a stream source is read once; its tensors were already read`);
      used = true;
      for (const { name: t, entry } of entriesInFileOrder(h, names)) {
        const at = h.dataStart + entry.begin;
        if (cursor.position > at) throw new WeightsError("overlapping_tensors", name, "tensor data overlaps another (a stream reads each byte once)", t);
        const gap = at - cursor.position;
        const skipped = await cursor.skip(gap);
        if (skipped < gap) throw short(cursor.position, h.dataStart + entry.end, `tensor ${JSON.stringify(t)}`);
        const bytes = await cursor.take(entry.end - entry.begin);
        if (bytes.length < entry.end - entry.begin) throw short(cursor.position, h.dataStart + entry.end, `tensor ${JSON.stringify(t)}`);
        info.tensors++;
        info.tensorBytes += bytes.length;
        info.largestReadBytes = Math.max(info.largestReadBytes, bytes.length);
        yield { name: t, entry, bytes, readBytes: bytes.byteLength, owned: bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength };
      }
    },
    async finish() {
      await cursor.drain();
      if (known !== null && cursor.position !== known) throw short(cursor.position, known, "the whole file");
      return cursor.position;
    },
    async close() {
      await cursor.cancel();
    },
  };
}

/**
 * A file read start to end as a byte stream (for a hash of the whole file while its tensors are bound),
 * in reads of `chunk` bytes through src/fs.ts.
 */
export async function fileStream(path: string, chunk = 1 << 20): Promise<{ body: ReadableStream<Uint8Array>; size: number }> {
  const fh = await openFile(path);
  let size: number;
  try {
    size = await fh.size();
  } catch (e) {
    await fh.close();
    throw e;
  }
  let at = 0, closed = false;
  const close = async () => {
    if (!closed) {
      closed = true;
      await fh.close();
    }
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      const buf = new Uint8Array(chunk);
      const got = await fh.read(buf, 0, chunk, at);
      if (got === 0) {
        await close();
        ctl.close();
        return;
      }
      at += got;
      ctl.enqueue(got === chunk ? buf : buf.subarray(0, got));
    },
    cancel: close,
  });
  return { body, size };
}
