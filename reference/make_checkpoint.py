"""Writes a DiC checkpoint with random non-zero weights and the configuration in the metadata.

Usage: python3 reference/make_checkpoint.py --preset tiny|DiC-S|DiC-B|DiC-XL|DiC-H [--config JSON]
                                          [--dtype f32|f16] [--seed 0] --out OUT.safetensors
`tiny` is a 4-channel 16x16 latent model (hidden 16) that samples in seconds on the js backend.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dic_ref  # noqa: E402
from safetensors_io import save_file  # noqa: E402

TINY = dict(input_size=16, in_channels=4, hidden_size=16, depth=[2, 2, 2, 2, 2], num_classes=10, skip_stride=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny", choices=["tiny"] + sorted(dic_ref.PRESETS))
    ap.add_argument("--config", default="{}")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    over = json.loads(args.config)
    cfg = dic_ref.full_config(**{**TINY, **over}) if args.preset == "tiny" else dic_ref.full_config(args.preset, **over)
    model = dic_ref.random_init_(dic_ref.DiC(**cfg), torch.Generator().manual_seed(args.seed))
    dtype = torch.float16 if args.dtype == "f16" else torch.float32
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file({k: v.to(dtype) for k, v in model.state_dict().items()}, args.out,
              {"config": json.dumps(cfg), "format": "dic-sdk/1"})
    print(f"make_checkpoint: {args.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters) -> {args.out}")


if __name__ == "__main__":
    main()
