"""PyTorch CPU forward latency of a DiC configuration (the peer of bench/forward.bench.ts).

Usage: python3 reference/bench_forward_torch.py --config DiC-S --batch 1,2 --threads 1 --reps 3
Prints one JSON line: {"torch": version, "threads": n, "rows": [{"batch": b, "ms": median}]}.
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
    ap.add_argument("--config", default="DiC-S")
    ap.add_argument("--batch", default="1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.config in dic_ref.PRESETS:
        cfg = dic_ref.full_config(args.config)
    else:
        cfg = dic_ref.full_config(**json.loads(args.config))
    model = dic_ref.random_init_(dic_ref.DiC(**cfg)).eval()
    rows = []
    for n in [int(b) for b in args.batch.split(",")]:
        s = cfg["input_size"]
        x = torch.randn(n, cfg["in_channels"], s, s)
        t = torch.arange(n) * 300 + 100
        y = torch.arange(n) % cfg["num_classes"]
        times = []
        with torch.no_grad():
            for r in range(args.reps + 1):
                t0 = time.perf_counter()
                model(x, t, y)
                if r:
                    times.append((time.perf_counter() - t0) * 1000)
        rows.append({"batch": n, "ms": sorted(times)[len(times) // 2]})
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
