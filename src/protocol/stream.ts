// Length-delimited frames on a byte stream (docs/protocol.md section 3): a reader that checks each
// length prefix against the limit before buffering the frame, and a writer for streamed bodies.
import { ProtocolError } from "./errors.ts";
import { decodeFrame, encodeFrame, type Frame } from "./frames.ts";

/** One frame as read: its bytes on the wire (prefix included) and its body. */
export interface RawFrame {
  wire: Uint8Array;
  body: Uint8Array;
}

/** Reads length-delimited frames from a byte stream, never buffering more than one frame's limit. */
export class FrameReader {
  // NOTE: chunks are kept as a list and joined once per frame, so a big frame costs one copy.
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private done = false;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;

  /**
   * A read must deliver within this many ms of the previous one (`timeout`); with `deadline`
   * (performance.now() time) the next frame must also be complete by then. Default: no limit.
   */
  readTimeoutMs: number | undefined;
  deadline: number | undefined;

  /** `maxFrameBytes` bounds one frame body; a larger length prefix is `too_large` before any read. */
  constructor(stream: ReadableStream<Uint8Array>, readonly maxFrameBytes: number, opts: { readTimeoutMs?: number } = {}) {
    this.reader = stream.getReader();
    this.readTimeoutMs = opts.readTimeoutMs;
  }

  /** One read of the stream, bounded by the read timeout and the deadline. */
  private read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const left = Math.min(this.readTimeoutMs ?? Infinity, this.deadline === undefined ? Infinity : this.deadline - performance.now());
    if (left === Infinity) return this.reader.read();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ProtocolError("timeout", `no bytes for ${Math.round(Math.max(0, left))} ms (the peer stalled)`)), Math.max(0, left));
    });
    return Promise.race([this.reader.read(), late]).finally(() => clearTimeout(timer));
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.done) {
      const { value, done } = await this.read();
      if (done) {
        this.done = true;
        break;
      }
      if (!value?.length) continue;
      this.chunks.push(value);
      this.buffered += value.length;
    }
    return this.buffered >= n;
  }

  /** Removes and returns the first n buffered bytes (n <= buffered). */
  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  /**
   * The next raw frame, or null at a clean end of stream; a truncated frame is `bad_frame`, a length
   * prefix above `maxBytes` (default maxFrameBytes) `too_large` before the frame is read. With `within`,
   * a frame (prefix included) longer than that many bytes is `unauthenticated` before it is read: it
   * runs past the body length an auth frame declared.
   */
  async nextRaw(maxBytes: number = this.maxFrameBytes, within?: number): Promise<RawFrame | null> {
    if (!(await this.fill(4))) {
      if (this.buffered === 0) return null;
      throw new ProtocolError("bad_frame", `stream ends inside a length prefix (${this.buffered} of 4 bytes)`);
    }
    const head = this.take(4);
    const len = new DataView(head.buffer).getUint32(0);
    if (within !== undefined && 4 + len > within) throw new ProtocolError("unauthenticated", `a frame of ${len} bytes runs past the declared body length (${within} bytes left)`);
    if (len > maxBytes) throw new ProtocolError("too_large", `frame of ${len} bytes exceeds the limit of ${maxBytes}`);
    if (!(await this.fill(len))) throw new ProtocolError("bad_frame", `stream ends inside a frame (${this.buffered} of ${len} bytes)`);
    const wire = new Uint8Array(4 + len);
    wire.set(head);
    wire.set(this.take(len), 4);
    return { wire, body: wire.subarray(4) };
  }

  /** Whether the stream holds no more bytes (reads at most one more chunk). */
  async ended(): Promise<boolean> {
    return !(await this.fill(1));
  }

  /** The next decoded frame, or null at a clean end of stream. */
  async next(): Promise<Frame | null> {
    const raw = await this.nextRaw();
    return raw && decodeFrame(raw.body);
  }

  /** Stops reading (cancels the underlying stream). */
  async cancel(): Promise<void> {
    try {
      await this.reader.cancel();
    } catch { /* already closed */ }
  }
}

/**
 * A streamed frame body: `write` queues frames, `close` ends the stream. `onCancel` runs when the
 * reader goes away (the peer closed the connection), so the producer can stop its work.
 */
export function frameStream(onCancel?: () => void): { stream: ReadableStream<Uint8Array>; write(f: Frame): void; close(): void } {
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      ctrl = c;
    },
    cancel() {
      closed = true;
      onCancel?.();
    },
  });
  return {
    stream,
    write(f) {
      if (!closed) ctrl.enqueue(encodeFrame(f));
    },
    close() {
      if (!closed) {
        closed = true;
        ctrl.close();
      }
    },
  };
}

/**
 * Lets the event loop run between steps. NOTE: a backend that computes synchronously resolves every
 * await at once; without this the server would flush no preview and notice no disconnect until the
 * whole run is over.
 */
export { yieldNow as yieldToEventLoop } from "../yield.ts";
