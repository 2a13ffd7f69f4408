"""Converts an official DiC PyTorch checkpoint to safetensors with the configuration in the metadata.

Usage: python3 reference/convert_checkpoint.py CKPT.pt --preset DiC-S [--config '{"input_size": 64}']
                                             [--use ema|model] [--dtype f32|f16|bf16] --out OUT.safetensors
Accepts {"ema": state_dict}, {"model": state_dict} or a bare state_dict; a DDP "module." prefix is
stripped. Keys are checked against the configuration (strict) before anything is written.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dic_ref  # noqa: E402
from safetensors_io import save_file  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def pick_state_dict(obj, use):
    if isinstance(obj, dict) and use in obj and isinstance(obj[use], dict):
        return obj[use]
    for key in ("ema", "model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return obj[key]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise SystemExit("convert: no state_dict found (expected 'ema', 'model' or a bare state_dict)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", choices=sorted(dic_ref.PRESETS))
    ap.add_argument("--config", default="{}", help="JSON object of constructor arguments (official names)")
    ap.add_argument("--use", default="ema", help="which entry of the checkpoint dict to convert (default ema)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    args = ap.parse_args()

    obj = torch.load(args.checkpoint, map_location="cpu")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in pick_state_dict(obj, args.use).items()}
    cfg = dic_ref.full_config(args.preset, **json.loads(args.config))
    expected = dic_ref.DiC(**cfg).state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise SystemExit(f"convert: keys do not match the configuration {json.dumps(cfg)}: "
                         f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise SystemExit(f"convert: tensor {k} has shape {tuple(sd[k].shape)}, configuration expects {tuple(v.shape)}")
    out = {k: sd[k].detach().to(DTYPES[args.dtype]).contiguous() for k in expected}
    save_file(out, args.out, {"config": json.dumps(cfg), "format": "dic-sdk/1",
                              "source": os.path.basename(args.checkpoint), "dtype": args.dtype})
    n = sum(v.numel() for v in out.values())
    print(f"convert: {len(out)} tensors, {n / 1e6:.2f} M parameters, {args.dtype} -> {args.out}")


if __name__ == "__main__":
    main()
