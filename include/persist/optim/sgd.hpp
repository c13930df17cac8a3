#pragma once
/// @file sgd.hpp
/// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay:
/// the algorithm documented for torch.optim.SGD (Sutskever et al. 2013 momentum form).
#include <cstdint>

#include "persist/optim/optimizer.hpp"

namespace persist::optim {

template <class T>
struct SGDOptions {
    T lr = T(1e-2);           ///< step size gamma
    T momentum = T(0);        ///< mu in [0, 1); 0 = no momentum buffer
    T dampening = T(0);       ///< tau in [0, 1]
    T weight_decay = T(0);    ///< lambda >= 0, L2 penalty added to the gradient
    bool nesterov = false;    ///< needs momentum > 0 and dampening = 0
};

/// SGD as torch.optim.SGD:
///   g <- g + lambda theta;  b_1 = g,  b_t = mu b_{t-1} + (1 - tau) g  (t > 1);
///   d = nesterov ? g + mu b_t : b_t  (d = g without momentum);  theta <- theta - gamma d.
/// @tparam T float or double.
template <class T>
class SGD {
    static_assert(Real<T>,
                  "persist::optim::SGD<T>: T must be float or double (docs/optim.md)");

public:
    using scalar_type = T;
    using Options = SGDOptions<T>;
    struct State {
        Vec<T> momentum_buffer;  ///< b; empty when momentum = 0
        std::int64_t step = 0;
    };

    explicit SGD(Index n_params, const Options& options = {}) : n_(n_params), opt_(options) {
        detail::check_n("SGD", n_params);
        validate(opt_);
        if (opt_.momentum != T(0)) state_.momentum_buffer.setZero(n_);
    }

    static void validate(const Options& o) {
        detail::require_lr("SGD", static_cast<double>(o.lr));
        detail::require(detail::unit_half_open(o.momentum), "SGD", "momentum", "in [0, 1)", o.momentum);
        detail::require(detail::unit_closed(o.dampening), "SGD", "dampening", "in [0, 1]", o.dampening);
        detail::require(detail::finite_nonneg(o.weight_decay), "SGD", "weight_decay", "finite and >= 0",
                        o.weight_decay);
        if (o.nesterov && (o.momentum <= T(0) || o.dampening != T(0))) {
            throw ConfigError("SGD: nesterov requires momentum > 0 and dampening = 0, got momentum = " +
                              detail::to_text(o.momentum) +
                              ", dampening = " + detail::to_text(o.dampening));
        }
    }

    Index size() const { return n_; }
    const Options& options() const { return opt_; }
    const State& state() const { return state_; }

    void step(VecRef<T> params, VecCRef<T> grads) {
        detail::check_step("SGD", n_, params, grads);
        auto p = params.array();
        const auto g = grads.array();
        // Branch rather than add 0 * theta, so that wd = 0 matches torch bit for bit.
        if (opt_.weight_decay != T(0)) {
            update(p, g + opt_.weight_decay * p);
        } else {
            update(p, g);
        }
        ++state_.step;
    }

    void reset() {
        state_.momentum_buffer.setZero();
        state_.step = 0;
    }
    void set_lr(T lr) {
        detail::require_lr("SGD", static_cast<double>(lr));
        opt_.lr = lr;
    }
    T lr() const { return opt_.lr; }

    template <class V>
    void visit_state(V&& v) {
        if (opt_.momentum != T(0)) {
            v(state_tensor("momentum_buffer", state_.momentum_buffer.data(),
                           {static_cast<std::int64_t>(n_)}));
        }
        v(state_tensor("step", &state_.step, {}));
    }

private:
    // Every expression is coefficient-wise, so reading theta inside `d` while writing it is safe.
    template <class P, class D>
    void update(P& p, const D& d) {
        const T lr = opt_.lr, mu = opt_.momentum;
        if (mu == T(0)) {
            p -= lr * d;
            return;
        }
        auto b = state_.momentum_buffer.array();
        if (state_.step == 0) {
            b = d;  // torch: the buffer starts as a copy of the first gradient (no dampening)
        } else {
            b = mu * b + (T(1) - opt_.dampening) * d;
        }
        if (opt_.nesterov) {
            p -= lr * (d + mu * b);
        } else {
            p -= lr * b;
        }
    }

    Index n_;
    Options opt_;
    State state_;
};

}  // namespace persist::optim
