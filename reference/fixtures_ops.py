"""Per-op PyTorch fixtures for the shared backend suite (tests/ops.test.ts): one ops_<op>.safetensors per op.

Usage: /usr/bin/python3 reference/fixtures_ops.py OUT_DIR   (or import and call write(out_dir)).
Each file holds, per case, `<case>.<input>` tensors (f32; gather ids i64) and `<case>.out` (torch fp32), and
metadata {"op": op, "cases": JSON [{name, desc, params, torchF32VsF64}]}. Every float value is non-zero (asserted), inputs
have non-zero means, and shapes mix odd sizes (1x1 .. 9x9, 5x12), batches 1 and 3, channels 3..96.
The pre-op is exactly contract.ts's NormPreOp: act(norm(x) * weight + bias), with modulate
x * (1 + scale) + shift after the affine and before act; GELU is the exact erf GELU.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_file  # noqa: E402


def nz(gen, *shape, scale=1.0, offset=0.0):
    """Gaussian values pushed away from zero (|v| >= 0.05 * scale), plus an offset."""
    v = torch.randn(*shape, generator=gen)
    v = torch.where(v >= 0, v + 0.05, v - 0.05) * scale
    if isinstance(offset, torch.Tensor) or offset != 0:
        v = v + offset
        v = torch.where(v.abs() < 1e-3, torch.full_like(v, 1e-3), v)
    return v


def image(gen, n, c, h, w):
    """An activation with a per-channel mean (so mean subtraction matters) and a spread that is not 1."""
    return nz(gen, n, c, h, w, scale=1.7, offset=nz(gen, 1, c, 1, 1, scale=0.8))


# ----- the pre-op (contract.ts NormPreOp) ---------------------------------------------------------------

def pre_spec(norm, c, groups=None, affine=False, modulate=None, act="gelu", eps=None):
    """modulate: None, "block" (cond [N,3C]: gate, scale, shift), "head" (cond [N,2C]: shift, scale),
    or "split" (scale from cond at offset 3, shift from cond2 at offset 0: independent tensors and offsets)."""
    spec = {"norm": norm, "eps": eps or (1e-5 if norm == "group" else 1e-6), "affine": affine, "act": act}
    if norm == "group":
        spec["groups"] = groups
    if modulate == "block":
        spec["modulate"] = {"scale": {"tensor": "cond", "offset": c}, "shift": {"tensor": "cond", "offset": 2 * c}}
    elif modulate == "head":
        spec["modulate"] = {"scale": {"tensor": "cond", "offset": c}, "shift": {"tensor": "cond", "offset": 0}}
    elif modulate == "split":
        spec["modulate"] = {"scale": {"tensor": "cond", "offset": 3}, "shift": {"tensor": "cond2", "offset": 0}}
    return spec


def pre_inputs(gen, spec, n, c):
    """Tensors a pre-op reads besides x: norm weight/bias and the [N, K] condition tensors."""
    t = {}
    if spec["affine"]:
        t["norm_weight"] = nz(gen, c, scale=0.3, offset=1.0)
        t["norm_bias"] = nz(gen, c, scale=0.3)
    mod = spec.get("modulate")
    if mod:
        widths = {"cond": 0, "cond2": 0}
        for s in (mod["scale"], mod["shift"]):
            widths[s["tensor"]] = max(widths[s["tensor"]], s["offset"] + c)
        for name, k in widths.items():
            if k:
                t[name] = nz(gen, n, k + (2 if name == "cond2" else 0), scale=0.4)
    return t


def apply_pre(x, spec, t):
    c = x.shape[1]
    w, b = (t["norm_weight"], t["norm_bias"]) if spec["affine"] else (None, None)
    if spec["norm"] == "group":
        h = F.group_norm(x, spec["groups"], w, b, spec["eps"])
    else:  # layer norm over C at each pixel (the DiC head)
        h = F.layer_norm(x.permute(0, 2, 3, 1), (c,), w, b, spec["eps"]).permute(0, 3, 1, 2)
    mod = spec.get("modulate")
    if mod:
        def chunk(s):
            return t[s["tensor"]][:, s["offset"]:s["offset"] + c][:, :, None, None]
        h = h * (1 + chunk(mod["scale"])) + chunk(mod["shift"])
    return F.gelu(h) if spec["act"] == "gelu" else F.silu(h) if spec["act"] == "silu" else h


# ----- cases ---------------------------------------------------------------------------------------------
# Each builder returns (input tensors, params, desc); FORWARD computes the expected output from them.

def conv3x3_case(gen, n, ci, co, h, w, bias, pre=None):
    t = {"x": image(gen, n, ci, h, w), "weight": nz(gen, co, ci, 3, 3, scale=(ci * 9) ** -0.5)}
    if bias:
        t["bias"] = nz(gen, co, scale=0.2)
    if pre:
        t.update(pre_inputs(gen, pre, n, ci))
    desc = f"conv3x3 {ci}->{co} on [{n},{ci},{h},{w}], {'bias' if bias else 'no bias'}"
    return t, {"bias": bias, "pre": pre}, desc + (f", pre-op {describe_pre(pre)}" if pre else "")


def describe_pre(p):
    parts = [f"{p['norm']} norm" + (f" ({p['groups']} groups)" if p["norm"] == "group" else "") + f" eps {p['eps']}"]
    if p["affine"]:
        parts.append("affine")
    if p.get("modulate"):
        m = p["modulate"]
        parts.append(f"modulate (scale {m['scale']['tensor']}@{m['scale']['offset']}, "
                     f"shift {m['shift']['tensor']}@{m['shift']['offset']})")
    parts.append({"gelu": "GELU", "silu": "SiLU"}.get(p["act"], "no activation"))
    return " + ".join(parts)


def normalize_case(gen, n, c, h, w, pre):
    t = {"x": image(gen, n, c, h, w)}
    t.update(pre_inputs(gen, pre, n, c))
    return t, {"pre": pre}, f"normalize [{n},{c},{h},{w}]: {describe_pre(pre)}"


def conv1x1_case(gen, n, ci, co, h, w, bias):
    t = {"x": image(gen, n, ci, h, w), "weight": nz(gen, co, ci, 1, 1, scale=ci ** -0.5)}
    if bias:
        t["bias"] = nz(gen, co, scale=0.2)
    return t, {"bias": bias}, f"conv1x1 {ci}->{co} on [{n},{ci},{h},{w}], {'bias' if bias else 'no bias'}"


def linear_case(gen, n, k, m, bias, act):
    t = {"x": nz(gen, n, k, scale=1.5, offset=0.3), "weight": nz(gen, m, k, scale=k ** -0.5)}
    if bias:
        t["bias"] = nz(gen, m, scale=0.2)
    return t, {"bias": bias, "act": act}, f"linear [{n},{k}] x [{m},{k}]^T, input act {act}, {'bias' if bias else 'no bias'}"


def gate_add_case(gen, n, c, h, w, gate_offset=None, k=None):
    t = {"h": image(gen, n, c, h, w), "residual": image(gen, n, c, h, w)}
    if gate_offset is None:
        return t, {"gate": None}, f"gateAdd [{n},{c},{h},{w}] without gate (h + residual)"
    t["cond"] = nz(gen, n, k, scale=0.7)
    return t, {"gate": {"tensor": "cond", "offset": gate_offset}}, \
        f"gateAdd [{n},{c},{h},{w}], gate = cond [{n},{k}] at channel offset {gate_offset}"


def add_case(gen, n, c, h, w):
    t = {"a": image(gen, n, c, h, w), "b": image(gen, n, c, h, w)}
    return t, {}, f"add [{n},{c},{h},{w}]"


def gather_case(gen, v, d, ids):
    t = {"table": nz(gen, v, d), "ids": torch.tensor(ids, dtype=torch.int64)}
    return t, {"ids": ids}, f"gather rows {ids} of a [{v},{d}] table"


def shuffle_case(gen, n, c, h, w, r):
    return {"x": image(gen, n, c, h, w)}, {"r": r}, f"pixelShuffle r={r}: [{n},{c},{h},{w}] -> [{n},{c // (r * r)},{h * r},{w * r}]"


def unshuffle_case(gen, n, c, h, w, r):
    return {"x": image(gen, n, c, h, w)}, {"r": r}, f"pixelUnshuffle r={r}: [{n},{c},{h},{w}] -> [{n},{c * r * r},{h // r},{w // r}]"


def concat_case(gen, n, ca, cb, h, w):
    t = {"a": image(gen, n, ca, h, w), "b": image(gen, n, cb, h, w)}
    return t, {}, f"concat [{n},{ca},{h},{w}] + [{n},{cb},{h},{w}]"


def upsample_case(gen, n, c, h, w, r):
    return {"x": image(gen, n, c, h, w)}, {"r": r}, f"upsampleNearest r={r}: [{n},{c},{h},{w}] -> [{n},{c},{h * r},{w * r}]"


def attention_case(gen, n, c, h, w):
    # Scores of a few units, as in a trained VAE's mid block, so the softmax is neither flat nor one-hot.
    t = {k: image(gen, n, c, h, w) * (0.6 if k != "v" else 1.0) for k in ("q", "k", "v")}
    return t, {}, f"attention over [{n},{c},{h},{w}] ({h * w} tokens of dim {c})"


def _attention(t, p):
    n, c, h, w = t["q"].shape
    q, k, v = (t[x].reshape(n, c, h * w).transpose(1, 2) for x in ("q", "k", "v"))
    a = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, dim=-1)
    return (a @ v).transpose(1, 2).reshape(n, c, h, w)


def _gate_add(t, p):
    if p["gate"] is None:
        return t["h"] + t["residual"]
    g, o, c = t[p["gate"]["tensor"]], p["gate"]["offset"], t["h"].shape[1]
    return g[:, o:o + c][:, :, None, None] * t["h"] + t["residual"]


# The PyTorch definition of each op: (inputs, params) -> expected output.
FORWARD = {
    "conv3x3": lambda t, p: F.conv2d(apply_pre(t["x"], p["pre"], t) if p["pre"] else t["x"], t["weight"], t.get("bias"),
                                     padding=1),
    "normalize": lambda t, p: apply_pre(t["x"], p["pre"], t),
    "conv1x1": lambda t, p: F.conv2d(t["x"], t["weight"], t.get("bias")),
    "linear": lambda t, p: F.linear(F.silu(t["x"]) if p["act"] == "silu" else t["x"], t["weight"], t.get("bias")),
    "gateAdd": _gate_add,
    "add": lambda t, p: t["a"] + t["b"],
    "gather": lambda t, p: t["table"][t["ids"]],
    "pixelShuffle": lambda t, p: F.pixel_shuffle(t["x"], p["r"]),
    "pixelUnshuffle": lambda t, p: F.pixel_unshuffle(t["x"], p["r"]),
    "concat": lambda t, p: torch.cat([t["a"], t["b"]], 1),
    "upsampleNearest": lambda t, p: F.interpolate(t["x"], scale_factor=p["r"], mode="nearest"),
    "attention": _attention,
}


def gn(c, g, **kw):
    return pre_spec("group", c, groups=g, **kw)


def ln(c, **kw):
    return pre_spec("layer", c, **kw)


# (op, case name, builder, args). Names: c<channels>[g<groups>]_<H>x<W>_n<batch>.
CASES = [
    ("conv3x3", "c3_to_c5_1x1_n1_bias", conv3x3_case, (1, 3, 5, 1, 1, True)),
    ("conv3x3", "c5_to_c6_3x3_n3", conv3x3_case, (3, 5, 6, 3, 3, False)),
    ("conv3x3", "c6_to_c10_7x7_n1_bias", conv3x3_case, (1, 6, 10, 7, 7, True)),
    ("conv3x3", "c10_to_c18_9x9_n3_bias", conv3x3_case, (3, 10, 18, 9, 9, True)),
    ("conv3x3", "c8_to_c8_5x12_n1", conv3x3_case, (1, 8, 8, 5, 12, False)),
    ("conv3x3", "c32_to_c32_8x8_n3_bias", conv3x3_case, (3, 32, 32, 8, 8, True)),
    ("conv3x3", "c96_to_c32_7x7_n1_bias", conv3x3_case, (1, 96, 32, 7, 7, True)),
    ("conv3x3", "c32_to_c96_3x3_n3", conv3x3_case, (3, 32, 96, 3, 3, False)),
    ("conv3x3", "gn_gelu_c10g2_9x9_n3", conv3x3_case, (3, 10, 6, 9, 9, True, gn(10, 2))),
    ("conv3x3", "gn_gelu_c6g3_1x1_n1", conv3x3_case, (1, 6, 5, 1, 1, True, gn(6, 3))),
    ("conv3x3", "gn_affine_gelu_c32g8_5x12_n1", conv3x3_case, (1, 32, 18, 5, 12, True, gn(32, 8, affine=True))),
    ("conv3x3", "gn_affine_gelu_c18g6_3x3_n3", conv3x3_case, (3, 18, 10, 3, 3, False, gn(18, 6, affine=True))),
    ("conv3x3", "gn_affine_mod_gelu_c8g2_7x7_n3", conv3x3_case,
     (3, 8, 8, 7, 7, True, gn(8, 2, affine=True, modulate="block"))),
    ("conv3x3", "gn_affine_mod_gelu_c5g5_5x12_n1", conv3x3_case,
     (1, 5, 3, 5, 12, False, gn(5, 5, affine=True, modulate="block"))),
    ("conv3x3", "gn_affine_mod_gelu_c96g24_3x3_n3", conv3x3_case,
     (3, 96, 96, 3, 3, True, gn(96, 24, affine=True, modulate="block"))),
    ("conv3x3", "gn_affine_mod_gelu_split_c10g2_9x9_n1", conv3x3_case,
     (1, 10, 10, 9, 9, True, gn(10, 2, affine=True, modulate="split"))),
    ("conv3x3", "gn_mod_none_c6g2_9x9_n3", conv3x3_case, (3, 6, 6, 9, 9, True, gn(6, 2, modulate="block", act="none"))),
    ("conv3x3", "ln_mod_c3_7x7_n3", conv3x3_case, (3, 3, 6, 7, 7, True, ln(3, modulate="head", act="none"))),
    ("conv3x3", "ln_mod_c32_5x12_n1", conv3x3_case, (1, 32, 8, 5, 12, True, ln(32, modulate="head", act="none"))),
    ("conv3x3", "ln_mod_c96_1x1_n3", conv3x3_case, (3, 96, 5, 1, 1, False, ln(96, modulate="head", act="none"))),
    ("conv3x3", "ln_affine_gelu_c10_3x3_n1", conv3x3_case, (1, 10, 3, 3, 3, True, ln(10, affine=True))),
    ("normalize", "gn_gelu_c10g2_9x9_n3", normalize_case, (3, 10, 9, 9, gn(10, 2))),
    ("normalize", "gn_gelu_c6g3_1x1_n1", normalize_case, (1, 6, 1, 1, gn(6, 3))),
    ("normalize", "gn_affine_gelu_c32g8_5x12_n3", normalize_case, (3, 32, 5, 12, gn(32, 8, affine=True))),
    ("normalize", "gn_affine_mod_gelu_c18g6_7x7_n3", normalize_case,
     (3, 18, 7, 7, gn(18, 6, affine=True, modulate="block"))),
    ("normalize", "gn_affine_mod_gelu_c96g24_3x3_n1", normalize_case,
     (1, 96, 3, 3, gn(96, 24, affine=True, modulate="block"))),
    ("normalize", "gn_mod_none_split_c8g4_5x12_n1", normalize_case,
     (1, 8, 5, 12, gn(8, 4, modulate="split", act="none"))),
    ("normalize", "ln_mod_c3_7x7_n3", normalize_case, (3, 3, 7, 7, ln(3, modulate="head", act="none"))),
    ("normalize", "ln_mod_c96_5x12_n1", normalize_case, (1, 96, 5, 12, ln(96, modulate="head", act="none"))),
    ("normalize", "ln_affine_gelu_c5_1x1_n3", normalize_case, (3, 5, 1, 1, ln(5, affine=True))),
    ("conv1x1", "c3_to_c5_1x1_n1_bias", conv1x1_case, (1, 3, 5, 1, 1, True)),
    ("conv1x1", "c18_to_c6_7x7_n3_bias", conv1x1_case, (3, 18, 6, 7, 7, True)),
    ("conv1x1", "c96_to_c32_5x12_n1", conv1x1_case, (1, 96, 32, 5, 12, False)),
    ("conv1x1", "c10_to_c10_9x9_n3_bias", conv1x1_case, (3, 10, 10, 9, 9, True)),
    ("conv1x1", "c32_to_c96_3x3_n1_bias", conv1x1_case, (1, 32, 96, 3, 3, True)),
    ("linear", "silu_n1_k256_m96_bias", linear_case, (1, 256, 96, True, "silu")),
    ("linear", "none_n3_k5_m18", linear_case, (3, 5, 18, False, "none")),
    ("linear", "silu_n3_k96_m288_bias", linear_case, (3, 96, 288, True, "silu")),
    ("linear", "none_n1_k3_m10_bias", linear_case, (1, 3, 10, True, "none")),
    ("linear", "silu_n3_k32_m64", linear_case, (3, 32, 64, False, "silu")),
    ("linear", "none_n3_k256_m32_bias", linear_case, (3, 256, 32, True, "none")),
    ("gateAdd", "gate0_c8_7x7_n3", gate_add_case, (3, 8, 7, 7, 0, 24)),
    ("gateAdd", "gate0_c5_5x12_n1", gate_add_case, (1, 5, 5, 12, 0, 15)),
    ("gateAdd", "gate0_c96_3x3_n3", gate_add_case, (3, 96, 3, 3, 0, 288)),
    ("gateAdd", "gate7_c6_9x9_n1", gate_add_case, (1, 6, 9, 9, 7, 20)),
    ("gateAdd", "gate18_c18_1x1_n3", gate_add_case, (3, 18, 1, 1, 18, 54)),
    ("gateAdd", "nogate_c10_9x9_n3", gate_add_case, (3, 10, 9, 9)),
    ("gateAdd", "nogate_c3_1x1_n1", gate_add_case, (1, 3, 1, 1)),
    ("add", "c3_1x1_n1", add_case, (1, 3, 1, 1)),
    ("add", "c10_9x9_n3", add_case, (3, 10, 9, 9)),
    ("add", "c32_5x12_n1", add_case, (1, 32, 5, 12)),
    ("add", "c96_3x3_n3", add_case, (3, 96, 3, 3)),
    ("add", "c6_7x7_n1", add_case, (1, 6, 7, 7)),
    ("gather", "v11_d96", gather_case, (11, 96, [10, 0, 3, 3])),
    ("gather", "v6_d5", gather_case, (6, 5, [5])),
    ("gather", "v1001_d32", gather_case, (1001, 32, [1000, 0, 999])),
    ("gather", "v3_d18", gather_case, (3, 18, [2, 1, 0, 1, 2])),
    ("pixelShuffle", "r2_c8_3x3_n1", shuffle_case, (1, 8, 3, 3, 2)),
    ("pixelShuffle", "r2_c12_5x7_n3", shuffle_case, (3, 12, 5, 7, 2)),
    ("pixelShuffle", "r2_c40_1x1_n1", shuffle_case, (1, 40, 1, 1, 2)),
    ("pixelShuffle", "r2_c128_4x4_n1", shuffle_case, (1, 128, 4, 4, 2)),
    ("pixelShuffle", "r3_c18_3x3_n3", shuffle_case, (3, 18, 3, 3, 3)),
    ("pixelShuffle", "r3_c27_1x1_n1", shuffle_case, (1, 27, 1, 1, 3)),
    ("pixelShuffle", "r3_c45_2x4_n1", shuffle_case, (1, 45, 2, 4, 3)),
    ("pixelUnshuffle", "r2_c3_6x6_n1", unshuffle_case, (1, 3, 6, 6, 2)),
    ("pixelUnshuffle", "r2_c5_4x12_n3", unshuffle_case, (3, 5, 4, 12, 2)),
    ("pixelUnshuffle", "r2_c32_2x2_n1", unshuffle_case, (1, 32, 2, 2, 2)),
    ("pixelUnshuffle", "r2_c10_8x8_n3", unshuffle_case, (3, 10, 8, 8, 2)),
    ("pixelUnshuffle", "r3_c2_9x9_n3", unshuffle_case, (3, 2, 9, 9, 3)),
    ("pixelUnshuffle", "r3_c3_6x9_n1", unshuffle_case, (1, 3, 6, 9, 3)),
    ("pixelUnshuffle", "r3_c6_3x3_n1", unshuffle_case, (1, 6, 3, 3, 3)),
    ("concat", "a3_b5_7x7_n1", concat_case, (1, 3, 5, 7, 7)),
    ("concat", "a32_b18_5x12_n3", concat_case, (3, 32, 18, 5, 12)),
    ("concat", "a96_b6_1x1_n1", concat_case, (1, 96, 6, 1, 1)),
    ("concat", "a8_b8_9x9_n3", concat_case, (3, 8, 8, 9, 9)),
    ("concat", "a10_b96_3x3_n3", concat_case, (3, 10, 96, 3, 3)),
    # The VAE decoder's pre-op: GroupNorm (eps 1e-6, affine) + SiLU.
    ("conv3x3", "gn_affine_silu_c10g2_9x9_n3", conv3x3_case, (3, 10, 6, 9, 9, True, gn(10, 2, affine=True, act="silu", eps=1e-6))),
    ("conv3x3", "gn_affine_silu_c96g32_5x12_n1", conv3x3_case,
     (1, 96, 18, 5, 12, True, gn(96, 32, affine=True, act="silu", eps=1e-6))),
    ("conv3x3", "gn_silu_c6g3_1x1_n1", conv3x3_case, (1, 6, 5, 1, 1, False, gn(6, 3, act="silu", eps=1e-6))),
    ("normalize", "gn_affine_silu_c18g6_7x7_n3", normalize_case, (3, 18, 7, 7, gn(18, 6, affine=True, act="silu", eps=1e-6))),
    ("normalize", "gn_affine_silu_c64g32_3x3_n1", normalize_case, (1, 64, 3, 3, gn(64, 32, affine=True, act="silu", eps=1e-6))),
    ("upsampleNearest", "r2_c3_1x1_n1", upsample_case, (1, 3, 1, 1, 2)),
    ("upsampleNearest", "r2_c10_5x7_n3", upsample_case, (3, 10, 5, 7, 2)),
    ("upsampleNearest", "r2_c96_4x4_n1", upsample_case, (1, 96, 4, 4, 2)),
    ("upsampleNearest", "r3_c5_3x2_n3", upsample_case, (3, 5, 3, 2, 3)),
    ("upsampleNearest", "r1_c6_3x3_n1", upsample_case, (1, 6, 3, 3, 1)),
    ("attention", "c3_1x1_n1", attention_case, (1, 3, 1, 1)),
    ("attention", "c10_5x7_n3", attention_case, (3, 10, 5, 7)),
    ("attention", "c32_9x9_n1", attention_case, (1, 32, 9, 9)),
    ("attention", "c96_3x3_n3", attention_case, (3, 96, 3, 3)),
    ("attention", "c5_8x8_n1", attention_case, (1, 5, 8, 8)),
    ("attention", "c128_6x6_n1", attention_case, (1, 128, 6, 6)),
]


def file_name(op):
    return f"ops_{op}.safetensors"


def write(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    ops = list(dict.fromkeys(op for op, *_ in CASES))
    for i, op in enumerate(ops):
        gen = torch.Generator().manual_seed(7000 + i)
        tensors, cases = {}, []
        for case_op, name, build, args in CASES:
            if case_op != op:
                continue
            with torch.no_grad():
                t, params, desc = build(gen, *args)
                out = FORWARD[op](t, params)
                # How far torch's own fp32 result is from an fp64 evaluation: the floor of any comparison.
                out64 = FORWARD[op]({k: v.double() if v.is_floating_point() else v for k, v in t.items()}, params)
                floor = ((out.double() - out64).norm() / out64.norm()).item()
            for k, v in list(t.items()) + [("out", out)]:
                if v.is_floating_point():
                    v = v.contiguous().float()
                    assert (v != 0).all() and torch.isfinite(v).all(), f"{op} {name}: {k} has zero or non-finite values"
                tensors[f"{name}.{k}"] = v
            cases.append({"name": name, "desc": desc, "params": params, "torchF32VsF64": floor})
        save_file(tensors, os.path.join(out_dir, file_name(op)), {"op": op, "cases": json.dumps(cases)})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 reference/fixtures_ops.py OUT_DIR")
    torch.set_num_threads(1)
    write(sys.argv[1])
    print(f"wrote {len(CASES)} op cases to {sys.argv[1]}")
