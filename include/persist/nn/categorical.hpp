#pragma once
/// @file categorical.hpp
/// Categorical (softmax) head over K discrete actions.
#include <cmath>
#include <span>
#include <string>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/detail.hpp"

namespace persist::nn {

/// Input: logits (K x B). log p = logits - max - log sum exp(logits - max) per column (stable),
/// entropy H = -sum_k p_k log p_k. Gradients wrt the logits:
///   d log p_a / d logit_k = 1[k = a] - p_k,   dH / d logit_k = -p_k (log p_k + H).
/// @tparam T float or double
template <class T>
class Categorical {
public:
    using scalar_type = T;

    struct Workspace {
        Mat<T> log_probs;  // K x B
        Mat<T> probs;      // K x B
        Mat<T> entropy;    // 1 x B
        Mat<T> log_prob;   // 1 x B, of the actions given to log_prob()
        Mat<T> grad_in;    // K x B, written by backward()
    };

    explicit Categorical(Index num_classes) : K_(num_classes) {
        if (num_classes <= 0)
            throw ConfigError("Categorical: num_classes must be positive, got " +
                              std::to_string(num_classes));
    }
    Index num_classes() const { return K_; }
    Index in_dim() const { return K_; }

    /// log-softmax, probabilities and entropy of every column.
    void forward(MatCRef<T> logits, Workspace& ws) const {
        detail::check_shape([] { return "Categorical"; }, "forward logits", K_, logits.cols(),
                            logits.rows(), logits.cols());
        const Index B = logits.cols();
        ensure_shape(ws.log_probs, K_, B);
        ensure_shape(ws.probs, K_, B);
        ensure_shape(ws.entropy, 1, B);
        for (Index j = 0; j < B; ++j) {
            const auto x = logits.col(j).array();
            const T m = x.maxCoeff();
            const T lse = m + std::log((x - m).exp().sum());
            ws.log_probs.col(j).array() = x - lse;
            ws.probs.col(j).array() = ws.log_probs.col(j).array().exp();
            ws.entropy(0, j) = -(ws.probs.col(j).array() * ws.log_probs.col(j).array()).sum();
        }
    }

    /// log p(actions[j]) of column j after forward(); returns ws.log_prob (1 x B).
    const Mat<T>& log_prob(Workspace& ws, std::span<const Index> actions) const {
        check_actions(ws, actions);
        ensure_shape(ws.log_prob, 1, ws.log_probs.cols());
        for (Index j = 0; j < ws.log_probs.cols(); ++j)
            ws.log_prob(0, j) = ws.log_probs(actions[static_cast<std::size_t>(j)], j);
        return ws.log_prob;
    }

    /// dL/dlogits (K x B) from dL/dlog_prob(actions) (1 x B) and dL/dentropy (1 x B) after
    /// forward(). Pass an empty matrix (0 x 0) for a term you do not use; `actions` is only
    /// read when grad_log_prob is non-empty. Returns ws.grad_in.
    const Mat<T>& backward(Workspace& ws, std::span<const Index> actions,
                           MatCRef<T> grad_log_prob, MatCRef<T> grad_entropy) const {
        const Index B = ws.log_probs.cols();
        const bool use_lp = grad_log_prob.size() > 0, use_h = grad_entropy.size() > 0;
        if (use_lp) {
            detail::check_shape([] { return "Categorical"; }, "backward grad_log_prob", 1, B,
                                grad_log_prob.rows(), grad_log_prob.cols());
            check_actions(ws, actions);
        }
        if (use_h)
            detail::check_shape([] { return "Categorical"; }, "backward grad_entropy", 1, B,
                                grad_entropy.rows(), grad_entropy.cols());
        ensure_shape(ws.grad_in, K_, B);
        for (Index j = 0; j < B; ++j) {
            auto g = ws.grad_in.col(j).array();
            const auto p = ws.probs.col(j).array();
            g.setZero();
            if (use_lp) {
                const T gl = grad_log_prob(0, j);
                g -= gl * p;
                g(actions[static_cast<std::size_t>(j)]) += gl;
            }
            if (use_h) g -= grad_entropy(0, j) * p * (ws.log_probs.col(j).array() + ws.entropy(0, j));
        }
        return ws.grad_in;
    }

    /// Draw one action per column after forward() (inverse CDF on one uniform per column).
    void sample(const Workspace& ws, Rng& rng, std::span<Index> actions) const {
        check_out(ws, actions);
        for (Index j = 0; j < ws.probs.cols(); ++j) {
            const double u = rng.uniform<double>();
            double c = 0;
            Index a = -1;
            for (Index k = 0; k < K_; ++k) {
                if (ws.probs(k, j) <= T(0)) continue;
                a = k;  // last class with p > 0 absorbs rounding of the CDF
                c += static_cast<double>(ws.probs(k, j));
                if (u < c) break;
            }
            actions[static_cast<std::size_t>(j)] = a;
        }
    }
    /// Most likely action of every column (first on ties).
    void mode(const Workspace& ws, std::span<Index> actions) const {
        check_out(ws, actions);
        for (Index j = 0; j < ws.log_probs.cols(); ++j) {
            Index a = 0;
            ws.log_probs.col(j).maxCoeff(&a);
            actions[static_cast<std::size_t>(j)] = a;
        }
    }

private:
    void check_actions(const Workspace& ws, std::span<const Index> actions) const {
        const Index B = ws.log_probs.cols();
        detail::check_shape([] { return "Categorical"; }, "actions", 1, B, 1,
                            static_cast<Index>(actions.size()));
        for (Index j = 0; j < B; ++j) {
            const Index a = actions[static_cast<std::size_t>(j)];
            if (a < 0 || a >= K_)
                throw ShapeError("Categorical: action " + std::to_string(a) + " of sample " +
                                 std::to_string(j) + " outside [0, " + std::to_string(K_) + ")");
        }
    }
    void check_out(const Workspace& ws, std::span<Index> actions) const {
        detail::check_shape([] { return "Categorical"; }, "actions out", 1, ws.probs.cols(), 1,
                            static_cast<Index>(actions.size()));
    }

    Index K_;
};

}  // namespace persist::nn
