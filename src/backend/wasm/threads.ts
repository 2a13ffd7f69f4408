// Worker pool of the wasm backend: N - 1 workers instantiate the threads build of the kernels over the same
// shared WebAssembly.Memory as the caller, then wait (polling ~20 microseconds, then sleeping: SPIN_POLLS) on
// a control block in that memory. `run` writes a
// command (op + arguments) there, wakes them (Atomics.notify), claims chunks of it itself like every worker
// (wasm/assembly/parallel.ts: dynamic, so a descheduled worker costs only its current chunk), and waits
// until the last chunk is done (Atomics.wait; a spin where the caller may not block, i.e. a browser's main
// thread).
//
// Backends share their workers: one set of N - 1 workers per thread count and JS realm, counted by the
// backends attached to it. Each backend (each memory) attaches: every worker instantiates the kernels over
// that memory too. The workers sleep on a small wake block of their own (WAKE_* below) that names the
// attachment a command is for; a backend's close() detaches it, and the last one stops the workers.
//
// Workers are inline: their source is the string below, started with `eval` by node:worker_threads (reached
// through process.getBuiltinModule: Node >= 20.16, Deno, Bun) or from a Blob URL as a Web Worker (browsers),
// so they work the same from dist/ and from the TypeScript sources, with no worker file and no dynamic
// import(). Idle workers are unref'd: they never keep a process alive.
import type { Kernels } from "./module.ts";

// Op codes and control block slots: wasm/pool-layout.mjs, the one definition the kernels share.
import { CONTROL_BYTES, SLOT_ARGS as ARGS, SLOT_CHUNKS, SLOT_CLAIM, SLOT_COUNTS as COUNTS, SLOT_DONE, SLOT_FAULT as FAULT, SLOT_GENERATION, SLOT_OP } from "./pool-layout.ts";

export { CONTROL_BYTES, OP_CHANNEL_TOTALS, OP_DIRECT, OP_GATE_ADD, OP_GEMM, OP_GEMM_COLS, OP_PRE, OP_WINOGRAD_COMPACT, OP_WINOGRAD_GEMM, OP_WINOGRAD_INPUT, OP_WINOGRAD_OUTPUT } from "./pool-layout.ts";
const MAX_ARGS = COUNTS - ARGS;
/** Chunks per thread and command: enough that a slow thread does not hold the others up. */
const CHUNKS_PER_THREAD = 4;
/**
 * Polls a thread makes before it sleeps: a worker on the wake block after a command, the caller on the last
 * chunk. A forward runs ~250 short commands back to back with a little host work between them; a worker still
 * polling picks the next one up at once instead of paying a futex wake-up (tens of microseconds) each time.
 * About 20 microseconds at the ~5 ns a poll takes in V8 and JavaScriptCore here, short on purpose: measured
 * on the shared 2-vCPU machine (DiC-S, 2 threads, Deno, one process), 4000 polls took an idle forward from
 * 54.5 to 49.0 ms (100000: 46.5), and with another process busy on a core 4000 stayed level with no polling
 * (85.9 vs 84.3 ms) while 20000 lost 10% and 100000 lost 34%: a polling thread then holds the core the thread
 * it waits for needs.
 */
const SPIN_POLLS = 4000;

/**
 * Wake block of a shared worker set (i32 slots): 0 a sequence number the workers wait on, 1 the command word
 * (kind << 29 | attachment << 15 | generation), 2 + i attachments pending for worker i, then a bitmap of
 * detached attachments.
 */
const WAKE_SEQ = 0, WAKE_WORD = 1, WAKE_PENDING = 2, WAKE_DETACHED = WAKE_PENDING + 256;
const MAX_ATTACHMENTS = 1 << 14;
/** Slot: workers asleep in Atomics.wait now (the others are polling or running a command). */
const WAKE_ASLEEP = WAKE_DETACHED + MAX_ATTACHMENTS / 32;
const WAKE_SLOTS = WAKE_ASLEEP + 1;
const KIND_RUN = 0, KIND_ATTACH = 1, KIND_DETACH = 2, KIND_EXIT = 3, KIND_WARM = 4;
/**
 * Polls after a KIND_WARM wake-up (~60 us): the caller warms sleeping workers when it starts an op whose
 * commands follow some tens of microseconds of its own work (conv3x3: its JS, the group statistics), so
 * that the futex wake-up overlaps that work instead of delaying the op's first command.
 */
const WARM_POLLS = 3 * SPIN_POLLS;

/** The worker's source; `node`: started by node:worker_threads (else a Web Worker). */
const workerSource = (node: boolean) => `const NODE = ${node};
const inbox = [];
let waiting = null;
const deliver = (m) => { if (waiting) { const w = waiting; waiting = null; w(m); } else inbox.push(m); };
const nextMessage = () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => (waiting = r)));
const run = async (post) => {
  const first = await nextMessage();
  const wake = new Int32Array(first.wake);
  const index = first.index;
  const attached = new Map();
  let seq = Atomics.load(wake, ${WAKE_SEQ});
  post("up");
  let polls = ${SPIN_POLLS};
  for (;;) {
    for (let s = polls; s > 0 && Atomics.load(wake, ${WAKE_SEQ}) === seq; s--);
    polls = ${SPIN_POLLS};
    // Counted while asleep, for warm() and runShort(): a count read a moment late costs the caller one
    // wake-up's wait or one serial run, never a lost command (every command bumps and notifies).
    Atomics.add(wake, ${WAKE_ASLEEP}, 1);
    Atomics.wait(wake, ${WAKE_SEQ}, seq);
    Atomics.sub(wake, ${WAKE_ASLEEP}, 1);
    seq = Atomics.load(wake, ${WAKE_SEQ});
    for (const id of attached.keys()) if (Atomics.load(wake, ${WAKE_DETACHED} + (id >> 5)) & (1 << (id & 31))) attached.delete(id);
    while (Atomics.load(wake, ${WAKE_PENDING} + index) > 0) {
      const d = await nextMessage();
      try {
        const { instance } = await WebAssembly.instantiate(d.bytes, { env: { memory: d.memory } });
        instance.exports.setScratch(d.scratch);
        attached.set(d.id, { k: instance.exports, ctl: d.ctl, c: new Int32Array(d.memory.buffer, d.ctl, ${CONTROL_BYTES / 4}) });
        post("ready " + d.id);
      } catch (e) {
        post("failed " + d.id + " " + (e && e.stack || e));
      }
      Atomics.sub(wake, ${WAKE_PENDING} + index, 1);
    }
    const word = Atomics.load(wake, ${WAKE_WORD});
    const kind = word >>> 29;
    if (kind === ${KIND_EXIT}) break;
    if (kind === ${KIND_WARM}) polls = ${WARM_POLLS};
    if (kind !== ${KIND_RUN}) continue;
    const a = attached.get((word >>> 15) & ${MAX_ATTACHMENTS - 1});
    if (!a) continue;
    try {
      a.k.task(a.ctl, word & 0x7fff);
      Atomics.store(a.c, ${COUNTS} + index, a.k.chunksDone());
    } catch (e) {
      // The caller stops waiting for the chunk that will never finish and closes its backend; the other
      // backends sharing this worker go on.
      Atomics.store(a.c, ${FAULT}, 1);
      Atomics.notify(a.c, ${SLOT_DONE});
      attached.delete((word >>> 15) & ${MAX_ATTACHMENTS - 1});
      post("fault " + (e && e.stack || e));
    }
  }
};
const fail = (post) => (e) => post("error: " + (e && e.stack || e));
if (!NODE) {
  self.onmessage = (e) => deliver(e.data);
  const post = (m) => self.postMessage(m);
  run(post).catch(fail(post));
} else {
  const { parentPort } = globalThis.process.getBuiltinModule("node:worker_threads");
  parentPort.on("message", deliver);
  const post = (m) => parentPort.postMessage(m);
  run(post).catch(fail(post)); // after EXIT the caller terminates this worker
}
`;

/** A started worker: post its start message, and stop it. */
interface WorkerHandle {
  post(msg: unknown): void;
  /** Lets the process exit while this worker idles (node:worker_threads; a no-op for Web Workers); `ref` undoes it. */
  unref(): void;
  ref(): void;
  terminate(): void;
}

type NodeWorkerThreads = {
  Worker: new (src: string, o: { eval: true }) => {
    postMessage(m: unknown): void; terminate(): Promise<number>; unref(): void; ref(): void;
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
    return { post: (m) => w.postMessage(m), unref: () => w.unref(), ref: () => w.ref(), terminate: () => void w.terminate() };
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
    ref: () => {},
    terminate: () => {
      w.terminate();
      URL.revokeObjectURL(url);
    },
  };
}

/** One set of workers, shared by the backends (memories) attached to it. */
class WorkerSet {
  readonly wake = new Int32Array(new SharedArrayBuffer(WAKE_SLOTS * 4));
  readonly workers: WorkerHandle[] = [];
  /** Attachments in use; the last detach stops the workers. */
  refs = 0;
  private nextId = 1;
  /** Attaches waiting for the workers' answers. */
  private attaching = 0;
  /** The workers were stopped (the last backend closed): a backend that got this set late starts another. */
  stopped = false;
  /** A worker failed: no new backend attaches here (the attached ones go on with the others). */
  broken = false;
  private readonly waiters = new Map<string, (m: string) => void>();

  private constructor() {}

  /** Starts `count` workers and waits until each is up. */
  static async start(count: number): Promise<WorkerSet> {
    const set = new WorkerSet();
    const up: Promise<void>[] = [];
    try {
      for (let i = 1; i <= count; i++) {
        up.push(new Promise<void>((resolve, reject) => {
          set.waiters.set(`up ${i}`, (m) => (m === "up" ? resolve() : reject(new Error(`wasm backend: worker ${i} failed: ${m}`))));
        }));
        const w = startWorker((m) => set.onMessage(i, m));
        set.workers.push(w);
        w.post({ wake: set.wake.buffer, index: i });
      }
      await Promise.all(up);
      for (const w of set.workers) w.unref();
    } catch (e) {
      set.stop();
      throw e;
    }
    return set;
  }

  private onMessage(worker: number, m: string): void {
    const [word, id] = m.split(" ", 2);
    if (word === "up") return this.settle(`up ${worker}`, m);
    if (word === "ready" || word === "failed") return this.settle(`${id} ${worker}`, m);
    // A worker that failed outside a command ("error: ..."): it is gone; waiters for it are told.
    if (word === "error:") {
      this.broken = true;
      for (const [k, f] of [...this.waiters]) if (k.endsWith(` ${worker}`)) {
        this.waiters.delete(k);
        f(m);
      }
    }
  }

  private settle(key: string, m: string): void {
    const f = this.waiters.get(key);
    this.waiters.delete(key);
    f?.(m);
  }

  private bump(word: number): void {
    Atomics.store(this.wake, WAKE_WORD, word);
    Atomics.add(this.wake, WAKE_SEQ, 1);
    Atomics.notify(this.wake, WAKE_SEQ);
  }

  /** Whether any worker is asleep (a command now would wait for its wake-up, tens of microseconds). */
  asleep(): boolean {
    return Atomics.load(this.wake, WAKE_ASLEEP) > 0;
  }

  /** Wakes sleeping workers with no command: they poll WARM_POLLS times, ready for the caller's next one. */
  warm(): void {
    if (Atomics.load(this.wake, WAKE_ASLEEP) > 0) this.bump(KIND_WARM << 29);
  }

  /** Attaches a memory: every worker instantiates `bytes` over it. Returns the attachment's id. */
  async attach(bytes: Uint8Array, memory: WebAssembly.Memory, ctl: number, scratch: (i: number) => number): Promise<number> {
    if (this.nextId >= MAX_ATTACHMENTS) throw new Error("wasm backend: worker set has no attachment ids left");
    const id = this.nextId++;
    this.refs++;
    const ready = this.workers.map((w, j) => new Promise<void>((resolve, reject) => {
      this.waiters.set(`${id} ${j + 1}`, (m) => (m.startsWith("ready") ? resolve() : reject(new Error(`wasm backend: worker ${j + 1} failed: ${m}`))));
      w.post({ id, bytes, memory, ctl, scratch: scratch(j + 1) });
      Atomics.add(this.wake, WAKE_PENDING + j + 1, 1);
    }));
    // NOTE: idle workers are unref'd; while any attach waits for them, they keep the process (and Deno's test) alive.
    if (this.attaching++ === 0) for (const w of this.workers) w.ref();
    this.bump(KIND_ATTACH << 29);
    try {
      await Promise.all(ready);
    } catch (e) {
      this.broken = true;
      this.detach(id);
      throw e;
    } finally {
      if (--this.attaching === 0) for (const w of this.workers) w.unref();
    }
    return id;
  }

  /** Wakes the workers for a command of attachment `id` at generation `gen` (of that memory's control block). */
  run(id: number, gen: number): void {
    this.bump((KIND_RUN << 29) | (id << 15) | gen);
  }

  /** Detaches `id` (the workers drop their instance when they next wake, which is now); the last one stops them. */
  detach(id: number): void {
    Atomics.or(this.wake, WAKE_DETACHED + (id >> 5), 1 << (id & 31));
    this.bump(KIND_DETACH << 29);
    if (--this.refs === 0) this.stop();
  }

  /** Stops the workers (each leaves its wait loop, then is terminated). */
  stop(): void {
    this.stopped = true;
    for (const [k, set] of SETS) if (set === this) SETS.delete(k);
    this.bump(KIND_EXIT << 29);
    for (const w of this.workers) w.terminate();
  }
}

/** The worker sets of this realm, by thread count (the caller included). */
const SETS = new Map<number, WorkerSet>();
/** Sets being started, so that backends created at once share one. */
const STARTING = new Map<number, Promise<WorkerSet>>();

async function workerSet(threads: number): Promise<WorkerSet> {
  const have = SETS.get(threads);
  if (have && !have.broken && !have.stopped) return have;
  let starting = STARTING.get(threads);
  if (!starting) {
    starting = WorkerSet.start(threads - 1).finally(() => STARTING.delete(threads));
    STARTING.set(threads, starting);
    const set = await starting;
    SETS.set(threads, set);
    return set;
  }
  return starting;
}

/** Workers running for the backends of this realm (tests: models share them). */
export function sharedWorkerCount(): number {
  let n = 0;
  for (const set of SETS.values()) n += set.workers.length;
  return n;
}

/** The worker pool of one backend (its attachment to a shared set of workers); `threads` counts the caller. */
export class ThreadPool {
  private readonly c: Int32Array;
  private readonly canWait: boolean;
  private closed = false;

  private constructor(private readonly k: Kernels, private readonly ctl: number, private readonly set: WorkerSet, private readonly id: number) {
    this.c = new Int32Array(k.memory.buffer, ctl, CONTROL_BYTES / 4);
    let canWait = true;
    try {
      Atomics.wait(this.c, SLOT_DONE, -1, 0); // throws where this thread may not block (a browser's main thread)
    } catch {
      canWait = false;
    }
    this.canWait = canWait;
  }

  /** Number of threads that share each op (the caller included). */
  get threads(): number {
    return this.set.workers.length + 1;
  }

  /**
   * Attaches k.memory to the shared set of `threads - 1` workers (starting it if this is the first backend
   * with that many threads). `bytes`: the threads build; `ctl`: CONTROL_BYTES of the memory for the control
   * block; `scratch(i)`: a block of k.scratchBytes() for worker i.
   */
  static async start(k: Kernels, bytes: Uint8Array, threads: number, ctl: number, scratch: (i: number) => number): Promise<ThreadPool> {
    const c = new Int32Array(k.memory.buffer, ctl, CONTROL_BYTES / 4);
    c.fill(0);
    let set = await workerSet(threads);
    // NOTE: the last backend of a set may close between the lookup and the attach: then start a new set.
    while (set.stopped) set = await workerSet(threads);
    const id = await set.attach(bytes, k.memory, ctl, scratch);
    return new ThreadPool(k, ctl, set, id);
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
    Atomics.store(c, SLOT_CLAIM, -1);
    c[SLOT_OP] = op;
    c[SLOT_CHUNKS] = Math.max(1, chunks);
    for (let i = 0; i < args.length; i++) c[ARGS + i] = args[i];
    const count = this.k.chunkCount(this.ctl);
    const gen = (Atomics.load(c, SLOT_GENERATION) + 1) & 0x7fff;
    Atomics.store(c, SLOT_DONE, 0);
    Atomics.store(c, SLOT_CLAIM, gen << 16);
    Atomics.store(c, SLOT_GENERATION, gen);
    this.set.run(this.id, gen);
    try {
      this.k.task(this.ctl, gen);
    } catch (e) {
      this.close(); // a trap here leaves the command half done: the pool cannot be trusted any more
      throw e;
    }
    let spin = SPIN_POLLS;
    for (;;) {
      const done = Atomics.load(c, SLOT_DONE);
      if (done >= count) break;
      if (Atomics.load(c, FAULT)) {
        this.close();
        throw new Error("wasm backend: a worker thread failed (see its error); the backend is closed");
      }
      if (spin > 0) spin--;
      else if (this.canWait) Atomics.wait(c, SLOT_DONE, done);
    }
  }

  /** Wakes the workers if they sleep, ahead of commands that follow some work of the caller's (see WARM_POLLS). */
  warm(): void {
    if (!this.closed) this.set.warm();
  }

  /**
   * `run` when every worker is polling, else `serial()` on this thread alone (which must compute the same):
   * for commands of a few microseconds' work, which a sleeping worker's wake-up would make slower than one
   * thread.
   */
  runShort(op: number, args: readonly number[], serial: () => void): void {
    if (this.set.asleep()) serial();
    else this.run(op, args);
  }

  /** Chunks each thread has run so far, the caller first (shows whether every worker takes part). */
  chunksRun(): number[] {
    return [this.k.chunksDone(), ...this.set.workers.map((_, i) => Atomics.load(this.c, COUNTS + i + 1))];
  }

  /** Detaches this backend from the shared workers (the last backend stops them). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.c, SLOT_CLAIM, -1);
    this.set.detach(this.id);
  }
}
