// Throughput of the fused distillation loss kl_div_with_logits beside doing the
// same with xloss's own kl_div after a separate (stored) log-softmax, and beside
// PyTorch's composition T*T*kl_div(log_softmax(s/T), log_softmax(t/T), log_target)
// in libtorch, on the same logits in one run. Items are logits (batch x classes).

#include <cstddef>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(core, xmath.hpp)

#include <xloss/xloss.hpp>

#include "logits_data.hpp"

#ifdef XLOSS_BENCH_WITH_TORCH
#include <torch/torch.h>
#endif

namespace
{
    constexpr double temperature = 2.0;

    using xloss_bench::data;

    void set_items(benchmark::State& state, std::size_t batch, std::size_t classes)
    {
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch * classes));
    }

    std::size_t batch_of(const benchmark::State& state)
    {
        return static_cast<std::size_t>(state.range(0));
    }

    std::size_t classes_of(const benchmark::State& state)
    {
        return static_cast<std::size_t>(state.range(1));
    }

    void fused_forward(benchmark::State& state)
    {
        const auto& d = data(batch_of(state), classes_of(state));
        for (auto _ : state)
        {
            benchmark::DoNotOptimize(xloss::kl_div_with_logits(d.student, d.teacher, temperature)());
        }
        set_items(state, batch_of(state), classes_of(state));
    }

    void fused_forward_backward(benchmark::State& state)
    {
        const auto& d = data(batch_of(state), classes_of(state));
        for (auto _ : state)
        {
            auto r = xloss::kl_div_with_logits_forward_backward(d.student, d.teacher, temperature);
            benchmark::DoNotOptimize(r.loss());
            benchmark::DoNotOptimize(r.grad_input.data());
        }
        set_items(state, batch_of(state), classes_of(state));
    }

    /// log_softmax(z / T) along the last axis, stored: what a user writes without the fused loss.
    xt::xarray<float> stored_log_softmax(const xt::xarray<float>& z)
    {
        const xt::xarray<float> scaled = z / static_cast<float>(temperature);
        // Reductions stored before they broadcast (xtensor 0.24 miscomputes lazy keep_dims reducers inside a
        // broadcast, and its immediate ones crash in C++20).
        const xt::xarray<float> m = xt::amax(scaled, {1}, xt::keep_dims);
        const xt::xarray<float> sums = xt::sum(xt::exp(scaled - m), {1}, xt::keep_dims);
        const xt::xarray<float> lse = m + xt::log(sums);
        return scaled - lse;
    }

    void kl_div_after_softmax_forward(benchmark::State& state)
    {
        const auto& d = data(batch_of(state), classes_of(state));
        const auto opts = xloss::kl_div_options(xloss::reduction::batchmean, true);
        for (auto _ : state)
        {
            const auto ls = stored_log_softmax(d.student);
            const auto lt = stored_log_softmax(d.teacher);
            benchmark::DoNotOptimize(temperature * temperature * xloss::kl_div(ls, lt, opts)());
        }
        set_items(state, batch_of(state), classes_of(state));
    }

    void kl_div_after_softmax_forward_backward(benchmark::State& state)
    {
        const auto& d = data(batch_of(state), classes_of(state));
        const auto opts = xloss::kl_div_options(xloss::reduction::batchmean, true);
        const float t2 = static_cast<float>(temperature * temperature);
        for (auto _ : state)
        {
            const auto ls = stored_log_softmax(d.student);
            const auto lt = stored_log_softmax(d.teacher);
            auto r = xloss::kl_div_forward_backward(ls, lt, opts);
            benchmark::DoNotOptimize(r.loss());
            // Back through the log-softmax and the 1/T: T^2 / T (g - softmax * sum(g)).
            const xt::xarray<float> total = xt::sum(r.grad_input, {1}, xt::keep_dims);
            xt::xarray<float> grad = (t2 / static_cast<float>(temperature)) * (r.grad_input - xt::exp(ls) * total);
            benchmark::DoNotOptimize(grad.data());
        }
        set_items(state, batch_of(state), classes_of(state));
    }

#ifdef XLOSS_BENCH_WITH_TORCH
    torch::Tensor composition(const torch::Tensor& s, const torch::Tensor& t)
    {
        const auto ls = torch::log_softmax(s / temperature, 1);
        const auto lt = torch::log_softmax(t / temperature, 1);
        return temperature * temperature * torch::kl_div(ls, lt, at::Reduction::Sum, true) / s.size(0);
    }

    void torch_forward(benchmark::State& state)
    {
        torch::set_num_threads(1);
        const auto& d = data(batch_of(state), classes_of(state));
        const auto s = torch::from_blob(const_cast<float*>(d.student.data()),
                                        {int64_t(batch_of(state)), int64_t(classes_of(state))});
        const auto t = torch::from_blob(const_cast<float*>(d.teacher.data()),
                                        {int64_t(batch_of(state)), int64_t(classes_of(state))});
        torch::NoGradGuard no_grad;
        for (auto _ : state)
        {
            benchmark::DoNotOptimize(composition(s, t).item<float>());
        }
        set_items(state, batch_of(state), classes_of(state));
    }

    void torch_forward_backward(benchmark::State& state)
    {
        torch::set_num_threads(1);
        const auto& d = data(batch_of(state), classes_of(state));
        const auto t = torch::from_blob(const_cast<float*>(d.teacher.data()),
                                        {int64_t(batch_of(state)), int64_t(classes_of(state))});
        auto s = torch::from_blob(const_cast<float*>(d.student.data()),
                                  {int64_t(batch_of(state)), int64_t(classes_of(state))})
                     .clone()
                     .requires_grad_(true);
        for (auto _ : state)
        {
            auto loss = composition(s, t);
            loss.backward();
            benchmark::DoNotOptimize(s.grad().data_ptr<float>());
            s.mutable_grad().reset();
        }
        set_items(state, batch_of(state), classes_of(state));
    }
#endif

    void shapes(benchmark::internal::Benchmark* b)
    {
        // (batch, classes): a classifier, ImageNet-sized heads, a language model's vocabulary.
        b->Args({256, 10})->Args({128, 1000})->Args({8, 32000})->Args({64, 32000})->Args({4, 128256});
        b->Unit(benchmark::kMicrosecond);
    }
}

BENCHMARK(fused_forward)->Apply(shapes);
BENCHMARK(fused_forward_backward)->Apply(shapes);
BENCHMARK(kl_div_after_softmax_forward)->Apply(shapes);
BENCHMARK(kl_div_after_softmax_forward_backward)->Apply(shapes);
#ifdef XLOSS_BENCH_WITH_TORCH
BENCHMARK(torch_forward)->Apply(shapes);
BENCHMARK(torch_forward_backward)->Apply(shapes);
#endif

BENCHMARK_MAIN();
