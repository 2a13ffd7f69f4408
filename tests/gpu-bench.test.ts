// bench/gpu must not rot: its --dry mode (tiny model, software adapter) runs end to end under Deno,
// validates against wasm and prints its tables. Node and Bun have no WebGPU adapter without the
// optional `webgpu` package, so the run is Deno's (CI installs Mesa's lavapipe for it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { runtimeCommand, runtimeName, test } from "./harness.ts";

if (runtimeName !== "deno") {
  console.log(`gpu-bench [${runtimeName}]: not run: bench/gpu --dry runs under Deno (navigator.gpu on lavapipe in CI)`);
} else {
  test("bench/gpu --dry validates, times and prints its tables (and JSON)", () => {
    const { exe, args } = runtimeCommand("bench/gpu.bench.ts");
    const r = spawnSync(exe, [...args, "--dry", "--json"], { encoding: "utf8", env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? "/tmp" } });
    assert.equal(r.status, 0, r.stderr);
    const out = r.stdout;
    console.log(out.split("\n").filter((l) => !l.startsWith("{")).join("\n"));
    assert.match(out, /validation: dry f32: relative L2 vs wasm \S+ \(<= 0.0001\)/);
    assert.match(out, /\| model \| precision \| batch \| ms \| images\/s \|/);
    assert.match(out, /\| dry \| f32 \| 1 \| [\d.]+ \| [\d.]+ \|/);
    assert.match(out, /\| dry \| f32 \| 2 \| [\d.]+ \| [\d.]+ \|/);
    assert.match(out, /CPU vs GPU/);
    assert.match(out, /per-kernel GPU time/);
    const json = JSON.parse(out.trim().split("\n").pop()!);
    assert.equal(json.bench, "gpu");
    assert.ok(json.rows.length >= 2 && json.rows.every((row: { imgPerS: number }) => row.imgPerS > 0));
  });
}
