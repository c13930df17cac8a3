#pragma once
// Transitions whose every field encodes one id, so a sampled column can be checked for
// alignment (all fields from the same transition) and order.
#include <cstdint>

#include "persist/core/records.hpp"
#include "persist/replay/ring_replay.hpp"

namespace replaytest {

using persist::Index;
using persist::Mat;
using persist::Vec;

inline constexpr persist::replay::ReplayDims kDims{.observation = 3, .internal = 2, .action = 2, .constraints = 2};

/// Owns the vectors a TransitionView points into.
struct Owned {
    Vec<double> obs{3}, x{2}, a{2}, next_obs{3}, next_x{2}, margins{2};
    double reward = 0, r_task = 0, r_homeo = 0, r_intr = 0;
    bool terminated = false, truncated = false;

    explicit Owned(double id, bool term = false, bool trunc = false) {
        obs << id, id + 0.125, id + 0.25;
        x << -id, -id - 0.5;
        a << 2 * id, 2 * id + 1;
        next_obs << id + 1, id + 1.125, id + 1.25;
        next_x << -id - 1, -id - 1.5;
        margins << 0.001 * id, -0.001 * id;
        reward = 3 * id;
        r_task = 10 * id;
        r_homeo = -id;
        r_intr = id / 4;
        terminated = term;
        truncated = trunc;
    }
    persist::TransitionView<double> view() const {
        return {obs, x, a, reward, next_obs, next_x, terminated, truncated, r_task, r_homeo, r_intr, margins};
    }
};

/// The id of column b, after checking every field of the column agrees with it.
template <class Batch>
bool column_consistent(const Batch& bt, Index b, double& id) {
    id = bt.observation(0, b);
    const Owned o(id, bt.terminated(b) != 0, bt.truncated(b) != 0);
    return bt.observation.col(b) == o.obs && bt.internal.col(b) == o.x && bt.action.col(b) == o.a &&
           bt.next_observation.col(b) == o.next_obs && bt.next_internal.col(b) == o.next_x &&
           bt.margins.col(b) == o.margins && bt.reward(b) == o.reward && bt.r_task(b) == o.r_task &&
           bt.r_homeo(b) == o.r_homeo && bt.r_intr(b) == o.r_intr;
}

}  // namespace replaytest
