"""Writes tests/fixtures/gen/safetensors_dtypes.safetensors: f32, f16, bf16 and int64 tensors with known values,
cast by PyTorch, so tests/safetensors.test.ts can check the JS reader (and its f16 rounding) against torch.

Usage: /usr/bin/python3 reference/fixtures_safetensors.py OUT_DIR   (or import and call write(out_dir)).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_file  # noqa: E402

FILE_NAME = "safetensors_dtypes.safetensors"

# Exactly representable in f16: signed zeros, smallest subnormal 2^-24, largest subnormal, smallest
# normal 2^-14, 65504 (largest finite), infinities and NaN. Shape [2, 6].
F16_EXACT = [0.0, -0.0, 2.0 ** -24, -(2.0 ** -24), 1023 * 2.0 ** -24, 2.0 ** -14,
             1.0, -2.5, 65504.0, float("inf"), float("-inf"), float("nan")]
# Exactly representable in bf16: 2^-133 is a bf16 subnormal, 3.140625 = 0x4049. Shape [8].
BF16_EXACT = [0.0, -0.0, 1.0, -3.140625, 2.0 ** 100, 2.0 ** -133, float("inf"), float("nan")]
# int64 timesteps / labels and values beyond 32 bits. Shape [6].
I64_VALUES = [0, 1, 999, -5, 2 ** 40 + 3, -(2 ** 33)]
# f32 values whose f16 / bf16 casts need rounding (torch does round-to-nearest-even): halfway cases,
# values that round into subnormals, up to 65504 or overflow to inf. Shape [16].
ROUND_SRC = [0.1, -0.1, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 2.0 ** -25, 1.5 * 2.0 ** -25, 2.0 ** -26,
             3 * 2.0 ** -25, 65519.0, 65520.0, 1e6, -1e-8, 3.14159265, 1.0 / 3.0, 6.1e-5, 2.0 ** -15]
METADATA = {"format": "pt", "purpose": "dtype cross-check"}


def tensors():
    """The tensors of the fixture, name -> torch.Tensor."""
    src = torch.tensor(ROUND_SRC, dtype=torch.float32)
    return {
        "f32": torch.tensor([[1.5, -2.25, 3.0e-38], [1.0e38, -0.0, 7.0]], dtype=torch.float32),
        "f16": torch.tensor(F16_EXACT, dtype=torch.float32).to(torch.float16).reshape(2, 6),
        "bf16": torch.tensor(BF16_EXACT, dtype=torch.float32).to(torch.bfloat16),
        "i64": torch.tensor(I64_VALUES, dtype=torch.int64),
        "round_src": src,
        "round_f16": src.to(torch.float16),
        "round_bf16": src.to(torch.bfloat16),
        "scalar": torch.tensor(42.0, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
    }


def write(out_dir):
    """Writes the fixture into out_dir; returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, FILE_NAME)
    save_file(tensors(), path, METADATA)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fixtures_safetensors.py OUT_DIR")
    print(write(sys.argv[1]))
