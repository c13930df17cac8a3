#pragma once
/// @file persist_config.hpp
/// PersistConfig: the typed tree of a PERSIST run, as written in config.yaml (seed, section 8)
/// plus the sections later modules read (curriculum, safety_network, demonstrations,
/// state_estimator, partial_observability, maintenance, metrics, checkpoint).
///
/// Every field has a default; where the seed gives a value, the default IS the seed's value,
/// so `PersistConfig{}` equals examples/configs/gridlife.yaml loaded. Each struct carries its
/// range rules in `validate(Checker&)`; PersistConfig::validate adds the cross-field checks
/// (mu / w sizes vs dims, constraints parsed over dims, curriculum widths per constraint, ...).
/// docs/config.md lists every key with its type, default, range and meaning.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "persist/config/reflect.hpp"
#include "persist/core/error.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/replay/near_boundary.hpp"
#include "persist/viability/constraints.hpp"

namespace persist::config {

// ------------------------------------------------------------------------------------------
// Enums (written by name)
// ------------------------------------------------------------------------------------------

/// train.algo: the `Policy` of PersistAgent.
enum class Algo : std::uint8_t { SAC, PPO, TD3 };
/// rewards.intrinsic: the `Intrinsic` of PersistAgent.
enum class IntrinsicKind : std::uint8_t { none, surprise, rnd, empowerment };
/// viability.shield.type: the `Shield` of PersistAgent.
enum class ShieldKind : std::uint8_t { none, rollout, amortized, cbf, ensemble };
/// What a learned rollout shield checks the predicted states against (viability.shield.check).
enum class ShieldCheck : std::uint8_t { approximator, constraints };
/// viability.shield.ensemble.vote: how an ensemble of viability models decides.
enum class EnsembleVote : std::uint8_t { veto_if_any_unsafe, majority_vote };
/// curriculum.schedule: progress s(t) from 0 to 1 over curriculum.total_steps.
enum class CurriculumSchedule : std::uint8_t { linear, cosine };
/// state_estimator.type: belief over x under partial observability.
enum class EstimatorKind : std::uint8_t { gru, ekf };
/// models.world_model.type.
enum class WorldModelKind : std::uint8_t { mlp, latent };

}  // namespace persist::config

template <>
struct persist::config::enum_names<persist::config::Algo> {
    using E = persist::config::Algo;
    static constexpr std::array<std::pair<E, std::string_view>, 3> table{{{E::SAC, "SAC"}, {E::PPO, "PPO"}, {E::TD3, "TD3"}}};
};
template <>
struct persist::config::enum_names<persist::config::IntrinsicKind> {
    using E = persist::config::IntrinsicKind;
    static constexpr std::array<std::pair<E, std::string_view>, 4> table{
        {{E::none, "none"}, {E::surprise, "surprise"}, {E::rnd, "rnd"}, {E::empowerment, "empowerment"}}};
};
template <>
struct persist::config::enum_names<persist::config::ShieldKind> {
    using E = persist::config::ShieldKind;
    static constexpr std::array<std::pair<E, std::string_view>, 5> table{{{E::none, "none"},
                                                                          {E::rollout, "rollout"},
                                                                          {E::amortized, "amortized"},
                                                                          {E::cbf, "cbf"},
                                                                          {E::ensemble, "ensemble"}}};
};
template <>
struct persist::config::enum_names<persist::config::ShieldCheck> {
    using E = persist::config::ShieldCheck;
    static constexpr std::array<std::pair<E, std::string_view>, 2> table{
        {{E::approximator, "approximator"}, {E::constraints, "constraints"}}};
};
template <>
struct persist::config::enum_names<persist::config::EnsembleVote> {
    using E = persist::config::EnsembleVote;
    static constexpr std::array<std::pair<E, std::string_view>, 2> table{
        {{E::veto_if_any_unsafe, "veto_if_any_unsafe"}, {E::majority_vote, "majority_vote"}}};
};
template <>
struct persist::config::enum_names<persist::config::CurriculumSchedule> {
    using E = persist::config::CurriculumSchedule;
    static constexpr std::array<std::pair<E, std::string_view>, 2> table{{{E::linear, "linear"}, {E::cosine, "cosine"}}};
};
template <>
struct persist::config::enum_names<persist::config::EstimatorKind> {
    using E = persist::config::EstimatorKind;
    static constexpr std::array<std::pair<E, std::string_view>, 2> table{{{E::gru, "gru"}, {E::ekf, "ekf"}}};
};
template <>
struct persist::config::enum_names<persist::config::WorldModelKind> {
    using E = persist::config::WorldModelKind;
    static constexpr std::array<std::pair<E, std::string_view>, 2> table{{{E::mlp, "mlp"}, {E::latent, "latent"}}};
};
// Enums of other modules that appear in the tree.
template <>
struct persist::config::enum_names<persist::env::GridLifeReward> {
    using E = persist::env::GridLifeReward;
    static constexpr std::array<std::pair<E, std::string_view>, 2> table{{{E::exploration, "exploration"}, {E::items, "items"}}};
};
template <>
struct persist::config::enum_names<persist::replay::Replacement> {
    using E = persist::replay::Replacement;
    static constexpr std::array<std::pair<E, std::string_view>, 2> table{{{E::reservoir, "reservoir"}, {E::ring, "ring"}}};
};

namespace persist::config {

/// Name of the GridLife environment in env.name.
inline constexpr std::string_view gridlife_env_name = "GridLife-v0";

namespace detail {
inline constexpr double lr_max = 10.0;  ///< learning rates: (0, 10]
inline constexpr double int32_max = static_cast<double>(std::numeric_limits<std::int32_t>::max());
}  // namespace detail

// ------------------------------------------------------------------------------------------
// env
// ------------------------------------------------------------------------------------------

/// `env:` which environment, and its options.
struct EnvConfig {
    std::string name = std::string(gridlife_env_name);  ///< environment id (seed: "GridLife-v0")
    std::int64_t horizon = 512;  ///< episode length (time limit, `truncated`), [1, 2^31-1]
    std::int64_t num_envs = 1;   ///< environments stepped together (VectorEnv), >= 1
    /// GridLife-v0 options (GridLifeConfig without `horizon`, which is env.horizon, and
    /// `partial_observability`, which is partial_observability.enabled). Absent: defaults.
    std::optional<env::GridLifeConfig> gridlife{};

    void validate(Checker& v) const {
        v.check(name, non_empty);
        v.check(horizon, in_closed(1, detail::int32_max));
        v.check(num_envs, positive);
        if (gridlife && name != gridlife_env_name)
            v.fail(gridlife, "the gridlife section configures GridLife-v0, but env.name is \"" + name + "\"");
    }
};

// ------------------------------------------------------------------------------------------
// internal_state
// ------------------------------------------------------------------------------------------

/// `internal_state:` the homeostatic variables x, their setpoints and weights.
struct InternalStateConfig {
    std::vector<std::string> dims{"energy", "temp", "integrity"};  ///< names of x_j, in order
    std::vector<double> mu{0.7, 0.5, 0.9};                         ///< setpoints, one per dim
    std::vector<double> w{1.0, 0.5, 1.5};                          ///< weights >= 0, one per dim

    void validate(Checker& v) const {
        v.check(dims, non_empty);
        for (std::size_t j = 0; j < dims.size(); ++j) {
            if (!viability::detail::valid_variable_name(dims[j]))
                v.fail_at(dims, j, "expected a variable name ([A-Za-z_][A-Za-z0-9_]*, not \"in\"), got \"" + dims[j] + "\"");
            for (std::size_t i = 0; i < j; ++i)
                if (dims[i] == dims[j])
                    v.fail_at(dims, j, "\"" + dims[j] + "\" repeats internal_state.dims[" + std::to_string(i) + "]");
        }
        v.each(w, non_negative);
        const auto n = std::to_string(dims.size());
        if (mu.size() != dims.size())
            v.fail(mu, "expected " + n + " values (one per internal_state.dims entry), got " + std::to_string(mu.size()));
        if (w.size() != dims.size())
            v.fail(w, "expected " + n + " values (one per internal_state.dims entry), got " + std::to_string(w.size()));
    }
};

// ------------------------------------------------------------------------------------------
// viability
// ------------------------------------------------------------------------------------------

/// `viability.shield.cem:` the cross-entropy search of the rollout shield's projection.
struct CemConfig {
    std::int64_t iterations = 4;   ///< CEM iterations per projection, >= 1
    std::int64_t population = 64;  ///< candidate actions per iteration, >= 1
    std::int64_t elites = 8;       ///< best candidates refitted, [1, population]
    double init_std = 0.5;         ///< initial std around the proposed action, > 0
    double momentum = 0.0;         ///< smoothing of the refitted mean/std, [0, 1)

    void validate(Checker& v) const {
        v.check(iterations, positive);
        v.check(population, positive);
        v.check(elites, positive);
        v.require(elites <= population, elites,
                  "expected at most viability.shield.cem.population = " + std::to_string(population) +
                      ", got " + std::to_string(elites));
        v.check(init_std, positive);
        v.check(momentum, in_closed_open(0, 1));
    }
};

/// `viability.shield.cbf:` the control-barrier-function shield (QP filter).
struct CbfConfig {
    double alpha = 0.5;            ///< class-K gain: m(x') >= (1 - alpha) m(x), (0, 1]
    double slack_penalty = 1000.0; ///< weight of the QP's constraint slack, > 0

    void validate(Checker& v) const {
        v.check(alpha, in_open_closed(0, 1));
        v.check(slack_penalty, positive);
    }
};

/// `viability.shield.ensemble:` the population shield over several viability models.
struct EnsembleShieldConfig {
    std::int64_t members = 5;                           ///< viability models, >= 1
    EnsembleVote vote = EnsembleVote::veto_if_any_unsafe;

    void validate(Checker& v) const { v.check(members, positive); }
};

/// `viability.shield:` the action filter (seed sections 2 and 4).
struct ShieldConfig {
    ShieldKind type = ShieldKind::rollout;  ///< which shield
    double conf = 0.97;                     ///< alpha: required Pr(x_{t+1:t+h} in V), (0, 1]
    std::int64_t horizon = 8;               ///< h: look-ahead steps, >= 1
    std::int64_t num_rollouts = 32;         ///< K: sampled model rollouts per candidate, >= 1
    /// Safety buffer: the shield enforces viability.constraints tightened by these amounts (one
    /// per constraint, >= 0, in the units of its expression: >= thresholds move up, <= down,
    /// intervals in on both sides), so it acts before the agent reaches the real boundary. The
    /// environment still terminates at the untightened set. Empty (default): no buffer.
    std::vector<double> margins{};
    /// When no action reaches conf: give up the constraint that binds (predicted violated whatever
    /// the action) and search again for the others (RolloutShieldOptions::relax_unavoidable).
    bool relax_unavoidable = false;
    /// What the rollouts' predicted states are checked against: "approximator" (V_psi, the
    /// seed's V_hat) or "constraints" (the constraint set itself, one margin per constraint:
    /// known constraints, learned dynamics; relax_unavoidable can then give up one constraint
    /// and keep protecting the others).
    ShieldCheck check = ShieldCheck::approximator;
    CemConfig cem{};
    CbfConfig cbf{};
    EnsembleShieldConfig ensemble{};

    void validate(Checker& v) const {
        v.check(conf, in_open_closed(0, 1));
        v.check(horizon, positive);
        v.check(num_rollouts, positive);
        v.each(margins, non_negative);
    }
};

/// `viability.approximator:` the learned viability margin m(x) (seed section 6).
struct ApproximatorConfig {
    std::vector<std::int64_t> hidden{64, 64};  ///< hidden widths, each >= 1
    double lr = 1e-3;                          ///< Adam learning rate, (0, 10]
    std::int64_t batch_size = 256;             ///< >= 1
    double focal_gamma = 2.0;                  ///< focal-loss focusing, >= 0
    double focal_alpha = 0.25;                 ///< focal-loss class balance, [0, 1]

    void validate(Checker& v) const {
        v.each(hidden, positive);
        v.check(lr, in_open_closed(0, detail::lr_max));
        v.check(batch_size, positive);
        v.check(focal_gamma, non_negative);
        v.check(focal_alpha, in_closed(0, 1));
    }
};

/// `viability.near_boundary_buffer:` states with 0 < m(x) < epsilon (replay::NearBoundaryBuffer).
struct NearBoundaryConfig {
    std::int64_t capacity = 10000;  ///< >= 1
    double epsilon = 0.05;          ///< margin band, > 0
    replay::Replacement replacement = replay::Replacement::reservoir;

    void validate(Checker& v) const {
        v.check(capacity, positive);
        v.check(epsilon, positive);
    }
};

/// `viability:` the constraints that define "alive" and how they are enforced.
struct ViabilityConfig {
    /// Linear constraints over internal_state.dims (docs/viability.md has the grammar).
    std::vector<std::string> constraints{"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"};
    ShieldConfig shield{};
    ApproximatorConfig approximator{};
    NearBoundaryConfig near_boundary_buffer{};
    // constraints are parsed over internal_state.dims by PersistConfig::validate.
};

// ------------------------------------------------------------------------------------------
// rewards
// ------------------------------------------------------------------------------------------

/// `rewards.surprise:` world-model NLL (seed section 5B).
struct SurpriseConfig {
    double beta = 0.0;  ///< setpoint prior: - beta ||x_{t+1} - mu||^2 added, >= 0
    void validate(Checker& v) const { v.check(beta, non_negative); }
};

/// `rewards.rnd:` random network distillation.
struct RndConfig {
    std::int64_t output_dim = 512;               ///< embedding size k, >= 1
    std::vector<std::int64_t> hidden{256, 256};  ///< target widths (and the predictor's trunk)
    double lr = 1e-4;                            ///< predictor learning rate, (0, 10]
    void validate(Checker& v) const {
        v.check(output_dim, positive);
        v.each(hidden, positive);
        v.check(lr, in_open_closed(0, detail::lr_max));
    }
};

/// `rewards.empowerment:` k-step InfoNCE empowerment (seed section 5A).
struct EmpowermentConfig {
    std::int64_t k = 3;                          ///< action-sequence length, >= 1
    std::int64_t num_negatives = 16;             ///< InfoNCE negatives per positive, >= 1
    std::vector<std::int64_t> hidden{128, 128};  ///< discriminator widths
    double lr = 3e-4;                            ///< (0, 10]
    void validate(Checker& v) const {
        v.check(k, positive);
        v.check(num_negatives, positive);
        v.each(hidden, positive);
        v.check(lr, in_open_closed(0, detail::lr_max));
    }
};

/// `rewards:` r = r_task + lambda_homeo R_homeo + lambda_intr R_intr.
struct RewardsConfig {
    double lambda_homeo = 0.7;                              ///< >= 0
    double lambda_intr = 0.3;                               ///< >= 0
    IntrinsicKind intrinsic = IntrinsicKind::empowerment;   ///< none | surprise | rnd | empowerment
    SurpriseConfig surprise{};
    RndConfig rnd{};
    EmpowermentConfig empowerment{};

    void validate(Checker& v) const {
        v.check(lambda_homeo, non_negative);
        v.check(lambda_intr, non_negative);
    }
};

// ------------------------------------------------------------------------------------------
// train
// ------------------------------------------------------------------------------------------

/// `train.sac:` Soft Actor-Critic.
struct SacConfig {
    double actor_lr = 3e-4;                      ///< (0, 10]
    double critic_lr = 3e-4;                     ///< (0, 10]
    double alpha_lr = 3e-4;                      ///< temperature learning rate, (0, 10]
    double tau = 0.005;                          ///< Polyak factor of the target critics, (0, 1]
    std::vector<std::int64_t> hidden{256, 256};  ///< actor and critic widths
    std::int64_t target_update_interval = 1;     ///< Polyak update every this many updates, >= 1
    double init_alpha = 1.0;                     ///< initial temperature, > 0
    bool autotune_alpha = true;                  ///< learn alpha toward target_entropy
    std::optional<double> target_entropy{};      ///< null: -|A| (action dimension)

    void validate(Checker& v) const {
        v.check(actor_lr, in_open_closed(0, detail::lr_max));
        v.check(critic_lr, in_open_closed(0, detail::lr_max));
        v.check(alpha_lr, in_open_closed(0, detail::lr_max));
        v.check(tau, in_open_closed(0, 1));
        v.check(hidden, non_empty);
        v.each(hidden, positive);
        v.check(target_update_interval, positive);
        v.check(init_alpha, positive);
    }
};

/// `train.td3:` Twin Delayed DDPG.
struct Td3Config {
    double actor_lr = 3e-4;                      ///< (0, 10]
    double critic_lr = 3e-4;                     ///< (0, 10]
    double tau = 0.005;                          ///< (0, 1]
    std::vector<std::int64_t> hidden{256, 256};
    std::int64_t policy_delay = 2;               ///< critic updates per actor update, >= 1
    double target_noise = 0.2;                   ///< target policy smoothing std, >= 0
    double noise_clip = 0.5;                     ///< >= 0
    double exploration_noise = 0.1;              ///< Gaussian action noise std, >= 0

    void validate(Checker& v) const {
        v.check(actor_lr, in_open_closed(0, detail::lr_max));
        v.check(critic_lr, in_open_closed(0, detail::lr_max));
        v.check(tau, in_open_closed(0, 1));
        v.check(hidden, non_empty);
        v.each(hidden, positive);
        v.check(policy_delay, positive);
        v.check(target_noise, non_negative);
        v.check(noise_clip, non_negative);
        v.check(exploration_noise, non_negative);
    }
};

/// `train.ppo:` Proximal Policy Optimization.
struct PpoConfig {
    double lr = 3e-4;                          ///< (0, 10]
    std::vector<std::int64_t> hidden{64, 64};
    std::int64_t rollout_length = 2048;        ///< steps per environment per update, >= 1
    std::int64_t epochs = 10;                  ///< passes over each rollout, >= 1
    std::int64_t minibatch_size = 64;          ///< [1, rollout_length]
    double clip = 0.2;                         ///< ratio clip epsilon, > 0
    double gae_lambda = 0.95;                  ///< [0, 1]
    double entropy_coef = 0.0;                 ///< >= 0
    double value_coef = 0.5;                   ///< >= 0
    double max_grad_norm = 0.5;                ///< > 0

    void validate(Checker& v) const {
        v.check(lr, in_open_closed(0, detail::lr_max));
        v.check(hidden, non_empty);
        v.each(hidden, positive);
        v.check(rollout_length, positive);
        v.check(epochs, positive);
        v.check(minibatch_size, positive);
        v.require(minibatch_size <= rollout_length, minibatch_size,
                  "expected at most train.ppo.rollout_length = " + std::to_string(rollout_length) + ", got " +
                      std::to_string(minibatch_size));
        v.check(clip, positive);
        v.check(gae_lambda, in_closed(0, 1));
        v.check(entropy_coef, non_negative);
        v.check(value_coef, non_negative);
        v.check(max_grad_norm, positive);
    }
};

/// `train:` the learning loop.
struct TrainConfig {
    Algo algo = Algo::SAC;                    ///< SAC | PPO | TD3
    std::int64_t batch_size = 1024;           ///< minibatch of an off-policy update, >= 1
    double gamma = 0.995;                     ///< discount, (0, 1]
    std::int64_t update_every = 64;           ///< environment steps between updates, >= 1
    std::int64_t model_rollouts = 5;          ///< imagined rollouts per update (0: model-free), >= 0
    std::int64_t total_steps = 1'000'000;     ///< environment steps of the run, >= 1
    std::int64_t learning_starts = 10'000;    ///< random-action steps before the first update, >= 0
    std::int64_t gradient_steps = 0;          ///< gradient steps per update (0: update_every), >= 0
    std::int64_t replay_capacity = 1'000'000; ///< transitions kept, >= batch_size
    std::uint64_t seed = 0;                   ///< master seed of every random stream
    std::int64_t eval_every = 10'000;         ///< steps between evaluations (0: never), >= 0
    std::int64_t eval_episodes = 10;          ///< >= 1
    std::int64_t threads = 0;                 ///< worker threads (0: all cores), >= 0
    SacConfig sac{};
    Td3Config td3{};
    PpoConfig ppo{};

    void validate(Checker& v) const {
        v.check(batch_size, positive);
        v.check(gamma, in_open_closed(0, 1));
        v.check(update_every, positive);
        v.check(model_rollouts, non_negative);
        v.check(total_steps, positive);
        v.check(learning_starts, non_negative);
        v.check(gradient_steps, non_negative);
        v.check(replay_capacity, positive);
        v.require(replay_capacity >= batch_size, replay_capacity,
                  "expected at least train.batch_size = " + std::to_string(batch_size) + ", got " +
                      std::to_string(replay_capacity));
        v.check(eval_every, non_negative);
        v.check(eval_episodes, positive);
        v.check(threads, non_negative);
    }
};

// ------------------------------------------------------------------------------------------
// models
// ------------------------------------------------------------------------------------------

/// `models.world_model:` p(o_{t+1} | s_t, a_t) (seed section 2; "Change 1": latent).
struct WorldModelConfig {
    WorldModelKind type = WorldModelKind::latent;
    std::vector<std::int64_t> hidden{256, 256};
    std::int64_t latent_dim = 32;     ///< latent size (type latent), >= 1
    std::int64_t ensemble_size = 1;   ///< >= 1
    double lr = 1e-3;                 ///< (0, 10]
    void validate(Checker& v) const {
        v.each(hidden, positive);
        v.check(latent_dim, positive);
        v.check(ensemble_size, positive);
        v.check(lr, in_open_closed(0, detail::lr_max));
    }
};

/// `models.internal_model:` f(x, a, o) -> x' and the constraint margins.
struct InternalModelConfig {
    bool use_known_dynamics = false;   ///< use the environment's exact f when it has one
    std::vector<std::int64_t> hidden{64, 64};
    double lr = 1e-3;                  ///< (0, 10]
    void validate(Checker& v) const {
        v.each(hidden, positive);
        v.check(lr, in_open_closed(0, detail::lr_max));
    }
};

/// `models:` learned dynamics.
struct ModelsConfig {
    WorldModelConfig world_model{};
    InternalModelConfig internal_model{};
};

// ------------------------------------------------------------------------------------------
// curriculum, safety_network, demonstrations, partial observability, maintenance
// ------------------------------------------------------------------------------------------

/// `curriculum:` start with wide tolerances and low lambdas, tighten V and raise lambda_H,
/// lambda_I (seed sections 2, 3 and 11). Progress s goes 0 -> 1 from warmup_steps to
/// warmup_steps + total_steps; constraint k starts widened by start_widths[k] (in the units
/// of its expression: `energy >= 0.2` with width 0.15 starts as `energy >= 0.05`, an interval
/// widens on both sides) and lambdas go from *_start to rewards.lambda_*.
struct CurriculumConfig {
    bool enabled = false;
    std::int64_t warmup_steps = 0;         ///< steps at s = 0, >= 0
    std::int64_t total_steps = 200'000;    ///< steps from s = 0 to s = 1, >= 1
    CurriculumSchedule schedule = CurriculumSchedule::linear;
    std::vector<double> start_widths{};    ///< empty (no tightening) or one >= 0 per constraint
    double lambda_homeo_start = 0.0;       ///< >= 0
    double lambda_intr_start = 0.0;        ///< >= 0

    void validate(Checker& v) const {
        v.check(warmup_steps, non_negative);
        v.check(total_steps, positive);
        v.each(start_widths, non_negative);
        v.check(lambda_homeo_start, non_negative);
        v.check(lambda_intr_start, non_negative);
    }
};

/// `safety_network:` the amortized shield ("Change 3"): a network trained on (unsafe a,
/// projected a') pairs replaces the search after switch_after_steps.
struct SafetyNetworkConfig {
    bool enabled = false;
    std::vector<std::int64_t> hidden{256, 256};
    double lr = 1e-3;                           ///< (0, 10]
    std::int64_t batch_size = 256;              ///< >= 1
    std::int64_t min_samples = 1000;            ///< pairs collected before training, >= 0
    std::int64_t switch_after_steps = 50'000;   ///< search -> amortized mode, >= 0
    void validate(Checker& v) const {
        v.each(hidden, positive);
        v.check(lr, in_open_closed(0, detail::lr_max));
        v.check(batch_size, positive);
        v.check(min_samples, non_negative);
        v.check(switch_after_steps, non_negative);
    }
};

/// `demonstrations:` learn from safe demonstrations ("Change 4"): pre-train the shield's models
/// (internal model and viability approximator) and, when weight > 0, the policy (behaviour
/// cloning), which keeps a BC term of that weight in its actor loss.
struct DemonstrationsConfig {
    bool enabled = false;
    std::string path{};                   ///< demonstration file; required when enabled
    std::int64_t pretrain_steps = 1000;   ///< updates of the shield's models before the first step, >= 0
    std::int64_t batch_size = 256;        ///< demonstration steps per update (models and BC), >= 1
    double weight = 1.0;                  ///< weight of the policy's BC loss; 0 = the policy ignores them, >= 0
    std::int64_t policy_pretrain_steps = 1000;  ///< BC steps of the policy before the first step (weight > 0), >= 0
    std::string policy_path{};            ///< the policy's demonstration file; "" = path
    void validate(Checker& v) const {
        if (enabled) v.require(!path.empty(), path, "expected a file path when demonstrations.enabled is true, got \"\"");
        v.check(pretrain_steps, non_negative);
        v.check(policy_pretrain_steps, non_negative);
        v.check(batch_size, positive);
        v.check(weight, non_negative);
    }
};

/// `state_estimator:` belief over x when it is not observed (seed section 12).
struct StateEstimatorConfig {
    EstimatorKind type = EstimatorKind::gru;
    std::int64_t hidden_size = 64;        ///< GRU state size, >= 1
    std::int64_t sequence_length = 16;    ///< training sequences, >= 1
    std::int64_t burn_in = 4;             ///< warm-up steps without loss, [0, sequence_length)
    double lr = 1e-3;                     ///< (0, 10]
    std::int64_t batch_size = 32;         ///< sequences per update, >= 1
    std::int64_t updates_per_round = 4;   ///< GRU updates per update round (AgentOptions::estimator_updates), >= 1
    void validate(Checker& v) const {
        v.check(hidden_size, positive);
        v.check(sequence_length, positive);
        v.check(burn_in, non_negative);
        v.require(burn_in < sequence_length, burn_in,
                  "expected less than state_estimator.sequence_length = " + std::to_string(sequence_length) +
                      ", got " + std::to_string(burn_in));
        v.check(lr, in_open_closed(0, detail::lr_max));
        v.check(batch_size, positive);
        v.check(updates_per_round, positive);
    }
};

/// `partial_observability:` hide x from the agent (and degrade what it sees).
struct PartialObservabilityConfig {
    bool enabled = false;       ///< x is not part of the observation (GridLife option)
    double dropout_prob = 0.0;  ///< each observation entry zeroed with this probability, [0, 1]
    double noise_std = 0.0;     ///< Gaussian observation noise, [0, 1000]
    void validate(Checker& v) const {
        v.check(dropout_prob, in_closed(0, 1));
        v.check(noise_std, in_closed(0, 1000));
    }
};

/// `maintenance:` refuel / cool-down / repair stations (GridLife). false removes every
/// station (the env.gridlife.num_refuel / num_cool / num_repair counts are not used).
struct MaintenanceConfig {
    bool enabled = true;
};

/// `metrics:` JSON-lines metrics (seed section 10).
struct MetricsConfig {
    std::string path = "metrics.jsonl";     ///< output file, non-empty
    std::int64_t log_every = 1000;          ///< steps between lines, >= 1
    std::int64_t recovery_horizon = 10;     ///< h of the recovery rate, >= 1
    double recovery_epsilon = 0.05;         ///< near-boundary band of the recovery rate, > 0
    void validate(Checker& v) const {
        v.check(path, non_empty);
        v.check(log_every, positive);
        v.check(recovery_horizon, positive);
        v.check(recovery_epsilon, positive);
    }
};

/// `checkpoint:` periodic atomic checkpoints.
struct CheckpointConfig {
    std::string dir = "checkpoints";  ///< directory, non-empty
    std::int64_t every = 50'000;      ///< steps between checkpoints (0: never), >= 0
    std::int64_t keep = 3;            ///< most recent kept, >= 1
    void validate(Checker& v) const {
        v.check(dir, non_empty);
        v.check(every, non_negative);
        v.check(keep, positive);
    }
};

// ------------------------------------------------------------------------------------------
// The whole run
// ------------------------------------------------------------------------------------------

/// Everything a run needs. The seed's keys (env, internal_state, viability, rewards, train)
/// are spelled exactly as in the seed; every other key has a default.
struct PersistConfig {
    EnvConfig env{};
    InternalStateConfig internal_state{};
    ViabilityConfig viability{};
    RewardsConfig rewards{};
    TrainConfig train{};
    CurriculumConfig curriculum{};
    ModelsConfig models{};
    SafetyNetworkConfig safety_network{};
    DemonstrationsConfig demonstrations{};
    StateEstimatorConfig state_estimator{};
    PartialObservabilityConfig partial_observability{};
    MaintenanceConfig maintenance{};
    MetricsConfig metrics{};
    CheckpointConfig checkpoint{};

    /// Cross-field checks (the sections' own rules have already run).
    void validate(Checker& v) const;
};

}  // namespace persist::config

// Reflection. GridLifeConfig is adapted here, outside env/, without `horizon` (env.horizon),
// `partial_observability` (partial_observability.enabled) and the sensor model's
// `observation_dropout` / `observation_noise_std` (partial_observability.dropout_prob /
// noise_std): one key per setting.
BOOST_HANA_ADAPT_STRUCT(persist::env::GridLifeConfig, width, height, view_radius, max_speed, observe_last_action,
                        fixed_map, map_seed,
                        base_heat, num_hot_spots, num_cold_spots, spot_amplitude, spot_sigma, num_food, food_respawns,
                        food_respawn_steps, num_hazards, num_walls, num_refuel, num_cool, num_repair, initial_internal,
                        initial_noise, energy_decay, effort_cost, food_gain, refuel_gain, heat_rate, cool_rate,
                        cool_target, hazard_damage, repair_gain, integrity_regen, lower_bounds, upper_bounds,
                        reward_mode, exploration_bonus, item_reward, station_cost);
BOOST_HANA_ADAPT_STRUCT(persist::config::EnvConfig, name, horizon, num_envs, gridlife);
BOOST_HANA_ADAPT_STRUCT(persist::config::InternalStateConfig, dims, mu, w);
BOOST_HANA_ADAPT_STRUCT(persist::config::CemConfig, iterations, population, elites, init_std, momentum);
BOOST_HANA_ADAPT_STRUCT(persist::config::CbfConfig, alpha, slack_penalty);
BOOST_HANA_ADAPT_STRUCT(persist::config::EnsembleShieldConfig, members, vote);
BOOST_HANA_ADAPT_STRUCT(persist::config::ShieldConfig, type, conf, horizon, num_rollouts, margins, relax_unavoidable, check,
                        cem, cbf, ensemble);
BOOST_HANA_ADAPT_STRUCT(persist::config::ApproximatorConfig, hidden, lr, batch_size, focal_gamma, focal_alpha);
BOOST_HANA_ADAPT_STRUCT(persist::config::NearBoundaryConfig, capacity, epsilon, replacement);
BOOST_HANA_ADAPT_STRUCT(persist::config::ViabilityConfig, constraints, shield, approximator, near_boundary_buffer);
BOOST_HANA_ADAPT_STRUCT(persist::config::SurpriseConfig, beta);
BOOST_HANA_ADAPT_STRUCT(persist::config::RndConfig, output_dim, hidden, lr);
BOOST_HANA_ADAPT_STRUCT(persist::config::EmpowermentConfig, k, num_negatives, hidden, lr);
BOOST_HANA_ADAPT_STRUCT(persist::config::RewardsConfig, lambda_homeo, lambda_intr, intrinsic, surprise, rnd, empowerment);
BOOST_HANA_ADAPT_STRUCT(persist::config::SacConfig, actor_lr, critic_lr, alpha_lr, tau, hidden, target_update_interval,
                        init_alpha, autotune_alpha, target_entropy);
BOOST_HANA_ADAPT_STRUCT(persist::config::Td3Config, actor_lr, critic_lr, tau, hidden, policy_delay, target_noise,
                        noise_clip, exploration_noise);
BOOST_HANA_ADAPT_STRUCT(persist::config::PpoConfig, lr, hidden, rollout_length, epochs, minibatch_size, clip, gae_lambda,
                        entropy_coef, value_coef, max_grad_norm);
BOOST_HANA_ADAPT_STRUCT(persist::config::TrainConfig, algo, batch_size, gamma, update_every, model_rollouts, total_steps,
                        learning_starts, gradient_steps, replay_capacity, seed, eval_every, eval_episodes, threads, sac,
                        td3, ppo);
BOOST_HANA_ADAPT_STRUCT(persist::config::WorldModelConfig, type, hidden, latent_dim, ensemble_size, lr);
BOOST_HANA_ADAPT_STRUCT(persist::config::InternalModelConfig, use_known_dynamics, hidden, lr);
BOOST_HANA_ADAPT_STRUCT(persist::config::ModelsConfig, world_model, internal_model);
BOOST_HANA_ADAPT_STRUCT(persist::config::CurriculumConfig, enabled, warmup_steps, total_steps, schedule, start_widths,
                        lambda_homeo_start, lambda_intr_start);
BOOST_HANA_ADAPT_STRUCT(persist::config::SafetyNetworkConfig, enabled, hidden, lr, batch_size, min_samples,
                        switch_after_steps);
BOOST_HANA_ADAPT_STRUCT(persist::config::DemonstrationsConfig, enabled, path, pretrain_steps, batch_size, weight,
                        policy_pretrain_steps, policy_path);
BOOST_HANA_ADAPT_STRUCT(persist::config::StateEstimatorConfig, type, hidden_size, sequence_length, burn_in, lr,
                        batch_size, updates_per_round);
BOOST_HANA_ADAPT_STRUCT(persist::config::PartialObservabilityConfig, enabled, dropout_prob, noise_std);
BOOST_HANA_ADAPT_STRUCT(persist::config::MaintenanceConfig, enabled);
BOOST_HANA_ADAPT_STRUCT(persist::config::MetricsConfig, path, log_every, recovery_horizon, recovery_epsilon);
BOOST_HANA_ADAPT_STRUCT(persist::config::CheckpointConfig, dir, every, keep);
BOOST_HANA_ADAPT_STRUCT(persist::config::PersistConfig, env, internal_state, viability, rewards, train, curriculum, models,
                        safety_network, demonstrations, state_estimator, partial_observability, maintenance, metrics,
                        checkpoint);

namespace persist::config {

namespace detail {
/// `target` with each constraint k moved by amounts[k] (>= 0, in the units of its expression):
/// outward (`widen`: >= / > thresholds down, <= / < up, intervals out) or inward (thresholds the
/// other way, intervals in; an interval left empty is an error). `who` / `what` name the caller
/// and its argument in messages.
template <class T>
viability::ConstraintSet<T> offset_constraints(const viability::ConstraintSet<T>& target, const std::vector<double>& amounts,
                                               bool widen, const std::string& who, const std::string& what) {
    if (static_cast<Index>(amounts.size()) != target.num_constraints())
        throw ConfigError(who + ": expected " + std::to_string(target.num_constraints()) + " " + what +
                          " (one per constraint), got " + std::to_string(amounts.size()));
    std::vector<viability::LinearConstraint<T>> out;
    out.reserve(amounts.size());
    for (Index k = 0; k < target.num_constraints(); ++k) {
        auto c = target.constraint(k);
        const T w = static_cast<T>(amounts[static_cast<std::size_t>(k)]);
        if (!(w >= T(0)) || !std::isfinite(w))
            throw ConfigError(who + ": " + what + "[" + std::to_string(k) + "] must be finite and >= 0");
        const T d = widen ? w : -w;  // how far the safe side grows
        switch (c.sense) {
            case viability::Sense::ge:
            case viability::Sense::gt: c.threshold -= d; break;
            case viability::Sense::le:
            case viability::Sense::lt: c.threshold += d; break;
            case viability::Sense::interval:
                c.lo -= d;
                c.hi += d;
                if (!(c.lo < c.hi))
                    throw ConfigError(who + ": " + what + "[" + std::to_string(k) + "] = " +
                                      std::to_string(amounts[static_cast<std::size_t>(k)]) + " leaves nothing of '" +
                                      target.constraint(k).text + "'");
                break;
        }
        c.text.clear();  // canonical form of the moved constraint
        out.push_back(std::move(c));
    }
    return viability::ConstraintSet<T>::from_parsed(target.variable_names(), std::move(out));
}
}  // namespace detail

/// Widen `target` by `widths` (one per constraint, >= 0, in the units of each constraint's
/// expression): >= / > thresholds move down, <= / < up, intervals out on both sides. The
/// curriculum's starting set; ConstraintSet::interpolate(start, target, s) tightens it.
template <class T>
viability::ConstraintSet<T> widen_constraints(const viability::ConstraintSet<T>& target, const std::vector<double>& widths) {
    return detail::offset_constraints(target, widths, true, "widen_constraints", "widths");
}

/// Tighten `target` by `margins` (one per constraint, >= 0, in the units of each constraint's
/// expression): >= / > thresholds move up, <= / < down, intervals in on both sides; an
/// interval that would become empty is an error. The shield's safety buffer
/// (viability.shield.margins).
template <class T>
viability::ConstraintSet<T> tighten_constraints(const viability::ConstraintSet<T>& target,
                                                const std::vector<double>& margins) {
    return detail::offset_constraints(target, margins, false, "tighten_constraints", "margins");
}

/// viability.constraints parsed over internal_state.dims.
template <class T = double>
viability::ConstraintSet<T> make_constraint_set(const PersistConfig& c) {
    return viability::ConstraintSet<T>(c.internal_state.dims, c.viability.constraints);
}

/// The set the shield enforces: viability.constraints tightened by viability.shield.margins
/// (the constraints themselves when margins is empty).
template <class T = double>
viability::ConstraintSet<T> make_shield_constraint_set(const PersistConfig& c) {
    auto target = make_constraint_set<T>(c);
    if (c.viability.shield.margins.empty()) return target;
    return tighten_constraints(target, c.viability.shield.margins);
}

/// The curriculum's starting constraint set: the target widened by curriculum.start_widths
/// (the target itself when start_widths is empty).
template <class T = double>
viability::ConstraintSet<T> make_curriculum_start_set(const PersistConfig& c) {
    auto target = make_constraint_set<T>(c);
    if (c.curriculum.start_widths.empty()) return target;
    return widen_constraints(target, c.curriculum.start_widths);
}

/// The GridLifeConfig of a run: env.gridlife (or the defaults) with horizon = env.horizon,
/// partial_observability = partial_observability.enabled and, when maintenance is disabled,
/// no stations.
inline env::GridLifeConfig make_gridlife_config(const PersistConfig& c) {
    env::GridLifeConfig g = c.env.gridlife.value_or(env::GridLifeConfig{});
    g.horizon = static_cast<std::int32_t>(c.env.horizon);
    g.partial_observability = c.partial_observability.enabled;
    g.observation_dropout = c.partial_observability.dropout_prob;
    g.observation_noise_std = c.partial_observability.noise_std;
    if (!c.maintenance.enabled) g.num_refuel = g.num_cool = g.num_repair = 0;
    return g;
}

inline void PersistConfig::validate(Checker& v) const {
    const Checker is = v.sub(internal_state);
    const auto& dims = internal_state.dims;

    // GridLife's internal state is x = [energy, temp, integrity], in that order.
    if (env.name == gridlife_env_name) {
        const std::vector<std::string> gl{"energy", "temp", "integrity"};
        if (dims != gl)
            is.fail(dims, "expected [\"energy\", \"temp\", \"integrity\"] (GridLife-v0's internal variables, in "
                          "order), got " + detail::format_value(dims));
    }

    // Every constraint parses over the dims (the parser's message has the caret line).
    const Checker vi = v.sub(viability);
    const auto& cons = viability.constraints;
    std::vector<viability::LinearConstraint<double>> parsed;
    for (std::size_t k = 0; k < cons.size(); ++k) {
        try {
            parsed.push_back(viability::parse_constraint<double>(cons[k], dims));
        } catch (const ConfigError& e) {
            vi.fail_at(cons, k, e.what());
        }
    }

    // One shield margin per constraint, none emptying an interval.
    const auto& margins = viability.shield.margins;
    if (!margins.empty()) {
        const Checker sh = vi.sub(viability.shield);
        if (margins.size() != cons.size())
            sh.fail(margins, "expected " + std::to_string(cons.size()) +
                                 " values (one per viability.constraints entry) or none, got " +
                                 std::to_string(margins.size()));
        else if (parsed.size() == cons.size()) {
            try {
                (void)make_shield_constraint_set<double>(*this);
            } catch (const ConfigError& e) {
                sh.fail(margins, e.what());
            }
        }
    }

    // One start width per constraint.
    const Checker cu = v.sub(curriculum);
    const auto& widths = curriculum.start_widths;
    if (!widths.empty() && widths.size() != cons.size())
        cu.fail(widths, "expected " + std::to_string(cons.size()) +
                            " values (one per viability.constraints entry) or none, got " + std::to_string(widths.size()));
    if (!widths.empty()) {
        try {
            (void)make_curriculum_start_set<double>(*this);
        } catch (const ConfigError& e) {
            cu.fail(widths, e.what());
        }
    }
}

// ------------------------------------------------------------------------------------------
// GridLifeConfig: rules delegated to env::validate, messages re-pathed
// ------------------------------------------------------------------------------------------

template <>
struct rules<env::GridLifeConfig> {
    /// env::validate's "GridLifeConfig.<field> = <value>: expected <what>" becomes
    /// "<path>.<field>: expected <what>, got <value>"; other messages keep their text.
    static void check(const env::GridLifeConfig& c, Checker& v) {
        try {
            env::validate(c);
        } catch (const ConfigError& e) {
            const std::string msg = e.what();
            const std::string prefix = "GridLifeConfig.";
            const auto eq = msg.find(" = ");
            const auto ex = msg.find(": expected ", eq == std::string::npos ? 0 : eq);
            if (msg.rfind(prefix, 0) == 0 && eq != std::string::npos && ex != std::string::npos) {
                const std::string field = msg.substr(prefix.size(), eq - prefix.size());
                const std::string value = msg.substr(eq + 3, ex - eq - 3);
                fail(v.source(), detail::join_key(v.path(), field),
                     "expected " + msg.substr(ex + 11) + ", got " + value);
            }
            if (msg.rfind("GridLifeConfig: ", 0) == 0) v.fail_here(msg.substr(16));
            v.fail_here(msg);
        }
    }
};

}  // namespace persist::config
