#pragma once
/// @file sequential.hpp
/// A compile-time chain of layers over one flat parameter buffer (model of persist::Network).
#include <array>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "persist/core/error.hpp"
#include "persist/core/state.hpp"
#include "persist/nn/layer.hpp"

namespace persist::nn {

/// y = L_{n-1}(... L_1(L_0(x))). Owns `params()` and `grads()` (layer i's entries follow layer
/// i-1's) and binds every layer to its slice; copies and moves rebind, so
/// `target.params() = online.params()` is a full weight copy. Pointwise layers built with
/// dim 0 take the width of the layer before them.
/// @tparam Layers layer types (nn/layer.hpp), all with the same scalar_type
template <class... Layers>
class Sequential {
    static_assert(sizeof...(Layers) > 0, "Sequential needs at least one layer");
    using First = std::tuple_element_t<0, std::tuple<Layers...>>;

public:
    using scalar_type = typename First::scalar_type;
    using T = scalar_type;
    static_assert((std::is_same_v<typename Layers::scalar_type, T> && ...),
                  "Sequential: every layer must have the same scalar_type");
    static constexpr std::size_t depth = sizeof...(Layers);

    /// Everything one forward/backward pair needs at one batch size. Reuse it: buffers are
    /// resized only when the batch size changes.
    struct Workspace {
        Mat<T> input;                                    // copy of x (backward needs it)
        std::array<Mat<T>, depth> out;                   // out[i]: output of layer i
        std::array<Mat<T>, depth> grad;                  // grad[i]: dL/d(input of layer i), i >= 1
        std::tuple<typename Layers::Cache...> cache;
    };

    explicit Sequential(Layers... layers) : layers_(std::move(layers)...) {
        Index prev = std::get<0>(layers_).in_dim();
        if (prev <= 0) throw ConfigError("Sequential: the first layer must have a fixed input width");
        Index total = 0;
        for_each([&](auto& l, std::size_t i) {
            if constexpr (requires { l.set_dim(Index{}); })
                if (l.in_dim() == 0) l.set_dim(prev);
            if (l.in_dim() != prev)
                throw ShapeError("Sequential: layer " + std::to_string(i) + " expects input width " +
                                 std::to_string(l.in_dim()) + ", previous layer outputs " +
                                 std::to_string(prev));
            prev = l.out_dim();
            total += l.param_count();
        });
        params_.setZero(total);
        grads_.setZero(total);
        bind_all();
    }
    Sequential(const Sequential& o) : layers_(o.layers_), params_(o.params_), grads_(o.grads_) {
        bind_all();
    }
    Sequential(Sequential&& o) noexcept
        : layers_(std::move(o.layers_)), params_(std::move(o.params_)), grads_(std::move(o.grads_)) {
        bind_all();
    }
    Sequential& operator=(const Sequential& o) {
        if (this != &o) {
            layers_ = o.layers_;
            params_ = o.params_;
            grads_ = o.grads_;
            bind_all();
        }
        return *this;
    }
    Sequential& operator=(Sequential&& o) noexcept {
        layers_ = std::move(o.layers_);
        params_ = std::move(o.params_);
        grads_ = std::move(o.grads_);
        bind_all();
        return *this;
    }

    Index in_dim() const { return std::get<0>(layers_).in_dim(); }
    Index out_dim() const { return std::get<depth - 1>(layers_).out_dim(); }
    Index param_count() const { return params_.size(); }
    /// Flat parameters / gradients. Assign or update in place; never resize.
    Vec<T>& params() { return params_; }
    Vec<T>& grads() { return grads_; }
    const Vec<T>& params() const { return params_; }
    const Vec<T>& grads() const { return grads_; }
    void zero_grad() { grads_.setZero(); }

    template <std::size_t I>
    auto& layer() { return std::get<I>(layers_); }
    template <std::size_t I>
    const auto& layer() const { return std::get<I>(layers_); }

    Workspace make_workspace() const { return {}; }

    /// Initialise every layer in order from `rng` (reproducible for a given seed).
    void init(Rng& rng, const Init& scheme = {}) {
        for_each([&](auto& l, std::size_t) { l.init(rng, scheme); });
    }

    /// Forward pass of a batch x (in_dim x B); the result lives in `ws` until its next use.
    const Mat<T>& forward(MatCRef<T> x, Workspace& ws) const {
        check_bound();
        detail::check_shape([] { return "Sequential"; }, "forward input", in_dim(), x.cols(),
                            x.rows(), x.cols());
        ensure_shape(ws.input, x.rows(), x.cols());
        ws.input = x;
        forward_impl(ws, std::index_sequence_for<Layers...>{});
        return ws.out[depth - 1];
    }

    /// Backward pass for the last forward on `ws`: accumulates dL/dparams into grads() when
    /// `param_grads`, writes dL/dx into *grad_in when non-null.
    void backward(Workspace& ws, MatCRef<T> grad_out, Mat<T>* grad_in = nullptr,
                  bool param_grads = true) {
        check_bound();
        detail::check_shape([] { return "Sequential"; }, "backward grad_out", out_dim(),
                            ws.input.cols(), grad_out.rows(), grad_out.cols());
        if (ws.out[depth - 1].cols() != ws.input.cols())
            throw ShapeError("Sequential: backward called on a workspace without a forward pass");
        // Layers below the first one that has parameters only matter for grad_in.
        std::size_t stop = depth;
        if (grad_in) stop = 0;
        else if (param_grads) stop = first_param_layer();
        backward_impl<depth - 1>(ws, grad_out, grad_in, param_grads, stop);
    }

    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("params", params_.data(), {static_cast<std::int64_t>(params_.size())}));
    }

private:
    void check_bound() const {
        if (params_.data() != pbound_ || grads_.data() != gbound_) [[unlikely]]
            throw ShapeError(std::string("Sequential") + ": params() or grads() was resized or swapped; the layers "
                             "view them, so assign same-size vectors only");
    }

    template <class F>
    void for_each(F&& f) {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (f(std::get<I>(layers_), I), ...);
        }(std::index_sequence_for<Layers...>{});
    }

    void bind_all() {
        pbound_ = params_.data();
        gbound_ = grads_.data();
        Index off = 0;
        for_each([&](auto& l, std::size_t) {
            l.bind(params_.data() + off, grads_.data() + off);
            off += l.param_count();
        });
    }

    std::size_t first_param_layer() const {
        std::size_t first = depth;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((first == depth && std::get<I>(layers_).param_count() > 0 ? first = I : first), ...);
        }(std::index_sequence_for<Layers...>{});
        return first;
    }

    template <std::size_t... I>
    void forward_impl(Workspace& ws, std::index_sequence<I...>) const {
        (std::get<I>(layers_).forward(I == 0 ? ws.input : ws.out[I == 0 ? 0 : I - 1], ws.out[I],
                                      std::get<I>(ws.cache)),
         ...);
    }

    template <std::size_t J>
    void backward_impl(Workspace& ws, MatCRef<T> grad_out_user, Mat<T>* grad_in_user,
                       bool param_grads, std::size_t stop) {
        if (J < stop) return;
        const Mat<T>& in = J == 0 ? ws.input : ws.out[J == 0 ? 0 : J - 1];
        Mat<T>* gin = J == 0 ? grad_in_user : (J > stop ? &ws.grad[J] : nullptr);
        if constexpr (J + 1 == depth) {
            std::get<J>(layers_).backward(in, ws.out[J], grad_out_user, gin, std::get<J>(ws.cache),
                                          param_grads);
        } else {
            std::get<J>(layers_).backward(in, ws.out[J], ws.grad[J + 1], gin, std::get<J>(ws.cache),
                                          param_grads);
        }
        if constexpr (J > 0) backward_impl<J - 1>(ws, grad_out_user, grad_in_user, param_grads, stop);
    }

    std::tuple<Layers...> layers_;
    Vec<T> params_, grads_;
    const T* pbound_ = nullptr;  // what the layers were bound to (detects a resized params())
    const T* gbound_ = nullptr;
};

}  // namespace persist::nn
