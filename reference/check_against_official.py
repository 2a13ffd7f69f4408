"""Checks dic_ref.DiC against the official dic_models.DiC: same state_dict keys, same outputs.

Usage: python3 reference/check_against_official.py /path/to/official/DiC/checkout
(The official file imports einops but does not use it in the model; a stub stands in.)
"""
import sys
import types

import torch

sys.modules.setdefault("einops", types.ModuleType("einops")).rearrange = None
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, __file__.rsplit("/", 1)[0])
import dic_models  # noqa: E402  (the official definition)
import dic_ref  # noqa: E402

torch.manual_seed(0)
cases = [
    ("DiC-S", dic_models.DiC_S, dict(input_size=32, in_channels=4, num_classes=1000)),
    ("tiny", dic_models.DiC_default, dict(input_size=8, in_channels=3, num_classes=5, hidden_size=8,
                                         depth=[2, 2, 1, 2, 2], skip_stride=1)),
]
worst = 0.0
for name, ctor, kw in cases:
    official = dic_ref.random_init_(ctor(**kw)).eval()
    preset = "DiC-S" if name == "DiC-S" else None
    ours = dic_ref.DiC(**dic_ref.full_config(preset, **kw)).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.randn(2, kw["in_channels"], kw["input_size"], kw["input_size"])
    t, y = torch.tensor([3, 871]), torch.tensor([1, kw["num_classes"]])
    with torch.no_grad():
        a, b = official(x, t, y), ours(x, t, y)
    err = ((a - b).norm() / a.norm()).item()
    worst = max(worst, err)
    print(f"{name}: {len(official.state_dict())} keys identical, relative L2 {err:.2e}")
sys.exit(0 if worst < 1e-5 else 1)
