// The latent-streaming edge (createEdgeHandler) as a Cloudflare Workers / workerd module worker: it runs
// the sampling loop and the encoder half on wasm inside the isolate and sends each step's skips to the
// GPU hosts named in its bindings (DIC_UPSTREAMS: comma-separated base URLs; DIC_SECRET: the shared
// secret; set them with `wrangler secret put` or workerd config `bindings`; DIC_BACKEND optionally names
// the edge's backend, default auto, which is wasm there). The default model's
// weights are bundled with the worker; or DIC_WEIGHTS_URL names a weights file to read by HTTP Range,
// only the encoder's tensors (the edge's part of the unet cut), named by DIC_WEIGHTS_SHA256 (its hash,
// 64 hex digits, as published with it). bundle/build.mjs builds it into bundles/workerd/edge-handler.js;
// tests/workerd.test.ts runs it in workerd against a host on loopback.
import { createEdgeHandler, type Handler, loadServingModel } from "../../sdk/index.ts";
import weights from "../../models/dic-fashion.safetensors";

interface Env {
  DIC_UPSTREAMS?: string;
  DIC_SECRET?: string;
  DIC_BACKEND?: string;
  DIC_WEIGHTS_URL?: string;
  DIC_WEIGHTS_SHA256?: string;
}

let handler: Promise<Handler> | undefined;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (!env.DIC_UPSTREAMS || !env.DIC_SECRET) return new Response("edge not configured: set DIC_UPSTREAMS and DIC_SECRET\n", { status: 500 });
    // Built once per isolate, on the first request (no work at module top level).
    const load = () => env.DIC_WEIGHTS_URL
      ? loadServingModel(env.DIC_WEIGHTS_URL, env.DIC_BACKEND || "auto", { part: "encode", weightsSha256: env.DIC_WEIGHTS_SHA256 })
      : loadServingModel(weights, env.DIC_BACKEND || "auto");
    handler ??= load().then((model) =>
      createEdgeHandler({ model, upstreams: env.DIC_UPSTREAMS!.split(",").map((s) => s.trim()), secret: env.DIC_SECRET! })
    ).catch((e) => {
      handler = undefined; // let the next request try again
      throw e;
    });
    return (await handler)(request);
  },
};
