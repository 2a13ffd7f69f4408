"""Whole sampling runs of a small random DiC through our PyTorch diffusion reference (diffusion_ref).

Writes dic_sampling_weights.safetensors and dic_sampling_<case>.safetensors holding x_T (`x`),
the labels (`y`), the injected per-step noises (`noise`, [steps, N, C, H, W], DDPM only) and the final
sample (`final`); the case's sampler settings are in the metadata. Used by tests/dic-sampling.test.ts
and matched by `dic sample --init-noise`.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dic_ref  # noqa: E402
import diffusion_ref  # noqa: E402
from safetensors_io import save_file  # noqa: E402

CONFIG = dict(input_size=8, in_channels=4, hidden_size=8, depth=[1, 1, 1, 1, 1], skip_stride=1, num_classes=5)
# (case, sampler, steps, eta, cfg_scale, cfg_mode, injected noise)
CASES = [
    ("ddim", "ddim", 50, 0.0, 1.0, "standard", False),
    ("ddpm", "ddpm", 50, 0.0, 1.0, "standard", True),
    ("ddim_cfg_reference", "ddim", 50, 0.0, 1.5, "reference", False),
    ("ddim_cfg_standard", "ddim", 25, 0.0, 4.0, "standard", False),
    ("ddpm_cfg_reference", "ddpm", 20, 0.0, 4.0, "reference", True),
]


def write(out_dir):
    gen = torch.Generator().manual_seed(77)
    cfg = dic_ref.full_config(**CONFIG)
    # A gentler scale keeps eps predictions O(1), so 50-step trajectories stay well conditioned.
    model = dic_ref.random_init_(dic_ref.DiC(**cfg), gen, scale=0.7).eval()
    save_file(model.state_dict(), f"{out_dir}/dic_sampling_weights.safetensors",
              {"config": json.dumps(cfg), "format": "dic-sdk/1"})
    n, c, s = 2, cfg["in_channels"], cfg["input_size"]
    labels = [1, 3]
    for name, sampler, steps, eta, scale, mode, inject in CASES:
        x_t = torch.randn(n, c, s, s, generator=gen)
        noises = torch.randn(steps, n, c, s, s, generator=gen) if inject else None
        final = diffusion_ref.sample_loop(
            lambda x, t, y: model(x, t, y), x_t, labels, steps, sampler, eta, scale, mode,
            cfg["num_classes"], cfg["learn_sigma"], list(noises) if inject else None)
        tensors = {"x": x_t, "y": torch.tensor(labels), "final": final}
        if inject:
            tensors["noise"] = noises
        meta = {"sampler": sampler, "steps": str(steps), "eta": str(eta), "cfg_scale": str(scale), "cfg_mode": mode}
        save_file(tensors, f"{out_dir}/dic_sampling_{name}.safetensors", meta)


if __name__ == "__main__":
    write(sys.argv[1])
