// The `vae` cut (docs/protocol.md section 1.3): the edge runs every step and sends the final samples;
// the host decodes them to pixels (a pixel-space model's samples are the image).
import { ProtocolError } from "../errors.ts";
import { encodeFrame, expectFrame, type FrameOf, FRAMES_MEDIA_TYPE } from "../frames.ts";
import { sampleShapes } from "../session.ts";
import { decodeTensor, encodeTensor, type WireDtype } from "../tensor-codec.ts";
import type { HostTensor } from "../../tensor.ts";
import type { CutModule, EdgeRun, HostCut, HostRun } from "./cut.ts";

/** Edge: the whole loop, then one request with the final samples. */
async function runEdge(e: EdgeRun) {
  const r = await e.loop({});
  const frames = await e.timed(() => e.pool.request([e.hello(), { ...e.header(), type: "latent", x: encodeTensor(r.x, e.dtype) }], `${e.session} vae`, e.signal));
  const fin = expectFrame(frames[frames.length - 1], "final", "vae answer");
  if (!fin.image || !fin.pixel_range) throw new ProtocolError("bad_frame", "vae answer carries no image");
  const image = decodeTensor(fin.image, [e.settings.labels.length, null, null, null], "final.image");
  return { x: null, image, pixelRange: [fin.pixel_range[0], fin.pixel_range[1]] as [number, number], seed: r.seed === null ? null : Number(r.seed), remoteMs: e.remoteMs };
}

async function pixels(h: HostRun, x: HostTensor): Promise<{ image: HostTensor; range: [number, number] }> {
  if (h.model.decodePixels) return h.model.decodePixels(x);
  if (!h.model.pixelRange) throw new ProtocolError("unsupported_cut", "this host's model is a latent model and has no VAE decoder");
  return { image: x, range: h.model.pixelRange };
}

/** Host: decodes the samples; an answer above the frame limit is refused (`too_large`) rather than sent. */
async function runHost(h: HostRun, hello: FrameOf<"hello">, f: FrameOf<"latent">): Promise<Response> {
  const dtype = hello.dtype as WireDtype;
  const x = decodeTensor(f.x, [hello.generation.labels.length, ...sampleShapes(h.cfg).x], "latent.x");
  const { image, range } = await pixels(h, x);
  const answer = encodeFrame({ v: f.v, type: "final", session: f.session, seq: f.seq, x: null, image: encodeTensor(image, dtype), pixel_range: range });
  // A refusal another host would repeat (final at the edge), rather than a frame the edge cannot read.
  if (answer.length - 4 > h.maxFrameBytes) {
    throw new ProtocolError("too_large", `the decoded images [${image.shape.join(", ")}] make a frame of ${answer.length - 4} bytes, above the limit of ${h.maxFrameBytes}; ask for fewer labels${dtype === "f32" ? " or dtype f16" : ""}`);
  }
  h.log(`host: ${f.session} vae ok`);
  return new Response(answer, { headers: { "content-type": FRAMES_MEDIA_TYPE } });
}

export const vaeHost: HostCut<"latent"> = { sends: "latent", run: runHost };

export const vaeCut: CutModule = {
  name: "vae", wire: "vae", sends: "latent", answers: ["final"],
  edgeParts: ["full"],
  // Any part: decoding needs no DiC weights, only a decoder (or a pixel-space model).
  hostServes: (_part, canDecode) => canDecode,
  endsIn: "pixels",
  runEdge,
};
