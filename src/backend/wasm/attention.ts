// attention and upsampleNearest of the wasm backend. Attention runs per sample on the NHWC tokens
// [HW][C]: S = Q K^T (gemm with K packed as B), softmax(S / sqrt(C)) by rows (wasm/assembly/attention.ts),
// out = S V (gemm), in blocks of query rows so that the score block stays under ~16 MiB.
import type { Tensor } from "../contract.ts";
import type { WasmCore } from "./core.ts";
import type { WasmTensor } from "./tensor.ts";

/** Floats of one block of scores (rows x HW). */
const SCORE_BLOCK_FLOATS = 1 << 22;
const ceil = (v: number, m: number) => Math.ceil(v / m) * m;

/** Backend.attention on the wasm kernels: q, k, v [N, C, H, W] -> [N, C, H, W] (NHWC inside). */
export function attention(core: WasmCore, q: Tensor, k: Tensor, v: Tensor): WasmTensor {
  const op = "attention";
  const qv = core.own(q, op), kv = core.own(k, op), vv = core.own(v, op);
  const [n, c, h, w] = qv.shape;
  const hw = h * w;
  const rows = Math.max(4, Math.min(ceil(hw, 4), Math.floor(SCORE_BLOCK_FLOATS / Math.max(hw, 1) / 4) * 4));
  const [qp, kp, vp] = [core.nhwc(qv), core.nhwc(kv), core.nhwc(vv)];
  const out = core.tensor(qv.shape, "nhwc");
  const held: number[] = [];
  try {
    const kPack = core.scratch(ceil(hw, 8) * c);
    held.push(kPack);
    const vPack = core.scratch(ceil(c, 8) * hw);
    held.push(vPack);
    const scores = core.scratch(rows * hw);
    held.push(scores);
    const scale = 1 / Math.sqrt(c);
    for (let b = 0; b < n; b++) {
      const off = b * hw * c * 4;
      core.k.packB(kp + off, c, hw, 1, c, kPack); // B[kk][j] = K[j][kk]
      core.k.packB(vp + off, hw, c, c, 1, vPack); // B[j][ch] = V[j][ch]
      for (let r0 = 0; r0 < hw; r0 += rows) {
        const m = Math.min(rows, hw - r0);
        core.k.gemm(m, hw, c, qp + off + r0 * c * 4, c, kPack, scores, hw, 0);
        core.k.softmaxRows(scores, m, hw, scale);
        core.k.gemm(m, c, hw, scores, hw, vPack, out.ptr + off + r0 * c * 4, c, 0);
      }
    }
  } catch (e) {
    core.release(out);
    throw e;
  } finally {
    for (const p of held) core.heap.release(p);
  }
  return out;
}

/** Backend.upsampleNearest on the wasm kernels: [N, C, H, W] -> [N, C, H*r, W*r] (NHWC inside). */
export function upsampleNearest(core: WasmCore, x: Tensor, r: number): WasmTensor {
  const op = "upsampleNearest";
  const xv = core.own(x, op);
  const [n, c, h, w] = xv.shape;
  const out = core.tensor([n, c, h * r, w * r], "nhwc");
  core.k.upsampleNearest(core.nhwc(xv), out.ptr, n, h, w, c, r);
  return out;
}
