#pragma once
/// @file records.hpp
/// The vocabulary types that cross module boundaries: what an environment returns from a step,
/// what a replay buffer stores and samples, and what a shield reports for each decision.
/// Batches follow the library convention (core/types.hpp): one column per sample.
#include <cstdint>
#include <limits>

#include "persist/core/types.hpp"

namespace persist {

/// Result of Environment::reset / step, in Gymnasium semantics. `terminated` means the episode
/// ended inside the MDP (task over, or the agent left the viability set): do not bootstrap.
/// `truncated` means it was cut by a time limit: bootstrap from the next state.
/// Owned by the caller and reused every step, so stepping never allocates.
template <class T>
struct TimeStep {
    Vec<T> observation;  ///< o_t, the external observation (dim = observation_dim())
    Vec<T> internal;     ///< x_t, internal variables (dim = internal_dim(), may be 0)
    T reward = T(0);     ///< task reward r_task of the step that led here (0 after reset)
    bool terminated = false;
    bool truncated = false;

    bool done() const { return terminated || truncated; }
};

/// One transition as views into the caller's buffers, for ReplayBuffer::add (no copies made
/// until the buffer stores it). `margins` holds the per-constraint viability margins of
/// next_internal (positive = safe); it may be empty when there are no constraints.
template <class T>
struct TransitionView {
    VecCRef<T> observation;
    VecCRef<T> internal;
    VecCRef<T> action;
    T reward;  ///< r_total used for learning
    VecCRef<T> next_observation;
    VecCRef<T> next_internal;
    bool terminated;
    bool truncated;
    T r_task = T(0);
    T r_homeo = T(0);
    T r_intr = T(0);
    VecCRef<T> margins = Vec<T>();
};

/// A sampled minibatch, preallocated by the caller and filled by ReplayBuffer::sample.
/// Every matrix has one column per sample; scalars per sample are 1 x B rows.
template <class T>
struct TransitionBatch {
    Mat<T> observation, internal, action, next_observation, next_internal;
    RowVec<T> reward, terminated, truncated;  ///< flags stored as 0/1
    RowVec<T> r_task, r_homeo, r_intr;
    Mat<T> margins;  ///< num_constraints x B

    Index size() const { return action.cols(); }

    /// Shape every member for `batch` samples; allocates only when a shape changes.
    void resize(Index obs_dim, Index internal_dim, Index action_dim, Index num_constraints, Index batch) {
        ensure_shape(observation, obs_dim, batch);
        ensure_shape(next_observation, obs_dim, batch);
        ensure_shape(internal, internal_dim, batch);
        ensure_shape(next_internal, internal_dim, batch);
        ensure_shape(action, action_dim, batch);
        ensure_shape(margins, num_constraints, batch);
        for (RowVec<T>* r : {&reward, &terminated, &truncated, &r_task, &r_homeo, &r_intr})
            ensure_shape(*r, 1, batch);
    }
};

/// What a shield did with one proposed action; feeds the metrics (trigger rate) and makes each
/// decision explainable.
template <class T>
struct ShieldDecision {
    bool projected = false;        ///< the proposed action was replaced
    bool feasible = true;          ///< the returned action reaches the confidence target
    T probability = T(1);          ///< estimated Pr(x_{t+1:t+h} in V) for the returned action
    T distance = T(0);             ///< ||a_safe - a||_2
    std::int32_t binding_constraint = -1;  ///< index of the constraint that binds (-1: none)
    /// Bit k: constraint k was given up as unavoidable within the horizon (no action found kept
    /// it; RolloutShieldOptions::relax_unavoidable), and `feasible` / `probability` refer to the
    /// remaining constraints. 0 otherwise.
    std::uint32_t relaxed = 0;
};

}  // namespace persist
