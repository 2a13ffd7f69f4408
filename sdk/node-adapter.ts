// Runs a Web-standard handler on node:http: IncomingMessage -> Request (streamed body, an abort
// signal that fires when the client goes away), Response -> ServerResponse (streamed, with backpressure).
// The node:http types are described structurally here, so the SDK's published types need no @types/node.
import type { Handler } from "./serve.ts";

/** What the adapter uses of node:http's IncomingMessage. */
export interface NodeRequestLike {
  readonly headers: Record<string, string | string[] | undefined>;
  readonly method?: string;
  readonly url?: string;
  readonly readableEnded?: boolean;
  on(event: "data", listener: (chunk: Uint8Array) => void): unknown;
  on(event: "end" | "close", listener: () => void): unknown;
  on(event: "error", listener: (e: Error) => void): unknown;
  removeAllListeners(event: "data"): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(error?: Error): unknown;
}

/** What the adapter uses of node:http's ServerResponse. */
export interface NodeResponseLike {
  readonly writableFinished: boolean;
  on(event: "close", listener: () => void): unknown;
  once(event: "drain" | "close" | "finish", listener: () => void): unknown;
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
}

/** Options of {@link toNodeListener}. */
export interface NodeListenerOptions {
  /**
   * A request body the handler stopped reading (a refusal answered before the whole body arrived) is
   * read on and discarded after the answer, so the client sees the answer rather than a reset; a body
   * still arriving this long after the answer closes the connection (default 5 s).
   */
  lingerMs?: number;
  /** At most this many unread body bytes are discarded before the connection is closed (default 256 MiB). */
  lingerBytes?: number;
}

/** The answer to a handler that threw: no message, path or stack reaches the client. */
function internalError(): Response {
  return Response.json({ type: "error", code: "internal", status: 500, message: "internal error" }, { status: 500 });
}

/**
 * Adapts `(Request) => Promise<Response>` to a node:http request listener. Every answer the handler
 * gives is written, refusals included: a request body the handler did not read is drained (bounded by
 * `lingerMs` and `lingerBytes`) instead of resetting the connection.
 *
 * @example
 * import { createServer } from "node:http";
 * import { createHostHandler, toNodeListener } from "dic-sdk";
 * createServer(toNodeListener(await createHostHandler({ secret }))).listen(8701);
 */
export function toNodeListener(handler: Handler, opts: NodeListenerOptions = {}): (req: NodeRequestLike, res: NodeResponseLike) => void {
  const lingerMs = opts.lingerMs ?? 5_000;
  const lingerBytes = opts.lingerBytes ?? 256 * 2 ** 20;
  return (req, res) => {
    const ctrl = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) ctrl.abort(new DOMException("client closed the connection", "AbortError"));
    });
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (Array.isArray(v)) for (const x of v) headers.append(k, x);
      else if (v !== undefined) headers.set(k, v);
    }
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const body = hasBody ? bodyStream(req) : null;
    void (async () => {
      let response: Response;
      try {
        const request = new Request(`http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`, {
          method: req.method, headers, signal: ctrl.signal,
          body: body ? body.stream : undefined,
          ...(body ? { duplex: "half" } : {}),
        } as RequestInit);
        response = await handler(request);
      } catch {
        response = internalError();
      }
      // Whatever the handler left unread is discarded (at once when it cancelled the body, else once the
      // answer is sent), so the answer reaches the client instead of a reset.
      if (body) {
        if (body.cancelled()) body.drain(lingerMs, lingerBytes);
        res.once("finish", () => body.drain(lingerMs, lingerBytes));
      }
      try {
        res.writeHead(response.status, Object.fromEntries(response.headers));
      } catch {
        return void res.destroy();
      }
      if (!response.body) return void res.end();
      const reader = response.body.getReader();
      ctrl.signal.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true });
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (!res.write(value)) {
            await new Promise<void>((r) => {
              res.once("drain", r);
              res.once("close", r);
            });
          }
        }
        res.end();
      } catch {
        res.destroy();
      }
    })();
  };
}

/**
 * The request body as a Web stream, read from the IncomingMessage on demand with backpressure (no
 * node:stream import, so the SDK's browser and edge bundles stay free of Node built-ins). Cancelling
 * it stops delivering data but keeps the connection: `drain` later discards the rest.
 */
function bodyStream(req: NodeRequestLike): { stream: ReadableStream<Uint8Array>; cancelled(): boolean; drain(ms: number, bytes: number): void } {
  let ended = false;
  let draining = false;
  let delivering = true;
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  req.pause();
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      ctl = c;
      req.on("data", (chunk) => {
        if (!delivering) return;
        c.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((c.desiredSize ?? 0) <= 0) req.pause();
      });
      req.on("end", () => {
        ended = true;
        if (delivering) {
          delivering = false;
          try {
            c.close();
          } catch { /* cancelled */ }
        }
      });
      req.on("error", (e) => {
        ended = true;
        if (delivering) {
          delivering = false;
          try {
            c.error(e);
          } catch { /* cancelled */ }
        }
      });
    },
    pull() {
      req.resume();
    },
    cancel() {
      delivering = false;
    },
  }, { highWaterMark: 1 });
  return {
    stream,
    cancelled: () => !delivering && !ended,
    drain(ms, bytes) {
      if (ended || draining || req.readableEnded) return;
      draining = true;
      if (delivering) {
        // The handler answered without reading to the end: what follows is not delivered.
        delivering = false;
        try {
          ctl.error(new DOMException("the response was sent before the request body was read", "AbortError"));
        } catch { /* already closed */ }
      }
      let discarded = 0;
      const timer = setTimeout(() => req.destroy(), ms);
      (timer as { unref?: () => void }).unref?.();
      req.removeAllListeners("data");
      req.on("data", (chunk) => {
        discarded += chunk.byteLength;
        if (discarded > bytes) {
          clearTimeout(timer);
          req.destroy();
        }
      });
      req.on("end", () => clearTimeout(timer));
      req.on("close", () => clearTimeout(timer));
      req.resume();
    },
  };
}
