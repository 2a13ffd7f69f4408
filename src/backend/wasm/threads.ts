// Worker pool of the wasm backend: N - 1 workers instantiate the threads build of the kernels over the same
// shared WebAssembly.Memory as the caller, then wait on a control block in that memory (polling it for
// ~20 microseconds after each command, then sleeping: see SPIN). `run` writes a
// command (op + arguments) there, wakes them (Atomics.notify), claims chunks of it itself like every worker
// (wasm/assembly/parallel.ts: dynamic, so a descheduled worker costs only its current chunk), and waits
// until the last chunk is done (Atomics.wait; a spin where the caller may not block, i.e. a browser's main
// thread).
//
// Workers are inline: their source is the string below, started with `eval` by node:worker_threads (reached
// through process.getBuiltinModule: Node >= 20.16, Deno, Bun) or from a Blob URL as a Web Worker (browsers),
// so they work the same from dist/ and from the TypeScript sources, with no worker file and no dynamic
// import(). Idle workers are unref'd: they never keep a process alive.
import type { Kernels } from "./module.ts";

/** Op codes of wasm/assembly/parallel.ts. */
export const OP_WINOGRAD_INPUT = 1, OP_WINOGRAD_GEMM = 2, OP_WINOGRAD_OUTPUT = 3, OP_GEMM = 4, OP_DIRECT = 5, OP_PRE = 6, OP_WINOGRAD_COMPACT = 7;
const OP_EXIT = -1;
/**
 * Control block: i32 slots (0 generation, 1 chunks done, 2 op, 3 claim word, 4 chunks wanted, 5..31 arguments,
 * 32 + i chunks run by worker i, last: fault flag); room for 256 threads.
 */
export const CONTROL_BYTES = 2048;
const ARGS = 5;

/** Slot a worker sets when a chunk failed (a trap): the caller then throws instead of waiting forever. */
const FAULT = CONTROL_BYTES / 4 - 1;
/**
 * Slot with the spin budget: how many polls of the generation word a worker makes after a command before it
 * sleeps (Atomics.wait), and the caller makes before it sleeps on the last chunk. A forward runs ~250 short
 * commands back to back with a little host work between them; a worker that is still polling picks the next
 * one up at once instead of paying a futex wake-up (tens of microseconds) each time.
 */
const SPIN = CONTROL_BYTES / 4 - 2;
/**
 * Default spin budget (polls; about 20 microseconds at the ~5 ns a poll takes in V8 and JavaScriptCore here).
 * Short on purpose: measured on the shared 2-vCPU machine (DiC-S, 2 threads, Deno, one process), 4000 polls
 * took an idle forward from 54.5 to 49.0 ms (100000: 46.5), and with another process busy on a core 4000 stayed
 * level with no polling (85.9 vs 84.3 ms) while 20000 lost 10% and 100000 lost 34%: a polling thread then holds
 * the core the thread it waits for needs.
 */
export const DEFAULT_SPIN = 4000;
/** Slots where worker i (1-based) publishes the chunks it has run (ThreadPool.chunksRun). */
const COUNTS = 32;
const MAX_ARGS = COUNTS - ARGS;
/** Chunks per thread and command: enough that a slow thread does not hold the others up. */
const CHUNKS_PER_THREAD = 4;

/** The worker's source; `node`: started by node:worker_threads (else a Web Worker). */
const workerSource = (node: boolean) => `const NODE = ${node};
const run = async (d, post) => {
  const { instance } = await WebAssembly.instantiate(d.bytes, { env: { memory: d.memory } });
  const k = instance.exports;
  k.setScratch(d.scratch);
  const c = new Int32Array(d.memory.buffer, d.ctl, ${CONTROL_BYTES / 4});
  let gen = Atomics.load(c, 0);
  post("ready");
  for (;;) {
    for (let spin = Atomics.load(c, ${SPIN}); spin > 0 && Atomics.load(c, 0) === gen; spin--);
    Atomics.wait(c, 0, gen);
    gen = Atomics.load(c, 0);
    if (Atomics.load(c, 2) < 0) break;
    try {
      k.task(d.ctl, gen);
      Atomics.store(c, ${COUNTS} + d.index, k.chunksDone());
    } catch (e) {
      Atomics.store(c, ${FAULT}, 1); // the caller stops waiting for the chunk that will never finish
      Atomics.notify(c, 1);
      throw e;
    }
  }
};
const fail = (post) => (e) => post("error: " + (e && e.stack || e));
if (!NODE) {
  self.onmessage = (e) => { self.onmessage = null; const post = (m) => self.postMessage(m); run(e.data, post).catch(fail(post)); };
} else {
  const { parentPort } = globalThis.process.getBuiltinModule("node:worker_threads");
  parentPort.once("message", (d) => { const post = (m) => parentPort.postMessage(m); run(d, post).catch(fail(post)); });
}
`;

/** A started worker: post its start message, and stop it. */
interface WorkerHandle {
  post(msg: unknown): void;
  /** Lets the process exit while this worker idles (node:worker_threads; a no-op for Web Workers). */
  unref(): void;
  terminate(): void;
}

type NodeWorkerThreads = {
  Worker: new (src: string, o: { eval: true }) => {
    postMessage(m: unknown): void; terminate(): Promise<number>; unref(): void;
    on(ev: string, f: (v: unknown) => void): void;
  };
};

function nodeWorkerThreads(): NodeWorkerThreads | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown; versions?: { node?: string } } }).process;
  if (typeof proc?.getBuiltinModule !== "function") return null;
  return (proc.getBuiltinModule("node:worker_threads") as NodeWorkerThreads | undefined) ?? null;
}

/** null when a shared memory and workers are available here, else why not. */
export function threadsUnavailable(): string | null {
  if (typeof SharedArrayBuffer !== "function" || typeof Atomics !== "object") return "no SharedArrayBuffer in this runtime";
  if ((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) return "the page is not cross-origin isolated";
  if (typeof (globalThis as { Worker?: unknown }).Worker !== "function" && !nodeWorkerThreads()) return "no Worker and no node:worker_threads";
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  } catch (e) {
    return `shared WebAssembly.Memory refused (${(e as Error).message})`;
  }
  return null;
}

/** Logical cores this runtime reports (1 when it reports none). */
export function availableCores(): number {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (nav?.hardwareConcurrency) return nav.hardwareConcurrency;
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const os = proc?.getBuiltinModule?.("node:os") as { availableParallelism?: () => number } | undefined;
  return os?.availableParallelism?.() ?? 1;
}

function startWorker(onMessage: (m: string) => void): WorkerHandle {
  // node:worker_threads first (Node, and Deno and Bun, where it also gives unref(): a Deno Web Worker would keep
  // the process alive), else a Web Worker from a Blob URL (browsers).
  const wt = nodeWorkerThreads();
  if (wt) {
    const w = new wt.Worker(workerSource(true), { eval: true });
    w.on("message", (m) => onMessage(String(m)));
    w.on("error", (e) => onMessage(`error: ${(e as Error).message}`));
    return { post: (m) => w.postMessage(m), unref: () => w.unref(), terminate: () => void w.terminate() };
  }
  const WebWorker = (globalThis as { Worker?: new (url: string, o: { type: "module"; name: string }) => Worker }).Worker;
  if (typeof WebWorker !== "function") throw new Error("wasm backend: no Worker and no node:worker_threads");
  const url = URL.createObjectURL(new Blob([workerSource(false)], { type: "text/javascript" }));
  const w = new WebWorker(url, { type: "module", name: "dic-wasm" });
  w.onmessage = (e: MessageEvent) => onMessage(String(e.data));
  w.onerror = (e: ErrorEvent) => {
    e.preventDefault?.();
    onMessage(`error: ${e.message}`);
  };
  return {
    post: (m) => w.postMessage(m),
    unref: () => {},
    terminate: () => {
      w.terminate();
      URL.revokeObjectURL(url);
    },
  };
}

/** The worker pool of one backend; `threads` counts the caller. */
export class ThreadPool {
  private readonly c: Int32Array;
  private readonly canWait: boolean;
  private closed = false;

  private constructor(private readonly k: Kernels, private readonly ctl: number, private readonly workers: WorkerHandle[]) {
    this.c = new Int32Array(k.memory.buffer, ctl, CONTROL_BYTES / 4);
    let canWait = true;
    try {
      Atomics.wait(this.c, 1, -1, 0); // throws where this thread may not block (a browser's main thread)
    } catch {
      canWait = false;
    }
    this.canWait = canWait;
    this.spin = DEFAULT_SPIN;
  }

  /** Polls before a thread sleeps between commands (0: sleep at once); see SPIN. */
  get spin(): number {
    return Atomics.load(this.c, SPIN);
  }
  set spin(v: number) {
    Atomics.store(this.c, SPIN, Math.max(0, Math.floor(v)));
  }

  /** Number of threads that share each op (the caller included). */
  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Starts `threads - 1` workers on the threads build `bytes` over k.memory. `ctl`: CONTROL_BYTES of the
   * memory for the control block; `scratch(i)`: a block of k.scratchBytes() for worker i.
   */
  static async start(k: Kernels, bytes: Uint8Array, threads: number, ctl: number, scratch: (i: number) => number): Promise<ThreadPool> {
    const c = new Int32Array(k.memory.buffer, ctl, CONTROL_BYTES / 4);
    c.fill(0);
    const workers: WorkerHandle[] = [];
    const ready: Promise<void>[] = [];
    try {
      for (let i = 1; i < threads; i++) {
        let settle!: (m: string) => void;
        ready.push(new Promise<void>((resolve, reject) => {
          settle = (m) => (m === "ready" ? resolve() : reject(new Error(`wasm backend: worker ${i} failed: ${m}`)));
        }));
        const w = startWorker((m) => settle(m));
        workers.push(w);
        w.post({ bytes, memory: k.memory, ctl, scratch: scratch(i), index: i });
      }
      await Promise.all(ready);
      for (const w of workers) w.unref();
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
    return new ThreadPool(k, ctl, workers);
  }

  /**
   * Runs op on every thread (this one included) and returns when all its chunks are done. `chunks`: how many
   * chunks to split it into (at most its units; default CHUNKS_PER_THREAD per thread).
   */
  run(op: number, args: readonly number[], chunks = this.threads * CHUNKS_PER_THREAD): void {
    if (this.closed) throw new Error("wasm backend: used after close()");
    if (args.length > MAX_ARGS) throw new Error(`wasm backend: ${args.length} arguments exceed the control block`);
    const c = this.c;
    // The claim word first: a worker still waking from the last command must not claim from this one.
    Atomics.store(c, 3, -1);
    c[2] = op;
    c[4] = Math.max(1, chunks);
    for (let i = 0; i < args.length; i++) c[ARGS + i] = args[i];
    const count = this.k.chunkCount(this.ctl);
    const gen = (Atomics.load(c, 0) + 1) & 0x7fff;
    Atomics.store(c, 1, 0);
    Atomics.store(c, 3, gen << 16);
    Atomics.store(c, 0, gen);
    Atomics.notify(c, 0);
    try {
      this.k.task(this.ctl, gen);
    } catch (e) {
      this.close(); // a trap here leaves the command half done: the pool cannot be trusted any more
      throw e;
    }
    let spin = Atomics.load(c, SPIN);
    for (;;) {
      const done = Atomics.load(c, 1);
      if (done >= count) break;
      if (Atomics.load(c, FAULT)) {
        this.close();
        throw new Error("wasm backend: a worker thread failed (see its error); the backend is closed");
      }
      if (spin > 0) spin--;
      else if (this.canWait) Atomics.wait(c, 1, done);
    }
  }

  /** Chunks each thread has run so far, the caller first (shows whether every worker takes part). */
  chunksRun(): number[] {
    return [this.k.chunksDone(), ...this.workers.map((_, i) => Atomics.load(this.c, COUNTS + i + 1))];
  }

  /** Stops the workers (each leaves its wait loop, then is terminated). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const c = this.c;
    Atomics.store(c, 3, -1);
    Atomics.store(c, 2, OP_EXIT);
    Atomics.add(c, 0, 1);
    Atomics.notify(c, 0);
    for (const w of this.workers) w.terminate();
  }
}
