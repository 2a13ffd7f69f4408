// Protocol error codes (docs/protocol.md section 8): each refusal has its own code and HTTP status,
// carried in an `error` frame, so a peer in any language can tell what went wrong.
import { DicError } from "../errors.ts";

/** Error codes of protocol v2 and the HTTP status each is answered with. */
export const ERROR_STATUS = {
  bad_frame: 400,
  checksum_mismatch: 400,
  unsupported_version: 400,
  unsupported_cut: 400,
  unauthenticated: 401,
  stale: 401,
  replayed: 409,
  misdirected: 421,
  weights_mismatch: 412,
  model_mismatch: 412,
  too_large: 413,
  bad_tensor: 422,
  non_finite: 422,
  bad_request: 422,
  work_limit: 422,
  not_found: 404,
  method_not_allowed: 405,
  timeout: 408,
  cancelled: 499,
  internal: 500,
  upstream_failed: 502,
  busy: 503,
  deadline: 504,
} as const;

/** One of the protocol's error codes. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** A refusal or failure that maps to an `error` frame with a code and an HTTP status. */
export class ProtocolError extends DicError<ErrorCode> {
  readonly status: number;

  constructor(code: ErrorCode, message: string, readonly extra: Record<string, unknown> = {}) {
    super(code, `${code}: ${message}`);
    this.name = "ProtocolError";
    this.status = ERROR_STATUS[code];
  }
}

/** The HTTP headers a refusal carries beside its body: Retry-After (seconds) for `busy`, Allow for a wrong method. */
export function refusalHeaders(pe: ProtocolError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (typeof pe.extra.retryAfter === "number") headers["retry-after"] = String(pe.extra.retryAfter);
  if (typeof pe.extra.allow === "string") headers.allow = pe.extra.allow;
  return headers;
}

/** Whether `code` is one of the v2 codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(ERROR_STATUS, code);
}
