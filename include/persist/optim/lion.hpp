#pragma once
/// @file lion.hpp
/// Lion, "EvoLved Sign Momentum" (Chen et al. 2023, "Symbolic Discovery of Optimization
/// Algorithms", Algorithm 2). Only one moment is kept; every coordinate moves by exactly
/// +-lr (plus decay), so Lion wants a 3-10x smaller lr and larger weight decay than AdamW.
#include <cstdint>

#include "persist/optim/optimizer.hpp"

namespace persist::optim {

template <class T>
struct LionOptions {
    T lr = T(1e-4);           ///< eta
    T beta1 = T(0.9);         ///< interpolation of the update direction, [0, 1)
    T beta2 = T(0.99);        ///< momentum decay, [0, 1)
    T weight_decay = T(0);    ///< lambda >= 0, decoupled
};

/// Lion. Per step:
///   c = b1 m + (1 - b1) g,  theta <- theta - eta (sign(c) + lambda theta),  m = b2 m + (1 - b2) g.
/// sign(0) = 0.
/// @tparam T float or double.
template <class T>
class Lion {
    static_assert(Real<T>,
                  "persist::optim::Lion<T>: T must be float or double (docs/optim.md)");

public:
    using scalar_type = T;
    using Options = LionOptions<T>;
    struct State {
        Vec<T> m;
        std::int64_t step = 0;
    };

    explicit Lion(Index n_params, const Options& options = {}) : n_(n_params), opt_(options) {
        detail::check_n("Lion", n_params);
        validate(opt_);
        state_.m.setZero(n_);
    }

    static void validate(const Options& o) {
        detail::require_lr("Lion", static_cast<double>(o.lr));
        detail::require(detail::unit_half_open(o.beta1), "Lion", "beta1", "in [0, 1)", o.beta1);
        detail::require(detail::unit_half_open(o.beta2), "Lion", "beta2", "in [0, 1)", o.beta2);
        detail::require(detail::finite_nonneg(o.weight_decay), "Lion", "weight_decay",
                        "finite and >= 0", o.weight_decay);
    }

    Index size() const { return n_; }
    const Options& options() const { return opt_; }
    const State& state() const { return state_; }

    void step(VecRef<T> params, VecCRef<T> grads) {
        detail::check_step("Lion", n_, params, grads);
        auto p = params.array();
        const auto g = grads.array();
        auto m = state_.m.array();
        const T b1 = opt_.beta1, b2 = opt_.beta2, lr = opt_.lr, wd = opt_.weight_decay;
        p -= lr * ((b1 * m + (T(1) - b1) * g).sign() + wd * p);
        m = b2 * m + (T(1) - b2) * g;
        ++state_.step;
    }

    void reset() {
        state_.m.setZero();
        state_.step = 0;
    }
    void set_lr(T lr) {
        detail::require_lr("Lion", static_cast<double>(lr));
        opt_.lr = lr;
    }
    T lr() const { return opt_.lr; }

    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("m", state_.m.data(), {static_cast<std::int64_t>(n_)}));
        v(state_tensor("step", &state_.step, {}));
    }

private:
    Index n_;
    Options opt_;
    State state_;
};

}  // namespace persist::optim
