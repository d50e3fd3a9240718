// The kernels: SIMD batches against scalars over every tail length, chunking
// that never changes a result, and the accuracy of the reduction.

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "catch_compat.hpp"

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xadapt.hpp)

#include <xloss/detail/kernels/batch_loops.hpp>
#include <xloss/detail/kernels/softmax.hpp>
#include <xloss/detail/kl_div/ops.hpp>
#include <xloss/xloss.hpp>

#include "test_helpers.hpp"

namespace
{
    using namespace xloss::detail;

    template <class T>
    struct data
    {
        std::vector<T> x, t, g;
    };

    /// Log-probabilities, probabilities (or log-probabilities) with some zero targets, and gradients.
    template <class T>
    data<T> make_data(std::size_t n, bool log_target, unsigned seed)
    {
        std::mt19937 gen(seed);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        data<T> d;
        for (std::size_t i = 0; i < n; ++i)
        {
            d.x.push_back(static_cast<T>(-6.0 * u(gen)));
            double t = u(gen) < 0.1 ? 0.0 : u(gen);
            d.t.push_back(static_cast<T>(log_target ? std::log(t) : t));
            d.g.push_back(static_cast<T>(2.0 * u(gen) - 1.0));
        }
        return d;
    }

    /// The size of the pieces an op adds up: a rounding error of k ulp in them is k * eps * this.
    template <class T>
    long double magnitude(T x, T t, T g, bool log_target)
    {
        const long double lx = std::abs(static_cast<long double>(x));
        const long double lt = static_cast<long double>(t);
        if (log_target ? xloss_test::is_inf(lt) : lt == 0)
        {
            return 0;
        }
        const long double m = log_target ? std::exp(lt) * (std::abs(lt) + lx + 1)
                                         : (std::abs(lt) + 1) * (std::abs(std::log(std::abs(lt))) + lx + 1);
        // (the loss ignores g: at least 1)
        return m * std::max(1.0L, std::abs(static_cast<long double>(g)));
    }

    /// Both results within k * eps * magnitude of the long-double value of the op (NaN where it is NaN).
    template <class T>
    bool near_reference(T a, long double ref, long double mag, double k)
    {
        if (xloss_test::is_nan(ref))
        {
            return xloss_test::is_nan(a);
        }
        return static_cast<long double>(a) == ref
               || std::abs(static_cast<long double>(a) - ref) <= k * std::numeric_limits<T>::epsilon() * mag;
    }

    template <class B, class Op, class T>
    std::vector<T> run_map(Op op, const data<T>& d, bool with_g)
    {
        std::vector<T> out(d.x.size(), T(-7));
        if (with_g)
        {
            map<B>(op, d.x.data(), d.t.data(), d.g.data(), out.data(), out.size());
        }
        else
        {
            map<B>(op, d.x.data(), d.t.data(), scalar_arg<T>{T(0.5)}, out.data(), out.size());
        }
        return out;
    }

    template <class B, class Op, class T>
    double run_sum(Op op, const data<T>& d)
    {
        block_sum<B> s;
        s.add(op, d.x.data(), d.t.data(), scalar_arg<T>{T(1)}, d.x.size());
        return s.total();
    }

    template <class T, class Op>
    void compare_paths(Op op, bool log_target)
    {
        using simd = default_batch<T>;
        constexpr std::size_t W = batch_traits<simd>::size;
        for (std::size_t n = 0; n <= 3 * W + 1; ++n)
        {
            INFO("n = " << n << ", W = " << W);
            const auto d = make_data<T>(n, log_target, static_cast<unsigned>(n));
            // Elementwise: the SIMD log/exp may differ from the C library's by an ulp or two,
            // so each path is held to the long-double value of the same formula.
            for (bool with_g : {false, true})
            {
                const auto a = run_map<simd>(op, d, with_g);
                const auto b = run_map<T>(op, d, with_g);
                for (std::size_t i = 0; i < n; ++i)
                {
                    const T g = with_g ? d.g[i] : T(0.5);
                    const long double ref = op(static_cast<long double>(d.x[i]), static_cast<long double>(d.t[i]),
                                               static_cast<long double>(g));
                    const long double mag = magnitude(d.x[i], d.t[i], g, log_target);
                    INFO("i = " << i << ", x " << d.x[i] << ", t " << d.t[i] << ", simd " << a[i] << ", scalar " << b[i]
                                << ", reference " << double(ref) << ", magnitude " << double(mag));
                    CHECK(near_reference(a[i], ref, mag, 4));
                    CHECK(near_reference(b[i], ref, mag, 4));
                }
            }
            // The sum: the same terms in another order.
            long double mag_sum = 0;
            for (std::size_t i = 0; i < n; ++i)
            {
                mag_sum += magnitude(d.x[i], d.t[i], T(1), log_target);
            }
            CHECK(std::abs(run_sum<simd>(op, d) - run_sum<T>(op, d))
                  <= 16 * std::numeric_limits<T>::epsilon() * mag_sum);
        }
    }

    template <class T>
    void compare_all_ops()
    {
        compare_paths<T>(kl_term{}, false);
        compare_paths<T>(kl_term_log{}, true);
        compare_paths<T>(kl_input_grad{}, false);
        compare_paths<T>(kl_input_grad_log{}, true);
        compare_paths<T>(kl_target_grad{}, false);
        compare_paths<T>(kl_target_grad_log{}, true);
    }
}

TEST_CASE("SIMD kernels equal scalar kernels for every tail length: float", "[kernels]")
{
    compare_all_ops<float>();
}

TEST_CASE("SIMD kernels equal scalar kernels for every tail length: double", "[kernels]")
{
    compare_all_ops<double>();
}

namespace
{
    /// row_max against a plain loop, on rows of every length up to 5 batches with NaN, +inf and
    /// -inf placed at every position: the largest element that is not NaN, -inf if there is none.
    template <class T>
    void check_row_max()
    {
        using simd = default_batch<T>;
        constexpr std::size_t W = batch_traits<simd>::size;
        const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
        for (std::size_t n = 1; n <= 5 * W + 1; ++n)
        {
            for (std::size_t at = 0; at < n; ++at)
            {
                for (const T special : {nan, inf, -inf})
                {
                    for (const bool all_nan_but_one : {false, true})
                    {
                        std::vector<T> row(n);
                        for (std::size_t i = 0; i < n; ++i)
                        {
                            row[i] = all_nan_but_one && i != (at + 1) % n ? nan : std::sin(T(0.37) * T(i)) - T(3);
                        }
                        row[at] = special;
                        T expected = -inf;
                        for (const T v : row)
                        {
                            expected = xloss_test::is_nan(v) ? expected : std::max(expected, v);
                        }
                        INFO("n = " << n << ", special " << special << " at " << at << ", all NaN but one "
                                    << all_nan_but_one);
                        CHECK(row_max<simd>(row.data(), n) == expected);
                        CHECK(row_max<T>(row.data(), n) == expected);
                    }
                }
            }
        }
    }
}

TEST_CASE("A row's max skips NaN wherever it is, in SIMD and scalar kernels", "[kernels]")
{
    check_row_max<float>();
    check_row_max<double>();
}

TEST_CASE("map never writes past n", "[kernels]")
{
    using simd = default_batch<float>;
    const auto d = make_data<float>(40, false, 99);
    for (std::size_t n = 0; n <= 40; ++n)
    {
        std::vector<float> out(41, -7.f);
        map<simd>(kl_term{}, d.x.data(), d.t.data(), scalar_arg<float>{0.f}, out.data(), n);
        for (std::size_t i = n; i < out.size(); ++i)
        {
            CHECK(out[i] == -7.f);
        }
    }
}

TEST_CASE("Feeding a sum in chunks of a block multiple is bit-identical to one pass", "[kernels]")
{
    using simd = default_batch<float>;
    const std::size_t n = 5 * chunk_size + 123;
    const auto d = make_data<float>(n, false, 7);
    block_sum<simd> whole, chunked;
    whole.add(kl_term{}, d.x.data(), d.t.data(), scalar_arg<float>{1.f}, n);
    for (std::size_t off = 0; off < n; off += chunk_size)
    {
        chunked.add(kl_term{}, d.x.data() + off, d.t.data() + off, scalar_arg<float>{1.f},
                    std::min(chunk_size, n - off));
    }
#ifdef __FAST_MATH__
    // -ffast-math lets the compiler vectorise the scalar kernels' loops and regroup their sums
    // according to each call's length.
    CHECK(whole.total() == Approx(chunked.total()).epsilon(1e-6));
#else
    CHECK(whole.total() == chunked.total());
#endif
    STATIC_REQUIRE(chunk_size % block_sum<simd>::block == 0);
    STATIC_REQUIRE(chunk_size % block_sum<float>::block == 0);
    STATIC_REQUIRE(chunk_size % block_sum<default_batch<double>>::block == 0);
}

TEST_CASE("A float sum of 2^24 terms is within 1e-6 of the exact sum", "[kernels][accuracy]")
{
    // Positive terms t * (log t - x) = t * c of similar size: the case where a
    // naive float accumulator drifts furthest.
    const std::size_t n = std::size_t(1) << 24;
    std::mt19937 gen(2024);
    std::uniform_real_distribution<float> u(0.1f, 1.0f);
    std::vector<float> x(n), t(n);
    long double exact = 0, abs_sum = 0;
    float naive = 0.f;
    for (std::size_t i = 0; i < n; ++i)
    {
        t[i] = u(gen);
        x[i] = std::log(t[i]) - u(gen);
        // The exact value of the term as defined on the float inputs.
        const long double term = static_cast<long double>(t[i])
                                 * (std::log(static_cast<long double>(t[i])) - static_cast<long double>(x[i]));
        exact += term;
        abs_sum += std::abs(term);
        naive += t[i] * (std::log(t[i]) - x[i]);
    }
    const auto xa = xt::adapt(x, std::vector<std::size_t>{n});
    const auto ta = xt::adapt(t, std::vector<std::size_t>{n});
    const float ours = xloss::kl_div(xa, ta, xloss::reduction::sum)();
    const double our_error = static_cast<double>(std::abs(static_cast<long double>(ours) - exact) / abs_sum);
    const double naive_error = static_cast<double>(std::abs(static_cast<long double>(naive) - exact) / abs_sum);
    INFO("relative error: xloss " << our_error << ", naive float loop " << naive_error);
    CHECK(our_error <= 1e-6);
    // The test can fail: a naive float accumulator misses by orders of magnitude more.
    CHECK(naive_error > 100 * our_error);
    CHECK(naive_error > 1e-4);
}
