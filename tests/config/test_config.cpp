// Config module: the seed's YAML loads verbatim into PersistConfig, JSON / YAML round trips,
// every error kind with its exact key path (and file:line for files), the reflective walker on
// a user struct (nested structs, vectors of structs, std::array, optional, enums, Eigen).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
#include <boost/hana/length.hpp>
#include <nlohmann/json.hpp>

#include "persist/config/config.hpp"
#include "persist/config/yaml.hpp"
#include "persist/env/gridlife.hpp"

#ifndef PERSIST_CONFIG_EXAMPLES_DIR
#error "PERSIST_CONFIG_EXAMPLES_DIR (examples/configs) must be defined by the build"
#endif

namespace cfg = persist::config;
using cfg::PersistConfig;
using persist::ConfigError;
using persist::IoError;

namespace {

const std::string kExamples = PERSIST_CONFIG_EXAMPLES_DIR;

/// Section 8 of the seed document, byte for byte.
const std::string kSeedYaml = R"(env:
  name: "GridLife-v0"
  horizon: 512
internal_state:
  dims: ["energy","temp","integrity"]
  mu: [0.7, 0.5, 0.9]
  w:  [1.0, 0.5, 1.5]
viability:
  constraints:
    - "energy >= 0.2"
    - "temp in [0.3, 0.7]"
    - "integrity >= 0.6"
  shield:
    conf: 0.97
    horizon: 8
rewards:
  lambda_homeo: 0.7
  lambda_intr:  0.3
  intrinsic: "empowerment"  # or "surprise"
train:
  algo: "SAC"        # or PPO/TD3
  batch_size: 1024
  gamma: 0.995
  update_every: 64
  model_rollouts: 5
)";

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// The seed with one line replaced (`from` must occur exactly once).
std::string seed_with(const std::string& from, const std::string& to) {
    std::string s = kSeedYaml;
    const auto pos = s.find(from);
    REQUIRE(pos != std::string::npos);
    REQUIRE(s.find(from, pos + 1) == std::string::npos);
    return s.replace(pos, from.size(), to);
}

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const ConfigError& e) {
        return e.what();
    } catch (const IoError& e) {
        return std::string("IoError: ") + e.what();
    }
    return "no error";
}

std::string yaml_error(const std::string& text, const std::string& name = "run.yaml") {
    return error_of([&] { (void)cfg::load_yaml_string<PersistConfig>(text, name); });
}
std::string json_error(const std::string& text, const std::string& name = "run.json") {
    return error_of([&] { (void)cfg::load_json_string<PersistConfig>(text, name); });
}
std::string doc_error(const nlohmann::json& j) {
    return error_of([&] { (void)cfg::from_json<PersistConfig>(j); });
}

/// A config that differs from the defaults in every section and uses every member kind.
PersistConfig non_default_config() {
    PersistConfig c;
    c.env.horizon = 300;
    c.env.num_envs = 4;
    c.env.gridlife = persist::env::GridLifeConfig{.width = 24, .map_seed = 18446744073709551615ull,
                                                   .spot_sigma = 1.25, .reward_mode = persist::env::GridLifeReward::items};
    c.env.gridlife->initial_internal = {0.8, 0.45, 0.95};
    c.internal_state.mu = {0.75, 0.5, 1.0 / 3.0};
    c.viability.constraints = {"energy + 0.5*integrity >= 0.5", "temp in [0.25, 0.75]"};
    c.viability.shield.type = cfg::ShieldKind::cbf;
    c.viability.shield.conf = 0.999;
    c.viability.shield.ensemble.vote = cfg::EnsembleVote::majority_vote;
    c.viability.shield.check = cfg::ShieldCheck::constraints;
    c.viability.near_boundary_buffer.replacement = persist::replay::Replacement::ring;
    c.rewards.intrinsic = cfg::IntrinsicKind::rnd;
    c.rewards.lambda_intr = 0.1;
    c.train.algo = cfg::Algo::TD3;
    c.train.seed = 123456789012345ull;
    c.train.sac.target_entropy = -2.5;
    c.train.sac.hidden = {400, 300, 200};
    c.curriculum.enabled = true;
    c.curriculum.start_widths = {0.1, 0.05};
    c.curriculum.schedule = cfg::CurriculumSchedule::cosine;
    c.models.world_model.type = cfg::WorldModelKind::mlp;
    c.demonstrations = {.enabled = true, .path = "demos/expert.jsonl"};
    c.state_estimator.type = cfg::EstimatorKind::ekf;
    c.partial_observability.enabled = true;
    c.maintenance.enabled = false;
    c.metrics.path = "runs/a/metrics.jsonl";
    c.checkpoint.every = 0;
    return c;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// The seed
// ------------------------------------------------------------------------------------------

TEST_CASE("examples/configs/gridlife.yaml is the seed's section 8, verbatim", "[config][seed]") {
    CHECK(read_file(kExamples + "/gridlife.yaml") == kSeedYaml);
}

TEST_CASE("the seed YAML loads with the seed's values", "[config][seed]") {
    const PersistConfig c = cfg::load_config(kExamples + "/gridlife.yaml");
    CHECK(c.env.name == "GridLife-v0");
    CHECK(c.env.horizon == 512);
    CHECK_FALSE(c.env.gridlife.has_value());
    CHECK(c.internal_state.dims == std::vector<std::string>{"energy", "temp", "integrity"});
    CHECK(c.internal_state.mu == std::vector<double>{0.7, 0.5, 0.9});
    CHECK(c.internal_state.w == std::vector<double>{1.0, 0.5, 1.5});
    CHECK(c.viability.constraints ==
          std::vector<std::string>{"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"});
    CHECK(c.viability.shield.conf == 0.97);
    CHECK(c.viability.shield.horizon == 8);
    CHECK(c.rewards.lambda_homeo == 0.7);
    CHECK(c.rewards.lambda_intr == 0.3);
    CHECK(c.rewards.intrinsic == cfg::IntrinsicKind::empowerment);
    CHECK(c.train.algo == cfg::Algo::SAC);
    CHECK(c.train.batch_size == 1024);
    CHECK(c.train.gamma == 0.995);
    CHECK(c.train.update_every == 64);
    CHECK(c.train.model_rollouts == 5);
    // Keys the seed does not give keep their defaults.
    CHECK(c.train.sac.actor_lr == 3e-4);
    CHECK(c.train.sac.tau == 0.005);
    CHECK(c.train.sac.hidden == std::vector<std::int64_t>{256, 256});
    CHECK_FALSE(c.train.sac.target_entropy.has_value());
    CHECK_FALSE(c.curriculum.enabled);

    // The defaults are the seed's values: an empty document is the seed.
    CHECK(cfg::first_difference(c, PersistConfig{}) == std::nullopt);
    CHECK(cfg::equal(cfg::load_yaml_string<PersistConfig>(""), c));
    CHECK(cfg::equal(cfg::load_json_string<PersistConfig>("{}"), c));
    CHECK_NOTHROW(cfg::validate(PersistConfig{}));

    // The derived objects later modules build.
    const auto set = cfg::make_constraint_set(c);
    CHECK(set.dim() == 3);
    CHECK(set.num_constraints() == 3);
    const auto g = cfg::make_gridlife_config(c);
    CHECK(g.horizon == 512);
    CHECK_FALSE(g.partial_observability);
    CHECK(g.num_refuel == 2);
}

TEST_CASE("examples/configs/gridlife.json and gridlife_full.yaml load", "[config][seed]") {
    const PersistConfig seed = cfg::load_config(kExamples + "/gridlife.yaml");
    CHECK(cfg::first_difference(cfg::load_config(kExamples + "/gridlife.json"), seed) == std::nullopt);

    // gridlife_full.yaml: every key with its default (GridLife's options spelled out).
    const PersistConfig full = cfg::load_config(kExamples + "/gridlife_full.yaml");
    PersistConfig expected;
    expected.env.gridlife = persist::env::GridLifeConfig{};
    CHECK(cfg::first_difference(full, expected) == std::nullopt);
    // ... and lists every key there is: same document as the writer's.
    CHECK(cfg::yaml_to_json(read_file(kExamples + "/gridlife_full.yaml")) == cfg::to_json(expected));
}

TEST_CASE("examples/configs/gridlife_demos.yaml is the seed config plus demonstrations", "[config][seed]") {
    const PersistConfig seed = cfg::load_config(kExamples + "/gridlife.yaml");
    const PersistConfig demos = cfg::load_config(kExamples + "/gridlife_demos.yaml");
    CHECK(demos.demonstrations.enabled);
    CHECK(demos.demonstrations.weight == 1.0);
    CHECK(demos.demonstrations.policy_pretrain_steps == 20000);
    CHECK(demos.viability.shield.margins == std::vector<double>{0.1, 0.0, 0.0});
    CHECK(demos.viability.shield.check == cfg::ShieldCheck::constraints);
    CHECK(demos.viability.shield.relax_unavoidable);
    CHECK(demos.train.sac.init_alpha == 0.05);
    CHECK(demos.train.sac.target_entropy == std::optional<double>(-4.0));
    // Nothing else differs from the seed's section 8.
    PersistConfig expected = seed;
    expected.demonstrations = demos.demonstrations;
    expected.viability.shield.margins = demos.viability.shield.margins;
    expected.viability.shield.check = demos.viability.shield.check;
    expected.viability.shield.relax_unavoidable = demos.viability.shield.relax_unavoidable;
    expected.train.sac.init_alpha = demos.train.sac.init_alpha;
    expected.train.sac.target_entropy = demos.train.sac.target_entropy;
    CHECK(cfg::first_difference(demos, expected) == std::nullopt);
}

TEST_CASE("examples/configs/gridlife_hidden_x.yaml and gridlife_demos_markov.yaml differ from their base as documented",
          "[config][seed]") {
    const PersistConfig seed = cfg::load_config(kExamples + "/gridlife.yaml");
    const PersistConfig hidden = cfg::load_config(kExamples + "/gridlife_hidden_x.yaml");
    CHECK(hidden.partial_observability.enabled);
    CHECK(hidden.state_estimator.type == cfg::EstimatorKind::gru);
    PersistConfig expected = seed;  // the state_estimator section spells out the defaults
    expected.partial_observability.enabled = true;
    CHECK(cfg::first_difference(hidden, expected) == std::nullopt);

    const PersistConfig demos = cfg::load_config(kExamples + "/gridlife_demos.yaml");
    const PersistConfig markov = cfg::load_config(kExamples + "/gridlife_demos_markov.yaml");
    REQUIRE(markov.env.gridlife.has_value());
    CHECK(markov.env.gridlife->observe_last_action);
    CHECK(cfg::make_gridlife_config(markov).observe_last_action);
    PersistConfig expected_m = demos;
    expected_m.env.gridlife = markov.env.gridlife;
    CHECK(cfg::first_difference(*expected_m.env.gridlife, [] {
              persist::env::GridLifeConfig g;
              g.observe_last_action = true;
              return g;
          }()) == std::nullopt);
    CHECK(cfg::first_difference(markov, expected_m) == std::nullopt);
}

// ------------------------------------------------------------------------------------------
// Round trips
// ------------------------------------------------------------------------------------------

TEST_CASE("load -> to_json -> load gives an equal struct", "[config][roundtrip]") {
    const PersistConfig seed = cfg::load_config(kExamples + "/gridlife.yaml");
    const PersistConfig other = non_default_config();
    REQUIRE_NOTHROW(cfg::validate(other));
    REQUIRE(cfg::first_difference(other, seed).has_value());

    for (const PersistConfig* c : {&seed, &other}) {
        const cfg::Json j = cfg::to_json(*c);
        // In memory, through text, and through the plain (sorted-key) nlohmann::json.
        CHECK(cfg::first_difference(cfg::from_json<PersistConfig>(j), *c) == std::nullopt);
        const std::string text = j.dump(2);
        const PersistConfig back = cfg::load_json_string<PersistConfig>(text);
        CHECK(cfg::first_difference(back, *c) == std::nullopt);
        CHECK(cfg::to_json(back) == j);
        const nlohmann::json sorted = nlohmann::json::parse(text);
        CHECK(cfg::first_difference(cfg::from_json<PersistConfig>(sorted), *c) == std::nullopt);
        // YAML as well.
        const PersistConfig from_yaml = cfg::load_yaml_string<PersistConfig>(cfg::to_yaml(*c));
        CHECK(cfg::first_difference(from_yaml, *c) == std::nullopt);
    }

    // Writer: declaration order, enums by name, nullopt as null, uint64 exact.
    const cfg::Json j = cfg::to_json(other);
    CHECK(j.begin().key() == "env");
    CHECK(j["train"]["algo"] == "TD3");
    CHECK(j["train"]["sac"]["target_entropy"] == -2.5);
    CHECK(cfg::to_json(seed)["train"]["sac"]["target_entropy"].is_null());
    CHECK(j["env"]["gridlife"]["map_seed"].get<std::uint64_t>() == 18446744073709551615ull);
    CHECK(j["env"]["gridlife"]["reward_mode"] == "items");
    CHECK_FALSE(j["env"]["gridlife"].contains("horizon"));
    CHECK_FALSE(j["env"]["gridlife"].contains("partial_observability"));

    // first_difference names the member.
    PersistConfig changed = other;
    changed.env.gridlife->station_cost[2] = 0.25;
    CHECK(cfg::first_difference(changed, other) == std::optional<std::string>("env.gridlife.station_cost[2]"));
    changed = other;
    changed.train.sac.target_entropy.reset();
    CHECK(cfg::first_difference(changed, other) == std::optional<std::string>("train.sac.target_entropy"));
}

TEST_CASE("designated initialisers, null sections and optionals", "[config]") {
    const PersistConfig c{.train = {.batch_size = 256, .replay_capacity = 4096}};
    CHECK(c.train.batch_size == 256);
    CHECK(c.train.gamma == 0.995);
    CHECK_NOTHROW(cfg::validate(c));

    // "section:" with nothing under it keeps the defaults; null resets an optional.
    const auto d = cfg::load_yaml_string<PersistConfig>("train:\nviability:\n  shield: ~\n");
    CHECK(cfg::equal(d, PersistConfig{}));
    const auto e = cfg::load_yaml_string<PersistConfig>(
        "train:\n  sac:\n    target_entropy: -1.5\nenv:\n  gridlife: {width: 20}\n");
    REQUIRE(e.train.sac.target_entropy.has_value());
    CHECK(*e.train.sac.target_entropy == -1.5);
    REQUIRE(e.env.gridlife.has_value());
    CHECK(e.env.gridlife->width == 20);
    CHECK(e.env.gridlife->height == 16);
    const auto f = cfg::load_yaml_string<PersistConfig>("train:\n  sac:\n    target_entropy: null\n");
    CHECK_FALSE(f.train.sac.target_entropy.has_value());

    // Integers written as integral floats (1e6) are accepted.
    const auto g = cfg::load_yaml_string<PersistConfig>("train:\n  total_steps: 2e6\n  seed: 0x10\n");
    CHECK(g.train.total_steps == 2000000);
    CHECK(g.train.seed == 16);
}

TEST_CASE("make_gridlife_config and the curriculum's start set", "[config]") {
    PersistConfig c;
    c.env.horizon = 300;
    c.env.gridlife = persist::env::GridLifeConfig{.width = 20};
    c.partial_observability.enabled = true;
    c.partial_observability.dropout_prob = 0.1;
    c.partial_observability.noise_std = 0.02;
    c.maintenance.enabled = false;
    const auto g = cfg::make_gridlife_config(c);
    CHECK(g.observation_dropout == 0.1);
    CHECK(g.observation_noise_std == 0.02);
    CHECK(g.width == 20);
    CHECK(g.horizon == 300);
    CHECK(g.partial_observability);
    CHECK(g.num_refuel == 0);
    CHECK(g.num_cool == 0);
    CHECK(g.num_repair == 0);
    CHECK_FALSE(g.observe_last_action);
    // A partial env.gridlife section: the other keys keep GridLife's defaults.
    const auto la = cfg::make_gridlife_config(cfg::load_yaml_string<PersistConfig>(
        "env:\n  name: \"GridLife-v0\"\n  gridlife:\n    observe_last_action: true\n"));
    CHECK(la.observe_last_action);
    CHECK(la.width == 16);
    CHECK(persist::env::GridLife<float>(la).observation_dim() == persist::env::GridLife<float>().observation_dim() + 2);

    c.curriculum.start_widths = {0.15, 0.2, 0.3};
    const auto wide = cfg::make_curriculum_start_set(c);
    CHECK(wide.constraint(0).threshold == Approx(0.05));
    CHECK(wide.constraint(0).sense == persist::viability::Sense::ge);
    CHECK(wide.constraint(1).lo == Approx(0.1));
    CHECK(wide.constraint(1).hi == Approx(0.9));
    CHECK(wide.constraint(2).threshold == Approx(0.3));
    const auto target = cfg::make_constraint_set(c);
    const auto mid = persist::viability::ConstraintSet<double>::interpolate(wide, target, 1.0);
    CHECK(mid.constraint(0).threshold == target.constraint(0).threshold);
}

TEST_CASE("viability.shield.margins tighten the shield's set only", "[config]") {
    cfg::PersistConfig c;
    CHECK(cfg::make_shield_constraint_set(c).constraint(0).threshold == Approx(0.2));  // no margins: the set
    c.viability.shield.margins = {0.1, 0.05, 0.0};
    const auto s = cfg::make_shield_constraint_set(c);
    CHECK(s.constraint(0).sense == persist::viability::Sense::ge);
    CHECK(s.constraint(0).threshold == Approx(0.3));
    CHECK(s.constraint(1).lo == Approx(0.35));
    CHECK(s.constraint(1).hi == Approx(0.65));
    CHECK(s.constraint(2).threshold == Approx(0.6));
    CHECK_THAT(s.constraint(0).text, Catch::StartsWith("energy >= 0.3"));  // 0.2 + 0.1 in double
    CHECK(cfg::make_constraint_set(c).constraint(0).threshold == Approx(0.2));  // the agent's set unchanged
    // "<=" moves down; a margin that empties an interval is an error naming it.
    const persist::viability::ConstraintSet<double> le({"a", "b"}, {"a + b <= 1", "b in [0, 0.2]"});
    CHECK(cfg::tighten_constraints(le, {0.25, 0.0}).constraint(0).threshold == Approx(0.75));
    CHECK_THROWS_WITH(cfg::tighten_constraints(le, {0.0, 0.1}), Catch::Contains("leaves nothing of 'b in [0, 0.2]'"));
    CHECK_THROWS_WITH(cfg::tighten_constraints(le, {0.0}), Catch::Contains("expected 2 margins"));
}

// ------------------------------------------------------------------------------------------
// Errors: exact key paths, file and line
// ------------------------------------------------------------------------------------------

TEST_CASE("out of range: key path, expected range, value", "[config][errors]") {
    nlohmann::json j = {{"viability", {{"shield", {{"conf", 1.7}}}}}};
    CHECK(doc_error(j) == "viability.shield.conf: expected a number in (0, 1], got 1.7");
    j = {{"viability", {{"shield", {{"conf", 0}}}}}};
    CHECK(doc_error(j) == "viability.shield.conf: expected a number in (0, 1], got 0");
    j = {{"train", {{"gamma", 1.5}}}};
    CHECK(doc_error(j) == "train.gamma: expected a number in (0, 1], got 1.5");
    j = {{"internal_state", {{"w", {1.0, -0.5, 1.5}}}}};
    CHECK(doc_error(j) == "internal_state.w[1]: expected a non-negative number, got -0.5");
    j = {{"train", {{"sac", {{"hidden", {256, 0}}}}}}};
    CHECK(doc_error(j) == "train.sac.hidden[1]: expected a positive integer, got 0");
    j = {{"train", {{"sac", {{"tau", 0.0}}}}}};
    CHECK(doc_error(j) == "train.sac.tau: expected a number in (0, 1], got 0");
    j = {{"train", {{"replay_capacity", 100}}}};
    CHECK(doc_error(j) == "train.replay_capacity: expected at least train.batch_size = 1024, got 100");
    j = {{"viability", {{"shield", {{"cem", {{"elites", 100}}}}}}}};
    CHECK(doc_error(j) == "viability.shield.cem.elites: expected at most viability.shield.cem.population = 64, got 100");

    // In a file: file and line of the key.
    CHECK(yaml_error(seed_with("batch_size: 1024", "batch_size: -3"), "examples/configs/gridlife.yaml") ==
          "examples/configs/gridlife.yaml:22: train.batch_size: expected a positive integer, got -3");
    CHECK(yaml_error(seed_with("conf: 0.97", "conf: 1.7")) ==
          "run.yaml:14: viability.shield.conf: expected a number in (0, 1], got 1.7");
    CHECK(yaml_error(seed_with("w:  [1.0, 0.5, 1.5]", "w:  [1.0,\n       -0.5, 1.5]")) ==
          "run.yaml:8: internal_state.w[1]: expected a non-negative number, got -0.5");

    // GridLife's own rules (env::validate), re-pathed.
    CHECK(yaml_error("env:\n  gridlife:\n    height: 16\n    width: 1\n") ==
          "run.yaml:4: env.gridlife.width: expected an integer in [2, 4096], got 1");
    CHECK(yaml_error("env:\n  gridlife:\n    initial_internal: [0.5, 1.5, 0.5]\n") ==
          "run.yaml:3: env.gridlife.initial_internal[1]: expected a finite value in [0, 1], got 1.5");
    CHECK(yaml_error("env:\n  gridlife:\n    heat_rate: 0.9\n    cool_rate: 0.2\n") ==
          "run.yaml:2: env.gridlife: heat_rate + cool_rate = 1.1: expected at most 1 (temp' is then a convex "
          "combination, no overshoot)");
}

TEST_CASE("wrong types", "[config][errors]") {
    CHECK(doc_error({{"train", {{"gamma", "high"}}}}) == "train.gamma: expected a number, got \"high\"");
    CHECK(doc_error({{"train", {{"batch_size", 0.5}}}}) == "train.batch_size: expected an integer, got 0.5");
    CHECK(doc_error({{"train", {{"batch_size", "1024"}}}}) == "train.batch_size: expected an integer, got \"1024\"");
    CHECK(doc_error({{"curriculum", {{"enabled", 1}}}}) == "curriculum.enabled: expected true or false, got 1");
    CHECK(doc_error({{"env", {{"name", 3}}}}) == "env.name: expected a string, got 3");
    CHECK(doc_error({{"internal_state", {{"dims", "energy"}}}}) ==
          "internal_state.dims: expected a list, got \"energy\"");
    CHECK(doc_error({{"train", 5}}) == "train: expected a mapping of keys to values, got 5");
    CHECK(doc_error(nlohmann::json::array({1, 2})) ==
          "(top level): expected a mapping of keys to values, got a list of 2 values");
    CHECK(doc_error({{"env", {{"gridlife", {{"station_cost", {0.1, 0.1}}}}}}}) ==
          "env.gridlife.station_cost: expected a list of 3 values, got a list of 2 values");
    // Integers that do not fit the member's type.
    CHECK(doc_error({{"env", {{"gridlife", {{"width", 3000000000LL}}}}}}) ==
          "env.gridlife.width: expected an integer in [-2147483648, 2147483647], got 3000000000");
    CHECK(doc_error({{"train", {{"seed", -1}}}}) == "train.seed: expected a non-negative integer, got -1");
    CHECK(doc_error({{"train", {{"gamma", nullptr}}}}) == "train.gamma: expected a number, got null");

    // YAML: quoted scalars are strings, `yes` is not a boolean, .inf is not finite.
    CHECK(yaml_error(seed_with("batch_size: 1024", "batch_size: \"1024\"")) ==
          "run.yaml:22: train.batch_size: expected an integer, got \"1024\"");
    CHECK(yaml_error("curriculum:\n  enabled: yes\n") ==
          "run.yaml:2: curriculum.enabled: expected true or false, got \"yes\"");
    CHECK(yaml_error("train:\n  gamma: .inf\n") == "run.yaml:2: train.gamma: expected a finite number, got inf");
    CHECK(yaml_error("internal_state:\n  mu:\n    - 0.7\n    - [0.5]\n    - 0.9\n") ==
          "run.yaml:4: internal_state.mu[1]: expected a number, got a list of 1 value");
}

TEST_CASE("unknown keys, at any depth, with a hint", "[config][errors]") {
    CHECK(yaml_error(seed_with("conf: 0.97", "confidence: 0.97")) ==
          "run.yaml:14: viability.shield.confidence: unknown key (did you mean \"conf\"?); viability.shield "
          "accepts: type, conf, horizon, num_rollouts, margins, relax_unavoidable, check, cem, cbf, ensemble");
    CHECK(doc_error({{"viability", {{"shield", {{"cem", {{"iters", 3}}}}}}}}) ==
          "viability.shield.cem.iters: unknown key; viability.shield.cem accepts: iterations, population, elites, "
          "init_std, momentum");
    CHECK(doc_error({{"trian", {{"gamma", 0.9}}}}) ==
          "trian: unknown key (did you mean \"train\"?); (top level) accepts: env, internal_state, viability, "
          "rewards, train, curriculum, models, safety_network, demonstrations, state_estimator, "
          "partial_observability, maintenance, metrics, checkpoint");
    // GridLife's horizon and partial_observability have one home each.
    CHECK(yaml_error("env:\n  gridlife:\n    horizon: 100\n").rfind(
              "run.yaml:3: env.gridlife.horizon: unknown key; env.gridlife accepts: width, height, view_radius,", 0) == 0);
}

TEST_CASE("bad enum values list the allowed names", "[config][errors]") {
    CHECK(yaml_error(seed_with("algo: \"SAC\"", "algo: \"DQN\"")) ==
          "run.yaml:21: train.algo: expected one of \"SAC\", \"PPO\", \"TD3\", got \"DQN\"");
    CHECK(yaml_error(seed_with("intrinsic: \"empowerment\"", "intrinsic: curiosity")) ==
          "run.yaml:19: rewards.intrinsic: expected one of \"none\", \"surprise\", \"rnd\", \"empowerment\", got "
          "\"curiosity\"");
    CHECK(doc_error({{"train", {{"algo", "sac"}}}}) ==
          "train.algo: expected one of \"SAC\", \"PPO\", \"TD3\", got \"sac\"");
    CHECK(doc_error({{"train", {{"algo", 1}}}}) == "train.algo: expected one of \"SAC\", \"PPO\", \"TD3\", got 1");
    CHECK(doc_error({{"viability", {{"shield", {{"check", "exact"}}}}}}) ==
          "viability.shield.check: expected one of \"approximator\", \"constraints\", got \"exact\"");
}

TEST_CASE("constraint strings are parsed over the dims, with the caret", "[config][errors]") {
    CHECK(yaml_error(seed_with("- \"temp in [0.3, 0.7]\"", "- \"temp in [0.3 0.7]\"")) ==
          "run.yaml:11: viability.constraints[1]: constraint \"temp in [0.3 0.7]\": expected ',' in interval, "
          "found '0.7' at column 14\n"
          "  temp in [0.3 0.7]\n"
          "               ^~~");
    CHECK(yaml_error(seed_with("- \"integrity >= 0.6\"", "- \"health >= 0.6\"")).rfind(
              "run.yaml:12: viability.constraints[2]: constraint \"health >= 0.6\": unknown variable 'health'", 0) == 0);
}

TEST_CASE("cross-field checks", "[config][errors]") {
    CHECK(yaml_error(seed_with("mu: [0.7, 0.5, 0.9]", "mu: [0.7, 0.5]")) ==
          "run.yaml:6: internal_state.mu: expected 3 values (one per internal_state.dims entry), got 2");
    CHECK(doc_error({{"internal_state", {{"w", {1.0}}}}}) ==
          "internal_state.w: expected 3 values (one per internal_state.dims entry), got 1");
    CHECK(doc_error({{"internal_state", {{"dims", {"energy", "energy"}}, {"mu", {0, 0}}, {"w", {1, 1}}}}}) ==
          "internal_state.dims[1]: \"energy\" repeats internal_state.dims[0]");
    CHECK(doc_error({{"internal_state", {{"dims", {"energy", "2hot"}}, {"mu", {0, 0}}, {"w", {1, 1}}}}}) ==
          "internal_state.dims[1]: expected a variable name ([A-Za-z_][A-Za-z0-9_]*, not \"in\"), got \"2hot\"");
    // GridLife's x is [energy, temp, integrity].
    CHECK(doc_error({{"internal_state", {{"dims", {"energy", "temp"}}, {"mu", {0.5, 0.5}}, {"w", {1, 1}}}},
                     {"viability", {{"constraints", {"energy >= 0.2"}}}}}) ==
          "internal_state.dims: expected [\"energy\", \"temp\", \"integrity\"] (GridLife-v0's internal variables, "
          "in order), got [\"energy\", \"temp\"]");
    // ... but another environment may have any dims.
    CHECK(doc_error({{"env", {{"name", "MyEnv-v0"}}},
                     {"internal_state", {{"dims", {"energy", "temp"}}, {"mu", {0.5, 0.5}}, {"w", {1, 1}}}},
                     {"viability", {{"constraints", {"energy >= 0.2"}}}}}) == "no error");
    CHECK(doc_error({{"env", {{"name", "MyEnv-v0"}, {"gridlife", {{"width", 8}}}}}}) ==
          "env.gridlife: the gridlife section configures GridLife-v0, but env.name is \"MyEnv-v0\"");
    CHECK(yaml_error("viability:\n  shield:\n    margins: [0.1, 0.1]\n") ==
          "run.yaml:3: viability.shield.margins: expected 3 values (one per viability.constraints entry) or none, got 2");
    CHECK(yaml_error("viability:\n  shield:\n    margins: [0.1, -0.1, 0]\n") ==
          "run.yaml:3: viability.shield.margins[1]: expected a non-negative number, got -0.1");
    CHECK_THAT(yaml_error("viability:\n  shield:\n    margins: [0, 0.2, 0]\n"),
               Catch::StartsWith("run.yaml:3: viability.shield.margins: tighten_constraints: margins[1] = 0.2"));
    CHECK(yaml_error("curriculum:\n  enabled: true\n  start_widths: [0.1, 0.1]\n") ==
          "run.yaml:3: curriculum.start_widths: expected 3 values (one per viability.constraints entry) or none, got 2");
    CHECK(yaml_error("demonstrations:\n  enabled: true\n") ==
          "run.yaml:1: demonstrations.path: expected a file path when demonstrations.enabled is true, got \"\"");
    CHECK(doc_error({{"state_estimator", {{"burn_in", 16}}}}) ==
          "state_estimator.burn_in: expected less than state_estimator.sequence_length = 16, got 16");
    CHECK_THAT(doc_error({{"state_estimator", {{"updates_per_round", 0}}}}),
               Catch::StartsWith("state_estimator.updates_per_round: expected"));
}

TEST_CASE("YAML: line numbers, syntax errors, duplicates, documents", "[config][errors][yaml]") {
    // Line of the key, the list element, or the nearest written ancestor.
    CHECK(yaml_error("# comment\n\ntrain:\n\n  gamma: 2\n") ==
          "run.yaml:5: train.gamma: expected a number in (0, 1], got 2");
    CHECK(yaml_error("viability:\n  constraints:\n    - \"energy >= 0.2\"\n    - \"energy >>= 0.2\"\n").rfind(
              "run.yaml:4: viability.constraints[1]: constraint \"energy >>= 0.2\"", 0) == 0);
    CHECK(yaml_error("internal_state:\n  dims: [a, b, c]\n") ==
          "run.yaml:2: internal_state.dims: expected [\"energy\", \"temp\", \"integrity\"] (GridLife-v0's internal "
          "variables, in order), got [\"a\", \"b\", \"c\"]");
    // Syntax errors: file:line:column.
    CHECK(yaml_error("train:\n  gamma: 0.9\n   batch_size: 3\n") ==
          "run.yaml:3:14: YAML syntax error: illegal map value");
    CHECK(yaml_error("train: [1, 2\nenv: 3\n") == "run.yaml:2:4: YAML syntax error: end of sequence flow not found");
    // Duplicate keys, several documents, non-scalar keys.
    CHECK(yaml_error("train:\n  gamma: 0.9\n  gamma: 0.8\n") ==
          "run.yaml:3: train.gamma: duplicate key (first at line 2)");
    CHECK(yaml_error("train: {}\n---\nenv: {}\n") == "run.yaml:3: expected one YAML document, got 2");
    CHECK(yaml_error("? [a, b]\n: 1\n") == "run.yaml:1: (top level): expected a scalar key, got a list at line 1");
}

TEST_CASE("JSON files: line numbers, syntax errors, duplicates", "[config][errors][json]") {
    CHECK(json_error("{\n  \"train\": {\n    \"batch_size\": -3\n  }\n}\n") ==
          "run.json:3: train.batch_size: expected a positive integer, got -3");
    CHECK(json_error("{\n  \"viability\": {\n    \"constraints\": [\n      \"energy >= 0.2\",\n      \"energy >= "
                     "x\"\n    ]\n  }\n}\n")
              .rfind("run.json:5: viability.constraints[1]: constraint \"energy >= x\"", 0) == 0);
    CHECK(json_error("{\n  \"train\": {\"gamma\": 0.9,\n            \"gamma\": 0.8}\n}\n") ==
          "run.json:3: train.gamma: duplicate key");
    CHECK(json_error("{\n  \"train\": {\n    \"gamma\": 0.9,\n  }\n}\n") ==
          "run.json:4:3: JSON syntax error: syntax error while parsing object key - unexpected '}'; expected "
          "string literal");
    CHECK(json_error("{\"env\": {\"horizon\": 0}}") ==
          "run.json:1: env.horizon: expected an integer in [1, 2147483647], got 0");
}

TEST_CASE("load_config: extension dispatch, missing files", "[config][errors]") {
    CHECK(error_of([] { (void)cfg::load_config(kExamples + "/does_not_exist.yaml"); }) ==
          "IoError: config file \"" + kExamples + "/does_not_exist.yaml\": cannot open (no such file)");
    CHECK(error_of([] { (void)cfg::load_config(kExamples + "/gridlife.toml"); }) ==
          "config file \"" + kExamples + "/gridlife.toml\": unknown extension \".toml\" (expected .json, .yaml or .yml)");
    CHECK(error_of([] { (void)cfg::load_config(kExamples); }) ==
          "config file \"" + kExamples + "\": unknown extension (none) (expected .json, .yaml or .yml)");

    // Upper-case and .yml extensions; a file with an error names itself.
    const auto dir = std::filesystem::temp_directory_path() /
                     ("persist_test_config_" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    const auto yml = dir / "RUN.YML";
    std::ofstream(yml) << seed_with("gamma: 0.995", "gamma: 1.995");
    CHECK(error_of([&] { (void)cfg::load_config(yml); }) ==
          yml.string() + ":23: train.gamma: expected a number in (0, 1], got 1.995");
    std::ofstream(yml) << kSeedYaml;
    CHECK(cfg::equal(cfg::load_config(yml), PersistConfig{}));
    std::filesystem::remove_all(dir);
}

// ------------------------------------------------------------------------------------------
// Reflecting your own struct
// ------------------------------------------------------------------------------------------

namespace demo {
enum class Mode { fast, careful };

struct Layer {
    std::int64_t width = 32;
    std::string activation = "relu";
    void validate(persist::config::Checker& v) const {
        v.check(width, persist::config::in_closed(1, 4096));
        v.check(activation, persist::config::one_of({"relu", "tanh"}));
    }
};

struct Net {
    std::vector<Layer> layers{Layer{}, Layer{.width = 16}};
    Eigen::VectorXd scale = Eigen::VectorXd::Ones(2);
    Eigen::Vector3f offset = Eigen::Vector3f::Zero();
    std::array<std::int32_t, 2> shape{4, 4};
    std::optional<Mode> mode;
    float rate = 0.5f;
    std::uint16_t small = 7;
};

/// A struct whose rule names something that is not its member (a programming error).
struct Broken {
    double x = 1.0;
    void validate(persist::config::Checker& v) const {
        const double copy = x;
        v.check(copy, persist::config::positive);
    }
};
}  // namespace demo

template <>
struct persist::config::enum_names<demo::Mode> {
    static constexpr std::array<std::pair<demo::Mode, std::string_view>, 2> table{
        {{demo::Mode::fast, "fast"}, {demo::Mode::careful, "careful"}}};
};
// Rules for a struct we pretend we cannot edit.
template <>
struct persist::config::rules<demo::Net> {
    static void check(const demo::Net& n, Checker& v) {
        v.check(n.layers, non_empty);
        v.each(n.scale, positive);
        v.check(n.rate, in_open(0, 1));
    }
};
BOOST_HANA_ADAPT_STRUCT(demo::Layer, width, activation);
BOOST_HANA_ADAPT_STRUCT(demo::Net, layers, scale, offset, shape, mode, rate, small);
BOOST_HANA_ADAPT_STRUCT(demo::Broken, x);

TEST_CASE("the reflective walker on a user struct", "[config][reflect]") {
    const char* text = R"(
layers:
  - {width: 64, activation: tanh}
  - width: 8
scale: [0.5, 2, 4]
offset: [1, 2, 3]
shape: [2, 3]
mode: careful
rate: 0.25
)";
    const auto n = cfg::load_yaml_string<demo::Net>(text, "net.yaml");
    REQUIRE(n.layers.size() == 2);
    CHECK(n.layers[0].width == 64);
    CHECK(n.layers[0].activation == "tanh");
    CHECK(n.layers[1].width == 8);
    CHECK(n.layers[1].activation == "relu");
    CHECK(n.scale.size() == 3);
    CHECK(n.scale(2) == 4.0);
    CHECK(n.offset(1) == 2.0f);
    CHECK(n.shape == std::array<std::int32_t, 2>{2, 3});
    CHECK(n.mode == std::optional<demo::Mode>(demo::Mode::careful));
    CHECK(n.rate == 0.25f);
    CHECK(n.small == 7);
    CHECK(cfg::field_names<demo::Net>() ==
          std::vector<std::string_view>{"layers", "scale", "offset", "shape", "mode", "rate", "small"});

    // Round trip.
    CHECK(cfg::equal(cfg::from_json<demo::Net>(cfg::to_json(n)), n));
    CHECK(cfg::equal(cfg::load_yaml_string<demo::Net>(cfg::to_yaml(n)), n));
    CHECK_FALSE(cfg::equal(cfg::from_json<demo::Net>(cfg::Json::object()), n));

    // Errors inside vectors of structs, Eigen vectors, fixed sizes, narrow integers.
    auto err = [](const std::string& t) {
        return error_of([&] { (void)cfg::load_yaml_string<demo::Net>(t, "net.yaml"); });
    };
    CHECK(err("layers:\n  - width: 8\n  - width: 0\n") ==
          "net.yaml:3: layers[1].width: expected an integer in [1, 4096], got 0");
    CHECK(err("layers:\n  - activation: gelu\n") ==
          "net.yaml:2: layers[0].activation: expected one of \"relu\", \"tanh\", got \"gelu\"");
    CHECK(err("layers: []\n") == "net.yaml:1: layers: expected a non-empty list, got []");
    CHECK(err("scale: [1, -2]\n") == "net.yaml:1: scale[1]: expected a positive number, got -2");
    CHECK(err("offset: [1, 2]\n") == "net.yaml:1: offset: expected a list of 3 values, got a list of 2 values");
    CHECK(err("small: 70000\n") == "net.yaml:1: small: expected an integer in [0, 65535], got 70000");
    CHECK(err("small: -1\n") == "net.yaml:1: small: expected a non-negative integer, got -1");
    CHECK(err("rate: 1\n") == "net.yaml:1: rate: expected a number in (0, 1), got 1");
    CHECK(err("mode: slow\n") == "net.yaml:1: mode: expected one of \"fast\", \"careful\", got \"slow\"");
    CHECK(err("layers:\n  - widht: 3\n") ==
          "net.yaml:2: layers[0].widht: unknown key (did you mean \"width\"?); layers[0] accepts: width, activation");

    // A rule must name a member: anything else is a logic_error, not a ConfigError.
    CHECK_THROWS_AS(cfg::validate(demo::Broken{}), std::logic_error);
}

// ------------------------------------------------------------------------------------------
// GridLifeConfig is reflected completely (minus the two keys that live elsewhere)
// ------------------------------------------------------------------------------------------

namespace {
struct AnyInit {
    template <class T>
    operator T() const;  // NOLINT: only used in unevaluated contexts
};
/// Number of members of an aggregate: the largest N with T{{any}, ..., {any}} valid.
template <class T, class... A>
constexpr std::size_t aggregate_size() {
    if constexpr (requires { T{A{}..., {AnyInit{}}}; })
        return aggregate_size<T, A..., AnyInit>();
    else
        return sizeof...(A);
}
}  // namespace

TEST_CASE("every GridLifeConfig member is reflected, except horizon, partial_observability and the sensor model",
          "[config][reflect]") {
    // If this fails, GridLifeConfig gained or lost a member: update BOOST_HANA_ADAPT_STRUCT in
    // persist/config/persist_config.hpp and the env.gridlife table of docs/config.md.
    STATIC_REQUIRE(aggregate_size<persist::env::GridLifeConfig>() ==
                   decltype(boost::hana::length(boost::hana::accessors<persist::env::GridLifeConfig>()))::value + 4);
    const auto names = cfg::field_names<persist::env::GridLifeConfig>();
    CHECK(std::find(names.begin(), names.end(), "horizon") == names.end());
    CHECK(std::find(names.begin(), names.end(), "partial_observability") == names.end());
    CHECK(std::find(names.begin(), names.end(), "observation_dropout") == names.end());
    CHECK(std::find(names.begin(), names.end(), "observation_noise_std") == names.end());
}
