// Request authentication (docs/protocol.md section 6): an `auth` frame carrying a timestamp, a nonce,
// the SHA-256 of the frames that follow and HMAC-SHA256 over those, with Web Crypto (every runtime).
import { ProtocolError } from "./errors.ts";
import { concatBytes, encodeFrame, type Frame, type FrameOf, PROTOCOL_VERSION } from "./frames.ts";

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

/** The exact bytes the MAC covers: the auth frame's header fields and the body digest. */
export function macInput(a: { v: number; session: string; seq: number; ts: number; nonce: string; digest: Uint8Array }): Uint8Array {
  return enc.encode(`DIC-HMAC-SHA256\n${a.v}\n${a.session}\n${a.seq}\n${a.ts}\n${a.nonce}\n${toHex(a.digest)}`);
}

/** A fresh random nonce (22 characters of base64url, 128 bits). */
export function newNonce(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Encodes `frames` as an authenticated request body: an `auth` frame, then the frames. The digest
 * covers the exact bytes of the frames after the auth frame.
 */
export async function signFrames(key: CryptoKey, frames: Frame[], opts: { now?: number; nonce?: string } = {}): Promise<Uint8Array> {
  const rest = concatBytes(frames.map(encodeFrame));
  const first = frames[0];
  const digest = await sha256(rest);
  const a = { v: first?.v ?? PROTOCOL_VERSION, session: first?.session ?? "-", seq: 0, ts: Math.floor(opts.now ?? Date.now()), nonce: opts.nonce ?? newNonce(), digest };
  const mac = new Uint8Array(await subtle().sign("HMAC", key, macInput(a) as Uint8Array<ArrayBuffer>));
  return concatBytes([encodeFrame({ ...a, type: "auth", mac }), rest]);
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

/**
 * Authenticates an auth frame on its own, before any byte of the body is read (docs/protocol.md 6):
 * the timestamp window and, when `notBefore` is given, a timestamp not before it (a host refuses
 * requests signed before it started, whose nonces it cannot remember: `stale`), then the MAC over the
 * header fields and the declared body digest (`unauthenticated`), then the nonce (`replayed`). The body
 * must then match the digest (`checkDigest`).
 */
export async function verifyAuthFrame(key: CryptoKey, auth: FrameOf<"auth">, nonces: NonceCache, now: number = Date.now(), notBefore?: number): Promise<void> {
  checkFresh(auth, nonces.windowMs, now);
  if (notBefore !== undefined && auth.ts < notBefore) {
    throw new ProtocolError("stale", `timestamp ${auth.ts} is from before this host started (${Math.floor(notBefore)}); sign the request afresh`);
  }
  const ok = await subtle().verify("HMAC", key, auth.mac as Uint8Array<ArrayBuffer>, macInput(auth) as Uint8Array<ArrayBuffer>);
  if (!ok) throw new ProtocolError("unauthenticated", "HMAC does not verify (wrong shared secret or altered header)");
  if (!nonces.add(auth.nonce, now)) throw new ProtocolError("replayed", `nonce ${auth.nonce} was already used`);
}

/** Refuses a body whose SHA-256 is not the digest an authenticated auth frame declared (`unauthenticated`). */
export async function checkDigest(auth: FrameOf<"auth">, rest: Uint8Array): Promise<void> {
  const digest = await sha256(rest);
  let same = digest.length === auth.digest.length;
  for (let i = 0; i < digest.length; i++) same = same && digest[i] === auth.digest[i];
  if (!same) throw new ProtocolError("unauthenticated", "body digest does not match the auth frame");
}

/**
 * Checks an auth frame against the bytes that followed it, in the order of docs/protocol.md 6.3:
 * timestamp window (`stale`), digest and MAC (`unauthenticated`), then the nonce (`replayed`).
 */
export async function verifyAuth(
  key: CryptoKey,
  auth: FrameOf<"auth">,
  rest: Uint8Array,
  nonces: NonceCache,
  now: number = Date.now(),
): Promise<void> {
  checkFresh(auth, nonces.windowMs, now);
  const digest = await sha256(rest);
  let same = digest.length === auth.digest.length;
  for (let i = 0; i < digest.length; i++) same = same && digest[i] === auth.digest[i];
  if (!same) throw new ProtocolError("unauthenticated", "body digest does not match the auth frame");
  const ok = await subtle().verify("HMAC", key, auth.mac as Uint8Array<ArrayBuffer>, macInput(auth) as Uint8Array<ArrayBuffer>);
  if (!ok) throw new ProtocolError("unauthenticated", "HMAC does not verify (wrong shared secret or altered header)");
  if (!nonces.add(auth.nonce, now)) throw new ProtocolError("replayed", `nonce ${auth.nonce} was already used`);
}
