// The webgpu backend under Node and Bun through the `webgpu` npm package (Dawn). Dawn refuses Mesa's
// lavapipe, so the child processes point Vulkan at the SwiftShader driver that Debian's chromium ships
// (../shared/PLATFORM.md; .ci/setup installs chromium). Registered only under vitest: it starts both the
// Node and the Bun child itself, and Deno reaches WebGPU through navigator.gpu instead (tests/webgpu.test.ts).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { FAST_F32_VS_JS } from "./tolerances.ts";
import { runtimeName, test } from "./harness.ts";

const root = new URL("../", import.meta.url).pathname;
const icd = "/usr/lib/chromium/vk_swiftshader_icd.json";

if (runtimeName === "node") {
  for (const [name, exe] of [["node", process.execPath], ["bun", `${root}node_modules/.bin/bun`]] as const) {
    test(`webgpu [${name}]: the webgpu npm package on SwiftShader matches js (fused conv3x3) and PyTorch (tiny forward)`, () => {
      assert.ok(existsSync(icd), `${icd} missing: install Debian chromium (.ci/setup does)`);
      const r = spawnSync(exe, [`${root}tests/webgpu-npm-check.mjs`], {
        encoding: "utf8", timeout: 300_000,
        env: { ...process.env, VK_ICD_FILENAMES: icd, LD_LIBRARY_PATH: "/usr/lib/chromium", XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? "/tmp" },
      });
      assert.equal(r.status, 0, `${name} exited ${r.status}: ${r.stderr}`);
      const line = r.stdout.trim().split("\n").pop()!;
      const got = JSON.parse(line) as { available: boolean; description: string; convErr: number; forwardErr: number };
      console.log(`webgpu [${name}] via the webgpu package: conv3x3 vs js ${got.convErr.toExponential(2)}, tiny forward vs PyTorch ${got.forwardErr.toExponential(2)} — ${got.description}`);
      assert.ok(got.available, "listBackends() reports webgpu unavailable");
      assert.match(got.description, /SwiftShader/i);
      assert.ok(got.convErr <= FAST_F32_VS_JS, `conv3x3 ${got.convErr}`);
      assert.ok(got.forwardErr <= FAST_F32_VS_JS, `forward ${got.forwardErr}`);
    });
  }
}
