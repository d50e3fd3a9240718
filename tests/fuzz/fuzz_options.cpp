// libFuzzer target for the option path of kl_div: decodes shapes (rank 1 to 3, a broadcast
// target), input logits along an axis, log or probability targets, epsilon, the zero policy,
// a scalar weight, a broadcast sample weight, axes or per_sample, every reduction, a divisor and
// grad_outputs; then checks kl_div, kl_div_backward, kl_div_target_backward (with and without
// the sample weight), kl_div_forward_backward and the _out calls against a long-double reference,
// and that invalid option sets throw std::invalid_argument naming the function. Values are finite
// (the special values are fuzz_kl_div's): what this target explores is the bookkeeping of shapes,
// weights, axes and divisors.
//
//   make fuzz FUZZ_SECONDS=60     (clang's libFuzzer, with ASan and UBSan)

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include <xloss/xloss.hpp>

#include "fuzz_common.hpp"

namespace
{
    using namespace xloss_fuzz;

    /// A finite value in [lo, hi] from one byte.
    ld in_range(byte_reader& in, ld lo, ld hi)
    {
        return lo + (hi - lo) * static_cast<ld>(in.next()) / 255;
    }

    /// The flat index in `kept` (the shape with 1 on reduced axes) of flat index i of `full`.
    std::size_t kept_index(std::size_t i, const shape_t& full, const shape_t& kept)
    {
        return source_index(i, full, kept);
    }

    template <class V>
    xt::xarray<V> make_array(const shape_t& shape, const std::vector<ld>& values)
    {
        xt::xarray<V> a = xt::xarray<V>::from_shape(shape);
        for (std::size_t i = 0; i < values.size(); ++i)
        {
            a.flat(i) = static_cast<V>(values[i]);
        }
        return a;
    }

    /// What the options decode to, beside the kl_div_options themselves.
    struct decoded
    {
        shape_t full, target, weight, kept, out;
        bool logits = false, log_target = false, zero_policy = false, sample_weight = false, axes = false;
        std::size_t softmax_axis = 0;
        ld eps = 0, weight_value = 1, divisor = 1;
        xloss::reduction r = xloss::reduction::mean;
    };

    template <class V>
    void run_case(byte_reader& in, std::uint8_t flags)
    {
        decoded d;
        const std::size_t rank = 1 + in.next() % 3;
        for (std::size_t k = 0; k < rank; ++k)
        {
            d.full.push_back(1 + in.next() % 4);
        }
        // The target broadcasts: some axes of length 1, maybe the leading axis dropped.
        const std::uint8_t tb = in.next();
        for (std::size_t k = (rank > 1 && (tb & 1)) ? 1 : 0; k < rank; ++k)
        {
            d.target.push_back((tb >> (k + 1)) & 1 ? 1 : d.full[k]);
        }
        d.logits = flags & 2;
        d.log_target = flags & 4;
        d.zero_policy = !d.log_target && (flags & 8);
        d.sample_weight = flags & 16;
        xloss::kl_div_options o;
        o.log_target(d.log_target);
        if (d.logits)
        {
            d.softmax_axis = in.next() % rank;
            const bool negative = in.next() & 1;
            o.input_logits(true).softmax_axis(negative ? static_cast<std::ptrdiff_t>(d.softmax_axis)
                                                             - static_cast<std::ptrdiff_t>(rank)
                                                       : static_cast<std::ptrdiff_t>(d.softmax_axis));
        }
        if (!d.log_target)
        {
            const ld eps_choices[] = {0, 1e-12L, 1e-3L};
            d.eps = eps_choices[in.next() % 3];
            o.epsilon(static_cast<double>(d.eps));
            if (d.zero_policy)
            {
                o.target_policy(xloss::target_policy::zero);
            }
        }
        const ld weights[] = {1, 0.5L, 2, 0};
        d.weight_value = weights[in.next() % 4];
        o.weight(static_cast<double>(d.weight_value));
        // Axes: none, a non-empty subset, or per_sample.
        std::vector<bool> reduced(rank, true);
        const std::uint8_t am = in.next();
        if (am % 3 == 1)
        {
            std::vector<std::ptrdiff_t> axes;
            const std::uint8_t bits = in.next();
            for (std::size_t k = 0; k < rank; ++k)
            {
                reduced[k] = (bits >> k) & 1;
                if (reduced[k])
                {
                    axes.push_back((bits >> 4) & 1 ? static_cast<std::ptrdiff_t>(k) - static_cast<std::ptrdiff_t>(rank)
                                                   : static_cast<std::ptrdiff_t>(k));
                }
            }
            if (axes.empty())
            {
                reduced[0] = true;
                axes.push_back(0);
            }
            o.axes(axes);
            d.axes = true;
        }
        else if (am % 3 == 2)
        {
            const std::size_t b = in.next() % rank;
            o.per_sample(static_cast<std::ptrdiff_t>(b));
            reduced[b] = false;
            d.axes = true;
        }
        const std::uint8_t rb = in.next();
        d.r =
            d.axes ? (rb & 1 ? xloss::reduction::sum : xloss::reduction::mean) : static_cast<xloss::reduction>(rb % 4);
        o.reduction(d.r);
        const bool set_divisor = in.next() % 3 == 0;
        if (set_divisor)
        {
            o.divisor(3.0);
        }
        // The loss's shape, and the broadcast shape with 1 on the reduced axes.
        std::size_t count = 1;
        for (std::size_t k = 0; k < rank; ++k)
        {
            const bool summed = d.r != xloss::reduction::none && (d.axes ? reduced[k] : true);
            d.kept.push_back(summed ? 1 : d.full[k]);
            if (!summed)
            {
                d.out.push_back(d.full[k]);
            }
            count *= summed ? d.full[k] : 1;
        }
        const std::size_t n = numel(d.full);
        switch (d.r)
        {
            case xloss::reduction::none:
                d.divisor = 1;
                break;
            case xloss::reduction::sum:
                d.divisor = 1;
                break;
            case xloss::reduction::mean:
                d.divisor = set_divisor ? 3 : static_cast<ld>(d.axes ? count : n);
                break;
            case xloss::reduction::batchmean:
                d.divisor = set_divisor ? 3 : static_cast<ld>(d.full[0]);
                break;
        }
        // The sample weight's shape: a suffix of the full shape with some axes of length 1.
        if (d.sample_weight)
        {
            const std::uint8_t wb = in.next();
            for (std::size_t k = (wb & 1) ? rank - 1 : 0; k < rank; ++k)
            {
                d.weight.push_back((wb >> (k + 1)) & 1 ? 1 : d.full[k]);
            }
        }

        // Values: input logits or log-probabilities, targets (zeros included), weights.
        std::vector<ld> x(n), t(numel(d.target)), w(numel(d.weight));
        for (auto& v : x)
        {
            v = d.logits ? in_range(in, -8, 8) : -in_range(in, 0, 12);
        }
        for (auto& v : t)
        {
            const std::uint8_t k = in.next();
            if (d.log_target)
            {
                v = k % 8 == 0 ? -30 : in_range(in, -6, 0.5L);
            }
            else
            {
                v = k % 4 == 0 ? 0 : in_range(in, d.zero_policy ? -0.5L : 0, 1);
            }
        }
        for (auto& v : w)
        {
            v = in_range(in, 0, 2);
        }
        const xt::xarray<V> xa = make_array<V>(d.full, x), ta = make_array<V>(d.target, t);
        const xt::xarray<V> wa = make_array<V>(d.weight, w);
        // Round the decoded values to V: the reference starts from what xloss sees.
        for (std::size_t i = 0; i < n; ++i)
        {
            x[i] = static_cast<ld>(xa.flat(i));
        }
        for (std::size_t i = 0; i < t.size(); ++i)
        {
            t[i] = static_cast<ld>(ta.flat(i));
        }
        for (std::size_t i = 0; i < w.size(); ++i)
        {
            w[i] = static_cast<ld>(wa.flat(i));
        }

        // The reference: log-probabilities of the input along the softmax axis.
        std::vector<ld> xl(x), p(n, 0);
        std::vector<ld> lse_abs(n, 0);
        if (d.logits)
        {
            const std::size_t axis = d.softmax_axis, len = d.full[axis];
            std::size_t stride = 1;
            for (std::size_t k = axis + 1; k < rank; ++k)
            {
                stride *= d.full[k];
            }
            for (std::size_t i = 0; i < n; ++i)
            {
                if ((i / stride) % len != 0)
                {
                    continue; // rows start at coordinate 0 along the axis
                }
                ld m = x[i];
                for (std::size_t j = 0; j < len; ++j)
                {
                    m = std::max(m, x[i + j * stride]);
                }
                ld s = 0;
                for (std::size_t j = 0; j < len; ++j)
                {
                    s += std::exp(x[i + j * stride] - m);
                }
                const ld lse = m + std::log(s);
                for (std::size_t j = 0; j < len; ++j)
                {
                    xl[i + j * stride] = x[i + j * stride] - lse;
                    p[i + j * stride] = std::exp(xl[i + j * stride]);
                    lse_abs[i + j * stride] = std::abs(lse) + std::abs(x[i + j * stride]) + 1;
                }
            }
        }
        // Terms, their weights and magnitudes, over the broadcast (full) shape.
        std::vector<ld> term(n), wt(n), mag(n), dx(n), dt(n), dmag(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            const ld tv = t[source_index(i, d.full, d.target)];
            const ld xv = xl[i];
            const ld xm = d.logits ? lse_abs[i] : std::abs(xv);
            wt[i] = (d.sample_weight ? w[source_index(i, d.full, d.weight)] : 1) * d.weight_value;
            if (d.log_target)
            {
                const ld e = std::exp(tv);
                term[i] = e * (tv - xv);
                dx[i] = -e;
                dt[i] = e * (tv - xv + 1);
                mag[i] = e * (std::abs(tv) + xm + 1);
            }
            else if (d.zero_policy ? tv <= 0 : tv == 0)
            {
                term[i] = 0;
                dx[i] = 0;
                dt[i] = d.eps > 0 && !d.zero_policy ? std::log(d.eps) - xv : 0;
                mag[i] = std::abs(dt[i]) + xm;
            }
            else
            {
                const ld lt = std::log(tv + d.eps);
                term[i] = tv * (lt - xv);
                dx[i] = -tv;
                dt[i] = lt + tv / (tv + d.eps) - xv;
                mag[i] = std::abs(tv) * (std::abs(lt) + xm + 1) + std::abs(lt) + xm + 1;
            }
            dmag[i] = mag[i];
        }

        // grad_output: an array of the loss's shape (for a shaped loss), or a scalar.
        const bool shaped = !d.out.empty() || d.r == xloss::reduction::none;
        std::vector<ld> g(numel(d.out));
        for (auto& v : g)
        {
            v = in_range(in, -2, 2);
        }
        const xt::xarray<V> ga = make_array<V>(d.out, g);
        for (std::size_t i = 0; i < g.size(); ++i)
        {
            g[i] = static_cast<ld>(ga.flat(i));
        }
        const ld g_scalar = shaped ? 1 : static_cast<ld>(static_cast<V>(0.5));

        char ctx[512];
        std::snprintf(ctx, sizeof ctx,
                      "V=%s rank %zu logits %d (axis %zu) log_target %d zero_policy %d eps %Lg weight %Lg "
                      "sample_weight %d axes %d reduction %s divisor %Lg",
                      sizeof(V) == 4 ? "float" : "double", rank, d.logits, d.softmax_axis, d.log_target, d.zero_policy,
                      d.eps, d.weight_value, d.sample_weight, d.axes, std::string(xloss::to_string(d.r)).c_str(),
                      d.divisor);
        g_context = std::string(ctx) + "\n" + describe("x", xa) + describe("t", ta)
                    + (d.sample_weight ? describe("w", wa) : "") + (shaped ? describe("g", ga) : "");

        const auto check_all = [&](const std::string& call, const xt::xarray<V>& loss, const xt::xarray<V>& gx,
                                   const xt::xarray<V>& gt, bool weighted)
        {
            const shape_t loss_shape(loss.shape().begin(), loss.shape().end());
            if (loss_shape != d.out)
            {
                fail(call + ": the loss's shape", static_cast<ld>(loss.dimension()), static_cast<ld>(d.out.size()), 0);
            }
            std::vector<ld> ref(numel(d.out), 0), rmag(numel(d.out), 0);
            std::vector<ld> gxr(n, 0), gxm(n, 0), gtr(t.size(), 0), gtm(t.size(), 0);
            for (std::size_t i = 0; i < n; ++i)
            {
                const std::size_t o = kept_index(i, d.full, d.kept);
                const ld wi = weighted ? wt[i] : d.weight_value;
                ref[o] += term[i] * wi / d.divisor;
                rmag[o] += mag[i] * std::abs(wi) / d.divisor;
                const ld scale = (shaped ? g[o] : g_scalar) * wi / d.divisor;
                gxr[i] = dx[i] * scale;
                gxm[i] = std::abs(dx[i] * scale);
                const std::size_t ti = source_index(i, d.full, d.target);
                gtr[ti] += dt[i] * scale;
                gtm[ti] += dmag[i] * std::abs(scale);
            }
            if (d.logits)
            {
                // Through the log-softmax: dz = dx - p * sum(dx) along the axis.
                std::vector<ld> row_sum(n, 0), row_mag(n, 0);
                const std::size_t axis = d.softmax_axis, len = d.full[axis];
                std::size_t stride = 1;
                for (std::size_t k = axis + 1; k < rank; ++k)
                {
                    stride *= d.full[k];
                }
                for (std::size_t i = 0; i < n; ++i)
                {
                    const std::size_t first = i - ((i / stride) % len) * stride;
                    row_sum[first] += gxr[i];
                    row_mag[first] += gxm[i];
                }
                for (std::size_t i = 0; i < n; ++i)
                {
                    const std::size_t first = i - ((i / stride) % len) * stride;
                    gxr[i] -= p[i] * row_sum[first];
                    gxm[i] = (gxm[i] + p[i] * row_mag[first]) * (lse_abs[i] + 1);
                }
            }
            for (std::size_t k = 0; k < ref.size(); ++k)
            {
                check<V>(call + ": loss at " + std::to_string(k), loss.flat(k), ref[k], rmag[k] + 1e-30L);
            }
            for (std::size_t i = 0; i < n; ++i)
            {
                check<V>(call + ": input gradient at " + std::to_string(i), gx.flat(i), gxr[i], gxm[i]);
            }
            for (std::size_t i = 0; i < t.size(); ++i)
            {
                check<V>(call + ": target gradient at " + std::to_string(i), gt.flat(i), gtr[i], gtm[i]);
            }
        };

        const auto grad_arg = [&]() -> const xt::xarray<V>&
        {
            return ga;
        };
        const V gs = static_cast<V>(g_scalar);
        // Without the sample weight: the separate calls, the fused call and the _out calls.
        {
            const xt::xarray<V> loss = xloss::kl_div(xa, ta, o);
            const xt::xarray<V> gx =
                shaped ? xloss::kl_div_backward(grad_arg(), xa, ta, o) : xloss::kl_div_backward(gs, xa, ta, o);
            const xt::xarray<V> gt = shaped ? xloss::kl_div_target_backward(grad_arg(), xa, ta, o)
                                            : xloss::kl_div_target_backward(gs, xa, ta, o);
            check_all("kl_div", loss, gx, gt, false);
            if (!shaped && g_scalar == 1)
            {
                const auto fb = xloss::kl_div_forward_backward(xa, ta, o, true);
                check_all("kl_div_forward_backward", fb.loss, fb.grad_input, fb.grad_target, false);
            }
            xt::xarray<V> lo, gxo, gto;
            xloss::kl_div_out(lo, xa, ta, o);
            if (shaped)
            {
                xloss::kl_div_backward_out(gxo, grad_arg(), xa, ta, o);
                xloss::kl_div_target_backward_out(gto, grad_arg(), xa, ta, o);
            }
            else
            {
                xloss::kl_div_backward_out(gxo, gs, xa, ta, o);
                xloss::kl_div_target_backward_out(gto, gs, xa, ta, o);
            }
            check_all("_out calls", lo, gxo, gto, false);
        }
        if (d.sample_weight)
        {
            const xt::xarray<V> loss = xloss::kl_div(xa, ta, o, wa);
            const xt::xarray<V> gx =
                shaped ? xloss::kl_div_backward(grad_arg(), xa, ta, o, wa) : xloss::kl_div_backward(gs, xa, ta, o, wa);
            const xt::xarray<V> gt = shaped ? xloss::kl_div_target_backward(grad_arg(), xa, ta, o, wa)
                                            : xloss::kl_div_target_backward(gs, xa, ta, o, wa);
            check_all("kl_div with sample_weight", loss, gx, gt, true);
        }
    }

    /// Invalid option sets: each must throw std::invalid_argument naming kl_div.
    template <class V>
    void run_invalid(byte_reader& in)
    {
        const xt::xarray<V> x = {{-1, -2, -0.5}, {-0.1, -3, -1}};
        const xt::xarray<V> t = {{0.2, 0.3, 0.5}, {0.6, 0.1, 0.3}};
        const std::uint8_t k = in.next();
        g_context = "invalid option set " + std::to_string(k % 7);
        bool thrown = false;
        // Inside the try: a setter that checks its value throws where the option is set, naming
        // kl_div_options (the divisor); the rest throw when kl_div runs.
        try
        {
            xloss::kl_div_options o;
            switch (k % 7)
            {
                case 0:
                    o.input_logits(true).softmax_axis(2 + in.next() % 4);
                    break;
                case 1:
                    o.axes({0, 0});
                    break;
                case 2:
                    o.axes({1}).reduction(xloss::reduction::none);
                    break;
                case 3:
                    o.log_target(true).epsilon(1e-12);
                    break;
                case 4:
                    // A weight must be finite (negative ones are allowed), an epsilon not negative, a
                    // divisor not negative.
                    in.next() % 3 == 0   ? o.weight(std::numeric_limits<double>::infinity())
                    : in.next() % 2 == 0 ? o.epsilon(-1e-3)
                                         : o.divisor(-2.0);
                    break;
                case 5:
                    o.per_sample(-3 - static_cast<std::ptrdiff_t>(in.next() % 4));
                    break;
                default:
                    o.per_sample(0).reduction(xloss::reduction::batchmean);
                    break;
            }
            (void)xloss::kl_div(x, t, o);
        }
        catch (const std::invalid_argument& e)
        {
            thrown = std::string(e.what()).find("xloss::kl_div") != std::string::npos;
        }
        if (!thrown)
        {
            fail("an invalid option set must throw std::invalid_argument naming xloss::kl_div", 0, 1, 0);
        }
    }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    byte_reader in{data, size};
    const std::uint8_t flags = in.next();
    if ((flags & 0xe0) == 0xe0)
    {
        flags & 1 ? run_invalid<double>(in) : run_invalid<float>(in);
    }
    else if (flags & 1)
    {
        run_case<double>(in, flags);
    }
    else
    {
        run_case<float>(in, flags);
    }
    return 0;
}
