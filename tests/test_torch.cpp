// xloss::torch against libtorch itself, computed at run time: torch::kl_div,
// torch::nn::functional::cross_entropy and the divergences' compositions of libtorch operations,
// their values and autograd's gradients; finite differences in double through autograd;
// grad_output, strides, bfloat16 and half, the modules, the errors.

#include <functional>
#include <string>
#include <utility>
#include <vector>

// libtorch first: its glog defines a CHECK of its own, which Catch2's replaces.
#include <torch/torch.h>
#undef CHECK

#include "catch_compat.hpp"

#include <xloss/torch.hpp>
#ifdef XLOSS_TEST_TORCH_LINEAR
#include <xloss/torch/fused_linear.hpp>
#endif

namespace torch_test
{
    namespace F = torch::nn::functional;

    /// The value and the gradient of `f(x)` w.r.t. a fresh leaf copy of x.
    template <class Fn>
    std::pair<torch::Tensor, torch::Tensor> value_and_grad(const torch::Tensor& x, Fn&& f)
    {
        torch::Tensor leaf = x.detach().clone().requires_grad_(true);
        torch::Tensor value = f(leaf);
        value.sum().backward();
        return {value.detach(), leaf.grad()};
    }

    /// Both callables' values and gradients agree to `rtol` (and `atol` near 0).
    template <class A, class B>
    void check_same(const torch::Tensor& x, A&& ours, B&& theirs, double rtol, double atol)
    {
        const auto a = value_and_grad(x, ours);
        const auto b = value_and_grad(x, theirs);
        REQUIRE(a.first.sizes() == b.first.sizes());
        REQUIRE(a.first.scalar_type() == b.first.scalar_type());
        CHECK(torch::allclose(a.first, b.first, rtol, atol));
        REQUIRE(a.second.defined());
        CHECK(a.second.scalar_type() == x.scalar_type());
        const double max_difference = (a.second - b.second).abs().max().template item<double>();
        CAPTURE(max_difference);
        CHECK(torch::allclose(a.second, b.second, rtol, atol));
    }

    double tolerance(torch::ScalarType type)
    {
        return type == torch::kDouble ? 1e-11 : 2e-5;
    }

    /// Near 0 (gradients of classes far from the others): a few float ulps of the row's largest.
    double absolute(torch::ScalarType type)
    {
        return type == torch::kDouble ? 1e-14 : 1e-7;
    }

    /// torch's forward KL of the rows: sum p_t (log p_t - log p_s), mean over the kept rows.
    torch::Tensor torch_forward_kl(const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& keep)
    {
        const auto ls = torch::log_softmax(s, -1);
        const auto lt = torch::log_softmax(t, -1);
        const auto rows = (lt.exp() * (lt - ls)).sum(-1);
        return (rows * keep).sum() / keep.sum();
    }

    torch::Tensor torch_reverse_kl(const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& keep)
    {
        const auto ls = torch::log_softmax(s, -1);
        const auto lt = torch::log_softmax(t, -1);
        const auto rows = (ls.exp() * (ls - lt)).sum(-1);
        return (rows * keep).sum() / keep.sum();
    }

    /// TRL's generalized_jsd_loss: beta KL(P || M) + (1 - beta) KL(Q || M), M = beta P + (1 - beta) Q.
    torch::Tensor torch_jsd(const torch::Tensor& s, const torch::Tensor& t, double beta, const torch::Tensor& keep)
    {
        const auto ls = torch::log_softmax(s, -1);
        const auto lt = torch::log_softmax(t, -1);
        const auto lm = torch::logsumexp(torch::stack({lt + std::log(beta), ls + std::log(1 - beta)}), 0);
        const auto rows = beta * (lt.exp() * (lt - lm)).sum(-1) + (1 - beta) * (ls.exp() * (ls - lm)).sum(-1);
        return (rows * keep).sum() / keep.sum();
    }

    /// d sum(f(x)) / dx by central differences, every element, in double.
    template <class Fn>
    torch::Tensor finite_differences(const torch::Tensor& x, Fn&& f)
    {
        const double h = 1e-6;
        torch::NoGradGuard no_grad;
        torch::Tensor flat = x.detach().clone().reshape({-1});
        torch::Tensor grad = torch::zeros_like(flat);
        for (int64_t i = 0; i < flat.numel(); ++i)
        {
            const double v = flat[i].item<double>();
            flat[i] = v + h;
            const double up = f(flat.view(x.sizes())).sum().template item<double>();
            flat[i] = v - h;
            const double down = f(flat.view(x.sizes())).sum().template item<double>();
            flat[i] = v;
            grad[i] = (up - down) / (2 * h);
        }
        return grad.view(x.sizes());
    }
}

TEST_CASE("xloss::torch::kl_div against torch::kl_div", "[torch]")
{
    using namespace torch_test;
    torch::manual_seed(1);
    for (const auto type : {torch::kFloat, torch::kDouble})
    {
        const auto x = torch::log_softmax(torch::randn({5, 7}, type), 1);
        const auto t = torch::softmax(torch::randn({5, 7}, type), 1);
        const auto lt = torch::log_softmax(torch::randn({5, 7}, type), 1);
        const struct
        {
            xloss::reduction ours;
            int64_t theirs;
            double divide;
        } reductions[] = {{xloss::reduction::none, at::Reduction::None, 1},
                          {xloss::reduction::sum, at::Reduction::Sum, 1},
                          {xloss::reduction::mean, at::Reduction::Mean, 1},
                          {xloss::reduction::batchmean, at::Reduction::Sum, 5}};
        for (const auto& r : reductions)
        {
            for (const bool log_target : {false, true})
            {
                CAPTURE(c10::toString(type), static_cast<int>(r.ours), log_target);
                const auto& target = log_target ? lt : t;
                check_same(
                    x,
                    [&](const torch::Tensor& in)
                    {
                        return xloss::torch::kl_div(in, target, xloss::kl_div_options(r.ours, log_target));
                    },
                    [&](const torch::Tensor& in)
                    {
                        return torch::kl_div(in, target, r.theirs, log_target) / r.divide;
                    },
                    tolerance(type), absolute(type));
            }
        }
    }
}

TEST_CASE("xloss::torch::cross_entropy against torch::nn::functional::cross_entropy", "[torch]")
{
    using namespace torch_test;
    torch::manual_seed(2);
    for (const auto type : {torch::kFloat, torch::kDouble})
    {
        const auto x = torch::randn({6, 9}, type) * 3;
        const auto y = torch::tensor({0, 8, -100, 3, 3, 5}, torch::kLong);
        const auto w = torch::rand({9}, type) + 0.5;
        std::vector<double> weights(9);
        for (int j = 0; j < 9; ++j)
        {
            weights[static_cast<std::size_t>(j)] = w[j].item<double>();
        }
        for (const auto reduction : {xloss::reduction::none, xloss::reduction::mean, xloss::reduction::sum})
        {
            CAPTURE(c10::toString(type), static_cast<int>(reduction));
            auto torch_options = [&]
            {
                F::CrossEntropyFuncOptions o;
                if (reduction == xloss::reduction::none)
                {
                    o.reduction(torch::kNone);
                }
                else if (reduction == xloss::reduction::sum)
                {
                    o.reduction(torch::kSum);
                }
                return o;
            };
            check_same(
                x,
                [&](const torch::Tensor& in)
                {
                    return xloss::torch::cross_entropy(in, y, xloss::cross_entropy_options().reduction(reduction));
                },
                [&](const torch::Tensor& in)
                {
                    return F::cross_entropy(in, y, torch_options());
                },
                tolerance(type), absolute(type));
            // Class weights and label smoothing.
            check_same(
                x,
                [&](const torch::Tensor& in)
                {
                    return xloss::torch::cross_entropy(
                        in, y,
                        xloss::cross_entropy_options().reduction(reduction).weight(weights).label_smoothing(0.1));
                },
                [&](const torch::Tensor& in)
                {
                    return F::cross_entropy(in, y, torch_options().weight(w).label_smoothing(0.1));
                },
                tolerance(type), absolute(type));
            // Probability targets (soft labels), weighted and smoothed.
            const auto p = torch::softmax(torch::randn({6, 9}, type), 1);
            check_same(
                x,
                [&](const torch::Tensor& in)
                {
                    return xloss::torch::cross_entropy(
                        in, p,
                        xloss::cross_entropy_options().reduction(reduction).weight(weights).label_smoothing(0.2));
                },
                [&](const torch::Tensor& in)
                {
                    return F::cross_entropy(in, p, torch_options().weight(w).label_smoothing(0.2));
                },
                tolerance(type), absolute(type));
        }
        // PyTorch's (N, C, d1, d2) layout: the classes on axis 1, int32 labels.
        const auto x4 = torch::randn({2, 5, 3, 2}, type);
        const auto y4 = torch::randint(0, 5, {2, 3, 2}, torch::kInt);
        check_same(
            x4,
            [&](const torch::Tensor& in)
            {
                return xloss::torch::cross_entropy(in, y4, xloss::cross_entropy_options().class_axis(1));
            },
            [&](const torch::Tensor& in)
            {
                return F::cross_entropy(in, y4.to(torch::kLong));
            },
            tolerance(type), absolute(type));
    }
}

TEST_CASE("xloss::torch divergences against libtorch compositions", "[torch]")
{
    using namespace torch_test;
    torch::manual_seed(3);
    for (const auto type : {torch::kFloat, torch::kDouble})
    {
        CAPTURE(c10::toString(type));
        const auto s = torch::randn({2, 4, 11}, type) * 2;
        const auto t = torch::randn({2, 4, 11}, type) * 2;
        const auto labels = torch::tensor({{1, -100, 4, 2}, {-100, 0, 0, 7}}, torch::kLong);
        const auto keep = (labels != -100).to(type);
        const auto all = torch::ones({2, 4}, type);
        const double tol = tolerance(type);
        check_same(
            s,
            [&](const torch::Tensor& in)
            {
                return xloss::torch::forward_kl(in, t);
            },
            [&](const torch::Tensor& in)
            {
                return torch_forward_kl(in, t, all);
            },
            tol, absolute(type));
        check_same(
            s,
            [&](const torch::Tensor& in)
            {
                return xloss::torch::forward_kl(in, t, labels);
            },
            [&](const torch::Tensor& in)
            {
                return torch_forward_kl(in, t, keep);
            },
            tol, absolute(type));
        check_same(
            s,
            [&](const torch::Tensor& in)
            {
                return xloss::torch::reverse_kl(in, t, labels);
            },
            [&](const torch::Tensor& in)
            {
                return torch_reverse_kl(in, t, keep);
            },
            tol, absolute(type));
        for (const double beta : {0.1, 0.5, 0.9})
        {
            CAPTURE(beta);
            check_same(
                s,
                [&](const torch::Tensor& in)
                {
                    return xloss::torch::generalized_jsd(in, t, labels, xloss::jsd_options().beta(beta));
                },
                [&](const torch::Tensor& in)
                {
                    return torch_jsd(in, t, beta, keep);
                },
                tol, absolute(type));
        }
        // The modules are the functions with their options.
        xloss::torch::GeneralizedJSDLoss jsd(xloss::jsd_options().beta(0.3));
        CHECK(torch::allclose(jsd(s, t, labels), torch_jsd(s, t, 0.3, keep), tol, absolute(type)));
        xloss::torch::ForwardKLLoss forward;
        CHECK(torch::allclose(forward(s, t), torch_forward_kl(s, t, all), tol, absolute(type)));
    }
}

TEST_CASE("xloss::torch::forward_kl_top_k against the forward KL over the teacher's k classes", "[torch]")
{
    using namespace torch_test;
    torch::manual_seed(9);
    for (const auto type : {torch::kFloat, torch::kDouble})
    {
        CAPTURE(c10::toString(type));
        const auto s = torch::randn({5, 12}, type) * 2;
        const auto ids = torch::stack({torch::randperm(12).slice(0, 0, 4), torch::randperm(12).slice(0, 0, 4),
                                       torch::randperm(12).slice(0, 0, 4), torch::randperm(12).slice(0, 0, 4),
                                       torch::randperm(12).slice(0, 0, 4)})
                             .to(torch::kInt);
        const auto lp = torch::log_softmax(torch::randn({5, 4}, type), 1);
        const auto y = torch::tensor({1, -100, 3, 0, 2}, torch::kLong);
        check_same(
            s,
            [&](const torch::Tensor& in)
            {
                return xloss::torch::forward_kl_top_k(in, ids, lp, y);
            },
            [&](const torch::Tensor& in)
            {
                // The default top_k_tail::renormalize: p = softmax over the k classes.
                const auto p = torch::softmax(lp, 1);
                const auto lq = torch::log_softmax(in, 1).gather(1, ids.to(torch::kLong));
                const auto per_row = (p * (torch::log(p) - lq)).sum(1);
                const auto keep = (y != -100).to(type);
                return (per_row * keep).sum() / keep.sum();
            },
            tolerance(type), absolute(type));
    }
    CHECK_THROWS_WITH(xloss::torch::forward_kl_top_k(torch::randn({2, 5}), torch::randn({2, 2}), torch::randn({2, 2})),
                      xloss_test::contains("xloss::torch::forward_kl_top_k: teacher_ids has dtype Float"));
}

TEST_CASE("xloss::torch gradients: finite differences in double through autograd", "[torch]")
{
    using namespace torch_test;
    torch::manual_seed(4);
    const auto x = torch::randn({3, 5}, torch::kDouble);
    const auto t = torch::randn({3, 5}, torch::kDouble);
    const auto p = torch::softmax(t, 1);
    const auto y = torch::tensor({4, -100, 1}, torch::kLong);
    const std::vector<std::pair<std::string, std::function<torch::Tensor(const torch::Tensor&)>>> losses = {
        {"kl_div with logits input",
         [&](const torch::Tensor& in)
         {
             return xloss::torch::kl_div(
                 in, p, xloss::kl_div_options(xloss::reduction::batchmean).input(xloss::row_input::logits));
         }},
        {"cross_entropy with z-loss and softcap",
         [&](const torch::Tensor& in)
         {
             return xloss::torch::cross_entropy(in, y, xloss::cross_entropy_options().z_loss(1e-2).softcap(3.0));
         }},
        {"forward_kl at T = 2, hard part",
         [&](const torch::Tensor& in)
         {
             return xloss::torch::forward_kl(in, t, y, xloss::distill_options().temperature(2.0).weight_hard(0.5));
         }},
        {"reverse_kl",
         [&](const torch::Tensor& in)
         {
             return xloss::torch::reverse_kl(in, t);
         }},
        {"generalized_jsd",
         [&](const torch::Tensor& in)
         {
             return xloss::torch::generalized_jsd(in, t, y);
         }},
        {"symmetric_kl",
         [&](const torch::Tensor& in)
         {
             return xloss::torch::symmetric_kl(in, t, xloss::symmetric_kl_options().ratio(0.3));
         }},
        {"cross_entropy, none",
         [&](const torch::Tensor& in)
         {
             return xloss::torch::cross_entropy(in, y,
                                                xloss::cross_entropy_options().reduction(xloss::reduction::none));
         }},
        {"kl_div with logits input, none",
         [&](const torch::Tensor& in)
         {
             return xloss::torch::kl_div(in, p,
                                         xloss::kl_div_options(xloss::reduction::none).input(xloss::row_input::logits));
         }},
    };
    for (const auto& [name, f] : losses)
    {
        CAPTURE(name);
        const auto [value, grad] = value_and_grad(x, f);
        CHECK(torch::allclose(grad, finite_differences(x, f), 1e-6, 1e-8));
    }
}

TEST_CASE("xloss::torch grad_output, strides, bfloat16 and half", "[torch]")
{
    using namespace torch_test;
    torch::manual_seed(5);
    const auto x = torch::randn({4, 6});
    const auto t = torch::randn({4, 6});
    const auto y = torch::tensor({5, 0, -100, 2}, torch::kLong);

    SECTION("a reduced loss scaled by grad_output: the kept gradient times it")
    {
        const auto [unit, g1] = value_and_grad(x,
                                               [&](const torch::Tensor& in)
                                               {
                                                   return xloss::torch::forward_kl(in, t);
                                               });
        const auto [scaled, g3] = value_and_grad(x,
                                                 [&](const torch::Tensor& in)
                                                 {
                                                     return 3 * xloss::torch::forward_kl(in, t);
                                                 });
        CHECK(torch::allclose(g3, 3 * g1, 1e-6, 0));
    }
    SECTION("an unreduced loss: grad_output per row, against torch")
    {
        const auto w = torch::rand({4});
        const auto a = x.clone().requires_grad_(true);
        (xloss::torch::cross_entropy(a, y, xloss::cross_entropy_options().reduction(xloss::reduction::none)) * w)
            .sum()
            .backward();
        const auto b = x.clone().requires_grad_(true);
        (F::cross_entropy(b, y, F::CrossEntropyFuncOptions().reduction(torch::kNone)) * w).sum().backward();
        CHECK(torch::allclose(a.grad(), b.grad(), 1e-5, 1e-7));
    }
    SECTION("non-contiguous logits: the classes along a strided axis")
    {
        const auto xt_ = torch::randn({6, 4}).t(); // (4, 6), not contiguous
        REQUIRE_FALSE(xt_.is_contiguous());
        check_same(
            xt_,
            [&](const torch::Tensor& in)
            {
                return xloss::torch::cross_entropy(in, y);
            },
            [&](const torch::Tensor& in)
            {
                return F::cross_entropy(in, y);
            },
            2e-5, 1e-7);
    }
    SECTION("bfloat16 and half: the float loss of their values, the loss and gradient in the input's dtype")
    {
        for (const auto type : {torch::kBFloat16, torch::kHalf})
        {
            CAPTURE(c10::toString(type));
            const auto low = x.to(type);
            const auto [value, grad] = value_and_grad(low,
                                                      [&](const torch::Tensor& in)
                                                      {
                                                          return xloss::torch::cross_entropy(in, y);
                                                      });
            const auto [value32, grad32] = value_and_grad(low.to(torch::kFloat),
                                                          [&](const torch::Tensor& in)
                                                          {
                                                              return xloss::torch::cross_entropy(in, y);
                                                          });
            CHECK(value.scalar_type() == type);
            CHECK(grad.scalar_type() == type);
            CHECK(torch::equal(value, value32.to(type)));
            CHECK(torch::equal(grad, grad32.to(type)));
            const auto jsd = [&](const torch::Tensor& in)
            {
                return xloss::torch::generalized_jsd(in, t.to(type), y, xloss::jsd_options().beta(0.3));
            };
            const auto [jv, jg] = value_and_grad(low, jsd);
            const auto [jv32, jg32] =
                value_and_grad(low.to(torch::kFloat),
                               [&](const torch::Tensor& in)
                               {
                                   return xloss::torch::generalized_jsd(in, t.to(type).to(torch::kFloat), y,
                                                                        xloss::jsd_options().beta(0.3));
                               });
            CHECK(torch::equal(jv, jv32.to(type)));
            CHECK(torch::equal(jg, jg32.to(type)));
            // Scaled (fp16 loss scaling): the gradient for grad_output 1024 rounded once, not the kept one
            // rounded and then scaled. Entries of about 3e-8 (below half's smallest, 6e-8) survive.
            auto peaked = torch::zeros({4, 4096});
            peaked.select(1, 7).fill_(16.f);
            const auto seven = torch::full({4}, 7, torch::kLong);
            const auto [sv, sg] = value_and_grad(peaked.to(type),
                                                 [&](const torch::Tensor& in)
                                                 {
                                                     return 1024 * xloss::torch::cross_entropy(in, seven);
                                                 });
            const auto [sv32, sg32] = value_and_grad(peaked,
                                                     [&](const torch::Tensor& in)
                                                     {
                                                         return 1024 * xloss::torch::cross_entropy(in, seven);
                                                     });
            CHECK(sg.scalar_type() == type);
            CHECK(sg[0][0].item<float>() > 0.f);
            CHECK(torch::allclose(sg.to(torch::kFloat), sg32.to(type).to(torch::kFloat), 1e-2, 0));
            // Read in place: the loss's node takes the leaf itself, with no conversion between.
            const auto leaf = low.clone().requires_grad_(true);
            const auto edge = xloss::torch::cross_entropy(leaf, y).grad_fn()->next_edges()[0].function;
            CHECK(edge->name().find("AccumulateGrad") != std::string::npos);
            // kl_div's kernels read float: libtorch converts first, and autograd goes back through it.
            const auto [kv, kg] = value_and_grad(x.log_softmax(1).to(type),
                                                 [&](const torch::Tensor& in)
                                                 {
                                                     return xloss::torch::kl_div(in, t.softmax(1).to(type));
                                                 });
            CHECK(kv.scalar_type() == type);
            CHECK(kg.scalar_type() == type);
        }
    }
    SECTION("no grad_fn without grad mode, the same value")
    {
        const auto a = x.clone().requires_grad_(true);
        torch::Tensor value;
        {
            torch::NoGradGuard no_grad;
            value = xloss::torch::forward_kl(a, t);
        }
        CHECK_FALSE(value.requires_grad());
        CHECK(torch::allclose(value, xloss::torch::forward_kl(x, t)));
    }
}

TEST_CASE("xloss::torch errors name the function and the argument", "[torch]")
{
    using namespace torch_test;
    const auto x = torch::randn({2, 3});
    const auto y = torch::tensor({0, 1}, torch::kLong);
    CHECK_THROWS_WITH(xloss::torch::cross_entropy(x.to(torch::kInt), y),
                      xloss_test::contains("xloss::torch::cross_entropy: logits has dtype Int; xloss takes float"));
    // Floating-point labels are probability targets, of the logits' shape.
    CHECK_THROWS_WITH(xloss::torch::cross_entropy(x, y.to(torch::kFloat)),
                      xloss_test::contains("xloss::cross_entropy: probability targets of shape (2) and logits of shape "
                                           "(2, 3) differ (class indices are integers)"));
    CHECK_THROWS_WITH(xloss::torch::cross_entropy(x, y.to(torch::kBool)),
                      xloss_test::contains("xloss::torch::cross_entropy: labels has dtype Bool; labels are integers"));
    CHECK_THROWS_WITH(xloss::torch::kl_div(x, x.to(torch::kDouble)),
                      xloss_test::contains("xloss::torch::kl_div: target has dtype Double and input Float"));
    CHECK_THROWS_WITH(xloss::torch::forward_kl(x, x.clone().requires_grad_(true)),
                      xloss_test::contains("xloss::torch::forward_kl: teacher_logits requires grad"));
    CHECK_THROWS_WITH(xloss::torch::cross_entropy(x, torch::tensor({0, 3}, torch::kLong)),
                      xloss_test::contains("cross_entropy"));
    CHECK_THROWS_WITH(xloss::torch::cross_entropy(torch::Tensor(), y),
                      xloss_test::contains("xloss::torch::cross_entropy: logits is an undefined tensor"));
    CHECK_THROWS_WITH(xloss::torch::kl_div(x, torch::Tensor()),
                      xloss_test::contains("xloss::torch::kl_div: target is an undefined tensor"));
    CHECK_THROWS_WITH(xloss::torch::cross_entropy(x, torch::Tensor()),
                      xloss_test::contains("xloss::torch::cross_entropy: labels is an undefined tensor"));
    CHECK_THROWS_WITH(xloss::torch::generalized_jsd(x, torch::Tensor()),
                      xloss_test::contains("xloss::torch::generalized_jsd: teacher_logits is an undefined tensor"));
    xloss::torch::ReverseKLLoss reverse;
    CHECK_THROWS_WITH(reverse(x, torch::randn({2, 4})), xloss_test::contains("reverse_kl"));

    // No double backward: an error, not gradients without a graph.
    const auto c = x.clone().requires_grad_(true);
    const auto none =
        xloss::torch::cross_entropy(c, y, xloss::cross_entropy_options().reduction(xloss::reduction::none));
    CHECK_THROWS_WITH(torch::autograd::grad({none.sum()}, {c}, {}, /*retain_graph=*/true, /*create_graph=*/true),
                      xloss_test::contains("xloss::torch: a loss has no double backward"));

    // A reduced loss keeps its gradient for one backward.
    const auto a = x.clone().requires_grad_(true);
    const auto loss = xloss::torch::cross_entropy(a, y);
    loss.backward({}, /*retain_graph=*/true);
    CHECK_THROWS_WITH(loss.backward(),
                      xloss_test::contains("a second backward through it (retain_graph) is not supported"));
}

#ifdef XLOSS_TEST_TORCH_LINEAR
TEST_CASE("xloss::torch::fused_linear_cross_entropy against F::cross_entropy of F::linear", "[torch]")
{
    using namespace torch_test;
    torch::manual_seed(6);
    for (const auto type : {torch::kFloat, torch::kDouble})
    {
        for (const bool with_bias : {false, true})
        {
            CAPTURE(c10::toString(type), with_bias);
            const auto h = torch::randn({2, 5, 8}, type).requires_grad_(true);
            const auto w = (torch::randn({13, 8}, type) / 2).requires_grad_(true);
            const auto b = torch::randn({13}, type).requires_grad_(true);
            const auto y = torch::tensor({{1, 12, -100, 0, 7}, {3, 3, -100, 9, 11}}, torch::kLong);
            const auto options = xloss::cross_entropy_options().label_smoothing(0.05);
            // Chunks of 3 rows: the 8 kept rows take three chunks.
            const auto linear = xloss::fused_linear_options().chunk_rows(3);
            const auto ours = with_bias ? xloss::torch::fused_linear_cross_entropy(h, w, b, y, options, linear)
                                        : xloss::torch::fused_linear_cross_entropy(h, w, y, options, linear);
            (2 * ours).backward();
            const auto grads = std::vector<torch::Tensor>{h.grad().clone(), w.grad().clone(),
                                                          with_bias ? b.grad().clone() : torch::Tensor()};
            for (const auto& t : {h, w, b})
            {
                t.mutable_grad() = torch::Tensor();
            }
            const auto logits = with_bias ? F::linear(h, w, b) : F::linear(h, w);
            const auto theirs = F::cross_entropy(logits.reshape({10, 13}), y.reshape({10}),
                                                 F::CrossEntropyFuncOptions().label_smoothing(0.05));
            (2 * theirs).backward();
            const double rtol = tolerance(type), atol = absolute(type);
            CHECK(torch::allclose(ours, theirs, rtol, atol));
            CHECK(torch::allclose(grads[0], h.grad(), rtol, atol));
            CHECK(torch::allclose(grads[1], w.grad(), rtol, atol));
            if (with_bias)
            {
                CHECK(torch::allclose(grads[2], b.grad(), rtol, atol));
            }
        }
    }
    xloss::torch::FusedLinearCrossEntropyLoss module(xloss::cross_entropy_options().reduction(xloss::reduction::none));
    CHECK_THROWS_WITH(module(torch::randn({2, 4}), torch::randn({3, 4}), torch::tensor({0, 1}, torch::kLong)),
                      xloss_test::contains("xloss::torch::fused_linear_cross_entropy: options ask for reduction none"));
}

TEST_CASE("xloss::torch fused linear divergences against the divergences of F::linear's logits", "[torch]")
{
    using namespace torch_test;
    torch::manual_seed(8);
    for (const auto type : {torch::kFloat, torch::kDouble})
    {
        CAPTURE(c10::toString(type));
        const auto h = torch::randn({2, 5, 8}, type).requires_grad_(true);
        const auto w = (torch::randn({13, 8}, type) / 2).requires_grad_(true);
        const auto th = torch::randn({2, 5, 6}, type);
        const auto tw = torch::randn({13, 6}, type) / 2;
        const auto y = torch::tensor({{1, 12, -100, 0, 7}, {3, 3, -100, 9, 11}}, torch::kLong);
        const auto linear = xloss::fused_linear_options().chunk_rows(3);
        const auto jsd = xloss::jsd_options().beta(0.3).temperature(2.);
        const auto compare = [&](const torch::Tensor& ours, const torch::Tensor& theirs_of_logits)
        {
            ours.backward();
            const auto gh = h.grad().clone(), gw = w.grad().clone();
            h.mutable_grad() = torch::Tensor();
            w.mutable_grad() = torch::Tensor();
            theirs_of_logits.backward();
            const double rtol = tolerance(type), atol = absolute(type);
            CHECK(torch::allclose(ours, theirs_of_logits, rtol, atol));
            CHECK(torch::allclose(gh, h.grad(), rtol, atol));
            CHECK(torch::allclose(gw, w.grad(), rtol, atol));
            h.mutable_grad() = torch::Tensor();
            w.mutable_grad() = torch::Tensor();
        };
        // The logits' divergences are tested against libtorch compositions above.
        compare(xloss::torch::fused_linear_generalized_jsd(h, w, th, tw, y, jsd, linear),
                xloss::torch::generalized_jsd(F::linear(h, w), F::linear(th, tw), y, jsd));
        compare(xloss::torch::fused_linear_forward_kl(h, w, th, tw, torch::Tensor(), xloss::distill_options(), linear),
                xloss::torch::forward_kl(F::linear(h, w), F::linear(th, tw)));
        compare(xloss::torch::fused_linear_reverse_kl(h, w, th, tw, y),
                xloss::torch::reverse_kl(F::linear(h, w), F::linear(th, tw), y));
        xloss::torch::FusedLinearSymmetricKLLoss symmetric(xloss::symmetric_kl_options(), linear);
        compare(symmetric(h, w, th, tw, y), xloss::torch::symmetric_kl(F::linear(h, w), F::linear(th, tw), y));
    }
    CHECK_THROWS_WITH(xloss::torch::fused_linear_forward_kl(torch::randn({2, 4}), torch::randn({3, 4}),
                                                            torch::randn({2, 4}).requires_grad_(true),
                                                            torch::randn({3, 4})),
                      xloss_test::contains("xloss::torch::fused_linear_forward_kl: teacher_hidden requires grad"));
}
#endif
