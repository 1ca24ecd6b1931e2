"""The coefficients of codegen's erf (compiler/codegen/math.c, emit_erf): least-squares fits in
double, on Chebyshev-spaced points, of erf(x)/x as a polynomial in x^2 on [0, 0.921875]
(weighted for relative error) and of log(erfc(x)) as a polynomial in x on [0.921875, 4].
Prints them highest degree first, then the worst error of the float32 evaluation over [-6, 6]
(float32 Horner steps, as the generated code).  Run: /usr/bin/python3 tests/tools/erf_fit.py"""
import math

import numpy as np

SPLIT, TOP = 0.921875, 4.0
erf = np.vectorize(math.erf)
erfc = np.vectorize(math.erfc)


def chebyshev_points(lo, hi, n=4000):
    return np.cos(np.linspace(0, np.pi, n)) * (hi - lo) / 2 + (hi + lo) / 2


def fits():
    x = chebyshev_points(0, SPLIT)
    y = np.where(x == 0, 2 / math.sqrt(math.pi), erf(x) / np.where(x == 0, 1, x))
    v = np.vander(x * x, 7, increasing=True)
    p, *_ = np.linalg.lstsq(v / y[:, None], np.ones_like(y), rcond=None)
    x = chebyshev_points(SPLIT, TOP)
    q, *_ = np.linalg.lstsq(np.vander(x, 9, increasing=True), np.log(erfc(x)), rcond=None)
    return p[::-1], q[::-1]


def horner32(c, x):
    r = np.full_like(x, np.float32(c[0]))
    for k in c[1:]:
        r = (r * x + np.float32(k)).astype(np.float32)
    return r


def erf32(x, p, q):
    ax = np.abs(x)
    small = ax * horner32(p, ax * ax)
    big = np.float32(1) - np.exp(horner32(q, np.minimum(ax, np.float32(TOP)))).astype(np.float32)
    return np.copysign(np.where(ax < SPLIT, small, big), x)


if __name__ == "__main__":
    p, q = fits()
    print("p:", ", ".join("%.9e" % c for c in p))
    print("q:", ", ".join("%.9e" % c for c in q))
    x = np.linspace(-6, 6, 2000001).astype(np.float32)
    want = erf(x.astype(np.float64))
    err = np.abs(erf32(x, np.float32(p), np.float32(q)).astype(np.float64) - want)
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    print("max error %.3g, %.2f ulp" % (err.max(), (err / np.maximum(ulp, 1e-45)).max()))
