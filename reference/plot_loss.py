"""Draws the training loss curve (reference/runs/default/loss.csv) as a PNG with PIL (no matplotlib).

Usage: python3 reference/plot_loss.py [--csv reference/runs/default/loss.csv] [--out models/loss-curve.png]
Log-scale y axis; total loss and its MSE part, smoothed over 5 log points.
"""
import argparse
import csv
import math
import os

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", default=os.path.join(HERE, "runs", "default", "loss.csv"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "models", "loss-curve.png"))
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.csv)))
    steps = [int(r["step"]) for r in rows]
    series = {"loss (hybrid)": [float(r["loss"]) for r in rows], "mse": [float(r["mse"]) for r in rows]}
    colors = {"loss (hybrid)": (31, 119, 180), "mse": (255, 127, 14)}

    def smooth(v, k=5):
        return [sum(v[max(0, i - k + 1):i + 1]) / len(v[max(0, i - k + 1):i + 1]) for i in range(len(v))]

    W, H, L, R, T, B = 720, 420, 70, 20, 30, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    ymin = min(min(v) for v in series.values()) * 0.9
    ymax = max(max(v) for v in series.values()) * 1.1
    lo, hi = math.log10(ymin), math.log10(ymax)
    xmax = max(steps)
    px = lambda s: L + (W - L - R) * s / xmax  # noqa: E731
    py = lambda v: T + (H - T - B) * (hi - math.log10(v)) / (hi - lo)  # noqa: E731
    d.rectangle([L, T, W - R, H - B], outline="black")
    for e in range(math.floor(lo), math.ceil(hi) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if ymin <= v <= ymax:
                y = py(v)
                d.line([L, y, W - R, y], fill=(225, 225, 225))
                d.text((8, y - 6), f"{v:g}", fill="black")
    for i in range(6):
        s = xmax * i / 5
        d.text((px(s) - 12, H - B + 8), f"{int(s)}", fill="black")
    d.text(((W - 80) // 2, H - 20), "training step", fill="black")
    d.text((L, 8), "DiC Fashion-MNIST default model: training loss (log scale)", fill="black")
    for j, (name, v) in enumerate(series.items()):
        pts = [(px(s), py(max(y, ymin))) for s, y in zip(steps, smooth(v))]
        d.line(pts, fill=colors[name], width=2)
        d.line([W - 190, T + 15 + 16 * j, W - 165, T + 15 + 16 * j], fill=colors[name], width=2)
        d.text((W - 160, T + 9 + 16 * j), name, fill="black")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    img.save(args.out)
    print(f"plot_loss: {len(rows)} points -> {args.out}")


if __name__ == "__main__":
    main()
