// libFuzzer target: decodes its input into shapes, broadcast patterns, layouts
// (contiguous, strided, lazy, mixed float/double), dtype, reduction, target space,
// target policy, grad_output and values (NaN, +-inf, +-0, subnormals, huge, tiny,
// negatives), then checks kl_div, kl_div_backward, kl_div_target_backward and the
// fused pass against an independent scalar reference in long double, and the SIMD
// kernels against the scalar kernels. Any mismatch aborts with a description.
//
//   make fuzz FUZZ_SECONDS=60     (clang's libFuzzer, with ASan and UBSan)

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(misc, xmanipulation.hpp)

#include <xloss/xloss.hpp>

#include "fuzz_common.hpp"

namespace
{
    using namespace xloss_fuzz;

    /// exp(t) * d with exp(t) in T's range, by its limit where it leaves it (xloss's semantics;
    /// `src` is the argument whose infinity makes d infinite).
    template <class T>
    ld exp_times(ld t, ld d, ld src)
    {
        const ld e = static_cast<ld>(static_cast<T>(std::exp(t)));
        if (std::isnan(d))
        {
            return d;
        }
        if (e == 0)
        {
            return std::isinf(src) ? d : 0;
        }
        return d == 0 ? 0 : e * d;
    }

    /// The reference: term, input gradient and target gradient (for g) of one element, with
    /// the magnitudes their rounding errors scale with.
    template <class T>
    struct reference
    {
        bool log_target;
        bool zero_policy;
        /// The largest intermediate of the last call: past T's range, T's arithmetic may overflow
        /// where the exact value does not (an order of operations), so the value is not compared.
        mutable ld peak = 0;

        /// A subnormal exp(t) carries an absolute error of up to half the smallest subnormal, times
        /// |d| in exp(t) * d: the magnitude must cover it.
        static ld flush_floor(ld d)
        {
            using lim = std::numeric_limits<T>;
            return std::abs(d) * static_cast<ld>(lim::denorm_min()) / static_cast<ld>(lim::epsilon());
        }

        ld log_of(ld t) const
        {
            return t < 0 || std::isnan(t) ? std::numeric_limits<ld>::quiet_NaN() : std::log(t);
        }

        ld term(ld x, ld t, ld& mag) const
        {
            if (log_target)
            {
                mag = std::exp(std::min<ld>(t, 11000)) * (std::abs(t) + std::abs(x))
                      + flush_floor(std::abs(t) + std::abs(x));
                peak = std::max(mag, std::abs(t) + std::abs(x));
                return t == -INFINITY && !std::isnan(x) ? 0 : exp_times<T>(t, t - x, x);
            }
            mag = std::abs(t) * (std::abs(log_of(t)) + std::abs(x));
            peak = std::max(mag, std::abs(x));
            if (zero_policy)
            {
                return t > 0 ? t * (std::log(t) - x) : 0;
            }
            return t == 0 && !std::isnan(x) ? 0 : t * (log_of(t) - x);
        }

        ld input_grad(ld t, ld g, ld& mag) const
        {
            if (log_target)
            {
                mag = std::exp(std::min<ld>(t, 11000)) * std::abs(g) + flush_floor(g);
                peak = mag;
                return t == -INFINITY ? 0 : -exp_times<T>(t, g, g);
            }
            mag = std::abs(t * g);
            peak = mag;
            if (zero_policy)
            {
                return t > 0 ? -t * g : 0;
            }
            return t == 0 ? 0 : -t * g;
        }

        ld target_grad(ld x, ld t, ld g, ld& mag) const
        {
            if (log_target)
            {
                mag = (std::exp(std::min<ld>(t, 11000)) * (std::abs(t) + std::abs(x) + 1)
                       + flush_floor(std::abs(t) + std::abs(x) + 1))
                      * std::abs(g);
                peak = std::max(mag, std::exp(std::min<ld>(t, 11000)) * (std::abs(t) + std::abs(x) + 1));
                return t == -INFINITY && !std::isnan(x) ? 0 : exp_times<T>(t, t - x + 1, x) * g;
            }
            mag = (std::abs(log_of(t)) + 1 + std::abs(x)) * std::abs(g);
            peak = std::max(mag, std::abs(x));
            if (zero_policy)
            {
                return t > 0 ? (std::log(t) + 1 - x) * g : 0;
            }
            return t == 0 && !std::isnan(x) ? 0 : (log_of(t) + 1 - x) * g;
        }
    };

    /// Sums of terms as the kernels see them: each term rounded to T, added exactly.
    struct sum_ref
    {
        ld value = 0;
        ld magnitude = 0;
        bool overflow = false; // partial sums of T may overflow where the exact sum does not

        template <class T>
        void add(ld v, ld mag, ld peak)
        {
            const ld rounded = static_cast<ld>(static_cast<T>(v));
            value += rounded;
            magnitude += std::abs(mag) + std::abs(rounded);
            const ld limit = static_cast<ld>(std::numeric_limits<T>::max()) / 4;
            overflow = overflow || magnitude > limit || peak > limit;
        }
    };

    template <class T>
    void check_sum(const std::string& what, T got, const sum_ref& s, ld divisor)
    {
        if (s.overflow && !std::isnan(s.value))
        {
            return;
        }
        check<T>(what, got, s.value / divisor, s.magnitude / divisor);
    }

    /// SIMD kernels against scalar kernels on the same contiguous data; mag(i) is the magnitude
    /// (and peak) the reference gives element i, which bounds the two paths' difference.
    template <class V, class Op, class Mag>
    void check_simd_against_scalar(const char* name, Op op, const std::vector<V>& x, const std::vector<V>& t, V g,
                                   Mag mag)
    {
        using batch = xloss::detail::default_batch<V>;
        const std::size_t n = x.size();
        std::vector<V> simd(n), scalar(n);
        xloss::detail::map<batch>(op, x.data(), t.data(), xloss::detail::scalar_arg<V>{g}, simd.data(), n);
        xloss::detail::map<V>(op, x.data(), t.data(), xloss::detail::scalar_arg<V>{g}, scalar.data(), n);
        for (std::size_t i = 0; i < n; ++i)
        {
            sum_ref one;
            ld peak = 0;
            const ld m = mag(i, peak);
            one.add<V>(static_cast<ld>(scalar[i]), m, peak);
            check_sum<V>(std::string("SIMD against scalar, ") + name + " at " + std::to_string(i), simd[i], one, 1);
        }
    }

    template <class XV, class TV>
    void run_case(byte_reader& in, std::uint8_t flags)
    {
        using V = xloss::detail::loss_value_t<xt::xarray<XV>, xt::xarray<TV>>;
        const bool log_target = flags & 2;
        const auto r = static_cast<xloss::reduction>((flags >> 2) & 3);
        const bool zero_policy = (flags >> 4) & 1;
        const int layout = (flags >> 5) & 3;

        // Shapes: a full shape, then input and target each broadcast from it.
        const std::size_t rank = in.next() % 4;
        shape_t full(rank);
        for (std::size_t k = 0; k < rank; ++k)
        {
            const std::uint8_t b = in.next();
            full[k] = b < 200 ? b % 5 : 17 + b % 24; // short axes, and some longer than a SIMD batch
        }
        auto derive = [&](std::uint8_t b)
        {
            shape_t s(full.begin() + static_cast<std::ptrdiff_t>(b % (rank + 1)), full.end());
            for (std::size_t k = 0; k < s.size(); ++k)
            {
                if ((b >> (2 + k)) & 1)
                {
                    s[k] = 1;
                }
            }
            return s;
        };
        const shape_t xs = derive(in.next()), ts = derive(in.next());
        if (numel(full) > 2048)
        {
            return;
        }
        xt::xarray<XV> x = xt::xarray<XV>::from_shape(xs);
        xt::xarray<TV> t = xt::xarray<TV>::from_shape(ts);
        for (auto& v : x)
        {
            v = decode_value<XV>(in);
        }
        for (auto& v : t)
        {
            v = decode_value<TV>(in);
        }
        shape_t bs;
        try
        {
            const auto b = xloss::detail::broadcast_shapes(xloss::detail::to_shape(xs), xloss::detail::to_shape(ts),
                                                           "fuzz", "input", "target");
            bs.assign(b.begin(), b.end());
        }
        catch (const std::invalid_argument&)
        {
            return; // cannot happen: both derive from `full`
        }
        const V g_scalar = decode_value<V>(in);
        g_context = "reduction " + std::string(xloss::to_string(r)) + (log_target ? ", log_target" : "")
                    + (zero_policy ? ", target_policy::zero" : "") + ", layout " + std::to_string(layout)
                    + ", grad_output " + std::to_string(static_cast<double>(g_scalar)) + "\n" + describe("input", x)
                    + describe("target", t);
        if (std::getenv("XLOSS_FUZZ_TRACE"))
        {
            std::fprintf(stderr, "%s", g_context.c_str());
        }
        const auto opts = xloss::kl_div_options(r, log_target)
                              .target_policy(zero_policy ? xloss::target_policy::zero : xloss::target_policy::pytorch);

        // The call under test, on the decoded layout.
        auto call = [&](auto&& f)
        {
            switch (layout)
            {
                case 1: // strided: transposed storage viewed back in place
                {
                    const xt::xarray<XV> xt_ = xt::transpose(x);
                    const xt::xarray<TV> tt_ = xt::transpose(t);
                    return f(xt::transpose(xt_), xt::transpose(tt_));
                }
                case 2: // lazy expressions
                    return f(xt::cast<XV>(x), xt::cast<TV>(t));
                default:
                    return f(x, t);
            }
        };
        const xt::xarray<V> loss = call(
            [&](const auto& a, const auto& b)
            {
                return xloss::kl_div(a, b, opts);
            });
        const xt::xarray<V> gx = call(
            [&](const auto& a, const auto& b)
            {
                return xloss::kl_div_backward(g_scalar, a, b, opts);
            });
        const xt::xarray<V> gt = call(
            [&](const auto& a, const auto& b)
            {
                return xloss::kl_div_target_backward(g_scalar, a, b, opts);
            });
        const auto fb = call(
            [&](const auto& a, const auto& b)
            {
                return xloss::kl_div_forward_backward(a, b, opts, true);
            });

        // The reference over the broadcast shape.
        const reference<V> ref{log_target, zero_policy};
        const std::size_t n = numel(bs);
        ld divisor = 1;
        if (r == xloss::reduction::mean)
        {
            divisor = static_cast<ld>(n);
        }
        else if (r == xloss::reduction::batchmean && !xs.empty())
        {
            divisor = static_cast<ld>(xs[0]);
        }
        const ld g_ref = r == xloss::reduction::none ? static_cast<ld>(g_scalar) : static_cast<ld>(g_scalar) / divisor;
        const ld g_unit = r == xloss::reduction::none ? 1 : 1 / divisor;
        sum_ref total;
        std::vector<sum_ref> gx_ref(x.size()), gt_ref(t.size()), fbx_ref(x.size()), fbt_ref(t.size());
        for (std::size_t i = 0; i < n; ++i)
        {
            const std::size_t ix = source_index(i, bs, xs), it = source_index(i, bs, ts);
            const ld xv = static_cast<ld>(static_cast<V>(x.flat(ix)));
            const ld tv = static_cast<ld>(static_cast<V>(t.flat(it)));
            ld mag = 0;
            const ld term = ref.term(xv, tv, mag);
            if (r == xloss::reduction::none)
            {
                sum_ref one;
                one.add<V>(term, mag, ref.peak);
                check_sum<V>("term " + std::to_string(i), loss.flat(i), one, 1);
                check_sum<V>("fused term " + std::to_string(i), fb.loss.flat(i), one, 1);
            }
            total.add<V>(term, mag, ref.peak);
            // The gradients' pointwise values are rounded to V with g already divided (g / divisor in V).
            const ld g_v = static_cast<ld>(static_cast<V>(g_ref));
            const ld u_v = static_cast<ld>(static_cast<V>(g_unit));
            ld m1 = 0, m2 = 0;
            ld v = ref.input_grad(tv, g_v, m1);
            gx_ref[ix].add<V>(v, m1, ref.peak);
            v = ref.target_grad(xv, tv, g_v, m2);
            gt_ref[it].add<V>(v, m2, ref.peak);
            v = ref.input_grad(tv, u_v, m1);
            fbx_ref[ix].add<V>(v, m1, ref.peak);
            v = ref.target_grad(xv, tv, u_v, m2);
            fbt_ref[it].add<V>(v, m2, ref.peak);
        }
        if (r != xloss::reduction::none)
        {
            check_sum<V>("reduced loss", loss(), total, divisor);
            check_sum<V>("fused reduced loss", fb.loss(), total, divisor);
        }
        for (std::size_t i = 0; i < x.size(); ++i)
        {
            check_sum<V>("grad_input " + std::to_string(i), gx.flat(i), gx_ref[i], 1);
            check_sum<V>("fused grad_input " + std::to_string(i), fb.grad_input.flat(i), fbx_ref[i], 1);
        }
        for (std::size_t i = 0; i < t.size(); ++i)
        {
            check_sum<V>("grad_target " + std::to_string(i), gt.flat(i), gt_ref[i], 1);
            check_sum<V>("fused grad_target " + std::to_string(i), fb.grad_target.flat(i), fbt_ref[i], 1);
        }

        // SIMD against scalar kernels on the broadcast data.
        std::vector<V> xb(n), tb(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            xb[i] = static_cast<V>(x.flat(source_index(i, bs, xs)));
            tb[i] = static_cast<V>(t.flat(source_index(i, bs, ts)));
        }
        const ld g_ld = static_cast<ld>(g_scalar);
        auto term_mag = [&](std::size_t i, ld& peak)
        {
            ld m = 0;
            const ld v = ref.term(xb[i], tb[i], m);
            peak = ref.peak;
            return m + std::abs(v);
        };
        auto input_mag = [&](std::size_t i, ld& peak)
        {
            ld m = 0;
            ref.input_grad(tb[i], g_ld, m);
            peak = ref.peak;
            return m;
        };
        auto target_mag = [&](std::size_t i, ld& peak)
        {
            ld m = 0;
            ref.target_grad(xb[i], tb[i], g_ld, m);
            peak = ref.peak;
            return m;
        };
        xloss::detail::kl_div_definition::with_ops(
            opts,
            [&](const auto& ops)
            {
                check_simd_against_scalar<V>("term", ops.term, xb, tb, g_scalar, term_mag);
                check_simd_against_scalar<V>("input gradient", ops.input_grad, xb, tb, g_scalar, input_mag);
                check_simd_against_scalar<V>("target gradient", ops.target_grad, xb, tb, g_scalar, target_mag);
            });
    }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    byte_reader in{data, size};
    const std::uint8_t flags = in.next();
    switch (((flags >> 7) & 1) | ((flags & 1) << 1))
    {
        case 0:
            run_case<float, float>(in, flags);
            break;
        case 1:
            run_case<float, double>(in, flags);
            break; // mixed: computes in double
        default:
            run_case<double, double>(in, flags);
            break;
    }
    return 0;
}
