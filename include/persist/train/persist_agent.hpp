#pragma once
/// @file persist_agent.hpp
/// PersistAgent: the PERSIST training loop (seed section 3) composed from policy-based parts.
/// Each environment step:
///
///     s       = [o; x]                  (the policy sees [o] only when policy_sees_internal = false)
///     a       = policy.act(s)           (uniform in the action box before learning_starts)
///     a_safe  = shield.project(a, o, x)
///     o', x', r_task, terminated, truncated = env.step(a_safe)
///     r_homeo = homeostat.reward(x')
///     r_intr  = intrinsic.reward([o; x], a_safe, o')
///     r_total = r_task + lambda_H r_homeo + lambda_I r_intr
///     m       = margins of x' under the viability ConstraintSet (positive = safe)
///     replay.add(o, x, a_safe, r_total, o', x', terminated, truncated; r_task, r_homeo, r_intr, m)
///     near_boundary.offer(x', m)
///     every update_every steps (once steps >= learning_starts and the replay holds a batch):
///         gradient_steps times: batch ~ replay; intrinsic.update(batch); policy.update(batch)
///
/// `terminated` and `truncated` are stored apart; learners bootstrap on !terminated only. With a
/// Curriculum installed, lambda_H and lambda_I follow it every step and the constraint set
/// (and the environment's termination bounds, when it has `set_bounds`) at every episode start.
/// After warm-up (first reset, first update at the batch size) a step allocates nothing.
/// docs/train.md has the equations, the options table and an example.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"
#include "persist/homeostasis/homeostat.hpp"
#include "persist/replay/near_boundary.hpp"
#include "persist/replay/ring_replay.hpp"
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
    bool sync_env_bounds = true;         ///< push the constraint set's per-variable bounds to env.set_bounds
    Index near_boundary_capacity = 10'000;  ///< >= 1
    double near_boundary_epsilon = 0.05;    ///< band (0, epsilon) of the near-boundary buffer
    double recovery_epsilon = 0.05;         ///< metrics: near-boundary band of the recovery rate
    std::int64_t recovery_horizon = 10;     ///< metrics: h of the recovery rate
    std::uint64_t seed = 0;              ///< episode seeds, random actions, replay sampling
};

/// What one call of PersistAgent::step did.
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
    void clear_curriculum() { curriculum_.reset(); lambda_h_ = T(opt_.lambda_homeo); lambda_i_ = T(opt_.lambda_intr); }
    /// Called with each finished episode's metrics (e.g. to write JSON lines).
    void on_episode_end(EpisodeCallback cb) { on_episode_ = std::move(cb); }

    // --- the loop -------------------------------------------------------------------------------
    /// One environment step (starting an episode first when none is running), storage, and
    /// the update round when one is due.
    StepResult<T> step() {
        if (!in_episode_) begin_episode();
        update_lambdas();
        StepResult<T> res;
        // 1. act on s (random in the box during warm-up), 2. shield.
        if (steps_ < opt_.learning_starts && opt_.random_actions_before_learning) {
            for (Index i = 0; i < A_; ++i) a_[i] = low_[i] + (high_[i] - low_[i]) * rng_.template uniform<T>();
        } else {
            policy_.act(s_.head(policy_state_dim_), a_, rng_);
        }
        res.shield = shield_.project(a_, o_, x_, a_safe_);
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
            for (Index g = 0; g < gradient_steps_; ++g) {
                replay_.sample(opt_.batch_size, rng_, batch_);
                intrinsic_.update(batch_);
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
            o_ = ts_.observation;
            x_ = ts_.internal;
            fill_state();
        }
        return res;
    }

    /// `steps` environment steps (episodes continue across calls).
    void train(std::int64_t steps) {
        for (std::int64_t i = 0; i < steps; ++i) step();
    }

    /// Deterministic evaluation episode (policy.act_deterministic, shield on, no storage, no
    /// learning); returns the undiscounted task return and writes the length. Interrupts any
    /// running training episode (the next step() starts a new one).
    double evaluate_episode(std::uint64_t seed, std::int64_t* length = nullptr) {
        in_episode_ = false;
        env_.reset(seed, ts_);
        o_ = ts_.observation;
        x_ = ts_.internal;
        fill_state();
        double ret = 0;
        std::int64_t len = 0;
        while (true) {
            policy_.act_deterministic(s_.head(policy_state_dim_), a_);
            shield_.project(a_, o_, x_, a_safe_);
            env_.step(a_safe_, ts_);
            ret += double(ts_.reward);
            ++len;
            if (ts_.terminated || ts_.truncated) break;
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
    bool in_episode() const { return in_episode_; }
    /// Gradient steps per update round (options().gradient_steps, or update_every when 0).
    Index gradient_steps() const { return gradient_steps_; }

private:
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
          rng_(opt_.seed, /*stream=*/0x7472), episode_rng_(opt_.seed, /*stream=*/0x6570) {
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
        policy_state_dim_ = opt_.policy_sees_internal ? O_ + X_ : O_;
        if (static_cast<Index>(policy_.state_dim()) != policy_state_dim_)
            throw ShapeError("PersistAgent: policy.state_dim() = " + std::to_string(policy_.state_dim()) +
                             ", expected " + std::to_string(policy_state_dim_) +
                             (opt_.policy_sees_internal ? " = observation_dim + internal_dim (s = [o; x])"
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
            sync_env_bounds();
        }
        const std::uint64_t seed = episode_rng_.next_u64();
        env_.reset(seed, ts_);
        o_ = ts_.observation;
        x_ = ts_.internal;
        fill_state();
        metrics_.begin_episode(episodes_, steps_);
        in_episode_ = true;
    }

    void fill_state() {
        if (O_ > 0) s_.head(O_) = o_;
        if (X_ > 0) s_.tail(X_) = x_;
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
    Index O_ = 0, X_ = 0, A_ = 0, K_ = 0, policy_state_dim_ = 0, gradient_steps_ = 1;
    Vec<T> low_, high_, o_, x_, s_, a_, a_safe_, margins_, r_intr_buf_;
    TimeStep<T> ts_;
    TransitionBatch<T> batch_;
    T lambda_h_ = T(0), lambda_i_ = T(0);
    std::int64_t steps_ = 0, episodes_ = 0, updates_ = 0;
    bool in_episode_ = false;
    EpisodeCallback on_episode_;
};

}  // namespace persist::train
