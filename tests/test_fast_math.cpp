// The vectorised log and exp of the float kernels: their error in ulp against the C
// library's double-precision log and exp, and their special values.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "catch_compat.hpp"

#include <xloss/detail/kernels/fast_math.hpp>

#include "test_helpers.hpp"

#if XLOSS_USE_SIMD

namespace
{
    using batch = xsimd::batch<float>;

    float from_bits(std::uint32_t u)
    {
        float f;
        std::memcpy(&f, &u, sizeof f);
        return f;
    }

    /// The value of a float's bits as a double, a subnormal one through its integer bits: under
    /// flush-to-zero (a -ffast-math program) converting it as a float would read 0.
    double value_of(std::uint32_t u)
    {
        const std::uint32_t e = (u >> 23) & 0xffu;
        if (e != 0)
        {
            return static_cast<double>(from_bits(u));
        }
        const double v = std::ldexp(static_cast<double>(u & 0x7fffffu), -149);
        return (u >> 31) != 0 ? -v : v;
    }

    /// |y - exact| in units of the float spacing at exact.
    double ulp_error(float y, double exact)
    {
        const float e = static_cast<float>(exact);
        if (xloss_test::is_inf(e))
        {
            // Beyond FLT_MAX only +inf is right.
            return y == e ? 0. : std::numeric_limits<double>::infinity();
        }
        const double spacing = static_cast<double>(std::nextafter(std::abs(e), std::numeric_limits<float>::infinity()))
                               - static_cast<double>(std::abs(e));
        return std::abs(static_cast<double>(y) - exact) / spacing;
    }

    struct error_report
    {
        double worst = 0;
        double at = 0;
        std::uint64_t count = 0;
    };

    /// Runs f over the float bit patterns [first, last) by stride, a batch at a time.
    template <class F, class R>
    error_report measure(std::uint32_t first, std::uint64_t last, std::uint32_t stride, F f, R reference)
    {
        error_report rep;
        alignas(64) float in[batch::size];
        alignas(64) float out[batch::size];
        std::uint32_t in_bits[batch::size];
        std::uint64_t u = first;
        while (u < last)
        {
            std::size_t m = 0;
            for (; m < batch::size && u < last; ++m, u += stride)
            {
                in_bits[m] = static_cast<std::uint32_t>(u);
                in[m] = from_bits(in_bits[m]);
            }
            for (std::size_t j = m; j < batch::size; ++j)
            {
                in[j] = 1.f;
            }
            f(batch::load_aligned(in)).store_aligned(out);
            for (std::size_t j = 0; j < m; ++j)
            {
                const double e = ulp_error(out[j], reference(value_of(in_bits[j])));
                ++rep.count;
                if (!(e <= rep.worst))
                {
                    rep.worst = e;
                    rep.at = in[j];
                }
            }
        }
        return rep;
    }

    const auto log_ref = [](double v)
    {
        return std::log(v);
    };
    const auto fast_log = [](const batch& b)
    {
        return xloss::detail::fast_log(b);
    };
}

TEST_CASE("fast_log: at most 2 ulp on a sample of all positive floats", "[fast_math]")
{
    // Every 61st bit pattern from the smallest subnormal to the largest float: 35 million values.
    const auto rep = measure(1u, 0x7f800000u, 61, fast_log, log_ref);
    INFO("worst " << rep.worst << " ulp at " << rep.at << " over " << rep.count << " values");
    CHECK(rep.count > 30000000);
    CHECK(rep.worst <= 2.0);
    // Around 1, where log is tiny and relative accuracy matters most.
    const auto near_one = measure(0x3f700000u, 0x3f880000u, 1, fast_log, log_ref);
    CHECK(near_one.worst <= 2.0);
}

TEST_CASE("fast_log: special values", "[fast_math]")
{
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float denorm_min = std::numeric_limits<float>::denorm_min();
    auto log1 = [](float v)
    {
        return xloss::detail::fast_log(batch(v)).get(0);
    };
    CHECK(log1(0.f) == -inf);
    CHECK(log1(-0.f) == -inf);
    CHECK(xloss_test::is_nan(log1(-1.f)));
    CHECK(xloss_test::is_nan(log1(-inf)));
    CHECK(xloss_test::is_nan(log1(nan)));
    CHECK(log1(inf) == inf);
    CHECK(log1(1.f) == 0.f);
    CHECK(log1(denorm_min) == Approx(std::log(double(denorm_min))).epsilon(1e-7));
}

#if XSIMD_WITH_AVX512DQ
TEST_CASE("log_normal (AVX-512 table log): at most 2 ulp on a sample of all positive normal floats", "[fast_math]")
{
    const auto table_log = [](const batch& b)
    {
        return xloss::detail::log_normal(b);
    };
    const auto rep = measure(0x00800000u, 0x7f800000u, 61, table_log, log_ref);
    INFO("worst " << rep.worst << " ulp at " << rep.at << " over " << rep.count << " values");
    CHECK(rep.worst <= 2.0);
    CHECK(measure(0x3f700000u, 0x3f880000u, 1, table_log, log_ref).worst <= 2.0);
    CHECK(xloss::detail::log_normal(batch(1.f)).get(0) == 0.f);
}

namespace
{
    using dbatch = xsimd::batch<double>;

    /// |y - exact| in units of the double spacing at exact.
    double ulp_error_d(double y, long double exact)
    {
        const double e = static_cast<double>(exact);
        const long double spacing =
            static_cast<long double>(std::nextafter(std::abs(e), std::numeric_limits<double>::infinity()))
            - static_cast<long double>(std::abs(e));
        return static_cast<double>(std::abs(static_cast<long double>(y) - exact) / spacing);
    }

    /// The double table log's worst error over `count` doubles from `next` (bit patterns), against
    /// the C library's long-double log (64-bit mantissa: far below a double's ulp).
    template <class Next>
    error_report measure_log_d(std::size_t count, Next next)
    {
        error_report rep;
        alignas(64) double in[dbatch::size];
        alignas(64) double out[dbatch::size];
        for (std::size_t i = 0; i < count; i += dbatch::size)
        {
            for (std::size_t j = 0; j < dbatch::size; ++j)
            {
                in[j] = next();
            }
            xloss::detail::log_normal(dbatch::load_aligned(in)).store_aligned(out);
            for (std::size_t j = 0; j < dbatch::size; ++j)
            {
                const double e = ulp_error_d(out[j], std::log(static_cast<long double>(in[j])));
                ++rep.count;
                if (!(e <= rep.worst))
                {
                    rep.worst = e;
                    rep.at = in[j];
                }
            }
        }
        return rep;
    }
}

TEST_CASE("log_normal (AVX-512 double table log): at most 2 ulp on samples of the positive normal doubles",
          "[fast_math]")
{
    std::mt19937_64 rng(20261123);
    // Every binade: random bit patterns of the positive normal doubles.
    std::uniform_int_distribution<std::uint64_t> normal_bits(0x0010000000000000u, 0x7fefffffffffffffu);
    const auto all = measure_log_d(8000000,
                                   [&]
                                   {
                                       const std::uint64_t u = normal_bits(rng);
                                       double d;
                                       std::memcpy(&d, &u, sizeof d);
                                       return d;
                                   });
    INFO("all binades: worst " << all.worst << " ulp at " << all.at << " over " << all.count << " values");
    CHECK(all.worst <= 2.0);
    // Near 1, where log is small and the table's intervals next to 1 leave the largest relative error,
    // and across the 16 intervals of [0x1.66p-1, 0x1.66p+0).
    std::uniform_real_distribution<double> near_one(0.6, 1.5);
    const auto one = measure_log_d(8000000,
                                   [&]
                                   {
                                       return near_one(rng);
                                   });
    INFO("[0.6, 1.5]: worst " << one.worst << " ulp at " << one.at << " over " << one.count << " values");
    CHECK(one.worst <= 2.0);
    std::uniform_real_distribution<double> closest(-0x1p-20, 0x1p-20);
    CHECK(measure_log_d(1000000,
                        [&]
                        {
                            return 1.0 + closest(rng);
                        })
              .worst
          <= 2.0);
    CHECK(xloss::detail::log_normal(dbatch(1.)).get(0) == 0.);
    CHECK(xloss::detail::log_normal(dbatch(std::numeric_limits<double>::max())).get(0)
          == Approx(std::log(std::numeric_limits<double>::max())).epsilon(1e-15));
    CHECK(xloss::detail::log_normal(dbatch(std::numeric_limits<double>::min())).get(0)
          == Approx(std::log(std::numeric_limits<double>::min())).epsilon(1e-15));
}

TEST_CASE("log_normal: exhaustive over every positive normal float", "[.][long][fast_math]")
{
    const auto table_log = [](const batch& b)
    {
        return xloss::detail::log_normal(b);
    };
    const auto rep = measure(0x00800000u, 0x7f800000u, 1, table_log, log_ref);
    WARN("log_normal: worst " << rep.worst << " ulp at " << rep.at << " over " << rep.count << " values");
    CHECK(rep.worst <= 2.0);
}
#endif

namespace
{
    const auto exp_ref = [](double v)
    {
        return std::exp(v);
    };
    const auto exp_normal = [](const batch& b)
    {
        return xloss::detail::exp_normal(b);
    };

    std::uint32_t bits_of(float f)
    {
        std::uint32_t u;
        std::memcpy(&u, &f, sizeof u);
        return u;
    }

    /// exp_normal's worst error over its range [exp_normal_lo, exp_normal_hi], every stride-th float.
    error_report exp_normal_error(std::uint32_t stride)
    {
        // The negative arguments are the bit patterns from -0 up to lo's, the positive ones 0 to hi's.
        const error_report neg =
            measure(0x80000000u, std::uint64_t(bits_of(xloss::detail::exp_normal_lo)) + 1, stride, exp_normal, exp_ref);
        error_report pos =
            measure(0u, std::uint64_t(bits_of(xloss::detail::exp_normal_hi)) + 1, stride, exp_normal, exp_ref);
        pos.count += neg.count;
        if (!(neg.worst <= pos.worst))
        {
            pos.worst = neg.worst;
            pos.at = neg.at;
        }
        return pos;
    }
}

TEST_CASE("exp_normal: at most 2 ulp on a sample of its range, exact at 0 and where the softmax uses it", "[fast_math]")
{
    const auto rep = exp_normal_error(61);
    INFO("worst " << rep.worst << " ulp at " << rep.at << " over " << rep.count << " values");
    CHECK(rep.count > 35000000);
    CHECK(rep.worst <= 2.0);
    // Around 0, where e^x is near 1.
    CHECK(measure(0xbd800000u, 0xbe000000u, 1, exp_normal, exp_ref).worst <= 2.0);
    CHECK(measure(0x3d800000u, 0x3e000000u, 1, exp_normal, exp_ref).worst <= 2.0);
    CHECK(xloss::detail::exp_normal(batch(0.f)).get(0) == 1.f);
    CHECK(xloss::detail::exp_normal(batch(-0.f)).get(0) == 1.f);
    // The float softmax's exp: exp_normal in range, 0 for -inf, NaN kept, the limits elsewhere.
    const float inf = std::numeric_limits<float>::infinity();
    alignas(64) float in[batch::size], out[batch::size];
    for (std::size_t j = 0; j < batch::size; ++j)
    {
        in[j] = j % 2 ? -inf : -0.25f * float(j);
    }
    xloss::detail::exp_nonpositive(batch::load_aligned(in)).store_aligned(out);
    for (std::size_t j = 0; j < batch::size; ++j)
    {
        CHECK(out[j] == (j % 2 ? 0.f : xloss::detail::exp_normal(batch(in[j])).get(0)));
    }
    in[0] = -100.f;
    in[2] = std::numeric_limits<float>::quiet_NaN();
    xloss::detail::exp_nonpositive(batch::load_aligned(in)).store_aligned(out);
    // 3.7e-44, or 0 where xsimd or flush-to-zero flushes subnormal results (the bound is normal).
    CHECK(out[0] >= 0.f);
    CHECK(out[0] < 1e-37f);
    CHECK(xloss_test::is_nan(out[2]));
    // Either side of the fast path's bound |x| <= 86.3365 (log-probabilities may be positive).
    const float limit = xloss::detail::exp_plain_limit<float>();
    for (const float x : {limit, std::nextafter(limit, inf), 87.f, -limit, std::nextafter(-limit, -inf), -87.f})
    {
        const float e = xloss::detail::exp_nonpositive(batch(x)).get(0);
        const double ref = std::exp(static_cast<double>(x));
        INFO("x = " << x << ": " << e << " against " << ref);
        if (ref >= static_cast<double>(std::numeric_limits<float>::min()))
        {
            CHECK(std::abs(e - ref) <= 4 * std::numeric_limits<float>::epsilon() * ref);
        }
        else
        {
            CHECK(e >= 0.f);
            CHECK(e < 1e-37f);
        }
    }
}

TEST_CASE("exp_normal: exhaustive over its range", "[.][long][fast_math]")
{
    const auto rep = exp_normal_error(1);
    WARN("exp_normal: worst " << rep.worst << " ulp at " << rep.at << " over " << rep.count << " values");
    CHECK(rep.worst <= 2.0);
}

TEST_CASE("fast_log: exhaustive over every positive float", "[.][long][fast_math]")
{
    const auto rep = measure(1u, 0x7f800000u, 1, fast_log, log_ref);
    WARN("fast_log: worst " << rep.worst << " ulp at " << rep.at << " over " << rep.count << " values");
    CHECK(rep.count == 0x7f7fffffu);
    CHECK(rep.worst <= 2.0);
}

#endif
