#pragma once
/// @file losses.hpp
/// Scalar losses over a batch (one column per sample) with hand-written gradients.
/// Unless stated otherwise a loss is the MEAN over the B columns of a per-sample SUM over rows:
///   L = (1/B) sum_j sum_i l(pred_ij, target_ij),
/// so for one output row it equals PyTorch's reduction="mean". `gradient` overwrites `grad`
/// (same shape as pred) with dL/dpred, resizing it only when the shape changes.
#include <cmath>
#include <string>

#include "persist/core/error.hpp"

#include "persist/core/types.hpp"
#include "persist/nn/detail.hpp"

namespace persist::nn {
namespace detail {
template <class T>
inline void check_pair(const char* who, MatCRef<T> pred, MatCRef<T> target) {
    check_shape([who] { return who; }, "target", pred.rows(), pred.cols(), target.rows(),
                target.cols());
}
}  // namespace detail

/// l = (p - t)^2.
template <class T>
struct MSE {
    T value(MatCRef<T> pred, MatCRef<T> target) const {
        detail::check_pair<T>("MSE", pred, target);
        return (pred - target).squaredNorm() / static_cast<T>(pred.cols());
    }
    void gradient(MatCRef<T> pred, MatCRef<T> target, Mat<T>& grad) const {
        detail::check_pair<T>("MSE", pred, target);
        ensure_shape(grad, pred.rows(), pred.cols());
        grad = (T(2) / static_cast<T>(pred.cols())) * (pred - target);
    }
};

/// l = x^2/2 for |x| <= delta, delta (|x| - delta/2) otherwise, x = p - t (torch HuberLoss).
template <class T>
struct Huber {
    T delta = T(1);

    T value(MatCRef<T> pred, MatCRef<T> target) const {
        detail::check_pair<T>("Huber", pred, target);
        T s = 0;
        for (Index j = 0; j < pred.cols(); ++j)
            for (Index i = 0; i < pred.rows(); ++i) {
                const T a = std::abs(pred(i, j) - target(i, j));
                s += a <= delta ? T(0.5) * a * a : delta * (a - T(0.5) * delta);
            }
        return s / static_cast<T>(pred.cols());
    }
    void gradient(MatCRef<T> pred, MatCRef<T> target, Mat<T>& grad) const {
        detail::check_pair<T>("Huber", pred, target);
        ensure_shape(grad, pred.rows(), pred.cols());
        const T inv_b = T(1) / static_cast<T>(pred.cols());
        grad = ((pred - target).array().min(delta).max(-delta) * inv_b).matrix();
    }
};

/// Binary focal loss on logits x with targets y in [0, 1] (Lin et al. 2017, eq. 5; soft-label
/// form of torchvision.ops.sigmoid_focal_loss):
///   l = alpha_t (1 - p_t)^gamma BCE(x, y),  p = sigmoid(x),  p_t = p y + (1 - p)(1 - y),
///   alpha_t = alpha y + (1 - alpha)(1 - y)  (alpha < 0: no weighting, alpha_t = 1).
/// BCE and 1 - p_t are formed from softplus / sigmoid of +-x, never from log(p), so any logit
/// is finite.
template <class T>
struct BinaryFocal {
    T alpha = T(0.25);
    T gamma = T(2);

    T value(MatCRef<T> logits, MatCRef<T> target) const {
        detail::check_pair<T>("BinaryFocal", logits, target);
        T s = 0;
        for (Index j = 0; j < logits.cols(); ++j)
            for (Index i = 0; i < logits.rows(); ++i) {
                const Terms t = terms(logits(i, j), target(i, j));
                s += t.at * t.mod * t.ce;
            }
        return s / static_cast<T>(logits.cols());
    }
    void gradient(MatCRef<T> logits, MatCRef<T> target, Mat<T>& grad) const {
        detail::check_pair<T>("BinaryFocal", logits, target);
        ensure_shape(grad, logits.rows(), logits.cols());
        const T inv_b = T(1) / static_cast<T>(logits.cols());
        for (Index j = 0; j < logits.cols(); ++j)
            for (Index i = 0; i < logits.rows(); ++i) {
                const T y = target(i, j);
                const Terms t = terms(logits(i, j), y);
                // d/dx [(1 - p_t)^gamma] = -gamma (1 - p_t)^(gamma - 1) (2y - 1) p (1 - p)
                T dmod = 0;
                if (gamma != T(0) && t.q > T(0))
                    dmod = -gamma * std::pow(t.q, gamma - T(1)) * (T(2) * y - T(1)) * t.p * t.pm;
                grad(i, j) = inv_b * t.at * (t.mod * (t.p - y) + dmod * t.ce);
            }
    }

private:
    struct Terms {
        T p, pm, q, mod, ce, at;  // sigmoid(x), sigmoid(-x), 1 - p_t, q^gamma, BCE, alpha_t
    };
    Terms terms(T x, T y) const {
        Terms t;
        t.p = detail::sigmoid(x);
        t.pm = detail::sigmoid(-x);
        t.q = y * t.pm + (T(1) - y) * t.p;
        t.mod = gamma == T(0) ? T(1) : std::pow(t.q, gamma);
        t.ce = detail::softplus(x) - x * y;
        t.at = alpha < T(0) ? T(1) : alpha * y + (T(1) - alpha) * (T(1) - y);
        return t;
    }
};

/// Gaussian negative log-likelihood with pred = [mean; log_std] (2D x B), target (D x B):
///   l_i = (t_i - mean_i)^2 / (2 exp(2 log_std_i)) + log_std_i + log(2 pi)/2,
/// the per-sample sum of which is DiagGaussian::nll (unbounded log_std). `gradient` writes
/// [dL/dmean; dL/dlog_std] (2D x B).
template <class T>
struct GaussianNLL {
    T value(MatCRef<T> pred, MatCRef<T> target) const {
        check(pred, target);
        const Index D = target.rows();
        const T c = static_cast<T>(0.5 * detail::kLog2Pi);
        T s = 0;
        for (Index j = 0; j < pred.cols(); ++j)
            for (Index i = 0; i < D; ++i) {
                const T ls = pred(D + i, j);
                const T z = (target(i, j) - pred(i, j)) * std::exp(-ls);
                s += T(0.5) * z * z + ls + c;
            }
        return s / static_cast<T>(pred.cols());
    }
    void gradient(MatCRef<T> pred, MatCRef<T> target, Mat<T>& grad) const {
        check(pred, target);
        const Index D = target.rows();
        ensure_shape(grad, pred.rows(), pred.cols());
        const T inv_b = T(1) / static_cast<T>(pred.cols());
        for (Index j = 0; j < pred.cols(); ++j)
            for (Index i = 0; i < D; ++i) {
                const T is = std::exp(-pred(D + i, j));
                const T z = (target(i, j) - pred(i, j)) * is;
                grad(i, j) = -inv_b * z * is;
                grad(D + i, j) = inv_b * (T(1) - z * z);
            }
    }

private:
    static void check(MatCRef<T> pred, MatCRef<T> target) {
        detail::check_shape([] { return "GaussianNLL"; }, "pred [mean; log_std]", 2 * target.rows(),
                            target.cols(), pred.rows(), pred.cols());
    }
};

/// InfoNCE / contrastive cross-entropy (van den Oord et al. 2018, eq. 4) on a score matrix
/// S (K x B, K >= B): column j is one query, its positive is row j, every other row a negative:
///   L = (1/B) sum_j [ log sum_i exp(S_ij / tau) - S_jj / tau ].
/// dL/dS_ij = (softmax_i(S_:j / tau) - 1[i = j]) / (B tau).
template <class T>
struct InfoNCE {
    T temperature = T(1);

    T value(MatCRef<T> scores) const {
        check(scores);
        const T it = T(1) / temperature;
        T s = 0;
        for (Index j = 0; j < scores.cols(); ++j) {
            const auto x = scores.col(j).array();
            const T m = x.maxCoeff();
            s += std::log(((x - m) * it).exp().sum()) + (m - scores(j, j)) * it;
        }
        return s / static_cast<T>(scores.cols());
    }
    void gradient(MatCRef<T> scores, Mat<T>& grad) const {
        check(scores);
        ensure_shape(grad, scores.rows(), scores.cols());
        const T it = T(1) / temperature;
        const T c = it / static_cast<T>(scores.cols());
        for (Index j = 0; j < scores.cols(); ++j) {
            const auto x = scores.col(j).array();
            const T m = x.maxCoeff();
            auto g = grad.col(j).array();
            g = ((x - m) * it).exp();
            g *= c / g.sum();
            g(j) -= c;
        }
    }

private:
    static void check(MatCRef<T> scores) {
        if (scores.rows() < scores.cols())
            throw ShapeError("InfoNCE: scores must be K x B with K >= B (the positive of column j "
                             "is row j), got " + std::to_string(scores.rows()) + " x " +
                             std::to_string(scores.cols()));
    }
};

/// Quantile Huber loss of QR-DQN (Dabney et al. 2018, eq. 10 and Algorithm 1): pred theta
/// (N x B) at quantile midpoints tau_i = (2i + 1) / (2N), target samples (M x B, constants):
///   L = (1/B) sum_b sum_i (1/M) sum_j rho_kappa(tau_i, target_jb - theta_ib),
///   rho_kappa(tau, u) = |tau - 1[u < 0]| H_kappa(u) / kappa,  H_kappa = Huber with delta kappa;
/// kappa = 0 gives the plain quantile (pinball) loss u (tau - 1[u < 0]).
template <class T>
struct QuantileHuber {
    T kappa = T(1);

    T value(MatCRef<T> pred, MatCRef<T> target) const {
        check(pred, target);
        const Index N = pred.rows(), M = target.rows();
        T s = 0;
        for (Index b = 0; b < pred.cols(); ++b) {
            const auto t = target.col(b).array();
            for (Index i = 0; i < N; ++i) {
                const T tau = (T(2 * i + 1)) / (T(2 * N));
                const auto u = t - pred(i, b);
                const auto neg = (u < T(0)).template cast<T>();  // 1[u < 0]
                if (kappa > T(0)) {
                    // H_kappa(u) = c (|u| - c/2) with c = min(|u|, kappa): no select() needed
                    const auto c = u.abs().min(kappa);
                    s += ((tau - neg).abs() * c * (u.abs() - T(0.5) * c)).sum() / kappa;
                } else {
                    s += (u * (tau - neg)).sum();
                }
            }
        }
        return s / static_cast<T>(pred.cols() * M);
    }
    void gradient(MatCRef<T> pred, MatCRef<T> target, Mat<T>& grad) const {
        check(pred, target);
        const Index N = pred.rows(), M = target.rows();
        ensure_shape(grad, N, pred.cols());
        const T c = T(1) / static_cast<T>(pred.cols() * M);
        for (Index b = 0; b < pred.cols(); ++b) {
            const auto t = target.col(b).array();
            for (Index i = 0; i < N; ++i) {
                const T tau = (T(2 * i + 1)) / (T(2 * N));
                const auto u = t - pred(i, b);
                const auto neg = (u < T(0)).template cast<T>();
                // d rho / d theta = -d rho / du
                const T s = kappa > T(0) ? ((tau - neg).abs() * u.min(kappa).max(-kappa)).sum() / kappa
                                         : (tau - neg).sum();
                grad(i, b) = -c * s;
            }
        }
    }

private:
    static void check(MatCRef<T> pred, MatCRef<T> target) {
        detail::check_shape([] { return "QuantileHuber"; }, "target (M x B)", target.rows(),
                            pred.cols(), target.rows(), target.cols());
    }
};

}  // namespace persist::nn
