// Models and backends release what they hold: DiCModel.dispose() (and Symbol.asyncDispose) frees the
// weights and closes the backend loadModel created, so repeated load/dispose grows no threads; the graph's
// *Host methods free what they make, also when they throw halfway.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { loadDefaultModel, loadModel } from "../sdk/index.ts";
import { createBackend } from "../src/backend/registry.ts";
import { createWasmBackend, probeWasm } from "../src/backend/wasm/index.ts";
import { resolveConfig } from "../src/model/config.ts";
import { DiCGraph } from "../src/model/dic.ts";
import { randomWeights } from "../bench/lib/random-dic.ts";
import { randomVAEWeights } from "../bench/lib/random-vae.ts";
import { resolveVAEConfig } from "../src/vae/index.ts";
import { VAEDecoderGraph } from "../src/vae/decoder.ts";
import { test } from "./harness.ts";
import { modelPath } from "./protocol-refusals.ts";

const bytes = new Uint8Array(readFileSync(modelPath));

/** OS threads of this process (Linux), or null where /proc is absent. */
function threads(): number | null {
  let text: string;
  try {
    if (!existsSync("/proc/self/status")) return null;
    text = readFileSync("/proc/self/status", "utf8");
  } catch {
    // NOTE: Deno reads /proc only with --allow-all; a child process reads it with --allow-run.
    text = execFileSync("cat", [`/proc/${process.pid}/status`], { encoding: "utf8" });
  }
  const m = /^Threads:\s+(\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

async function settle(want: (n: number) => boolean): Promise<number | null> {
  let n = threads();
  for (let i = 0; i < 50 && n !== null && !want(n); i++) {
    await new Promise((r) => setTimeout(r, 100));
    n = threads();
  }
  return n;
}

/** The thread count once it has held still for 300 ms (a runtime may reap a stopped worker's thread late). */
async function steady(): Promise<number | null> {
  let n = threads(), same = 0;
  for (let i = 0; i < 50 && n !== null && same < 3; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const m = threads();
    same = m === n ? same + 1 : 0;
    n = m;
  }
  return n;
}

test("20 load/dispose cycles of a threaded wasm model add no threads", async () => {
  const probe = await createBackend("wasm", { threads: 2 });
  const threaded = (probe.backend as { threads?: number }).threads === 2;
  probe.backend.close();
  if (!threaded || threads() === null) {
    console.log("lifecycle: no wasm threads or no /proc here; checking dispose only");
  }
  // One cycle first: runtimes start helper threads of their own on first use.
  (await loadModel(bytes, { backend: "wasm" })).dispose();
  const before = await settle(() => true);
  for (let i = 0; i < 20; i++) {
    const m = await loadModel(bytes, { backend: "wasm" });
    await m.forward({ shape: [1, 1, 28, 28], data: new Float32Array(784) }, [10], [1]);
    m.dispose();
    m.dispose(); // idempotent
  }
  if (before !== null) {
    const after = await settle((n) => n <= before + 1);
    assert.ok(after! <= before + 1, `threads ${before} -> ${after} after 20 load/dispose cycles`);
  }
});

test("a disposed model refuses to run; loadDefaultModel loads a fresh one; Symbol.asyncDispose disposes", async () => {
  const m = await loadDefaultModel("js");
  m.dispose();
  assert.ok(m.disposed);
  await assert.rejects(m.forward({ shape: [1, 1, 28, 28], data: new Float32Array(784) }, [1], [1]), /disposed/);
  const again = await loadDefaultModel("js");
  assert.notEqual(again, m);
  assert.ok(!again.disposed);
  const sym = (Symbol as { asyncDispose?: symbol }).asyncDispose;
  if (sym) {
    const n = await loadModel(bytes, { backend: "js" });
    await (n as unknown as Record<symbol, () => Promise<void>>)[sym]();
    assert.ok(n.disposed);
  }
  // A Backend instance passed in is the caller's: dispose leaves it open.
  const { backend } = await createBackend("js");
  const mine = await loadModel(bytes, { backend });
  mine.dispose();
  const t = backend.upload({ shape: [1], data: new Float32Array([2]) });
  assert.deepEqual([...(await backend.download(t)).data], [2]);
});

test("forwardHost, encodeHost and decodeHost free every tensor they make, on success and on a throw", async () => {
  if (probeWasm() !== null) return; // live bytes are counted by the wasm backend
  const config = resolveConfig({ input_size: 8, in_channels: 3, hidden_size: 12, depth: [1, 1, 1, 1, 1], num_classes: 5 });
  const b = await createWasmBackend({ threads: 1 });
  try {
    const g = new DiCGraph(b, config, new Map([...randomWeights(config, 3)].map(([k, v]) => [k, b.upload(v)])));
    const live = () => b.memoryStats().liveBytes;
    const x = { shape: [2, 3, 8, 8], data: new Float32Array(2 * 3 * 64).fill(0.5) };
    const [t, y] = [[10, 500], [1, 4]];
    await g.decodeHost(await g.encodeHost(x, t, y), t, y); // weights get the packed forms they run in on first use
    const base = live();
    const full = await g.forwardHost(x, t, y);
    assert.equal(live(), base, "forwardHost");
    const enc = await g.encodeHost(x, t, y);
    assert.equal(live(), base, "encodeHost");
    const out = await g.decodeHost(enc, t, y);
    assert.equal(live(), base, "decodeHost");
    assert.deepEqual([...out.data], [...full.data], "encodeHost then decodeHost == forwardHost");
    await assert.rejects(g.encodeHost({ shape: [2, 3, 8, 4], data: new Float32Array(2 * 3 * 32) }, t, y));
    assert.equal(live(), base, "encodeHost that throws");
    await assert.rejects(g.decodeHost({ bottleneck: enc.bottleneck, skips: enc.skips.slice(1) }, t, y));
    assert.equal(live(), base, "decodeHost with a skip missing");
    // An op that fails halfway through a run (as a memory budget would): the run frees its intermediates.
    const conv = b.conv3x3;
    for (const failAt of [3, 7]) {
      let calls = 0;
      b.conv3x3 = (...a) => {
        if (++calls === failAt) throw new Error("conv3x3 failed");
        return conv(...a);
      };
      await assert.rejects(g.forwardHost(x, t, y), /conv3x3 failed/);
      assert.equal(live(), base, `forwardHost failing at conv3x3 call ${failAt}`);
      calls = 0;
      await assert.rejects(g.decodeHost(enc, t, y), /conv3x3 failed/);
      assert.equal(live(), base, `decodeHost failing at conv3x3 call ${failAt}`);
      calls = 0;
      const xt = b.upload(x);
      assert.throws(() => g.forward(xt, t, y), /conv3x3 failed/);
      b.free(xt);
      assert.equal(live(), base, `forward failing at conv3x3 call ${failAt}`);
    }
    b.conv3x3 = conv;
    assert.deepEqual([...(await g.forwardHost(x, t, y)).data], [...full.data], "the graph still runs after the failures");
  } finally {
    b.close();
  }
});

test("a VAE decode that fails halfway frees its intermediates", async () => {
  if (probeWasm() !== null) return;
  const config = resolveVAEConfig({ block_out_channels: [8, 8, 16, 16], layers_per_block: 1, norm_groups: 4 });
  const b = await createWasmBackend({ threads: 1 });
  try {
    const vae = new VAEDecoderGraph(b, config, new Map([...randomVAEWeights(config, 9)].map(([k, v]) => [k, b.upload(v)])));
    const z = b.upload({ shape: [1, config.latent_channels, 3, 3], data: new Float32Array(config.latent_channels * 9).fill(0.3) });
    b.free(vae.decode(z)); // weights get the packed forms they run in on first use
    const base = b.memoryStats().liveBytes;
    const conv = b.conv3x3;
    let calls = 0;
    b.conv3x3 = (...a) => {
      if (++calls === 6) throw new Error("conv3x3 failed");
      return conv(...a);
    };
    assert.throws(() => vae.decode(z), /conv3x3 failed/);
    b.conv3x3 = conv;
    assert.equal(b.memoryStats().liveBytes, base);
    b.free(z);
  } finally {
    b.close();
  }
});

test("models share one worker pool: three threaded wasm models start one set of workers; it stops with the last", async () => {
  const { sharedWorkerCount } = await import("../src/backend/wasm/threads.ts");
  const probe = await createBackend("wasm", { threads: 3 });
  const threaded = (probe.backend as { threads?: number }).threads === 3;
  probe.backend.close();
  if (!threaded) {
    console.log("lifecycle: no wasm threads here; checking dispose only");
    return;
  }
  assert.equal(sharedWorkerCount(), 0, "no workers while no threaded backend is open");
  const x = { shape: [1, 1, 28, 28], data: new Float32Array(784).fill(0.1) };
  const before = await steady();
  const one = await loadModel(bytes, { backend: "wasm", threads: 3 });
  const want = await one.forward(x, [10], [1]);
  const withOne = await steady();
  // Two more, one of them loaded while another loads: still the same two workers.
  const [two, three] = await Promise.all([loadModel(bytes, { backend: "wasm", threads: 3 }), loadModel(bytes, { backend: "wasm", threads: 3 })]);
  assert.equal(sharedWorkerCount(), 2, "three models with 3 threads share 2 workers");
  if (withOne !== null) {
    const withThree = await steady();
    assert.ok(withThree! <= withOne + 1, `threads ${before} -> ${withOne} with one model -> ${withThree} with three`);
  }
  for (const m of [one, two, three]) assert.equal((m.backend as { threads?: number }).threads, 3);
  // Disposing one leaves the workers to the others, which compute as before.
  one.dispose();
  assert.equal(sharedWorkerCount(), 2);
  assert.deepEqual((await two.forward(x, [10], [1])).data, want.data);
  assert.deepEqual((await three.forward(x, [10], [1])).data, want.data);
  two.dispose();
  three.dispose();
  assert.equal(sharedWorkerCount(), 0, "the last dispose stops the workers");
  if (before !== null) {
    const after = await settle((n) => n <= before + 1);
    assert.ok(after! <= before + 1, `threads ${before} -> ${after} after disposing all three`);
  }
});
