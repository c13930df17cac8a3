#pragma once
/// @file radam.hpp
/// Rectified Adam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond",
/// Algorithm 2), as documented for torch.optim.RAdam: while the approximated SMA length
/// rho_t <= 5 the adaptive learning rate's variance is intractable and the step is plain
/// bias-corrected momentum SGD.
#include <cmath>
#include <cstdint>

#include "persist/optim/optimizer.hpp"

namespace persist::optim {

template <class T>
struct RAdamOptions {
    T lr = T(1e-3);                     ///< gamma
    T beta1 = T(0.9);                   ///< [0, 1)
    T beta2 = T(0.999);                 ///< [0, 1)
    T eps = T(1e-8);                    ///< >= 0
    T weight_decay = T(0);              ///< lambda >= 0
    bool decoupled_weight_decay = false;  ///< theta *= 1 - gamma lambda (torch >= 2.0), else L2
};

/// RAdam. Per step t:
///   m_t = b1 m + (1 - b1) g,  v_t = b2 v + (1 - b2) g^2,  m_hat = m_t / (1 - b1^t),
///   rho_inf = 2 / (1 - b2) - 1,  rho_t = rho_inf - 2 t b2^t / (1 - b2^t),
///   rho_t > 5:  r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)),
///               theta <- theta - gamma m_hat r_t sqrt(1 - b2^t) / (sqrt(v_t) + eps)
///   otherwise:  theta <- theta - gamma m_hat.
/// @tparam T float or double.
template <class T>
class RAdam {
    static_assert(Real<T>,
                  "persist::optim::RAdam<T>: T must be float or double (docs/optim.md)");

public:
    using scalar_type = T;
    using Options = RAdamOptions<T>;
    struct State {
        Vec<T> m;
        Vec<T> v;
        std::int64_t step = 0;
    };

    explicit RAdam(Index n_params, const Options& options = {}) : n_(n_params), opt_(options) {
        detail::check_n("RAdam", n_params);
        validate(opt_);
        state_.m.setZero(n_);
        state_.v.setZero(n_);
    }

    static void validate(const Options& o) {
        detail::require_lr("RAdam", static_cast<double>(o.lr));
        detail::require(detail::unit_half_open(o.beta1), "RAdam", "beta1", "in [0, 1)", o.beta1);
        detail::require(detail::unit_half_open(o.beta2), "RAdam", "beta2", "in [0, 1)", o.beta2);
        detail::require(detail::finite_nonneg(o.eps), "RAdam", "eps", "finite and >= 0", o.eps);
        detail::require(detail::finite_nonneg(o.weight_decay), "RAdam", "weight_decay",
                        "finite and >= 0", o.weight_decay);
    }

    Index size() const { return n_; }
    const Options& options() const { return opt_; }
    const State& state() const { return state_; }

    /// Rectification term r_t, or 0 while rho_t <= 5 (the un-adapted warm-up steps).
    double rectification(std::int64_t t) const {
        const double b2 = static_cast<double>(opt_.beta2), td = static_cast<double>(t);
        const double b2t = std::pow(b2, td);
        const double bc2 = 1.0 - b2t;
        const double rho_inf = 2.0 / (1.0 - b2) - 1.0;
        const double rho_t = rho_inf - 2.0 * td * b2t / bc2;
        if (!(rho_t > 5.0)) return 0.0;
        return std::sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                         ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
    }

    void step(VecRef<T> params, VecCRef<T> grads) {
        detail::check_step("RAdam", n_, params, grads);
        const std::int64_t t = ++state_.step;
        auto p = params.array();
        const auto g = grads.array();
        const T wd = opt_.weight_decay;
        if (opt_.decoupled_weight_decay) {
            p *= static_cast<T>(1.0 - static_cast<double>(opt_.lr) * static_cast<double>(wd));
            moments(g);
        } else if (wd != T(0)) {
            moments(g + wd * p);
        } else {
            moments(g);
        }
        const double td = static_cast<double>(t);
        const T bc1 = static_cast<T>(1.0 - std::pow(static_cast<double>(opt_.beta1), td));
        const double bc2 = 1.0 - std::pow(static_cast<double>(opt_.beta2), td);
        const double rect = rectification(t);
        const auto m_hat = state_.m.array() / bc1;
        if (rect > 0.0) {
            const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
            p -= m_hat * opt_.lr * (bc2_sqrt / (state_.v.array().sqrt() + opt_.eps)) *
                 static_cast<T>(rect);
        } else {
            p -= m_hat * opt_.lr;
        }
    }

    void reset() {
        state_.m.setZero();
        state_.v.setZero();
        state_.step = 0;
    }
    void set_lr(T lr) {
        detail::require_lr("RAdam", static_cast<double>(lr));
        opt_.lr = lr;
    }
    T lr() const { return opt_.lr; }

    template <class V>
    void visit_state(V&& v) {
        const auto n = static_cast<std::int64_t>(n_);
        v(state_tensor("m", state_.m.data(), {n}));
        v(state_tensor("v", state_.v.data(), {n}));
        v(state_tensor("step", &state_.step, {}));
    }

private:
    template <class G>
    void moments(const G& g) {
        const T b1 = opt_.beta1, b2 = opt_.beta2;
        auto m = state_.m.array();
        auto v = state_.v.array();
        m = b1 * m + (T(1) - b1) * g;
        v = b2 * v + (T(1) - b2) * g * g;
    }

    Index n_;
    Options opt_;
    State state_;
};

}  // namespace persist::optim
