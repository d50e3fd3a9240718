// Throughput of the divergences of LM distillation (forward_kl, reverse_kl, generalized_jsd) beside
// their libtorch compositions (torchtune's forward and reverse KL, TRL's generalized JSD, with
// temperature and the per-token mean), on the same logits in one run, one thread. Items are logits
// (tokens x vocabulary).

#include <cstddef>
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

    std::size_t rows_of(const benchmark::State& state)
    {
        return static_cast<std::size_t>(state.range(0));
    }

    std::size_t classes_of(const benchmark::State& state)
    {
        return static_cast<std::size_t>(state.range(1));
    }

    void set_items(benchmark::State& state)
    {
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * rows_of(state) * classes_of(state)));
    }

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
                           .beta(Loss == 0 ? 0. : Loss == 1 ? 1. : beta)
                           .num_threads(Threads);
        const xloss::GeneralizedJSDLoss loss(o);
        for (auto _ : state)
        {
            auto r = loss.forward_backward(d.student, d.teacher);
            benchmark::DoNotOptimize(r.grad_student.data());
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
#ifdef XLOSS_BENCH_WITH_TORCH
BENCHMARK(torch_forward<0>)->Name("forward_kl/torch")->Apply(shapes);
BENCHMARK(torch_forward<1>)->Name("reverse_kl/torch")->Apply(shapes);
BENCHMARK(torch_forward<2>)->Name("jsd/torch")->Apply(shapes);
BENCHMARK(torch_forward_backward<0>)->Name("forward_kl_fb/torch")->Apply(shapes);
BENCHMARK(torch_forward_backward<1>)->Name("reverse_kl_fb/torch")->Apply(shapes);
BENCHMARK(torch_forward_backward<2>)->Name("jsd_fb/torch")->Apply(shapes);
#endif

BENCHMARK_MAIN();
