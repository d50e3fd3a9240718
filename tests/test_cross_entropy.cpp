// The cross-entropy from logits and class labels: golden values from PyTorch's own F.cross_entropy
// (tests/golden/generate_cross_entropy_golden.py), finite-difference checks with every option,
// errors, threads, flattened labels, empty means and the _out call.

#include "catch_compat.hpp"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <xloss/xloss.hpp>
#include XLOSS_XTENSOR_HEADER(views, xstrided_view.hpp)
#include XLOSS_XTENSOR_HEADER(views, xview.hpp)

#include "test_helpers.hpp"

namespace
{
    xloss::cross_entropy_options golden_options(const xloss_test::golden_case& c)
    {
        auto o = xloss::cross_entropy_options()
                     .reduction(xloss::parse_reduction(c.reduction))
                     .class_axis(static_cast<std::ptrdiff_t>(std::stol(c.options.at("axis"))))
                     .label_smoothing(std::stod(c.options.at("smoothing")))
                     .z_loss(std::stod(c.options.at("z_loss")))
                     .softcap(std::stod(c.options.at("softcap")));
        const auto w = c.tensors.find("weight");
        if (w != c.tensors.end())
        {
            o.weight(w->second.values);
        }
        return o;
    }

    /// A case against its labels (class indices) or probability targets (of V).
    template <class V, class L>
    void check_golden_case(const xloss_test::golden_case& c, const L& labels, double rtol, double atol)
    {
        INFO("case " << c.name);
        const xloss::CrossEntropyLoss loss(golden_options(c));
        const xt::xarray<V> x = c.tensors.at("logits").as<V>();
        const xt::xarray<double> expected = c.tensors.at("loss").as<double>();
        CHECK(xloss_test::compare(loss(x, labels), expected, rtol, atol) == "");
        if (c.tensors.count("grad") == 0)
        {
            return;
        }
        const xt::xarray<V> g = c.tensors.at("grad_output").as<V>();
        const xt::xarray<double> grad = c.tensors.at("grad").as<double>();
        CHECK(xloss_test::compare(loss.backward(x, labels, g), grad, rtol, atol) == "");
        if (c.reduction != "none")
        {
            // grad_output 1, scaled here: the fused call and the _out call agree with each other.
            const auto r = loss.forward_backward(x, labels);
            CHECK(xloss_test::compare(r.loss, expected, rtol, atol) == "");
            CHECK(xloss_test::compare(xt::xarray<double>(r.grad_logits * 0.75), grad, rtol, atol) == "");
            V value = 0;
            xt::xarray<V> out = xt::zeros_like(x);
            loss.forward_backward_out(value, out, x, labels);
            CHECK(xloss_test::same_values(out, r.grad_logits) == "");
            CHECK(xloss_test::same_values(xt::xarray<V>(value), r.loss) == "");
        }
    }

    /// sum(g * loss), for the finite differences (labels, or probability targets).
    template <class L>
    double weighted(const xloss::CrossEntropyLoss& loss, const xt::xarray<double>& x, const L& labels,
                    const xt::xarray<double>& g)
    {
        return xt::sum(loss(x, labels) * g)();
    }

    template <class L>
    void check_gradients(const xloss::CrossEntropyLoss& loss, const xt::xarray<double>& x, const L& labels,
                         const xt::xarray<double>& g)
    {
        const xt::xarray<double> grad = loss.backward(x, labels, g);
        const double h = 1e-6;
        for (std::size_t i = 0; i < x.size(); ++i)
        {
            xt::xarray<double> xp = x, xm = x;
            xp.flat(i) += h;
            xm.flat(i) -= h;
            const double numeric = (weighted(loss, xp, labels, g) - weighted(loss, xm, labels, g)) / (2 * h);
            INFO("element " << i);
            CHECK(grad.flat(i) == Approx(numeric).margin(1e-7).epsilon(1e-6));
        }
    }
}

TEST_CASE("cross_entropy matches PyTorch's F.cross_entropy", "[golden][cross_entropy]")
{
    const auto cases = xloss_test::read_golden(XLOSS_CROSS_ENTROPY_GOLDEN_FILE);
    REQUIRE(cases.size() >= 180);
    std::size_t soft = 0;
    for (const auto& c : cases)
    {
        const auto run = [&](auto v, double rtol, double atol)
        {
            using V = decltype(v);
            if (c.tensors.count("targets"))
            {
                ++soft;
                check_golden_case<V>(c, xt::xarray<V>(c.tensors.at("targets").as<V>()), rtol, atol);
            }
            else
            {
                check_golden_case<V>(c, xt::xarray<long long>(c.tensors.at("labels").as<long long>()), rtol, atol);
            }
        };
        if (c.dtype == "float")
        {
            run(float{}, 3e-5, 3e-6);
        }
        else
        {
            run(double{}, 1e-10, 1e-12);
        }
    }
    CHECK(soft == 54);
}

TEST_CASE("cross_entropy gradients match finite differences with every option", "[gradcheck][cross_entropy]")
{
    const xt::xarray<double> x = {{{0.3, -1.2, 2.0, 0.1, 0.7}, {1.5, 0.2, -0.7, 0.9, -2.0}},
                                  {{-0.4, 0.8, 0.05, -2.1, 1.2}, {0.6, 0.6, 1.1, -0.3, 0.0}}};
    const xt::xarray<int> labels = {{3, -100}, {0, 4}};
    const std::vector<double> w = {0.5, 1.5, 1.0, 2.0, 0.25};
    for (const auto r : {xloss::reduction::none, xloss::reduction::sum, xloss::reduction::mean})
    {
        const xt::xarray<double> g =
            r == xloss::reduction::none ? xt::xarray<double>{{0.7, -1.3}, {0.4, 1.1}} : xt::xarray<double>(0.75);
        for (const double eps : {0.0, 0.2})
        {
            for (const double cap : {0.0, 1.5})
            {
                INFO("reduction " << xloss::to_string(r) << ", smoothing " << eps << ", softcap " << cap);
                const auto o =
                    xloss::cross_entropy_options().class_axis(-1).reduction(r).label_smoothing(eps).softcap(cap).z_loss(
                        0.01);
                check_gradients(xloss::CrossEntropyLoss(o), x, labels, g);
                check_gradients(xloss::CrossEntropyLoss(xloss::cross_entropy_options(o).weight(w)), x, labels, g);
            }
        }
    }
    // PyTorch's layout: (N, C, d) with the classes on axis 1, rows gathered along the inner axis.
    const xt::xarray<double> y = xt::transpose(x, {0, 2, 1});
    check_gradients(xloss::CrossEntropyLoss(xloss::cross_entropy_options().label_smoothing(0.1).weight(w)), y, labels,
                    xt::xarray<double>(1.0));
}

TEST_CASE("cross_entropy with probability targets: gradients, masked classes, errors", "[gradcheck][cross_entropy]")
{
    const xt::xarray<double> x = {{{0.3, -1.2, 2.0, 0.1, 0.7}, {1.5, 0.2, -0.7, 0.9, -2.0}},
                                  {{-0.4, 0.8, 0.05, -2.1, 1.2}, {0.6, 0.6, 1.1, -0.3, 0.0}}};
    const xt::xarray<double> t = {{{0.1, 0.2, 0.3, 0.0, 0.4}, {0.0, 0.0, 1.0, 0.0, 0.0}},
                                  {{0.5, 0.25, 0.25, 0.0, 0.0}, {0.2, 0.2, 0.2, 0.2, 0.2}}};
    const std::vector<double> w = {0.5, 1.5, 1.0, 2.0, 0.25};
    for (const auto r : {xloss::reduction::none, xloss::reduction::sum, xloss::reduction::mean})
    {
        const xt::xarray<double> g =
            r == xloss::reduction::none ? xt::xarray<double>{{0.7, -1.3}, {0.4, 1.1}} : xt::xarray<double>(0.75);
        const auto o = xloss::cross_entropy_options().class_axis(-1).reduction(r);
        check_gradients(xloss::CrossEntropyLoss(o), x, t, g);
        check_gradients(xloss::CrossEntropyLoss(
                            xloss::cross_entropy_options(o).weight(w).label_smoothing(0.2).z_loss(0.01).softcap(1.5)),
                        x, t, g);
    }
    // The same targets as one-hot rows give the labels' loss; `mean` divides by the rows, not the weights.
    const xt::xarray<double> hot = {{0., 0., 0., 1., 0.}, {1., 0., 0., 0., 0.}};
    const xt::xarray<double> x2 = xt::view(x, 0, xt::all(), xt::all());
    const auto mean = xloss::cross_entropy_options().weight(w);
    CHECK(xloss::cross_entropy(x2, hot, mean)()
          == Approx(xt::sum(xloss::cross_entropy(x2, xt::xarray<int>{3, 0},
                                                 xloss::cross_entropy_options(mean).reduction("sum")))()
                    / 2)
                 .epsilon(1e-12));
    // A masked class (logit -inf) with target 0 adds nothing: no NaN (PyTorch's 0 * -inf is NaN);
    // with target mass the loss is +inf.
    xt::xarray<double> masked = x2;
    masked(0, 3) = -std::numeric_limits<double>::infinity();
    const xt::xarray<double> t2 = xt::view(t, 0, xt::all(), xt::all());
    const auto none = xloss::cross_entropy_options().reduction(xloss::reduction::none);
    const auto fb = xloss::CrossEntropyLoss(none).forward_backward(masked, t2);
    CHECK(std::isfinite(fb.loss(0)));
    CHECK(fb.grad_logits(0, 3) == 0.);
    CHECK(std::isfinite(fb.grad_logits(0, 0)));
    masked(0, 0) = -std::numeric_limits<double>::infinity();
    CHECK(xloss::cross_entropy(masked, t2, none)(0) == std::numeric_limits<double>::infinity());
    CHECK_THROWS_WITH((void)xloss::cross_entropy(x2, xt::xarray<double>{0.5, 0.5}),
                      "xloss::cross_entropy: probability targets of shape (2) and logits of shape (2, 5) differ "
                      "(class indices are integers)");
    CHECK_THROWS_WITH((void)xloss::cross_entropy(x2, t2, xloss::cross_entropy_options().ignore_index(0)),
                      "xloss::cross_entropy: ignore_index 0 is not supported with probability targets");
}

TEST_CASE("cross_entropy: class axes, flattened labels, empty means and the divisor", "[cross_entropy]")
{
    const xt::xarray<float> x = xloss_test::normal_logits({2, 3, 11}, 5);
    const xt::xarray<int> labels = {{1, 10, -100}, {0, 4, 7}};
    const auto lm = xloss::cross_entropy_options().class_axis(-1);
    const xt::xarray<float> mean = xloss::cross_entropy(x, labels, lm);
    // torchtune's flattened (B*S, V) logits with (B, S) labels, and flat labels.
    const xt::xarray<float> flat_x = xt::reshape_view(x, {6, 11});
    CHECK(xloss_test::same_values(xloss::cross_entropy(flat_x, labels, lm), mean) == "");
    CHECK(xloss_test::same_values(xloss::cross_entropy(x, xt::xarray<int>(xt::flatten(labels)), lm), mean) == "");
    CHECK_THROWS_WITH((void)xloss::cross_entropy(x, xt::xarray<int>{1, 2}, lm),
                      "xloss::cross_entropy: labels of shape (2) do not match the rows of the logits, of shape (2, 3) "
                      "(the logits' shape (2, 3, 11) without the class axis), nor have as many elements");
    // The default class axis is PyTorch's: 1 on (N, C, d), 0 on a 1-D input.
    const xt::xarray<float> moved = xt::transpose(x, {0, 2, 1});
    CHECK(xloss_test::compare(xloss::cross_entropy(moved, labels), mean, 1e-6, 0) == "");
    const xt::xarray<float> row = xt::view(x, 1, 2, xt::all());
    const xt::xarray<float> one = xloss::cross_entropy(row, xt::xarray<int>(7));
    const auto per_row = xloss::cross_entropy_options(lm).reduction(xloss::reduction::none);
    CHECK(one() == Approx(xloss::cross_entropy(x, labels, per_row)(1, 2)).epsilon(1e-6));
    // Sum over the kept rows, divided by the divisor given.
    const float sum = xloss::cross_entropy(x, labels, xloss::cross_entropy_options(lm).reduction("sum"))();
    CHECK(mean() == Approx(sum / 5).epsilon(1e-6));
    CHECK(xloss::cross_entropy(x, labels, xloss::cross_entropy_options(lm).divisor(20))()
          == Approx(sum / 20).epsilon(1e-6));
    // Every row ignored: NaN as PyTorch, or 0; the gradient is 0 either way.
    const xt::xarray<int> none = xt::full_like(labels, -100);
    CHECK(xloss_test::is_nan(xloss::cross_entropy(x, none, lm)()));
    const auto zero = xloss::cross_entropy_options(lm).empty_mean(xloss::empty_mean::zero);
    CHECK(xloss::cross_entropy(x, none, zero)() == 0.f);
    const auto r = xloss::CrossEntropyLoss(zero).forward_backward(x, none);
    CHECK(r.loss() == 0.f);
    CHECK(xt::all(xt::equal(r.grad_logits, 0.f)));
    // Labels of any integer type.
    const xt::xarray<unsigned char> small = {{1, 10, 0}, {0, 4, 7}};
    const xt::xarray<std::int64_t> wide = {{1, 10, 0}, {0, 4, 7}};
    CHECK(xloss_test::same_values(xloss::cross_entropy(x, small, lm), xloss::cross_entropy(x, wide, lm)) == "");
}

TEST_CASE("cross_entropy: soft-capping and the z-loss as their formulas", "[cross_entropy]")
{
    const xt::xarray<double> x = xloss_test::normal_logits({4, 9}, 8);
    const xt::xarray<int> labels = {3, 0, 8, 5};
    const auto o = xloss::cross_entropy_options().reduction(xloss::reduction::none);
    const xt::xarray<double> capped = 4.0 * xt::tanh(x / 4.0);
    CHECK(xloss_test::compare(xloss::cross_entropy(x, labels, xloss::cross_entropy_options(o).softcap(4.0)),
                              xloss::cross_entropy(capped, labels, o), 1e-13, 1e-14)
          == "");
    const xt::xarray<double> lse = xt::log(xt::sum(xt::exp(x), {1}));
    CHECK(xloss_test::compare(xloss::cross_entropy(x, labels, xloss::cross_entropy_options(o).z_loss(0.1)),
                              xloss::cross_entropy(x, labels, o) + 0.1 * lse * lse, 1e-13, 1e-14)
          == "");
}

TEST_CASE("cross_entropy errors name the function, the argument and the value", "[cross_entropy]")
{
    xt::xarray<float> x = xloss_test::normal_logits({2, 3, 4}, 3);
    const auto lm = xloss::cross_entropy_options().class_axis(-1);
    CHECK_THROWS_WITH((void)xloss::cross_entropy(x, xt::xarray<int>{{0, 4, 1}, {0, 0, 0}}, lm),
                      "xloss::cross_entropy: label 4 of row (0, 1) is not a class of 4 nor ignore_index (-100)");
    CHECK_THROWS_WITH((void)xloss::cross_entropy(x, xt::xarray<int>{{0, 1, 1}, {-1, 0, 0}}, lm),
                      "xloss::cross_entropy: label -1 of row (1, 0) is not a class of 4 nor ignore_index (-100)");
    CHECK_THROWS_WITH((void)xloss::cross_entropy(x, xt::xarray<int>{{0, 1, 1}, {1, 0, 0}},
                                                 xloss::cross_entropy_options(lm).weight({1., 2., 3.})),
                      "xloss::cross_entropy: weight of 3 classes for logits of 4 classes");
    CHECK_THROWS_WITH((void)xloss::cross_entropy(x, xt::xarray<int>{{0, 1, 1}, {1, 0, 0}},
                                                 xloss::cross_entropy_options(lm).reduction("batchmean")),
                      "xloss::cross_entropy: reduction batchmean is not one of none, mean, sum");
    CHECK_THROWS_WITH(xloss::cross_entropy_options().label_smoothing(1.5),
                      "xloss::cross_entropy_options::label_smoothing: label_smoothing must be in [0, 1], got 1.5");
    CHECK_THROWS_WITH(xloss::cross_entropy_options().z_loss(-1),
                      "xloss::cross_entropy_options::z_loss: z_loss must be positive or 0, got -1");
    CHECK_THROWS_WITH(xloss::cross_entropy_options().softcap(std::nan("")),
                      "xloss::cross_entropy_options::softcap: softcap must be positive, or 0 for none, got nan");
    CHECK_THROWS_WITH((void)xloss::cross_entropy(x, xt::xarray<int>{{0, 1, 1}, {1, 0, 0}},
                                                 xloss::cross_entropy_options(lm).class_axis(3)),
                      "xloss::cross_entropy: class_axis 3 is out of range for a tensor of 3 dimensions");
    const float inf = std::numeric_limits<float>::infinity();
    xt::view(x, 1, 2, xt::all()) = -inf;
    const xt::xarray<int> labels = {{0, 1, 1}, {1, 0, 0}};
    CHECK_THROWS_WITH((void)xloss::cross_entropy(x, labels, lm),
                      "xloss::cross_entropy: input row (1, 2) is all -inf: its softmax is undefined");
    // Ignored rows are never read; a masked class that is not the label is fine.
    CHECK(xloss_test::is_finite(xloss::cross_entropy(x, xt::xarray<int>{{0, 1, 1}, {1, 0, -100}}, lm)()));
    x(0, 0, 3) = inf;
    // Nothing written on an error, into the caller's outputs.
    xt::xarray<float> grad = xt::full_like(x, 7.f);
    float value = 7.f;
    CHECK_THROWS_WITH(xloss::CrossEntropyLoss(lm).forward_backward_out(value, grad, x, labels),
                      "xloss::CrossEntropyLoss::forward_backward_out: input row (0, 0) holds +inf: its softmax is "
                      "undefined");
    CHECK(value == 7.f);
    CHECK(xt::all(xt::equal(grad, 7.f)));
}

TEST_CASE("cross_entropy: threads, the _out call and aliasing", "[cross_entropy][threads]")
{
    const xt::xarray<float> x = xloss_test::normal_logits({300, 1000}, 11);
    xt::xarray<int> labels = xt::xarray<int>::from_shape({300});
    for (std::size_t i = 0; i < labels.size(); ++i)
    {
        labels(i) = i % 7 == 0 ? -100 : static_cast<int>((i * 37) % 1000);
    }
    const auto o = xloss::cross_entropy_options().label_smoothing(0.1).z_loss(1e-4).softcap(30);
    const auto one = xloss::CrossEntropyLoss(o).forward_backward(x, labels);
    const auto two = xloss::CrossEntropyLoss(xloss::cross_entropy_options(o).num_threads(xloss::has_openmp() ? 2 : 1))
                         .forward_backward(x, labels);
    CHECK(xloss_test::same_values(one.loss, two.loss) == "");
    CHECK(xloss_test::same_values(one.grad_logits, two.grad_logits) == "");
    // The separate calls and the fused one agree.
    const xloss::CrossEntropyLoss loss(o);
    CHECK(xloss_test::same_across_loops(loss(x, labels), one.loss) == "");
    CHECK(xloss_test::same_across_loops(loss.backward(x, labels), one.grad_logits) == "");
    // The gradient written over the logits it reads: computed aside first.
    xt::xarray<float> y = x;
    float value = 0.f;
    loss.forward_backward_out(value, y, y, labels);
    CHECK(value == one.loss());
    CHECK(xloss_test::same_values(y, one.grad_logits) == "");
    // The `none` loss into a caller's array.
    const xloss::CrossEntropyLoss per_row(xloss::cross_entropy_options(o).reduction(xloss::reduction::none));
    xt::xarray<float> rows = xt::zeros<float>({300}), grad = xt::zeros_like(x);
    per_row.forward_backward_out(rows, grad, x, labels);
    CHECK(xloss_test::same_values(rows, per_row(x, labels)) == "");
    CHECK(rows(0) == 0.f);
}

TEST_CASE("cross_entropy: a NaN logit makes its row NaN", "[cross_entropy]")
{
    xt::xarray<float> x = {{0.f, 0.f, 1.f, -2.f, 0.5f}, {1.f, 2.f, 3.f, 4.f, 5.f}};
    x(0, 1) = std::numeric_limits<float>::quiet_NaN();
    const xt::xarray<int> y = {0, 4};
    for (const double eps : {0.0, 0.1})
    {
        const auto o = xloss::cross_entropy_options().reduction(xloss::reduction::none).label_smoothing(eps);
        const auto r = xloss::CrossEntropyLoss(o).forward_backward(x, y);
        CHECK(xloss_test::is_nan(r.loss(0)));
        CHECK(xloss_test::is_finite(r.loss(1)));
        CHECK(xloss_test::is_nan(r.grad_logits(0, 2)));
    }
}
