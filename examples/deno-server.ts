// A Deno HTTP server: GET /generate?label=sneaker[&seed=1][&steps=20] answers a PNG from the default model.
//   deno run --allow-net --allow-read --allow-env examples/deno-server.ts      (PORT=8000 by default)
// In your project: `import { generate, loadDefaultModel } from "npm:dic-sdk"` (or "@dic/sdk" from deno.json).
import { generate, loadDefaultModel } from "../sdk/index.ts";

const model = await loadDefaultModel(); // once, before the first request

function handler(req: Request): Promise<Response> | Response {
  const url = new URL(req.url);
  if (req.method !== "GET" || url.pathname !== "/generate") return new Response("try GET /generate?label=sneaker\n", { status: 404 });
  return generate({
    model,
    label: url.searchParams.get("label") ?? "sneaker",
    seed: Number(url.searchParams.get("seed") ?? Date.now() % 1e9),
    steps: url.searchParams.has("steps") ? Number(url.searchParams.get("steps")) : undefined,
  }).then(
    async ({ images }) => new Response(await images[0].toPNG(), { headers: { "content-type": "image/png" } }),
    (e) => new Response(`error: ${(e as Error).message}\n`, { status: 400 }),
  );
}

Deno.serve({
  port: Number(Deno.env.get("PORT") ?? 8000),
  onListen: ({ port }) => console.log(`listening on http://localhost:${port}/generate?label=sneaker`),
}, handler);
