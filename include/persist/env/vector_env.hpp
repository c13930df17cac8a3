#pragma once
/// @file vector_env.hpp
/// VectorEnv<Env>: N independent copies of an environment stepped together, with batched,
/// caller-owned results (one column per copy, the library's batch convention) and
/// automatic reset.
///
/// Seeds (Gymnasium's vector envs use seed + i for copy i; we extend that to every episode):
///   episode k (k = 0, 1, ...) of copy i is reset with  episode_seed(seed, N, i, k) = seed + i + k N
/// so the N copies of one VectorEnv never share an episode seed, and copy i is exactly a
/// standalone Env reset with that sequence of seeds (tests/env/test_vector_env.cpp).
///
/// Autoreset: "same-step" (Gymnasium's AutoresetMode.SAME_STEP). When copy i ends at a step,
/// that step's reward / terminated / truncated are reported, the observation and internal
/// state it ended in go to final_observation / final_internal column i, and observation /
/// internal column i already hold the first state of the next episode. Every step is thus a
/// usable transition: (obs, action, reward, done ? final_obs : next obs, terminated).
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"

namespace persist::env {

/// Batched result of VectorEnv::reset / step: one column per copy. Owned by the caller and
/// reused every step (shaped on the first reset, never reallocated afterwards).
template <class T>
struct VectorTimeStep {
    using Flags = Eigen::Matrix<bool, 1, Eigen::Dynamic>;
    Mat<T> observation;        ///< obs_dim x N: current observation (a new episode's if done)
    Mat<T> internal;           ///< internal_dim x N
    RowVec<T> reward;          ///< 1 x N: task reward of the step just taken (0 after reset)
    Flags terminated;          ///< 1 x N
    Flags truncated;           ///< 1 x N
    Mat<T> final_observation;  ///< obs_dim x N: where an episode ended (columns with done only)
    Mat<T> final_internal;     ///< internal_dim x N (columns with done only)

    Index size() const { return reward.cols(); }
    bool done(Index i) const { return terminated[i] || truncated[i]; }
};

/// N copies of Env stepped in lock step with same-step autoreset.
/// @tparam Env a persist::Environment (continuous: step takes an action_dim x N matrix;
///             discrete: a span of N action indices). Copies are made from a prototype, so Env
///             must be copy-constructible.
template <class Env>
class VectorEnv {
    static_assert(Environment<Env>,
                  "persist::env::VectorEnv<Env>: Env must model persist::Environment "
                  "(core/concepts.hpp, docs/environments.md)");

public:
    using env_type = Env;
    using scalar_type = scalar_of<Env>;
    using T = scalar_type;

    /// N copies of `prototype` (N >= 1). Nothing runs until reset().
    VectorEnv(Index num_envs, const Env& prototype) {
        if (num_envs < 1)
            throw ConfigError("VectorEnv: num_envs = " + std::to_string(num_envs) + ": expected >= 1");
        envs_.assign(static_cast<std::size_t>(num_envs), prototype);
        steps_.resize(static_cast<std::size_t>(num_envs));
        episodes_.assign(static_cast<std::size_t>(num_envs), 0);
    }

    /// Seed of episode k of copy i in a VectorEnv of N copies reset with `seed`.
    static constexpr std::uint64_t episode_seed(std::uint64_t seed, Index num_envs, Index i,
                                                std::uint64_t k) noexcept {
        return seed + static_cast<std::uint64_t>(i) + k * static_cast<std::uint64_t>(num_envs);
    }

    Index num_envs() const noexcept { return static_cast<Index>(envs_.size()); }
    Index observation_dim() const { return envs_.front().observation_dim(); }
    Index internal_dim() const { return envs_.front().internal_dim(); }
    Index max_episode_steps() const { return envs_.front().max_episode_steps(); }

    /// Copy i (for inspection, or to change it at run time, e.g. curriculum bounds).
    Env& env(Index i) { return envs_.at(static_cast<std::size_t>(i)); }
    const Env& env(Index i) const { return envs_.at(static_cast<std::size_t>(i)); }
    /// Apply f(Env&) to every copy (e.g. `for_each([](auto& e) { e.set_bounds(0, .3, 1); })`).
    template <class F>
    void for_each(F&& f) {
        for (auto& e : envs_) f(e);
    }
    /// Episodes started so far by copy i (1 after reset()).
    std::uint64_t episodes_started(Index i) const { return episodes_.at(static_cast<std::size_t>(i)); }

    /// Reset every copy: copy i starts episode 0 with seed + i.
    void reset(std::uint64_t seed, VectorTimeStep<T>& out) {
        seed_ = seed;
        shape(out);
        for (Index i = 0; i < num_envs(); ++i) {
            auto& ts = steps_[static_cast<std::size_t>(i)];
            episodes_[static_cast<std::size_t>(i)] = 0;
            start_episode(i, ts);
            out.observation.col(i) = ts.observation;
            out.internal.col(i) = ts.internal;
            out.reward[i] = T(0);
            out.terminated[i] = out.truncated[i] = false;
        }
        started_ = true;
    }

    /// Step every copy with column i of `actions` (action_dim x N). Never allocates.
    void step(MatCRef<T> actions, VectorTimeStep<T>& out)
        requires ContinuousEnvironment<Env>
    {
        check_started();
        if (actions.rows() != envs_.front().action_dim() || actions.cols() != num_envs())
            persist::detail::throw_shape("VectorEnv::step: actions",
                                         static_cast<long>(envs_.front().action_dim()),
                                         static_cast<long>(num_envs()), static_cast<long>(actions.rows()),
                                         static_cast<long>(actions.cols()));
        check_out(out);
        for (Index i = 0; i < num_envs(); ++i) {
            auto& ts = steps_[static_cast<std::size_t>(i)];
            envs_[static_cast<std::size_t>(i)].step(
                VecCRef<T>(Eigen::Map<const Vec<T>>(actions.data() + i * actions.outerStride(), actions.rows())),
                ts);
            finish(i, ts, out);
        }
    }

    /// Step every copy with action index actions[i]. Never allocates.
    void step(std::span<const Index> actions, VectorTimeStep<T>& out)
        requires DiscreteEnvironment<Env>
    {
        check_started();
        if (static_cast<Index>(actions.size()) != num_envs())
            persist::detail::throw_shape("VectorEnv::step: actions", 1, static_cast<long>(num_envs()), 1,
                                         static_cast<long>(actions.size()));
        check_out(out);
        for (Index i = 0; i < num_envs(); ++i) {
            auto& ts = steps_[static_cast<std::size_t>(i)];
            envs_[static_cast<std::size_t>(i)].step(actions[static_cast<std::size_t>(i)], ts);
            finish(i, ts, out);
        }
    }

private:
    void start_episode(Index i, TimeStep<T>& ts) {
        auto& k = episodes_[static_cast<std::size_t>(i)];
        envs_[static_cast<std::size_t>(i)].reset(episode_seed(seed_, num_envs(), i, k), ts);
        ++k;
    }

    void finish(Index i, TimeStep<T>& ts, VectorTimeStep<T>& out) {
        out.reward[i] = ts.reward;
        out.terminated[i] = ts.terminated;
        out.truncated[i] = ts.truncated;
        if (ts.done()) {
            out.final_observation.col(i) = ts.observation;
            out.final_internal.col(i) = ts.internal;
            start_episode(i, ts);  // same-step autoreset
        }
        out.observation.col(i) = ts.observation;
        out.internal.col(i) = ts.internal;
    }

    void shape(VectorTimeStep<T>& out) const {
        const Index n = num_envs(), od = observation_dim(), id = internal_dim();
        ensure_shape(out.observation, od, n);
        ensure_shape(out.internal, id, n);
        ensure_shape(out.final_observation, od, n);
        ensure_shape(out.final_internal, id, n);
        ensure_shape(out.reward, 1, n);
        ensure_shape(out.terminated, 1, n);
        ensure_shape(out.truncated, 1, n);
    }
    void check_out(const VectorTimeStep<T>& out) const {
        if (out.observation.cols() != num_envs() || out.observation.rows() != observation_dim() ||
            out.reward.cols() != num_envs() || out.terminated.cols() != num_envs() ||
            out.truncated.cols() != num_envs() || out.internal.cols() != num_envs() ||
            out.final_observation.cols() != num_envs() || out.final_internal.cols() != num_envs())
            persist::detail::throw_shape("VectorEnv::step: out.observation (pass the VectorTimeStep "
                                         "given to reset())",
                                         static_cast<long>(observation_dim()), static_cast<long>(num_envs()),
                                         static_cast<long>(out.observation.rows()),
                                         static_cast<long>(out.observation.cols()));
    }
    void check_started() const {
        if (!started_) throw Error("VectorEnv::step: called before reset()");
    }

    std::vector<Env> envs_;
    std::vector<TimeStep<T>> steps_;
    std::vector<std::uint64_t> episodes_;
    std::uint64_t seed_ = 0;
    bool started_ = false;
};

}  // namespace persist::env
