#pragma once
/// @file rmsprop.hpp
/// RMSprop (Hinton, Coursera lecture 6e, 2012; centred variant from Graves 2013, eqs. 38-45),
/// as documented for torch.optim.RMSprop.
#include <cstdint>

#include "persist/optim/optimizer.hpp"

namespace persist::optim {

template <class T>
struct RMSpropOptions {
    T lr = T(1e-2);          ///< gamma
    T alpha = T(0.99);       ///< smoothing constant of the squared-gradient average, [0, 1)
    T eps = T(1e-8);         ///< added to the root, >= 0
    T weight_decay = T(0);   ///< lambda >= 0 (L2 in the gradient)
    T momentum = T(0);       ///< mu in [0, 1); 0 = no buffer
    bool centered = false;   ///< normalise by the estimated variance instead of the raw second moment
};

/// RMSprop. Per step:
///   g <- g + lambda theta,  v = alpha v + (1 - alpha) g^2,
///   centred: g_avg = alpha g_avg + (1 - alpha) g, d = sqrt(v - g_avg^2) + eps, else d = sqrt(v) + eps,
///   momentum: b = mu b + g / d, theta <- theta - gamma b;  else theta <- theta - gamma g / d.
/// @tparam T float or double.
template <class T>
class RMSprop {
    static_assert(Real<T>,
                  "persist::optim::RMSprop<T>: T must be float or double (docs/optim.md)");

public:
    using scalar_type = T;
    using Options = RMSpropOptions<T>;
    struct State {
        Vec<T> square_avg;       ///< v
        Vec<T> grad_avg;         ///< centred only, else empty
        Vec<T> momentum_buffer;  ///< momentum > 0 only, else empty
        std::int64_t step = 0;
    };

    explicit RMSprop(Index n_params, const Options& options = {}) : n_(n_params), opt_(options) {
        detail::check_n("RMSprop", n_params);
        validate(opt_);
        state_.square_avg.setZero(n_);
        if (opt_.centered) state_.grad_avg.setZero(n_);
        if (opt_.momentum > T(0)) state_.momentum_buffer.setZero(n_);
    }

    static void validate(const Options& o) {
        detail::require_lr("RMSprop", static_cast<double>(o.lr));
        detail::require(detail::unit_half_open(o.alpha), "RMSprop", "alpha", "in [0, 1)", o.alpha);
        detail::require(detail::finite_nonneg(o.eps), "RMSprop", "eps", "finite and >= 0", o.eps);
        detail::require(detail::finite_nonneg(o.weight_decay), "RMSprop", "weight_decay",
                        "finite and >= 0", o.weight_decay);
        detail::require(detail::unit_half_open(o.momentum), "RMSprop", "momentum", "in [0, 1)",
                        o.momentum);
    }

    Index size() const { return n_; }
    const Options& options() const { return opt_; }
    const State& state() const { return state_; }

    void step(VecRef<T> params, VecCRef<T> grads) {
        detail::check_step("RMSprop", n_, params, grads);
        auto p = params.array();
        const auto g = grads.array();
        if (opt_.weight_decay != T(0)) {
            update(p, g + opt_.weight_decay * p);
        } else {
            update(p, g);
        }
        ++state_.step;
    }

    void reset() {
        state_.square_avg.setZero();
        state_.grad_avg.setZero();
        state_.momentum_buffer.setZero();
        state_.step = 0;
    }
    void set_lr(T lr) {
        detail::require_lr("RMSprop", static_cast<double>(lr));
        opt_.lr = lr;
    }
    T lr() const { return opt_.lr; }

    template <class V>
    void visit_state(V&& v) {
        const auto n = static_cast<std::int64_t>(n_);
        v(state_tensor("square_avg", state_.square_avg.data(), {n}));
        if (opt_.centered) v(state_tensor("grad_avg", state_.grad_avg.data(), {n}));
        if (opt_.momentum > T(0)) v(state_tensor("momentum_buffer", state_.momentum_buffer.data(), {n}));
        v(state_tensor("step", &state_.step, {}));
    }

private:
    template <class P, class G>
    void update(P& p, const G& g) {
        const T a = opt_.alpha, eps = opt_.eps;
        auto sq = state_.square_avg.array();
        sq = a * sq + (T(1) - a) * g * g;
        if (opt_.centered) {
            auto ga = state_.grad_avg.array();
            ga = a * ga + (T(1) - a) * g;
            apply(p, g, (sq - ga * ga).sqrt() + eps);
        } else {
            apply(p, g, sq.sqrt() + eps);
        }
    }
    template <class P, class G, class D>
    void apply(P& p, const G& g, const D& denom) {
        if (opt_.momentum > T(0)) {
            auto b = state_.momentum_buffer.array();
            b = opt_.momentum * b + g / denom;
            p -= opt_.lr * b;
        } else {
            p -= opt_.lr * (g / denom);
        }
    }

    Index n_;
    Options opt_;
    State state_;
};

}  // namespace persist::optim
