// The `unet` cut (docs/protocol.md section 1.1): per step, the edge runs embeddings, encoder and latent
// stage and sends the skips and the bottleneck; the host runs decoder and head and returns the model output.
import { labelRows, outChannels } from "../../model/config.ts";
import { ProtocolError } from "../errors.ts";
import { encodeFrame, expectFrame, type FrameOf, FRAMES_MEDIA_TYPE } from "../frames.ts";
import { unetCutShapes } from "../session.ts";
import { checkTensorLayout, decodeTensor, encodeTensor, type WireDtype } from "../tensor-codec.ts";
import { yieldSlice } from "../../yield.ts";
import type { CutModule, EdgeRun, HostCut, HostRun } from "./cut.ts";

/** Edge: the sampling loop, with a host request per step in place of the decoder. */
async function runEdge(e: EdgeRun) {
  const { cfg, graph, dtype } = e;
  const outC = outChannels(cfg);
  const r = await e.loop({
    model: async (x, t, y, loopStep) => {
      const step = loopStep ?? 0; // NOTE: runSampler always passes it
      const enc = await graph!.encodeHost(x, t, y);
      const host = [enc.bottleneck, ...enc.skips];
      // Each tensor is checksummed and copied (megabytes at 128 rows): the event loop gets turns between them.
      const wire = [];
      for (const h of host) {
        wire.push(encodeTensor(h, dtype));
        await yieldSlice();
      }
      const [bottleneck, ...skips] = wire;
      const frames = await e.timed(() => e.pool.request([e.hello(), { ...e.header(), type: "step", step, t, y, bottleneck, skips }], `${e.session} step ${step}`, e.signal));
      const res = expectFrame(frames[0], "step_result", "unet answer");
      if (res.step !== step) throw new ProtocolError("bad_frame", `unet answer is for step ${res.step}, expected ${step}`);
      return decodeTensor(res.out, [x.shape[0], outC, cfg.input_size, cfg.input_size], "step_result.out");
    },
  });
  return { x: r.x, image: null, pixelRange: e.model.pixelRange, seed: r.seed === null ? null : Number(r.seed), remoteMs: e.remoteMs };
}

/** Host: checks the step's rows and tensors against the model, runs the decoder, returns its output. */
async function runHost(h: HostRun, hello: FrameOf<"hello">, f: FrameOf<"step">): Promise<Response> {
  const { cfg, model } = h;
  const rows = f.t.length;
  if (rows < 1 || f.y.length !== rows) throw new ProtocolError("bad_request", `step: t has ${rows} entries and y ${f.y.length}; expected one per batch row`);
  const rows0 = labelRows(cfg);
  f.y.forEach((v, i) => {
    if (v >= rows0) throw new ProtocolError("bad_request", `step.y[${i}] = ${v} is outside 0..${rows0 - 1}`);
  });
  const shapes = unetCutShapes(cfg);
  if (f.skips.length !== shapes.skips.length) throw new ProtocolError("bad_tensor", `step.skips: ${f.skips.length} tensors, the model saves ${shapes.skips.length}`);
  // Shapes and sizes of every tensor are checked before any of them is converted.
  const wires = [f.bottleneck, ...f.skips];
  const want = [shapes.bottleneck, ...shapes.skips].map((s) => [rows, ...s]);
  wires.forEach((w, i) => checkTensorLayout(w, want[i], i === 0 ? "step.bottleneck" : `step.skips[${i - 1}]`));
  const host = wires.map((w, i) => decodeTensor(w, want[i], i === 0 ? "step.bottleneck" : `step.skips[${i - 1}]`));
  const [bottleneck, ...skips] = host;
  const res = await model.graph.decodeHost({ bottleneck, skips }, f.t, f.y);
  h.log(`host: ${f.session} unet step ${f.step} ok`);
  const answer = { v: f.v, type: "step_result" as const, session: f.session, seq: f.seq, step: f.step, out: encodeTensor(res, hello.dtype as WireDtype) };
  return new Response(encodeFrame(answer), { headers: { "content-type": FRAMES_MEDIA_TYPE } });
}

export const unetHost: HostCut<"step"> = { sends: "step", run: runHost };

export const unetCut: CutModule = {
  name: "unet", wire: "unet", sends: "step", answers: ["step_result"],
  edgeParts: ["full", "encode"],
  hostServes: (part) => part !== "encode",
  endsIn: "samples",
  runEdge,
};
