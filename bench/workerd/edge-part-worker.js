// bench/workerd: a worker that times the edge's share of a `unet`-cut generation inside workerd. It runs
// the product's edge code (runEdgeGeneration: the sampling loop, embeddings + encoder + latent stage per
// step, the wire encoding of the skips) against a stand-in upstream that answers every step at once with
// a zero model output, so what the request costs is the edge part alone. The weights arrive as a Data
// module (./weights.safetensors), the kernels as wasm modules (the workerd entry).
//   GET /edge-part?steps=20&labels=2   -> JSON { ms, steps, backend }
import "../../sdk/workerd.ts";
import { loadServingModel } from "../../sdk/serve.ts";
import { outChannels } from "../../src/model/config.ts";
import { runEdgeGeneration } from "../../src/protocol/edge.ts";
import { encodeTensor } from "../../src/protocol/tensor-codec.ts";
import weights from "./weights.safetensors";

let served;

/** An UpstreamPool stand-in: every step's answer is a zero model output of the right shape. */
function standInPool(cfg) {
  return {
    async request(frames) {
      const step = frames[1];
      const rows = step.y.length, S = cfg.input_size;
      const out = { shape: [rows, outChannels(cfg), S, S], data: new Float32Array(rows * outChannels(cfg) * S * S) };
      return [{ v: step.v, session: step.session, seq: 1, type: "step_result", step: step.step, out: encodeTensor(out, "f32") }];
    },
  };
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    served ??= loadServingModel(weights, "wasm");
    const m = await served;
    if (url.pathname !== "/edge-part") return new Response("not found\n", { status: 404 });
    const steps = Number(url.searchParams.get("steps") ?? 20);
    const n = Number(url.searchParams.get("labels") ?? 1);
    const t0 = performance.now();
    await runEdgeGeneration({ graph: m.model.graph, weightsSha256: m.weightsSha256, pixelRange: null }, standInPool(m.model.config), {
      session: "s-bench", cut: "unet",
      settings: { labels: new Array(n).fill(1), steps, sampler: "ddim", eta: 0, cfg_scale: 1.5, cfg_mode: "standard", seed: 1 },
    });
    return Response.json({ ms: performance.now() - t0, steps, backend: m.model.backend.description });
  },
};
