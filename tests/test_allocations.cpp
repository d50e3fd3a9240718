// Counts heap allocations: the calls that write into caller-provided outputs
// allocate nothing. Replaces the global operator new for this test binary; it
// counts only while a test has switched counting on.

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>

#include "catch_compat.hpp"

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xtensor.hpp)

#include <xloss/xloss.hpp>
#ifdef XLOSS_TEST_LINEAR
#include <xloss/fused_linear.hpp>
#endif

namespace
{
    std::atomic<bool> counting{false};
    std::atomic<long> allocations{0};

    /// Counts the allocations made while f runs.
    template <class F>
    long count_allocations(F&& f)
    {
        allocations = 0;
        counting = true;
        f();
        counting = false;
        return allocations;
    }
}

void* operator new(std::size_t n)
{
    if (counting)
    {
        ++allocations;
    }
    if (void* p = std::malloc(n ? n : 1))
    {
        return p;
    }
    throw std::bad_alloc();
}

void operator delete(void* p) noexcept
{
    std::free(p);
}

void operator delete(void* p, std::size_t) noexcept
{
    std::free(p);
}

TEST_CASE("Calls into caller-provided outputs allocate nothing", "[allocations]")
{
    const std::size_t n = 100000;
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({100, n / 100});
    xt::xtensor<float, 2> t = xt::xtensor<float, 2>::from_shape({100, n / 100});
    std::mt19937 gen(1);
    std::uniform_real_distribution<float> u(0.01f, 1.f);
    for (std::size_t i = 0; i < n; ++i)
    {
        x.flat(i) = std::log(u(gen));
        t.flat(i) = u(gen);
    }
    xt::xtensor<float, 2> out = xt::zeros_like(x);
    xt::xtensor<float, 2> gx = xt::zeros_like(x);
    xt::xtensor<float, 2> gt = xt::zeros_like(x);
    float value = 0.f;

    for (bool log_target : {false, true})
    {
        for (auto r : {xloss::reduction::sum, xloss::reduction::mean, xloss::reduction::batchmean})
        {
            const xloss::kl_div_options opts(r, log_target);
            CHECK(count_allocations(
                      [&]
                      {
                          xloss::kl_div_out(value, x, t, opts);
                      })
                  == 0);
            CHECK(count_allocations(
                      [&]
                      {
                          xloss::kl_div_backward_out(gx, 1.f, x, t, opts);
                      })
                  == 0);
            CHECK(count_allocations(
                      [&]
                      {
                          xloss::kl_div_target_backward_out(gt, 1.f, x, t, opts);
                      })
                  == 0);
            CHECK(count_allocations(
                      [&]
                      {
                          xloss::kl_div_forward_backward_out(value, gx, gt, x, t, opts);
                      })
                  == 0);
            // The allocating form allocates the 0-d array it returns, and nothing else.
            CHECK(count_allocations(
                      [&]
                      {
                          (void)xloss::kl_div(x, t, opts);
                      })
                  == 1);
        }
        const xloss::kl_div_options none(xloss::reduction::none, log_target);
        CHECK(count_allocations(
                  [&]
                  {
                      xloss::kl_div_out(out, x, t, none);
                  })
              == 0);
        CHECK(count_allocations(
                  [&]
                  {
                      xloss::kl_div_forward_backward_out(out, gx, x, t, none);
                  })
              == 0);
    }
    CHECK(value > 0.f);
}

TEST_CASE("The divergences' _out call allocates nothing, with labels too", "[allocations]")
{
    const std::size_t rows = 64, classes = 1000;
    xt::xtensor<float, 3> s = xt::xtensor<float, 3>::from_shape({4, rows / 4, classes});
    xt::xtensor<float, 3> t = xt::xtensor<float, 3>::from_shape({4, rows / 4, classes});
    std::mt19937 gen(2);
    std::normal_distribution<float> z(0.f, 2.f);
    for (std::size_t i = 0; i < s.size(); ++i)
    {
        s.flat(i) = z(gen);
        t.flat(i) = z(gen);
    }
    xt::xtensor<int, 2> labels = xt::xtensor<int, 2>::from_shape({4, rows / 4});
    for (std::size_t i = 0; i < labels.size(); ++i)
    {
        labels.flat(i) = i % 5 == 0 ? -100 : static_cast<int>(i);
    }
    xt::xtensor<float, 3> grad = xt::zeros_like(s);
    xt::xtensor<float, 2> per_row = xt::zeros<float>({std::size_t(4), rows / 4});
    float value = 0.f;
    for (auto r : {xloss::reduction::sum, xloss::reduction::mean, xloss::reduction::batchmean})
    {
        const xloss::GeneralizedJSDLoss jsd(xloss::jsd_options().beta(0.3).temperature(2.0).reduction(r));
        const xloss::ReverseKLLoss reverse(xloss::distill_options().reduction(r));
        const xloss::SymmetricKLLoss symmetric(xloss::symmetric_kl_options().ratio(0.6).reduction(r));
        CHECK(count_allocations(
                  [&]
                  {
                      jsd.forward_backward_out(value, grad, s, t, labels);
                  })
              == 0);
        CHECK(count_allocations(
                  [&]
                  {
                      reverse.forward_backward_out(value, grad, s, t);
                  })
              == 0);
        CHECK(count_allocations(
                  [&]
                  {
                      symmetric.forward_backward_out(value, grad, s, t, labels);
                  })
              == 0);
    }
    const xloss::ForwardKLLoss none(xloss::distill_options().reduction(xloss::reduction::none));
    CHECK(count_allocations(
              [&]
              {
                  none.forward_backward_out(per_row, grad, s, t, labels);
              })
          == 0);
    CHECK(per_row(0, 0) == 0.f);
    CHECK(per_row(0, 1) > 0.f);
}

TEST_CASE("cross_entropy's _out call allocates nothing", "[allocations]")
{
    const std::size_t rows = 48, classes = 777;
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({rows, classes});
    std::mt19937 gen(4);
    std::normal_distribution<float> z(0.f, 2.f);
    for (auto& v : x)
    {
        v = z(gen);
    }
    xt::xtensor<long, 1> labels = xt::xtensor<long, 1>::from_shape({rows});
    for (std::size_t i = 0; i < rows; ++i)
    {
        labels(i) = i % 5 == 0 ? -100 : static_cast<long>(i * 13);
    }
    xt::xtensor<float, 2> grad = xt::zeros_like(x);
    xt::xtensor<float, 1> per_row = xt::zeros<float>({rows});
    float value = 0.f;
    std::vector<double> weight(classes, 1.0);
    weight[13] = 2.0;
    for (auto r : {xloss::reduction::sum, xloss::reduction::mean})
    {
        const xloss::CrossEntropyLoss loss(xloss::cross_entropy_options()
                                               .reduction(r)
                                               .label_smoothing(0.1)
                                               .z_loss(1e-4)
                                               .softcap(30)
                                               .weight(weight)
                                               .class_axis(-1));
        CHECK(count_allocations(
                  [&]
                  {
                      loss.forward_backward_out(value, grad, x, labels);
                  })
              == 0);
        CHECK(value > 0.f);
    }
    const xloss::CrossEntropyLoss none(xloss::cross_entropy_options().reduction(xloss::reduction::none));
    CHECK(count_allocations(
              [&]
              {
                  none.forward_backward_out(per_row, grad, x, labels);
              })
          == 0);
    CHECK(per_row(0) == 0.f);
    CHECK(per_row(1) > 0.f);
}

#ifdef XLOSS_TEST_LINEAR
TEST_CASE("The fused linear cross-entropy allocates nothing with a kept result and workspace", "[allocations]")
{
    const std::size_t rows = 40, hidden = 16, classes = 500;
    xt::xtensor<float, 2> h = xt::xtensor<float, 2>::from_shape({rows, hidden});
    xt::xtensor<float, 2> w = xt::xtensor<float, 2>::from_shape({classes, hidden});
    std::mt19937 gen(5);
    std::normal_distribution<float> z(0.f, 0.5f);
    for (auto* a : {&h, &w})
    {
        for (auto& v : *a)
        {
            v = z(gen);
        }
    }
    xt::xtensor<float, 1> b = xt::zeros<float>({classes});
    xt::xtensor<int, 1> labels = xt::xtensor<int, 1>::from_shape({rows});
    for (std::size_t i = 0; i < rows; ++i)
    {
        labels(i) = i % 4 == 1 ? -100 : static_cast<int>(i * 11);
    }
    for (auto write : {xloss::gradient_write::overwrite, xloss::gradient_write::accumulate})
    {
        const xloss::FusedLinearCrossEntropyLoss loss(
            xloss::cross_entropy_options().label_smoothing(0.1).z_loss(1e-4),
            xloss::fused_linear_options().chunk_rows(7).gradient_write(write));
        xloss::fused_linear_result<float> r;
        xloss::fused_linear_workspace<float> ws;
        loss.forward_backward_out(h, xloss::linear(w, b), labels, r, ws); // the first step sizes both
        CHECK(count_allocations(
                  [&]
                  {
                      loss.forward_backward_out(h, xloss::linear(w, b), labels, r, ws);
                  })
              == 0);
        CHECK(r.loss() > 0.f);
    }
    // A fused linear divergence, the teacher a layer of its own (hidden size 8, 510 classes).
    xt::xtensor<float, 2> th = xt::xtensor<float, 2>::from_shape({rows, 8});
    xt::xtensor<float, 2> tw = xt::xtensor<float, 2>::from_shape({510, 8});
    for (auto* a : {&th, &tw})
    {
        for (auto& v : *a)
        {
            v = z(gen);
        }
    }
    const xloss::FusedLinearGeneralizedJSDLoss jsd(xloss::jsd_options().beta(0.3).temperature(2.).weight_hard(0.2),
                                                   xloss::fused_linear_options().chunk_rows(6));
    xloss::fused_linear_result<float> r;
    xloss::fused_linear_workspace<float> ws;
    const auto teacher = xloss::teacher_layer(th, xloss::linear(tw));
    jsd.forward_backward_out(h, xloss::linear(w, b), teacher, labels, r, ws);
    CHECK(count_allocations(
              [&]
              {
                  jsd.forward_backward_out(h, xloss::linear(w, b), teacher, labels, r, ws);
              })
          == 0);
    CHECK(r.loss() > 0.f);
    // The forward KL from a top-k teacher (k = 8).
    xt::xtensor<long, 2> ids = xt::xtensor<long, 2>::from_shape({rows, 8});
    xt::xtensor<float, 2> lp = xt::xtensor<float, 2>::from_shape({rows, 8});
    for (std::size_t i = 0; i < ids.size(); ++i)
    {
        ids.flat(i) = static_cast<long>((i * 61) % classes);
        lp.flat(i) = -0.25f * static_cast<float>(i % 8 + 1);
    }
    const xloss::FusedLinearForwardKLLoss kd(xloss::distill_options().weight_hard(0.5),
                                             xloss::fused_linear_options().chunk_rows(6));
    xloss::fused_linear_result<float> kr;
    xloss::fused_linear_workspace<float> kws;
    kd.forward_backward_out(h, xloss::linear(w, b), xloss::top_k(ids, lp), labels, kr, kws);
    CHECK(count_allocations(
              [&]
              {
                  kd.forward_backward_out(h, xloss::linear(w, b), xloss::top_k(ids, lp), labels, kr, kws);
              })
          == 0);
    CHECK(kr.loss() > 0.f);
}
#endif
