// The divergences from logits (forward_kl, reverse_kl, generalized_jsd, symmetric_kl): golden values from
// PyTorch compositions of torchtune's and TRL's formulas (tests/golden/generate_divergence_golden.py),
// finite-difference checks of both gradients, labels, errors, threads and the _out call.

#include "catch_compat.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <xloss/xloss.hpp>
#include XLOSS_XTENSOR_HEADER(generators, xrandom.hpp)

#include "test_helpers.hpp"

namespace
{
    /// The options every record sets, and the mix of hard and soft parts when it has one.
    template <class O>
    O golden_row_options(const xloss_test::golden_case& c, O o)
    {
        o.reduction(xloss::parse_reduction(c.reduction))
            .temperature(std::stod(c.options.at("temperature")))
            .axis(static_cast<std::ptrdiff_t>(std::stol(c.options.at("axis"))))
            .teacher_grad(true);
        if (c.options.count("weight_hard"))
        {
            o.weight_hard(std::stod(c.options.at("weight_hard"))).weight_soft(std::stod(c.options.at("weight_soft")));
            o.temperature_scale(c.options.at("scale") == "none" ? xloss::temperature_scale::none
                                                                : xloss::temperature_scale::squared);
        }
        return o;
    }

    template <class F>
    decltype(auto) with_loss(const xloss_test::golden_case& c, F&& f)
    {
        const std::string name = c.options.at("loss");
        if (name == "forward_kl")
        {
            return f(xloss::ForwardKLLoss(golden_row_options(c, xloss::distill_options())));
        }
        if (name == "reverse_kl")
        {
            return f(xloss::ReverseKLLoss(golden_row_options(c, xloss::distill_options())));
        }
        if (name == "symmetric_kl")
        {
            return f(xloss::SymmetricKLLoss(
                golden_row_options(c, xloss::symmetric_kl_options().ratio(std::stod(c.options.at("ratio"))))));
        }
        return f(xloss::GeneralizedJSDLoss(
            golden_row_options(c, xloss::jsd_options().beta(std::stod(c.options.at("beta"))))));
    }

    template <class T>
    void check_divergence_case(const xloss_test::golden_case& c, double rtol, double atol)
    {
        const auto s = c.tensors.at("student").as<T>();
        const auto t = c.tensors.at("teacher").as<T>();
        const xt::xarray<int> labels = c.tensors.at("labels").as<int>();
        const auto g = c.tensors.at("grad_output").as<T>();
        INFO("case " << c.name);
        with_loss(c,
                  [&](const auto& loss)
                  {
                      CHECK(xloss_test::compare(loss(s, t, labels), c.tensors.at("output").as<T>(), rtol, atol) == "");
                      CHECK(xloss_test::compare(loss.backward(s, t, labels, g), c.tensors.at("grad_student").as<T>(),
                                                rtol, atol)
                            == "");
                      // forward_backward is for grad_output 1: the golden gradients scaled back.
                      const auto r = loss.forward_backward(s, t, labels);
                      CHECK(xloss_test::compare(r.loss, c.tensors.at("output").as<T>(), rtol, atol) == "");
                      if (c.tensors.count("hard"))
                      {
                          CHECK(xloss_test::compare(r.soft_loss, c.tensors.at("soft").as<T>(), rtol, atol) == "");
                          CHECK(xloss_test::compare(r.hard_loss, c.tensors.at("hard").as<T>(), rtol, atol) == "");
                      }
                      else
                      {
                          CHECK(r.hard_loss.size() == 0);
                      }
                      if (c.reduction != "none")
                      {
                          const xt::xarray<T> gs = c.tensors.at("grad_student").as<T>() / T(0.75);
                          const xt::xarray<T> gt = c.tensors.at("grad_teacher").as<T>() / T(0.75);
                          CHECK(xloss_test::compare(r.grad_student, gs, rtol, atol) == "");
                          CHECK(xloss_test::compare(r.grad_teacher, gt, rtol, atol) == "");
                      }
                  });
    }

    /// The loss of double logits as a number (the sum of the rows' values times grad_output).
    template <class Loss>
    double weighted(const Loss& loss, const xt::xarray<double>& s, const xt::xarray<double>& t,
                    const xt::xarray<int>& labels, const xt::xarray<double>& g)
    {
        const xt::xarray<double> v = loss(s, t, labels);
        double total = 0.;
        for (std::size_t i = 0; i < v.size(); ++i)
        {
            total += v.flat(i) * (g.size() == 1 ? g.flat(0) : g.flat(i));
        }
        return total;
    }

    template <class Loss>
    void check_gradients(const Loss& loss, bool per_row)
    {
        xt::xarray<double> s = {{{0.3, -1.2, 2.0, 0.1}, {1.5, 0.2, -0.7, 0.9}},
                                {{-0.4, 0.8, 0.05, -2.1}, {0.6, 0.6, 1.1, -0.3}}};
        xt::xarray<double> t = {{{1.1, -0.2, 0.4, 0.9}, {-1.0, 2.2, 0.3, 0.0}},
                                {{0.7, -1.5, 1.9, 0.2}, {0.1, 0.4, -0.6, 1.3}}};
        t(1, 0, 2) = -std::numeric_limits<double>::infinity(); // a class the teacher masks
        const xt::xarray<int> labels = {{3, -100}, {5, 8}};
        const xt::xarray<double> g = per_row ? xt::xarray<double>{{0.7, -1.3}, {0.4, 1.1}} : xt::xarray<double>(1.0);
        const xt::xarray<double> gs = per_row ? loss.backward(s, t, labels, g) : loss.backward(s, t, labels);
        const auto r = loss.forward_backward(s, t, labels);
        const double h = 1e-6;
        for (std::size_t i = 0; i < s.size(); ++i)
        {
            xt::xarray<double> sp = s, sm = s;
            sp.flat(i) += h;
            sm.flat(i) -= h;
            const double numeric = (weighted(loss, sp, t, labels, g) - weighted(loss, sm, t, labels, g)) / (2 * h);
            INFO("student element " << i);
            CHECK(gs.flat(i) == Approx(numeric).margin(1e-7).epsilon(1e-6));
            if (!per_row)
            {
                CHECK(r.grad_student.flat(i) == Approx(numeric).margin(1e-7).epsilon(1e-6));
            }
            if (!xloss_test::is_finite(t.flat(i)))
            {
                continue;
            }
            xt::xarray<double> tp = t, tm = t;
            tp.flat(i) += h;
            tm.flat(i) -= h;
            const double numeric_t = (weighted(loss, s, tp, labels, g) - weighted(loss, s, tm, labels, g)) / (2 * h);
            INFO("teacher element " << i);
            if (!per_row)
            {
                CHECK(r.grad_teacher.flat(i) == Approx(numeric_t).margin(1e-7).epsilon(1e-6));
            }
        }
    }
}

TEST_CASE("Divergences from logits match PyTorch compositions of torchtune's and TRL's formulas", "[golden]")
{
    const auto cases = xloss_test::read_golden(XLOSS_DIVERGENCE_GOLDEN_FILE);
    REQUIRE(cases.size() >= 490);
    for (const auto& c : cases)
    {
        if (c.dtype == "float")
        {
            check_divergence_case<float>(c, 3e-5, 3e-6);
        }
        else
        {
            check_divergence_case<double>(c, 1e-10, 1e-12);
        }
    }
}

TEST_CASE("Divergence gradients match finite differences, labels and masked classes included", "[gradcheck]")
{
    for (const auto r : {xloss::reduction::sum, xloss::reduction::mean, xloss::reduction::batchmean})
    {
        INFO("reduction " << xloss::to_string(r));
        const auto o = xloss::distill_options().reduction(r).temperature(1.7).teacher_grad(true);
        check_gradients(xloss::ForwardKLLoss(o), false);
        check_gradients(xloss::ReverseKLLoss(o), false);
        for (const double beta : {0.0, 0.2, 0.5, 0.85, 1.0})
        {
            INFO("beta " << beta);
            check_gradients(xloss::GeneralizedJSDLoss(
                                xloss::jsd_options().beta(beta).reduction(r).temperature(1.7).teacher_grad(true)),
                            false);
        }
        for (const double ratio : {0.0, 0.3, 0.5, 1.0})
        {
            INFO("ratio " << ratio);
            check_gradients(
                xloss::SymmetricKLLoss(
                    xloss::symmetric_kl_options().ratio(ratio).reduction(r).temperature(1.7).teacher_grad(true)),
                false);
        }
    }
    const auto none = xloss::distill_options().reduction(xloss::reduction::none).temperature(0.8);
    check_gradients(xloss::ForwardKLLoss(none), true);
    check_gradients(xloss::ReverseKLLoss(none), true);
    check_gradients(xloss::GeneralizedJSDLoss(xloss::jsd_options().beta(0.3).reduction(xloss::reduction::none)), true);
    check_gradients(xloss::SymmetricKLLoss(
                        xloss::symmetric_kl_options().ratio(0.6).reduction(xloss::reduction::none).temperature(0.8)),
                    true);
}

// torchtune's SymmetricKLLoss is ratio forward + (1 - ratio) reverse: the two passes of each part, and
// the loss-only phase with three sums (loss alone, allocating and _out), give that mixture.
TEST_CASE("symmetric_kl is the ratio's mixture of forward_kl and reverse_kl", "[divergence]")
{
    xt::xarray<double> s = {{2., 0.5, -1., 0.3}, {0., 1., 2., -3.}, {1., 1., 0., 0.5}};
    xt::xarray<double> t = {{1.5, 1., -2., 0.}, {0.2, 0., 0.4, 1.}, {-1., 2., -INFINITY, 0.}};
    const xt::xarray<int> labels = {4, -100, 2};
    const double T = 1.5;
    const auto o = xloss::distill_options().temperature(T).reduction(xloss::reduction::none).teacher_grad(true);
    const auto fwd = xloss::ForwardKLLoss(o).forward_backward(s, t, labels);
    const auto rev = xloss::ReverseKLLoss(o).forward_backward(s, t, labels);
    for (const double ratio : {0.25, 0.5, 0.9})
    {
        INFO("ratio " << ratio);
        const auto so = xloss::symmetric_kl_options().ratio(ratio).temperature(T).teacher_grad(true);
        const xloss::SymmetricKLLoss rows(xloss::symmetric_kl_options(so).reduction(xloss::reduction::none));
        const auto r = rows.forward_backward(s, t, labels);
        const xt::xarray<double> want = ratio * fwd.loss + (1 - ratio) * rev.loss;
        CHECK(xloss_test::compare(r.loss, want, 1e-14, 1e-15) == "");
        CHECK(
            xloss_test::compare(r.grad_student, ratio * fwd.grad_student + (1 - ratio) * rev.grad_student, 1e-13, 1e-15)
            == "");
        CHECK(
            xloss_test::compare(r.grad_teacher, ratio * fwd.grad_teacher + (1 - ratio) * rev.grad_teacher, 1e-13, 1e-15)
            == "");
        // Reduced: the loss-only phase (three running sums), and the write pass after it.
        const xloss::SymmetricKLLoss mean(so);
        const double kept = (want(0) + want(2)) / 2;
        CHECK(mean(s, t, labels)() == Approx(kept).epsilon(1e-13));
        double value = 0;
        xt::xarray<double> grad = xt::zeros_like(s);
        mean.forward_backward_out(value, grad, s, t, labels);
        CHECK(value == Approx(kept).epsilon(1e-13));
        CHECK(xloss_test::compare(grad, mean.forward_backward(s, t, labels).grad_student, 1e-14, 1e-15) == "");
    }
    // The ends are the forward and the reverse KL themselves.
    CHECK(
        xloss_test::identical(xloss::symmetric_kl(s, t, labels, xloss::symmetric_kl_options().ratio(1).temperature(T)),
                              xloss::forward_kl(s, t, labels, xloss::distill_options().temperature(T))));
    CHECK(
        xloss_test::identical(xloss::symmetric_kl(s, t, labels, xloss::symmetric_kl_options().ratio(0).temperature(T)),
                              xloss::reverse_kl(s, t, labels, xloss::distill_options().temperature(T))));
    CHECK_THROWS_WITH(xloss::symmetric_kl_options().ratio(-0.1),
                      "xloss::symmetric_kl_options::ratio: ratio must be in [0, 1], got -0.1");
    CHECK_THROWS_WITH(xloss::symmetric_kl_options().ratio(NAN),
                      "xloss::symmetric_kl_options::ratio: ratio must be in [0, 1], got nan");
    CHECK(xloss::symmetric_kl_options().ratio() == 0.5);
}

TEST_CASE("forward_kl is kl_div_with_logits, with a per-token mean", "[divergence]")
{
    xt::xarray<float> s = {{2.f, 0.5f, -1.f, 0.3f}, {0.f, 1.f, 2.f, -3.f}, {1.f, 1.f, 0.f, 0.5f}};
    xt::xarray<float> t = {{1.5f, 1.f, -2.f, 0.f}, {0.2f, 0.f, 0.4f, 1.f}, {-1.f, 2.f, 0.f, 0.f}};
    const double T = 2.0;
    const auto sum = xloss::kl_div_with_logits(s, t, T, xloss::reduction::sum)();
    const auto o = xloss::distill_options().temperature(T);
    CHECK(xloss::forward_kl(s, t, o)() == Approx(sum / 3).epsilon(1e-6));
    CHECK(xloss::forward_kl(s, t, xloss::distill_options(o).reduction(xloss::reduction::sum))()
          == Approx(sum).epsilon(1e-6));
    // Labels and a bool mask select the same rows; the generalized JSD at beta 0 and 1 is the forward
    // and the reverse KL.
    const xt::xarray<int> labels = {4, -100, 2};
    const xt::xarray<bool> mask = {true, false, true};
    CHECK(xloss_test::identical(xloss::forward_kl(s, t, labels, o), xloss::forward_kl(s, t, mask, o)));
    CHECK(xloss_test::identical(xloss::generalized_jsd(s, t, labels, xloss::jsd_options().beta(0).temperature(T)),
                                xloss::forward_kl(s, t, labels, o)));
    CHECK(xloss_test::identical(xloss::generalized_jsd(s, t, labels, xloss::jsd_options().beta(1).temperature(T)),
                                xloss::reverse_kl(s, t, labels, o)));
    // A per-token mean over the kept rows: (row 0 + row 2) / 2.
    const auto rows = xloss::forward_kl(s, t, xloss::distill_options(o).reduction(xloss::reduction::none));
    CHECK(xloss::forward_kl(s, t, labels, o)() == Approx((rows(0) + rows(2)) / 2).epsilon(1e-6));
    // ignore_index is an option.
    const xt::xarray<int> other = {4, 7, 2};
    CHECK(xloss_test::identical(xloss::forward_kl(s, t, other, xloss::distill_options(o).ignore_index(7)),
                                xloss::forward_kl(s, t, labels, o)));
}

TEST_CASE("Ignored rows get zero loss and gradients and are never read, and every row ignored gives 0 not NaN",
          "[divergence]")
{
    const float inf = std::numeric_limits<float>::infinity();
    xt::xarray<float> s = {{{1.f, 2.f, 3.f}, {0.f, 0.f, 0.f}}, {{0.5f, -1.f, 2.f}, {4.f, 1.f, 0.f}}};
    xt::xarray<float> t = {{{2.f, 1.f, 0.f}, {-inf, -inf, -inf}}, {{1.f, 1.f, 1.f}, {-inf, -inf, -inf}}};
    const xt::xarray<int> labels = {{1, -100}, {2, -100}};
    for (const auto r :
         {xloss::reduction::none, xloss::reduction::sum, xloss::reduction::mean, xloss::reduction::batchmean})
    {
        xloss::ReverseKLLoss loss(xloss::distill_options().reduction(r).teacher_grad(true));
        const auto out = loss.forward_backward(s, t, labels);
        for (std::size_t b = 0; b < 2; ++b)
        {
            for (std::size_t v = 0; v < 3; ++v)
            {
                CHECK(out.grad_student(b, 1, v) == 0.f);
                CHECK(out.grad_teacher(b, 1, v) == 0.f);
            }
        }
        for (const float v : out.loss)
        {
            CHECK(xloss_test::is_finite(v));
        }
    }
    const xt::xarray<int> none_kept = {{-100, -100}, {-100, -100}};
    xloss::GeneralizedJSDLoss jsd;
    const auto out = jsd.forward_backward(s, t, none_kept);
    CHECK(out.loss() == 0.f);
    CHECK(xt::amax(xt::abs(out.grad_student))() == 0.f);
}

TEST_CASE("Divergence errors name the argument, the value and the row", "[divergence][errors]")
{
    const float inf = std::numeric_limits<float>::infinity();
    xt::xarray<float> s = xt::zeros<float>({2, 3, 4});
    xt::xarray<float> t = xt::zeros<float>({2, 3, 4});
    for (std::size_t v = 0; v < 4; ++v)
    {
        t(1, 2, v) = -inf;
    }
    CHECK_THROWS_WITH((void)xloss::forward_kl(s, t),
                      "xloss::forward_kl: teacher_logits row (1, 2) is all -inf: its softmax is undefined");
    s(0, 1, 3) = inf;
    CHECK_THROWS_WITH((void)xloss::reverse_kl(s, t, xt::xarray<int>{{0, 0, 0}, {0, 0, -100}}),
                      "xloss::reverse_kl: student_logits row (0, 1) holds +inf: its softmax is undefined");
    s(0, 1, 3) = 0.f;
    CHECK_THROWS_WITH(
        (void)xloss::forward_kl(s, t, xt::xarray<int>{0, 0}),
        "xloss::forward_kl: labels of shape (2) do not match the rows of the logits, of shape (2, 3) (the "
        "logits' shape (2, 3, 4) without the class axis), nor have as many elements");
    // Options are checked where they are set.
    CHECK_THROWS_WITH(xloss::jsd_options().beta(1.5), "xloss::jsd_options::beta: beta must be in [0, 1], got 1.5");
    CHECK_THROWS_WITH(xloss::distill_options().temperature(0),
                      "xloss::distill_options::temperature: temperature must be positive and at most "
                      "xloss::max_temperature (100), got 0");
    CHECK_THROWS_WITH(xloss::jsd_options().temperature(101),
                      "xloss::jsd_options::temperature: temperature must be positive and at most "
                      "xloss::max_temperature (100), got 101");
    CHECK_THROWS_WITH(xloss::distill_options().divisor(-1),
                      "xloss::distill_options::divisor: divisor must be positive or 0, got -1");
    CHECK_THROWS_WITH(xloss::kl_div_options().num_threads(-2),
                      "xloss::kl_div_options::num_threads: num_threads must be 0 (OpenMP's default) or positive, "
                      "got -2");
    CHECK_THROWS_WITH(xloss::kl_div_options().reduction(static_cast<xloss::reduction>(7)),
                      "xloss::kl_div_options::reduction: reduction must be one of none, mean, sum, batchmean, got 7");
    CHECK(xloss::jsd_options().reduction("sum").reduction() == xloss::reduction::sum);
    CHECK(xloss::distill_options().reduction("batchmean").reduction() == xloss::reduction::batchmean);
    CHECK_THROWS_WITH(xloss::jsd_options().reduction("average"),
                      "xloss::jsd_options::reduction: reduction must be one of 'none', 'mean', 'sum' and "
                      "'batchmean', got 'average'");
    CHECK_THROWS_WITH(xloss::distill_options().reduction(std::string("Mean")),
                      "xloss::distill_options::reduction: reduction must be one of 'none', 'mean', 'sum' and "
                      "'batchmean', got 'Mean'");
    // {} is the enumerator's value-initialised none, as for any enum (not an ambiguous call).
    CHECK(xloss::jsd_options().reduction({}).reduction() == xloss::reduction::none);
    CHECK_THROWS_WITH((void)xloss::forward_kl(s, xt::xarray<float>(xt::zeros<float>({2, 3}))),
                      "xloss::forward_kl: student_logits of shape (2, 3, 4) and teacher_logits of shape (2, 3) differ");
    CHECK_THROWS_WITH((void)xloss::forward_kl(s, t, xloss::distill_options().axis(3)),
                      "xloss::forward_kl: axis 3 is out of range for a tensor of 3 dimensions");
    // On an error, the caller's outputs stay untouched.
    xloss::ForwardKLLoss loss;
    float value = 42.f;
    xt::xarray<float> grad = xt::ones<float>({2, 3, 4});
    CHECK_THROWS_AS(loss.forward_backward_out(value, grad, s, t), std::invalid_argument);
    CHECK(value == 42.f);
    CHECK(xt::all(xt::equal(grad, 1.f)));
}

TEST_CASE("Divergences: any axis, threads, and the _out call agree with the allocating calls", "[divergence]")
{
    xt::xarray<double> s = xt::xarray<double>::from_shape({3, 50, 7});
    xt::xarray<double> t = xt::xarray<double>::from_shape({3, 50, 7});
    for (std::size_t i = 0; i < s.size(); ++i)
    {
        s.flat(i) = std::sin(0.37 * static_cast<double>(i)) * 3;
        t.flat(i) = std::cos(0.11 * static_cast<double>(i)) * 2;
    }
    // The class axis in the middle gives the transposed problem's numbers.
    const xt::xarray<double> st = xt::transpose(s, {0, 2, 1}), tt = xt::transpose(t, {0, 2, 1});
    const auto mid = xloss::jsd_options().beta(0.4).axis(1).reduction(xloss::reduction::none);
    const auto last = xloss::jsd_options().beta(0.4).reduction(xloss::reduction::none);
    CHECK(xloss_test::compare(xloss::generalized_jsd(s, t, mid), xloss::generalized_jsd(st, tt, last), 1e-14, 1e-15)
          == "");
    const xloss::GeneralizedJSDLoss gm(mid), gl(last);
    const xt::xarray<double> g_mid = gm.backward(s, t);
    const xt::xarray<double> g_last = gl.backward(st, tt);
    CHECK(xloss_test::compare(xt::xarray<double>(xt::transpose(g_mid, {0, 2, 1})), g_last, 1e-14, 1e-15) == "");
#ifdef _OPENMP
    for (const int n : {2, 3, 0})
    {
        const auto o = xloss::distill_options().num_threads(n).teacher_grad(true);
        const auto a = xloss::ReverseKLLoss(xloss::distill_options().teacher_grad(true)).forward_backward(s, t);
        const auto b = xloss::ReverseKLLoss(o).forward_backward(s, t);
        CHECK(xloss_test::identical(a.loss, b.loss));
        CHECK(xloss_test::identical(a.grad_student, b.grad_student));
        CHECK(xloss_test::identical(a.grad_teacher, b.grad_teacher));
        const auto so = xloss::symmetric_kl_options().ratio(0.3).teacher_grad(true);
        const auto c = xloss::SymmetricKLLoss(so).forward_backward(s, t);
        const auto d = xloss::SymmetricKLLoss(xloss::symmetric_kl_options(so).num_threads(n)).forward_backward(s, t);
        CHECK(xloss_test::identical(c.loss, d.loss));
        CHECK(xloss_test::identical(c.grad_student, d.grad_student));
        CHECK(xloss_test::identical(c.grad_teacher, d.grad_teacher));
    }
#endif
    xt::xarray<int> labels = xt::ones<int>({3, 50});
    for (std::size_t i = 0; i < labels.size(); i += 4)
    {
        labels.flat(i) = -100;
    }
    const xloss::ForwardKLLoss loss(xloss::distill_options().temperature(2));
    const auto ref = loss.forward_backward(s, t, labels);
    // Into the caller's arrays nothing is allocated, so the exponentials the allocating call keeps in
    // spare rows are computed again, in another loop: bit for bit the same, for every loss (to a few
    // ulp where the compiler contracts or regroups each loop its own way).
    auto same_out = [&](const auto& other)
    {
        const auto r = other.forward_backward(s, t, labels);
        double v = 0;
        xt::xarray<double> g = xt::zeros<double>({3, 50, 7});
        other.forward_backward_out(v, g, s, t, labels);
        const xt::xarray<double> value_out = {v}, value_allocating = {r.loss()};
        CHECK(xloss_test::same_across_loops(value_out, value_allocating) == "");
        CHECK(xloss_test::same_across_loops(g, r.grad_student) == "");
    };
    same_out(loss);
    same_out(xloss::ReverseKLLoss(xloss::distill_options().temperature(2)));
    same_out(xloss::GeneralizedJSDLoss(xloss::jsd_options().beta(0.3).temperature(2)));
    same_out(xloss::SymmetricKLLoss(xloss::symmetric_kl_options().ratio(0.3).temperature(2)));
    double value = 0;
    // The gradient written over the student's own logits: computed aside, the same numbers.
    xt::xarray<double> in_place = s;
    loss.forward_backward_out(value, in_place, in_place, t, labels);
    CHECK(value == ref.loss());
    CHECK(xloss_test::identical(in_place, ref.grad_student));
    xt::xarray<double> resized;
    xt::xarray<double> loss_out;
    loss.forward_backward_out(loss_out, resized, s, t, labels);
    CHECK(xloss_test::identical(resized, ref.grad_student));
    CHECK(loss_out() == ref.loss());
}

TEST_CASE("Divergences of log-probabilities: the logits' values, gradients w.r.t. the log-probabilities",
          "[divergence][gradcheck]")
{
    const xt::xarray<double> s = {
        {0.3, -1.2, 2.0, 0.1, 0.5}, {1.5, 0.2, -0.7, 0.9, -2.0}, {-0.4, 0.8, 0.05, -2.1, 1.0}};
    xt::xarray<double> t = {{1.1, -0.2, 0.4, 0.9, 0.0}, {-1.0, 2.2, 0.3, 0.0, 0.7}, {0.7, -1.5, 1.9, 0.2, -0.3}};
    t(2, 1) = -std::numeric_limits<double>::infinity(); // a class the teacher masks
    const auto log_softmax = [](const xt::xarray<double>& x)
    {
        xt::xarray<double> r = x;
        for (std::size_t i = 0; i < x.shape()[0]; ++i)
        {
            double m = -std::numeric_limits<double>::infinity(), z = 0.;
            for (std::size_t j = 0; j < x.shape()[1]; ++j)
            {
                m = std::max(m, x(i, j));
            }
            for (std::size_t j = 0; j < x.shape()[1]; ++j)
            {
                z += std::exp(x(i, j) - m);
            }
            for (std::size_t j = 0; j < x.shape()[1]; ++j)
            {
                r(i, j) = x(i, j) - m - std::log(z);
            }
        }
        return r;
    };
    const xt::xarray<double> ls = log_softmax(s), lt = log_softmax(t);
    const xt::xarray<int> labels = {4, -100, 2};
    const auto check = [&](auto make)
    {
        for (const auto r : {xloss::reduction::none, xloss::reduction::sum, xloss::reduction::mean})
        {
            INFO("reduction " << xloss::to_string(r));
            const auto from_logits = make(r, xloss::row_input::logits);
            const auto from_logs = make(r, xloss::row_input::log_probs);
            const xt::xarray<double> a = from_logits(s, t, labels), b = from_logs(ls, lt, labels);
            REQUIRE(a.shape() == b.shape());
            for (std::size_t i = 0; i < a.size(); ++i)
            {
                CHECK(b.flat(i) == Approx(a.flat(i)).epsilon(1e-12).margin(1e-14));
            }
            if (r == xloss::reduction::none)
            {
                continue;
            }
            // The gradients are w.r.t. the log-probabilities, each taken as a free variable.
            const auto fb = from_logs.forward_backward(ls, lt, labels);
            const double h = 1e-6;
            for (std::size_t i = 0; i < ls.size(); ++i)
            {
                xt::xarray<double> p = ls, m = ls;
                p.flat(i) += h;
                m.flat(i) -= h;
                const double numeric = (from_logs(p, lt, labels)() - from_logs(m, lt, labels)()) / (2 * h);
                INFO("student element " << i);
                CHECK(fb.grad_student.flat(i) == Approx(numeric).margin(1e-7).epsilon(1e-6));
                if (!xloss_test::is_finite(lt.flat(i)))
                {
                    continue;
                }
                xt::xarray<double> tp = lt, tm = lt;
                tp.flat(i) += h;
                tm.flat(i) -= h;
                const double numeric_t = (from_logs(ls, tp, labels)() - from_logs(ls, tm, labels)()) / (2 * h);
                INFO("teacher element " << i);
                CHECK(fb.grad_teacher.flat(i) == Approx(numeric_t).margin(1e-7).epsilon(1e-6));
            }
        }
    };
    check(
        [](xloss::reduction r, xloss::row_input in)
        {
            return xloss::ForwardKLLoss(xloss::distill_options().reduction(r).input(in).teacher_grad(true));
        });
    check(
        [](xloss::reduction r, xloss::row_input in)
        {
            return xloss::ReverseKLLoss(xloss::distill_options().reduction(r).input(in).teacher_grad(true));
        });
    check(
        [](xloss::reduction r, xloss::row_input in)
        {
            return xloss::GeneralizedJSDLoss(xloss::jsd_options().beta(0.3).reduction(r).input(in).teacher_grad(true));
        });
    check(
        [](xloss::reduction r, xloss::row_input in)
        {
            return xloss::SymmetricKLLoss(
                xloss::symmetric_kl_options().ratio(0.3).reduction(r).input(in).teacher_grad(true));
        });
    CHECK_THROWS_WITH(
        (void)xloss::forward_kl(ls, lt, xloss::distill_options().input(xloss::row_input::log_probs).temperature(2)),
        "xloss::forward_kl: temperature must be 1 with row_input::log_probs, got 2");
}

TEST_CASE("A temperature whose 1/T or T^2 leaves the value type's range is an error, not NaN", "[divergence][errors]")
{
    const xt::xarray<float> s = {{0.5f, 1.f}}, t = {{1.f, 0.f}};
    CHECK_THROWS_WITH((void)xloss::forward_kl(s, t, xloss::distill_options().temperature(1e-30)),
                      "xloss::forward_kl: temperature must be such that 1/T and T^2 are finite and not 0 in float, "
                      "got 1e-30");
    CHECK_THROWS_WITH((void)xloss::kl_div_with_logits(s, t, 1e30),
                      "xloss::kl_div_with_logits: temperature must be positive and at most xloss::max_temperature "
                      "(100), got 1e+30");
    const xt::xarray<double> sd = {{0.5, 1.}}, td = {{1., 0.}};
    CHECK(xloss_test::is_finite(xloss::forward_kl(sd, td, xloss::distill_options().temperature(1e-30))()));
}

TEST_CASE("kl_div_with_logits: a tiny teacher probability counts alike in the sum and per class, and an "
          "average of nothing is NaN",
          "[divergence]")
{
    const float inf = std::numeric_limits<float>::infinity();
    // exp(-87) is a normal float, p = exp(-87) / 2 is not (flush-to-zero reads it as 0): the class
    // must stay in both the sum and the per-class terms (only the student masks it: the row is +inf).
    const xt::xarray<float> s = {{0.f, 0.f, -inf}}, t = {{0.f, 0.f, -87.f}};
    const float sum = xloss::kl_div_with_logits(s, t, 1.0, xloss::reduction::sum)();
    CHECK((xloss_test::is_inf(sum) && sum > 0));
    const xt::xarray<float> none = xloss::kl_div_with_logits(s, t, 1.0, xloss::reduction::none);
    CHECK((xloss_test::is_inf(none(0, 2)) && none(0, 2) > 0));
    CHECK(none(0, 0) == 0.f);
    // PyTorch's 0 / 0.
    const xt::xarray<float> empty = xt::xarray<float>::from_shape({0, 5}),
                            no_classes = xt::xarray<float>::from_shape({4, 0});
    CHECK(xloss_test::is_nan(xloss::kl_div_with_logits(empty, empty, 1.0, xloss::reduction::mean)()));
    CHECK(xloss_test::is_nan(xloss::kl_div_with_logits(empty, empty, 1.0, xloss::reduction::batchmean)()));
    CHECK(xloss_test::is_nan(xloss::kl_div_with_logits_forward_backward(empty, empty, 1.0).loss()));
    CHECK(xloss::kl_div_with_logits(empty, empty, 1.0, xloss::reduction::sum)() == 0.f);
    CHECK(xloss_test::is_nan(xloss::kl_div_with_logits(no_classes, no_classes, 1.0, xloss::reduction::mean)()));
    CHECK(xloss::kl_div_with_logits(no_classes, no_classes, 1.0, xloss::reduction::batchmean)() == 0.f);
}

TEST_CASE("A NaN logit makes its row's loss and gradients NaN, in every divergence", "[divergence]")
{
    const float nan = std::numeric_limits<float>::quiet_NaN();
    // 40 classes: full batches and a tail whatever the SIMD width.
    xt::xarray<float> s = xt::xarray<float>::from_shape({2, 40}), t = xt::xarray<float>::from_shape({2, 40});
    for (std::size_t i = 0; i < s.size(); ++i)
    {
        s.flat(i) = std::sin(0.7f * float(i));
        t.flat(i) = std::cos(0.3f * float(i));
    }
    for (const bool in_student : {true, false})
    {
        xt::xarray<float> sn = s, tn = t;
        (in_student ? sn : tn)(0, 5) = nan;
        const auto o = xloss::distill_options().reduction(xloss::reduction::none).teacher_grad(true);
        const auto check = [&](const auto& r)
        {
            CHECK(xloss_test::is_nan(r.loss(0)));
            CHECK(xloss_test::is_finite(r.loss(1)));
            for (std::size_t j = 0; j < 40; ++j)
            {
                CHECK(xloss_test::is_nan(r.grad_student(0, j)));
                CHECK(xloss_test::is_finite(r.grad_student(1, j)));
            }
        };
        check(xloss::ForwardKLLoss(o).forward_backward(sn, tn));
        check(xloss::ReverseKLLoss(o).forward_backward(sn, tn));
        check(xloss::GeneralizedJSDLoss(xloss::jsd_options().reduction(xloss::reduction::none).teacher_grad(true))
                  .forward_backward(sn, tn));
        check(xloss::SymmetricKLLoss(
                  xloss::symmetric_kl_options().ratio(0.3).reduction(xloss::reduction::none).teacher_grad(true))
                  .forward_backward(sn, tn));
        const auto fb = xloss::kl_div_with_logits_forward_backward(sn, tn, 2.0, xloss::reduction::none);
        for (std::size_t j = 0; j < 40; ++j)
        {
            CHECK(xloss_test::is_nan(fb.grad_input(0, j)));
        }
    }
}

namespace
{
    /// A divergence module of each kind, with the options given to all three.
    template <class F>
    void for_each_divergence(double temperature, xloss::reduction r, F&& f)
    {
        f(xloss::ForwardKLLoss(xloss::distill_options().temperature(temperature).reduction(r).teacher_grad(true)));
        f(xloss::ReverseKLLoss(xloss::distill_options().temperature(temperature).reduction(r).teacher_grad(true)));
        f(xloss::GeneralizedJSDLoss(
            xloss::jsd_options().beta(0.3).temperature(temperature).reduction(r).teacher_grad(true)));
        f(xloss::SymmetricKLLoss(
            xloss::symmetric_kl_options().ratio(0.4).temperature(temperature).reduction(r).teacher_grad(true)));
    }
}

// Identical rows are exactly 0 (the generalized JSD's log m rounded to a residue below it: -1.2e-7
// at T = 1), and no row is below 0 for rows that differ only in their last bits (the reverse KL
// over the classes the teacher keeps may be, and so the symmetric KL: their rows are not clamped,
// see reverse_kl_policy).
TEST_CASE("Divergences are never below 0, and identical rows give 0", "[divergence][edge]")
{
    const std::size_t rows = 7, classes = 301;
    xt::xarray<float> s = xt::xarray<float>::from_shape({rows, classes});
    for (std::size_t i = 0; i < s.size(); ++i)
    {
        s.flat(i) = static_cast<float>(std::sin(0.37 * static_cast<double>(i)) * 6.0);
    }
    // The same rows but for one bit of a few logits.
    xt::xarray<float> near = s;
    for (std::size_t i = 0; i < near.size(); i += 17)
    {
        near.flat(i) = std::nextafter(near.flat(i), 100.f);
    }
    for (double temperature : {1., 2., 7.5})
    {
        for_each_divergence(temperature, xloss::reduction::none,
                            [&](const auto& loss)
                            {
                                const xt::xarray<float> same = loss(s, s);
                                for (float v : same)
                                {
                                    CHECK(xloss_test::bits_of(static_cast<double>(v)) == 0); // +0 exactly
                                }
                                using loss_type = std::decay_t<decltype(loss)>;
                                // The reverse KL's rows are not clamped at 0, nor the symmetric KL's.
                                constexpr bool clamped = !std::is_same<loss_type, xloss::ReverseKLLoss>::value
                                                         && !std::is_same<loss_type, xloss::SymmetricKLLoss>::value;
                                if (clamped)
                                {
                                    const xt::xarray<float> close = loss(s, near);
                                    for (float v : close)
                                    {
                                        CHECK(v >= 0.f);
                                    }
                                }
                                const xt::xarray<float> g = loss.forward_backward(s, s).grad_student;
                                if (std::is_same<loss_type, xloss::SymmetricKLLoss>::value)
                                {
                                    // Its pulls mix two weights (ratio p - (1 - ratio) q), rounded: a
                                    // residue of an ulp or so of p, not an exact 0.
                                    CHECK(xt::amax(xt::abs(g))() <= 8 * std::numeric_limits<float>::epsilon());
                                    return;
                                }
#ifdef __FAST_MATH__
                                // Reassociated, a gradient's sums over the row (sum q = 1) may round a
                                // few ulp away from their exact values: a residue of eps times p.
                                CHECK(xt::amax(xt::abs(g))() <= 8 * std::numeric_limits<float>::epsilon());
#else
                                CHECK(xt::all(xt::equal(g, 0.f)));
#endif
                            });
    }
}

// A NaN in a kept row reaches that row's loss and both of its gradients, and no other row.
TEST_CASE("NaN in a kept row gives NaN in that row's gradients, for every divergence", "[divergence][edge]")
{
    xt::xarray<float> s = {{1.f, 2.f, 0.5f}, {0.f, -1.f, 3.f}}, t = {{0.5f, 1.f, 2.f}, {2.f, 0.f, -1.f}};
    for (bool in_teacher : {true, false})
    {
        xt::xarray<float> a = s, b = t;
        (in_teacher ? b : a)(0, 1) = std::numeric_limits<float>::quiet_NaN();
        for_each_divergence(2., xloss::reduction::none,
                            [&](const auto& loss)
                            {
                                INFO((in_teacher ? "teacher" : "student"));
                                const auto r = loss.forward_backward(a, b);
                                CHECK(xloss_test::is_nan(r.loss(0)));
                                CHECK(xloss_test::is_finite(r.loss(1)));
                                for (std::size_t j = 0; j < 3; ++j)
                                {
                                    CHECK(xloss_test::is_nan(r.grad_student(0, j)));
                                    CHECK(xloss_test::is_nan(r.grad_teacher(0, j)));
                                    CHECK(xloss_test::is_finite(r.grad_student(1, j)));
                                }
                            });
    }
}

// One rule for ignore_index, whatever the labels' integer type: a label is ignored when its value
// equals ignore_index. An unsigned label never equals a negative one: a uint32 or uint64 label
// holding the bits of -100 is a kept row, as is a uint8 156.
TEMPLATE_TEST_CASE("ignore_index compares by value for every integer label type", "[divergence][labels]", signed char,
                   unsigned char, short, unsigned short, int, unsigned int, long, unsigned long, long long,
                   unsigned long long)
{
    using L = TestType;
    const xt::xarray<float> s = {{1.f, 2.f, 0.5f}, {0.f, -1.f, 3.f}, {2.f, 2.f, -2.f}};
    const xt::xarray<float> t = {{0.5f, 1.f, 2.f}, {2.f, 0.f, -1.f}, {0.f, 1.f, 1.f}};
    const auto per_row = xloss::forward_kl(s, t, xloss::distill_options().reduction(xloss::reduction::none));
    const L wrapped = static_cast<L>(-100); // -100 itself for signed types
    const xt::xarray<L> labels = {L(1), wrapped, L(2)};
    const auto got = xloss::forward_kl(s, t, labels, xloss::distill_options().reduction(xloss::reduction::sum));
    const bool ignored = std::is_signed<L>::value;
    CHECK(got() == Approx(per_row(0) + per_row(2) + (ignored ? 0.f : per_row(1))).epsilon(1e-6));
    // A non-negative ignore_index matches the same value in every type.
    const xt::xarray<L> sevens = {L(7), L(1), L(7)};
    const auto kept =
        xloss::forward_kl(s, t, sevens, xloss::distill_options().reduction(xloss::reduction::sum).ignore_index(7));
    CHECK(kept() == Approx(per_row(1)).epsilon(1e-6));
}

// Temperatures above xloss::max_temperature are rejected: a float loss there has lost its digits.
TEST_CASE("Temperatures above max_temperature are an error", "[divergence][errors]")
{
    const xt::xarray<float> s = {{1.f, 2.f, 0.5f}}, t = {{0.5f, 1.f, 2.f}};
    CHECK_NOTHROW(xloss::forward_kl(s, t, xloss::distill_options().temperature(xloss::max_temperature)));
    CHECK_THROWS_WITH(xloss::kl_div_with_logits(s, t, 1e3),
                      "xloss::kl_div_with_logits: temperature must be positive and at most xloss::max_temperature "
                      "(100), got 1000");
}

// Finite logits whose shifted, scaled values (x - max) / T leave the value type's range would read as
// masked (-inf) classes: such a row is an error naming the row. Below that, up to the range's edge,
// the values are those of the same logits in double.
TEST_CASE("A row whose logits span more than the value type's range is an error", "[divergence][errors]")
{
    const float big = std::numeric_limits<float>::max();
    const std::string tail = " spans more than the largest float times the temperature (max - min of its "
                             "logits): its log-probabilities are not representable";
    const xt::xarray<float> ok = {{0.5f, -1.f, 2.f}, {1.f, 0.f, -3.f}};
    const xt::xarray<float> wide_teacher = {{0.5f, -1.f, 2.f}, {big, -big, 0.f}};
    CHECK_THROWS_WITH((void)xloss::reverse_kl(ok, wide_teacher), "xloss::reverse_kl: teacher_logits row (1)" + tail);
    CHECK_THROWS_WITH((void)xloss::generalized_jsd(wide_teacher, ok),
                      "xloss::generalized_jsd: student_logits row (1)" + tail);
    // A smaller max, the same reach: max - min = 2e38 is beyond FLT_MAX * 0.5 only.
    const xt::xarray<float> spread = {{1e38f, -1e38f, 0.f}, {1.f, 0.f, -3.f}};
    const auto at = [](double temperature)
    {
        return xloss::distill_options().temperature(temperature).reduction(xloss::reduction::sum);
    };
    CHECK_THROWS_WITH((void)xloss::ForwardKLLoss(at(0.5))(spread, ok),
                      "xloss::forward_kl: student_logits row (0)" + std::string(tail));
    // The same rows at T = 1, and a max below half an ulp of FLT_MAX next to -3e38 (x - max rounds to a
    // finite value): numbers, those of the double computation.
    const xt::xarray<float> far = {{1e30f, -3e38f, 0.f}, {1.f, 0.f, -3.f}};
    for (const auto& s : {spread, far})
    {
        for (double temperature : {1., 2.})
        {
            const float got = xloss::ReverseKLLoss(at(temperature))(ok, s)();
            const double want = xloss::ReverseKLLoss(at(temperature))(xt::xarray<double>(ok), xt::xarray<double>(s))();
            CHECK(xloss_test::is_finite(got));
            CHECK(static_cast<double>(got) == Approx(want).epsilon(1e-5));
        }
    }
    const double dbig = std::numeric_limits<double>::max();
    CHECK_THROWS_WITH((void)xloss::forward_kl(xt::xarray<double>{{dbig, -dbig}}, xt::xarray<double>{{0., 1.}}),
                      "xloss::forward_kl: student_logits row (0) spans more than the largest double times the "
                      "temperature (max - min of its logits): its log-probabilities are not representable");
}

namespace
{
    /// The row engine over rows [0, n) at once, and over the given splits with one workspace: each
    /// row's loss and gradients bit for bit, the total to rounding, and no allocation after the first
    /// chunk.
    template <class Policy>
    void check_row_ranges(const Policy& policy, const xt::xarray<float>& s, const xt::xarray<float>& t,
                          std::size_t axis, std::vector<std::size_t> splits)
    {
        using V = float;
        using B = xloss::detail::default_batch<V>;
        const xloss::detail::shape_type shape(s.shape().begin(), s.shape().end());
        const xloss::detail::row_layout rows(shape, axis);
        xloss::detail::shape_type row_shape = shape;
        row_shape.erase(row_shape.begin() + static_cast<std::ptrdiff_t>(axis));
        const xloss::detail::row_engine<B, Policy, xloss::detail::keep_all> engine(
            policy, xloss::detail::row_source<V>{s.data(), t.data(), rows, row_shape}, xloss::detail::keep_all{},
            xloss::detail::row_settings{1.5, xloss::temperature_scale::squared, xloss::row_input::logits,
                                        xloss::detail::loss_layout::per_row, xloss::detail::row_checks::while_running,
                                        "check_row_ranges"});
        auto outputs = [&](xt::xarray<V>& loss, xt::xarray<V>& grad)
        {
            xloss::detail::row_outputs<V> out;
            out.loss = loss.data();
            out.grad_student = grad.data();
            out.grad_scalar = 1.;
            return out;
        };
        xt::xarray<V> loss_all = xt::zeros<V>(row_shape), grad_all = xt::zeros<V>(shape);
        const double total_all = engine.run(outputs(loss_all, grad_all), 1, xloss::detail::row_memory::spare_rows);
        xt::xarray<V> loss = xt::zeros<V>(row_shape), grad = xt::zeros<V>(shape);
        xloss::detail::row_workspace<V> workspace;
        double total = 0.;
        std::size_t first = 0;
        const V* scratch = nullptr;
        splits.push_back(rows.rows);
        for (std::size_t last : splits)
        {
            total += engine.run(xloss::detail::row_range{first, last}, outputs(loss, grad), 1,
                                xloss::detail::row_memory::spare_rows, workspace);
            if (scratch)
            {
                CHECK(workspace.take(0) == scratch); // the later chunks reuse the first chunk's scratch
            }
            scratch = workspace.take(0);
            first = last;
        }
        CHECK(xloss_test::identical(loss, loss_all));
        CHECK(xloss_test::identical(grad, grad_all));
        CHECK(std::abs(total - total_all) <= 1e-12 * std::abs(total_all));
        CHECK(total_all > 0.);
    }
}

TEST_CASE("The row engine's row-range entry: rows in chunks with one workspace give each row's results of one run",
          "[divergence][engine]")
{
    xt::random::seed(23);
    const xt::xarray<float> s = xt::random::randn<float>({7, 45});
    const xt::xarray<float> t = xt::random::randn<float>({7, 45});
    for (std::size_t axis : {std::size_t(0), std::size_t(1)})
    {
        INFO("axis " << axis);
        const std::vector<std::size_t> splits =
            axis == 1 ? std::vector<std::size_t>{2, 3, 6} : std::vector<std::size_t>{1, 20, 44};
        check_row_ranges(xloss::detail::forward_kl_policy{}, s, t, axis, splits);
        check_row_ranges(xloss::detail::reverse_kl_policy{}, s, t, axis, splits);
        check_row_ranges(xloss::detail::jsd_policy(0.3), s, t, axis, splits);
    }
}

TEST_CASE("A divergence call is a plan: checked once, then run over row ranges with one workspace, reused without "
          "allocating",
          "[divergence][engine]")
{
    xt::random::seed(29);
    const xt::xarray<float> s = xt::random::randn<float>({9, 37});
    const xt::xarray<float> t = xt::random::randn<float>({9, 37});
    const xt::xarray<long long> labels = {0, -100, 2, 3, -100, 5, 6, 7, 8};
    const auto options = xloss::distill_options().temperature(2.);
    const auto expected = xloss::ForwardKLLoss(options).forward_backward(s, t, labels);
    const xloss::detail::divergence_call<float, long long> plan(s, t, labels, options, "plan");
    CHECK(plan.kept() == 7);
    CHECK(plan.divisor() == 7.);
    xloss::detail::row_workspace<float> workspace;
    CHECK_THROWS_WITH(plan.run(xloss::detail::forward_kl_policy{}, xloss::detail::row_range{4, 10},
                               xloss::detail::row_outputs<float>{}, workspace),
                      "xloss::plan: rows [4, 10) of a call of 9 rows");
    const float* scratch = nullptr;
    for (int pass = 0; pass < 2; ++pass)
    {
        INFO("pass " << pass);
        xt::xarray<float> grad = xt::zeros<float>(s.shape());
        xloss::detail::row_outputs<float> out;
        out.grad_student = grad.data();
        out.grad_scalar = 1. / plan.divisor();
        double total = 0.;
        for (auto range :
             {xloss::detail::row_range{0, 4}, xloss::detail::row_range{4, 5}, xloss::detail::row_range{5, plan.rows()}})
        {
            total += plan.run(xloss::detail::forward_kl_policy{}, range, out, workspace);
        }
        CHECK(std::abs(total - expected.loss()) <= 1e-6 * expected.loss());
        CHECK(xloss_test::same_across_loops(grad, expected.grad_student) == "");
        if (scratch)
        {
            CHECK(workspace.take(0) == scratch); // the second pass reuses the first pass's scratch
        }
        scratch = workspace.take(0);
    }
}

TEST_CASE("Divergences without the T^2 factor (TRL's and Liger-Kernel's convention)", "[divergence]")
{
    const xt::xarray<double> s = {{0.3, -1.2, 2.0, 0.1}, {1.5, 0.2, -0.7, 0.9}, {-0.4, 0.8, 0.05, -2.1}};
    const xt::xarray<double> t = {{1.1, -0.2, 0.4, 0.9}, {-1.0, 2.2, 0.3, 0.0}, {0.7, -1.5, 1.9, 0.2}};
    const double temperature = 2.5, t2 = temperature * temperature;
    const auto squared = xloss::jsd_options().beta(0.3).temperature(temperature);
    const auto plain = xloss::jsd_options(squared).temperature_scale(xloss::temperature_scale::none);
    CHECK(squared.temperature_scale() == xloss::temperature_scale::squared);
    const auto a = xloss::GeneralizedJSDLoss(squared).forward_backward(s, t);
    const auto b = xloss::GeneralizedJSDLoss(plain).forward_backward(s, t);
    CHECK(b.loss() == Approx(a.loss() / t2).epsilon(1e-14));
    CHECK(xloss_test::compare(b.grad_student, a.grad_student / t2, 1e-13, 1e-15) == "");
    // The loss-only phase (forward KL) and the per-row loss too.
    const auto none = xloss::distill_options().temperature(temperature).reduction(xloss::reduction::none);
    const xt::xarray<double> rows = xloss::ForwardKLLoss(none)(s, t);
    const xt::xarray<double> plain_rows =
        xloss::ForwardKLLoss(xloss::distill_options(none).temperature_scale(xloss::temperature_scale::none))(s, t);
    CHECK(xloss_test::compare(plain_rows, rows / t2, 1e-14, 0) == "");
    const xt::xarray<double> g = xloss::ForwardKLLoss(none).backward(s, t, xloss::all_rows, 1.0);
    const xt::xarray<double> plain_g =
        xloss::ForwardKLLoss(xloss::distill_options(none).temperature_scale(xloss::temperature_scale::none))
            .backward(s, t, xloss::all_rows, 1.0);
    CHECK(xloss_test::compare(plain_g, g / t2, 1e-13, 1e-15) == "");
    CHECK_THROWS_WITH(xloss::distill_options().temperature_scale(static_cast<xloss::temperature_scale>(5)),
                      "xloss::distill_options::temperature_scale: temperature_scale must be squared or none, got 5");
}

TEST_CASE("Divergences take flattened labels and reject all -inf rows of log-probabilities", "[divergence]")
{
    xt::xarray<float> s = xt::zeros<float>({6, 5}), t = xt::zeros<float>({6, 5});
    for (std::size_t i = 0; i < s.size(); ++i)
    {
        s.flat(i) = std::sin(static_cast<float>(i));
        t.flat(i) = std::cos(static_cast<float>(i) * 0.7f);
    }
    // torchtune's call: (B*S, V) logits with (B, S) labels.
    const xt::xarray<int> labels = {{1, -100, 3}, {4, 0, -100}};
    const xt::xarray<int> flat = xt::flatten(labels);
    CHECK(xloss_test::same_values(xloss::forward_kl(s, t, labels), xloss::forward_kl(s, t, flat)) == "");
    const float inf = std::numeric_limits<float>::infinity();
    const auto log_probs = xloss::distill_options().input(xloss::row_input::log_probs);
    xt::xarray<float> ls = s - 3.f, lt = t - 3.f;
    xt::view(lt, 2, xt::all()) = -inf;
    CHECK_THROWS_WITH((void)xloss::generalized_jsd(ls, lt, xloss::jsd_options().input(xloss::row_input::log_probs)),
                      "xloss::generalized_jsd: teacher_logits row (2) is all -inf: its softmax is undefined");
    CHECK_THROWS_WITH((void)xloss::forward_kl(ls, lt, log_probs),
                      "xloss::forward_kl: teacher_logits row (2) is all -inf: its softmax is undefined");
    // An ignored row may be anything.
    CHECK(xloss_test::is_finite(xloss::forward_kl(ls, lt, xt::xarray<int>{0, 0, -100, 0, 0, 0}, log_probs)()));
}

TEST_CASE("Hard and soft losses mixed in the divergences' passes", "[divergence]")
{
    xt::xarray<float> s = xt::zeros<float>({40, 300}), t = xt::zeros<float>({40, 300});
    for (std::size_t i = 0; i < s.size(); ++i)
    {
        s.flat(i) = 3.f * std::sin(static_cast<float>(i) * 0.37f);
        t.flat(i) = 3.f * std::cos(static_cast<float>(i) * 0.11f);
    }
    xt::xarray<int> labels = xt::xarray<int>::from_shape({40});
    for (std::size_t i = 0; i < labels.size(); ++i)
    {
        labels(i) = i % 9 == 4 ? -100 : static_cast<int>((i * 31) % 300);
    }
    for (const double temperature : {1.0, 2.0})
    {
        INFO("temperature " << temperature);
        const auto o = xloss::jsd_options().beta(0.4).temperature(temperature).weight_hard(0.25).weight_soft(0.75);
        const xloss::GeneralizedJSDLoss mixed(o);
        const auto r = mixed.forward_backward(s, t, labels);
        // The parts: the soft loss alone and cross_entropy over the same rows (last axis).
        const auto soft = xloss::GeneralizedJSDLoss(xloss::jsd_options(o).weight_hard(0).weight_soft(1))
                              .forward_backward(s, t, labels);
        const auto hard =
            xloss::CrossEntropyLoss(xloss::cross_entropy_options().class_axis(-1)).forward_backward(s, labels);
        CHECK(r.soft_loss() == Approx(soft.loss()).epsilon(1e-6));
        CHECK(r.hard_loss() == Approx(hard.loss()).epsilon(1e-6));
        CHECK(r.loss() == Approx(0.75 * soft.loss() + 0.25 * hard.loss()).epsilon(1e-6));
        const xt::xarray<float> sum = 0.75f * soft.grad_student + 0.25f * hard.grad_logits;
        CHECK(xloss_test::compare(r.grad_student, sum, 1e-4, 1e-7) == "");
        // Threads, the _out call and the separate calls give the same values.
        const auto two = xloss::GeneralizedJSDLoss(xloss::jsd_options(o).num_threads(xloss::has_openmp() ? 2 : 1))
                             .forward_backward(s, t, labels);
        CHECK(xloss_test::same_values(two.grad_student, r.grad_student) == "");
        CHECK(xloss_test::same_values(two.loss, r.loss) == "");
        xt::xarray<float> grad = xt::zeros_like(s);
        float value = 0.f;
        mixed.forward_backward_out(value, grad, s, t, labels);
        CHECK(value == Approx(r.loss()).epsilon(1e-6));
        CHECK(xloss_test::compare(grad, r.grad_student, 1e-5, 1e-8) == "");
        CHECK(xloss_test::compare(mixed.backward(s, t, labels), r.grad_student, 1e-5, 1e-8) == "");
    }
    // Rows of log-probabilities: the hard part is -log q_y, its gradient -1 at y.
    const xt::xarray<double> lq = {{std::log(0.2), std::log(0.5), std::log(0.3)},
                                   {std::log(0.6), std::log(0.1), std::log(0.3)}};
    const xt::xarray<double> lp = {{std::log(0.3), std::log(0.3), std::log(0.4)},
                                   {std::log(0.5), std::log(0.25), std::log(0.25)}};
    const auto lo =
        xloss::distill_options().input(xloss::row_input::log_probs).weight_hard(1).weight_soft(0).reduction("none");
    const auto lr = xloss::ForwardKLLoss(lo).forward_backward(lq, lp, xt::xarray<int>{1, 2});
    CHECK(lr.loss(0) == Approx(-std::log(0.5)).epsilon(1e-12));
    CHECK(lr.loss(1) == Approx(-std::log(0.3)).epsilon(1e-12));
    CHECK(xloss_test::compare(lr.grad_student, xt::xarray<double>{{0., -1., 0.}, {0., 0., -1.}}, 0, 1e-15) == "");
    // Errors: labels needed, and class indices.
    CHECK_THROWS_WITH((void)xloss::ForwardKLLoss(xloss::distill_options().weight_hard(0.5))(s, t),
                      "xloss::forward_kl: weight_hard 0.5 needs labels that are class indices");
    labels(3) = 300;
    CHECK_THROWS_WITH((void)xloss::ForwardKLLoss(xloss::distill_options().weight_hard(0.5))(s, t, labels),
                      "xloss::forward_kl: label 300 of row (3) is not a class of 300 nor ignore_index (-100)");
    CHECK_THROWS_WITH(xloss::distill_options().weight_hard(-1),
                      "xloss::distill_options::weight_hard: weight_hard must be positive or 0, got -1");
}

TEST_CASE("weight_soft alone scales the loss and the gradient alike", "[divergence]")
{
    const xt::xarray<double> s = {{0.3, -1.2, 2.0, 0.1}, {1.5, 0.2, -0.7, 0.9}};
    const xt::xarray<double> t = {{1.1, -0.2, 0.4, 0.9}, {-1.0, 2.2, 0.3, 0.0}};
    for (const double temperature : {1.0, 2.0})
    {
        const auto o = xloss::distill_options().temperature(temperature);
        const auto one = xloss::ForwardKLLoss(o).forward_backward(s, t);
        const auto half = xloss::ForwardKLLoss(xloss::distill_options(o).weight_soft(0.5)).forward_backward(s, t);
        CHECK(half.loss() == Approx(0.5 * one.loss()).epsilon(1e-14));
        CHECK(xloss_test::compare(half.grad_student, 0.5 * one.grad_student, 1e-14, 1e-16) == "");
        const auto jsd = xloss::GeneralizedJSDLoss(xloss::jsd_options().temperature(temperature).weight_soft(0.5));
        CHECK(jsd(s, t)()
              == Approx(0.5 * xloss::generalized_jsd(s, t, xloss::jsd_options().temperature(temperature))())
                     .epsilon(1e-14));
    }
}
