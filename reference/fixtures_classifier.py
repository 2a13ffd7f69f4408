"""Fixtures of tests/classifier.test.ts: the quality classifier in PyTorch vs bench/lib/classifier.ts, and the
Frechet distance in numpy (eigh) vs bench/lib/frechet.ts.

  classifier_parity.safetensors  the shipped models/fashion-classifier.safetensors on 8 real test images and
                                 one uniform-noise image: images, labels, logits, features; metadata sha256
                                 of the weights file (the test checks it, so a retrained model asks for new fixtures)
  classifier_random_weights.safetensors / classifier_random.safetensors
                                 a random non-zero classifier of another shape (2 stages, 2 blocks then none,
                                 12x12x2 input, 5 classes) and its outputs on random inputs
  frechet.safetensors            feature sets a, b per case with numpy's mean, cov and Frechet distance

Usage: /usr/bin/python3 reference/fixtures_classifier.py OUT_DIR   (or import and call write(out_dir)).
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_io import save_file  # noqa: E402
from train import load_fashion_mnist  # noqa: E402
from train_classifier import DEFAULT_OUT, FORMAT, build, load_classifier  # noqa: E402

RANDOM_CONFIG = dict(input_size=12, in_channels=2, channels=[8, 12], blocks=[2, 0], reduce_channels=4,
                     features=10, num_classes=5, norm_eps=1e-5)


def write_parity(out_dir, weights_path=DEFAULT_OUT):
    model, _, _ = load_classifier(weights_path)
    images, labels = load_fashion_mnist("test")
    x = torch.from_numpy(images[:8].copy()).float().unsqueeze(1) / 127.5 - 1.0
    noise = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(7)) * 2 - 1
    x = torch.cat([x, noise])
    y = torch.from_numpy(np.append(labels[:8], -1).astype(np.int64))
    with torch.no_grad():
        logits, features = model(x)
    with open(weights_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    save_file({"images": x, "labels": y, "logits": logits, "features": features},
              os.path.join(out_dir, "classifier_parity.safetensors"), {"weights_sha256": digest})


def write_random(out_dir):
    gen = torch.Generator().manual_seed(2024)
    model = build(RANDOM_CONFIG).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Non-zero everywhere, GroupNorm affine away from (1, 0), so no term can hide.
            scale = 0.3 if name.endswith("norm.weight") else 0.5 / max(1, p[0].numel()) ** 0.5
            p.copy_(torch.randn(p.shape, generator=gen) * scale + (1.0 if name.endswith("norm.weight") else 0.0))
    x = torch.randn(3, 2, 12, 12, generator=gen)
    with torch.no_grad():
        logits, features = model(x)
    save_file(model.state_dict(), os.path.join(out_dir, "classifier_random_weights.safetensors"),
              {"config": json.dumps(RANDOM_CONFIG), "format": FORMAT})
    save_file({"images": x, "logits": logits, "features": features}, os.path.join(out_dir, "classifier_random.safetensors"))


def frechet_np(a, b):
    """||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa Sb)^1/2) via eigh of sqrt(Sa) Sb sqrt(Sa), in float64."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    la, va = np.linalg.eigh(sa)
    ra = (va * np.sqrt(np.clip(la, 0, None))) @ va.T
    m = ra @ sb @ ra
    tr = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return mu_a, sa, mu_b, sb, float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * tr)


def write_frechet(out_dir):
    rng = np.random.default_rng(11)
    cases = {}
    d = 24
    la, lb = rng.normal(size=(d, d)), rng.normal(size=(d, d)) * 0.7 + np.eye(d)
    cases["gauss"] = (rng.normal(size=(500, d)) @ la + 1.0, rng.normal(size=(400, d)) @ lb - 0.5)
    # Fewer samples than dimensions: both covariances singular (rank 9 and 11 of 16).
    cases["singular"] = (rng.normal(size=(10, 16)) * 3, rng.normal(size=(12, 16)) + 2)
    # Same distribution, different draws: a small distance, the bench's "floor" situation.
    cases["close"] = (rng.normal(size=(300, 8)), rng.normal(size=(300, 8)))
    tensors = {}
    for name, (a, b) in cases.items():
        a32, b32 = a.astype(np.float32), b.astype(np.float32)  # the test reads f32 features, widened to f64
        a64, b64 = a32.astype(np.float64), b32.astype(np.float64)
        mu_a, sa, mu_b, sb, fd = frechet_np(a64, b64)
        # Independent check of the symmetric formulation: eigenvalues of the non-symmetric Sa Sb.
        alt = (((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb)
               - 2 * np.sqrt(np.clip(np.linalg.eigvals(sa @ sb).real, 0, None)).sum())
        assert abs(alt - fd) <= 1e-6 * max(1.0, abs(fd)), (name, alt, fd)
        tensors.update({
            f"{name}_a": torch.from_numpy(a32), f"{name}_b": torch.from_numpy(b32),
            f"{name}_mean_a": torch.from_numpy(mu_a), f"{name}_cov_a": torch.from_numpy(sa),
            f"{name}_mean_b": torch.from_numpy(mu_b), f"{name}_cov_b": torch.from_numpy(sb),
            f"{name}_fd": torch.tensor([fd], dtype=torch.float64),
        })
    save_file(tensors, os.path.join(out_dir, "frechet.safetensors"), {"cases": json.dumps(list(cases))})


def write(out_dir):
    """Writes the classifier and Frechet fixtures into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    write_random(out_dir)
    write_frechet(out_dir)
    if os.path.exists(DEFAULT_OUT):
        write_parity(out_dir)
    else:
        print(f"fixtures_classifier: {DEFAULT_OUT} missing (run reference/train_classifier.py): no parity fixture")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fixtures_classifier.py OUT_DIR")
    write(sys.argv[1])
