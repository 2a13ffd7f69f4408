"""Train the Fashion-MNIST classifier that scores generated images (bench/quality, tests/quality.test.ts).

The network uses only ops of the SDK's Backend contract, so bench/lib/classifier.ts runs exactly this graph:
  stem: Conv3x3(in -> C0, bias)                                     28x28
  stage i: [i > 0] PixelUnshuffle(2); Conv3x3(GELU(GroupNorm(h)), 4*C(i-1) -> Ci)   28 -> 14 -> 7
           then blocks[i] times  h = h + Conv3x3(GELU(GroupNorm(h)))
  reduce:  Conv3x3(GELU(GroupNorm(h)), C_last -> R)                  7x7
  features f = Linear(flatten(h))  (R*7*7 -> F; the Frechet-distance features)
  logits     = Linear(SiLU(f))     (F -> num_classes)
GroupNorm groups = min(32, C // 4), eps 1e-5; GELU is exact (erf). Pixels in [-1, 1] (x / 127.5 - 1).

Writes models/fashion-classifier.safetensors: f16 weights, `__metadata__` config / class_names /
test_accuracy (of the f16 weights, on all 10,000 test images) / per-class accuracy.

  OMP_NUM_THREADS=1 nice -n 5 /usr/bin/python3 reference/train_classifier.py [--epochs 5] [--out PATH]
(the shipped file: 5 epochs, seed 0, f16 test accuracy 0.9185; 39 min wall on a busy 2-core machine)
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_io import load_file, save_file  # noqa: E402
from train import CLASS_NAMES, load_fashion_mnist  # noqa: E402

DEFAULT_OUT = os.path.join(HERE, "..", "models", "fashion-classifier.safetensors")
MAX_BYTES = 1024 * 1024
FORMAT = "dic-sdk-classifier/1"

CONFIG = dict(input_size=28, in_channels=1, channels=[16, 32, 64], blocks=[1, 1, 1], reduce_channels=16,
              features=64, num_classes=10, norm_eps=1e-5)


def groups(c):
    """GroupNorm groups of a C-channel input (the DiC rule)."""
    return min(32, c // 4)


class PreConv(nn.Module):
    """Conv3x3(GELU(GroupNorm(x))): one conv3x3 call with a fused NormPreOp in the SDK."""

    def __init__(self, cin, cout, eps):
        super().__init__()
        self.norm = nn.GroupNorm(groups(cin), cin, eps=eps)
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return self.conv(F.gelu(self.norm(x)))


class Classifier(nn.Module):
    def __init__(self, input_size, in_channels, channels, blocks, reduce_channels, features, num_classes, norm_eps):
        super().__init__()
        assert len(channels) == len(blocks) and input_size % (2 ** (len(channels) - 1)) == 0
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.downs = nn.ModuleList(PreConv(4 * channels[i - 1], channels[i], norm_eps) for i in range(1, len(channels)))
        self.stages = nn.ModuleList(nn.ModuleList(PreConv(c, c, norm_eps) for _ in range(b))
                                    for c, b in zip(channels, blocks))
        self.reduce = PreConv(channels[-1], reduce_channels, norm_eps)
        side = input_size // 2 ** (len(channels) - 1)
        self.fc = nn.Linear(reduce_channels * side * side, features)
        self.head = nn.Linear(features, num_classes)

    def forward(self, x):
        """x [N, C, S, S] in [-1, 1] -> (logits [N, classes], features [N, F])."""
        h = self.stem(x)
        for i, stage in enumerate(self.stages):
            if i > 0:
                h = self.downs[i - 1](F.pixel_unshuffle(h, 2))
            for block in stage:
                h = h + block(h)
        f = self.fc(self.reduce(h).flatten(1))
        return self.head(F.silu(f)), f


def build(cfg=CONFIG):
    return Classifier(**cfg)


def load_classifier(path):
    """(model with the file's weights in f32, config, metadata)."""
    tensors, meta = load_file(path)
    cfg = json.loads(meta["config"])
    model = build(cfg)
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.eval(), cfg, meta


def images_tensor(u8):
    return u8.float().unsqueeze(1) / 127.5 - 1.0


def augment(x, gen):
    """Random horizontal flip and a shift of up to 2 pixels (background -1 fills the border)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()  # one shift per batch: cheap, still varied
    return pad[:, :, dy:dy + 28, dx:dx + 28]


@torch.no_grad()
def evaluate(model, x, y, batch=1000):
    model.eval()
    preds = torch.cat([model(x[i:i + batch])[0].argmax(1) for i in range(0, len(x), batch)])
    model.train()
    correct = preds == y
    per_class = [correct[y == c].float().mean().item() for c in range(int(y.max()) + 1)]
    return correct.float().mean().item(), per_class


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    xi, yi = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    x_train, y_train = images_tensor(torch.from_numpy(xi.copy())), torch.from_numpy(yi.copy())
    x_test, y_test = images_tensor(torch.from_numpy(xt.copy())), torch.from_numpy(yt.copy())

    model = build()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    steps_per_epoch = len(x_train) // args.batch
    total = int(args.epochs * steps_per_epoch)
    warmup = min(200, total // 10)
    print(f"classifier: {n_params} params, {total} steps of batch {args.batch}", flush=True)
    t0 = time.time()
    step = 0
    while step < total:
        perm = torch.randperm(len(x_train), generator=gen)
        for i in range(steps_per_epoch):
            if step >= total:
                break
            lr = args.lr * (step + 1) / warmup if step < warmup else \
                args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[i * args.batch:(i + 1) * args.batch]
            logits, _ = model(augment(x_train[idx], gen))
            loss = F.cross_entropy(logits, y_train[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 100 == 0 or step == total:
                print(f"step {step}/{total} loss {loss.item():.4f} lr {lr:.2e} {time.time() - t0:.0f}s", flush=True)
            if step % steps_per_epoch == 0 or step == total:
                acc, _ = evaluate(model, x_test, y_test)
                print(f"  test accuracy {acc:.4f}", flush=True)

    # Ship f16 weights; report the accuracy of exactly those.
    tensors = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}
    with torch.no_grad():
        for k, p in model.state_dict().items():
            p.copy_(tensors[k].float())
    acc, per_class = evaluate(model, x_test, y_test)
    train_minutes = (time.time() - t0) / 60
    meta = {
        "config": json.dumps(CONFIG),
        "class_names": json.dumps(CLASS_NAMES),
        "format": FORMAT,
        "dataset": "fashion-mnist",
        "pixel_range": "[-1, 1]",
        "test_accuracy": f"{acc:.4f}",
        "test_accuracy_per_class": json.dumps([round(a, 4) for a in per_class]),
        "train": json.dumps(dict(epochs=args.epochs, batch=args.batch, lr=args.lr, wd=args.wd, seed=args.seed,
                                 minutes=round(train_minutes, 1), threads=args.threads)),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    save_file(tensors, tmp, meta)
    size = os.path.getsize(tmp)
    if size > MAX_BYTES:
        os.remove(tmp)
        raise SystemExit(f"{args.out}: {size} bytes > {MAX_BYTES}")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {size} bytes, f16 test accuracy {acc:.4f}, per class "
          f"{', '.join(f'{n} {a:.3f}' for n, a in zip(CLASS_NAMES, per_class))} ({train_minutes:.1f} min)")


if __name__ == "__main__":
    main()
