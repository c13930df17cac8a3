#pragma once
/// @file init.hpp
/// Weight initialisation schemes for Linear layers. All draws come from persist::Rng in
/// double precision and are then rounded to T, so a float and a double network initialised
/// from the same seed hold the same weights (up to rounding), bitwise reproducibly.
#include <cmath>

#include "persist/core/random.hpp"
#include "persist/core/types.hpp"

namespace persist::nn {

namespace detail {
/// Q (m x n, m >= n) of the thin QR decomposition A = Q R with diag(R) > 0, by unblocked
/// Householder reflections (init-time only; avoids pulling Eigen/QR into every user).
inline Mat<double> orthonormal_q(Mat<double> A) {
    const Index m = A.rows(), n = A.cols();
    Mat<double> V = Mat<double>::Zero(m, n);  // Householder vectors, column k from row k
    Vec<double> sign(n);
    Vec<double> w(n);
    for (Index k = 0; k < n; ++k) {
        auto x = A.col(k).tail(m - k);
        const double nx = x.norm();
        const double alpha = x(0) > 0 ? -nx : nx;  // R_kk; opposite sign to x0 avoids cancellation
        auto v = V.col(k).tail(m - k);
        v = x;
        v(0) -= alpha;
        const double nv = v.norm();
        if (nv > 0) v /= nv;
        auto Ak = A.bottomRightCorner(m - k, n - k);
        w.head(n - k).noalias() = Ak.transpose() * v;
        Ak.noalias() -= 2.0 * v * w.head(n - k).transpose();
        sign(k) = alpha < 0 ? -1.0 : 1.0;
    }
    Mat<double> Q = Mat<double>::Identity(m, n);
    for (Index k = n - 1; k >= 0; --k) {
        const auto v = V.col(k).tail(m - k);
        auto Qk = Q.bottomRows(m - k);
        w.noalias() = Qk.transpose() * v;
        Qk.noalias() -= 2.0 * v * w.transpose();
    }
    return Q * sign.asDiagonal();  // make diag(R) positive: Q is then unique (Haar-distributed)
}
}  // namespace detail

/// How to draw a Linear layer's W (out x in) and b. `gain` multiplies the weights in every
/// scheme (gain = 1 reproduces PyTorch exactly); biases are never scaled.
struct Init {
    enum Kind {
        TorchDefault,   ///< W, b ~ U(-gain/sqrt(fan_in), gain/sqrt(fan_in)): torch.nn.Linear's default
        XavierUniform,  ///< W ~ U(+-gain*sqrt(6/(fan_in+fan_out))), b = 0 (Glorot & Bengio 2010)
        Orthogonal      ///< W = gain * Q, Q from QR of a Gaussian matrix (Saxe et al. 2014), b = 0
    };
    Kind kind = TorchDefault;
    double gain = 1.0;

    static Init torch_default(double gain = 1.0) { return {TorchDefault, gain}; }
    static Init xavier_uniform(double gain = 1.0) { return {XavierUniform, gain}; }
    static Init orthogonal(double gain = 1.0) { return {Orthogonal, gain}; }
};

/// Fill W (out x in) and b (out) according to `scheme`. Draw order: W in column-major order,
/// then b; Orthogonal draws a Gaussian matrix in the same order.
template <class T>
void init_linear(MatMap<T> W, VecMap<T> b, Rng& rng, const Init& scheme) {
    const Index out = W.rows(), in = W.cols();
    switch (scheme.kind) {
        case Init::TorchDefault: {
            const double bound = in > 0 ? 1.0 / std::sqrt(static_cast<double>(in)) : 0.0;
            for (Index k = 0; k < W.size(); ++k)
                W.data()[k] = static_cast<T>(scheme.gain * rng.uniform<double>(-bound, bound));
            for (Index k = 0; k < b.size(); ++k)
                b[k] = static_cast<T>(rng.uniform<double>(-bound, bound));
            break;
        }
        case Init::XavierUniform: {
            const double bound = scheme.gain * std::sqrt(6.0 / static_cast<double>(in + out));
            for (Index k = 0; k < W.size(); ++k)
                W.data()[k] = static_cast<T>(rng.uniform<double>(-bound, bound));
            b.setZero();
            break;
        }
        case Init::Orthogonal: {
            // As torch.nn.init.orthogonal_: QR of the tall orientation, signs fixed by diag(R) so
            // Q is Haar-distributed; rows (out <= in) or columns (out >= in) are orthonormal.
            Mat<double> G(out, in);
            for (Index k = 0; k < G.size(); ++k) G.data()[k] = rng.normal<double>();
            const bool wide = out < in;
            Mat<double> Q = detail::orthonormal_q(wide ? Mat<double>(G.transpose()) : G);
            if (wide) Q.transposeInPlace();
            W = (scheme.gain * Q).template cast<T>();
            b.setZero();
            break;
        }
    }
}

}  // namespace persist::nn
