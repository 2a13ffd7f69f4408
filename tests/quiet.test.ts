// Quiet by default: probing WebGPU prints nothing on any runtime — no Mesa "XDG_RUNTIME_DIR is invalid"
// lines (Deno, and the webgpu npm package's Vulkan loader), no Dawn warnings about rejected Vulkan devices
// (Node and Bun with the webgpu npm package) — while doctor says what was kept quiet.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runtimeCommand, runtimeName, test } from "./harness.ts";

/**
 * Runs dic as a new user's shell would: no XDG_RUNTIME_DIR (a container, a cron job, ssh without a
 * session) and no DIC_DEBUG. `env -u` removes them (Deno's child_process keeps the parent's variables).
 */
function dic(args: string[], extraEnv: string[] = []) {
  const { exe, args: pre } = runtimeCommand("sdk/bin.ts");
  return spawnSync("env", ["-u", "XDG_RUNTIME_DIR", "-u", "DIC_DEBUG", ...extraEnv, exe, ...pre, ...args], { encoding: "utf8", timeout: 300_000 });
}

test(`[${runtimeName}] dic backends and dic generate print nothing on stderr without XDG_RUNTIME_DIR`, () => {
  const b = dic(["backends"]);
  assert.equal(b.status, 0, b.stderr);
  assert.equal(b.stderr, "", "dic backends wrote to stderr");
  assert.match(b.stdout, /^webgpu /m);
  const out = join(mkdtempSync(join(tmpdir(), "dic-quiet-")), "bag.png");
  const g = dic(["generate", "--label", "bag", "--steps", "1", "--seed", "1", "--quiet", "--out", out]);
  assert.equal(g.status, 0, g.stderr);
  assert.equal(g.stderr, "", "dic generate --quiet wrote to stderr");
});

test(`[${runtimeName}] dic doctor reports what the WebGPU probe kept quiet`, () => {
  const r = dic(["doctor", "--json", "--no-parity"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, "");
  const report = JSON.parse(r.stdout) as { suppressed: string[] };
  assert.ok(Array.isArray(report.suppressed));
  if (process.platform === "linux") {
    assert.ok(report.suppressed.some((s) => /XDG_RUNTIME_DIR was unset/.test(s)), JSON.stringify(report.suppressed));
  }
  const text = dic(["doctor", "--no-parity"]);
  for (const s of report.suppressed) assert.ok(text.stdout.includes(`quiet     ${s.split(" | ")[0]}`), s);
});

test(`[${runtimeName}] DIC_DEBUG=1 and --verbose keep nothing back`, () => {
  for (const [args, env] of [[["doctor", "--json", "--no-parity"], ["DIC_DEBUG=1"]], [["doctor", "--json", "--no-parity", "--verbose"], []]] as const) {
    const r = dic([...args], [...env]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { suppressed: string[] }).suppressed, [], `${args.join(" ")} ${env.join(" ")}`);
  }
});
