// The forward KL from a top-k teacher: golden values from PyTorch compositions of the sparse
// formulas (tests/golden/generate_top_k_golden.py), the dense forward KL as its k = V case, errors,
// threads and the _out call.

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
    xloss::distill_options top_k_options(const xloss_test::golden_case& c)
    {
        return xloss::distill_options()
            .reduction(xloss::parse_reduction(c.reduction))
            .temperature(std::stod(c.options.at("temperature")))
            .temperature_scale(c.options.at("scale") == "none" ? xloss::temperature_scale::none
                                                               : xloss::temperature_scale::squared)
            .top_k_tail(c.options.at("tail") == "bucket" ? xloss::top_k_tail::bucket : xloss::top_k_tail::renormalize)
            .weight_hard(std::stod(c.options.at("weight_hard")))
            .weight_soft(std::stod(c.options.at("weight_soft")));
    }

    template <class V>
    void check_top_k_case(const xloss_test::golden_case& c, double rtol, double atol)
    {
        INFO("case " << c.name);
        const xloss::ForwardKLLoss loss(top_k_options(c));
        const xt::xarray<V> s = c.tensors.at("student").as<V>();
        const xt::xarray<long> ids = c.tensors.at("ids").as<long>();
        const xt::xarray<V> lp = c.tensors.at("log_probs").as<V>();
        const xt::xarray<int> labels = c.tensors.at("labels").as<int>();
        const xt::xarray<V> g = c.tensors.at("grad_output").as<V>();
        const xt::xarray<double> expected = c.tensors.at("output").as<double>();
        const xt::xarray<double> grad = c.tensors.at("grad_student").as<double>();
        const auto teacher = xloss::top_k(ids, lp);
        CHECK(xloss_test::compare(loss(s, teacher, labels), expected, rtol, atol) == "");
        CHECK(xloss_test::compare(loss.backward(s, teacher, labels, g), grad, rtol, atol) == "");
        if (c.reduction != "none")
        {
            const auto r = loss.forward_backward(s, teacher, labels);
            CHECK(xloss_test::compare(r.loss, expected, rtol, atol) == "");
            CHECK(xloss_test::compare(xt::xarray<double>(r.grad_student * V(0.75)), grad, rtol, atol) == "");
            xt::xarray<V> out = xt::zeros_like(s);
            V value = 0;
            loss.forward_backward_out(value, out, s, teacher, labels);
            CHECK(xloss_test::same_values(out, r.grad_student) == "");
            CHECK(value == r.loss());
        }
    }
}

TEST_CASE("Top-k teachers match PyTorch compositions of the sparse forward KL", "[golden][top_k]")
{
    const auto cases = xloss_test::read_golden(XLOSS_TOP_K_GOLDEN_FILE);
    REQUIRE(cases.size() >= 250);
    for (const auto& c : cases)
    {
        if (c.dtype == "float")
        {
            check_top_k_case<float>(c, 3e-5, 3e-6);
        }
        else
        {
            check_top_k_case<double>(c, 1e-10, 1e-12);
        }
    }
}

TEST_CASE("A top-k teacher of all V classes is the dense forward KL", "[top_k]")
{
    const xt::xarray<float> s = xloss_test::normal_logits({5, 64}, 1), t = xloss_test::normal_logits({5, 64}, 2);
    // The teacher's log-probabilities, its classes in reverse order.
    const xt::xarray<float> lp = t - xt::expand_dims(xt::log(xt::sum(xt::exp(t), {1})), 1);
    const xt::xarray<float> reversed = xt::flip(lp, 1);
    xt::xarray<int> ids = xt::xarray<int>::from_shape({5, 64});
    for (std::size_t r = 0; r < 5; ++r)
    {
        for (std::size_t j = 0; j < 64; ++j)
        {
            ids(r, j) = static_cast<int>(63 - j);
        }
    }
    const auto o = xloss::distill_options().temperature(2.0);
    const auto dense = xloss::ForwardKLLoss(o).forward_backward(s, t);
    const auto sparse = xloss::ForwardKLLoss(o).forward_backward(s, xloss::top_k(ids, reversed));
    CHECK(sparse.loss() == Approx(dense.loss()).epsilon(1e-5));
    CHECK(xloss_test::compare(sparse.grad_student, dense.grad_student, 1e-4, 1e-7) == "");
    // Threads give the same bits.
    const auto two = xloss::ForwardKLLoss(xloss::distill_options(o).num_threads(xloss::has_openmp() ? 2 : 1))
                         .forward_backward(s, xloss::top_k(ids, reversed));
    CHECK(xloss_test::same_values(two.grad_student, sparse.grad_student) == "");
    CHECK(xloss_test::same_values(two.loss, sparse.loss) == "");
}

TEST_CASE("Top-k teacher errors name the row and the value", "[top_k]")
{
    xt::xarray<float> s = xloss_test::normal_logits({2, 3, 10}, 3);
    xt::xarray<int> ids = {{{0, 1}, {2, 3}, {4, 5}}, {{6, 7}, {8, 9}, {0, 9}}};
    xt::xarray<float> lp = xt::full_like(xt::xarray<float>::from_shape({2, 3, 2}), -1.f);
    const xloss::ForwardKLLoss kl;
    ids(1, 1, 1) = 10;
    CHECK_THROWS_WITH((void)kl(s, xloss::top_k(ids, lp)),
                      "xloss::forward_kl: row (1, 1): teacher id 10 is not a class of 10");
    ids(1, 1, 1) = 8;
    CHECK_THROWS_WITH((void)kl(s, xloss::top_k(ids, lp)), "xloss::forward_kl: row (1, 1): teacher id 8 appears twice");
    // An ignored row is not checked.
    CHECK(xloss_test::is_finite(kl(s, xloss::top_k(ids, lp), xt::xarray<int>{{0, 0, 0}, {0, -100, 0}})()));
    ids(1, 1, 1) = 9;
    CHECK_THROWS_WITH((void)kl(s, xloss::top_k(xt::xarray<int>{{0, 1}, {2, 3}}, lp)),
                      "xloss::forward_kl: teacher ids of shape (2, 2) and log_probs of shape (2, 3, 2) must both be "
                      "(rows..., k), k >= 1, with the rows of student_logits of shape (2, 3, 10)");
    const float inf = std::numeric_limits<float>::infinity();
    xt::view(lp, 0, 2, xt::all()) = -inf;
    CHECK_THROWS_WITH((void)kl(s, xloss::top_k(ids, lp)),
                      "xloss::forward_kl: teacher_log_probs row (0, 2) is all -inf: its softmax is undefined");
    xt::view(lp, 0, 2, xt::all()) = -1.f;
    CHECK_THROWS_WITH(
        (void)xloss::ForwardKLLoss(xloss::distill_options().top_k_tail(xloss::top_k_tail::bucket).temperature(2))(
            s, xloss::top_k(ids, lp)),
        "xloss::forward_kl: temperature must be 1 with top_k_tail::bucket, got 2");
    CHECK_THROWS_WITH((void)xloss::ForwardKLLoss(xloss::distill_options().weight_hard(1))(s, xloss::top_k(ids, lp)),
                      "xloss::forward_kl: weight_hard 1 needs labels that are class indices");
    // Nothing written on an error into the caller's outputs.
    s(1, 0, 4) = inf;
    xt::xarray<float> grad = xt::full_like(s, 5.f);
    float value = 5.f;
    CHECK_THROWS_WITH(kl.forward_backward_out(value, grad, s, xloss::top_k(ids, lp)),
                      "xloss::ForwardKLLoss::forward_backward_out: student_logits row (1, 0) holds +inf: its softmax "
                      "is undefined");
    CHECK(value == 5.f);
    CHECK(xt::all(xt::equal(grad, 5.f)));
}
