// Tensor handles of the wasm backend and the input checks every op shares (same wording as the js
// reference: errors name the op, the tensor's shape and what was expected).
import type { Tensor } from "../contract.ts";
import { shapeStr } from "../../tensor.ts";

/**
 * A tensor in the backend's linear memory. 4-D tensors made by ops are NHWC; uploads keep the caller's
 * NCHW order (a weight stays as torch stores it) and get an NHWC copy on first use as an activation.
 */
export class WasmTensor implements Tensor {
  freed = false;
  /** The same values in the other layout (4-D only), made on demand and freed with the tensor. */
  other = 0;
  /** Packed forms of a weight ("winograd", "direct", "gemm"), made at upload (role hint) or on first use. */
  readonly packs = new Map<string, number>();
  /**
   * A conv3x3 weight held as a compact 3x3 kernel (storage.ts): `ptr` to f16 bits or int8 values
   * ([Co][Ci][3][3], four output channels interleaved), `scales` to Co f32 (int8; 0 for f16). Expanded per
   * conv into the core's scratch. `panels`: a linear weight [N, K] in the GEMM's packed panel layout
   * [ceil(N/8)][K][8] instead (scales: ceil(N/8) * 8).
   */
  compact: { kind: "f16" | "int8"; ptr: number; scales: number; panels?: boolean } | null = null;
  /** The form this tensor's weight is held in and its bytes (counted in WasmCore.weightBytes). */
  form: "winograd-f32" | "f16" | "int8" | "f32" | null = null;
  formBytes = 0;

  constructor(
    readonly owner: object,
    readonly shape: readonly number[],
    /** Byte offset of the values; 0 while a conv3x3 weight is held only in packed form (see WasmCore.dropRaw). */
    public ptr: number,
    /** "nchw": row-major as uploaded (any rank); "nhwc": a 4-D activation made by an op. */
    readonly layout: "nchw" | "nhwc",
  ) {}
}

/** The handle behind `t`, checked to belong to `owner` and not freed. */
export function own(owner: object, t: Tensor, op: string): WasmTensor {
  if (!(t instanceof WasmTensor) || t.owner !== owner) throw new Error(`${op}: tensor ${shapeStr(t.shape ?? [])} does not belong to this wasm backend`);
  if (t.freed) throw new Error(`${op}: tensor ${shapeStr(t.shape)} was freed`);
  return t;
}

