// The edge's view of its hosts (docs/protocol.md section 7.3): signed requests to a list of upstreams,
// each retried on the next upstream when it fails, times out or its stream breaks. A host that fails
// or times out is marked down and skipped until a health probe (`GET /healthz`) brings it back, and
// the time a request may wait for its next frame adapts to the step times observed.
import { signFrames } from "./auth.ts";
import { ProtocolError, isErrorCode } from "./errors.ts";
import { audienceProblem, DEFAULT_MAX_FRAME_BYTES, type Frame, FRAMES_MEDIA_TYPE } from "./frames.ts";
import { FrameReader } from "./stream.ts";

/** Options of {@link UpstreamPool}. */
export interface UpstreamOptions {
  /** Base URLs of the hosts (or of a load balancer in front of them). */
  urls: string[];
  key: CryptoKey;
  /**
   * The audience each request is signed for (docs/protocol.md section 6): one name for every upstream
   * (hosts behind one load balancer may share one), or one per URL. Default: each URL's host (`host:port`).
   */
  audience?: string | readonly string[];
  /** The longest a request waits for its next frame, whatever was observed (default 30 s). */
  idleTimeoutMs?: number;
  /** Before any answer of a kind was observed, the wait for the first frame (default 5 s, at most idleTimeoutMs). */
  firstTimeoutMs?: number;
  /** The shortest adaptive wait (default 1 s). */
  minTimeoutMs?: number;
  /** Attempts per request over the upstreams in turn (default 2 per upstream, at least 3). */
  maxAttempts?: number;
  maxFrameBytes?: number;
  /** A host marked down is probed after this long, doubling per failed probe up to 30 s (default 1 s). */
  probeAfterMs?: number;
  log?: (line: string) => void;
}

/** Refusals a retry elsewhere cannot fix (the request itself is wrong); everything else is retried. */
const FINAL_CODES = new Set(["misdirected", "bad_frame", "checksum_mismatch", "unsupported_version", "unsupported_cut", "weights_mismatch", "model_mismatch", "too_large", "bad_tensor", "non_finite", "bad_request", "unauthenticated"]);

/** How long an adaptive wait is, relative to the observed time between frames. */
const TIMEOUT_FACTOR = 4;
const TIMEOUT_MARGIN_MS = 500;
const PROBE_TIMEOUT_MS = 2_000;
const MAX_PROBE_AFTER_MS = 30_000;

/** One upstream's health as the edge sees it. */
interface Health {
  down: boolean;
  /** Failed probes in a row since it went down. */
  probes: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Observed time between frames (the first frame included) of one kind of request (`step`, `handoff`, `latent`). */
interface Pace {
  ewmaMs: number;
  lastMs: number;
}

/** A timer that does not keep the process alive (Node, Bun: unref; Deno: Deno.unrefTimer). */
function unref(t: ReturnType<typeof setTimeout>): void {
  const d = (globalThis as { Deno?: { unrefTimer?(id: number): void } }).Deno;
  if (typeof (t as { unref?: () => void }).unref === "function") (t as { unref: () => void }).unref();
  else d?.unrefTimer?.(t as unknown as number);
}

/** Sends requests to the hosts, round robin over those up, with retries. */
export class UpstreamPool {
  private next = 0;
  private closed = false;
  private readonly health: Health[];
  private readonly pace = new Map<string, Pace>();
  private readonly audiences: string[];
  readonly idleTimeoutMs: number;
  readonly firstTimeoutMs: number;
  readonly minTimeoutMs: number;
  readonly maxAttempts: number;

  constructor(readonly opts: UpstreamOptions) {
    if (opts.urls.length === 0) throw new Error("upstreams: need at least one URL");
    for (const u of opts.urls) new URL(u);
    const a = opts.audience;
    if (Array.isArray(a) && a.length !== opts.urls.length) throw new Error(`audience: ${a.length} names for ${opts.urls.length} upstreams (give one, or one per upstream)`);
    this.audiences = opts.urls.map((u, i) => (a === undefined ? new URL(u).host : typeof a === "string" ? a : (a as readonly string[])[i]));
    for (const n of this.audiences) {
      const problem = audienceProblem(n);
      if (problem) throw new Error(`audience: ${problem}`);
    }
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 30_000;
    this.firstTimeoutMs = Math.min(this.idleTimeoutMs, opts.firstTimeoutMs ?? 5_000);
    this.minTimeoutMs = Math.min(this.idleTimeoutMs, opts.minTimeoutMs ?? 1_000);
    this.maxAttempts = opts.maxAttempts ?? Math.max(3, 2 * opts.urls.length);
    this.health = opts.urls.map(() => ({ down: false, probes: 0, timer: undefined }));
  }

  /** Which upstreams are up (by position in `urls`). */
  get up(): boolean[] {
    return this.health.map((h) => !h.down);
  }

  /** Stops the health probes. */
  close(): void {
    this.closed = true;
    for (const h of this.health) clearTimeout(h.timer);
  }

  /** The wait for the next frame of a request of `kind` on its `attempt`-th try (doubling per retry). */
  timeoutFor(kind: string, attempt: number): number {
    const p = this.pace.get(kind);
    const base = p ? Math.max(this.minTimeoutMs, TIMEOUT_FACTOR * Math.max(p.ewmaMs, p.lastMs) + TIMEOUT_MARGIN_MS) : this.firstTimeoutMs;
    return Math.min(this.idleTimeoutMs, base * 2 ** attempt);
  }

  private observe(kind: string, ms: number): void {
    const p = this.pace.get(kind);
    if (!p) this.pace.set(kind, { ewmaMs: ms, lastMs: ms });
    else {
      p.ewmaMs = 0.8 * p.ewmaMs + 0.2 * ms;
      p.lastMs = ms;
    }
  }

  /** The next upstream in turn that is up; when all are down, the next in turn (one may be back). */
  private pick(): number {
    const n = this.opts.urls.length;
    for (let i = 0; i < n; i++) {
      const k = (this.next + i) % n;
      if (!this.health[k].down) {
        this.next = k + 1;
        return k;
      }
    }
    return this.next++ % n;
  }

  private markDown(i: number, why: string): void {
    const h = this.health[i];
    if (h.down) return;
    h.down = true;
    h.probes = 0;
    this.opts.log?.(`edge: upstream ${this.opts.urls[i]} marked down (${why}); probing it`);
    this.scheduleProbe(i);
  }

  private markUp(i: number): void {
    const h = this.health[i];
    clearTimeout(h.timer);
    if (h.down) this.opts.log?.(`edge: upstream ${this.opts.urls[i]} is back`);
    h.down = false;
    h.probes = 0;
  }

  private scheduleProbe(i: number): void {
    const h = this.health[i];
    if (this.closed) return;
    const after = Math.min(MAX_PROBE_AFTER_MS, (this.opts.probeAfterMs ?? 1_000) * 2 ** h.probes);
    clearTimeout(h.timer);
    h.timer = setTimeout(() => void this.probe(i), after);
    unref(h.timer);
  }

  private async probe(i: number): Promise<void> {
    const h = this.health[i];
    if (!h.down || this.closed) return;
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), PROBE_TIMEOUT_MS);
    try {
      const res = await fetch(new URL("/healthz", this.opts.urls[i]), { signal: ctrl.signal });
      await res.body?.cancel();
      if (res.ok) return this.markUp(i);
    } catch { /* still down */ } finally {
      clearTimeout(timer);
    }
    h.probes++;
    this.scheduleProbe(i);
  }

  /**
   * Sends `frames` (signed afresh for every attempt) and returns the frames of the answer. `onFrame`
   * sees each frame as it arrives (previews); a request that fails midway is repeated on the next
   * upstream, which is safe because hosts keep no state. Throws the host's ProtocolError for refusals
   * a retry cannot fix, `upstream_failed` when every attempt failed, or the abort reason. Messages name
   * upstreams by position ("upstream 2 of 3"), never by URL (they may reach clients); the log has URLs.
   */
  async request(frames: Frame[], what: string, signal?: AbortSignal, onFrame?: (f: Frame) => void): Promise<Frame[]> {
    const { urls, key } = this.opts;
    // The work frame's type names the kind of request whose pace sets the timeouts.
    const kind = frames[frames.length - 1]?.type ?? "request";
    let lastError = "";
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      signal?.throwIfAborted();
      const index = this.pick();
      const url = urls[index];
      const name = `upstream ${index + 1} of ${urls.length}`;
      const ctrl = new AbortController();
      const onAbort = () => ctrl.abort(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      const waitMs = this.timeoutFor(kind, attempt);
      let timer: ReturnType<typeof setTimeout> | undefined;
      let last = performance.now();
      let timedOut = false;
      let hostBusy = false;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          timedOut = true;
          ctrl.abort(new Error(`no answer for ${waitMs} ms`));
        }, waitMs);
      };
      try {
        arm();
        const body = await signFrames(key, frames, { audience: this.audiences[index] });
        const res = await fetch(new URL("/v1/run", url), {
          method: "POST", body: body as Uint8Array<ArrayBuffer>, signal: ctrl.signal, headers: { "content-type": FRAMES_MEDIA_TYPE },
        });
        if (!res.body) throw new Error(`HTTP ${res.status} without a body`);
        const reader = new FrameReader(res.body, this.opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
        const got: Frame[] = [];
        const gaps: number[] = [];
        for (let f = await reader.next(); f; f = await reader.next()) {
          const now = performance.now();
          gaps.push(now - last);
          last = now;
          arm();
          if (f.type === "error") {
            const code = isErrorCode(f.code) ? f.code : "internal";
            if (FINAL_CODES.has(code)) {
              this.markUp(index); // it answered: a refusal of the request, not a failure of the host
              throw new ProtocolError(code, `${name}: ${f.message}`, { upstreamStatus: f.status, fromHost: true });
            }
            hostBusy = code === "busy";
            throw new Error(`${f.code} (${f.status}): ${f.message}`);
          }
          got.push(f);
          onFrame?.(f);
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        if (got.length === 0) throw new Error("empty answer");
        for (const g of gaps) this.observe(kind, g);
        this.markUp(index);
        return got;
      } catch (e) {
        if (e instanceof ProtocolError && e.extra.fromHost) throw e;
        if (signal?.aborted) throw signal.reason ?? e;
        const message = timedOut ? `no answer for ${waitMs} ms` : String((e as Error).message ?? e);
        lastError = `${name}: ${message.replace(/\bhttps?:\/\/[^\s)]+/gi, "<upstream>")}`;
        // A busy host answered: it is up, only full; the next attempt goes to another.
        if (hostBusy) this.markUp(index);
        else this.markDown(index, message);
        this.opts.log?.(`edge: ${what} attempt ${attempt + 1} failed (${url}: ${message}); trying the next upstream`);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        ctrl.abort();
      }
    }
    throw new ProtocolError("upstream_failed", `${what}: all ${this.maxAttempts} attempts failed; last: ${lastError}`);
  }
}
