// Throughput of cross_entropy beside libtorch's F.cross_entropy on the same logits and labels in
// one run, one thread, and beside a bound: a bare loop over the same rows that does what any
// softmax cross-entropy with its gradient must (the row's max, its exponentials and their sum, and
// the gradient q - onehot written), nothing else. Items are logits (tokens x vocabulary).

#include <cmath>
#include <cstddef>
#include <vector>

#include <benchmark/benchmark.h>

#include <xloss/xloss.hpp>

#include "logits_data.hpp"

#ifdef XLOSS_BENCH_WITH_TORCH
#include <torch/torch.h>
#endif

namespace
{
    using xloss_bench::data;

    using xloss_bench::classes_of;
    using xloss_bench::rows_of;
    using xloss_bench::set_items;

    /// One label per row, one row in eight ignored (padding).
    const xt::xarray<int>& labels_for(std::size_t rows, std::size_t classes)
    {
        static std::vector<std::pair<std::size_t, xt::xarray<int>>> cache;
        for (const auto& [key, value] : cache)
        {
            if (key == rows * 1000003 + classes)
            {
                return value;
            }
        }
        xt::xarray<int> labels = xt::xarray<int>::from_shape({rows});
        for (std::size_t i = 0; i < rows; ++i)
        {
            labels(i) = i % 8 == 7 ? -100 : static_cast<int>((i * 7919) % classes);
        }
        cache.emplace_back(rows * 1000003 + classes, std::move(labels));
        return cache.back().second;
    }

    const auto lm = xloss::cross_entropy_options().class_axis(-1);

    void xloss_forward(benchmark::State& state)
    {
        const auto& x = data(rows_of(state), classes_of(state)).student;
        const auto& labels = labels_for(rows_of(state), classes_of(state));
        for (auto _ : state)
        {
            benchmark::DoNotOptimize(xloss::cross_entropy(x, labels, lm)());
        }
        set_items(state);
    }

    void xloss_forward_backward(benchmark::State& state)
    {
        const auto& x = data(rows_of(state), classes_of(state)).student;
        const auto& labels = labels_for(rows_of(state), classes_of(state));
        const xloss::CrossEntropyLoss loss(lm);
        for (auto _ : state)
        {
            auto r = loss.forward_backward(x, labels);
            benchmark::DoNotOptimize(r.grad_logits.data());
        }
        set_items(state);
    }

    void xloss_forward_backward_out(benchmark::State& state)
    {
        const auto& x = data(rows_of(state), classes_of(state)).student;
        const auto& labels = labels_for(rows_of(state), classes_of(state));
        const xloss::CrossEntropyLoss loss(lm);
        xt::xarray<float> grad = xt::zeros_like(x);
        float value = 0.f;
        for (auto _ : state)
        {
            loss.forward_backward_out(value, grad, x, labels);
            benchmark::DoNotOptimize(value);
            benchmark::ClobberMemory();
        }
        set_items(state);
    }

    /**
     * The bound: per kept row its max, sum e^(x - max) (the exponentials kept in the gradient row) and
     * (e / Z - onehot) / kept written, with xloss's own batch kernels; no checks, options or layouts.
     */
    void bound_forward_backward(benchmark::State& state)
    {
        using B = xloss::detail::default_batch<float>;
        namespace d = xloss::detail;
        const auto& x = data(rows_of(state), classes_of(state)).student;
        const auto& labels = labels_for(rows_of(state), classes_of(state));
        const std::size_t rows = rows_of(state), n = classes_of(state);
        std::vector<float> grad(rows * n);
        for (auto _ : state)
        {
            double total = 0.;
            const float inv_rows = 1.f / static_cast<float>(rows);
            for (std::size_t k = 0; k < rows; ++k)
            {
                const float* p = x.data() + k * n;
                float* g = grad.data() + k * n;
                const float m = d::row_max<B>(p, n);
                d::row_sum<B> z;
                d::for_each_batch<B>(n,
                                     [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                     {
                                         const B e = d::exp_nonpositive(d::load_row<B>(p, i, n, -INFINITY) - B(m));
                                         d::store_lanes(g + i, e, count);
                                         z.add(e);
                                     });
                const double sum = z.total();
                const B scale(static_cast<float>(inv_rows / sum));
                d::for_each_batch<B>(n,
                                     [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                     {
                                         d::store_lanes(g + i, d::load_row<B>(g, i, n, 0.f) * scale, count);
                                     });
                const auto y = static_cast<std::size_t>(labels(k) < 0 ? 0 : labels(k));
                g[y] -= inv_rows;
                total += m + std::log(sum) - p[y];
            }
            benchmark::DoNotOptimize(total);
            benchmark::ClobberMemory();
        }
        set_items(state);
    }

#ifdef XLOSS_BENCH_WITH_TORCH
    torch::Tensor torch_labels(std::size_t rows, std::size_t classes)
    {
        const auto& l = labels_for(rows, classes);
        return torch::from_blob(const_cast<int*>(l.data()), {static_cast<int64_t>(rows)}, torch::kInt32)
            .to(torch::kInt64);
    }

    void torch_forward(benchmark::State& state)
    {
        torch::set_num_threads(1);
        const auto& x = data(rows_of(state), classes_of(state)).student;
        const auto s =
            torch::from_blob(const_cast<float*>(x.data()), {int64_t(rows_of(state)), int64_t(classes_of(state))});
        const auto y = torch_labels(rows_of(state), classes_of(state));
        torch::NoGradGuard no_grad;
        for (auto _ : state)
        {
            benchmark::DoNotOptimize(torch::nn::functional::cross_entropy(s, y).item<float>());
        }
        set_items(state);
    }

    void torch_forward_backward(benchmark::State& state)
    {
        torch::set_num_threads(1);
        const auto& x = data(rows_of(state), classes_of(state)).student;
        auto s = torch::from_blob(const_cast<float*>(x.data()), {int64_t(rows_of(state)), int64_t(classes_of(state))})
                     .clone()
                     .requires_grad_(true);
        const auto y = torch_labels(rows_of(state), classes_of(state));
        for (auto _ : state)
        {
            auto loss = torch::nn::functional::cross_entropy(s, y);
            loss.backward();
            benchmark::DoNotOptimize(s.grad().data_ptr<float>());
            s.mutable_grad().reset();
        }
        set_items(state);
    }
#endif

    void shapes(benchmark::internal::Benchmark* b)
    {
        // (tokens, vocabulary): a small head, a 32k, a 128k (Llama 3) and a 152k (Qwen2.5) vocabulary.
        b->Args({128, 1000})->Args({8, 32000})->Args({4, 128256})->Args({512, 151936})->Unit(benchmark::kMicrosecond);
    }
}

BENCHMARK(xloss_forward)->Name("cross_entropy/xloss")->Apply(shapes);
BENCHMARK(xloss_forward_backward)->Name("cross_entropy_fb/xloss")->Apply(shapes);
BENCHMARK(xloss_forward_backward_out)->Name("cross_entropy_fb/xloss_out")->Apply(shapes);
BENCHMARK(bound_forward_backward)->Name("cross_entropy_fb/bound")->Apply(shapes);
#ifdef XLOSS_BENCH_WITH_TORCH
BENCHMARK(torch_forward)->Name("cross_entropy/torch")->Apply(shapes);
BENCHMARK(torch_forward_backward)->Name("cross_entropy_fb/torch")->Apply(shapes);
#endif

BENCHMARK_MAIN();
