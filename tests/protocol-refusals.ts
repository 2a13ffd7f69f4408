// Shared by the protocol tests: valid host requests for the embedded model, and every refusal of
// docs/protocol.md sections 6-8 with the error code and HTTP status it must get.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { unpack } from "msgpackr";
import { importSecret, sha256, signFrames } from "../src/protocol/auth.ts";
import { decodeFrame, encodeFrame, type Frame, PROTOCOL_VERSION, SUPPORTED_VERSIONS } from "../src/protocol/frames.ts";
import { unetCutShapes } from "../src/protocol/session.ts";
import { encodeTensor, type WireTensor } from "../src/protocol/tensor-codec.ts";
import { DEFAULT_MODEL_FILE } from "../sdk/default-model.ts";
import { resolveConfig } from "../src/model/config.ts";

export const SECRET = "test-shared-secret-0123456789";
export const modelPath = new URL(`../models/${DEFAULT_MODEL_FILE}`, import.meta.url).pathname;

/** The embedded model's configuration and weights hash, as a hello carries them. */
export async function modelFacts() {
  const bytes = new Uint8Array(readFileSync(modelPath));
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))).__metadata__;
  const config = resolveConfig(JSON.parse(meta.config));
  return { config, weights: await sha256(bytes) };
}

type Facts = Awaited<ReturnType<typeof modelFacts>>;

/** hello + step frames of a valid one-row unet request (random finite activations). */
export function unetFrames(f: Facts, session = "s-refusals", over: { tensors?: (t: WireTensor[]) => WireTensor[]; hello?: Record<string, unknown>; v?: number } = {}): Frame[] {
  const shapes = unetCutShapes(f.config);
  const mk = (s: number[], k: number) => {
    let n = 1;
    for (const d of [1, ...s]) n *= d;
    return encodeTensor({ shape: [1, ...s], data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + k)) });
  };
  let ts = [mk(shapes.bottleneck, 0), ...shapes.skips.map((s, i) => mk(s, i + 1))];
  if (over.tensors) ts = over.tensors(ts);
  const v = over.v ?? PROTOCOL_VERSION;
  return [
    {
      v, session, seq: 1, type: "hello", versions: [v], cut: "unet", dtype: "f32",
      model: { config: { ...f.config }, weights_sha256: f.weights },
      generation: { labels: [7], steps: 4, sampler: "ddim", eta: 0, cfg_scale: 1, cfg_mode: "standard", seed: 1 },
      ...over.hello,
    } as Frame,
    { v, session, seq: 2, type: "step", step: 0, t: [999], y: [7], bottleneck: ts[0], skips: ts.slice(1) },
  ];
}

/** A refusal case: the request body and the code and status the host must answer with. */
export interface RefusalCase {
  name: string;
  body: () => Promise<Uint8Array>;
  code: string;
  status: number;
  /** Send the body twice; the second answer is the one checked. */
  twice?: boolean;
}

/** Every refusal of docs/protocol.md sections 6-8, for a host that answers to `audience`. */
export async function refusalCases(audience: string): Promise<RefusalCase[]> {
  const f = await modelFacts();
  const key = await importSecret(SECRET);
  const wrongKey = await importSecret("not-the-shared-secret-at-all");
  const sign = (frames: Frame[], k = key, now?: number, aud = audience) => signFrames(k, frames, { now, audience: aud });
  /** A signed body whose frames after auth are changed by `edit` (the auth frame, and so the declared length, kept). */
  const resign = async (edit: (rest: Uint8Array) => Uint8Array, session: string) => {
    const b = await sign(unetFrames(f, session));
    const n = 4 + new DataView(b.buffer, b.byteOffset).getUint32(0);
    return concat([b.subarray(0, n), edit(b.subarray(n))]);
  };
  const extra = encodeFrame({ v: PROTOCOL_VERSION, session: "s-extra", seq: 9, type: "latent", x: encodeTensor({ shape: [1], data: new Float32Array(1) }) });
  const tamper = (g: (t: WireTensor) => WireTensor) => (ts: WireTensor[]) => [g(ts[0]), ...ts.slice(1)];
  const replayBody = await sign(unetFrames(f, "s-replay"));
  return [
    { name: "no auth frame", body: async () => concat(unetFrames(f).map(encodeFrame)), code: "unauthenticated", status: 401 },
    { name: "wrong shared secret", body: () => sign(unetFrames(f), wrongKey), code: "unauthenticated", status: 401 },
    {
      name: "body altered after signing", code: "unauthenticated", status: 401,
      body: async () => {
        const b = await sign(unetFrames(f));
        b[b.length - 3] ^= 1;
        return b;
      },
    },
    { name: "stale timestamp", body: () => sign(unetFrames(f), key, Date.now() - 10 * 60_000), code: "stale", status: 401 },
    { name: "replayed request", body: async () => replayBody, code: "replayed", status: 409, twice: true },
    { name: "a future protocol version", body: () => sign(unetFrames(f, "s-v9", { v: 9 })), code: "unsupported_version", status: 400 },
    { name: "a v1 request", body: async () => v1Body(f), code: "unsupported_version", status: 400 },
    { name: "signed for another host (audience)", body: () => sign(unetFrames(f, "s-aud"), key, undefined, "other-host.test:8701"), code: "misdirected", status: 421 },
    { name: "body longer than declared (a frame appended)", body: () => resign((r) => concat([r, extra]), "s-long"), code: "unauthenticated", status: 401 },
    { name: "body shorter than declared (the work frame dropped)", body: () => resign((r) => r.subarray(0, 4 + new DataView(r.buffer, r.byteOffset).getUint32(0)), "s-short"), code: "unauthenticated", status: 401 },
    {
      name: "work frame swapped for another of the same length (streamed digest)", code: "unauthenticated", status: 401,
      body: async () => {
        // The auth frame of one request, the frames of another: same length, another digest.
        const a = await sign(unetFrames(f, "s-swap"));
        const b = await sign(unetFrames(f, "s-swap", { tensors: (ts) => ts.map((t) => encodeTensor({ shape: t.shape, data: new Float32Array(t.data.length / 4).fill(0.5) })) }));
        const na = 4 + new DataView(a.buffer, a.byteOffset).getUint32(0), nb = 4 + new DataView(b.buffer, b.byteOffset).getUint32(0);
        return concat([a.subarray(0, na), b.subarray(nb)]);
      },
    },
    { name: "different weights hash", body: () => sign(unetFrames(f, "s-w", { hello: { model: { config: { ...f.config }, weights_sha256: new Uint8Array(32).fill(7) } } })), code: "weights_mismatch", status: 412 },
    { name: "different model configuration", body: () => sign(unetFrames(f, "s-m", { hello: { model: { config: { ...f.config, hidden_size: 48 }, weights_sha256: f.weights } } })), code: "model_mismatch", status: 412 },
    { name: "tensor dtype not f32/f16", body: () => sign(unetFrames(f, "s-d", { tensors: tamper((t) => ({ ...t, dtype: "f64" })) })), code: "bad_tensor", status: 422 },
    { name: "tensor shape not the model's", body: () => sign(unetFrames(f, "s-s", { tensors: tamper((t) => ({ ...t, shape: [1, t.shape[1] + 4, t.shape[2], t.shape[3]] })) })), code: "bad_tensor", status: 422 },
    { name: "tensor size not its shape's", body: () => sign(unetFrames(f, "s-z", { tensors: tamper((t) => ({ ...t, data: t.data.subarray(8) })) })), code: "bad_tensor", status: 422 },
    {
      name: "NaN in a tensor", code: "non_finite", status: 422,
      body: () => sign(unetFrames(f, "s-n", { tensors: tamper((t) => {
        const d = t.data.slice();
        new DataView(d.buffer).setFloat32(40, NaN, true);
        return encodeTensor({ shape: t.shape, data: new Float32Array(d.buffer) });
      }) })),
    },
    {
      name: "Inf in a tensor", code: "non_finite", status: 422,
      body: () => sign(unetFrames(f, "s-i", { tensors: tamper((t) => {
        const d = t.data.slice();
        new DataView(d.buffer).setFloat32(0, -Infinity, true);
        return encodeTensor({ shape: t.shape, data: new Float32Array(d.buffer) });
      }) })),
    },
    {
      name: "checksum mismatch", code: "checksum_mismatch", status: 400,
      body: () => sign(unetFrames(f, "s-c", { tensors: tamper((t) => ({ ...t, crc32: (t.crc32 + 1) >>> 0 })) })),
    },
    {
      // A length prefix of 2 GiB and a few bytes: refused from the prefix, nothing is read or allocated.
      name: "frame beyond the size limit", code: "too_large", status: 413,
      body: async () => new Uint8Array([0x7f, 0xff, 0xff, 0xff, 0x80, 0x81, 0x82]),
    },
    { name: "garbage instead of MessagePack", body: async () => new Uint8Array([0, 0, 0, 3, 0xc1, 0xc1, 0xc1]), code: "bad_frame", status: 400 },
  ];
}

/**
 * A request as a v1 edge signs it: v1 frames behind a v1 auth frame (no length, no audience; the MAC
 * over the v1 fields). A v2 host must answer `unsupported_version`, in a frame a v1 edge reads.
 */
async function v1Body(f: Facts): Promise<Uint8Array> {
  const rest = concat(unetFrames(f, "s-v1", { v: 1 }).map(encodeFrame));
  const digest = await sha256(rest);
  const nonce = "v1-nonce-0123456789abcdef";
  const ts = Date.now();
  const mac = new Uint8Array(32); // the host refuses the version before it checks any MAC
  return concat([encodeFrame({ v: 1, session: "s-v1", seq: 0, type: "auth", ts, nonce, digest, mac } as unknown as Frame), rest]);
}

/** A valid signed unet request for the embedded model, for a host that answers to `audience`. */
export async function validBody(session = "s-valid", audience = "host.test"): Promise<Uint8Array> {
  return signFrames(await importSecret(SECRET), unetFrames(await modelFacts(), session), { audience });
}

/**
 * Runs every refusal case through `send` (to a host that answers to `audience`: its `host:port`, unless
 * configured) and checks code and status, then that a valid request still works.
 */
export async function checkRefusals(send: (body: Uint8Array) => Promise<Response>, audience: string): Promise<void> {
  const cases = await refusalCases(audience);
  for (const c of cases) {
    const body = await c.body();
    if (c.twice) {
      const first = await send(body);
      assert.equal(first.status, 200, `${c.name}: the first send must pass`);
      await first.arrayBuffer();
    }
    const res = await send(body);
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.equal(res.status, c.status, `${c.name}: HTTP status`);
    assert.equal(res.headers.get("content-type"), "application/x-dic-frames", c.name);
    const len = new DataView(bytes.buffer).getUint32(0);
    assert.equal(len, bytes.length - 4, `${c.name}: exactly one frame`);
    // The refusal of a v1 request is a v1 error frame (a v1 edge reads it); this end speaks v2 only.
    const v1 = c.name === "a v1 request";
    const frame = v1 ? { ...(unpack(bytes.subarray(4)) as Frame), v: 1 } : decodeFrame(bytes.subarray(4));
    if (v1) assert.equal((unpack(bytes.subarray(4)) as { v: number }).v, 1, "the refusal of a v1 request is written in v1");
    assert.equal(frame.type, "error", c.name);
    if (frame.type === "error") {
      assert.equal(frame.code, c.code, `${c.name}: ${frame.message}`);
      assert.equal(frame.status, c.status, c.name);
      if (c.code === "unsupported_version") assert.deepEqual(frame.versions, [...SUPPORTED_VERSIONS]);
    }
    // The host keeps serving.
    const ok = await send(await validBody(`s-after-${cases.indexOf(c)}`, audience));
    const okFrame = decodeFrame(new Uint8Array(await ok.arrayBuffer()).subarray(4));
    assert.equal(ok.status, 200, `after ${c.name}: ${JSON.stringify(okFrame.type === "error" ? okFrame.message : okFrame.type)}`);
    assert.equal(okFrame.type, "step_result", `after ${c.name}`);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}
