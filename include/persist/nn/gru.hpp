#pragma once
/// @file gru.hpp
/// Gated recurrent unit over sequences of batches, with a hand-written backward pass through time
/// (Cho et al. 2014, in PyTorch's torch.nn.GRU convention, gates ordered r, z, n):
///
///     r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
///     z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
///     n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
///     h_t = (1 - z_t) * n_t + z_t * h_{t-1}
///
/// A sequence of T steps of a batch of B is one matrix with T * B columns, time-major: columns
/// [t B, (t + 1) B) are step t. Flat parameter layout: W_i (3H x I, column-major; rows r, z, n),
/// W_h (3H x H), b_i (3H), b_h (3H). Initialisation as torch.nn.GRU: every parameter
/// ~ U(-1/sqrt(H), 1/sqrt(H)). The workspace keeps what backward needs; a fixed (T, B) never
/// allocates after the first call.
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/layer.hpp"

namespace persist::nn {

template <class T>
class GRU {
public:
    using scalar_type = T;

    struct Workspace {
        Index steps = 0, batch = 0;
        Mat<T> x;    // I x TB: the input sequence (dW_i needs it)
        Mat<T> gi;   // 3H x TB: W_i x + b_i, all steps in one product
        Mat<T> h;    // H x (T+1)B: h_0 then h_1 .. h_T
        Mat<T> r, z, n, hn;  // H x TB: gates and W_hn h_{t-1} + b_hn
        Mat<T> gh;   // 3H x B: W_h h_{t-1} + b_h of the current step
        Mat<T> dgi;  // 3H x TB: dL / d(W_i x + b_i)
        Mat<T> dgh;  // 3H x B
        Mat<T> dh, dh_prev;  // H x B
    };

    GRU(Index input_dim, Index hidden_dim) : I_(input_dim), H_(hidden_dim) {
        if (input_dim < 1 || hidden_dim < 1)
            throw ConfigError("GRU: input_dim and hidden_dim must be >= 1, got " + std::to_string(input_dim) + " and " +
                              std::to_string(hidden_dim));
        params_.setZero(param_count());
        grads_.setZero(param_count());
    }
    GRU(const GRU&) = default;
    GRU(GRU&&) noexcept = default;
    GRU& operator=(const GRU&) = default;
    GRU& operator=(GRU&&) noexcept = default;

    Index input_dim() const noexcept { return I_; }
    Index hidden_dim() const noexcept { return H_; }
    Index param_count() const noexcept { return 3 * H_ * I_ + 3 * H_ * H_ + 6 * H_; }
    Vec<T>& params() noexcept { return params_; }
    const Vec<T>& params() const noexcept { return params_; }
    Vec<T>& grads() noexcept { return grads_; }
    const Vec<T>& grads() const noexcept { return grads_; }
    void zero_grad() { grads_.setZero(); }

    /// Views into the flat parameters (and gradients).
    Eigen::Map<const Mat<T>> W_i() const { return {params_.data(), 3 * H_, I_}; }
    Eigen::Map<const Mat<T>> W_h() const { return {params_.data() + 3 * H_ * I_, 3 * H_, H_}; }
    Eigen::Map<const Vec<T>> b_i() const { return {params_.data() + 3 * H_ * (I_ + H_), 3 * H_}; }
    Eigen::Map<const Vec<T>> b_h() const { return {params_.data() + 3 * H_ * (I_ + H_) + 3 * H_, 3 * H_}; }

    /// torch.nn.GRU's initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every parameter.
    void init(Rng& rng) {
        const T k = T(1) / std::sqrt(static_cast<T>(H_));
        for (Index i = 0; i < params_.size(); ++i) params_[i] = rng.uniform<T>(-k, k);
    }

    Workspace make_workspace() const { return {}; }

    /// h_1 .. h_T (H x TB, time-major, a view into the workspace) of the sequence `x` (I x TB)
    /// from h_0 (H x B). `steps` = T >= 1; x.cols() must be a multiple of it.
    auto forward(MatCRef<T> x, MatCRef<T> h0, Index steps, Workspace& ws) const {
        if (steps < 1) throw ConfigError("GRU::forward: steps must be >= 1, got " + std::to_string(steps));
        if (x.rows() != I_ || x.cols() % steps != 0)
            persist::detail::throw_shape("GRU::forward: x (input_dim x steps * batch)", I_, steps * (x.cols() / steps),
                                         x.rows(), x.cols());
        const Index B = x.cols() / steps;
        if (h0.rows() != H_ || h0.cols() != B) persist::detail::throw_shape("GRU::forward: h0", H_, B, h0.rows(), h0.cols());
        resize(ws, steps, B);
        ws.x = x;
        ws.gi.noalias() = W_i() * ws.x;
        ws.gi.colwise() += b_i();
        ws.h.leftCols(B) = h0;
        const auto Wh = W_h();
        const auto bh = b_h();
        for (Index t = 0; t < steps; ++t) {
            const Index c = t * B;
            ws.gh.noalias() = Wh * ws.h.middleCols(c, B);
            ws.gh.colwise() += bh;
            for (Index j = 0; j < B; ++j)
                for (Index k = 0; k < H_; ++k) {
                    const T r = sigmoid(ws.gi(k, c + j) + ws.gh(k, j));
                    const T z = sigmoid(ws.gi(H_ + k, c + j) + ws.gh(H_ + k, j));
                    const T hn = ws.gh(2 * H_ + k, j);
                    const T n = std::tanh(ws.gi(2 * H_ + k, c + j) + r * hn);
                    ws.r(k, c + j) = r, ws.z(k, c + j) = z, ws.n(k, c + j) = n, ws.hn(k, c + j) = hn;
                    ws.h(k, c + B + j) = (T(1) - z) * n + z * ws.h(k, c + j);
                }
        }
        return std::as_const(ws.h).rightCols(steps * B);
    }

    /// Backward through time from dL/dh_t of every step (`grad_h`, H x TB). Parameter gradients are
    /// accumulated into grads() (GradMode::overwrite: written); `grad_x` (I x TB) and `grad_h0`
    /// (H x B) are written when non-null.
    void backward(Workspace& ws, MatCRef<T> grad_h, Mat<T>* grad_x = nullptr, Mat<T>* grad_h0 = nullptr,
                  GradMode mode = GradMode::accumulate) {
        const Index S = ws.steps, B = ws.batch;
        if (S == 0) throw Error("GRU::backward: no forward pass in this workspace");
        if (grad_h.rows() != H_ || grad_h.cols() != S * B)
            persist::detail::throw_shape("GRU::backward: grad_h", H_, S * B, grad_h.rows(), grad_h.cols());
        if (mode == GradMode::overwrite) grads_.setZero();
        const Index off_wh = 3 * H_ * I_, off_bi = off_wh + 3 * H_ * H_, off_bh = off_bi + 3 * H_;
        Eigen::Map<Mat<T>> dWi(grads_.data(), 3 * H_, I_), dWh(grads_.data() + off_wh, 3 * H_, H_);
        Eigen::Map<Vec<T>> dbi(grads_.data() + off_bi, 3 * H_), dbh(grads_.data() + off_bh, 3 * H_);
        const auto Wh = W_h();
        ws.dh.setZero();
        for (Index t = S; t-- > 0;) {
            const Index c = t * B;
            ws.dh += grad_h.middleCols(c, B);
            for (Index j = 0; j < B; ++j)
                for (Index k = 0; k < H_; ++k) {
                    const T dh = ws.dh(k, j), r = ws.r(k, c + j), z = ws.z(k, c + j), n = ws.n(k, c + j);
                    const T hp = ws.h(k, c + j);
                    const T dan = dh * (T(1) - z) * (T(1) - n * n);  // d(pre-activation of n)
                    const T daz = dh * (hp - n) * z * (T(1) - z);
                    const T dar = dan * ws.hn(k, c + j) * r * (T(1) - r);
                    ws.dgi(k, c + j) = dar, ws.dgi(H_ + k, c + j) = daz, ws.dgi(2 * H_ + k, c + j) = dan;
                    ws.dgh(k, j) = dar, ws.dgh(H_ + k, j) = daz, ws.dgh(2 * H_ + k, j) = dan * r;
                    ws.dh_prev(k, j) = dh * z;
                }
            dWh.noalias() += ws.dgh * ws.h.middleCols(c, B).transpose();
            dbh += ws.dgh.rowwise().sum();
            ws.dh_prev.noalias() += Wh.transpose() * ws.dgh;
            ws.dh.swap(ws.dh_prev);
        }
        dWi.noalias() += ws.dgi * ws.x.transpose();
        dbi += ws.dgi.rowwise().sum();
        if (grad_x) {
            grad_x->resize(I_, S * B);
            grad_x->noalias() = W_i().transpose() * ws.dgi;
        }
        if (grad_h0) *grad_h0 = ws.dh;
    }

    /// State protocol: "params" [param_count].
    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("params", params_.data(), {static_cast<std::int64_t>(params_.size())}));
    }

private:
    static T sigmoid(T a) { return T(1) / (T(1) + std::exp(-a)); }

    void resize(Workspace& ws, Index S, Index B) const {
        ws.steps = S, ws.batch = B;
        const auto fit = [](Mat<T>& m, Index r, Index c) {
            if (m.rows() != r || m.cols() != c) m.resize(r, c);
        };
        fit(ws.x, I_, S * B), fit(ws.gi, 3 * H_, S * B), fit(ws.h, H_, (S + 1) * B);
        fit(ws.r, H_, S * B), fit(ws.z, H_, S * B), fit(ws.n, H_, S * B), fit(ws.hn, H_, S * B);
        fit(ws.gh, 3 * H_, B), fit(ws.dgi, 3 * H_, S * B), fit(ws.dgh, 3 * H_, B);
        fit(ws.dh, H_, B), fit(ws.dh_prev, H_, B);
    }

    Index I_, H_;
    Vec<T> params_, grads_;
};

}  // namespace persist::nn
