#pragma once
/// @file tanh_gaussian.hpp
/// Tanh-squashed diagonal Gaussian policy head of SAC (Haarnoja et al. 2018, appendix C).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <initializer_list>
#include <string>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/detail.hpp"
#include "persist/parallel/lanes.hpp"

namespace persist::nn {

struct TanhGaussianOptions {
    double log_std_min = -5.0;  ///< lower bound of log std (soft, via tanh)
    double log_std_max = 2.0;   ///< upper bound of log std
};

/// Input (2A x B) = [mean; r]. log_std = lo + (hi - lo) (tanh(r) + 1) / 2 (a smooth bound, as in
/// CleanRL/DrQ-v2), std = exp(log_std); u = mean + std * eps with eps ~ N(0, I) fixed
/// (reparameterisation), action a = tanh(u), and
///   log pi(a|s) = sum_i [-eps_i^2/2 - log std_i - log(2 pi)/2] - sum_i log(1 - tanh(u_i)^2),
/// the last term computed as 2 (log 2 - u - softplus(-2u)) so it is finite for any u.
/// @tparam T float or double
template <class T>
class TanhGaussian {
public:
    using scalar_type = T;
    using Options = TanhGaussianOptions;

    /// Results of sample() and what backward() needs; read `action` and `log_prob`.
    struct Workspace {
        Mat<T> action;     // A x B, tanh(u)
        Mat<T> log_prob;   // 1 x B
        Mat<T> eps, log_std, std, u;
        Mat<T> da_du;      // 1 - tanh(u)^2, from the stable log form
        Mat<T> dls_dr;     // d log_std / d r
        Mat<T> grad_in;    // 2A x B, written by backward()
    };

    explicit TanhGaussian(Index action_dim, Options opt = {}) : A_(action_dim), opt_(opt) {
        if (action_dim <= 0)
            throw ConfigError("TanhGaussian: action_dim must be positive, got " +
                              std::to_string(action_dim));
        if (!(opt.log_std_min < opt.log_std_max))
            throw ConfigError("TanhGaussian: log_std_min must be < log_std_max");
    }
    Index action_dim() const { return A_; }
    Index in_dim() const { return 2 * A_; }
    const Options& options() const { return opt_; }

    /// Sample with caller-supplied noise eps (A x B); returns ws.action, fills ws.log_prob.
    const Mat<T>& sample(MatCRef<T> in, MatCRef<T> eps, Workspace& ws) const {
        check_in(in);
        detail::check_shape([] { return "TanhGaussian"; }, "sample eps", A_, in.cols(), eps.rows(),
                            eps.cols());
        ensure_shape(ws.eps, A_, in.cols());
        ws.eps = eps;
        compute(in, ws);
        return ws.action;
    }
    /// Sample with eps ~ N(0, I) drawn from rng in column-major order (kept in ws.eps).
    const Mat<T>& sample(MatCRef<T> in, Rng& rng, Workspace& ws) const {
        check_in(in);
        ensure_shape(ws.eps, A_, in.cols());
        for (Index k = 0; k < ws.eps.size(); ++k) ws.eps.data()[k] = rng.normal<T>();
        compute(in, ws);
        return ws.action;
    }
    /// Deterministic (evaluation) action tanh(mean).
    void deterministic(MatCRef<T> in, Mat<T>& action) const {
        check_in(in);
        ensure_shape(action, A_, in.cols());
        action.array() = in.topRows(A_).array().tanh();
    }

    /// dL/din (2A x B) of the last sample(), eps held fixed, from dL/daction (A x B) and
    /// dL/dlog_prob (1 x B). Returns ws.grad_in.
    const Mat<T>& backward(Workspace& ws, MatCRef<T> grad_action, MatCRef<T> grad_log_prob) const {
        const Index B = ws.action.cols();
        detail::check_shape([] { return "TanhGaussian"; }, "backward grad_action", A_, B,
                            grad_action.rows(), grad_action.cols());
        detail::check_shape([] { return "TanhGaussian"; }, "backward grad_log_prob", 1, B,
                            grad_log_prob.rows(), grad_log_prob.cols());
        ensure_shape(ws.grad_in, 2 * A_, B);
        for (Index j = 0; j < B; ++j) {
            const T gl = grad_log_prob(0, j);
            for (Index i = 0; i < A_; ++i) {
                // d log_prob/du = +2 tanh(u): derivative of -log(1 - tanh(u)^2).
                const T du = grad_action(i, j) * ws.da_du(i, j) + gl * T(2) * ws.action(i, j);
                const T dls = du * ws.std(i, j) * ws.eps(i, j) - gl;
                ws.grad_in(i, j) = du;
                ws.grad_in(A_ + i, j) = dls * ws.dls_dr(i, j);
            }
        }
        return ws.grad_in;
    }

    /// log pi(a|s) of *given* actions a in (-1, 1)^A (A x B), e.g. demonstrations for
    /// behaviour cloning: u = atanh(a), z = (u - mean) / std,
    ///   log pi(a|s) = sum_i [-z_i^2/2 - log std_i - log(2 pi)/2 - log(1 - a_i^2)].
    /// Fills ws.log_prob (1 x B; returned) and what log_prob_backward() needs (ws.eps holds z).
    /// An entry of `action` outside the open interval (-1, 1) or not finite is an Error naming
    /// it (squeeze boundary actions first: atanh(+-1) is infinite).
    const Mat<T>& log_prob_of(MatCRef<T> in, MatCRef<T> action, Workspace& ws) const {
        check_in(in);
        const Index B = in.cols();
        detail::check_shape([] { return "TanhGaussian"; }, "log_prob_of action", A_, B, action.rows(),
                            action.cols());
        for (Mat<T>* m : {&ws.action, &ws.log_std, &ws.std, &ws.u, &ws.eps, &ws.dls_dr}) ensure_shape(*m, A_, B);
        ensure_shape(ws.log_prob, 1, B);
        const T lo = static_cast<T>(opt_.log_std_min);
        const T half_range = static_cast<T>(0.5 * (opt_.log_std_max - opt_.log_std_min));
        const T half_log2pi = static_cast<T>(0.5 * detail::kLog2Pi);
        for (Index j = 0; j < B; ++j) {
            T lp = 0;
            for (Index i = 0; i < A_; ++i) {
                const T a = action(i, j);
                if (!(a > T(-1) && a < T(1)))
                    throw Error("TanhGaussian::log_prob_of: action(" + std::to_string(i) + ", " + std::to_string(j) +
                                ") = " + std::to_string(double(a)) +
                                ": expected a value in the open interval (-1, 1) (squeeze actions on the bound)");
                const T t = std::tanh(in(A_ + i, j));
                const T ls = lo + half_range * (t + T(1));
                const T sd = std::exp(ls);
                const T u = std::atanh(a);
                const T z = (u - in(i, j)) / sd;
                ws.action(i, j) = a;
                ws.u(i, j) = u;
                ws.eps(i, j) = z;
                ws.log_std(i, j) = ls;
                ws.std(i, j) = sd;
                ws.dls_dr(i, j) = half_range * (T(1) - t * t);
                lp += T(-0.5) * z * z - ls - half_log2pi - std::log1p(-a * a);
            }
            ws.log_prob(0, j) = lp;
        }
        return ws.log_prob;
    }

    /// dL/din (2A x B) of the last log_prob_of() from dL/dlog_prob (1 x B), the actions held
    /// fixed: d log pi/d mean_i = z_i / std_i, d log pi/d log std_i = z_i^2 - 1. Returns ws.grad_in.
    const Mat<T>& log_prob_backward(Workspace& ws, MatCRef<T> grad_log_prob) const {
        const Index B = ws.u.cols();
        detail::check_shape([] { return "TanhGaussian"; }, "log_prob_backward grad_log_prob", 1, B,
                            grad_log_prob.rows(), grad_log_prob.cols());
        ensure_shape(ws.grad_in, 2 * A_, B);
        for (Index j = 0; j < B; ++j) {
            const T gl = grad_log_prob(0, j);
            for (Index i = 0; i < A_; ++i) {
                const T z = ws.eps(i, j);
                ws.grad_in(i, j) = gl * z / ws.std(i, j);
                ws.grad_in(A_ + i, j) = gl * (z * z - T(1)) * ws.dls_dr(i, j);
            }
        }
        return ws.grad_in;
    }

private:
    void check_in(MatCRef<T> in) const {
        detail::check_shape([] { return "TanhGaussian"; }, "input [mean; log_std]", 2 * A_,
                            in.cols(), in.rows(), in.cols());
    }

    void compute(MatCRef<T> in, Workspace& ws) const {
        const Index B = in.cols();
        for (Mat<T>* m : {&ws.action, &ws.log_std, &ws.std, &ws.u, &ws.da_du, &ws.dls_dr})
            ensure_shape(*m, A_, B);
        ensure_shape(ws.log_prob, 1, B);
        const T lo = static_cast<T>(opt_.log_std_min);
        const T half_range = static_cast<T>(0.5 * (opt_.log_std_max - opt_.log_std_min));
        const T half_log2pi = static_cast<T>(0.5 * detail::kLog2Pi);
#if PERSIST_HAS_LANES
        if constexpr (std::is_same_v<T, float>) {
            compute_lanes(in, ws, lo, half_range, half_log2pi);
            return;
        }
#endif
        for (Index j = 0; j < B; ++j) {
            T lp = 0;
            for (Index i = 0; i < A_; ++i) {
                const T t = std::tanh(in(A_ + i, j));
                const T ls = lo + half_range * (t + T(1));
                const T sd = std::exp(ls);
                const T e = ws.eps(i, j);
                const T u = in(i, j) + sd * e;
                const T l1m = detail::log1m_tanh2(u);
                ws.log_std(i, j) = ls;
                ws.std(i, j) = sd;
                ws.u(i, j) = u;
                ws.action(i, j) = std::tanh(u);
                ws.da_du(i, j) = std::exp(l1m);
                ws.dls_dr(i, j) = half_range * (T(1) - t * t);
                lp += T(-0.5) * e * e - ls - half_log2pi - l1m;
            }
            ws.log_prob(0, j) = lp;
        }
    }

#if PERSIST_HAS_LANES
    /// compute() for float, 16 batch columns per lane vector with the Cephes tanh/exp/log of
    /// parallel/lanes.hpp (1-3 ulp) instead of libm calls per element; the same formulas.
    void compute_lanes(MatCRef<float> in, Workspace& ws, float lo, float half_range, float half_log2pi) const {
        namespace ln = persist::parallel::lanes;
        constexpr int L = 16;
        using V = ln::vf<L>;
        const Index B = in.cols();
        for (Index j0 = 0; j0 < B; j0 += L) {
            const int n = static_cast<int>(std::min<Index>(L, B - j0));
            V lp = ln::splat<L>(0.0f);
            for (Index i = 0; i < A_; ++i) {
                V mean = ln::splat<L>(0.0f), r = mean, e = mean;
                for (int l = 0; l < n; ++l) {
                    mean[l] = in(i, j0 + l);
                    r[l] = in(A_ + i, j0 + l);
                    e[l] = ws.eps(i, j0 + l);
                }
                const V t = ln::vtanh<L>(r);
                const V ls = lo + half_range * (t + 1.0f);
                const V sd = ln::vexp<L>(ls);
                const V u = mean + sd * e;
                const V l1m = 2.0f * (static_cast<float>(detail::kLog2) - u - ln::vsoftplus<L>(-2.0f * u));
                const V act = ln::vtanh<L>(u);
                const V da = ln::vexp<L>(l1m);
                const V dls = half_range * (1.0f - t * t);
                lp += -0.5f * e * e - ls - half_log2pi - l1m;
                for (int l = 0; l < n; ++l) {
                    const Index j = j0 + l;
                    ws.log_std(i, j) = ls[l];
                    ws.std(i, j) = sd[l];
                    ws.u(i, j) = u[l];
                    ws.action(i, j) = act[l];
                    ws.da_du(i, j) = da[l];
                    ws.dls_dr(i, j) = dls[l];
                }
            }
            for (int l = 0; l < n; ++l) ws.log_prob(0, j0 + l) = lp[l];
        }
    }
#endif

    Index A_;
    Options opt_;
};

}  // namespace persist::nn
