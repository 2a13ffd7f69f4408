// The `handoff` cut (docs/protocol.md section 1.2): the edge runs steps [0, k) and sends the sampler
// state; the host runs the rest, streaming a preview per step, and returns the final samples.
import { runSampler } from "../../pipeline.ts";
import { GaussianRng, type RngState } from "../../rng.ts";
import { checkCfgMode } from "../../samplers/guidance.ts";
import { checkSamplerName, getSampler } from "../../samplers/index.ts";
import { validateSettings } from "../../settings.ts";
import { ProtocolError } from "../errors.ts";
import { expectFrame, type Frame, type FrameOf, FRAMES_MEDIA_TYPE } from "../frames.ts";
import { sampleShapes } from "../session.ts";
import { frameStream, yieldToEventLoop } from "../stream.ts";
import { checkTensorLayout, decodeTensor, encodeTensor, type WireDtype } from "../tensor-codec.ts";
import type { CutModule, EdgeResult, EdgeRun, HostCut, HostRun } from "./cut.ts";

/**
 * Edge: steps [0, k) here, then one request carrying the sampler state; the host's previews are passed
 * on once each (a retried handoff repeats them). k = 0 is the `remote` cut (the loop only draws x_T).
 */
export async function handoffAt(e: EdgeRun, k: number, what: string): Promise<EdgeResult> {
  const n = e.settings.labels.length;
  const shapes = sampleShapes(e.cfg);
  const head = await e.loop({ stopAfterStep: k - 1 });
  const st = head.state;
  // NOTE: the state always travels as f32: resuming from rounded values would change the result.
  const state = {
    x: encodeTensor(st.x, "f32"), next_step: st.nextStep,
    rng: st.rngState ? { ...st.rngState, words: [...st.rngState.words] } : null,
    sampler_state: st.samplerState,
  };
  let lastStep = k - 1;
  const frames = await e.timed(() => e.pool.request(
    [e.hello(), { ...e.header(), type: "handoff", state, preview_every: e.previewEvery }],
    `${e.session} ${what} at ${k}`,
    e.signal,
    (f) => {
      if (f.type === "preview" && f.step > lastStep) {
        lastStep = f.step;
        e.onProgress?.({ step: f.step, totalSteps: f.total_steps, t: f.t, x: f.x ? decodeTensor(f.x, [n, ...shapes.x], "preview.x") : null });
      }
    },
  ));
  const fin = expectFrame(frames[frames.length - 1], "final", "handoff answer");
  if (!fin.x) throw new ProtocolError("bad_frame", "handoff answer carries no x");
  const x = decodeTensor(fin.x, [n, ...shapes.x], "final.x");
  return { x, image: null, pixelRange: e.model.pixelRange, seed: head.seed === null ? null : Number(head.seed), remoteMs: e.remoteMs };
}

function runEdge(e: EdgeRun): Promise<EdgeResult> {
  const steps = e.settings.steps;
  const k = e.handoffStep ?? Math.floor(steps / 2);
  if (!Number.isInteger(k) || k < 1 || k >= steps) throw new ProtocolError("bad_request", `handoff step ${k} must be in [1, ${steps - 1}] for ${steps} steps`);
  return handoffAt(e, k, "handoff");
}

/** What the host checks of a handoff before its answer starts (so that a refusal gets its status). */
function checkHandoff(hello: FrameOf<"hello">, f: FrameOf<"handoff">, elements: number): void {
  const g = hello.generation;
  try {
    checkSamplerName(g.sampler);
    checkCfgMode(g.cfg_mode);
    if (f.state.rng) GaussianRng.fromState(f.state.rng as RngState);
    // The sampler reads its own state: a throwaway one checks it here, before the answer starts.
    const sampler = getSampler(g.sampler, g.eta), index = g.steps - 1 - f.state.next_step;
    if (f.state.sampler_state) sampler.loadState(f.state.sampler_state, index, elements);
    else if (f.state.next_step > 0 && sampler.needsState(index, g.steps)) throw new Error(`resuming ${g.sampler} at step ${f.state.next_step} needs state.sampler_state`);
    validateSettings({ eta: g.eta, cfgScale: g.cfg_scale, steps: g.steps }, { names: { eta: "generation.eta", cfgScale: "generation.cfg_scale", steps: "generation.steps" } });
  } catch (e) {
    throw new ProtocolError("bad_request", `handoff: ${(e as Error).message}`);
  }
}

/** Host: resumes the sampler state and streams a preview per step, then the final samples. */
async function runHost(h: HostRun, hello: FrameOf<"hello">, f: FrameOf<"handoff">): Promise<Response> {
  const { cfg, model, log } = h;
  const g = hello.generation;
  const n = g.labels.length;
  const dtype = hello.dtype as WireDtype;
  const shapes = sampleShapes(cfg);
  const s = f.state;
  // next_step 0 is the `remote` cut: the edge drew x_T, this host runs every step.
  if (s.next_step < 0 || s.next_step >= g.steps) throw new ProtocolError("bad_request", `handoff.state.next_step ${s.next_step} must be in [0, ${g.steps - 1}]`);
  checkTensorLayout(s.x, [n, ...shapes.x], "handoff.state.x");
  const x = decodeTensor(s.x, [n, ...shapes.x], "handoff.state.x");
  checkHandoff(hello, f, x.data.length);
  const ctrl = new AbortController();
  h.req.signal?.addEventListener("abort", () => ctrl.abort(), { once: true });
  const out = frameStream(() => ctrl.abort());
  const session = hello.session;
  const base = { v: f.v, session, seq: f.seq };
  let seq = f.seq;
  const run = runSampler({
    model: (xx, t, y) => model.graph.forwardHost(xx, t, y),
    learnSigma: cfg.learn_sigma, numClasses: cfg.num_classes, labels: g.labels, shape: [cfg.in_channels, cfg.input_size, cfg.input_size],
    steps: g.steps, sampler: g.sampler, eta: g.eta, cfgScale: g.cfg_scale, cfgMode: g.cfg_mode, seed: g.seed ?? undefined,
    initNoise: x, rngState: (s.rng ?? undefined) as RngState | undefined, samplerState: s.sampler_state, startStep: s.next_step, signal: ctrl.signal,
    onProgress: (p) => {
      // One preview per step; it carries x every preview_every steps (0: never).
      const withX = f.preview_every > 0 && (p.step + 1) % f.preview_every === 0;
      out.write({ ...base, seq: ++seq, type: "preview", step: p.step, total_steps: p.totalSteps, t: p.t, x: withX ? encodeTensor(p.x, dtype) : null });
      return yieldToEventLoop();
    },
  });
  h.keep(run);
  run.then((r) => {
    out.write({ ...base, seq: ++seq, type: "final", x: encodeTensor(r.x, dtype), image: null, pixel_range: model.pixelRange } as Frame);
    out.close();
    log(`host: ${session} handoff ok`);
  }, (e) => {
    if (ctrl.signal.aborted) log(`host: ${session} handoff cancelled by the peer`);
    else {
      const pe = e instanceof ProtocolError ? e : new ProtocolError("bad_request", (e as Error).message);
      log(`host: ${session} handoff failed: ${pe.message}`);
      out.write({ ...base, type: "error", code: pe.code, status: pe.status, message: pe.message, step: null, versions: null });
    }
    out.close();
  });
  return new Response(out.stream, { headers: { "content-type": FRAMES_MEDIA_TYPE } });
}

export const handoffHost: HostCut<"handoff"> = { sends: "handoff", run: runHost };

export const handoffCut: CutModule = {
  name: "handoff", wire: "handoff", sends: "handoff", answers: ["preview", "final"],
  edgeParts: ["full"],
  hostServes: (part) => part === "full",
  endsIn: "samples",
  runEdge,
};
