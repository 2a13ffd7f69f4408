// The DiC network as a graph over the Backend contract (README.md "Weights and configuration", docs/ARCHITECTURE.md; official dic_models.DiC).
// The forward pass is split at the bottleneck: `encode` (embeddings, encoder, latent stage) and
// `decode` (decoder, head), so the streaming protocol can cut there. forward = decode(encode(x)).
import { type Backend, collect, freeCollected, isFreed, type NormPreOp, scope, type Tensor } from "../backend/contract.ts";
import type { HostTensor } from "../tensor.ts";
import { type DiCConfig, groupsFor, labelRows, outChannels, stageChannels } from "./config.ts";
import { blockInputs, blockPrefix, type ModelPart, partConditionLevels, stageConditionLevel } from "./params.ts";
import { yieldSlice } from "../yield.ts";

/**
 * The graph's ops as a generator that pauses (yields) between ops: `drain` runs it at once, `drainAsync`
 * lets the event loop run at the pauses (time-sliced, so a pause costs nothing when ops are quick).
 * NOTE: the graph never knows the backend; the pauses are only points where waiting is safe.
 */
type Steps<T> = Generator<void, T, void>;

/** Drops the tensors freed since from a `collect` list, in place. */
function forgetFreed(made: Tensor[]): void {
  let j = 0;
  for (const t of made) if (!isFreed(t)) made[j++] = t;
  made.length = j;
}

// The graph's runs are generators: each slice between two yields runs synchronously inside `collect`, so
// a run that throws halfway frees the intermediates it made (and only its own, when runs interleave).
function drain<T>(b: Backend, g: Steps<T>): T {
  const made: Tensor[] = [];
  try {
    for (;;) {
      const r = collect(made, () => g.next());
      if (r.done) return r.value;
      forgetFreed(made);
    }
  } catch (e) {
    freeCollected(b, made);
    throw e;
  }
}

async function drainAsync<T>(b: Backend, g: Steps<T>): Promise<T> {
  const made: Tensor[] = [];
  try {
    for (;;) {
      const r = collect(made, () => g.next());
      if (r.done) return r.value;
      forgetFreed(made); // (the js backend's freed tensors keep their arrays while referenced)
      const p = yieldSlice();
      if (p) await p;
    }
  } catch (e) {
    freeCollected(b, made);
    throw e;
  }
}

/** The state at the encode/decode cut: the bottleneck and the saved skips (in push order). */
export interface EncodeOutput {
  bottleneck: Tensor;
  skips: Tensor[];
}

/** An EncodeOutput in host memory (what the `unet` cut sends). */
export interface HostEncodeOutput {
  bottleneck: HostTensor;
  skips: HostTensor[];
}

const FREQ_DIM = 256;
const MAX_PERIOD = 10000;

/**
 * Sinusoidal timestep features [N, 256], cos half first, computed with float32 rounding at each
 * step exactly as the official `timestep_embedding` evaluates it in torch.float32.
 */
export function timestepFrequencies(t: readonly number[]): Float32Array {
  const half = FREQ_DIM / 2;
  const negLog = Math.fround(-Math.log(MAX_PERIOD));
  const out = new Float32Array(t.length * FREQ_DIM);
  for (let i = 0; i < half; i++) {
    const freq = Math.fround(Math.exp(Math.fround(Math.fround(negLog * i) / half)));
    for (let n = 0; n < t.length; n++) {
      const arg = Math.fround(Math.fround(t[n]) * freq);
      out[n * FREQ_DIM + i] = Math.cos(arg);
      out[n * FREQ_DIM + half + i] = Math.sin(arg);
    }
  }
  return out;
}

/** A DiC model bound to a backend and its uploaded weights. */
export class DiCGraph {
  private readonly ch: number[];

  /**
   * `weights` maps official state_dict names to tensors already uploaded to `backend`: all of them, or
   * those of `part` (src/model/params.ts `partParams`), which then limits what the graph can run.
   */
  constructor(
    readonly backend: Backend,
    readonly config: DiCConfig,
    private readonly weights: ReadonlyMap<string, Tensor>,
    readonly part: ModelPart = "full",
  ) {
    this.ch = stageChannels(config);
  }

  private needPart(what: string, ok: ModelPart): void {
    if (this.part !== "full" && this.part !== ok) {
      throw new Error(`DiC graph: ${what} needs the "${ok}" part of the weights, but this model was loaded with part "${this.part}" (load part "full" or "${ok}")`);
    }
  }

  /** Frees the uploaded weights; the graph cannot run afterwards. Idempotent. */
  freeWeights(): void {
    for (const t of this.weights.values()) this.backend.free(t);
    (this.weights as Map<string, Tensor>).clear();
  }

  /** Output channels of `forward` (2 * in_channels with learned sigma). */
  get outChannels(): number {
    return outChannels(this.config);
  }

  private w(name: string): Tensor {
    const t = this.weights.get(name);
    if (!t) throw new Error(`DiC graph: weight "${name}" is not loaded`);
    return t;
  }

  private checkInputs(x: Tensor, t: readonly number[], y: readonly number[]): void {
    const c = this.config;
    const [n, ci, h, w] = x.shape;
    if (x.shape.length !== 4 || ci !== c.in_channels || h !== w || h % 4 !== 0) {
      throw new Error(`DiC forward: x has shape [${x.shape.join(", ")}], expected [N, ${c.in_channels}, S, S] with S divisible by 4`);
    }
    if (t.length !== n) throw new Error(`DiC forward: t has ${t.length} entries for a batch of ${n}`);
    if (y.length !== n) throw new Error(`DiC forward: y has ${y.length} entries for a batch of ${n}`);
    for (const v of t) if (!Number.isFinite(v)) throw new Error(`DiC forward: t contains ${v}`);
    const rows = labelRows(c);
    for (const v of y) {
      if (!Number.isInteger(v) || v < 0 || v >= rows) {
        throw new Error(`DiC forward: label ${v} outside 0..${rows - 1} (num_classes ${c.num_classes}${rows > c.num_classes ? ", null class " + c.num_classes : ""})`);
      }
    }
  }

  /**
   * Stage conditions [c0, c1, c2, c1, c_last]: t_embedder_ls.i(t) + y_embedder_ls.i(y), computed for the
   * stages of `part` only (the others are left undefined).
   */
  conditions(t: readonly number[], y: readonly number[], part: ModelPart = "full"): Tensor[] {
    const b = this.backend;
    const freq = b.upload({ shape: [t.length, FREQ_DIM], data: timestepFrequencies(t) });
    const cs: Tensor[] = [];
    for (const i of partConditionLevels(this.config, part)) {
      const h = b.linear(freq, this.w(`t_embedder_ls.${i}.mlp.0.weight`), this.w(`t_embedder_ls.${i}.mlp.0.bias`));
      const te = b.linear(h, this.w(`t_embedder_ls.${i}.mlp.2.weight`), this.w(`t_embedder_ls.${i}.mlp.2.bias`), "silu");
      const ye = b.gather(this.w(`y_embedder_ls.${i}.embedding_table.weight`), y);
      cs[i] = b.add(te, ye);
      b.free(h);
      b.free(te);
      b.free(ye);
    }
    b.free(freq);
    return [0, 1, 2, 3, 4].map((s) => cs[stageConditionLevel(this.config, s)]);
  }

  private freeConditions(cs: Tensor[]): void {
    for (const c of new Set(cs)) if (c !== undefined) this.backend.free(c);
  }

  /** One DiC block: conv0(GELU(norm0 x)); GELU(norm1 h (1+scale) + shift); conv1; gate * h + skip(x). */
  private *block(x: Tensor, c: Tensor, prefix: string, cin: number, cout: number): Steps<Tensor> {
    const b = this.backend;
    const p = (s: string) => this.w(`${prefix}.${s}`);
    const pre0: NormPreOp = { norm: "group", groups: groupsFor(cin), eps: 1e-5, weight: p("norm0.weight"), bias: p("norm0.bias"), act: "gelu" };
    const h0 = b.conv3x3(x, p("conv0.weight"), p("conv0.bias"), pre0);
    yield;
    const mod = b.linear(c, p("affine.1.weight"), p("affine.1.bias"), "silu"); // [N, 3*cout]: gate, scale, shift
    const pre1: NormPreOp = {
      norm: "group", groups: groupsFor(cout), eps: 1e-5, weight: p("norm1.weight"), bias: p("norm1.bias"),
      modulate: { scale: { tensor: mod, offset: cout }, shift: { tensor: mod, offset: 2 * cout } }, act: "gelu",
    };
    const h1 = b.conv3x3(h0, p("conv1.weight"), p("conv1.bias"), pre1);
    b.free(h0);
    const res = cin !== cout ? b.conv1x1(x, p("skip.weight"), p("skip.bias")) : x;
    const out = b.gateAdd(h1, { tensor: mod, offset: 0 }, res);
    b.free(h1);
    b.free(mod);
    if (res !== x) b.free(res);
    return out;
  }

  /**
   * Runs the blocks of stage `s` on `x`, which the stage owns and frees. `take(b)` may return a skip to
   * concatenate before block b (consumed); outputs for which `save(b)` holds are pushed to `saved`
   * and left alive for the caller.
   */
  private *stage(x: Tensor, c: Tensor, s: number, take: (b: number) => Tensor | null, save: (b: number) => boolean, saved: Tensor[]): Steps<Tensor> {
    const b = this.backend;
    const widths = blockInputs(this.config, s);
    const kept = new Set<Tensor>();
    let cur = x;
    for (let bi = 0; bi < widths.length; bi++) {
      const extra = take(bi);
      let input = cur;
      if (extra) {
        input = b.concat(cur, extra);
        b.free(extra);
        if (!kept.has(cur)) b.free(cur);
      }
      const out = yield* this.block(input, c, blockPrefix(s, bi), widths[bi], this.ch[s]);
      yield;
      if (!kept.has(input)) b.free(input);
      if (save(bi)) {
        saved.push(out);
        kept.add(out);
      }
      cur = out;
    }
    return cur;
  }

  /**
   * Embeddings, encoder stages and latent stage. Returns the bottleneck and the strided skips.
   * The caller owns the returned tensors; `x` is not consumed.
   */
  encode(x: Tensor, t: readonly number[], y: readonly number[]): EncodeOutput {
    return drain(this.backend, this.encodeSteps(x, t, y));
  }

  /** `encode`, giving the event loop a turn between ops (so the library never blocks its caller). */
  encodeAsync(x: Tensor, t: readonly number[], y: readonly number[]): Promise<EncodeOutput> {
    return drainAsync(this.backend, this.encodeSteps(x, t, y));
  }

  private *encodeSteps(x: Tensor, t: readonly number[], y: readonly number[]): Steps<EncodeOutput> {
    this.needPart("encode", "encode");
    this.checkInputs(x, t, y);
    const cs = this.conditions(t, y, "encode");
    try {
      return yield* this.encodeWith(x, cs);
    } finally {
      this.freeConditions(cs);
    }
  }

  private *encodeWith(x: Tensor, cs: Tensor[]): Steps<EncodeOutput> {
    const b = this.backend;
    const cfg = this.config;
    const skips: Tensor[] = [];
    let h = b.conv3x3(x, this.w("x_embedder.proj.weight"), this.w("x_embedder.proj.bias"));
    for (let s = 0; s < 2; s++) {
      const depth = cfg.depth[s];
      // Official strided skips: keep block b's output when (depth - 1 - b) % skip_stride == 0.
      const out = yield* this.stage(h, cs[s], s, () => null, (bi) => (depth - 1 - bi) % cfg.skip_stride === 0, skips);
      const down = b.conv3x3(out, this.w(`downs.${s}.body.0.weight`), null);
      if (!skips.includes(out)) b.free(out);
      h = b.pixelUnshuffle(down, 2);
      b.free(down);
    }
    const bottleneck = yield* this.stage(h, cs[2], 2, () => null, () => false, []);
    return { bottleneck, skips };
  }

  /** Decoder stages and head on an `encode` result. Consumes (frees) the bottleneck and skips. */
  decode(enc: EncodeOutput, t: readonly number[], y: readonly number[]): Tensor {
    return drain(this.backend, this.decodeSteps(enc, t, y));
  }

  /** `decode`, giving the event loop a turn between ops. */
  decodeAsync(enc: EncodeOutput, t: readonly number[], y: readonly number[]): Promise<Tensor> {
    return drainAsync(this.backend, this.decodeSteps(enc, t, y));
  }

  private *decodeSteps(enc: EncodeOutput, t: readonly number[], y: readonly number[]): Steps<Tensor> {
    this.needPart("decode", "decode");
    // Checked before any op runs, so that a wrong count never throws halfway with intermediates alive.
    let need = 0;
    for (let j = 0; j < 2; j++) need += Math.ceil(this.config.depth[3 + j] / this.config.skip_stride);
    if (enc.skips.length !== need) throw new Error(`DiC decode: ${enc.skips.length} skip tensors, the decoder takes ${need}`);
    const cs = this.conditions(t, y, "decode");
    try {
      return yield* this.decodeWith(enc, cs);
    } finally {
      this.freeConditions(cs);
    }
  }

  private *decodeWith(enc: EncodeOutput, cs: Tensor[]): Steps<Tensor> {
    const b = this.backend;
    const cfg = this.config;
    const skips = [...enc.skips];
    let h = enc.bottleneck;
    for (let j = 0; j < 2; j++) {
      const s = 3 + j;
      const up = b.conv3x3(h, this.w(`ups.${j}.body.0.weight`), null);
      b.free(h);
      const x = b.pixelShuffle(up, 2);
      b.free(up);
      const out = yield* this.stage(x, cs[s], s, (bi) => {
        if (bi % cfg.skip_stride !== 0) return null;
        const sk = skips.pop();
        if (!sk) throw new Error("DiC decode: ran out of skip tensors (encoder and decoder depths disagree)");
        return sk;
      }, () => false, []);
      h = out;
    }
    if (skips.length) throw new Error(`DiC decode: ${skips.length} skip tensors left unused`);
    const c = this.ch[4];
    const o = b.conv3x3(h, this.w("output.weight"), this.w("output.bias"));
    b.free(h);
    const mod = b.linear(cs[4], this.w("final_layer.adaLN_modulation.1.weight"), this.w("final_layer.adaLN_modulation.1.bias"), "silu");
    const pre: NormPreOp = {
      norm: "layer", eps: 1e-6, act: "none",
      modulate: { shift: { tensor: mod, offset: 0 }, scale: { tensor: mod, offset: c } },
    };
    const out = b.conv3x3(o, this.w("final_layer.out_proj.weight"), this.w("final_layer.out_proj.bias"), pre);
    b.free(o);
    b.free(mod);
    return out;
  }

  /** Full forward: model output [N, out_channels, S, S] (eps, then variance values with learned sigma). */
  forward(x: Tensor, t: readonly number[], y: readonly number[]): Tensor {
    return drain(this.backend, this.forwardSteps(x, t, y));
  }

  /** `forward`, giving the event loop a turn between ops. */
  forwardAsync(x: Tensor, t: readonly number[], y: readonly number[]): Promise<Tensor> {
    return drainAsync(this.backend, this.forwardSteps(x, t, y));
  }

  private *forwardSteps(x: Tensor, t: readonly number[], y: readonly number[]): Steps<Tensor> {
    if (this.part !== "full") throw new Error(`DiC graph: a whole forward needs every tensor, but this model was loaded with part "${this.part}" (load part "full")`);
    this.checkInputs(x, t, y);
    const cs = this.conditions(t, y);
    try {
      return yield* this.decodeWith(yield* this.encodeWith(x, cs), cs);
    } finally {
      this.freeConditions(cs);
    }
  }

  /**
   * `forward` from and to host memory: uploads x, runs the network (giving the event loop a turn
   * between ops), downloads the output; frees everything it made, also on a throw.
   */
  forwardHost(x: HostTensor, t: readonly number[], y: readonly number[]): Promise<HostTensor> {
    return scope(this.backend, async (s) => s.download(s.track(await this.forwardAsync(s.upload(x), t, y))));
  }

  /** `encode` from and to host memory: the bottleneck and skips downloaded; frees everything it made, also on a throw. */
  encodeHost(x: HostTensor, t: readonly number[], y: readonly number[]): Promise<HostEncodeOutput> {
    return scope(this.backend, async (s) => {
      const enc = await this.encodeAsync(s.upload(x), t, y);
      const all = [enc.bottleneck, ...enc.skips].map(s.track);
      const [bottleneck, ...skips] = await Promise.all(all.map(s.download));
      return { bottleneck, skips };
    });
  }

  /** `decode` from and to host memory: uploads the bottleneck and skips, downloads the output; frees everything it made, also on a throw. */
  decodeHost(enc: HostEncodeOutput, t: readonly number[], y: readonly number[]): Promise<HostTensor> {
    return scope(this.backend, async (s) => {
      const dev = { bottleneck: s.upload(enc.bottleneck), skips: enc.skips.map((k) => s.upload(k)) };
      return s.download(s.track(await this.decodeAsync(dev, t, y)));
    });
  }
}
