// Caller-provided outputs, the fused forward+backward pass, deterministic
// multithreading, and the strong guarantee when a call throws.

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "catch_compat.hpp"

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xadapt.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xfixed.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xtensor.hpp)
#include XLOSS_XTENSOR_HEADER(views, xview.hpp)

#include <xloss/xloss.hpp>

#include "test_helpers.hpp"

using xloss::reduction;

namespace
{
    using xloss_test::all_reductions;

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
        CHECK(xloss_test::same_values(gx, xloss::kl_div_backward(0.5, x, t, opts)) == "");
        xt::xarray<double> gt = xt::zeros<double>({4, 9});
        xloss::kl_div_target_backward_out(gt, 0.5, x, t, opts);
        CHECK(xloss_test::same_values(gt, xloss::kl_div_target_backward(0.5, x, t, opts)) == "");
        // Broadcast target: its gradient is summed back to its own shape.
        xt::xarray<double> g_row = xt::zeros<double>({9});
        xloss::kl_div_target_backward_out(g_row, 0.5, x, row, opts);
        CHECK(xloss_test::same_values(g_row, xloss::kl_div_target_backward(0.5, x, row, opts)) == "");
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
            CHECK(xloss_test::same_values(fused.grad_input, xloss::kl_div_backward(1.f, x, t, opts)) == "");
            CHECK(xloss_test::same_values(fused.grad_target, xloss::kl_div_target_backward(1.f, x, t, opts)) == "");
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
    CHECK(xloss_test::same_values(fused.grad_target, xloss::kl_div_target_backward(1.0, x, row, opts)) == "");
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
            // Without OpenMP (the scalar suite), num_threads(n > 1) throws: see the next test.
            const std::vector<int> thread_counts =
                xloss::has_openmp() ? std::vector<int>{2, 3, 4, 0} : std::vector<int>{0};
            for (int threads : thread_counts)
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

TEST_CASE("num_threads(n > 1) needs OpenMP: without it, std::invalid_argument, never a silent single thread",
          "[threads][errors]")
{
    const xt::xarray<float> x = xt::zeros<float>({70000});
    const auto two = xloss::kl_div_options(xloss::reduction::sum).num_threads(2);
    if (xloss::has_openmp())
    {
        CHECK(xloss::kl_div(x, x, two)() == 0.f);
    }
    else
    {
        CHECK_THROWS_WITH(xloss::kl_div(x, x, two),
                          "xloss::kl_div: num_threads(2) needs OpenMP, and this translation unit is compiled "
                          "without it (compile with -fopenmp, or link OpenMP::OpenMP_CXX; xloss::has_openmp() tells)");
        // 0 (OpenMP's default) and 1 need no OpenMP.
        CHECK(xloss::kl_div(x, x, xloss::kl_div_options(xloss::reduction::sum).num_threads(0))() == 0.f);
    }
}

TEST_CASE("Enumerations out of range: std::invalid_argument naming the value", "[errors]")
{
    const xt::xarray<float> x = {-1.f, -2.f};
    const xt::xarray<float> t = {0.5f, 0.5f};
    const auto bad = static_cast<xloss::reduction>(7);
    CHECK_FALSE(xloss::is_valid(bad));
    CHECK(xloss::to_string(bad) == "unknown");
    CHECK_THROWS_WITH(xloss::kl_div(x, t, bad), "xloss::kl_div: reduction 7 is not one of none, mean, sum, batchmean");
    CHECK_THROWS_WITH(xloss::kl_div_backward(1.f, x, t, bad),
                      "xloss::kl_div_backward: reduction 7 is not one of none, mean, sum, batchmean");
    xloss::KLDivLoss loss(bad);
    CHECK_THROWS_AS(loss(x, t), std::invalid_argument);
    CHECK_THROWS_WITH(xloss::kl_div_with_logits(x, t, 1.0, bad),
                      "xloss::kl_div_with_logits: reduction 7 is not one of none, mean, sum, batchmean");
    const auto policy = xloss::kl_div_options().target_policy(static_cast<xloss::target_policy>(-1));
    CHECK_THROWS_WITH(xloss::kl_div(x, t, policy),
                      "xloss::kl_div: target_policy -1 is not one of pytorch, zero, checked");
}

TEST_CASE("num_threads must not be negative", "[threads][errors]")
{
    const xt::xarray<float> x = {-1.f};
    // Where it is set.
    CHECK_THROWS_WITH(xloss::kl_div(x, x, xloss::kl_div_options().num_threads(-2)),
                      "xloss::kl_div_options::num_threads: num_threads must be 0 (OpenMP's default) or positive, "
                      "got -2");
}

TEST_CASE("Resizable outputs of another shape are resized, as xtensor's assignment does", "[out]")
{
    const auto [x, t] = make_inputs<float>({2, 3}, false, 8);
    const auto opts = xloss::kl_div_options(reduction::none);
    xt::xarray<float> empty;
    CHECK(xloss_test::identical(xloss::kl_div_out(empty, x, t, opts), xloss::kl_div(x, t, opts)));
    xt::xtensor<float, 2> other = xt::zeros<float>({5, 1});
    CHECK(xloss_test::identical(xloss::kl_div_out(other, x, t, opts), xloss::kl_div(x, t, opts)));
    xt::xarray<float> reduced = xt::zeros<float>({4});
    xloss::kl_div_out(reduced, x, t, reduction::sum);
    CHECK(reduced.dimension() == 0);
    CHECK(reduced() == xloss::kl_div(x, t, reduction::sum)());

    xt::xarray<float> gx;
    xt::xtensor<float, 2> gt = xt::zeros<float>({1, 1});
    xt::xarray<float> loss = xt::zeros<float>({2});
    xloss::kl_div_forward_backward_out(loss, gx, gt, x, t, xloss::kl_div_options(reduction::batchmean));
    const auto expected = xloss::kl_div_forward_backward(x, t, xloss::kl_div_options(reduction::batchmean), true);
    CHECK(xloss_test::identical(loss, expected.loss));
    CHECK(xloss_test::identical(gx, expected.grad_input));
    CHECK(xloss_test::identical(gt, expected.grad_target));
    xt::xarray<float> g;
    CHECK(
        xloss_test::identical(xloss::kl_div_backward_out(g, 1.f, x, t, opts), xloss::kl_div_backward(1.f, x, t, opts)));
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
    // Outputs that cannot be resized keep the shape error: fixed shapes, a rank that differs.
    xt::xtensor_fixed<float, xt::xshape<3, 2>> wrong;
    wrong.fill(sentinel);
    CHECK_THROWS_WITH(xloss::kl_div_out(wrong, x, t, reduction::none),
                      "xloss::kl_div_out: out of shape (3, 2) does not match the loss's shape (2, 3)");
    float scalar = sentinel;
    CHECK_THROWS_WITH(xloss::kl_div_out(scalar, x, t, reduction::none),
                      "xloss::kl_div_out: out is a scalar, but the loss has shape (2, 3)");

    xt::xarray<float> gx = xt::xarray<float>::from_shape({2, 3});
    gx.fill(sentinel);
    const xt::xarray<float> bad_g = xt::ones<float>({5});
    CHECK_THROWS_WITH(xloss::kl_div_backward_out(gx, bad_g, x, t, reduction::none),
                      xloss_test::contains("grad_output of shape (5) does not broadcast to the loss's shape (2, 3)"));
    xt::xtensor<float, 1> gx_wrong = xt::xtensor<float, 1>::from_shape({6});
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

    // A resizable output of another shape is untouched too when the call throws.
    xt::xarray<float> resizable = xt::xarray<float>::from_shape({7});
    resizable.fill(sentinel);
    CHECK_THROWS(xloss::kl_div_out(resizable, x, bad_t, reduction::none));
    CHECK(resizable.shape(0) == 7);

    for (const auto* a : {&out, &gx, &gt, &loss, &resizable})
    {
        CHECK(xt::all(xt::equal(*a, sentinel)));
    }
    CHECK(xt::all(xt::equal(wrong, sentinel)));
    CHECK(xt::all(xt::equal(gx_wrong, sentinel)));
    CHECK(scalar == sentinel);
}

// Outputs that share memory with the inputs: a gradient written over its own input (in place), one
// overlapping the target by one element either way, a `none` loss written over the target. Each
// result equals the allocating call's on copies of the inputs, in every reduction (bit for bit where
// the compiler keeps each loop's arithmetic as written, see same_across_loops).
TEST_CASE("KL _out calls whose outputs overlap the inputs", "[out][alias]")
{
    const std::size_t n = 1000;
    for (bool log_target : {false, true})
    {
        const auto [x0, t0] = make_inputs<float>({n}, log_target, 7);
        for (auto r : all_reductions)
        {
            const xloss::kl_div_options opts(r, log_target);
            const auto expected = xloss::kl_div_forward_backward(x0, t0, opts, true);
            const auto expected_loss = xloss::kl_div(x0, t0, opts);
            // Inputs laid in one buffer with a spare element on each side, so that an output can start
            // one element before or after an input.
            for (std::ptrdiff_t shift : {-1, 0, 1})
            {
                INFO("log_target " << log_target << ", reduction " << static_cast<int>(r) << ", shift " << shift);
                std::vector<float> buffer(n + 2), input(x0.begin(), x0.end());
                std::copy(t0.begin(), t0.end(), buffer.begin() + 1);
                auto t = xt::adapt(buffer.data() + 1, n, xt::no_ownership(), std::vector<std::size_t>{n});
                auto x = xt::adapt(input.data(), n, xt::no_ownership(), std::vector<std::size_t>{n});
                auto over_t = xt::adapt(buffer.data() + 1 + shift, n, xt::no_ownership(),
                                        std::vector<std::size_t>{n});
                // (An init-capture: C++17 lambdas cannot capture a structured binding.)
                const auto restore_target = [&buffer, &initial = t0]
                { std::copy(initial.begin(), initial.end(), buffer.begin() + 1); };

                // The input gradient over the target.
                xloss::kl_div_backward_out(over_t, 1.0, x, t, opts);
                CHECK(xloss_test::same_across_loops(xt::xarray<float>(over_t), expected.grad_input) == "");
                restore_target();

                // The target gradient over the target.
                xloss::kl_div_target_backward_out(over_t, 1.0, x, t, opts);
                CHECK(xloss_test::same_across_loops(xt::xarray<float>(over_t), expected.grad_target) == "");
                restore_target();

                // The fused pass: the input gradient over the target, the target gradient elsewhere.
                xt::xarray<float> loss = xt::zeros<float>(r == reduction::none ? std::vector<std::size_t>{n}
                                                                               : std::vector<std::size_t>{});
                xt::xarray<float> grad_target = xt::zeros<float>({n});
                xloss::kl_div_forward_backward_out(loss, over_t, grad_target, x, t, opts);
                CHECK(xloss_test::same_across_loops(xt::xarray<float>(over_t), expected.grad_input) == "");
                CHECK(xloss_test::same_across_loops(grad_target, expected.grad_target) == "");
                CHECK(xloss_test::same_across_loops(loss, expected.loss) == "");
                restore_target();

                // The target gradient over the target, the input gradient in place over the input.
                xloss::kl_div_forward_backward_out(loss, x, over_t, x, t, opts);
                CHECK(xloss_test::same_across_loops(xt::xarray<float>(x), expected.grad_input) == "");
                CHECK(xloss_test::same_across_loops(xt::xarray<float>(over_t), expected.grad_target) == "");
                CHECK(xloss_test::same_across_loops(loss, expected.loss) == "");
                restore_target();
                std::copy(x0.begin(), x0.end(), input.begin());

                if (r == reduction::none)
                {
                    // The `none` loss over the target, alone and with the gradients.
                    xloss::kl_div_out(over_t, x, t, opts);
                    CHECK(xloss_test::same_across_loops(xt::xarray<float>(over_t), expected_loss) == "");
                    restore_target();
                    xt::xarray<float> grad_input = xt::zeros<float>({n});
                    xloss::kl_div_forward_backward_out(over_t, grad_input, grad_target, x, t, opts);
                    CHECK(xloss_test::same_across_loops(xt::xarray<float>(over_t), expected.loss) == "");
                    CHECK(xloss_test::same_across_loops(grad_input, expected.grad_input) == "");
                    CHECK(xloss_test::same_across_loops(grad_target, expected.grad_target) == "");
                    restore_target();
                }
            }
        }
    }
}
