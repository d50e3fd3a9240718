// Both analytic gradients against central finite differences of the forward,
// in double, for every reduction, both target spaces and broadcast shapes.

#include <cmath>
#include <vector>

#include "catch_compat.hpp"

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(generators, xrandom.hpp)

#include <xloss/xloss.hpp>

#include "test_helpers.hpp"

namespace
{
    using xloss::reduction;

    /// <grad_output, loss(x, t)> summed: its derivative is what the backward returns.
    double weighted_loss(const xt::xarray<double>& x, const xt::xarray<double>& t, const xt::xarray<double>& g,
                         reduction r, bool log_target)
    {
        const auto out = xloss::kl_div(x, t, r, log_target);
        return r == reduction::none ? xt::sum(out * g)() : out() * g();
    }

    /// Central differences of weighted_loss w.r.t. every element of `arg` (x or t).
    xt::xarray<double> numeric_gradient(xt::xarray<double> x, xt::xarray<double> t, const xt::xarray<double>& g,
                                        reduction r, bool log_target, bool wrt_target)
    {
        xt::xarray<double>& arg = wrt_target ? t : x;
        xt::xarray<double> grad = xt::zeros_like(arg);
        for (std::size_t i = 0; i < arg.size(); ++i)
        {
            const double v = arg.flat(i);
            const double h = 1e-6 * std::max(1.0, std::abs(v));
            arg.flat(i) = v + h;
            const double up = weighted_loss(x, t, g, r, log_target);
            arg.flat(i) = v - h;
            const double down = weighted_loss(x, t, g, r, log_target);
            arg.flat(i) = v;
            grad.flat(i) = (up - down) / (2 * h);
        }
        return grad;
    }

    void gradcheck(const std::vector<std::size_t>& x_shape, const std::vector<std::size_t>& t_shape, unsigned seed)
    {
        xt::random::seed(seed);
        const xt::xarray<double> x = xt::random::rand<double>(x_shape, -4.0, -0.1);
        const xt::xarray<double> t_prob = xt::random::rand<double>(t_shape, 0.05, 1.0);
        const xt::xarray<double> t_log = xt::random::rand<double>(t_shape, -3.0, 0.0);
        const xt::xarray<double> dummy = xt::zeros<double>(x_shape);
        const auto out_shape = xloss::kl_div(x, t_prob, reduction::none).shape();
        const xt::xarray<double> g_none = xt::random::rand<double>(out_shape, -1.0, 2.0);
        const xt::xarray<double> g_scalar = 0.8;

        for (auto r : {reduction::none, reduction::mean, reduction::sum, reduction::batchmean})
        {
            for (bool log_target : {false, true})
            {
                const auto& t = log_target ? t_log : t_prob;
                const auto& g = r == reduction::none ? g_none : g_scalar;
                INFO("reduction " << xloss::to_string(r) << ", log_target " << log_target);
                CHECK(xloss_test::compare(xloss::kl_div_backward(g, x, t, r, log_target),
                                          numeric_gradient(x, t, g, r, log_target, false), 1e-6, 1e-8)
                      == "");
                CHECK(xloss_test::compare(xloss::kl_div_target_backward(g, x, t, r, log_target),
                                          numeric_gradient(x, t, g, r, log_target, true), 1e-6, 1e-8)
                      == "");
            }
        }
    }
}

TEST_CASE("Gradients match finite differences: same shapes", "[gradcheck]")
{
    gradcheck({}, {}, 1);
    gradcheck({7}, {7}, 2);
    gradcheck({3, 5}, {3, 5}, 3);
    gradcheck({2, 3, 4}, {2, 3, 4}, 4);
    gradcheck({2, 2, 3, 2}, {2, 2, 3, 2}, 5);
}

TEST_CASE("Gradients match finite differences: broadcast shapes", "[gradcheck]")
{
    gradcheck({4, 5}, {5}, 6);
    gradcheck({5}, {3, 5}, 7);
    gradcheck({3, 1}, {1, 4}, 8);
    gradcheck({2, 1, 3}, {4, 1}, 9);
    gradcheck({}, {2, 3}, 10);
}
