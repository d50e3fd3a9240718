// The fused linear cross-entropy: golden values from PyTorch's F.cross_entropy(F.linear(h, W, b), y)
// (tests/golden/generate_fused_linear_golden.py), agreement with cross_entropy() on logits computed
// in double for every chunk size, finite differences, accumulation, the workspace, errors, threads
// and aliasing.

#include "catch_compat.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <xloss/fused_linear.hpp>
#include <xloss/xloss.hpp>
#include XLOSS_XTENSOR_HEADER(views, xview.hpp)

#include "test_helpers.hpp"

namespace fused_linear_test
{
    template <class V>
    using fused_linear_result_of = xloss::fused_linear_result<V>;

    xloss::cross_entropy_options golden_options(const xloss_test::golden_case& c)
    {
        auto o = xloss::cross_entropy_options()
                     .reduction(xloss::parse_reduction(c.reduction))
                     .label_smoothing(std::stod(c.options.at("smoothing")))
                     .z_loss(std::stod(c.options.at("z_loss")))
                     .softcap(std::stod(c.options.at("softcap")));
        const auto w = c.tensors.find("class_weight");
        if (w != c.tensors.end())
        {
            o.weight(w->second.values);
        }
        return o;
    }

    template <class V, class Head>
    void check_golden_result(const xloss_test::golden_case& c, const Head&, const xloss::fused_linear_result<V>& r,
                             double rtol, double atol)
    {
        CHECK(xloss_test::compare(r.loss, c.tensors.at("loss").as<double>(), rtol, atol) == "");
        if (c.tensors.count("grad_hidden") == 0)
        {
            // Every row ignored: no gradient.
            CHECK(xt::all(xt::equal(r.grad_hidden, V(0))));
            CHECK(xt::all(xt::equal(r.grad_weight, V(0))));
            return;
        }
        CHECK(xloss_test::compare(r.grad_hidden, c.tensors.at("grad_hidden").as<double>(), rtol, atol) == "");
        CHECK(xloss_test::compare(r.grad_weight, c.tensors.at("grad_weight").as<double>(), rtol, atol) == "");
        if (Head::has_bias)
        {
            CHECK(xloss_test::compare(r.grad_bias, c.tensors.at("grad_bias").as<double>(), rtol, atol) == "");
        }
        else
        {
            CHECK(r.grad_bias.size() == 0);
        }
    }

    template <class V>
    void check_golden_case(const xloss_test::golden_case& c, double rtol, double atol)
    {
        INFO("case " << c.name);
        const xt::xarray<V> h = c.tensors.at("hidden").as<V>();
        const xt::xarray<V> w = c.tensors.at("weight").as<V>();
        const xt::xarray<long long> labels = c.tensors.at("labels").as<long long>();
        const auto options = golden_options(c);
        for (const std::size_t chunk : {1, 2, 0})
        {
            INFO("chunk rows " << chunk);
            const xloss::FusedLinearCrossEntropyLoss loss(options, xloss::fused_linear_options().chunk_rows(chunk));
            if (c.tensors.count("bias"))
            {
                const xt::xarray<V> b = c.tensors.at("bias").as<V>();
                CHECK(xloss_test::compare(loss(h, xloss::linear(w, b), labels), c.tensors.at("loss").as<double>(), rtol,
                                          atol)
                      == "");
                check_golden_result(c, xloss::linear(w, b), loss.forward_backward(h, xloss::linear(w, b), labels), rtol,
                                    atol);
            }
            else
            {
                check_golden_result(c, xloss::linear(w), loss.forward_backward(h, xloss::linear(w), labels), rtol,
                                    atol);
            }
        }
    }

    /// A divergence case's options and the fused loss's call for its loss name.
    template <class V>
    fused_linear_result_of<V> run_divergence(const xloss_test::golden_case& c, std::size_t chunk)
    {
        const xt::xarray<V> h = c.tensors.at("hidden").as<V>(), w = c.tensors.at("weight").as<V>(),
                            b = c.tensors.at("bias").as<V>();
        const xt::xarray<long long> labels = c.tensors.at("labels").as<long long>();
        const std::string loss = c.options.at("loss");
        const double param = std::stod(c.options.at("param")), wh = std::stod(c.options.at("weight_hard"));
        auto set = [&](auto o)
        {
            return o.reduction(xloss::parse_reduction(c.reduction))
                .temperature(std::stod(c.options.at("temperature")))
                .weight_hard(wh)
                .weight_soft(std::stod(c.options.at("weight_soft")));
        };
        const auto linear = xloss::fused_linear_options().chunk_rows(chunk);
        auto run = [&](const auto& module)
        {
            if (c.options.at("teacher") == "layer")
            {
                const xt::xarray<V> th = c.tensors.at("teacher_hidden").as<V>(),
                                    tw = c.tensors.at("teacher_weight").as<V>(),
                                    tb = c.tensors.at("teacher_bias").as<V>();
                return module.forward_backward(h, xloss::linear(w, b), xloss::teacher_layer(th, xloss::linear(tw, tb)),
                                               labels);
            }
            const xt::xarray<V> tl = c.tensors.at("teacher_logits").as<V>();
            return module.forward_backward(h, xloss::linear(w, b), tl, labels);
        };
        if (loss == "forward_kl")
        {
            return run(xloss::FusedLinearForwardKLLoss(set(xloss::distill_options()), linear));
        }
        if (loss == "reverse_kl")
        {
            return run(xloss::FusedLinearReverseKLLoss(set(xloss::distill_options()), linear));
        }
        if (loss == "generalized_jsd")
        {
            return run(xloss::FusedLinearGeneralizedJSDLoss(set(xloss::jsd_options()).beta(param), linear));
        }
        return run(xloss::FusedLinearSymmetricKLLoss(set(xloss::symmetric_kl_options()).ratio(param), linear));
    }

    /// h W^T + b in double, the reference logits.
    xt::xarray<double> reference_logits(const xt::xarray<double>& h, const xt::xarray<double>& w,
                                        const xt::xarray<double>& b)
    {
        const std::size_t hidden = w.shape()[1], classes = w.shape()[0], rows = h.size() / hidden;
        xt::xarray<double> z = xt::zeros<double>({rows, classes});
        for (std::size_t i = 0; i < rows; ++i)
        {
            for (std::size_t j = 0; j < classes; ++j)
            {
                double s = b.size() ? b(j) : 0.;
                for (std::size_t k = 0; k < hidden; ++k)
                {
                    s += h.flat(i * hidden + k) * w(j, k);
                }
                z(i, j) = s;
            }
        }
        return z;
    }

    /// The layer's gradients from the logits' gradient G, in double: G W, G^T h, column sums of G.
    struct reference_grads
    {
        xt::xarray<double> hidden, weight, bias;

        reference_grads(const xt::xarray<double>& g, const xt::xarray<double>& h, const xt::xarray<double>& w)
            : hidden(xt::zeros<double>(h.shape()))
            , weight(xt::zeros<double>(w.shape()))
            , bias(xt::zeros<double>({w.shape()[0]}))
        {
            const std::size_t hs = w.shape()[1], classes = w.shape()[0], rows = g.shape()[0];
            for (std::size_t i = 0; i < rows; ++i)
            {
                for (std::size_t j = 0; j < classes; ++j)
                {
                    bias(j) += g(i, j);
                    for (std::size_t k = 0; k < hs; ++k)
                    {
                        hidden.flat(i * hs + k) += g(i, j) * w(j, k);
                        weight(j, k) += g(i, j) * h.flat(i * hs + k);
                    }
                }
            }
        }
    };

    struct layer
    {
        xt::xarray<float> h, w, b;
        xt::xarray<int> labels;
    };

    /// 3 x 7 tokens of hidden size 24 over 300 classes, every third label ignored.
    layer random_layer()
    {
        layer l;
        l.h = xloss_test::normal_logits({3, 7, 24}, 5) * 0.5f;
        l.w = xloss_test::normal_logits({300, 24}, 6) * 0.3f;
        l.b = xt::view(xloss_test::normal_logits({1, 300}, 7), 0, xt::all());
        l.labels = xt::xarray<int>::from_shape({3, 7});
        for (std::size_t i = 0; i < l.labels.size(); ++i)
        {
            l.labels.flat(i) = i % 3 == 1 ? -100 : static_cast<int>((i * 37) % 300);
        }
        return l;
    }
}

TEST_CASE("fused_linear_cross_entropy matches PyTorch's F.cross_entropy(F.linear(h, W, b), y)", "[golden][linear]")
{
    const auto cases = xloss_test::read_golden(XLOSS_FUSED_LINEAR_GOLDEN_FILE);
    REQUIRE(cases.size() >= 196);
    for (const auto& c : cases)
    {
        if (c.options.count("loss"))
        {
            continue; // a divergence's case
        }
        if (c.dtype == "float")
        {
            fused_linear_test::check_golden_case<float>(c, 3e-5, 3e-6);
        }
        else
        {
            fused_linear_test::check_golden_case<double>(c, 1e-10, 1e-12);
        }
    }
}

TEST_CASE("fused_linear_cross_entropy equals cross_entropy on the logits, for every chunk size", "[linear]")
{
    const fused_linear_test::layer l = fused_linear_test::random_layer();
    const xt::xarray<double> hd = l.h, wd = l.w, bd = l.b;
    const xt::xarray<double> z = fused_linear_test::reference_logits(hd, wd, bd);
    const xt::xarray<int> flat_labels = xt::flatten(l.labels);
    for (const auto r : {xloss::reduction::none, xloss::reduction::mean, xloss::reduction::sum})
    {
        auto options = xloss::cross_entropy_options().reduction(r).class_axis(-1).label_smoothing(0.05).z_loss(1e-4);
        const auto expected = xloss::CrossEntropyLoss(options).forward_backward(z, flat_labels);
        const fused_linear_test::reference_grads grads(expected.grad_logits, hd, wd);
        xt::xarray<double> loss = expected.loss;
        if (r == xloss::reduction::none)
        {
            loss.reshape({3, 7});
        }
        for (const std::size_t chunk : {1, 4, 13, 21, 0})
        {
            INFO("reduction " << xloss::to_string(r) << ", chunk rows " << chunk);
            const auto got = xloss::fused_linear_cross_entropy_forward_backward(
                l.h, xloss::linear(l.w, l.b), l.labels, options, xloss::fused_linear_options().chunk_rows(chunk));
            CHECK(xloss_test::compare(got.loss, loss, 2e-5, 2e-6) == "");
            CHECK(xloss_test::compare(got.grad_hidden, grads.hidden, 2e-5, 2e-6) == "");
            CHECK(xloss_test::compare(got.grad_weight, grads.weight, 2e-5, 2e-6) == "");
            CHECK(xloss_test::compare(got.grad_bias, grads.bias, 2e-5, 2e-6) == "");
            CHECK(
                xloss_test::compare(xloss::fused_linear_cross_entropy(l.h, xloss::linear(l.w, l.b), l.labels, options),
                                    loss, 2e-5, 2e-6)
                == "");
        }
    }
}

TEST_CASE("fused_linear_cross_entropy gradients match finite differences", "[gradcheck][linear]")
{
    const xt::xarray<double> h = {{0.3, -1.2, 0.5}, {1.5, 0.2, -0.7}, {-0.4, 0.8, 0.05}, {0.6, 0.6, 1.1}};
    const xt::xarray<double> w = {
        {0.2, -0.5, 0.1}, {0.7, 0.3, -0.2}, {-0.6, 0.4, 0.9}, {0.05, -0.8, 0.3}, {0.5, 0.5, -0.4}};
    const xt::xarray<double> b = {0.1, -0.2, 0.3, 0.0, -0.1};
    const xt::xarray<int> labels = {3, -100, 0, 4};
    const auto options = xloss::cross_entropy_options().label_smoothing(0.1).z_loss(1e-2).softcap(1.5).weight(
        std::vector<double>{0.5, 1.5, 1.0, 2.0, 0.25});
    const auto linear = xloss::fused_linear_options().chunk_rows(2);
    const auto r = xloss::fused_linear_cross_entropy_forward_backward(h, xloss::linear(w, b), labels, options, linear);
    auto value = [&](const xt::xarray<double>& hh, const xt::xarray<double>& ww, const xt::xarray<double>& bb)
    {
        return xloss::fused_linear_cross_entropy(hh, xloss::linear(ww, bb), labels, options, linear)();
    };
    const double step = 1e-6;
    auto check = [&](const xt::xarray<double>& grad, auto perturbed)
    {
        for (std::size_t i = 0; i < grad.size(); ++i)
        {
            const double numeric = (perturbed(i, step) - perturbed(i, -step)) / (2 * step);
            INFO("element " << i);
            CHECK(grad.flat(i) == Approx(numeric).margin(1e-7).epsilon(1e-6));
        }
    };
    check(r.grad_hidden,
          [&](std::size_t i, double d)
          {
              xt::xarray<double> x = h;
              x.flat(i) += d;
              return value(x, w, b);
          });
    check(r.grad_weight,
          [&](std::size_t i, double d)
          {
              xt::xarray<double> x = w;
              x.flat(i) += d;
              return value(h, x, b);
          });
    check(r.grad_bias,
          [&](std::size_t i, double d)
          {
              xt::xarray<double> x = b;
              x.flat(i) += d;
              return value(h, w, x);
          });
    CHECK(xt::all(xt::equal(xt::view(r.grad_hidden, 1, xt::all()), 0.)));
}

TEST_CASE("fused_linear_cross_entropy: accumulation, the workspace, threads and aliasing", "[linear][threads]")
{
    const fused_linear_test::layer l = fused_linear_test::random_layer();
    const auto head = xloss::linear(l.w, l.b);
    const auto once = xloss::fused_linear_cross_entropy_forward_backward(l.h, head, l.labels);

    SECTION("accumulate adds each call's gradients to the result's")
    {
        const xloss::FusedLinearCrossEntropyLoss loss(
            {}, xloss::fused_linear_options().chunk_rows(5).gradient_write(xloss::gradient_write::accumulate));
        xloss::fused_linear_result<float> r;
        xloss::fused_linear_workspace<float> ws;
        loss.forward_backward_out(l.h, head, l.labels, r, ws);
        CHECK(xloss_test::compare(r.grad_weight, once.grad_weight, 1e-5, 1e-6) == "");
        loss.forward_backward_out(l.h, head, l.labels, r, ws);
        CHECK(xloss_test::compare(r.grad_hidden, xt::xarray<double>(2. * once.grad_hidden), 1e-5, 1e-6) == "");
        CHECK(xloss_test::compare(r.grad_weight, xt::xarray<double>(2. * once.grad_weight), 1e-5, 1e-6) == "");
        CHECK(xloss_test::compare(r.grad_bias, xt::xarray<double>(2. * once.grad_bias), 1e-5, 1e-6) == "");
        // Ignored rows keep what they held: 0 here.
        CHECK(xt::all(xt::equal(xt::view(r.grad_hidden, 0, 1, xt::all()), 0.f)));
    }

    SECTION("a kept workspace and result are reused; a budget sets the chunk")
    {
        const xloss::FusedLinearCrossEntropyLoss loss(
            {}, xloss::fused_linear_options().workspace_bytes(3 * (2 * 24 + 2 * 300 + 1) * sizeof(float) + 3 * 8));
        xloss::fused_linear_result<float> r;
        xloss::fused_linear_workspace<float> ws;
        loss.forward_backward_out(l.h, head, l.labels, r, ws);
        const float* kept = r.grad_weight.data();
        // Three rows per chunk: two (3 x 300) and two (3 x 24) arrays, three losses.
        CHECK(ws.bytes() >= 3 * (2 * 24 + 2 * 300 + 1) * sizeof(float));
        CHECK(ws.bytes() < 4 * (2 * 24 + 2 * 300 + 1) * sizeof(float) + 14 * 8 * 4);
        r.grad_weight.fill(7.f);
        loss.forward_backward_out(l.h, head, l.labels, r, ws);
        CHECK(r.grad_weight.data() == kept);
        CHECK(xloss_test::compare(r.grad_weight, once.grad_weight, 1e-5, 1e-6) == "");
        CHECK(xloss_test::compare(r.loss, once.loss, 1e-6, 1e-7) == "");
    }

    SECTION("threads give bit-identical results")
    {
        const int threads = xloss::has_openmp() ? 2 : 1;
        const auto r = xloss::fused_linear_cross_entropy_forward_backward(
            l.h, head, l.labels, xloss::cross_entropy_options().num_threads(threads),
            xloss::fused_linear_options().chunk_rows(4));
        const auto one = xloss::fused_linear_cross_entropy_forward_backward(
            l.h, head, l.labels, {}, xloss::fused_linear_options().chunk_rows(4));
        CHECK(xloss_test::identical(r.loss, one.loss));
        CHECK(xloss_test::identical(r.grad_hidden, one.grad_hidden));
        CHECK(xloss_test::identical(r.grad_weight, one.grad_weight));
    }

    SECTION("a result that holds an input is computed aside")
    {
        xloss::fused_linear_result<float> r;
        r.grad_weight = l.w;
        xloss::fused_linear_workspace<float> ws;
        xloss::FusedLinearCrossEntropyLoss().forward_backward_out(l.h, xloss::linear(r.grad_weight, l.b), l.labels, r,
                                                                  ws);
        CHECK(xloss_test::same_values(r.grad_weight, once.grad_weight) == "");
        CHECK(xloss_test::same_values(r.grad_hidden, once.grad_hidden) == "");
    }

    SECTION("without a bias, and non-contiguous hidden states")
    {
        const xt::xarray<float> wide = xt::concatenate(xt::xtuple(l.h, l.h), 2);
        const auto strided = xt::view(wide, xt::all(), xt::all(), xt::range(0, 24));
        const auto a = xloss::fused_linear_cross_entropy_forward_backward(strided, xloss::linear(l.w), l.labels);
        const auto b = xloss::fused_linear_cross_entropy_forward_backward(l.h, xloss::linear(l.w), l.labels);
        CHECK(xloss_test::identical(a.grad_hidden, b.grad_hidden));
        CHECK(xloss_test::identical(a.grad_weight, b.grad_weight));
        CHECK(a.grad_bias.size() == 0);
    }
}

TEST_CASE("fused_linear_cross_entropy: every row ignored, and the empty mean", "[linear]")
{
    const fused_linear_test::layer l = fused_linear_test::random_layer();
    const xt::xarray<int> none = xt::full_like(l.labels, -100);
    const auto nan_mean = xloss::fused_linear_cross_entropy_forward_backward(l.h, xloss::linear(l.w, l.b), none);
    CHECK(xloss_test::is_nan(nan_mean.loss()));
    CHECK(xt::all(xt::equal(nan_mean.grad_weight, 0.f)));
    CHECK(xt::all(xt::equal(nan_mean.grad_bias, 0.f)));
    CHECK(xt::all(xt::equal(nan_mean.grad_hidden, 0.f)));
    const auto zero = xloss::fused_linear_cross_entropy_forward_backward(
        l.h, xloss::linear(l.w, l.b), none, xloss::cross_entropy_options().empty_mean(xloss::empty_mean::zero));
    CHECK(zero.loss() == 0.f);
}

TEST_CASE("fused_linear_cross_entropy errors name the function, the argument and the value", "[linear]")
{
    const fused_linear_test::layer l = fused_linear_test::random_layer();
    using xloss_test::contains;
    const xt::xarray<float> narrow = xt::view(l.w, xt::all(), xt::range(0, 20));
    CHECK_THROWS_WITH(xloss::fused_linear_cross_entropy(l.h, xloss::linear(narrow), l.labels),
                      contains("fused_linear_cross_entropy: hidden states of shape (3, 7, 24) and a weight of "
                               "shape (300, 20)"));
    const xt::xarray<float> short_bias = xt::zeros<float>({299});
    CHECK_THROWS_WITH(xloss::fused_linear_cross_entropy(l.h, xloss::linear(l.w, short_bias), l.labels),
                      contains("a bias of shape (299) for a weight of 300 classes"));
    xt::xarray<int> bad = l.labels;
    bad(2, 3) = 300;
    CHECK_THROWS_WITH(xloss::fused_linear_cross_entropy(l.h, xloss::linear(l.w), bad),
                      contains("label 300 of row (2, 3) is not a class of 300"));
    CHECK_THROWS_WITH(xloss::fused_linear_cross_entropy(l.h, xloss::linear(l.w), l.labels,
                                                        xloss::cross_entropy_options().class_axis(1)),
                      contains("class_axis 1: the classes of a linear layer's logits are their last axis"));
    CHECK_THROWS_WITH(xloss::fused_linear_options().workspace_bytes(0),
                      contains("fused_linear_options::workspace_bytes: workspace_bytes must be positive, got 0"));
    // A logit of +inf (an infinite hidden state) names the caller's row, past ignored rows.
    xt::xarray<float> h = l.h;
    h(2, 4, 0) = std::numeric_limits<float>::infinity();
    xt::xarray<float> w = xt::abs(l.w);
    CHECK_THROWS_WITH(xloss::fused_linear_cross_entropy(h, xloss::linear(w), l.labels, xloss::cross_entropy_options(),
                                                        xloss::fused_linear_options().chunk_rows(3)),
                      contains("input row (2, 4) holds +inf"));
}

TEST_CASE("The fused linear divergences match PyTorch's compositions", "[golden][linear]")
{
    const auto cases = xloss_test::read_golden(XLOSS_FUSED_LINEAR_GOLDEN_FILE);
    std::size_t seen = 0;
    for (const auto& c : cases)
    {
        if (c.options.count("loss") == 0)
        {
            continue;
        }
        ++seen;
        INFO("case " << c.name);
        const bool single = c.dtype == "float";
        const double rtol = single ? 3e-5 : 1e-10, atol = single ? 3e-6 : 1e-12;
        for (const std::size_t chunk : {1, 4, 0})
        {
            INFO("chunk rows " << chunk);
            auto check = [&](const auto& r)
            {
                CHECK(xloss_test::compare(r.loss, c.tensors.at("loss").as<double>(), rtol, atol) == "");
                CHECK(xloss_test::compare(r.grad_hidden, c.tensors.at("grad_hidden").as<double>(), rtol, atol) == "");
                CHECK(xloss_test::compare(r.grad_weight, c.tensors.at("grad_weight").as<double>(), rtol, atol) == "");
                CHECK(xloss_test::compare(r.grad_bias, c.tensors.at("grad_bias").as<double>(), rtol, atol) == "");
            };
            if (single)
            {
                check(fused_linear_test::run_divergence<float>(c, chunk));
            }
            else
            {
                check(fused_linear_test::run_divergence<double>(c, chunk));
            }
        }
    }
    CHECK(seen == 120);
}

TEST_CASE("Fused linear divergences: the loss alone, no labels, _out, errors", "[linear]")
{
    const fused_linear_test::layer l = fused_linear_test::random_layer();
    const xt::xarray<float> th = fused_linear_test::random_layer().h * 0.7f;
    const xt::xarray<float> tw = xloss_test::normal_logits({302, 24}, 9) * 0.3f;
    const auto teacher = xloss::teacher_layer(th, xloss::linear(tw));
    const xloss::FusedLinearGeneralizedJSDLoss jsd(xloss::jsd_options().beta(0.3).temperature(2.),
                                                   xloss::fused_linear_options().chunk_rows(5));
    const auto r = jsd.forward_backward(l.h, xloss::linear(l.w, l.b), teacher, l.labels);
    CHECK(xloss_test::same_values(jsd(l.h, xloss::linear(l.w, l.b), teacher, l.labels), r.loss) == "");

    // Against the divergence of the logits computed in double: the teacher's first 300 classes.
    const xt::xarray<double> s = fused_linear_test::reference_logits(l.h, l.w, l.b);
    const xt::xarray<double> t =
        xt::view(fused_linear_test::reference_logits(th, tw, xt::xarray<double>()), xt::all(), xt::range(0, 300));
    const xt::xarray<int> flat = xt::flatten(l.labels);
    const auto expected = xloss::GeneralizedJSDLoss(jsd.options()).forward_backward(s, t, flat);
    CHECK(xloss_test::compare(r.loss, expected.loss, 2e-5, 2e-6) == "");
    const fused_linear_test::reference_grads grads(expected.grad_student, l.h, l.w);
    CHECK(xloss_test::compare(r.grad_weight, grads.weight, 2e-5, 2e-6) == "");
    CHECK(xloss_test::compare(r.grad_hidden, grads.hidden, 2e-5, 2e-6) == "");

    // Without labels every row counts.
    const auto all = xloss::FusedLinearForwardKLLoss().forward_backward(l.h, xloss::linear(l.w), teacher);
    const auto all_expected = xloss::ForwardKLLoss().forward_backward(s - xt::xarray<double>(l.b), t);
    CHECK(xloss_test::compare(all.loss, all_expected.loss, 2e-5, 2e-6) == "");

    // The _out call with a kept result and workspace equals the allocating call.
    xloss::fused_linear_result<float> out;
    xloss::fused_linear_workspace<float> ws;
    jsd.forward_backward_out(l.h, xloss::linear(l.w, l.b), teacher, l.labels, out, ws);
    jsd.forward_backward_out(l.h, xloss::linear(l.w, l.b), teacher, l.labels, out, ws);
    CHECK(xloss_test::identical(out.grad_weight, r.grad_weight));

    // A bool mask keeps the rows marked true, as for ForwardKLLoss, whatever ignore_index is.
    const xt::xarray<bool> mask = xt::not_equal(l.labels, -100);
    const xloss::FusedLinearForwardKLLoss masked(xloss::distill_options().ignore_index(1));
    const auto by_mask = masked.forward_backward(l.h, xloss::linear(l.w), teacher, mask);
    const auto by_labels =
        xloss::FusedLinearForwardKLLoss().forward_backward(l.h, xloss::linear(l.w), teacher, l.labels);
    CHECK(xloss_test::identical(by_mask.loss, by_labels.loss));
    CHECK(xloss_test::identical(by_mask.grad_weight, by_labels.grad_weight));

    using xloss_test::contains;
    CHECK_THROWS_WITH(
        xloss::FusedLinearForwardKLLoss(xloss::distill_options().class_axis(0))(l.h, xloss::linear(l.w), teacher),
        contains("fused_linear_forward_kl: class_axis 0: the classes of a linear layer's logits are "
                 "their last axis"));
    const xt::xarray<int> short_labels = xt::zeros<int>({20});
    CHECK_THROWS_WITH(xloss::FusedLinearForwardKLLoss()(l.h, xloss::linear(l.w), teacher, short_labels),
                      contains("labels of shape (20) do not match the rows of the logits, of shape (3, 7) (the "
                               "logits' shape (3, 7, 300)"));
    const xt::xarray<float> small = xt::view(tw, xt::range(0, 299), xt::all());
    CHECK_THROWS_WITH(
        xloss::FusedLinearForwardKLLoss()(l.h, xloss::linear(l.w), xloss::teacher_layer(th, xloss::linear(small))),
        contains("fused_linear_forward_kl: a teacher of 299 classes over rows of shape (3, 7) for a "
                 "student of 300 classes"));
    CHECK_THROWS_WITH(
        xloss::FusedLinearReverseKLLoss(xloss::distill_options().teacher_grad(true))(l.h, xloss::linear(l.w), teacher),
        contains("fused_linear_reverse_kl: teacher_grad"));
    CHECK_THROWS_WITH(
        xloss::FusedLinearForwardKLLoss(xloss::distill_options().weight_hard(0.5))(l.h, xloss::linear(l.w), teacher),
        contains("weight_hard 0.5 needs labels that are class indices"));
    xt::xarray<float> bad = th;
    bad(1, 2, 0) = std::numeric_limits<float>::infinity();
    const xt::xarray<float> abs_tw = xt::abs(tw);
    CHECK_THROWS_WITH(
        xloss::FusedLinearForwardKLLoss(xloss::distill_options(), xloss::fused_linear_options().chunk_rows(4))(
            l.h, xloss::linear(l.w), xloss::teacher_layer(bad, xloss::linear(abs_tw)), l.labels),
        contains("teacher_logits row (1, 2)"));
}

TEST_CASE("The fused linear forward KL from a top-k teacher equals ForwardKLLoss on the logits", "[linear][top_k]")
{
    const fused_linear_test::layer l = fused_linear_test::random_layer();
    const xt::xarray<double> s = fused_linear_test::reference_logits(l.h, l.w, l.b);
    const std::size_t k = 6;
    xt::xarray<long> ids = xt::xarray<long>::from_shape({3, 7, k});
    xt::xarray<float> lp = xt::xarray<float>::from_shape({3, 7, k});
    for (std::size_t r = 0; r < 21; ++r)
    {
        for (std::size_t j = 0; j < k; ++j)
        {
            ids.flat(r * k + j) = static_cast<long>((r * 31 + j * 47) % 300);
            lp.flat(r * k + j) = -0.3f * static_cast<float>(j + 1) - 0.01f * static_cast<float>(r);
        }
    }
    const xt::xarray<int> flat = xt::flatten(l.labels);
    const xt::xarray<long> flat_ids = xt::reshape_view(ids, {21, 6});
    const xt::xarray<float> flat_lp = xt::reshape_view(lp, {21, 6});
    const xt::xarray<double> flat_lpd = flat_lp;
    for (const auto tail : {xloss::top_k_tail::renormalize, xloss::top_k_tail::bucket})
    {
        for (const double t : {1., 2.})
        {
            if (tail == xloss::top_k_tail::bucket && t != 1.)
            {
                continue;
            }
            INFO("temperature " << t);
            const auto options =
                xloss::distill_options().temperature(t).top_k_tail(tail).weight_hard(t == 1. ? 0.25 : 0.);
            const auto got = xloss::FusedLinearForwardKLLoss(options, xloss::fused_linear_options().chunk_rows(4))
                                 .forward_backward(l.h, xloss::linear(l.w, l.b), xloss::top_k(ids, lp), l.labels);
            const auto expected =
                xloss::ForwardKLLoss(options).forward_backward(s, xloss::top_k(flat_ids, flat_lpd), flat);
            const fused_linear_test::reference_grads grads(expected.grad_student, l.h, l.w);
            CHECK(xloss_test::compare(got.loss, expected.loss, 2e-5, 2e-6) == "");
            CHECK(xloss_test::compare(got.grad_hidden, grads.hidden, 2e-5, 2e-6) == "");
            CHECK(xloss_test::compare(got.grad_weight, grads.weight, 2e-5, 2e-6) == "");
            CHECK(xloss_test::compare(got.grad_bias, grads.bias, 2e-5, 2e-6) == "");
        }
    }
    using xloss_test::contains;
    xt::xarray<long> bad = ids;
    bad(2, 3, 1) = 300;
    CHECK_THROWS_WITH(xloss::FusedLinearForwardKLLoss()(l.h, xloss::linear(l.w), xloss::top_k(bad, lp), l.labels),
                      contains("fused_linear_forward_kl: row (2, 3): teacher id 300 is not a class of 300"));
    // An ignored row's ids are never read.
    bad(2, 3, 1) = 5;
    bad(0, 1, 0) = -7;
    CHECK_NOTHROW(xloss::FusedLinearForwardKLLoss()(l.h, xloss::linear(l.w), xloss::top_k(bad, lp), l.labels));
    // A student row of +inf logits in a later chunk names the caller's row; a bool mask keeps rows.
    xt::xarray<float> hot = l.h;
    hot(2, 4, 0) = std::numeric_limits<float>::infinity();
    const xt::xarray<float> abs_w = xt::abs(l.w);
    CHECK_THROWS_WITH(xloss::FusedLinearForwardKLLoss(xloss::distill_options(),
                                                      xloss::fused_linear_options().chunk_rows(3))(
                          hot, xloss::linear(abs_w), xloss::top_k(ids, lp), l.labels),
                      contains("student_logits row (2, 4) holds +inf"));
    const xt::xarray<bool> mask = xt::not_equal(l.labels, -100);
    CHECK(xloss_test::identical(
        xloss::FusedLinearForwardKLLoss()(l.h, xloss::linear(l.w), xloss::top_k(ids, lp), mask),
        xloss::FusedLinearForwardKLLoss()(l.h, xloss::linear(l.w), xloss::top_k(ids, lp), l.labels)));
    CHECK_THROWS_WITH(xloss::FusedLinearForwardKLLoss(xloss::distill_options().temperature(2.).top_k_tail(
                          xloss::top_k_tail::bucket))(l.h, xloss::linear(l.w), xloss::top_k(ids, lp)),
                      contains("temperature must be 1 with top_k_tail::bucket"));
}
