#pragma once
/// @file state_estimator.hpp
/// GruStateEstimator: a belief over the internal state x when it is not observed (partial
/// observability; the seed's `state_estimator: {type: gru, ...}` and the prototype's
/// components/state_estimator.py). A GRU reads the observations o_1 .. o_t and a linear head
/// reads its state:
///
///     h_t     = GRU(o_t, h_{t-1}),  h_0 = 0 at the start of an episode   (nn/gru.hpp)
///     x_hat_t = W h_t + b
///
/// trained on contiguous sequences of L = sequence_length steps with the true x (available in
/// training: the environment still reports it, only the policy's view hides it), from h = 0 at
/// the start of each sequence, with the first `burn_in` steps unscored so the state can warm up
/// (R2D2's burn-in, Kapturowski et al. 2019):
///
///     loss = 1 / (N (L - burn_in) X) * sum_{sequences} sum_{t >= burn_in} ||x_hat_t - x_t||^2
///
/// one Adam step per update() on the GRU and the head. Online: reset() at an episode's start,
/// then observe(o_t) each step returns x_hat_t, the same function as in training: the GRU runs
/// from h = 0 over the last L observations of the episode (fewer in its first L - 1 steps),
///
///     x_hat_t = W GRU_{h=0}(o_{max(t-L+1, 1)} .. o_t) + b,
///
/// so the estimate never depends on a recurrent state older than anything trained (a GRU
/// carried across a whole episode drifts away from the states seen in L-step training: in the
/// agent test's GridLife run it had about twice the error of this window). No allocation after
/// each window length was seen once.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/gru.hpp"
#include "persist/optim/adam.hpp"
#include "persist/optim/clip.hpp"

namespace persist::models {

struct StateEstimatorOptions {
    Index obs_dim = 0;           ///< o, >= 1
    Index state_dim = 0;         ///< x, >= 1
    Index hidden = 64;           ///< GRU state size (config state_estimator.hidden_size)
    Index sequence_length = 16;  ///< L of the training sequences (state_estimator.sequence_length)
    Index burn_in = 4;           ///< unscored warm-up steps, [0, sequence_length) (state_estimator.burn_in)
    double lr = 1e-3;            ///< Adam learning rate (state_estimator.lr)
    Index batch_size = 32;       ///< sequences per update when an agent trains it (state_estimator.batch_size)
    double max_grad_norm = 0.0;  ///< global-norm clip over GRU and head; 0 = off
    std::uint64_t seed = 0;      ///< initialisation
};

template <class T>
class GruStateEstimator {
public:
    using scalar_type = T;

    explicit GruStateEstimator(const StateEstimatorOptions& o)
        : opt_(validated(o)),
          gru_(opt_.obs_dim, opt_.hidden),
          head_(opt_.state_dim * opt_.hidden + opt_.state_dim),
          head_grad_(head_.size()),
          adam_gru_(gru_.param_count(), optim::AdamOptions<T>{.lr = static_cast<T>(opt_.lr)}),
          adam_head_(head_.size(), optim::AdamOptions<T>{.lr = static_cast<T>(opt_.lr)}) {
        Rng rng(opt_.seed, kInitStream);
        gru_.init(rng);
        const T k = T(1) / std::sqrt(static_cast<T>(opt_.hidden));  // torch.nn.Linear's default
        for (Index i = 0; i < head_.size(); ++i) head_[i] = rng.uniform<T>(-k, k);
        head_grad_.setZero();
        window_.setZero(opt_.obs_dim, opt_.sequence_length);
        seq_.setZero(opt_.obs_dim, opt_.sequence_length);
        zero_h_.setZero(opt_.hidden, 1);
        online_.resize(static_cast<std::size_t>(opt_.sequence_length));
        x_hat_.setZero(opt_.state_dim);
        reset();
    }

    const StateEstimatorOptions& options() const noexcept { return opt_; }
    Index obs_dim() const noexcept { return opt_.obs_dim; }
    Index state_dim() const noexcept { return opt_.state_dim; }
    const nn::GRU<T>& gru() const noexcept { return gru_; }
    nn::GRU<T>& gru() noexcept { return gru_; }
    /// Head parameters: W (state_dim x hidden, column-major) then b.
    Vec<T>& head_params() noexcept { return head_; }
    const Vec<T>& head_params() const noexcept { return head_; }
    const Vec<T>& head_grads() const noexcept { return head_grad_; }

    /// Start of an episode: the window is emptied, x_hat = the head's bias.
    void reset() {
        seen_ = 0;
        x_hat_ = head_b();
    }
    /// One step online: o_t joins the window (the oldest of L leaves), returns x_hat_t (valid
    /// until the next call).
    const Vec<T>& observe(VecCRef<T> o) {
        if (o.size() != opt_.obs_dim) persist::detail::throw_shape("GruStateEstimator::observe: o", opt_.obs_dim, 1, o.size(), 1);
        const Index L = opt_.sequence_length;
        window_.col(seen_ % L) = o;
        ++seen_;
        const Index n = std::min<Index>(seen_, L);
        for (Index t = 0; t < n; ++t) seq_.col(t) = window_.col((seen_ - n + t) % L);  // oldest first
        const auto hs = gru_.forward(seq_.leftCols(n), zero_h_, n, online_[static_cast<std::size_t>(n - 1)]);
        x_hat_.noalias() = head_W() * hs.col(n - 1);
        x_hat_ += head_b();
        return x_hat_;
    }
    /// The persist::StateEstimator protocol: begin_episode(o_0) = reset() + observe(o_0);
    /// step(o_t, a_t, o_{t+1}) = observe(o_{t+1}) (the GRU reads observations only).
    const Vec<T>& begin_episode(VecCRef<T> o0) {
        reset();
        return observe(o0);
    }
    const Vec<T>& step(VecCRef<T>, VecCRef<T>, VecCRef<T> o_next) { return observe(o_next); }
    Index sequence_length() const noexcept { return opt_.sequence_length; }
    Index batch_size() const noexcept { return opt_.batch_size; }
    /// What a checkpoint of an agent with this estimator records about it (compared on load).
    nlohmann::json describe() const {
        return {{"hidden", static_cast<std::int64_t>(opt_.hidden)},
                {"sequence_length", static_cast<std::int64_t>(opt_.sequence_length)}};
    }

    const Vec<T>& estimate() const noexcept { return x_hat_; }
    /// Observations since reset() (the window holds the last min(this, sequence_length)).
    std::int64_t observed() const noexcept { return seen_; }

    /// One Adam step on N sequences, time-major: `obs` is obs_dim x (L N) and `x` state_dim x (L N),
    /// columns [t N, (t + 1) N) holding step t of every sequence. Returns the loss before the step.
    T update(MatCRef<T> obs, MatCRef<T> x) {
        const T l = loss_and_gradients(obs, x, train_);
        if (opt_.max_grad_norm > 0) {
            const double sq = double(gru_.grads().squaredNorm()) + double(head_grad_.squaredNorm());
            const double norm = std::sqrt(sq), c = opt_.max_grad_norm;
            if (norm > c) {
                const T s = static_cast<T>(c / (norm + 1e-6));
                gru_.grads() *= s;
                head_grad_ *= s;
            }
        }
        adam_gru_.step(gru_.params(), gru_.grads());
        adam_head_.step(head_, head_grad_);
        return l;
    }

    /// x_hat of every step of N time-major sequences (obs: obs_dim x (L' N), any L' >= 1 given by
    /// `steps`), each from h = 0; a view valid until the next predict(), loss() or update() call.
    const Mat<T>& predict(MatCRef<T> obs, Index steps) {
        if (steps < 1 || obs.cols() % steps != 0 || obs.rows() != opt_.obs_dim)
            throw ShapeError("GruStateEstimator::predict: obs is " + std::to_string(obs.rows()) + " x " +
                             std::to_string(obs.cols()) + ", expected obs_dim = " + std::to_string(opt_.obs_dim) +
                             " rows and a multiple of steps = " + std::to_string(steps) + " columns");
        const Index N = obs.cols() / steps;
        if (eval_.h0.rows() != opt_.hidden || eval_.h0.cols() != N) eval_.h0.setZero(opt_.hidden, N);
        const auto hs = gru_.forward(obs, eval_.h0, steps, eval_.gru);
        eval_.xh.noalias() = head_W() * hs;
        eval_.xh.colwise() += head_b();
        return eval_.xh;
    }

    /// The loss of update() on (obs, x) without a step (parameters unchanged; gradients in
    /// gru().grads() and head_grads() are overwritten).
    T loss(MatCRef<T> obs, MatCRef<T> x) { return loss_and_gradients(obs, x, eval_); }

    /// State protocol: "gru.params", "head", "opt_gru.{...}", "opt_head.{...}", "window" (the
    /// last observations, a ring), "observed", "x_hat".
    template <class V>
    void visit_state(V&& v) {
        visit_nested(gru_, "gru", v);
        v(state_tensor("head", head_.data(), {static_cast<std::int64_t>(head_.size())}));
        visit_nested(adam_gru_, "opt_gru", v);
        visit_nested(adam_head_, "opt_head", v);
        v(state_tensor("window", window_.data(), {opt_.sequence_length, opt_.obs_dim}));
        v(state_tensor("observed", &seen_, {}));
        v(state_tensor("x_hat", x_hat_.data(), {static_cast<std::int64_t>(x_hat_.size())}));
    }

private:
    static constexpr std::uint64_t kInitStream = 0x47525545u;  // "GRUE"

    struct Work {
        typename nn::GRU<T>::Workspace gru;
        Mat<T> h0, xh, g, gh;
    };

    static StateEstimatorOptions validated(const StateEstimatorOptions& o) {
        const auto need = [](bool ok, const std::string& what) {
            if (!ok) throw ConfigError("GruStateEstimator: " + what);
        };
        need(o.obs_dim >= 1, "obs_dim must be >= 1, got " + std::to_string(o.obs_dim));
        need(o.state_dim >= 1, "state_dim must be >= 1, got " + std::to_string(o.state_dim));
        need(o.hidden >= 1, "hidden must be >= 1, got " + std::to_string(o.hidden));
        need(o.sequence_length >= 1, "sequence_length must be >= 1, got " + std::to_string(o.sequence_length));
        need(o.burn_in >= 0 && o.burn_in < o.sequence_length,
             "burn_in must be in [0, sequence_length = " + std::to_string(o.sequence_length) + "), got " +
                 std::to_string(o.burn_in));
        need(o.batch_size >= 1, "batch_size must be >= 1, got " + std::to_string(o.batch_size));
        need(std::isfinite(o.lr) && o.lr > 0, "lr must be finite and > 0, got " + std::to_string(o.lr));
        need(std::isfinite(o.max_grad_norm) && o.max_grad_norm >= 0,
             "max_grad_norm must be finite and >= 0, got " + std::to_string(o.max_grad_norm));
        return o;
    }

    Eigen::Map<const Mat<T>> head_W() const { return {head_.data(), opt_.state_dim, opt_.hidden}; }
    Eigen::Map<const Vec<T>> head_b() const { return {head_.data() + opt_.state_dim * opt_.hidden, opt_.state_dim}; }

    T loss_and_gradients(MatCRef<T> obs, MatCRef<T> x, Work& w) {
        const Index L = opt_.sequence_length, X = opt_.state_dim, Hd = opt_.hidden;
        if (obs.rows() != opt_.obs_dim || obs.cols() < L || obs.cols() % L != 0)
            throw ShapeError("GruStateEstimator::update: obs is " + std::to_string(obs.rows()) + " x " +
                             std::to_string(obs.cols()) + ", expected obs_dim = " + std::to_string(opt_.obs_dim) +
                             " rows and a positive multiple of sequence_length = " + std::to_string(L) +
                             " columns (time-major sequences)");
        const Index N = obs.cols() / L;
        if (x.rows() != X || x.cols() != obs.cols())
            persist::detail::throw_shape("GruStateEstimator::update: x", X, obs.cols(), x.rows(), x.cols());
        if (w.h0.rows() != Hd || w.h0.cols() != N) w.h0.setZero(Hd, N);
        const auto hs = gru_.forward(obs, w.h0, L, w.gru);
        w.xh.noalias() = head_W() * hs;
        w.xh.colwise() += head_b();
        const Index used = (L - opt_.burn_in) * N;
        const T scale = T(1) / static_cast<T>(used * X);
        w.g.setZero(X, L * N);
        w.g.rightCols(used) = w.xh.rightCols(used) - x.rightCols(used);
        const T l = w.g.squaredNorm() * scale;
        w.g *= T(2) * scale;
        // head: dW = G H^T, db = sum G; dH = W^T G (zero in the burn-in columns)
        Eigen::Map<Mat<T>> dW(head_grad_.data(), X, Hd);
        Eigen::Map<Vec<T>> db(head_grad_.data() + X * Hd, X);
        dW.noalias() = w.g.rightCols(used) * hs.rightCols(used).transpose();
        db = w.g.rowwise().sum();
        w.gh.noalias() = head_W().transpose() * w.g;
        gru_.backward(w.gru, w.gh, nullptr, nullptr, nn::GradMode::overwrite);
        return l;
    }

    StateEstimatorOptions opt_;
    nn::GRU<T> gru_;
    Vec<T> head_, head_grad_;
    optim::Adam<T> adam_gru_, adam_head_;
    Mat<T> window_, seq_, zero_h_;  // obs_dim x L ring of the episode's last observations, in order, h = 0
    std::int64_t seen_ = 0;
    Vec<T> x_hat_;
    std::vector<typename nn::GRU<T>::Workspace> online_;  // one per window length: no reallocation
    Work train_, eval_;
};

}  // namespace persist::models
