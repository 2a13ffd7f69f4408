// Headless Chromium (Debian `chromium`, driven by playwright-core) on pages served by demo/serve.mjs:
// the demo generates an image (screenshot: artifacts/browser-demo.png) and cancels a long run; the example
// page draws its image; every backend the page's listBackends() reports available runs a forward of the
// default model and is compared with js (webgpu on SwiftShader with --enable-unsafe-webgpu, once it is
// registered; today wasm vs js); the edge-worker bundle answers a PNG inside a Web Worker, where no
// Deno/Bun/process globals exist. Needs `npm run build` (bundles/).
//
// Runs from Node only: the runtime under test is the browser, and playwright-core drives it over Node's
// child-process pipes; Deno and Bun would launch the same Chromium to test the same pages.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { runtimeName, test } from "./harness.ts";
import { repoRoot } from "./package-install.ts";
import { FAST_F32_VS_JS } from "./tolerances.ts";

const CHROMIUM = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = repoRoot + "artifacts/";

if (runtimeName === "node") {
  if (!existsSync(repoRoot + "bundles/dic-sdk.browser.js")) throw new Error("bundles/ missing: run `npm run build` first");
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: bash .ci/setup installs Debian's chromium`);
  const pw = "playwright-core";
  const { chromium } = await import(pw);
  const serveModule = "../demo/serve.mjs";
  const { startStaticServer } = await import(serveModule);
  const server = await startStaticServer(repoRoot, 0);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--enable-unsafe-webgpu", "--no-sandbox"] });
  const errors: string[] = [];
  const newPage = async (path: string) => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
    page.on("pageerror", (e: Error) => errors.push(`${path}: ${e.message}`));
    await page.goto(server.url + path);
    return page;
  };
  let remaining = 6;
  const done = async () => {
    if (--remaining === 0) {
      await browser.close();
      await server.close();
    }
  };

  test("browser demo: picks a class, steps, seed and backend, previews each step, generates; screenshot saved", async () => {
    const page = await newPage("demo/");
    try {
      await page.waitForFunction(() => document.body.dataset.state !== "loading", null, { timeout: 120_000 });
      assert.equal(await page.evaluate(() => document.body.dataset.state), "ready", await page.textContent("#status"));
      // Backend choice: WebGPU when the page has it, else wasm.
      const choice = await page.evaluate(() => ({
        selected: (document.getElementById("backend") as HTMLSelectElement).value,
        options: [...(document.getElementById("backend") as HTMLSelectElement).options].map((o) => ({ v: o.value, disabled: o.disabled })),
      }));
      const usable = choice.options.filter((o: { disabled: boolean }) => !o.disabled).map((o: { v: string }) => o.v);
      assert.equal(choice.selected, usable.includes("webgpu") ? "webgpu" : "wasm");
      assert.equal(await page.evaluate(() => (document.getElementById("label") as HTMLSelectElement).options.length), 10);
      await page.selectOption("#label", { label: "Bag" });
      await page.fill("#steps", "12");
      await page.fill("#seed", "5");
      await page.click("#generate");
      await page.waitForFunction(() => ["done", "error"].includes(document.body.dataset.state!), null, { timeout: 300_000 });
      assert.equal(await page.evaluate(() => document.body.dataset.state), "done", await page.textContent("#status"));
      assert.match((await page.textContent("#status")) ?? "", /^Bag: \w+ 12 steps, seed 5/);
      assert.equal(await page.textContent("#step"), "step 12 / 12");
      const shown = await page.evaluate(() => {
        const img = document.getElementById("result") as HTMLImageElement;
        const c = document.getElementById("preview") as HTMLCanvasElement;
        const px = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
        const grays = new Set<number>();
        for (let i = 0; i < px.length; i += 4) grays.add(px[i]);
        return { w: img.naturalWidth, h: img.naturalHeight, previewLevels: grays.size };
      });
      assert.deepEqual([shown.w, shown.h], [28, 28]);
      assert.ok(shown.previewLevels > 10, `preview has only ${shown.previewLevels} gray levels`);
      await page.waitForFunction(() => document.getElementById("doctor")!.textContent!.includes("auto"), null, { timeout: 60_000 });
      await page.evaluate(() => ((document.getElementById("doctor-box") as HTMLDetailsElement).open = true));
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: ARTIFACTS + "browser-demo.png", fullPage: true });
      console.log(`screenshot: ${ARTIFACTS}browser-demo.png (${await page.textContent("#status")})`);
      // Cancel: a long run stops between steps.
      await page.fill("#steps", "200");
      await page.click("#generate");
      await page.waitForFunction(() => /^step ([3-9]|\d\d+) \//.test(document.getElementById("step")!.textContent!), null, { timeout: 120_000 });
      await page.click("#cancel");
      await page.waitForFunction(() => document.body.dataset.state !== "running", null, { timeout: 60_000 });
      assert.equal(await page.evaluate(() => document.body.dataset.state), "cancelled");
      const step = Number(/step (\d+)/.exec((await page.textContent("#step")) ?? "")![1]);
      assert.ok(step < 200, `cancel stopped at step ${step}`);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
      await done();
    }
  });

  test("browser: every available backend's forward matches js; doctor sees WebGPU on SwiftShader", async () => {
    const page = await newPage("demo/");
    try {
      // A string, not a function: the test runner would rewrite a function's import() for its own loader.
      const r = await page.evaluate(`import("/tests/browser/forward-parity.js").then((m) => m.forwardOnEveryBackend())`);
      const unavailable = r.backends.filter((b: { available: boolean }) => !b.available).map((b: { name: string; why: string }) => `${b.name}: ${b.why}`);
      console.log(`browser backends compared with js: ${r.results.map((x: { backend: string }) => x.backend).join(", ")}; not available: ${unavailable.join("; ") || "none"}`);
      const ref = r.results.find((x: { backend: string }) => x.backend === "js");
      assert.ok(ref?.out, "js must run in the browser");
      assert.ok(r.results.length >= 2, "at least one fast backend (wasm) next to js");
      const table: Record<string, number> = {};
      for (const res of r.results) {
        assert.ok(res.out, `${res.backend} failed in the browser: ${res.error}`);
        let num = 0, den = 0;
        for (let i = 0; i < ref.out.length; i++) { num += (res.out[i] - ref.out[i]) ** 2; den += ref.out[i] ** 2; }
        table[res.backend] = Math.sqrt(num / den);
        assert.ok(table[res.backend] <= FAST_F32_VS_JS, `${res.backend} vs js: ${table[res.backend]}`);
      }
      mkdirSync(ARTIFACTS, { recursive: true });
      writeFileSync(ARTIFACTS + "browser-parity.json", JSON.stringify({ relL2VsJs: table, unavailable, webgpu: r.webgpu }, null, 2));
      // --enable-unsafe-webgpu gives Chromium a SwiftShader adapter (PLATFORM.md); the doctor must report it.
      assert.ok(r.webgpu.available, `no WebGPU adapter in Chromium: ${r.webgpu.why}`);
      assert.ok((r.webgpu.limits.maxStorageBufferBindingSize ?? 0) > 0);
      assert.equal(r.isolated, true, "demo/serve.mjs sends COOP/COEP");
    } finally {
      await page.close();
      await done();
    }
  });

  test("browser: weights by URL are cached in the Cache API, and a full storage quota gives a clear error", async () => {
    const page = await newPage("demo/");
    try {
      const mod = `import("/tests/browser/weights-cache.js")`;
      const r = await page.evaluate(`${mod}.then((m) => m.cacheTwice("dic-test-weights"))`);
      assert.ok(r.same && r.bytes > 1e6, JSON.stringify(r));
      assert.equal(r.fromCache, true);
      assert.equal(r.cachedBytes, r.bytes);
      assert.ok(r.progressCalls >= 1 && r.lastProgress.loaded === r.bytes && r.lastProgress.total === r.bytes, JSON.stringify(r.lastProgress));
      // Shrink this origin's storage quota (DevTools protocol) below the file's size: caching must fail clearly.
      const cdp = await page.context().newCDPSession(page);
      const origin = new URL(server.url).origin;
      await page.evaluate(`caches.delete("dic-test-weights")`);
      await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: 256 * 1024 });
      const full = await page.evaluate(`${mod}.then((m) => m.downloadIntoFullStorage("dic-test-full"))`);
      await cdp.send("Storage.overrideQuotaForOrigin", { origin });
      assert.ok(full.error, "caching 1.9 MB under a 256 KiB quota should fail");
      assert.equal(full.error.code, "storage_full", full.error.message);
      assert.match(full.error.message, /storage is full: cannot cache 1\.9 MB of weights in dic-test-full .*cache: false/);
    } finally {
      await page.close();
      await done();
    }
  });

  test("browser: the edge part of the unet cut loads by HTTP Range, ranges cached in the Cache API; the cut equals the whole model", async () => {
    const page = await newPage("README.md"); // a page that loads no model itself: the server's counts are this test's
    try {
      const path = "/models/dic-fashion.safetensors";
      const before = server.served.get(path) ?? 0;
      const r = await page.evaluate(`import("/tests/browser/weights-ranges.js").then((m) => m.edgeTwice("dic-test-ranges"))`);
      assert.equal(r.first.mode, "ranges", JSON.stringify(r.first));
      assert.ok(r.first.bytesRead < 0.7 * r.fileSize && r.first.requests >= 2, JSON.stringify(r.first));
      assert.equal(r.second.requests, 0, JSON.stringify(r.second));
      assert.equal(r.second.bytesFromCache, r.first.bytesRead);
      assert.ok(r.host.bytesRead < 0.5 * r.fileSize, JSON.stringify(r.host));
      // The server sent the edge's ranges once, the host's, and the whole file once (the page's reference copy).
      assert.equal((server.served.get(path) ?? 0) - before, r.first.bytesRead + r.host.bytesRead + r.fileSize);
      assert.ok(r.same, "encode (by Range) + decode equals the whole model's forward bit for bit");
    } finally {
      await page.close();
      await done();
    }
  });

  test("examples/browser.html draws a sneaker", async () => {
    const page = await newPage("examples/browser.html");
    try {
      // The page sets done when it hands the PNG to the <img>; the image decodes after that (complete: loaded or broken).
      await page.waitForFunction(() => document.body.dataset.done === "1" && (document.getElementById("out") as HTMLImageElement).complete, null, { timeout: 120_000 });
      assert.deepEqual(await page.evaluate(() => [(document.getElementById("out") as HTMLImageElement).naturalWidth, document.getElementById("info")!.textContent]),
        [28, "Sneaker on wasm"]);
    } finally {
      await page.close();
      await done();
    }
  });

  test("edge-worker bundle answers a PNG inside a Web Worker (no Deno, Bun or process globals)", async () => {
    const page = await newPage("demo/");
    try {
      const r = await page.evaluate(async () => {
        const src = `
          const globals = ["Deno", "Bun", "process", "require"].filter((g) => typeof globalThis[g] !== "undefined");
          const { default: worker } = await import("${location.origin}/bundles/edge-worker.js");
          const res = await worker.fetch(new Request("https://edge.example/generate?label=trouser&seed=4&steps=3"));
          const bytes = new Uint8Array(await res.arrayBuffer());
          postMessage({ globals, status: res.status, type: res.headers.get("content-type"), head: Array.from(bytes.slice(0, 24)) });`;
        const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), { type: "module" });
        return await new Promise((resolve, reject) => {
          w.onmessage = (e) => resolve(e.data);
          w.onerror = (e) => reject(new Error(e.message));
        });
      }) as { globals: string[]; status: number; type: string; head: number[] };
      assert.deepEqual(r.globals, []);
      assert.equal(r.status, 200);
      assert.equal(r.type, "image/png");
      assert.deepEqual(r.head.slice(0, 8), [137, 80, 78, 71, 13, 10, 26, 10]);
      const dv = new DataView(new Uint8Array(r.head).buffer);
      assert.deepEqual([dv.getUint32(16), dv.getUint32(20)], [28, 28]);
    } finally {
      await page.close();
      await done();
    }
  });
}
