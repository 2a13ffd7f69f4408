// What a cut point is (docs/protocol.md section 1): one module per cut (unet.ts, handoff.ts, vae.ts,
// remote.ts) declares what travels, which sides can run it, what the edge runs and what the host runs;
// index.ts puts them in one table that the edge, the host and the edge API read.
import type { DiCConfig } from "../../model/config.ts";
import type { DiCGraph } from "../../model/dic.ts";
import type { ModelPart } from "../../model/params.ts";
import type { runSampler, RunSamplerResult } from "../../pipeline.ts";
import type { HostTensor } from "../../tensor.ts";
import type { Cut, Frame, FrameHeader, FrameOf, GenerationSettings } from "../frames.ts";
import type { ModelIdentity, ServedModel } from "../session.ts";
import type { WireDtype } from "../tensor-codec.ts";
import type { UpstreamPool } from "../upstream.ts";

/** Progress of an edge generation, after each step (also for steps a host ran, when it sent previews). */
export type EdgeProgress = (p: { step: number; totalSteps: number; t: number; x: HostTensor | null }) => void;

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

/** What a cut's edge side is given: the model, the pool, the generation and helpers shared by every cut. */
export interface EdgeRun {
  model: ServedModel | ModelIdentity;
  /** The edge's graph; null for an edge with no weights (the `remote` cut only). */
  graph: DiCGraph | null;
  cfg: DiCConfig;
  pool: UpstreamPool;
  session: string;
  settings: GenerationSettings;
  dtype: WireDtype;
  handoffStep: number | undefined;
  previewEvery: number;
  signal: AbortSignal | undefined;
  onProgress: EdgeProgress | undefined;
  /** A fresh frame header (next seq of this session). */
  header(): FrameHeader;
  /** The hello of this generation, for the cut's wire name. */
  hello(): Frame;
  /** Runs a host request, recording its time in remoteMs. */
  timed<T>(p: () => Promise<T>): Promise<T>;
  remoteMs: number[];
  /** The one sampling loop with this generation's settings, `over` on top. */
  loop(over: Partial<Parameters<typeof runSampler>[0]>): Promise<RunSamplerResult>;
}

/** What a cut's host side is given. */
export interface HostRun {
  model: ServedModel;
  cfg: DiCConfig;
  maxFrameBytes: number;
  log: (line: string) => void;
  /** The request (its signal cancels a streamed answer). */
  req: Request;
  /** A cut whose answer streams on after run() returns passes the work here: the host's slot is held until it settles. */
  keep(work: Promise<unknown>): void;
}

/** The host side of a wire cut: answers its work frame. */
export interface HostCut<W extends "step" | "handoff" | "latent"> {
  /** The work frame it answers. */
  sends: W;
  /** Checks (before anything is allocated) and answers; refusals are ProtocolErrors. */
  run(h: HostRun, hello: FrameOf<"hello">, work: FrameOf<W>): Promise<Response>;
}

/** One cut point. */
export interface CutModule {
  /** Its name in the edge API (`cut=`). */
  name: string;
  /** The hello's `cut` on the wire (`remote` travels as `handoff`). */
  wire: Cut;
  /** The work frame the edge sends, and the frames the host answers with. */
  sends: "step" | "handoff" | "latent";
  answers: readonly string[];
  /** The edges that can run it: by the part of the weights they hold ("none": an edge with no weights). */
  edgeParts: readonly (ModelPart | "none")[];
  /** Whether a host holding `part` (and a decoder for pixels, or not) serves it. */
  hostServes(part: ModelPart, canDecode: boolean): boolean;
  /** What the generation ends in at the edge: samples (latents of a latent model) or pixels. */
  endsIn: "samples" | "pixels";
  /** The edge side: runs the generation through the pool. */
  runEdge(e: EdgeRun): Promise<EdgeResult>;
}
