"""Export a training checkpoint's EMA weights to the SDK's embedded model file (safetensors, f16 storage).

Keys are the PyTorch state_dict names of dic_ref.DiC (the official layout); `__metadata__` holds JSON
strings: config (official constructor names), class_names, format, dataset, train_steps, pixel_range.

  /usr/bin/python3 reference/export_model.py [--ckpt reference/runs/default/ckpt.pt] [--out models/dic-fashion.safetensors]
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import load_file, save_file  # noqa: E402
from train import CLASS_NAMES, HERE, build_model, load_ema_from_checkpoint  # noqa: E402

CONFIG_KEYS = ["input_size", "in_channels", "hidden_size", "depth", "mult_channels", "num_classes",
               "learn_sigma", "skip_stride", "class_dropout_prob"]
MAX_BYTES = 10 * 1024 * 1024


def export(ckpt_path, out_path, dtype=torch.float16, sampling_defaults=None):
    model, ckpt = load_ema_from_checkpoint(ckpt_path)
    cfg = {k: model.cfg[k] for k in CONFIG_KEYS}
    tensors = {}
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            raise ValueError(f"{name}: unexpected non-float tensor {t.dtype}")
        h = t.to(dtype)
        if not torch.isfinite(h).all():
            raise ValueError(f"{name}: non-finite after casting to {dtype} (max |w| {t.abs().max():.3g})")
        tensors[name] = h
    meta = {
        "config": json.dumps(cfg),
        "class_names": json.dumps(ckpt.get("class_names", CLASS_NAMES)),
        "format": "dic-sdk/1",
        "dataset": ckpt.get("dataset", "fashion-mnist"),
        "train_steps": str(ckpt["step"]),
        "pixel_range": "[-1, 1]",
    }
    if sampling_defaults:
        meta["sampling_defaults"] = json.dumps(json.loads(sampling_defaults))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp"
    save_file(tensors, tmp, meta)
    os.replace(tmp, out_path)
    return model, tensors, meta


def verify(out_path, model):
    """Read the file back: same keys and shapes as the model, metadata parses, and the f16 model's output
    stays close to the f32 EMA model's."""
    size = os.path.getsize(out_path)
    if size > MAX_BYTES:
        raise ValueError(f"{out_path}: {size} bytes > {MAX_BYTES}")
    tensors, meta = load_file(out_path)
    sd = model.state_dict()
    if set(tensors) != set(sd):
        raise ValueError(f"{out_path}: keys differ: missing {sorted(set(sd) - set(tensors))[:5]}, "
                         f"extra {sorted(set(tensors) - set(sd))[:5]}")
    for k, v in sd.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f"{out_path}: {k} shape {tuple(tensors[k].shape)} != {tuple(v.shape)}")
    cfg = json.loads(meta["config"])
    names = json.loads(meta["class_names"])
    assert meta["format"] == "dic-sdk/1" and len(names) == cfg["num_classes"], meta
    reloaded = build_model(cfg)
    reloaded.load_state_dict({k: v.float() for k, v in tensors.items()})
    reloaded.eval()
    g = torch.Generator().manual_seed(0)
    s = cfg["input_size"]
    x = torch.randn(4, cfg["in_channels"], s, s, generator=g)
    t = torch.tensor([0, 250, 500, 999])
    y = torch.tensor([0, 3, 7, cfg["num_classes"]])
    with torch.no_grad():
        a, b = reloaded(x, t, y), model(x, t, y)
    rel = ((a - b).norm() / b.norm().clamp(min=1e-12)).item()
    return size, rel, cfg, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(HERE, "runs", "default", "ckpt.pt"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "models", "dic-fashion.safetensors"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sampling-defaults", default=None,
                    help='JSON {"sampler", "steps", "cfg_scale", "cfg_mode"} chosen with bench/quality')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tensors, _ = export(args.ckpt, args.out, sampling_defaults=args.sampling_defaults)
    size, rel, cfg, meta = verify(args.out, model)
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {n} params, {size} bytes, f16 vs f32 output rel L2 {rel:.2e}")
    print(f"metadata: {json.dumps(meta)}")


if __name__ == "__main__":
    main()
