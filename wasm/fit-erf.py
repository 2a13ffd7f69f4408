"""Fits the rational erf of wasm/assembly/gelu.ts and prints its coefficients (run: /usr/bin/python3 wasm/fit-erf.py).

erf(z) ~= z * P(z^2) / Q(z^2) on 0 <= z <= 3.925 (beyond, erf rounds to 1 in f32), P and Q of degree 5, Q(0) = 1,
fitted for minimum relative error by linearised least squares with Lawson reweighting (double precision,
relative error 1.9e-8). gelu.ts uses it as GELU(x) = x * (1/2 + x P2(x^2) / Q2(x^2)), with the 1/sqrt(2) of
erf(x / sqrt 2) and the 1/2 folded into P2 and Q2 (printed below), and checks it in f32 here as in the kernel.
"""
import math

import numpy as np

C = 3.925


def target(t):  # erf(x) / x with x = sqrt(t)
    x = np.sqrt(t)
    out = np.full_like(t, 2 / math.sqrt(math.pi))
    nz = x > 1e-8
    out[nz] = np.array([math.erf(v) for v in x[nz]]) / x[nz]
    return out


def fit(p, q, iters=30, n=4000):
    x = C * (1 - np.cos(np.linspace(0, math.pi, n))) / 2
    t = x * x
    f = target(t)
    w = np.ones(n)
    q_prev = np.ones(n)
    for _ in range(iters):
        a = np.hstack([np.vstack([t**i for i in range(p + 1)]).T, -(f[:, None]) * np.vstack([t**i for i in range(1, q + 1)]).T])
        wt = w / (np.abs(f) * np.abs(q_prev))
        sol, *_ = np.linalg.lstsq(a * wt[:, None], f * wt, rcond=None)
        pc, qc = sol[: p + 1], np.concatenate([[1.0], sol[p + 1:]])
        q_prev = np.polyval(qc[::-1], t)
        err = (np.polyval(pc[::-1], t) / q_prev - f) / f
        w = w * (np.abs(err) / np.abs(err).max()) ** 0.5 + 1e-12
        w /= w.sum() / n
    return pc, qc, np.abs(err).max()


def main():
    pc, qc, e = fit(5, 5)
    p2 = [np.float32(v / 2**k * 0.5 / math.sqrt(2)) for k, v in enumerate(pc)]
    q2 = [np.float32(v / 2**k) for k, v in enumerate(qc)]
    clamp = np.float32(C * math.sqrt(2))
    print(f"fit relative error {e:.2e}")
    print("P2", [repr(float(v)) for v in p2])
    print("Q2", [repr(float(v)) for v in q2])
    print("clamp", repr(float(clamp)))

    f32 = np.float32

    def gelu32(x):  # the kernel's arithmetic (Estrin), in f32
        xc = np.minimum(np.maximum(x, -clamp), clamp)
        s = xc * xc
        s2, s4 = s * s, (s * s) * (s * s)
        p = (p2[5] * s + p2[4]) * s4 + ((p2[3] * s + p2[2]) * s2 + (p2[1] * s + p2[0]))
        q = (q2[5] * s + q2[4]) * s4 + ((q2[3] * s + q2[2]) * s2 + (q2[1] * s + q2[0]))
        return x * np.maximum(f32(0.5) + (xc * p) / q, f32(0))

    ref = lambda v: np.array([0.5 * u * (1 + math.erf(u / math.sqrt(2))) for u in v.astype(np.float64)])
    xs = np.linspace(-8, 8, 400001).astype(f32)
    print("max |error| / max(1, |x|) on [-8, 8]:", (np.abs(gelu32(xs) - ref(xs)) / np.maximum(1, np.abs(xs))).max())
    r = (np.random.default_rng(0).standard_normal(300000) * 2).astype(f32)
    print("relative L2 on N(0, 4):", np.linalg.norm(gelu32(r) - ref(r)) / np.linalg.norm(ref(r)))


if __name__ == "__main__":
    main()
