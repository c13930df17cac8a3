#pragma once
/// @file layer_norm.hpp
/// Layer normalisation over the features of each sample (Ba et al. 2016), with learnable gain
/// and bias (layer contract: nn/layer.hpp).
#include <cmath>
#include <string>

#include "persist/core/error.hpp"
#include "persist/nn/layer.hpp"

namespace persist::nn {

/// Per column x (one sample): y = g * (x - mu) / sqrt(var + eps) + beta, mu and var the mean
/// and biased variance over the D features (as torch.nn.LayerNorm). Parameters in the flat
/// buffer: g (D), then beta (D); init sets g = 1, beta = 0 whatever the scheme.
/// @tparam T float or double
template <class T>
class LayerNorm {
public:
    using scalar_type = T;
    /// Per-sample statistics; x_hat is recomputed from the input in backward instead of stored.
    struct Cache {
        RowVec<T> mean, rstd;
    };

    explicit LayerNorm(Index dim, double eps = 1e-5) : dim_(dim), eps_(eps) {
        if (dim <= 0)
            throw ConfigError("LayerNorm: dimension must be positive, got " + std::to_string(dim));
    }

    Index in_dim() const { return dim_; }
    Index out_dim() const { return dim_; }
    Index param_count() const { return 2 * dim_; }
    double eps() const { return eps_; }
    void bind(T* params, T* grads) {
        p_ = params;
        g_ = grads;
    }
    void init(Rng&, const Init&) {
        gain().setOnes();
        bias().setZero();
    }

    VecMap<T> gain() { return {p_, dim_}; }
    VecMap<T> bias() { return {p_ + dim_, dim_}; }
    Eigen::Map<const Vec<T>> gain() const { return {p_, dim_}; }
    Eigen::Map<const Vec<T>> bias() const { return {p_ + dim_, dim_}; }
    VecMap<T> gain_grad() { return {g_, dim_}; }
    VecMap<T> bias_grad() { return {g_ + dim_, dim_}; }

    std::string name() const { return "LayerNorm(" + std::to_string(dim_) + ")"; }

    void forward(MatCRef<T> in, Mat<T>& out, Cache& c) const {
        detail::check_shape([this] { return name(); }, "forward input", dim_, in.cols(),
                            in.rows(), in.cols());
        const Index B = in.cols();
        ensure_shape(out, dim_, B);
        ensure_shape(c.mean, 1, B);
        ensure_shape(c.rstd, 1, B);
        const auto gm = gain();
        const auto bm = bias();
        const auto g = gm.array();
        const auto b = bm.array();
        const T inv_d = T(1) / static_cast<T>(dim_);
        for (Index j = 0; j < B; ++j) {
            const auto x = in.col(j).array();
            const T mu = x.sum() * inv_d;
            const T var = (x - mu).square().sum() * inv_d;  // two-pass: no cancellation
            const T rstd = T(1) / std::sqrt(var + static_cast<T>(eps_));
            c.mean[j] = mu;
            c.rstd[j] = rstd;
            out.col(j).array() = (x - mu) * (rstd * g) + b;
        }
    }

    /// dx = rstd * (dxh - mean(dxh) - x_hat * mean(dxh * x_hat)) with dxh = dy * g.
    /// grad_in must not alias grad_out.
    void backward(MatCRef<T> in, MatCRef<T>, MatCRef<T> grad_out, Mat<T>* grad_in, Cache& c,
                  bool param_grads) {
        detail::check_shape([this] { return name(); }, "backward grad_out", dim_, in.cols(),
                            grad_out.rows(), grad_out.cols());
        const Index B = in.cols();
        const T inv_d = T(1) / static_cast<T>(dim_);
        if (grad_in) ensure_shape(*grad_in, dim_, B);
        auto ggm = gain_grad();
        auto gbm = bias_grad();
        auto gg = ggm.array();
        auto gb = gbm.array();
        const auto gm = gain();
        const auto g = gm.array();
        for (Index j = 0; j < B; ++j) {
            const auto x = in.col(j).array();
            const auto dy = grad_out.col(j).array();
            const T mu = c.mean[j], rstd = c.rstd[j];
            if (param_grads) {
                gg += dy * (x - mu) * rstd;
                gb += dy;
            }
            if (grad_in) {
                const T m1 = (dy * g).sum() * inv_d;
                const T m2 = (dy * g * (x - mu)).sum() * rstd * inv_d;  // mean(dxh * x_hat)
                grad_in->col(j).array() = rstd * (dy * g - m1 - (x - mu) * (rstd * m2));
            }
        }
    }

private:
    Index dim_;
    double eps_;
    T* p_ = nullptr;
    T* g_ = nullptr;
};

}  // namespace persist::nn
