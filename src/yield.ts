// Letting the event loop run during long computations (the library never blocks
// its caller). Imports nothing: the graph, the pipeline and the servers share it.

type Scheduler = { yield?: () => Promise<void> };

/**
 * Deno's setImmediate (and MessageChannel) turns do not poll network I/O: a server computing between
 * such turns answers nothing until it is done (a /healthz waited over a second behind 10 ms slices).
 * Timer turns do, at about 2 ms each, so under Deno one is taken when this long has passed since the last.
 */
const IO_TURN_MS = 40;
let lastIoTurn = 0;
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno === "object";

/** A macrotask turn: timers, I/O and abort events run before the promise resolves. */
export function yieldNow(): Promise<void> {
  const g = globalThis as { scheduler?: Scheduler; setImmediate?: (f: () => void) => unknown; MessageChannel?: typeof MessageChannel };
  if (isDeno) {
    const now = performance.now();
    if (now - lastIoTurn >= IO_TURN_MS) {
      lastIoTurn = now;
      return new Promise((r) => setTimeout(r, 0));
    }
  }
  if (typeof g.scheduler?.yield === "function") return g.scheduler.yield();
  if (typeof g.setImmediate === "function") return new Promise((r) => void g.setImmediate!(r));
  if (typeof g.MessageChannel === "function") {
    // NOTE: not clamped like nested setTimeout (4 ms in browsers); the ports are closed after one message.
    return new Promise((resolve) => {
      const ch = new g.MessageChannel!();
      ch.port1.onmessage = () => {
        ch.port1.close();
        ch.port2.close();
        resolve();
      };
      ch.port2.postMessage(0);
    });
  }
  return new Promise((r) => setTimeout(r, 0));
}

/** How long computation may run before `yieldSlice` gives the event loop a turn, ms. */
export const YIELD_SLICE_MS = 8;

let lastYield = 0;

/**
 * Gives the event loop a turn when more than YIELD_SLICE_MS has passed since the last one, else
 * nothing (no await): cheap enough to call between any two ops.
 */
export function yieldSlice(): Promise<void> | null {
  const now = performance.now();
  if (now - lastYield < YIELD_SLICE_MS) return null;
  return yieldNow().then(() => void (lastYield = performance.now()));
}
