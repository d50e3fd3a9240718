// A user's program built with every warning a strict project turns on, as errors
// (-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror, -march=native): it calls every public entry
// point of xloss, in float and double, so that every kernel is instantiated, and checks a value.
// tests/CMakeLists.txt builds it on the SIMD and on the scalar kernels.

#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <vector>

#include <xloss/xloss.hpp>
#ifdef XLOSS_CONSUMER_LINEAR
#include <xloss/fused_linear.hpp>
#endif
#include XLOSS_XTENSOR_HEADER(containers, xtensor.hpp)

// Results of two entry points: equal bit for bit, or, built with -ffast-math, to rounding (the
// compiler may then regroup a formula differently in each function it is inlined into).
template <class A, class B>
bool differ(const A& a, const B& b)
{
#ifdef __FAST_MATH__
    return !xt::allclose(a, b, 1e-4, 1e-6);
#else
    return !(a == b);
#endif
}

template <class V>
bool differ_scalar(V a, V b)
{
#ifdef __FAST_MATH__
    return std::abs(a - b) > V(1e-4) * std::abs(b) + V(1e-6);
#else
    return a != b;
#endif
}

template <class V>
int exercise()
{
    const xt::xarray<V> x = xt::log(xt::xarray<V>{{V(0.6), V(0.3), V(0.1)}, {V(0.2), V(0.7), V(0.1)}});
    const xt::xarray<V> t = {{V(0.7), V(0.2), V(0.1)}, {V(0.0), V(0.9), V(0.1)}};
    const xt::xarray<V> row_t = {V(0.5), V(0.25), V(0.25)};
    int failures = 0;
    for (const auto r :
         {xloss::reduction::none, xloss::reduction::mean, xloss::reduction::sum, xloss::reduction::batchmean})
    {
        for (const bool log_target : {false, true})
        {
            const auto options = xloss::kl_div_options(r, log_target);
            const xt::xarray<V> loss = xloss::kl_div(x, t, options);
            const xt::xarray<V> gx = xloss::kl_div_backward(V(1), x, t, options);
            const xt::xarray<V> gt = xloss::kl_div_target_backward(V(1), x, t, options);
            const xt::xarray<V> gb = xloss::kl_div_backward(V(1), x, row_t, options); // broadcast target
            const xt::xarray<V> gtb = xloss::kl_div_target_backward(V(1), x, row_t, options);
            auto fb = xloss::kl_div_forward_backward(x, t, options, true);
            failures += loss.size() == 0 || gx.shape() != x.shape() || gt.shape() != t.shape() ? 1 : 0;
            failures += gb.shape() != x.shape() || gtb.shape() != row_t.shape() || differ(fb.grad_input, gx) ? 1 : 0;

            xt::xarray<V> out = xt::zeros_like(loss);
            xt::xarray<V> grad = xt::zeros_like(x);
            xloss::kl_div_out(out, x, t, options);
            xloss::kl_div_backward_out(grad, V(1), x, t, options);
            failures += differ(out, loss) || differ(grad, gx) ? 1 : 0;
            xt::xarray<V> resized = xt::zeros<V>({5}); // another shape: resized, as xtensor's assignment does
            xt::xarray<V> grad_resized;
            xloss::kl_div_out(resized, x, t, options);
            xloss::kl_div_forward_backward_out(resized, grad_resized, x, t, options);
            failures += differ(resized, loss) || differ(grad_resized, gx) ? 1 : 0;
            if (r != xloss::reduction::none)
            {
                V scalar = V(0);
                xloss::kl_div_forward_backward_out(scalar, grad, x, t, options);
                failures += differ_scalar(scalar, loss()) ? 1 : 0;
            }
        }
    }
    // The other frameworks' options, weights and axes.
    const auto gluon = xloss::kl_div_options::gluon(false);
    const xt::xtensor<V, 2> sample_weight = {{V(1)}, {V(0.5)}};
    failures += xloss::kl_div(x, t, gluon, sample_weight).size() == 2 ? 0 : 1;
    failures += xloss::kl_div_backward(V(1), x, t, gluon, sample_weight).shape() == x.shape() ? 0 : 1;
    const auto zero = xloss::kl_div_options(xloss::reduction::sum).target_policy(xloss::target_policy::zero);
    failures += std::isfinite(xloss::kl_div(x, t, zero)()) ? 0 : 1;
    const auto per_row = xloss::kl_div_options(xloss::reduction::sum).axes({-1}).weight(2.0).epsilon(1e-12);
    failures += xloss::kl_div(x, t, per_row).size() == 2 ? 0 : 1;
    failures += xloss::kl_div_target_backward(V(1), x, t, per_row).shape() == t.shape() ? 0 : 1;

    // The module.
    xloss::KLDivLoss module(xloss::reduction::batchmean);
    failures += differ_scalar(module(x, t)(), xloss::kl_div(x, t, xloss::reduction::batchmean)()) ? 1 : 0;
    failures += differ(module.backward(x, t), xloss::kl_div_backward(V(1), x, t, xloss::reduction::batchmean)) ? 1 : 0;
    failures += differ_scalar(module.forward_backward(x, t).loss(), module(x, t)()) ? 1 : 0;

    // Distillation from logits, a masked teacher class included, along the last and the first axis.
    const V inf = std::numeric_limits<V>::infinity();
    const xt::xarray<V> student = {{V(2), V(0.5), V(-1)}, {V(0.3), V(1.2), V(0.8)}};
    const xt::xarray<V> teacher = {{V(3), -inf, V(-2)}, {V(0), V(2), V(1)}};
    for (const std::ptrdiff_t axis : {std::ptrdiff_t(-1), std::ptrdiff_t(0)})
    {
        for (const auto r : {xloss::reduction::none, xloss::reduction::batchmean})
        {
            const auto d = xloss::kl_div_with_logits(student, teacher, 2.0, r, axis);
            const auto ds = xloss::kl_div_with_logits_backward(V(1), student, teacher, 2.0, r, axis);
            const auto dt = xloss::kl_div_with_logits_teacher_backward(V(1), student, teacher, 2.0, r, axis);
            auto both = xloss::kl_div_with_logits_forward_backward(student, teacher, 2.0, r, axis, true);
            failures += d.size() == 0 || ds.shape() != student.shape() || dt.shape() != teacher.shape() ? 1 : 0;
            failures += differ(both.grad_input, ds) ? 1 : 0;
        }
    }

    // The divergences of LM distillation, with labels, every entry point.
    const xt::xarray<int> labels = {4, -100};
    const xt::xarray<bool> mask = {true, false};
    const auto fo = xloss::distill_options().temperature(2.0).teacher_grad(true);
    const xloss::ForwardKLLoss forward(fo);
    const xloss::ReverseKLLoss reverse(fo);
    const xloss::GeneralizedJSDLoss jsd(xloss::jsd_options().beta(0.4).temperature(2.0).teacher_grad(true));
    failures += differ(xloss::forward_kl(student, teacher, labels, fo), forward(student, teacher, mask)) ? 1 : 0;
    failures += differ(xloss::reverse_kl(student, teacher, fo), reverse(student, teacher)) ? 1 : 0;
    const auto gj = xloss::generalized_jsd(student, teacher, labels, jsd.options());
    const auto step = jsd.forward_backward(student, teacher, labels);
    failures += differ(step.loss, gj) || differ(step.grad_student, jsd.backward(student, teacher, labels)) ? 1 : 0;
    failures += differ(jsd.backward(student, teacher, xloss::all_rows, V(1)), jsd.backward(student, teacher)) ? 1 : 0;
    V value = 0;
    xt::xarray<V> grad;
    jsd.forward_backward_out(value, grad, student, teacher, labels);
    failures += differ_scalar(value, step.loss()) || differ(grad, step.grad_student) ? 1 : 0;
    failures += step.grad_teacher.shape() != teacher.shape() ? 1 : 0;
    const xloss::SymmetricKLLoss symmetric(xloss::symmetric_kl_options().ratio(0.3).temperature(2.0));
    const auto sym = symmetric.forward_backward(student, teacher, labels);
    failures += differ(sym.loss, xloss::symmetric_kl(student, teacher, labels, symmetric.options())) ? 1 : 0;
    symmetric.forward_backward_out(value, grad, student, teacher, labels);
    failures += differ_scalar(value, sym.loss()) || differ(grad, sym.grad_student) ? 1 : 0;

    // The hard loss mixed in, and a top-k teacher (labels as classes).
    const xt::xarray<int> classes = {2, -100};
    const xloss::ForwardKLLoss mixed(xloss::distill_options(fo).teacher_grad(false).weight_hard(0.5).weight_soft(0.5));
    const auto mix = mixed.forward_backward(student, teacher, classes);
    failures += differ(mix.loss, mixed(student, teacher, classes)) || mix.hard_loss.size() != 1 ? 1 : 0;
    const xt::xarray<long long> ids = {{0, 2}, {1, 2}};
    const xt::xarray<V> top = {{V(-0.5), V(-1.5)}, {V(-0.2), V(-2)}};
    const auto topk = mixed.forward_backward(student, xloss::top_k(ids, top), classes);
    failures += differ(topk.grad_student, mixed.backward(student, xloss::top_k(ids, top), classes)) ? 1 : 0;
    mixed.forward_backward_out(value, grad, student, xloss::top_k(ids, top), classes);
    failures += differ_scalar(value, topk.loss()) ? 1 : 0;

    // The cross-entropy, every entry point.
    const auto co = xloss::cross_entropy_options().class_axis(-1).label_smoothing(0.1).z_loss(1e-4).softcap(30);
    const xloss::CrossEntropyLoss ce(
        xloss::cross_entropy_options(co).weight(std::vector<double>(student.shape()[1], 1.0)));
    const auto ce_step = ce.forward_backward(student, classes);
    failures += differ(ce_step.loss, xloss::cross_entropy(student, classes, ce.options())) ? 1 : 0;
    failures +=
        differ(ce_step.grad_logits, xloss::cross_entropy_backward(student, classes, V(1), ce.options())) ? 1 : 0;
    ce.forward_backward_out(value, grad, student, classes);
    failures += differ_scalar(value, ce_step.loss()) || differ(grad, ce_step.grad_logits) ? 1 : 0;
    // bfloat16 and half logits: the float loss of their values, rounded; probability targets.
    const xt::xarray<xloss::bfloat16> low = student;
    const xt::xarray<float> low_values = low;
    const xloss::bfloat16 low_loss = xloss::cross_entropy(low, classes, co)();
    failures += low_loss.bits == xloss::bfloat16(xloss::cross_entropy(low_values, classes, co)()).bits ? 0 : 1;
    const xt::xarray<xloss::half> low_h = student;
    const auto low_fb = jsd.forward_backward(low_h, low_h, classes); // equal arguments: 0
    failures += static_cast<float>(low_fb.loss()) == 0.f ? 0 : 1;
    const xt::xarray<V> soft = xt::ones_like(student) / static_cast<V>(student.shape()[1]);
    failures += std::isfinite(xloss::cross_entropy(student, soft, co)()) ? 0 : 1;
#ifdef XLOSS_CONSUMER_LINEAR
    // The fused linear cross-entropy (a BLAS linked): its loss equals the cross-entropy of h W^T + b.
    const xt::xarray<V> h = {{V(0.5), V(-1)}, {V(2), V(0.25)}};
    const xt::xarray<V> w = {{V(1), V(0)}, {V(0), V(1)}, {V(1), V(1)}};
    const xt::xarray<V> b = {V(0.1), V(0), V(-0.1)};
    const xt::xarray<V> logits = {{V(0.6), V(-1), V(-0.6)}, {V(2.1), V(0.25), V(2.15)}};
    const xt::xarray<int> tokens = {2, 0};
    const xloss::FusedLinearCrossEntropyLoss flce(xloss::cross_entropy_options(),
                                                  xloss::fused_linear_options().chunk_rows(1));
    const auto fl = flce.forward_backward(h, xloss::linear(w, b), tokens);
    const V expected = xloss::cross_entropy(logits, tokens)();
    failures += std::abs(fl.loss() - expected) > V(1e-5) * expected ? 1 : 0;
    failures += fl.grad_weight.shape()[0] == 3 && fl.grad_bias.size() == 3 ? 0 : 1;
    // A fused linear divergence, its teacher a layer of hidden size 1 and 4 classes (the first 3 count).
    xt::xarray<V> th = {V(1), V(-0.5)};
    xt::xarray<V> tw = {V(0.2), V(-1), V(0.7), V(3)};
    th.reshape({2, 1});
    tw.reshape({4, 1});
    const xloss::FusedLinearGeneralizedJSDLoss fj(xloss::jsd_options().beta(0.3));
    const auto fjs = fj.forward_backward(h, xloss::linear(w, b), xloss::teacher_layer(th, xloss::linear(tw)), tokens);
    const xt::xarray<V> teacher_logits = {{V(0.2), V(-1), V(0.7)}, {V(-0.1), V(0.5), V(-0.35)}};
    failures +=
        differ_scalar(fjs.loss(), xloss::generalized_jsd(logits, teacher_logits, tokens, fj.options())()) ? 1 : 0;
#endif
    return failures;
}

int main()
{
    try
    {
        const int failures = exercise<float>() + exercise<double>();
        std::printf("%s: %d failed checks\n", failures == 0 ? "consumer ok" : "consumer FAILED", failures);
        return failures == 0 ? 0 : 1;
    }
    catch (const std::exception& e)
    {
        std::printf("consumer FAILED: %s\n", e.what());
        return 1;
    }
}
