#pragma once
// Shared helpers of the SAC tests: random transition batches and bitwise comparisons.
#include <cstdint>
#include <cstring>

#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"

namespace sactest {

using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::TransitionBatch;
using persist::Vec;

/// A batch with observations/internal in U(-1, 1), actions inside [low, high], rewards in
/// U(-2, 1), and about a quarter of the transitions terminated / truncated (independently).
template <class T>
TransitionBatch<T> random_batch(Index obs, Index internal, const Vec<T>& low, const Vec<T>& high,
                                Index B, Rng& rng) {
    TransitionBatch<T> b;
    b.resize(obs, internal, low.size(), 0, B);
    auto fill = [&](auto& m, double lo, double hi) {
        for (Index k = 0; k < m.size(); ++k) m.data()[k] = static_cast<T>(rng.uniform<double>(lo, hi));
    };
    fill(b.observation, -1, 1);
    fill(b.next_observation, -1, 1);
    fill(b.internal, -1, 1);
    fill(b.next_internal, -1, 1);
    for (Index j = 0; j < B; ++j)
        for (Index i = 0; i < low.size(); ++i)
            b.action(i, j) = static_cast<T>(rng.uniform<double>(double(low(i)), double(high(i))));
    fill(b.reward, -2, 1);
    for (Index j = 0; j < B; ++j) {
        b.terminated(0, j) = rng.uniform<double>() < 0.25 ? T(1) : T(0);
        b.truncated(0, j) = rng.uniform<double>() < 0.25 ? T(1) : T(0);
    }
    b.r_task = b.reward;
    b.r_homeo.setZero();
    b.r_intr.setZero();
    return b;
}

/// Same size and the same bytes (NaN-safe, -0 != +0).
template <class A, class B>
bool bitwise_equal(const A& a, const B& b) {
    return a.size() == b.size() &&
           std::memcmp(a.data(), b.data(), sizeof(*a.data()) * static_cast<std::size_t>(a.size())) == 0;
}

/// Every parameter vector, log alpha and the update counter of two agents are bitwise equal.
template <class Agent>
bool same_params(const Agent& x, const Agent& y) {
    return bitwise_equal(x.actor().params(), y.actor().params()) &&
           bitwise_equal(x.q1().params(), y.q1().params()) &&
           bitwise_equal(x.q2().params(), y.q2().params()) &&
           bitwise_equal(x.q1_target().params(), y.q1_target().params()) &&
           bitwise_equal(x.q2_target().params(), y.q2_target().params()) &&
           x.log_alpha() == y.log_alpha() && x.updates() == y.updates();
}

// The small double agent of the gradient and update-order tests: s = [3 observation entries;
// 2 internal], 2 actions on the box [-2, 2] x [-1, 3].
inline constexpr Index kObs = 3, kInt = 2, kAct = 2;
inline Vec<double> low_d() { return (Vec<double>(2) << -2.0, -1.0).finished(); }
inline Vec<double> high_d() { return (Vec<double>(2) << 2.0, 3.0).finished(); }

/// A small double agent whose target critics differ from the online ones and alpha != 1, so
/// every term of every loss is exercised.
template <class Agent>
Agent small_agent(std::uint64_t seed = 3) {
    typename Agent::Options o;
    o.hidden = {12, 10};
    o.init_alpha = 0.3;
    o.seed = seed;
    Agent sac(kObs, kInt, low_d(), high_d(), o);
    Rng rng(seed + 100);
    for (auto* net : {&sac.q1_target(), &sac.q2_target()})
        for (Index k = 0; k < net->params().size(); ++k) net->params()(k) += rng.uniform<double>(-0.2, 0.2);
    return sac;
}

}  // namespace sactest
