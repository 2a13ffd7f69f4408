// The `js` backend: plain TypeScript over Float32Array, the readable reference every fast backend
// is tested against (README.md "Numerics": <= 1e-5 relative L2 vs PyTorch per forward).
// Inputs arrive validated by the checked layer (contract.ts `checked`): this file only computes.
import type { Backend, ChannelSlice, NormPreOp, Tensor } from "../contract.ts";
import { checked, OP_NAMES, type OpName } from "../contract.ts";
import type { HostTensor } from "../../tensor.ts";
import { shapeStr } from "../../tensor.ts";
import { conv1x1, conv3x3 } from "./conv.ts";
import { silu } from "./gelu.ts";
import { concat, pixelShuffle, pixelUnshuffle } from "./layout.ts";
import { applyPreOp, type HostPreOp } from "./norm.ts";
import { attention } from "./attention.ts";
import { upsampleNearest } from "./upsample.ts";

class JsTensor implements Tensor {
  freed = false;
  constructor(readonly shape: readonly number[], public data: Float32Array) {}
}

function js(t: Tensor, op: string): JsTensor {
  if (!(t instanceof JsTensor)) throw new Error(`${op}: tensor does not belong to the js backend`);
  if (t.freed) throw new Error(`${op}: tensor ${shapeStr(t.shape)} was freed`);
  return t;
}

/** The ops this backend computes (its supports declaration; the registry reads it without creating one). */
export const JS_OPS: readonly OpName[] = OP_NAMES;

/** The plain TypeScript reference backend. */
export class JsBackend implements Backend {
  readonly name = "js";
  readonly description = "js: plain TypeScript reference (f32 storage, f64 accumulation, single thread)";

  constructor() {
    checked(this);
  }

  /** Nothing to release: js tensors are garbage collected. */
  close(): void {}

  /** Whether this backend computes `op` (its supports declaration). */
  supports(op: OpName): boolean {
    return JS_OPS.includes(op);
  }

  upload(t: HostTensor): Tensor {
    return new JsTensor([...t.shape], new Float32Array(t.data));
  }

  download(t: Tensor): Promise<HostTensor> {
    const v = js(t, "download");
    return Promise.resolve({ shape: [...v.shape], data: new Float32Array(v.data) });
  }

  free(t: Tensor): void {
    const v = js(t, "free");
    v.freed = true;
    v.data = new Float32Array(0); // the memory goes now, even while the handle is still referenced
  }

  conv3x3(x: Tensor, w: Tensor, bias: Tensor | null, pre?: NormPreOp): Tensor {
    const xv = js(x, "conv3x3"), wv = js(w, "conv3x3");
    const [n, ci, h, wd] = xv.shape;
    const co = wv.shape[0];
    const input = pre ? applyPreOp(xv.data, n, ci, h * wd, this.hostPre(pre, "conv3x3")) : xv.data;
    const out = conv3x3(input, n, ci, h, wd, wv.data, co, bias ? js(bias, "conv3x3").data : null);
    return new JsTensor([n, co, h, wd], out);
  }

  conv1x1(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
    const xv = js(x, "conv1x1"), wv = js(w, "conv1x1");
    const [n, ci, h, wd] = xv.shape;
    const co = wv.shape[0];
    const out = conv1x1(xv.data, n, ci, h * wd, wv.data, co, bias ? js(bias, "conv1x1").data : null);
    return new JsTensor([n, co, h, wd], out);
  }

  linear(x: Tensor, w: Tensor, bias: Tensor | null, inputAct: "silu" | "none" = "none"): Tensor {
    const xv = js(x, "linear"), wv = js(w, "linear");
    const [n, k] = xv.shape;
    const m = wv.shape[0];
    const b = bias ? js(bias, "linear").data : null;
    const xin = inputAct === "silu" ? xv.data.map(silu) : xv.data;
    const out = new Float32Array(n * m);
    for (let r = 0; r < n; r++) {
      for (let o = 0; o < m; o++) {
        let acc = b ? b[o] : 0;
        for (let i = 0; i < k; i++) acc += xin[r * k + i] * wv.data[o * k + i];
        out[r * m + o] = acc;
      }
    }
    return new JsTensor([n, m], out);
  }

  normalize(x: Tensor, pre: NormPreOp): Tensor {
    const xv = js(x, "normalize");
    const [n, c, h, w] = xv.shape;
    return new JsTensor([...xv.shape], applyPreOp(xv.data, n, c, h * w, this.hostPre(pre, "normalize")));
  }

  gateAdd(h: Tensor, gate: ChannelSlice | null, residual: Tensor): Tensor {
    const hv = js(h, "gateAdd"), rv = js(residual, "gateAdd");
    const [n, c, hh, w] = hv.shape;
    const hw = hh * w;
    const out = new Float32Array(hv.data.length);
    const g = gate ? this.slice(gate, "gateAdd") : null;
    for (let b = 0; b < n; b++)
      for (let ch = 0; ch < c; ch++) {
        const gv = g ? g.data[b * g.k + g.offset + ch] : 1;
        const base = (b * c + ch) * hw;
        for (let i = 0; i < hw; i++) out[base + i] = gv * hv.data[base + i] + rv.data[base + i];
      }
    return new JsTensor([...hv.shape], out);
  }

  add(a: Tensor, b: Tensor): Tensor {
    const av = js(a, "add"), bv = js(b, "add");
    return new JsTensor([...av.shape], av.data.map((v, i) => v + bv.data[i]));
  }

  gather(table: Tensor, ids: readonly number[]): Tensor {
    const tv = js(table, "gather");
    const d = tv.shape[1];
    const out = new Float32Array(ids.length * d);
    ids.forEach((id, r) => out.set(tv.data.subarray(id * d, (id + 1) * d), r * d));
    return new JsTensor([ids.length, d], out);
  }

  pixelShuffle(x: Tensor, r: number): Tensor {
    const xv = js(x, "pixelShuffle");
    const [n, c, h, w] = xv.shape;
    return new JsTensor([n, c / (r * r), h * r, w * r], pixelShuffle(xv.data, n, c, h, w, r));
  }

  pixelUnshuffle(x: Tensor, r: number): Tensor {
    const xv = js(x, "pixelUnshuffle");
    const [n, c, h, w] = xv.shape;
    return new JsTensor([n, c * r * r, h / r, w / r], pixelUnshuffle(xv.data, n, c, h, w, r));
  }

  concat(a: Tensor, b: Tensor): Tensor {
    const av = js(a, "concat"), bv = js(b, "concat");
    const [n, ca, h, w] = av.shape;
    const cb = bv.shape[1];
    return new JsTensor([n, ca + cb, h, w], concat(av.data, ca, bv.data, cb, n, h * w));
  }

  upsampleNearest(x: Tensor, r: number): Tensor {
    const xv = js(x, "upsampleNearest");
    const [n, c, h, w] = xv.shape;
    return new JsTensor([n, c, h * r, w * r], upsampleNearest(xv.data, n * c, h, w, r));
  }

  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const qv = js(q, "attention"), kv = js(k, "attention"), vv = js(v, "attention");
    const [n, c, h, w] = qv.shape;
    return new JsTensor([...qv.shape], attention(qv.data, kv.data, vv.data, n, c, h * w));
  }

  private slice(s: ChannelSlice, op: string): { data: Float32Array; k: number; offset: number } {
    const t = js(s.tensor, op);
    return { data: t.data, k: t.shape[1], offset: s.offset };
  }

  private hostPre(pre: NormPreOp, op: string): HostPreOp {
    return {
      norm: pre.norm,
      groups: pre.groups ?? 0,
      eps: pre.eps,
      weight: pre.weight ? js(pre.weight, op).data : null,
      bias: pre.bias ? js(pre.bias, op).data : null,
      scale: pre.modulate ? this.slice(pre.modulate.scale, op) : null,
      shift: pre.modulate ? this.slice(pre.modulate.shift, op) : null,
      act: pre.act,
    };
  }
}
