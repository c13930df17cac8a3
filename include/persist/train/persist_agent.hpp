#pragma once
/// @file persist_agent.hpp
/// PersistAgent: the PERSIST training loop (seed section 3) composed from policy-based parts.
/// Each environment step:
///
///     s       = [o; x]                  (the policy sees [o] only when policy_sees_internal = false,
///                                        [o; x_hat] with estimate_internal and a state estimator)
///     a       = policy.act(s)           (uniform in the action box before learning_starts)
///     a_safe  = shield.project(a, o, x)   (x_hat with a state estimator)
///     o', x', r_task, terminated, truncated = env.step(a_safe)
///     x_hat'  = estimator.step(o, a_safe, o')   (with a state estimator, when not terminated)
///     r_homeo = homeostat.reward(x')
///     r_intr  = intrinsic.reward([o; x], a_safe, o')
///     r_total = r_task + lambda_H r_homeo + lambda_I r_intr
///     m       = margins of x' under the viability ConstraintSet (positive = safe)
///     replay.add(o, x, a_safe, r_total, o', x', terminated, truncated; r_task, r_homeo, r_intr, m)
///     near_boundary.offer(x', m)
///     every update_every steps (once steps >= learning_starts and the replay holds a batch):
///         with a trainable state estimator: estimator_updates updates on replay sequences;
///         gradient_steps times: batch ~ replay; intrinsic.update(batch) (k-step intrinsics:
///             also one sequence update from the replay); shield.update(batch, near_boundary)
///             when the shield learns (shield::LearnedShield); policy.update(batch)
///
/// `terminated` and `truncated` are stored apart; learners bootstrap on !terminated only. With a
/// Curriculum installed, lambda_H and lambda_I follow it every step and the constraint set
/// (and the environment's termination bounds, when it has `set_bounds`) at every episode start.
/// After warm-up (first reset, first update at the batch size) a step allocates nothing.
///
/// Checkpoints: `save(path)` / `load(path)` write and restore the whole agent (policy,
/// intrinsic, shield, homeostat, replay, near-boundary buffer, metrics, counters, RNG streams,
/// lambdas, the constraint set in force and, with a Stateful environment such as GridLife, the
/// running episode), so that N steps, save, M steps equals load, M steps bitwise. With an
/// environment that has no visit_state, checkpoints are taken between episodes only.
/// docs/train.md has the equations, the options table and an example; docs/checkpoint.md,
/// "Resuming a PersistAgent", the checkpoint contents.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"
#include "persist/core/state.hpp"
#include "persist/homeostasis/homeostat.hpp"
#include "persist/io/checkpoint.hpp"
#include "persist/models/any_state_estimator.hpp"
#include "persist/models/state_estimator.hpp"
#include "persist/replay/near_boundary.hpp"
#include "persist/replay/ring_replay.hpp"
#include "persist/train/checkpointing.hpp"
#include "persist/train/curriculum.hpp"
#include "persist/train/metrics.hpp"
#include "persist/viability/constraints.hpp"

namespace persist::train {

/// Options of PersistAgent (a plain aggregate; table in docs/train.md).
struct AgentOptions {
    double lambda_homeo = 0.7;           ///< lambda_H (seed default); overridden by a curriculum
    double lambda_intr = 0.3;            ///< lambda_I (seed default); overridden by a curriculum
    Index batch_size = 256;              ///< minibatch of each update, >= 1
    Index update_every = 64;             ///< environment steps between update rounds, >= 1
    Index gradient_steps = 0;            ///< updates per round; 0 = update_every (one per env step)
    std::int64_t learning_starts = 1000; ///< no updates before this many env steps, >= 0
    bool random_actions_before_learning = true;  ///< uniform actions in the box before learning_starts
    Index replay_capacity = 100'000;     ///< default RingReplay capacity, >= batch_size
    bool policy_sees_internal = true;    ///< s = [o; x]; false: s = [o] (partial observability)
    /// With policy_sees_internal = false: the policy sees s = [o; x_hat], x_hat from the state
    /// estimator installed with set_state_estimator (partial observability with a belief over x).
    bool estimate_internal = false;
    /// Updates of a trainable state estimator per update round (each on its batch_size()
    /// sequences), >= 1; a filter that does not learn (the EKF) ignores it. Once per round, not per gradient step: a GRU update over sequences
    /// costs far more than a SAC step, and x's dynamics do not change with the policy.
    Index estimator_updates = 1;
    bool sync_env_bounds = true;         ///< push the constraint set's per-variable bounds to env.set_bounds
    Index near_boundary_capacity = 10'000;  ///< >= 1
    double near_boundary_epsilon = 0.05;    ///< band (0, epsilon) of the near-boundary buffer
    double recovery_epsilon = 0.05;         ///< metrics: near-boundary band of the recovery rate
    std::int64_t recovery_horizon = 10;     ///< metrics: h of the recovery rate
    std::uint64_t seed = 0;              ///< episode seeds, random actions, replay sampling
};

/// AgentOptions as JSON (recorded in agent checkpoints, compared on load).
inline nlohmann::json to_json(const AgentOptions& o) {
    nlohmann::json j{{"lambda_homeo", o.lambda_homeo},
                          {"lambda_intr", o.lambda_intr},
                          {"batch_size", static_cast<std::int64_t>(o.batch_size)},
                          {"update_every", static_cast<std::int64_t>(o.update_every)},
                          {"gradient_steps", static_cast<std::int64_t>(o.gradient_steps)},
                          {"learning_starts", o.learning_starts},
                          {"random_actions_before_learning", o.random_actions_before_learning},
                          {"replay_capacity", static_cast<std::int64_t>(o.replay_capacity)},
                          {"policy_sees_internal", o.policy_sees_internal},
                          {"sync_env_bounds", o.sync_env_bounds},
                          {"near_boundary_capacity", static_cast<std::int64_t>(o.near_boundary_capacity)},
                          {"near_boundary_epsilon", o.near_boundary_epsilon},
                          {"recovery_epsilon", o.recovery_epsilon},
                          {"recovery_horizon", o.recovery_horizon},
                          {"seed", o.seed}};
    if (o.estimate_internal) {  // absent when false: older checkpoints load
        j["estimate_internal"] = true;
        j["estimator_updates"] = static_cast<std::int64_t>(o.estimator_updates);
    }
    return j;
}

/// What one call of PersistAgent::step did.
/// How PersistAgent::evaluate_episode picks actions: the policy's mean action, or samples.
enum class EvalActions { deterministic, sampled };

template <class T>
struct StepResult {
    T r_task = T(0), r_homeo = T(0), r_intr = T(0), r_total = T(0);
    bool terminated = false, truncated = false;
    ShieldDecision<T> shield{};
    Index updates = 0;                        ///< policy updates made after this step
    const EpisodeRecord* episode = nullptr;   ///< the finished episode's metrics when it ended
};

namespace detail {
template <class P, class T>
concept UpdateReportsEntropy = requires(P& p, const TransitionBatch<T>& b) {
    { p.update(b).entropy } -> std::convertible_to<double>;
};
template <class E, class T>
concept HasSetBounds = requires(E& e, Index j, T lo, T hi) { e.set_bounds(j, lo, hi); };
/// A shield that learns from the agent's data (shield::LearnedShield): trained at every gradient
/// step on the replay batch and the near-boundary buffer (seed loop: internal_model.update,
/// viability_approx.update(near_boundary_buffer)).
template <class S, class T>
concept LearningShield = requires(S& s, const TransitionBatch<T>& b, const replay::NearBoundaryBuffer<T>* nb) {
    s.update(b, nb);
};
/// An intrinsic estimator trained on k-step sequences (intrinsic::Empowerment with k > 1):
/// one sequence update from the replay per gradient step.
/// A replay that samples contiguous sequences (replay::RingReplay): what a state estimator trains on.
template <class R, class T>
concept SequenceReplay = requires(const R& r, Index n, Index len, Rng& rng, replay::SequenceBatch<T>& out) {
    r.sample_sequences(n, len, rng, out);
};
template <class I, class R>
concept SequenceIntrinsic = requires(I& i, R& r, Index n, Rng& rng) {
    { i.k() } -> std::convertible_to<Index>;
    i.update_from_replay(r, n, rng);
};
}  // namespace detail

/// The PERSIST agent.
/// @tparam Env    persist::ContinuousEnvironment (GridLife, Pendulum, your own)
/// @tparam P      persist::Policy (agents::SAC, ...), state layout s = [o; x]
/// @tparam S      persist::Shield (shield::NullShield, ...)
/// @tparam I      persist::Intrinsic (intrinsic::NoIntrinsic, Surprise, RND)
/// @tparam Homeo  persist::Homeostat (default homeostasis::Homeostat<T>)
/// @tparam Replay persist::ReplayBuffer (default replay::RingReplay<T>)
/// The parameters are unconstrained on purpose: the static_asserts below then say in plain
/// English which part does not fit and where the contract is documented.
template <class Env, class P, class S, class I, class Homeo = homeostasis::Homeostat<typename Env::scalar_type>,
          class Replay = replay::RingReplay<typename Env::scalar_type>>
class PersistAgent {
    static_assert(Environment<Env>,
                  "PersistAgent<Env, ...>: Env is not a persist::Environment (needs scalar_type, observation_dim(), "
                  "internal_dim(), max_episode_steps(), reset(seed, TimeStep&), step(a, TimeStep&); see "
                  "docs/concepts.md, 'EnvironmentBase')");
    static_assert(ContinuousEnvironment<Env>,
                  "PersistAgent<Env, ...>: Env must have continuous (Box) actions: action_dim(), action_low(), "
                  "action_high(), step(VecCRef a, TimeStep&). Discrete environments are not supported by the "
                  "agent yet (docs/concepts.md, 'ContinuousEnvironment')");
    using T_ = scalar_of<Env>;
    static_assert(Policy<P>,
                  "PersistAgent<Env, P, ...>: P is not a persist::Policy (needs scalar_type, state_dim(), "
                  "action_dim(), act(s, a, rng), act_deterministic(s, a), update(batch), visit_state(v); see "
                  "docs/concepts.md, 'Policy')");
    static_assert(Shield<S>,
                  "PersistAgent<Env, P, S, ...>: S is not a persist::Shield (needs scalar_type and "
                  "ShieldDecision<T> project(a, o, x, a_safe); see docs/concepts.md, 'Shield'; "
                  "shield::NullShield<T> passes actions through)");
    static_assert(Intrinsic<I>,
                  "PersistAgent<Env, P, S, I, ...>: I is not a persist::Intrinsic (needs scalar_type, "
                  "reward(s, a, o_next, out) and update(batch); see docs/concepts.md, 'Intrinsic'; "
                  "intrinsic::NoIntrinsic<T> turns it off)");
    static_assert(Homeostat<Homeo>,
                  "PersistAgent<..., Homeo>: Homeo is not a persist::Homeostat (needs scalar_type, dim(), "
                  "reward(x), gradient(x, grad); see docs/concepts.md, 'Homeostat')");
    static_assert(ReplayBuffer<Replay>,
                  "PersistAgent<..., Replay>: Replay is not a persist::ReplayBuffer (needs scalar_type, size(), "
                  "capacity(), add(TransitionView), sample(n, rng, batch), clear(); see docs/concepts.md, "
                  "'ReplayBuffer')");
    static_assert(std::same_as<scalar_of<P>, T_> && std::same_as<scalar_of<S>, T_> && std::same_as<scalar_of<I>, T_> &&
                      std::same_as<scalar_of<Homeo>, T_> && std::same_as<scalar_of<Replay>, T_>,
                  "PersistAgent: every part must compute in the environment's scalar_type (all float or all "
                  "double; docs/concepts.md, 'HasScalar')");

public:
    using scalar_type = T_;
    using T = T_;
    using env_type = Env;
    using policy_type = P;
    using shield_type = S;
    using intrinsic_type = I;
    using homeostat_type = Homeo;
    using replay_type = Replay;
    using Set = viability::ConstraintSet<T>;
    using EpisodeCallback = std::function<void(const EpisodeRecord&)>;

    /// Build with the default replay (RingReplay(opt.replay_capacity, dims of env and constraints)).
    PersistAgent(Env env, P policy, S shield, I intrinsic, Homeo homeostat, Set constraints, const AgentOptions& opt = {})
        requires std::constructible_from<Replay, Index, replay::ReplayDims>
        : PersistAgent(std::move(env), std::move(policy), std::move(shield), std::move(intrinsic), std::move(homeostat),
                       std::move(constraints), std::optional<Replay>{}, opt) {}

    /// Build with a replay buffer of your own (sized for the environment and the constraints).
    PersistAgent(Env env, P policy, S shield, I intrinsic, Homeo homeostat, Set constraints, Replay replay,
                 const AgentOptions& opt)
        : PersistAgent(std::move(env), std::move(policy), std::move(shield), std::move(intrinsic), std::move(homeostat),
                       std::move(constraints), std::optional<Replay>(std::move(replay)), opt) {}

    // --- configuration ------------------------------------------------------------------------
    /// Install a curriculum; from the next episode start it drives the constraint set, the
    /// environment's bounds, and (every step) lambda_H and lambda_I.
    void set_curriculum(Curriculum<T> c) {
        if (c.target().num_constraints() != constraints_.num_constraints() || c.target().dim() != constraints_.dim())
            throw ConfigError("PersistAgent::set_curriculum: the curriculum's target set has " +
                              std::to_string(c.target().num_constraints()) + " constraints over " +
                              std::to_string(c.target().dim()) + " variables, the agent's has " +
                              std::to_string(constraints_.num_constraints()) + " over " +
                              std::to_string(constraints_.dim()));
        curriculum_.emplace(std::move(c));
        update_lambdas();
    }
    /// Install the belief over x the policy acts on (AgentOptions::estimate_internal): any
    /// persist::StateEstimator of scalar T (models::GruStateEstimator, models::ExtendedKalmanFilter,
    /// or a user's own). From the next episode, s = [o; x_hat] with x_hat_0 =
    /// estimator.begin_episode(o_0) and x_hat_{t+1} = estimator.step(o_t, a_t, o_{t+1}) (a_t the
    /// action the environment executed, after the shield); a TrainableStateEstimator also gets,
    /// in every update round, AgentOptions::estimator_updates updates on batch_size() sequences
    /// of sequence_length() steps sampled from the replay with their true x. The policy and the
    /// critics still train on the replay's true x (certainty equivalence: the estimate stands in
    /// for x when acting). Part of checkpoints; install it before load(). Between episodes only.
    template <class E>
        requires StateEstimator<std::decay_t<E>> && std::same_as<scalar_of<std::decay_t<E>>, T>
    void set_state_estimator(E&& estimator) {
        models::AnyStateEstimator<T> est(std::forward<E>(estimator));
        if (!opt_.estimate_internal)
            throw ConfigError("PersistAgent::set_state_estimator: AgentOptions.estimate_internal is false (the "
                              "policy would not read the estimate); set it, with policy_sees_internal = false");
        if constexpr (!detail::SequenceReplay<Replay, T>) {
            if (est.trainable())
                throw ConfigError("PersistAgent::set_state_estimator: the Replay type has no sample_sequences (the "
                                  "estimator trains on sequences; replay::RingReplay has it)");
        }
        if (est.obs_dim() != O_ || est.state_dim() != X_)
            throw ShapeError("PersistAgent::set_state_estimator: the estimator maps " + std::to_string(est.obs_dim()) +
                             " observations to " + std::to_string(est.state_dim()) +
                             " internal variables, the environment has " + std::to_string(O_) + " and " +
                             std::to_string(X_));
        if (in_episode_)
            throw Error("PersistAgent::set_state_estimator: an episode is running; install it before the first "
                        "step or between episodes");
        est_.emplace(std::move(est));
        sp_.setZero(O_ + X_);
    }
    /// The installed estimator (nullptr without one); `state_estimator()->target<E>()` gives the
    /// concrete E back.
    const models::AnyStateEstimator<T>* state_estimator() const { return est_ ? &*est_ : nullptr; }
    /// The loss of the last estimator update (NaN before the first).
    double state_estimator_loss() const { return est_loss_; }

    void clear_curriculum() { curriculum_.reset(); lambda_h_ = T(opt_.lambda_homeo); lambda_i_ = T(opt_.lambda_intr); }
    /// Called with each finished episode's metrics (e.g. to write JSON lines).
    void on_episode_end(EpisodeCallback cb) { on_episode_ = std::move(cb); }

    // --- the loop -------------------------------------------------------------------------------
    /// One environment step (starting an episode first when none is running), storage, and
    /// the update round when one is due.
    StepResult<T> step() {
        if (resync_) resync();
        if (!in_episode_) begin_episode();
        update_lambdas();
        StepResult<T> res;
        // 1. act on s (random in the box during warm-up), 2. shield.
        if (steps_ < opt_.learning_starts && opt_.random_actions_before_learning) {
            for (Index i = 0; i < A_; ++i) a_[i] = low_[i] + (high_[i] - low_[i]) * rng_.template uniform<T>();
        } else {
            policy_.act(policy_input(), a_, rng_);
        }
        res.shield = shield_.project(a_, o_, shield_internal(), a_safe_);
        // 3. environment.
        env_.step(a_safe_, ts_);
        // 4. rewards.
        const T r_task = ts_.reward;
        const T r_homeo = X_ > 0 ? static_cast<T>(homeo_.reward(ts_.internal)) : T(0);
        intrinsic_.reward(Eigen::Map<const Mat<T>>(s_.data(), s_.size(), 1),
                          Eigen::Map<const Mat<T>>(a_safe_.data(), A_, 1),
                          Eigen::Map<const Mat<T>>(ts_.observation.data(), O_, 1), r_intr_buf_);
        const T r_intr = r_intr_buf_[0];
        const T r_total = r_task + lambda_h_ * r_homeo + lambda_i_ * r_intr;
        // 5. margins of x', replay, near-boundary buffer, metrics.
        if (K_ > 0)
            constraints_.margins(Eigen::Map<const Mat<T>>(ts_.internal.data(), X_, 1),
                                 Eigen::Map<Mat<T>>(margins_.data(), K_, 1));
        replay_.add(TransitionView<T>{o_, x_, a_safe_, r_total, ts_.observation, ts_.internal, ts_.terminated,
                                      ts_.truncated, r_task, r_homeo, r_intr, margins_});
        if (near_) near_->offer(ts_.internal, margins_);
        metrics_.record_step(constraints_, ts_.internal, margins_, r_task, r_homeo, r_intr, r_total, res.shield.projected);
        ++steps_;
        // 6. learn.
        if (steps_ >= opt_.learning_starts && steps_ % opt_.update_every == 0 && replay_.size() >= opt_.batch_size) {
            if (est_)
                for (Index k = 0; k < opt_.estimator_updates; ++k) update_estimator();
            for (Index g = 0; g < gradient_steps_; ++g) {
                replay_.sample(opt_.batch_size, rng_, batch_);
                intrinsic_.update(batch_);
                if constexpr (detail::SequenceIntrinsic<I, Replay>) {
                    if (intrinsic_.k() > 1) intrinsic_.update_from_replay(replay_, opt_.batch_size, rng_);
                }
                if constexpr (detail::LearningShield<S, T>) shield_.update(batch_, near_ ? &*near_ : nullptr);
                double entropy = std::numeric_limits<double>::quiet_NaN();
                if constexpr (detail::UpdateReportsEntropy<P, T>) {
                    entropy = static_cast<double>(policy_.update(batch_).entropy);
                } else {
                    policy_.update(batch_);
                }
                metrics_.record_update(entropy);
                ++updates_;
                ++res.updates;
            }
        }
        res.r_task = r_task;
        res.r_homeo = r_homeo;
        res.r_intr = r_intr;
        res.r_total = r_total;
        res.terminated = ts_.terminated;
        res.truncated = ts_.truncated;
        // 7. next state, or close the episode.
        if (ts_.terminated || ts_.truncated) {
            const auto& rec = metrics_.end_episode(constraints_, ts_.internal, ts_.terminated, ts_.truncated,
                                                   double(lambda_h_), double(lambda_i_), progress());
            ++episodes_;
            in_episode_ = false;
            if (on_episode_) on_episode_(rec);
            res.episode = &rec;
        } else {
            if (est_) est_->step(o_, a_safe_, ts_.observation);
            o_ = ts_.observation;
            x_ = ts_.internal;
            fill_state();
        }
        // The action stream is (seed, position) between steps: drop a cached Box-Muller spare
        // (a policy drawing an odd number of normals leaves one), so a checkpoint taken here
        // restores the stream exactly.
        rng_.set_position(rng_.position());
        rng_pos_ = rng_.position();
        return res;
    }

    /// `steps` environment steps (episodes continue across calls).
    void train(std::int64_t steps) {
        for (std::int64_t i = 0; i < steps; ++i) step();
    }

    /// Evaluation episode (shield on, no storage, no learning); returns the undiscounted task
    /// return and writes the length. `actions`: EvalActions::deterministic acts with
    /// policy.act_deterministic (the mean action), EvalActions::sampled with policy.act drawing
    /// from a stream of its own seeded by `seed` (the training streams are not touched, so
    /// evaluating does not change what training does next). Interrupts any running training
    /// episode (the next step() starts a new one).
    double evaluate_episode(std::uint64_t seed, std::int64_t* length = nullptr,
                            EvalActions actions = EvalActions::deterministic) {
        Rng eval_rng(seed, kEvalStream);
        in_episode_ = false;
        env_.reset(seed, ts_);
        o_ = ts_.observation;
        x_ = ts_.internal;
        if (est_) est_->begin_episode(o_);
        fill_state();
        double ret = 0;
        std::int64_t len = 0;
        while (true) {
            if (actions == EvalActions::sampled)
                policy_.act(policy_input(), a_, eval_rng);
            else
                policy_.act_deterministic(policy_input(), a_);
            shield_.project(a_, o_, shield_internal(), a_safe_);
            env_.step(a_safe_, ts_);
            ret += double(ts_.reward);
            ++len;
            if (ts_.terminated || ts_.truncated) break;
            if (est_) est_->step(o_, a_safe_, ts_.observation);
            o_ = ts_.observation;
            x_ = ts_.internal;
            fill_state();
        }
        if (length) *length = len;
        return ret;
    }

    // --- inspection -----------------------------------------------------------------------------
    Env& env() { return env_; }
    P& policy() { return policy_; }
    S& shield() { return shield_; }
    I& intrinsic() { return intrinsic_; }
    Homeo& homeostat() { return homeo_; }
    Replay& replay() { return replay_; }
    const Replay& replay() const { return replay_; }
    /// The near-boundary buffer (absent when the constraint set is empty or x has no dims).
    replay::NearBoundaryBuffer<T>* near_boundary() { return near_ ? &*near_ : nullptr; }
    /// The constraint set in force (the curriculum's current one when installed).
    const Set& constraints() const { return constraints_; }
    MetricsTracker<T>& metrics() { return metrics_; }
    const MetricsTracker<T>& metrics() const { return metrics_; }
    const AgentOptions& options() const { return opt_; }
    const std::optional<Curriculum<T>>& curriculum() const { return curriculum_; }
    std::int64_t total_steps() const { return steps_; }
    std::int64_t episodes() const { return episodes_; }
    std::int64_t updates() const { return updates_; }
    T lambda_homeo() const { return lambda_h_; }
    T lambda_intr() const { return lambda_i_; }
    double progress() const { return curriculum_ ? curriculum_->progress(steps_) : 1.0; }
    /// s = [o; x] of the current step (the policy reads its first policy_state_dim() rows).
    const Vec<T>& state() const { return s_; }
    Index policy_state_dim() const { return policy_state_dim_; }
    /// What the policy reads this step: [o; x], [o], or [o; x_hat] with a state estimator.
    VecCRef<T> policy_state() const { return policy_input(); }
    bool in_episode() const { return in_episode_ != 0; }
    /// Gradient steps per update round (options().gradient_steps, or update_every when 0).
    Index gradient_steps() const { return gradient_steps_; }

    // --- checkpoints ----------------------------------------------------------------------------
    /// State protocol: every part's state under a prefix ("policy.", "intrinsic.", "shield.",
    /// "homeostat.", "replay.", "near_boundary." when present, "metrics.", "env." when the
    /// environment is Stateful) and the agent's own: counters, the episode flag, both RNG
    /// streams (seed, position), lambdas, the constants of the constraint set in force, and
    /// the current s = [o; x]. Derived state (RNG objects, the constraint set, the
    /// environment's bounds) is rebuilt before the next step, so io::save_checkpoint /
    /// load_checkpoint on the agent work too; save/load below add the description checks.
    template <class V>
    void visit_state(V&& v) {
        static_assert(Stateful<I>, "PersistAgent checkpoints: the Intrinsic has no visit_state (add an empty "
                                   "`template <class V> void visit_state(V&&) {}` if it has no state; core/state.hpp)");
        static_assert(Stateful<S>, "PersistAgent checkpoints: the Shield has no visit_state (add an empty one if it "
                                   "has no state; core/state.hpp)");
        static_assert(Stateful<Homeo>, "PersistAgent checkpoints: the Homeostat has no visit_state (core/state.hpp)");
        static_assert(Stateful<Replay>, "PersistAgent checkpoints: the Replay buffer has no visit_state (core/state.hpp)");
        resync_ = true;
        visit_nested(policy_, "policy", v);
        visit_nested(intrinsic_, "intrinsic", v);
        visit_nested(shield_, "shield", v);
        visit_nested(homeo_, "homeostat", v);
        visit_nested(replay_, "replay", v);
        if (near_) visit_nested(*near_, "near_boundary", v);
        if (est_) visit_nested(*est_, "state_estimator", v);
        visit_nested(metrics_, "metrics", v);
        if constexpr (Stateful<Env>) visit_nested(env_, "env", v);
        v(state_tensor("steps", &steps_, {}));
        v(state_tensor("episodes", &episodes_, {}));
        v(state_tensor("updates", &updates_, {}));
        v(state_tensor("in_episode", &in_episode_, {}));
        v(state_tensor("rng_seed", &rng_seed_, {}));
        v(state_tensor("rng_position", &rng_pos_, {}));
        v(state_tensor("episode_rng_position", &episode_rng_pos_, {}));
        v(state_tensor("lambda_homeo", &lambda_h_, {}));
        v(state_tensor("lambda_intr", &lambda_i_, {}));
        v(state_tensor("constraint_constants", constants_.data(), {K_, 3}));
        v(state_tensor("observation", o_.data(), {O_}));
        v(state_tensor("internal", x_.data(), {X_}));
        v(state_tensor("state", s_.data(), {O_ + X_}));
    }

    /// True when save() may be called now: always with a Stateful environment, otherwise only
    /// between episodes (the running episode could not be restored).
    bool can_save() const { return Stateful<Env> || in_episode_ == 0; }

    /// What a checkpoint of this agent records about it, compared on load: kind, layout
    /// version, scalar type, dimensions, AgentOptions, the curriculum (or null), and whether
    /// the environment's state is included.
    nlohmann::json checkpoint_description() const {
        nlohmann::json d;
        d["kind"] = agent_checkpoint_kind;
        d["version"] = agent_checkpoint_version;
        d["scalar"] = dtype_name(dtype_of<T>());
        d["dims"] = {{"observation", static_cast<std::int64_t>(O_)}, {"internal", static_cast<std::int64_t>(X_)},
                     {"action", static_cast<std::int64_t>(A_)}, {"constraints", static_cast<std::int64_t>(K_)},
                     {"policy_state", static_cast<std::int64_t>(policy_state_dim_)}};
        d["options"] = to_json(opt_);
        d["curriculum"] = curriculum_ ? describe_curriculum(*curriculum_) : nlohmann::json(nullptr);
        if (est_) d["state_estimator"] = est_->describe();
        d["env_state"] = Stateful<Env>;
        return d;
    }

    /// Atomically write the whole agent to `path` (io/checkpoint.hpp), with `user` metadata
    /// (any JSON, returned by load). Saving does not change the run. persist::Error when the
    /// environment is not Stateful and an episode is running (see can_save());
    /// persist::CheckpointError when the file cannot be written (a previous file is kept).
    void save(const std::filesystem::path& path, const nlohmann::json& user = {}) {
        if (!can_save())
            throw Error("PersistAgent::save: the environment has no visit_state, so a checkpoint cannot hold the "
                        "running episode (step " + std::to_string(metrics_.episode_length()) + " of episode " +
                        std::to_string(episodes_) + "); save between episodes (can_save()) or make the "
                        "environment Stateful");
        nlohmann::json meta;
        meta[agent_checkpoint_key] = checkpoint_description();
        meta["total_steps"] = steps_;
        meta["episodes"] = episodes_;
        meta["user"] = user.is_null() ? nlohmann::json::object() : user;
        io::CheckpointWriter().add("", *this).save(path, meta);
    }

    /// Restore the agent from `path` and return the user metadata given to save. The agent
    /// must be built like the one that saved (same part types and shapes, AgentOptions and
    /// curriculum; install a curriculum with set_curriculum before loading). Transactional:
    /// persist::CheckpointError (a damaged file, another agent's description, names, dtypes or
    /// shapes that differ) leaves the agent unchanged. The next step() continues the saved
    /// run exactly (mid-episode with a Stateful environment).
    nlohmann::json load(const std::filesystem::path& path) {
        io::CheckpointReader r(path);  // reads and verifies the whole file
        check_agent_description(path, r.metadata(), checkpoint_description());
        r.add("", *this);
        const nlohmann::json meta = r.load();
        resync();
        return meta.contains("user") ? meta["user"] : nlohmann::json::object();
    }

private:
    static constexpr std::uint64_t kActStream = 0x7472, kEpisodeStream = 0x6570, kEvalStream = 0x6576;

    /// constants_ <- (threshold, lo, hi) of every constraint in force.
    void store_constants() {
        for (Index k = 0; k < K_; ++k) {
            const auto& c = constraints_.constraint(k);
            constants_[3 * k] = c.threshold;
            constants_[3 * k + 1] = c.lo;
            constants_[3 * k + 2] = c.hi;
        }
    }
    static bool same_constants(const Set& set, const Vec<T>& c) {
        for (Index k = 0; k < set.num_constraints(); ++k) {
            const auto& lc = set.constraint(k);
            if (!(lc.threshold == c[3 * k] && lc.lo == c[3 * k + 1] && lc.hi == c[3 * k + 2])) return false;
        }
        return true;
    }

    /// Rebuild what visit_state does not hold (a no-op right after a save): the RNG objects
    /// from (seed, position), the constraint set from its constants, the environment's bounds.
    void resync() {
        resync_ = false;
        rng_ = Rng(rng_seed_, kActStream);
        rng_.set_position(rng_pos_);
        episode_rng_ = Rng(rng_seed_, kEpisodeStream);
        episode_rng_.set_position(episode_rng_pos_);
        if (est_) {  // the policy's input from the restored observation and estimate
            sp_.head(O_) = o_;
            sp_.tail(X_) = est_->estimate();
        }
        if (K_ > 0 && !same_constants(constraints_, constants_)) {
            if (same_constants(base_constraints_, constants_)) {
                constraints_ = base_constraints_;
            } else {
                // A curriculum's set: the base set's structure with the saved constants
                // (canonical texts, as ConstraintSet::interpolate writes them).
                std::vector<viability::LinearConstraint<T>> cons;
                for (Index k = 0; k < K_; ++k) {
                    auto c = base_constraints_.constraint(k);
                    c.threshold = constants_[3 * k];
                    c.lo = constants_[3 * k + 1];
                    c.hi = constants_[3 * k + 2];
                    c.text.clear();
                    cons.push_back(std::move(c));
                }
                try {
                    constraints_ = Set::from_parsed(base_constraints_.variable_names(), std::move(cons));
                } catch (const ConfigError& e) {
                    throw CheckpointError(std::string("PersistAgent: restored constraint constants are invalid: ") +
                                          e.what());
                }
            }
        }
        sync_env_bounds();
    }

    static Replay make_replay(std::optional<Replay>& given, const Env& env, const Set& c, const AgentOptions& opt) {
        if (given) return std::move(*given);
        if constexpr (std::constructible_from<Replay, Index, replay::ReplayDims>) {
            return Replay(opt.replay_capacity,
                          replay::ReplayDims{static_cast<Index>(env.observation_dim()), static_cast<Index>(env.internal_dim()),
                                             static_cast<Index>(env.action_dim()), c.num_constraints()});
        } else {
            throw ConfigError("PersistAgent: this Replay type cannot be built from (capacity, ReplayDims); pass one");
        }
    }

    PersistAgent(Env env, P policy, S shield, I intrinsic, Homeo homeostat, Set constraints,
                 std::optional<Replay> replay, const AgentOptions& opt)
        : env_(std::move(env)), policy_(std::move(policy)), shield_(std::move(shield)),
          intrinsic_(std::move(intrinsic)), homeo_(std::move(homeostat)), constraints_(std::move(constraints)),
          replay_(make_replay(replay, env_, constraints_, validated(opt))), opt_(validated(opt)),
          metrics_(constraints_, opt_.recovery_epsilon, opt_.recovery_horizon),
          rng_(opt_.seed, kActStream), episode_rng_(opt_.seed, kEpisodeStream), base_constraints_(constraints_) {
        O_ = static_cast<Index>(env_.observation_dim());
        X_ = static_cast<Index>(env_.internal_dim());
        A_ = static_cast<Index>(env_.action_dim());
        K_ = constraints_.num_constraints();
        if (K_ > 0 && constraints_.dim() != X_)
            throw ShapeError("PersistAgent: the constraint set is over " + std::to_string(constraints_.dim()) +
                             " variables, the environment has internal_dim() = " + std::to_string(X_));
        if (homeo_.dim() != X_)
            throw ShapeError("PersistAgent: homeostat.dim() = " + std::to_string(homeo_.dim()) +
                             ", the environment has internal_dim() = " + std::to_string(X_));
        policy_state_dim_ = opt_.policy_sees_internal || opt_.estimate_internal ? O_ + X_ : O_;
        if (static_cast<Index>(policy_.state_dim()) != policy_state_dim_)
            throw ShapeError("PersistAgent: policy.state_dim() = " + std::to_string(policy_.state_dim()) +
                             ", expected " + std::to_string(policy_state_dim_) +
                             (opt_.policy_sees_internal  ? " = observation_dim + internal_dim (s = [o; x])"
                              : opt_.estimate_internal ? " = observation_dim + internal_dim (s = [o; x_hat], "
                                                         "estimate_internal)"
                                                       : " = observation_dim (policy_sees_internal = false)"));
        if (static_cast<Index>(policy_.action_dim()) != A_)
            throw ShapeError("PersistAgent: policy.action_dim() = " + std::to_string(policy_.action_dim()) +
                             ", the environment has action_dim() = " + std::to_string(A_));
        if (replay_.capacity() < opt_.batch_size)
            throw ConfigError("PersistAgent: replay capacity " + std::to_string(replay_.capacity()) +
                              " is smaller than batch_size " + std::to_string(opt_.batch_size));
        gradient_steps_ = opt_.gradient_steps > 0 ? opt_.gradient_steps : opt_.update_every;
        low_ = env_.action_low().template cast<T>();
        high_ = env_.action_high().template cast<T>();
        if (low_.size() != A_ || high_.size() != A_)
            throw ShapeError("PersistAgent: action_low()/action_high() must have action_dim() entries");
        o_.setZero(O_);
        x_.setZero(X_);
        s_.setZero(O_ + X_);
        a_.setZero(A_);
        a_safe_.setZero(A_);
        margins_.setZero(K_);
        r_intr_buf_.setZero(1);
        batch_.resize(O_, X_, A_, K_, opt_.batch_size);
        if (K_ > 0 && X_ > 0)
            near_.emplace(replay::NearBoundaryOptions<T>{.capacity = opt_.near_boundary_capacity,
                                                         .internal_dim = X_,
                                                         .observation_dim = 0,
                                                         .epsilon = static_cast<T>(opt_.near_boundary_epsilon),
                                                         .seed = opt_.seed});
        lambda_h_ = static_cast<T>(opt_.lambda_homeo);
        lambda_i_ = static_cast<T>(opt_.lambda_intr);
        constants_.setZero(3 * K_);
        store_constants();
        rng_seed_ = opt_.seed;
        sync_env_bounds();
    }

    static AgentOptions validated(const AgentOptions& o) {
        auto bad = [](const char* f, const std::string& v, const char* e) {
            throw ConfigError(std::string("AgentOptions.") + f + " = " + v + ": expected " + e);
        };
        auto fin = [&](const char* f, double v) {
            if (!(std::isfinite(v) && v >= 0)) bad(f, std::to_string(v), "a finite value >= 0");
        };
        fin("lambda_homeo", o.lambda_homeo);
        fin("lambda_intr", o.lambda_intr);
        if (o.batch_size < 1) bad("batch_size", std::to_string(o.batch_size), ">= 1");
        if (o.update_every < 1) bad("update_every", std::to_string(o.update_every), ">= 1");
        if (o.gradient_steps < 0) bad("gradient_steps", std::to_string(o.gradient_steps), ">= 0 (0 = update_every)");
        if (o.learning_starts < 0) bad("learning_starts", std::to_string(o.learning_starts), ">= 0");
        if (o.estimator_updates < 1) bad("estimator_updates", std::to_string(o.estimator_updates), ">= 1");
        if (o.estimate_internal && o.policy_sees_internal)
            bad("estimate_internal", "true", "false while policy_sees_internal is true (the policy sees x itself)");
        if (o.replay_capacity < o.batch_size)
            bad("replay_capacity", std::to_string(o.replay_capacity), "at least batch_size");
        if (o.near_boundary_capacity < 1) bad("near_boundary_capacity", std::to_string(o.near_boundary_capacity), ">= 1");
        if (!(std::isfinite(o.near_boundary_epsilon) && o.near_boundary_epsilon > 0))
            bad("near_boundary_epsilon", std::to_string(o.near_boundary_epsilon), "a finite value > 0");
        return o;
    }

    void update_lambdas() {
        if (!curriculum_) return;
        lambda_h_ = curriculum_->lambda_homeo(steps_);
        lambda_i_ = curriculum_->lambda_intr(steps_);
    }

    void sync_env_bounds() {
        if constexpr (detail::HasSetBounds<Env, T>) {
            if (!opt_.sync_env_bounds || K_ == 0 || constraints_.dim() != X_) return;
            for (Index j = 0; j < X_; ++j) {
                const auto& b = constraints_.bounds(j);
                const T lo = b.bounded_below() ? b.lo : std::numeric_limits<T>::lowest();
                const T hi = b.bounded_above() ? b.hi : std::numeric_limits<T>::max();
                env_.set_bounds(j, lo, hi);
            }
        }
    }

    void begin_episode() {
        if (curriculum_) {
            curriculum_->apply(steps_, constraints_);
            store_constants();
            sync_env_bounds();
        }
        const std::uint64_t seed = episode_rng_.next_u64();
        episode_rng_pos_ = episode_rng_.position();
        env_.reset(seed, ts_);
        o_ = ts_.observation;
        x_ = ts_.internal;
        if (est_) est_->begin_episode(o_);
        fill_state();
        metrics_.begin_episode(episodes_, steps_);
        in_episode_ = true;
    }

    void fill_state() {
        if (O_ > 0) s_.head(O_) = o_;
        if (X_ > 0) s_.tail(X_) = x_;
        if (est_) {  // x_hat_t (the estimator has seen o_t), in the policy's input
            sp_.head(O_) = o_;
            sp_.tail(X_) = est_->estimate();
        }
    }

    /// The x the shield checks from: x, or x_hat with a state estimator (x is not observed then;
    /// the shield's models still train on the replay's true x, like the policy).
    VecCRef<T> shield_internal() const {
        if (est_) return sp_.tail(X_);
        return x_;
    }

    /// What the policy reads: [o; x] or [o] (the head of s_), or [o; x_hat].
    VecCRef<T> policy_input() const {
        if (est_) return sp_;
        return s_.head(policy_state_dim_);
    }

    /// One estimator step on sequences from the replay (time-major, within one episode).
    void update_estimator() {
        if constexpr (detail::SequenceReplay<Replay, T>) {
            if (!est_->trainable()) return;
            const Index L = est_->sequence_length();
            if (replay_.size() < L) return;
            replay_.sample_sequences(est_->batch_size(), L, rng_, est_seq_);
            est_loss_ = est_->update(est_seq_.steps.observation, est_seq_.steps.internal);
        }
    }

    Env env_;
    P policy_;
    S shield_;
    I intrinsic_;
    Homeo homeo_;
    Set constraints_;
    Replay replay_;
    AgentOptions opt_;
    MetricsTracker<T> metrics_;
    std::optional<Curriculum<T>> curriculum_;
    std::optional<replay::NearBoundaryBuffer<T>> near_;
    Rng rng_, episode_rng_;
    // Checkpointed stream state (seed, positions) and constraint constants; see visit_state.
    std::uint64_t rng_seed_ = 0, rng_pos_ = 0, episode_rng_pos_ = 0;
    Set base_constraints_;  ///< the constructor's set (restored when constants_ equal it)
    Vec<T> constants_;      ///< (threshold, lo, hi) per constraint of constraints_
    bool resync_ = false;   ///< visit_state ran: rebuild derived state before the next step
    Index O_ = 0, X_ = 0, A_ = 0, K_ = 0, policy_state_dim_ = 0, gradient_steps_ = 1;
    Vec<T> low_, high_, o_, x_, s_, a_, a_safe_, margins_, r_intr_buf_;
    Vec<T> sp_;  ///< [o; x_hat] with a state estimator
    std::optional<models::AnyStateEstimator<T>> est_;
    replay::SequenceBatch<T> est_seq_;
    double est_loss_ = std::numeric_limits<double>::quiet_NaN();
    TimeStep<T> ts_;
    TransitionBatch<T> batch_;
    T lambda_h_ = T(0), lambda_i_ = T(0);
    std::int64_t steps_ = 0, episodes_ = 0, updates_ = 0;
    std::uint64_t in_episode_ = 0;  // u64: a checkpoint dtype
    EpisodeCallback on_episode_;
};

}  // namespace persist::train
