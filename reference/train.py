"""Train the SDK's embedded default DiC on Fashion-MNIST in pixel space (class-conditional, learned sigma).

Diffusion as in ADM/improved DDPM (Nichol & Dhariwal 2021, eq. 16: L_hybrid = L_simple + L_vlb with a
stop-gradient on the mean inside L_vlb), with the official DiC/DiT settings: 1000 linear betas, uniform t,
loss type MSE (vb not rescaled), AdamW, EMA. Resumable: `reference/runs/default/ckpt.pt` is rewritten
atomically every few minutes and picked up again on the next start.

Example (the run that produced models/dic-fashion.safetensors):
  OMP_NUM_THREADS=1 nice -n 10 /usr/bin/python3 reference/train.py --threads 1 --max-minutes 110
"""
import argparse
import gzip
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dic_ref import DiC, full_config  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# The default model: small enough to run fast in a browser and to train on one CPU core in ~2 h.
MODEL_CONFIG = dict(
    input_size=28, in_channels=1, hidden_size=24, depth=[2, 2, 2, 2, 2], mult_channels=[1, 2, 4, 2, 1],
    num_classes=10, learn_sigma=True, skip_stride=3, class_dropout_prob=0.1,
)


# ----------------------------------------------------------------------------- data

def load_fashion_mnist(split="train"):
    """uint8 images [N, 28, 28] and int64 labels [N] from the Debian idx files."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(DATA_DIR, f"{prefix}-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    magic, n, h, w = np.frombuffer(raw[:16], dtype=">i4")
    assert magic == 2051, f"images file: bad magic {magic}"
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, h, w)
    with gzip.open(os.path.join(DATA_DIR, f"{prefix}-labels-idx1-ubyte.gz"), "rb") as f:
        raw = f.read()
    magic, m = np.frombuffer(raw[:8], dtype=">i4")
    assert magic == 2049 and m == n, f"labels file: bad magic {magic} or count {m} != {n}"
    labels = np.frombuffer(raw[8:], dtype=np.uint8).astype(np.int64)
    return images, labels


def to_model_range(u8):
    """uint8 [0, 255] -> float [-1, 1] (the range the discretized decoder likelihood assumes)."""
    return u8.float() / 127.5 - 1.0


# ----------------------------------------------------------------------------- diffusion

class Diffusion:
    """The quantities of a Gaussian diffusion with a fixed beta schedule (float64 tables, as in ADM)."""

    def __init__(self, num_timesteps=1000, beta_start=1e-4, beta_end=0.02):
        scale = 1000 / num_timesteps
        betas = np.linspace(scale * beta_start, scale * beta_end, num_timesteps, dtype=np.float64)
        self.T = num_timesteps
        self.betas = betas
        ac = np.cumprod(1.0 - betas)
        ac_prev = np.append(1.0, ac[:-1])
        self.alphas_cumprod = ac
        self.sqrt_ac = np.sqrt(ac)
        self.sqrt_1m_ac = np.sqrt(1.0 - ac)
        self.sqrt_recip_ac = np.sqrt(1.0 / ac)
        self.sqrt_recipm1_ac = np.sqrt(1.0 / ac - 1.0)
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        # NOTE: posterior variance is 0 at t=0; the log is clipped to its t=1 value (ADM convention).
        self.post_log_var_clipped = np.log(np.append(post_var[1], post_var[1:]))
        self.post_mean_c1 = betas * np.sqrt(ac_prev) / (1.0 - ac)
        self.post_mean_c2 = (1.0 - ac_prev) * np.sqrt(1.0 - betas) / (1.0 - ac)
        self.log_betas = np.log(betas)

    @staticmethod
    def _at(table, t, ndim):
        out = torch.from_numpy(table).to(torch.float32)[t]
        return out.reshape(-1, *([1] * (ndim - 1)))

    def q_sample(self, x0, t, noise):
        return self._at(self.sqrt_ac, t, x0.ndim) * x0 + self._at(self.sqrt_1m_ac, t, x0.ndim) * noise

    def q_posterior(self, x0, xt, t):
        mean = self._at(self.post_mean_c1, t, xt.ndim) * x0 + self._at(self.post_mean_c2, t, xt.ndim) * xt
        return mean, self._at(self.post_log_var_clipped, t, xt.ndim)

    def predict_x0(self, xt, t, eps):
        return self._at(self.sqrt_recip_ac, t, xt.ndim) * xt - self._at(self.sqrt_recipm1_ac, t, xt.ndim) * eps

    def p_mean_logvar(self, xt, t, eps, v):
        """Mean and log-variance of p(x_{t-1}|x_t); v in [-1, 1] interpolates log beta_tilde .. log beta."""
        lo = self._at(self.post_log_var_clipped, t, xt.ndim)
        hi = self._at(self.log_betas, t, xt.ndim)
        frac = (v + 1) / 2
        log_var = frac * hi + (1 - frac) * lo
        mean, _ = self.q_posterior(self.predict_x0(xt, t, eps), xt, t)
        return mean, log_var


def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_std_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_loglik(x, mean, log_scale):
    """log P(x) of 8-bit data in [-1, 1] under a Gaussian, integrated over each 2/255 bin (edge bins open)."""
    c = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = approx_std_normal_cdf(inv_std * (c + 1.0 / 255.0))
    cdf_min = approx_std_normal_cdf(inv_std * (c - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_1m_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_1m_cdf_min, log_delta))


def mean_flat(x):
    return x.mean(dim=list(range(1, x.ndim)))


def hybrid_loss(diff, model, x0, t, y):
    """Per-sample (loss, mse, vb) of the hybrid objective; vb in bits/dim, gradient reaches only the variance."""
    noise = torch.randn_like(x0)
    xt = diff.q_sample(x0, t, noise)
    out = model(xt, t, y)
    eps, v = out.split(x0.shape[1], dim=1)
    mse = mean_flat((noise - eps) ** 2)
    # NOTE: the stop-gradient on eps keeps L_vlb from pulling the mean (improved DDPM, sec. 3.1).
    mean, log_var = diff.p_mean_logvar(xt, t, eps.detach(), v)
    true_mean, true_log_var = diff.q_posterior(x0, xt, t)
    kl = mean_flat(normal_kl(true_mean, true_log_var, mean, log_var)) / math.log(2.0)
    nll = -mean_flat(discretized_gaussian_loglik(x0, mean, 0.5 * log_var)) / math.log(2.0)
    vb = torch.where(t == 0, nll, kl)
    return mse + vb, mse, vb


# ----------------------------------------------------------------------------- model init / EMA

def official_init_(model):
    """The official DiC initialisation (dic_models.initialize_weights): xavier-uniform convs/linears, zero
    biases, N(0, 0.02) label tables and timestep MLPs, zeroed final adaLN and output projection."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    w = model.x_embedder.proj.weight.data
    nn.init.xavier_uniform_(w.view(w.shape[0], -1))
    for e in model.y_embedder_ls:
        nn.init.normal_(e.embedding_table.weight, std=0.02)
    for e in model.t_embedder_ls:
        nn.init.normal_(e.mlp[0].weight, std=0.02)
        nn.init.normal_(e.mlp[2].weight, std=0.02)
    fl = model.final_layer
    for p in (fl.adaLN_modulation[-1].weight, fl.adaLN_modulation[-1].bias, fl.out_proj.weight, fl.out_proj.bias):
        nn.init.zeros_(p)
    return model


@torch.no_grad()
def update_ema(ema, model, decay):
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def ema_decay(step, max_decay):
    """Warm-up EMA: (1 + n) / (10 + n), capped, so early checkpoints are not dominated by the random init."""
    return min(max_decay, (1.0 + step) / (10.0 + step))


def lr_at(progress, args):
    """Linear warm-up, constant, then linear decay to lr * lr_final over the last `decay_frac` of the run."""
    step_lr = args.lr
    if args.decay_frac > 0 and progress > 1 - args.decay_frac:
        f = min(1.0, (progress - (1 - args.decay_frac)) / args.decay_frac)
        step_lr = args.lr * (1 - f * (1 - args.lr_final))
    return step_lr


# ----------------------------------------------------------------------------- checkpoints and logs

def save_checkpoint(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build_model(cfg):
    return DiC(**cfg)


def load_ema_from_checkpoint(path):
    """(EMA model in eval mode, checkpoint dict) — used by export_model.py and sample_check.py."""
    ckpt = torch.load(path, map_location="cpu")
    model = build_model(ckpt["config"])
    model.load_state_dict(ckpt["ema"])
    model.eval()
    return model, ckpt


def truncate_csv(path, max_step):
    """Drop CSV rows logged after the checkpoint we resume from (they will be trained again)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    keep = lines[:1] + [ln for ln in lines[1:] if ln.strip() and int(ln.split(",")[0]) <= max_step]
    with open(path, "w") as f:
        f.writelines(keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "runs", "default"))
    ap.add_argument("--steps", type=int, default=9000, help="total optimizer steps of the run (across resumes)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="total training wall time of the run (across resumes); the LR schedule follows "
                         "whichever of steps or time runs out first")
    ap.add_argument("--session-minutes", type=float, default=None,
                    help="stop this process after this many minutes (saves; schedule unchanged)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--lr-final", type=float, default=0.1, help="final LR as a fraction of --lr")
    ap.add_argument("--decay-frac", type=float, default=0.25, help="fraction of the run spent decaying the LR")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--hflip", action="store_true", help="random horizontal flips (off: shoes face one way)")
    ap.add_argument("--hidden-size", type=int, default=None)
    ap.add_argument("--depth", type=str, default=None, help="comma list, e.g. 2,2,2,2,2")
    ap.add_argument("--mult-channels", type=str, default=None)
    ap.add_argument("--skip-stride", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "ckpt.pt")
    log_path = os.path.join(args.out, "train.log")
    csv_path = os.path.join(args.out, "loss.csv")

    cfg = dict(MODEL_CONFIG)
    if args.hidden_size:
        cfg["hidden_size"] = args.hidden_size
    if args.depth:
        cfg["depth"] = [int(v) for v in args.depth.split(",")]
    if args.mult_channels:
        cfg["mult_channels"] = [int(v) for v in args.mult_channels.split(",")]
    if args.skip_stride:
        cfg["skip_stride"] = args.skip_stride
    cfg = full_config(**cfg)

    resume = os.path.exists(ckpt_path) and not args.fresh
    ckpt = torch.load(ckpt_path, map_location="cpu") if resume else None
    if ckpt is not None:
        cfg = ckpt["config"]  # NOTE: the checkpoint's architecture wins over command-line overrides.

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = official_init_(build_model(cfg))
    ema = official_init_(build_model(cfg))
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    step, elapsed = 0, 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        step, elapsed = ckpt["step"], ckpt["elapsed_s"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])
        random.setstate(ckpt["rng"]["python"])
        truncate_csv(csv_path, step)
    model.train()

    images, labels = load_fashion_mnist("train")
    data = to_model_range(torch.from_numpy(images.copy())).unsqueeze(1)  # N,1,28,28
    targets = torch.from_numpy(labels)
    pad = (cfg["input_size"] - data.shape[-1]) // 2
    if pad > 0:
        data = F.pad(data, (pad, pad, pad, pad), value=-1.0)
    assert data.shape[-1] == cfg["input_size"], f"input_size {cfg['input_size']} vs data {data.shape[-1]}"
    diff = Diffusion()

    n_params = sum(p.numel() for p in model.parameters())
    logf = open(log_path, "a")
    new_csv = not os.path.exists(csv_path)
    csvf = open(csv_path, "a")
    if new_csv:
        csvf.write("step,elapsed_s,loss,mse,vb,lr,steps_per_s\n")
        csvf.flush()

    def log(msg):
        line = time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + msg
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    log(("resume" if resume else "start") + f" step={step} elapsed={elapsed:.0f}s params={n_params} "
        f"config={json.dumps(cfg)} args={json.dumps(vars(args))}")

    def progress():
        p = step / args.steps
        if args.max_minutes:
            p = max(p, elapsed / (60 * args.max_minutes))
        return p

    def snapshot():
        save_checkpoint(ckpt_path, dict(
            model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step, elapsed_s=elapsed,
            config=cfg, args=vars(args), class_names=CLASS_NAMES, dataset="fashion-mnist (train, 60000)",
            rng=dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate()),
        ))

    session_start = time.time()
    last_ckpt = time.time()
    win = dict(loss=0.0, mse=0.0, vb=0.0, n=0, t0=time.time(), s0=step)
    while progress() < 1.0:
        t_start = time.time()
        idx = torch.randint(0, data.shape[0], (args.batch,))
        x0, y = data[idx], targets[idx]
        if args.hflip:
            flip = torch.rand(args.batch) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        y = model.y_embedder_ls[0].drop(y)  # NOTE: one drop shared by all levels, as the official forward
        t = torch.randint(0, diff.T, (args.batch,))
        lr = lr_at(progress(), args) * min(1.0, (step + 1) / args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        loss, mse, vb = hybrid_loss(diff, model, x0, t, y)
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        step += 1
        update_ema(ema, model, ema_decay(step, args.ema))
        elapsed += time.time() - t_start
        if not math.isfinite(loss.item()):
            log(f"non-finite loss at step {step}; stopping without saving")
            sys.exit(2)
        win["loss"] += loss.item()
        win["mse"] += mse.mean().item()
        win["vb"] += vb.mean().item()
        win["n"] += 1
        if step % args.log_every == 0:
            n = win["n"]
            sps = (step - win["s0"]) / max(1e-9, time.time() - win["t0"])
            log(f"step {step} loss {win['loss'] / n:.5f} mse {win['mse'] / n:.5f} vb {win['vb'] / n:.5f} "
                f"lr {lr:.2e} steps/s {sps:.3f} elapsed {elapsed / 60:.1f}min progress {progress():.3f}")
            csvf.write(f"{step},{elapsed:.1f},{win['loss'] / n:.6f},{win['mse'] / n:.6f},{win['vb'] / n:.6f},"
                       f"{lr:.3e},{sps:.4f}\n")
            csvf.flush()
            win = dict(loss=0.0, mse=0.0, vb=0.0, n=0, t0=time.time(), s0=step)
        if time.time() - last_ckpt > 60 * args.ckpt_minutes:
            snapshot()
            last_ckpt = time.time()
            log(f"checkpoint step {step}")
        if args.session_minutes and time.time() - session_start > 60 * args.session_minutes:
            break
    snapshot()
    log(f"{'done' if progress() >= 1.0 else 'paused'} step {step} elapsed {elapsed / 60:.1f}min; checkpoint {ckpt_path}")


if __name__ == "__main__":
    main()
