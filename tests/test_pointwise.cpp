// The pointwise-loss framework: a loss defined here in a few lines (the squared error of PyTorch's
// MSELoss: its op set, options and module) runs through every entry point, against the formula
// written with xtensor.

#include <cstddef>
#include <vector>

#include "catch_compat.hpp"
#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(core, xmath.hpp)
#include XLOSS_XTENSOR_HEADER(generators, xrandom.hpp)
#include XLOSS_XTENSOR_HEADER(reducers, xreducer.hpp)
#include "test_helpers.hpp"
#include <xloss/xloss.hpp>

// ---- The whole definition of a new pointwise loss: (x - t)^2, PyTorch's MSELoss. ----
namespace squared_error
{
    // The op set: the term and its gradients, each on scalars and xsimd batches alike.
    struct term
    {
        template <class B>
        B operator()(const B& x, const B& t, const B& /*g*/) const noexcept
        {
            return (x - t) * (x - t);
        }
    };

    struct input_grad
    {
        template <class B>
        B operator()(const B& x, const B& t, const B& g) const noexcept
        {
            return B(2) * (x - t) * g;
        }
    };

    struct target_grad
    {
        template <class B>
        B operator()(const B& x, const B& t, const B& g) const noexcept
        {
            return B(-2) * (x - t) * g;
        }
    };

    // The definition: its name in errors, and the op set (options of its own would select among several).
    struct definition : xloss::detail::pointwise_definition_base
    {
        static constexpr const char* name = "mse_loss";

        template <class Options, class F>
        static decltype(auto) with_ops(const Options& /*options*/, F&& f)
        {
            return f(xloss::detail::op_set<term, input_grad, target_grad>{});
        }
    };

    // The options: those of every pointwise loss.
    struct options : xloss::pointwise_options<options>
    {
        static constexpr const char* options_name = "mse_options";
        using definition = squared_error::definition;

        constexpr explicit options(xloss::reduction r = xloss::reduction::mean) noexcept
            : pointwise_options<options>(r)
        {
        }
    };

    // The module.
    template <class T = void>
    using MSELoss = xloss::pointwise_loss<options, T>;
}
// ---- End of the definition. ----

namespace
{
    using xloss_test::compare;
    using xloss_test::same_values;
    namespace pw = xloss::pointwise;
    using squared_error::options;
    constexpr double tol = 1e-12;

    struct inputs
    {
        xt::xarray<double> x, t;
    };

    inputs make_inputs(std::vector<std::size_t> shape, int seed)
    {
        xt::random::seed(seed);
        return {xt::random::randn<double>(shape), xt::random::randn<double>(shape)};
    }
}

TEST_CASE("A new pointwise loss: the allocating calls against its formula, every reduction", "[pointwise]")
{
    const auto [x, t] = make_inputs({4, 5, 3}, 1);
    const xt::xarray<double> d = x - t;
    const double n = static_cast<double>(x.size());
    CHECK(compare(pw::loss(x, t, options(xloss::reduction::none)), d * d, tol, 0) == "");
    CHECK(compare(pw::loss(x, t, options(xloss::reduction::sum)), xt::sum(d * d), tol, 0) == "");
    CHECK(compare(pw::loss(x, t, options()), xt::sum(d * d) / n, tol, 0) == "");
    CHECK(compare(pw::loss(x, t, options(xloss::reduction::batchmean)), xt::sum(d * d) / 4., tol, 0) == "");
    CHECK(compare(pw::backward(1.0, x, t, options()), 2. * d / n, tol, 0) == "");
    CHECK(compare(pw::target_backward(0.5, x, t, options()), -d / n, tol, 0) == "");
    const xt::xarray<double> g = xt::random::randn<double>({4, 5, 3});
    CHECK(compare(pw::backward(g, x, t, options(xloss::reduction::none)), 2. * d * g, tol, 0) == "");
    // Broadcasting: a target of one row; its gradient summed to its shape.
    const xt::xarray<double> row = xt::view(t, 0, 0, xt::all());
    const xt::xarray<double> dr = x - row;
    CHECK(compare(pw::loss(x, row, options(xloss::reduction::sum)), xt::sum(dr * dr), tol, 0) == "");
    CHECK(compare(pw::target_backward(1.0, x, row, options(xloss::reduction::sum)), xt::sum(-2. * dr, {0, 1}), tol, 0)
          == "");
    // The errors name the loss's own entry points and options.
    CHECK_THROWS_WITH(pw::loss(x, t, options().weight(std::nan(""))),
                      "xloss::mse_loss: weight must be finite, got nan");
    CHECK_THROWS_WITH(options().divisor(-1.), xloss_test::contains("xloss::mse_options::divisor"));
    double out = 7.;
    CHECK_THROWS_WITH(pw::loss_out(out, x, t, options(xloss::reduction::none)),
                      "xloss::mse_loss_out: out is a scalar, but the loss has shape (4, 5, 3)");
    CHECK(out == 7.); // untouched
}

TEST_CASE("A new pointwise loss: _out calls and the fused forward and backward", "[pointwise]")
{
    const auto [x, t] = make_inputs({6, 7}, 2);
    for (auto r : {xloss::reduction::none, xloss::reduction::mean, xloss::reduction::sum})
    {
        INFO("reduction " << xloss::to_string(r));
        const options o(r);
        xt::xarray<double> loss =
            xt::zeros<double>(r == xloss::reduction::none ? x.shape() : xt::xarray<double>::shape_type{});
        pw::loss_out(loss, x, t, o);
        CHECK(same_values(loss, pw::loss(x, t, o)) == "");
        xt::xarray<double> gx = xt::zeros<double>(x.shape()), gt = xt::zeros<double>(t.shape());
        pw::backward_out(gx, 1.0, x, t, o);
        pw::target_backward_out(gt, 1.0, x, t, o);
        CHECK(same_values(gx, pw::backward(1.0, x, t, o)) == "");
        CHECK(same_values(gt, pw::target_backward(1.0, x, t, o)) == "");
        const auto fused = pw::forward_backward(x, t, o, true);
        CHECK(compare(fused.loss, loss, tol, 0) == "");
        CHECK(compare(fused.grad_input, gx, tol, 0) == "");
        CHECK(compare(fused.grad_target, gt, tol, 0) == "");
        xt::xarray<double> l2 = loss * 0., g2 = gx * 0., t2 = gt * 0.;
        pw::forward_backward_out(l2, g2, t2, x, t, o);
        CHECK(compare(l2, loss, tol, 0) == "");
        CHECK(compare(g2, gx, tol, 0) == "");
        CHECK(compare(t2, gt, tol, 0) == "");
        CHECK(pw::forward_backward(x, t, o).grad_target.size() == 0);
        CHECK(pw::forward_backward(x, t, options(o).target_grad(true)).grad_target.shape() == t.shape());
    }
}

TEST_CASE("A new pointwise loss: the module, in its own value type and in float", "[pointwise][module]")
{
    const auto [x, t] = make_inputs({3, 8}, 3);
    const squared_error::MSELoss<> loss{options(xloss::reduction::sum)};
    CHECK(loss.reduction() == xloss::reduction::sum);
    CHECK(same_values(loss(x, t), pw::loss(x, t, loss.options())) == "");
    CHECK(same_values(loss.forward(x, t), loss(x, t)) == "");
    CHECK(same_values(loss.backward(x, t), pw::backward(1.0, x, t, loss.options())) == "");
    CHECK(same_values(loss.backward(x, t, 3.0), pw::backward(3.0, x, t, loss.options())) == "");
    CHECK(same_values(loss.target_backward(x, t), pw::target_backward(1.0, x, t, loss.options())) == "");
    CHECK(compare(loss.forward_backward(x, t).grad_input, loss.backward(x, t), tol, 0) == "");
    const squared_error::MSELoss<float> in_float{options(xloss::reduction::sum)};
    const xt::xarray<float> xf = xt::cast<float>(x), tf = xt::cast<float>(t);
    CHECK(compare(in_float(x, t), pw::loss(xf, tf, loss.options()), 1e-6, 0) == "");
}

TEST_CASE("A new pointwise loss: the option path (weights, axes, logits input)", "[pointwise]")
{
    const auto [x, t] = make_inputs({4, 6}, 4);
    const xt::xarray<double> d = x - t;
    const xt::xarray<double> w = {0.5, 1., 2., 0., 1.5, 3.};
    const auto per_row = options().per_sample(0);
    CHECK(compare(pw::loss(x, t, per_row), xt::mean(d * d, {1}), tol, 0) == "");
    CHECK(compare(pw::loss(x, t, options(xloss::reduction::sum).axes({0})), xt::sum(d * d, {0}), tol, 0) == "");
    CHECK(compare(pw::loss(x, t, options(xloss::reduction::sum).weight(0.25), w), 0.25 * xt::sum(d * d * w), tol, 0)
          == "");
    CHECK(compare(pw::backward(1.0, x, t, options(xloss::reduction::sum), w), 2. * d * w, tol, 0) == "");
    CHECK(compare(pw::target_backward(1.0, x, t, options(xloss::reduction::sum), w), -2. * d * w, tol, 0) == "");
    // Logits: the term of log_softmax(x); the input gradient passes through the log-softmax.
    xt::xarray<double> z = xt::log(xt::sum(xt::exp(x), {1}));
    z.reshape({4, 1});
    const xt::xarray<double> lsm = x - z;
    const auto logits = options(xloss::reduction::sum).input(xloss::row_input::logits);
    const xt::xarray<double> dl = lsm - t;
    CHECK(compare(pw::loss(x, t, logits), xt::sum(dl * dl), tol, 0) == "");
    const xt::xarray<double> gl = 2. * dl;
    xt::xarray<double> gsum = xt::sum(gl, {1});
    gsum.reshape({4, 1});
    const xt::xarray<double> through = gl - xt::exp(lsm) * gsum;
    CHECK(compare(pw::backward(1.0, x, t, logits), through, 1e-10, 1e-12) == "");
}

// Bit-identical for any thread count; under -ffast-math (same_values), to 64 ulp: the threaded region
// is a function of its own, whose sum of (x - t)^2 g++ contracted differently (seen in double on AVX2).
TEST_CASE("A new pointwise loss: threads give bit-identical results", "[pointwise][threads]")
{
    const auto [x, t] = make_inputs({3 * 65536 + 77}, 5);
    const auto one = options(xloss::reduction::mean).num_threads(1);
    const auto fused1 = pw::forward_backward(x, t, one, true);
    for (int threads : xloss::has_openmp() ? std::vector<int>{2, 3, 0} : std::vector<int>{0})
    {
        INFO("threads " << threads);
        const auto fused = pw::forward_backward(x, t, options(one).num_threads(threads), true);
        CHECK(same_values(fused.loss, fused1.loss) == "");
        CHECK(same_values(fused.grad_input, fused1.grad_input) == "");
        CHECK(same_values(fused.grad_target, fused1.grad_target) == "");
        CHECK(same_values(pw::loss(x, t, options(one).num_threads(threads)), fused1.loss) == "");
    }
}
