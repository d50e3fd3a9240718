// The fused linear cross-entropy at a Qwen2.5-0.5B head (V 151936, H 896), and the fused linear
// forward KL from a Qwen2.5-1.5B teacher's layer (H 1536), against their bounds, the same matrix
// products timed alone (same BLAS, same chunks, same threads), and against the libtorch
// compositions on the same BLAS (matmuls, F.cross_entropy or the KL of log-softmaxes, backward).
// One token in eight is padding (label -100). Items are tokens. Two threads everywhere: OpenBLAS's,
// xloss's row passes, libtorch's.
//
// With `--memory <xloss|torch|xloss-kd|torch-kd> <tokens>` it instead runs one step and prints the
// process's peak resident memory above the inputs (VmHWM after clear_refs) less the gradients that
// must exist (h's and W's), in MiB: one process per measurement.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <cblas.h>

#include <xloss/fused_linear.hpp>

#ifdef XLOSS_BENCH_WITH_TORCH
#include <torch/torch.h>
#endif

namespace
{
    constexpr std::size_t classes = 151936, hidden = 896, teacher_hidden = 1536;
    constexpr int threads = 2;

    struct head_data
    {
        xt::xtensor<float, 2> w = xt::xtensor<float, 2>::from_shape({classes, hidden});

        head_data()
        {
            std::mt19937 gen(11);
            std::normal_distribution<float> z(0.f, 0.02f);
            for (auto& v : w)
            {
                v = z(gen);
            }
        }
    };

    const head_data& head()
    {
        static const head_data h;
        return h;
    }

    /// The teacher's layer and hidden states (tokens x 1536).
    struct teacher_data
    {
        xt::xtensor<float, 2> w = xt::xtensor<float, 2>::from_shape({classes, teacher_hidden});
        xt::xtensor<float, 2> h;

        explicit teacher_data(std::size_t tokens)
            : h(xt::xtensor<float, 2>::from_shape({tokens, teacher_hidden}))
        {
            std::mt19937 gen(13);
            std::normal_distribution<float> z(0.f, 0.02f), u(0.f, 1.f);
            for (auto& v : w)
            {
                v = z(gen);
            }
            for (auto& v : h)
            {
                v = u(gen);
            }
        }
    };

    const teacher_data& teacher(std::size_t n)
    {
        static std::unique_ptr<teacher_data> t;
        if (!t || t->h.shape()[0] != n)
        {
            t.reset();
            t = std::make_unique<teacher_data>(n);
        }
        return *t;
    }

    const xloss::FusedLinearForwardKLLoss& kd_loss()
    {
        static const xloss::FusedLinearForwardKLLoss l(xloss::distill_options().num_threads(threads));
        return l;
    }

    struct tokens_data
    {
        xt::xtensor<float, 2> h;
        xt::xtensor<int, 1> labels;

        explicit tokens_data(std::size_t tokens)
            : h(xt::xtensor<float, 2>::from_shape({tokens, hidden}))
            , labels(xt::xtensor<int, 1>::from_shape({tokens}))
        {
            std::mt19937 gen(12);
            std::normal_distribution<float> z(0.f, 1.f);
            for (auto& v : h)
            {
                v = z(gen);
            }
            for (std::size_t i = 0; i < tokens; ++i)
            {
                labels(i) = i % 8 == 7 ? -100 : static_cast<int>((i * 7919) % classes);
            }
        }
    };

    const tokens_data& tokens(std::size_t n)
    {
        static std::vector<std::unique_ptr<tokens_data>> cache;
        for (const auto& t : cache)
        {
            if (t->h.shape()[0] == n)
            {
                return *t;
            }
        }
        cache.push_back(std::make_unique<tokens_data>(n));
        return *cache.back();
    }

    std::size_t tokens_of(const benchmark::State& state)
    {
        return static_cast<std::size_t>(state.range(0));
    }

    const xloss::FusedLinearCrossEntropyLoss& loss()
    {
        static const xloss::FusedLinearCrossEntropyLoss l(xloss::cross_entropy_options().num_threads(threads));
        return l;
    }

    const xloss::fused_linear_options& loss_linear()
    {
        return loss().linear_options();
    }

    void xloss_step_out(benchmark::State& state)
    {
        const auto& t = tokens(tokens_of(state));
        xloss::fused_linear_result<float> r;
        xloss::fused_linear_workspace<float> ws;
        loss().forward_backward_out(t.h, xloss::linear(head().w), t.labels, r, ws); // sizes both
        for (auto _ : state)
        {
            loss().forward_backward_out(t.h, xloss::linear(head().w), t.labels, r, ws);
            benchmark::DoNotOptimize(r.loss.data());
        }
        state.counters["workspace_MiB"] = static_cast<double>(ws.bytes()) / (1 << 20);
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens_of(state)));
    }

    void xloss_step(benchmark::State& state)
    {
        const auto& t = tokens(tokens_of(state));
        for (auto _ : state)
        {
            const auto r = loss().forward_backward(t.h, xloss::linear(head().w), t.labels);
            benchmark::DoNotOptimize(r.loss.data());
        }
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens_of(state)));
    }

    /// The products of a step alone: per chunk of kept rows (as xloss chunks them) the logits, the
    /// hidden states' gradient and the weight's, on the same buffers; the kept rows already gathered.
    void gemm_bound(benchmark::State& state)
    {
        const auto& t = tokens(tokens_of(state));
        std::size_t kept = 0;
        for (const int y : t.labels)
        {
            kept += y != -100 ? 1 : 0;
        }
        const std::size_t chunk = std::min(kept, xloss::detail::chunk_rows<float>(loss_linear(), hidden, classes));
        std::vector<float> z(chunk * classes), gh(chunk * hidden), gw(classes * hidden);
        const float* w = head().w.data();
        for (auto _ : state)
        {
            for (std::size_t first = 0; first < kept; first += chunk)
            {
                const int m = static_cast<int>(std::min(chunk, kept - first));
                const float* h = t.h.data() + first * hidden;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, int(classes), int(hidden), 1.f, h, int(hidden),
                            w, int(hidden), 0.f, z.data(), int(classes));
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, int(hidden), int(classes), 1.f, z.data(),
                            int(classes), w, int(hidden), 0.f, gh.data(), int(hidden));
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(classes), int(hidden), m, 1.f, z.data(),
                            int(classes), h, int(hidden), first == 0 ? 0.f : 1.f, gw.data(), int(hidden));
            }
            benchmark::DoNotOptimize(gw.data());
        }
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens_of(state)));
    }

    void xloss_kd_step_out(benchmark::State& state)
    {
        const auto& t = tokens(tokens_of(state));
        const auto& tt = teacher(tokens_of(state));
        const auto teacher_layer = xloss::teacher_layer(tt.h, xloss::linear(tt.w));
        xloss::fused_linear_result<float> r;
        xloss::fused_linear_workspace<float> ws;
        kd_loss().forward_backward_out(t.h, xloss::linear(head().w), teacher_layer, t.labels, r, ws);
        for (auto _ : state)
        {
            kd_loss().forward_backward_out(t.h, xloss::linear(head().w), teacher_layer, t.labels, r, ws);
            benchmark::DoNotOptimize(r.loss.data());
        }
        state.counters["workspace_MiB"] = static_cast<double>(ws.bytes()) / (1 << 20);
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens_of(state)));
    }

    /// A teacher stored as its top 64 classes per token (offline distillation): no teacher product.
    void xloss_top_k_step_out(benchmark::State& state)
    {
        const std::size_t n = tokens_of(state), k = 64;
        const auto& t = tokens(n);
        xt::xtensor<int, 2> ids = xt::xtensor<int, 2>::from_shape({n, k});
        xt::xtensor<float, 2> lp = xt::xtensor<float, 2>::from_shape({n, k});
        for (std::size_t i = 0; i < ids.size(); ++i)
        {
            ids.flat(i) = static_cast<int>((i / k * 7919 + i % k * 2377) % classes);
            lp.flat(i) = -0.05f * static_cast<float>(i % k + 1);
        }
        xloss::fused_linear_result<float> r;
        xloss::fused_linear_workspace<float> ws;
        kd_loss().forward_backward_out(t.h, xloss::linear(head().w), xloss::top_k(ids, lp), t.labels, r, ws);
        for (auto _ : state)
        {
            kd_loss().forward_backward_out(t.h, xloss::linear(head().w), xloss::top_k(ids, lp), t.labels, r, ws);
            benchmark::DoNotOptimize(r.loss.data());
        }
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
    }

    /// The products of a distillation step alone: the cross-entropy's three and the teacher's logits.
    void kd_gemm_bound(benchmark::State& state)
    {
        const auto& t = tokens(tokens_of(state));
        const auto& tt = teacher(tokens_of(state));
        std::size_t kept = 0;
        for (const int y : t.labels)
        {
            kept += y != -100 ? 1 : 0;
        }
        const std::size_t chunk = std::min(kept, xloss::detail::chunk_rows<float>(kd_loss().linear_options(), hidden,
                                                                                  classes, classes + teacher_hidden));
        std::vector<float> z(chunk * classes), zt(chunk * classes), gh(chunk * hidden), gw(classes * hidden);
        const float* w = head().w.data();
        for (auto _ : state)
        {
            for (std::size_t first = 0; first < kept; first += chunk)
            {
                const int m = static_cast<int>(std::min(chunk, kept - first));
                const float* h = t.h.data() + first * hidden;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, int(classes), int(hidden), 1.f, h, int(hidden),
                            w, int(hidden), 0.f, z.data(), int(classes));
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, int(classes), int(teacher_hidden), 1.f,
                            tt.h.data() + first * teacher_hidden, int(teacher_hidden), tt.w.data(), int(teacher_hidden),
                            0.f, zt.data(), int(classes));
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, int(hidden), int(classes), 1.f, z.data(),
                            int(classes), w, int(hidden), 0.f, gh.data(), int(hidden));
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(classes), int(hidden), m, 1.f, z.data(),
                            int(classes), h, int(hidden), first == 0 ? 0.f : 1.f, gw.data(), int(hidden));
            }
            benchmark::DoNotOptimize(gw.data());
        }
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens_of(state)));
    }

#ifdef XLOSS_BENCH_WITH_TORCH
    /// The forward KL of a teacher's layer in libtorch: masked mean over the kept tokens.
    struct torch_kd_step
    {
        torch::Tensor h, w, th, tw, keep;

        explicit torch_kd_step(std::size_t n)
        {
            torch::set_num_threads(threads);
            const auto& t = tokens(n);
            const auto& tt = teacher(n);
            h = torch::from_blob(const_cast<float*>(t.h.data()), {int64_t(n), int64_t(hidden)})
                    .clone()
                    .requires_grad_();
            w = torch::from_blob(const_cast<float*>(head().w.data()), {int64_t(classes), int64_t(hidden)})
                    .clone()
                    .requires_grad_();
            th = torch::from_blob(const_cast<float*>(tt.h.data()), {int64_t(n), int64_t(teacher_hidden)}).clone();
            tw = torch::from_blob(const_cast<float*>(tt.w.data()), {int64_t(classes), int64_t(teacher_hidden)}).clone();
            keep = torch::from_blob(const_cast<int*>(t.labels.data()), {int64_t(n)}, torch::kInt32).ne(-100);
        }

        float run()
        {
            h.mutable_grad() = torch::Tensor();
            w.mutable_grad() = torch::Tensor();
            torch::Tensor lp;
            {
                torch::NoGradGuard no_grad;
                lp = torch::log_softmax(torch::matmul(th, tw.t()), -1);
            }
            const auto lq = torch::log_softmax(torch::matmul(h, w.t()), -1);
            const auto rows = (lp.exp() * (lp - lq)).sum(-1);
            auto l = (rows * keep).sum() / keep.sum();
            l.backward();
            return l.item<float>();
        }
    };

    void torch_kd(benchmark::State& state)
    {
        torch_kd_step step(tokens_of(state));
        for (auto _ : state)
        {
            benchmark::DoNotOptimize(step.run());
        }
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens_of(state)));
    }

    struct torch_step
    {
        torch::Tensor h, w, y;

        explicit torch_step(std::size_t n)
        {
            torch::set_num_threads(threads);
            const auto& t = tokens(n);
            h = torch::from_blob(const_cast<float*>(t.h.data()), {int64_t(n), int64_t(hidden)})
                    .clone()
                    .requires_grad_();
            w = torch::from_blob(const_cast<float*>(head().w.data()), {int64_t(classes), int64_t(hidden)})
                    .clone()
                    .requires_grad_();
            y = torch::from_blob(const_cast<int*>(t.labels.data()), {int64_t(n)}, torch::kInt32).to(torch::kInt64);
        }

        float run()
        {
            h.mutable_grad() = torch::Tensor();
            w.mutable_grad() = torch::Tensor();
            auto l = torch::nn::functional::cross_entropy(torch::matmul(h, w.t()), y);
            l.backward();
            return l.item<float>();
        }
    };

    void torch_composition(benchmark::State& state)
    {
        torch_step step(tokens_of(state));
        for (auto _ : state)
        {
            benchmark::DoNotOptimize(step.run());
        }
        state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens_of(state)));
    }
#endif

    void sizes(benchmark::internal::Benchmark* b)
    {
        b->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
    }

    /// Resident memory now and its peak since the last reset, in bytes (Linux).
    std::size_t status_bytes(const char* key)
    {
        std::ifstream in("/proc/self/status");
        std::string line;
        while (std::getline(in, line))
        {
            if (line.rfind(key, 0) == 0)
            {
                return std::stoull(line.substr(std::strlen(key))) * 1024;
            }
        }
        return 0;
    }

    void reset_peak()
    {
        std::ofstream("/proc/self/clear_refs") << "5";
    }

    int memory(const std::string& who, std::size_t n)
    {
        const auto& t = tokens(n);
        (void)head();
        const bool kd = who == "xloss-kd" || who == "torch-kd";
        if (kd)
        {
            (void)teacher(n);
        }
        double gradients = double(n * hidden + classes * hidden) * sizeof(float);
#ifdef XLOSS_BENCH_WITH_TORCH
        std::unique_ptr<torch_step> step;
        std::unique_ptr<torch_kd_step> kd_step;
        if (who == "torch")
        {
            step = std::make_unique<torch_step>(n); // its own copies of h and W: inputs
        }
        else if (who == "torch-kd")
        {
            kd_step = std::make_unique<torch_kd_step>(n);
        }
#endif
        reset_peak();
        const std::size_t before = status_bytes("VmRSS:");
        if (who == "xloss")
        {
            const auto r = loss().forward_backward(t.h, xloss::linear(head().w), t.labels);
            benchmark::DoNotOptimize(r.loss.data());
        }
        else if (who == "xloss-kd")
        {
            const auto& tt = teacher(n);
            const auto r = kd_loss().forward_backward(t.h, xloss::linear(head().w),
                                                      xloss::teacher_layer(tt.h, xloss::linear(tt.w)), t.labels);
            benchmark::DoNotOptimize(r.loss.data());
        }
#ifdef XLOSS_BENCH_WITH_TORCH
        else if (who == "torch")
        {
            benchmark::DoNotOptimize(step->run());
        }
        else if (who == "torch-kd")
        {
            benchmark::DoNotOptimize(kd_step->run());
        }
#endif
        else
        {
            std::fprintf(stderr, "--memory: xloss, xloss-kd, torch or torch-kd (built with libtorch)\n");
            return 2;
        }
        const double peak = double(status_bytes("VmHWM:") - before);
        std::printf("memory %s tokens %zu: peak above inputs %.0f MiB, gradients %.0f MiB, beyond them %.0f MiB\n",
                    who.c_str(), n, peak / (1 << 20), gradients / (1 << 20), (peak - gradients) / (1 << 20));
        return 0;
    }
}

BENCHMARK(xloss_step_out)->Name("fused_linear_ce/xloss_out")->Apply(sizes);
BENCHMARK(xloss_step)->Name("fused_linear_ce/xloss")->Apply(sizes);
BENCHMARK(gemm_bound)->Name("fused_linear_ce/gemm_bound")->Apply(sizes);
BENCHMARK(xloss_kd_step_out)->Name("fused_linear_forward_kl/xloss_out")->Apply(sizes);
BENCHMARK(kd_gemm_bound)->Name("fused_linear_forward_kl/gemm_bound")->Apply(sizes);
BENCHMARK(xloss_top_k_step_out)->Name("fused_linear_forward_kl/xloss_out_top_k64")->Apply(sizes);
#ifdef XLOSS_BENCH_WITH_TORCH
BENCHMARK(torch_composition)->Name("fused_linear_ce/libtorch")->Apply(sizes);
BENCHMARK(torch_kd)->Name("fused_linear_forward_kl/libtorch")->Apply(sizes);
#endif

int main(int argc, char** argv)
{
    if (argc == 4 && std::string(argv[1]) == "--memory")
    {
        return memory(argv[2], std::stoull(argv[3]));
    }
#ifdef OPENBLAS_VERSION
    benchmark::AddCustomContext("blas", std::string(OPENBLAS_VERSION) + openblas_get_corename());
    benchmark::AddCustomContext("blas_threads", std::to_string(openblas_get_num_threads()));
#endif
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
