#pragma once
/// @file optimizer.hpp
/// The optimizer contract of PERSIST and the null optimizer to copy when writing your own.
///
/// An optimizer updates one flat parameter vector from one flat gradient vector of the same
/// length (see nn/: every network exposes its parameters and gradients that way). The optimizer
/// object holds its hyperparameters (`options()`, validated at construction) and its per-run
/// state (moments, step count: `state()`), which `reset()` zeroes and `visit_state` exposes to
/// checkpoints (core/state.hpp protocol). `step` never allocates.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

namespace persist::optim {

namespace detail {

template <class V>
std::string to_text(const V& v) {
    std::ostringstream os;
    os.precision(10);
    os << v;
    return os.str();
}

/// Throws ConfigError "<who>: <param> must be <what>, got <value>" unless `ok`.
template <class V>
void require(bool ok, const char* who, const char* param, const char* what, const V& value) {
    if (!ok) {
        throw ConfigError(std::string(who) + ": " + param + " must be " + what + ", got " +
                          to_text(value));
    }
}

// Predicates written so that NaN fails every one of them.
template <class V>
bool finite_nonneg(V x) {
    return std::isfinite(static_cast<double>(x)) && x >= V(0);
}
template <class V>
bool finite_pos(V x) {
    return std::isfinite(static_cast<double>(x)) && x > V(0);
}
/// x in [0, 1): moment decay rates (a rate of 1 never forgets, so it is rejected).
template <class V>
bool unit_half_open(V x) {
    return x >= V(0) && x < V(1);
}
/// x in [0, 1].
template <class V>
bool unit_closed(V x) {
    return x >= V(0) && x <= V(1);
}

inline void require_lr(const char* who, double lr) {
    require(finite_nonneg(lr), who, "lr", "finite and >= 0", lr);
}

inline void check_n(const char* who, Index n) {
    require(n >= 1, who, "n_params", ">= 1", n);
}

/// ShapeError "<who>::step: <arg>: expected n x 1, got m x 1".
inline void check_size(const char* who, const char* arg, Index expected, Index got) {
    if (expected != got) {
        persist::detail::throw_shape(std::string(who) + "::step: " + arg, expected, 1, got, 1);
    }
}

template <class T>
void check_step(const char* who, Index n, const VecRef<T>& params, const VecCRef<T>& grads) {
    check_size(who, "params", n, params.size());
    check_size(who, "grads", n, grads.size());
}

}  // namespace detail

/// What Lookahead<>, SAM<> and schedules need of the optimizer they wrap or drive: the core
/// contract persist::Optimizer<O, T> (core/concepts.hpp: step, reset, visit_state) plus the
/// scalar it works in, its size and a settable learning rate.
/// @code
///   using scalar_type = float | double;
///   Index size() const;                            // number of parameters it was built for
///   void step(VecRef<T> params, VecCRef<T> grads); // one update, no allocation
///   void reset();                                  // back to freshly constructed state
///   void set_lr(T); T lr() const;                  // what a schedule drives
///   template <class V> void visit_state(V&&);      // core/state.hpp protocol
/// @endcode
template <class O>
concept OptimizerWithLr = HasScalar<O> && persist::Optimizer<O, scalar_of<O>> &&
                          requires(O& o, const O& co, scalar_of<O> lr) {
                              { co.size() } -> std::convertible_to<Index>;
                              o.set_lr(lr);
                              { co.lr() } -> std::convertible_to<scalar_of<O>>;
                          };

/// Hyperparameters of NullOptimizer: a plain aggregate with defaults (namespace scope so that
/// `{.lr = ...}` designated initializers work), validated in the constructor.
template <class T>
struct NullOptimizerOptions {
    T lr = T(0);
};

/// The null optimizer: leaves the parameters unchanged. Use it to freeze a network, and as the
/// template for your own optimizer: copy this class, keep the members, fill in `step`.
/// @tparam T float or double.
template <class T>
class NullOptimizer {
    static_assert(Real<T>,
                  "persist::optim::NullOptimizer<T>: T must be float or double (docs/optim.md)");

public:
    using scalar_type = T;
    using Options = NullOptimizerOptions<T>;
    /// Per-run state: everything `reset()` zeroes and a checkpoint saves.
    struct State {
        std::int64_t step = 0;
    };

    explicit NullOptimizer(Index n_params, const Options& options = {}) : n_(n_params), opt_(options) {
        detail::check_n("NullOptimizer", n_params);
        detail::require_lr("NullOptimizer", static_cast<double>(opt_.lr));
    }

    Index size() const { return n_; }
    const Options& options() const { return opt_; }
    const State& state() const { return state_; }

    /// Check shapes, update the state, write the new parameters. Allocate nothing here: size
    /// every buffer in the constructor.
    void step(VecRef<T> params, VecCRef<T> grads) {
        detail::check_step("NullOptimizer", n_, params, grads);
        ++state_.step;
    }
    void reset() { state_ = State{}; }
    void set_lr(T lr) {
        detail::require_lr("NullOptimizer", static_cast<double>(lr));
        opt_.lr = lr;
    }
    T lr() const { return opt_.lr; }

    /// One call per piece of state, fixed order, unique names.
    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("step", &state_.step, {}));
    }

private:
    Index n_;
    Options opt_;
    State state_;
};

}  // namespace persist::optim
