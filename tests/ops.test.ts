// The shared backend suite (after ggml's test-backend-ops and TF.js's shared suite): every op of the
// Backend contract, on the js reference vs PyTorch fp32 fixtures (reference/fixtures_ops.py), then every
// other available backend vs js on the same inputs, plus fixture-free properties and contract errors.
//
// How to add an op (docs/ARCHITECTURE.md): (1) declare it in src/backend/contract.ts (the `Backend` interface,
// `OP_NAMES` and its rule in `OP_RULES`; `RUNNERS` below
// then stops compiling until step 4); (2) implement it in the js reference, src/backend/js/; (3) implement
// it in each fast backend (src/backend/wasm/, src/backend/webgpu/, ...); (4) add its PyTorch cases to
// `CASES` in reference/fixtures_ops.py (non-zero data, odd sizes, batch 1 and 3, channels not multiples of
// 4) and run `npm run fixtures`, add a runner to `RUNNERS` here and its measured tolerance to
// `JS_VS_TORCH_OP` in tests/tolerances.ts; (5) add its shape errors to `errorCases`. Every backend that
// `listBackends()` reports available is then checked against js with no further change, on the ops its
// `supports` declaration names.
import assert from "node:assert/strict";
import { type Backend, type ChannelSlice, checked, isChecked, isFreed, scope as tensorScope, type NormPreOp, OP_NAMES, type OpName, type Tensor, type TensorRole, UnsupportedOpError } from "../src/backend/contract.ts";
import { createBackend, listBackends } from "../src/backend/registry.ts";
import { GaussianRng } from "../src/rng.ts";
import { type HostTensor, numel, shapeStr } from "../src/tensor.ts";
import type { SafetensorsFile } from "../src/weights/safetensors.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";
import { fixturesDir, relL2, runtimeName, test } from "./harness.ts";
import { COMPACT_F16_VS_JS_OP, COMPACT_INT8_VS_JS_OP, FAST_F32_VS_JS, FUSED_PREOP_VS_UNFUSED, JS_VS_TORCH_OP } from "./tolerances.ts";
import { createWasmBackend, probeWasm } from "../src/backend/wasm/index.ts";


// ----- fixture cases: params as reference/fixtures_ops.py writes them -------------------------------------
interface SliceSpec { tensor: string; offset: number }
interface PreSpec {
  norm: "group" | "layer";
  groups?: number;
  eps: number;
  affine: boolean;
  modulate?: { scale: SliceSpec; shift: SliceSpec };
  act: "gelu" | "silu" | "none";
}
interface Params { bias?: boolean; pre?: PreSpec | null; act?: "silu" | "none"; gate?: SliceSpec | null; ids?: number[]; r?: number }
interface Case { name: string; desc: string; params: Params; torchF32VsF64?: number }
/** Uploads the case's tensor `<case>.<name>` once per backend and returns its handle. */
type Input = (name: string, role?: TensorRole) => Tensor;

function preOp(p: PreSpec, t: Input): NormPreOp {
  const slice = (s: SliceSpec): ChannelSlice => ({ tensor: t(s.tensor), offset: s.offset });
  return {
    norm: p.norm, groups: p.groups, eps: p.eps, act: p.act,
    weight: p.affine ? t("norm_weight", "vector") : undefined,
    bias: p.affine ? t("norm_bias", "vector") : undefined,
    modulate: p.modulate ? { scale: slice(p.modulate.scale), shift: slice(p.modulate.shift) } : undefined,
  };
}

/** How each op runs a fixture case. NOTE: a Record over OpName, so a new contract op must get a runner. */
const RUNNERS: Record<OpName, (b: Backend, p: Params, t: Input) => Tensor> = {
  conv3x3: (b, p, t) => b.conv3x3(t("x"), t("weight", "conv3x3.weight"), p.bias ? t("bias", "vector") : null, p.pre ? preOp(p.pre, t) : undefined),
  conv1x1: (b, p, t) => b.conv1x1(t("x"), t("weight", "conv1x1.weight"), p.bias ? t("bias", "vector") : null),
  linear: (b, p, t) => b.linear(t("x"), t("weight", "linear.weight"), p.bias ? t("bias", "vector") : null, p.act),
  normalize: (b, p, t) => b.normalize(t("x"), preOp(p.pre!, t)),
  gateAdd: (b, p, t) => b.gateAdd(t("h"), p.gate ? { tensor: t(p.gate.tensor), offset: p.gate.offset } : null, t("residual")),
  add: (b, _p, t) => b.add(t("a"), t("b")),
  gather: (b, p, t) => b.gather(t("table", "table"), p.ids!),
  pixelShuffle: (b, p, t) => b.pixelShuffle(t("x"), p.r!),
  pixelUnshuffle: (b, p, t) => b.pixelUnshuffle(t("x"), p.r!),
  concat: (b, _p, t) => b.concat(t("a"), t("b")),
  upsampleNearest: (b, p, t) => b.upsampleNearest(t("x"), p.r!),
  attention: (b, _p, t) => b.attention(t("q"), t("k"), t("v")),
};
const OPS = Object.keys(RUNNERS) as OpName[];
/** Whether a backend computes an op (its supports declaration; absent: every op). */
const computes = (b: Backend, op: OpName) => b.supports?.(op) ?? true;

/** Runs one case on one backend, downloads the result and frees everything it uploaded. */
async function runCase(b: Backend, op: OpName, file: SafetensorsFile, c: Case): Promise<HostTensor> {
  const owned = new Map<string, Tensor>();
  const input: Input = (name, role = "activation") => {
    let u = owned.get(name);
    if (!u) {
      const key = `${c.name}.${name}`;
      const entry = file.tensors.get(key);
      if (!entry) throw new Error(`${file.source}: case ${c.name} has no tensor ${key}`);
      u = b.upload({ shape: [...entry.shape], data: file.getF32(key) }, role);
      owned.set(name, u);
    }
    return u;
  };
  const out: Tensor[] = [];
  try {
    out.push(RUNNERS[op](b, c.params, input));
    return await b.download(out[0]);
  } finally {
    for (const t of [...owned.values(), ...out]) b.free(t);
  }
}

// ----- backends: js is the reference; every other available one is compared with it ---------------------
const js = (await createBackend("js")).backend;
const others: Backend[] = [];
const notRun: string[] = [];
for (const e of await listBackends()) {
  if (e.name === js.name) continue;
  if (!e.available) {
    notRun.push(`${e.name}: ${e.why}`);
    continue;
  }
  try {
    others.push((await createBackend(e.name)).backend);
  } catch (err) {
    notRun.push(`${e.name}: reported available but creating it failed: ${(err as Error).message}`);
  }
}
const all = [js, ...others];
/**
 * Every backend compared with js on the fixture cases, with its tolerance: the available ones (f32), then the
 * wasm backend's compact storage modes (conv3x3 and linear weights as f16 / int8; every other op is f32).
 */
const compared: { b: Backend; label: string; tol: (op: OpName) => number }[] = others.map((b) => ({ b, label: b.name, tol: () => FAST_F32_VS_JS }));
if (probeWasm() === null) {
  for (const [storage, tol] of [["f16", COMPACT_F16_VS_JS_OP], ["int8", COMPACT_INT8_VS_JS_OP]] as const) {
    compared.push({ b: await createWasmBackend({ storage, threads: 1 }), label: `wasm ${storage} storage`, tol: (op) => (op === "conv3x3" || op === "linear" ? tol : FAST_F32_VS_JS) });
  }
}

test("ops: backends under test", () => {
  const compared = others.length ? others.map((b) => b.description).join("; ")
    : `none (${notRun.length ? "no backend but js can run here" : "js is the only registered backend"})`;
  console.log(`ops [${runtimeName}]: js vs PyTorch; compared with js: ${compared}; could not run: ${notRun.length ? notRun.join("; ") : "none"}`);
  assert.ok(!notRun.some((w) => w.includes("reported available")), notRun.join("; "));
});

// ----- fixture cases: js vs PyTorch, then each other backend vs js ----------------------------------------
/** Max relative L2 per op and comparison ("js vs torch", "wasm vs js", ...), for the summary line. */
const worst = new Map<string, Map<string, number>>();
function record(op: string, what: string, err: number): void {
  const m = worst.get(op) ?? new Map<string, number>();
  m.set(what, Math.max(m.get(what) ?? 0, err));
  worst.set(op, m);
}

for (const op of OPS) {
  const path = `${fixturesDir}ops_${op}.safetensors`;
  let file: SafetensorsFile;
  try {
    file = await readSafetensorsFile(path);
  } catch (e) {
    test(`ops ${op}: fixture`, () => {
      assert.fail(`${path}: cannot read (run \`npm run fixtures\` or \`python3 reference/fixtures_ops.py tests/fixtures/gen\`): ${e}`);
    });
    continue;
  }
  const cases = JSON.parse(file.metadata.cases ?? "[]") as Case[];
  const tol = JS_VS_TORCH_OP[op];
  test(`ops ${op}: fixture has cases and a tolerance`, () => {
    assert.equal(file.metadata.op, op, `${path}: metadata op`);
    assert.ok(cases.length > 0, `${path}: no cases`);
    assert.ok(tol !== undefined, `tests/tolerances.ts: JS_VS_TORCH_OP has no entry for ${op}`);
  });
  for (const c of cases) {
    test(`ops ${op} ${c.name}`, async () => {
      const want = file.getF32(`${c.name}.out`);
      const wantShape = [...file.tensors.get(`${c.name}.out`)!.shape];
      const ref = await runCase(js, op, file, c);
      assert.deepEqual(ref.shape, wantShape, `${c.desc}: js output shape`);
      const err = relL2(ref.data, want);
      record(op, "js vs torch", err);
      record(op, "torch fp32 vs fp64", c.torchF32VsF64 ?? 0);
      const problems = err <= tol ? [] : [`js vs torch: relative L2 ${err.toExponential(2)} > ${tol}`];
      for (const { b, label, tol: tolOf } of compared) {
        if (!computes(b, op)) continue;
        try {
          const got = await runCase(b, op, file, c);
          const e = got.shape.join() === ref.shape.join() ? relL2(got.data, ref.data) : Infinity;
          record(op, `${label} vs js`, e);
          if (!(e <= tolOf(op))) problems.push(`${label} vs js: shape ${shapeStr(got.shape)}, relative L2 ${e.toExponential(2)} > ${tolOf(op)}`);
        } catch (e) {
          problems.push(`${label} threw: ${(e as Error).message}`);
        }
      }
      assert.ok(problems.length === 0, `${c.desc}: ${problems.join("; ")}`);
    });
  }
}

test("ops: summary of measured errors", () => {
  for (const [op, m] of worst) {
    const parts = [...m].filter(([what]) => !what.startsWith("torch")).map(([what, e]) => `${what} ${e.toExponential(2)}`);
    const floor = m.get("torch fp32 vs fp64")!.toExponential(2);
    console.log(`ops [${runtimeName}] ${op}: max relative L2 ${parts.join(", ")} (tolerance ${JS_VS_TORCH_OP[op]}; torch fp32 vs fp64 ${floor})`);
  }
});

// ----- fixture-free properties on random data, on every backend -------------------------------------------
const rng = new GaussianRng(20250131);
/** Tensors made in one test, freed together at its end. */
function scope(b: Backend) {
  const owned = new Set<Tensor>();
  const keep = (t: Tensor): Tensor => (owned.add(t), t);
  return {
    keep,
    rand: (shape: number[], role: TensorRole = "activation") => keep(b.upload({ shape, data: rng.fill(new Float32Array(numel(shape))) }, role)),
    put: (shape: number[], data: Float32Array, role: TensorRole) => keep(b.upload({ shape, data }, role)),
    host: async (t: Tensor) => (await b.download(keep(t))).data,
    free: () => {
      owned.forEach((t) => b.free(t));
      owned.clear();
    },
  };
}

for (const b of all) {
  test(`ops [${b.name}]: pixelShuffle and pixelUnshuffle invert each other, r = 1, 2, 3`, async () => {
    const s = scope(b);
    for (const [shape, r] of [[[3, 5, 6, 12], 2], [[1, 2, 9, 9], 3], [[1, 7, 3, 3], 3], [[3, 1, 2, 2], 2], [[1, 3, 5, 7], 1]] as [number[], number][]) {
      const x = s.rand(shape);
      const want = await s.host(x);
      const down = s.keep(b.pixelUnshuffle(x, r));
      assert.deepEqual([...down.shape], [shape[0], shape[1] * r * r, shape[2] / r, shape[3] / r]);
      assert.deepEqual(await s.host(b.pixelShuffle(down, r)), want, `unshuffle then shuffle, r=${r} ${shapeStr(shape)}`);
    }
    const y = s.rand([3, 18, 5, 7]);
    assert.deepEqual(await s.host(b.pixelUnshuffle(s.keep(b.pixelShuffle(y, 3)), 3)), await s.host(y), "shuffle then unshuffle, r=3 [3, 18, 5, 7]");
    s.free();
  });

  test(`ops [${b.name}]: concat then split on the host gives the parts back`, async () => {
    const s = scope(b);
    for (const [n, ca, cb, h, w] of [[3, 5, 3, 7, 7], [1, 1, 96, 1, 1], [2, 6, 10, 5, 12]]) {
      const [a, c] = [s.rand([n, ca, h, w]), s.rand([n, cb, h, w])];
      const [av, cv] = [await s.host(a), await s.host(c)];
      const cat = s.keep(b.concat(a, c));
      assert.deepEqual([...cat.shape], [n, ca + cb, h, w]);
      const got = await s.host(cat);
      const [hw, ct] = [h * w, ca + cb];
      for (let i = 0; i < n; i++) {
        assert.deepEqual(got.subarray(i * ct * hw, (i * ct + ca) * hw), av.subarray(i * ca * hw, (i + 1) * ca * hw), `sample ${i}: a`);
        assert.deepEqual(got.subarray((i * ct + ca) * hw, (i + 1) * ct * hw), cv.subarray(i * cb * hw, (i + 1) * cb * hw), `sample ${i}: b`);
      }
    }
    s.free();
  });

  test(`ops [${b.name}]: conv3x3 with a fused pre-op == normalize then conv3x3`, async () => {
    const s = scope(b);
    const [n, c, h, w, co] = [3, 10, 5, 7, 6];
    const cond = s.rand([n, 3 * c]);
    const pres: NormPreOp[] = [
      { norm: "group", groups: 2, eps: 1e-5, act: "gelu" },
      { norm: "group", groups: 5, eps: 1e-5, weight: s.rand([c], "vector"), bias: s.rand([c], "vector"),
        modulate: { scale: { tensor: cond, offset: c }, shift: { tensor: cond, offset: 2 * c } }, act: "gelu" },
      { norm: "layer", eps: 1e-6, modulate: { scale: { tensor: cond, offset: 1 }, shift: { tensor: cond, offset: 17 } }, act: "none" },
      { norm: "group", groups: 5, eps: 1e-6, weight: s.rand([c], "vector"), bias: s.rand([c], "vector"), act: "silu" },
    ];
    const [x, wt, bias] = [s.rand([n, c, h, w]), s.rand([co, c, 3, 3], "conv3x3.weight"), s.rand([co], "vector")];
    for (const pre of pres) {
      const fused = await s.host(b.conv3x3(x, wt, bias, pre));
      const staged = await s.host(b.conv3x3(s.keep(b.normalize(x, pre)), wt, bias));
      const err = relL2(fused, staged);
      assert.ok(err <= FUSED_PREOP_VS_UNFUSED, `${pre.norm} norm pre-op: fused vs staged relative L2 ${err}`);
    }
    s.free();
  });

  test(`ops [${b.name}]: gateAdd without gate == add; conv1x1 == conv3x3 with only the centre tap`, async () => {
    const s = scope(b);
    const [h, r] = [s.rand([3, 6, 5, 12]), s.rand([3, 6, 5, 12])];
    assert.deepEqual(await s.host(b.gateAdd(h, null, r)), await s.host(b.add(h, r)));
    const [ci, co] = [5, 18];
    const w1 = rng.fill(new Float32Array(co * ci));
    const w3 = new Float32Array(co * ci * 9);
    w1.forEach((v, i) => (w3[i * 9 + 4] = v));
    const [x, bias] = [s.rand([3, ci, 7, 7]), s.rand([co], "vector")];
    const one = await s.host(b.conv1x1(x, s.put([co, ci, 1, 1], w1, "conv1x1.weight"), bias));
    const three = await s.host(b.conv3x3(x, s.put([co, ci, 3, 3], w3, "conv3x3.weight"), bias));
    assert.ok(relL2(three, one) <= FAST_F32_VS_JS, `conv3x3 centre tap vs conv1x1: ${relL2(three, one)}`);
    s.free();
  });
}

// ----- contract errors: each throws an error naming the op and the offending shape (or index) ------------
interface ErrorCase { what: string; mentions: string[]; run: (b: Backend, t: (shape: number[]) => Tensor) => unknown }
const errorCases: ErrorCase[] = [
  { what: "conv3x3 weight with the wrong input channels", mentions: ["conv3x3", "[6, 3, 3, 3]"], run: (b, t) => b.conv3x3(t([1, 4, 5, 5]), t([6, 3, 3, 3]), null) },
  { what: "conv3x3 weight with a 1x1 kernel", mentions: ["conv3x3", "[6, 4, 1, 1]"], run: (b, t) => b.conv3x3(t([1, 4, 5, 5]), t([6, 4, 1, 1]), null) },
  { what: "conv3x3 bias of the wrong length", mentions: ["conv3x3", "[5]"], run: (b, t) => b.conv3x3(t([1, 4, 5, 5]), t([6, 4, 3, 3]), t([5])) },
  { what: "conv3x3 input that is not 4-D", mentions: ["conv3x3", "[4, 5, 5]"], run: (b, t) => b.conv3x3(t([4, 5, 5]), t([6, 4, 3, 3]), null) },
  { what: "conv1x1 weight with a 3x3 kernel", mentions: ["conv1x1", "[6, 4, 3, 3]"], run: (b, t) => b.conv1x1(t([1, 4, 5, 5]), t([6, 4, 3, 3]), null) },
  { what: "conv1x1 weight with the wrong input channels", mentions: ["conv1x1", "[6, 5, 1, 1]"], run: (b, t) => b.conv1x1(t([3, 4, 2, 2]), t([6, 5, 1, 1]), t([6])) },
  { what: "linear weight with the wrong K", mentions: ["linear", "[8, 6]"], run: (b, t) => b.linear(t([2, 5]), t([8, 6]), null) },
  { what: "linear bias of the wrong length", mentions: ["linear", "[7]"], run: (b, t) => b.linear(t([2, 5]), t([8, 5]), t([7]), "silu") },
  { what: "normalize norm weight of the wrong length", mentions: ["normalize", "[5]"],
    run: (b, t) => b.normalize(t([1, 4, 3, 3]), { norm: "group", groups: 2, eps: 1e-5, weight: t([5]), bias: t([4]), act: "gelu" }) },
  { what: "conv3x3 pre-op scale slice past the end of its tensor", mentions: ["conv3x3", "[1, 6]"],
    run: (b, t) => { const s = t([1, 6]); return b.conv3x3(t([1, 4, 3, 3]), t([2, 4, 3, 3]), null, { norm: "layer", eps: 1e-6, act: "none", modulate: { scale: { tensor: s, offset: 4 }, shift: { tensor: s, offset: 0 } } }); } },
  { what: "normalize modulate slice with the wrong batch", mentions: ["normalize", "[1, 8]"],
    run: (b, t) => { const s = t([1, 8]); return b.normalize(t([2, 4, 3, 3]), { norm: "group", groups: 2, eps: 1e-5, act: "gelu", modulate: { scale: { tensor: s, offset: 4 }, shift: { tensor: s, offset: 0 } } }); } },
  { what: "gateAdd gate slice past the end of its tensor", mentions: ["gateAdd", "[2, 6]"], run: (b, t) => b.gateAdd(t([2, 4, 3, 3]), { tensor: t([2, 6]), offset: 3 }, t([2, 4, 3, 3])) },
  { what: "gateAdd gate slice at a negative offset", mentions: ["gateAdd", "[2, 12]"], run: (b, t) => b.gateAdd(t([2, 4, 3, 3]), { tensor: t([2, 12]), offset: -1 }, t([2, 4, 3, 3])) },
  { what: "gateAdd residual of another shape", mentions: ["gateAdd", "[2, 4, 3, 4]"], run: (b, t) => b.gateAdd(t([2, 4, 3, 3]), null, t([2, 4, 3, 4])) },
  { what: "add of two shapes", mentions: ["add", "[1, 3, 2, 2]"], run: (b, t) => b.add(t([1, 4, 2, 2]), t([1, 3, 2, 2])) },
  { what: "concat of two spatial sizes", mentions: ["concat", "[1, 2, 4, 5]"], run: (b, t) => b.concat(t([1, 3, 4, 4]), t([1, 2, 4, 5])) },
  { what: "gather index past the last row", mentions: ["gather", "7", "5"], run: (b, t) => b.gather(t([5, 3]), [1, 7]) },
  { what: "gather negative index", mentions: ["gather", "-1"], run: (b, t) => b.gather(t([5, 3]), [-1]) },
  { what: "gather non-integer index", mentions: ["gather", "1.5"], run: (b, t) => b.gather(t([5, 3]), [1.5]) },
  { what: "pixelShuffle channels not divisible by r*r", mentions: ["pixelShuffle", "6"], run: (b, t) => b.pixelShuffle(t([1, 6, 2, 2]), 2) },
  { what: "pixelUnshuffle size not divisible by r", mentions: ["pixelUnshuffle", "5", "12"], run: (b, t) => b.pixelUnshuffle(t([1, 3, 5, 12]), 2) },
  { what: "upload with data of the wrong length", mentions: ["upload", "[2, 3]"], run: (b) => b.upload({ shape: [2, 3], data: new Float32Array(5) }) },
  { what: "conv3x3 on a freed input", mentions: ["conv3x3", "[1, 4, 5, 5]", "freed"], run: (b, t) => { const x = t([1, 4, 5, 5]); b.free(x); return b.conv3x3(x, t([6, 4, 3, 3]), null); } },
  { what: "conv3x3 with a freed bias", mentions: ["conv3x3", "[6]", "freed"], run: (b, t) => { const bias = t([6]); b.free(bias); return b.conv3x3(t([1, 4, 5, 5]), t([6, 4, 3, 3]), bias); } },
  { what: "gateAdd with a freed gate tensor", mentions: ["gateAdd", "[2, 12]", "freed"], run: (b, t) => { const g = t([2, 12]); b.free(g); return b.gateAdd(t([2, 4, 3, 3]), { tensor: g, offset: 0 }, t([2, 4, 3, 3])); } },
  { what: "download of a freed tensor", mentions: ["download", "[3, 2]", "freed"], run: (b, t) => { const x = t([3, 2]); b.free(x); return b.download(x); } },
  { what: "linear input that is not 2-D", mentions: ["linear", "[2, 3, 5]"], run: (b, t) => b.linear(t([2, 3, 5]), t([8, 3]), null) },
  { what: "conv1x1 input that is not 4-D", mentions: ["conv1x1", "[1, 4, 5, 5, 1]"], run: (b, t) => b.conv1x1(t([1, 4, 5, 5, 1]), t([6, 4, 1, 1]), null) },
  { what: "gateAdd on a 3-D tensor", mentions: ["gateAdd", "[2, 2, 2]"], run: (b, t) => b.gateAdd(t([2, 2, 2]), null, t([2, 2, 2])) },
  { what: "gateAdd gate at a fractional offset", mentions: ["gateAdd", "0.5"], run: (b, t) => b.gateAdd(t([2, 4, 3, 3]), { tensor: t([2, 12]), offset: 0.5 }, t([2, 4, 3, 3])) },
  { what: "gather from a 1-D table", mentions: ["gather", "[5]"], run: (b, t) => b.gather(t([5]), [1]) },
  { what: "pixelShuffle with a negative factor", mentions: ["pixelShuffle", "-1"], run: (b, t) => b.pixelShuffle(t([1, 4, 2, 2]), -1) },
  { what: "pixelUnshuffle with a fractional factor", mentions: ["pixelUnshuffle", "1.5"], run: (b, t) => b.pixelUnshuffle(t([1, 1, 3, 3]), 1.5) },
  { what: "normalize on a 3-D tensor", mentions: ["normalize", "[4, 5, 5]"], run: (b, t) => b.normalize(t([4, 5, 5]), { norm: "group", groups: 1, eps: 1e-5, act: "gelu" }) },
  { what: "group norm without groups", mentions: ["normalize", "[1, 4, 3, 3]", "groups"], run: (b, t) => b.normalize(t([1, 4, 3, 3]), { norm: "group", eps: 1e-5, act: "gelu" }) },
  { what: "group norm whose groups do not divide the channels", mentions: ["conv3x3", "[1, 10, 3, 3]", "3"], run: (b, t) => b.conv3x3(t([1, 10, 3, 3]), t([2, 10, 3, 3]), null, { norm: "group", groups: 3, eps: 1e-5, act: "gelu" }) },
  { what: "norm weight without bias", mentions: ["normalize", "[1, 4, 3, 3]", "bias"], run: (b, t) => b.normalize(t([1, 4, 3, 3]), { norm: "layer", eps: 1e-6, weight: t([4]), act: "none" }) },
  { what: "a non-positive eps", mentions: ["normalize", "eps"], run: (b, t) => b.normalize(t([1, 4, 3, 3]), { norm: "layer", eps: -1, act: "none" }) },
  { what: "upload with a fractional dimension", mentions: ["upload", "[2.5, 2]"], run: (b) => b.upload({ shape: [2.5, 2], data: new Float32Array(5) }) },
  { what: "free twice", mentions: ["free", "[3, 2]", "freed"], run: (b, t) => { const x = t([3, 2]); b.free(x); b.free(x); } },
  { what: "a tensor that no backend made", mentions: ["conv1x1"], run: (b, t) => b.conv1x1({ shape: [1, 4, 2, 2] }, t([6, 4, 1, 1]), null) },
  { what: "an unknown pre-op activation", mentions: ["normalize", "[1, 4, 3, 3]", "relu", "silu"],
    run: (b, t) => b.normalize(t([1, 4, 3, 3]), { norm: "group", groups: 2, eps: 1e-6, act: "relu" as "silu" }) },
  { what: "upsampleNearest with a fractional factor", mentions: ["upsampleNearest", "1.5"], run: (b, t) => b.upsampleNearest(t([1, 2, 3, 3]), 1.5) },
  { what: "upsampleNearest on a 3-D tensor", mentions: ["upsampleNearest", "[2, 3, 3]"], run: (b, t) => b.upsampleNearest(t([2, 3, 3]), 2) },
  { what: "attention with k of another shape", mentions: ["attention", "[1, 4, 3, 2]"], run: (b, t) => b.attention(t([1, 4, 3, 3]), t([1, 4, 3, 2]), t([1, 4, 3, 3])) },
  { what: "attention with v of other channels", mentions: ["attention", "[1, 5, 3, 3]"], run: (b, t) => b.attention(t([1, 4, 3, 3]), t([1, 4, 3, 3]), t([1, 5, 3, 3])) },
  { what: "attention on 2-D tensors", mentions: ["attention", "[4, 9]"], run: (b, t) => b.attention(t([4, 9]), t([4, 9]), t([4, 9])) },
];

for (const b of all) {
  test(`ops [${b.name}]: contract errors name the op and the shape`, async () => {
    const missed: string[] = [];
    for (const c of errorCases) {
      const owned: Tensor[] = [];
      const t = (shape: number[]) => {
        const u = b.upload({ shape, data: rng.fill(new Float32Array(numel(shape))) });
        owned.push(u);
        return u;
      };
      let msg: string | null = null;
      try {
        const r = c.run(b, t);
        if (r instanceof Promise) await r;
      } catch (e) {
        msg = (e as Error).message;
      }
      for (const u of owned) try { b.free(u); } catch { /* freed by the case itself */ }
      if (msg === null) missed.push(`${c.what}: did not throw`);
      else if (!c.mentions.every((m) => msg!.includes(m))) missed.push(`${c.what}: "${msg}" does not mention ${c.mentions.join(", ")}`);
    }
    assert.ok(missed.length === 0, missed.join("\n"));
  });
}

// ----- the checked layer and supports declarations (src/backend/contract.ts) ------------------------------
test("ops: every contract op has a runner, and every backend is checked and declares what it computes", () => {
  assert.deepEqual([...OPS].sort(), [...OP_NAMES].sort());
  for (const b of all) {
    assert.ok(isChecked(b), `${b.name}: the checked layer is not applied`);
    assert.ok(OP_NAMES.every((op) => computes(b, op) || b !== js), `${b.name}: the js reference must compute every op`);
  }
});

test("ops: the checked layer refuses an op a backend does not support, and a result of the wrong shape", () => {
  const b = checked(Object.assign(Object.create((js as object).constructor.prototype) as Backend, {
    name: "partial", supports: (op: OpName) => op !== "attention",
  }));
  const x = js.upload({ shape: [1, 2, 2, 2], data: new Float32Array(8) });
  assert.throws(() => b.attention(x, x, x), (e: unknown) => e instanceof UnsupportedOpError && e.code === "op_unsupported" && e.message.includes("attention"));
  const wrong = checked(Object.assign(Object.create((js as object).constructor.prototype) as Backend, {
    name: "wrong", add: () => js.upload({ shape: [2], data: new Float32Array(2) }),
  }));
  assert.throws(() => wrong.add(x, x), /add: the wrong backend returned shape \[2\], the contract says \[1, 2, 2, 2\]/);
  js.free(x);
});

test("ops: the registry reads supports declarations (option ops)", async () => {
  const { backend } = await createBackend("js", { ops: ["conv3x3", "attention"] });
  assert.equal(backend.name, "js");
  await assert.rejects(createBackend("js", { ops: ["nope" as OpName] }), /does not support nope/);
});

test("ops: scope frees what it made except its result, on success and on a throw, and never twice", async () => {
  for (const b of all) {
    const made: Tensor[] = [];
    const h = { shape: [1, 2, 2, 2], data: new Float32Array(8).fill(1) };
    const kept = await tensorScope(b, (s) => {
      const x = s.upload(h);
      const y = s.track(b.add(x, x));
      const z = s.track(b.add(y, x));
      b.free(y); // freed inside: the scope must not free it again
      made.push(x, y, z);
      return z;
    });
    assert.deepEqual([isFreed(made[0]), isFreed(made[1]), isFreed(kept)], [true, true, false], `${b.name}: scope result`);
    assert.deepEqual([...(await b.download(kept)).data], new Array(8).fill(3));
    b.free(kept);
    await assert.rejects(tensorScope(b, (s) => {
      made.push(s.upload(h));
      throw new Error("halfway");
    }), /halfway/);
    assert.ok(isFreed(made[3]), `${b.name}: scope after a throw`);
  }
});
