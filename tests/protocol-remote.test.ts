// The `remote` cut (every runtime, in-process): an edge with no weights reads the model's identity from a
// host's /v1/info, draws x_T from the seed and hands the whole run to the host (a handoff at step 0); the
// result is single-process generation bit for bit. A weightless edge refuses the other cuts; a full edge
// serves remote too; a host's bad /v1/info is refused field by field.
import assert from "node:assert/strict";
import { generate, loadDefaultModel } from "../sdk/index.ts";
import { createEdgeHandler, createHostHandler, loadRemoteModel, loadServingModel } from "../sdk/serve.ts";
import { type Frame, FRAMES_MEDIA_TYPE } from "../src/protocol/frames.ts";
import { parseHostModelInfo } from "../src/protocol/session.ts";
import { FrameReader } from "../src/protocol/stream.ts";
import { decodeTensor } from "../src/protocol/tensor-codec.ts";
import type { HostTensor } from "../src/tensor.ts";
import { test } from "./harness.ts";
import { modelPath, SECRET } from "./protocol-refusals.ts";

const served = await loadServingModel(modelPath, "js");
const host = await createHostHandler({ model: served, secret: SECRET });
let hostRequests = 0;

/** Runs `fn` with fetch to http://gpu.test/ answered by the in-process host and http://down.test/ refused. */
async function withHosts<T>(fn: () => Promise<T>): Promise<T> {
  const real = globalThis.fetch;
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    if (req.url.startsWith("http://gpu.test/")) {
      hostRequests++;
      return host(req);
    }
    if (req.url.startsWith("http://down.test/")) throw new TypeError("fetch failed: connection refused");
    return real(input, init);
  }) as typeof fetch;
  try {
    return await fn();
  } finally {
    globalThis.fetch = real;
  }
}

async function finalOf(res: Response): Promise<{ x: HostTensor; previews: number[] }> {
  assert.equal(res.status, 200, await res.clone().text());
  const reader = new FrameReader(res.body!, 1 << 24);
  const previews: number[] = [];
  for (let f: Frame | null = await reader.next(); f; f = await reader.next()) {
    if (f.type === "preview") previews.push(f.step);
    else if (f.type === "final") return { x: decodeTensor((f.x ?? f.image)!, [null, 1, 28, 28], "final"), previews };
    else throw new Error(`edge answered ${f.type === "error" ? `${f.code}: ${f.message}` : f.type}`);
  }
  throw new Error("no final frame");
}

const post = (body: Record<string, unknown>) =>
  new Request("http://edge.test/v1/generate", { method: "POST", body: JSON.stringify(body), headers: { accept: FRAMES_MEDIA_TYPE } });

test("remote cut: an edge with no weights serves the host's model, bit for bit single-process generation", async () => {
  await withHosts(async () => {
    const remote = await loadRemoteModel(["http://down.test", "http://gpu.test"]);
    assert.deepEqual(remote.card.config, served.model.config);
    assert.deepEqual(remote.card.classNames, served.model.classNames);
    assert.deepEqual(remote.card.samplingDefaults, served.model.samplingDefaults);
    assert.deepEqual([...remote.weightsSha256], [...served.weightsSha256]);
    const edge = await createEdgeHandler({ model: remote, upstreams: ["http://gpu.test"], secret: SECRET });
    const labels = [7, 2], steps = 4, seed = 11;
    const want = (await generate({ model: await loadDefaultModel("js"), labels, steps, seed })).latents;
    const before = hostRequests;
    const got = await finalOf(await edge(post({ labels, steps, seed })));
    assert.equal(hostRequests - before, 1, "the whole run is one host request");
    assert.deepEqual(got.previews, [0, 1, 2, 3], "the host streams every step's progress");
    assert.ok(got.x.data.every((v, i) => Object.is(v, want.data[i])), "remote differs from single-process generation");
    // Labels by name work from the published class names; a PNG comes back for this pixel-space model.
    const png = await edge(new Request("http://edge.test/v1/generate?label=sneaker&steps=3&seed=1&format=png"));
    assert.equal(png.status, 200);
    assert.equal(png.headers.get("content-type"), "image/png");
    // What the request cost: in all, on the hosts, and on this edge.
    assert.match(png.headers.get("server-timing") ?? "", /^total;dur=[\d.]+, upstream;dur=[\d.]+, edge;dur=[\d.]+$/);
    // The other cuts need weights on the edge.
    for (const cut of ["unet", "handoff", "vae"]) {
      const r = await edge(post({ labels, steps, seed, cut }));
      assert.equal(r.status, 422, cut);
      assert.match((await r.json()).message, /holds no weights; it serves cut=remote only/);
    }
    // An edge with the weights offers the remote cut as well.
    const full = await createEdgeHandler({ model: served, upstreams: ["http://gpu.test"], secret: SECRET });
    const again = await finalOf(await full(post({ labels, steps, seed, cut: "remote" })));
    assert.ok(again.x.data.every((v, i) => Object.is(v, want.data[i])));
  });
});

test("remote cut: no upstream answering /v1/info, and every bad field of it, is refused with its code", async () => {
  await withHosts(async () => {
    await assert.rejects(loadRemoteModel(["http://down.test"]), (e: Error & { code?: string }) => e.code === "upstream_failed" && /down\.test/.test(e.message));
  });
  const good = await (await host(new Request("http://host.test/v1/info"))).json();
  assert.deepEqual(Object.keys(good.model.metadata).sort(), ["class_names", "pixel_range", "sampling_defaults"]);
  const bad: [unknown, RegExp][] = [
    [{}, /no model object/],
    [{ model: { ...good.model, weights_sha256: "abc" } }, /weights_sha256 must be 64 hex digits/],
    [{ model: { ...good.model, config: { ...good.model.config, hidden_size: -3 } } }, /model\.config/],
    [{ model: { ...good.model, pixel_range: [1, 0] } }, /pixel_range/],
    [{ model: { ...good.model, metadata: { class_names: ["a"] } } }, /metadata\.class_names must be a string/],
  ];
  for (const [info, re] of bad) {
    assert.throws(() => parseHostModelInfo(info, "http://h"), (e: Error & { code?: string }) => e.code === "bad_frame" && re.test(e.message), JSON.stringify(info).slice(0, 80));
  }
});
