/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_LOSS_OPTIONS_HPP
#define XLOSS_LOSS_OPTIONS_HPP

/// @file
/// The options every loss has: its reduction, the divisor of the averaging reductions, threads.

#include <string_view>
#include <type_traits>

#include "detail/core/setter_check.hpp"
#include "reduction.hpp"

namespace xloss
{
    namespace detail
    {
        /**
         * The options every loss's options class has; `D` is that class, so that setters chain
         * (`xloss::kl_div_options().reduction(xloss::reduction::sum).num_threads(2)`). What each
         * reduction means is the loss's own (see its options class).
         */
        template <class D>
        class loss_options
        {
        public:

            /// The loss's reduction.
            constexpr xloss::reduction reduction() const noexcept
            {
                return m_reduction;
            }

            /// Sets the reduction; throws std::invalid_argument for a value that is not an enumerator.
            XLOSS_INLINE constexpr D& reduction(xloss::reduction r)
            {
                if (!is_valid(r))
                {
                    option_setters::reject(D::options_name, "reduction", "one of none, mean, sum, batchmean",
                                           static_cast<double>(static_cast<int>(r)));
                }
                m_reduction = r;
                return self();
            }

            /// Sets the reduction by its PyTorch name ("none", "mean", "sum", "batchmean"); throws
            /// std::invalid_argument for any other, naming the setter. (A template, so that
            /// `reduction({})` is the enumerator's value-initialised `none`, not ambiguous.)
            template <class S, class = std::enable_if_t<std::is_convertible<const S&, std::string_view>::value>>
            XLOSS_INLINE D& reduction(const S& name)
            {
                const std::string_view n = name;
                for (xloss::reduction r : {xloss::reduction::none, xloss::reduction::mean, xloss::reduction::sum,
                                           xloss::reduction::batchmean})
                {
                    if (n == to_string(r))
                    {
                        return reduction(r);
                    }
                }
                option_setters::reject_name(D::options_name, "reduction",
                                            "one of 'none', 'mean', 'sum' and 'batchmean'", n);
            }

            /// The divisor of `mean` and `batchmean`, when set; 0 (the default) takes it from the
            /// shapes (or, for the divergences with labels, the kept rows).
            constexpr double divisor() const noexcept
            {
                return m_divisor;
            }

            /**
             * Sets the divisor of `mean` and `batchmean`: for data-parallel training, where each
             * process holds a shard of the batch, the global number of elements, samples or tokens.
             * 0 takes it from the call's own arguments.
             */
            XLOSS_INLINE constexpr D& divisor(double value)
            {
                if (!option_setters::is_nonnegative_finite(value))
                {
                    option_setters::reject(D::options_name, "divisor", "positive or 0", value);
                }
                m_divisor = value;
                return self();
            }

            /// Threads (default 1); used when compiled with OpenMP.
            constexpr int num_threads() const noexcept
            {
                return m_num_threads;
            }

            /**
             * Sets the number of OpenMP threads: 1 (the default) runs on the calling thread, 0 takes
             * OpenMP's default. Results are bit-identical for any value. Without OpenMP (compile with
             * -fopenmp, or link OpenMP::OpenMP_CXX) a value above 1 is an error.
             */
            XLOSS_INLINE constexpr D& num_threads(int value)
            {
                if (value < 0)
                {
                    option_setters::reject(D::options_name, "num_threads", "0 (OpenMP's default) or positive", value);
                }
                m_num_threads = value;
                return self();
            }

        protected:

            constexpr explicit loss_options(xloss::reduction r = xloss::reduction::mean) noexcept
                : m_reduction(r)
            {
            }

        private:

            constexpr D& self() noexcept
            {
                return static_cast<D&>(*this);
            }

            xloss::reduction m_reduction;
            double m_divisor = 0.;
            int m_num_threads = 1;
        };
    }
}

#endif
