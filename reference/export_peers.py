"""Models and PyTorch timings for the peer benchmarks (bench/conv3x3.bench.ts, bench/forward.bench.ts).

  /usr/bin/python3 reference/export_peers.py export --out bench/peers/models
      conv_<C>x<H>.onnx + .safetensors for each DiC conv3x3 layer shape (weight, bias, x = batch-2 input,
      out = PyTorch's output) and dic-s.onnx + dic-s.safetensors (DiC-S, random weights with the official
      keys, config in the metadata) + dic-s_io.safetensors (x, t, y of batch 2 and PyTorch's output).
      ONNX models have a dynamic batch axis. torch.onnx.export needs no `onnx` Python package.
  /usr/bin/python3 reference/export_peers.py time --what conv|forward|forward-io --batch 1,2 --threads 1 --reps 5
      PyTorch CPU eager timings of the same shapes / model; prints one JSON line (forward-io: the exported
      DiC-S on the exported inputs, every rep's time and the output, for bench/forward's matrix).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dic_ref  # noqa: E402
from safetensors_io import load_file, save_file  # noqa: E402

CONV_SHAPES = [(96, 32), (192, 16), (384, 8), (384, 32), (768, 16), (1536, 8)]


class Conv(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def conv_module(c, seed):
    g = torch.Generator().manual_seed(seed)
    m = Conv(c)
    with torch.no_grad():
        m.conv.weight.copy_(torch.randn(m.conv.weight.shape, generator=g) / (9 * c) ** 0.5)
        m.conv.bias.copy_(0.1 * torch.randn(c, generator=g))
    return m.eval(), g


def _final_layer_forward(self, x, c):
    """FinalLayer.forward with the LayerNorm width as a Python int (the traced x.shape[1] does not export)."""
    shift, scale = self.adaLN_modulation(c)[:, :, None, None].chunk(2, dim=1)
    width = self.out_proj.in_channels
    x = F.layer_norm(x.permute(0, 2, 3, 1), (width,), eps=1e-6).permute(0, 3, 1, 2)
    return self.out_proj(x * (1 + scale) + shift)


def dic_s(seed=0):
    cfg = dic_ref.full_config("DiC-S")
    return dic_ref.random_init_(dic_ref.DiC(**cfg), torch.Generator().manual_seed(seed)).eval(), cfg


def export(out):
    os.makedirs(out, exist_ok=True)
    for i, (c, h) in enumerate(CONV_SHAPES):
        m, g = conv_module(c, 100 + i)
        x = torch.randn(2, c, h, h, generator=g)
        with torch.no_grad():
            y = m(x)
        name = f"{out}/conv_{c}x{h}"
        torch.onnx.export(m, (x,), name + ".onnx", input_names=["x"], output_names=["out"],
                          dynamic_axes={"x": {0: "n"}, "out": {0: "n"}}, opset_version=13)
        save_file({"weight": m.conv.weight, "bias": m.conv.bias, "x": x, "out": y}, name + ".safetensors")
        print(f"wrote {name}.onnx/.safetensors", flush=True)
    model, cfg = dic_s()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, cfg["in_channels"], cfg["input_size"], cfg["input_size"], generator=g)
    t = torch.tensor([100.0, 400.0])
    y = torch.tensor([0, 1], dtype=torch.int64)
    with torch.no_grad():
        out_t = model(x, t, y)
    dic_ref.FinalLayer.forward = _final_layer_forward  # same maths, exportable
    torch.onnx.export(model, (x, t, y), f"{out}/dic-s.onnx", input_names=["x", "t", "y"], output_names=["out"],
                      dynamic_axes={k: {0: "n"} for k in ["x", "t", "y", "out"]}, opset_version=16)
    keys = ["input_size", "in_channels", "hidden_size", "depth", "mult_channels", "num_classes", "learn_sigma",
            "skip_stride", "class_dropout_prob"]
    save_file(dict(model.state_dict()), f"{out}/dic-s.safetensors", {"config": json.dumps({k: cfg[k] for k in keys})})
    save_file({"x": x, "t": t, "y": y.to(torch.int32), "out": out_t}, f"{out}/dic-s_io.safetensors")
    print(f"wrote {out}/dic-s.onnx/.safetensors/_io.safetensors", flush=True)


def timed(fn, reps):
    times = []
    with torch.no_grad():
        for r in range(reps + 1):
            t0 = time.perf_counter()
            fn()
            if r:
                times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


def time_peer(what, batches, threads, reps, models=None):
    torch.set_num_threads(threads)
    rows = []
    if what == "conv":
        for i, (c, h) in enumerate(CONV_SHAPES):
            m, g = conv_module(c, 100 + i)
            for n in batches:
                x = torch.randn(n, c, h, h, generator=g)
                rows.append({"channels": c, "size": h, "batch": n, "ms": timed(lambda: m(x), reps)})
    elif what == "forward":
        model, cfg = dic_s()
        for n in batches:
            x = torch.randn(n, cfg["in_channels"], cfg["input_size"], cfg["input_size"])
            t = torch.arange(n) * 300.0 + 100
            y = torch.arange(n) % cfg["num_classes"]
            rows.append({"batch": n, "ms": timed(lambda: model(x, t, y), reps)})
    elif what == "forward-io":
        # bench/forward's matrix: the exported inputs (dic-s_io), every rep's time and the output
        model, cfg = dic_s()
        io, _ = load_file(os.path.join(models, "dic-s_io.safetensors"))
        for n in batches:
            x, t, y = io["x"][:n], io["t"][:n], io["y"][:n].to(torch.int64)
            times = []
            with torch.no_grad():
                out = model(x, t, y)
                for _ in range(reps):
                    t0 = time.perf_counter()
                    model(x, t, y)
                    times.append((time.perf_counter() - t0) * 1000)
            rows.append({"batch": n, "times": times, "out": out.flatten().tolist()})
    print(json.dumps({"torch": torch.__version__, "threads": threads, "rows": rows}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["export", "time"])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "peers", "models"))
    ap.add_argument("--what", choices=["conv", "forward", "forward-io"], default="conv")
    ap.add_argument("--batch", default="1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    if a.cmd == "export":
        export(a.out)
    else:
        time_peer(a.what, [int(b) for b in a.batch.split(",")], a.threads, a.reps, a.out)


if __name__ == "__main__":
    main()
