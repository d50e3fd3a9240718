// Every framework's behaviour, against golden values computed with PyTorch from
// each framework's published formula (tests/golden/generate_semantics_golden.py):
// target policies, MXNet Gluon, reductions over axes, PyTorch's legacy arguments
// and the distillation loss from logits; then their options' errors.

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "catch_compat.hpp"

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xfixed.hpp)
#include XLOSS_XTENSOR_HEADER(views, xview.hpp)

#include <xloss/xloss.hpp>

#include "test_helpers.hpp"

using xloss::reduction;

namespace
{
    std::optional<bool> parse_optional_bool(const std::string& s)
    {
        if (s == "None")
        {
            return std::nullopt;
        }
        return s == "True";
    }

    std::vector<std::ptrdiff_t> parse_axes(const std::string& s)
    {
        std::vector<std::ptrdiff_t> axes;
        std::size_t pos = 0;
        while (pos < s.size())
        {
            const std::size_t comma = s.find(',', pos);
            axes.push_back(std::stol(s.substr(pos, comma - pos)));
            pos = comma == std::string::npos ? s.size() : comma + 1;
        }
        return axes;
    }

    /// The options a golden record's `options` line stands for.
    xloss::kl_div_options options_of(const xloss_test::golden_case& c)
    {
        const auto& o = c.options;
        if (o.count("gluon"))
        {
            return xloss::kl_div_options::gluon(o.at("from_logits") == "1", std::stol(o.at("axis")),
                                                std::stod(o.at("weight")), std::stol(o.at("batch_axis")));
        }
        if (o.count("size_average"))
        {
            auto opts = xloss::kl_div_options::legacy(parse_optional_bool(o.at("size_average")),
                                                      parse_optional_bool(o.at("reduce")));
            // The record's reduction is PyTorch's own legacy_get_string of the same arguments.
            CHECK(opts.reduction() == xloss::parse_reduction(c.reduction));
            return opts;
        }
        xloss::kl_div_options opts(xloss::parse_reduction(c.reduction), c.log_target);
        if (o.count("policy"))
        {
            opts.target_policy(xloss::target_policy::zero);
        }
        if (o.count("axes"))
        {
            opts.axes(parse_axes(o.at("axes")));
        }
        return opts;
    }

    template <class T>
    void check_loss_case(const xloss_test::golden_case& c, double rtol, double atol)
    {
        const auto x = c.tensors.at("input").as<T>();
        const auto t = c.tensors.at("target").as<T>();
        const auto g = c.tensors.at("grad_output").as<T>();
        const auto opts = options_of(c);
        INFO("case " << c.name);
        const auto& expect = [&](const char* name)
        {
            return c.tensors.at(name).as<T>();
        };
        if (c.tensors.count("sample_weight"))
        {
            const auto w = c.tensors.at("sample_weight").as<T>();
            CHECK(xloss_test::compare(xloss::kl_div(x, t, opts, w), expect("output"), rtol, atol) == "");
            CHECK(xloss_test::compare(xloss::kl_div_backward(g, x, t, opts, w), expect("grad_input"), rtol, atol)
                  == "");
            CHECK(
                xloss_test::compare(xloss::kl_div_target_backward(g, x, t, opts, w), expect("grad_target"), rtol, atol)
                == "");
            xloss::KLDivLoss loss(opts);
            CHECK(xloss_test::identical(loss(x, t, w), xloss::kl_div(x, t, opts, w)));
            CHECK(xloss_test::identical(loss.backward(x, t, g, w), xloss::kl_div_backward(g, x, t, opts, w)));
            return;
        }
        CHECK(xloss_test::compare(xloss::kl_div(x, t, opts), expect("output"), rtol, atol) == "");
        CHECK(xloss_test::compare(xloss::kl_div_backward(g, x, t, opts), expect("grad_input"), rtol, atol) == "");
        CHECK(xloss_test::compare(xloss::kl_div_target_backward(g, x, t, opts), expect("grad_target"), rtol, atol)
              == "");
        xloss::KLDivLoss loss(opts);
        CHECK(xloss_test::identical(loss(x, t), xloss::kl_div(x, t, opts)));
        CHECK(xloss_test::identical(loss.target_backward(x, t, g), xloss::kl_div_target_backward(g, x, t, opts)));
    }

    template <class T>
    void check_logits_case(const xloss_test::golden_case& c, double rtol, double atol)
    {
        const auto s = c.tensors.at("input").as<T>();
        const auto t = c.tensors.at("target").as<T>();
        const auto g = c.tensors.at("grad_output").as<T>();
        const double temperature = std::stod(c.options.at("temperature"));
        const std::ptrdiff_t axis = std::stol(c.options.at("axis"));
        const auto r = xloss::parse_reduction(c.reduction);
        INFO("case " << c.name);
        // Log-ratios carry the rounding of logits / T: the absolute tolerance grows with them.
        double magnitude = 1.;
        for (const auto& e : {s, t})
        {
            for (T v : e)
            {
                magnitude = xloss_test::is_finite(v) ? std::max(magnitude, std::abs(v) / temperature) : magnitude;
            }
        }
        atol *= magnitude;
        CHECK(xloss_test::compare(xloss::kl_div_with_logits(s, t, temperature, r, axis), c.tensors.at("output").as<T>(),
                                  rtol, atol)
              == "");
        CHECK(xloss_test::compare(xloss::kl_div_with_logits_backward(g, s, t, temperature, r, axis),
                                  c.tensors.at("grad_input").as<T>(), rtol, atol)
              == "");
        CHECK(xloss_test::compare(xloss::kl_div_with_logits_teacher_backward(g, s, t, temperature, r, axis),
                                  c.tensors.at("grad_target").as<T>(), rtol, atol)
              == "");
    }

    const std::vector<xloss_test::golden_case>& semantics_cases()
    {
        static const auto cases = xloss_test::read_golden(XLOSS_SEMANTICS_GOLDEN_FILE);
        return cases;
    }

    /// Runs every case whose name starts with `family`; returns how many ran.
    std::size_t run_family(const std::string& family)
    {
        std::size_t count = 0;
        for (const auto& c : semantics_cases())
        {
            if (c.name.rfind(family, 0) != 0)
            {
                continue;
            }
            ++count;
            const bool logits = family == "logits";
            if (c.dtype == "float")
            {
                logits ? check_logits_case<float>(c, 3e-5, 3e-6) : check_loss_case<float>(c, 2e-5, 2e-6);
            }
            else
            {
                logits ? check_logits_case<double>(c, 1e-10, 1e-12) : check_loss_case<double>(c, 1e-11, 1e-13);
            }
        }
        return count;
    }
}

TEST_CASE("target_policy::zero matches Paddle's and OneFlow's formula", "[golden][semantics]")
{
    CHECK(run_family("zero_") == 48);
}

TEST_CASE("kl_div_options::gluon matches MXNet Gluon's formula", "[golden][semantics]")
{
    CHECK(run_family("gluon_") == 14);
}

TEST_CASE("Reductions over chosen axes match kl_div(reduction='none') reduced by PyTorch", "[golden][semantics]")
{
    CHECK(run_family("axes_") == 48);
}

TEST_CASE("kl_div_options::legacy maps size_average and reduce as PyTorch does", "[golden][semantics]")
{
    CHECK(run_family("legacy_") == 9);
    CHECK(xloss::legacy_reduction(std::nullopt, std::nullopt) == reduction::mean);
    CHECK(xloss::legacy_reduction(false, std::nullopt) == reduction::sum);
    CHECK(xloss::legacy_reduction(true, false) == reduction::none);
}

TEST_CASE("kl_div_with_logits matches PyTorch's composition", "[golden][semantics][logits]")
{
    CHECK(run_family("logits") == 64);
}

TEST_CASE("OneFlow's documented example comes out exactly with target_policy::zero", "[semantics]")
{
    const xt::xarray<float> x = {-0.9021705f, 0.08798598f, 1.04686249f};
    const xt::xarray<float> t = {1.22386942f, -0.89729659f, 0.01615712f};
    auto opts = xloss::kl_div_options(reduction::none).target_policy(xloss::target_policy::zero);
    const auto none = xloss::kl_div(x, t, opts);
    // OneFlow prints 4 decimals: [1.3514, 0.0000, -0.0836], 0.4226, 5.7801.
    CHECK(std::round(none(0) * 1e4) / 1e4 == Approx(1.3514).margin(1e-9));
    CHECK(none(1) == 0.f);
    CHECK(std::round(none(2) * 1e4) / 1e4 == Approx(-0.0836).margin(1e-9));
    CHECK(std::round(xloss::kl_div(x, t, opts.reduction(reduction::mean))() * 1e4) / 1e4
          == Approx(0.4226).margin(1e-9));
    opts.reduction(reduction::sum).log_target(true);
    CHECK(std::round(xloss::kl_div(x, t, opts)() * 1e4) / 1e4 == Approx(5.7801).margin(1e-9));
    // Gradients are 0 where the target is not positive.
    const auto gx = xloss::kl_div_backward(1.f, x, t, opts.log_target(false));
    const auto gt = xloss::kl_div_target_backward(1.f, x, t, opts);
    CHECK(gx(1) == 0.f);
    CHECK(gt(1) == 0.f);
    CHECK(gx(0) == -t(0));
}

TEST_CASE("target_policy::checked throws std::domain_error at the first bad value", "[semantics][errors]")
{
    auto opts = xloss::kl_div_options(reduction::sum).target_policy(xloss::target_policy::checked);
    const xt::xarray<float> x = {{-1.f, -2.f, -0.5f}, {-1.f, -1.f, -1.f}};
    xt::xarray<float> t = {{0.5f, 0.f, 0.5f}, {0.2f, 0.3f, 0.5f}};
    // Valid data (a zero target included): PyTorch's numbers.
    CHECK(xloss::kl_div(x, t, opts)() == xloss::kl_div(x, t, reduction::sum)());

    auto message = [&](const auto& xs, const auto& ts, const xloss::kl_div_options& o)
    {
        try
        {
            xloss::kl_div(xs, ts, o);
        }
        catch (const std::domain_error& e)
        {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    xt::xarray<float> bad = t;
    bad(1, 1) = -0.25f;
    bad(1, 2) = -0.5f;
    CHECK(message(x, bad, opts)
          == "xloss::kl_div: target holds a negative or NaN probability at flat index 4: -0.25 "
             "(target_policy::checked)");
    bad(0, 2) = std::numeric_limits<float>::quiet_NaN();
    CHECK(message(x, bad, opts)
          == "xloss::kl_div: target holds a negative or NaN probability at flat index 2: nan (target_policy::checked)");
    xt::xarray<float> xnan = x;
    xnan(1, 0) = std::numeric_limits<float>::quiet_NaN();
    CHECK(message(xnan, t, opts) == "xloss::kl_div: input holds NaN at flat index 3: nan (target_policy::checked)");
    // A strided view is checked in its own row-major order.
    CHECK(message(xt::transpose(x), xt::transpose(bad), opts)
          == "xloss::kl_div: target holds a negative or NaN probability at flat index 3: -0.25 "
             "(target_policy::checked)");
    // In log space a negative target is valid; NaN is not.
    opts.log_target(true);
    CHECK(message(x, xt::xarray<float>{-1.f, -3.f, -0.1f}, opts) == "no exception");
    CHECK(message(x, xt::xarray<float>{-1.f, std::nanf(""), -0.1f}, opts)
          == "xloss::kl_div: target holds NaN at flat index 1: nan (target_policy::checked)");
    // The gradients check too, and outputs stay untouched.
    opts.log_target(false);
    xt::xarray<float> grad = xt::ones<float>({2, 3});
    CHECK_THROWS_AS(xloss::kl_div_backward_out(grad, 1.f, x, bad, opts), std::domain_error);
    CHECK(bool(grad == xt::ones<float>({2, 3})));
    // A long contiguous array: the bad value found in its block.
    xt::xarray<double> xl = xt::zeros<double>({5000});
    xt::xarray<double> tl = xt::ones<double>({5000});
    tl(4321) = -1.;
    CHECK(message(xl, tl, opts)
          == "xloss::kl_div: target holds a negative or NaN probability at flat index 4321: -1 "
             "(target_policy::checked)");
}

TEST_CASE("divisor: shards of a batch add up to the whole batch's loss and gradient", "[semantics]")
{
    xt::xarray<double> x = xt::log(xt::xarray<double>{{0.2, 0.8}, {0.5, 0.5}, {0.9, 0.1}, {0.3, 0.7}});
    xt::xarray<double> t = {{0.1, 0.9}, {0.6, 0.4}, {0.5, 0.5}, {0.25, 0.75}};
    for (auto r : {reduction::batchmean, reduction::mean})
    {
        const auto whole = xloss::kl_div_options(r);
        const auto shard = xloss::kl_div_options(r).divisor(r == reduction::batchmean ? 4. : 8.);
        const xt::xarray<double> x0 = xt::view(x, xt::range(0, 1)), x1 = xt::view(x, xt::range(1, 4));
        const xt::xarray<double> t0 = xt::view(t, xt::range(0, 1)), t1 = xt::view(t, xt::range(1, 4));
        CHECK(xloss::kl_div(x0, t0, shard)() + xloss::kl_div(x1, t1, shard)()
              == Approx(xloss::kl_div(x, t, whole)()).epsilon(1e-14));
        const auto g = xloss::kl_div_backward(1., x, t, whole);
        CHECK(xloss_test::compare(xloss::kl_div_backward(1., x1, t1, shard), xt::view(g, xt::range(1, 4)), 1e-15, 0)
              == "");
    }
}

TEST_CASE("input_logits: the gradient flows through the log-softmax to the logits", "[semantics]")
{
    // Finite differences in double, along an inner axis, with a sample weight and a scalar weight.
    xt::xarray<double> z = {{{0.3, -1.2}, {2.0, 0.1}, {-0.4, 0.7}}, {{1.1, 0.2}, {-2.0, 0.5}, {0.0, -0.3}}};
    xt::xarray<double> t = {{{0.2, 0.5}, {0.3, 0.0}, {0.5, 0.5}}, {{0.1, 0.6}, {0.8, 0.1}, {0.1, 0.3}}};
    const xt::xarray<double> w = {1.5, 0.5};
    const auto opts = xloss::kl_div_options(reduction::sum).input_logits(true).softmax_axis(1).weight(0.7);
    const auto grad = xloss::kl_div_backward(1.0, z, t, opts, w);
    for (std::size_t i = 0; i < z.size(); ++i)
    {
        xt::xarray<double> up = z, down = z;
        up.flat(i) += 1e-6;
        down.flat(i) -= 1e-6;
        const double fd = (xloss::kl_div(up, t, opts, w)() - xloss::kl_div(down, t, opts, w)()) / 2e-6;
        CHECK(grad.flat(i) == Approx(fd).epsilon(1e-6).margin(1e-8));
    }
}

TEST_CASE("kl_div_with_logits: gradients against finite differences, logits of any size", "[semantics][logits]")
{
    xt::xarray<double> s = {{0.3, -1.2, 2.0, 0.1, -0.4}, {1.1, 0.2, -2.0, 0.5, 0.0}};
    xt::xarray<double> t = {{0.5, 0.1, 1.0, -1.0, 0.2}, {-0.3, 0.9, 0.4, 0.4, -1.5}};
    t(1, 2) = -std::numeric_limits<double>::infinity(); // a class masked in the teacher
    const xt::xarray<double> gout = {{0.5, 1.0, -1.0, 2.0, 0.3}, {1.0, 0.0, 0.7, -0.2, 1.1}};
    for (auto r : {reduction::batchmean, reduction::sum, reduction::mean, reduction::none})
    {
        auto value = [&](const xt::xarray<double>& a, const xt::xarray<double>& b)
        {
            const auto out = xloss::kl_div_with_logits(a, b, 2.5, r);
            return r == reduction::none ? double(xt::sum(out * gout)()) : out();
        };
        const auto gs = r == reduction::none ? xloss::kl_div_with_logits_backward(gout, s, t, 2.5, r)
                                             : xloss::kl_div_with_logits_backward(1.0, s, t, 2.5, r);
        const auto gt = r == reduction::none ? xloss::kl_div_with_logits_teacher_backward(gout, s, t, 2.5, r)
                                             : xloss::kl_div_with_logits_teacher_backward(1.0, s, t, 2.5, r);
        for (std::size_t i = 0; i < s.size(); ++i)
        {
            xt::xarray<double> up = s, down = s;
            up.flat(i) += 1e-6;
            down.flat(i) -= 1e-6;
            CHECK(gs.flat(i) == Approx((value(up, t) - value(down, t)) / 2e-6).epsilon(1e-6).margin(1e-8));
            if (xloss_test::is_finite(t.flat(i)))
            {
                up = t;
                down = t;
                up.flat(i) += 1e-6;
                down.flat(i) -= 1e-6;
                CHECK(gt.flat(i) == Approx((value(s, up) - value(s, down)) / 2e-6).epsilon(1e-6).margin(1e-8));
            }
            else
            {
                CHECK(gt.flat(i) == 0.);
            }
        }
    }
    // Logits of +-1e4 and -inf: finite, and 0 where the teacher masks.
    xt::xarray<float> big_s = {{1e4f, -1e4f, 0.f, 5e3f}};
    xt::xarray<float> big_t = {{-1e4f, 1e4f, -std::numeric_limits<float>::infinity(), 1e4f}};
    const float loss = xloss::kl_div_with_logits(big_s, big_t, 1.0)();
    CHECK(xloss_test::is_finite(loss));
    // p = (0, 1/2, 0, 1/2), log q = (0, -2e4, -1e4, -5e3): KL = log(1/2) + (2e4 + 5e3) / 2.
    CHECK(loss == Approx(12500. + std::log(0.5)).epsilon(1e-6));
    const auto terms = xloss::kl_div_with_logits(big_s, big_t, 1.0, reduction::none);
    CHECK(terms(0, 2) == 0.f);
    CHECK(terms(0, 0) == 0.f);
}

TEST_CASE("Errors of the new options name the argument and the value", "[semantics][errors]")
{
    const xt::xarray<float> x = {{-1.f, -2.f}, {-0.5f, -1.f}};
    const xt::xarray<float> t = {{0.5f, 0.5f}, {0.2f, 0.8f}};
    auto message = [](auto&& f)
    {
        try
        {
            f();
        }
        catch (const std::invalid_argument& e)
        {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    using opts = xloss::kl_div_options;
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts(reduction::sum).axes({2}));
              })
          == "xloss::kl_div: axis in axes 2 is out of range for a tensor of 2 dimensions");
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts(reduction::sum).axes({1, -1}));
              })
          == "xloss::kl_div: axis -1 appears twice in axes");
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts(reduction::batchmean).axes({1}));
              })
          == "xloss::kl_div: axes (or per_sample) need reduction 'sum' or 'mean', not 'batchmean'");
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts::gluon(true, -1, 1., 3));
              })
          == "xloss::kl_div: batch_axis 3 is out of range for a tensor of 2 dimensions");
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts().input_logits(true).softmax_axis(-3));
              })
          == "xloss::kl_div: softmax_axis -3 is out of range for a tensor of 2 dimensions");
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts::gluon(), xt::xarray<float>{1.f, 2.f, 3.f});
              })
          == "xloss::kl_div: sample_weight of shape (3) does not broadcast to the shape (2, 2) of input and target");
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts().epsilon(-1.));
              })
          == "xloss::kl_div: epsilon must be finite and not negative, got -1");
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts(reduction::sum, true).epsilon(1e-12));
              })
          == "xloss::kl_div: epsilon 1e-12 applies to probability targets, but log_target is set");
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts().divisor(-4.));
              })
          == "xloss::kl_div_options::divisor: divisor must be positive or 0, got -4");
    CHECK(message(
              [&]
              {
                  xloss::kl_div(x, t, opts().weight(std::nan("")));
              })
          == "xloss::kl_div: weight must be finite, got nan");
    const float inf = std::numeric_limits<float>::infinity();
    const xt::xarray<float> masked = {{0.f, 1.f}, {-inf, -inf}};
    CHECK(message(
              [&]
              {
                  xloss::kl_div(masked, t, opts().input_logits(true));
              })
          == "xloss::kl_div: input row 1 along softmax_axis -1 is all -inf: its softmax is undefined");
    // Finite logits spanning more than FLT_MAX: x - max would be -inf, a finite logit read as masked.
    const float big = std::numeric_limits<float>::max();
    const xt::xarray<float> wide = {{0.f, 1.f}, {big, -big}};
    CHECK(message(
              [&]
              {
                  xloss::kl_div(wide, t, opts().input_logits(true));
              })
          == "xloss::kl_div: input row 1 along softmax_axis -1 spans more than the largest float (max - min of its "
             "logits): its log-probabilities are not representable");
    CHECK(xloss_test::is_finite(xloss::kl_div(xt::xarray<float>{{0.f, 1.f}, {big, big / 4}}, t,
                                              opts().input_logits(true))()));
    CHECK(message(
              [&]
              {
                  xloss::kl_div_with_logits(x, x, 0.);
              })
          == "xloss::kl_div_with_logits: temperature must be positive and at most xloss::max_temperature (100), got 0");
    CHECK(message(
              [&]
              {
                  xloss::kl_div_with_logits(x, x, -2.);
              })
          == "xloss::kl_div_with_logits: temperature must be positive and at most xloss::max_temperature (100), got -2");
    CHECK(message(
              [&]
              {
                  xloss::kl_div_with_logits(x, x, 1., reduction::sum, 2);
              })
          == "xloss::kl_div_with_logits: axis 2 is out of range for a tensor of 2 dimensions");
    CHECK(message(
              [&]
              {
                  xloss::kl_div_with_logits(x, xt::xarray<float>{1.f, 2.f}, 1.);
              })
          == "xloss::kl_div_with_logits: student_logits of shape (2, 2) and teacher_logits of shape (2) differ");
    CHECK(message(
              [&]
              {
                  xloss::kl_div_with_logits(x, masked, 1.);
              })
          == "xloss::kl_div_with_logits: teacher_logits row (1) is all -inf: its softmax is undefined");
    CHECK(message(
              [&]
              {
                  xloss::kl_div_with_logits_backward(1.f, masked, x, 1., reduction::sum, 0);
              })
          == "no exception");
    CHECK(message(
              [&]
              {
                  xloss::kl_div_with_logits_backward(1.f, masked, x, 1.);
              })
          == "xloss::kl_div_with_logits_backward: student_logits row (1) is all -inf: its softmax is undefined");
    CHECK(message(
              [&]
              {
                  xloss::kl_div_with_logits_backward(xt::xarray<float>{1.f, 2.f}, x, x, 1.);
              })
          == "xloss::kl_div_with_logits_backward: grad_output of shape (2) does not match the reduced loss's shape (); "
             "pass a 0-d expression or a scalar");
    CHECK(message(
              [&]
              {
                  xloss::kl_div_backward(xt::xarray<float>{1.f, 2.f, 3.f}, x, t, opts::gluon());
              })
          == "xloss::kl_div_backward: grad_output of shape (3) does not broadcast to the loss's shape (2)");
}

TEST_CASE("Calls into caller outputs with the new options: results, and untouched on throw", "[semantics][out]")
{
    const xt::xarray<float> z = {{0.3f, -1.2f, 2.f}, {1.1f, 0.2f, -2.f}};
    const xt::xarray<float> t = {{0.2f, 0.3f, 0.5f}, {0.f, 0.5f, 0.5f}};
    const auto g = xloss::kl_div_options::gluon(false);
    xt::xarray<float> loss = xt::zeros<float>({2});
    xloss::kl_div_out(loss, z, t, g);
    CHECK(xloss_test::identical(loss, xloss::kl_div(z, t, g)));
    xt::xarray<float> grad = xt::zeros<float>({2, 3});
    xloss::kl_div_backward_out(grad, 1.f, z, t, g);
    CHECK(xloss_test::identical(grad, xloss::kl_div_backward(1.f, z, t, g)));
    xt::xarray<float> fb_loss = xt::zeros<float>({2}), fb_grad = xt::zeros<float>({2, 3});
    xloss::kl_div_forward_backward_out(fb_loss, fb_grad, z, t, g);
    CHECK(xloss_test::identical(fb_loss, loss));
    CHECK(xloss_test::identical(fb_grad, grad));

    // A loss of shape (2) does not go into a scalar or a container of another shape that cannot be
    // resized (an xt::xarray would be).
    float scalar = 7.f;
    CHECK_THROWS_WITH(xloss::kl_div_out(scalar, z, t, g),
                      "xloss::kl_div_out: out is a scalar, but the loss has shape (2)");
    CHECK(scalar == 7.f);
    xt::xtensor_fixed<float, xt::xshape<3>> wrong = {1.f, 1.f, 1.f};
    CHECK_THROWS_WITH(xloss::kl_div_out(wrong, z, t, g),
                      "xloss::kl_div_out: out of shape (3) does not match the loss's shape (2)");
    CHECK(bool(wrong == xt::ones<float>({3})));
    xt::xarray<float> resized = xt::ones<float>({3});
    CHECK(xloss_test::identical(xloss::kl_div_out(resized, z, t, g), xloss::kl_div(z, t, g)));
    const float inf = std::numeric_limits<float>::infinity();
    const xt::xarray<float> masked = {{0.f, 1.f, 2.f}, {-inf, -inf, -inf}};
    CHECK_THROWS_AS(xloss::kl_div_backward_out(grad, 1.f, masked, t, g), std::invalid_argument);
    CHECK(xloss_test::identical(grad, xloss::kl_div_backward(1.f, z, t, g)));
}

TEST_CASE("kl_div_with_logits_forward_backward gives the separate calls' numbers bit for bit", "[semantics][logits]")
{
    xt::xarray<float> s = xt::xarray<float>::from_shape({3, 4, 21});
    xt::xarray<float> t = xt::xarray<float>::from_shape({3, 4, 21});
    for (std::size_t i = 0; i < s.size(); ++i)
    {
        s.flat(i) = std::sin(0.7f * float(i)) * 4.f;
        t.flat(i) = std::cos(0.3f * float(i)) * 3.f;
    }
    for (std::ptrdiff_t axis : {-1, 1})
    {
        for (auto r : {reduction::batchmean, reduction::sum, reduction::mean, reduction::none})
        {
            const auto fb = xloss::kl_div_with_logits_forward_backward(s, t, 3.0, r, axis, true);
            // Gradients bit for bit (under -ffast-math, and with g++ 14 and later, to a few ulp: each loop
            // may contract its formula differently); the loss to the last bits: a call that keeps the
            // exponentials of its first pass computes log p as one fused multiply-add where the compiler
            // contracts scalar code (g++ 14 does), a loss-only call as two roundings.
            CHECK(xloss_test::close_to_largest(fb.loss, xloss::kl_div_with_logits(s, t, 3.0, r, axis)) == "");
            CHECK(xloss_test::same_across_loops(fb.grad_input,
                                                xloss::kl_div_with_logits_backward(1.f, s, t, 3.0, r, axis))
                  == "");
            CHECK(xloss_test::same_across_loops(fb.grad_target,
                                                xloss::kl_div_with_logits_teacher_backward(1.f, s, t, 3.0, r, axis))
                  == "");
            const auto student_only = xloss::kl_div_with_logits_forward_backward(s, t, 3.0, r, axis);
            CHECK(xloss_test::same_across_loops(student_only.grad_input, fb.grad_input) == "");
            CHECK(student_only.grad_target.size() == 0);
        }
    }
    // A view (not contiguous) gives the numbers of its contiguous copy.
    const auto sv = xt::view(s, xt::all(), 1, xt::all());
    const auto tv = xt::view(t, xt::all(), 1, xt::all());
    CHECK(xloss_test::identical(xloss::kl_div_with_logits(sv, tv, 2.0),
                                xloss::kl_div_with_logits(xt::xarray<float>(sv), xt::xarray<float>(tv), 2.0)));
}

TEST_CASE("Weights and axes on arrays larger than the general path's pieces, against a reference in double",
          "[semantics]")
{
    // 3 rows of 40,000: the pieces of 2^16 elements begin inside a row. Terms, weights and sums in
    // double by plain loops; xloss in float.
    const std::size_t rows = 3, cols = 40000;
    xt::xarray<float> x = xt::xarray<float>::from_shape({rows, cols});
    xt::xarray<float> t = xt::xarray<float>::from_shape({rows, cols});
    xt::xarray<float> gout = xt::xarray<float>::from_shape({rows, cols});
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        t.flat(i) = i % 7 == 0 ? 0.f : float(0.1 + 0.8 * std::fmod(0.618034 * double(i), 1.0));
        x.flat(i) = float(-3.0 * std::fmod(0.414214 * double(i), 1.0));
        gout.flat(i) = float(std::fmod(0.271828 * double(i), 1.0) - 0.3);
    }
    xt::xarray<float> row_weight = xt::xarray<float>::from_shape({rows, 1});
    row_weight(0, 0) = 0.5f;
    row_weight(1, 0) = 2.0f;
    row_weight(2, 0) = 1.25f;
    xt::xarray<float> class_weight = xt::xarray<float>::from_shape({cols});
    for (std::size_t j = 0; j < cols; ++j)
    {
        class_weight(j) = float(0.5 + std::fmod(0.1 * double(j), 1.0));
    }
    const double k = 0.75;
    auto term = [&](std::size_t i)
    {
        const double tv = t.flat(i);
        return tv == 0. ? 0. : tv * (std::log(tv) - double(x.flat(i)));
    };
    for (int which : {0, 1})
    {
        auto weight = [&](std::size_t r, std::size_t c)
        {
            return (which == 0 ? double(row_weight(r, 0)) : double(class_weight(c))) * k;
        };
        auto check = [&](const auto& w)
        {
            using O = xloss::kl_div_options;
            std::vector<double> by_row(rows, 0.), by_class(cols, 0.);
            double total = 0.;
            const auto none = xloss::kl_div(x, t, O(reduction::none).weight(k), w);
            for (std::size_t r = 0; r < rows; ++r)
            {
                for (std::size_t c = 0; c < cols; ++c)
                {
                    const double v = term(r * cols + c) * weight(r, c);
                    by_row[r] += v;
                    by_class[c] += v;
                    total += v;
                    REQUIRE(none(r, c) == Approx(v).epsilon(1e-5).margin(1e-6));
                }
            }
            CHECK(xloss::kl_div(x, t, O(reduction::sum).weight(k), w)() == Approx(total).epsilon(1e-5));
            const auto per_row = xloss::kl_div(x, t, O(reduction::mean).weight(k).per_sample(), w);
            REQUIRE(per_row.shape()[0] == rows);
            for (std::size_t r = 0; r < rows; ++r)
            {
                CHECK(per_row(r) == Approx(by_row[r] / double(cols)).epsilon(1e-5));
            }
            const auto per_class = xloss::kl_div(x, t, O(reduction::sum).weight(k).axes({0}), w);
            for (std::size_t c = 0; c < cols; c += 997)
            {
                CHECK(per_class(c) == Approx(by_class[c]).epsilon(1e-5).margin(1e-6));
            }
            // The input gradient: per-element grad_output of the `none` loss, and one value for `sum`.
            const auto g = xloss::kl_div_backward(gout, x, t, O(reduction::none).weight(k), w);
            const auto g1 = xloss::kl_div_backward(2.0, x, t, O(reduction::sum).weight(k), w);
            for (std::size_t i = 0; i < x.size(); i += 13)
            {
                const std::size_t r = i / cols, c = i % cols;
                const double dt = -double(t.flat(i)) * weight(r, c);
                CHECK(g.flat(i) == Approx(dt * double(gout.flat(i))).epsilon(1e-5).margin(1e-7));
                CHECK(g1.flat(i) == Approx(2.0 * dt).epsilon(1e-5).margin(1e-7));
            }
            // Threads split the pieces; sums over them stay the same to the bit.
            if (xloss::has_openmp())
            {
                CHECK(xloss::kl_div(x, t, O(reduction::sum).weight(k).num_threads(2), w)()
                      == xloss::kl_div(x, t, O(reduction::sum).weight(k), w)());
            }
        };
        if (which == 0)
        {
            check(row_weight);
        }
        else
        {
            check(class_weight);
        }
    }
}
