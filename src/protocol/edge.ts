// The edge end (docs/protocol.md section 7.2): runs the one sampling loop of src/pipeline.ts with the
// cut as a parameter — the decoder on a host per step (`unet`), the tail of the run on a host
// (`handoff`), every step there (`remote`: a handoff at step 0, so the edge needs no weights), or only
// the pixels there (`vae`) — and reports progress as it goes.
import type { DiCGraph } from "../model/dic.ts";
import { type ProgressInfo, runSampler } from "../pipeline.ts";
import { ProtocolError } from "./errors.ts";
import { yieldToEventLoop } from "./stream.ts";
import { type Frame, type GenerationSettings, PROTOCOL_VERSION, SUPPORTED_VERSIONS } from "./frames.ts";
import { CUT_TABLE, type EdgeProgress, type EdgeResult, type EdgeRun } from "./cuts/index.ts";
import { helloConfig, type ModelIdentity, type ServedModel } from "./session.ts";
import type { WireDtype } from "./tensor-codec.ts";
import type { UpstreamPool } from "./upstream.ts";

export type { EdgeResult } from "./cuts/index.ts";

/**
 * The cuts an edge offers: the wire's, and `remote`, which travels as a `handoff` at step 0 (the edge
 * draws x_T from the seed and owns the noise stream; the host runs every step).
 */
export const EDGE_CUTS = Object.keys(CUT_TABLE) as (keyof typeof CUT_TABLE)[];
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
  onProgress?: EdgeProgress;
  /** A handoff host's previews carry x every this many steps (default 0: progress only, no tensors). */
  previewEvery?: number;
  signal?: AbortSignal;
}

/** Whether an edge holding `model` can run `cut` (by the part of the weights it holds; none: `remote` only). */
export function edgeRuns(model: ServedModel | ModelIdentity, cut: EdgeCut): boolean {
  const part = "graph" in model ? model.graph.part : "none";
  return (CUT_TABLE[cut].edgeParts as readonly string[]).includes(part);
}

/**
 * Runs one generation through `pool` at the requested cut point (the cut's module in src/protocol/cuts/
 * runs it). An edge that holds only the model's identity (no weights) runs the `remote` cut only; one
 * that holds only the encoder's tensors (part "encode") runs the `unet` cut (and `remote`) only.
 */
export async function runEdgeGeneration(model: ServedModel | ModelIdentity, pool: UpstreamPool, gen: EdgeGeneration): Promise<EdgeResult> {
  const graph: DiCGraph | null = "graph" in model ? model.graph : null;
  const cfg = edgeConfig(model);
  const cut = CUT_TABLE[gen.cut];
  if (!edgeRuns(model, gen.cut)) {
    if (!graph) throw new ProtocolError("unsupported_cut", `cut=${gen.cut}: this edge holds no weights; it serves the remote cut only`);
    const runs = EDGE_CUTS.filter((c) => edgeRuns(model, c) && c !== "remote");
    throw new ProtocolError("unsupported_cut", `this edge holds only the "${graph.part}" part of the model's weights; it runs ${runs.length ? `the ${runs.join(", ")} cut only` : "no cut"}, not "${gen.cut}"`);
  }
  const g = gen.settings;
  const dtype = gen.dtype ?? "f32";
  let seq = 0;
  const header = () => ({ v: PROTOCOL_VERSION, session: gen.session, seq: ++seq });
  const remoteMs: number[] = [];
  const progress = (p: ProgressInfo) => {
    gen.onProgress?.({ step: p.step, totalSteps: p.totalSteps, t: p.t, x: p.x });
    return yieldToEventLoop();
  };
  const run: EdgeRun = {
    model, graph, cfg, pool, session: gen.session, settings: g, dtype, handoffStep: gen.handoffStep, previewEvery: gen.previewEvery ?? 0,
    signal: gen.signal, onProgress: gen.onProgress, header, remoteMs,
    hello: (): Frame => ({
      ...header(), type: "hello", versions: [...SUPPORTED_VERSIONS], cut: cut.wire, dtype, generation: g,
      model: { config: helloConfig(cfg), weights_sha256: model.weightsSha256 },
    }),
    timed: async <T>(p: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      try {
        return await p();
      } finally {
        remoteMs.push(performance.now() - t0);
      }
    },
    loop: (over) => runSampler({
      model: (x, t, y) => graph!.forwardHost(x, t, y), learnSigma: cfg.learn_sigma, numClasses: cfg.num_classes, labels: g.labels,
      shape: [cfg.in_channels, cfg.input_size, cfg.input_size], steps: g.steps, sampler: g.sampler, eta: g.eta,
      cfgScale: g.cfg_scale, cfgMode: g.cfg_mode, seed: g.seed ?? undefined, onProgress: progress, signal: gen.signal, ...over,
    }),
  };
  return cut.runEdge(run);
}
