// Runs a Web-standard handler on node:http: IncomingMessage -> Request (streamed body, an abort
// signal that fires when the client goes away), Response -> ServerResponse (streamed, with backpressure).
// The node:http types are described structurally here, so the SDK's published types need no @types/node.
import type { Handler } from "./serve.ts";

/** What the adapter uses of node:http's IncomingMessage. */
export interface NodeRequestLike extends AsyncIterable<Uint8Array> {
  readonly headers: Record<string, string | string[] | undefined>;
  readonly method?: string;
  readonly url?: string;
  destroy(error?: Error): unknown;
}

/** What the adapter uses of node:http's ServerResponse. */
export interface NodeResponseLike {
  readonly writableFinished: boolean;
  on(event: "close", listener: () => void): unknown;
  once(event: "drain" | "close", listener: () => void): unknown;
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
}

/**
 * Adapts `(Request) => Promise<Response>` to a node:http request listener.
 *
 * @example
 * import { createServer } from "node:http";
 * import { createHostHandler, toNodeListener } from "dic-sdk";
 * createServer(toNodeListener(await createHostHandler({ secret }))).listen(8701);
 */
export function toNodeListener(handler: Handler): (req: NodeRequestLike, res: NodeResponseLike) => void {
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
    void (async () => {
      const request = new Request(`http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`, {
        method: req.method, headers, signal: ctrl.signal,
        body: hasBody ? bodyStream(req) : undefined,
        ...(hasBody ? { duplex: "half" } : {}),
      } as RequestInit);
      let response: Response;
      try {
        response = await handler(request);
      } catch (e) {
        response = new Response(`internal error: ${(e as Error).message}\n`, { status: 500 });
      }
      res.writeHead(response.status, Object.fromEntries(response.headers));
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

/** The request body as a Web stream, read from the IncomingMessage on demand (no node:stream import, so the
 * SDK's browser and edge bundles stay free of Node built-ins). */
function bodyStream(req: NodeRequestLike): ReadableStream<Uint8Array> {
  const it = req[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const r = await it.next();
      if (r.done) c.close();
      else c.enqueue(new Uint8Array(r.value.buffer, r.value.byteOffset, r.value.byteLength));
    },
    cancel() {
      req.destroy();
    },
  });
}
