// Throughput of xloss's KL-divergence loss beside its baselines, on the same
// buffers in one run: a plain scalar loop, the naive xtensor expression, the
// machine's memory bound (xsimd read/write kernels), a bare xsimd::log loop and,
// when built with XLOSS_BENCH_TORCH, libtorch's kl_div with autograd.
//
// Run through `make bench`; scripts/bench_report.py turns the JSON into the
// README's table and plot.

#include <cmath>
#include <cstddef>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xadapt.hpp)
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(core, xmath.hpp)

#include <xloss/xloss.hpp>

#ifdef XLOSS_BENCH_WITH_TORCH
#include <torch/torch.h>
#endif

namespace
{
    template <class T>
    using buffer = std::vector<T, xsimd::aligned_allocator<T>>;

    /// Inputs of one size: log-probabilities, probabilities (10% zeros), their logs, a gradient.
    template <class T>
    struct bench_data
    {
        buffer<T> x, t, log_t, out, out2;
        xt::xarray<T> xa, ta, log_ta;
    };

    template <class T>
    bench_data<T>& data(std::size_t n)
    {
        static std::map<std::size_t, std::unique_ptr<bench_data<T>>> cache;
        auto& slot = cache[n];
        if (!slot)
        {
            slot = std::make_unique<bench_data<T>>();
            std::mt19937 gen(42);
            std::uniform_real_distribution<double> u(0.0, 1.0);
            for (std::size_t i = 0; i < n; ++i)
            {
                const double t = u(gen) < 0.1 ? 0.0 : u(gen);
                slot->x.push_back(static_cast<T>(std::log(u(gen) + 1e-3)));
                slot->t.push_back(static_cast<T>(t));
                slot->log_t.push_back(static_cast<T>(std::log(t)));
            }
            slot->out.resize(n);
            slot->out2.resize(n);
            slot->xa = xt::adapt(slot->x, {n});
            slot->ta = xt::adapt(slot->t, {n});
            slot->log_ta = xt::adapt(slot->log_t, {n});
        }
        return *slot;
    }

    /// A 1-d xtensor view over a buffer, without copying it.
    template <class T>
    auto view(buffer<T>& b)
    {
        return xt::adapt(b.data(), b.size(), xt::no_ownership(), std::vector<std::size_t>{b.size()});
    }

    /// Items and the bytes a kernel must move: `arrays` arrays of n elements.
    template <class T>
    void set_counters(benchmark::State& state, std::size_t n, int arrays)
    {
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
        state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(T) * arrays));
    }

    // ---------------------------------------------------------------- xloss
    // The xloss_* benchmarks write into preallocated outputs, as a training loop would; the
    // xloss_alloc_* ones call the allocating API.

    xloss::kl_div_options options(xloss::reduction r, bool log_target, int threads)
    {
        return xloss::kl_div_options(r, log_target).num_threads(threads);
    }

    template <class T>
    void xloss_forward(benchmark::State& state, xloss::reduction r, bool log_target, int threads)
    {
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        auto& d = data<T>(n);
        const auto x = view(d.x);
        const auto t = view(log_target ? d.log_t : d.t);
        auto out = view(d.out);
        const auto opts = options(r, log_target, threads);
        for (auto _ : state)
        {
            if (r == xloss::reduction::none)
            {
                xloss::kl_div_out(out, x, t, opts);
                benchmark::ClobberMemory();
            }
            else
            {
                T loss = 0;
                xloss::kl_div_out(loss, x, t, opts);
                benchmark::DoNotOptimize(loss);
            }
        }
        set_counters<T>(state, n, r == xloss::reduction::none ? 3 : 2);
    }

    template <class T>
    void xloss_backward(benchmark::State& state, xloss::reduction r, bool log_target, int threads)
    {
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        auto& d = data<T>(n);
        const auto x = view(d.x);
        const auto t = view(log_target ? d.log_t : d.t);
        auto grad = view(d.out);
        const auto opts = options(r, log_target, threads);
        for (auto _ : state)
        {
            xloss::kl_div_backward_out(grad, T(1), x, t, opts);
            benchmark::ClobberMemory();
        }
        set_counters<T>(state, n, 3);
    }

    /// The loss and the input gradient in one pass.
    template <class T>
    void xloss_forward_backward(benchmark::State& state, xloss::reduction r, bool log_target, int threads)
    {
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        auto& d = data<T>(n);
        const auto x = view(d.x);
        const auto t = view(log_target ? d.log_t : d.t);
        auto grad = view(d.out);
        auto loss_none = view(d.out2);
        const auto opts = options(r, log_target, threads);
        for (auto _ : state)
        {
            if (r == xloss::reduction::none)
            {
                xloss::kl_div_forward_backward_out(loss_none, grad, x, t, opts);
            }
            else
            {
                T loss = 0;
                xloss::kl_div_forward_backward_out(loss, grad, x, t, opts);
                benchmark::DoNotOptimize(loss);
            }
            benchmark::ClobberMemory();
        }
        set_counters<T>(state, n, r == xloss::reduction::none ? 4 : 3);
    }

    /// What the allocating calls return: a fresh array per call, as users write them.
    enum class alloc_call
    {
        forward,         ///< kl_div: a 0-d array for sum, an n-element one for none
        backward,        ///< kl_div_backward(1, x, t): the input gradient
        forward_backward ///< kl_div_forward_backward: the loss and the input gradient
    };

    /// The allocating calls on xt::xarray inputs.
    template <class T>
    void xloss_alloc(benchmark::State& state, alloc_call call, xloss::reduction r, bool log_target)
    {
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        auto& d = data<T>(n);
        const xt::xarray<T>& t = log_target ? d.log_ta : d.ta;
        const auto opts = xloss::kl_div_options(r, log_target);
        // One call before timing: the first large allocation of a run may wait for the kernel to
        // compact memory into huge pages (tens of milliseconds, once); a training loop repeats.
        (void)xloss::kl_div_forward_backward(d.xa, t, opts);
        for (auto _ : state)
        {
            if (call == alloc_call::forward)
            {
                const xt::xarray<T> loss = xloss::kl_div(d.xa, t, opts);
                benchmark::DoNotOptimize(loss.data());
            }
            else if (call == alloc_call::backward)
            {
                const xt::xarray<T> grad = xloss::kl_div_backward(T(1), d.xa, t, opts);
                benchmark::DoNotOptimize(grad.data());
            }
            else
            {
                const auto result = xloss::kl_div_forward_backward(d.xa, t, opts);
                benchmark::DoNotOptimize(result.grad_input.data());
            }
        }
        const int written = call == alloc_call::forward    ? (r == xloss::reduction::none ? 1 : 0)
                            : call == alloc_call::backward ? 1
                                                           : (r == xloss::reduction::none ? 2 : 1);
        set_counters<T>(state, n, 2 + written);
    }

    /// What the options path is called with (kl_div_options beyond the reduction and log_target).
    enum class option_kind
    {
        plain,         ///< none: the plain path, on the same (rows, 1024) arrays
        weight,        ///< a scalar weight
        sample_weight, ///< a weight per row, of shape (rows, 1)
        per_sample,    ///< a mean per row
        logits         ///< logits input: the log-softmax along the classes
    };

    /// The allocating kl_div on (n / 1024, 1024) arrays, with one kind of option; sum unless said.
    template <class T>
    void xloss_options(benchmark::State& state, option_kind kind)
    {
        using xloss::reduction;
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        auto& d = data<T>(n);
        const std::vector<std::size_t> shape = {n / 1024, 1024};
        const xt::xarray<T> x = xt::adapt(d.x, shape), t = xt::adapt(d.t, shape);
        xt::xarray<T> w = xt::xarray<T>::from_shape({n / 1024, 1});
        for (std::size_t r = 0; r < w.size(); ++r)
        {
            w(r, 0) = T(0.5) + T(r % 3);
        }
        auto opts = xloss::kl_div_options(reduction::sum);
        if (kind == option_kind::weight)
        {
            opts.weight(0.5);
        }
        else if (kind == option_kind::per_sample)
        {
            opts = xloss::kl_div_options(reduction::mean).per_sample();
        }
        else if (kind == option_kind::logits)
        {
            opts = xloss::kl_div_options(reduction::batchmean).input_logits(true).softmax_axis(1);
        }
        auto call = [&]
        {
            return kind == option_kind::sample_weight ? xloss::kl_div(x, t, opts, w) : xloss::kl_div(x, t, opts);
        };
        (void)call(); // as in xloss_alloc: the first large allocation may wait for compaction, once
        for (auto _ : state)
        {
            const xt::xarray<T> loss = call();
            benchmark::DoNotOptimize(loss.data());
        }
        set_counters<T>(state, n, 2);
    }

    // ------------------------------------------------------------ baselines

    /// Times f(d), which returns a sum, over data of state.range(0) elements of which `arrays` are read.
    template <class T, class F>
    void time_sum(benchmark::State& state, int arrays, F f)
    {
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        auto& d = data<T>(n);
        for (auto _ : state)
        {
            T sum = f(d, n);
            benchmark::DoNotOptimize(sum);
        }
        set_counters<T>(state, n, arrays);
    }

    /// What a user writes by hand: one loop, the C library's log, a float accumulator.
    template <class T>
    void scalar_loop(benchmark::State& state)
    {
        time_sum<T>(state, 2,
                    [](const bench_data<T>& d, std::size_t n)
                    {
                        T sum = 0;
                        for (std::size_t i = 0; i < n; ++i)
                        {
                            const T t = d.t[i];
                            sum += t > 0 ? t * (std::log(t) - d.x[i]) : T(0);
                        }
                        return sum;
                    });
    }

    /// The one-line xtensor expression (with XTENSOR_USE_XSIMD, its fastest form).
    template <class T>
    void naive_xtensor(benchmark::State& state)
    {
        time_sum<T>(state, 2,
                    [](const bench_data<T>& d, std::size_t)
                    {
                        return static_cast<T>(xt::sum(d.ta * (xt::log(d.ta) - d.xa))());
                    });
    }

    /// The naive expression for the loss, then the gradient -t as a second expression.
    template <class T>
    void naive_xtensor_forward_backward(benchmark::State& state)
    {
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        auto& d = data<T>(n);
        auto grad = view(d.out);
        for (auto _ : state)
        {
            T sum = xt::sum(d.ta * (xt::log(d.ta) - d.xa))();
            grad = -d.ta;
            benchmark::DoNotOptimize(sum);
            benchmark::ClobberMemory();
        }
        set_counters<T>(state, n, 3);
    }

    /// Sum of x[i] + t[i] over [begin, end): reads both arrays at the machine's best rate.
    template <class T>
    T read2_sum(const T* x, const T* t, std::size_t begin, std::size_t end)
    {
        using batch = xsimd::batch<T>;
        constexpr std::size_t W = batch::size;
        batch a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
        std::size_t i = begin;
        for (; i + 4 * W <= end; i += 4 * W)
        {
            a0 += batch::load_unaligned(x + i) + batch::load_unaligned(t + i);
            a1 += batch::load_unaligned(x + i + W) + batch::load_unaligned(t + i + W);
            a2 += batch::load_unaligned(x + i + 2 * W) + batch::load_unaligned(t + i + 2 * W);
            a3 += batch::load_unaligned(x + i + 3 * W) + batch::load_unaligned(t + i + 3 * W);
        }
        T sum = xloss::compat::reduce_add((a0 + a1) + (a2 + a3));
        for (; i < end; ++i)
        {
            sum += x[i] + t[i];
        }
        return sum;
    }

    /// The memory bound of the reduced forward: read two arrays, nothing else.
    template <class T>
    void bound_read2(benchmark::State& state)
    {
        time_sum<T>(state, 2,
                    [](const bench_data<T>& d, std::size_t n)
                    {
                        return read2_sum(d.x.data(), d.t.data(), 0, n);
                    });
    }

    /// The two-thread memory bound: each thread reads its half of both arrays (OpenMP).
    template <class T>
    void bound_read2_threads(benchmark::State& state)
    {
        time_sum<T>(state, 2,
                    [](const bench_data<T>& d, std::size_t n)
                    {
                        T total = 0;
#pragma omp parallel for num_threads(2) reduction(+ : total)
                        for (int half = 0; half < 2; ++half)
                        {
                            total += read2_sum(d.x.data(), d.t.data(), half * (n / 2), half ? n : n / 2);
                        }
                        return total;
                    });
    }

    /// The memory bound of `none` and of the gradients: read two arrays, write one.
    template <class T>
    void bound_read2_write1(benchmark::State& state)
    {
        using batch = xsimd::batch<T>;
        constexpr std::size_t W = batch::size;
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        auto& d = data<T>(n);
        for (auto _ : state)
        {
            std::size_t i = 0;
            for (; i + 2 * W <= n; i += 2 * W)
            {
                (batch::load_unaligned(&d.x[i]) + batch::load_unaligned(&d.t[i])).store_unaligned(&d.out[i]);
                (batch::load_unaligned(&d.x[i + W]) + batch::load_unaligned(&d.t[i + W]))
                    .store_unaligned(&d.out[i + W]);
            }
            for (; i < n; ++i)
            {
                d.out[i] = d.x[i] + d.t[i];
            }
            benchmark::ClobberMemory();
        }
        set_counters<T>(state, n, 3);
    }

    /// f(batch) summed over one array: the cost of a transcendental alone.
    template <class T, class F>
    T batch_sum(const buffer<T>& in, F f)
    {
        using batch = xsimd::batch<T>;
        batch acc(T(0));
        for (std::size_t i = 0; i + batch::size <= in.size(); i += batch::size)
        {
            acc += f(batch::load_aligned(&in[i]));
        }
        return xloss::compat::reduce_add(acc);
    }

    /// A bare xsimd::log over one array (of 1 + t): what the forward costs at the least without xloss's log.
    template <class T>
    void xsimd_log(benchmark::State& state)
    {
        time_sum<T>(state, 1,
                    [](const bench_data<T>& d, std::size_t)
                    {
                        return batch_sum(d.t,
                                         [](const auto& b)
                                         {
                                             return xsimd::log(b + T(1));
                                         });
                    });
    }

    /// A bare xsimd::exp over one array: the transcendental of the log_target path.
    template <class T>
    void xsimd_exp(benchmark::State& state)
    {
        time_sum<T>(state, 1,
                    [](const bench_data<T>& d, std::size_t)
                    {
                        return batch_sum(d.x,
                                         [](const auto& b)
                                         {
                                             return xsimd::exp(b);
                                         });
                    });
    }

#ifdef XLOSS_BENCH_WITH_TORCH
    /// libtorch's own default, read before any benchmark changes it.
    const int torch_default_threads = torch::get_num_threads();

    template <class T>
    torch::Tensor as_tensor(const buffer<T>& b)
    {
        const auto dtype = std::is_same<T, float>::value ? torch::kFloat32 : torch::kFloat64;
        return torch::from_blob(const_cast<T*>(b.data()), {static_cast<std::int64_t>(b.size())},
                                torch::TensorOptions().dtype(dtype));
    }

    template <class T>
    void torch_forward(benchmark::State& state, int threads, bool log_target = false)
    {
        torch::set_num_threads(threads > 0 ? threads : torch_default_threads);
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        const auto& d = data<T>(n);
        const auto x = as_tensor(d.x);
        const auto t = as_tensor(log_target ? d.log_t : d.t);
        torch::NoGradGuard no_grad;
        for (auto _ : state)
        {
            auto loss = torch::kl_div(x, t, at::Reduction::Sum, log_target);
            benchmark::DoNotOptimize(loss.data_ptr());
        }
        set_counters<T>(state, n, 2);
    }

    template <class T>
    void torch_forward_backward(benchmark::State& state, int threads)
    {
        torch::set_num_threads(threads > 0 ? threads : torch_default_threads);
        const std::size_t n = static_cast<std::size_t>(state.range(0));
        const auto& d = data<T>(n);
        const auto t = as_tensor(d.t);
        for (auto _ : state)
        {
            auto x = as_tensor(d.x).detach().requires_grad_(true);
            auto loss = torch::kl_div(x, t, at::Reduction::Sum, false);
            loss.backward();
            benchmark::DoNotOptimize(x.grad().data_ptr());
        }
        set_counters<T>(state, n, 3);
    }
#endif

    /// Sizes 2^10 .. 2^24 by 4x, and sizes that are not a multiple of any SIMD width.
    void sizes(benchmark::internal::Benchmark* b)
    {
        for (std::int64_t n = 1 << 10; n <= 1 << 24; n *= 4)
        {
            b->Arg(n);
        }
        b->Arg(1000003);
        b->Arg(12345);
    }
}

namespace
{
    template <class F>
    void add(const std::string& name, F f)
    {
        benchmark::RegisterBenchmark(name.c_str(), f)->Apply(sizes);
    }

    /// Names read implementation/type/variant, then the size: "xloss_forward/float/sum/1048576".
    template <class T>
    void register_type(const std::string& type)
    {
        using xloss::reduction;
        const std::pair<const char*, reduction> reductions[] = {{"sum", reduction::sum},
                                                                {"mean", reduction::mean},
                                                                {"batchmean", reduction::batchmean},
                                                                {"none", reduction::none}};
        for (const auto& [rname, r] : reductions)
        {
            for (bool log_target : {false, true})
            {
                const std::string variant = std::string(rname) + (log_target ? "_log_target" : "");
                add("xloss_forward/" + type + "/" + variant,
                    [r = r, log_target](benchmark::State& s)
                    {
                        xloss_forward<T>(s, r, log_target, 1);
                    });
                add("xloss_backward/" + type + "/" + variant,
                    [r = r, log_target](benchmark::State& s)
                    {
                        xloss_backward<T>(s, r, log_target, 1);
                    });
                add("xloss_forward_backward/" + type + "/" + variant,
                    [r = r, log_target](benchmark::State& s)
                    {
                        xloss_forward_backward<T>(s, r, log_target, 1);
                    });
            }
        }
        add("xloss_forward/" + type + "/sum_2threads",
            [](benchmark::State& s)
            {
                xloss_forward<T>(s, reduction::sum, false, 2);
            });
        add("xloss_forward/" + type + "/none_2threads",
            [](benchmark::State& s)
            {
                xloss_forward<T>(s, reduction::none, false, 2);
            });
        add("xloss_forward_backward/" + type + "/sum_2threads",
            [](benchmark::State& s)
            {
                xloss_forward_backward<T>(s, reduction::sum, false, 2);
            });
        const std::tuple<const char*, alloc_call, reduction, bool> allocating[] = {
            {"xloss_alloc_forward/sum", alloc_call::forward, reduction::sum, false},
            {"xloss_alloc_forward/sum_log_target", alloc_call::forward, reduction::sum, true},
            {"xloss_alloc_forward/none", alloc_call::forward, reduction::none, false},
            {"xloss_alloc_backward/sum", alloc_call::backward, reduction::sum, false},
            {"xloss_alloc_forward_backward/sum", alloc_call::forward_backward, reduction::sum, false}};
        for (const auto& [name, call, r, log_target] : allocating)
        {
            const std::string label(name);
            const auto slash = label.find('/');
            add(label.substr(0, slash) + "/" + type + label.substr(slash),
                [call = call, r = r, log_target = log_target](benchmark::State& s)
                {
                    xloss_alloc<T>(s, call, r, log_target);
                });
        }
        const std::pair<const char*, option_kind> option_kinds[] = {{"plain", option_kind::plain},
                                                                    {"weight", option_kind::weight},
                                                                    {"sample_weight", option_kind::sample_weight},
                                                                    {"per_sample", option_kind::per_sample},
                                                                    {"logits", option_kind::logits}};
        for (const auto& [kname, kind] : option_kinds)
        {
            benchmark::RegisterBenchmark(("xloss_options/" + type + "/" + kname).c_str(),
                                         [kind = kind](benchmark::State& s)
                                         {
                                             xloss_options<T>(s, kind);
                                         })
                ->Arg(1 << 16)
                ->Arg(1 << 20)
                ->Arg(1 << 24);
        }
        add("scalar_loop/" + type + "/sum", scalar_loop<T>);
        add("naive_xtensor/" + type + "/sum", naive_xtensor<T>);
        add("naive_xtensor_forward_backward/" + type + "/sum", naive_xtensor_forward_backward<T>);
        add("bound_read2/" + type, bound_read2<T>);
        add("bound_read2_write1/" + type, bound_read2_write1<T>);
        add("bound_read2/" + type + "/2threads", bound_read2_threads<T>);
        add("xsimd_log/" + type, xsimd_log<T>);
        add("xsimd_exp/" + type, xsimd_exp<T>);
#ifdef XLOSS_BENCH_WITH_TORCH
        add("torch_forward/" + type + "/sum_1thread",
            [](benchmark::State& s)
            {
                torch_forward<T>(s, 1);
            });
        add("torch_forward/" + type + "/sum_log_target_1thread",
            [](benchmark::State& s)
            {
                torch_forward<T>(s, 1, true);
            });
        add("torch_forward/" + type + "/sum_default_threads",
            [](benchmark::State& s)
            {
                torch_forward<T>(s, 0);
            });
        add("torch_forward_backward/" + type + "/sum_1thread",
            [](benchmark::State& s)
            {
                torch_forward_backward<T>(s, 1);
            });
        add("torch_forward_backward/" + type + "/sum_default_threads",
            [](benchmark::State& s)
            {
                torch_forward_backward<T>(s, 0);
            });
#endif
    }
}

int main(int argc, char** argv)
{
    register_type<float>("float");
    register_type<double>("double");
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
    {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
