/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DISTILL_OPTIONS_HPP
#define XLOSS_DISTILL_OPTIONS_HPP

/// @file
/// The options of the divergences computed from logits (forward_kl, reverse_kl, generalized_jsd, symmetric_kl).

#include <cstddef>

#include "loss_options.hpp"
#include "reduction.hpp"
#include "row_input.hpp"

namespace xloss
{
    /**
     * @brief The largest softmax temperature the divergences take. The loss T^2 D is a difference of
     *        sums of order 1 whose result falls as 1/T^2: in float its relative error grows with T
     *        (measured: 2e-4 at T = 100, 8e-3 at 1e3, meaningless from 1e4), so larger values are an
     *        error rather than a silent loss of every digit.
     */
    constexpr double max_temperature = 100.;

    /// @brief What a teacher given as its top k log-probabilities does with the mass outside them.
    enum class top_k_tail
    {
        renormalize, ///< P is softmax(log p / T) over the k classes: its mass outside them is dropped (default)
        bucket       ///< the mass r = 1 - sum(p) outside the k classes is one more class, against the
                     ///< student's mass outside them, 1 - sum_K q (temperature 1 only; r within 4 k epsilon
                     ///< of 0 is 0; a student's mass outside K below the value type's resolution rounds to 0
                     ///< and makes the row +inf)
    };

    namespace detail
    {
        /**
         * What every divergence from logits takes besides the options of every loss; `D` is the
         * options class, so that setters chain (`xloss::jsd_options().beta(0.5).temperature(2)`).
         * The reduction is over rows (tokens): `none` gives one value per row, `sum` their sum,
         * `mean` the sum divided by the number of kept rows (the per-token mean of torchtune, TRL and
         * Liger; 0 when every row is ignored), `batchmean` the sum divided by the length of the rows'
         * first axis (the batch of a (batch, sequence) layout).
         */
        template <class D>
        class row_options : public loss_options<D>
        {
        public:

            /// The softmax temperature T > 0; the loss is T^2 times the divergence (default 1; see
            /// temperature_scale()).
            constexpr double temperature() const noexcept
            {
                return m_temperature;
            }

            /// Sets T, in (0, max_temperature]; throws std::invalid_argument for any other value.
            XLOSS_INLINE constexpr D& temperature(double t)
            {
                if (!option_setters::is_positive_finite(t) || t > max_temperature)
                {
                    option_setters::reject(D::options_name, "temperature",
                                           "positive and at most xloss::max_temperature (100)", t);
                }
                m_temperature = t;
                return self();
            }

            /// Whether the loss is T^2 D (temperature_scale::squared, the default) or D
            /// (temperature_scale::none: TRL's and Liger-Kernel's convention).
            constexpr xloss::temperature_scale temperature_scale() const noexcept
            {
                return m_scale;
            }

            /// Sets the temperature scaling; throws std::invalid_argument for a value that is not an
            /// enumerator.
            XLOSS_INLINE constexpr D& temperature_scale(xloss::temperature_scale value)
            {
                if (value != xloss::temperature_scale::squared && value != xloss::temperature_scale::none)
                {
                    option_setters::reject(D::options_name, "temperature_scale", "squared or none",
                                           static_cast<double>(static_cast<int>(value)));
                }
                m_scale = value;
                return self();
            }

            /// The class axis, along which the softmax runs (negative counts from the end; default -1).
            constexpr std::ptrdiff_t class_axis() const noexcept
            {
                return m_axis;
            }

            constexpr D& class_axis(std::ptrdiff_t a) noexcept
            {
                m_axis = a;
                return self();
            }

            /// class_axis() under its older name.
            constexpr std::ptrdiff_t axis() const noexcept
            {
                return m_axis;
            }

            /// class_axis(a) under its older name.
            constexpr D& axis(std::ptrdiff_t a) noexcept
            {
                return class_axis(a);
            }

            /// The label of rows to leave out (default -100, PyTorch's and Hugging Face's).
            constexpr long long ignore_index() const noexcept
            {
                return m_ignore_index;
            }

            constexpr D& ignore_index(long long i) noexcept
            {
                m_ignore_index = i;
                return self();
            }

            /// What the arguments hold (default row_input::logits). With row_input::log_probs they
            /// are the log-probabilities themselves (e.g. a model's log_softmax output), the temperature
            /// must be 1, and the gradients are w.r.t. the log-probabilities.
            constexpr row_input input() const noexcept
            {
                return m_input;
            }

            XLOSS_INLINE constexpr D& input(row_input value)
            {
                option_setters::check_row_input(D::options_name, value);
                m_input = value;
                return self();
            }

            /**
             * The weight of the hard loss (default 0: none): with weight_hard > 0 the loss of a kept row is
             * weight_soft T^2 D + weight_hard CE, CE = -log softmax(s)_y the cross-entropy of the student's
             * logits (at T = 1) with the row's label y, computed in the divergence's passes (Liger-Kernel's
             * `weight_hard_loss * hard + weight_soft_loss * soft`; torchtune's KD recipe is weight_hard =
             * 1 - kd_ratio, weight_soft = kd_ratio). The labels are then class indices (or ignore_index).
             */
            constexpr double weight_hard() const noexcept
            {
                return m_weight_hard;
            }

            /// Sets weight_hard; throws std::invalid_argument for a negative or non-finite value.
            XLOSS_INLINE constexpr D& weight_hard(double w)
            {
                if (!option_setters::is_nonnegative_finite(w))
                {
                    option_setters::reject(D::options_name, "weight_hard", "positive or 0", w);
                }
                m_weight_hard = w;
                return self();
            }

            /// The weight of the divergence (default 1).
            constexpr double weight_soft() const noexcept
            {
                return m_weight_soft;
            }

            /// Sets weight_soft; throws std::invalid_argument for a negative or non-finite value.
            XLOSS_INLINE constexpr D& weight_soft(double w)
            {
                if (!option_setters::is_nonnegative_finite(w))
                {
                    option_setters::reject(D::options_name, "weight_soft", "positive or 0", w);
                }
                m_weight_soft = w;
                return self();
            }

            /// What a top-k teacher does with the mass outside its k classes (default top_k_tail::renormalize).
            constexpr xloss::top_k_tail top_k_tail() const noexcept
            {
                return m_tail;
            }

            /// Sets the top-k tail; throws std::invalid_argument for a value that is not an enumerator.
            XLOSS_INLINE constexpr D& top_k_tail(xloss::top_k_tail value)
            {
                if (value != xloss::top_k_tail::renormalize && value != xloss::top_k_tail::bucket)
                {
                    option_setters::reject(D::options_name, "top_k_tail", "renormalize or bucket",
                                           static_cast<double>(static_cast<int>(value)));
                }
                m_tail = value;
                return self();
            }

            /// Whether forward_backward() also gives the gradient w.r.t. the target (the teacher's
            /// logits: divergence_result::grad_teacher; default false).
            constexpr bool target_grad() const noexcept
            {
                return m_teacher_grad;
            }

            constexpr D& target_grad(bool value) noexcept
            {
                m_teacher_grad = value;
                return self();
            }

            /// target_grad() under its older name.
            constexpr bool teacher_grad() const noexcept
            {
                return m_teacher_grad;
            }

            /// target_grad(value) under its older name.
            constexpr D& teacher_grad(bool value) noexcept
            {
                return target_grad(value);
            }

        private:

            constexpr D& self() noexcept
            {
                return static_cast<D&>(*this);
            }

            double m_temperature = 1.;
            double m_weight_hard = 0.;
            double m_weight_soft = 1.;
            xloss::temperature_scale m_scale = xloss::temperature_scale::squared;
            xloss::top_k_tail m_tail = xloss::top_k_tail::renormalize;
            std::ptrdiff_t m_axis = -1;
            long long m_ignore_index = -100;
            row_input m_input = row_input::logits;
            bool m_teacher_grad = false;
        };
    }

    /// @brief Options of forward_kl() and reverse_kl() and their modules.
    class distill_options : public detail::row_options<distill_options>
    {
    public:

        /// The options' name in error messages.
        static constexpr const char* options_name = "distill_options";
    };

    /// @brief Options of generalized_jsd() and GeneralizedJSDLoss: the row options and `beta`.
    class jsd_options : public detail::row_options<jsd_options>
    {
    public:

        /// The options' name in error messages.
        static constexpr const char* options_name = "jsd_options";

        /// The weight of the teacher in the mixture M = beta P + (1 - beta) Q, in [0, 1] (default
        /// 0.5); 0 is the forward KL(P || Q) and 1 the reverse KL(Q || P), as in TRL.
        constexpr double beta() const noexcept
        {
            return m_beta;
        }

        /// Sets beta; throws std::invalid_argument outside [0, 1].
        XLOSS_INLINE constexpr jsd_options& beta(double b)
        {
            if (!option_setters::is_nonnegative_finite(b) || b > 1.)
            {
                option_setters::reject(options_name, "beta", "in [0, 1]", b);
            }
            m_beta = b;
            return *this;
        }

    private:

        double m_beta = 0.5;
    };

    /// @brief Options of symmetric_kl() and SymmetricKLLoss: the row options and `ratio`.
    class symmetric_kl_options : public detail::row_options<symmetric_kl_options>
    {
    public:

        /// The options' name in error messages.
        static constexpr const char* options_name = "symmetric_kl_options";

        /// The weight of the forward KL, in [0, 1] (default 0.5, torchtune's `sym_kl_ratio`): the loss
        /// is ratio KL(P || Q) + (1 - ratio) KL(Q || P); 1 is the forward and 0 the reverse KL.
        constexpr double ratio() const noexcept
        {
            return m_ratio;
        }

        /// Sets ratio; throws std::invalid_argument outside [0, 1].
        XLOSS_INLINE constexpr symmetric_kl_options& ratio(double r)
        {
            if (!option_setters::is_nonnegative_finite(r) || r > 1.)
            {
                option_setters::reject(options_name, "ratio", "in [0, 1]", r);
            }
            m_ratio = r;
            return *this;
        }

    private:

        double m_ratio = 0.5;
    };
}

#endif
