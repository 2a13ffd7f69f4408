// An edge with no weights at all, as a Cloudflare Workers / workerd module worker: for models no edge
// can hold (DiC-XL, 702 M parameters), the hosts run every step (the `remote` cut) while the worker keeps
// the public API (/v1/generate), authentication, retries, cancellation and progress. At its first request
// it reads the model's identity (configuration, class names, weights hash) from the hosts' /v1/info.
// Bindings: DIC_UPSTREAMS (comma-separated host base URLs) and DIC_SECRET (the shared secret).
// bundle/build.mjs builds it into bundles/workerd/remote-edge.js; tests/workerd.test.ts runs it.
import { createEdgeHandler, type Handler, loadRemoteModel } from "../../sdk/index.ts";

interface Env {
  DIC_UPSTREAMS?: string;
  DIC_SECRET?: string;
}

let handler: Promise<Handler> | undefined;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (!env.DIC_UPSTREAMS || !env.DIC_SECRET) return new Response("edge not configured: set DIC_UPSTREAMS and DIC_SECRET\n", { status: 500 });
    const upstreams = env.DIC_UPSTREAMS.split(",").map((s) => s.trim());
    // Built once per isolate, on the first request (no I/O at module top level).
    handler ??= loadRemoteModel(upstreams).then((model) => createEdgeHandler({ model, upstreams, secret: env.DIC_SECRET! })).catch((e) => {
      handler = undefined; // let the next request try again
      throw e;
    });
    return (await handler)(request);
  },
};
