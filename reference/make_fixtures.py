"""Writes every fixture the test suite compares against (PyTorch reference, random non-zero weights).

Usage: python3 reference/make_fixtures.py --out tests/fixtures/gen [--skip-large]
Forward fixtures: forward_<case>_{weights,inputs,out}.safetensors in the CLI formats
(`dic forward --model W --inputs IN --out OUT`): IN holds x (f32 NCHW), t, y (int64); OUT holds out.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dic_ref  # noqa: E402
from safetensors_io import save_file  # noqa: E402

# (name, preset, overrides, batch, weight dtype). Cases cover: a tiny net with skips after every
# block, channel counts that are not multiples of 4 (GroupNorm groups 2/5/10), no learned sigma and
# no null class, odd spatial sizes down the U (12 -> 6 -> 3), bf16 and f16 storage, and DiC-S at batch 2.
FORWARD_CASES = [
    ("tiny", None, dict(input_size=8, in_channels=3, num_classes=5, hidden_size=8, depth=[2, 2, 1, 2, 2],
                        skip_stride=1), 2, torch.float32),
    ("odd", None, dict(input_size=12, in_channels=3, num_classes=7, hidden_size=10, depth=[3, 2, 2, 2, 3],
                       skip_stride=2, learn_sigma=False, class_dropout_prob=0.0), 3, torch.bfloat16),
    ("dics", "DiC-S", dict(input_size=32, in_channels=4, num_classes=1000), 2, torch.float16),
]


def config_metadata(cfg):
    return {"config": json.dumps(cfg), "format": "dic-sdk/1"}


def build(preset, overrides, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    cfg = dic_ref.full_config(preset, **overrides)
    model = dic_ref.random_init_(dic_ref.DiC(**cfg), gen).eval()
    with torch.no_grad():
        for p in model.parameters():  # the file stores `dtype`; compute with exactly those values
            p.copy_(p.to(dtype).float())
    return model, cfg, gen


def write_forward(out, name, preset, overrides, batch, dtype, seed):
    model, cfg, gen = build(preset, overrides, dtype, seed)
    n, c, s = batch, cfg["in_channels"], cfg["input_size"]
    x = torch.randn(n, c, s, s, generator=gen)
    t = torch.randint(0, 1000, (n,), generator=gen)
    rows = cfg["num_classes"] + (1 if cfg["class_dropout_prob"] > 0 else 0)
    y = torch.randint(0, rows, (n,), generator=gen)
    y[-1] = rows - 1  # the last row (null class where present) is always exercised
    with torch.no_grad():
        o = model(x, t, y)
    sd = {k: v.to(dtype) for k, v in model.state_dict().items()}
    save_file(sd, f"{out}/forward_{name}_weights.safetensors", config_metadata(cfg))
    save_file({"x": x, "t": t, "y": y}, f"{out}/forward_{name}_inputs.safetensors")
    save_file({"out": o}, f"{out}/forward_{name}_out.safetensors")
    return model, cfg


def write_conversion(out):
    """An official-style .pt ({"ema": ..., "model": "module."-prefixed}) converted by convert_checkpoint.py."""
    overrides = dict(input_size=16, in_channels=4, num_classes=10, hidden_size=12, depth=[2, 1, 2, 1, 2], skip_stride=2)
    model, cfg, gen = build(None, overrides, torch.float32, seed=4242)
    sd = model.state_dict()
    pt = f"{out}/convert_src.pt"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}, "ema": sd, "args": {"note": "not a tensor"}}, pt)
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, f"{here}/convert_checkpoint.py", pt, "--config", json.dumps(overrides),
                    "--dtype", "f16", "--out", f"{out}/convert_ema_f16.safetensors"], check=True)
    subprocess.run([sys.executable, f"{here}/convert_checkpoint.py", pt, "--config", json.dumps(overrides),
                    "--dtype", "int8", "--out", f"{out}/convert_ema_int8.safetensors"], check=True)
    x = torch.randn(2, 4, 16, 16, generator=gen)
    t, y = torch.tensor([999, 0]), torch.tensor([10, 4])
    # The int8 file's model: its weights dequantized (q * scale), run in fp32.
    from convert_checkpoint import quantize_int8
    q = quantize_int8(sd)
    deq = {k: (q[k].float() * q[k + "_scale"].reshape(-1, 1, 1, 1)) if k + "_scale" in q else q[k] for k in sd}
    model8 = dic_ref.DiC(**cfg)
    model8.load_state_dict(deq)
    model8.eval()
    with torch.no_grad():
        save_file({"out": model8(x, t, y)}, f"{out}/convert_int8_out.safetensors")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())  # the converted file stores f16
        o = model(x, t, y)
    save_file({"x": x, "t": t, "y": y}, f"{out}/convert_inputs.safetensors")
    save_file({"out": o}, f"{out}/convert_out.safetensors")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip-large", action="store_true", help="skip DiC-S (fast local runs)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.time()
    for i, (name, preset, overrides, batch, dtype) in enumerate(FORWARD_CASES):
        if args.skip_large and preset:
            continue
        write_forward(args.out, name, preset, overrides, batch, dtype, seed=1000 + i)
        print(f"forward_{name}: written ({time.time() - t0:.1f}s)")
    write_conversion(args.out)
    print(f"conversion: written ({time.time() - t0:.1f}s)")
    for module in ("fixtures_safetensors", "fixtures_sampling", "fixtures_dic_sampling", "fixtures_ops", "fixtures_classifier", "fixtures_vae"):
        try:
            mod = __import__(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        mod.write(args.out)
        print(f"{module}: written ({time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main()
