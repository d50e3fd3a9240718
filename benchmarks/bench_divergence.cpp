// Throughput of the divergences of LM distillation (forward_kl, reverse_kl, generalized_jsd) beside
// their libtorch compositions (torchtune's forward and reverse KL, TRL's generalized JSD, with
// temperature and the per-token mean), on the same logits in one run, one thread. Items are logits
// (tokens x vocabulary).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <xloss/xloss.hpp>

#include "logits_data.hpp"

#ifdef XLOSS_BENCH_WITH_TORCH
#include <torch/torch.h>
#endif

namespace
{
    constexpr double temperature = 2.0;
    constexpr double beta = 0.5;

    using xloss_bench::data;

    using xloss_bench::classes_of;
    using xloss_bench::rows_of;
    using xloss_bench::set_items;

    /// 0: forward KL, 1: reverse KL, 2: generalized JSD
    template <int Loss, int Threads = 1>
    void xloss_forward(benchmark::State& state)
    {
        const auto& d = data(rows_of(state), classes_of(state));
        const auto o = xloss::jsd_options().temperature(temperature).beta(beta).num_threads(Threads);
        const auto po = xloss::distill_options().temperature(temperature).num_threads(Threads);
        for (auto _ : state)
        {
            if constexpr (Loss == 0)
            {
                benchmark::DoNotOptimize(xloss::forward_kl(d.student, d.teacher, po)());
            }
            else if constexpr (Loss == 1)
            {
                benchmark::DoNotOptimize(xloss::reverse_kl(d.student, d.teacher, po)());
            }
            else
            {
                benchmark::DoNotOptimize(xloss::generalized_jsd(d.student, d.teacher, o)());
            }
        }
        set_items(state);
    }

    template <int Loss, int Threads = 1>
    void xloss_forward_backward(benchmark::State& state)
    {
        const auto& d = data(rows_of(state), classes_of(state));
        const auto o = xloss::jsd_options()
                           .temperature(temperature)
                           .beta(Loss == 0   ? 0.
                                 : Loss == 1 ? 1.
                                             : beta)
                           .num_threads(Threads);
        const xloss::GeneralizedJSDLoss loss(o);
        for (auto _ : state)
        {
            auto r = loss.forward_backward(d.student, d.teacher);
            benchmark::DoNotOptimize(r.grad_student.data());
        }
        set_items(state);
    }

    /// One label per row (a class), one row in eight ignored.
    xt::xarray<int> labels_for(std::size_t rows, std::size_t classes)
    {
        xt::xarray<int> labels = xt::xarray<int>::from_shape({rows});
        for (std::size_t i = 0; i < rows; ++i)
        {
            labels(i) = i % 8 == 7 ? -100 : static_cast<int>((i * 7919) % classes);
        }
        return labels;
    }

    /// The forward KL with the hard cross-entropy mixed in (Mixed) or alone, at temperature T10 / 10.
    template <bool Mixed, int T10>
    void mixed_forward_backward(benchmark::State& state)
    {
        const auto& d = data(rows_of(state), classes_of(state));
        const auto labels = labels_for(rows_of(state), classes_of(state));
        const xloss::ForwardKLLoss loss(xloss::distill_options()
                                            .temperature(T10 / 10.)
                                            .weight_hard(Mixed ? 0.5 : 0.)
                                            .weight_soft(Mixed ? 0.5 : 1.));
        for (auto _ : state)
        {
            auto r = loss.forward_backward(d.student, d.teacher, labels);
            benchmark::DoNotOptimize(r.grad_student.data());
        }
        set_items(state);
    }

    constexpr std::size_t top_k_count = 64;

    /// The teacher's top 64 classes and log-probabilities (its largest logits, in order).
    struct top_k_data
    {
        xt::xarray<int> ids;
        xt::xarray<float> log_probs;
    };

    const top_k_data& top_k_for(std::size_t rows, std::size_t classes)
    {
        static std::vector<std::pair<std::size_t, top_k_data>> cache;
        for (const auto& [key, value] : cache)
        {
            if (key == rows * 1000003 + classes)
            {
                return value;
            }
        }
        const auto& t = data(rows, classes).teacher;
        top_k_data d{xt::xarray<int>::from_shape({rows, top_k_count}),
                     xt::xarray<float>::from_shape({rows, top_k_count})};
        std::vector<int> order(classes);
        for (std::size_t r = 0; r < rows; ++r)
        {
            const float* row = t.data() + r * classes;
            std::iota(order.begin(), order.end(), 0);
            std::partial_sort(order.begin(), order.begin() + top_k_count, order.end(),
                              [&](int a, int b)
                              {
                                  return row[a] > row[b];
                              });
            double z = 0.;
            for (std::size_t j = 0; j < classes; ++j)
            {
                z += std::exp(static_cast<double>(row[j] - row[order[0]]));
            }
            for (std::size_t j = 0; j < top_k_count; ++j)
            {
                d.ids(r, j) = order[j];
                d.log_probs(r, j) = static_cast<float>(row[order[j]] - row[order[0]] - std::log(z));
            }
        }
        cache.emplace_back(rows * 1000003 + classes, std::move(d));
        return cache.back().second;
    }

    void top_k_forward_backward(benchmark::State& state)
    {
        const auto& d = data(rows_of(state), classes_of(state));
        const auto& k = top_k_for(rows_of(state), classes_of(state));
        const xloss::ForwardKLLoss loss;
        for (auto _ : state)
        {
            auto r = loss.forward_backward(d.student, xloss::top_k(k.ids, k.log_probs));
            benchmark::DoNotOptimize(r.grad_student.data());
        }
        set_items(state);
    }

    namespace kernels = xloss::detail;
    using batch = kernels::default_batch<float>;

    /// sum e^((x - m) x scale) over a row, the exponentials kept in `keep`.
    XLOSS_INLINE double exp_sum(const float* p, std::size_t n, float m, float scale, float* keep)
    {
        kernels::row_sum<batch> z;
        kernels::for_each_batch<batch>(
            n,
            [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
            {
                const batch e =
                    kernels::exp_nonpositive((kernels::load_row<batch>(p, i, n, -INFINITY) - batch(m)) * batch(scale));
                kernels::store_lanes(keep + i, e, count);
                z.add(e);
            });
        return z.total();
    }

    /**
     * The row-engine bound of a divergence's forward + student gradient: per row both maxima, both
     * rows' exponentials and their sums (kept in the gradient row and one spare row), and the
     * gradient (q - p) T written; with xloss's own batch kernels, nothing else (no terms, checks,
     * options or layouts). Teacher = false: the student alone (max, exponentials and sum, q written),
     * the least any loss from the student's softmax with a gradient can do.
     */
    template <bool Teacher>
    void bound_forward_backward(benchmark::State& state)
    {
        const auto& d = data(rows_of(state), classes_of(state));
        const std::size_t rows = rows_of(state), n = classes_of(state);
        const float inv_t = static_cast<float>(1. / temperature);
        std::vector<float> grad(rows * n), spare(n);
        for (auto _ : state)
        {
            for (std::size_t k = 0; k < rows; ++k)
            {
                const float* s = d.student.data() + k * n;
                const float* t = d.teacher.data() + k * n;
                float* g = grad.data() + k * n;
                const double zs = exp_sum(s, n, kernels::row_max<batch>(s, n), inv_t, g);
                const double zt = Teacher ? exp_sum(t, n, kernels::row_max<batch>(t, n), inv_t, spare.data()) : 1.;
                const batch a(static_cast<float>(temperature / zs)), b(static_cast<float>(temperature / zt));
                kernels::for_each_batch<batch>(n,
                                               [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                               {
                                                   batch v = kernels::load_row<batch>(g, i, n, 0.f) * a;
                                                   if (Teacher)
                                                   {
                                                       v -= kernels::load_row<batch>(spare.data(), i, n, 0.f) * b;
                                                   }
                                                   kernels::store_lanes(g + i, v, count);
                                               });
            }
            benchmark::DoNotOptimize(grad.data());
            benchmark::ClobberMemory();
        }
        set_items(state);
    }

#ifdef XLOSS_BENCH_WITH_TORCH
    template <int Loss>
    torch::Tensor composition(const torch::Tensor& s, const torch::Tensor& t)
    {
        const auto lq = torch::log_softmax(s / temperature, -1);
        const auto lp = torch::log_softmax(t / temperature, -1);
        torch::Tensor per_token;
        if constexpr (Loss == 0)
        {
            per_token = (lp.exp() * (lp - lq)).sum(-1);
        }
        else if constexpr (Loss == 1)
        {
            per_token = (lq.exp() * (lq - lp)).sum(-1);
        }
        else
        {
            const auto lm = torch::logsumexp(torch::stack({lp + std::log(beta), lq + std::log1p(-beta)}), 0);
            per_token = (beta * (lp.exp() * (lp - lm)) + (1 - beta) * (lq.exp() * (lq - lm))).sum(-1);
        }
        return temperature * temperature * per_token.mean();
    }

    template <int Loss>
    void torch_forward(benchmark::State& state)
    {
        torch::set_num_threads(1);
        const auto& d = data(rows_of(state), classes_of(state));
        const std::vector<int64_t> shape{int64_t(rows_of(state)), int64_t(classes_of(state))};
        const auto s = torch::from_blob(const_cast<float*>(d.student.data()), shape);
        const auto t = torch::from_blob(const_cast<float*>(d.teacher.data()), shape);
        torch::NoGradGuard no_grad;
        for (auto _ : state)
        {
            benchmark::DoNotOptimize(composition<Loss>(s, t).template item<float>());
        }
        set_items(state);
    }

    template <int Loss>
    void torch_forward_backward(benchmark::State& state)
    {
        torch::set_num_threads(1);
        const auto& d = data(rows_of(state), classes_of(state));
        const std::vector<int64_t> shape{int64_t(rows_of(state)), int64_t(classes_of(state))};
        const auto t = torch::from_blob(const_cast<float*>(d.teacher.data()), shape);
        auto s = torch::from_blob(const_cast<float*>(d.student.data()), shape).clone().requires_grad_(true);
        for (auto _ : state)
        {
            auto loss = composition<Loss>(s, t);
            loss.backward();
            benchmark::DoNotOptimize(s.grad().data_ptr<float>());
            s.mutable_grad().reset();
        }
        set_items(state);
    }
#endif

#ifdef XLOSS_BENCH_WITH_TORCH
    /// The libtorch forms of a top-k teacher: its dense scatter then the forward KL (Dense), or the
    /// student's log-probabilities gathered at the k classes.
    template <bool Dense>
    void torch_top_k_forward_backward(benchmark::State& state)
    {
        torch::set_num_threads(1);
        const auto& d = data(rows_of(state), classes_of(state));
        const auto& k = top_k_for(rows_of(state), classes_of(state));
        const int64_t rows = int64_t(rows_of(state)), n = int64_t(classes_of(state)), kk = int64_t(top_k_count);
        auto s = torch::from_blob(const_cast<float*>(d.student.data()), {rows, n}).clone().requires_grad_(true);
        const auto ids = torch::from_blob(const_cast<int*>(k.ids.data()), {rows, kk}, torch::kInt32).to(torch::kInt64);
        const auto lp = torch::from_blob(const_cast<float*>(k.log_probs.data()), {rows, kk});
        for (auto _ : state)
        {
            const auto p = torch::softmax(lp, -1);
            const auto lq = torch::log_softmax(s, -1);
            torch::Tensor loss;
            if constexpr (Dense)
            {
                const auto dense = torch::zeros({rows, n}).scatter(-1, ids, p);
                loss = (dense * (torch::log(dense.clamp_min(1e-30)) - lq)).sum(-1).mean();
            }
            else
            {
                loss = (p * (torch::log(p) - lq.gather(-1, ids))).sum(-1).mean();
            }
            loss.backward();
            benchmark::DoNotOptimize(s.grad().data_ptr<float>());
            s.mutable_grad().reset();
        }
        set_items(state);
    }
#endif

    void shapes(benchmark::internal::Benchmark* b)
    {
        // (tokens, vocabulary): a small head, a 32k and a 128k vocabulary.
        b->Args({128, 1000})->Args({8, 32000})->Args({64, 32000})->Args({4, 128256})->Unit(benchmark::kMicrosecond);
    }
}

BENCHMARK(xloss_forward<0>)->Name("forward_kl/xloss")->Apply(shapes);
BENCHMARK(xloss_forward<1>)->Name("reverse_kl/xloss")->Apply(shapes);
BENCHMARK(xloss_forward<2>)->Name("jsd/xloss")->Apply(shapes);
BENCHMARK(xloss_forward_backward<0>)->Name("forward_kl_fb/xloss")->Apply(shapes);
BENCHMARK(xloss_forward_backward<1>)->Name("reverse_kl_fb/xloss")->Apply(shapes);
BENCHMARK(xloss_forward_backward<2>)->Name("jsd_fb/xloss")->Apply(shapes);
// Two threads over rows, against the one-thread rows above (64 rows of 32000: 32 rows per thread).
BENCHMARK(xloss_forward<0, 2>)->Name("forward_kl/xloss_2threads")->Args({64, 32000})->Unit(benchmark::kMicrosecond);
BENCHMARK(xloss_forward_backward<0, 2>)
    ->Name("forward_kl_fb/xloss_2threads")
    ->Args({64, 32000})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(bound_forward_backward<true>)->Name("forward_kl_fb/bound")->Apply(shapes);
BENCHMARK(bound_forward_backward<false>)->Name("student_fb/bound")->Apply(shapes);
BENCHMARK(mixed_forward_backward<false, 10>)->Name("forward_kl_fb_t1/xloss")->Apply(shapes);
BENCHMARK(mixed_forward_backward<true, 10>)->Name("forward_kl_fb_t1/xloss_mixed")->Apply(shapes);
BENCHMARK(mixed_forward_backward<false, 20>)->Name("forward_kl_fb_t2/xloss")->Apply(shapes);
BENCHMARK(mixed_forward_backward<true, 20>)->Name("forward_kl_fb_t2/xloss_mixed")->Apply(shapes);
BENCHMARK(top_k_forward_backward)->Name("top_k_fb/xloss")->Apply(shapes);
#ifdef XLOSS_BENCH_WITH_TORCH
BENCHMARK(torch_top_k_forward_backward<true>)->Name("top_k_fb/torch_dense")->Apply(shapes);
BENCHMARK(torch_top_k_forward_backward<false>)->Name("top_k_fb/torch_gather")->Apply(shapes);
BENCHMARK(torch_forward<0>)->Name("forward_kl/torch")->Apply(shapes);
BENCHMARK(torch_forward<1>)->Name("reverse_kl/torch")->Apply(shapes);
BENCHMARK(torch_forward<2>)->Name("jsd/torch")->Apply(shapes);
BENCHMARK(torch_forward_backward<0>)->Name("forward_kl_fb/torch")->Apply(shapes);
BENCHMARK(torch_forward_backward<1>)->Name("reverse_kl_fb/torch")->Apply(shapes);
BENCHMARK(torch_forward_backward<2>)->Name("jsd_fb/torch")->Apply(shapes);
#endif

BENCHMARK_MAIN();
