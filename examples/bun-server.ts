// A Bun HTTP server: GET /generate?label=sneaker[&seed=1][&steps=20] answers a PNG from the default model.
//   bun examples/bun-server.ts      (PORT=3000 by default)
// In your project: `import { generate, loadDefaultModel } from "dic-sdk"`.
import { generate, loadDefaultModel } from "../sdk/index.ts";

declare const Bun: { serve(o: { port: number; fetch(req: Request): Promise<Response> | Response }): { port: number } };
declare const process: { env: Record<string, string | undefined> };

const model = await loadDefaultModel(); // once, before the first request

const server = Bun.serve({
  port: Number(process.env.PORT ?? 3000),
  async fetch(req) {
    const url = new URL(req.url);
    if (req.method !== "GET" || url.pathname !== "/generate") return new Response("try GET /generate?label=sneaker\n", { status: 404 });
    try {
      const { images } = await generate({
        model,
        label: url.searchParams.get("label") ?? "sneaker",
        seed: Number(url.searchParams.get("seed") ?? Date.now() % 1e9),
        steps: url.searchParams.has("steps") ? Number(url.searchParams.get("steps")) : undefined,
      });
      return new Response(await images[0].toPNG(), { headers: { "content-type": "image/png" } });
    } catch (e) {
      return new Response(`error: ${(e as Error).message}\n`, { status: 400 });
    }
  },
});
console.log(`listening on http://localhost:${server.port}/generate?label=sneaker`);
