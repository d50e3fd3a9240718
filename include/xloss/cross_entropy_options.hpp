/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_CROSS_ENTROPY_OPTIONS_HPP
#define XLOSS_CROSS_ENTROPY_OPTIONS_HPP

/// @file
/// The options of cross_entropy() and CrossEntropyLoss.

#include <cstddef>
#include <memory>
#include <vector>

#include "compat.hpp"
#include XLOSS_XTENSOR_HEADER(core, xexpression.hpp)

#include "loss_options.hpp"

namespace xloss
{
    /// @brief What `mean` gives when no row counts (every label ignored, or kept rows of weight 0).
    enum class empty_mean
    {
        nan, ///< 0 / 0, as PyTorch's F.cross_entropy
        zero ///< 0, as the LM libraries (Liger-Kernel, torchtune's chunked losses) give
    };

    namespace detail
    {
        /// Per-class weights in both value types, made once by the options' setter.
        struct class_weights
        {
            std::vector<double> as_double;
            std::vector<float> as_float;
            double total = 0.; ///< their sum

            template <class V>
            const V* data() const noexcept
            {
                if constexpr (sizeof(V) == sizeof(float))
                {
                    return as_float.data();
                }
                else
                {
                    return as_double.data();
                }
            }
        };
    }

    /**
     * @brief Options of cross_entropy() and CrossEntropyLoss: PyTorch's F.cross_entropy with class
     *        indices (ignore_index, label_smoothing, weight, reductions none, mean and sum, the class
     *        axis), plus what LM training adds (z_loss, softcap) and the `divisor` of data parallelism.
     *
     * `mean` divides the sum of the kept rows' losses by the sum of their labels' weights (the number
     * of kept rows without weights), as PyTorch does; `batchmean` is not a reduction of this loss.
     */
    class cross_entropy_options : public detail::loss_options<cross_entropy_options>
    {
    public:

        /// The options' name in error messages.
        static constexpr const char* options_name = "cross_entropy_options";

        /// The class axis (negative counts from the end). Default PyTorch's: 1, or 0 for a 1-D input.
        constexpr std::ptrdiff_t class_axis() const noexcept
        {
            return m_axis;
        }

        /// Sets the class axis: -1 for the (tokens..., vocabulary) layouts of LM training.
        constexpr cross_entropy_options& class_axis(std::ptrdiff_t a) noexcept
        {
            m_axis = a;
            m_axis_given = true;
            return *this;
        }

        /// Whether class_axis() was set (else a 1-D input takes axis 0).
        constexpr bool class_axis_given() const noexcept
        {
            return m_axis_given;
        }

        /// The label of rows to leave out (default -100, PyTorch's).
        constexpr long long ignore_index() const noexcept
        {
            return m_ignore_index;
        }

        /// Sets the label of rows to leave out.
        constexpr cross_entropy_options& ignore_index(long long i) noexcept
        {
            m_ignore_index = i;
            return *this;
        }

        /// The label smoothing eps in [0, 1] (default 0): the target is (1 - eps) one-hot + eps / C.
        constexpr double label_smoothing() const noexcept
        {
            return m_smoothing;
        }

        /// Sets the label smoothing; throws std::invalid_argument outside [0, 1].
        XLOSS_INLINE constexpr cross_entropy_options& label_smoothing(double eps)
        {
            if (!option_setters::is_nonnegative_finite(eps) || eps > 1.)
            {
                option_setters::reject(options_name, "label_smoothing", "in [0, 1]", eps);
            }
            m_smoothing = eps;
            return *this;
        }

        /// The z-loss coefficient z >= 0 (default 0; PaLM's 1e-4): each kept row adds z (log Z)^2.
        constexpr double z_loss() const noexcept
        {
            return m_z_loss;
        }

        /// Sets the z-loss coefficient; throws std::invalid_argument for a negative or non-finite value.
        XLOSS_INLINE constexpr cross_entropy_options& z_loss(double z)
        {
            if (!option_setters::is_nonnegative_finite(z))
            {
                option_setters::reject(options_name, "z_loss", "positive or 0", z);
            }
            m_z_loss = z;
            return *this;
        }

        /// The logit soft-cap c (default 0: none): the logits are c tanh(x / c) (Gemma 2's 30).
        constexpr double softcap() const noexcept
        {
            return m_softcap;
        }

        /// Sets the soft-cap; throws std::invalid_argument for a negative or non-finite value.
        XLOSS_INLINE constexpr cross_entropy_options& softcap(double c)
        {
            if (!option_setters::is_nonnegative_finite(c))
            {
                option_setters::reject(options_name, "softcap", "positive, or 0 for none", c);
            }
            m_softcap = c;
            return *this;
        }

        /// What `mean` gives when the divisor is 0 (default empty_mean::nan, PyTorch's).
        constexpr xloss::empty_mean empty_mean() const noexcept
        {
            return m_empty;
        }

        /// Sets what `mean` gives when the divisor is 0; throws for a value that is not an enumerator.
        XLOSS_INLINE constexpr cross_entropy_options& empty_mean(xloss::empty_mean value)
        {
            if (value != xloss::empty_mean::nan && value != xloss::empty_mean::zero)
            {
                option_setters::reject(options_name, "empty_mean", "nan or zero",
                                       static_cast<double>(static_cast<int>(value)));
            }
            m_empty = value;
            return *this;
        }

        /// Whether per-class weights are set.
        bool has_weight() const noexcept
        {
            return m_weight != nullptr;
        }

        /// The per-class weights (empty when none are set).
        const std::vector<double>& weight() const noexcept
        {
            static const std::vector<double> none;
            return m_weight ? m_weight->as_double : none;
        }

        /// Sets per-class weights (PyTorch's `weight`: one per class, finite); an empty vector
        /// removes them. Throws std::invalid_argument for a weight that is not finite.
        cross_entropy_options& weight(const std::vector<double>& w)
        {
            if (w.empty())
            {
                m_weight.reset();
                return *this;
            }
            auto weights = std::make_shared<detail::class_weights>();
            for (double v : w)
            {
                if (!option_setters::is_nonnegative_finite(v) && !option_setters::is_nonnegative_finite(-v))
                {
                    option_setters::reject(options_name, "weight", "finite", v);
                }
                weights->as_double.push_back(v);
                weights->as_float.push_back(static_cast<float>(v));
                weights->total += v;
            }
            m_weight = std::move(weights);
            return *this;
        }

        /// Sets per-class weights from a 1-D xtensor expression.
        template <class E>
        cross_entropy_options& weight(const xt::xexpression<E>& w)
        {
            const auto& e = w.derived_cast();
            return weight(std::vector<double>(e.begin(), e.end()));
        }

        /// The weights as the engine reads them (null without weights).
        const detail::class_weights* class_weights() const noexcept
        {
            return m_weight.get();
        }

    private:

        std::shared_ptr<const detail::class_weights> m_weight;
        std::ptrdiff_t m_axis = 1;
        long long m_ignore_index = -100;
        double m_smoothing = 0.;
        double m_z_loss = 0.;
        double m_softcap = 0.;
        xloss::empty_mean m_empty = xloss::empty_mean::nan;
        bool m_axis_given = false;
    };
}

#endif
