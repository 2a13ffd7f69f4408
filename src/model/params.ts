// The parameter table of a DiC configuration: every official state_dict key and its shape.
// Used to validate weight files before anything is uploaded, and by the graph to find tensors.
import { type DiCConfig, labelRows, outChannels, stageChannels } from "./config.ts";

/** Block input widths of one stage: the decoder's blocks at b % skip_stride == 0 see [x, skip] concatenated. */
export function blockInputs(cfg: DiCConfig, stage: number): number[] {
  const ch = stageChannels(cfg);
  const widths: number[] = [];
  for (let b = 0; b < cfg.depth[stage]; b++) {
    const skip = stage === 3 ? ch[1] : stage === 4 ? ch[0] : 0;
    widths.push(skip > 0 && b % cfg.skip_stride === 0 ? ch[stage] + skip : ch[stage]);
  }
  return widths;
}

/** Official key prefix of block b of stage s (0,1 encoder; 2 latent; 3,4 decoder). */
export function blockPrefix(stage: number, b: number): string {
  if (stage < 2) return `enc_blocks.${stage}.${b}.conv`;
  if (stage === 2) return `lat_blocks.0.${b}.conv`;
  return `dec_blocks.${stage - 3}.${b}.conv`;
}

/** Map of every parameter name to its shape, in a stable order. */
export function expectedParams(cfg: DiCConfig): Map<string, number[]> {
  const p = new Map<string, number[]>();
  const ch = stageChannels(cfg);
  p.set("x_embedder.proj.weight", [ch[0], cfg.in_channels, 3, 3]);
  p.set("x_embedder.proj.bias", [ch[0]]);
  for (let i = 0; i < 3; i++) {
    p.set(`t_embedder_ls.${i}.mlp.0.weight`, [ch[i], 256]);
    p.set(`t_embedder_ls.${i}.mlp.0.bias`, [ch[i]]);
    p.set(`t_embedder_ls.${i}.mlp.2.weight`, [ch[i], ch[i]]);
    p.set(`t_embedder_ls.${i}.mlp.2.bias`, [ch[i]]);
    p.set(`y_embedder_ls.${i}.embedding_table.weight`, [labelRows(cfg), ch[i]]);
  }
  for (let s = 0; s < 5; s++) {
    const c = ch[s];
    blockInputs(cfg, s).forEach((cin, b) => {
      const k = blockPrefix(s, b);
      p.set(`${k}.norm0.weight`, [cin]);
      p.set(`${k}.norm0.bias`, [cin]);
      p.set(`${k}.conv0.weight`, [c, cin, 3, 3]);
      p.set(`${k}.conv0.bias`, [c]);
      p.set(`${k}.affine.1.weight`, [3 * c, c]);
      p.set(`${k}.affine.1.bias`, [3 * c]);
      p.set(`${k}.norm1.weight`, [c]);
      p.set(`${k}.norm1.bias`, [c]);
      p.set(`${k}.conv1.weight`, [c, c, 3, 3]);
      p.set(`${k}.conv1.bias`, [c]);
      if (cin !== c) {
        p.set(`${k}.skip.weight`, [c, cin, 1, 1]);
        p.set(`${k}.skip.bias`, [c]);
      }
    });
    if (s < 2) p.set(`downs.${s}.body.0.weight`, [ch[s + 1] / 4, c, 3, 3]);
    if (s >= 2 && s < 4) p.set(`ups.${s - 2}.body.0.weight`, [ch[s + 1] * 4, c, 3, 3]);
  }
  const c = ch[4];
  p.set("output.weight", [c, c, 3, 3]);
  p.set("output.bias", [c]);
  p.set("final_layer.out_proj.weight", [outChannels(cfg), c, 3, 3]);
  p.set("final_layer.out_proj.bias", [outChannels(cfg)]);
  p.set("final_layer.adaLN_modulation.1.weight", [2 * c, c]);
  p.set("final_layer.adaLN_modulation.1.bias", [2 * c]);
  return p;
}

/** Total parameter count. */
export function paramCount(cfg: DiCConfig): number {
  let n = 0;
  for (const s of expectedParams(cfg).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/** Multiply-accumulates of one forward per sample (convolutions and linears), for GFLOP/s figures. */
export function forwardMacs(cfg: DiCConfig): number {
  let macs = 0;
  const sizes = [cfg.input_size, cfg.input_size / 2, cfg.input_size / 4, cfg.input_size / 2, cfg.input_size];
  for (const [name, shape] of expectedParams(cfg)) {
    if (!name.endsWith("weight")) continue;
    const per = shape.reduce((a, b) => a * b, 1);
    if (shape.length === 4) {
      const s = name.startsWith("x_embedder") || name.startsWith("output") || name.startsWith("final") ? 0
        : name.startsWith("downs.") ? Number(name[6]) : name.startsWith("ups.") ? 2 + Number(name[4])
        : name.startsWith("enc_blocks.") ? Number(name[11]) : name.startsWith("lat_") ? 2 : 3 + Number(name[11]);
      macs += per * sizes[s] * sizes[s];
    } else if (name.includes("mlp") || name.includes("affine") || name.includes("adaLN")) {
      macs += per;
    }
  }
  return macs;
}

/**
 * A part of the network, as one side of a cut runs it: "full" (every tensor), "encode" (embeddings,
 * encoder stages and latent stage: the edge of the `unet` cut) or "decode" (decoder stages and head,
 * with the conditions they take: the host of the `unet` cut).
 */
export type ModelPart = "full" | "encode" | "decode";

/** The parts a loader accepts. */
export const MODEL_PARTS: readonly ModelPart[] = Object.freeze(["full", "encode", "decode"]);

/** Level of the condition that stage s (0,1 encoder; 2 latent; 3,4 decoder) and, for s = 4, the head take. */
export function stageConditionLevel(cfg: DiCConfig, stage: number): number {
  const m = cfg.mult_channels;
  return [0, 1, 2, 1, m.slice(0, 3).indexOf(m[4])][stage];
}

/** Stages each part runs (the head runs with stage 4). */
export function partStages(part: ModelPart): number[] {
  return part === "encode" ? [0, 1, 2] : part === "decode" ? [3, 4] : [0, 1, 2, 3, 4];
}

/** Condition levels (t_embedder_ls.i, y_embedder_ls.i) a part computes, ascending. */
export function partConditionLevels(cfg: DiCConfig, part: ModelPart): number[] {
  return [...new Set(partStages(part).map((s) => stageConditionLevel(cfg, s)))].sort((a, b) => a - b);
}

/**
 * Whether parameter `name` belongs to `part`: the one rule that says which tensors each side of a cut
 * loads (the graph's encode/decode use exactly these).
 */
export function inPart(cfg: DiCConfig, name: string, part: ModelPart): boolean {
  if (part === "full") return true;
  const emb = /^[ty]_embedder_ls\.(\d+)\./.exec(name);
  if (emb) return partConditionLevels(cfg, part).includes(Number(emb[1]));
  const encoder = /^(x_embedder|enc_blocks|downs|lat_blocks)\./.test(name);
  return part === "encode" ? encoder : !encoder;
}

/** The parameters of one part (all of them for "full"), in the order of `expectedParams`. */
export function partParams(cfg: DiCConfig, part: ModelPart): Map<string, number[]> {
  const all = expectedParams(cfg);
  if (part === "full") return all;
  return new Map([...all].filter(([name]) => inPart(cfg, name, part)));
}

/** Checks a part name (from an option or a flag). */
export function checkModelPart(part: string): ModelPart {
  if (!(MODEL_PARTS as readonly string[]).includes(part)) throw new Error(`part must be one of ${MODEL_PARTS.join(", ")}, got ${JSON.stringify(part)}`);
  return part as ModelPart;
}
