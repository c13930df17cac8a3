#pragma once
// An analytic search shield for the amortized-shield tests and benchmark. Actions live in the
// box [-1, 1]^3; a is safe iff a0 + a1 <= c(o, x) = 0.3 - 0.2 o0 + 0.5 x0 (a2 is free), so
// c ranges over [0.1, 1.0] for o0 in [-1, 1], x0 in [0, 1]. `probability` is 1 or 0 and
// `project` is the Euclidean projection onto the half-plane a0 + a1 <= c - margin (inside the
// safe set, as a search with a confidence target lands strictly inside). With c - margin >= 0
// that projection stays inside the box: a'_i = (a_i - a_j + c - margin) / 2 >= -1.
// With `empty_above` < 1, states with x1 > empty_above have NO safe action: probability 0,
// project returns the same half-plane projection flagged infeasible (the "safest found").
#include <cmath>
#include <cstdint>

#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"

namespace amortizedtest {

using persist::Index;
using persist::ShieldDecision;
using persist::Vec;
using persist::VecCRef;
using persist::VecRef;

inline constexpr Index kObs = 3, kInt = 2, kAct = 3;

template <class T>
struct HalfPlaneSearch {
    using scalar_type = T;
    double margin = 0.05;
    double empty_above = 2.0;  // x1 > empty_above: no safe action (never, by default)
    std::int64_t project_calls = 0;
    std::int64_t probability_calls = 0;

    static T limit(VecCRef<T> o, VecCRef<T> x) {
        return static_cast<T>(0.3) - static_cast<T>(0.2) * o[0] + static_cast<T>(0.5) * x[0];
    }
    bool empty(VecCRef<T> x) const { return static_cast<double>(x[1]) > empty_above; }
    bool safe(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x) const {
        return !empty(x) && a[0] + a[1] <= limit(o, x);
    }
    /// The projection alone (no counters): a_safe = a - d (1, 1, 0), d = (a0 + a1 - c + m) / 2.
    void projection(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x, VecRef<T> out) const {
        out = a;
        if (!empty(x) && safe(a, o, x)) return;
        const T d = (a[0] + a[1] - (limit(o, x) - static_cast<T>(margin))) / T(2);
        if (d <= T(0)) return;  // already inside the tightened half-plane
        out[0] -= d;
        out[1] -= d;
    }

    T probability(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x) {
        ++probability_calls;
        return safe(a, o, x) ? T(1) : T(0);
    }
    ShieldDecision<T> project(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x, VecRef<T> a_safe) {
        ++project_calls;
        ShieldDecision<T> d;
        if (safe(a, o, x)) {
            a_safe = a;
            return d;
        }
        projection(a, o, x, a_safe);
        d.projected = true;
        d.feasible = !empty(x);
        d.probability = d.feasible ? T(1) : T(0);
        d.distance = (a_safe - a).norm();
        d.binding_constraint = 0;
        return d;
    }
};

/// A random state and action: o in [-1, 1]^3, x in [0, 1]^2, a in [-1, 1]^3.
template <class T>
struct Sample {
    Vec<T> o{kObs}, x{kInt}, a{kAct};
    void draw(persist::Rng& rng) {
        for (Index i = 0; i < kObs; ++i) o[i] = static_cast<T>(rng.uniform<double>(-1, 1));
        for (Index i = 0; i < kInt; ++i) x[i] = static_cast<T>(rng.uniform<double>(0, 1));
        for (Index i = 0; i < kAct; ++i) a[i] = static_cast<T>(rng.uniform<double>(-1, 1));
    }
};

template <class T>
Vec<T> box_low() {
    return Vec<T>::Constant(kAct, T(-1));
}
template <class T>
Vec<T> box_high() {
    return Vec<T>::Constant(kAct, T(1));
}

}  // namespace amortizedtest
