// The `js` backend: plain TypeScript over Float32Array, the readable reference every fast backend
// is tested against (README.md "Numerics": <= 1e-5 relative L2 vs PyTorch per forward).
import type { Backend, ChannelSlice, NormPreOp, Tensor } from "../contract.ts";
import { checkFactor, checkPreOp, expectShape } from "../contract.ts";
import type { HostTensor } from "../../tensor.ts";
import { numel, shapeStr } from "../../tensor.ts";
import { conv1x1, conv3x3 } from "./conv.ts";
import { silu } from "./gelu.ts";
import { concat, pixelShuffle, pixelUnshuffle } from "./layout.ts";
import { applyPreOp, type HostPreOp } from "./norm.ts";
import { attention } from "./attention.ts";
import { upsampleNearest } from "./upsample.ts";

class JsTensor implements Tensor {
  freed = false;
  constructor(readonly shape: readonly number[], readonly data: Float32Array) {}
}

function js(t: Tensor, op: string): JsTensor {
  if (!(t instanceof JsTensor)) throw new Error(`${op}: tensor does not belong to the js backend`);
  if (t.freed) throw new Error(`${op}: tensor ${shapeStr(t.shape)} was freed`);
  return t;
}

/** The plain TypeScript reference backend. */
export class JsBackend implements Backend {
  readonly name = "js";
  readonly description = "js: plain TypeScript reference (f32 storage, f64 accumulation, single thread)";

  /** Nothing to release: js tensors are garbage collected. */
  close(): void {}

  upload(t: HostTensor): Tensor {
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`upload: shape ${shapeStr(t.shape)} has a negative or fractional dimension`);
    if (t.data.length !== numel(t.shape)) throw new Error(`upload: shape ${shapeStr(t.shape)} vs ${t.data.length} values`);
    return new JsTensor([...t.shape], new Float32Array(t.data));
  }

  download(t: Tensor): Promise<HostTensor> {
    const v = js(t, "download");
    return Promise.resolve({ shape: [...v.shape], data: new Float32Array(v.data) });
  }

  free(t: Tensor): void {
    js(t, "free").freed = true;
  }

  conv3x3(x: Tensor, w: Tensor, bias: Tensor | null, pre?: NormPreOp): Tensor {
    const xv = js(x, "conv3x3"), wv = js(w, "conv3x3");
    const [n, ci, h, wd] = xv.shape;
    const co = wv.shape[0];
    expectShape("conv3x3", "x", xv.shape, [null, null, null, null]);
    expectShape("conv3x3", "weight", wv.shape, [null, ci, 3, 3]);
    if (bias) expectShape("conv3x3", "bias", bias.shape, [co]);
    const input = pre ? applyPreOp(xv.data, n, ci, h * wd, this.hostPre(pre, xv, "conv3x3")) : xv.data;
    const out = conv3x3(input, n, ci, h, wd, wv.data, co, bias ? js(bias, "conv3x3").data : null);
    return new JsTensor([n, co, h, wd], out);
  }

  conv1x1(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
    const xv = js(x, "conv1x1"), wv = js(w, "conv1x1");
    const [n, ci, h, wd] = xv.shape;
    const co = wv.shape[0];
    expectShape("conv1x1", "x", xv.shape, [null, null, null, null]);
    expectShape("conv1x1", "weight", wv.shape, [null, ci, 1, 1]);
    if (bias) expectShape("conv1x1", "bias", bias.shape, [co]);
    const out = conv1x1(xv.data, n, ci, h * wd, wv.data, co, bias ? js(bias, "conv1x1").data : null);
    return new JsTensor([n, co, h, wd], out);
  }

  linear(x: Tensor, w: Tensor, bias: Tensor | null, inputAct: "silu" | "none" = "none"): Tensor {
    const xv = js(x, "linear"), wv = js(w, "linear");
    expectShape("linear", "x", xv.shape, [null, null]);
    const [n, k] = xv.shape;
    const m = wv.shape[0];
    expectShape("linear", "weight", wv.shape, [m, k]);
    if (bias) expectShape("linear", "bias", bias.shape, [m]);
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
    expectShape("normalize", "x", xv.shape, [null, null, null, null]);
    const [n, c, h, w] = xv.shape;
    return new JsTensor([...xv.shape], applyPreOp(xv.data, n, c, h * w, this.hostPre(pre, xv, "normalize")));
  }

  gateAdd(h: Tensor, gate: ChannelSlice | null, residual: Tensor): Tensor {
    const hv = js(h, "gateAdd"), rv = js(residual, "gateAdd");
    expectShape("gateAdd", "h", hv.shape, [null, null, null, null]);
    expectShape("gateAdd", "residual", rv.shape, hv.shape);
    const [n, c, hh, w] = hv.shape;
    const hw = hh * w;
    const out = new Float32Array(hv.data.length);
    const g = gate ? this.slice(gate, n, c, "gateAdd") : null;
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
    expectShape("add", "b", bv.shape, av.shape);
    return new JsTensor([...av.shape], av.data.map((v, i) => v + bv.data[i]));
  }

  gather(table: Tensor, ids: readonly number[]): Tensor {
    const tv = js(table, "gather");
    expectShape("gather", "table", tv.shape, [null, null]);
    const [v, d] = tv.shape;
    const out = new Float32Array(ids.length * d);
    ids.forEach((id, r) => {
      if (!Number.isInteger(id) || id < 0 || id >= v) throw new Error(`gather: index ${id} outside the table's ${v} rows`);
      out.set(tv.data.subarray(id * d, (id + 1) * d), r * d);
    });
    return new JsTensor([ids.length, d], out);
  }

  pixelShuffle(x: Tensor, r: number): Tensor {
    const xv = js(x, "pixelShuffle");
    checkFactor("pixelShuffle", r);
    expectShape("pixelShuffle", "x", xv.shape, [null, null, null, null]);
    const [n, c, h, w] = xv.shape;
    if (c % (r * r) !== 0) throw new Error(`pixelShuffle: ${c} channels not divisible by ${r * r}`);
    return new JsTensor([n, c / (r * r), h * r, w * r], pixelShuffle(xv.data, n, c, h, w, r));
  }

  pixelUnshuffle(x: Tensor, r: number): Tensor {
    const xv = js(x, "pixelUnshuffle");
    checkFactor("pixelUnshuffle", r);
    expectShape("pixelUnshuffle", "x", xv.shape, [null, null, null, null]);
    const [n, c, h, w] = xv.shape;
    if (h % r !== 0 || w % r !== 0) throw new Error(`pixelUnshuffle: ${h}x${w} not divisible by ${r}`);
    return new JsTensor([n, c * r * r, h / r, w / r], pixelUnshuffle(xv.data, n, c, h, w, r));
  }

  concat(a: Tensor, b: Tensor): Tensor {
    const av = js(a, "concat"), bv = js(b, "concat");
    const [n, ca, h, w] = av.shape;
    expectShape("concat", "b", bv.shape, [n, null, h, w]);
    const cb = bv.shape[1];
    return new JsTensor([n, ca + cb, h, w], concat(av.data, ca, bv.data, cb, n, h * w));
  }

  upsampleNearest(x: Tensor, r: number): Tensor {
    const xv = js(x, "upsampleNearest");
    checkFactor("upsampleNearest", r);
    expectShape("upsampleNearest", "x", xv.shape, [null, null, null, null]);
    const [n, c, h, w] = xv.shape;
    return new JsTensor([n, c, h * r, w * r], upsampleNearest(xv.data, n * c, h, w, r));
  }

  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const qv = js(q, "attention"), kv = js(k, "attention"), vv = js(v, "attention");
    expectShape("attention", "q", qv.shape, [null, null, null, null]);
    expectShape("attention", "k", kv.shape, qv.shape);
    expectShape("attention", "v", vv.shape, qv.shape);
    const [n, c, h, w] = qv.shape;
    return new JsTensor([...qv.shape], attention(qv.data, kv.data, vv.data, n, c, h * w));
  }

  private slice(s: ChannelSlice, n: number, c: number, op: string): { data: Float32Array; k: number; offset: number } {
    const t = js(s.tensor, op);
    const [rows, k] = t.shape;
    if (t.shape.length !== 2 || rows !== n || !Number.isInteger(s.offset) || s.offset < 0 || s.offset + c > k) {
      throw new Error(`${op}: channel slice [${s.offset}, ${s.offset + c}) of ${shapeStr(t.shape)} does not fit batch ${n}`);
    }
    return { data: t.data, k, offset: s.offset };
  }

  private hostPre(pre: NormPreOp, x: JsTensor, op: string): HostPreOp {
    const [n, c] = x.shape;
    checkPreOp(pre, c, op, x.shape);
    if (pre.weight) expectShape(op, "norm weight", pre.weight.shape, [c]);
    if (pre.bias) expectShape(op, "norm bias", pre.bias.shape, [c]);
    return {
      norm: pre.norm,
      groups: pre.groups ?? 0,
      eps: pre.eps,
      weight: pre.weight ? js(pre.weight, op).data : null,
      bias: pre.bias ? js(pre.bias, op).data : null,
      scale: pre.modulate ? this.slice(pre.modulate.scale, n, c, op) : null,
      shift: pre.modulate ? this.slice(pre.modulate.shift, n, c, op) : null,
      act: pre.act,
    };
  }
}
