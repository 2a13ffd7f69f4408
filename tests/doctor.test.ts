// doctor() / `dic doctor`: the report agrees with the registry and with the wasm backend's own feature
// detection, every available backend passes its parity check against js, and the CLI prints it (text and
// JSON) with status 0.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { listBackends } from "../src/backend/registry.ts";
import { probeWasm, relaxedSimdSupported } from "../src/backend/wasm/index.ts";
import { runCli } from "../sdk/cli.ts";
import { doctor, DOCTOR_PARITY_TOLERANCE, formatDoctorReport } from "../sdk/doctor.ts";
import { runtimeCommand, runtimeName, test } from "./harness.ts";

test("doctor: runtime, capabilities, backends, auto and parity agree with the registry", async () => {
  const r = await doctor();
  assert.equal(r.runtime.name, runtimeName);
  assert.deepEqual(r.backends, await listBackends());
  const available: string[] = r.backends.filter((b) => b.available).map((b) => b.name);
  assert.ok(available.includes("js"));
  // The hand-assembled probes agree with validating the real kernel builds.
  assert.equal(r.capabilities.simd, probeWasm() === null);
  assert.equal(r.capabilities.relaxedSimd, relaxedSimdSupported());
  // Engines as we ship for them: V8 in Node 20 rejects relaxed SIMD without a flag; Deno and Bun accept it.
  assert.equal(r.capabilities.relaxedSimd, runtimeName !== "node");
  assert.equal(r.capabilities.sharedArrayBuffer, true);
  assert.equal(r.capabilities.crossOriginIsolated, null, "servers have no cross-origin isolation notion");
  assert.ok(r.auto.name !== null && available.includes(r.auto.name), r.auto.reason);
  // One parity check per available backend, each within tolerance, js against itself exactly.
  assert.deepEqual(r.parity.map((p) => p.backend), available);
  for (const p of r.parity) {
    assert.ok(p.ok && p.relL2 !== null && p.relL2 <= DOCTOR_PARITY_TOLERANCE, `${p.backend}: ${p.relL2} ${p.error ?? ""}`);
    assert.ok(p.description && p.description.startsWith(p.backend), p.description ?? "");
  }
  assert.equal(r.parity.find((p) => p.backend === "js")!.relL2, 0);
  assert.ok(r.ok);
  if (r.webgpu.available) {
    assert.ok((r.webgpu.limits?.maxStorageBufferBindingSize ?? 0) > 0);
    assert.equal(typeof r.webgpu.adapter?.description, "string");
  } else {
    assert.match(r.webgpu.why ?? "", /navigator\.gpu|adapter/);
  }
  const text = formatDoctorReport(r).join("\n");
  for (const b of r.backends) assert.match(text, new RegExp(`backend +${b.name} +${b.available ? "available" : "unavailable"}`));
  assert.match(text, /^auto +-> /m);
  assert.match(text, /relaxed SIMD (yes|no)/);
  // Without parity checks nothing runs on the backends.
  assert.deepEqual((await doctor({ parity: false })).parity, []);
});

test("dic doctor prints the report (text and --json) with status 0", async () => {
  const out: string[] = [], err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  assert.equal(await runCli(["doctor", "--json"], io), 0, err.join("\n"));
  const report = JSON.parse(out.join("\n"));
  assert.equal(report.runtime.name, runtimeName);
  assert.ok(report.parity.length >= 1);
  // A real process, as users run it.
  const { exe, args } = runtimeCommand("sdk/bin.ts");
  const p = spawnSync(exe, [...args, "doctor", "--no-parity"], { encoding: "utf8", timeout: 120_000 });
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stdout, new RegExp(`^runtime +${runtimeName} `, "m"));
  assert.match(p.stdout, /^backend +js +available/m);
  assert.doesNotMatch(p.stdout, /^parity/m);
});
