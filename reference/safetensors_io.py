"""Minimal safetensors reader/writer (the HF format: u64 LE header length, JSON header, raw LE data).

Debian ships no `safetensors` Python package, and the format is small enough to write directly.
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {
    torch.float32: ("F32", np.float32),
    torch.float16: ("F16", np.float16),
    torch.int64: ("I64", np.int64),
    torch.int32: ("I32", np.int32),
    torch.float64: ("F64", np.float64),
    torch.int8: ("I8", np.int8),
}
_NP = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "F64": np.float64, "I8": np.int8}


def _bytes_of(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return "BF16", t.view(torch.int16).numpy().tobytes()
    name, npt = _DTYPES[t.dtype]
    return name, t.numpy().astype(npt, copy=False).tobytes()


def save_file(tensors, path, metadata=None):
    """Write a dict name -> torch.Tensor; metadata values must be strings."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        dtype, raw = _bytes_of(tensors[name])
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for raw in blobs:
            f.write(raw)


def load_file(path):
    """Read a safetensors file into (dict name -> torch.Tensor, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        if info["dtype"] == "BF16":
            arr = np.frombuffer(raw, dtype=np.int16).copy()
            out[name] = torch.from_numpy(arr).view(torch.bfloat16).reshape(info["shape"])
        else:
            arr = np.frombuffer(raw, dtype=_NP[info["dtype"]]).copy()
            out[name] = torch.from_numpy(arr).reshape(info["shape"])
    return out, meta
