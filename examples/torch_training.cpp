// A libtorch training loop on xloss's losses, and the same loop on libtorch's own:
//   1. a classifier over 2048 classes trained against a teacher's soft labels with
//      xloss::torch::KLDivLoss (against torch::kl_div);
//   2. a distillation step with xloss::torch::GeneralizedJSDLoss (against TRL's generalized JSD
//      written in libtorch operations).
// Both pairs start from the same weights and see the same data: their losses agree step by step,
// and each falls. The times are the whole loops (the model's products included), one thread.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>

#include <torch/torch.h>

#include <xloss/torch.hpp>

namespace
{
    constexpr int64_t batch = 256, features = 64, classes = 2048;

    struct run
    {
        double first_loss;
        double last_loss;
        double seconds;
    };

    /// `steps` SGD steps of a fresh linear model (seeded) on `loss(logits)`.
    run train(int steps, double lr, const torch::Tensor& x, const std::function<torch::Tensor(const torch::Tensor&)>& loss)
    {
        torch::manual_seed(7);
        torch::nn::Linear model(features, classes);
        torch::optim::SGD optimizer(model->parameters(), lr);
        run r{0, 0, 0};
        const auto start = std::chrono::steady_clock::now();
        for (int step = 0; step < steps; ++step)
        {
            optimizer.zero_grad();
            torch::Tensor value = loss(model(x));
            value.backward();
            optimizer.step();
            (step == 0 ? r.first_loss : r.last_loss) = value.item<double>();
        }
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return r;
    }

    /// TRL's generalized_jsd_loss in libtorch operations: beta KL(P || M) + (1 - beta) KL(Q || M).
    torch::Tensor torch_jsd(const torch::Tensor& student, const torch::Tensor& teacher, double beta)
    {
        const auto ls = torch::log_softmax(student, -1);
        const auto lt = torch::log_softmax(teacher, -1);
        const auto lm = torch::logsumexp(torch::stack({lt + std::log(beta), ls + std::log(1 - beta)}), 0);
        const auto kl_teacher = torch::kl_div(lm, lt, at::Reduction::Sum, /*log_target=*/true);
        const auto kl_student = torch::kl_div(lm, ls, at::Reduction::Sum, /*log_target=*/true);
        return (beta * kl_teacher + (1 - beta) * kl_student) / student.size(0);
    }

    bool report(const char* what, const run& ours, const run& theirs)
    {
        std::printf("%s: loss %.5f -> %.5f in %.3f s (libtorch's own: %.5f -> %.5f in %.3f s, %.2fx)\n", what,
                    ours.first_loss, ours.last_loss, ours.seconds, theirs.first_loss, theirs.last_loss, theirs.seconds,
                    theirs.seconds / ours.seconds);
        const bool fell = ours.last_loss < 0.75 * ours.first_loss;
        const bool same = std::abs(ours.last_loss - theirs.last_loss) <= 1e-3 * std::abs(theirs.last_loss) + 1e-6;
        if (!fell || !same)
        {
            std::printf("FAILED: %s\n", !fell ? "the loss did not fall by a quarter" : "the two loops disagree");
        }
        return fell && same;
    }
}

int main()
{
    torch::set_num_threads(1);
    torch::manual_seed(0);
    const torch::Tensor x = torch::randn({batch, features});
    const torch::Tensor teacher_logits = torch::nn::functional::linear(x, torch::randn({classes, features}) / 4);
    const torch::Tensor soft_labels = torch::softmax(teacher_logits, 1);

    // 1. Soft labels: KL(soft || softmax(logits)) per sample, PyTorch's batchmean; xloss takes the
    //    logits (its log-softmax fused), libtorch's loop applies torch::log_softmax first.
    xloss::torch::KLDivLoss kl(xloss::kl_div_options(xloss::reduction::batchmean).input(xloss::row_input::logits));
    const run kl_ours = train(60, 4.0, x, [&](const torch::Tensor& logits) { return kl(logits, soft_labels); });
    const run kl_theirs = train(60, 4.0, x,
                                [&](const torch::Tensor& logits)
                                {
                                    return torch::kl_div(torch::log_softmax(logits, 1), soft_labels, at::Reduction::Sum)
                                         / batch;
                                });

    // 2. Distillation from the teacher's logits with the generalized JSD (beta 0.5).
    xloss::torch::GeneralizedJSDLoss jsd(xloss::jsd_options().beta(0.5));
    const run jsd_ours = train(60, 40.0, x, [&](const torch::Tensor& logits) { return jsd(logits, teacher_logits); });
    const run jsd_theirs =
        train(60, 40.0, x, [&](const torch::Tensor& logits) { return torch_jsd(logits, teacher_logits, 0.5); });

    const bool ok = report("soft labels, KLDivLoss", kl_ours, kl_theirs)
                  & report("distillation, GeneralizedJSDLoss", jsd_ours, jsd_theirs);
    if (!ok)
    {
        return 1;
    }
    std::printf("torch_training: both losses fell, as on libtorch's own losses\n");
}
