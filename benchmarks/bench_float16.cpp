// The row losses on bfloat16 and half logits beside the same losses on float, one thread, in one
// run: the cross-entropy (forward, and forward + gradient into kept outputs) and the forward KL
// (forward), at 2^24 logits (512 x 32768: 64 MiB of float, beyond every cache) and at 2^15
// (8 x 4096: in L2). Items are logits. Two references bound what 16-bit storage can gain: a read
// of the logits alone (the max of each row) in float and in bfloat16, the memory's share of a row
// pass.

#include <cstddef>
#include <vector>

#include <benchmark/benchmark.h>

#include <xloss/xloss.hpp>

#include "logits_data.hpp"

namespace
{
    using xloss_bench::data;

    using xloss_bench::classes_of;
    using xloss_bench::rows_of;
    using xloss_bench::set_items;

    /// The benchmark logits (student and teacher) stored as T.
    template <class T>
    const std::pair<xt::xarray<T>, xt::xarray<T>>& logits_as(std::size_t rows, std::size_t classes)
    {
        static std::vector<std::pair<std::size_t, std::pair<xt::xarray<T>, xt::xarray<T>>>> cache;
        for (const auto& [key, value] : cache)
        {
            if (key == rows * 1000003 + classes)
            {
                return value;
            }
        }
        const auto& d = data(rows, classes);
        cache.emplace_back(rows * 1000003 + classes,
                           std::make_pair(xt::xarray<T>(d.student), xt::xarray<T>(d.teacher)));
        return cache.back().second;
    }

    /// One label per row, one row in eight ignored.
    xt::xarray<int> labels_for(std::size_t rows, std::size_t classes)
    {
        xt::xarray<int> labels = xt::xarray<int>::from_shape({rows});
        for (std::size_t i = 0; i < rows; ++i)
        {
            labels(i) = i % 8 == 7 ? -100 : static_cast<int>((i * 7919) % classes);
        }
        return labels;
    }

    const auto lm = xloss::cross_entropy_options().class_axis(-1);

    template <class T>
    void cross_entropy_forward(benchmark::State& state)
    {
        const auto& x = logits_as<T>(rows_of(state), classes_of(state)).first;
        const auto labels = labels_for(rows_of(state), classes_of(state));
        for (auto _ : state)
        {
            benchmark::DoNotOptimize(static_cast<float>(xloss::cross_entropy(x, labels, lm)()));
        }
        set_items(state);
    }

    template <class T>
    void cross_entropy_out(benchmark::State& state)
    {
        const auto& x = logits_as<T>(rows_of(state), classes_of(state)).first;
        const auto labels = labels_for(rows_of(state), classes_of(state));
        const xloss::CrossEntropyLoss loss(lm);
        xt::xarray<T> grad = x;
        T value{};
        for (auto _ : state)
        {
            loss.forward_backward_out(value, grad, x, labels);
            benchmark::DoNotOptimize(value);
            benchmark::ClobberMemory();
        }
        set_items(state);
    }

    template <class T>
    void forward_kl_forward(benchmark::State& state)
    {
        const auto& [s, t] = logits_as<T>(rows_of(state), classes_of(state));
        for (auto _ : state)
        {
            benchmark::DoNotOptimize(static_cast<float>(xloss::forward_kl(s, t)()));
        }
        set_items(state);
    }

    /// The read alone: each row's max, from float, or from bfloat16 converted into a row of float.
    template <class T>
    void read_bound(benchmark::State& state)
    {
        using B = xloss::detail::default_batch<float>;
        const auto& x = logits_as<T>(rows_of(state), classes_of(state)).first;
        const std::size_t rows = rows_of(state), n = classes_of(state);
        std::vector<float> row(n);
        for (auto _ : state)
        {
            float m = 0.f;
            for (std::size_t k = 0; k < rows; ++k)
            {
                const T* p = x.data() + k * n;
                if constexpr (std::is_same<T, float>::value)
                {
                    m += xloss::detail::row_max<B>(p, n);
                }
                else
                {
                    xloss::detail::widen_row(p, 1, n, row.data());
                    m += xloss::detail::row_max<B>(row.data(), n);
                }
            }
            benchmark::DoNotOptimize(m);
        }
        set_items(state);
    }

    void shapes(benchmark::internal::Benchmark* b)
    {
        b->Args({512, 32768})->Args({8, 4096})->Unit(benchmark::kMicrosecond);
    }
}

BENCHMARK(cross_entropy_forward<float>)->Name("float16/cross_entropy/float")->Apply(shapes);
BENCHMARK(cross_entropy_forward<xloss::bfloat16>)->Name("float16/cross_entropy/bfloat16")->Apply(shapes);
BENCHMARK(cross_entropy_forward<xloss::half>)->Name("float16/cross_entropy/half")->Apply(shapes);
BENCHMARK(cross_entropy_out<float>)->Name("float16/cross_entropy_out/float")->Apply(shapes);
BENCHMARK(cross_entropy_out<xloss::bfloat16>)->Name("float16/cross_entropy_out/bfloat16")->Apply(shapes);
BENCHMARK(cross_entropy_out<xloss::half>)->Name("float16/cross_entropy_out/half")->Apply(shapes);
BENCHMARK(forward_kl_forward<float>)->Name("float16/forward_kl/float")->Apply(shapes);
BENCHMARK(forward_kl_forward<xloss::bfloat16>)->Name("float16/forward_kl/bfloat16")->Apply(shapes);
BENCHMARK(forward_kl_forward<xloss::half>)->Name("float16/forward_kl/half")->Apply(shapes);
BENCHMARK(read_bound<float>)->Name("float16/read/float")->Apply(shapes);
BENCHMARK(read_bound<xloss::bfloat16>)->Name("float16/read/bfloat16")->Apply(shapes);

BENCHMARK_MAIN();
