#pragma once
/// @file lookahead.hpp
/// Lookahead (Zhang, Lucas, Hinton & Ba 2019, "Lookahead Optimizer: k steps forward, 1 step
/// back", Algorithm 1) around any inner optimizer: the inner ("fast") optimizer takes k steps,
/// then the slow weights move a fraction alpha towards the fast weights and the fast weights
/// restart from there. The inner optimizer keeps its state across synchronisations (the
/// paper's default).
#include <cstdint>
#include <utility>

#include "persist/optim/optimizer.hpp"
#include "persist/optim/radam.hpp"

namespace persist::optim {

template <class T>
struct LookaheadOptions {
    Index k = 5;         ///< inner steps per synchronisation, >= 1
    T alpha = T(0.5);    ///< slow step size, (0, 1]
};

/// Lookahead<Inner>. Per step: inner.step(theta, g); every k-th step
///   phi <- phi + alpha (theta - phi),  theta <- phi.
/// The slow weights phi are taken from the parameters at the first step after construction
/// or reset().
/// @tparam Inner any type satisfying persist::optim::Optimizer, held by value (`inner()`).
template <class Inner>
class Lookahead {
    static_assert(OptimizerWithLr<Inner>,
                  "persist::optim::Lookahead<Inner>: Inner must satisfy persist::optim::OptimizerWithLr "
                  "(scalar_type, size, step, reset, set_lr, lr, visit_state; see docs/optim.md)");

public:
    using scalar_type = typename Inner::scalar_type;
    using T = scalar_type;
    using Options = LookaheadOptions<T>;
    struct State {
        Vec<T> slow;            ///< phi
        std::int64_t step = 0;  ///< inner steps since construction or reset
    };

    explicit Lookahead(Inner inner, const Options& options = {})
        : inner_(std::move(inner)), opt_(options) {
        validate(opt_);
        state_.slow.setZero(inner_.size());
    }

    static void validate(const Options& o) {
        detail::require(o.k >= 1, "Lookahead", "k", ">= 1", o.k);
        detail::require(o.alpha > T(0) && o.alpha <= T(1), "Lookahead", "alpha", "in (0, 1]", o.alpha);
    }

    Index size() const { return inner_.size(); }
    const Options& options() const { return opt_; }
    const State& state() const { return state_; }
    Inner& inner() { return inner_; }
    const Inner& inner() const { return inner_; }

    void step(VecRef<T> params, VecCRef<T> grads) {
        detail::check_step("Lookahead", size(), params, grads);
        if (state_.step == 0) state_.slow = params;  // phi_0 = theta_0
        inner_.step(params, grads);
        ++state_.step;
        if (state_.step % opt_.k == 0) {
            auto slow = state_.slow.array();
            slow += opt_.alpha * (params.array() - slow);
            params = state_.slow;
        }
    }

    /// Reset the inner optimizer too; the slow weights are re-taken at the next step.
    void reset() {
        inner_.reset();
        state_.slow.setZero();
        state_.step = 0;
    }
    void set_lr(T lr) { inner_.set_lr(lr); }
    T lr() const { return inner_.lr(); }

    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("slow", state_.slow.data(), {static_cast<std::int64_t>(state_.slow.size())}));
        v(state_tensor("step", &state_.step, {}));
        visit_nested(inner_, "inner", v);
    }

private:
    Inner inner_;
    Options opt_;
    State state_;
};

/// The seed guide's "Lookahead + RAdam": steady progress between fire events.
template <class T>
using LookaheadRAdam = Lookahead<RAdam<T>>;

}  // namespace persist::optim
