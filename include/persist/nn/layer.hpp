#pragma once
/// @file layer.hpp
/// The layer contract (concept persist::Layer in core/concepts.hpp) and Identity, the null
/// layer to copy when writing your own.
///
/// Batches are column-major Mat<T>, one COLUMN PER SAMPLE (features x batch). Every layer has
/// @code
///   using scalar_type = T;
///   struct Cache { ... };        // per-layer scratch, kept in the network's Workspace (may be empty)
///   Index in_dim() const; Index out_dim() const; Index param_count() const;
///   void bind(T* params, T* grads);             // views into the network's flat buffers
///   void init(Rng& rng, const Init& scheme);    // no-op for parameter-free layers
///   void forward(MatCRef<T> in, Mat<T>& out, Cache& c) const;
///   void backward(MatCRef<T> in, MatCRef<T> out, MatCRef<T> grad_out, Mat<T>* grad_in,
///                 Cache& c, bool param_grads);
/// @endcode
/// - forward resizes `out` with ensure_shape only (no allocation at a fixed batch size) and
///   throws ShapeError when `in` has the wrong number of rows.
/// - backward is called with the same `in`/`out`/`c` as the matching forward. It ACCUMULATES
///   dL/dparams into the bound gradient views when `param_grads` is true (and leaves them
///   untouched otherwise), and OVERWRITES *grad_in with dL/din when grad_in is non-null.
/// - Layers never own parameters: the network allocates one flat vector, gives each layer
///   `param_count()` entries via bind(), and may rebind them (copies, moves) at any time.
#include "persist/core/random.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/detail.hpp"
#include "persist/nn/init.hpp"

namespace persist::nn {

/// How a backward pass delivers parameter gradients: added to the gradient buffer (the layer
/// contract's default, so several backward passes sum), or written over it (one backward pass
/// per step without a separate zero_grad(); layers that support it take it as an optional last
/// argument of backward, networks as MLP::backward's `mode`).
enum class GradMode : unsigned char { accumulate = 0, overwrite = 1 };

/// y = x. The minimal model of the layer contract: start from here for a layer of your own.
/// @tparam T float or double
template <class T>
class Identity {
public:
    using scalar_type = T;
    struct Cache {};  // a layer needing per-call scratch (e.g. LayerNorm's statistics) puts it here

    /// dim = 0: take the width of the previous layer when placed in a Sequential.
    explicit Identity(Index dim = 0) : dim_(dim) {}
    Index in_dim() const { return dim_; }
    Index out_dim() const { return dim_; }
    Index param_count() const { return 0; }
    void set_dim(Index d) { dim_ = d; }
    void bind(T*, T*) {}
    void init(Rng&, const Init&) {}

    void forward(MatCRef<T> in, Mat<T>& out, Cache&) const {
        check(in);
        ensure_shape(out, in.rows(), in.cols());
        out = in;
    }
    void backward(MatCRef<T>, MatCRef<T>, MatCRef<T> grad_out, Mat<T>* grad_in, Cache&, bool) {
        if (!grad_in) return;
        ensure_shape(*grad_in, grad_out.rows(), grad_out.cols());
        *grad_in = grad_out;
    }

private:
    void check(MatCRef<T> in) const {
        if (dim_ != 0)
            detail::check_shape([] { return "Identity"; }, "forward input", dim_, in.cols(),
                                in.rows(), in.cols());
    }
    Index dim_;
};

}  // namespace persist::nn
