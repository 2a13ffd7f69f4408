// The `dic` CLI: forward round trip, and every malformed-weights case ends with status 1 and a
// one-line error that names the problem (run in-process, plus one real process per runtime).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../sdk/cli.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, runtimeCommand, test } from "./harness.ts";
import { JS_VS_TORCH_FORWARD } from "./tolerances.ts";

const dir = mkdtempSync(join(tmpdir(), "dic-cli-"));
const weights = `${fixturesDir}forward_tiny_weights.safetensors`;
const inputs = `${fixturesDir}forward_tiny_inputs.safetensors`;

async function run(args: string[]): Promise<{ code: number; err: string[]; out: string[] }> {
  const err: string[] = [], out: string[] = [];
  const code = await runCli(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, err, out };
}

/** Splits a safetensors file into its JSON header and data so cases can be rewritten. */
function parts(path: string): { header: Record<string, any>; data: Uint8Array } {
  const bytes = new Uint8Array(readFileSync(path));
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))), data: bytes.subarray(8 + n) };
}

function assemble(header: unknown, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

test("dic forward writes the reference output", async () => {
  const out = join(dir, "out.safetensors");
  const r = await run(["forward", "--model", weights, "--inputs", inputs, "--out", out, "--backend", "js"]);
  assert.equal(r.code, 0, r.err.join("\n"));
  const got = (await readSafetensorsFile(out)).getF32("out");
  const want = (await readSafetensorsFile(`${fixturesDir}forward_tiny_out.safetensors`)).getF32("out");
  assert.ok(relL2(got, want) <= JS_VS_TORCH_FORWARD);
});

type Case = [label: string, make: () => Uint8Array, expect: RegExp];
const cases: Case[] = [
  ["truncated file", () => new Uint8Array([1, 2, 3]), /truncated/],
  ["header length beyond the file", () => { const p = parts(weights); return assemble(p.header, p.data, 5_000_000n); }, /header_out_of_range/],
  ["an absurd header length", () => { const p = parts(weights); return assemble(p.header, p.data, 1n << 40n); }, /header_too_large/],
  ["invalid JSON header", () => assemble("{not json", new Uint8Array(16)), /bad_header/],
  ["overlapping offsets", () => {
    const p = parts(weights);
    const names = Object.keys(p.header).filter((k) => k !== "__metadata__" && p.header[k].dtype === "F32");
    const a = p.header[names[0]], b = p.header[names[1]];
    const len = b.data_offsets[1] - b.data_offsets[0];
    b.data_offsets = [a.data_offsets[0], a.data_offsets[0] + len];
    return assemble(p.header, p.data);
  }, /overlapping_tensors/],
  ["out-of-range offsets", () => {
    const p = parts(weights);
    const k = Object.keys(p.header).find((k) => k !== "__metadata__")!;
    p.header[k].data_offsets = [p.data.length - 4, p.data.length + 1000];
    p.header[k].shape = [(1004) / 4];
    return assemble(p.header, p.data);
  }, /offsets_out_of_range/],
  ["a 100 GB tensor claim", () => {
    const p = parts(weights);
    p.header["x_embedder.proj.weight"] = { dtype: "F32", shape: [25_000_000_000], data_offsets: [0, 100_000_000_000] };
    return assemble(p.header, p.data);
  }, /x_embedder\.proj\.weight.*100000000000.*offsets_out_of_range/],
  ["unknown dtype", () => { const p = parts(weights); p.header["output.bias"].dtype = "F8_E9M9"; return assemble(p.header, p.data); }, /unknown_dtype/],
  ["a missing tensor", () => { const p = parts(weights); delete p.header["output.bias"]; return assemble(p.header, p.data); }, /output\.bias.*missing_tensors/],
  ["a wrong shape for the configuration", () => {
    const p = parts(weights);
    const meta = JSON.parse(p.header.__metadata__.config);
    p.header.__metadata__.config = JSON.stringify({ ...meta, hidden_size: 16 });
    return assemble(p.header, p.data);
  }, /shape_mismatch/],
  ["bad config metadata", () => { const p = parts(weights); p.header.__metadata__.config = "{oops"; return assemble(p.header, p.data); }, /bad_metadata/],
];

for (const [label, make, expect] of cases) {
  test(`dic forward rejects ${label} with a one-line error`, async () => {
    const path = join(dir, `bad-${label.replaceAll(" ", "-")}.safetensors`);
    writeFileSync(path, make());
    const t0 = performance.now();
    const r = await run(["forward", "--model", path, "--inputs", inputs, "--out", join(dir, "never.safetensors")]);
    assert.equal(r.code, 1);
    assert.equal(r.err.length, 1, `expected one line, got ${JSON.stringify(r.err)}`);
    assert.match(r.err[0], /^dic: error: /);
    assert.ok(r.err[0].includes(path), `error should name the file: ${r.err[0]}`);
    assert.match(r.err[0], expect);
    if (process.env.DIC_SHOW_ERRORS) console.log(r.err[0]);
    assert.ok(performance.now() - t0 < 10_000, "a malformed file must fail fast");
  });
}

test("an unexpected tensor is reported by name", async () => {
  const p = parts(weights);
  const data = new Uint8Array(p.data.length + 4);
  data.set(p.data);
  p.header["extra.weight"] = { dtype: "F32", shape: [1], data_offsets: [p.data.length, p.data.length + 4] };
  const path = join(dir, "extra.safetensors");
  writeFileSync(path, assemble(p.header, data));
  const r = await run(["forward", "--model", path, "--inputs", inputs, "--out", join(dir, "never.safetensors")]);
  assert.equal(r.code, 1);
  assert.match(r.err[0], /unexpected_tensors/);
  assert.match(r.err[0], /extra\.weight/);
});

test("bad flags and inputs give one-line errors", async () => {
  const bad: [string[], RegExp][] = [
    [["forward", "--model", weights, "--out", "x"], /missing --inputs/],
    [["forward", "--model", weights, "--inputs", weights, "--out", join(dir, "n.safetensors")], /no tensor "x"/],
    [["sample", "--model", weights, "--out", "x"], /missing --label/],
    [["sample", "--model", weights, "--label", "1", "--sampler", "euler", "--out", "x"], /--sampler: unknown "euler"/],
    [["sample", "--model", weights, "--label", "1", "--steps", "0", "--out", "x"], /--steps/],
    [["sample", "--model", weights, "--label", "99", "--out", join(dir, "n.safetensors")], /label 99/],
    [["forward", "--model", weights, "--config", "DiC-Q", "--inputs", inputs, "--out", "x"], /preset/],
    [["forward", "--bogus"], /bogus/],
    [["frobnicate"], /unknown command/],
  ];
  for (const [args, re] of bad) {
    const r = await run(args);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(r.err.length, 1, `${args.join(" ")}: ${JSON.stringify(r.err)}`);
    assert.match(r.err[0], re);
  }
});

test("the dic process exits 1 with one line and no stack trace", () => {
  const { exe, args } = runtimeCommand("sdk/bin.ts");
  const path = join(dir, "truncated.safetensors");
  writeFileSync(path, new Uint8Array(5));
  const r = spawnSync(exe, [...args, "forward", "--model", path, "--inputs", inputs, "--out", join(dir, "n.safetensors")], { encoding: "utf8" });
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /truncated/);
});

test("dic forward on a converted official-style checkpoint matches PyTorch", async () => {
  const out = join(dir, "converted-out.safetensors");
  const r = await run(["forward", "--model", `${fixturesDir}convert_ema_f16.safetensors`,
    "--inputs", `${fixturesDir}convert_inputs.safetensors`, "--out", out]);
  assert.equal(r.code, 0, r.err.join("\n"));
  const got = (await readSafetensorsFile(out)).getF32("out");
  const want = (await readSafetensorsFile(`${fixturesDir}convert_out.safetensors`)).getF32("out");
  assert.ok(relL2(got, want) <= JS_VS_TORCH_FORWARD, `relative L2 ${relL2(got, want)}`);
});
