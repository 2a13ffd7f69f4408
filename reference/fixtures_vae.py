"""VAE decoder fixtures (tests/vae.test.ts): random non-zero weights, a latent, and the decoded image.

Usage: /usr/bin/python3 reference/fixtures_vae.py OUT_DIR   (or import and call write(out_dir)).
Per case: vae_<case>_weights.safetensors (decoder tensors in one of the three naming schemes found in
AutoencoderKL files; `__metadata__.config` only where norm_groups is not the default 32) and
vae_<case>_io.safetensors: `latent` [N, 4, h, w] in model space (what a latent DiC samples) and
`image` = decoder(latent / scaling_factor) [N, 3, 8h, 8w] (torch fp32), plus `image64` (fp64 reference).
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vae_ref  # noqa: E402
from safetensors_io import save_file  # noqa: E402

# (name, config overrides, batch, latent h, w, storage dtype, attention naming)
CASES = [
    ("tiny", dict(block_out_channels=[10, 6, 14, 14], layers_per_block=1, norm_groups=2), 2, 3, 5, torch.float32, "legacy"),
    ("small", dict(block_out_channels=[32, 32, 64, 64]), 1, 6, 6, torch.float32, "ldm"),
    ("real", dict(), 1, 4, 4, torch.float16, "current"),
]

LEGACY_NAMES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
LDM_NAMES = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out", "group_norm": "norm"}


def rename(sd, naming):
    """The state dict under another attention naming scheme (ldm: 1x1 conv weights)."""
    if naming == "current":
        return dict(sd)
    table = LEGACY_NAMES if naming == "legacy" else LDM_NAMES
    out = {}
    for k, v in sd.items():
        if ".attentions." in k:
            for new, old in table.items():
                k2 = k.replace(f".{new}.", f".{old}.")
                if k2 != k:
                    if naming == "ldm" and new != "group_norm" and k.endswith("weight"):
                        v = v[:, :, None, None]
                    k = k2
                    break
        out[k] = v
    return out


def make(name, overrides, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    model = vae_ref.random_init_(vae_ref.VAEDecoder(**overrides), gen).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).float())
    return model, gen


def write(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for i, (name, overrides, n, h, w, dtype, naming) in enumerate(CASES):
        model, gen = make(name, overrides, dtype, 9100 + i)
        cfg = model.config
        latent = torch.randn(n, cfg["latent_channels"], h, w, generator=gen) * 0.8 + 0.1
        with torch.no_grad():
            image = model(latent / cfg["scaling_factor"])
            image64 = model.double()(latent.double() / cfg["scaling_factor"])
        sd = {k: v.to(dtype) for k, v in model.float().state_dict().items()}
        # An encoder tensor, as in real AutoencoderKL files: the loader must ignore it.
        sd["encoder.conv_in.weight"] = torch.ones(3, 3, 3, 3).to(dtype)
        meta = {"config": json.dumps({"norm_groups": cfg["norm_groups"]})} if cfg["norm_groups"] != 32 else None
        save_file(rename(sd, naming), os.path.join(out_dir, f"vae_{name}_weights.safetensors"), meta)
        floor = ((image.double() - image64).norm() / image64.norm()).item()
        save_file({"latent": latent, "image": image, "image64": image64.float()}, os.path.join(out_dir, f"vae_{name}_io.safetensors"),
                  {"case": json.dumps({"name": name, "config": cfg, "naming": naming, "dtype": str(dtype),
                                       "torchF32VsF64": floor})})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 reference/fixtures_vae.py OUT_DIR")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    write(sys.argv[1])
    print(f"wrote {len(CASES)} VAE cases to {sys.argv[1]}")
