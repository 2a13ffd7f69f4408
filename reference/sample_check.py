"""Eyeball check of a training checkpoint: DDIM (eta 0) samples per class with classifier-free guidance.

DDIM: Song et al. 2021, eq. 12 with sigma = 0, on the timesteps of `space_timesteps(1000, "ddimN")`
(0, 1000/N, ...); the model always sees original timesteps. Guidance on all channels (eps_u + s (eps_c - eps_u)).
Writes a grid, one column per class, one row per sample, to <run>/samples_<step>.png.

  OMP_NUM_THREADS=1 nice -n 10 /usr/bin/python3 reference/sample_check.py [--ckpt ...] [--cfg 3] [--per-class 2]
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import HERE, Diffusion, load_ema_from_checkpoint  # noqa: E402


@torch.no_grad()
def ddim_sample(model, diff, y, steps=50, cfg_scale=3.0, generator=None, clip=True):
    """x_0 samples [N, C, S, S] in [-1, 1] for labels y [N]."""
    cfg = model.cfg
    n = y.shape[0]
    x = torch.randn(n, cfg["in_channels"], cfg["input_size"], cfg["input_size"], generator=generator)
    stride = diff.T // steps
    ts = list(range(0, diff.T, stride))[::-1]
    null = torch.full_like(y, cfg["num_classes"])
    ac = diff.alphas_cumprod
    for i, t in enumerate(ts):
        tt = torch.full((n,), t, dtype=torch.long)
        if cfg_scale != 1.0:
            out = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, null]))
            eps_c, eps_u = out[:n, :cfg["in_channels"]], out[n:, :cfg["in_channels"]]
            eps = eps_u + cfg_scale * (eps_c - eps_u)
        else:
            eps = model(x, tt, y)[:, :cfg["in_channels"]]
        a = float(ac[t])
        a_prev = float(ac[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - a ** 0.5 * x0) / (1 - a) ** 0.5  # NOTE: keep eps consistent with the clipped x0
        x = a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps
    return x


def to_grid(x, cols, scale=3, pad=2):
    """[N, 1, S, S] in [-1, 1], row-major -> uint8 grayscale grid image (PIL)."""
    imgs = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    n, s = imgs.shape[0], imgs.shape[1]
    rows = (n + cols - 1) // cols
    cell = s * scale + pad
    grid = np.full((rows * cell + pad, cols * cell + pad), 64, dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        big = np.kron(imgs[k], np.ones((scale, scale), dtype=np.uint8))
        grid[pad + r * cell:pad + r * cell + s * scale, pad + c * cell:pad + c * cell + s * scale] = big
    return Image.fromarray(grid, mode="L")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(HERE, "runs", "default", "ckpt.pt"))
    ap.add_argument("--out", default=None, help="PNG path (default: next to the checkpoint, samples_<step>.png)")
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, ckpt = load_ema_from_checkpoint(args.ckpt)
    k = model.cfg["num_classes"]
    y = torch.arange(k).repeat(args.per_class)  # row r, column = class
    t0 = time.time()
    x = ddim_sample(model, Diffusion(), y, steps=args.steps, cfg_scale=args.cfg,
                    generator=torch.Generator().manual_seed(args.seed))
    out = args.out or os.path.join(os.path.dirname(args.ckpt), f"samples_{ckpt['step']}.png")
    to_grid(x, cols=k).save(out)
    print(f"step {ckpt['step']}: {len(y)} samples, {args.steps} DDIM steps, cfg {args.cfg}, "
          f"{time.time() - t0:.1f}s -> {out}; columns: {', '.join(ckpt.get('class_names', []))}")


if __name__ == "__main__":
    main()
