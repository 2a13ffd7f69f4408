// Frames of protocol v2 (docs/protocol.md sections 2-5): plain MessagePack maps behind a 4-byte
// big-endian length, encoded with msgpackr without its extensions, validated field by field.
import { Packr, Unpackr } from "msgpackr";
import { ProtocolError } from "./errors.ts";
import { checkMsgpack } from "./msgpack-check.ts";
import { checkWireTensor, type WireTensor } from "./tensor-codec.ts";
import type { Bytes } from "../bytes.ts";

/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 2;
/** Every version this implementation speaks (negotiation picks the highest common one). */
export const SUPPORTED_VERSIONS: readonly number[] = [2];
/** The three cut points (docs/protocol.md section 1). */
export const CUTS = ["unet", "handoff", "vae"] as const;
/** One of CUTS. */
export type Cut = (typeof CUTS)[number];
/** Media type of a frame stream. */
export const FRAMES_MEDIA_TYPE = "application/x-dic-frames";

/** Default upper bound of one frame's MessagePack body (the length prefix is checked against it). */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Most labels (images) in one generation. */
export const MAX_LABELS = 256;

/** Fields every frame has. */
export interface FrameHeader {
  v: number;
  session: string;
  seq: number;
}

/** Generation settings a hello carries (what the handoff host needs to finish the run). */
export interface GenerationSettings {
  labels: number[];
  steps: number;
  sampler: string;
  eta: number;
  cfg_scale: number;
  cfg_mode: string;
  seed: number | null;
}

/** Sampler state at a handoff (pipeline SamplerState on the wire). */
export interface WireSamplerState {
  x: WireTensor;
  next_step: number;
  rng: { algorithm: string; version: number; words: number[]; spare: number | null } | null;
  /** What the sampler carries to the next step, serialised by the sampler (docs/protocol.md section 5.4); opaque here. */
  sampler_state: Uint8Array | null;
}

/** A frame of protocol v2. */
export type Frame = FrameHeader & (
  | { type: "auth"; ts: number; nonce: string; length: number; audience: string; digest: Uint8Array; mac: Uint8Array }
  | {
    type: "hello";
    versions: number[];
    model: { config: Record<string, unknown>; weights_sha256: Uint8Array };
    cut: Cut;
    generation: GenerationSettings;
    dtype: string;
  }
  | { type: "step"; step: number; t: number[]; y: number[]; bottleneck: WireTensor; skips: WireTensor[] }
  | { type: "step_result"; step: number; out: WireTensor }
  | { type: "handoff"; state: WireSamplerState; preview_every: number }
  | { type: "latent"; x: WireTensor }
  | { type: "preview"; step: number; total_steps: number; t: number; x: WireTensor | null }
  | { type: "final"; x: WireTensor | null; image: WireTensor | null; pixel_range: number[] | null }
  | { type: "error"; code: string; status: number; message: string; step: number | null; versions: number[] | null }
);

/** Names of the frame types. */
export type FrameType = Frame["type"];
/** The frame of type `T`. */
export type FrameOf<T extends FrameType> = Extract<Frame, { type: T }>;

// NOTE: no records, no typed-array extensions, undefined as nil: the output is plain MessagePack.
const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/** Encodes a frame: 4-byte big-endian length, then the MessagePack map. */
export function encodeFrame(frame: Frame): Bytes {
  const body: Uint8Array = packr.pack(frame);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Bytes {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const SESSION_RE = /^[A-Za-z0-9._-]{1,64}$/;
const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/;
/** An audience: 1..255 visible ASCII characters (no spaces or line breaks, so the MAC input is unambiguous). */
export const AUDIENCE_RE = /^[\x21-\x7e]{1,255}$/;

/** What is wrong with `name` as an audience (`"x" is not 1..255 visible ASCII characters`), or null when it is one. */
export function audienceProblem(name: unknown): string | null {
  return typeof name === "string" && AUDIENCE_RE.test(name) ? null : `${JSON.stringify(name)} is not 1..255 visible ASCII characters`;
}

type Obj = Record<string, unknown>;

function bad(msg: string): never {
  throw new ProtocolError("bad_frame", msg);
}
function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);
}
function uint(o: Obj, k: string, where: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[k];
  if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > max) bad(`${where}.${k}: expected an integer in [0, ${max}], got ${JSON.stringify(v)}`);
  return v as number;
}
function num(o: Obj, k: string, where: string): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isFinite(v)) bad(`${where}.${k}: expected a finite number, got ${JSON.stringify(v)}`);
  return v;
}
function str(o: Obj, k: string, where: string, maxLen = 256): string {
  const v = o[k];
  if (typeof v !== "string" || v.length > maxLen) bad(`${where}.${k}: expected a string of at most ${maxLen} characters`);
  return v;
}
function bin(o: Obj, k: string, where: string, length: number): Uint8Array {
  const v = o[k];
  if (!(v instanceof Uint8Array) || v.length !== length) bad(`${where}.${k}: expected ${length} bytes (MessagePack bin)`);
  return v;
}
function uintList(o: Obj, k: string, where: string, maxLen: number, max: number): number[] {
  const v = o[k];
  if (!Array.isArray(v) || v.length > maxLen || !v.every((x) => Number.isSafeInteger(x) && x >= 0 && x <= max)) {
    bad(`${where}.${k}: expected at most ${maxLen} integers in [0, ${max}]`);
  }
  return v as number[];
}
function optional<T>(o: Obj, k: string, read: () => T): T | null {
  return o[k] === undefined || o[k] === null ? null : read();
}

/**
 * Decodes one frame body (the bytes after the length prefix): structural MessagePack check, then
 * the fields of its type. Unknown fields are ignored; wrong or missing ones are `bad_frame`.
 * Versions other than those supported are `unsupported_version` (with the supported list).
 */
export function decodeFrame(body: Uint8Array): Frame {
  checkMsgpack(body);
  let o: unknown;
  try {
    o = unpackr.unpack(body);
  } catch (e) {
    bad(`MessagePack: ${(e as Error).message}`);
  }
  if (!isObj(o)) bad("frame: expected a MessagePack map");
  const type = str(o, "type", "frame", 32);
  const w = type;
  const v = uint(o, "v", w);
  if (!SUPPORTED_VERSIONS.includes(v)) {
    // `peerVersion` lets the refusal be written in the sender's version, so that it can read it.
    throw new ProtocolError("unsupported_version", `frame version ${v}; this peer speaks ${SUPPORTED_VERSIONS.join(", ")}`, { versions: [...SUPPORTED_VERSIONS], peerVersion: v });
  }
  const session = str(o, "session", w, 64);
  if (!SESSION_RE.test(session)) bad(`${w}.session: expected 1..64 characters of [A-Za-z0-9._-]`);
  const h = { v, session, seq: uint(o, "seq", w, 0xffffffff) };
  const tensor = (k: string, where = w, src: Obj = o) => checkWireTensor(src[k], `${where}.${k}`);
  switch (type) {
    case "auth": {
      const nonce = str(o, "nonce", w, 64);
      if (!NONCE_RE.test(nonce)) bad("auth.nonce: expected 16..64 characters of [A-Za-z0-9_-]");
      const audience = str(o, "audience", w, 255);
      if (!AUDIENCE_RE.test(audience)) bad("auth.audience: expected 1..255 visible ASCII characters");
      return { ...h, type, ts: uint(o, "ts", w), nonce, length: uint(o, "length", w), audience, digest: bin(o, "digest", w, 32), mac: bin(o, "mac", w, 32) };
    }
    case "hello": {
      const model = o.model;
      if (!isObj(model) || !isObj(model.config)) bad("hello.model: expected {config: map, weights_sha256: bin}");
      const cut = str(o, "cut", w, 16);
      if (!(CUTS as readonly string[]).includes(cut)) throw new ProtocolError("unsupported_cut", `hello.cut: "${cut}" is not one of ${CUTS.join(", ")}`);
      const g = o.generation;
      if (!isObj(g)) bad("hello.generation: expected a map");
      const gw = "hello.generation";
      const labels = uintList(g, "labels", gw, MAX_LABELS, 1 << 30);
      if (labels.length === 0) bad(`${gw}.labels: need at least one label`);
      return {
        ...h, type, cut: cut as Cut, dtype: str(o, "dtype", w, 8),
        versions: uintList(o, "versions", w, 16, 0xffff),
        model: { config: model.config, weights_sha256: bin(model, "weights_sha256", "hello.model", 32) },
        generation: {
          labels, steps: uint(g, "steps", gw, 1000), sampler: str(g, "sampler", gw, 32), eta: num(g, "eta", gw),
          cfg_scale: num(g, "cfg_scale", gw), cfg_mode: str(g, "cfg_mode", gw, 32), seed: optional(g, "seed", () => uint(g, "seed", gw)),
        },
      };
    }
    case "step": {
      const skips = o.skips;
      if (!Array.isArray(skips) || skips.length > 64) bad("step.skips: expected an array of at most 64 tensors");
      return {
        ...h, type, step: uint(o, "step", w, 999), t: uintList(o, "t", w, 2 * MAX_LABELS, 999), y: uintList(o, "y", w, 2 * MAX_LABELS, 1 << 30),
        bottleneck: tensor("bottleneck"), skips: skips.map((s, i) => checkWireTensor(s, `step.skips[${i}]`)),
      };
    }
    case "step_result":
      return { ...h, type, step: uint(o, "step", w, 999), out: tensor("out") };
    case "handoff": {
      const s = o.state;
      if (!isObj(s)) bad("handoff.state: expected a map");
      const sw = "handoff.state";
      const rng = optional(s, "rng", () => {
        const r = s.rng;
        if (!isObj(r)) bad(`${sw}.rng: expected a map`);
        const spare = r.spare === null || r.spare === undefined ? null : num(r, "spare", `${sw}.rng`);
        const words = uintList(r, "words", `${sw}.rng`, 4, 0xffffffff);
        if (words.length !== 4) bad(`${sw}.rng.words: expected 4 unsigned 32-bit integers`);
        return { algorithm: str(r, "algorithm", `${sw}.rng`, 64), version: uint(r, "version", `${sw}.rng`), words, spare };
      });
      const samplerState = optional(s, "sampler_state", () => {
        const b = s.sampler_state;
        if (!(b instanceof Uint8Array)) bad(`${sw}.sampler_state: expected bytes (MessagePack bin)`);
        return b;
      });
      return {
        ...h, type, preview_every: uint(o, "preview_every", w, 1000),
        state: { x: tensor("x", sw, s), next_step: uint(s, "next_step", sw, 1000), rng, sampler_state: samplerState },
      };
    }
    case "latent":
      return { ...h, type, x: tensor("x") };
    case "preview":
      return {
        ...h, type, step: uint(o, "step", w, 999), total_steps: uint(o, "total_steps", w, 1000), t: uint(o, "t", w, 999),
        x: optional(o, "x", () => tensor("x")),
      };
    case "final": {
      const range = optional(o, "pixel_range", () => {
        const r = o.pixel_range;
        if (!Array.isArray(r) || r.length !== 2 || !r.every((x) => typeof x === "number" && Number.isFinite(x))) bad("final.pixel_range: expected [low, high]");
        return r as number[];
      });
      return { ...h, type, x: optional(o, "x", () => tensor("x")), image: optional(o, "image", () => tensor("image")), pixel_range: range };
    }
    case "error":
      return {
        ...h, type, code: str(o, "code", w, 64), status: uint(o, "status", w, 599), message: str(o, "message", w, 4096),
        step: optional(o, "step", () => uint(o, "step", w, 999)), versions: optional(o, "versions", () => uintList(o, "versions", w, 16, 0xffff)),
      };
    default:
      bad(`frame: unknown type "${type}"`);
  }
}

/** Decodes a frame and checks that it has the expected type (a `bad_frame` error otherwise). */
export function expectFrame<T extends FrameType>(frame: Frame, type: T, what = "request"): FrameOf<T> {
  if (frame.type !== type) bad(`${what}: expected a "${type}" frame, got "${frame.type}"`);
  return frame as FrameOf<T>;
}
