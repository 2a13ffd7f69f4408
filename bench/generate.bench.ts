// bench/generate: wall time of one default `dic generate` image, process start included (issue 6
// target: under 2 s on one core). Validates first (the PNG exists and decodes to the right size),
// then times `--reps` runs per runtime, then prints a table. `--json` adds one JSON line.
// Run after `npm run build`: node dist/bench/generate.bench.js [--reps 5] [--runtimes node,deno,bun] [--json]
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { processArgs } from "../src/env.ts";
import { repoRoot } from "./root.ts";

const ROOT = repoRoot().pathname;
const { values } = parseArgs({
  args: processArgs(),
  options: {
    reps: { type: "string", default: "5" }, runtimes: { type: "string", default: "node,deno,bun" },
    label: { type: "string", default: "sneaker" }, json: { type: "boolean" },
  },
});

const dir = mkdtempSync(join(tmpdir(), "dic-gen-bench-"));
const commands: Record<string, string[]> = {
  node: [process.execPath, `${ROOT}dist/sdk/bin.js`],
  deno: [`${ROOT}node_modules/.bin/deno`, "run", "-A", `${ROOT}sdk/bin.ts`],
  bun: [`${ROOT}node_modules/.bin/bun`, `${ROOT}sdk/bin.ts`],
};

function run(cmd: string[], out: string): number {
  const t0 = performance.now();
  // NOTE: taskset pins the whole process (and its threads) to one core, as the target is stated.
  const r = spawnSync("taskset", ["-c", "0", ...cmd, "generate", "--label", values.label!, "--seed", "1", "--out", out, "--quiet"], { encoding: "utf8" });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd.join(" ")}: exit ${r.status}: ${(r.stderr || String(r.error)).trim()}`);
  return ms;
}

const rows: { runtime: string; medianMs: number; minMs: number; reps: number }[] = [];
for (const rt of values.runtimes!.split(",")) {
  const cmd = commands[rt];
  if (!cmd) throw new Error(`--runtimes: unknown "${rt}" (node, deno, bun)`);
  const out = join(dir, `${rt}.png`);
  run(cmd, out); // validate (and warm the file cache)
  const png = readFileSync(out);
  const width = png.readUInt32BE(16), height = png.readUInt32BE(20);
  if (png.subarray(1, 4).toString() !== "PNG" || width !== 28 || height !== 28) throw new Error(`${rt}: bad PNG ${width}x${height}`);
  const times = Array.from({ length: Number(values.reps) }, () => run(cmd, out)).sort((a, b) => a - b);
  rows.push({ runtime: rt, medianMs: +times[Math.floor(times.length / 2)].toFixed(0), minMs: +times[0].toFixed(0), reps: times.length });
}
console.log(`bench/generate: \`dic generate --label ${values.label}\` with the default model and its default settings, one core (taskset -c 0), process start included`);
console.log("| runtime | median ms | min ms | reps | under 2 s |\n| --- | --- | --- | --- | --- |");
for (const r of rows) console.log(`| ${r.runtime} | ${r.medianMs} | ${r.minMs} | ${r.reps} | ${r.medianMs < 2000 ? "yes" : "no"} |`);
if (values.json) console.log(JSON.stringify({ bench: "generate", rows }));
