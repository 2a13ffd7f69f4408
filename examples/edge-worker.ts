// An edge-platform module worker (`export default { fetch }`, as Cloudflare Workers, Deno Deploy, Bun and
// similar run it): GET /generate?label=sneaker&seed=1&steps=20 answers a PNG. Edge runtimes have no file
// system, so the weights of the default model are bundled with the worker (bundle/build.mjs gives esbuild
// the binary loader for .safetensors; wrangler's "Data" rule does the same). Every response names the
// backend that ran (`x-dic-backend`, and why in `x-dic-backend-reason`) and the time the request took in
// this isolate (`server-timing`), so operators can hold it against their platform's CPU limit.
// bundle/build.mjs builds it twice: bundles/edge-worker.js (kernels compiled from embedded bytes) and
// bundles/workerd/edge-worker.js (kernels imported as .wasm modules, for Cloudflare Workers / workerd).
// Harnesses: tests/bundles.test.ts, tests/workerd.test.ts, tests/browser.test.ts.
// In your project: `import { generate, loadModel } from "dic-sdk"` and
// `import weights from "dic-sdk/models/dic-fashion.safetensors"`.
import { type DiCModel, generate, loadModel } from "../sdk/index.ts";
import weights from "../models/dic-fashion.safetensors";

let model: Promise<DiCModel> | undefined;

/** A header value from free text: printable ASCII only, one line, bounded. */
function headerText(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, "?").slice(0, 400);
}

export default {
  async fetch(request: Request): Promise<Response> {
    const t0 = performance.now();
    const url = new URL(request.url);
    const headers = new Headers({ "x-dic-backend": "none" }); // until a model has run
    const answer = (body: BodyInit, status: number, contentType: string) => {
      headers.set("content-type", contentType);
      headers.set("server-timing", `total;dur=${(performance.now() - t0).toFixed(1)}`);
      return new Response(body, { status, headers });
    };
    if (url.pathname !== "/generate") return answer("not found; try /generate?label=sneaker\n", 404, "text/plain");
    try {
      // Loaded once per isolate, on the first request (no work at module top level).
      model ??= loadModel(weights).catch((e) => {
        model = undefined; // let the next request try again
        throw e;
      });
      const m = await model;
      headers.set("x-dic-backend", m.backend.name);
      headers.set("x-dic-backend-reason", headerText(m.backendReason));
      const { images } = await generate({
        model: m,
        label: url.searchParams.get("label") ?? "sneaker",
        seed: Number(url.searchParams.get("seed") ?? 1),
        steps: url.searchParams.has("steps") ? Number(url.searchParams.get("steps")) : undefined,
      });
      return answer(await images[0].toPNG(), 200, "image/png");
    } catch (e) {
      return answer(`error: ${(e as Error).message}\n`, 400, "text/plain");
    }
  },
};
