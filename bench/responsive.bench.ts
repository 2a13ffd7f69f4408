// bench/responsive: how long generate() of the embedded model keeps the event loop from running (the
// longest gap between 1 ms timer ticks) and how long an abort takes to land (from abort() to the
// rejection), per backend and batch. Issue 15 targets: no stall over 60 ms, aborts within 150 ms.
// Run after `npm run build`: node dist/bench/responsive.bench.js [--backends js,wasm] [--labels 1,8] [--steps 20] [--json]
import { parseArgs } from "node:util";
import { generate, loadDefaultModel } from "../sdk/index.ts";
import { processArgs } from "../src/env.ts";

const { values } = parseArgs({
  args: processArgs(),
  options: { backends: { type: "string", default: "js,wasm" }, labels: { type: "string", default: "1,8" }, steps: { type: "string", default: "20" }, json: { type: "boolean" } },
});
const steps = Number(values.steps);

/** Runs `f` while a 1 ms timer measures the event loop's longest gap. */
async function longestGap<T>(f: () => Promise<T>): Promise<{ gapMs: number; p99Ms: number; result: T }> {
  const gaps: number[] = [];
  let last = performance.now();
  let on = true;
  const tick = () => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
    if (on) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  const result = await f();
  on = false;
  gaps.push(performance.now() - last);
  gaps.sort((a, b) => a - b);
  return { gapMs: gaps[gaps.length - 1], p99Ms: gaps[Math.floor(gaps.length * 0.99)], result };
}

const rows: Record<string, unknown>[] = [];
for (const be of values.backends!.split(",")) {
  const model = await loadDefaultModel(be);
  for (const n of values.labels!.split(",").map(Number)) {
    const labels = Array.from({ length: n }, (_, i) => i % 10);
    await generate({ model, labels, steps: 2, seed: 1 }); // warm-up
    const { gapMs, p99Ms, result } = await longestGap(() => generate({ model, labels, steps, seed: 1 }));
    const stepMs = result.timings.stepMs.reduce((a, b) => a + b, 0) / result.timings.stepMs.length;
    // Abort at several points of a run; the latency is abort() -> rejection.
    const lat: number[] = [];
    for (const frac of [0.2, 0.5, 0.8]) {
      const ac = new AbortController();
      let at = 0;
      setTimeout(() => {
        at = performance.now();
        ac.abort();
      }, frac * stepMs * steps);
      try {
        await generate({ model, labels, steps, seed: 1, signal: ac.signal });
      } catch (e) {
        if ((e as Error).name !== "AbortError") throw e;
      }
      if (at) lat.push(performance.now() - at);
    }
    rows.push({ backend: be, labels: n, steps, stepMs: +stepMs.toFixed(1), longestGapMs: +gapMs.toFixed(1), p99GapMs: +p99Ms.toFixed(1), abortMs: lat.map((x) => +x.toFixed(1)) });
  }
}
console.log("backend  labels  steps  step ms  longest gap ms  p99 gap ms  abort -> rejection ms");
for (const r of rows) {
  console.log(`${String(r.backend).padEnd(8)} ${String(r.labels).padStart(6)} ${String(r.steps).padStart(6)} ${String(r.stepMs).padStart(8)} ${String(r.longestGapMs).padStart(15)} ${String(r.p99GapMs).padStart(11)}  ${(r.abortMs as number[]).join(", ")}`);
}
if (values.json) console.log(JSON.stringify(rows));
// NOTE: worker threads of the wasm backend would keep the process alive.
(globalThis as { process?: { exit(c: number): void } }).process?.exit(0);
