// The library never blocks its caller: timers run during generate(), and an
// AbortSignal that fires mid-run stops it before it completes. Bounds are generous: they prove the
// mechanism, bench/responsive.bench.ts measures it.
import assert from "node:assert/strict";
import { generate, loadDefaultModel } from "../sdk/index.ts";
import { test } from "./harness.ts";

const model = await loadDefaultModel("js");

test("a timer ticks while generate() runs", async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  try {
    await generate({ model, labels: [1, 2], steps: 3, seed: 1 });
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks >= 3, `${ticks} timer ticks during generate()`);
});

test("an abort mid-run throws AbortError before the run completes", async () => {
  const ac = new AbortController();
  let steps = 0;
  const t0 = performance.now();
  // The signal fires from a timer (not from onProgress), so it lands only if the loop yields.
  setTimeout(() => ac.abort(), 300);
  await assert.rejects(
    generate({ model, labels: [1], steps: 100, seed: 1, signal: ac.signal, onProgress: () => void steps++ }),
    (e: Error) => e.name === "AbortError",
  );
  assert.ok(steps < 100, `${steps} steps ran`);
  assert.ok(performance.now() - t0 < 30_000);
});
