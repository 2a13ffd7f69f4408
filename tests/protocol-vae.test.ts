// The protocol's `vae` cut with a latent model (every runtime): a random latent DiC (in_channels 4,
// 16x16 latents, tiny widths) and a random small SD-VAE-shaped decoder written to temp files; a host
// given the VAE on node:http (127.0.0.1, port 0) and the edge handler called as a function. The vae
// cut's pixels equal single-process generate({ model, vae, seed }) bit for bit (js on both ends); a
// host without a VAE answers unsupported_cut; a VAE of other latent channels is refused at creation;
// the other cuts of a latent model give latents (frames) or a 422 (PNG, JSON).
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generate } from "../sdk/generate.ts";
import { toNodeListener } from "../sdk/node-adapter.ts";
import { createEdgeHandler, createHostHandler, type Handler, loadServingModel } from "../sdk/serve.ts";
import { loadVAE } from "../sdk/vae.ts";
import { encodePNG, toRGBA } from "../src/image.ts";
import { resolveConfig } from "../src/model/config.ts";
import { randomWeights } from "../bench/lib/random-dic.ts";
import { type Frame, FRAMES_MEDIA_TYPE } from "../src/protocol/frames.ts";
import { FrameReader } from "../src/protocol/stream.ts";
import { decodeTensor } from "../src/protocol/tensor-codec.ts";
import type { HostTensor } from "../src/tensor.ts";
import { randomVAEWeights } from "../bench/lib/random-vae.ts";
import { expectedVAEParams, resolveVAEConfig, type VAEConfigInput } from "../src/vae/index.ts";
import { type TensorToWrite, writeSafetensors } from "../src/weights/safetensors.ts";
import { relL2, runtimeName, test } from "./harness.ts";
import { modelPath, SECRET } from "./protocol-refusals.ts";

const dir = mkdtempSync(join(tmpdir(), "dic-protocol-vae-"));
const S = 16; // latent side: 128x128 pictures

const dicConfig = resolveConfig({ input_size: S, in_channels: 4, num_classes: 3, hidden_size: 8, depth: [1, 1, 1, 1, 1], skip_stride: 1 });
const dicPath = join(dir, "dic-latent.safetensors");
const dicTensors: Record<string, TensorToWrite> = {};
for (const [name, t] of randomWeights(dicConfig, 21)) dicTensors[name] = { dtype: "F32", shape: t.shape, data: t.data };
writeFileSync(dicPath, writeSafetensors(dicTensors, { config: JSON.stringify(dicConfig) }));

/** A random SD-VAE-shaped decoder (four levels, small widths) in diffusers' names and shapes. */
function writeVAE(path: string, input: VAEConfigInput): void {
  const config = resolveVAEConfig({ block_out_channels: [8, 8, 16, 16], layers_per_block: 1, norm_groups: 4, ...input });
  const table = expectedVAEParams(config);
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of randomVAEWeights(config, 9)) tensors[name] = { dtype: "F32", shape: table.get(name)!, data: t.data };
  writeFileSync(path, writeSafetensors(tensors, { config: JSON.stringify({ norm_groups: 4 }) }));
}
const vaePath = join(dir, "vae-small.safetensors");
writeVAE(vaePath, {});
const vae3Path = join(dir, "vae-3ch.safetensors");
writeVAE(vae3Path, { latent_channels: 3 });

const served = await loadServingModel(dicPath, "js");
const hostVAE = await createHostHandler({ model: served, secret: SECRET, vae: vaePath });
const hostTiled = await createHostHandler({ model: served, secret: SECRET, vae: vaePath, vaeMemoryBudget: 2e6 });
const hostBare = await createHostHandler({ model: served, secret: SECRET });

/** Serves `handlers` on 127.0.0.1 (node:http through the SDK's adapter), runs `body`, closes them. */
async function withHosts(handlers: Handler[], body: (urls: string[]) => Promise<void>): Promise<void> {
  const http = await import("node:http");
  const servers = handlers.map((h) => http.createServer(toNodeListener(h)));
  try {
    const urls = await Promise.all(servers.map((s) => new Promise<string>((r) => s.listen(0, "127.0.0.1", () => r(`http://127.0.0.1:${(s.address() as { port: number }).port}`)))));
    await body(urls);
  } finally {
    for (const s of servers) {
      s.closeAllConnections?.();
      await new Promise((r) => s.close(r));
    }
  }
}

const ASK = { labels: [1, 2], steps: 3, sampler: "ddim", guidance: 1.5, seed: 5 };

/** A generation through `edge` in the frames format: the final frame (or the error frame). */
async function frames(edge: Handler, req: Record<string, unknown>): Promise<Frame> {
  const res = await edge(new Request("http://edge.test/v1/generate", { method: "POST", body: JSON.stringify(req), headers: { accept: FRAMES_MEDIA_TYPE } }));
  assert.equal(res.status, 200);
  const reader = new FrameReader(res.body!, 1 << 26);
  for (let f = await reader.next(); f; f = await reader.next()) if (f.type !== "preview") return f;
  throw new Error("edge stream ended without a final frame");
}

function sameBits(a: HostTensor, b: HostTensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, what);
  const bad = a.data.findIndex((v, i) => !Object.is(v, b.data[i]));
  assert.equal(bad, -1, `${what}: differs at ${bad} (${a.data[bad]} vs ${b.data[bad]}), relL2 ${relL2(a.data, b.data)}`);
}

test(`protocol vae cut [${runtimeName}]: a latent model's host with a VAE gives generate()'s pixels bit for bit`, async () => {
  await withHosts([hostVAE, hostTiled], async ([url, tiledUrl]) => {
    const edge = await createEdgeHandler({ model: served, upstreams: [url], secret: SECRET });
    const t0 = performance.now();
    const fin = await frames(edge, { ...ASK, cut: "vae" });
    const ms = performance.now() - t0;
    assert.equal(fin.type, "final", JSON.stringify(fin));
    if (fin.type !== "final") return;
    assert.equal(fin.x, null);
    assert.deepEqual(fin.pixel_range, [-1, 1]);
    const image = decodeTensor(fin.image!, [2, 3, 8 * S, 8 * S], "final.image");

    const vae = await loadVAE(vaePath, { backend: "js" });
    const api = await generate({ model: served.model, vae, labels: [1, 2], steps: 3, sampler: "ddim", cfgScale: 1.5, seed: 5 });
    sameBits(image, (await vae.decode(api.latents)).image, "vae cut image vs generate's decode");
    const rgba = toRGBA(image, [-1, 1]);
    rgba.forEach((img, i) => assert.deepEqual(img.data, api.images[i].data, `picture ${i}`));
    const levels = new Set<number>();
    for (let i = 0; i < rgba[0].data.length; i += 4) levels.add(rgba[0].data[i]);
    assert.ok(levels.size > 16, `the decoded picture is not flat (${levels.size} red levels)`);

    // JSON: a PNG of generate's picture (label 1 alone: the same first row); PNG: the picture.
    const res = await edge(new Request(`http://edge.test/v1/generate?label=1&steps=3&sampler=ddim&guidance=1.5&seed=5&cut=vae`));
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l));
    const result = lines[lines.length - 1];
    assert.equal(result.type, "result", JSON.stringify(result));
    assert.equal(result.images[0].png_base64, btoa(String.fromCharCode(...await encodePNG(api.images[0]))));
    const png = await edge(new Request(`http://edge.test/v1/generate?label=1&steps=3&seed=5&cut=vae&format=png`));
    assert.equal(png.status, 200);
    assert.equal(png.headers.get("content-type"), "image/png");
    const dv = new DataView(await png.arrayBuffer());
    assert.deepEqual([dv.getUint32(16), dv.getUint32(20)], [8 * S, 8 * S]);

    // vaeMemoryBudget reaches the decode: tiled, so close to the whole decode but not the same bits.
    const tiledEdge = await createEdgeHandler({ model: served, upstreams: [tiledUrl], secret: SECRET });
    const tiled = await frames(tiledEdge, { ...ASK, cut: "vae" });
    if (tiled.type !== "final") throw new Error(JSON.stringify(tiled));
    const timg = decodeTensor(tiled.image!, [2, 3, 8 * S, 8 * S], "final.image");
    const err = relL2(timg.data, image.data);
    assert.ok(err > 0 && err < 0.5, `tiled decode relL2 ${err}`);
    console.log(`protocol vae cut [${runtimeName}]: 2 x ${8 * S}x${8 * S} through edge -> host in ${ms.toFixed(0)} ms; tiled (2 MB budget) relL2 ${err.toFixed(3)}`);
    vae.dispose();
  });
});

test(`protocol vae cut [${runtimeName}]: a latent model's host without a VAE answers unsupported_cut`, async () => {
  await withHosts([hostBare], async ([url]) => {
    const info = await (await hostBare(new Request("http://host.test/v1/info"))).json();
    assert.deepEqual(info.cuts, ["unet", "handoff"]);
    assert.deepEqual((await (await hostVAE(new Request("http://host.test/v1/info"))).json()).cuts, ["unet", "handoff", "vae"]);
    const edge = await createEdgeHandler({ model: served, upstreams: [url], secret: SECRET });
    const fin = await frames(edge, { ...ASK, cut: "vae" });
    assert.equal(fin.type, "error");
    if (fin.type !== "error") return;
    assert.equal(fin.code, "unsupported_cut");
    assert.match(fin.message, /no VAE decoder/);
    const png = await edge(new Request(`http://edge.test/v1/generate?label=1&steps=2&seed=5&cut=vae&format=png`));
    assert.equal(png.status, 400);
    assert.equal((await png.json()).code, "unsupported_cut");
  });
});

test(`protocol vae cut [${runtimeName}]: decoded images above the host's frame limit are refused as too_large, not retried`, async () => {
  const small = await createHostHandler({ model: served, secret: SECRET, vae: vaePath, maxFrameBytes: 100_000 });
  const log: string[] = [];
  await withHosts([small], async ([url]) => {
    const edge = await createEdgeHandler({ model: served, upstreams: [url], secret: SECRET, log: (l) => log.push(l) });
    const fin = await frames(edge, { ...ASK, cut: "vae" });
    if (fin.type !== "error") throw new Error(JSON.stringify(fin));
    assert.equal(fin.code, "too_large");
    assert.match(fin.message, /decoded images \[2, 3, 128, 128\] make a frame of \d+ bytes, above the limit of 100000; ask for fewer labels or dtype f16/);
    assert.ok(!log.some((l) => /attempt/.test(l)), log.join("\n"));
  });
});

test(`protocol vae cut [${runtimeName}]: unet and handoff of a latent model end in latents (frames) or a 422 (PNG, JSON)`, async () => {
  await withHosts([hostBare], async ([url]) => {
    const edge = await createEdgeHandler({ model: served, upstreams: [url], secret: SECRET });
    const api = await generate({ model: served.model, labels: [1, 2], steps: 3, sampler: "ddim", cfgScale: 1.5, seed: 5 });
    for (const cut of ["unet", "handoff"]) {
      const fin = await frames(edge, { ...ASK, cut });
      if (fin.type !== "final") throw new Error(`${cut}: ${JSON.stringify(fin)}`);
      assert.equal(fin.image, null);
      assert.equal(fin.pixel_range, null);
      sameBits(decodeTensor(fin.x!, [2, 4, S, S], "final.x"), api.latents, `${cut} latents`);
      for (const format of ["png", "json"]) {
        const res = await edge(new Request(`http://edge.test/v1/generate?label=1&steps=2&seed=5&cut=${cut}&format=${format}`));
        assert.equal(res.status, 422, `${cut} ${format}`);
        assert.match((await res.json()).message, new RegExp(`latent model .*cut=${cut} ends in latents.*use cut=vae`));
      }
    }
  });
});

test(`protocol vae cut [${runtimeName}]: a VAE that does not fit the model is refused when the host is made`, async () => {
  await assert.rejects(createHostHandler({ model: served, secret: SECRET, vae: vae3Path }), /vae-3ch\.safetensors decodes 3-channel latents, but the served model makes 4-channel samples/);
  await assert.rejects(createHostHandler({ model: served, secret: SECRET, vae: vaePath, vaeMemoryBudget: -1 }), /vaeMemoryBudget must be a number of bytes > 0/);
  const pixelModel = await loadServingModel(modelPath, "js");
  await assert.rejects(createHostHandler({ model: pixelModel, secret: SECRET, vae: vaePath }), /pixel-space model .*takes no vae/);
  // dic serve refuses the same before listening, with one line.
  const { runCli } = await import("../sdk/cli.ts");
  const secretFile = join(dir, "secret");
  writeFileSync(secretFile, SECRET);
  const host = ["serve", "--role", "host", "--port", "0", "--secret-file", secretFile, "--backend", "js"];
  const cases: [string[], RegExp][] = [
    [[...host, "--model", dicPath, "--vae", vae3Path], /decodes 3-channel latents, but the served model makes 4-channel/],
    [[...host, "--model", dicPath, "--vae", vaePath, "--vae-memory", "0"], /--vae-memory: expected a number of megabytes > 0/],
    [[...host, "--model", dicPath, "--vae-memory", "50"], /--vae-memory needs --vae/],
    [[...host, "--vae", vaePath], /the embedded model is a pixel-space model, it takes no VAE/],
    [["serve", "--role", "edge", "--port", "0", "--secret-file", secretFile, "--upstream", "http://127.0.0.1:1", "--vae", vaePath], /--vae and --vae-memory are for --role host/],
  ];
  for (const [args, re] of cases) {
    const err: string[] = [];
    const code = await runCli(args, { out: () => {}, err: (l) => err.push(l) });
    assert.equal(code, 1, args.join(" "));
    assert.equal(err.length, 1, `${args.join(" ")}: ${JSON.stringify(err)}`);
    assert.match(err[0], re);
  }
});
