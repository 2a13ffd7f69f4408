"""PyTorch forward throughput of DiC configurations on a CUDA GPU (the peer of bench/gpu.bench.ts).

Modes: fp32 (TF32 off), tf32 (TF32 matmul/cuDNN on), fp16 (model and inputs in half); cuDNN benchmark
mode on. Each row is the median of --reps timed forwards after two warm-ups, synchronised.

Usage: python3 reference/bench_gpu_torch.py --models DiC-S,DiC-B,DiC-XL --batches 1,8,32,64 --reps 5
Prints one JSON line: {"torch": version, "device": name, "rows": [{"model", "mode", "batch", "ms", "img_per_s"}]}.
Exits 2 with a message on stderr when CUDA is not available.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dic_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="DiC-S,DiC-B,DiC-XL")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--modes", default="fp32,tf32,fp16")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu_torch: CUDA is not available (no NVIDIA GPU or a CPU-only torch build)", file=sys.stderr)
        sys.exit(2)
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    rows = []
    for name in args.models.split(","):
        cfg = dic_ref.full_config(name) if name in dic_ref.PRESETS else dic_ref.full_config(**json.loads(name))
        base = dic_ref.random_init_(dic_ref.DiC(**cfg)).eval().to(dev)
        for mode in args.modes.split(","):
            torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
            torch.backends.cudnn.allow_tf32 = mode == "tf32"
            dtype = torch.float16 if mode == "fp16" else torch.float32
            model = base.to(dtype)
            for n in [int(b) for b in args.batches.split(",")]:
                s = cfg["input_size"]
                x = torch.randn(n, cfg["in_channels"], s, s, device=dev, dtype=dtype)
                t = (torch.arange(n, device=dev) * 300 + 100) % 1000
                y = torch.arange(n, device=dev) % cfg["num_classes"]
                times = []
                with torch.no_grad():
                    for r in range(args.reps + 2):
                        torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        model(x, t, y)
                        torch.cuda.synchronize()
                        if r >= 2:
                            times.append((time.perf_counter() - t0) * 1000)
                ms = sorted(times)[len(times) // 2]
                rows.append({"model": name, "mode": mode, "batch": n, "ms": ms, "img_per_s": n * 1000 / ms})
            base = model.float()
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "rows": rows}))


if __name__ == "__main__":
    main()
