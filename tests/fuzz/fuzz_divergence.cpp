// libFuzzer target for the divergences from logits (forward_kl, reverse_kl, generalized_jsd,
// symmetric_kl) on the row engine: decodes logits of rank 1 to 3 (finite up to 30 in magnitude,
// classes the teacher or the student masks with -inf, whole -inf rows, a +inf), the class axis, the
// temperature, beta or ratio (0 and 1 included), labels with ignored rows, the reduction, a divisor, threads and a
// grad_output; checks the loss and both gradients against closed forms in long double, that the
// allocating, module and _out calls agree, that a kept row of -inf or with +inf throws, and (T = 1)
// that the same rows as log-probabilities (row_input::log_probs) give the same values and gradients
// that chain through the softmax to the logits' ones.
//
//   make fuzz FUZZ_SECONDS=60     (clang's libFuzzer, with ASan and UBSan)

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <xloss/xloss.hpp>

#include "fuzz_common.hpp"

namespace
{
    using namespace xloss_fuzz;

    struct row_ref
    {
        ld value = 0, mag = 0;
        bool unsure = false;          ///< a class only the student masks, whose p is at the bottom of V's range
        std::vector<ld> gs, gt, gmag; ///< gradients for grad_output 1 (times T), and their magnitudes
        std::vector<ld> logs;         ///< |log p| + |log q| + 1 per class: what a flushed probability multiplies
    };

    row_ref reference(int loss, ld beta, ld T, const std::vector<ld>& s, const std::vector<ld>& t, ld tiny);

    /// The symmetric KL's row: ratio times the forward KL's, 1 - ratio times the reverse KL's.
    row_ref symmetric_reference(ld ratio, ld T, const std::vector<ld>& s, const std::vector<ld>& t, ld tiny)
    {
        const row_ref f = reference(0, 0, T, s, t, tiny), r = reference(1, 0, T, s, t, tiny);
        row_ref m = f;
        m.value = ratio * f.value + (1 - ratio) * r.value;
        m.mag = f.mag + r.mag;
        m.unsure = f.unsure || r.unsure;
        for (std::size_t j = 0; j < s.size(); ++j)
        {
            m.gs[j] = ratio * f.gs[j] + (1 - ratio) * r.gs[j];
            m.gt[j] = ratio * f.gt[j] + (1 - ratio) * r.gt[j];
            m.gmag[j] = f.gmag[j] + r.gmag[j];
        }
        return m;
    }

    /// One row's divergence (without T^2) and gradients, from the logits in long double: loss 0 the
    /// forward KL, 1 the reverse KL, 2 the generalized JSD at beta, 3 the symmetric KL at ratio beta.
    row_ref reference(int loss, ld beta, ld T, const std::vector<ld>& s, const std::vector<ld>& t, ld tiny)
    {
        const std::size_t n = s.size();
        if (loss == 3 && beta > 0 && beta < 1)
        {
            return symmetric_reference(beta, T, s, t, tiny);
        }
        if (loss == 3)
        {
            loss = beta == 1 ? 0 : 1;
        }
        auto log_softmax = [&](const std::vector<ld>& z)
        {
            ld m = -INFINITY;
            for (ld v : z)
            {
                m = std::max(m, v);
            }
            ld sum = 0;
            for (ld v : z)
            {
                sum += std::exp((v - m) / T);
            }
            std::vector<ld> r(n);
            for (std::size_t j = 0; j < n; ++j)
            {
                r[j] = (z[j] - m) / T - std::log(sum);
            }
            return r;
        };
        const std::vector<ld> lq = log_softmax(s), lp = log_softmax(t);
        std::vector<ld> p(n), q(n);
        for (std::size_t j = 0; j < n; ++j)
        {
            p[j] = std::exp(lp[j]);
            q[j] = std::exp(lq[j]);
        }
        if (loss == 2 && beta == 0)
        {
            loss = 0;
        }
        if (loss == 2 && beta == 1)
        {
            loss = 1;
        }
        row_ref r;
        for (std::size_t j = 0; j < n; ++j)
        {
            // V's exp may give 0 or p there: the row is +inf or finite, either is right.
            r.unsure = r.unsure || (q[j] == 0 && p[j] > 0 && p[j] < tiny);
        }
        r.logs.assign(n, 1);
        for (std::size_t j = 0; j < n; ++j)
        {
            r.logs[j] += (std::isinf(lp[j]) ? 0 : std::abs(lp[j])) + (std::isinf(lq[j]) ? 0 : std::abs(lq[j]));
        }
        r.gs.assign(n, 0);
        r.gt.assign(n, 0);
        r.gmag.assign(n, 0);
        ld mag = 0;
        if (loss == 0)
        {
            // KL(P || Q): d/ds = q - p, d/dt = p (lp - lq - KL).
            for (std::size_t j = 0; j < n; ++j)
            {
                if (p[j] > 0)
                {
                    r.value += p[j] * (lp[j] - lq[j]);
                    mag += p[j] * (std::abs(lp[j]) + std::abs(lq[j]) + 1);
                }
            }
            for (std::size_t j = 0; j < n; ++j)
            {
                r.gs[j] = q[j] - p[j];
                r.gt[j] = p[j] > 0 ? p[j] * (lp[j] - lq[j] - r.value) : 0;
                r.gmag[j] = q[j] + p[j] * (std::abs(lp[j]) + std::abs(lq[j]) + mag + 1);
            }
        }
        else if (loss == 1)
        {
            // KL(Q || P) over K, the classes with a finite teacher logit: d/ds_k = [k in K] q_k (l_k + 1)
            // - q_k S, S = sum_K q (l + 1); d/dt_k = -[k in K] q_k + p_k sum_K q.
            ld S = 0, QK = 0;
            for (std::size_t j = 0; j < n; ++j)
            {
                if (!std::isinf(lp[j]) && q[j] > 0)
                {
                    const ld l = lq[j] - lp[j];
                    r.value += q[j] * l;
                    S += q[j] * (l + 1);
                    QK += q[j];
                    mag += q[j] * (std::abs(lp[j]) + std::abs(lq[j]) + 1);
                }
            }
            for (std::size_t j = 0; j < n; ++j)
            {
                const bool kept = !std::isinf(lp[j]) && q[j] > 0;
                r.gs[j] = (kept ? q[j] * (lq[j] - lp[j] + 1) : 0) - q[j] * S;
                r.gt[j] = (!std::isinf(lp[j]) ? -q[j] : 0) + p[j] * QK;
                r.gmag[j] = (q[j] + p[j]) * (std::abs(lp[j]) + std::abs(lq[j]) + mag + 2);
            }
        }
        else
        {
            // beta KL(P || M) + (1 - beta) KL(Q || M): d/ds = (1 - beta) q (r - sum q r), r = lq - lm.
            std::vector<ld> rp(n, 0), rq(n, 0);
            ld sq = 0, sp = 0;
            for (std::size_t j = 0; j < n; ++j)
            {
                const ld m = beta * p[j] + (1 - beta) * q[j];
                if (m == 0)
                {
                    continue;
                }
                const ld lm = std::log(m);
                rp[j] = p[j] > 0 ? lp[j] - lm : 0;
                rq[j] = q[j] > 0 ? lq[j] - lm : 0;
                r.value += beta * p[j] * rp[j] + (1 - beta) * q[j] * rq[j];
                sp += p[j] * rp[j];
                sq += q[j] * rq[j];
                mag += (p[j] + q[j]) * (std::abs(lp[j]) + std::abs(lq[j]) + 1);
            }
            for (std::size_t j = 0; j < n; ++j)
            {
                r.gs[j] = (1 - beta) * (q[j] * rq[j] - q[j] * sq);
                r.gt[j] = beta * (p[j] * rp[j] - p[j] * sp);
                r.gmag[j] = (q[j] + p[j]) * (std::abs(lp[j]) + std::abs(lq[j]) + mag + 2);
            }
        }
        r.mag = mag + 1;
        return r;
    }

    /**
     * The same rows as log-probabilities (row_input::log_probs, T = 1): the values of the logits'
     * reference, and gradients w.r.t. the log-probabilities G whose chain rule through the softmax,
     * G - q sum(G), gives the logits' reference gradients.
     */
    template <class V, class Loss, class Options, class At>
    void check_log_probs(Options o, const xt::xarray<V>& s, const xt::xarray<V>& t, const xt::xarray<int>& labels,
                         const std::vector<row_ref>& refs, std::size_t rows, std::size_t len, At at, ld divisor,
                         xloss::reduction r)
    {
        xt::xarray<V> ls = s, lt = t;
        std::vector<std::vector<ld>> q(rows);
        for (std::size_t k = 0; k < rows; ++k)
        {
            if (labels.flat(k) == -100)
            {
                continue;
            }
            for (auto [x, out, probs] :
                 {std::tuple<const xt::xarray<V>*, xt::xarray<V>*, std::vector<ld>*>{&s, &ls, &q[k]},
                  {&t, &lt, nullptr}})
            {
                ld m = -INFINITY, z = 0;
                for (std::size_t j = 0; j < len; ++j)
                {
                    m = std::max(m, static_cast<ld>(x->flat(at(k, j))));
                }
                for (std::size_t j = 0; j < len; ++j)
                {
                    z += std::exp(static_cast<ld>(x->flat(at(k, j))) - m);
                }
                for (std::size_t j = 0; j < len; ++j)
                {
                    const ld l = static_cast<ld>(x->flat(at(k, j))) - m - std::log(z);
                    out->flat(at(k, j)) = static_cast<V>(l);
                    if (probs)
                    {
                        probs->push_back(std::exp(l));
                    }
                }
            }
        }
        const Loss loss(o.input(xloss::row_input::log_probs));
        const auto result = loss.forward_backward(ls, lt, labels);
        ld total = 0, total_mag = 0;
        for (std::size_t k = 0; k < rows; ++k)
        {
            const bool ignored = labels.flat(k) == -100;
            const row_ref& ref = refs[k];
            if (!ignored && (ref.unsure || std::isinf(ref.value)))
            {
                return;
            }
            // A log-probability rounded to V moves the row's terms by about |log| eps: the magnitudes
            // of the logits' reference, with the logs' sizes, bound it.
            ld logs = 0;
            for (std::size_t j = 0; !ignored && j < len; ++j)
            {
                logs += ref.logs[j];
            }
            if (!ignored)
            {
                total += ref.value;
                total_mag += ref.mag + logs;
            }
            if (r == xloss::reduction::none)
            {
                check<V>("log-probs row " + std::to_string(k), result.loss.flat(k), ignored ? 0 : ref.value,
                         ref.mag + logs);
            }
            ld sum = 0, sum_mag = 0;
            for (std::size_t j = 0; j < len; ++j)
            {
                sum += static_cast<ld>(result.grad_student.flat(at(k, j)));
                sum_mag += std::abs(static_cast<ld>(result.grad_student.flat(at(k, j))));
            }
            for (std::size_t j = 0; j < len; ++j)
            {
                const ld g = static_cast<ld>(result.grad_student.flat(at(k, j)));
                const ld chained = ignored ? g : g - q[k][j] * sum;
                const ld floor = 4 * static_cast<ld>(std::numeric_limits<V>::min())
                                 / (64 * static_cast<ld>(std::numeric_limits<V>::epsilon()));
                check<V>("log-probs student gradient through the softmax at row " + std::to_string(k) + " class "
                             + std::to_string(j),
                         static_cast<V>(chained), ignored ? 0 : ref.gs[j] / divisor,
                         (ignored ? 0 : ref.gmag[j] + ref.logs[j] + ref.mag + sum_mag * divisor + floor) / divisor);
            }
        }
        if (r != xloss::reduction::none)
        {
            check<V>("log-probs loss", result.loss(), total / divisor, total_mag / divisor);
        }
    }

    template <class V, class Options, class Loss>
    void run_case(byte_reader& in, std::uint8_t flags, const Options& base, int loss_kind, ld beta)
    {
        const std::size_t rank = 1 + in.next() % 3;
        std::vector<std::size_t> shape;
        // Mostly short axes; some rows long enough to fill several SIMD batches (17 to 72 classes), and
        // some calls with more rows than one of the engine's groups of 256 (257 to 272), at most 4096
        // elements in all, so that executions stay fast.
        for (std::size_t k = 0; k < rank; ++k)
        {
            const std::uint8_t b = in.next();
            shape.push_back(b < 200 ? 1 + b % 5 : b < 240 ? 17 + b % 56 : 257 + b % 48);
        }
        for (auto& d : shape)
        {
            if (numel(shape) <= 4096)
            {
                break;
            }
            d = d > 5 ? 1 + d % 5 : d;
        }
        const std::size_t axis = in.next() % rank;
        const ld temps[] = {1, 2, 0.5L, 4};
        const ld T = temps[in.next() % 4];
        const auto r = static_cast<xloss::reduction>(in.next() % 4);
        const bool set_divisor = in.next() % 4 == 0;
        Options o = base;
        o.temperature(static_cast<double>(T))
            .axis(in.next() & 1 ? static_cast<std::ptrdiff_t>(axis) - static_cast<std::ptrdiff_t>(rank)
                                : static_cast<std::ptrdiff_t>(axis))
            .reduction(r)
            .teacher_grad(true)
            .divisor(set_divisor ? 3.0 : 0.0);
#ifdef _OPENMP
        o.num_threads(1 + in.next() % 3);
#endif
        const std::size_t n = numel(shape);
        xt::xarray<V> s = xt::xarray<V>::from_shape(shape), t = xt::xarray<V>::from_shape(shape);
        const V inf = std::numeric_limits<V>::infinity();
        for (std::size_t i = 0; i < n; ++i)
        {
            const std::uint8_t a = in.next(), b = in.next();
            s.flat(i) = static_cast<V>((static_cast<int>(a) - 128) * (30.0 / 128));
            t.flat(i) = b == 255 ? -inf : static_cast<V>((static_cast<int>(b) - 128) * (30.0 / 128));
            if (a == 255 && (flags & 8))
            {
                s.flat(i) = -inf;
            }
        }
        std::vector<std::size_t> row_shape;
        for (std::size_t k = 0; k < rank; ++k)
        {
            if (k != axis)
            {
                row_shape.push_back(shape[k]);
            }
        }
        const std::size_t len = shape[axis], rows = n / len;
        std::size_t inner = 1;
        for (std::size_t k = axis + 1; k < rank; ++k)
        {
            inner *= shape[k];
        }
        auto at = [&](std::size_t k, std::size_t j)
        {
            return (k / inner) * len * inner + k % inner + j * inner;
        };
        xt::xarray<int> labels = xt::xarray<int>::from_shape(row_shape);
        for (std::size_t k = 0; k < rows; ++k)
        {
            labels.flat(k) = in.next() % 4 == 0 ? -100 : static_cast<int>(k);
            if (labels.flat(k) == -100 && (flags & 16))
            {
                for (std::size_t j = 0; j < len; ++j)
                {
                    t.flat(at(k, j)) = -inf; // padding: never read
                }
            }
        }
        // An error case: a kept row of -inf, or +inf.
        const std::uint8_t e = in.next();
        bool expect_error = false;
        if (e % 16 == 0)
        {
            const std::size_t k = in.next() % rows;
            if (labels.flat(k) != -100)
            {
                expect_error = true;
                if (e & 16)
                {
                    s.flat(at(k, in.next() % len)) = inf;
                }
                else
                {
                    for (std::size_t j = 0; j < len; ++j)
                    {
                        t.flat(at(k, j)) = -inf;
                    }
                }
            }
        }
        g_context = "V=" + std::string(sizeof(V) == 4 ? "float" : "double") + " loss " + std::to_string(loss_kind)
                    + " beta " + std::to_string(static_cast<double>(beta)) + " T " + std::to_string(double(T))
                    + " axis " + std::to_string(axis) + " reduction " + std::string(xloss::to_string(r)) + "\n"
                    + describe("s", s) + describe("t", t) + describe("labels", labels);

        const Loss loss(o);
        std::size_t kept = 0;
        bool row_error = false;
        std::vector<row_ref> refs(rows);
        for (std::size_t k = 0; k < rows; ++k)
        {
            if (labels.flat(k) == -100)
            {
                continue;
            }
            ++kept;
            std::vector<ld> sr(len), tr(len);
            bool all_s = true, all_t = true;
            for (std::size_t j = 0; j < len; ++j)
            {
                sr[j] = static_cast<ld>(s.flat(at(k, j)));
                tr[j] = static_cast<ld>(t.flat(at(k, j)));
                all_s = all_s && std::isinf(sr[j]) && sr[j] < 0;
                all_t = all_t && std::isinf(tr[j]) && tr[j] < 0;
                row_error = row_error || (std::isinf(sr[j]) && sr[j] > 0);
            }
            row_error = row_error || all_s || all_t;
            if (!row_error)
            {
                refs[k] = reference(loss_kind, beta, T, sr, tr, 4 * static_cast<ld>(std::numeric_limits<V>::min()));
            }
        }
        if (row_error || expect_error)
        {
            if (!row_error)
            {
                fail("the expected error case did not decode to one", 0, 1, 0);
            }
            bool thrown = false;
            try
            {
                (void)loss.forward_backward(s, t, labels);
            }
            catch (const std::invalid_argument& ex)
            {
                thrown = std::string(ex.what()).find("softmax is undefined") != std::string::npos;
            }
            if (!thrown)
            {
                fail("a kept row of -inf or with +inf must throw", 0, 1, 0);
            }
            return;
        }
        const ld divisor = r == xloss::reduction::mean ? (set_divisor ? 3 : (kept ? ld(kept) : 1))
                           : r == xloss::reduction::batchmean
                               ? (set_divisor ? 3 : (row_shape.empty() ? 1 : ld(row_shape[0])))
                               : 1;
        const auto result = loss.forward_backward(s, t, labels);
        ld total = 0, total_mag = 0;
        bool infinite = false;
        for (std::size_t k = 0; k < rows; ++k)
        {
            const bool ignored = labels.flat(k) == -100;
            const row_ref& ref = refs[k];
            infinite = infinite || (!ignored && (std::isinf(ref.value) || ref.unsure));
            if (!ignored && ref.unsure)
            {
                continue;
            }
            if (!ignored)
            {
                total += T * T * ref.value;
                total_mag += T * T * ref.mag;
            }
            if (r == xloss::reduction::none)
            {
                check<V>("row " + std::to_string(k), result.loss.flat(k), ignored ? 0 : T * T * ref.value,
                         T * T * ref.mag);
            }
            if (std::isinf(ref.value))
            {
                continue; // a class only the student masks: the row is +inf, its gradients undefined
            }
            for (std::size_t j = 0; j < len; ++j)
            {
                const std::string where = " at row " + std::to_string(k) + " class " + std::to_string(j);
                const ld scale = T / divisor;
                // Probabilities near the bottom of V's range lose their digits (xsimd's exp flushes
                // subnormal results to 0): an absolute floor of a few times V's smallest normal.
                const ld floor = 4 * static_cast<ld>(std::numeric_limits<V>::min())
                                 / (64 * static_cast<ld>(std::numeric_limits<V>::epsilon()))
                                 * (ignored ? 1 : ref.gmag[j] + ref.logs[j] + ref.mag);
                check<V>("student gradient" + where, result.grad_student.flat(at(k, j)),
                         ignored ? 0 : scale * ref.gs[j], scale * (ignored ? 0 : ref.gmag[j] + floor));
                check<V>("teacher gradient" + where, result.grad_teacher.flat(at(k, j)),
                         ignored ? 0 : scale * ref.gt[j], scale * (ignored ? 0 : ref.gmag[j] + floor));
            }
        }
        if (r != xloss::reduction::none && !infinite)
        {
            check<V>("loss", result.loss(), total / divisor, total_mag / divisor);
        }
        // The other calls give the same numbers.
        const xt::xarray<V> value = loss(s, t, labels);
        const xt::xarray<V> gs = loss.backward(s, t, labels);
        if (!(value == result.loss) || !(gs == result.grad_student))
        {
            fail("loss() and backward() differ from forward_backward()", 0, 1, 0);
        }
        xt::xarray<V> lo, go;
        loss.forward_backward_out(lo, go, s, t, labels);
        if (!(lo == result.loss) || !(go == result.grad_student))
        {
            fail("forward_backward_out differs from forward_backward", 0, 1, 0);
        }
        if (T == 1 && (flags & 32) && !infinite)
        {
            check_log_probs<V, Loss>(o, s, t, labels, refs, rows, len, at, divisor, r);
        }
    }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    byte_reader in{data, size};
    const std::uint8_t flags = in.next();
    const int kind = (flags >> 1) % 3;
    const ld betas[] = {0, 0.1L, 0.5L, 0.9L, 1};
    // The same byte picks the generalized JSD's beta, or (its high bit) the symmetric KL's ratio.
    const std::uint8_t weight = in.next();
    const ld beta = betas[weight % 5];
    auto run = [&](auto value_tag)
    {
        using V = decltype(value_tag);
        if (kind == 0)
        {
            run_case<V, xloss::distill_options, xloss::ForwardKLLoss>(in, flags, {}, 0, 0);
        }
        else if (kind == 1)
        {
            run_case<V, xloss::distill_options, xloss::ReverseKLLoss>(in, flags, {}, 1, 0);
        }
        else if (weight & 0x80)
        {
            run_case<V, xloss::symmetric_kl_options, xloss::SymmetricKLLoss>(
                in, flags, xloss::symmetric_kl_options().ratio(static_cast<double>(beta)), 3, beta);
        }
        else
        {
            run_case<V, xloss::jsd_options, xloss::GeneralizedJSDLoss>(
                in, flags, xloss::jsd_options().beta(static_cast<double>(beta)), 2, beta);
        }
    };
    flags & 1 ? run(double()) : run(float());
    return 0;
}
