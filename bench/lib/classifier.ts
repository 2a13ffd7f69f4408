// The quality classifier (reference/train_classifier.py `Classifier`) as a graph over the Backend contract:
// conv3x3 stages with a fused GroupNorm+GELU pre-op, PixelUnshuffle(2) between stages, a linear head.
// Its `features` (the input of the last linear layer) are what the Frechet distance of bench/quality uses.
import type { Backend, NormPreOp, Tensor, TensorRole } from "../../src/backend/contract.ts";
import { toRGBA } from "../../src/image.ts";
import { type HostTensor, hostTensor, shapeStr } from "../../src/tensor.ts";
import { readSafetensorsFile } from "../../src/weights/read-file.ts";
import { checkTensors, parseSafetensors, type SafetensorsFile, type SafetensorsHeader, WeightsError } from "../../src/weights/safetensors.ts";

/** `__metadata__.format` of a classifier file. */
export const CLASSIFIER_FORMAT = "dic-sdk-classifier/1";

/** The classifier's constructor arguments (`__metadata__.config`, the names of train_classifier.py). */
export interface ClassifierConfig {
  input_size: number;
  in_channels: number;
  /** Channels per stage; stage i > 0 starts with PixelUnshuffle(2) and a conv 4*C(i-1) -> Ci. */
  channels: number[];
  /** Residual blocks `h + conv(GELU(GN(h)))` per stage. */
  blocks: number[];
  reduce_channels: number;
  features: number;
  num_classes: number;
  norm_eps: number;
}

/** Output of `classify`: logits [N, num_classes] and the penultimate features [N, features]. */
export interface ClassifyResult {
  logits: HostTensor;
  features: HostTensor;
}

/** GroupNorm groups of a C-channel input: the DiC rule min(32, C / 4). */
function groupsFor(c: number): number {
  return Math.min(32, Math.floor(c / 4));
}

function finalSide(cfg: ClassifierConfig): number {
  return cfg.input_size / 2 ** (cfg.channels.length - 1);
}

function parseConfig(header: Pick<SafetensorsHeader, "metadata" | "source">): ClassifierConfig {
  const bad = (why: string) => new WeightsError("bad_metadata", header.source, `classifier config: ${why}`);
  const raw = header.metadata.config;
  if (raw === undefined) throw bad("__metadata__.config is missing");
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(raw);
  } catch {
    throw bad("__metadata__.config is not valid JSON");
  }
  const int = (k: string): number => {
    const v = c[k];
    if (!Number.isInteger(v) || (v as number) <= 0) throw bad(`${k} must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const list = (k: string, min: number): number[] => {
    const v = c[k];
    if (!Array.isArray(v) || v.length === 0 || !v.every((d) => Number.isInteger(d) && d >= min)) {
      throw bad(`${k} must be a non-empty list of integers >= ${min}, got ${JSON.stringify(v)}`);
    }
    return v as number[];
  };
  const cfg: ClassifierConfig = {
    input_size: int("input_size"), in_channels: int("in_channels"), channels: list("channels", 4), blocks: list("blocks", 0),
    reduce_channels: int("reduce_channels"), features: int("features"), num_classes: int("num_classes"),
    norm_eps: typeof c.norm_eps === "number" && c.norm_eps > 0 ? c.norm_eps : 1e-5,
  };
  if (cfg.blocks.length !== cfg.channels.length) throw bad(`blocks has ${cfg.blocks.length} stages, channels ${cfg.channels.length}`);
  if (!Number.isInteger(finalSide(cfg))) throw bad(`input_size ${cfg.input_size} does not halve ${cfg.channels.length - 1} times`);
  for (const ch of [...cfg.channels, ...cfg.channels.map((x) => 4 * x)]) {
    if (ch % groupsFor(ch) !== 0) throw bad(`${ch} channels do not split into ${groupsFor(ch)} norm groups`);
  }
  return cfg;
}

/** Names and shapes of the classifier's parameters (the PyTorch state_dict of train_classifier.py). */
export function expectedClassifierParams(cfg: ClassifierConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const preConv = (prefix: string, cin: number, cout: number) => {
    m.set(`${prefix}.norm.weight`, [cin]);
    m.set(`${prefix}.norm.bias`, [cin]);
    m.set(`${prefix}.conv.weight`, [cout, cin, 3, 3]);
    m.set(`${prefix}.conv.bias`, [cout]);
  };
  const ch = cfg.channels;
  m.set("stem.weight", [ch[0], cfg.in_channels, 3, 3]);
  m.set("stem.bias", [ch[0]]);
  for (let i = 1; i < ch.length; i++) preConv(`downs.${i - 1}`, 4 * ch[i - 1], ch[i]);
  ch.forEach((c, i) => {
    for (let b = 0; b < cfg.blocks[i]; b++) preConv(`stages.${i}.${b}`, c, c);
  });
  preConv("reduce", ch[ch.length - 1], cfg.reduce_channels);
  const side = finalSide(cfg);
  m.set("fc.weight", [cfg.features, cfg.reduce_channels * side * side]);
  m.set("fc.bias", [cfg.features]);
  m.set("head.weight", [cfg.num_classes, cfg.features]);
  m.set("head.bias", [cfg.num_classes]);
  return m;
}

/** The classifier bound to a backend. */
export class Classifier {
  /** @internal use `loadClassifier`. */
  constructor(
    readonly backend: Backend,
    readonly config: ClassifierConfig,
    private readonly weights: ReadonlyMap<string, Tensor>,
    /** The weights file's `__metadata__` (class_names, test_accuracy, ...). */
    readonly metadata: Readonly<Record<string, string>>,
    readonly source: string,
  ) {}

  /** Class names from the metadata (indices as strings when absent). */
  get classNames(): string[] {
    try {
      const names = JSON.parse(this.metadata.class_names ?? "null");
      if (Array.isArray(names) && names.length === this.config.num_classes) return names.map(String);
    } catch { /* fall through */ }
    return Array.from({ length: this.config.num_classes }, (_, i) => String(i));
  }

  /** Frees the uploaded weights; the classifier cannot be used afterwards. */
  dispose(): void {
    for (const t of this.weights.values()) this.backend.free(t);
  }

  private w(name: string): Tensor {
    const t = this.weights.get(name);
    if (!t) throw new Error(`classifier: weight "${name}" is not loaded`);
    return t;
  }

  private pre(prefix: string): NormPreOp {
    const weight = this.w(`${prefix}.norm.weight`);
    return { norm: "group", groups: groupsFor(weight.shape[0]), eps: this.config.norm_eps, weight, bias: this.w(`${prefix}.norm.bias`), act: "gelu" };
  }

  /** conv3x3(GELU(GroupNorm(x))) with the weights under `prefix`; frees x when `consume`. */
  private preConv(x: Tensor, prefix: string, consume: boolean): Tensor {
    const y = this.backend.conv3x3(x, this.w(`${prefix}.conv.weight`), this.w(`${prefix}.conv.bias`), this.pre(prefix));
    if (consume) this.backend.free(x);
    return y;
  }

  /** One batch through the network: x [n, C, S, S] on the backend -> logits, features (host). */
  private async forward(x: Tensor): Promise<ClassifyResult> {
    const b = this.backend, cfg = this.config;
    let h = b.conv3x3(x, this.w("stem.weight"), this.w("stem.bias"));
    for (let i = 0; i < cfg.channels.length; i++) {
      if (i > 0) {
        const u = b.pixelUnshuffle(h, 2);
        b.free(h);
        h = this.preConv(u, `downs.${i - 1}`, true);
      }
      for (let k = 0; k < cfg.blocks[i]; k++) {
        const r = this.preConv(h, `stages.${i}.${k}`, false);
        const s = b.add(h, r);
        b.free(h);
        b.free(r);
        h = s;
      }
    }
    const reduced = this.preConv(h, "reduce", true);
    // NOTE: the contract has no reshape: flattening NCHW -> [N, C*H*W] is a host reinterpretation of the
    // same row-major data (torch's .flatten(1)), so the tensor goes home and back once per batch.
    const host = await b.download(reduced);
    b.free(reduced);
    const n = host.shape[0];
    const flat = b.upload({ shape: [n, host.data.length / n], data: host.data }, "activation");
    const f = b.linear(flat, this.w("fc.weight"), this.w("fc.bias"));
    b.free(flat);
    const logits = b.linear(f, this.w("head.weight"), this.w("head.bias"), "silu");
    try {
      return { logits: await b.download(logits), features: await b.download(f) };
    } finally {
      b.free(f);
      b.free(logits);
    }
  }

  /**
   * Scores images [N, in_channels, S, S] with pixels in [-1, 1], `batchSize` at a time.
   * Returns logits [N, num_classes] and features [N, features].
   */
  async classify(images: HostTensor, batchSize = 100): Promise<ClassifyResult> {
    const cfg = this.config;
    const [n, c, h, w] = images.shape;
    if (images.shape.length !== 4 || c !== cfg.in_channels || h !== cfg.input_size || w !== cfg.input_size) {
      throw new Error(`classify: images have shape ${shapeStr(images.shape)}, expected [N, ${cfg.in_channels}, ${cfg.input_size}, ${cfg.input_size}]`);
    }
    hostTensor(images.shape, images.data, "classify: images");
    const per = c * h * w;
    const logits = new Float32Array(n * cfg.num_classes);
    const features = new Float32Array(n * cfg.features);
    for (let start = 0; start < n; start += batchSize) {
      const m = Math.min(batchSize, n - start);
      const x = this.backend.upload({ shape: [m, c, h, w], data: images.data.subarray(start * per, (start + m) * per) }, "activation");
      try {
        const r = await this.forward(x);
        logits.set(r.logits.data, start * cfg.num_classes);
        features.set(r.features.data, start * cfg.features);
      } finally {
        this.backend.free(x);
      }
    }
    return { logits: { shape: [n, cfg.num_classes], data: logits }, features: { shape: [n, cfg.features], data: features } };
  }
}

/**
 * Samples [N, C, H, W] in [-1, 1] as a user sees them: clamped and rounded to 8 bits exactly as the PNG
 * path (src/image.ts `toRGBA`) does, then mapped back like the real data (u8 / 127.5 - 1). Score these,
 * not raw samples: an unclipped sampler's few overshooting pixels never reach an image file.
 */
export function asStoredPixels(samples: HostTensor): HostTensor {
  const [n, c, h, w] = samples.shape;
  const plane = h * w;
  const out = new Float32Array(samples.data.length);
  toRGBA(samples).forEach((img, i) => {
    for (let ch = 0; ch < c; ch++) {
      const base = (i * c + ch) * plane;
      for (let p = 0; p < plane; p++) out[base + p] = Math.fround(Math.fround(img.data[p * 4 + ch] / 127.5) - 1);
    }
  });
  return { shape: [n, c, h, w], data: out };
}

/** Index of the largest logit of each row of [N, K] logits. */
export function argmaxRows(logits: HostTensor): number[] {
  const [n, k] = logits.shape;
  const out: number[] = [];
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits.data[r * k + j] > logits.data[r * k + best]) best = j;
    out.push(best);
  }
  return out;
}

/** Fraction of rows whose argmax equals the label, overall and per class (NaN for a class with no rows). */
export function accuracy(logits: HostTensor, labels: ArrayLike<number>): { overall: number; perClass: number[] } {
  const pred = argmaxRows(logits);
  if (pred.length !== labels.length) throw new Error(`accuracy: ${pred.length} rows of logits, ${labels.length} labels`);
  const k = logits.shape[1];
  const hit = new Array<number>(k).fill(0), count = new Array<number>(k).fill(0);
  let correct = 0;
  pred.forEach((p, i) => {
    count[labels[i]]++;
    if (p === labels[i]) {
      hit[labels[i]]++;
      correct++;
    }
  });
  return { overall: correct / Math.max(1, pred.length), perClass: hit.map((h, c) => (count[c] ? h / count[c] : NaN)) };
}

function roleOf(shape: readonly number[]): TensorRole {
  return shape.length === 4 ? "conv3x3.weight" : shape.length === 2 ? "linear.weight" : "vector";
}

/** Where classifier weights come from: a file path or file URL, or the bytes of a safetensors file. */
export type ClassifierSource = string | URL | Uint8Array | ArrayBuffer;

/**
 * Loads classifier weights (safetensors from reference/train_classifier.py; f32 or f16 storage) onto a
 * backend. NOTE: takes a Backend instance, not a name: only the registry (sdk, pipeline, benches) picks backends.
 *
 * @example
 * const clf = await loadClassifier("models/fashion-classifier.safetensors", (await createBackend("js")).backend);
 * const { logits, features } = await clf.classify({ shape: [1, 1, 28, 28], data: pixels });
 */
export async function loadClassifier(source: ClassifierSource, backend: Backend): Promise<Classifier> {
  let file: SafetensorsFile, name: string;
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    name = "<bytes>";
    file = parseSafetensors(source instanceof Uint8Array ? source : new Uint8Array(source), name);
    checkTensors(file, expectedClassifierParams(parseConfig(file)), name);
  } else {
    const text = typeof source === "string" ? source : source.href;
    name = text.startsWith("file:") ? decodeURIComponent(new URL(text).pathname) : text;
    file = await readSafetensorsFile(name, (header) => checkTensors(header, expectedClassifierParams(parseConfig(header)), name));
  }
  if (file.metadata.format !== undefined && file.metadata.format !== CLASSIFIER_FORMAT) {
    throw new WeightsError("bad_metadata", name, `format is ${JSON.stringify(file.metadata.format)}, expected ${JSON.stringify(CLASSIFIER_FORMAT)}`);
  }
  const cfg = parseConfig(file);
  const weights = new Map<string, Tensor>();
  for (const [key, shape] of expectedClassifierParams(cfg)) {
    const data = file.getF32(key);
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new WeightsError("bad_value", name, `holds a non-finite value (${data[bad]}) at index ${bad}`, key);
    weights.set(key, backend.upload({ shape, data }, roleOf(shape)));
  }
  return new Classifier(backend, cfg, weights, file.metadata, name);
}
