// The edge's view of its hosts (docs/protocol.md section 7.3): signed requests to a list of upstreams,
// each retried on the next upstream when it fails, times out or its stream breaks.
import { signFrames } from "./auth.ts";
import { ProtocolError, isErrorCode } from "./errors.ts";
import { DEFAULT_MAX_FRAME_BYTES, type Frame, FRAMES_MEDIA_TYPE } from "./frames.ts";
import { FrameReader } from "./stream.ts";

/** Options of {@link UpstreamPool}. */
export interface UpstreamOptions {
  /** Base URLs of the hosts (or of a load balancer in front of them). */
  urls: string[];
  key: CryptoKey;
  /** A request fails when no frame arrives for this long (default 30 s). */
  idleTimeoutMs?: number;
  /** Attempts per request over the upstreams in turn (default 2 per upstream, at least 3). */
  maxAttempts?: number;
  maxFrameBytes?: number;
  log?: (line: string) => void;
}

/** Refusals a retry elsewhere cannot fix (the request itself is wrong); everything else is retried. */
const FINAL_CODES = new Set(["bad_frame", "checksum_mismatch", "unsupported_version", "unsupported_cut", "weights_mismatch", "model_mismatch", "too_large", "bad_tensor", "non_finite", "bad_request", "unauthenticated"]);

/** Sends requests to the hosts, round robin, with retries. */
export class UpstreamPool {
  private next = 0;
  readonly idleTimeoutMs: number;
  readonly maxAttempts: number;

  constructor(readonly opts: UpstreamOptions) {
    if (opts.urls.length === 0) throw new Error("upstreams: need at least one URL");
    for (const u of opts.urls) new URL(u);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 30_000;
    this.maxAttempts = opts.maxAttempts ?? Math.max(3, 2 * opts.urls.length);
  }

  /**
   * Sends `frames` (signed afresh for every attempt) and returns the frames of the answer. `onFrame`
   * sees each frame as it arrives (previews); a request that fails midway is repeated on the next
   * upstream, which is safe because hosts keep no state. Throws the host's ProtocolError for refusals
   * a retry cannot fix, `upstream_failed` when every attempt failed, or the abort reason.
   */
  async request(frames: Frame[], what: string, signal?: AbortSignal, onFrame?: (f: Frame) => void): Promise<Frame[]> {
    const { urls, key } = this.opts;
    let lastError = "";
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      signal?.throwIfAborted();
      const index = this.next++ % urls.length;
      const url = urls[index];
      // NOTE: what a client may see names the upstream by its place in the list, never by its URL.
      const name = `upstream ${index + 1} of ${urls.length}`;
      const ctrl = new AbortController();
      const onAbort = () => ctrl.abort(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => ctrl.abort(new Error(`no answer for ${this.idleTimeoutMs} ms`)), this.idleTimeoutMs);
      };
      try {
        arm();
        const body = await signFrames(key, frames);
        const res = await fetch(new URL("/v1/run", url), {
          method: "POST", body: body as Uint8Array<ArrayBuffer>, signal: ctrl.signal, headers: { "content-type": FRAMES_MEDIA_TYPE },
        });
        if (!res.body) throw new Error(`HTTP ${res.status} without a body`);
        const reader = new FrameReader(res.body, this.opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
        const got: Frame[] = [];
        for (let f = await reader.next(); f; f = await reader.next()) {
          arm();
          if (f.type === "error") {
            const code = isErrorCode(f.code) ? f.code : "internal";
            if (FINAL_CODES.has(code)) throw new ProtocolError(code, `${name}: ${f.message}`, { upstreamStatus: f.status, fromHost: true });
            throw new Error(`${f.code} (${f.status}): ${f.message}`);
          }
          got.push(f);
          onFrame?.(f);
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        if (got.length === 0) throw new Error("empty answer");
        return got;
      } catch (e) {
        if (e instanceof ProtocolError && e.extra.fromHost) throw e;
        if (signal?.aborted) throw signal.reason ?? e;
        lastError = `${name}: ${String((e as Error).message ?? e).replace(/\bhttps?:\/\/[^\s)]+/gi, "<upstream>")}`;
        this.opts.log?.(`edge: ${what} attempt ${attempt + 1} failed (${url}: ${(e as Error).message ?? e}); trying the next upstream`);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        ctrl.abort();
      }
    }
    throw new ProtocolError("upstream_failed", `${what}: all ${this.maxAttempts} attempts failed; last: ${lastError}`);
  }
}
