// The edge end (docs/protocol.md section 7.2): runs the one sampling loop of src/pipeline.ts with the
// cut as a parameter — the decoder on a host per step (`unet`), the tail of the run on a host
// (`handoff`), every step there (`remote`: a handoff at step 0, so the edge needs no weights), or only
// the pixels there (`vae`) — and reports progress as it goes.
import type { DiCGraph } from "../model/dic.ts";
import { outChannels } from "../model/config.ts";
import { type ProgressInfo, runSampler, type RunSamplerResult } from "../pipeline.ts";
import type { HostTensor } from "../tensor.ts";
import { ProtocolError } from "./errors.ts";
import { yieldToEventLoop } from "./stream.ts";
import { CUTS, expectFrame, type Frame, type GenerationSettings, PROTOCOL_VERSION, SUPPORTED_VERSIONS } from "./frames.ts";
import { helloConfig, type ModelIdentity, sampleShapes, type ServedModel } from "./session.ts";
import { decodeTensor, encodeTensor, type WireDtype } from "./tensor-codec.ts";
import type { UpstreamPool } from "./upstream.ts";

/**
 * The cuts an edge offers: the wire's, and `remote`, which travels as a `handoff` at step 0 (the edge
 * draws x_T from the seed and owns the noise stream; the host runs every step).
 */
export const EDGE_CUTS = [...CUTS, "remote"] as const;
/** One of EDGE_CUTS. */
export type EdgeCut = (typeof EDGE_CUTS)[number];

/** The configuration of an edge's model, whether it holds the weights (a graph) or only their identity. */
export function edgeConfig(model: ServedModel | ModelIdentity) {
  return "graph" in model ? model.graph.config : model.config;
}

/** One generation as the edge runs it. */
export interface EdgeGeneration {
  /** Session id: names this generation in every frame (idempotency key with the step). */
  session: string;
  cut: EdgeCut;
  /** `handoff`: the edge runs steps [0, handoffStep), the host the rest (default steps / 2). */
  handoffStep?: number;
  /** Wire dtype of tensors in both directions (default f32; f16 halves the bytes, lossy). */
  dtype?: WireDtype;
  settings: GenerationSettings;
  /** Called after each step with the current x (also for steps a host ran, when it sent previews). */
  onProgress?: (p: { step: number; totalSteps: number; t: number; x: HostTensor | null }) => void;
  /** A handoff host's previews carry x every this many steps (default 0: progress only, no tensors). */
  previewEvery?: number;
  signal?: AbortSignal;
}

/** What an edge generation produced. */
export interface EdgeResult {
  /** Final samples [N, C, S, S] (null for `vae`, where the host returns pixels). */
  x: HostTensor | null;
  /** Decoded pixels and their range (`vae` cut), else null: a pixel-space model's x is the image. */
  image: HostTensor | null;
  pixelRange: [number, number] | null;
  seed: number | null;
  /** Milliseconds per remote request (per step for `unet`). */
  remoteMs: number[];
}

/**
 * Runs one generation through `pool` at the requested cut point. An edge that holds only the model's
 * identity (no weights) runs the `remote` cut only; one that holds only the encoder's tensors (part
 * "encode") runs the `unet` cut (and `remote`) only.
 */
export async function runEdgeGeneration(model: ServedModel | ModelIdentity, pool: UpstreamPool, gen: EdgeGeneration): Promise<EdgeResult> {
  const graph: DiCGraph | null = "graph" in model ? model.graph : null;
  const cfg = edgeConfig(model);
  if (!graph && gen.cut !== "remote") throw new ProtocolError("unsupported_cut", `cut=${gen.cut}: this edge holds no weights; it serves the remote cut only`);
  if (graph && graph.part !== "full" && gen.cut !== "remote" && !(gen.cut === "unet" && graph.part === "encode")) {
    throw new ProtocolError("unsupported_cut", `this edge holds only the "${graph.part}" part of the model's weights; it runs ${graph.part === "encode" ? "the unet cut only" : "no cut"}, not "${gen.cut}"`);
  }
  const g = gen.settings;
  const dtype = gen.dtype ?? "f32";
  const n = g.labels.length;
  const shapes = sampleShapes(cfg);
  let seq = 0;
  const header = () => ({ v: PROTOCOL_VERSION, session: gen.session, seq: ++seq });
  const hello = (): Frame => ({
    ...header(), type: "hello", versions: [...SUPPORTED_VERSIONS], cut: gen.cut === "remote" ? "handoff" : gen.cut, dtype, generation: g,
    model: { config: helloConfig(cfg), weights_sha256: model.weightsSha256 },
  });
  const remoteMs: number[] = [];
  const timed = async <T>(p: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await p();
    } finally {
      remoteMs.push(performance.now() - t0);
    }
  };
  const progress = (p: ProgressInfo) => {
    gen.onProgress?.({ step: p.step, totalSteps: p.totalSteps, t: p.t, x: p.x });
    return yieldToEventLoop();
  };
  const loop = (over: Partial<Parameters<typeof runSampler>[0]>): Promise<RunSamplerResult> => runSampler({
    model: (x, t, y) => graph!.forwardHost(x, t, y), learnSigma: cfg.learn_sigma, numClasses: cfg.num_classes, labels: g.labels,
    shape: [cfg.in_channels, cfg.input_size, cfg.input_size], steps: g.steps, sampler: g.sampler, eta: g.eta,
    cfgScale: g.cfg_scale, cfgMode: g.cfg_mode, seed: g.seed ?? undefined, onProgress: progress, signal: gen.signal, ...over,
  });

  if (gen.cut === "unet") {
    const outC = outChannels(cfg);
    const r = await loop({
      model: async (x, t, y, loopStep) => {
        const step = loopStep ?? 0; // NOTE: runSampler always passes it
        const enc = await graph!.encodeHost(x, t, y);
        const [bottleneck, ...skips] = [enc.bottleneck, ...enc.skips].map((h) => encodeTensor(h, dtype));
        const frames = await timed(() => pool.request([hello(), { ...header(), type: "step", step, t, y, bottleneck, skips }], `${gen.session} step ${step}`, gen.signal));
        const res = expectFrame(frames[0], "step_result", "unet answer");
        if (res.step !== step) throw new ProtocolError("bad_frame", `unet answer is for step ${res.step}, expected ${step}`);
        return decodeTensor(res.out, [x.shape[0], outC, cfg.input_size, cfg.input_size], "step_result.out");
      },
    });
    return { x: r.x, image: null, pixelRange: model.pixelRange, seed: r.seed === null ? null : Number(r.seed), remoteMs };
  }

  if (gen.cut === "vae") {
    const r = await loop({});
    const frames = await timed(() => pool.request([hello(), { ...header(), type: "latent", x: encodeTensor(r.x, dtype) }], `${gen.session} vae`, gen.signal));
    const fin = expectFrame(frames[frames.length - 1], "final", "vae answer");
    if (!fin.image || !fin.pixel_range) throw new ProtocolError("bad_frame", "vae answer carries no image");
    const image = decodeTensor(fin.image, [n, null, null, null], "final.image");
    return { x: null, image, pixelRange: [fin.pixel_range[0], fin.pixel_range[1]], seed: r.seed === null ? null : Number(r.seed), remoteMs };
  }

  // handoff, and remote: a handoff at step 0 (the zero-step loop draws x_T and calls no model).
  const k = gen.cut === "remote" ? 0 : gen.handoffStep ?? Math.floor(g.steps / 2);
  if (gen.cut !== "remote" && (!Number.isInteger(k) || k < 1 || k >= g.steps)) {
    throw new ProtocolError("bad_request", `handoff step ${k} must be in [1, ${g.steps - 1}] for ${g.steps} steps`);
  }
  const head = await loop({ stopAfterStep: k - 1 });
  const st = head.state;
  const state = {
    x: encodeTensor(st.x, "f32"), next_step: st.nextStep,
    rng: st.rngState ? { ...st.rngState, words: [...st.rngState.words] } : null,
    history: st.history ? { step: st.history.step, x0: encodeTensor(st.history.x0, "f32") } : null,
  };
  // NOTE: the state always travels as f32: resuming from rounded values would change the result.
  let lastStep = k - 1;
  const frames = await timed(() => pool.request(
    [hello(), { ...header(), type: "handoff", state, preview_every: gen.previewEvery ?? 0 }],
    `${gen.session} ${gen.cut} at ${k}`,
    gen.signal,
    (f) => {
      // A retried handoff repeats previews: pass each step on once.
      if (f.type === "preview" && f.step > lastStep) {
        lastStep = f.step;
        gen.onProgress?.({ step: f.step, totalSteps: f.total_steps, t: f.t, x: f.x ? decodeTensor(f.x, [n, ...shapes.x], "preview.x") : null });
      }
    },
  ));
  const fin = expectFrame(frames[frames.length - 1], "final", "handoff answer");
  if (!fin.x) throw new ProtocolError("bad_frame", "handoff answer carries no x");
  const x = decodeTensor(fin.x, [n, ...shapes.x], "final.x");
  return { x, image: null, pixelRange: model.pixelRange, seed: head.seed === null ? null : Number(head.seed), remoteMs };
}

