"""PyTorch reference of the Stable Diffusion VAE decoder (AutoencoderKL's decode path), written by us.

Parameter names are those of the diffusers `AutoencoderKL` safetensors files (sd-vae-ft-ema / -mse
`diffusion_pytorch_model.safetensors`), so those files load into `VAEDecoder` with `load_vae_state_dict`:
`post_quant_conv.*`, `decoder.conv_in.*`, `decoder.mid_block.{resnets.0, attentions.0, resnets.1}.*`,
`decoder.up_blocks.i.{resnets.j, upsamplers.0.conv}.*`, `decoder.conv_norm_out.*`, `decoder.conv_out.*`.
Attention uses the current names (`group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0`, Linear); the legacy
`query/key/value/proj_attn` (Linear) and `norm`, `q/k/v/proj_out` (1x1 conv) names are mapped at load time.
Encoder tensors (`encoder.*`, `quant_conv.*`) are ignored.
"""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULTS = dict(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
                out_channels=3, norm_groups=32, scaling_factor=0.18215)
EPS = 1e-6


class ResnetBlock(nn.Module):
    """norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus x (through a 1x1 conv_shortcut when widths differ)."""

    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    """Single-head self-attention over the pixels (tokens of dim C), with a residual connection."""

    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=EPS)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])

    def forward(self, x):
        n, c, h, w = x.shape
        t = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)  # [N, HW, C]
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        a = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, dim=-1) @ v
        out = self.to_out[0](a).transpose(1, 2).reshape(n, c, h, w)
        return out + x


class MidBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(c, c, groups), ResnetBlock(c, c, groups)])
        self.attentions = nn.ModuleList([Attention(c, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(cin if j == 0 else cout, cout, groups) for j in range(n)])
        self.upsamplers = nn.ModuleList([Upsample(cout)]) if upsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return self.upsamplers[0](x) if self.upsamplers is not None else x


class Decoder(nn.Module):
    def __init__(self, block_out_channels, layers_per_block, latent_channels, out_channels, norm_groups):
        super().__init__()
        rev = list(reversed(block_out_channels))
        self.conv_in = nn.Conv2d(latent_channels, rev[0], 3, padding=1)
        self.mid_block = MidBlock(rev[0], norm_groups)
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, c in enumerate(rev):
            self.up_blocks.append(UpBlock(prev, c, layers_per_block + 1, norm_groups, i < len(rev) - 1))
            prev = c
        self.conv_norm_out = nn.GroupNorm(norm_groups, rev[-1], eps=EPS)
        self.conv_out = nn.Conv2d(rev[-1], out_channels, 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VAEDecoder(nn.Module):
    """latent z [N, latent_channels, h, w] (already divided by the scaling factor) -> image [N, 3, 8h, 8w] in ~[-1, 1]."""

    def __init__(self, **overrides):
        super().__init__()
        cfg = dict(DEFAULTS, **overrides)
        self.config = cfg
        self.post_quant_conv = nn.Conv2d(cfg["latent_channels"], cfg["latent_channels"], 1)
        self.decoder = Decoder(cfg["block_out_channels"], cfg["layers_per_block"], cfg["latent_channels"],
                               cfg["out_channels"], cfg["norm_groups"])

    def forward(self, z):
        return self.decoder(self.post_quant_conv(z))


_LEGACY = [
    (re.compile(r"(decoder\.mid_block\.attentions\.\d+)\.(query|q)\."), r"\1.to_q."),
    (re.compile(r"(decoder\.mid_block\.attentions\.\d+)\.(key|k)\."), r"\1.to_k."),
    (re.compile(r"(decoder\.mid_block\.attentions\.\d+)\.(value|v)\."), r"\1.to_v."),
    (re.compile(r"(decoder\.mid_block\.attentions\.\d+)\.(proj_attn|proj_out)\."), r"\1.to_out.0."),
    (re.compile(r"(decoder\.mid_block\.attentions\.\d+)\.norm\."), r"\1.group_norm."),
]


def canonical_state_dict(sd):
    """The decoder's tensors under the current diffusers names (legacy attention names mapped, 1x1 conv
    weights of attention flattened to Linear), encoder tensors dropped."""
    out = {}
    for k, v in sd.items():
        if not (k.startswith("decoder.") or k.startswith("post_quant_conv.")):
            continue
        for pat, rep in _LEGACY:
            k = pat.sub(rep, k)
        if ".attentions." in k and k.endswith("weight") and v.dim() == 4:
            v = v[:, :, 0, 0]
        out[k] = v
    return out


def load_vae_state_dict(model, sd):
    model.load_state_dict(canonical_state_dict(sd), strict=True)
    return model


def random_init_(model, gen, scale=1.0):
    """Random non-zero weights with a stable forward: convs/linears ~ N(0, 1/fan_in), norm affines ~1 and ~0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            v = torch.randn(p.shape, generator=gen)
            v = torch.where(v >= 0, v + 0.05, v - 0.05)
            if p.dim() > 1:
                p.copy_(v * scale * (p[0].numel()) ** -0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * v)
            else:
                p.copy_(0.1 * v)
    return model
