"""PyTorch CPU decode time of the SD-VAE decoder (the peer of bench/vae.bench.ts), our reference/vae_ref.py.

Usage: python3 reference/bench_vae_torch.py --sizes 32,64 --threads 1 --reps 1 [--widths 128,256,512,512]
Prints one JSON line: {"torch": version, "threads": n, "rows": [{"size": s, "ms": median, "peakRssMiB": r}]}.
peakRssMiB is the process's peak resident memory after that size (it only grows: sizes run smallest first).
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vae_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--widths", default="128,256,512,512")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = vae_ref.random_init_(vae_ref.VAEDecoder(block_out_channels=[int(w) for w in args.widths.split(",")]),
                                 torch.Generator().manual_seed(0)).eval()
    rows = []
    for s in sorted(int(v) for v in args.sizes.split(",")):
        z = torch.randn(1, 4, s, s)
        times = []
        with torch.no_grad():
            for r in range(args.reps + 1):
                t0 = time.perf_counter()
                model(z / 0.18215)
                if r:
                    times.append((time.perf_counter() - t0) * 1000)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append({"size": s, "ms": sorted(times)[len(times) // 2], "peakRssMiB": round(rss)})
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
