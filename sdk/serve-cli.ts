// `dic serve --role host|edge`: the protocol's handlers behind the runtime's own HTTP server
// (Deno.serve, Bun.serve, or node:http through toNodeListener).
import { BACKEND_NAMES, type BackendName } from "../src/backend/registry.ts";
import { type FlagTable, numberFlag } from "./cli-args.ts";
import { env } from "../src/env.ts";
import { readBytes } from "../src/io.ts";
import { toHex } from "../src/protocol/auth.ts";
import { audienceProblem } from "../src/protocol/frames.ts";
import { toNodeListener } from "./node-adapter.ts";
import { createEdgeHandler, createHostHandler, type EdgeOptions, type Handler, loadRemoteModel, loadServingModel } from "./serve.ts";
import { loadVAE, type VAEModel } from "./vae.ts";

/** Where `dic serve` writes. */
export interface ServeIO {
  err: (line: string) => void;
}

/** Options of `dic serve` as parsed by the CLI. */
export interface ServeFlags {
  role?: string;
  port?: string;
  listen?: string;
  upstream?: string[];
  audience?: string[];
  "secret-file"?: string;
  backend?: BackendName;
  model?: string;
  /** Host of a latent model: the SD-VAE decoder of the `vae` cut, and its memory budget in MB. */
  vae?: string;
  "vae-memory"?: string;
  /** Edge with no weights: the model's identity comes from the upstreams' /v1/info; the `remote` cut only. */
  remote?: boolean;
  /** Most MiB the wasm backend's memory may take (weights stored compactly where the fast form does not fit). */
  "memory-budget"?: string;
  /** Only one side's tensors of the unet cut: "decode" (host) or "encode" (edge). */
  part?: string;
  /** The weights file's SHA-256 as published (with --part: read only the part, the hash taken as given). */
  sha256?: string;
  quiet?: boolean;
  /** Edge admission control (createEdgeHandler's maxWork, maxConcurrent, maxQueue, deadlineMs, maxBodyBytes). */
  "max-work"?: string;
  "max-concurrent"?: string;
  "max-queue"?: string;
  /** Seconds. */
  deadline?: string;
  /** Bytes. */
  "max-body"?: string;
}

/** The edge's admission flags as createEdgeHandler options (absent flags: the defaults, EDGE_LIMITS). */
function edgeLimits(v: ServeFlags): Partial<EdgeOptions> {
  const out: Partial<EdgeOptions> = {};
  // Counts are integers; --deadline is seconds (decimals allowed), passed on as whole milliseconds.
  const int = (flag: keyof ServeFlags, min: number, scale = 1): number | undefined => {
    const raw = v[flag];
    if (raw === undefined) return undefined;
    const check = (n: number) => (scale === 1 ? Number.isInteger(n) : true) && Math.round(n * scale) >= min;
    return Math.round(numberFlag(String(raw), flag, check, `${scale === 1 ? "an integer" : "a number"} >= ${min / scale}`) * scale);
  };
  out.maxWork = int("max-work", 1);
  out.maxConcurrent = int("max-concurrent", 1);
  out.maxQueue = int("max-queue", 0);
  out.deadlineMs = int("deadline", 1, 1000);
  out.maxBodyBytes = int("max-body", 2);
  return out;
}

/** The flags of `dic serve` (the CLI parses them with this table and prints its help from it). */
export const SERVE_FLAGS: FlagTable = {
  role: { type: "string", value: "ROLE", choices: ["host", "edge"], help: "host: finishes work at a cut point; edge: serves /v1/generate and calls the hosts" },
  port: { type: "string", value: "P", help: "port to listen on (0: any free port)" },
  listen: { type: "string", value: "ADDR", help: "address to listen on (default 127.0.0.1)" },
  "secret-file": { type: "string", value: "FILE", help: "file holding the shared secret (at least 16 bytes)" },
  upstream: { type: "string", multiple: true, value: "URL", help: "edge: a host (or a load balancer in front of hosts)" },
  audience: { type: "string", multiple: true, value: "NAME", help: "host: a name it answers to (hosts behind one balancer may share one); edge: the name requests are signed for (one, or one per --upstream; default each URL's host:port)" },
  model: { type: "string", value: "W.safetensors", help: "weights (default: the embedded model); both sides load the same" },
  backend: { type: "string", value: "NAME", choices: BACKEND_NAMES, help: "backend that runs the model (default auto)" },
  vae: { type: "string", value: "VAE.safetensors", help: "host of a latent model: the SD-VAE decoder of the vae cut" },
  "vae-memory": { type: "string", value: "MB", help: "host: decode in tiles above this activation memory" },
  remote: { type: "boolean", help: "edge with no weights: the hosts run every step (cut=remote)" },
  part: { type: "string", value: "decode|encode", help: "only one side's tensors of the unet cut: decode (host) or encode (edge)" },
  sha256: { type: "string", value: "HEX", help: "the weights file's SHA-256 as published (with --part: taken as given)" },
  "max-work": { type: "string", value: "N", help: "edge: most work per request (images x steps x pixels)" },
  "max-concurrent": { type: "string", value: "N", help: "edge: generations running at once (default 4); host: requests computing at once (default 8)" },
  "max-queue": { type: "string", value: "N", help: "edge: generations waiting, then 503 busy (default 64); host: requests waiting (default 256)" },
  deadline: { type: "string", value: "SECONDS", help: "edge: per-request deadline, then 504 (default 300)" },
  "max-body": { type: "string", value: "BYTES", help: "edge: largest JSON request body, then 413 (default 1048576)" },
  "memory-budget": { type: "string", value: "MB", help: "wasm: most MiB its memory may take (weights stored compactly where the fast form does not fit)" },
};

/** A `dic serve` usage error (one line, status 1). */
export class ServeUsageError extends Error {}

declare const Deno: {
  serve(o: { port: number; hostname: string; onListen?: (a: { port: number }) => void; onError?: (e: unknown) => Response }, h: Handler): unknown;
} | undefined;
declare const Bun: {
  serve(o: { port: number; hostname: string; fetch: Handler; idleTimeout?: number; development?: boolean; error?: (e: unknown) => Response }): { port: number };
} | undefined;

/** The answer when a handler throws: its code only, never a message, a path or a runtime's error page. */
function internalError(): Response {
  return Response.json({ type: "error", code: "internal", status: 500, message: "internal error" }, { status: 500 });
}

/** `handler`, answering 500 (code `internal`) instead of throwing into the runtime's server. */
export function neverThrows(handler: Handler, log?: (line: string) => void): Handler {
  return async (req) => {
    try {
      return await handler(req);
    } catch (e) {
      log?.(`serve: internal error: ${(e as Error)?.stack ?? e}`);
      return internalError();
    }
  };
}

/** Starts a server for `handler`; resolves with the port it listens on. */
export async function listen(handler: Handler, port: number, hostname: string, log?: (line: string) => void): Promise<number> {
  const safe = neverThrows(handler, log);
  if (env.runtime === "deno") {
    return new Promise((resolve) => Deno!.serve({ port, hostname, onListen: (a) => resolve(a.port), onError: internalError }, safe));
  }
  // NOTE: development: false, so a failure never shows Bun's development error page (cwd, paths, source).
  if (env.runtime === "bun") return Bun!.serve({ port, hostname, fetch: safe, idleTimeout: 255, development: false, error: internalError }).port;
  const http = await import("node:http");
  const server = http.createServer(toNodeListener(safe));
  server.keepAliveTimeout = 5_000;
  // Against slowloris: headers within 10 s, the whole request within 120 s, at most 1024 connections.
  server.headersTimeout = 10_000;
  server.requestTimeout = 120_000;
  server.maxConnections = 1024;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => resolve((server.address() as { port: number }).port));
  });
}

/**
 * The default audiences of a host bound to `hostname`:`port` (docs/protocol.md section 6.1): the
 * `host:port` an edge's upstream URL names it by (without the port too where it is 80 or 443, which a
 * URL leaves out; `localhost` beside a loopback address). Undefined for a wildcard address
 * (0.0.0.0, ::), which names no one host: the handler then answers to the name each request is addressed by.
 */
export function boundAudiences(hostname: string, port: number): string[] | undefined {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "0.0.0.0" || h === "::" || h === "") return undefined;
  const hosts = [h.includes(":") ? `[${h}]` : h];
  if (h === "127.0.0.1" || h === "::1") hosts.push("localhost");
  const names: string[] = [];
  for (const x of hosts) {
    names.push(`${x}:${port}`);
    if (port === 80 || port === 443) names.push(x);
  }
  return names;
}

/**
 * Runs `dic serve`: reads the secret, loads the model, starts the server and prints one line
 * `dic serve: <role> listening on http://HOST:PORT ...`; the returned promise never settles.
 */
export async function runServe(v: ServeFlags, io: ServeIO): Promise<never> {
  const role = v.role;
  if (role !== "host" && role !== "edge") throw new ServeUsageError(`--role: expected host or edge, got ${JSON.stringify(role ?? null)}`);
  if (v.port === undefined) throw new ServeUsageError("missing --port P (0 = any free port)");
  const port = numberFlag(v.port, "port", (n) => Number.isInteger(n) && n >= 0 && n <= 65535, "an integer in 0..65535 (0 = any free port)");
  const secretFile = v["secret-file"];
  if (!secretFile) throw new ServeUsageError("missing --secret-file (a file holding the shared secret, at least 16 bytes)");
  let secret: Uint8Array;
  try {
    secret = await readBytes(secretFile);
  } catch (e) {
    throw new ServeUsageError(`--secret-file ${secretFile}: ${(e as Error).message}`);
  }
  // A trailing newline (echo > file) is not part of the secret.
  let end = secret.length;
  while (end > 0 && (secret[end - 1] === 10 || secret[end - 1] === 13)) end--;
  secret = secret.subarray(0, end);
  if (secret.length < 16) throw new ServeUsageError(`--secret-file ${secretFile}: ${secret.length} bytes; the shared secret needs at least 16`);
  const upstreams = v.upstream ?? [];
  if (role === "edge" && upstreams.length === 0) throw new ServeUsageError("missing --upstream URL (give one per host, or a load balancer)");
  if (role === "host" && upstreams.length) throw new ServeUsageError("--upstream is for --role edge");
  for (const u of upstreams) {
    if (!/^https?:\/\/[^/]+/i.test(u)) throw new ServeUsageError(`--upstream: "${u}" is not an http(s) URL`);
  }
  const audienceList = v.audience ?? [];
  if (role === "edge" && audienceList.length > 1 && audienceList.length !== upstreams.length) {
    throw new ServeUsageError(`--audience: ${audienceList.length} names for ${upstreams.length} upstreams (give one, or one per --upstream)`);
  }
  for (const a of audienceList) {
    const problem = audienceProblem(a);
    if (problem) throw new ServeUsageError(`--audience: ${problem}`);
  }
  const audience = audienceList.length === 0 ? undefined : role === "edge" && audienceList.length === 1 ? audienceList[0] : audienceList;
  if (role === "edge" && (v.vae !== undefined || v["vae-memory"] !== undefined)) throw new ServeUsageError("--vae and --vae-memory are for --role host (a host decodes the vae cut)");
  const limits = edgeLimits(v);
  const { maxConcurrent, maxQueue, ...edgeOnly } = limits;
  if (role === "host" && Object.values(edgeOnly).some((x) => x !== undefined)) throw new ServeUsageError("--max-work, --deadline and --max-body are for --role edge");
  const mb = v["vae-memory"];
  if (mb !== undefined && v.vae === undefined) throw new ServeUsageError("--vae-memory needs --vae");
  const vaeMemory = mb === undefined ? undefined : numberFlag(mb, "vae-memory", (n) => n > 0, "a number of megabytes > 0");
  if (v.remote && role !== "edge") throw new ServeUsageError("--remote is for --role edge (an edge with no weights)");
  if (v.remote && (v.model !== undefined || v.backend !== undefined || v["memory-budget"] !== undefined)) {
    throw new ServeUsageError("--remote: an edge with no weights takes no --model, --backend or --memory-budget (the hosts run every step)");
  }
  if (v.part !== undefined && v.part !== (role === "host" ? "decode" : "encode")) {
    throw new ServeUsageError(`--part: a ${role} of the unet cut holds ${role === "host" ? "decode" : "encode"} (or give no --part for every tensor), got ${JSON.stringify(v.part)}`);
  }
  if (v.remote && v.part !== undefined) throw new ServeUsageError("--remote: an edge with no weights takes no --part");
  if (v.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(v.sha256)) throw new ServeUsageError(`--sha256: expected 64 hex digits, got "${v.sha256}"`);
  const log = v.quiet ? undefined : (l: string) => io.err(l);
  const hostname = v.listen ?? "127.0.0.1";
  if (v.remote) {
    const remote = await loadRemoteModel(upstreams);
    const bound = await listen(await createEdgeHandler({ model: remote, secret, upstreams, audience, log, ...limits }), port, hostname, log);
    io.err(`dic serve: edge listening on http://${hostname}:${bound} (${env.runtime}, no weights: remote cut, weights sha256 ${toHex(remote.weightsSha256).slice(0, 16)}, upstreams ${upstreams.join(" ")})`);
    return new Promise<never>(() => {});
  }
  const part = v.part as "encode" | "decode" | undefined;
  const budgetMb = v["memory-budget"];
  const memoryBudget = budgetMb === undefined ? undefined : Math.floor(numberFlag(budgetMb, "memory-budget", (n) => n > 0, "a number of MiB > 0") * 1048576);
  const model = await loadServingModel(v.model, v.backend ?? "auto", { part, weightsSha256: v.sha256, memoryBudget });
  const info = model.model.loadInfo;
  if (info?.notice && !v.quiet) io.err(`dic: note: ${info.notice}`);
  let vae: VAEModel | undefined;
  if (v.vae !== undefined) {
    if (model.model.pixelRange !== null) throw new ServeUsageError(`--vae: ${v.model ?? "the embedded model"} is a pixel-space model, it takes no VAE`);
    vae = await loadVAE(v.vae, { backend: model.model.backend }); // createHostHandler checks its latent channels
  }
  // The server starts first, so that a host with no --audience can answer to the address it is bound to
  // (the port may be any free one); requests before the handler exists get 503.
  let handler: Handler = () => Promise.resolve(Response.json({ type: "error", code: "busy", status: 503, message: "starting" }, { status: 503, headers: { "retry-after": "1" } }));
  const bound = await listen((req) => handler(req), port, hostname, log);
  let hostAudience: string | readonly string[] | undefined = audience;
  if (role === "host" && audience === undefined) {
    hostAudience = boundAudiences(hostname, bound);
    if (hostAudience === undefined && !v.quiet) {
      io.err(`dic: note: --listen ${hostname} names no one address, so this host answers to whatever name a request is addressed by; give --audience NAME (and the same to its edges) so that a request captured on its way to another host sharing the secret is refused here`);
    }
  }
  handler = role === "host"
    ? await createHostHandler({ model, secret, log, audience: hostAudience, maxConcurrent, maxQueue, vae, vaeMemoryBudget: vaeMemory === undefined ? undefined : vaeMemory * 1e6 })
    : await createEdgeHandler({ model, secret, upstreams, audience, log, ...limits });
  const names = role === "host" && hostAudience !== undefined ? `, audience ${[hostAudience].flat().join(" ")}` : "";
  io.err(`dic serve: ${role} listening on http://${hostname}:${bound} (${env.runtime}, ${model.model.backend.name}, weights sha256 ${toHex(model.weightsSha256).slice(0, 16)}${part ? `, part ${part}: ${info?.bytesRead ?? 0} of ${info?.fileSize ?? 0} bytes read` : ""}${vae ? `, vae ${vae.source}` : ""}${names}${role === "edge" ? `, upstreams ${upstreams.join(" ")}` : ""})`);
  return new Promise<never>(() => {});
}
