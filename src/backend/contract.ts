// The Backend contract: the small set of fused ops the DiC graph needs (docs/ARCHITECTURE.md: layers, and how to add an op).
// A backend owns device memory; tensors are opaque handles and only `download` moves data home.
//
// How to add an op: declare it here, implement it in the js reference (src/backend/js/),
// then in each fast backend, then add a case to the shared parity suite (tests/ops.test.ts).
import type { HostTensor } from "../tensor.ts";

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

/** The ops a backend implements. All image tensors are NCHW f32 (backends may store them otherwise). */
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

/** Throws unless a pixel (un)shuffle factor is a positive integer. */
export function checkFactor(op: string, r: number): void {
  if (!Number.isInteger(r) || r < 1) throw new Error(`${op}: factor r must be a positive integer, got ${r}`);
}

/** Validates the fields of a NormPreOp applied to a tensor of `shape` with `c` channels (every backend calls this). */
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
