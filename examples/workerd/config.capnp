# Serves the example edge worker in workerd, Cloudflare Workers' runtime, with its wasm kernels as
# compiled modules (workerd, like Cloudflare, refuses to compile WebAssembly from bytes):
#
#   npm run build && npx workerd serve examples/workerd/config.capnp
#   curl -o sneaker.png 'http://127.0.0.1:8787/generate?label=sneaker&seed=1'
#
# `npm run build` writes bundles/workerd/ (bundle/build.mjs): the worker built against the `workerd`
# entry of the SDK, and the .wasm modules it imports. `--socket-addr http=HOST:PORT` moves the socket.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .edgeWorker)],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);

const edgeWorker :Workerd.Worker = (
  modules = [
    (name = "edge-worker.js", esModule = embed "../../bundles/workerd/edge-worker.js"),
    (name = "dic-simd.wasm", wasm = embed "../../bundles/workerd/dic-simd.wasm"),
    (name = "dic-relaxed-simd.wasm", wasm = embed "../../bundles/workerd/dic-relaxed-simd.wasm"),
  ],
  compatibilityDate = "2026-11-01",
);
