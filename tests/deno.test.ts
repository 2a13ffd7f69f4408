// Deno as a user meets it from the repository or from JSR (no npm tarball anywhere near): `deno task dic`
// runs the CLI with the permissions it needs, deno.json points only at files it publishes, and the
// JSR-style import resolves its npm dependency (msgpackr) through deno.json "imports". Deno only.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runtimeName, test } from "./harness.ts";

const root = new URL("../", import.meta.url).pathname;
const deno = () => (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
const denoJson = JSON.parse(readFileSync(`${root}deno.json`, "utf8"));
const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8"));

function run(args: string[], cwd: string) {
  return spawnSync("env", ["-u", "XDG_RUNTIME_DIR", "NO_COLOR=1", deno(), ...args], { cwd, encoding: "utf8", timeout: 300_000 });
}

// Static facts: checked under every runtime (cheap).
test("deno.json: exports and tasks name files that are published; msgpackr comes from deno.json imports", () => {
  const include: string[] = denoJson.publish.include;
  const published = (path: string) => include.some((p) => (p.endsWith("/") ? path.startsWith(p) : path === p));
  const targets = [...Object.values(denoJson.exports) as string[], ...Object.values(denoJson.tasks as Record<string, string>).flatMap((t) => t.split(" ").filter((w) => /\.ts$/.test(w)))];
  for (const t of targets) {
    const path = t.replace(/^\.\//, "");
    assert.ok(existsSync(root + path), `deno.json names ${path}, which does not exist`);
    assert.ok(published(path), `deno.json names ${path}, which deno publish leaves out`);
  }
  for (const dep of Object.keys(pkg.dependencies ?? {})) {
    assert.match(denoJson.imports?.[dep] ?? "", new RegExp(`^npm:${dep}@`), `deno.json "imports" maps ${dep} (a dependency in package.json)`);
  }
  // The npm tarball does not carry deno.json: it would point Deno at TypeScript sources npm does not ship.
  assert.ok(!pkg.files.includes("deno.json"), "package.json files ships deno.json");
  for (const f of ["docs/protocol.md"]) assert.ok(pkg.files.includes(f) && include.includes(f), `${f} is linked from README.md; ship it`);
});

if (runtimeName === "deno") {
  test("deno task dic runs the CLI with its permissions (no -A)", () => {
    assert.match(denoJson.tasks.dic, /--allow-read --allow-write --allow-env --allow-net .*sdk\/bin\.ts$/);
    assert.ok(!/(^|\s)-A(\s|$)|--allow-all/.test(denoJson.tasks.dic));
    const v = run(["task", "dic", "--version"], root);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), `dic-sdk ${pkg.version}`);
    const out = join(mkdtempSync(join(tmpdir(), "dic-deno-task-")), "bag.png");
    const g = run(["task", "dic", "generate", "--label", "bag", "--steps", "1", "--seed", "1", "--out", out], root);
    assert.equal(g.status, 0, g.stderr);
    assert.ok(readFileSync(out).subarray(1, 4).toString() === "PNG", "a PNG");
    // Only deno's own "Task dic ..." line and the summary: no permission prompt, no Mesa lines.
    const lines = g.stderr.trim().split("\n").filter((l) => !/^Task dic /.test(l));
    assert.equal(lines.length, 1, g.stderr);
    assert.match(lines[0], /^generate: 1 image\(s\)/);
  });

  test("Deno importing the built dist/ by path gets the types (@ts-self-types, .js imports in the .d.ts)", () => {
    assert.ok(existsSync(`${root}dist/sdk/index.js`), "run npm run build first");
    const dir = mkdtempSync(join(tmpdir(), "dic-deno-dist-"));
    writeFileSync(join(dir, "deno.json"), JSON.stringify({ imports: { msgpackr: "npm:msgpackr@^2.1.4" } }));
    writeFileSync(join(dir, "good.ts"), `import { generate, type GenerateResult } from "${root}dist/sdk/index.js";
import { runCli } from "${root}dist/sdk/cli.js";
const r: GenerateResult = await generate({ label: "bag", steps: 1 });
const code: number = await runCli(["--version"]);
// @ts-expect-error steps is a number
await generate({ label: "bag", steps: "many" });
export { r, code };
`);
    writeFileSync(join(dir, "bad.ts"), `import { generate } from "${root}dist/sdk/index.js";\nawait generate({ lable: 3 });\n`);
    const good = run(["check", "good.ts"], dir);
    assert.equal(good.status, 0, good.stderr);
    const bad = run(["check", "bad.ts"], dir);
    assert.notEqual(bad.status, 0, "a typo type-checks: dist/ has no types for Deno");
    assert.match(bad.stderr, /'lable' does not exist in type 'GenerateOptions'/);
  });

  test("JSR-style import of the sources, no npm tarball beside them: msgpackr resolves from deno.json imports", () => {
    const dir = mkdtempSync(join(tmpdir(), "dic-jsr-"));
    writeFileSync(join(dir, "deno.json"), JSON.stringify({ links: [root], imports: { "@dic/sdk": `jsr:@dic/sdk@^${denoJson.version}` } }));
    writeFileSync(join(dir, "gen.ts"), `import { generate, PROTOCOL_VERSION } from "@dic/sdk";
const r = await generate({ label: "sneaker", steps: 2, seed: 7 });
console.log(JSON.stringify({ label: r.images[0].labelName, v: PROTOCOL_VERSION }));
`);
    const r = run(["run", "--allow-read", "--allow-env", "gen.ts"], dir);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!existsSync(join(dir, "node_modules/dic-sdk")), "no npm copy of dic-sdk");
    assert.deepEqual(JSON.parse(r.stdout.trim().split("\n").pop()!), { label: "Sneaker", v: 2 });
  });
}
