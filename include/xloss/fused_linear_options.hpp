/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_FUSED_LINEAR_OPTIONS_HPP
#define XLOSS_FUSED_LINEAR_OPTIONS_HPP

/// @file
/// How a fused linear loss runs: its chunks of rows and whether it writes or adds its gradients.

#include <cstddef>

#include "detail/core/setter_check.hpp"

namespace xloss
{
    /// @brief Whether a fused linear loss's gradients replace the outputs' values or are added to them.
    enum class gradient_write
    {
        overwrite, ///< the outputs hold this call's gradients
        accumulate ///< the gradients are added (`+=`): gradient accumulation, tied embeddings
    };

    /**
     * @brief Options of the fused linear losses beside the loss's own: the rows computed at once
     *        (a chunk), from a workspace budget or given, and how the gradients are written.
     *
     * A chunk of c rows holds two (c x classes) arrays (the logits and their gradient) and two
     * (c x hidden) ones; chunk_rows(0), the default, takes the largest c whose arrays fit in
     * workspace_bytes() (default 256 MiB; at least one row).
     */
    class fused_linear_options
    {
    public:

        /// The options' name in error messages.
        static constexpr const char* options_name = "fused_linear_options";

        /// The rows per chunk (0: from workspace_bytes()).
        constexpr std::size_t chunk_rows() const noexcept
        {
            return m_chunk_rows;
        }

        /// Sets the rows per chunk; 0 takes them from workspace_bytes().
        constexpr fused_linear_options& chunk_rows(std::size_t rows) noexcept
        {
            m_chunk_rows = rows;
            return *this;
        }

        /// The workspace budget in bytes that sets the rows per chunk when chunk_rows() is 0.
        constexpr std::size_t workspace_bytes() const noexcept
        {
            return m_workspace_bytes;
        }

        /// Sets the workspace budget; throws std::invalid_argument for 0.
        XLOSS_INLINE constexpr fused_linear_options& workspace_bytes(std::size_t bytes)
        {
            if (bytes == 0)
            {
                option_setters::reject(options_name, "workspace_bytes", "positive", 0.);
            }
            m_workspace_bytes = bytes;
            return *this;
        }

        /// Whether the gradients overwrite the outputs (default) or are added to them.
        constexpr xloss::gradient_write gradient_write() const noexcept
        {
            return m_write;
        }

        /// Sets how the gradients are written; throws for a value that is not an enumerator.
        XLOSS_INLINE constexpr fused_linear_options& gradient_write(xloss::gradient_write write)
        {
            if (write != xloss::gradient_write::overwrite && write != xloss::gradient_write::accumulate)
            {
                option_setters::reject(options_name, "gradient_write", "overwrite or accumulate",
                                       static_cast<double>(static_cast<int>(write)));
            }
            m_write = write;
            return *this;
        }

    private:

        std::size_t m_chunk_rows = 0;
        std::size_t m_workspace_bytes = std::size_t(256) << 20;
        xloss::gradient_write m_write = xloss::gradient_write::overwrite;
    };
}

#endif
