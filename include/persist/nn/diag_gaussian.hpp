#pragma once
/// @file diag_gaussian.hpp
/// Diagonal Gaussian head for probabilistic models (e.g. PETS, Chua et al. 2018).
#include <cmath>
#include <initializer_list>
#include <string>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/detail.hpp"

namespace persist::nn {

struct DiagGaussianOptions {
    bool bound_log_std = false;  ///< squash r into [log_std_min, log_std_max] as TanhGaussian does
    double log_std_min = -10.0;
    double log_std_max = 2.0;
};

/// Input (2D x B) = [mean; r]; log_std = r, or lo + (hi - lo)(tanh(r) + 1)/2 when bounded.
/// Per-sample negative log-likelihood of a target y (D x B):
///   nll = sum_i [ (y_i - mean_i)^2 / (2 std_i^2) + log std_i + log(2 pi)/2 ],
/// the same quantity as GaussianNLL (nn/losses.hpp) before its batch mean.
/// @tparam T float or double
template <class T>
class DiagGaussian {
public:
    using scalar_type = T;
    using Options = DiagGaussianOptions;

    struct Workspace {
        Mat<T> nll;      // 1 x B
        Mat<T> sample;   // D x B
        Mat<T> z;        // (y - mean) / std
        Mat<T> inv_std;
        Mat<T> dls_dr;   // d log_std / d r
        Mat<T> grad_in;  // 2D x B, written by backward()
    };

    explicit DiagGaussian(Index dim, Options opt = {}) : D_(dim), opt_(opt) {
        if (dim <= 0)
            throw ConfigError("DiagGaussian: dim must be positive, got " + std::to_string(dim));
        if (opt.bound_log_std && !(opt.log_std_min < opt.log_std_max))
            throw ConfigError("DiagGaussian: log_std_min must be < log_std_max");
    }
    Index dim() const { return D_; }
    Index in_dim() const { return 2 * D_; }
    const Options& options() const { return opt_; }

    /// log_std from the raw input row r.
    T log_std(T r) const {
        if (!opt_.bound_log_std) return r;
        return static_cast<T>(opt_.log_std_min) +
               static_cast<T>(0.5 * (opt_.log_std_max - opt_.log_std_min)) * (std::tanh(r) + T(1));
    }

    /// Per-sample NLL (1 x B) of target (D x B); keeps what backward() needs.
    const Mat<T>& nll(MatCRef<T> in, MatCRef<T> target, Workspace& ws) const {
        check_in(in);
        detail::check_shape([] { return "DiagGaussian"; }, "nll target", D_, in.cols(),
                            target.rows(), target.cols());
        const Index B = in.cols();
        for (Mat<T>* m : {&ws.z, &ws.inv_std, &ws.dls_dr}) ensure_shape(*m, D_, B);
        ensure_shape(ws.nll, 1, B);
        const T half_range = static_cast<T>(0.5 * (opt_.log_std_max - opt_.log_std_min));
        const T half_log2pi = static_cast<T>(0.5 * detail::kLog2Pi);
        for (Index j = 0; j < B; ++j) {
            T s = 0;
            for (Index i = 0; i < D_; ++i) {
                const T r = in(D_ + i, j);
                const T ls = log_std(r);
                const T is = std::exp(-ls);
                const T z = (target(i, j) - in(i, j)) * is;
                if (opt_.bound_log_std) {
                    const T t = std::tanh(r);
                    ws.dls_dr(i, j) = half_range * (T(1) - t * t);
                } else {
                    ws.dls_dr(i, j) = T(1);
                }
                ws.z(i, j) = z;
                ws.inv_std(i, j) = is;
                s += T(0.5) * z * z + ls + half_log2pi;
            }
            ws.nll(0, j) = s;
        }
        return ws.nll;
    }

    /// dL/din (2D x B) from dL/dnll (1 x B) for the last nll(). Returns ws.grad_in.
    const Mat<T>& backward(Workspace& ws, MatCRef<T> grad_nll) const {
        const Index B = ws.nll.cols();
        detail::check_shape([] { return "DiagGaussian"; }, "backward grad_nll", 1, B,
                            grad_nll.rows(), grad_nll.cols());
        ensure_shape(ws.grad_in, 2 * D_, B);
        for (Index j = 0; j < B; ++j) {
            const T g = grad_nll(0, j);
            for (Index i = 0; i < D_; ++i) {
                const T z = ws.z(i, j);
                ws.grad_in(i, j) = -g * z * ws.inv_std(i, j);
                ws.grad_in(D_ + i, j) = g * (T(1) - z * z) * ws.dls_dr(i, j);
            }
        }
        return ws.grad_in;
    }

    /// mean + std * eps with eps (D x B) supplied. Not differentiated. Returns ws.sample.
    const Mat<T>& sample(MatCRef<T> in, MatCRef<T> eps, Workspace& ws) const {
        check_in(in);
        detail::check_shape([] { return "DiagGaussian"; }, "sample eps", D_, in.cols(), eps.rows(),
                            eps.cols());
        ensure_shape(ws.sample, D_, in.cols());
        for (Index j = 0; j < in.cols(); ++j)
            for (Index i = 0; i < D_; ++i)
                ws.sample(i, j) = in(i, j) + std::exp(log_std(in(D_ + i, j))) * eps(i, j);
        return ws.sample;
    }
    /// As above with eps ~ N(0, I) drawn from rng in column-major order.
    const Mat<T>& sample(MatCRef<T> in, Rng& rng, Workspace& ws) const {
        check_in(in);
        ensure_shape(ws.sample, D_, in.cols());
        for (Index j = 0; j < in.cols(); ++j)
            for (Index i = 0; i < D_; ++i)
                ws.sample(i, j) = in(i, j) + std::exp(log_std(in(D_ + i, j))) * rng.normal<T>();
        return ws.sample;
    }

private:
    void check_in(MatCRef<T> in) const {
        detail::check_shape([] { return "DiagGaussian"; }, "input [mean; log_std]", 2 * D_,
                            in.cols(), in.rows(), in.cols());
    }

    Index D_;
    Options opt_;
};

}  // namespace persist::nn
