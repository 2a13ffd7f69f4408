// A tiny static file server for the browser demo and examples/browser.html (and the browser tests). It
// serves the repository root with the cross-origin isolation headers (COOP/COEP), so SharedArrayBuffer is
// available to pages, as wasm threads need. Single HTTP Range requests are answered with 206, so pages
// can load weights tensor by tensor; `served` counts the body bytes sent per path (for tests).
//   npm run build && node demo/serve.mjs [PORT]     then open http://localhost:8080/demo/
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8", ".json": "application/json", ".png": "image/png", ".wasm": "application/wasm",
  ".wgsl": "text/plain; charset=utf-8", ".safetensors": "application/octet-stream", ".md": "text/plain; charset=utf-8",
};

/**
 * Serves `root` on `port` (0: any free port). Resolves with { url, close(), served }. Only files under
 * `root` are served; folders answer their index.html; `Range: bytes=a-b` (one range) answers 206.
 */
export function startStaticServer(root = fileURLToPath(new URL("../", import.meta.url)), port = 0) {
  const served = new Map();
  const server = createServer(async (req, res) => {
    const headers = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp", "cache-control": "no-store" };
    try {
      const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
      let file = normalize(join(root, path));
      if (!file.startsWith(normalize(root))) throw Object.assign(new Error("outside root"), { code: "ENOENT" });
      if ((await stat(file)).isDirectory()) file = join(file, "index.html");
      const whole = await readFile(file);
      const type = TYPES[extname(file)] ?? "application/octet-stream";
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      let status = 200, body = whole, range = {};
      if (m) {
        const a = Number(m[1]), b = m[2] === "" ? whole.length - 1 : Math.min(Number(m[2]), whole.length - 1);
        if (a >= whole.length || b < a) {
          res.writeHead(416, { ...headers, "content-range": `bytes */${whole.length}` });
          return res.end();
        }
        status = 206;
        body = whole.subarray(a, b + 1);
        range = { "content-range": `bytes ${a}-${b}/${whole.length}` };
      }
      served.set(path, (served.get(path) ?? 0) + body.length);
      res.writeHead(status, { ...headers, "content-type": type, "content-length": body.length, "accept-ranges": "bytes", ...range });
      res.end(body);
    } catch (e) {
      res.writeHead(e.code === "ENOENT" || e.code === "ENOTDIR" ? 404 : 500, { ...headers, "content-type": "text/plain" });
      res.end(`${e.code ?? "error"}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const url = `http://127.0.0.1:${server.address().port}/`;
      resolve({ url, served, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }) });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { url } = await startStaticServer(undefined, Number(process.argv[2] ?? 8080));
  console.log(`serving the repository at ${url} — demo: ${url}demo/  example page: ${url}examples/browser.html`);
}
