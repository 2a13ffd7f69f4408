// Web-standard servers of the latent streaming protocol (docs/protocol.md): a host handler that
// finishes work at a cut point, and an edge handler with the public generation API. Both are
// `(Request) => Promise<Response>`, for Deno.serve, Bun.serve, edge workers and (via toNodeListener) node:http.
import type { Backend } from "../src/backend/contract.ts";
import type { BackendName } from "../src/backend/registry.ts";
import { encodePNG, makeGrid, toRGBA } from "../src/image.ts";
import { randomSeed } from "../src/rng.ts";
import { DicError } from "../src/errors.ts";
import { DECIMAL_TEXT, validateSettings } from "../src/settings.ts";
import type { HostTensor } from "../src/tensor.ts";
import { Admission, readJsonObject, type Release } from "../src/protocol/admission.ts";
import { importSecret, sha256, toHex } from "../src/protocol/auth.ts";
import type { DownloadOptions } from "../src/weights/download.ts";
import type { ModelPart } from "../src/model/params.ts";
import { CUT_TABLE } from "../src/protocol/cuts/index.ts";
import { EDGE_CUTS, type EdgeCut, runEdgeGeneration } from "../src/protocol/edge.ts";
import { ProtocolError, refusalHeaders } from "../src/protocol/errors.ts";
import { type Frame, FRAMES_MEDIA_TYPE, type GenerationSettings, PROTOCOL_VERSION } from "../src/protocol/frames.ts";
import { hostProtocolHandler } from "../src/protocol/host.ts";
import { type ModelIdentity, parseHostModelInfo, type ServedModel } from "../src/protocol/session.ts";
import { frameStream, yieldToEventLoop } from "../src/protocol/stream.ts";
import { encodeTensor, WIRE_DTYPES, type WireDtype } from "../src/protocol/tensor-codec.ts";
import { UpstreamPool } from "../src/protocol/upstream.ts";
import { defaultModelUrl } from "./default-model.ts";
import { DiCModel, DiCModelCard, loadModel, loadModelFrom, type ModelSource } from "./model.ts";
import { openHashedStream } from "../src/weights/open.ts";
import { loadVAE, VAEModel } from "./vae.ts";

/** A request handler in the Web-standard shape. */
export type Handler = (req: Request) => Promise<Response>;

/** A model loaded for serving: the DiCModel and the SHA-256 of its weights file. */
export interface ServingModel {
  model: DiCModel;
  weightsSha256: Uint8Array;
}

/** Options of {@link loadServingModel}. */
export interface ServingLoadOptions {
  /**
   * The tensors this side needs (default "full"): "encode" for the edge of the `unet` cut (embedders,
   * encoder, latent stage), "decode" for its host (decoder and head). A part's host answers only `unet`
   * requests and a part's edge runs only the `unet` cut.
   */
  part?: ModelPart;
  /**
   * The weights file's SHA-256 (64 hex digits), as published with it. Both ends of a session name their
   * weights by this hash. Without it the whole file is read once, start to end, through an incremental
   * hash while the part's tensors are bound (never held whole). With it and a part, only the part is read
   * (a URL by Range, a path through a file handle) and the hash is taken as given; with it and every
   * tensor (or bytes in memory), the file is read whole anyway and checked against it.
   */
  weightsSha256?: string;
  /** For http(s) URLs: progress and abort (and, with `weightsSha256`, the range cache; see `LoadModelOptions.download`). */
  download?: DownloadOptions;
  /** Most bytes the backend's memory may take (wasm; see `LoadModelOptions.memoryBudget`). */
  memoryBudget?: number;
}

/**
 * Loads weights for serving and the SHA-256 of the weights file (both ends of a session must hold the
 * same weights): hashed here from the whole file, or given as `options.weightsSha256` (then only the
 * tensors of `options.part` are read). No source: the embedded default model.
 *
 * @example
 * const served = await loadServingModel("dic-s.safetensors", "wasm");
 * // The edge of a unet cut, reading only the encoder's tensors by HTTP Range:
 * const edge = await loadServingModel("https://example.com/dic-s.safetensors", "wasm", { part: "encode", weightsSha256: "9f86d0..." });
 * console.log(edge.model.loadInfo); // { mode: "ranges", bytesRead, fileSize, ... }
 */
export async function loadServingModel(source?: ModelSource, backend: BackendName | Backend = "auto", options: ServingLoadOptions = {}): Promise<ServingModel> {
  const part = options.part ?? "full";
  const hex = options.weightsSha256?.toLowerCase();
  if (hex !== undefined && !/^[0-9a-f]{64}$/.test(hex)) throw new Error(`loadServingModel: weightsSha256 must be 64 hex digits, got "${options.weightsSha256}"`);
  const checked = (got: Uint8Array): Uint8Array => {
    if (hex !== undefined && toHex(got) !== hex) throw new Error(`loadServingModel: the weights' SHA-256 is ${toHex(got)}, weightsSha256 says ${hex}`);
    return got;
  };
  // Bytes in memory are hashed as they are (and checked against a given hash).
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const bytes = source instanceof Uint8Array ? source : new Uint8Array(source);
    const weightsSha256 = checked(await sha256(bytes));
    return { model: await loadModel(bytes, { backend, part, memoryBudget: options.memoryBudget }), weightsSha256 };
  }
  // A part with its hash given: only the part is read (by Range, or through a file handle); the hash is taken as given.
  if (hex !== undefined && part !== "full") {
    const model = await loadModel(source ?? await defaultModelUrl(), { backend, part, download: options.download, memoryBudget: options.memoryBudget });
    return { model, weightsSha256: new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16))) };
  }
  // Otherwise the file is read once, start to end, through an incremental hash while the part's tensors are
  // bound (never held whole); a given hash is checked, and the tensors are freed on a mismatch.
  const { source: src, digest } = await openHashedStream(source ?? await defaultModelUrl(), options.download); // default: file: on servers, http(s): in workers and browsers
  if (hex !== undefined) {
    src.verify = async () => void checked(await digest());
  }
  try {
    const model = await loadModelFrom(src, { backend, part, memoryBudget: options.memoryBudget });
    return { model, weightsSha256: hex === undefined ? await digest() : new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16))) };
  } finally {
    await src.close();
  }
}

/**
 * A model an edge serves with no weights at all (the `remote` cut: a host runs every step): its card
 * (configuration, class names, sampling defaults) and weights hash, as a host publishes them.
 */
export interface RemoteModel {
  card: DiCModelCard;
  weightsSha256: Uint8Array;
}

/**
 * Reads the model of the first of `upstreams` that answers `GET /v1/info` (each within `timeoutMs`,
 * default 10 s), for an edge that holds no weights: models too large for any edge (DiC-XL) are served
 * through the same edge API, every step on the hosts. The hosts still check every request's weights hash.
 *
 * @example
 * const edge = await createEdgeHandler({ model: await loadRemoteModel(["http://gpu-1:8701"]), upstreams: ["http://gpu-1:8701"], secret });
 */
export async function loadRemoteModel(upstreams: string | string[], options: { timeoutMs?: number } = {}): Promise<RemoteModel> {
  const urls = typeof upstreams === "string" ? [upstreams] : upstreams;
  if (urls.length === 0) throw new ProtocolError("bad_request", "loadRemoteModel: need at least one upstream URL");
  const failures: string[] = [];
  for (const u of urls) {
    const base = u.replace(/\/+$/, "");
    let info: unknown;
    try {
      const r = await fetch(`${base}/v1/info`, { signal: AbortSignal.timeout(options.timeoutMs ?? 10_000) });
      if (!r.ok) throw new Error(`status ${r.status}`);
      info = await r.json();
    } catch (e) {
      failures.push(`${base}: ${(e as Error).message}`);
      continue;
    }
    const m = parseHostModelInfo(info, base);
    return { card: new DiCModelCard(m.config, m.metadata, `${base}/v1/info`), weightsSha256: m.weightsSha256 };
  }
  throw new ProtocolError("upstream_failed", `loadRemoteModel: no upstream answered /v1/info (${failures.join("; ")})`);
}

function served(s: ServingModel): ServedModel {
  return { graph: s.model.graph, weightsSha256: s.weightsSha256, pixelRange: s.model.pixelRange, metadata: s.model.metadata };
}

/** Options of {@link createHostHandler}. */
export interface HostOptions {
  /** The model and its weights hash (default: the embedded model on `backend`). */
  model?: ServingModel;
  backend?: BackendName | Backend;
  /** Shared secret (at least 16 bytes) for HMAC-SHA256 request authentication. */
  secret: string | Uint8Array;
  maxFrameBytes?: number;
  authWindowMs?: number;
  /**
   * The names this host answers to (docs/protocol.md section 6); a request signed for another is
   * refused (`misdirected`). Hosts behind one load balancer may share one. Default: the name the request
   * was addressed by (its Host), which the sender chooses: hosts that share a secret should each have one.
   */
  audience?: string | readonly string[];
  /**
   * Admission control: requests computing at once (default 8) and waiting (default 256; each holds only its
   * auth frame until a slot frees); beyond that `busy` (503) with Retry-After, and edges try another host.
   */
  maxConcurrent?: number;
  maxQueue?: number;
  log?: (line: string) => void;
  /** Decoder of the `vae` cut for latent models (pixel-space models need none); takes precedence over `vae`. */
  decodePixels?: ServedModel["decodePixels"];
  /**
   * The SD-VAE decoder of a latent model's `vae` cut: a loaded VAEModel, or where to load one (loaded on
   * the model's backend). Its latent channels must equal the model's in_channels. Without it (and
   * without `decodePixels`) a latent model's host answers the `vae` cut with `unsupported_cut`.
   */
  vae?: VAEModel | ModelSource;
  /** Activation memory the VAE decode may use, in bytes; above it the decode runs in tiles. Default: no limit. */
  vaeMemoryBudget?: number;
}

/**
 * The `vae` cut's decoder for a latent model: `vae` (loaded on the model's backend when given as a
 * source) checked against the model, decoding into pixels in [-1, 1].
 */
async function vaePixels(m: ServingModel, source: VAEModel | ModelSource, budget: number | undefined): Promise<NonNullable<ServedModel["decodePixels"]>> {
  const model = m.model;
  if (model.pixelRange !== null) throw new Error("createHostHandler: the served model is a pixel-space model (__metadata__.pixel_range); it takes no vae");
  if (budget !== undefined && !(Number.isFinite(budget) && budget > 0)) throw new Error(`createHostHandler: vaeMemoryBudget must be a number of bytes > 0, got ${budget}`);
  const vae = source instanceof VAEModel ? source : await loadVAE(source, { backend: model.backend });
  const c = vae.config.latent_channels;
  if (c !== model.config.in_channels) {
    throw new Error(`createHostHandler: the VAE ${vae.source} decodes ${c}-channel latents, but the served model makes ${model.config.in_channels}-channel samples (in_channels)`);
  }
  return async (x) => ({ image: (await vae.decode(x, { memoryBudgetBytes: budget })).image, range: [-1, 1] });
}

/**
 * A stateless GPU/CPU host: `POST /v1/run` (authenticated frames), `GET /v1/info`, `GET /healthz`.
 *
 * @example
 * import { createHostHandler } from "dic-sdk";
 * const handler = await createHostHandler({ secret: "a-long-shared-secret!" });
 * Deno.serve({ port: 8701 }, handler);           // or Bun.serve({ port: 8701, fetch: handler })
 * // A latent model: the host's `vae` cut decodes the edge's final latents with the SD-VAE decoder.
 * const latent = await createHostHandler({ model: await loadServingModel("dic-xl-256.safetensors"), vae: "sd-vae-ft-ema.safetensors", secret: "a-long-shared-secret!" });
 */
export async function createHostHandler(opts: HostOptions): Promise<Handler> {
  const m = opts.model ?? await loadServingModel(undefined, opts.backend ?? "auto");
  const decodePixels = opts.decodePixels ?? (opts.vae === undefined ? undefined : await vaePixels(m, opts.vae, opts.vaeMemoryBudget));
  return hostProtocolHandler({
    model: { ...served(m), decodePixels }, key: await importSecret(opts.secret),
    maxFrameBytes: opts.maxFrameBytes, authWindowMs: opts.authWindowMs, log: opts.log, audience: opts.audience,
    maxConcurrent: opts.maxConcurrent, maxQueue: opts.maxQueue,
  });
}

/** Options of {@link createEdgeHandler}. */
export interface EdgeOptions {
  /**
   * The edge's copy of the model (it runs the encoder or the first steps); default: embedded. A
   * RemoteModel (`loadRemoteModel`) is an edge with no weights: it serves the `remote` cut only.
   */
  model?: ServingModel | RemoteModel;
  backend?: BackendName | Backend;
  /** Base URLs of the hosts, or of a load balancer in front of them; tried in turn. */
  upstreams: string[];
  secret: string | Uint8Array;
  /**
   * The audience requests are signed for (the hosts' `audience`): one name for every upstream, or one per
   * upstream. Default: each upstream URL's host (`host:port`).
   */
  audience?: string | readonly string[];
  /** A host request fails when no frame arrives for this long (default 30 s). */
  idleTimeoutMs?: number;
  log?: (line: string) => void;
  /**
   * Largest generation one request may ask for, as images x steps x pixels (labels x steps x
   * input_size^2); beyond it the request is refused with `work_limit` (default 16,384,000: 64 images of
   * 250 steps at 32 x 32).
   */
  maxWork?: number;
  /** Generations running at once (default 4); more wait in the queue. */
  maxConcurrent?: number;
  /** Generations waiting for a slot (default 64: waiting costs no compute); beyond it `busy` (503) with Retry-After. */
  maxQueue?: number;
  /** A request (queue wait included) that runs longer is stopped with `deadline` (504); default 300 s. */
  deadlineMs?: number;
  /** Largest JSON request body, enforced while reading (default 1 MiB); beyond it `too_large` (413). */
  maxBodyBytes?: number;
}

/** Defaults of the edge's admission control. */
export const EDGE_LIMITS = {
  maxWork: 64 * 250 * 32 * 32,
  maxConcurrent: 4,
  maxQueue: 64,
  deadlineMs: 300_000,
  maxBodyBytes: 1 << 20,
  /** Nesting of arrays and objects in a JSON body. */
  maxJsonDepth: 16,
} as const;

/** A parsed generation request of the edge API. */
interface GenerationRequest {
  settings: GenerationSettings;
  cut: EdgeCut;
  handoffStep?: number;
  dtype: WireDtype;
  previews: boolean;
  format: "frames" | "json" | "png";
  /** PNG only: nearest-neighbour enlargement. */
  scale: number;
}

/** A refusal of one field of the request: `bad_request` naming the field. */
function badField(field: string, message: string): ProtocolError {
  return new ProtocolError("bad_request", `${field}: ${message}`, { field });
}


function parseRequest(model: DiCModelCard, body: Record<string, unknown>, accept: string, weightless: boolean): GenerationRequest {
  const cfg = model.config;
  const d = model.samplingDefaults;
  // Generation settings: the one validator (src/settings.ts); an empty query value counts as absent.
  const given = (k: string) => (body[k] === null || body[k] === "" ? undefined : body[k]);
  const raw = given("labels") ?? given("label");
  if (raw === undefined) throw badField("labels", `missing; give one or more class names or indices (label=${JSON.stringify(model.classNames?.[0] ?? "0").slice(1, -1)})`);
  let list: unknown[];
  if (Array.isArray(raw)) list = raw;
  else if (typeof raw === "number") list = [raw];
  else if (typeof raw === "string") list = raw.split(",").map((l) => l.trim());
  else throw badField("labels", `expected a class index or name or a list of them, got ${typeof raw}`);
  if (list.length === 0 || list.length > 64) throw badField("labels", `give 1..64 labels, got ${list.length}`);
  const guidanceKey = given("guidance") !== undefined ? "guidance" : "cfg_scale";
  let v: ReturnType<typeof validateSettings>;
  try {
    v = validateSettings({
      labels: list, steps: given("steps"), sampler: given("sampler"), eta: given("eta"), cfgScale: given(guidanceKey),
      cfgMode: given("cfg_mode"), seed: given("seed"),
    }, { text: true, names: { cfgScale: guidanceKey, cfgMode: "cfg_mode" } });
  } catch (e) {
    // The protocol's `field` is the request key ("labels" for labels[2]); the message says which entry.
    if (e instanceof DicError) throw new ProtocolError("bad_request", e.message, { field: e.field?.replace(/\[\d+\]$/, "") });
    throw e;
  }
  const labels = v.labels!.map((l, i) => {
    if (l === null) throw badField("labels", `labels[${i}]: expected a class name or index, got null`);
    try {
      return model.resolveLabel(l);
    } catch (e) {
      throw badField("labels", (e as Error).message);
    }
  });
  // Strict numbers: a JSON number, or decimal text (from a query string); never a boolean, an array or hex.
  const number = (k: string, fallback: number, ok: (n: number) => boolean, what: string): number => {
    const v = body[k];
    if (v === undefined || v === null || v === "") return fallback;
    const n = typeof v === "number" ? v : typeof v === "string" && DECIMAL_TEXT.test(v) ? Number(v) : NaN;
    if (!Number.isFinite(n) || !ok(n)) throw badField(k, `expected ${what}, got ${JSON.stringify(v)}`);
    return n;
  };
  const choice = <T extends string>(k: string, valid: readonly T[], fallback: T): T => {
    const v = body[k] ?? fallback;
    if (typeof v !== "string" || !(valid as readonly unknown[]).includes(v)) throw badField(k, `${JSON.stringify(v)} is not one of ${valid.join(", ")}`);
    return v as T;
  };
  const flag = (k: string): boolean => {
    const v = body[k];
    if (v === undefined || v === null || v === false || v === "0" || v === "false" || v === "") return false;
    if (v === true || v === "1" || v === "true") return true;
    throw badField(k, `expected true or false, got ${JSON.stringify(v)}`);
  };
  const cfgScale = v.cfgScale ?? d.cfgScale ?? 1;
  if (cfgScale !== 1 && cfg.class_dropout_prob <= 0) throw badField(guidanceKey, "this model has no null class, so guidance must be 1");
  const steps = v.steps ?? d.steps ?? 50;
  const cut = choice("cut", EDGE_CUTS, weightless ? "remote" : "unet");
  if (weightless && !CUT_TABLE[cut].edgeParts.includes("none")) throw badField("cut", `this edge holds no weights; it serves cut=remote only, not ${cut}`);
  const handoff = body.handoff_step;
  const fmt = body.format ?? (accept.includes(FRAMES_MEDIA_TYPE) ? "frames" : accept.includes("image/png") ? "png" : "json");
  const format = choice("format", ["frames", "json", "png"] as const, fmt as "json");
  // A latent model's samples become pictures only through a host's VAE (the vae cut); the other cuts
  // end in latents, which only the frames format carries.
  if (model.pixelRange === null && CUT_TABLE[cut].endsIn !== "pixels" && format !== "frames") {
    throw badField("cut", `this is a latent model (in_channels ${cfg.in_channels}): cut=${cut} ends in latents, not pictures; ` +
      `use cut=vae (a host decodes them with its VAE) for ${format === "png" ? "a PNG" : "JSON images"}, or format=frames for the latents`);
  }
  return {
    settings: {
      labels, steps,
      sampler: v.sampler ?? d.sampler ?? "ddim",
      eta: v.eta ?? 0,
      cfg_scale: cfgScale,
      cfg_mode: v.cfgMode ?? d.cfgMode ?? "standard",
      seed: v.seed ?? randomSeed(),
    },
    cut,
    handoffStep: handoff === undefined ? undefined : number("handoff_step", 0, (n) => Number.isInteger(n) && n >= 1 && n < steps, `an integer in 1..${steps - 1}`),
    dtype: choice("dtype", WIRE_DTYPES, "f32"),
    previews: flag("previews"),
    format,
    scale: number("scale", 1, (n) => Number.isInteger(n) && n >= 1 && n <= 32, "an integer in 1..32"),
  };
}

/** The JSON error object of the edge API. */
function errorJson(pe: ProtocolError): Record<string, unknown> {
  const out: Record<string, unknown> = { type: "error", code: pe.code, status: pe.status, message: pe.message.replace(/^[a-z_]+: /, "") };
  if (typeof pe.extra.field === "string") out.field = pe.extra.field;
  if (typeof pe.extra.limit === "number") out.limit = pe.extra.limit;
  return out;
}

function errorResponseJson(pe: ProtocolError, session?: string): Response {
  const headers = refusalHeaders(pe);
  if (session) headers["x-dic-session"] = session;
  return Response.json(errorJson(pe), { status: pe.status, headers });
}

function newSession(): string {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return "s-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function pngBase64(png: Uint8Array): string {
  let s = "";
  for (let i = 0; i < png.length; i += 0x8000) s += String.fromCharCode(...png.subarray(i, i + 0x8000));
  return btoa(s);
}

/**
 * The edge: `POST /v1/generate` (JSON body) or `GET /v1/generate?label=...` runs a generation with
 * the cut given (`unet`, `handoff` or `vae`) against the upstream hosts, and streams progress and the
 * result as frames (`Accept: application/x-dic-frames` or `format=frames`), NDJSON (default), or a
 * PNG (`Accept: image/png` or `format=png`). Closing the request cancels the upstream work.
 *
 * @example
 * import { createEdgeHandler } from "dic-sdk";
 * const edge = await createEdgeHandler({ upstreams: ["http://gpu-1:8701"], secret: "a-long-shared-secret!" });
 * Deno.serve({ port: 8700 }, edge);
 * // curl -o img.png 'http://localhost:8700/v1/generate?label=sneaker&seed=1&format=png'
 */
export async function createEdgeHandler(opts: EdgeOptions): Promise<Handler> {
  const m = opts.model ?? await loadServingModel(undefined, opts.backend ?? "auto");
  const weightless = "card" in m;
  const model = weightless ? m.card : m.model;
  const limit = (k: "maxWork" | "maxConcurrent" | "maxQueue" | "deadlineMs" | "maxBodyBytes", min: number): number => {
    const v = opts[k] ?? EDGE_LIMITS[k];
    if (!(typeof v === "number" && Number.isInteger(v) && v >= min)) throw new RangeError(`createEdgeHandler: ${k} must be an integer >= ${min}, got ${v}`);
    return v;
  };
  const edge: Edge = {
    model, weightless,
    served: weightless ? { config: model.config, weightsSha256: m.weightsSha256, pixelRange: model.pixelRange } : served(m),
    pool: new UpstreamPool({ urls: opts.upstreams, key: await importSecret(opts.secret), audience: opts.audience, idleTimeoutMs: opts.idleTimeoutMs, log: opts.log }),
    admission: new Admission(limit("maxConcurrent", 1), limit("maxQueue", 0)),
    maxWork: limit("maxWork", 1), deadlineMs: limit("deadlineMs", 1), maxBodyBytes: limit("maxBodyBytes", 2),
    log: opts.log ?? (() => {}),
  };
  return async (req: Request): Promise<Response> => {
    try {
      return await handleEdgeRequest(edge, req);
    } catch (e) {
      // NOTE: never a message, a path or a stack to the client; the log has them.
      if (e instanceof ProtocolError) return errorResponseJson(e);
      edge.log(`edge: internal error: ${(e as Error)?.stack ?? e}`);
      return errorResponseJson(new ProtocolError("internal", "internal error (the edge's log has the details)"));
    }
  };
}

/** What an edge handler holds: its model, its hosts and its limits. */
interface Edge {
  model: DiCModel | DiCModelCard;
  weightless: boolean;
  served: ServedModel | ModelIdentity;
  pool: UpstreamPool;
  admission: Admission;
  maxWork: number;
  deadlineMs: number;
  maxBodyBytes: number;
  log: (line: string) => void;
}

/** One admitted generation: its session, cancellation and the release of its slot. */
interface Job {
  g: GenerationRequest;
  session: string;
  ctrl: AbortController;
  /** The client went away: stop the work. */
  cancel(): void;
  clientGone(): boolean;
  /** Runs once the work is over (frees the admission slot and the deadline). */
  done(): void;
  t0: number;
}

/** `GET /healthz`, or a generation request: parsed, checked against the work limit, admitted, run. */
async function handleEdgeRequest(edge: Edge, req: Request): Promise<Response> {
  const url = new URL(req.url);
  if (req.method === "GET" && url.pathname === "/healthz") return new Response("ok\n");
  if (url.pathname !== "/v1/generate") throw new ProtocolError("not_found", `no ${url.pathname} here (POST or GET /v1/generate, GET /healthz)`);
  const body = await readGenerateBody(req, url, edge.maxBodyBytes);
  const g = parseRequest(edge.model, body, req.headers.get("accept") ?? "", edge.weightless);
  checkWork(g, edge.model.config.input_size ** 2, edge.maxWork);
  const job = await admit(edge, req, g);
  try {
    return await generateResponse(edge, job);
  } catch (e) {
    job.done();
    throw e;
  }
}

/** The request's settings: the query of a GET, or a POST's JSON object (bounded while read) with the query under it. */
async function readGenerateBody(req: Request, url: URL, maxBodyBytes: number): Promise<Record<string, unknown>> {
  if (req.method === "GET") {
    const body: Record<string, unknown> = Object.fromEntries(url.searchParams);
    const ls = url.searchParams.getAll("label");
    if (ls.length) body.labels = ls;
    return body;
  }
  if (req.method !== "POST") throw new ProtocolError("method_not_allowed", `${req.method} /v1/generate: use GET or POST`, { allow: "GET, POST" });
  const body = await readJsonObject(req, maxBodyBytes, EDGE_LIMITS.maxJsonDepth);
  for (const [k, v] of url.searchParams) body[k] ??= v;
  return body;
}

/** Refuses a generation above the edge's work limit (images x steps x pixels), before anything runs. */
function checkWork(g: GenerationRequest, pixels: number, maxWork: number): void {
  const n = g.settings.labels.length;
  const work = n * g.settings.steps * pixels;
  if (work > maxWork) {
    throw new ProtocolError("work_limit", `${n} image(s) x ${g.settings.steps} steps x ${pixels} pixels = ${work} exceeds this edge's limit of ${maxWork}` +
      ` (at most ${Math.floor(maxWork / (n * pixels))} steps for ${n} image(s))`, { limit: maxWork, field: "steps" });
  }
}

/** Waits for a slot (or refuses: queue full, deadline, client gone) and arms the deadline and the cancellation. */
async function admit(edge: Edge, req: Request, g: GenerationRequest): Promise<Job> {
  const ctrl = new AbortController();
  let clientGone = false;
  const cancel = () => {
    clientGone = true;
    ctrl.abort(new DOMException("client closed the request", "AbortError"));
  };
  req.signal?.addEventListener("abort", cancel, { once: true });
  const deadline = setTimeout(() => ctrl.abort(new ProtocolError("deadline", `the generation did not finish within this edge's deadline of ${edge.deadlineMs} ms`, { limit: edge.deadlineMs })), edge.deadlineMs);
  (deadline as { unref?: () => void }).unref?.();
  let release: Release;
  try {
    release = await edge.admission.acquire(ctrl.signal);
  } catch (e) {
    clearTimeout(deadline);
    // Waiting in the queue ends with a refusal, the deadline, or the client's going away.
    if (e instanceof ProtocolError) throw e;
    const reason = ctrl.signal.reason;
    throw reason instanceof ProtocolError ? reason : new ProtocolError("cancelled", "the client closed the request");
  }
  return {
    g, session: newSession(), ctrl, cancel, clientGone: () => clientGone, t0: performance.now(),
    done: () => {
      clearTimeout(deadline);
      release();
    },
  };
}

type EdgeRunResult = Awaited<ReturnType<typeof runEdgeGeneration>>;

/** Runs the job's generation, with progress going to `onProgress`. */
function runJob(edge: Edge, job: Job, onProgress?: (p: { step: number; totalSteps: number; t: number; x: HostTensor | null }) => void): Promise<EdgeRunResult> {
  const { g } = job;
  return runEdgeGeneration(edge.served, edge.pool, {
    session: job.session, cut: g.cut, handoffStep: g.handoffStep, dtype: g.dtype, settings: g.settings, onProgress, signal: job.ctrl.signal, previewEvery: g.previews ? 1 : 0,
  });
}

/** What the generation cost here: the whole request, the hosts' share, and the rest (this edge's own time, to hold against a platform's CPU limit). */
function jobTiming(job: Job, r: { remoteMs: number[] }): { total: number; remote: number; edge: number } {
  const total = performance.now() - job.t0, remote = r.remoteMs.reduce((a, b) => a + b, 0);
  return { total, remote, edge: Math.max(0, total - remote) };
}

function pixelsOf(r: EdgeRunResult): { image: HostTensor; range: [number, number] } {
  const range = r.pixelRange;
  const image = r.image ?? r.x;
  if (!image || !range) throw new ProtocolError("unsupported_cut", "a latent model's samples need the vae cut to become images");
  return { image, range };
}

/** The client-facing error of a failed job (the cause in the log, never to the client). */
function jobError(edge: Edge, job: Job, e: unknown): ProtocolError {
  const reason = job.ctrl.signal.reason;
  let pe: ProtocolError;
  if (e instanceof ProtocolError) pe = e;
  else if (job.ctrl.signal.aborted && reason instanceof ProtocolError) pe = reason;
  else if (job.ctrl.signal.aborted) pe = new ProtocolError("cancelled", "the client closed the request");
  else {
    edge.log(`edge: ${job.session} internal error: ${(e as Error)?.stack ?? e}`);
    pe = new ProtocolError("internal", "internal error (the edge's log has the details)");
  }
  if (!job.clientGone()) edge.log(`edge: ${job.session} failed: ${pe.message}`);
  return pe;
}

/** Runs an admitted generation in the requested format; `job.done` runs once the work is over. */
function generateResponse(edge: Edge, job: Job): Promise<Response> | Response {
  const { g } = job;
  edge.log(`edge: ${job.session} ${g.cut} ${g.settings.steps} steps labels ${g.settings.labels.join(",")} seed ${g.settings.seed}`);
  if (g.format === "png") return pngResponse(edge, job);
  if (g.format === "frames") return framesResponse(edge, job);
  return ndjsonResponse(edge, job);
}

/** `png`: the image (a grid for several labels) once done, with Server-Timing. */
async function pngResponse(edge: Edge, job: Job): Promise<Response> {
  const { g, session } = job;
  try {
    const r = await runJob(edge, job);
    const { image, range } = pixelsOf(r);
    const imgs = toRGBA(image, range);
    const single = imgs.length === 1 && g.scale === 1;
    const png = await encodePNG(single ? imgs[0] : makeGrid(imgs, { columns: Math.min(imgs.length, 8), padding: imgs.length === 1 ? 0 : 2, scale: g.scale }), {
      text: { software: "dic-sdk", seed: String(g.settings.seed), cut: g.cut, steps: String(g.settings.steps) },
    });
    const tm = jobTiming(job, r);
    return new Response(png, {
      headers: {
        "content-type": "image/png", "x-dic-seed": String(g.settings.seed), "x-dic-session": session,
        "server-timing": `total;dur=${tm.total.toFixed(1)}, upstream;dur=${tm.remote.toFixed(1)}, edge;dur=${tm.edge.toFixed(1)}`,
      },
    });
  } catch (e) {
    return errorResponseJson(jobError(edge, job, e), session);
  } finally {
    job.done();
  }
}

/** `frames`: a preview per step, then `final` (or `error`). */
function framesResponse(edge: Edge, job: Job): Response {
  const { g, session } = job;
  const base = { v: PROTOCOL_VERSION, session };
  let seq = 0;
  const out = frameStream(job.cancel);
  runJob(edge, job, (p) => out.write({
    ...base, seq: ++seq, type: "preview", step: p.step, total_steps: p.totalSteps, t: p.t,
    x: g.previews && p.x ? encodeTensor(p.x, g.dtype) : null,
  })).then((r) => {
    const px = r.image ?? null;
    out.write({ ...base, seq: ++seq, type: "final", x: r.x ? encodeTensor(r.x, "f32") : null, image: px ? encodeTensor(px, "f32") : null, pixel_range: r.pixelRange });
  }, (e) => {
    const pe = jobError(edge, job, e);
    if (!job.clientGone()) out.write({ ...base, seq: ++seq, type: "error", code: pe.code, status: pe.status, message: pe.message.replace(/^[a-z_]+: /, ""), step: null, versions: null } as Frame);
  }).finally(() => {
    job.done();
    out.close();
  });
  return new Response(out.stream, { headers: { "content-type": FRAMES_MEDIA_TYPE, "x-dic-session": session } });
}

/** NDJSON: one progress object per step, then the result (PNG images as base64). */
function ndjsonResponse(edge: Edge, job: Job): Response {
  const { g, session } = job;
  const names = edge.model.classNames;
  const enc = new TextEncoder();
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c), cancel: job.cancel });
  const line = (o: unknown) => {
    try {
      ctl.enqueue(enc.encode(JSON.stringify(o) + "\n"));
    } catch { /* reader gone */ }
  };
  runJob(edge, job, (p) => line({ type: "progress", step: p.step, total_steps: p.totalSteps, t: p.t })).then(async (r) => {
    const { image, range } = pixelsOf(r);
    const images = [];
    for (const [i, img] of toRGBA(image, range).entries()) {
      images.push({ label: g.settings.labels[i], label_name: names ? names[g.settings.labels[i]] : null, png_base64: pngBase64(await encodePNG(img)) });
      await yieldToEventLoop(); // many images: the event loop runs between them
    }
    const tm = jobTiming(job, r);
    line({
      type: "result", session, seed: g.settings.seed, cut: g.cut, steps: g.settings.steps, sampler: g.settings.sampler, images,
      remote_ms: r.remoteMs.map((x) => Math.round(x * 10) / 10), edge_ms: Math.round(tm.edge * 10) / 10, total_ms: Math.round(tm.total * 10) / 10,
    });
  }).catch((e) => {
    line(errorJson(jobError(edge, job, e)));
  }).finally(() => {
    job.done();
    try {
      ctl.close();
    } catch { /* already closed */ }
  });
  return new Response(stream, { headers: { "content-type": "application/x-ndjson", "x-dic-session": session } });
}
