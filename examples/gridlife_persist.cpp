// gridlife_persist: the PERSIST experiment of the seed document on GridLife-v0.
//
//   PersistAgent< GridLife<float>, SAC<float>,
//                 {LearnedShield<float, GridLifePatchKinematics[, LinearConstraintsView]> | NullShield<float>},
//                 {Empowerment | Surprise | RND | NoIntrinsic}<float> >
//
// Reads a PersistConfig (YAML or JSON; default examples/configs/gridlife.yaml, the seed's
// section 8), resolves the runtime choices ONCE here at the top (the intrinsic reward and the
// shield, which pick template arguments; nothing is chosen by a runtime `if` inside the loop),
// trains for a step budget, prints a summary and writes the seed's metrics (section 10) as JSON
// lines: one line per episode and a final summary line (docs/train.md, "Metrics").
//
// Usage: gridlife_persist [--config FILE] [--steps N] [--seed S] [--metrics FILE]
//                         [--intrinsic none|surprise|rnd|empowerment] [--shield none|rollout]
//                         [--shield-warmup UPDATES] [--save FILE] [--resume FILE|DIR]
//                         [--checkpoint-dir DIR] [--checkpoint-every N]
//                         [--demonstrations FILE] (and the flags of --help)
//                         [--eval-episodes N] [--eval-actions deterministic,sampled]
//                         [--state-estimator gru|ekf|none] [--estimator-updates N]
//                         [--batch-size B] [--gradient-steps G]
//                         [--learning-starts N] [--hidden H] [--threads N] [--quiet]
//
// The shield (viability.shield.type "rollout", the seed's default) is a LearnedShield: the
// agent trains its internal-model ensemble f_theta and viability approximator V_psi at every
// gradient step, and the shield starts filtering after --shield-warmup model updates
// (docs/shield.md). Its rollouts are checked against V_psi, or against the constraint set itself
// with viability.shield.check = constraints (--shield-check). Other shield kinds and train.algo other than SAC are errors, never silent
// substitutions.
// With partial_observability.enabled (x hidden from the observation) the policy acts on
// [o; x_hat], x_hat from the state estimator of state_estimator.type (or --state-estimator):
// gru, a GRU the agent trains on replay sequences (models/state_estimator.hpp;
// state_estimator.updates_per_round, default 4, or --estimator-updates N updates per update
// round), or ekf, an extended Kalman
// filter on GridLife's known internal dynamics from the prior x_0 ~ initial_internal +- initial_noise
// (models/kalman_filter.hpp; with sensor noise or dropout an error: its model would read a
// corrupted tile and nothing corrects it); --state-estimator none makes the policy act on o alone.
// Budget adaptations (printed at start): --steps defaults to 40000 (the config's
// train.total_steps is a full-length run), and the replay capacity is capped at the step
// budget (a capacity above the number of steps only costs memory).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <persist/agents/sac.hpp>
#include <persist/config/config.hpp>
#include <persist/config/curriculum_from_config.hpp>
#include <persist/config/yaml.hpp>
#include <persist/env/gridlife.hpp>
#include <persist/homeostasis/homeostat.hpp>
#include <persist/intrinsic/intrinsic.hpp>
#include <persist/io/checkpoint.hpp>
#include <persist/models/kalman_filter.hpp>
#include <persist/models/known_dynamics.hpp>
#include <persist/parallel/gridlife_rollout.hpp>
#include <persist/replay/demonstrations.hpp>
#include <persist/shield/amortized_shield.hpp>
#include <persist/shield/learned_shield.hpp>
#include <persist/shield/null_shield.hpp>
#include <persist/train/curriculum.hpp>
#include <persist/train/metrics.hpp>
#include <persist/train/checkpointing.hpp>
#include <persist/train/persist_agent.hpp>

#include "example_args.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

#ifndef PERSIST_EXAMPLES_CONFIG_DIR
#define PERSIST_EXAMPLES_CONFIG_DIR "examples/configs"
#endif

namespace {

using persist::Index;
using persist::Vec;
using T = float;
namespace cfgns = persist::config;
using persist_examples::parse_int;
using persist_examples::parse_number;

struct Args {
    std::string config = PERSIST_EXAMPLES_CONFIG_DIR "/gridlife.yaml";
    std::int64_t steps = 40000;
    std::optional<std::uint64_t> seed;
    std::optional<std::string> metrics;
    std::optional<std::string> intrinsic;
    std::optional<std::string> shield;
    std::optional<std::string> state_estimator;  ///< gru | ekf | none: overrides state_estimator.type
    std::optional<std::int64_t> estimator_updates;  ///< overrides state_estimator.updates_per_round
    std::int64_t shield_warmup = 500;
    bool shield_warmup_given = false;
    std::optional<std::string> safety_network;     ///< on | off: overrides safety_network.enabled
    std::optional<std::int64_t> switch_after;      ///< overrides safety_network.switch_after_steps
    std::optional<std::int64_t> safety_min_samples;  ///< overrides safety_network.min_samples
    std::optional<double> safety_overshoot;          ///< AmortizedShieldOptions::target_overshoot
    std::optional<std::vector<double>> shield_margins;  ///< overrides viability.shield.margins
    std::optional<std::string> shield_relax;            ///< on | off: overrides viability.shield.relax_unavoidable
    std::optional<std::string> shield_check;            ///< approximator | constraints: overrides viability.shield.check
    std::optional<std::string> demonstrations;          ///< enables demonstrations with this file
    std::optional<std::string> policy_demonstrations;   ///< the policy's file (demonstrations.policy_path)
    std::optional<std::string> save, resume;
    std::optional<std::string> checkpoint_dir;       ///< overrides checkpoint.dir
    std::optional<std::int64_t> checkpoint_every;    ///< overrides checkpoint.every (0: never)
    std::int64_t eval_episodes = 0;
    std::vector<persist::train::EvalActions> eval_actions{persist::train::EvalActions::deterministic};
    std::optional<std::int64_t> batch_size, gradient_steps, learning_starts, hidden;
    std::optional<std::int64_t> threads;             ///< overrides train.threads (0: all cores)
    bool quiet = false;
};



/// "0.1,0,0": one non-negative number per constraint (the count is checked against the config).
std::vector<double> parse_margins(const std::string& flag, const std::string& text) {
    std::vector<double> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, end - start);
        std::size_t used = 0;
        double v = -1;
        try {
            v = std::stod(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used == 0 || used != item.size() || !(v >= 0.0) || !std::isfinite(v))
            throw persist::ConfigError(flag + ": expected comma-separated numbers >= 0, got '" + text + "'");
        out.push_back(v);
        start = end + 1;
    }
    return out;
}

/// "deterministic", "sampled" or both, comma-separated: one evaluation per entry.
std::vector<persist::train::EvalActions> parse_eval_actions(const std::string& flag, const std::string& text) {
    std::vector<persist::train::EvalActions> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, end - start);
        if (item == "deterministic") out.push_back(persist::train::EvalActions::deterministic);
        else if (item == "sampled") out.push_back(persist::train::EvalActions::sampled);
        else
            throw persist::ConfigError(flag + ": expected 'deterministic', 'sampled' or both comma-separated, got '" +
                                       text + "'");
        start = end + 1;
    }
    return out;
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string f = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw persist::ConfigError(f + ": missing value");
            return argv[++i];
        };
        if (f == "--config") a.config = value();
        else if (f == "--steps") a.steps = parse_int(f, value(), 1);
        else if (f == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(f, value(), 0));
        else if (f == "--metrics") a.metrics = value();
        else if (f == "--intrinsic") a.intrinsic = value();
        else if (f == "--shield") a.shield = value();
        else if (f == "--save") a.save = value();
        else if (f == "--eval-episodes") a.eval_episodes = parse_int(f, value(), 0);
        else if (f == "--eval-actions") a.eval_actions = parse_eval_actions(f, value());
        else if (f == "--estimator-updates") a.estimator_updates = parse_int(f, value(), 1);
        else if (f == "--state-estimator") {
            a.state_estimator = value();
            if (*a.state_estimator != "gru" && *a.state_estimator != "ekf" && *a.state_estimator != "none")
                throw persist::ConfigError("--state-estimator " + *a.state_estimator + ": expected gru, ekf or none");
        }
        else if (f == "--resume") a.resume = value();
        else if (f == "--checkpoint-dir") a.checkpoint_dir = value();
        else if (f == "--checkpoint-every") a.checkpoint_every = parse_int(f, value(), 0);
        else if (f == "--shield-warmup") a.shield_warmup = parse_int(f, value(), 0), a.shield_warmup_given = true;
        else if (f == "--safety-network") a.safety_network = value();
        else if (f == "--switch-after") a.switch_after = parse_int(f, value(), 0);
        else if (f == "--safety-min-samples") a.safety_min_samples = parse_int(f, value(), 0);
        else if (f == "--safety-overshoot") a.safety_overshoot = parse_number(f, value(), 0.0, 1.0);
        else if (f == "--shield-margins") a.shield_margins = parse_margins(f, value());
        else if (f == "--shield-relax") a.shield_relax = value();
        else if (f == "--shield-check") a.shield_check = value();
        else if (f == "--demonstrations") a.demonstrations = value();
        else if (f == "--policy-demonstrations") a.policy_demonstrations = value();
        else if (f == "--batch-size") a.batch_size = parse_int(f, value(), 1);
        else if (f == "--gradient-steps") a.gradient_steps = parse_int(f, value(), 1);
        else if (f == "--learning-starts") a.learning_starts = parse_int(f, value(), 0);
        else if (f == "--hidden") a.hidden = parse_int(f, value(), 1);
        else if (f == "--threads") a.threads = parse_int(f, value(), 0);
        else if (f == "--quiet") a.quiet = true;
        else if (f == "--help" || f == "-h") {
            std::printf("usage: gridlife_persist [--config FILE] [--steps N] [--seed S] [--metrics FILE]\n"
                        "                        [--intrinsic none|surprise|rnd|empowerment] [--shield none|rollout]\n"
                        "                        [--shield-warmup UPDATES] [--safety-network on|off] [--switch-after N]\n"
                        "                        [--safety-min-samples N] [--safety-overshoot F] [--shield-margins M1,M2,..]\n"
                        "                        [--shield-relax on|off] [--shield-check approximator|constraints]\n"
                        "                        [--demonstrations FILE] [--policy-demonstrations FILE]\n"
                        "                        [--save FILE] [--resume FILE|DIR]\n"
                        "                        [--checkpoint-dir DIR] [--checkpoint-every N]\n"
                        "                        [--eval-episodes N] [--eval-actions deterministic,sampled]\n"
                        "                        [--state-estimator gru|ekf|none] [--estimator-updates N]\n"
                        "                        [--batch-size B] [--gradient-steps G]\n"
                        "                        [--learning-starts N] [--hidden H] [--threads N] [--quiet]\n");
            std::exit(0);
        } else
            throw persist::ConfigError("unknown flag '" + f + "' (see --help)");
    }
    return a;
}

/// The intrinsic reward in force: --intrinsic wins over rewards.intrinsic; an unknown name is
/// an error, never a silent substitution.
cfgns::IntrinsicKind resolve_intrinsic(const cfgns::PersistConfig& c, const Args& a) {
    if (a.intrinsic) {
        const std::string& s = *a.intrinsic;
        if (s == "none") return cfgns::IntrinsicKind::none;
        if (s == "surprise") return cfgns::IntrinsicKind::surprise;
        if (s == "rnd") return cfgns::IntrinsicKind::rnd;
        if (s == "empowerment") return cfgns::IntrinsicKind::empowerment;
        throw persist::ConfigError("--intrinsic " + s + ": expected none, surprise, rnd or empowerment");
    }
    return c.rewards.intrinsic;
}

const char* intrinsic_name(cfgns::IntrinsicKind k) {
    switch (k) {
        case cfgns::IntrinsicKind::none: return "none";
        case cfgns::IntrinsicKind::surprise: return "surprise";
        case cfgns::IntrinsicKind::rnd: return "rnd";
        case cfgns::IntrinsicKind::empowerment: return "empowerment";
    }
    return "?";
}

std::vector<Index> to_index(const std::vector<std::int64_t>& v) { return {v.begin(), v.end()}; }

/// demonstrations.weight > 0 (seed Change 4 for the policy, SAC from demonstrations): keep the
/// demonstration steps in the SAC agent, whose actor loss then adds weight * L_BC (behaviour
/// cloning, -log pi(a_demo | s_demo)) on batch_size steps per update, and pre-train the actor on
/// them for demonstrations.policy_pretrain_steps BC steps before the first step (not when
/// resuming: the checkpoint has the trained actor). Returns whether the actor was pre-trained.
bool demonstrations_for_policy(const cfgns::PersistConfig& c, const Args& a, const persist::env::GridLife<T>& probe,
                               bool sees_internal, persist::agents::SAC<T>& sac, std::uint64_t seed) {
    if ((!a.demonstrations && !c.demonstrations.enabled) || c.demonstrations.weight == 0.0) {
        if (a.policy_demonstrations)
            throw persist::ConfigError("--policy-demonstrations: the policy uses demonstrations only when they are "
                                       "enabled (--demonstrations FILE or demonstrations.enabled in " + a.config +
                                       ") and demonstrations.weight > 0");
        return false;
    }
    const std::string path = a.policy_demonstrations ? *a.policy_demonstrations
                             : !c.demonstrations.policy_path.empty() ? c.demonstrations.policy_path
                                                                     : a.demonstrations.value_or(c.demonstrations.path);
    const auto demos = persist::replay::load_demonstrations<T>(path, probe.internal_dim(), probe.action_dim(),
                                                               probe.observation_dim());
    persist::agents::DemoBatch<T> d;
    d.observation = demos.observations();
    d.internal = sees_internal ? persist::Mat<T>(demos.states()) : persist::Mat<T>(0, demos.size());
    d.action = demos.actions();
    const auto batch = static_cast<Index>(c.demonstrations.batch_size);
    sac.set_demonstrations(d, static_cast<T>(c.demonstrations.weight), batch);
    const auto steps = c.demonstrations.policy_pretrain_steps;
    if (a.resume || steps == 0) {
        std::printf("  demonstrations: %s, %lld steps; policy: BC term of weight %.3g in every actor update\n",
                    path.c_str(), static_cast<long long>(demos.size()), c.demonstrations.weight);
        return false;
    }
    persist::Rng rng(seed + 17);
    persist::agents::DemoBatch<T> b;
    b.observation.resize(d.observation.rows(), batch);
    b.internal.resize(d.internal.rows(), batch);
    b.action.resize(d.action.rows(), batch);
    const auto t0 = std::chrono::steady_clock::now();
    double first = 0, last = 0;
    for (std::int64_t k = 0; k < steps; ++k) {
        for (Index j = 0; j < batch; ++j) {
            const auto i = static_cast<Index>(rng.next_u64() % static_cast<std::uint64_t>(d.size()));
            b.observation.col(j) = d.observation.col(i);
            b.internal.col(j) = d.internal.col(i);
            b.action.col(j) = d.action.col(i);
        }
        const double l = double(sac.behavior_clone(b));
        if (k == 0) first = l;
        last = l;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  demonstrations: %s, %lld steps; policy pre-trained by behaviour cloning for %lld steps of %lld "
                "(-log pi %.3f -> %.3f, %.1f s), BC term of weight %.3g in every actor update; acting with the "
                "policy from the first step\n",
                path.c_str(), static_cast<long long>(demos.size()), static_cast<long long>(steps),
                static_cast<long long>(batch), first, last, secs, c.demonstrations.weight);
    return true;
}

/// gru | ekf | none: --state-estimator, else state_estimator.type of the config.
std::string estimator_kind(const cfgns::PersistConfig& c, const Args& a) {
    if (a.state_estimator) return *a.state_estimator;
    return c.state_estimator.type == cfgns::EstimatorKind::ekf ? "ekf" : "gru";
}

/// The belief over x the policy acts on when x is hidden: "ekf", the extended Kalman filter on
/// GridLife's known internal dynamics (`model_env`, which must outlive it) from the prior of x_0
/// = initial_internal + U[-initial_noise, initial_noise] (std initial_noise / sqrt 3), exact f
/// (no process noise), no reading of x; otherwise the GRU of the config's state_estimator
/// section. Not a template: each (intrinsic, shield) agent type only moves the result in.
persist::models::AnyStateEstimator<T> make_state_estimator(const cfgns::PersistConfig& c, const std::string& kind,
                                                           const persist::env::GridLifeConfig& gcfg,
                                                           const persist::env::GridLife<T>& model_env,
                                                           std::uint64_t seed) {
    if (kind == "ekf") {
        persist::models::KalmanFilterOptions ko;
        ko.initial_mean.assign(gcfg.initial_internal.begin(), gcfg.initial_internal.end());
        ko.initial_std = {gcfg.initial_noise / std::sqrt(3.0)};
        ko.process_std = {0.0};
        using Known = persist::models::KnownDynamics<persist::env::GridLife<T>>;
        return persist::models::ExtendedKalmanFilter<Known>(Known(model_env), model_env.observation_dim(), ko);
    }
    const auto& se = c.state_estimator;
    return persist::models::GruStateEstimator<T>({.obs_dim = model_env.observation_dim(),
                                                  .state_dim = model_env.internal_dim(),
                                                  .hidden = static_cast<Index>(se.hidden_size),
                                                  .sequence_length = static_cast<Index>(se.sequence_length),
                                                  .burn_in = static_cast<Index>(se.burn_in),
                                                  .lr = se.lr,
                                                  .batch_size = static_cast<Index>(se.batch_size),
                                                  .seed = seed + 29});
}

using Kinematics = persist::parallel::GridLifePatchKinematics<T>;
using Learned = persist::shield::LearnedShield<T, Kinematics>;
/// viability.shield.check = constraints: rollouts checked against the constraint set itself.
using LearnedExact = persist::shield::LearnedShield<T, Kinematics, persist::parallel::LinearConstraintsView<T>>;
using Amortized = persist::shield::AmortizedShield<Learned>;

/// Everything after the dispatch: one template instantiation per (intrinsic, shield) pair.
template <class Intr, class Sh>
int run_with(const cfgns::PersistConfig& c, const Args& a, const persist::env::GridLifeConfig& gcfg, Intr intr,
             const char* intr_name, Sh shield, const char* shield_name) {
    using Env = persist::env::GridLife<T>;
    using Agent = persist::train::PersistAgent<Env, persist::agents::SAC<T>, Sh, Intr>;
    const std::uint64_t seed = a.seed.value_or(c.train.seed);
    Env env(gcfg);

    persist::agents::SACOptions so;
    so.hidden = a.hidden ? std::vector<Index>{*a.hidden, *a.hidden} : to_index(c.train.sac.hidden);
    so.actor_lr = c.train.sac.actor_lr;
    so.critic_lr = c.train.sac.critic_lr;
    so.alpha_lr = c.train.sac.alpha_lr;
    so.tau = c.train.sac.tau;
    so.init_alpha = c.train.sac.init_alpha;
    so.autotune_alpha = c.train.sac.autotune_alpha;
    so.target_entropy = c.train.sac.target_entropy;
    so.gamma = c.train.gamma;
    so.seed = seed;
    // train.threads (0: all cores): the shield's rollout batches (OpenMP) and SAC's twin critics.
    // Results are bitwise the same for every thread count.
    const std::int64_t threads_wanted = a.threads.value_or(c.train.threads);
    const int threads = threads_wanted > 0 ? static_cast<int>(threads_wanted)
                                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#if defined(_OPENMP)
    omp_set_num_threads(threads);
#endif
    so.threads = threads;
    persist::agents::SAC<T> sac(env, so);

    Vec<T> mu(static_cast<Index>(c.internal_state.mu.size())), w(mu.size());
    for (Index j = 0; j < mu.size(); ++j) {
        mu[j] = static_cast<T>(c.internal_state.mu[static_cast<std::size_t>(j)]);
        w[j] = static_cast<T>(c.internal_state.w[static_cast<std::size_t>(j)]);
    }
    persist::homeostasis::Homeostat<T> homeo(mu, w, c.internal_state.dims);
    auto constraints = cfgns::make_constraint_set<T>(c);

    persist::train::AgentOptions opt;
    opt.lambda_homeo = c.rewards.lambda_homeo;
    opt.lambda_intr = c.rewards.lambda_intr;
    opt.batch_size = a.batch_size.value_or(c.train.batch_size);
    opt.update_every = c.train.update_every;
    opt.gradient_steps = a.gradient_steps.value_or(c.train.gradient_steps);
    opt.learning_starts = a.learning_starts.value_or(c.train.learning_starts);
    opt.replay_capacity = std::max<Index>(opt.batch_size, std::min<Index>(c.train.replay_capacity, a.steps));
    // --resume: the checkpoint to continue (a file, or the newest in a directory). Its replay
    // keeps the capacity it was saved with (capped at *its* run's budget), so a resumed run that
    // trains longer than the first one does not fail the checkpoint's options check.
    std::optional<std::filesystem::path> resume_path;
    if (a.resume) {
        resume_path = std::filesystem::is_directory(*a.resume) ? persist::train::latest_checkpoint(*a.resume)
                                                               : std::optional<std::filesystem::path>(*a.resume);
        if (!resume_path) throw persist::IoError("--resume: no checkpoint in " + *a.resume);
        const auto info = persist::io::inspect_checkpoint(*resume_path, /*verify_checksum=*/false);
        const auto& m = info.metadata;
        if (m.contains(persist::train::agent_checkpoint_key) && m[persist::train::agent_checkpoint_key].contains("options") &&
            m[persist::train::agent_checkpoint_key]["options"].contains("replay_capacity") &&
            m[persist::train::agent_checkpoint_key]["options"]["replay_capacity"].is_number_integer()) {
            const auto saved = m[persist::train::agent_checkpoint_key]["options"]["replay_capacity"].get<std::int64_t>();
            if (saved != static_cast<std::int64_t>(opt.replay_capacity) &&
                saved == std::max<std::int64_t>(opt.batch_size, std::min<std::int64_t>(c.train.replay_capacity, saved)))
                opt.replay_capacity = static_cast<Index>(saved);  // the first run's budget cap
        }  // anything else: PersistAgent::load reports the difference
    }
    opt.policy_sees_internal = !c.partial_observability.enabled;
    // x hidden: the policy acts on [o; x_hat] from the state estimator (seed: state_estimator),
    // unless --state-estimator none (then on [o] alone).
    const std::string est_kind = estimator_kind(c, a);
    opt.estimate_internal = c.partial_observability.enabled && est_kind != "none";
    opt.estimator_updates = static_cast<Index>(a.estimator_updates.value_or(c.state_estimator.updates_per_round));
    opt.near_boundary_capacity = c.viability.near_boundary_buffer.capacity;
    opt.near_boundary_epsilon = c.viability.near_boundary_buffer.epsilon;
    opt.recovery_epsilon = c.metrics.recovery_epsilon;
    opt.recovery_horizon = c.metrics.recovery_horizon;
    opt.seed = seed;
    if (!opt.policy_sees_internal && !opt.estimate_internal) {  // the policy sees [o] only: rebuild SAC without x
        sac = persist::agents::SAC<T>(env.observation_dim(), 0, env.action_low(), env.action_high(), so);
    }

    if (demonstrations_for_policy(c, a, env, opt.policy_sees_internal || opt.estimate_internal, sac, seed))
        opt.random_actions_before_learning = false;  // the pre-trained policy acts from the first step

    const Env model_env(gcfg);  // the EKF's known dynamics (outlives the agent)
    Agent agent(std::move(env), std::move(sac), std::move(shield), std::move(intr), std::move(homeo), constraints, opt);
    if (c.curriculum.enabled) agent.set_curriculum(cfgns::make_curriculum<T>(c));
    if (opt.estimate_internal) agent.set_state_estimator(make_state_estimator(c, est_kind, gcfg, model_env, seed));
    if (resume_path) {  // after the curriculum is installed, before training
        agent.load(*resume_path);  // same config, seed and flags required; CheckpointError names any difference
        std::printf("resumed from %s at step %lld\n", resume_path->c_str(), static_cast<long long>(agent.total_steps()));
    }

    const std::string metrics_path = a.metrics.value_or(c.metrics.path);
    // A resumed run continues the interrupted run's metrics file: its episodes up to the
    // checkpoint stay, the rest is written again by this run.
    std::int64_t kept_lines = 0;
    persist::train::MetricsWriter writer =
        resume_path ? persist::train::MetricsWriter::resume(metrics_path, agent.total_steps(), &kept_lines)
                    : persist::train::MetricsWriter(metrics_path);
    if (resume_path)
        std::printf("  metrics: %lld episode lines of %s kept (episodes that ended by step %lld)\n",
                    static_cast<long long>(kept_lines), metrics_path.c_str(),
                    static_cast<long long>(agent.total_steps()));
    const auto& cn = agent.metrics().constraint_names();
    const auto& vn = agent.metrics().variable_names();
    std::int64_t last_print = 0;
    agent.on_episode_end([&](const persist::train::EpisodeRecord& r) {
        writer.write(persist::train::to_json(r, cn, vn));
        const std::int64_t now = r.start_step + r.length;
        if (!a.quiet && now - last_print >= a.steps / 10) {
            last_print = now;
            const auto s = agent.metrics().summary();
            std::printf("  step %7lld  episodes %5lld  mean survival %6.1f  violations %5lld  mean task return %7.2f\n",
                        static_cast<long long>(now), static_cast<long long>(s.episodes), s.mean_length,
                        static_cast<long long>(s.violations), s.mean_return_task);
            std::fflush(stdout);
        }
    });

    std::printf("gridlife_persist: config %s\n", a.config.c_str());
    std::printf("  agent: PersistAgent<GridLife<float>, SAC<float>, %s, %s>\n", shield_name, intr_name);
    std::printf("  steps %lld, seed %llu, lambda_H %.3g, lambda_I %.3g, batch %lld, update_every %lld, gradient_steps %lld,\n"
                "  learning_starts %lld, replay capacity %lld, SAC hidden %lld x %zu, gamma %.4g, curriculum %s, threads %d\n",
                static_cast<long long>(a.steps), static_cast<unsigned long long>(seed), opt.lambda_homeo, opt.lambda_intr,
                static_cast<long long>(opt.batch_size), static_cast<long long>(opt.update_every),
                static_cast<long long>(agent.gradient_steps()), static_cast<long long>(opt.learning_starts),
                static_cast<long long>(opt.replay_capacity), static_cast<long long>(so.hidden.front()), so.hidden.size(),
                so.gamma, c.curriculum.enabled ? "on" : "off", threads);
    std::printf("  constraints:");
    for (const auto& s : cn) std::printf(" \"%s\"", s.c_str());
    std::printf("\n");
    if (opt.estimate_internal && est_kind == "ekf")
        std::printf("  state estimator: EKF on GridLife's known internal dynamics, prior N(initial_internal, "
                    "(%g / sqrt 3)^2), no process noise; the policy acts on [o; x_hat]\n",
                    gcfg.initial_noise);
    else if (opt.estimate_internal)
        std::printf("  state estimator: GRU, hidden %lld, sequences of %lld (burn-in %lld), %lld per update, %lld "
                    "updates per round, lr %g; the policy acts on [o; x_hat]\n",
                    static_cast<long long>(c.state_estimator.hidden_size),
                    static_cast<long long>(c.state_estimator.sequence_length),
                    static_cast<long long>(c.state_estimator.burn_in),
                    static_cast<long long>(c.state_estimator.batch_size),
                    static_cast<long long>(opt.estimator_updates), c.state_estimator.lr);
    else if (c.partial_observability.enabled)
        std::printf("  state estimator: none (--state-estimator none); the policy acts on o alone\n");
    if (gcfg.partial_observability || gcfg.observation_noise_std > 0.0 || gcfg.observation_dropout > 0.0)
        std::printf("  observations: x %s, noise std %g, dropout %g (partial_observability)\n",
                    gcfg.partial_observability ? "hidden" : "observed", gcfg.observation_noise_std,
                    gcfg.observation_dropout);
    std::fflush(stdout);

    // checkpoint: every `every` steps into `dir`, the newest `keep` kept (0: never); resume a run
    // with --resume DIR (the latest there).
    persist::train::PeriodicCheckpoints periodic(a.checkpoint_dir.value_or(c.checkpoint.dir),
                                                 a.checkpoint_every.value_or(c.checkpoint.every), c.checkpoint.keep);
    if (periodic.every() > 0 && periodic.every() <= a.steps)
        std::printf("  checkpoints every %lld steps into %s (newest %lld kept)\n",
                    static_cast<long long>(periodic.every()), periodic.dir().c_str(),
                    static_cast<long long>(periodic.keep()));
    std::fflush(stdout);

    const auto t0 = std::chrono::steady_clock::now();
    while (agent.total_steps() < a.steps) {  // --steps is the total (a resumed run continues)
        agent.step();
        if (const auto p = periodic.maybe_save(agent); p && !a.quiet)
            std::printf("  checkpoint written to %s\n", p->c_str());
    }
    if (a.save) {
        agent.save(*a.save);
        std::printf("checkpoint written to %s\n", a.save->c_str());
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    const auto s = agent.metrics().summary();
    writer.write(persist::train::to_json(s, cn, vn));
    std::printf("\nsummary (%lld finished episodes, %lld steps, %lld updates, %.1f s, %.0f steps/s)\n",
                static_cast<long long>(s.episodes), static_cast<long long>(agent.total_steps()),
                static_cast<long long>(agent.updates()), secs, double(agent.total_steps()) / secs);
    std::printf("  mean survival steps      %.1f (horizon %d); survived to the time limit: %lld\n", s.mean_length,
                gcfg.horizon, static_cast<long long>(s.survived));
    std::printf("  violations               %lld:", static_cast<long long>(s.violations));
    for (std::size_t j = 0; j < vn.size(); ++j)
        std::printf(" %s %lld", vn[j].c_str(), static_cast<long long>(s.violations_per_variable[j]));
    std::printf("\n  satisfaction per variable");
    for (std::size_t j = 0; j < vn.size(); ++j) std::printf(" %s %.3f", vn[j].c_str(), s.variable_satisfaction[j]);
    if (const auto* est = agent.state_estimator(); est && est->trainable())
        std::printf("\n  state estimator          last loss %.5f (MSE of x_hat on replay sequences)",
                    agent.state_estimator_loss());
    std::printf("\n  recovery rate            %.3f (%lld near-boundary states)\n", s.recovery_rate,
                static_cast<long long>(s.near_boundary));
    std::printf("  mean return              task %.2f, total %.2f; mean r_intr %.4f\n", s.mean_return_task,
                s.mean_return_total, s.mean_r_intr);
    if (std::isfinite(s.mean_policy_entropy))
        std::printf("  policy entropy           %.3f; shield trigger rate %.3f\n", s.mean_policy_entropy,
                    s.shield_trigger_rate);
    else  // no policy update has run yet (the metrics file has null)
        std::printf("  policy entropy           n/a (no policy update yet); shield trigger rate %.3f\n",
                    s.shield_trigger_rate);
    auto print_learned = [](const auto& ls) {
        const auto& lc = ls.counters();
        const auto& rc = ls.search().counters();
        std::printf("  shield                   %llu decisions (%llu before the models were trained), %llu projected, "
                    "%llu with no action reaching conf (%llu with a constraint given up: relax_unavoidable); model mse "
                    "%.2e, V_psi accuracy %.3f\n",
                    static_cast<unsigned long long>(lc.decisions), static_cast<unsigned long long>(lc.passthrough),
                    static_cast<unsigned long long>(rc.projections), static_cast<unsigned long long>(rc.infeasible),
                    static_cast<unsigned long long>(rc.relaxed),
                    double(ls.last_model_stats().mse), double(ls.last_viability_stats().accuracy));
    };
    if constexpr (std::is_same_v<Sh, Learned> || std::is_same_v<Sh, LearnedExact>) print_learned(agent.shield());
    if constexpr (std::is_same_v<Sh, Amortized>) {
        print_learned(agent.shield().search());
        const auto& st = agent.shield().stats();
        std::printf("  safety network           mode %s; %lld decisions in amortized mode: %lld accepted as proposed, "
                    "%lld network outputs accepted, %lld fallbacks to the search; %lld training steps\n",
                    agent.shield().mode() == Amortized::Mode::amortized ? "amortized" : "search",
                    static_cast<long long>(st.decisions - st.search_mode_decisions),
                    static_cast<long long>(st.precheck_accepts), static_cast<long long>(st.amortized_accepts),
                    static_cast<long long>(st.fallbacks), static_cast<long long>(st.train_steps));
    }
    // After training: N evaluation episodes (deterministic policy, shield on, no learning), on
    // episode seeds no training episode used; written as one "evaluation" JSON line.
    for (const auto actions : a.eval_episodes > 0 ? a.eval_actions : decltype(a.eval_actions){}) {
        const bool sampled = actions == persist::train::EvalActions::sampled;
        double len_sum = 0, ret_sum = 0;
        std::int64_t violated = 0;
        for (std::int64_t e = 0; e < a.eval_episodes; ++e) {
            std::int64_t len = 0;
            ret_sum += agent.evaluate_episode(0x45564131ull + seed * 100003ull + static_cast<std::uint64_t>(e), &len,
                                              actions);
            len_sum += double(len);
            if (len < gcfg.horizon) ++violated;
        }
        const double mean_len = len_sum / double(a.eval_episodes);
        std::printf("  evaluation (%-13s) %lld episodes: mean survival %.1f (%.1f %% of the horizon), "
                    "violations %lld, mean task return %.2f\n",
                    sampled ? "sampled" : "deterministic", static_cast<long long>(a.eval_episodes), mean_len,
                    100.0 * mean_len / gcfg.horizon, static_cast<long long>(violated),
                    ret_sum / double(a.eval_episodes));
        writer.write(nlohmann::json{{"type", "evaluation"},
                                    {"actions", sampled ? "sampled" : "deterministic"},
                                    {"episodes", a.eval_episodes},
                                    {"mean_survival_steps", mean_len},
                                    {"horizon", gcfg.horizon},
                                    {"violations", violated},
                                    {"mean_return_task", ret_sum / double(a.eval_episodes)}});
    }
    std::printf("  metrics written to %s\n", metrics_path.c_str());
    return 0;
}

/// demonstrations (seed Change 4; config section or --demonstrations FILE): pre-train the
/// shield's f_theta and V_psi on safe demonstrations before the first step
/// (LearnedShield::pretrain: demonstrations.pretrain_steps updates of batch_size transitions;
/// with pretrain_steps >= --shield-warmup the shield filters from the first step).
template <class Shield>
void pretrain_on_demonstrations(const cfgns::PersistConfig& c, const Args& a, const persist::env::GridLife<T>& probe,
                                Shield& shield, std::uint64_t seed) {
    if (!a.demonstrations && !c.demonstrations.enabled) return;
    if (a.resume) {
        std::printf("note: demonstrations not used: --resume restores the shield's trained models\n");
        return;
    }
    const std::string path = a.demonstrations.value_or(c.demonstrations.path);
    const auto demos = persist::replay::load_demonstrations<T>(path, probe.internal_dim(), probe.action_dim(),
                                                               probe.observation_dim());
    persist::Rng rng(seed + 16);
    const auto t0 = std::chrono::steady_clock::now();
    const Index transitions = shield.pretrain(demos, static_cast<Index>(c.demonstrations.pretrain_steps),
                                              static_cast<Index>(c.demonstrations.batch_size), rng);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  demonstrations: %s, %lld steps in %lld episodes (%lld transitions); f_theta and V_psi pre-trained "
                "for %lld updates of %lld in %.1f s%s\n",
                path.c_str(), static_cast<long long>(demos.size()), static_cast<long long>(demos.num_episodes()),
                static_cast<long long>(transitions), static_cast<long long>(c.demonstrations.pretrain_steps),
                static_cast<long long>(c.demonstrations.batch_size), secs,
                shield.active() ? "; the shield filters from the first step" : "");
}

/// viability.shield.type (or --shield): none -> NullShield; rollout -> LearnedShield (the
/// internal-model ensemble and V_psi it trains, rollouts with GridLife's patch kinematics).
/// The other kinds exist in the library but are not wired here: an error says so.
template <class Intr>
int run(const cfgns::PersistConfig& c, const Args& a, const persist::env::GridLifeConfig& gcfg, Intr intr,
        const char* intr_name) {
    cfgns::ShieldKind kind = c.viability.shield.type;
    if (a.shield) {
        if (*a.shield == "none") kind = cfgns::ShieldKind::none;
        else if (*a.shield == "rollout") kind = cfgns::ShieldKind::rollout;
        else throw persist::ConfigError("--shield " + *a.shield + ": expected none or rollout");
    }
    if (kind == cfgns::ShieldKind::none) {
        // Shield-only flags do nothing without a shield. They are accepted (the results script
        // passes the same flags to both agents) but never silently: say which are ignored.
        std::string ignored;
        const auto note = [&](bool given, const char* flag) {
            if (given) ignored += (ignored.empty() ? "" : ", ") + std::string(flag);
        };
        note(a.shield_margins.has_value(), "--shield-margins");
        note(a.shield_relax.has_value(), "--shield-relax");
        note(a.shield_check.has_value(), "--shield-check");
        note(a.shield_warmup_given, "--shield-warmup");
        note(a.safety_network.has_value(), "--safety-network");
        note(a.switch_after.has_value(), "--switch-after");
        note(a.safety_min_samples.has_value(), "--safety-min-samples");
        note(a.safety_overshoot.has_value(), "--safety-overshoot");
        note((a.demonstrations.has_value() || c.demonstrations.enabled) && c.demonstrations.pretrain_steps > 0,
             "demonstrations.pretrain_steps (the shield's models; the policy uses the demonstrations when "
             "demonstrations.weight > 0)");
        if (!ignored.empty()) std::printf("note: %s ignored: no shield (--shield none / viability.shield.type)\n", ignored.c_str());
        return run_with(c, a, gcfg, std::move(intr), intr_name, persist::shield::NullShield<T>{}, "NullShield<float>");
    }
    if (kind != cfgns::ShieldKind::rollout)
        throw persist::ConfigError("viability.shield.type (" + a.config +
                                   "): this example runs \"none\" or \"rollout\"; amortized, cbf and ensemble "
                                   "shields are not wired into it");
    if (c.models.internal_model.use_known_dynamics)
        throw persist::ConfigError("models.internal_model.use_known_dynamics = true (" + a.config +
                                   "): this example trains the internal model; for GridLife's exact dynamics build "
                                   "RolloutShield<T, parallel::GridLifeRolloutModel<T>, ...> (docs/shield.md)");
    const std::uint64_t seed = a.seed.value_or(c.train.seed);
    persist::env::GridLife<T> probe(gcfg);
    persist::shield::LearnedShieldOptions so;
    so.rollout = persist::shield::RolloutShieldOptions::from_config(c.viability.shield, seed + 11);
    if (a.shield_relax) {
        if (*a.shield_relax == "on") so.rollout.relax_unavoidable = true;
        else if (*a.shield_relax == "off") so.rollout.relax_unavoidable = false;
        else throw persist::ConfigError("--shield-relax " + *a.shield_relax + ": expected on or off");
    }
    so.model.internal_dim = probe.internal_dim();
    so.model.action_dim = probe.action_dim();
    so.model.obs_features = persist::parallel::gridlife_centre_features(probe);
    so.model.hidden = to_index(c.models.internal_model.hidden);
    so.model.lr = c.models.internal_model.lr;
    so.model.seed = seed + 12;
    so.viability.hidden = to_index(c.viability.approximator.hidden);
    so.viability.lr = c.viability.approximator.lr;
    so.viability.batch_size = c.viability.approximator.batch_size;
    so.viability.focal_gamma = c.viability.approximator.focal_gamma;
    so.viability.focal_alpha = c.viability.approximator.focal_alpha;
    so.viability.seed = seed + 13;
    so.warmup_updates = a.shield_warmup;
    so.seed = seed + 14;
    // The shield's set: viability.constraints tightened by viability.shield.margins (or
    // --shield-margins), a safety buffer; the agent still terminates on the untightened set.
    cfgns::PersistConfig cs = c;
    if (a.shield_margins) {
        if (a.shield_margins->size() != c.viability.constraints.size())
            throw persist::ConfigError("--shield-margins: expected " + std::to_string(c.viability.constraints.size()) +
                                       " values (one per viability.constraints entry of " + a.config + "), got " +
                                       std::to_string(a.shield_margins->size()));
        cs.viability.shield.margins = *a.shield_margins;
    }
    auto shield_set = cfgns::make_shield_constraint_set<T>(cs);
    if (!cs.viability.shield.margins.empty() && !a.quiet) {
        std::printf("  shield constraints:");
        for (Index k = 0; k < shield_set.num_constraints(); ++k)
            std::printf(" \"%s\"", shield_set.constraint(k).text.c_str());
        std::printf(" (viability.shield.margins)\n");
    }
    cfgns::ShieldCheck check = c.viability.shield.check;
    if (a.shield_check) {
        if (*a.shield_check == "approximator") check = cfgns::ShieldCheck::approximator;
        else if (*a.shield_check == "constraints") check = cfgns::ShieldCheck::constraints;
        else throw persist::ConfigError("--shield-check " + *a.shield_check + ": expected approximator or constraints");
    }
    bool amortized = c.safety_network.enabled;
    if (a.safety_network) {
        if (*a.safety_network == "on") amortized = true;
        else if (*a.safety_network == "off") amortized = false;
        else throw persist::ConfigError("--safety-network " + *a.safety_network + ": expected on or off");
    }
    if (!amortized && (a.switch_after || a.safety_min_samples || a.safety_overshoot))
        throw persist::ConfigError(std::string(a.switch_after ? "--switch-after"
                                               : a.safety_min_samples ? "--safety-min-samples"
                                                                      : "--safety-overshoot") +
                                   ": the safety network is off (safety_network.enabled in " + a.config +
                                   ", or --safety-network on)");
    if (check == cfgns::ShieldCheck::constraints) {
        if (amortized)
            throw persist::ConfigError("viability.shield.check = constraints with the safety network (" + a.config +
                                       "): this example wires the safety network over the V_psi shield only");
        LearnedExact shield(std::move(shield_set), Kinematics::from(probe), probe.action_low(), probe.action_high(), so);
        pretrain_on_demonstrations(c, a, probe, shield, seed);
        return run_with(c, a, gcfg, std::move(intr), intr_name, std::move(shield),
                        "LearnedShield<float, GridLifePatchKinematics, LinearConstraintsView>");
    }
    Learned shield(std::move(shield_set), Kinematics::from(probe), probe.action_low(), probe.action_high(), so);
    pretrain_on_demonstrations(c, a, probe, shield, seed);
    if (!amortized) {
        return run_with(c, a, gcfg, std::move(intr), intr_name, std::move(shield),
                        "LearnedShield<float, GridLifePatchKinematics>");
    }
    // safety_network: (seed Change 3): g_phi learns the LearnedShield's projections and replaces
    // its search after switch_after_steps decisions, checked by one predictive check each.
    persist::shield::AmortizedShieldOptions ao;
    ao.seed = seed + 15;
    ao = persist::shield::amortized_options_from(c.safety_network, ao);
    if (a.switch_after) ao.switch_after_steps = *a.switch_after;
    if (a.safety_min_samples) ao.min_samples = *a.safety_min_samples;
    if (a.safety_overshoot) ao.target_overshoot = *a.safety_overshoot;
    Amortized am(std::move(shield), probe.observation_dim(), probe.internal_dim(), probe.action_low(),
                 probe.action_high(), ao);
    return run_with(c, a, gcfg, std::move(intr), intr_name, std::move(am),
                    "AmortizedShield<LearnedShield<float, GridLifePatchKinematics>>");
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse(argc, argv);
        const auto c = cfgns::load_config(a.config);
        if (c.env.name != cfgns::gridlife_env_name)
            throw persist::ConfigError("env.name = \"" + c.env.name + "\": this example runs GridLife-v0 only");
        if (c.train.algo != cfgns::Algo::SAC)
            throw persist::ConfigError("train.algo: only SAC is implemented (PPO and TD3 are not yet)");
        const std::string est_kind = estimator_kind(c, a);
        if (c.partial_observability.enabled && est_kind == "ekf" &&
            (c.partial_observability.noise_std > 0.0 || c.partial_observability.dropout_prob > 0.0))
            throw persist::ConfigError(
                "state_estimator.type = ekf with partial_observability.noise_std / dropout_prob > 0: the filter's "
                "known dynamics read the tile underfoot from the observation, which the sensor corrupts, and x is "
                "never observed to correct the drift; use state_estimator.type: gru (or --state-estimator gru)");
        if (c.partial_observability.enabled && est_kind != "none")
            std::printf("note: partial_observability.enabled: x is hidden from the policy, which acts on the %s state "
                        "estimator's x_hat (state_estimator)\n", est_kind == "ekf" ? "EKF" : "GRU");
        const auto kind = resolve_intrinsic(c, a);
        if (a.intrinsic && c.rewards.intrinsic != kind)
            std::printf("note: --intrinsic %s overrides rewards.intrinsic = \"%s\" of the config\n", intrinsic_name(kind),
                        intrinsic_name(c.rewards.intrinsic));
        const auto gcfg = cfgns::make_gridlife_config(c);
        persist::env::GridLife<T> probe(gcfg);
        const std::uint64_t seed = a.seed.value_or(c.train.seed);
        switch (kind) {
            case cfgns::IntrinsicKind::none:
                return run(c, a, gcfg, persist::intrinsic::NoIntrinsic<T>{}, "NoIntrinsic<float>");
            case cfgns::IntrinsicKind::surprise: {
                persist::intrinsic::SurpriseOptions o;
                o.obs_dim = probe.observation_dim();
                o.internal_dim = probe.internal_dim();
                o.action_dim = probe.action_dim();
                o.hidden = to_index(c.models.world_model.hidden);
                o.lr = c.models.world_model.lr;
                o.beta = c.rewards.surprise.beta;
                o.mu = c.internal_state.mu;
                o.seed = seed + 1;
                return run(c, a, gcfg, persist::intrinsic::Surprise<T>(o), "Surprise<float>");
            }
            case cfgns::IntrinsicKind::rnd: {
                persist::intrinsic::RNDOptions o;
                o.obs_dim = probe.observation_dim();
                o.output_dim = c.rewards.rnd.output_dim;
                o.hidden = to_index(c.rewards.rnd.hidden);
                o.predictor_extra = {};  // rewards.rnd has no key for it; the target's widths only
                o.lr = c.rewards.rnd.lr;
                o.seed = seed + 2;
                return run(c, a, gcfg, persist::intrinsic::RND<T>(o), "RND<float>");
            }
            case cfgns::IntrinsicKind::empowerment: {
                persist::intrinsic::EmpowermentOptions o;
                o.obs_dim = probe.observation_dim();
                o.internal_dim = probe.internal_dim();
                o.action_dim = probe.action_dim();
                o.k = c.rewards.empowerment.k;
                o.num_negatives = c.rewards.empowerment.num_negatives;
                o.hidden = to_index(c.rewards.empowerment.hidden);
                o.lr = c.rewards.empowerment.lr;
                o.seed = seed + 3;
                return run(c, a, gcfg, persist::intrinsic::Empowerment<T>(o), "Empowerment<float>");
            }
        }
        return 2;
    } catch (const persist::Error& e) {
        std::fprintf(stderr, "gridlife_persist: error: %s\n", e.what());
        return 2;
    }
}
