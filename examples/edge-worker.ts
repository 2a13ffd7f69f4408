// An edge-platform module worker (`export default { fetch }`, as Cloudflare Workers, Deno Deploy and
// similar run it): GET /generate?label=sneaker&seed=1&steps=20 answers a PNG. Edge runtimes have no file
// system, so the weights of the default model are bundled with the worker (bundle/build.mjs gives esbuild
// the binary loader for .safetensors; wrangler's "Data" rule does the same). Harness: tests/examples.test.ts.
// In your project: `import { generate, loadModel } from "dic-sdk"` and
// `import weights from "dic-sdk/models/dic-fashion.safetensors"`.
import { type DiCModel, generate, loadModel } from "../sdk/index.ts";
import weights from "../models/dic-fashion.safetensors";

let model: Promise<DiCModel> | undefined;

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== "/generate") return new Response("not found; try /generate?label=sneaker\n", { status: 404 });
    try {
      // Loaded once per isolate, on the first request (no work at module top level).
      model ??= loadModel(weights).catch((e) => {
        model = undefined; // let the next request try again
        throw e;
      });
      const { images } = await generate({
        model: await model,
        label: url.searchParams.get("label") ?? "sneaker",
        seed: Number(url.searchParams.get("seed") ?? 1),
        steps: url.searchParams.has("steps") ? Number(url.searchParams.get("steps")) : undefined,
      });
      return new Response(await images[0].toPNG(), { headers: { "content-type": "image/png" } });
    } catch (e) {
      return new Response(`error: ${(e as Error).message}\n`, { status: 400 });
    }
  },
};
