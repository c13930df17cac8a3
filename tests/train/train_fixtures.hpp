#pragma once
// Small custom types for the PersistAgent tests: a user-written environment, policy and
// intrinsic reward, each the minimum the concepts ask for (docs/concepts.md). They double as
// the compile test "custom types plug into PersistAgent".
#include <cmath>
#include <cstdint>

#include <persist/core/concepts.hpp>
#include <persist/core/records.hpp>

namespace traintest {

using persist::Index;
using persist::Vec;

/// One internal variable "energy": energy' = energy - drain + gain * a, task reward = a.
/// Terminates when energy < floor (the constraint "energy >= floor"), truncates at horizon.
/// Observation o = [position, energy].
struct CorridorEnv {
    using scalar_type = double;
    double drain = 0.05, gain = 0.1, floor = 0.2;
    Index horizon = 20;
    double pos = 0, energy = 0.7;
    Index t = 0;

    Index observation_dim() const { return 2; }
    Index internal_dim() const { return 1; }
    Index max_episode_steps() const { return horizon; }
    Index action_dim() const { return 1; }
    Vec<double> action_low() const { return Vec<double>::Constant(1, -1.0); }
    Vec<double> action_high() const { return Vec<double>::Constant(1, 1.0); }

    void emit(persist::TimeStep<double>& ts, double r, bool term, bool trunc) const {
        persist::ensure_shape(ts.observation, 2, 1);
        persist::ensure_shape(ts.internal, 1, 1);
        ts.observation << pos, energy;
        ts.internal << energy;
        ts.reward = r;
        ts.terminated = term;
        ts.truncated = trunc;
    }
    void reset(std::uint64_t seed, persist::TimeStep<double>& ts) {
        pos = 0;
        energy = 0.7 + 0.01 * double(seed % 5);
        t = 0;
        emit(ts, 0.0, false, false);
    }
    void step(persist::VecCRef<double> a, persist::TimeStep<double>& ts) {
        pos += a[0];
        energy = energy - drain + gain * a[0];
        ++t;
        const bool term = energy < floor;
        emit(ts, a[0], term, !term && t >= horizon);
    }
};

/// Acts with a fixed action and counts updates; reports an entropy like SAC's stats.
struct FixedPolicy {
    using scalar_type = double;
    struct Stats {
        double entropy = 1.5;
    };
    Index S = 3;
    double action = 0.0;
    Index updates = 0;
    Index last_batch = 0;
    Index state_dim() const { return S; }
    Index action_dim() const { return 1; }
    void act(persist::VecCRef<double>, persist::VecRef<double> a, persist::Rng&) { a[0] = action; }
    void act_deterministic(persist::VecCRef<double>, persist::VecRef<double> a) { a[0] = action; }
    Stats update(const persist::TransitionBatch<double>& b) {
        ++updates;
        last_batch = b.size();
        return {};
    }
    template <class V>
    void visit_state(V&&) {}
};

/// r_intr = scale * o'_0 (so the test knows it exactly); counts updates.
struct PositionIntrinsic {
    using scalar_type = double;
    double scale = 0.5;
    Index updates = 0;
    void reward(persist::MatCRef<double>, persist::MatCRef<double>, persist::MatCRef<double> o_next,
                persist::VecRef<double> out) {
        for (Index j = 0; j < o_next.cols(); ++j) out[j] = scale * o_next(0, j);
    }
    void update(const persist::TransitionBatch<double>&) { ++updates; }
};

static_assert(persist::ContinuousEnvironment<CorridorEnv>);
static_assert(persist::Policy<FixedPolicy>);
static_assert(persist::Intrinsic<PositionIntrinsic>);

}  // namespace traintest
