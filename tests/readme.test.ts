// README.md as a new user follows it: every ts/js code block and every shell command runs, in the runtime
// running this file, in an empty folder. A block that cannot run here says why in a marker on the line
// before it (`<!-- doctest: skip: WHY -->`); file names that stand for the user's own weights are marked
// as placeholders (`<!-- doctest: placeholders: dic-s.safetensors=latent-dic-32 -->`) and filled with small
// generated weights of that kind. Also: `dic --help` as printed there is what the CLI prints, the names
// the snippets import exist, and the package facts are not typed by hand. Needs `npm run build`.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as sdk from "../sdk/index.ts";
import { runCli } from "../sdk/cli.ts";
import { resolveConfig } from "../src/model/config.ts";
import { randomWeights } from "../bench/lib/random-dic.ts";
import { randomVAEWeights } from "../bench/lib/random-vae.ts";
import { expectedVAEParams, resolveVAEConfig } from "../src/vae/index.ts";
import { type TensorToWrite, writeSafetensors } from "../src/weights/safetensors.ts";
import { runtimeName, test } from "./harness.ts";

const root = new URL("../", import.meta.url).pathname;
const readme = readFileSync(`${root}README.md`, "utf8");
const proc = (globalThis as unknown as { process: { execPath: string } }).process;

interface Marker {
  skip?: string;
  /** A prefix of the command that the checkout running the test has already done (npm ci && npm run build). */
  given?: string;
  placeholders: Map<string, string>;
  /** Lines starting with these are not run (the marker says why). */
  notRun: string[];
}

interface Block {
  lang: string;
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The HTML comment on the line before the fence, if any. */
  comment: string | null;
  marker: Marker | null;
}

function parseMarker(comment: string): Marker | null {
  const m = comment.match(/^<!-- doctest: (.*) -->$/);
  if (!m) return null;
  const marker: Marker = { placeholders: new Map(), notRun: [] };
  for (const part of m[1].split(";").map((p) => p.trim())) {
    const [key, ...rest] = part.split(":");
    const value = rest.join(":").trim();
    if (key === "skip") marker.skip = value;
    else if (key === "given") marker.given = value.replace(/\s*\(.*\)$/, "");
    else if (key === "not run") marker.notRun.push(value.replace(/\s*\(.*\)$/, ""));
    else if (key === "placeholders") {
      for (const p of value.split(",")) {
        const [file, kind] = p.trim().split("=");
        marker.placeholders.set(file, kind);
      }
    } else throw new Error(`README marker: unknown directive "${part}" in ${comment}`);
  }
  return marker;
}

function blocks(md: string): Block[] {
  const lines = md.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(/^```(\w*)\s*$/);
    if (!open) continue;
    const end = lines.indexOf("```", i + 1);
    assert.ok(end > i, `README.md:${i + 1}: unclosed code block`);
    const prev = i > 0 ? lines[i - 1].trim() : "";
    const comment = prev.startsWith("<!--") ? prev : null;
    out.push({ lang: open[1], code: lines.slice(i + 1, end).join("\n"), line: i + 1, comment, marker: comment ? parseMarker(comment) : null });
    i = end;
  }
  return out;
}

const all = blocks(readme);
const code = all.filter((b) => ["ts", "js", "sh"].includes(b.lang));

/** Splits one shell command line into words (single and double quotes; no expansion). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (const m of line.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** The dic command in the runtime running this file. */
function dicCommand(): string[] {
  if (runtimeName === "deno") return [(globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath(), "run", "-A", `${root}sdk/bin.ts`];
  if (runtimeName === "bun") return [proc.execPath, `${root}sdk/bin.ts`];
  return [proc.execPath, `${root}dist/sdk/bin.js`];
}

/** Runs a command as a new user's shell would (no XDG_RUNTIME_DIR, no DIC_DEBUG), in `cwd`. */
function sh(argv: string[], cwd: string) {
  return spawnSync("env", ["-u", "XDG_RUNTIME_DIR", "-u", "DIC_DEBUG", ...argv], { cwd, encoding: "utf8", timeout: 600_000 });
}

const f32 = (m: Map<string, { shape: number[]; data: Float32Array }>): Record<string, TensorToWrite> =>
  Object.fromEntries([...m].map(([k, t]) => [k, { dtype: "F32", shape: t.shape, data: t.data }]));

/** Small generated weights standing for the user's files, by kind. */
function writePlaceholder(path: string, kind: string): void {
  const latent = kind.match(/^latent-dic-(\d+)$/);
  if (latent) {
    // A latent DiC (SD-VAE latents, ImageNet's 1000 classes) at a tiny width.
    const config = resolveConfig({ input_size: Number(latent[1]), in_channels: 4, num_classes: 1000, hidden_size: 8, depth: [1, 1, 1, 1, 1], skip_stride: 1 });
    writeFileSync(path, writeSafetensors(f32(randomWeights(config, 5)), { config: JSON.stringify(config) }));
  } else if (kind === "sd-vae") {
    const config = resolveVAEConfig({ block_out_channels: [8, 8, 16, 16], layers_per_block: 1, norm_groups: 4 });
    expectedVAEParams(config);
    writeFileSync(path, writeSafetensors(f32(randomVAEWeights(config, 6)), { config: JSON.stringify({ norm_groups: 4 }) }));
  } else {
    throw new Error(`README placeholder ${path}: unknown kind "${kind}"`);
  }
}

/** An empty folder for one block: its placeholders written, dic-sdk resolvable as a user's project has it. */
function workspace(b: Block): string {
  const dir = mkdtempSync(join(tmpdir(), `dic-readme-${b.line}-`));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "readme-user", private: true, type: "module" }));
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(root.replace(/\/$/, ""), join(dir, "node_modules/dic-sdk"));
  for (const [file, kind] of b.marker?.placeholders ?? []) writePlaceholder(join(dir, file), kind);
  return dir;
}

test("README.md: every ts/js/sh block runs or says why not; dic --help is what the CLI prints; names and facts are true", async () => {
  assert.ok(code.length >= 10, "README code blocks found");
  for (const b of code) {
    if (b.comment) assert.ok(b.marker, `README.md:${b.line}: the comment before the block is not a doctest marker: ${b.comment}`);
    if (b.marker?.skip !== undefined) assert.ok(b.marker.skip.length > 5, `README.md:${b.line}: a skipped block says why`);
  }
  // The CLI overview as printed.
  const i = readme.indexOf("<!-- dic --help -->\n```\n");
  assert.ok(i >= 0, "README shows dic --help");
  const start = i + "<!-- dic --help -->\n```\n".length;
  const shown = readme.slice(start, readme.indexOf("\n```", start));
  const out: string[] = [];
  assert.equal(await runCli(["--help"], { out: (l) => out.push(l), err: () => {} }), 0);
  assert.equal(shown, out.join("\n"), "README's dic --help differs from `dic --help` (paste its output)");
  // What the snippets import from dic-sdk exists (types are checked by tests/package.test.ts).
  for (const b of all.filter((b) => b.lang === "ts" || b.lang === "js")) {
    for (const m of b.code.matchAll(/import \{([^}]*)\} from "(?:dic-sdk|npm:dic-sdk|@dic\/sdk)"|const \{([^}]*)\} = require\("dic-sdk"\)/g)) {
      for (const name of (m[1] ?? m[2]).split(",").map((n) => n.trim()).filter((n) => n && !n.startsWith("type "))) {
        assert.ok(name in sdk, `README.md:${b.line}: dic-sdk exports no ${name}`);
      }
    }
  }
  for (const name of ["createBackend", "createWasmBackend", "createWebGpuBackend"]) {
    assert.ok(readme.includes(name) && name in sdk, `${name}: README and exports agree`);
  }
  // Every generate() option is documented.
  const options = readme.slice(readme.indexOf("- `generate` options"), readme.indexOf("### The `dic` command"));
  for (const key of sdk.GENERATE_OPTION_KEYS) assert.ok(options.includes(`\`${key}\``), `README's generate options omit ${key}`);
  // Package facts come from tests/package.test.ts, not from the text.
  assert.ok(!/\d+(\.\d+)? MB packed|\b\d+ files\b/.test(readme), "README types the package size or file count by hand");
  const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8"));
  const deps = Object.keys(pkg.dependencies ?? {});
  if (deps.length) assert.ok(!/has no dependencies/.test(readme), "README says the package has no dependencies");
  for (const d of deps) assert.ok(readme.includes(`\`${d}\``), `README names the dependency ${d}`);
  // The main command needs Node and npm only: the build uses nothing .ci/setup installs.
  const main = code.find((b) => b.marker?.given)!;
  assert.equal(main.line < readme.indexOf("bash .ci/setup") ? main.line : 0, main.line);
  for (const script of ["build", "build:wasm", "build:kernels", "build:bundles"]) {
    assert.ok(!/\.ci\/|python|chromium|nginx/.test(pkg.scripts[script] ?? ""), `npm run ${script} needs the test machinery`);
  }
});

for (const b of code.filter((b) => b.marker?.skip === undefined)) {
  test(`README.md:${b.line} (${b.lang}) runs under ${runtimeName}`, async () => {
    const dir = workspace(b);
    if (b.lang === "sh") {
      for (let line of b.code.split("\n").map((l) => l.replace(/\s+#.*$/, "").trim())) {
        if (!line || b.marker?.notRun.some((p) => line.startsWith(p))) continue;
        if (b.marker?.given) {
          assert.ok(line.startsWith(`${b.marker.given} && `), `README.md:${b.line}: "${line}" starts with ${b.marker.given}`);
          line = line.slice(b.marker.given.length + 4);
        }
        const argv = words(line);
        const at = argv[0] === "dic" ? 1 : argv[0] === "node" && argv[1] === "dist/sdk/bin.js" ? 2 : -1;
        assert.ok(at > 0, `README.md:${b.line}: no runner for "${line}" (mark the block)`);
        const r = sh([...dicCommand(), ...argv.slice(at)], dir);
        assert.equal(r.status, 0, `README.md:${b.line}: ${line}\n${r.stderr}`);
        // No error and no warning: at most the command's own one-line summary.
        const noise = r.stderr.split("\n").filter((l) => l.trim() && !/^(generate|decode|sample|forward): /.test(l));
        assert.deepEqual(noise, [], `README.md:${b.line}: ${line} printed on stderr`);
        const outIndex = argv.indexOf("--out");
        if (outIndex > 0) assert.ok(existsSync(join(dir, argv[outIndex + 1])), `${line} wrote ${argv[outIndex + 1]}`);
      }
      return;
    }
    // A ts/js block is a module of the user's project.
    let file = join(dir, `block.${b.lang}`);
    let argv: string[];
    if (runtimeName === "deno") {
      writeFileSync(join(dir, "deno.json"), JSON.stringify({ imports: { "dic-sdk": `${root}sdk/index.ts`, msgpackr: "npm:msgpackr@^2.1.4" } }));
      writeFileSync(file, b.code);
      argv = [(globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath(), "run", "-A", file];
    } else if (runtimeName === "bun") {
      writeFileSync(file, b.code);
      argv = [proc.execPath, file];
    } else {
      const esbuild = await import("esbuild");
      file = join(dir, "block.mjs");
      writeFileSync(file, (await esbuild.transform(b.code, { loader: b.lang === "ts" ? "ts" : "js", format: "esm" })).code);
      argv = [proc.execPath, file];
    }
    const r = sh(argv, dir);
    assert.equal(r.status, 0, `README.md:${b.line}:\n${b.code}\n${r.stderr}`);
    assert.equal(r.stderr.trim(), "", `README.md:${b.line}: printed on stderr`);
  });
}
