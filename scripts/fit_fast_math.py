#!/usr/bin/python3
"""Coefficients of xloss's vectorised log (include/xloss/detail/kernels/fast_math.hpp).

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


# The AVX-512 variant: x = 2^k z, z in [OFF, 2 OFF) split into 16 intervals by the top 4 bits of
# its mantissa; in interval i, log z = log c_i + log1p(r) with r = z / c_i - 1, |r| < 0.0297.
# invc[i] = 1/c_i rounded to float (1 exactly in the interval holding 1, so log(1) = 0), and
# logc[i] = -log(invc[i]), so that the rounding of 1/c_i costs nothing.
LOG_TABLE_OFFSET = 0x3F330000


def log_table():
    import struct

    def from_bits(b):
        return struct.unpack("f", struct.pack("I", b))[0]

    def to_float(v):
        return struct.unpack("f", struct.pack("f", v))[0]

    invc, logc, rmin, rmax = [], [], 0.0, 0.0
    for i in range(16):
        a = from_bits(LOG_TABLE_OFFSET + i * (1 << 19))
        b = from_bits(LOG_TABLE_OFFSET + (i + 1) * (1 << 19))
        ic = 1.0 if a <= 1.0 < b else to_float(2.0 / (a + b))
        invc.append(ic)
        logc.append(float(-mp.log(mp.mpf(ic))))
        rmin, rmax = min(rmin, a * ic - 1), max(rmax, b * ic - 1)
    return invc, logc, rmin, rmax


def print_log_table():
    invc, logc, rmin, rmax = log_table()
    print(f"log table: invc, logc (r in [{rmin:.6f}, {rmax:.6f}]):")
    print(", ".join(as_float_hex(v) for v in invc))
    print(", ".join(as_float_hex(v) for v in logc))
    print("log1p(r) = r + r^2 Q(r), Q degree 2:")
    print(",\n".join(as_float_hex(c) for c in fit(q, mp.mpf(rmin), mp.mpf(rmax), 2)))


if __name__ == "__main__":
    print_log_table()


# The vectorised float exp: x = k ln2 + r, |r| <= ln2 / 2, e^x = 2^k (1 + r + r^2 P(r)).
def p_exp(r):
    return mp.mpf(0.5) if r == 0 else (mp.expm1(r) - r) / r**2


def print_exp():
    half = mp.log(2) / 2
    print("exp P(r), degree 4 on [-ln2/2, ln2/2]:")
    print(",\n".join(as_float_hex(c) for c in fit(p_exp, -half, half, 4)))
    # ln2's high part with 15 significant bits: k hi is exact for |k| <= 2^8 without a fused multiply-add.
    ln2 = mp.log(2)
    hi = float(mp.floor(ln2 * 2**15) / 2**15)
    print("ln2 hi, lo:", as_float_hex(hi), as_float_hex(float(ln2 - mp.mpf(hi))))


def as_float_value(v):
    import struct
    return struct.unpack("f", struct.pack("f", v))[0]


if __name__ == "__main__":
    print_exp()


# The AVX-512 double log: as the float table log, with the top 4 bits of a double's mantissa, 16
# entries in two registers (vpermt2pd), and Q of a higher degree for double's precision.
DOUBLE_LOG_TABLE_OFFSET = 0x3FE6600000000000


def double_log_table():
    import struct

    def from_bits(b):
        return struct.unpack("d", struct.pack("Q", b))[0]

    invc, logc, rmin, rmax = [], [], 0.0, 0.0
    for i in range(16):
        a = from_bits(DOUBLE_LOG_TABLE_OFFSET + i * (1 << 48))
        b = from_bits(DOUBLE_LOG_TABLE_OFFSET + (i + 1) * (1 << 48))
        ic = 1.0 if a <= 1.0 < b else 2.0 / (a + b)
        invc.append(ic)
        logc.append(float(-mp.log(mp.mpf(ic))))
        rmin, rmax = min(rmin, a * ic - 1), max(rmax, b * ic - 1)
    return invc, logc, rmin, rmax


def print_double_log_table(degree=8):
    invc, logc, rmin, rmax = double_log_table()
    print(f"double log table: invc, logc (r in [{rmin:.6f}, {rmax:.6f}]):")
    print(", ".join(v.hex() for v in invc))
    print(", ".join(v.hex() for v in logc))
    print(f"log1p(r) = r + r^2 Q(r), Q degree {degree}:")
    print(",\n".join(c.hex() for c in fit(q, mp.mpf(rmin), mp.mpf(rmax), degree)))


if __name__ == "__main__":
    print_double_log_table()
