// Admission control (docs/protocol.md section 10): a concurrency limit with a bounded queue (edges and hosts), and a JSON
// body read under a byte limit and a nesting limit. Refusals are ProtocolErrors with stable codes.
import { ProtocolError } from "./errors.ts";

/** A slot held while one generation runs; release it exactly once. */
export type Release = () => void;

/**
 * At most `maxConcurrent` generations run at once; up to `maxQueue` more wait in arrival order; beyond
 * that a request is refused at once with `busy` (503) and a Retry-After hint.
 */
export class Admission {
  private active = 0;
  private readonly waiting: { grant: (r: Release) => void }[] = [];
  /** Moving average of how long a slot is held, ms (the Retry-After estimate). */
  private heldMs = 0;

  /** `who` names the server in the refusal ("edge", "host"). */
  constructor(readonly maxConcurrent: number, readonly maxQueue: number, readonly who = "edge") {
    if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) throw new RangeError(`maxConcurrent must be an integer >= 1, got ${maxConcurrent}`);
    if (!(Number.isInteger(maxQueue) && maxQueue >= 0)) throw new RangeError(`maxQueue must be an integer >= 0, got ${maxQueue}`);
  }

  /** Generations running, and waiting. */
  get load(): { running: number; queued: number } {
    return { running: this.active, queued: this.waiting.length };
  }

  /** Seconds a refused client should wait before it retries (at least 1). */
  retryAfterSeconds(): number {
    const turns = (this.waiting.length + 1) / this.maxConcurrent;
    return Math.max(1, Math.ceil((turns * (this.heldMs || 1000)) / 1000));
  }

  /** Waits for a slot; `busy` when the queue is full, the signal's reason when it aborts while waiting. */
  acquire(signal?: AbortSignal): Promise<Release> {
    signal?.throwIfAborted();
    if (this.active < this.maxConcurrent) {
      this.active++;
      return Promise.resolve(this.release());
    }
    if (this.waiting.length >= this.maxQueue) {
      return Promise.reject(new ProtocolError("busy", `the ${this.who} is at its limit (${this.maxConcurrent} running, ${this.maxQueue} queued); retry later`, { retryAfter: this.retryAfterSeconds() }));
    }
    return new Promise<Release>((resolve, reject) => {
      const entry = {
        grant: (r: Release) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(r);
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private release(): Release {
    const t0 = performance.now();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const held = performance.now() - t0;
      this.heldMs = this.heldMs === 0 ? held : 0.8 * this.heldMs + 0.2 * held;
      const next = this.waiting.shift();
      if (next) next.grant(this.release());
      else this.active--;
    };
  }
}

/**
 * Reads a request body as UTF-8 text, refusing it (`too_large`, 413) as soon as it passes `maxBytes`,
 * from its declared Content-Length or while reading: nothing beyond the limit is buffered.
 */
export async function readBodyText(req: Request, maxBytes: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  const tooLarge = () => new ProtocolError("too_large", `request body exceeds the limit of ${maxBytes} bytes`, { field: "body", limit: maxBytes });
  if (declared > maxBytes) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) all.set(c, o), o += c.byteLength;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  } catch {
    throw new ProtocolError("bad_request", "request body: not UTF-8 text", { field: "body" });
  }
}

/** Throws `bad_request` (field `body`) when JSON `text` nests arrays and objects deeper than `maxDepth`. */
export function checkJsonDepth(text: string, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > maxDepth) throw new ProtocolError("bad_request", `request body: nested deeper than ${maxDepth} levels`, { field: "body" });
    } else if (c === 93 || c === 125) depth--;
  }
}

/** Parses a JSON object body read under the byte and nesting limits; refusals are `too_large` or `bad_request`. */
export async function readJsonObject(req: Request, maxBytes: number, maxDepth: number): Promise<Record<string, unknown>> {
  const text = await readBodyText(req, maxBytes);
  checkJsonDepth(text, maxDepth);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new ProtocolError("bad_request", `request body: ${(e as Error).message}`, { field: "body" });
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new ProtocolError("bad_request", "request body: expected a JSON object", { field: "body" });
  return body as Record<string, unknown>;
}
