// The Backend contract: the small set of fused ops the DiC graph needs (docs/ARCHITECTURE.md: layers, and how to add an op).
// A backend owns device memory; tensors are opaque handles and only `download` moves data home.
//
// Every op's inputs are validated and its output shape computed once, here (OP_RULES), by the checked
// layer (`checked`) each backend's constructor applies: backends only compute.
//
// How to add an op (docs/ARCHITECTURE.md "Add an op"): declare it in `Backend` and its rule in OP_RULES here,
// implement it in the js reference (src/backend/js/), then in each fast backend, then add a case to the
// shared parity suite (tests/ops.test.ts).
import type { HostTensor } from "../tensor.ts";
import { numel, shapeStr } from "../tensor.ts";

/** An opaque tensor living in a backend's memory. Only its shape is visible. */
export interface Tensor {
  readonly shape: readonly number[];
}

/** What an uploaded tensor is for, so a backend may transform or pack it once at load time. */
export type TensorRole = "activation" | "conv3x3.weight" | "conv1x1.weight" | "linear.weight" | "vector" | "table";

/** Per-sample, per-channel vector taken from a [N, K] tensor at channel offset `offset` (a chunk of an affine output). */
export interface ChannelSlice {
  tensor: Tensor; // [N, K]
  offset: number;
}

/**
 * A normalisation applied to an op's input on the fly:
 * `act((norm(x) * weight + bias) * (1 + scale) + shift)`, where the affine and the modulate are optional.
 * Mirrors `GELU(GroupNorm(x))`, `GELU(GroupNorm(x) * (1 + scale) + shift)` and the head's
 * `LayerNorm(x) * (1 + scale) + shift` of the DiC block and final layer.
 */
export interface NormPreOp {
  /** "group": torch.nn.functional.group_norm over (C/groups, H, W); "layer": layer norm over C at each pixel. */
  norm: "group" | "layer";
  /** Number of groups; required for group norm and must divide the channels. */
  groups?: number;
  eps: number;
  /** Per-channel affine of the norm (both or neither). */
  weight?: Tensor; // [C]
  bias?: Tensor; // [C]
  modulate?: { scale: ChannelSlice; shift: ChannelSlice };
  /** "gelu": exact erf GELU (DiC); "silu": x * sigmoid(x) (the VAE decoder's GroupNorm + SiLU); "none". */
  act: "gelu" | "silu" | "none";
}

/** Stable codes of MemoryBudgetError. */
export type MemoryBudgetCode =
  | "memory_budget_too_small" // the plan: even the most compact storage does not fit
  | "memory_budget_exceeded"; // an allocation during a run would pass the budget

/** A backend's memory budget cannot be met; `needBytes` says how much memory it would take. */
export class MemoryBudgetError extends Error {
  override readonly name = "MemoryBudgetError";
  constructor(readonly code: MemoryBudgetCode, readonly budgetBytes: number, readonly needBytes: number, detail: string) {
    super(`${detail} [${code}]`);
  }
}

/** What a backend's memory holds, in bytes (wasm: `dic doctor` and `dic forward --verbose` print it). */
export interface StorageReport {
  /** Weight bytes by the form they are held in ("winograd-f32", "f16", "int8", "f32"). */
  weights: Record<string, number>;
  /** The expansion scratch compact weights share. */
  scratchBytes: number;
  /** Most bytes live at once outside weights and the expansion scratch (activations, per-op scratch). */
  activationPeakBytes: number;
  /** Size of the memory (wasm: it never shrinks, so the peak) and the budget, if any. */
  committedBytes: number;
  budgetBytes: number | null;
  /** The storage plan in one line. */
  plan: string;
}

/**
 * The ops a backend implements. All image tensors are NCHW f32 (backends may store them otherwise).
 *
 * Ownership, the one rule: whoever makes a tensor (upload, or an op's result) owns it and frees it; an op
 * never frees its inputs. Code above the backend that takes tensors says in its doc comment whether it
 * consumes them (the graph's decode consumes its EncodeOutput, and a stage its input, so memory drops as
 * they run; forward and encode keep their input). Sequences that may throw halfway run in a `scope`, which
 * frees what they made except what they return; the graph's *Host methods do this for host data.
 */
export interface Backend {
  /** Short name used to select it: "js", "wasm", "webgpu". */
  readonly name: string;
  /** One line saying what runs (variant, threads, adapter). */
  readonly description: string;
  /**
   * Set by backends that can lose their device (a GPU): the name of the backend a run continues on when
   * that happens (generate() rebinds the weights there and reruns the step in flight). Absent: cannot.
   */
  readonly deviceLossFallback?: string;
  /**
   * Optional: whether the backend computes `op` (ggml's supports_op). Absent: every op of the contract. The
   * checked layer refuses an unsupported op (UnsupportedOpError), the registry's `ops` option and the op
   * suite read it.
   */
  supports?(op: OpName): boolean;

  upload(t: HostTensor, role?: TensorRole): Tensor;
  /**
   * Optional: the tensors a loader is about to upload, one at a time, in any order, so that the backend can
   * plan their storage first (wasm: against its memory budget; may throw saying how much memory it needs).
   * Returns the plan in one line.
   */
  planStorage?(tensors: readonly { shape: readonly number[]; role: TensorRole }[]): string;
  /**
   * Optional: uploads a weight stored as int8 with one scale per output channel (w[o] = q[o] * scale[o]) and
   * keeps it compact. Loaders give other backends the dequantized values through `upload`.
   */
  uploadInt8?(t: { shape: number[]; data: Int8Array; scale: Float32Array }, role: TensorRole): Tensor;
  /** Optional: weight bytes by storage form, the activation peak and the scratch size. */
  storageReport?(): StorageReport;
  download(t: Tensor): Promise<HostTensor>;
  /** Releases a tensor's memory; using it afterwards is an error. */
  free(t: Tensor): void;
  /**
   * Releases everything the backend holds (worker threads, the device, its memory); the backend must
   * not be used afterwards. Idempotent.
   */
  close(): void;

  /** 3x3 convolution, stride 1, padding 1. x [N,Ci,H,W], w [Co,Ci,3,3], bias [Co]; `pre` is applied to x first. */
  conv3x3(x: Tensor, w: Tensor, bias: Tensor | null, pre?: NormPreOp): Tensor;
  /** 1x1 convolution. x [N,Ci,H,W], w [Co,Ci,1,1], bias [Co]. */
  conv1x1(x: Tensor, w: Tensor, bias: Tensor | null): Tensor;
  /** y = act_in(x) @ w^T + bias. x [N,K], w [M,K]; `silu` applies SiLU to x first. */
  linear(x: Tensor, w: Tensor, bias: Tensor | null, inputAct?: "silu" | "none"): Tensor;
  /** Materialises a pre-op on its own: the same result `conv3x3` would see as its input. */
  normalize(x: Tensor, pre: NormPreOp): Tensor;
  /** out = gate[n,c] * h + residual (gate omitted: h + residual). */
  gateAdd(h: Tensor, gate: ChannelSlice | null, residual: Tensor): Tensor;
  /** Element-wise a + b (same shape). */
  add(a: Tensor, b: Tensor): Tensor;
  /** Rows `ids` of a [V, D] table -> [ids.length, D]. */
  gather(table: Tensor, ids: readonly number[]): Tensor;
  /** torch.nn.PixelShuffle(r): [N, C*r*r, H, W] -> [N, C, H*r, W*r]. */
  pixelShuffle(x: Tensor, r: number): Tensor;
  /** torch.nn.PixelUnshuffle(r): [N, C, H, W] -> [N, C*r*r, H/r, W/r]. */
  pixelUnshuffle(x: Tensor, r: number): Tensor;
  /** Concatenation along channels: [N,Ca,H,W] + [N,Cb,H,W] -> [N,Ca+Cb,H,W]. */
  concat(a: Tensor, b: Tensor): Tensor;
  /** Nearest-neighbour upsampling (F.interpolate mode "nearest", integer factor): [N,C,H,W] -> [N,C,H*r,W*r]. */
  upsampleNearest(x: Tensor, r: number): Tensor;
  /**
   * Single-head self-attention over the H*W positions as tokens of dimension C (the VAE mid block):
   * out[n,:,p] = sum_j softmax_j(q[n,:,p] . k[n,:,j] / sqrt(C)) v[n,:,j]. q, k, v and out are [N,C,H,W].
   */
  attention(q: Tensor, k: Tensor, v: Tensor): Tensor;
}

/** The compute ops of the contract (what `supports` is asked about). */
export const OP_NAMES = [
  "conv3x3", "conv1x1", "linear", "normalize", "gateAdd", "add", "gather", "pixelShuffle", "pixelUnshuffle", "concat", "upsampleNearest", "attention",
] as const;
/** One of OP_NAMES. */
export type OpName = (typeof OP_NAMES)[number];

/** The members of Backend that are not compute ops. */
type NonOpMember = "name" | "description" | "deviceLossFallback" | "supports" | "upload" | "planStorage" | "uploadInt8" | "storageReport" | "download" | "free" | "close";
/** Fails to compile when a compute method of Backend is missing from OP_NAMES (and so from OP_RULES). */
const EVERY_OP_NAMED: [Exclude<keyof Backend, NonOpMember>] extends [OpName] ? true : never = true;
void EVERY_OP_NAMED;

/** A backend was asked for an op it does not declare in `supports` (code "op_unsupported"). */
export class UnsupportedOpError extends Error {
  override readonly name = "UnsupportedOpError";
  readonly code = "op_unsupported";
  constructor(readonly op: OpName, readonly backend: string) {
    super(`${op}: not supported by the ${backend} backend [op_unsupported]`);
  }
}

// ----- the checked layer: one validation of every op's inputs, one computation of its output shape -------

/** Throws unless a pixel (un)shuffle or upsampling factor is a positive integer. */
export function checkFactor(op: string, r: number): void {
  if (!Number.isInteger(r) || r < 1) throw new Error(`${op}: factor r must be a positive integer, got ${r}`);
}

/** Validates the fields of a NormPreOp applied to a tensor of `shape` with `c` channels. */
export function checkPreOp(pre: NormPreOp, c: number, op: string, shape: readonly number[]): void {
  const where = `${op} pre-op on [${shape.join(", ")}]`;
  if (pre.norm !== "group" && pre.norm !== "layer") throw new Error(`${where}: unknown norm "${pre.norm}" (group, layer)`);
  if (pre.act !== "gelu" && pre.act !== "silu" && pre.act !== "none") throw new Error(`${where}: unknown act "${pre.act}" (gelu, silu, none)`);
  if (!(pre.eps > 0)) throw new Error(`${where}: eps must be > 0, got ${pre.eps}`);
  if (!pre.weight !== !pre.bias) throw new Error(`${where}: norm weight and bias come together (got only one)`);
  if (pre.norm === "group") {
    const g = pre.groups;
    if (g === undefined || !Number.isInteger(g) || g < 1 || c % g !== 0) {
      throw new Error(`${where}: group norm needs groups dividing ${c} channels, got ${g}`);
    }
  }
}

/** Throws a clear error naming the op when a tensor's shape is not what the op needs. */
export function expectShape(op: string, what: string, got: readonly number[], want: readonly (number | null)[]): void {
  const ok = got.length === want.length && want.every((d, i) => d === null || d === got[i]);
  if (!ok) {
    const w = want.map((d) => (d === null ? "*" : String(d))).join(", ");
    throw new Error(`${op}: ${what} has shape [${got.join(", ")}], expected [${w}]`);
  }
}

/** Throws unless the channel slice [offset, offset + c) of a [n, K] tensor exists; returns K. */
export function checkSlice(op: string, s: ChannelSlice, n: number, c: number): number {
  const shape = s.tensor.shape ?? [];
  const [rows, k] = shape;
  if (shape.length !== 2 || rows !== n || !Number.isInteger(s.offset) || s.offset < 0 || s.offset + c > k) {
    throw new Error(`${op}: channel slice [${s.offset}, ${s.offset + c}) of ${shapeStr(shape)} does not fit batch ${n}`);
  }
  return k;
}

/** A pre-op on x [N, C, H, W]: its fields, its affine's shapes and its modulate slices. */
function checkPre(op: string, pre: NormPreOp, x: readonly number[]): void {
  const [n, c] = x;
  checkPreOp(pre, c, op, x);
  if (pre.weight) expectShape(op, "norm weight", pre.weight.shape, [c]);
  if (pre.bias) expectShape(op, "norm bias", pre.bias.shape, [c]);
  if (pre.modulate) {
    checkSlice(op, pre.modulate.scale, n, c);
    checkSlice(op, pre.modulate.shift, n, c);
  }
}

const ANY4 = [null, null, null, null];

/** Per op: validates the arguments (throwing an error that names the op and the shape) and returns the output shape. */
export const OP_RULES: { [K in OpName]: (...args: Parameters<Backend[K]>) => number[] } = {
  conv3x3(x, w, bias, pre) {
    expectShape("conv3x3", "x", x.shape, ANY4);
    const [n, ci, h, wd] = x.shape;
    const co = w.shape[0];
    expectShape("conv3x3", "weight", w.shape, [null, ci, 3, 3]);
    if (bias) expectShape("conv3x3", "bias", bias.shape, [co]);
    if (pre) checkPre("conv3x3", pre, x.shape);
    return [n, co, h, wd];
  },
  conv1x1(x, w, bias) {
    expectShape("conv1x1", "x", x.shape, ANY4);
    const [n, ci, h, wd] = x.shape;
    const co = w.shape[0];
    expectShape("conv1x1", "weight", w.shape, [null, ci, 1, 1]);
    if (bias) expectShape("conv1x1", "bias", bias.shape, [co]);
    return [n, co, h, wd];
  },
  linear(x, w, bias, inputAct) {
    expectShape("linear", "x", x.shape, [null, null]);
    const [n, k] = x.shape;
    const m = w.shape[0];
    expectShape("linear", "weight", w.shape, [m, k]);
    if (bias) expectShape("linear", "bias", bias.shape, [m]);
    if (inputAct !== undefined && inputAct !== "silu" && inputAct !== "none") throw new Error(`linear: unknown input act "${inputAct}" (silu, none)`);
    return [n, m];
  },
  normalize(x, pre) {
    expectShape("normalize", "x", x.shape, ANY4);
    checkPre("normalize", pre, x.shape);
    return [...x.shape];
  },
  gateAdd(h, gate, residual) {
    expectShape("gateAdd", "h", h.shape, ANY4);
    expectShape("gateAdd", "residual", residual.shape, h.shape);
    if (gate) checkSlice("gateAdd", gate, h.shape[0], h.shape[1]);
    return [...h.shape];
  },
  add(a, b) {
    expectShape("add", "b", b.shape, a.shape);
    return [...a.shape];
  },
  gather(table, ids) {
    expectShape("gather", "table", table.shape, [null, null]);
    const [v, d] = table.shape;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= v) throw new Error(`gather: index ${id} outside the table's ${v} rows`);
    }
    return [ids.length, d];
  },
  pixelShuffle(x, r) {
    checkFactor("pixelShuffle", r);
    expectShape("pixelShuffle", "x", x.shape, ANY4);
    const [n, c, h, w] = x.shape;
    if (c % (r * r) !== 0) throw new Error(`pixelShuffle: ${c} channels not divisible by ${r * r}`);
    return [n, c / (r * r), h * r, w * r];
  },
  pixelUnshuffle(x, r) {
    checkFactor("pixelUnshuffle", r);
    expectShape("pixelUnshuffle", "x", x.shape, ANY4);
    const [n, c, h, w] = x.shape;
    if (h % r !== 0 || w % r !== 0) throw new Error(`pixelUnshuffle: ${h}x${w} not divisible by ${r}`);
    return [n, c * r * r, h / r, w / r];
  },
  concat(a, b) {
    expectShape("concat", "a", a.shape, ANY4);
    const [n, ca, h, w] = a.shape;
    expectShape("concat", "b", b.shape, [n, null, h, w]);
    return [n, ca + b.shape[1], h, w];
  },
  upsampleNearest(x, r) {
    checkFactor("upsampleNearest", r);
    expectShape("upsampleNearest", "x", x.shape, ANY4);
    const [n, c, h, w] = x.shape;
    return [n, c, h * r, w * r];
  },
  attention(q, k, v) {
    expectShape("attention", "q", q.shape, ANY4);
    expectShape("attention", "k", k.shape, q.shape);
    expectShape("attention", "v", v.shape, q.shape);
    return [...q.shape];
  },
};

/** Validates a host tensor given to `upload`: whole non-negative dimensions, as many values as they hold. */
export function checkUpload(t: HostTensor): void {
  if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`upload: shape ${shapeStr(t.shape)} has a negative or fractional dimension`);
  if (t.data.length !== numel(t.shape)) throw new Error(`upload: shape ${shapeStr(t.shape)} vs ${t.data.length} values`);
}

const CHECKED = Symbol("dic.checked");

/** Where `collect` puts the tensors checked backends make right now, or null. */
let collector: Tensor[] | null = null;

/**
 * Runs the synchronous `fn`, appending to `into` every tensor a checked backend makes meanwhile (uploads
 * and op results). Code that runs in synchronous slices with the event loop between them (the graph's
 * steps) collects slice by slice, so runs that interleave on one backend never see each other's tensors;
 * on a throw it frees what it collected and did not free (freeCollected).
 */
export function collect<T>(into: Tensor[], fn: () => T): T {
  const outer = collector;
  collector = into;
  try {
    return fn();
  } finally {
    collector = outer;
  }
}

/**
 * Frees the tensors of a `collect` list that are still alive, after a throw. A free that fails too (a lost
 * device) is passed over: the error being thrown is the one to report.
 */
export function freeCollected(b: Backend, made: readonly Tensor[]): void {
  for (const t of new Set(made)) {
    if (FREED.has(t)) continue;
    try {
      b.free(t);
    } catch {
      // see above
    }
  }
}

/** Tensors freed through a checked backend (so that a scope never frees one twice). */
const FREED = new WeakSet<Tensor>();

/** Whether a tensor was freed through a checked backend. */
export function isFreed(t: Tensor): boolean {
  return FREED.has(t);
}

/** Whether `checked` has been applied to a backend. */
export function isChecked(b: Backend): boolean {
  return (b as unknown as Record<symbol, unknown>)[CHECKED] === true;
}

/**
 * Puts the checked layer in front of a backend's ops, in place (the object keeps its class and its own
 * members): `upload` validates the host tensor; each op refuses an op the backend does not `supports`, runs
 * its rule in OP_RULES, then the backend's own method, whose output must have the shape the rule computed.
 * Backends call it at the end of their constructor (the registry too, for any it creates); idempotent.
 */
export function checked<B extends Backend>(b: B): B {
  if (isChecked(b)) return b;
  const self = b as unknown as Record<string | symbol, unknown>;
  // Members an object lacks (a stand-in that only uploads, in a test) stay absent.
  const has = (m: string) => typeof self[m] === "function";
  const define = (m: string, value: unknown) => Object.defineProperty(b, m, { value, configurable: true, writable: true });
  if (has("upload")) {
    const upload = (b.upload as Backend["upload"]).bind(b);
    define("upload", (t: HostTensor, role?: TensorRole) => {
      checkUpload(t);
      const u = upload(t, role);
      collector?.push(u);
      return u;
    });
  }
  if (has("free")) {
    const free = (b.free as Backend["free"]).bind(b);
    define("free", (t: Tensor) => (free(t), FREED.add(t)));
  }
  for (const op of OP_NAMES) {
    if (!has(op)) continue;
    const inner = (self[op] as (...a: unknown[]) => Tensor).bind(b);
    const rule = OP_RULES[op] as (...a: unknown[]) => number[];
    const wrapped = (...args: unknown[]): Tensor => {
      if (b.supports && !b.supports(op)) throw new UnsupportedOpError(op, b.name);
      const want = rule(...args);
      const out = inner(...args);
      if (out.shape.length !== want.length || out.shape.some((d, i) => d !== want[i])) {
        throw new Error(`${op}: the ${b.name} backend returned shape ${shapeStr(out.shape)}, the contract says ${shapeStr(want)}`);
      }
      collector?.push(out);
      return out;
    };
    define(op, wrapped);
  }
  Object.defineProperty(b, CHECKED, { value: true });
  return b;
}

// ----- scopes: tensor lifetimes for sequences that may throw halfway ------------------------------------

/** The tensors one `scope` run owns. */
export interface Scope {
  /** Uploads a host tensor that the scope owns. */
  upload(t: HostTensor, role?: TensorRole): Tensor;
  /** Hands a tensor to the scope (an op's result, a graph's output); returns it. */
  track<T extends Tensor>(t: T): T;
  /** Downloads a tensor; the scope still frees it at its end (unless it is returned). */
  download(t: Tensor): Promise<HostTensor>;
}

/** The tensors inside a scope's result: a tensor, or an array or plain object of them (one level). */
function returned(v: unknown, into: Set<unknown>): void {
  if (v === null || typeof v !== "object" || ArrayBuffer.isView(v)) return;
  if ("shape" in v) into.add(v);
  else for (const x of Array.isArray(v) ? v : Object.values(v)) if (x !== null && typeof x === "object") into.add(x);
}

/**
 * Runs `fn` and then frees every tensor it uploaded or tracked through its Scope, except those in its result
 * (a tensor, or an array or object of them), and except those freed already, on success and on a throw alike.
 * Tensors are named explicitly (not caught by watching the backend), so scopes on one backend may run
 * concurrently (two sessions of one server). Applies the checked layer to `b` if it lacks it.
 */
export async function scope<T>(b: Backend, fn: (s: Scope) => T | Promise<T>): Promise<T> {
  checked(b); // its `free` marks what is freed inside
  const owned: Tensor[] = [];
  const track = <U extends Tensor>(t: U): U => (owned.push(t), t);
  let keep = new Set<unknown>();
  try {
    const out = await fn({ upload: (t, role) => track(b.upload(t, role)), track, download: (t) => b.download(t) });
    returned(out, keep);
    return out;
  } catch (e) {
    keep = new Set();
    throw e;
  } finally {
    for (const t of new Set(owned)) if (!keep.has(t) && !FREED.has(t)) b.free(t);
  }
}
