// Caller-provided outputs, the fused forward+backward pass, deterministic
// multithreading, and the strong guarantee when a call throws.

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "catch_compat.hpp"

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xadapt.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xtensor.hpp)
#include XLOSS_XTENSOR_HEADER(views, xview.hpp)

#include <xloss/xloss.hpp>

#include "test_helpers.hpp"

using xloss::reduction;

namespace
{
    constexpr reduction all_reductions[] = {reduction::none, reduction::mean, reduction::sum, reduction::batchmean};

    template <class T>
    std::pair<xt::xarray<T>, xt::xarray<T>> make_inputs(std::vector<std::size_t> shape, bool log_target, unsigned seed)
    {
        std::mt19937 gen(seed);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        xt::xarray<T> x = xt::xarray<T>::from_shape(shape);
        xt::xarray<T> t = xt::xarray<T>::from_shape(shape);
        for (std::size_t i = 0; i < x.size(); ++i)
        {
            x.flat(i) = static_cast<T>(std::log(u(gen) + 1e-3));
            const double p = u(gen) < 0.1 ? 0.0 : u(gen);
            t.flat(i) = static_cast<T>(log_target ? std::log(p) : p);
        }
        return {x, t};
    }
}

TEST_CASE("kl_div_out equals kl_div, into containers and scalars", "[out]")
{
    for (bool log_target : {false, true})
    {
        const auto [x, t] = make_inputs<float>({5, 37}, log_target, 1);
        for (auto r : all_reductions)
        {
            const xloss::kl_div_options opts(r, log_target);
            const auto expected = xloss::kl_div(x, t, opts);
            if (r == reduction::none)
            {
                xt::xtensor<float, 2> out = xt::zeros<float>({5, 37});
                CHECK(xloss_test::identical(xloss::kl_div_out(out, x, t, opts), expected));
                // A non-contiguous out goes through a temporary and gives the same numbers.
                xt::xarray<float> wide = xt::zeros<float>({5, 74});
                auto strided = xt::view(wide, xt::all(), xt::range(0, 74, 2));
                xloss::kl_div_out(strided, x, t, opts);
                CHECK(xloss_test::identical(xt::xarray<float>(strided), expected));
            }
            else
            {
                float scalar = -1.f;
                CHECK(xloss::kl_div_out(scalar, x, t, opts) == expected());
                xt::xtensor<float, 0> zero_d = -1.f;
                xloss::kl_div_out(zero_d, x, t, opts);
                CHECK(zero_d() == expected());
                // A double out receives the double accumulator itself: expected() is it rounded to float.
                double wider = -1.;
                xloss::kl_div_out(wider, x, t, opts);
                CHECK(static_cast<float>(wider) == expected());
            }
        }
    }
}

TEST_CASE("Gradient outs equal the allocating gradients", "[out]")
{
    const auto [x, t] = make_inputs<double>({4, 9}, false, 2);
    const xt::xarray<double> row = xt::view(t, 0, xt::all());
    for (auto r : all_reductions)
    {
        const xloss::kl_div_options opts(r);
        xt::xarray<double> gx = xt::zeros<double>({4, 9});
        xloss::kl_div_backward_out(gx, 0.5, x, t, opts);
        CHECK(xloss_test::identical(gx, xloss::kl_div_backward(0.5, x, t, opts)));
        xt::xarray<double> gt = xt::zeros<double>({4, 9});
        xloss::kl_div_target_backward_out(gt, 0.5, x, t, opts);
        CHECK(xloss_test::identical(gt, xloss::kl_div_target_backward(0.5, x, t, opts)));
        // Broadcast target: its gradient is summed back to its own shape.
        xt::xarray<double> g_row = xt::zeros<double>({9});
        xloss::kl_div_target_backward_out(g_row, 0.5, x, row, opts);
        CHECK(xloss_test::identical(g_row, xloss::kl_div_target_backward(0.5, x, row, opts)));
    }
}

TEST_CASE("kl_div_forward_backward equals the separate calls", "[fused]")
{
    for (bool log_target : {false, true})
    {
        const auto [x, t] = make_inputs<float>({3, 1000}, log_target, 3);
        for (auto r : all_reductions)
        {
            const xloss::kl_div_options opts(r, log_target);
            INFO("reduction " << xloss::to_string(r) << ", log_target " << log_target);
            const auto fused = xloss::kl_div_forward_backward(x, t, opts, true);
            // The reduced loss comes from another loop, which the compiler may contract into fused
            // multiply-adds differently: equal to the last bits; the gradients are bit for bit.
            CHECK(xloss_test::compare(fused.loss, xloss::kl_div(x, t, opts), 1e-6, 0) == "");
            CHECK(xloss_test::identical(fused.grad_input, xloss::kl_div_backward(1.f, x, t, opts)));
            CHECK(xloss_test::identical(fused.grad_target, xloss::kl_div_target_backward(1.f, x, t, opts)));
            CHECK(xloss::kl_div_forward_backward(x, t, opts).grad_target.size() == 0);

            xloss::KLDivLoss loss(opts);
            CHECK(xloss_test::identical(loss.forward_backward(x, t).grad_input, fused.grad_input));

            xt::xarray<float> loss_out = xt::zeros<float>(fused.loss.shape());
            xt::xarray<float> gx = xt::zeros<float>({3, 1000});
            xt::xarray<float> gt = xt::zeros<float>({3, 1000});
            xloss::kl_div_forward_backward_out(loss_out, gx, gt, x, t, opts);
            CHECK(xloss_test::identical(loss_out, fused.loss));
            CHECK(xloss_test::identical(gx, fused.grad_input));
            CHECK(xloss_test::identical(gt, fused.grad_target));
            if (r != reduction::none)
            {
                float scalar = 0.f;
                xloss::kl_div_forward_backward_out(scalar, gx, x, t, opts);
                CHECK(scalar == Approx(fused.loss()).epsilon(1e-6));
            }
        }
    }
}

TEST_CASE("Fused pass with broadcasting sums each gradient back to its argument", "[fused]")
{
    const auto [x, t] = make_inputs<double>({6, 5}, false, 4);
    const xt::xarray<double> row = xt::view(t, 1, xt::all());
    const xloss::kl_div_options opts(reduction::batchmean);
    const auto fused = xloss::kl_div_forward_backward(x, row, opts, true);
    CHECK(fused.grad_target.shape() == std::vector<std::size_t>{5});
    CHECK(xloss_test::identical(fused.grad_target, xloss::kl_div_target_backward(1.0, x, row, opts)));
    CHECK(xloss_test::compare(fused.loss, xloss::kl_div(x, row, opts), 1e-12, 0) == "");
}

TEST_CASE("Results are bit-identical for any number of threads", "[threads]")
{
    // Large enough for several 65536-element partitions, with a ragged end.
    for (bool log_target : {false, true})
    {
        const auto [x, t] = make_inputs<float>({3 * 65536 + 1234}, log_target, 5);
        for (auto r : all_reductions)
        {
            const xloss::kl_div_options one = xloss::kl_div_options(r, log_target).num_threads(1);
            const auto loss1 = xloss::kl_div(x, t, one);
            const auto fused1 = xloss::kl_div_forward_backward(x, t, one, true);
            for (int threads : {2, 3, 4, 0})
            {
                INFO("threads " << threads << ", reduction " << xloss::to_string(r));
                const auto opts = xloss::kl_div_options(r, log_target).num_threads(threads);
                CHECK(xloss_test::identical(xloss::kl_div(x, t, opts), loss1));
                const auto fused = xloss::kl_div_forward_backward(x, t, opts, true);
                CHECK(xloss_test::identical(fused.loss, fused1.loss));
                CHECK(xloss_test::identical(fused.grad_input, fused1.grad_input));
                CHECK(xloss_test::identical(fused.grad_target, fused1.grad_target));
            }
            // The general (copying) path uses the same partitions: the same sum.
            CHECK(xloss_test::identical(xloss::kl_div(x + 0.f, t, one), loss1));
        }
    }
}

TEST_CASE("num_threads must not be negative", "[threads][errors]")
{
    const xt::xarray<float> x = {-1.f};
    CHECK_THROWS_WITH(xloss::kl_div(x, x, xloss::kl_div_options().num_threads(-2)),
                      "xloss::kl_div: num_threads must be 0 (OpenMP's default) or positive, got -2");
}

TEST_CASE("Outputs stay untouched when a call throws", "[out][errors]")
{
    const auto [x, t] = make_inputs<float>({2, 3}, false, 6);
    const xt::xarray<float> bad_t = xt::ones<float>({4});
    const float sentinel = 42.f;

    xt::xarray<float> out = xt::xarray<float>::from_shape({2, 3});
    out.fill(sentinel);
    CHECK_THROWS_WITH(xloss::kl_div_out(out, x, bad_t, reduction::none),
                      xloss_test::contains("input of shape (2, 3) and target of shape (4) cannot be broadcast"));
    xt::xarray<float> wrong = xt::xarray<float>::from_shape({3, 2});
    wrong.fill(sentinel);
    CHECK_THROWS_WITH(xloss::kl_div_out(wrong, x, t, reduction::none),
                      "xloss::kl_div_out: out of shape (3, 2) does not match the loss's shape (2, 3)");
    float scalar = sentinel;
    CHECK_THROWS_WITH(xloss::kl_div_out(scalar, x, t, reduction::none),
                      "xloss::kl_div_out: reduction 'none' needs an out container of shape (2, 3), not a scalar");

    xt::xarray<float> gx = xt::xarray<float>::from_shape({2, 3});
    gx.fill(sentinel);
    const xt::xarray<float> bad_g = xt::ones<float>({5});
    CHECK_THROWS_WITH(xloss::kl_div_backward_out(gx, bad_g, x, t, reduction::none),
                      xloss_test::contains("grad_output of shape (5) does not broadcast to the loss's shape (2, 3)"));
    xt::xarray<float> gx_wrong = xt::xarray<float>::from_shape({6});
    gx_wrong.fill(sentinel);
    CHECK_THROWS_WITH(xloss::kl_div_backward_out(gx_wrong, 1.f, x, t),
                      "xloss::kl_div_backward_out: grad_input of shape (6) does not match the input's shape (2, 3)");

    xt::xarray<float> gt = xt::xarray<float>::from_shape({2, 3});
    gt.fill(sentinel);
    xt::xarray<float> loss = xt::xarray<float>::from_shape({});
    loss.fill(sentinel);
    CHECK_THROWS_WITH(xloss::kl_div_forward_backward_out(loss, gx, gx_wrong, x, t),
                      "xloss::kl_div_forward_backward_out: grad_target of shape (6) does not match the target's "
                      "shape (2, 3)");

    for (const auto* a : {&out, &wrong, &gx, &gx_wrong, &gt, &loss})
    {
        CHECK(xt::all(xt::equal(*a, sentinel)));
    }
    CHECK(scalar == sentinel);
}
