// Request authentication (docs/protocol.md section 6): an `auth` frame carrying a timestamp, a nonce,
// the length and digest of the frames that follow, the audience (the host it is meant for) and
// HMAC-SHA256 over those, with Web Crypto (every runtime).
import { ProtocolError } from "./errors.ts";
import { concatBytes, encodeFrame, type Frame, type FrameOf, PROTOCOL_VERSION } from "./frames.ts";
import { yieldSlice } from "../yield.ts";

/** Default accepted clock difference between the signer and the host, in milliseconds. */
export const DEFAULT_AUTH_WINDOW_MS = 60_000;

const subtle = () => globalThis.crypto.subtle;
const enc = new TextEncoder();

/** SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle().digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Imports a shared secret (at least 16 bytes) as an HMAC-SHA256 key. */
export async function importSecret(secret: Uint8Array | string): Promise<CryptoKey> {
  const raw = typeof secret === "string" ? enc.encode(secret) : secret;
  if (raw.length < 16) throw new Error(`shared secret: ${raw.length} bytes; at least 16 are required`);
  return subtle().importKey("raw", raw as Uint8Array<ArrayBuffer>, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

/** The fields of an auth frame the MAC covers (docs/protocol.md section 6). */
export interface SignedFields {
  v: number;
  session: string;
  seq: number;
  ts: number;
  nonce: string;
  /** Bytes of the body after the auth frame. */
  length: number;
  /** The host the request is meant for. */
  audience: string;
  /** Body digest (`bodyDigest`). */
  digest: Uint8Array;
}

/** The exact bytes the MAC covers: the auth frame's header fields, the declared length, the audience and the body digest. */
export function macInput(a: SignedFields): Uint8Array {
  return enc.encode(`DIC-HMAC-SHA256\n${a.v}\n${a.session}\n${a.seq}\n${a.ts}\n${a.nonce}\n${a.length}\n${a.audience}\n${toHex(a.digest)}`);
}

/** A fresh random nonce (22 characters of base64url, 128 bits). */
export function newNonce(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The body digest of v2: SHA-256 over the SHA-256s of the frames after the auth frame, each over the
 * frame's bytes on the wire (length prefix included), in order. A receiver hashes each frame as it
 * arrives, with the runtime's native digest, and never joins the body into one buffer.
 */
export class BodyDigest {
  private readonly parts: Promise<ArrayBuffer>[] = [];

  /** Starts hashing one frame (its wire bytes); the bytes must not change afterwards. */
  add(wire: Uint8Array): void {
    this.parts.push(subtle().digest("SHA-256", wire as Uint8Array<ArrayBuffer>));
  }

  /** The digest of the frames added so far. */
  async digest(): Promise<Uint8Array> {
    const hashes = await Promise.all(this.parts);
    return sha256(concatBytes(hashes.map((h) => new Uint8Array(h))));
  }
}

/** The v2 body digest of encoded frames (`BodyDigest`). */
export async function bodyDigest(wires: readonly Uint8Array[]): Promise<Uint8Array> {
  const d = new BodyDigest();
  for (const w of wires) d.add(w);
  return d.digest();
}

/** Options of {@link signFrames}. */
export interface SignOptions {
  /** The host the request is meant for (docs/protocol.md section 6: an edge uses its upstream's audience). */
  audience: string;
  now?: number;
  nonce?: string;
}

/**
 * Encodes `frames` as an authenticated request body: an `auth` frame, then the frames. The auth frame
 * declares the length and digest of the bytes after it and the audience, and the MAC covers them.
 */
export async function signFrames(key: CryptoKey, frames: Frame[], opts: SignOptions): Promise<Uint8Array> {
  // NOTE: a step's frame is megabytes; the event loop gets a turn between the frames' encodings, and the
  // body is joined once (auth frame included).
  const wires: Uint8Array[] = [];
  for (const f of frames) {
    wires.push(encodeFrame(f));
    await yieldSlice();
  }
  let length = 0;
  for (const w of wires) length += w.length;
  const first = frames[0];
  const a: SignedFields = {
    v: first?.v ?? PROTOCOL_VERSION, session: first?.session ?? "-", seq: 0, ts: Math.floor(opts.now ?? Date.now()), nonce: opts.nonce ?? newNonce(),
    length, audience: opts.audience, digest: await bodyDigest(wires),
  };
  const mac = new Uint8Array(await subtle().sign("HMAC", key, macInput(a) as Uint8Array<ArrayBuffer>));
  return concatBytes([encodeFrame({ ...a, type: "auth", mac }), ...wires]);
}

/** Remembers nonces for the auth window so that a request cannot be replayed; bounded in size. */
export class NonceCache {
  private readonly seen = new Map<string, number>();

  constructor(readonly windowMs: number = DEFAULT_AUTH_WINDOW_MS, readonly maxEntries = 1_000_000) {}

  /** Records `nonce` seen at `now`; false when it was seen within the window (a replay). */
  add(nonce: string, now: number): boolean {
    if (this.seen.size >= this.maxEntries) this.prune(now);
    if (this.seen.has(nonce)) return false;
    if (this.seen.size >= this.maxEntries) throw new ProtocolError("busy", "replay cache is full; try again later");
    // A nonce only has to be remembered while its timestamp could still pass the window check.
    this.seen.set(nonce, now + 2 * this.windowMs);
    return true;
  }

  private prune(now: number): void {
    for (const [k, until] of this.seen) if (until < now) this.seen.delete(k);
  }

  /** Entries held (tests). */
  get size(): number {
    return this.seen.size;
  }
}

/** Refuses an auth frame whose timestamp is outside the window (`stale`); cheap, so hosts run it before reading the body. */
export function checkFresh(auth: FrameOf<"auth">, windowMs: number, now: number = Date.now()): void {
  const skew = Math.abs(now - auth.ts);
  if (skew > windowMs) throw new ProtocolError("stale", `timestamp ${auth.ts} is ${Math.round(skew / 1000)} s from the host clock (window ${windowMs / 1000} s)`);
}

/** Options of {@link verifyAuthFrame}. */
export interface VerifyOptions {
  now?: number;
  /** A timestamp before this is `stale` (a host refuses requests signed before it started, whose nonces it cannot remember). */
  notBefore?: number;
  /** The audiences this host answers to; another is `misdirected`. */
  audiences: readonly string[];
}

/**
 * Authenticates an auth frame on its own, before any byte of the body is read (docs/protocol.md 6):
 * the timestamp window and `notBefore` (`stale`), the MAC over the header fields, the declared length,
 * the audience and the declared digest (`unauthenticated`), the audience (`misdirected`), then the nonce
 * (`replayed`). The body must then have that length and digest (`checkDigest`).
 */
export async function verifyAuthFrame(key: CryptoKey, auth: FrameOf<"auth">, nonces: NonceCache, opts: VerifyOptions): Promise<void> {
  const now = opts.now ?? Date.now();
  checkFresh(auth, nonces.windowMs, now);
  if (opts.notBefore !== undefined && auth.ts < opts.notBefore) {
    throw new ProtocolError("stale", `timestamp ${auth.ts} is from before this host started (${Math.floor(opts.notBefore)}); sign the request afresh`);
  }
  const ok = await subtle().verify("HMAC", key, auth.mac as Uint8Array<ArrayBuffer>, macInput(auth) as Uint8Array<ArrayBuffer>);
  if (!ok) throw new ProtocolError("unauthenticated", "HMAC does not verify (wrong shared secret or altered header)");
  // NOTE: the message does not list this host's audiences: a misdirected sender learns only that it is.
  if (!opts.audiences.includes(auth.audience)) throw new ProtocolError("misdirected", `the request is signed for audience "${auth.audience}", which is not this host's`);
  if (!nonces.add(auth.nonce, now)) throw new ProtocolError("replayed", `nonce ${auth.nonce} was already used`);
}

/** Refuses a body whose digest (`BodyDigest`) is not the one an authenticated auth frame declared (`unauthenticated`). */
export function checkDigest(auth: FrameOf<"auth">, digest: Uint8Array): void {
  let diff = digest.length ^ auth.digest.length;
  for (let i = 0; i < digest.length; i++) diff |= digest[i] ^ (auth.digest[i] ?? 0);
  if (diff !== 0) throw new ProtocolError("unauthenticated", "body digest does not match the auth frame");
}

/** Splits a body into the wire bytes of its frames by their length prefixes (`bad_frame` when one runs past the end). */
export function splitFrames(rest: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = 0; o < rest.length;) {
    if (rest.length - o < 4) throw new ProtocolError("bad_frame", "body ends inside a length prefix");
    const len = new DataView(rest.buffer, rest.byteOffset + o).getUint32(0);
    if (o + 4 + len > rest.length) throw new ProtocolError("bad_frame", "body ends inside a frame");
    out.push(rest.subarray(o, o + 4 + len));
    o += 4 + len;
  }
  return out;
}

/**
 * Checks an auth frame against the whole body that followed it (for receivers that hold it): the
 * checks of `verifyAuthFrame`, then the declared length and the digest (`unauthenticated`).
 */
export async function verifyAuth(key: CryptoKey, auth: FrameOf<"auth">, rest: Uint8Array, nonces: NonceCache, opts: VerifyOptions): Promise<void> {
  await verifyAuthFrame(key, auth, nonces, opts);
  if (rest.length !== auth.length) throw new ProtocolError("unauthenticated", `the body is ${rest.length} bytes; the auth frame declares ${auth.length}`);
  checkDigest(auth, await bodyDigest(splitFrames(rest)));
}
