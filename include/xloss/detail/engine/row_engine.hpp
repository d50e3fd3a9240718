/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_ENGINE_ROW_ENGINE_HPP
#define XLOSS_DETAIL_ENGINE_ROW_ENGINE_HPP

// The row engine of the divergences computed from logits along an axis. For each kept row it
// takes both maxima, then the partition sums. A policy with a loss phase (row_policy.hpp) folds
// its terms into that pass, and one more pass writes per-class terms and gradients; any other
// policy takes one pass for its terms and the sums of its pulls (kept in the gradient rows), and
// a last one writes the gradients. The sums pass keeps its exponentials for the later passes: in
// the other argument's gradient row (which the last pass overwrites) or in two spare rows per
// thread; the `_out` calls, which allocate nothing, compute again those no gradient row holds,
// the same way, so that their results equal the allocating calls' bit for bit. Rows of
// log-probabilities take one pass. Nothing of the size of the logits is allocated. Rows go to
// OpenMP threads in fixed groups and the reduced loss is the in-order sum of the rows' values:
// the same for any thread count.

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/labels.hpp"
#include "../core/rows.hpp"
#include "../core/vocabulary.hpp"
#include "../kernels/batch_loops.hpp"
#include "../kernels/classify.hpp"
#include "../kernels/simd.hpp"
#include "../kernels/softmax.hpp"
#include "row_groups.hpp"
#include "row_policy.hpp"

XLOSS_SIMD_DIAGNOSTICS_BEGIN

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// What the `none` loss holds: one value per row (the divergences), or one per class
            /// (kl_div_with_logits, as PyTorch's pointwise kl_div).
            enum class loss_layout
            {
                per_row,
                per_class
            };

            /// Where the engine writes; a null pointer skips that output.
            template <class V>
            struct row_outputs
            {
                V* loss = nullptr;                         ///< the `none` loss, in the engine's loss_layout
                V* grad_student = nullptr;                 ///< the student's gradient, in the logits' layout
                V* grad_teacher = nullptr;                 ///< the teacher's gradient, in the logits' layout
                const compute_t<V>* grad_output = nullptr; ///< grad_output of the `none` loss, in its layout (in the
                                                           ///< compute type: not rounded to a 16-bit V)
                double grad_scalar = 0.; ///< the grad_output of every element when grad_output is null,
                                         ///< already divided by the divisor
                double* parts = nullptr; ///< per row, its soft and hard parts (unweighted), when mixed

                bool gradients() const noexcept
                {
                    return grad_student || grad_teacher;
                }
            };

            /// Rows of scratch for rows along an inner axis (gathered, then scattered): null otherwise.
            template <class V>
            struct row_scratch
            {
                V* student = nullptr;
                V* teacher = nullptr;
                V* grad_student = nullptr;
                V* grad_teacher = nullptr;
                V* loss = nullptr;
                V* grad_output = nullptr;

                static constexpr std::size_t parts = 6;

                /// The parts laid out in `block` (parts * n values), or all null for a null block.
                row_scratch(V* block, std::size_t n) noexcept
                {
                    if (block)
                    {
                        V** all[parts] = {&student, &teacher, &grad_student, &grad_teacher, &loss, &grad_output};
                        for (std::size_t i = 0; i < parts; ++i)
                        {
                            *all[i] = block + i * n;
                        }
                    }
                }
            };

            /// When the rows' logits are checked: all before any row is written (outputs the caller
            /// provided stay untouched on an error), or each as it is read (new outputs: one read less).
            enum class row_checks
            {
                before_writing,
                while_running
            };

            /// Whether a run may allocate two spare rows per thread that keep the sums pass's
            /// exponentials for the later passes (new outputs), or allocates nothing and computes again
            /// the exponentials no gradient row keeps (the `_out` calls, which allocate nothing).
            enum class row_memory
            {
                spare_rows,
                none
            };

            /// Rows that keep a row's exponentials e^a (teacher) and e^b (student) from its sums pass
            /// for the later passes, which then need not compute them again: the gradient rows of the
            /// other argument (which the last pass overwrites), or spare rows of scratch.
            template <class V>
            struct row_exps
            {
                V* teacher; ///< e^a
                V* student; ///< e^b
            };

            /// Where one row's results go: into the outputs in place, or rows of scratch.
            template <class V>
            struct row_targets
            {
                V* grad_student = nullptr;
                V* grad_teacher = nullptr;
                V* loss = nullptr;              ///< the per-class loss
                const V* grad_output = nullptr; ///< the per-class grad_output
            };

            /// The rows a run reads: both arguments' data in the logits' layout, that layout, and the
            /// rows' shape (the logits' without the class axis, for messages).
            template <class V>
            struct row_source
            {
                const V* student;
                const V* teacher;
                const row_layout& rows;
                const shape_type& row_shape;
                const std::size_t* row_ids = nullptr; ///< the caller's row of each row (messages name it), or null
            };

            /// How a run treats its rows.
            struct row_settings
            {
                double temperature;
                xloss::temperature_scale scale; ///< whether the loss is T^2 D or D
                row_input input;
                loss_layout layout;
                row_checks checks;
                const char* func;        ///< the public function, for messages
                double weight_soft = 1.; ///< the weight of the divergence
                double weight_hard = 0.; ///< the weight of the cross-entropy with the rows' labels (0: none)
            };

            /// The engine over rows stored as S (the 16-bit types read into B's float row by row).
            template <class B, class Policy, class Keep, class S = value_type_t<B>>
            class row_engine
            {
            public:

                using V = value_type_t<B>;

                row_engine(const Policy& policy, const row_source<S>& source, Keep keep, const row_settings& settings)
                    : m_policy(policy)
                    , m_student(source.student)
                    , m_teacher(source.teacher)
                    , m_rows(source.rows)
                    , m_row_shape(source.row_shape)
                    , m_row_ids(source.row_ids)
                    , m_keep(keep)
                    , m_temperature(settings.temperature)
                    , m_inv_temp(static_cast<V>(1. / settings.temperature))
                    , m_loss_factor(settings.scale == xloss::temperature_scale::squared
                                        ? settings.temperature * settings.temperature
                                        : 1.)
                    , m_grad_factor(settings.scale == xloss::temperature_scale::squared ? settings.temperature
                                                                                        : 1. / settings.temperature)
                    , m_input(settings.input)
                    , m_layout(settings.layout)
                    , m_checks(settings.checks)
                    , m_func(settings.func)
                    , m_weight_soft(settings.weight_soft)
                    , m_weight_hard(settings.weight_hard)
                    , m_hard_shared(settings.weight_hard > 0. && settings.temperature == 1.
                                    && settings.input == row_input::logits)
                {
                }

                /// Throws for a kept row of -inf logits (its softmax is undefined) or with a +inf
                /// logit; before anything is written (row_checks::before_writing).
                void check_rows() const
                {
                    std::vector<V> buf(m_rows.template in_place<S, V>() ? 0 : 2 * m_rows.length);
                    const std::size_t n = m_rows.length;
                    for (std::size_t k = 0; k < m_rows.rows && n > 0; ++k)
                    {
                        if (m_keep(k))
                        {
                            const V* s = m_rows.read(m_student, k, buf.data());
                            const V* t = m_rows.read(m_teacher, k, buf.empty() ? nullptr : buf.data() + n);
                            const row_fault f = row_faults(s, row_max<B>(s, n), t, row_max<B>(t, n));
                            if (f != row_fault::none)
                            {
                                raise_fault(f, k);
                            }
                        }
                    }
                }

                /// Runs every row; returns the sum of the kept rows' values (T^2 D), in row order.
                double run(const row_outputs<S>& out, int threads, row_memory memory) const
                {
                    row_workspace<V> workspace;
                    return run(row_range{0, m_rows.rows}, out, threads, memory, workspace);
                }

                /**
                 * The row-range entry: runs rows [range.first, range.last) of the source (indices of the
                 * source's rows, for the outputs, the kept rows and the messages alike), its scratch taken
                 * from `workspace`, which allocates only when a run needs more than the runs before it;
                 * returns the sum of those rows' values in row order. Rows go to OpenMP threads in fixed
                 * groups, so the results do not depend on the thread count.
                 */
                double run(row_range range, const row_outputs<S>& out, int threads, row_memory memory,
                           row_workspace<V>& workspace) const
                {
                    const run_scratch scratch = scratch_for(out, threads, memory);
                    return run_row_groups(
                        range, row_team{scratch.team, scratch.area()}, workspace,
                        [&](std::size_t k, V* mine, row_fault& fault)
                        {
                            const row_exps<V> spare =
                                scratch.exps
                                    ? row_exps<V>{mine + scratch.gathered, mine + scratch.gathered + m_rows.length}
                                    : row_exps<V>{nullptr, nullptr};
                            return row(k, out, scratch.gathered ? mine : nullptr, spare, fault);
                        },
                        [&](row_fault f, std::size_t k)
                        {
                            raise_fault(f, k);
                        });
                }

            private:

                /// A run's scratch per thread: rows gathered from an inner axis, and two rows that keep
                /// the sums pass's exponentials for the later passes.
                struct run_scratch
                {
                    std::size_t gathered;
                    std::size_t exps;
                    int team;

                    std::size_t area() const noexcept
                    {
                        return gathered + exps;
                    }
                };

                run_scratch scratch_for(const row_outputs<S>& out, int threads, row_memory memory) const noexcept
                {
                    const std::size_t gathered =
                        m_rows.template in_place<S, V>() ? 0 : row_scratch<V>::parts * m_rows.length;
                    // The exponentials' rows only where a later pass reads them: not for a loss-phase
                    // policy's loss alone.
                    const bool later_passes =
                        !has_loss_phase<Policy, B>::value || out.gradients() || m_layout == loss_layout::per_class;
                    const bool spare = m_input == row_input::logits && memory == row_memory::spare_rows && later_passes;
                    return {gathered, spare ? 2 * m_rows.length : 0, team_size(threads)};
                }

                /// What makes a row's softmax undefined: a +inf logit, or -inf everywhere (a row with
                /// NaN is not a fault: NaN reaches the loss). `m` is the row's max.
                row_fault fault(const V* p, V m) const noexcept
                {
                    if (is_inf(m) && !is_neg_inf(m))
                    {
                        return row_fault::pos_inf;
                    }
                    if (m_input == row_input::logits && spread_overflows(p, m))
                    {
                        return row_fault::spread;
                    }
                    if (is_neg_inf(m))
                    {
                        for (std::size_t j = 0; j < m_rows.length; ++j)
                        {
                            if (is_nan(p[j]))
                            {
                                return row_fault::none;
                            }
                        }
                        return row_fault::all_neg_inf;
                    }
                    return row_fault::none;
                }

                /// Whether the row's shifted, scaled logits leave the value type's range (row_spread_overflows).
                bool spread_overflows(const V* p, V m) const noexcept
                {
                    return row_spread_overflows<B>(p, m_rows.length, m, m_temperature);
                }

                /// Faults of the student's and the teacher's row k, the student's first.
                row_fault row_faults(const V* s, V ms, const V* t, V mt) const noexcept
                {
                    const row_fault f = fault(s, ms);
                    if (f != row_fault::none)
                    {
                        return f;
                    }
                    const row_fault g = fault(t, mt);
                    return g == row_fault::none ? g : static_cast<row_fault>(static_cast<int>(g) | teacher_bit);
                }

                static std::string fault_text(row_fault what)
                {
                    switch (what)
                    {
                        case row_fault::pos_inf:
                            return " holds +inf: its softmax is undefined";
                        case row_fault::spread:
                            return std::string(" spans more than the largest ") + value_name()
                                   + " times the temperature (max - min of its logits): its log-probabilities "
                                     "are not representable";
                        default:
                            return " is all -inf: its softmax is undefined";
                    }
                }

                static const char* value_name() noexcept
                {
                    return std::is_same<V, float>::value ? "float" : "double";
                }

                [[noreturn]] void raise_fault(row_fault f, std::size_t k) const
                {
                    const bool teacher = (static_cast<int>(f) & teacher_bit) != 0;
                    const auto what = static_cast<row_fault>(static_cast<int>(f) & ~teacher_bit);
                    detail::raise(std::invalid_argument(
                        std::string("xloss::") + m_func + ": " + (teacher ? "teacher_logits" : "student_logits")
                        + " row " + row_index(m_row_ids ? m_row_ids[k] : k, m_row_shape) + fault_text(what)));
                }

                /// One row: its value T^2 D (0 when ignored), and its outputs; `spare` rows (logits only)
                /// keep the exponentials of its sums pass.
                double row(std::size_t k, const row_outputs<S>& out, V* block, const row_exps<V>& spare,
                           row_fault& fault) const
                {
                    const std::size_t n = m_rows.length;
                    const row_scratch<V> buf(block, n);
                    const bool per_class = m_layout == loss_layout::per_class;
                    row_targets<V> to;
                    to.grad_student = out.grad_student ? m_rows.write(out.grad_student, k, buf.grad_student) : nullptr;
                    to.grad_teacher = out.grad_teacher ? m_rows.write(out.grad_teacher, k, buf.grad_teacher) : nullptr;
                    to.loss = out.loss && per_class ? m_rows.write(out.loss, k, buf.loss) : nullptr;
                    double value = 0.;
                    if (!m_keep(k) || n == 0)
                    {
                        fill_row(to.grad_student, V(0));
                        fill_row(to.grad_teacher, V(0));
                        fill_row(to.loss, V(0));
                        if (out.parts)
                        {
                            out.parts[2 * k] = out.parts[2 * k + 1] = 0.;
                        }
                    }
                    else
                    {
                        if (out.grad_output && per_class)
                        {
                            to.grad_output = m_rows.read(out.grad_output, k, buf.grad_output);
                        }
                        const V* s = m_rows.read(m_student, k, buf.student);
                        double zs = 0.;
                        value = kept_row(s, m_rows.read(m_teacher, k, buf.teacher), k, out, to, spare, fault, zs);
                        // A policy that is a divergence (Policy::nonnegative) never gives a row of logits
                        // below 0: a row's sum that rounds below it is 0 (NaN stays, read from the bits: a
                        // compare may not keep it under -ffast-math). Rows of log-probabilities are not
                        // clamped (unless normalised, they may truly be below 0), nor per-class terms,
                        // PyTorch's pointwise kl_div, whose terms may be negative.
                        if (Policy::nonnegative && !per_class && m_input == row_input::logits && is_negative(value))
                        {
                            value = 0.;
                        }
                        // weight_soft D + weight_hard CE: the gradient passes scaled the divergence's part
                        // by weight_soft already (weight_soft 1 and weight_hard 0 leave the value as it is).
                        if (fault == row_fault::none)
                        {
                            const double hard = m_weight_hard > 0.
                                                    ? hard_row(s, k, zs, row_grad_output(k, out, to), to.grad_student)
                                                    : 0.;
                            value = mix(value, hard, k, out);
                        }
                    }
                    if (out.loss && !per_class)
                    {
                        out.loss[k] = stored_as<S>(value);
                    }
                    for (auto [data, row] : {std::pair<S*, V*>{out.grad_student, to.grad_student},
                                             {out.grad_teacher, to.grad_teacher},
                                             {out.loss, to.loss}})
                    {
                        if (row)
                        {
                            m_rows.scatter(data, k, row);
                        }
                    }
                    return value;
                }

                /// weight_soft D + weight_hard CE, the parts kept when asked for.
                double mix(double soft, double hard, std::size_t k, const row_outputs<S>& out) const noexcept
                {
                    if (out.parts)
                    {
                        out.parts[2 * k] = soft;
                        out.parts[2 * k + 1] = hard;
                    }
                    return weighted_sum(m_weight_soft, soft, m_weight_hard, hard);
                }

                /**
                 * The cross-entropy of the student's row (at T = 1) with its label, and its gradient added
                 * to the student's: where the row's softmax is the one the divergence took (T = 1), its
                 * passes added weight_hard g q already and `zs` is its partition sum; else two passes
                 * here. Rows of log-probabilities: -log q_y, whose gradient is -1 at y.
                 */
                double hard_row(const V* s, std::size_t k, double zs, double g, V* grad) const
                {
                    const std::size_t n = m_rows.length;
                    const auto y = static_cast<std::size_t>(m_keep.label(k));
                    const double hs = m_weight_hard * g;
                    if (m_input == row_input::log_probs)
                    {
                        if (grad)
                        {
                            grad[y] = static_cast<V>(static_cast<double>(grad[y]) - hs);
                        }
                        return -static_cast<double>(s[y]);
                    }
                    const V ms = row_max<B>(s, n);
                    if (!m_hard_shared)
                    {
                        row_sum<B> z;
                        for_each_batch<B>(n,
                                          [&](std::size_t i, std::size_t) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                          {
                                              z.add(exp_nonpositive(
                                                  load_row<B>(s, i, n, -std::numeric_limits<V>::infinity()) - B(ms)));
                                          });
                        zs = z.total();
                        if (grad)
                        {
                            const B scale(static_cast<V>(hs / zs));
                            for_each_batch<B>(
                                n,
                                [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                {
                                    const B e = exp_nonpositive(
                                        load_row<B>(s, i, n, -std::numeric_limits<V>::infinity()) - B(ms));
                                    store_lanes(grad + i, load_row<B>(grad, i, n, V(0)) + e * scale, count);
                                });
                        }
                    }
                    if (grad)
                    {
                        grad[y] = static_cast<V>(static_cast<double>(grad[y]) - hs);
                    }
                    return std::log(zs) - (static_cast<double>(s[y]) - static_cast<double>(ms));
                }

                void fill_row(V* p, V v) const noexcept
                {
                    for (std::size_t j = 0; p && j < m_rows.length; ++j)
                    {
                        p[j] = v;
                    }
                }

                /// The shifted, scaled logits of batch i: (x - max) / T, padded with -inf.
                XLOSS_INLINE B scaled(const V* p, std::size_t i, V m) const noexcept
                {
                    constexpr V lowest = -std::numeric_limits<V>::infinity();
                    return (load_row<B>(p, i, m_rows.length, lowest) - B(m)) * B(m_inv_temp);
                }

                /// The log-probabilities of batch i of a row whose max is `m` and log-normaliser
                /// `log_z`: (x - max) / T - log Z, one rounding of the product alike for every row, so
                /// that equal rows give equal log-probabilities (see mul_sub).
                XLOSS_INLINE B log_prob(const V* p, std::size_t i, V m, const B& log_z) const noexcept
                {
                    constexpr V lowest = -std::numeric_limits<V>::infinity();
                    return mul_sub(load_row<B>(p, i, m_rows.length, lowest) - B(m), B(m_inv_temp), log_z);
                }

                /// A kept row's two arguments and their maxima.
                struct row_args
                {
                    const V* s; ///< the student's row
                    const V* t; ///< the teacher's row
                    V ms;       ///< its max
                    V mt;
                };

                /// A row's softmax statistics from its sums pass: 1 / Z and log Z of either argument,
                /// and where its exponentials are kept (null: computed again, the same way).
                struct row_softmax
                {
                    B inv_zs;
                    B inv_zt;
                    V log_zs;
                    V log_zt;
                    row_exps<V> kept;
                    double zs; ///< the student's partition sum
                };

                /// The sums of the pulls over a row's classes.
                struct pull_totals
                {
                    double student;
                    double teacher;
                };

                /// The driver of one kept row: its maxima and checks, then the strategy its input and
                /// policy take (a row of log-probabilities, the loss phase, or the pulls' pass).
                double kept_row(const V* s, const V* t, std::size_t k, const row_outputs<S>& out,
                                const row_targets<V>& to, const row_exps<V>& spare, row_fault& fault, double& zs) const
                {
                    const std::size_t n = m_rows.length;
                    const row_args r{s, t, row_max<B>(s, n), row_max<B>(t, n)};
                    if (m_checks == row_checks::while_running)
                    {
                        fault = row_faults(s, r.ms, t, r.mt);
                        if (fault != row_fault::none)
                        {
                            return 0.; // the run throws after this group of rows
                        }
                    }
                    if (m_input == row_input::log_probs)
                    {
                        return log_prob_row(s, t, k, out, to);
                    }
                    if constexpr (has_loss_phase<Policy, B>::value)
                    {
                        if (!to.grad_output)
                        {
                            return loss_phase_row(r, k, out, to, spare, zs);
                        }
                    }
                    return pulls_row(r, k, out, to, spare, zs);
                }

                /// A row whose policy has a loss phase: the partition sums and the policy's running sums
                /// in one pass, then, when anything per class is asked for, one pass that writes it.
                double loss_phase_row(const row_args& r, std::size_t k, const row_outputs<S>& out,
                                      const row_targets<V>& to, const row_exps<V>& spare, double& z_student) const
                {
                    const std::size_t n = m_rows.length;
                    // Locals, not r's fields: the loop's stores of V could alias r.ms and r.mt, which the
                    // compiler would then load again per batch (5% on a forward KL of 128k classes).
                    const V *s = r.s, *t = r.t;
                    const V ms = r.ms, mt = r.mt;
                    row_sum<B> zs, zt;
                    constexpr std::size_t count_sums = shifted_count<Policy, B>;
                    std::array<row_sum<B>, count_sums> sums;
                    // The write pass reads the exponentials back: from the gradient rows it
                    // then overwrites (the teacher's from the student's row, and the other way
                    // round), or from the spare rows.
                    const bool write_pass = out.gradients() || to.loss;
                    const row_exps<V> saved{write_pass ? (to.grad_student ? to.grad_student : spare.teacher) : nullptr,
                                            write_pass ? (to.grad_teacher ? to.grad_teacher : spare.student) : nullptr};
                    V* const save_teacher = saved.teacher;
                    V* const save_student = saved.student;
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          const B b = scaled(s, i, ms), a = scaled(t, i, mt);
                                          const B eb = exp_nonpositive(b), ea = exp_nonpositive(a);
                                          if (save_teacher)
                                          {
                                              store_lanes(save_teacher + i, ea, count);
                                          }
                                          if (save_student)
                                          {
                                              store_lanes(save_student + i, eb, count);
                                          }
                                          zs.add(eb);
                                          zt.add(ea);
                                          const shifted_sums<B, count_sums> f = m_policy.shifted(a, b, ea, eb);
                                          for (std::size_t j = 0; j < count_sums; ++j)
                                          {
                                              sums[j].add(f[j]);
                                          }
                                      });
                    shifted_totals<count_sums> totals;
                    for (std::size_t j = 0; j < count_sums; ++j)
                    {
                        totals[j] = sums[j].total();
                    }
                    const double sum_s = zs.total(), sum_t = zt.total();
                    z_student = sum_s;
                    const double d = m_policy.row_value(totals, sum_s, sum_t);
                    if (out.gradients() || to.loss)
                    {
                        const row_pull_sums pulls = m_policy.pull_sums(totals, sum_s, sum_t, d);
                        write_row(r.s, r.t, r.ms, r.mt, sum_s, sum_t, pulls, row_grad_output(k, out, to), to, saved);
                    }
                    return m_loss_factor * d;
                }

                /// A row of any policy: the sums pass, a pass of the terms and the pulls (the pulls kept
                /// in the gradient rows), and one that turns the pulls into gradients.
                double pulls_row(const row_args& r, std::size_t k, const row_outputs<S>& out, const row_targets<V>& to,
                                 const row_exps<V>& spare, double& z_student) const
                {
                    const row_softmax sm = softmax_sums(r, spare);
                    z_student = sm.zs;
                    pull_totals pulls{};
                    const double value = m_loss_factor * terms_pass(r, sm, to, pulls);
                    if (out.gradients())
                    {
                        gradient_pass(r, sm, row_grad_output(k, out, to), to, pulls);
                    }
                    return value;
                }

                /// The partition sums of a row's two softmaxes; the exponentials go to the spare rows,
                /// when there are: the later passes take the shares from them.
                row_softmax softmax_sums(const row_args& r, const row_exps<V>& spare) const
                {
                    const std::size_t n = m_rows.length;
                    const V *s = r.s, *t = r.t;
                    const V ms = r.ms, mt = r.mt;
                    row_sum<B> zs, zt;
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          const B eb = exp_nonpositive(scaled(s, i, ms)),
                                                  ea = exp_nonpositive(scaled(t, i, mt));
                                          if (spare.student)
                                          {
                                              store_lanes(spare.student + i, eb, count);
                                              store_lanes(spare.teacher + i, ea, count);
                                          }
                                          zs.add(eb);
                                          zt.add(ea);
                                      });
                    const double sum_zs = zs.total(), sum_zt = zt.total();
                    return {B(static_cast<V>(1. / sum_zs)),
                            B(static_cast<V>(1. / sum_zt)),
                            static_cast<V>(std::log(sum_zs)),
                            static_cast<V>(std::log(sum_zt)),
                            spare,
                            sum_zs};
                }

                /// q or p of batch i (shifted logits x): from the kept exponential, or the same one computed
                /// again.
                XLOSS_INLINE B share(const V* e, const B& inv_z, const B& x, std::size_t i) const noexcept
                {
                    return counted_share(e ? load_row<B>(e, i, m_rows.length, V(0)) : exp_nonpositive(x), inv_z);
                }

                /// The per-class terms and pulls of a row (the pulls into the gradient rows, weighed by a
                /// per-class grad_output); returns D and sets the pulls' sums.
                double terms_pass(const row_args& r, const row_softmax& sm, const row_targets<V>& to,
                                  pull_totals& pulls) const
                {
                    const std::size_t n = m_rows.length;
                    const V *s = r.s, *t = r.t;
                    const V ms = r.ms, mt = r.mt;
                    const V log_zs = sm.log_zs, log_zt = sm.log_zt;
                    const B inv_zs = sm.inv_zs, inv_zt = sm.inv_zt;
                    const row_exps<V>& spare = sm.kept;
                    const B t2(static_cast<V>(m_loss_factor));
                    row_sum<B> terms, pull_s, pull_t;
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          const B b = scaled(s, i, ms), a = scaled(t, i, mt);
                                          const B lq = log_prob(s, i, ms, B(log_zs)),
                                                  lp = log_prob(t, i, mt, B(log_zt));
                                          divergence_terms<B> d = m_policy(lp, lq, share(spare.teacher, inv_zt, a, i),
                                                                           share(spare.student, inv_zs, b, i));
                                          terms.add(d.term);
                                          if (to.loss)
                                          {
                                              store_lanes(to.loss + i, d.term * t2, count);
                                          }
                                          if (to.grad_output)
                                          {
                                              // A grad_output per class weighs each class's pulls.
                                              const B g = load_row<B>(to.grad_output, i, n, V(0));
                                              d.pull_student *= g;
                                              d.pull_teacher *= g;
                                          }
                                          pull_s.add(d.pull_student);
                                          pull_t.add(d.pull_teacher);
                                          if (to.grad_student)
                                          {
                                              store_lanes(to.grad_student + i, d.pull_student, count);
                                          }
                                          if (to.grad_teacher)
                                          {
                                              store_lanes(to.grad_teacher + i, d.pull_teacher, count);
                                          }
                                      });
                    pulls = {pull_s.total(), pull_t.total()};
                    return terms.total();
                }

                /// The gradients from the pulls the terms pass left in the gradient rows:
                /// d(T^2 D)/dx = T (pull - prob * sum(pull)), times the row's grad_output g.
                void gradient_pass(const row_args& r, const row_softmax& sm, double g, const row_targets<V>& to,
                                   const pull_totals& pulls) const
                {
                    const std::size_t n = m_rows.length;
                    const V *s = r.s, *t = r.t;
                    const V ms = r.ms, mt = r.mt;
                    const B inv_zs = sm.inv_zs, inv_zt = sm.inv_zt;
                    const row_exps<V>& spare = sm.kept;
                    const B scale(static_cast<V>(m_grad_factor * m_weight_soft * g));
                    const B sum_s(static_cast<V>(pulls.student)), sum_t(static_cast<V>(pulls.teacher));
                    const B hard(static_cast<V>(m_weight_hard * g));
                    V* const gs = to.grad_student;
                    V* const gt = to.grad_teacher;
                    with_hard_flag(
                        [&](auto shared)
                        {
                            for_each_batch<B>(n,
                                              [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                              {
                                                  if (gs)
                                                  {
                                                      const B q = share(spare.student, inv_zs, scaled(s, i, ms), i);
                                                      const B pull = load_row<B>(gs, i, n, V(0));
                                                      store_lanes(gs + i,
                                                                  student_gradient<decltype(shared)::value>(
                                                                      pull, q, sum_s, scale, hard),
                                                                  count);
                                                  }
                                                  if (gt)
                                                  {
                                                      const B p = share(spare.teacher, inv_zt, scaled(t, i, mt), i);
                                                      const B pull = load_row<B>(gt, i, n, V(0));
                                                      store_lanes(gt + i, (pull - p * sum_t) * scale, count);
                                                  }
                                              });
                        });
                }

                /// f(std::true_type) where the cross-entropy shares the divergence's softmax, else
                /// f(std::false_type): one loop each, no branch inside.
                template <class F>
                void with_hard_flag(F&& f) const
                {
                    if (m_hard_shared)
                    {
                        f(std::true_type{});
                    }
                    else
                    {
                        f(std::false_type{});
                    }
                }

                /// The student's gradient of a batch: (pull - q sum) scale, plus weight_hard g q where the
                /// cross-entropy shares the softmax (Shared; hard_row subtracts weight_hard g at the label).
                template <bool Shared>
                static XLOSS_INLINE B student_gradient(const B& pull, const B& q, const B& sum, const B& scale,
                                                       const B& hard) noexcept
                {
                    if constexpr (Shared)
                    {
                        return (pull - q * sum) * scale + q * hard;
                    }
                    else
                    {
                        return (pull - q * sum) * scale;
                    }
                }

                /// A row of log-probabilities: the terms and the gradients w.r.t. log q and log p (the
                /// pulls themselves) in one pass; no softmax, T = 1.
                double log_prob_row(const V* s, const V* t, std::size_t k, const row_outputs<S>& out,
                                    const row_targets<V>& to) const
                {
                    constexpr V lowest = -std::numeric_limits<V>::infinity();
                    const std::size_t n = m_rows.length;
                    const B scale(static_cast<V>(m_weight_soft * row_grad_output(k, out, to)));
                    row_sum<B> terms;
                    for_each_batch<B>(n,
                                      [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                                      {
                                          const B lq = load_row<B>(s, i, n, lowest), lp = load_row<B>(t, i, n, lowest);
                                          divergence_terms<B> d =
                                              m_policy(lp, lq, exp_nonpositive(lp), exp_nonpositive(lq));
                                          terms.add(d.term);
                                          if (to.loss)
                                          {
                                              store_lanes(to.loss + i, d.term, count);
                                          }
                                          if (to.grad_output)
                                          {
                                              const B g = load_row<B>(to.grad_output, i, n, V(0));
                                              d.pull_student *= g;
                                              d.pull_teacher *= g;
                                          }
                                          if (to.grad_student)
                                          {
                                              store_lanes(to.grad_student + i, d.pull_student * scale, count);
                                          }
                                          if (to.grad_teacher)
                                          {
                                              store_lanes(to.grad_teacher + i, d.pull_teacher * scale, count);
                                          }
                                      });
                    return terms.total();
                }

                /// The grad_output of row k (1 when it comes per class, weighing the pulls).
                static double row_grad_output(std::size_t k, const row_outputs<S>& out,
                                              const row_targets<V>& to) noexcept
                {
                    return to.grad_output    ? 1.
                           : out.grad_output ? static_cast<double>(out.grad_output[k])
                                             : out.grad_scalar;
                }

                /// The per-class terms and the gradients in one pass, from pull sums known before it (the
                /// loss phase's).
                /// e^a / Z for a class the sums counted (e^a not 0), at least the smallest normal number:
                /// under flush-to-zero, or when the quotient rounds to 0, the class stays in its row's
                /// terms and pulls as it is in the sums (a student that masks it makes the row +inf).
                static XLOSS_INLINE B counted_share(const B& e, const B& inv_z) noexcept
                {
                    // NaN (a row with a NaN logit) stays NaN: x86's max returns its second operand then.
                    const B share = e * inv_z;
                    return select(is_zero(e), B(0),
                                  select(is_nan(share), share, max(share, B(std::numeric_limits<V>::min()))));
                }

                void write_row(const V* s, const V* t, V ms, V mt, double zs, double zt, const row_pull_sums& pulls,
                               double g, const row_targets<V>& to, const row_exps<V>& saved) const
                {
                    const std::size_t n = m_rows.length;
                    const B log_zs(static_cast<V>(std::log(zs))), log_zt(static_cast<V>(std::log(zt)));
                    // p = e^a / Zp as the loss phase saw it: a p that e^(a - log Zp) would flush to 0
                    // stays a class of the row, so terms, pulls and the row's value agree.
                    const B inv_zs(static_cast<V>(1. / zs)), inv_zt(static_cast<V>(1. / zt));
                    const B scale(static_cast<V>(m_grad_factor * m_weight_soft * g));
                    const B sum_s(static_cast<V>(pulls.student)), sum_t(static_cast<V>(pulls.teacher));
                    const B t2(static_cast<V>(m_loss_factor));
                    const B hard(static_cast<V>(m_weight_hard * g));
                    // One loop per set of outputs: with the student's gradient alone, the compiler
                    // drops the terms and the teacher's pulls.
                    auto pass = [&](auto only_student, auto shared)
                    {
                        for_each_batch<B>(
                            n,
                            [&](std::size_t i, std::size_t count) XLOSS_FLATTEN XLOSS_INLINE_LAMBDA
                            {
                                const B b = scaled(s, i, ms), a = scaled(t, i, mt);
                                const B lq = log_prob(s, i, ms, log_zs), lp = log_prob(t, i, mt, log_zt);
                                const B ea =
                                    saved.teacher ? load_row<B>(saved.teacher, i, n, V(0)) : exp_nonpositive(a);
                                const B eb =
                                    saved.student ? load_row<B>(saved.student, i, n, V(0)) : exp_nonpositive(b);
                                const B p = counted_share(ea, inv_zt), q = counted_share(eb, inv_zs);
                                const divergence_terms<B> d = m_policy(lp, lq, p, q);
                                if (decltype(only_student)::value || to.grad_student)
                                {
                                    store_lanes(to.grad_student + i,
                                                student_gradient<decltype(shared)::value>(d.pull_student, q, sum_s,
                                                                                          scale, hard),
                                                count);
                                }
                                if constexpr (!decltype(only_student)::value)
                                {
                                    if (to.loss)
                                    {
                                        store_lanes(to.loss + i, d.term * t2, count);
                                    }
                                    if (to.grad_teacher)
                                    {
                                        store_lanes(to.grad_teacher + i, (d.pull_teacher - p * sum_t) * scale, count);
                                    }
                                }
                            });
                    };
                    with_hard_flag(
                        [&](auto shared)
                        {
                            if (to.grad_student && !to.loss && !to.grad_teacher)
                            {
                                pass(std::true_type{}, shared);
                            }
                            else
                            {
                                pass(std::false_type{}, shared);
                            }
                        });
                }

                const Policy& m_policy;
                const S* m_student;
                const S* m_teacher;
                const row_layout& m_rows;
                const shape_type& m_row_shape;
                const std::size_t* m_row_ids;
                Keep m_keep;
                double m_temperature;
                V m_inv_temp;
                double m_loss_factor; ///< T^2, or 1 (temperature_scale::none)
                double m_grad_factor; ///< the loss factor / T
                row_input m_input;
                loss_layout m_layout;
                row_checks m_checks;
                const char* m_func;
                double m_weight_soft;
                double m_weight_hard;
                bool m_hard_shared; ///< the cross-entropy's softmax is the divergence's (T = 1, logits)
            };
        }
    }
}

XLOSS_SIMD_DIAGNOSTICS_END

#endif
