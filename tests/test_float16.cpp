// The 16-bit storage types: their conversions (every bfloat16 and half, and floats across the whole
// range against a rounding computed in double), the rows' conversions of the instruction set against
// the scalar ones, and the row losses on bfloat16 and half logits, which equal the float losses of the
// same values rounded to the 16-bit type, bit for bit, on every path (in place, along an inner axis,
// strided, `_out`, grad_output per row).

#include "catch_compat.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <xloss/float16.hpp>
#include <xloss/xloss.hpp>
#include XLOSS_XTENSOR_HEADER(views, xview.hpp)

namespace float16_test
{
    float float_with_bits(std::uint32_t u)
    {
        float f;
        std::memcpy(&f, &u, sizeof f);
        return f;
    }

    std::uint32_t bits_of_float(float f)
    {
        std::uint32_t u;
        std::memcpy(&u, &f, sizeof u);
        return u;
    }

    bool is_nan_bits16(std::uint16_t b, unsigned exponent_mask, unsigned mantissa_mask)
    {
        return (b & exponent_mask) == exponent_mask && (b & mantissa_mask) != 0;
    }

    /// The nearest of two adjacent 16-bit values lo < hi (bits lo_bits, lo_bits + 1) to f, ties to the even one.
    template <class H>
    std::uint16_t nearest_of(float f, std::uint16_t lo_bits)
    {
        const H lo = H::from_bits(lo_bits), hi = H::from_bits(static_cast<std::uint16_t>(lo_bits + 1));
        const double a = std::fabs(static_cast<double>(f)), dl = a - static_cast<double>(static_cast<float>(lo)),
                     dh = static_cast<double>(static_cast<float>(hi)) - a;
        if (dl < dh || (dl == dh && (lo_bits & 1u) == 0))
        {
            return lo_bits;
        }
        return static_cast<std::uint16_t>(lo_bits + 1);
    }

    /// The largest non-negative H at most |f| (finite f within H's range), by bisection over the bits.
    template <class H>
    std::uint16_t floor_bits(float f, std::uint16_t max_finite)
    {
        const double a = std::fabs(static_cast<double>(f));
        std::uint16_t lo = 0, hi = max_finite;
        while (lo < hi)
        {
            const auto mid = static_cast<std::uint16_t>((lo + hi + 1) / 2);
            if (static_cast<double>(static_cast<float>(H::from_bits(mid))) <= a)
            {
                lo = mid;
            }
            else
            {
                hi = static_cast<std::uint16_t>(mid - 1);
            }
        }
        return lo;
    }

    /// Floats across the whole range: every 65521st bit pattern and every 16-bit value's neighbours
    /// and midpoints.
    std::vector<float> probe_floats()
    {
        std::vector<float> v;
        for (std::uint64_t u = 0; u < (std::uint64_t(1) << 32); u += 65521)
        {
            v.push_back(float_with_bits(static_cast<std::uint32_t>(u)));
        }
        for (std::uint32_t h = 0; h < 0x7c00u; h += 7)
        {
            const float a = static_cast<float>(xloss::half::from_bits(static_cast<std::uint16_t>(h)));
            const float b = static_cast<float>(xloss::half::from_bits(static_cast<std::uint16_t>(h + 1)));
            const float mid = static_cast<float>((static_cast<double>(a) + b) / 2);
            for (float f : {mid, std::nextafter(mid, 0.f), std::nextafter(mid, 1e30f)})
            {
                v.push_back(f);
                v.push_back(-f);
            }
        }
        for (float f : {65504.f, 65519.f, 65520.f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1p-14f, 0x1.ffcp-15f,
                        std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min()})
        {
            v.push_back(f);
            v.push_back(-f);
        }
        return v;
    }

    template <class H, class F>
    xt::xarray<H> rounded(const xt::xarray<F>& a)
    {
        xt::xarray<H> r = xt::xarray<H>::from_shape(a.shape());
        for (std::size_t i = 0; i < a.size(); ++i)
        {
            r.data()[i] = H(static_cast<float>(a.data()[i]));
        }
        return r;
    }

    template <class H>
    bool same_bits(const xt::xarray<H>& a, const xt::xarray<H>& b)
    {
        if (a.shape() != b.shape())
        {
            return false;
        }
        for (std::size_t i = 0; i < a.size(); ++i)
        {
            if (a.data()[i].bits != b.data()[i].bits)
            {
                return false;
            }
        }
        return true;
    }

    /// Logits with a wide spread, their 16-bit values, and those values in float.
    template <class H>
    struct logits
    {
        xt::xarray<H> low;
        xt::xarray<float> wide;

        logits(const std::vector<std::size_t>& shape, unsigned seed)
        {
            std::mt19937 gen(seed);
            std::normal_distribution<float> d(0.f, 4.f);
            xt::xarray<float> x = xt::xarray<float>::from_shape(shape);
            for (auto& v : x)
            {
                v = d(gen);
            }
            low = rounded<H>(x);
            wide = xt::xarray<float>::from_shape(shape);
            std::copy(low.begin(), low.end(), wide.begin());
        }
    };
}

TEST_CASE("bfloat16 and half hold every value of theirs, and round floats to nearest even", "[float16]")
{
    using namespace float16_test;
    for (std::uint32_t b = 0; b < 0x10000u; ++b)
    {
        const auto bits = static_cast<std::uint16_t>(b);
        const xloss::bfloat16 x = xloss::bfloat16(static_cast<float>(xloss::bfloat16::from_bits(bits)));
        const xloss::half y = xloss::half(static_cast<float>(xloss::half::from_bits(bits)));
        // A NaN comes back quiet (the top mantissa bit set), its sign and payload kept.
        REQUIRE(x.bits == (is_nan_bits16(bits, 0x7f80u, 0x7fu) ? (bits | 0x40u) : bits));
        REQUIRE(y.bits == (is_nan_bits16(bits, 0x7c00u, 0x3ffu) ? (bits | 0x200u) : bits));
    }
    std::size_t checked = 0;
    for (float f : probe_floats())
    {
        if ((bits_of_float(f) & 0x7f800000u) == 0x7f800000u) // NaN and infinities: by the bits (-ffast-math)
        {
            continue;
        }
        const auto sign = static_cast<std::uint16_t>((bits_of_float(f) >> 16) & 0x8000u); // -0 too, under -ffast-math
        if ((bits_of_float(f) & 0x7f800000u) == 0)
        {
            // A float subnormal (which the reference in double would read as 0 under -ffast-math's
            // denormals-are-zero): half has none so small, bfloat16 keeps its top half, rounded.
            REQUIRE(xloss::half(f).bits == sign);
            REQUIRE((xloss::bfloat16(f).bits & 0x7fffu) - ((bits_of_float(f) >> 16) & 0x7fffu) <= 1u);
            continue;
        }
        // bfloat16: a float's top half, or the next one up.
        const auto top = static_cast<std::uint16_t>((bits_of_float(f) >> 16) & 0x7fffu);
        // Past the largest bfloat16 (0x1.fep127), from the midpoint to the next step on: infinite.
        const std::uint16_t b = top == 0x7f7fu
                                    ? static_cast<std::uint16_t>(std::fabs(f) >= 0x1.fe8p+127f ? 0x7f80u : 0x7f7fu)
                                    : nearest_of<xloss::bfloat16>(f, top);
        REQUIRE(xloss::bfloat16(f).bits == (b | sign));
        // half: infinite from 65520 on, else the nearer of its two neighbours.
        const std::uint16_t h =
            std::fabs(f) >= 65520.f
                ? std::uint16_t(0x7c00u)
                : (std::fabs(f) >= 65504.f ? std::uint16_t(0x7bffu)
                                           : nearest_of<xloss::half>(f, floor_bits<xloss::half>(f, 0x7bffu)));
        INFO("f = " << f);
        REQUIRE(xloss::half(f).bits == (h | sign));
        ++checked;
    }
    CHECK(checked > 60000);
    CHECK(xloss::bfloat16(std::numeric_limits<float>::infinity()).bits == 0x7f80u);
    CHECK(xloss::half(-std::numeric_limits<float>::infinity()).bits == 0xfc00u);
    CHECK(xloss::half(1e-8f).bits == 0u);
    CHECK(xloss::half(-0x1p-24f).bits == 0x8001u);
    CHECK(xloss::bfloat16{}.bits == 0u);
}

TEST_CASE("rows convert alike on every instruction set and at every stride", "[float16]")
{
    using namespace float16_test;
    // Every 16-bit value widened, the instruction set's rows against the scalar conversion (a
    // signalling NaN comes out quiet from both).
    std::vector<xloss::bfloat16> all_b(0x10000);
    std::vector<xloss::half> all_h(0x10000);
    for (std::uint32_t b = 0; b < 0x10000u; ++b)
    {
        all_b[b] = xloss::bfloat16::from_bits(static_cast<std::uint16_t>(b));
        all_h[b] = xloss::half::from_bits(static_cast<std::uint16_t>(b));
    }
    std::vector<float> wide_b(0x10000), wide_h(0x10000);
    xloss::detail::widen_row(all_b.data(), 1, all_b.size(), wide_b.data());
    xloss::detail::widen_row(all_h.data(), 1, all_h.size(), wide_h.data());
    for (std::size_t b = 0; b < 0x10000u; ++b)
    {
        INFO("bits " << b);
        REQUIRE(bits_of_float(wide_b[b]) == bits_of_float(static_cast<float>(all_b[b])));
        REQUIRE(bits_of_float(wide_h[b]) == bits_of_float(static_cast<float>(all_h[b])));
    }
    const std::vector<float> src = probe_floats();
    const std::size_t n = src.size();
    for (std::size_t stride : {std::size_t(1), std::size_t(3)})
    {
        std::vector<xloss::bfloat16> b(n * stride);
        std::vector<xloss::half> h(n * stride);
        xloss::detail::narrow_row(src.data(), n, b.data(), stride);
        xloss::detail::narrow_row(src.data(), n, h.data(), stride);
        std::vector<float> back_b(n), back_h(n);
        xloss::detail::widen_row(b.data(), stride, n, back_b.data());
        xloss::detail::widen_row(h.data(), stride, n, back_h.data());
        for (std::size_t j = 0; j < n; ++j)
        {
            INFO("f = " << src[j] << ", stride " << stride);
            REQUIRE(b[j * stride].bits == xloss::bfloat16(src[j]).bits);
            REQUIRE(h[j * stride].bits == xloss::half(src[j]).bits);
            REQUIRE(bits_of_float(back_b[j]) == bits_of_float(static_cast<float>(b[j * stride])));
            REQUIRE(bits_of_float(back_h[j]) == bits_of_float(static_cast<float>(h[j * stride])));
        }
    }
}

TEMPLATE_TEST_CASE("cross_entropy on 16-bit logits is the float loss of their values, rounded", "[float16]",
                   xloss::bfloat16, xloss::half)
{
    using namespace float16_test;
    using H = TestType;
    const logits<H> x({6, 3, 37}, 11);
    const xt::xarray<long> labels = {{3, -100, 36}, {0, 1, 2}, {5, 5, -100}, {7, 8, 9}, {36, 35, 34}, {1, 0, 2}};
    xt::xarray<long> labels_axis1 = xt::xarray<long>::from_shape({6, 37}); // classes along axis 1: 3
    for (std::size_t i = 0; i < labels_axis1.size(); ++i)
    {
        labels_axis1.data()[i] = i % 7 == 0 ? -100 : static_cast<long>(i % 3);
    }
    auto options =
        GENERATE(xloss::cross_entropy_options(), xloss::cross_entropy_options().reduction(xloss::reduction::none),
                 xloss::cross_entropy_options().label_smoothing(0.1).z_loss(1e-3).softcap(30.),
                 xloss::cross_entropy_options().reduction(xloss::reduction::sum).weight(std::vector<double>(37, 0.5)));
    const xloss::CrossEntropyLoss ce(xloss::cross_entropy_options(options).class_axis(-1)); // the LM layout
    auto r = ce.forward_backward(x.low, labels);
    auto f = ce.forward_backward(x.wide, labels);
    CHECK(same_bits(r.loss, rounded<H>(f.loss)));
    CHECK(same_bits(r.grad_logits, rounded<H>(f.grad_logits)));
    CHECK(same_bits(ce(x.low, labels), rounded<H>(ce(x.wide, labels))));

    SECTION("along an inner axis (PyTorch's class axis 1)")
    {
        if (options.has_weight())
        {
            return; // 37 weights for 3 classes
        }
        const xloss::CrossEntropyLoss ce1(xloss::cross_entropy_options(options).class_axis(1));
        const auto a = ce1.forward_backward(x.low, labels_axis1);
        const auto b = ce1.forward_backward(x.wide, labels_axis1);
        CHECK(same_bits(a.loss, rounded<H>(b.loss)));
        CHECK(same_bits(a.grad_logits, rounded<H>(b.grad_logits)));
    }
    SECTION("strided logits, and a grad_output per row")
    {
        auto view = xt::view(x.low, xt::all(), 1, xt::all());
        auto wide_view = xt::view(x.wide, xt::all(), 1, xt::all());
        const xt::xarray<long> col = xt::view(labels, xt::all(), 1);
        if (ce.options().reduction() == xloss::reduction::none)
        {
            const xt::xarray<H> g = rounded<H>(xt::xarray<float>{0.5f, -1.f, 2.f, 0.f, 1.f, 3.f});
            const xt::xarray<float> gw = {0.5f, -1.f, 2.f, 0.f, 1.f, 3.f};
            CHECK(same_bits(ce.backward(view, col, g), rounded<H>(ce.backward(wide_view, col, gw))));
            // A grad_output of values no 16-bit type holds is not rounded to one.
            const xt::xarray<float> odd = {0.3f, -1.7f, 2.2f, 0.1f, 1.3f, 3.3f};
            CHECK(same_bits(ce.backward(view, col, odd), rounded<H>(ce.backward(wide_view, col, odd))));
        }
        CHECK(same_bits(ce.backward(view, col, 2.0), rounded<H>(ce.backward(wide_view, col, 2.0))));
    }
    SECTION("probability targets: 16-bit beside 16-bit logits, float beside them computes in float")
    {
        const logits<H> p({6, 3, 37}, 12);
        const auto r16 = ce.forward_backward(x.low, p.low);
        const auto r32 = ce.forward_backward(x.wide, p.wide);
        CHECK(same_bits(r16.loss, rounded<H>(r32.loss)));
        CHECK(same_bits(r16.grad_logits, rounded<H>(r32.grad_logits)));
        const auto mixed = ce.forward_backward(x.low, p.wide);
        static_assert(std::is_same<typename decltype(mixed.loss)::value_type, float>::value,
                      "16-bit logits beside float targets compute in float");
        CHECK(mixed.loss() == r32.loss());
        CHECK(std::equal(mixed.grad_logits.begin(), mixed.grad_logits.end(), r32.grad_logits.begin()));
    }
    SECTION("_out into 16-bit outputs, and a float loss variable")
    {
        xt::xarray<H> grad = xt::xarray<H>::from_shape(x.low.shape());
        xt::xarray<H> loss = xt::xarray<H>::from_shape(r.loss.shape());
        ce.forward_backward_out(loss, grad, x.low, labels);
        CHECK(same_bits(loss, r.loss));
        CHECK(same_bits(grad, r.grad_logits));
        if (ce.options().reduction() != xloss::reduction::none)
        {
            float value = 0.f;
            H low_value{};
            ce.forward_backward_out(value, grad, x.low, labels);
            ce.forward_backward_out(low_value, grad, x.low, labels);
            CHECK(low_value.bits == r.loss().bits);
            // The loss as the 16-bit result holds it, whatever the output's type.
            CHECK(value == static_cast<float>(r.loss()));
        }
    }
}

TEMPLATE_TEST_CASE("the divergences on 16-bit logits are the float ones of their values, rounded", "[float16]",
                   xloss::bfloat16, xloss::half)
{
    using namespace float16_test;
    using H = TestType;
    const logits<H> s({5, 4, 53}, 3), t({5, 4, 53}, 4);
    const xt::xarray<long> labels = {
        {1, 2, -100, 4}, {5, 6, 7, 8}, {-100, -100, -100, -100}, {0, 52, 3, 9}, {10, 11, 12, 13}};

    const auto check = [&](const auto& loss, const auto& l)
    {
        const auto a = loss.forward_backward(s.low, t.low, l);
        const auto b = loss.forward_backward(s.wide, t.wide, l);
        CHECK(same_bits(a.loss, rounded<H>(b.loss)));
        CHECK(same_bits(a.grad_student, rounded<H>(b.grad_student)));
        CHECK(same_bits(a.grad_teacher, rounded<H>(b.grad_teacher)));
        CHECK(same_bits(a.soft_loss, rounded<H>(b.soft_loss)));
        CHECK(same_bits(a.hard_loss, rounded<H>(b.hard_loss)));
        CHECK(same_bits(loss(s.low, t.low, l), rounded<H>(loss(s.wide, t.wide, l))));
    };
    const auto none = xloss::reduction::none;
    SECTION("forward KL")
    {
        check(xloss::ForwardKLLoss(xloss::distill_options().teacher_grad(true)), labels);
        check(xloss::ForwardKLLoss(xloss::distill_options().temperature(2.).weight_hard(0.5).reduction(none)), labels);
    }
    SECTION("reverse KL")
    {
        check(xloss::ReverseKLLoss(xloss::distill_options().teacher_grad(true).reduction(xloss::reduction::sum)),
              labels);
    }
    SECTION("generalized JSD")
    {
        check(xloss::GeneralizedJSDLoss(xloss::jsd_options().beta(0.3).teacher_grad(true)), labels);
        check(xloss::GeneralizedJSDLoss(xloss::jsd_options().class_axis(1).reduction(none)), xloss::all_rows);
    }
    SECTION("symmetric KL")
    {
        check(xloss::SymmetricKLLoss(xloss::symmetric_kl_options().teacher_grad(true)), labels);
    }
    SECTION("_out, and a float teacher beside a 16-bit student (computed in float)")
    {
        const xloss::ForwardKLLoss kl;
        const auto a = kl.forward_backward(s.low, t.low, labels);
        H loss{};
        xt::xarray<H> grad = xt::xarray<H>::from_shape(s.low.shape());
        kl.forward_backward_out(loss, grad, s.low, t.low, labels);
        CHECK(loss.bits == a.loss().bits);
        CHECK(same_bits(grad, a.grad_student));
        const auto mixed = kl.forward_backward(s.low, t.wide, labels);
        static_assert(std::is_same<typename decltype(mixed.grad_student)::value_type, float>::value,
                      "a 16-bit argument beside a float one computes in float");
        CHECK(mixed.loss() == kl.forward_backward(s.wide, t.wide, labels).loss());
    }
}
