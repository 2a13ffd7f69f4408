// A tiny static file server for the browser demo and examples/browser.html (and the browser tests). It
// serves the repository root with the cross-origin isolation headers (COOP/COEP), so SharedArrayBuffer is
// available to pages, as wasm threads need.
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
 * Serves `root` on `port` (0: any free port). Resolves with { url, close() }. Only files under `root`
 * are served; folders answer their index.html.
 */
export function startStaticServer(root = fileURLToPath(new URL("../", import.meta.url)), port = 0) {
  const server = createServer(async (req, res) => {
    const headers = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp", "cache-control": "no-store" };
    try {
      const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
      let file = normalize(join(root, path));
      if (!file.startsWith(normalize(root))) throw Object.assign(new Error("outside root"), { code: "ENOENT" });
      if ((await stat(file)).isDirectory()) file = join(file, "index.html");
      const body = await readFile(file);
      res.writeHead(200, { ...headers, "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": body.length });
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
      resolve({ url, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }) });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { url } = await startStaticServer(undefined, Number(process.argv[2] ?? 8080));
  console.log(`serving the repository at ${url} — demo: ${url}demo/  example page: ${url}examples/browser.html`);
}
