"""PyTorch reference of the DiC network (README.md "Weights and configuration"), written from the description.

Module names follow the official release so that official state_dicts load unchanged
(`x_embedder.proj`, `t_embedder_ls.i.mlp`, `enc_blocks.i.b.conv.*`, `final_layer.*`).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "DiC-S": dict(hidden_size=96, depth=[6, 6, 5, 6, 6]),
    "DiC-B": dict(hidden_size=192, depth=[6, 6, 5, 6, 6]),
    "DiC-XL": dict(hidden_size=384, depth=[7, 7, 8, 7, 7]),
    "DiC-H": dict(hidden_size=384, depth=[14, 14, 10, 14, 14]),
}

DEFAULTS = dict(
    input_size=32,
    in_channels=4,
    hidden_size=96,
    depth=[6, 6, 5, 6, 6],
    mult_channels=[1, 2, 4, 2, 1],
    num_classes=1000,
    learn_sigma=True,
    skip_stride=3,
    class_dropout_prob=0.1,
)


def full_config(preset=None, **overrides):
    """Configuration dict with every field filled: defaults, then the preset, then overrides."""
    cfg = dict(DEFAULTS)
    if preset:
        cfg.update(PRESETS[preset])
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    depth, mult = list(cfg["depth"]), list(cfg["mult_channels"])
    if len(depth) == 3:
        depth = depth + [depth[1] + 1, depth[0] + 1]
    if len(mult) == 3:
        mult = mult + mult[:-1][::-1]
    cfg["depth"], cfg["mult_channels"] = depth, mult
    return cfg


def groups_for(channels):
    return min(32, channels // 4)


class GroupNorm(nn.Module):
    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.groups = groups_for(channels)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.group_norm(x, self.groups, self.weight, self.bias, self.eps)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    @staticmethod
    def frequencies(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t):
        return self.mlp(self.frequencies(t, self.freq_dim))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, hidden, dropout_prob):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + (1 if dropout_prob > 0 else 0), hidden)

    def drop(self, y):
        drop = torch.rand(y.shape[0], device=y.device) < self.dropout_prob
        return torch.where(drop, torch.full_like(y, self.num_classes), y)

    def forward(self, y):
        return self.embedding_table(y)


class Block(nn.Module):
    """Conv3x3 block: conv0(GELU(norm0 x)); GELU(norm1 h * (1 + scale) + shift); conv1; gate * h + skip(x)."""

    def __init__(self, cin, cout, cond):
        super().__init__()
        self.norm0 = GroupNorm(cin)
        self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Sequential(nn.SiLU(), nn.Linear(cond, 3 * cout))
        self.norm1 = GroupNorm(cout)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, c):
        h = self.conv0(F.gelu(self.norm0(x)))
        gate, scale, shift = self.affine(c)[:, :, None, None].chunk(3, dim=1)
        h = F.gelu(self.norm1(h) * (1 + scale) + shift)
        h = self.conv1(h)
        return gate * h + (self.skip(x) if self.skip is not None else x)


class UBlock(nn.Module):
    """Holds the block under the name `conv` (the official key layout)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = Block(cin, cout, cout)

    def forward(self, x, c):
        return self.conv(x, c)


class Proj(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 3, padding=1, bias=True)

    def forward(self, x):
        return self.proj(x)


class Resample(nn.Module):
    def __init__(self, cin, cout, up):
        super().__init__()
        shuffle = nn.PixelShuffle(2) if up else nn.PixelUnshuffle(2)
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), shuffle)

    def forward(self, x):
        return self.body(x)


class FinalLayer(nn.Module):
    def __init__(self, hidden, out_channels):
        super().__init__()
        self.out_proj = nn.Conv2d(hidden, out_channels, 3, padding=1, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c)[:, :, None, None].chunk(2, dim=1)
        x = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), eps=1e-6).permute(0, 3, 1, 2)
        return self.out_proj(x * (1 + scale) + shift)


class DiC(nn.Module):
    def __init__(self, **cfg):
        super().__init__()
        cfg = full_config(**cfg)
        self.cfg = cfg
        hid, mult, depth, ss = cfg["hidden_size"], cfg["mult_channels"], cfg["depth"], cfg["skip_stride"]
        ch = [hid * m for m in mult]
        self.skip_stride = ss
        self.in_channels = cfg["in_channels"]
        self.out_channels = cfg["in_channels"] * (2 if cfg["learn_sigma"] else 1)
        self.x_embedder = Proj(cfg["in_channels"], ch[0])
        self.t_embedder_ls = nn.ModuleList([TimestepEmbedder(ch[i]) for i in range(3)])
        self.y_embedder_ls = nn.ModuleList(
            [LabelEmbedder(cfg["num_classes"], ch[i], cfg["class_dropout_prob"]) for i in range(3)])
        self.enc_blocks = nn.ModuleList([nn.ModuleList([UBlock(ch[i], ch[i]) for _ in range(depth[i])]) for i in range(2)])
        self.downs = nn.ModuleList([Resample(ch[i], ch[i + 1] // 4, up=False) for i in range(2)])
        self.lat_blocks = nn.ModuleList([nn.ModuleList([UBlock(ch[2], ch[2]) for _ in range(depth[2])])])
        self.ups = nn.ModuleList()
        self.dec_blocks = nn.ModuleList()
        prev = ch[2]
        for j in range(2):  # decoder stage j sits at encoder level 1 - j
            out, skip_ch = ch[3 + j], ch[1 - j]
            self.ups.append(Resample(prev, out * 4, up=True))
            self.dec_blocks.append(nn.ModuleList(
                [UBlock(out + skip_ch if b % ss == 0 else out, out) for b in range(depth[3 + j])]))
            prev = out
        self.last_cond = mult[:3].index(mult[4])
        self.output = nn.Conv2d(prev, prev, 3, padding=1, bias=True)
        self.final_layer = FinalLayer(prev, self.out_channels)

    def conditions(self, t, y):
        cs = [self.t_embedder_ls[i](t) + self.y_embedder_ls[i](y) for i in range(3)]
        return [cs[0], cs[1], cs[2], cs[1], cs[self.last_cond]]

    def encode(self, x, t, y):
        c = self.conditions(t, y)
        x = self.x_embedder(x)
        skips = []
        for i in range(2):
            blocks = self.enc_blocks[i]
            for b, blk in enumerate(blocks):
                x = blk(x, c[i])
                if (len(blocks) - 1 - b) % self.skip_stride == 0:
                    skips.append(x)
            x = self.downs[i](x)
        for blk in self.lat_blocks[0]:
            x = blk(x, c[2])
        return x, skips, c

    def decode(self, x, skips, c):
        skips = list(skips)
        for j in range(2):
            x = self.ups[j](x)
            for b, blk in enumerate(self.dec_blocks[j]):
                if b % self.skip_stride == 0:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = blk(x, c[3 + j])
        return self.final_layer(self.output(x), c[4])

    def forward(self, x, t, y):
        h, skips, c = self.encode(x, t, y)
        return self.decode(h, skips, c)


def random_init_(model, generator=None, scale=1.0):
    """Random non-zero values everywhere (the official init zeroes gates and the head, which hides bugs).

    Each weight is drawn with a fan-in scale so activations stay O(1) through deep models.
    """
    for name, p in model.named_parameters():
        with torch.no_grad():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) * (scale / math.sqrt(fan_in)))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            # NOTE: no exact zeros anywhere, so a dropped term cannot hide.
            p[p == 0] = 1e-3
    return model
