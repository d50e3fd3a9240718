#!/usr/bin/python3
"""Coefficients of xloss's vectorised log (include/xloss/detail/fast_math.hpp).

Near-minimax Chebyshev fits computed with mpmath at 40 digits (Debian's
python3-mpmath), rounded to float; tests/test_fast_math.cpp measures the resulting ulp error.

  log(x) = k ln2 + log1p(r),  r = z - 1 in [-1/3, 1/3),  log1p(r) = r + r^2 Q(r)

Prints the coefficients, highest degree first, as C99 hex floats.
"""
import mpmath as mp

mp.mp.dps = 40


def q(r):
    return mp.mpf(-0.5) if r == 0 else (mp.log1p(r) - r) / r**2


def fit(f, lo, hi, degree):
    poly = mp.chebyfit(f, [lo, hi], degree + 1)
    return [float(mp.mpf(float(mp.nstr(c, 30)))) for c in poly]


def as_float_hex(v):
    import struct
    mantissa, exponent = struct.unpack("f", struct.pack("f", v))[0].hex().split("p")
    return mantissa.rstrip("0").rstrip(".") + "p" + exponent + "f"


if __name__ == "__main__":
    print("log Q(r), degree 8 on [-1/3, 1/3]:")
    print(",\n".join(as_float_hex(c) for c in fit(q, -mp.mpf(1) / 3, mp.mpf(1) / 3, 8)))
