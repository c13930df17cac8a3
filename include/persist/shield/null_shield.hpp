#pragma once
/// @file null_shield.hpp
/// The pass-through shield: every proposed action is returned unchanged. Models persist::Shield
/// (core/concepts.hpp). Use it for baselines (no safety filter: the agent learns to stay viable
/// from the termination signal and the homeostatic reward alone) and as the template for a
/// shield of your own. Its decisions report projected = false, feasible = true,
/// probability = 1, distance = 0, binding_constraint = -1, so the shield trigger rate of a run
/// with NullShield is exactly 0.
#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"

namespace persist::shield {

/// a_safe = a. Models persist::Shield and persist::Stateful (no state).
template <class T>
class NullShield {
    static_assert(Real<T>, "persist::shield::NullShield<T>: T must be float or double");

public:
    using scalar_type = T;

    /// Copies `a` into `a_safe` (same size, else persist::ShapeError). `o` and `x` are unused.
    ShieldDecision<T> project(VecCRef<T> a, VecCRef<T> /*o*/, VecCRef<T> /*x*/, VecRef<T> a_safe) {
        if (a_safe.size() != a.size())
            persist::detail::throw_shape("NullShield::project: a_safe", static_cast<long>(a.size()), 1,
                                         static_cast<long>(a_safe.size()), 1);
        a_safe = a;
        return ShieldDecision<T>{};  // projected = false, feasible = true, probability = 1
    }

    template <class V>
    void visit_state(V&&) {}
};

}  // namespace persist::shield
