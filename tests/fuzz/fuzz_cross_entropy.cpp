// libFuzzer target for cross_entropy: decodes logits of rank 1 to 3 (finite up to 30 in magnitude,
// masked classes, whole -inf rows, a +inf), the class axis, labels (ignored rows, labels out of
// range), label smoothing, class weights, the z-loss, the soft-cap, the reduction, a divisor, the
// empty mean and threads; checks the loss and the gradient against closed forms in long double,
// that the fused, separate and _out calls agree, and that bad labels and rows throw.
//
//   make fuzz FUZZ_SECONDS=60     (clang's libFuzzer, with ASan and UBSan)

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <xloss/xloss.hpp>

#include "fuzz_common.hpp"

namespace
{
    using namespace xloss_fuzz;

    struct row_ref
    {
        ld value = 0, mag = 0;
        std::vector<ld> grad, gmag; ///< for grad_output 1
    };

    /// One kept row's loss and gradient in long double.
    row_ref reference(const std::vector<ld>& raw, std::size_t y, ld eps, const std::vector<ld>& w, ld z, ld cap)
    {
        const std::size_t n = raw.size();
        std::vector<ld> x(n);
        for (std::size_t j = 0; j < n; ++j)
        {
            x[j] = cap > 0 ? cap * std::tanh(raw[j] / cap) : raw[j];
        }
        ld m = -INFINITY, sum = 0, total_w = 0;
        for (ld v : x)
        {
            m = std::max(m, v);
        }
        for (ld v : x)
        {
            sum += std::exp(v - m);
        }
        const ld lse = m + std::log(sum);
        row_ref r;
        r.grad.assign(n, 0);
        r.gmag.assign(n, 0);
        for (std::size_t j = 0; j < n; ++j)
        {
            total_w += w[j];
        }
        r.value = (1 - eps) * w[y] * (lse - x[y]) + z * lse * lse;
        r.mag = std::abs((1 - eps) * w[y]) * (std::abs(lse) + std::abs(x[y]) + 1) + z * lse * lse * 4;
        for (std::size_t j = 0; eps > 0 && j < n; ++j)
        {
            r.value += eps / n * w[j] * (lse - x[j]);
            r.mag += std::abs(eps / n * w[j]) * (std::abs(lse) + std::abs(x[j]) + 1);
        }
        const ld a = (1 - eps) * w[y] + eps / n * total_w + 2 * z * lse;
        for (std::size_t j = 0; j < n; ++j)
        {
            const ld q = std::exp(x[j] - lse);
            const ld d = cap > 0 ? 1 - (x[j] / cap) * (x[j] / cap) : 1;
            r.grad[j] = (a * q - eps / n * w[j] - (j == y ? (1 - eps) * w[y] : 0)) * d;
            r.gmag[j] =
                (std::abs(a) * q + std::abs(eps / n * w[j]) + std::abs((1 - eps) * w[y]) + 2 * z * std::abs(lse) + 1)
                * 4;
        }
        return r;
    }

    template <class V>
    void run_case(byte_reader& in)
    {
        const std::size_t rank = 1 + in.next() % 3;
        shape_t shape;
        for (std::size_t k = 0; k < rank; ++k)
        {
            const std::uint8_t b = in.next();
            shape.push_back(b < 200 ? 1 + b % 5 : 17 + b % 56);
        }
        while (numel(shape) > 4096)
        {
            for (auto& d : shape)
            {
                d = d > 5 ? 1 + d % 5 : d;
            }
        }
        const std::size_t axis = in.next() % rank;
        const ld eps_values[] = {0, 0.1L, 0.5L, 1};
        const ld eps = eps_values[in.next() % 4];
        const std::uint8_t opt = in.next();
        const ld z = opt & 1 ? 1e-3L : 0;
        const ld cap = opt & 2 ? 5 : 0;
        const bool weighted = (opt & 4) != 0;
        const auto r = static_cast<xloss::reduction>(in.next() % 3); // none, mean, sum
        auto o = xloss::cross_entropy_options()
                     .class_axis(in.next() & 1 ? static_cast<std::ptrdiff_t>(axis) - static_cast<std::ptrdiff_t>(rank)
                                               : static_cast<std::ptrdiff_t>(axis))
                     .label_smoothing(static_cast<double>(eps))
                     .z_loss(static_cast<double>(z))
                     .softcap(static_cast<double>(cap))
                     .reduction(r)
                     .divisor(opt & 8 ? 3.0 : 0.0)
                     .empty_mean(opt & 16 ? xloss::empty_mean::zero : xloss::empty_mean::nan);
#ifdef _OPENMP
        o.num_threads(1 + in.next() % 3);
#endif
        const std::size_t len = shape[axis], n = numel(shape), rows = n / len;
        std::vector<ld> w(len, 1);
        std::vector<double> wd;
        for (std::size_t j = 0; weighted && j < len; ++j)
        {
            w[j] = (in.next() % 16) / ld(4);
            wd.push_back(static_cast<double>(w[j]));
        }
        if (weighted)
        {
            o.weight(wd);
        }
        const V inf = std::numeric_limits<V>::infinity();
        xt::xarray<V> x = xt::xarray<V>::from_shape(shape);
        bool bad_value = false;
        for (std::size_t i = 0; i < n; ++i)
        {
            const std::uint8_t a = in.next();
            x.flat(i) = a == 255 ? -inf : a == 254 ? inf : static_cast<V>((static_cast<int>(a) - 128) * (30.0 / 128));
        }
        shape_t row_shape = shape;
        row_shape.erase(row_shape.begin() + static_cast<std::ptrdiff_t>(axis));
        xt::xarray<int> labels = xt::xarray<int>::from_shape(row_shape);
        std::size_t inner = 1;
        for (std::size_t d = axis + 1; d < rank; ++d)
        {
            inner *= shape[d];
        }
        auto at = [&](std::size_t k, std::size_t j)
        {
            return (k / inner) * len * inner + k % inner + j * inner;
        };
        bool bad_label = false;
        for (std::size_t k = 0; k < rows; ++k)
        {
            const std::uint8_t b = in.next();
            labels.flat(k) = b % 7 == 0 ? -100 : b == 250 ? static_cast<int>(len) : static_cast<int>(b % len);
            bad_label = bad_label || b == 250;
            if (labels.flat(k) == -100 || b == 250)
            {
                continue;
            }
            bool all_neg = true, pos = false;
            for (std::size_t j = 0; j < len; ++j)
            {
                all_neg = all_neg && x.flat(at(k, j)) == -inf;
                pos = pos || x.flat(at(k, j)) == inf;
            }
            bad_value = bad_value || all_neg || pos;
        }
        g_context = describe("logits", x) + describe("labels", labels) + "eps " + std::to_string(double(eps)) + " z "
                    + std::to_string(double(z)) + " cap " + std::to_string(double(cap)) + " reduction "
                    + std::to_string(static_cast<int>(r)) + " axis " + std::to_string(axis);
        const xloss::CrossEntropyLoss loss(o);
        if (bad_label || bad_value)
        {
            try
            {
                (void)loss.forward_backward(x, labels);
            }
            catch (const std::invalid_argument&)
            {
                return;
            }
            fail("no exception for a bad label or row", 0, 0, 0);
        }
        const auto result = loss.forward_backward(x, labels);
        // The reference, row by row.
        ld total = 0, total_mag = 0, kept_weight = 0;
        std::vector<row_ref> refs(rows);
        for (std::size_t k = 0; k < rows; ++k)
        {
            if (labels.flat(k) == -100)
            {
                continue;
            }
            std::vector<ld> raw(len);
            for (std::size_t j = 0; j < len; ++j)
            {
                raw[j] = static_cast<ld>(x.flat(at(k, j)));
            }
            refs[k] = reference(raw, static_cast<std::size_t>(labels.flat(k)), eps, w, z, cap);
            total += refs[k].value;
            total_mag += refs[k].mag;
            kept_weight += w[static_cast<std::size_t>(labels.flat(k))];
        }
        if (std::isinf(total) || std::isnan(total))
        {
            return; // a masked label: +inf (checked by the tests); gradients finite
        }
        const ld divisor = r != xloss::reduction::mean ? 1 : (opt & 8) ? 3 : kept_weight;
        const bool empty = r == xloss::reduction::mean && divisor == 0;
        if (r == xloss::reduction::none)
        {
            for (std::size_t k = 0; k < rows; ++k)
            {
                check<V>("row " + std::to_string(k), result.loss.flat(k), refs[k].value, refs[k].mag);
            }
        }
        else if (empty)
        {
            const V v = result.loss();
            if ((opt & 16) ? v != V(0) : !std::isnan(v))
            {
                fail("empty mean", v, 0, 0);
            }
        }
        else
        {
            check<V>("loss", result.loss(), total / divisor, total_mag / divisor);
        }
        for (std::size_t k = 0; k < rows; ++k)
        {
            const bool ignored = labels.flat(k) == -100;
            for (std::size_t j = 0; j < len; ++j)
            {
                const ld expected = ignored || empty ? 0 : refs[k].grad[j] / divisor;
                const ld mag = ignored || empty ? 0 : refs[k].gmag[j] / divisor;
                check<V>("gradient row " + std::to_string(k) + " class " + std::to_string(j),
                         result.grad_logits.flat(at(k, j)), expected, mag);
            }
        }
        // The _out call and the separate calls agree with the fused one.
        xt::xarray<V> grad = xt::zeros_like(x);
        xt::xarray<V> per_row = xt::zeros<V>(row_shape);
        if (r == xloss::reduction::none)
        {
            loss.forward_backward_out(per_row, grad, x, labels);
        }
        else
        {
            V value = 0;
            loss.forward_backward_out(value, grad, x, labels);
            if (!(value == result.loss() || (std::isnan(value) && std::isnan(result.loss()))))
            {
                fail("_out loss", value, result.loss(), 0);
            }
        }
        const xt::xarray<V> separate = loss.backward(x, labels);
        for (std::size_t i = 0; i < n; ++i)
        {
            check<V>("_out gradient " + std::to_string(i), grad.flat(i), result.grad_logits.flat(i),
                     std::abs(static_cast<ld>(result.grad_logits.flat(i))) + 1e-30L);
            check<V>("separate gradient " + std::to_string(i), separate.flat(i), result.grad_logits.flat(i),
                     std::abs(static_cast<ld>(result.grad_logits.flat(i))) + 1e-30L);
        }
    }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    byte_reader in{data, size};
    in.next() & 1 ? run_case<double>(in) : run_case<float>(in);
    return 0;
}
