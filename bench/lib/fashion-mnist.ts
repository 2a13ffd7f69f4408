// Reads Fashion-MNIST from its idx files (Debian's dataset-fashion-mnist, gzip) into [-1, 1] images:
// x / 127.5 - 1, the range of the diffusion model (reference/train.py `load_fashion_mnist`, `to_model_range`).
// NOTE: gunzip uses the web-standard DecompressionStream (Node 20, Deno, Bun, browsers): no node:zlib.
import type { HostTensor } from "../../src/tensor.ts";

/** Where Debian installs the dataset. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** Labelled images: images [N, 1, 28, 28] in [-1, 1], labels [N]. */
export interface LabelledImages {
  images: HostTensor;
  labels: number[];
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function readIdx(path: string, magic: number): Promise<{ dims: number[]; body: Uint8Array }> {
  const fs = await import("node:fs/promises");
  let raw: Uint8Array;
  try {
    raw = new Uint8Array(await fs.readFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read Fashion-MNIST (apt-get install dataset-fashion-mnist, or pass its folder): ${(e as Error).message}`);
  }
  const data = path.endsWith(".gz") ? await gunzip(raw) : raw;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const got = view.getInt32(0, false);
  if (got !== magic) throw new Error(`${path}: idx magic ${got}, expected ${magic}`);
  const rank = magic & 0xff;
  const dims = Array.from({ length: rank }, (_, i) => view.getInt32(4 + 4 * i, false));
  const body = data.subarray(4 + 4 * rank);
  const want = dims.reduce((a, d) => a * d, 1);
  if (body.length !== want) throw new Error(`${path}: ${body.length} bytes of data, dims [${dims.join(", ")}] need ${want}`);
  return { dims, body };
}

/**
 * Loads the "train" (60,000) or "test" (10,000) split, or its first `limit` images.
 *
 * @example
 * const { images, labels } = await loadFashionMnist("test", { limit: 200 });
 */
export async function loadFashionMnist(split: "train" | "test", options: { dir?: string; limit?: number } = {}): Promise<LabelledImages> {
  const dir = options.dir ?? FASHION_MNIST_DIR;
  const prefix = split === "train" ? "train" : "t10k";
  const img = await readIdx(`${dir}/${prefix}-images-idx3-ubyte.gz`, 2051);
  const lab = await readIdx(`${dir}/${prefix}-labels-idx1-ubyte.gz`, 2049);
  const [n, h, w] = img.dims;
  if (lab.dims[0] !== n) throw new Error(`${dir}: ${n} ${split} images but ${lab.dims[0]} labels`);
  const count = Math.min(n, options.limit ?? n);
  const data = new Float32Array(count * h * w);
  // NOTE: same f32 arithmetic as torch's `u8.float() / 127.5 - 1.0`.
  for (let i = 0; i < data.length; i++) data[i] = Math.fround(Math.fround(img.body[i] / 127.5) - 1);
  return { images: { shape: [count, 1, h, w], data }, labels: Array.from(lab.body.subarray(0, count)) };
}
