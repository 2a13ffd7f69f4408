// loadModel(): weights from a path, URL, bytes or Response, bound to a backend, with forward().
import type { Backend } from "../src/backend/contract.ts";
import { createBackend } from "../src/backend/registry.ts";
import { type DiCConfig, type DiCConfigInput, parseConfigArg } from "../src/model/config.ts";
import type { DiCGraph } from "../src/model/dic.ts";
import { bindDiC, checkDiCTensors, configForFile } from "../src/model/load.ts";
import { fetchBytes, responseBytes } from "../src/io.ts";
import { type HostTensor, hostTensor, shapeStr } from "../src/tensor.ts";
import { parseSafetensors, type SafetensorsFile } from "../src/weights/safetensors.ts";
import { readSafetensorsFile } from "../src/weights/read-file.ts";

/** Where weights come from: a file path, an http(s)/file URL, raw bytes, or a fetch Response. */
export type ModelSource = string | URL | Uint8Array | ArrayBuffer | Response;

/** Options of `loadModel`. */
export interface LoadModelOptions {
  /** "auto" (default), "js", or a Backend instance. */
  backend?: string | Backend;
  /** Overrides the configuration stored in the file: a preset name ("DiC-S") or official fields. */
  config?: string | DiCConfigInput;
}

/** A DiC model ready to run on a backend. */
export class DiCModel {
  /** @internal use `loadModel`. */
  constructor(
    readonly graph: DiCGraph,
    /** Why this backend runs (explicit option, environment, or auto priority). */
    readonly backendReason: string,
    /** The weights file's `__metadata__`. */
    readonly metadata: Readonly<Record<string, string>>,
    /** Where the weights came from (path, URL or "<bytes>"). */
    readonly source: string,
  ) {}

  /** The resolved configuration (official constructor names). */
  get config(): DiCConfig {
    return this.graph.config;
  }

  /** The backend that runs this model. */
  get backend(): Backend {
    return this.graph.backend;
  }

  /**
   * One network evaluation: x [N, in_channels, S, S], t (timesteps, one per row), y (labels).
   * Returns [N, out_channels, S, S]: eps, then the variance values when the model learns sigma.
   *
   * @example
   * const model = await loadModel("dic-s.safetensors");
   * const out = await model.forward({ shape: [1, 4, 32, 32], data: new Float32Array(4096) }, [500], [207]);
   */
  async forward(x: HostTensor, t: ArrayLike<number>, y: ArrayLike<number>): Promise<HostTensor> {
    const c = this.config;
    if (x.shape.length !== 4 || x.shape[1] !== c.in_channels || x.shape[2] !== c.input_size || x.shape[3] !== c.input_size) {
      throw new Error(`forward: x has shape ${shapeStr(x.shape)}, expected [N, ${c.in_channels}, ${c.input_size}, ${c.input_size}]`);
    }
    const b = this.backend;
    const xt = b.upload(hostTensor(x.shape, x.data, "x"));
    try {
      const out = this.graph.forward(xt, Array.from(t), Array.from(y));
      try {
        return await b.download(out);
      } finally {
        b.free(out);
      }
    } finally {
      b.free(xt);
    }
  }
}

async function readSource(source: ModelSource, overrides: DiCConfigInput): Promise<{ file: SafetensorsFile; name: string }> {
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const bytes = source instanceof Uint8Array ? source : new Uint8Array(source);
    return { file: parseSafetensors(bytes, "<bytes>"), name: "<bytes>" };
  }
  if (typeof source !== "string" && !(source instanceof URL)) {
    const name = source.url || "<response>";
    return { file: parseSafetensors(await responseBytes(source, name), name), name };
  }
  const text = typeof source === "string" ? source : source.href;
  if (/^https?:\/\//i.test(text)) return { file: parseSafetensors(await fetchBytes(text), text), name: text };
  const path = text.startsWith("file:") ? decodeURIComponent(new URL(text).pathname) : text;
  // The header is checked against the configuration before the data is read.
  const file = await readSafetensorsFile(path, (header) => {
    const cfg = configForFile(header, overrides);
    checkDiCTensors(header, cfg, path);
  });
  return { file, name: path };
}

/**
 * Loads DiC weights (safetensors with official PyTorch key names; f32, f16 or bf16 storage) and
 * binds them to a backend. The configuration comes from the file's `__metadata__.config` JSON and
 * can be overridden with `options.config`.
 *
 * @example
 * import { loadModel } from "dic-sdk";
 * const model = await loadModel("weights/dic-s.safetensors", { backend: "js", config: "DiC-S" });
 * console.log(model.config.hidden_size, model.backend.description);
 */
export async function loadModel(source: ModelSource, options: LoadModelOptions = {}): Promise<DiCModel> {
  const overrides = typeof options.config === "string" ? parseConfigArg(options.config) : (options.config ?? {});
  const { file, name } = await readSource(source, overrides);
  const config = configForFile(file, overrides);
  let backend: Backend, reason: string;
  if (typeof options.backend === "object") {
    backend = options.backend;
    reason = `${backend.name} (instance given)`;
  } else {
    ({ backend, reason } = await createBackend(options.backend));
  }
  return new DiCModel(bindDiC(file, config, backend), reason, file.metadata, name);
}
