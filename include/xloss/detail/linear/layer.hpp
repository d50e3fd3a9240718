/***************************************************************************
 * Copyright (c) xloss contributors                                         *
 * Distributed under the terms of the BSD 3-Clause License.                 *
 ****************************************************************************/

#ifndef XLOSS_DETAIL_LINEAR_LAYER_HPP
#define XLOSS_DETAIL_LINEAR_LAYER_HPP

// A linear layer's arguments as a fused linear call reads them: hidden states (rows..., hidden), a
// weight (classes, hidden) and an optional bias (classes), checked and as contiguous data.

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

#include "../../compat.hpp"
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)

#include "../core/error.hpp"
#include "../core/expression.hpp"
#include "../core/overlap.hpp"
#include "chunks.hpp"

namespace xloss
{
    inline namespace XLOSS_ARCH_NAMESPACE
    {
        namespace detail
        {
            /// The shapes of a fused linear call: the hidden states (rows..., hidden), the weight
            /// (classes, hidden), the bias (classes) when there is one; throws naming a mismatch.
            struct linear_shapes
            {
                shape_type hidden;
                shape_type row_shape; ///< the hidden states' shape without the last axis
                std::size_t rows = 1;
                std::size_t hidden_size = 0;
                std::size_t classes = 0;

                template <class H, class W>
                linear_shapes(const H& h, const W& w, const char* func, const char* name = "hidden states")
                    : hidden(to_shape(h.shape()))
                {
                    const shape_type ws = to_shape(w.shape());
                    if (hidden.empty() || ws.size() != 2 || hidden.back() != ws[1] || ws[0] == 0 || ws[1] == 0)
                    {
                        detail::raise(std::invalid_argument(
                            std::string("xloss::") + func + ": " + name + " of shape " + shape_to_string(hidden)
                            + " and a weight of shape " + shape_to_string(ws)
                            + ": the weight must be (classes, hidden), both above 0, with the last axis of the "
                              "same hidden size"));
                    }
                    hidden_size = ws[1];
                    classes = ws[0];
                    row_shape.assign(hidden.begin(), hidden.end() - 1);
                    rows = size_of(row_shape);
                }

                /// The shape of the layer's logits: the rows' and the classes.
                shape_type logits_shape() const
                {
                    shape_type s = row_shape;
                    s.push_back(classes);
                    return s;
                }

                template <class B>
                void check_bias(const B& b, const char* func) const
                {
                    const shape_type bs = to_shape(b.shape());
                    if (bs.size() != 1 || bs[0] != classes)
                    {
                        detail::raise(std::invalid_argument(std::string("xloss::") + func + ": a bias of shape "
                                                            + shape_to_string(bs) + " for a weight of "
                                                            + std::to_string(classes) + " classes"));
                    }
                }
            };

            /// Hidden states and an output layer (xloss::linear_head), checked, as contiguous data of V.
            template <class V>
            class linear_layer
            {
            public:

                template <class H, class Head>
                linear_layer(const H& h, const Head& head, const char* func, const char* name)
                    : m_shapes(h, head.weight, func, name)
                    , m_hidden(h)
                    , m_weight(head.weight)
                    , m_bias(bias_of(head, func))
                {
                }

                const linear_shapes& shapes() const noexcept
                {
                    return m_shapes;
                }

                bool has_bias() const noexcept
                {
                    return m_bias.data != nullptr;
                }

                /// The layer over its first `classes` classes (all of them by default).
                linear_input<V> input(std::size_t classes = 0) const noexcept
                {
                    return {m_hidden.data, m_shapes.rows, m_shapes.hidden_size,
                            m_weight.data, m_bias.data,   classes ? classes : m_shapes.classes};
                }

                /// Whether n values from p share memory with the hidden states, the weight or the bias.
                bool overlaps(const V* p, std::size_t n) const noexcept
                {
                    const memory_span span = memory_span::of(p, n);
                    const std::size_t h = m_shapes.hidden_size, v = m_shapes.classes;
                    return span.meets(memory_span::of(m_hidden.data, m_shapes.rows * h))
                           || span.meets(memory_span::of(m_weight.data, v * h))
                           || span.meets(memory_span::of(m_bias.data, has_bias() ? v : 0));
                }

            private:

                /// The head's bias, checked, or null.
                template <class Head>
                const auto* bias_of(const Head& head, const char* func) const
                {
                    if constexpr (Head::has_bias)
                    {
                        m_shapes.check_bias(head.bias, func);
                        return &head.bias;
                    }
                    else
                    {
                        (void)func;
                        return static_cast<const xt::xarray<V>*>(nullptr);
                    }
                }

                /// An optional input as contiguous data (null when absent).
                struct optional_array
                {
                    std::optional<contiguous_array<V>> values;
                    const V* data = nullptr;

                    template <class E>
                    explicit optional_array(const E* e)
                    {
                        if (e)
                        {
                            values.emplace(*e);
                            data = values->data;
                        }
                    }
                };

                linear_shapes m_shapes;
                contiguous_array<V> m_hidden;
                contiguous_array<V> m_weight;
                optional_array m_bias;
            };
        }
    }
}

#endif
