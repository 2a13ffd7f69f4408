// Page-side half of the browser range test (tests/browser.test.ts): loads the edge part of the default
// model's unet cut by HTTP Range twice into a Cache API store (the second from the cache), and a full
// model from bytes, and reports what each load read and whether the cut equals the whole model.
import { loadModel } from "../../bundles/dic-sdk.browser.js";

const url = new URL("/models/dic-fashion.safetensors", location.href).href;

export async function edgeTwice(store) {
  await caches.delete(store);
  const first = await loadModel(url, { backend: "js", part: "encode", download: { cache: store } });
  const second = await loadModel(url, { backend: "js", part: "encode", download: { cache: store } });
  const host = await loadModel(url, { backend: "js", part: "decode", download: { cache: false } });
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const whole = await loadModel(bytes, { backend: "js" });
  const x = { shape: [1, 1, 28, 28], data: Float32Array.from({ length: 784 }, (_, i) => Math.cos(i * 0.21)) };
  const want = await whole.forward(x, [300], [4]);
  const xe = second.backend.upload(x);
  const enc = second.graph.encode(xe, [300], [4]);
  const wire = await Promise.all([enc.bottleneck, ...enc.skips].map((t) => second.backend.download(t)));
  const [bottleneck, ...skips] = wire.map((w) => host.backend.upload(w));
  const got = await host.backend.download(host.graph.decode({ bottleneck, skips }, [300], [4]));
  await caches.delete(store);
  return {
    fileSize: bytes.length, first: first.loadInfo, second: second.loadInfo, host: host.loadInfo,
    same: got.data.length === want.data.length && got.data.every((v, i) => Object.is(v, want.data[i])),
  };
}
