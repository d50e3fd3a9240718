// What the row-loss benchmarks share: a (rows, classes) student and teacher of normal values
// (sigma 3), made once per shape, and a benchmark's (rows, classes) arguments and items.

#ifndef XLOSS_BENCH_LOGITS_DATA_HPP
#define XLOSS_BENCH_LOGITS_DATA_HPP

#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

namespace xloss_bench
{
    /// A benchmark's first argument: the rows.
    inline std::size_t rows_of(const benchmark::State& state)
    {
        return static_cast<std::size_t>(state.range(0));
    }

    /// Its second: the classes.
    inline std::size_t classes_of(const benchmark::State& state)
    {
        return static_cast<std::size_t>(state.range(1));
    }

    /// Items processed: the logits of every iteration.
    inline void set_items(benchmark::State& state)
    {
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * rows_of(state) * classes_of(state)));
    }

    struct logits
    {
        xt::xarray<float> student, teacher;
    };

    inline const logits& data(std::size_t rows, std::size_t classes)
    {
        static std::vector<std::pair<std::pair<std::size_t, std::size_t>, logits>> cache;
        for (const auto& [key, value] : cache)
        {
            if (key.first == rows && key.second == classes)
            {
                return value;
            }
        }
        std::mt19937 gen(7);
        std::normal_distribution<float> normal(0.f, 3.f);
        logits l{xt::xarray<float>::from_shape({rows, classes}), xt::xarray<float>::from_shape({rows, classes})};
        for (auto& v : l.student)
        {
            v = normal(gen);
        }
        for (auto& v : l.teacher)
        {
            v = normal(gen);
        }
        cache.push_back({{rows, classes}, std::move(l)});
        return cache.back().second;
    }
}

#endif
