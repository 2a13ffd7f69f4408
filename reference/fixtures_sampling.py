"""Sampler fixtures: whole DDPM/DDIM/DPM-Solver++(2M)/CFG trajectories of diffusion_ref.sample_loop on an
analytic model.

The stand-in model is cheap to compute in TypeScript too, so these fixtures test the samplers alone.
With u = t / 1000 (t = original timestep), q = exp(-(0.1 u + 9.95 u^2)) (about alphas_cumprod) and
g_c = tanh(a[c] x[:, c % C] + b[c] u + e[y, c]): eps_c = sqrt(1 - q) x_c + 0.5 sqrt(q) g_c for c < C
(the ideal denoiser of N(0, 1) data plus a perturbation, so x stays O(1) and every step matters) and
v_c = g_c for the variance channels c >= C.
Usage: python3 reference/fixtures_sampling.py OUT_DIR  (or write(out_dir) from another script).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diffusion_ref  # noqa: E402
from safetensors_io import save_file  # noqa: E402

N, C, H, W = 2, 4, 8, 8
NUM_CLASSES = 10
LABELS = [3, 7]

# name: sampler, steps, eta, cfg scale, cfg mode, learn_sigma, injected step noise
CASES = {
    "ddim_eta0_50": ("ddim", 50, 0.0, 1.0, "reference", True),
    "ddim_eta05_25": ("ddim", 25, 0.5, 1.0, "reference", True),
    "ddpm_50": ("ddpm", 50, 0.0, 1.0, "reference", True),
    "cfg_reference_1.5_ddpm": ("ddpm", 20, 0.0, 1.5, "reference", True),
    "cfg_reference_4_ddim": ("ddim", 20, 0.0, 4.0, "reference", True),
    "cfg_standard_1.5_ddim": ("ddim", 20, 0.0, 1.5, "standard", True),
    "cfg_standard_4_ddpm": ("ddpm", 20, 0.0, 4.0, "standard", True),
    "nosigma_ddpm_30": ("ddpm", 30, 0.0, 1.0, "reference", False),
    "nosigma_ddim_cfg3_30": ("ddim", 30, 0.0, 3.0, "standard", False),
    # DPM-Solver++(2M): deterministic, eps channels only (variance channels ignored)
    "dpmpp2m_cfg_standard_4_10": ("dpmpp2m", 10, 0.0, 4.0, "standard", True),
    "dpmpp2m_cfg_standard_1.5_20": ("dpmpp2m", 20, 0.0, 1.5, "standard", True),
    "dpmpp2m_nosigma_cfg_standard_3_50": ("dpmpp2m", 50, 0.0, 3.0, "standard", False),
    "dpmpp2m_20": ("dpmpp2m", 20, 0.0, 1.0, "standard", True),
}


def analytic_model(a, b, e):
    """The stand-in denoiser for parameters a [outC], b [outC], e [num_classes + 1, outC]."""
    def model(x, t, y):
        C = x.shape[1]
        u = (t.float() / 1000)[:, None, None]
        q = torch.exp(-(0.1 * u + 9.95 * u * u))
        chans = []
        for c in range(a.shape[0]):
            xc = x[:, c % C]
            g = torch.tanh(a[c] * xc + b[c] * u + e[y, c][:, None, None])
            chans.append(torch.sqrt(1 - q) * xc + 0.5 * torch.sqrt(q) * g if c < C else g)
        return torch.stack(chans, 1)
    return model


def make_case(name, seed):
    """Tensors and metadata of one fixture case."""
    sampler, steps, eta, cfg, mode, learn = CASES[name]
    g = torch.Generator().manual_seed(seed)
    out_c = 2 * C if learn else C
    a = torch.randn(out_c, generator=g) * 0.8
    b = torch.randn(out_c, generator=g)
    e = torch.randn(NUM_CLASSES + 1, out_c, generator=g) * 0.5
    noise = torch.randn(N, C, H, W, generator=g)
    uses_noise = sampler == "ddpm" or eta > 0
    step_noises = torch.randn(steps, N, C, H, W, generator=g) if uses_noise else None
    x = diffusion_ref.sample_loop(analytic_model(a, b, e), noise, LABELS, steps, sampler, eta, cfg, mode,
                                  NUM_CLASSES, learn, None if step_noises is None else list(step_noises))
    tensors = {
        "model_a": a, "model_b": b, "model_e": e, "init_noise": noise, "x_final": x,
        "labels": torch.tensor(LABELS, dtype=torch.int64),
        "timesteps": torch.tensor(diffusion_ref.sample_timesteps(steps), dtype=torch.int64),
    }
    if step_noises is not None:
        tensors["step_noises"] = step_noises
    meta = dict(case=name, sampler=sampler, steps=steps, eta=eta, cfg_scale=cfg, cfg_mode=mode,
                learn_sigma=int(learn), num_classes=NUM_CLASSES)
    return tensors, meta


def write(out_dir):
    """Writes sampling_<case>.safetensors for every case into out_dir; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for seed, name in enumerate(CASES):
        tensors, meta = make_case(name, 1000 + seed)
        path = os.path.join(out_dir, f"sampling_{name}.safetensors")
        save_file(tensors, path, meta)
        paths.append(path)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 reference/fixtures_sampling.py OUT_DIR")
    for p in write(sys.argv[1]):
        print(p)
