// The public API: the module, every kind of xtensor expression, reductions on
// edge cases, the special values the semantics promise, and the errors.

#include <cmath>
#include <limits>
#include <vector>

#include "catch_compat.hpp"

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xadapt.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xfixed.hpp)
#include XLOSS_XTENSOR_HEADER(generators, xrandom.hpp)
#include XLOSS_XTENSOR_HEADER(views, xstrided_view.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xtensor.hpp)
#include XLOSS_XTENSOR_HEADER(views, xview.hpp)

#include <xloss/xloss.hpp>

#include "test_helpers.hpp"

using xloss::reduction;

namespace
{
    const float f_inf = std::numeric_limits<float>::infinity();
    const float f_nan = std::numeric_limits<float>::quiet_NaN();

    using xloss_test::all_reductions;

    xt::xarray<double> random_log_probs(std::vector<std::size_t> shape, unsigned seed)
    {
        xt::random::seed(seed);
        xt::xarray<double> z = xt::random::randn<double>(shape);
        // Stored before it broadcasts: xtensor 0.24 miscomputes a lazy keep_dims reducer inside a
        // broadcast, and its immediate reducers crash in C++20.
        const xt::xarray<double> sums = xt::sum(xt::exp(z), {z.dimension() - 1}, xt::keep_dims);
        return z - xt::log(sums);
    }

    xt::xarray<double> random_probs(std::vector<std::size_t> shape, unsigned seed)
    {
        return xt::exp(random_log_probs(shape, seed));
    }
}

TEST_CASE("KLDivLoss: CTAD, constructors, accessors", "[module]")
{
    xloss::KLDivLoss loss(reduction::batchmean, true);
    STATIC_REQUIRE(std::is_same<decltype(loss), xloss::KLDivLoss<void>>::value);
    CHECK(loss.reduction() == reduction::batchmean);
    CHECK(loss.log_target());

    xloss::KLDivLoss by_name("sum");
    CHECK(by_name.reduction() == reduction::sum);
    CHECK(!by_name.log_target());

    xloss::KLDivLoss defaults;
    CHECK(defaults.reduction() == reduction::mean);
    CHECK(!defaults.log_target());

    xloss::KLDivLoss from_options(xloss::kl_div_options().reduction(reduction::none).log_target(true));
    CHECK(from_options.reduction() == reduction::none);
    CHECK(from_options.log_target());
}

TEST_CASE("KLDivLoss: call, forward and backward agree with the functions", "[module]")
{
    const xt::xarray<float> x = xt::cast<float>(random_log_probs({4, 6}, 1));
    const xt::xarray<float> t = xt::cast<float>(random_probs({4, 6}, 2));
    for (auto r : all_reductions)
    {
        for (bool log_target : {false, true})
        {
            xloss::KLDivLoss loss(r, log_target);
            const auto expected = xloss::kl_div(x, t, r, log_target);
            CHECK(xloss_test::identical(loss(x, t), expected));
            CHECK(xloss_test::identical(loss.forward(x, t), expected));
            // The default grad_output is 1 (a scalar, which also fits `none`).
            CHECK(xloss_test::identical(loss.backward(x, t), xloss::kl_div_backward(1.0f, x, t, r, log_target)));
            CHECK(xloss_test::identical(loss.target_backward(x, t),
                                        xloss::kl_div_target_backward(1.0f, x, t, r, log_target)));
        }
    }
}

TEST_CASE("KLDivLoss<double> computes in double from float arguments", "[module]")
{
    const xt::xarray<float> x = xt::cast<float>(random_log_probs({3, 5}, 3));
    const xt::xarray<float> t = xt::cast<float>(random_probs({3, 5}, 4));
    xloss::KLDivLoss<double> loss(reduction::sum);
    auto value = loss(x, t);
    STATIC_REQUIRE(std::is_same<decltype(value)::value_type, double>::value);
    const xt::xarray<double> xd = x, td = t;
    CHECK(value() == xloss::kl_div(xd, td, reduction::sum)());
    auto grad = loss.backward(x, t);
    STATIC_REQUIRE(std::is_same<decltype(grad)::value_type, double>::value);
    CHECK(xloss_test::identical(grad, xloss::kl_div_backward(1.0, xd, td, reduction::sum)));
}

TEST_CASE("Value types: float stays float, mixed promotes to double", "[types]")
{
    xt::xarray<float> xf = {-1.f, -2.f};
    xt::xarray<float> tf = {0.5f, 0.5f};
    xt::xarray<double> td = {0.5, 0.5};
    STATIC_REQUIRE(std::is_same<decltype(xloss::kl_div(xf, tf))::value_type, float>::value);
    STATIC_REQUIRE(std::is_same<decltype(xloss::kl_div(xf, td))::value_type, double>::value);
    STATIC_REQUIRE(std::is_same<decltype(xloss::kl_div_backward(1.0, xf, td))::value_type, double>::value);
    const xt::xarray<double> xd = xf;
    CHECK(xloss::kl_div(xf, td, reduction::sum)() == xloss::kl_div(xd, td, reduction::sum)());
}

TEST_CASE("Every kind of expression gives the numbers of its contiguous copy", "[expressions]")
{
    const xt::xarray<float> base_x = xt::cast<float>(random_log_probs({6, 8}, 5));
    const xt::xarray<float> base_t = xt::cast<float>(random_probs({6, 8}, 6));

    auto check = [](const auto& x, const auto& t)
    {
        const xt::xarray<float> cx = x;
        const xt::xarray<float> ct = t;
        for (auto r : all_reductions)
        {
            for (bool log_target : {false, true})
            {
                INFO("reduction " << xloss::to_string(r) << ", log_target " << log_target);
                // Chunked copies run the same arithmetic in the same order: bit-identical (to 64 ulp
                // under -ffast-math, where each instantiation may be reassociated its own way).
                CHECK(xloss_test::same_values(xloss::kl_div(x, t, r, log_target), xloss::kl_div(cx, ct, r, log_target))
                      == "");
                CHECK(xloss_test::same_values(xloss::kl_div_backward(0.5f, x, t, r, log_target),
                                              xloss::kl_div_backward(0.5f, cx, ct, r, log_target))
                      == "");
                CHECK(xloss_test::same_values(xloss::kl_div_target_backward(0.5f, x, t, r, log_target),
                                              xloss::kl_div_target_backward(0.5f, cx, ct, r, log_target))
                      == "");
            }
        }
    };

    SECTION("xtensor")
    {
        const xt::xtensor<float, 2> x = base_x, t = base_t;
        check(x, t);
    }
    SECTION("xtensor_fixed")
    {
        const xt::xtensor_fixed<float, xt::xshape<6, 8>> x = base_x, t = base_t;
        check(x, t);
    }
    SECTION("contiguous row view")
    {
        check(xt::view(base_x, xt::range(1, 5), xt::all()), xt::view(base_t, xt::range(1, 5), xt::all()));
    }
    SECTION("strided view")
    {
        check(xt::view(base_x, xt::range(0, 6, 2), xt::range(1, 8, 3)),
              xt::view(base_t, xt::range(0, 6, 2), xt::range(1, 8, 3)));
    }
    SECTION("transposed")
    {
        check(xt::transpose(base_x), xt::transpose(base_t));
    }
    SECTION("column-major container")
    {
        const xt::xarray<float, xt::layout_type::column_major> x = base_x, t = base_t;
        check(x, t);
    }
    SECTION("reversed strided view")
    {
        check(xt::strided_view(base_x, {xt::range(5, xt::placeholders::_, -1), xt::all()}),
              xt::strided_view(base_t, {xt::range(5, xt::placeholders::_, -1), xt::all()}));
    }
    SECTION("adapt over a std::vector and a raw buffer")
    {
        std::vector<float> vx(base_x.begin(), base_x.end());
        std::vector<float> vt(base_t.begin(), base_t.end());
        const std::vector<std::size_t> shape = {6, 8};
        check(xt::adapt(vx, shape), xt::adapt(vt.data(), vt.size(), xt::no_ownership(), shape));
    }
    SECTION("lazy expressions")
    {
        check(base_x + 0.f, xt::exp(xt::log(base_t)));
    }
    SECTION("large strided input crosses many chunks")
    {
        const xt::xarray<float> bx = xt::cast<float>(random_log_probs({3001, 4}, 7));
        const xt::xarray<float> bt = xt::cast<float>(random_probs({3001, 4}, 8));
        check(xt::transpose(bx), xt::transpose(bt));
    }
}

TEST_CASE("Broadcasting: output shape, batchmean divisor, gradients in each argument's shape", "[broadcast]")
{
    const xt::xarray<double> x = random_log_probs({4, 5}, 9);
    const xt::xarray<double> t = random_probs({5}, 10);
    const xt::xarray<double> t_full = xt::broadcast(t, {4, 5});

    const auto none = xloss::kl_div(x, t, reduction::none);
    CHECK(none.shape() == std::vector<std::size_t>{4, 5});
    CHECK(xloss_test::compare(none, xloss::kl_div(x, t_full, reduction::none), 0, 0) == "");

    // batchmean divides by the input's first dimension, also when the target is broadcast.
    CHECK(xloss::kl_div(x, t, reduction::batchmean)() == Approx(xloss::kl_div(x, t, reduction::sum)() / 4));
    // ... and by the input's first dimension when the input is the one broadcast.
    const xt::xarray<double> row = xt::view(x, 0, xt::all());
    const xt::xarray<double> targets = random_probs({3, 5}, 11);
    CHECK(xloss::kl_div(row, targets, reduction::batchmean)()
          == Approx(xloss::kl_div(row, targets, reduction::sum)() / 5));

    const auto gt = xloss::kl_div_target_backward(1.0, x, t, reduction::sum);
    CHECK(gt.shape() == std::vector<std::size_t>{5});
    const auto gt_full = xloss::kl_div_target_backward(1.0, x, t_full, reduction::sum);
    CHECK(xloss_test::compare(gt, xt::sum(gt_full, {0}), 1e-14, 1e-14) == "");

    const auto gx = xloss::kl_div_backward(1.0, row, targets, reduction::mean);
    CHECK(gx.shape() == std::vector<std::size_t>{5});
    CHECK(xloss_test::compare(gx, xt::sum(-targets / 15.0, {0}), 1e-14, 1e-14) == "");

    // A 0-d input broadcasts against everything; batchmean of a 0-d input is the sum.
    const xt::xarray<double> x0 = -1.5;
    CHECK(xloss::kl_div(x0, targets, reduction::batchmean)() == xloss::kl_div(x0, targets, reduction::sum)());
    CHECK(xloss::kl_div_backward(1.0, x0, targets, reduction::sum).dimension() == 0);
    CHECK(xloss::kl_div_backward(1.0, x0, targets, reduction::sum)() == Approx(-xt::sum(targets)()));
}

TEST_CASE("grad_output for reduction none broadcasts to the loss's shape", "[broadcast]")
{
    const xt::xarray<double> x = random_log_probs({3, 4}, 12);
    const xt::xarray<double> t = random_probs({3, 4}, 13);
    const xt::xarray<double> g_row = {1.0, 2.0, 3.0, 4.0};
    const xt::xarray<double> g_full = xt::broadcast(g_row, {3, 4});
    CHECK(xloss_test::identical(xloss::kl_div_backward(g_row, x, t, reduction::none),
                                xloss::kl_div_backward(g_full, x, t, reduction::none)));
    CHECK(xloss_test::compare(xloss::kl_div_backward(g_full, x, t, reduction::none), -t * g_full, 0, 0) == "");
    CHECK(xloss_test::identical(xloss::kl_div_backward(2.0, x, t, reduction::none),
                                xloss::kl_div_backward(xt::xarray<double>(2.0), x, t, reduction::none)));
    // A 0-d expression serves a reduced loss, as does a scalar of another type.
    CHECK(xloss_test::identical(xloss::kl_div_backward(xt::xarray<float>(0.5f), x, t, reduction::sum),
                                xloss::kl_div_backward(0.5, x, t, reduction::sum)));
}

TEST_CASE("Zero targets contribute 0, also against masked inputs, and NaN inputs propagate", "[semantics]")
{
    xt::xarray<float> x = {-f_inf, -1.f, -f_inf, f_nan, -0.5f};
    xt::xarray<float> t = {0.f, 0.f, 0.5f, 0.f, -0.f};
    const auto none = xloss::kl_div(x, t, reduction::none);
    CHECK(none(0) == 0.f);
    CHECK(none(1) == 0.f);
    CHECK(none(2) == f_inf);
    CHECK(xloss_test::is_nan(none(3)));
    CHECK(none(4) == 0.f);
    const auto gx = xloss::kl_div_backward(1.f, x, t, reduction::sum);
    CHECK(gx(0) == 0.f);
    CHECK(gx(1) == 0.f);
    CHECK(gx(2) == -0.5f);
    CHECK(gx(3) == 0.f);
    const auto gt = xloss::kl_div_target_backward(1.f, x, t, reduction::sum);
    CHECK(gt(0) == 0.f);
    CHECK(gt(1) == 0.f);
    CHECK(gt(2) == f_inf);
    CHECK(xloss_test::is_nan(gt(3)));
    CHECK(gt(4) == 0.f);

    // The same in log space, where the zero target is -f_inf.
    xt::xarray<float> lt = {-f_inf, -f_inf, std::log(0.5f), -f_inf, -f_inf};
    const auto lnone = xloss::kl_div(x, lt, reduction::none, true);
    CHECK(lnone(0) == 0.f);
    CHECK(lnone(1) == 0.f);
    CHECK(lnone(2) == f_inf);
    CHECK(xloss_test::is_nan(lnone(3)));
    const auto lgt = xloss::kl_div_target_backward(1.f, x, lt, reduction::sum, true);
    CHECK(lgt(0) == 0.f);
    CHECK(lgt(1) == 0.f);
    CHECK(xloss_test::is_nan(lgt(3)));
    CHECK(xloss::kl_div_backward(1.f, x, lt, reduction::sum, true)(0) == 0.f);

    // A masked class with zero target does not poison the reduced loss.
    xt::xarray<float> row_x = {-f_inf, std::log(0.25f), std::log(0.75f)};
    xt::xarray<float> row_t = {0.f, 0.5f, 0.5f};
    const float expected = 0.5f * std::log(2.f) + 0.5f * std::log(0.5f / 0.75f);
    CHECK(xloss::kl_div(row_x, row_t, reduction::sum)() == Approx(expected).epsilon(1e-6));
}

TEST_CASE("Negative targets give NaN, as in PyTorch 1.13", "[semantics]")
{
    xt::xarray<double> x = {-1.0, -2.0};
    xt::xarray<double> t = {-0.25, 0.5};
    CHECK(xloss_test::is_nan(xloss::kl_div(x, t, reduction::none)(0)));
    CHECK(xloss_test::is_nan(xloss::kl_div(x, t, reduction::sum)()));
    CHECK(xloss::kl_div_backward(1.0, x, t, reduction::sum)(0) == 0.25);
    CHECK(xloss_test::is_nan(xloss::kl_div_target_backward(1.0, x, t, reduction::sum)(0)));
}

TEST_CASE("Empty input: sum is 0, mean and batchmean are NaN, none is empty", "[semantics]")
{
    const xt::xarray<float> x = xt::xarray<float>::from_shape({0, 3});
    const xt::xarray<float> t = xt::xarray<float>::from_shape({0, 3});
    CHECK(xloss::kl_div(x, t, reduction::sum)() == 0.f);
    CHECK(xloss_test::is_nan(xloss::kl_div(x, t, reduction::mean)()));
    CHECK(xloss_test::is_nan(xloss::kl_div(x, t, reduction::batchmean)()));
    const auto none = xloss::kl_div(x, t, reduction::none);
    CHECK(none.shape() == std::vector<std::size_t>{0, 3});
    CHECK(xloss::kl_div_backward(1.f, x, t, reduction::mean).shape() == std::vector<std::size_t>{0, 3});
}

TEST_CASE("Reduced results are 0-d arrays, and none keeps the broadcast shape", "[semantics]")
{
    const xt::xarray<double> x = random_log_probs({2, 3, 4}, 14);
    const xt::xarray<double> t = random_probs({2, 3, 4}, 15);
    const double sum = xloss::kl_div(x, t, reduction::sum)();
    CHECK(xloss::kl_div(x, t, reduction::sum).dimension() == 0);
    CHECK(xloss::kl_div(x, t, reduction::mean)() == Approx(sum / 24).epsilon(1e-15));
    CHECK(xloss::kl_div(x, t, reduction::batchmean)() == Approx(sum / 2).epsilon(1e-15));
    CHECK(sum == Approx(xt::sum(t * (xt::log(t) - x))()).epsilon(1e-14));
    const auto none = xloss::kl_div(x, t, reduction::none);
    CHECK(none.shape() == x.shape());
#ifdef __FAST_MATH__
    // The reference expression itself then calls glibc's vector log (libmvec, up to 4 ulp).
    CHECK(xloss_test::compare(none, t * (xt::log(t) - x), 1e-13, 0) == "");
#else
    // xloss's double log is within 2 ulp (AVX-512 table log), and log t - x may cancel a few bits.
    CHECK(xloss_test::compare(none, t * (xt::log(t) - x), 1e-14, 0) == "");
#endif
}

TEST_CASE("Shapes that do not broadcast: std::invalid_argument naming both", "[errors]")
{
    const xt::xarray<float> x = xt::zeros<float>({2, 3});
    const xt::xarray<float> t = xt::zeros<float>({4});
    CHECK_THROWS_WITH(xloss::kl_div(x, t),
                      "xloss::kl_div: input of shape (2, 3) and target of shape (4) cannot be broadcast together");
    CHECK_THROWS_AS(xloss::kl_div(x, t), std::invalid_argument);
    CHECK_THROWS_WITH(xloss::kl_div_backward(1.f, x, t),
                      "xloss::kl_div_backward: input of shape (2, 3) and target of shape (4) cannot be broadcast "
                      "together");
    CHECK_THROWS_WITH(xloss::kl_div_target_backward(1.f, x, t),
                      "xloss::kl_div_target_backward: input of shape (2, 3) and target of shape (4) cannot be "
                      "broadcast together");
    xloss::KLDivLoss loss;
    CHECK_THROWS_AS(loss(x, t), std::invalid_argument);
}

TEST_CASE("grad_output of the wrong shape: std::invalid_argument naming both shapes", "[errors]")
{
    const xt::xarray<float> x = xt::zeros<float>({2, 3});
    const xt::xarray<float> t = xt::ones<float>({2, 3});
    const xt::xarray<float> g_bad = xt::ones<float>({3, 3});
    CHECK_THROWS_WITH(xloss::kl_div_backward(g_bad, x, t, reduction::none),
                      "xloss::kl_div_backward: grad_output of shape (3, 3) does not broadcast to the loss's shape "
                      "(2, 3)");
    const xt::xarray<float> g_big = xt::ones<float>({4, 2, 3});
    CHECK_THROWS_WITH(
        xloss::kl_div_target_backward(g_big, x, t, reduction::none),
        xloss_test::contains("grad_output of shape (4, 2, 3) does not broadcast to the loss's shape (2, 3)"));
    const xt::xarray<float> g_vec = xt::ones<float>({1});
    CHECK_THROWS_WITH(xloss::kl_div_backward(g_vec, x, t, reduction::sum),
                      "xloss::kl_div_backward: grad_output of shape (1) does not match the reduced loss's shape (); "
                      "pass a 0-d expression or a scalar");
    xloss::KLDivLoss loss(reduction::mean);
    CHECK_THROWS_AS(loss.backward(x, t, g_bad), std::invalid_argument);
}

TEST_CASE("More than 2^31 elements: 64-bit sizes all the way", "[.][long][large]")
{
    // (65536, 1) against (1, 32769): 2^31 + 65536 terms through broadcasting, in little memory.
    const std::size_t rows = 65536, cols = 32769;
    xt::xarray<double> x = xt::xarray<double>::from_shape({rows, 1});
    xt::xarray<double> t = xt::xarray<double>::from_shape({1, cols});
    double sum_x = 0, sum_t = 0, sum_tlogt = 0;
    for (std::size_t i = 0; i < rows; ++i)
    {
        x(i, 0) = -1.0 - static_cast<double>(i % 7) * 0.25;
        sum_x += x(i, 0);
    }
    for (std::size_t j = 0; j < cols; ++j)
    {
        t(0, j) = static_cast<double>(j % 5 + 1) / 8.0;
        sum_t += t(0, j);
        sum_tlogt += t(0, j) * std::log(t(0, j));
    }
    // sum over i, j of t_j (log t_j - x_i)
    const double expected = static_cast<double>(rows) * sum_tlogt - sum_x * sum_t;
    const double mean = xloss::kl_div(x, t, reduction::mean)();
    CHECK(mean * static_cast<double>(rows * cols) == Approx(expected).epsilon(1e-12));
    CHECK(xloss::kl_div(x, t, reduction::sum)() == Approx(expected).epsilon(1e-12));
    CHECK(xloss::kl_div(x, t, reduction::batchmean)() == Approx(expected / rows).epsilon(1e-12));
}

TEST_CASE("One vocabulary: class_axis, input and target_grad in both families, the older names as aliases",
          "[api][vocabulary]")
{
    const xt::xarray<double> x = {{0.3, -1.2, 2.0}, {1.5, 0.1, -0.4}};
    const xt::xarray<double> t = random_probs({2, 3}, 7);
    // The KL loss: class_axis / softmax_axis and input / input_logits set the same option.
    const auto renamed = xloss::kl_div_options(reduction::sum).input(xloss::row_input::logits).class_axis(0);
    const auto older = xloss::kl_div_options(reduction::sum).input_logits(true).softmax_axis(0);
    CHECK(renamed.input_logits());
    CHECK(renamed.softmax_axis() == 0);
    CHECK(older.input() == xloss::row_input::logits);
    CHECK(older.class_axis() == 0);
    CHECK(xloss::kl_div_options().input() == xloss::row_input::log_probs);
    const double by_axis_0 = xloss::kl_div(x, t, renamed)();
    CHECK(by_axis_0 == xloss::kl_div(x, t, older)());
    // The axis matters here: the last axis gives another value.
    CHECK(by_axis_0 != xloss::kl_div(x, t, xloss::kl_div_options(reduction::sum).input_logits(true))());
    // target_grad in the options, or the older with_target_grad argument.
    const auto plain = xloss::kl_div_options(reduction::batchmean);
    CHECK(xloss::kl_div_forward_backward(x, t, plain).grad_target.size() == 0);
    const auto by_option = xloss::kl_div_forward_backward(x, t, xloss::kl_div_options(plain).target_grad(true));
    const auto by_argument = xloss::kl_div_forward_backward(x, t, plain, true);
    REQUIRE(by_option.grad_target.shape() == t.shape());
    CHECK(xloss_test::identical(by_option.grad_target, by_argument.grad_target));
    // Another entry point: the same values, to 64 ulp under -ffast-math (same_values).
    CHECK(xloss_test::same_values(by_option.grad_target, xloss::kl_div_target_backward(1.0, x, t, plain)) == "");
    CHECK_THROWS_WITH(xloss::kl_div_options().input(static_cast<xloss::row_input>(5)),
                      "xloss::kl_div_options::input: input must be row_input::logits or row_input::log_probs, got 5");

    // The divergences: class_axis / axis and target_grad / teacher_grad.
    const auto d_renamed = xloss::distill_options().class_axis(0).target_grad(true);
    const auto d_older = xloss::distill_options().axis(0).teacher_grad(true);
    CHECK(d_renamed.axis() == 0);
    CHECK(d_renamed.teacher_grad());
    CHECK(d_older.class_axis() == 0);
    CHECK(d_older.target_grad());
    const auto a = xloss::ForwardKLLoss(d_renamed).forward_backward(x, t);
    const auto b = xloss::ForwardKLLoss(d_older).forward_backward(x, t);
    REQUIRE(a.grad_teacher.shape() == x.shape());
    CHECK(a.loss() == b.loss());
    CHECK(xloss_test::identical(a.grad_student, b.grad_student));
    CHECK(xloss_test::identical(a.grad_teacher, b.grad_teacher));
    CHECK(a.loss() != xloss::ForwardKLLoss(xloss::distill_options()).forward_backward(x, t).loss());
}
