// libFuzzer target for the distillation loss from logits: decodes shapes of rank 1 to 3, the class
// axis, a temperature (invalid ones included), a reduction, a grad_output, a layout (contiguous or
// strided) and logits (finite, large, masked -inf classes, NaN, +inf), then checks
// kl_div_with_logits, both gradients and the fused forward_backward against a long-double
// reference of T^2 KL(softmax(t/T) || softmax(s/T)): the values, the errors (invalid temperature,
// a row of -inf, a row holding +inf), NaN for rows holding NaN, and the fused call against the separate ones
// bit for bit.
//
//   make fuzz (runs it after fuzz_kl_div)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
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

    template <class T>
    T decode_logit(byte_reader& in)
    {
        const std::uint8_t k = in.next();
        if (k < 12)
        {
            return -std::numeric_limits<T>::infinity(); // a masked class
        }
        if (k == 12)
        {
            return std::numeric_limits<T>::quiet_NaN();
        }
        if (k == 13)
        {
            return std::numeric_limits<T>::infinity();
        }
        static const double scale[4] = {1., 8., 30., 1e4};
        const int m = static_cast<std::int16_t>((in.next() << 8) | in.next());
        return static_cast<T>(static_cast<double>(m) / 32768.0 * scale[k % 4]);
    }

    /// The rows along `axis`: outer * inner rows of n elements, element j of row (o, i) at
    /// (o * n + j) * inner + i.
    struct rows_t
    {
        std::size_t outer = 1, n = 1, inner = 1;

        std::size_t at(std::size_t row, std::size_t j) const
        {
            return ((row / inner) * n + j) * inner + row % inner;
        }
    };

    /// One row's reference: log p, log q, the KL, and the size of what went into them.
    struct row_ref
    {
        std::vector<ld> logp, logq;
        std::vector<char> kept, unsure; ///< p is nonzero in V; p is so close to V's underflow that it may be 0
        ld kl = 0, mag = 1;
        ld abs_kl = 0;           ///< sum of p |log p - log q|
        bool unsure_inf = false; ///< an unsure p against q = 0: the KL may be finite or +inf
        ld unsure_mag = 0;       ///< what unsure p's can add, as a magnitude for check()
        bool all_masked_s = true, all_masked_t = true, nan = false;
        bool masked_or_nan_s = true, masked_or_nan_t = true; ///< only -inf and NaN: the row max may be -inf
        bool pos_inf = false, has_nan = false; ///< a +inf logit throws, unless NaN in the row comes first
    };

    template <class V>
    row_ref reference_row(const std::vector<V>& s, const std::vector<V>& t, const rows_t& rows, std::size_t row,
                          ld temperature)
    {
        row_ref r;
        r.logp.resize(rows.n);
        r.logq.resize(rows.n);
        r.kept.resize(rows.n);
        r.unsure.resize(rows.n);
        ld ma = -INFINITY, mb = -INFINITY;
        for (std::size_t j = 0; j < rows.n; ++j)
        {
            const ld a = static_cast<ld>(t[rows.at(row, j)]), b = static_cast<ld>(s[rows.at(row, j)]);
            r.nan = r.nan || std::isnan(a) || std::isnan(b) || a == INFINITY || b == INFINITY;
            r.pos_inf = r.pos_inf || a == INFINITY || b == INFINITY;
            r.has_nan = r.has_nan || std::isnan(a) || std::isnan(b);
            r.all_masked_t = r.all_masked_t && a == -INFINITY;
            r.all_masked_s = r.all_masked_s && b == -INFINITY;
            r.masked_or_nan_t = r.masked_or_nan_t && (a == -INFINITY || std::isnan(a));
            r.masked_or_nan_s = r.masked_or_nan_s && (b == -INFINITY || std::isnan(b));
            ma = std::max(ma, a);
            mb = std::max(mb, b);
        }
        if (r.nan || r.all_masked_s || r.all_masked_t)
        {
            return r;
        }
        ld za = 0, zb = 0;
        for (std::size_t j = 0; j < rows.n; ++j)
        {
            za += std::exp((static_cast<ld>(t[rows.at(row, j)]) - ma) / temperature);
            zb += std::exp((static_cast<ld>(s[rows.at(row, j)]) - mb) / temperature);
        }
        const ld lza = std::log(za), lzb = std::log(zb);
        ld largest = 0;
        for (std::size_t j = 0; j < rows.n; ++j)
        {
            const ld a = (static_cast<ld>(t[rows.at(row, j)]) - ma) / temperature;
            const ld b = (static_cast<ld>(s[rows.at(row, j)]) - mb) / temperature;
            r.logp[j] = a - lza;
            r.logq[j] = b - lzb;
            largest = std::max({largest, std::isinf(a) ? 0 : std::abs(a), std::isinf(b) ? 0 : std::abs(b)});
            // xloss drops a class whose exp(a) is 0 in V (xsimd's exp may flush below the smallest normal).
            const ld p = std::exp(r.logp[j]), ea = std::exp(a);
            using lim = std::numeric_limits<V>;
            r.unsure[j] = ea < 2 * static_cast<ld>(lim::min()) && ea >= static_cast<ld>(lim::denorm_min()) / 2;
            r.kept[j] = !r.unsure[j] && ea >= 2 * static_cast<ld>(lim::min());
            if (r.kept[j])
            {
                r.kl += p * (r.logp[j] - r.logq[j]);
                r.abs_kl += p * std::abs(r.logp[j] - r.logq[j]);
            }
            else if (r.unsure[j])
            {
                r.unsure_inf = r.unsure_inf || std::isinf(r.logq[j]);
                r.unsure_mag += std::isinf(r.logq[j]) ? 0
                                                      : (p * std::abs(r.logp[j] - r.logq[j]) + p)
                                                            / (64 * static_cast<ld>(lim::epsilon()));
            }
        }
        // Rounding the shifted logits to V costs eps * |a| in every log p and log q.
        r.mag = largest + std::abs(ma / temperature) + std::abs(mb / temperature) + lza + lzb + 1 + r.unsure_mag;
        return r;
    }

    /// a and b equal bit for bit (NaN matching NaN).
    template <class E1, class E2>
    void check_identical(const std::string& what, const E1& a, const E2& b)
    {
        bool same = a.shape() == b.shape();
        for (std::size_t i = 0; same && i < a.size(); ++i)
        {
            const auto x = a.flat(i), y = b.flat(i);
            same = (std::isnan(x) && std::isnan(y)) || (x == y && std::signbit(x) == std::signbit(y));
            if (!same)
            {
                fail(what + " at flat index " + std::to_string(i), x, y, 0);
            }
        }
        if (!same)
        {
            fail(what + ": shapes differ", 0, 0, 0);
        }
    }

    template <class V>
    void run_case(byte_reader& in, std::uint8_t flags)
    {
        const auto r = static_cast<xloss::reduction>((flags >> 1) & 3);
        const bool strided = (flags >> 3) & 1;
        static const double temperatures[8] = {1., 0.5, 2., 4.5, 0.05, 0., -1., INFINITY};
        const double temperature = temperatures[(flags >> 4) & 7];
        const bool with_teacher_grad = (flags >> 7) & 1;

        const std::size_t rank = 1 + in.next() % 3;
        shape_t shape(rank);
        for (auto& d : shape)
        {
            const std::uint8_t b = in.next();
            d = b < 200 ? 1 + b % 5 : 17 + b % 24;
        }
        if (numel(shape) > 2048)
        {
            return;
        }
        const std::ptrdiff_t axis =
            static_cast<std::ptrdiff_t>(in.next() % (2 * rank)) - static_cast<std::ptrdiff_t>(rank);
        const std::size_t ax = static_cast<std::size_t>(axis < 0 ? axis + static_cast<std::ptrdiff_t>(rank) : axis);
        static const double grads[4] = {1., 0.5, -2., 3.};
        const V g = static_cast<V>(grads[in.next() % 4]);

        xt::xarray<V> s = xt::xarray<V>::from_shape(shape), t = xt::xarray<V>::from_shape(shape);
        for (auto& v : s)
        {
            v = decode_logit<V>(in);
        }
        for (auto& v : t)
        {
            v = decode_logit<V>(in);
        }
        g_context = "reduction " + std::string(xloss::to_string(r)) + ", temperature " + std::to_string(temperature)
                    + ", axis " + std::to_string(axis) + (strided ? ", strided" : "") + ", grad_output "
                    + std::to_string(static_cast<double>(g)) + "\n" + describe("student", s) + describe("teacher", t);

        rows_t rows;
        rows.n = shape[ax];
        for (std::size_t k = 0; k < rank; ++k)
        {
            (k < ax ? rows.outer : rows.inner) *= k == ax ? 1 : shape[k];
        }
        const std::size_t n_rows = rows.outer * rows.inner;
        const std::vector<V> sv(s.begin(), s.end()), tv(t.begin(), t.end());
        const ld T = static_cast<ld>(temperature);
        const bool bad_temperature = !(temperature > 0.) || std::isinf(temperature);
        std::vector<row_ref> refs;
        bool all_masked_row = false, maybe_masked_row = false;
        for (std::size_t k = 0; k < n_rows && !bad_temperature; ++k)
        {
            refs.push_back(reference_row(sv, tv, rows, k, T));
            all_masked_row = all_masked_row || refs.back().all_masked_s || refs.back().all_masked_t;
            maybe_masked_row = maybe_masked_row || refs.back().masked_or_nan_s || refs.back().masked_or_nan_t;
            // A row holding +inf throws; with NaN beside it, NaN may reach the loss instead.
            all_masked_row = all_masked_row || (refs.back().pos_inf && !refs.back().has_nan);
            maybe_masked_row = maybe_masked_row || refs.back().pos_inf;
        }
        const bool expect_error = bad_temperature || all_masked_row;

        const xt::xarray<V> st = xt::transpose(s), tt = xt::transpose(t);
        auto call = [&](auto&& f)
        {
            return strided ? f(xt::transpose(st), xt::transpose(tt)) : f(s, t);
        };
        xt::xarray<V> loss, gs, gt;
        try
        {
            loss = call(
                [&](const auto& a, const auto& b)
                {
                    return xloss::kl_div_with_logits(a, b, temperature, r, axis);
                });
            gs = call(
                [&](const auto& a, const auto& b)
                {
                    return xloss::kl_div_with_logits_backward(g, a, b, temperature, r, axis);
                });
            gt = call(
                [&](const auto& a, const auto& b)
                {
                    return xloss::kl_div_with_logits_teacher_backward(g, a, b, temperature, r, axis);
                });
        }
        catch (const std::invalid_argument&)
        {
            if (!expect_error && !maybe_masked_row)
            {
                fail("unexpected std::invalid_argument", 0, 0, 0);
            }
            return;
        }
        if (expect_error)
        {
            fail("expected std::invalid_argument (invalid temperature, a row of -inf, or +inf)", 0, 0, 0);
        }

        // The fused call gives the separate calls' values bit for bit.
        const auto fb = call(
            [&](const auto& a, const auto& b)
            {
                return xloss::kl_div_with_logits_forward_backward(a, b, temperature, r, axis, with_teacher_grad);
            });
        check_identical("forward_backward loss", fb.loss, loss);
        if (r != xloss::reduction::none)
        {
            // (with grad_output 1: scale the separate gradient's to compare)
            const auto g1 = call(
                [&](const auto& a, const auto& b)
                {
                    return xloss::kl_div_with_logits_backward(V(1), a, b, temperature, r, axis);
                });
            check_identical("forward_backward student gradient", fb.grad_input, g1);
        }

        const ld d = r == xloss::reduction::mean        ? static_cast<ld>(numel(shape))
                     : r == xloss::reduction::batchmean ? static_cast<ld>(shape[0])
                                                        : 1;
        const ld gl = static_cast<ld>(g);
        ld total = 0, total_mag = 0;
        bool total_nan = false, total_unsure = false;
        for (std::size_t k = 0; k < n_rows; ++k)
        {
            const row_ref& ref = refs[k];
            if (ref.nan)
            {
                total_nan = true;
                continue;
            }
            total += ref.kl;
            total_mag += ref.mag * (ref.abs_kl + 1);
            total_unsure = total_unsure || ref.unsure_inf;
            for (std::size_t j = 0; j < rows.n; ++j)
            {
                const std::size_t i = rows.at(k, j);
                const ld p = ref.kept[j] || ref.unsure[j] ? std::exp(ref.logp[j]) : 0, q = std::exp(ref.logq[j]);
                const std::string where = " at flat index " + std::to_string(i);
                // p and its products may underflow to 0 at the bottom of V's range.
                const ld floor =
                    4 * static_cast<ld>(std::numeric_limits<V>::min())
                    / (64 * static_cast<ld>(std::numeric_limits<V>::epsilon()))
                    * (std::abs(ref.logp[j]) + (std::isinf(ref.logq[j]) ? 0 : std::abs(ref.logq[j])) + ref.abs_kl + 1);
                if (r == xloss::reduction::none && !ref.unsure[j])
                {
                    check<V>("term" + where, loss.flat(i), p > 0 ? T * T * p * (ref.logp[j] - ref.logq[j]) : 0,
                             T * T * ((p + q) * (std::abs(ref.logp[j] - ref.logq[j]) + 1) * ref.mag + floor));
                }
                check<V>("student gradient" + where, gs.flat(i), T * gl / d * (q - p),
                         T * std::abs(gl) / d * ((p + q) * ref.mag + floor));
                if (!std::isinf(ref.kl) && !ref.unsure_inf)
                {
                    check<V>(
                        "teacher gradient" + where, gt.flat(i),
                        p > 0 ? T * gl / d * p * (ref.logp[j] - ref.logq[j] - ref.kl) : 0,
                        T * std::abs(gl) / d
                            * (p * (std::abs(ref.logp[j]) + std::abs(ref.logq[j]) + ref.abs_kl + 1) * ref.mag + floor));
                }
            }
        }
        if (r != xloss::reduction::none)
        {
            if (total_nan)
            {
                if (!std::isnan(loss()))
                {
                    fail("a row holding NaN or +inf must make the loss NaN", loss(), NAN, 0);
                }
            }
            else if (!total_unsure)
            {
                check<V>("loss", loss(), T * T * total / d, T * T * total_mag / d);
            }
        }
    }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    byte_reader in{data, size};
    const std::uint8_t flags = in.next();
    if (flags & 1)
    {
        run_case<double>(in, flags);
    }
    else
    {
        run_case<float>(in, flags);
    }
    return 0;
}
