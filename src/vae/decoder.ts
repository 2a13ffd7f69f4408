// The SD-VAE decoder as a graph over the Backend contract (reference/vae_ref.py; diffusers AutoencoderKL
// decode): post_quant_conv, conv_in, mid block (ResNet, single-head attention, ResNet), up blocks of
// layers_per_block + 1 ResNets with nearest 2x upsampling + conv, GroupNorm(32, 1e-6) + SiLU, conv_out.
import { type Backend, collect, freeCollected, type NormPreOp, type Tensor } from "../backend/contract.ts";
import { type VAEConfig, VAE_NORM_EPS, vaeUpscale } from "./config.ts";
import { decoderWidths } from "./params.ts";

/** A VAE decoder bound to a backend and its uploaded weights. */
export class VAEDecoderGraph {
  private readonly rev: number[];
  private disposed = false;

  /**
   * `weights` maps the current diffusers names to uploaded tensors. NOTE: post_quant_conv.weight is
   * expected already divided by scaling_factor (bindVAE folds the latent scaling into it), so `decode`
   * takes latents in the diffusion model's space.
   */
  constructor(readonly backend: Backend, readonly config: VAEConfig, private readonly weights: ReadonlyMap<string, Tensor>) {
    this.rev = decoderWidths(config);
  }

  /** Pixels per latent pixel (8 for SD's VAE). */
  get upscale(): number {
    return vaeUpscale(this.config);
  }

  private w(name: string): Tensor {
    if (this.disposed) throw new Error("VAE decoder: used after dispose()");
    const t = this.weights.get(name);
    if (!t) throw new Error(`VAE decoder: weight "${name}" is not loaded`);
    return t;
  }

  private norm(prefix: string, act: "silu" | "none"): NormPreOp {
    return { norm: "group", groups: this.config.norm_groups, eps: VAE_NORM_EPS, weight: this.w(`${prefix}.weight`), bias: this.w(`${prefix}.bias`), act };
  }

  /** ResnetBlock2D without time embedding: x + conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))), x through conv_shortcut when widths differ. */
  private resnet(x: Tensor, k: string, cin: number, cout: number): Tensor {
    const b = this.backend;
    const h1 = b.conv3x3(x, this.w(`${k}.conv1.weight`), this.w(`${k}.conv1.bias`), this.norm(`${k}.norm1`, "silu"));
    const h2 = b.conv3x3(h1, this.w(`${k}.conv2.weight`), this.w(`${k}.conv2.bias`), this.norm(`${k}.norm2`, "silu"));
    b.free(h1);
    const res = cin !== cout ? b.conv1x1(x, this.w(`${k}.conv_shortcut.weight`), this.w(`${k}.conv_shortcut.bias`)) : x;
    const out = b.add(res, h2);
    b.free(h2);
    if (res !== x) b.free(res);
    return out;
  }

  /** The mid block's attention: x + to_out(attention(to_q(n), to_k(n), to_v(n))), n = GroupNorm(x). Linears run as 1x1 convs. */
  private attention(x: Tensor): Tensor {
    const b = this.backend;
    const k = "decoder.mid_block.attentions.0";
    const n = b.normalize(x, this.norm(`${k}.group_norm`, "none"));
    const [q, kk, v] = ["to_q", "to_k", "to_v"].map((p) => b.conv1x1(n, this.w(`${k}.${p}.weight`), this.w(`${k}.${p}.bias`)));
    b.free(n);
    const a = b.attention(q, kk, v);
    for (const t of [q, kk, v]) b.free(t);
    const o = b.conv1x1(a, this.w(`${k}.to_out.0.weight`), this.w(`${k}.to_out.0.bias`));
    b.free(a);
    const out = b.add(o, x);
    b.free(o);
    return out;
  }

  /**
   * Decodes latents z [N, latent_channels, h, w] in the diffusion model's space (the decoder divides by
   * scaling_factor) into images [N, out_channels, h * upscale, w * upscale], roughly in [-1, 1].
   * `z` is not consumed; the caller owns the result. A decode that throws halfway frees its intermediates.
   */
  decode(z: Tensor): Tensor {
    const cfg = this.config;
    if (z.shape.length !== 4 || z.shape[1] !== cfg.latent_channels || z.shape[2] < 1 || z.shape[3] < 1) {
      throw new Error(`VAE decode: latent has shape [${z.shape.join(", ")}], expected [N, ${cfg.latent_channels}, h, w]`);
    }
    const made: Tensor[] = [];
    try {
      return collect(made, () => this.decodeLayers(z));
    } catch (e) {
      freeCollected(this.backend, made);
      throw e;
    }
  }

  private decodeLayers(z: Tensor): Tensor {
    const cfg = this.config;
    const b = this.backend;
    const rev = this.rev;
    const post = b.conv1x1(z, this.w("post_quant_conv.weight"), this.w("post_quant_conv.bias"));
    let h = b.conv3x3(post, this.w("decoder.conv_in.weight"), this.w("decoder.conv_in.bias"));
    b.free(post);
    const step = (next: Tensor) => {
      b.free(h);
      h = next;
    };
    step(this.resnet(h, "decoder.mid_block.resnets.0", rev[0], rev[0]));
    step(this.attention(h));
    step(this.resnet(h, "decoder.mid_block.resnets.1", rev[0], rev[0]));
    let prev = rev[0];
    rev.forEach((c, i) => {
      for (let j = 0; j <= cfg.layers_per_block; j++) step(this.resnet(h, `decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : c, c));
      if (i < rev.length - 1) {
        step(b.upsampleNearest(h, 2));
        step(b.conv3x3(h, this.w(`decoder.up_blocks.${i}.upsamplers.0.conv.weight`), this.w(`decoder.up_blocks.${i}.upsamplers.0.conv.bias`)));
      }
      prev = c;
    });
    step(b.conv3x3(h, this.w("decoder.conv_out.weight"), this.w("decoder.conv_out.bias"), this.norm("decoder.conv_norm_out", "silu")));
    return h;
  }

  /** Frees the uploaded weights; the graph cannot decode afterwards. */
  dispose(): void {
    if (this.disposed) return;
    for (const t of this.weights.values()) this.backend.free(t);
    this.disposed = true;
  }
}
