// The host end (docs/protocol.md section 7): a stateless Web-standard handler that authenticates a
// request, checks it against the model before allocating, and finishes the work of one cut point.
import { labelRows } from "../model/config.ts";
import { runSampler } from "../pipeline.ts";
import { GaussianRng, type RngState } from "../rng.ts";
import { checkCfgMode } from "../samplers/guidance.ts";
import { validateSettings } from "../settings.ts";
import { checkSamplerName } from "../samplers/index.ts";
import type { HostTensor } from "../tensor.ts";
import { BodyDigest, checkDigest, DEFAULT_AUTH_WINDOW_MS, NonceCache, toHex, verifyAuthFrame } from "./auth.ts";
import { ProtocolError } from "./errors.ts";
import {
  AUDIENCE_RE, CUTS, DEFAULT_MAX_FRAME_BYTES, decodeFrame, encodeFrame, expectFrame, type Frame, type FrameOf,
  FRAMES_MEDIA_TYPE, PROTOCOL_VERSION, SUPPORTED_VERSIONS,
} from "./frames.ts";
import { checkHello, PUBLISHED_METADATA, sampleShapes, type ServedModel, unetCutShapes } from "./session.ts";
import { FrameReader, frameStream, yieldToEventLoop } from "./stream.ts";
import { checkTensorLayout, decodeTensor, encodeTensor, WIRE_DTYPES, type WireDtype } from "./tensor-codec.ts";
import type { Bytes } from "../bytes.ts";

/** Options of {@link createHostHandler}. */
export interface HostHandlerOptions {
  model: ServedModel;
  /** HMAC key from `importSecret`. */
  key: CryptoKey;
  /** Largest frame body (default 64 MiB) and request body (default twice that). */
  maxFrameBytes?: number;
  maxBodyBytes?: number;
  /** Accepted clock difference, ms (default 60 s); nonces are remembered twice as long. */
  authWindowMs?: number;
  /** One line per request (session, cut, step, outcome); default: silent. */
  log?: (line: string) => void;
  /** Clock (tests move it to make stale requests). */
  now?: () => number;
  /** The auth frame must have arrived this long after the request (default 5 s): `timeout`. */
  authTimeoutMs?: number;
  /** Once authenticated, each read of the body must deliver within this long (default 30 s): `timeout`. */
  readTimeoutMs?: number;
  /**
   * The names this host answers to (docs/protocol.md section 6): a request signed for another audience is
   * `misdirected`, so one captured on its way to another host sharing the secret is refused here. Hosts
   * behind one load balancer may share one. Default: the name the request was addressed by (its URL's
   * host, from the Host header), which the sender chooses; hosts that share a secret with others should
   * each be given their own.
   */
  audience?: string | readonly string[];
}

/** Largest auth frame: the only bytes a host reads before it knows who is asking. */
export const MAX_AUTH_FRAME_BYTES = 4096;

/** Frames a request may hold after the auth frame: hello and one work frame. */
const MAX_REQUEST_FRAMES = 2;

/** The audiences of `opts.audience`, checked (an Error naming the bad one). */
export function hostAudiences(audience: string | readonly string[] | undefined): readonly string[] | null {
  if (audience === undefined) return null;
  const list = typeof audience === "string" ? [audience] : [...audience];
  if (list.length === 0) throw new Error("audience: give at least one name (or none for the default)");
  for (const a of list) if (typeof a !== "string" || !AUDIENCE_RE.test(a)) throw new Error(`audience: ${JSON.stringify(a)} is not 1..255 visible ASCII characters`);
  return list;
}

/** An error frame and its HTTP response. */
export function errorResponse(e: unknown, session = "-", step: number | null = null): Response {
  // NOTE: an unexpected error's message may name paths or internals; the client gets only its code.
  const pe = e instanceof ProtocolError ? e : new ProtocolError("internal", "internal error (the host's log has the details)");
  return new Response(errorFrameBytes(pe, session, step), { status: pe.status, headers: { "content-type": FRAMES_MEDIA_TYPE } });
}

/** The bytes of an error frame for `e`. */
export function errorFrameBytes(e: ProtocolError, session = "-", step: number | null = null): Bytes {
  const versions = Array.isArray(e.extra.versions) ? (e.extra.versions as number[]) : null;
  // A v1 request is refused in a v1 error frame (its fields are the same in v1 and v2), so that a v1
  // sender can read which versions are spoken here.
  const v = e.code === "unsupported_version" && e.extra.peerVersion === 1 ? 1 : PROTOCOL_VERSION;
  return encodeFrame({
    v, type: "error", session, seq: 0, code: e.code, status: e.status,
    message: e.message.replace(/^[a-z_]+: /, ""), step, versions,
  });
}

/**
 * A stateless host: `POST /v1/run` takes `auth, hello, work` frames and answers with frames;
 * `GET /v1/info` describes the model; anything refused gets its error frame and status, and the
 * host goes on serving. Usable as-is by Deno.serve, Bun.serve and edge workers.
 *
 * @example
 * const handler = createHostHandler({ model, key: await importSecret(secret) });
 * Deno.serve({ port: 8701 }, handler);
 */
export function createHostHandler(opts: HostHandlerOptions): (req: Request) => Promise<Response> {
  const maxFrame = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const maxBody = opts.maxBodyBytes ?? 2 * maxFrame;
  const now = opts.now ?? (() => Date.now());
  // Requests signed before this host started could replay ones it accepted before a restart.
  const startedAt = now();
  const authTimeoutMs = opts.authTimeoutMs ?? 5_000;
  const readTimeoutMs = opts.readTimeoutMs ?? 30_000;
  const nonces = new NonceCache(opts.authWindowMs ?? DEFAULT_AUTH_WINDOW_MS);
  const log = opts.log ?? (() => {});
  const { model } = opts;
  const cfg = model.graph.config;
  // A latent model's host decodes the vae cut only with a decoder (a VAE).
  const canDecode = model.decodePixels !== undefined || model.pixelRange !== null;
  // A model loaded with a part serves only the cuts that part can run (src/model/params.ts ModelPart).
  const part = model.graph.part;
  const servedCuts = CUTS.filter((c) => (c !== "vae" || canDecode) && (c !== "unet" || part !== "encode") && (c !== "handoff" || part === "full"));

  const audiences = hostAudiences(opts.audience);

  /**
   * Reads and authenticates a request body (docs/protocol.md section 6): the auth frame alone, within a
   * short deadline and a few KiB; its MAC, audience and nonce; only then the body, frame by frame up to
   * the declared length, each frame hashed as it arrives; the digest at the end. Returns the frames,
   * decoded only once the body matches what was signed.
   */
  async function readRequest(req: Request): Promise<Frame[]> {
    const declared = Number(req.headers.get("content-length") ?? NaN);
    if (declared > maxBody) throw new ProtocolError("too_large", `request body of ${declared} bytes exceeds the limit of ${maxBody}`);
    if (!req.body) throw new ProtocolError("bad_frame", "empty request body (expected auth, hello and a work frame)");
    const reader = new FrameReader(req.body, maxFrame);
    try {
      // Before authentication: one frame of at most a few KiB, within a short deadline.
      reader.deadline = performance.now() + authTimeoutMs;
      const first = await reader.nextRaw(MAX_AUTH_FRAME_BYTES);
      reader.deadline = undefined;
      reader.readTimeoutMs = readTimeoutMs;
      if (!first) throw new ProtocolError("bad_frame", "empty request body (expected auth, hello and a work frame)");
      const head = decodeFrame(first.body);
      if (head.type !== "auth") throw new ProtocolError("unauthenticated", `the first frame must be "auth", got "${head.type}"`);
      const auth = head;
      // NOTE: the MAC covers the declared length and digest of the body, so the sender is known before the body is read.
      const names = audiences ?? [new URL(req.url).host];
      await verifyAuthFrame(opts.key, auth, nonces, { now: now(), notBefore: startedAt, audiences: names });
      if (first.wire.length + auth.length > maxBody) throw new ProtocolError("too_large", `request body of ${first.wire.length + auth.length} bytes exceeds the limit of ${maxBody}`);
      if (Number.isFinite(declared) && declared !== first.wire.length + auth.length) {
        throw new ProtocolError("unauthenticated", `Content-Length ${declared} differs from the length the auth frame declares (${first.wire.length + auth.length})`);
      }
      return await readSignedBody(reader, auth);
    } finally {
      await reader.cancel();
    }
  }

  /** The frames after an authenticated auth frame: exactly `auth.length` bytes, hashed frame by frame, then checked. */
  async function readSignedBody(reader: FrameReader, auth: FrameOf<"auth">): Promise<Frame[]> {
    const raws: Uint8Array[] = [];
    const digest = new BodyDigest();
    let total = 0;
    while (total < auth.length) {
      if (raws.length >= MAX_REQUEST_FRAMES) throw new ProtocolError("bad_frame", `more than ${MAX_REQUEST_FRAMES} frames after auth`);
      const raw = await reader.nextRaw(maxFrame, auth.length - total);
      if (!raw) throw new ProtocolError("unauthenticated", `the body ends after ${total} of the ${auth.length} bytes the auth frame declares`);
      total += raw.wire.length;
      digest.add(raw.wire);
      raws.push(raw.wire);
    }
    if (!(await reader.ended())) throw new ProtocolError("unauthenticated", `the body is longer than the ${auth.length} bytes the auth frame declares`);
    // NOTE: nothing after the auth frame is decoded before the body matches the authenticated digest.
    checkDigest(auth, await digest.digest());
    return raws.map((w) => decodeFrame(w.subarray(4)));
  }

  function runUnet(hello: FrameOf<"hello">, f: FrameOf<"step">): Promise<Frame> {
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
    const b = model.graph.backend;
    const [bottleneck, ...skips] = host.map((t) => b.upload(t));
    return model.graph.decodeAsync({ bottleneck, skips }, f.t, f.y).then((out) => b.download(out).then((res) => {
      b.free(out);
      return { v: f.v, type: "step_result", session: f.session, seq: f.seq, step: f.step, out: encodeTensor(res, hello.dtype as WireDtype) };
    }));
  }

  async function pixels(x: HostTensor): Promise<{ image: HostTensor; range: [number, number] }> {
    if (model.decodePixels) return model.decodePixels(x);
    if (!model.pixelRange) throw new ProtocolError("unsupported_cut", "this host's model is a latent model and has no VAE decoder");
    return { image: x, range: model.pixelRange };
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (req.method === "GET" && url.pathname === "/v1/info") {
      return Response.json({
        protocol: "dic-stream", versions: SUPPORTED_VERSIONS, cuts: servedCuts, dtypes: WIRE_DTYPES, role: "host",
        model: {
          config: cfg, weights_sha256: toHex(model.weightsSha256), pixel_range: model.pixelRange,
          metadata: Object.fromEntries(PUBLISHED_METADATA.flatMap((k) => (model.metadata?.[k] === undefined ? [] : [[k, model.metadata[k]]]))),
        },
        max_frame_bytes: maxFrame, max_body_bytes: maxBody,
      });
    }
    if (req.method === "GET" && url.pathname === "/healthz") return new Response("ok\n");
    if (url.pathname !== "/v1/run") return errorResponse(new ProtocolError("not_found", `no ${url.pathname} here (POST /v1/run, GET /v1/info, GET /healthz)`));
    if (req.method !== "POST") {
      const res = errorResponse(new ProtocolError("method_not_allowed", `${req.method} /v1/run: use POST`));
      res.headers.set("allow", "POST");
      return res;
    }
    let session = "-", step: number | null = null;
    try {
      const frames = await readRequest(req);
      const hello = expectFrame(frames[0] ?? ({ type: "none" } as unknown as Frame), "hello", "frame after auth");
      session = hello.session;
      checkHello(hello, model);
      const work = frames[1];
      if (!work) throw new ProtocolError("bad_frame", "missing the work frame after hello");
      if (work.session !== session) throw new ProtocolError("bad_frame", `work frame session "${work.session}" differs from the hello's "${session}"`);
      const dtype = hello.dtype as WireDtype;
      if (hello.cut !== "vae" && !servedCuts.includes(hello.cut)) {
        throw new ProtocolError("unsupported_cut", `this host holds only the "${part}" part of the model's weights and serves the cuts ${servedCuts.join(", ") || "(none)"}, not "${hello.cut}"`);
      }
      if (hello.cut === "unet") {
        const f = expectFrame(work, "step", "unet work frame");
        step = f.step;
        const res = await runUnet(hello, f);
        log(`host: ${session} unet step ${f.step} ok`);
        return new Response(encodeFrame(res), { headers: { "content-type": FRAMES_MEDIA_TYPE } });
      }
      const shapes = sampleShapes(cfg);
      const n = hello.generation.labels.length;
      if (hello.cut === "vae") {
        const f = expectFrame(work, "latent", "vae work frame");
        if (!canDecode) throw new ProtocolError("unsupported_cut", "this host's model is a latent model and the host has no VAE decoder (dic serve --vae)");
        const x = decodeTensor(f.x, [n, ...shapes.x], "latent.x");
        const { image, range } = await pixels(x);
        const answer = encodeFrame({ v: f.v, type: "final", session, seq: f.seq, x: null, image: encodeTensor(image, dtype), pixel_range: range });
        // A refusal another host would repeat (final at the edge), rather than a frame the edge cannot read.
        if (answer.length - 4 > maxFrame) {
          throw new ProtocolError("too_large", `the decoded images [${image.shape.join(", ")}] make a frame of ${answer.length - 4} bytes, above the limit of ${maxFrame}; ask for fewer labels${dtype === "f32" ? " or dtype f16" : ""}`);
        }
        log(`host: ${session} vae ok`);
        return new Response(answer, { headers: { "content-type": FRAMES_MEDIA_TYPE } });
      }
      const f = expectFrame(work, "handoff", "handoff work frame");
      return handoff(req, hello, f, n, dtype);
    } catch (e) {
      if (!(e instanceof ProtocolError)) log(`host: ${session} internal error: ${(e as Error).stack ?? e}`);
      else log(`host: ${session} refused: ${e.message}`);
      return errorResponse(e, session, step);
    }
  }

  function handoff(req: Request, hello: FrameOf<"hello">, f: FrameOf<"handoff">, n: number, dtype: WireDtype): Response {
    const g = hello.generation;
    const shapes = sampleShapes(cfg);
    const s = f.state;
    // next_step 0 is the `remote` cut: the edge drew x_T, this host runs every step.
    if (s.next_step < 0 || s.next_step >= g.steps) throw new ProtocolError("bad_request", `handoff.state.next_step ${s.next_step} must be in [0, ${g.steps - 1}]`);
    checkTensorLayout(s.x, [n, ...shapes.x], "handoff.state.x");
    if (s.history) checkTensorLayout(s.history.x0, [n, ...shapes.x], "handoff.state.history.x0");
    const x = decodeTensor(s.x, [n, ...shapes.x], "handoff.state.x");
    const history = s.history ? { step: s.history.step, x0: decodeTensor(s.history.x0, [n, ...shapes.x], "handoff.state.history.x0") } : null;
    const ctrl = new AbortController();
    req.signal?.addEventListener("abort", () => ctrl.abort(), { once: true });
    const out = frameStream(() => ctrl.abort());
    const session = hello.session;
    const base = { v: f.v, session, seq: f.seq };
    // What the loop would refuse only once streaming has begun is checked here, so it gets a status.
    try {
      checkSamplerName(g.sampler);
      checkCfgMode(g.cfg_mode);
      if (s.rng) GaussianRng.fromState(s.rng as RngState);
      if (history && history.step !== s.next_step - 1) throw new Error(`history.step ${history.step} must be next_step - 1 = ${s.next_step - 1}`);
      validateSettings({ eta: g.eta, cfgScale: g.cfg_scale, steps: g.steps }, { names: { eta: "generation.eta", cfgScale: "generation.cfg_scale", steps: "generation.steps" } });
    } catch (e) {
      throw new ProtocolError("bad_request", `handoff: ${(e as Error).message}`);
    }
    let seq = f.seq;
    const run = runSampler({
      model: (xx, t, y) => model.graph.forwardHost(xx, t, y),
      learnSigma: cfg.learn_sigma, numClasses: cfg.num_classes, labels: g.labels, shape: [cfg.in_channels, cfg.input_size, cfg.input_size],
      steps: g.steps, sampler: g.sampler, eta: g.eta, cfgScale: g.cfg_scale, cfgMode: g.cfg_mode, seed: g.seed ?? undefined,
      initNoise: x, rngState: (s.rng ?? undefined) as RngState | undefined, history, startStep: s.next_step, signal: ctrl.signal,
      onProgress: (p) => {
        // One preview per step; it carries x every preview_every steps (0: never).
        const withX = f.preview_every > 0 && (p.step + 1) % f.preview_every === 0;
        out.write({ ...base, seq: ++seq, type: "preview", step: p.step, total_steps: p.totalSteps, t: p.t, x: withX ? encodeTensor(p.x, dtype) : null });
        return yieldToEventLoop();
      },
    });
    return new Response(startStreaming(run, out, base, session, (r) => ({ ...base, seq: ++seq, type: "final", x: encodeTensor(r.x, dtype), image: null, pixel_range: model.pixelRange }), log, ctrl), {
      headers: { "content-type": FRAMES_MEDIA_TYPE },
    });
  }

  return handle;
}

/** Streams the outcome of a running handoff: the final frame, or an error frame if it fails. */
function startStreaming<R>(
  run: Promise<R>,
  out: ReturnType<typeof frameStream>,
  base: { v: number; session: string; seq: number },
  session: string,
  final: (r: R) => Frame,
  log: (l: string) => void,
  ctrl: AbortController,
): ReadableStream<Uint8Array> {
  run.then((r) => {
    out.write(final(r));
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
  return out.stream;
}

