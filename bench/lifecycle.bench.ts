// bench/lifecycle: threads and resident memory of this process across repeated loadModel/dispose cycles
// of the embedded model (issue 15 target: 20 cycles add no threads and less than 40 MiB).
// Run after `npm run build`: node dist/bench/lifecycle.bench.js [--cycles 20] [--backend wasm] [--no-dispose]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadModel } from "../sdk/index.ts";
import { DEFAULT_MODEL_FILE } from "../sdk/default-model.ts";
import { processArgs } from "../src/env.ts";
import { repoRoot } from "./root.ts";

const { values } = parseArgs({ args: processArgs(), options: { cycles: { type: "string", default: "20" }, backend: { type: "string", default: "wasm" }, "no-dispose": { type: "boolean" } } });
const bytes = new Uint8Array(readFileSync(`${repoRoot().pathname}models/${DEFAULT_MODEL_FILE}`));
const status = () => {
  const s = readFileSync("/proc/self/status", "utf8");
  return { threads: Number(/^Threads:\s+(\d+)/m.exec(s)![1]), rssMiB: Number(/^VmRSS:\s+(\d+)/m.exec(s)![1]) / 1024 };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const cycle = async () => {
  const m = await loadModel(bytes, { backend: values.backend });
  await m.forward({ shape: [1, 1, 28, 28], data: new Float32Array(784) }, [10], [1]);
  if (!values["no-dispose"]) m.dispose();
};
await cycle(); // first use starts the runtime's own helpers
await sleep(500);
gc();
const before = status();
for (let i = 0; i < Number(values.cycles); i++) await cycle();
// NOTE: shared wasm memories are freed once every thread that held them is gone and a GC ran.
for (let i = 0; i < 5; i++) {
  await sleep(300);
  gc();
}
const after = status();
console.log("cycles  backend  dispose  threads before -> after  RSS MiB before -> after");
console.log(`${values.cycles.padStart(6)}  ${values.backend!.padEnd(7)}  ${values["no-dispose"] ? "no " : "yes"}      ${before.threads} -> ${after.threads}                  ${before.rssMiB.toFixed(1)} -> ${after.rssMiB.toFixed(1)} (+${(after.rssMiB - before.rssMiB).toFixed(1)})`);
(globalThis as { process?: { exit(c: number): void } }).process?.exit(0);
