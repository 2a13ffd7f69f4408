"""Converts an official DiC PyTorch checkpoint to safetensors with the configuration in the metadata.

Usage: python3 reference/convert_checkpoint.py CKPT.pt --preset DiC-S [--config '{"input_size": 64}']
                                             [--use ema|model] [--dtype f32|f16|bf16|int8] --out OUT.safetensors
Accepts {"ema": state_dict}, {"model": state_dict} or a bare state_dict; a DDP "module." prefix is
stripped. Keys are checked against the configuration (strict) before anything is written.

--dtype int8 writes the int8 layout of src/weights/int8.ts (README "int8 weights"): every rank-4
(convolution) weight W [Co, ...] as I8 values q with an F32 [Co] tensor "<name>_scale", where
scale[o] = max |W[o]| / 127 (f32) and q = round(W / scale[o]) clamped to [-127, 127] (W = q * scale);
all other tensors stay F32; `__metadata__.quantization` is "int8-per-channel". The JS converter
(src/weights/quantize.ts) writes the same layout (values equal up to rounding ties).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dic_ref  # noqa: E402
from safetensors_io import save_file  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "int8": None}


def quantize_int8(sd):
    """The int8 layout: rank-4 weights as I8 + '<name>_scale' F32 [Co]; everything else F32."""
    out = {}
    for k, v in sd.items():
        v = v.detach().float().contiguous()
        if v.dim() == 4 and v.shape[0] > 0:
            scale = (v.abs().reshape(v.shape[0], -1).amax(dim=1) / 127).float()
            safe = torch.where(scale > 0, scale, torch.ones_like(scale)).reshape(-1, 1, 1, 1)
            q = torch.round(v / safe).clamp(-127, 127)
            q = torch.where(scale.reshape(-1, 1, 1, 1) > 0, q, torch.zeros_like(q))
            out[k] = q.to(torch.int8).contiguous()
            out[k + "_scale"] = scale.contiguous()
        else:
            out[k] = v
    return out


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
    meta = {"config": json.dumps(cfg), "format": "dic-sdk/1", "source": os.path.basename(args.checkpoint), "dtype": args.dtype}
    if args.dtype == "int8":
        out = quantize_int8({k: sd[k] for k in expected})
        meta["quantization"] = "int8-per-channel"
    else:
        out = {k: sd[k].detach().to(DTYPES[args.dtype]).contiguous() for k in expected}
    save_file(out, args.out, meta)
    n = sum(v.numel() for k, v in out.items() if not (args.dtype == "int8" and k.endswith("_scale") and k[:-6] in out))
    print(f"convert: {len(out)} tensors, {n / 1e6:.2f} M parameters, {args.dtype} -> {args.out}")


if __name__ == "__main__":
    main()
