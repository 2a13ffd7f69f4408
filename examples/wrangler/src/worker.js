// GET /generate?label=sneaker&seed=1 answers a PNG made by the default model, on the wasm backend.
import { generate, loadModel } from "dic-sdk";
import weights from "dic-sdk/models/dic-fashion.safetensors";

let model;

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname !== "/generate") return new Response("try /generate?label=sneaker\n", { status: 404 });
    model ??= loadModel(weights); // once per isolate
    const m = await model;
    const { images } = await generate({ model: m, label: url.searchParams.get("label") ?? "sneaker", seed: Number(url.searchParams.get("seed") ?? 1) });
    return new Response(await images[0].toPNG(), {
      headers: { "content-type": "image/png", "x-dic-backend": m.backend.name, "x-dic-backend-reason": m.backendReason.replace(/[^\x20-\x7e]/g, "?") },
    });
  },
};
