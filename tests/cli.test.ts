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

test("each command has its own help from its option table, within 80 columns; --version", async () => {
  const { commandFlags } = await import("../sdk/cli.ts");
  const { BACKEND_NAMES } = await import("../src/backend/registry.ts");
  const { SAMPLER_NAMES } = await import("../src/samplers/index.ts");
  const { VERSION } = await import("../src/version.ts");
  const tables = commandFlags();
  const global = await run(["--help"]);
  assert.equal(global.code, 0);
  for (const name of Object.keys(tables)) assert.match(global.out.join("\n"), new RegExp(`^  ${name} `, "m"));
  // The lists come from the constants, not from copies in the text.
  assert.ok(global.out.join("\n").includes(BACKEND_NAMES.join(", ")));
  assert.ok(global.out.join("\n").includes(SAMPLER_NAMES.join(", ")));
  const helps = [global.out.join("\n")];
  for (const [name, flags] of Object.entries(tables)) {
    for (const args of [[name, "--help"], ["help", name], [name, "-h"]]) {
      const r = await run(args);
      assert.equal(r.code, 0, args.join(" "));
      const text = r.out.join("\n");
      assert.match(text, new RegExp(`^usage: dic ${name} `), args.join(" "));
      for (const flag of Object.keys(flags)) assert.ok(text.includes(`--${flag}`), `dic ${name} --help lists --${flag}`);
      helps.push(text);
    }
  }
  const gen = helps.find((h) => h.startsWith("usage: dic generate"))!;
  assert.ok(!gen.includes("--inputs") && !gen.includes("--role"), "generate's help holds only its own flags");
  assert.ok(gen.includes(`--backend ${BACKEND_NAMES.join("|")}`) && gen.includes(`--sampler ${SAMPLER_NAMES.join("|")}`));
  for (const h of helps) for (const line of h.split("\n")) assert.ok(line.length <= 80, `over 80 columns: ${JSON.stringify(line)}`);
  const v = await run(["--version"]);
  assert.equal(v.code, 0);
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.deepEqual(v.out, [`dic-sdk ${pkg.version}`]);
  assert.equal(VERSION, pkg.version);
  const bare = await run([]);
  assert.equal(bare.code, 1, "no command: the overview on stderr, status 1");
});

test("flags of other commands, typos, negative numbers and file errors are refused by name", async () => {
  const file = join(dir, "a-file");
  writeFileSync(file, "x");
  const bad: [string[], RegExp][] = [
    [["backends", "--label", "x", "--vae", "y"], /^dic: error: --label is not an option of dic backends \(it belongs to dic generate, dic sample; see dic backends --help\)$/],
    [["doctor", "--steps", "3"], /--steps is not an option of dic doctor/],
    [["forward", "--grid"], /--grid is not an option of dic forward \(it belongs to dic generate/],
    [["serve", "--threads", "2"], /--threads is not an option of dic serve/],
    [["generate", "--lable", "bag", "--out", "x.png"], /unknown option --lable for dic generate \(did you mean --label\?\)/],
    [["generate", "--label", "bag", "--sampler", "dim", "--out", "x.png"], /--sampler: unknown "dim" \(did you mean "ddim"\?\); valid: ddpm, ddim, dpmpp2m/],
    [["genrate", "--label", "bag"], /unknown command "genrate" \(did you mean "generate"\?\)/],
    [["generate", "--label", "bag", "--steps", "-3", "--out", "x.png"], /^dic: error: --steps: expected an integer in 1\.\.1000, got "-3"$/],
    [["generate", "--label", "bag", "--steps=-3", "--out", "x.png"], /--steps: expected an integer in 1\.\.1000, got "-3"/],
    [["generate", "--label", "bag", "--seed", "-1", "--out", "x.png"], /--seed: expected a non-negative integer, got "-1"/],
    [["generate", "--label", "bag", "--cfg", "-0.5", "--out", "x.png"], /--cfg: expected a number in \[0, 100\], got "-0.5"/],
    [["generate", "--label", "bag", "--steps", "five", "--out", "x.png"], /--steps: expected an integer in 1\.\.1000, got the string "five"|--steps: expected an integer in 1\.\.1000/],
    [["generate", "--label", "bag", "--steps", "--out", "x.png"], /--steps needs a value/],
    [["generate", "--label", "bag", "--grid=yes", "--out", "x.png"], /--grid takes no value/],
    [["generate", "--label", "bag", "--steps", "2", "--steps", "3", "--out", "x.png"], /--steps given twice/],
    [["generate", "--label", "bag", "--steps", "1", "--seed", "1", "--backend", "js", "--out", join(file, "x.png")], new RegExp(`^dic: error: --out: cannot write ${file}/x\\.png: a part of the path is not a folder$`)],
    [["forward", "--model", weights, "--inputs", join(dir, "absent.safetensors"), "--out", join(dir, "o.safetensors"), "--backend", "js"], /^dic: error: --inputs: cannot read .*absent\.safetensors: no such file or folder$/],
    [["forward", "--model", join(dir, "absent.safetensors"), "--inputs", inputs, "--out", "o.safetensors"], /^dic: error: --model: cannot read .*absent\.safetensors: no such file or folder$/],
    [["decode", "--preview", "--latents", dir, "--out", "x.png"], /^dic: error: --latents: cannot read .*: it is a folder$/],
  ];
  for (const [args, re] of bad) {
    const r = await run(args);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(r.err.length, 1, `${args.join(" ")}: ${JSON.stringify(r.err)}`);
    assert.match(r.err[0], re, args.join(" "));
  }
});

test("dic generate writes the image; --label takes a negative-looking value only as a value", async () => {
  const out = join(dir, "neg.png");
  const r = await run(["generate", "--label", "bag", "--steps", "1", "--seed", "1", "--backend", "js", "--quiet", "--out", out]);
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.deepEqual([...readFileSync(out).subarray(1, 4)], [0x50, 0x4e, 0x47]);
  const neg = await run(["generate", "--label", "-1", "--steps", "1", "--backend", "js", "--out", out]);
  assert.equal(neg.code, 1);
  assert.match(neg.err[0], /label -1 outside 0\.\.9/);
});
