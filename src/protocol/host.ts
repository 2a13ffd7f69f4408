// The host end (docs/protocol.md section 7): a stateless Web-standard handler that authenticates a
// request, checks it against the model before allocating, and finishes the work of one cut point.
import { BodyDigest, checkDigest, DEFAULT_AUTH_WINDOW_MS, NonceCache, toHex, verifyAuthFrame } from "./auth.ts";
import { Admission, type Release } from "./admission.ts";
import { ProtocolError, refusalHeaders } from "./errors.ts";
import {
  audienceProblem, CUTS, DEFAULT_MAX_FRAME_BYTES, decodeFrame, encodeFrame, expectFrame, type Frame, type FrameOf,
  FRAMES_MEDIA_TYPE, PROTOCOL_VERSION, SUPPORTED_VERSIONS,
} from "./frames.ts";
import { CUT_TABLE, hostCut, type HostRun } from "./cuts/index.ts";
import { checkHello, PUBLISHED_METADATA, type ServedModel } from "./session.ts";
import { FrameReader } from "./stream.ts";
import { WIRE_DTYPES } from "./tensor-codec.ts";
import type { Bytes } from "../bytes.ts";

/** Options of {@link hostProtocolHandler}. */
export interface HostProtocolOptions {
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
  /**
   * Requests computing at once (default 8); up to `maxQueue` more (default 256) wait in arrival order,
   * holding only their auth frame (the body is read when a slot frees); beyond that `busy` (503) with
   * Retry-After, and the edge tries another host.
   */
  maxConcurrent?: number;
  maxQueue?: number;
}

/** Defaults of a host's admission control. */
export const HOST_ADMISSION_DEFAULTS = { maxConcurrent: 8, maxQueue: 256 } as const;

/** Largest auth frame: the only bytes a host reads before it knows who is asking. */
export const MAX_AUTH_FRAME_BYTES = 4096;

/** Frames a request may hold after the auth frame: hello and one work frame. */
const MAX_REQUEST_FRAMES = 2;

/** The audiences of `opts.audience`, checked (an Error naming the bad one). */
export function hostAudiences(audience: string | readonly string[] | undefined): readonly string[] | null {
  if (audience === undefined) return null;
  const list = typeof audience === "string" ? [audience] : [...audience];
  if (list.length === 0) throw new Error("audience: give at least one name (or none for the default)");
  for (const a of list) {
    const problem = audienceProblem(a);
    if (problem) throw new Error(`audience: ${problem}`);
  }
  return list;
}

/** An error frame and its HTTP response. */
export function errorResponse(e: unknown, session = "-", step: number | null = null): Response {
  // NOTE: an unexpected error's message may name paths or internals; the client gets only its code.
  const pe = e instanceof ProtocolError ? e : new ProtocolError("internal", "internal error (the host's log has the details)");
  return new Response(errorFrameBytes(pe, session, step), { status: pe.status, headers: { "content-type": FRAMES_MEDIA_TYPE, ...refusalHeaders(pe) } });
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
 * const handler = hostProtocolHandler({ model, key: await importSecret(secret) });
 * Deno.serve({ port: 8701 }, handler);
 *
 * (sdk/serve.ts `createHostHandler` builds one from a loaded model and a secret.)
 */
export function hostProtocolHandler(opts: HostProtocolOptions): (req: Request) => Promise<Response> {
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
  const servedCuts = CUTS.filter((c) => CUT_TABLE[c].hostServes(part, canDecode));

  const audiences = hostAudiences(opts.audience);
  const admission = new Admission(opts.maxConcurrent ?? HOST_ADMISSION_DEFAULTS.maxConcurrent, opts.maxQueue ?? HOST_ADMISSION_DEFAULTS.maxQueue, "host");

  /**
   * Reads and authenticates a request body (docs/protocol.md section 6): the auth frame alone, within a
   * short deadline and a few KiB; its MAC, audience and nonce; only then the body, frame by frame up to
   * the declared length, each frame hashed as it arrives; the digest at the end. Returns the frames,
   * decoded only once the body matches what was signed. An authenticated request waits for a slot of
   * the host's admission control before its body is read; `admitted` gets the slot.
   */
  async function readRequest(req: Request, admitted: (r: Release) => void): Promise<Frame[]> {
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
      // NOTE: a queued request holds its connection and auth frame only; its body waits in the sender's socket.
      admitted(await admission.acquire(req.signal));
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

  const hostRun = (req: Request, keep: (work: Promise<unknown>) => void): HostRun => ({ model, cfg, maxFrameBytes: maxFrame, log, req, keep });

  /** `GET /v1/info`: the protocol versions, the cuts served and the model's identity. */
  function info(): Response {
    return Response.json({
      protocol: "dic-stream", versions: SUPPORTED_VERSIONS, cuts: servedCuts, dtypes: WIRE_DTYPES, role: "host",
      model: {
        config: cfg, weights_sha256: toHex(model.weightsSha256), pixel_range: model.pixelRange,
        metadata: Object.fromEntries(PUBLISHED_METADATA.flatMap((k) => (model.metadata?.[k] === undefined ? [] : [[k, model.metadata[k]]]))),
      },
      max_frame_bytes: maxFrame, max_body_bytes: maxBody,
    });
  }

  /** `POST /v1/run`: authenticates, checks the hello against the model, and lets the cut answer its work frame. */
  async function run(req: Request): Promise<Response> {
    let session = "-", step: number | null = null;
    let release: Release | undefined;
    let kept: Promise<unknown> | undefined;
    try {
      const frames = await readRequest(req, (r) => (release = r));
      const hello = expectFrame(frames[0] ?? ({ type: "none" } as unknown as Frame), "hello", "frame after auth");
      session = hello.session;
      checkHello(hello, model);
      const work = frames[1];
      if (!work) throw new ProtocolError("bad_frame", "missing the work frame after hello");
      if (work.session !== session) throw new ProtocolError("bad_frame", `work frame session "${work.session}" differs from the hello's "${session}"`);
      if (!servedCuts.includes(hello.cut)) {
        if (hello.cut === "vae") throw new ProtocolError("unsupported_cut", "this host's model is a latent model and the host has no VAE decoder (dic serve --vae)");
        throw new ProtocolError("unsupported_cut", `this host holds only the "${part}" part of the model's weights and serves the cuts ${servedCuts.join(", ") || "(none)"}, not "${hello.cut}"`);
      }
      const cut = hostCut(hello.cut);
      const f = expectFrame(work, cut.sends, `${hello.cut} work frame`);
      if (f.type === "step") step = f.step;
      return await cut.run(hostRun(req, (w) => (kept = w)), hello, f);
    } catch (e) {
      if (!(e instanceof ProtocolError)) log(`host: ${session} internal error: ${(e as Error).stack ?? e}`);
      else log(`host: ${session} refused: ${e.message}`);
      return errorResponse(e, session, step);
    } finally {
      const free = release ?? (() => {});
      if (kept) kept.then(free, free);
      else free();
    }
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (req.method === "GET" && url.pathname === "/v1/info") return info();
    if (req.method === "GET" && url.pathname === "/healthz") return new Response("ok\n");
    if (url.pathname !== "/v1/run") return errorResponse(new ProtocolError("not_found", `no ${url.pathname} here (POST /v1/run, GET /v1/info, GET /healthz)`));
    if (req.method !== "POST") return errorResponse(new ProtocolError("method_not_allowed", `${req.method} /v1/run: use POST`, { allow: "POST" }));
    return run(req);
  }

  return handle;
}
