// The parameter table of the VAE decoder under the current diffusers AutoencoderKL names, the mapping of
// the older attention names onto them, and the decoder's multiply-accumulate count.
import { type VAEConfig, vaeUpscale } from "./config.ts";

/** Decoder widths in the order the decoder runs them (block_out_channels reversed). */
export function decoderWidths(cfg: VAEConfig): number[] {
  return [...cfg.block_out_channels].reverse();
}

const ATTN = "decoder.mid_block.attentions.0";

/** Map of every decoder parameter name (current diffusers names) to its shape, in a stable order. */
export function expectedVAEParams(cfg: VAEConfig): Map<string, number[]> {
  const p = new Map<string, number[]>();
  const rev = decoderWidths(cfg);
  const lat = cfg.latent_channels;
  const resnet = (k: string, cin: number, cout: number) => {
    p.set(`${k}.norm1.weight`, [cin]);
    p.set(`${k}.norm1.bias`, [cin]);
    p.set(`${k}.conv1.weight`, [cout, cin, 3, 3]);
    p.set(`${k}.conv1.bias`, [cout]);
    p.set(`${k}.norm2.weight`, [cout]);
    p.set(`${k}.norm2.bias`, [cout]);
    p.set(`${k}.conv2.weight`, [cout, cout, 3, 3]);
    p.set(`${k}.conv2.bias`, [cout]);
    if (cin !== cout) {
      p.set(`${k}.conv_shortcut.weight`, [cout, cin, 1, 1]);
      p.set(`${k}.conv_shortcut.bias`, [cout]);
    }
  };
  p.set("post_quant_conv.weight", [lat, lat, 1, 1]);
  p.set("post_quant_conv.bias", [lat]);
  p.set("decoder.conv_in.weight", [rev[0], lat, 3, 3]);
  p.set("decoder.conv_in.bias", [rev[0]]);
  resnet("decoder.mid_block.resnets.0", rev[0], rev[0]);
  p.set(`${ATTN}.group_norm.weight`, [rev[0]]);
  p.set(`${ATTN}.group_norm.bias`, [rev[0]]);
  for (const n of ["to_q", "to_k", "to_v", "to_out.0"]) {
    p.set(`${ATTN}.${n}.weight`, [rev[0], rev[0]]);
    p.set(`${ATTN}.${n}.bias`, [rev[0]]);
  }
  resnet("decoder.mid_block.resnets.1", rev[0], rev[0]);
  let prev = rev[0];
  rev.forEach((c, i) => {
    for (let j = 0; j <= cfg.layers_per_block; j++) resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : c, c);
    if (i < rev.length - 1) {
      p.set(`decoder.up_blocks.${i}.upsamplers.0.conv.weight`, [c, c, 3, 3]);
      p.set(`decoder.up_blocks.${i}.upsamplers.0.conv.bias`, [c]);
    }
    prev = c;
  });
  p.set("decoder.conv_norm_out.weight", [rev[rev.length - 1]]);
  p.set("decoder.conv_norm_out.bias", [rev[rev.length - 1]]);
  p.set("decoder.conv_out.weight", [cfg.out_channels, rev[rev.length - 1], 3, 3]);
  p.set("decoder.conv_out.bias", [cfg.out_channels]);
  return p;
}

// Older names of the mid-block attention's tensors in AutoencoderKL files: diffusers before 0.14
// (query/key/value/proj_attn, Linear) and the original latent-diffusion layout (norm, q/k/v/proj_out,
// 1x1 convolutions).
const LEGACY: readonly [RegExp, string][] = [
  [/^(decoder\.mid_block\.attentions\.\d+)\.(query|q)\./, "$1.to_q."],
  [/^(decoder\.mid_block\.attentions\.\d+)\.(key|k)\./, "$1.to_k."],
  [/^(decoder\.mid_block\.attentions\.\d+)\.(value|v)\./, "$1.to_v."],
  [/^(decoder\.mid_block\.attentions\.\d+)\.(proj_attn|proj_out)\./, "$1.to_out.0."],
  [/^(decoder\.mid_block\.attentions\.\d+)\.norm\./, "$1.group_norm."],
];

/** The current diffusers name of a tensor name found in a file (legacy attention names mapped). */
export function canonicalVAEName(name: string): string {
  for (const [re, to] of LEGACY) if (re.test(name)) return name.replace(re, to);
  return name;
}

/** Whether a tensor belongs to the decoder path (encoder and quant_conv tensors of a full VAE file do not). */
export function isDecoderTensor(name: string): boolean {
  return name.startsWith("decoder.") || name.startsWith("post_quant_conv.");
}

/** Parameter count of the decoder. */
export function vaeParamCount(cfg: VAEConfig): number {
  let n = 0;
  for (const s of expectedVAEParams(cfg).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/** Multiply-accumulates of one decode of an h x w latent (convolutions, linears and attention), per sample. */
export function vaeDecodeMacs(cfg: VAEConfig, h: number, w: number): number {
  const rev = decoderWidths(cfg);
  const up = vaeUpscale(cfg);
  let macs = 0;
  for (const [name, shape] of expectedVAEParams(cfg)) {
    if (!name.endsWith("weight") || !(shape.length === 4 || (shape.length === 2 && name.startsWith(ATTN)))) continue;
    const per = shape.reduce((a, b) => a * b, 1);
    let scale = 1; // resolution relative to the latent
    const m = /^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)/.exec(name);
    if (m) scale = 2 ** Number(m[1]) * (m[2] === "upsamplers" ? 2 : 1);
    else if (name.startsWith("decoder.conv_norm_out") || name.startsWith("decoder.conv_out")) scale = up;
    macs += per * h * w * scale * scale;
  }
  const tokens = h * w;
  return macs + 2 * tokens * tokens * rev[0];
}
