// PersistAgent with the real parts: GridLife<float>, SAC<float>, NullShield, Surprise / RND /
// NoIntrinsic. Determinism (same seed -> bitwise-identical replay), the curriculum driving
// GridLife's termination bounds, and a short smoke run.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <unistd.h>
#include <vector>

#include <persist/agents/sac.hpp>
#include <persist/env/gridlife.hpp>
#include <persist/homeostasis/homeostat.hpp>
#include <persist/intrinsic/intrinsic.hpp>
#include <persist/models/kalman_filter.hpp>
#include <persist/models/known_dynamics.hpp>
#include <persist/models/state_estimator.hpp>
#include <persist/shield/null_shield.hpp>
#include <persist/train/persist_agent.hpp>

using persist::Index;
using persist::Vec;
using namespace persist;

namespace {
using Env = env::GridLife<float>;
using Set = viability::ConstraintSet<float>;

Set seed_constraints() {
    return Set({"energy", "temp", "integrity"}, {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"});
}
homeostasis::Homeostat<float> seed_homeostat() {
    Vec<float> mu(3), w(3);
    mu << 0.7f, 0.5f, 0.9f;
    w << 1.0f, 0.5f, 1.5f;
    return homeostasis::Homeostat<float>(mu, w, {"energy", "temp", "integrity"});
}
agents::SAC<float> small_sac(const Env& e, std::uint64_t seed) {
    agents::SACOptions o;
    o.hidden = {32, 32};
    o.seed = seed;
    return agents::SAC<float>(e, o);
}
train::AgentOptions small_opts(std::uint64_t seed) {
    return train::AgentOptions{.batch_size = 32, .update_every = 16, .gradient_steps = 4, .learning_starts = 200,
                               .replay_capacity = 5000, .seed = seed};
}

template <class Intr>
auto make(Intr intr, std::uint64_t seed) {
    Env e(env::GridLifeConfig{.width = 10, .height = 10});
    auto sac = small_sac(e, seed);
    return train::PersistAgent<Env, agents::SAC<float>, shield::NullShield<float>, Intr>(
        std::move(e), std::move(sac), {}, std::move(intr), seed_homeostat(), seed_constraints(), small_opts(seed));
}

intrinsic::Surprise<float> surprise(const Env& e) {
    intrinsic::SurpriseOptions o;
    o.obs_dim = e.observation_dim();
    o.internal_dim = e.internal_dim();
    o.action_dim = e.action_dim();
    o.hidden = {32, 32};
    o.seed = 3;
    return intrinsic::Surprise<float>(o);
}
}  // namespace

TEST_CASE("GridLife + SAC + Surprise: same seed gives the same run, another seed does not", "[train][gridlife]") {
    Env probe(env::GridLifeConfig{.width = 10, .height = 10});
    auto run = [&](std::uint64_t seed) {
        auto agent = make(surprise(probe), seed);
        agent.train(600);
        REQUIRE(agent.updates() > 0);
        const Index n = agent.replay().size();
        std::vector<Index> idx(static_cast<std::size_t>(n));
        for (Index i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = i;
        TransitionBatch<float> b;
        agent.replay().gather(idx, b);
        return b;
    };
    const auto a = run(1), b = run(1), c = run(2);
    CHECK(a.action == b.action);
    CHECK(a.reward == b.reward);
    CHECK(a.r_intr == b.r_intr);
    CHECK(a.next_internal == b.next_internal);
    CHECK(a.action != c.action);
}

TEST_CASE("curriculum drives GridLife's termination bounds and the lambdas", "[train][gridlife][curriculum]") {
    Env probe(env::GridLifeConfig{.width = 10, .height = 10});
    auto agent = make(intrinsic::NoIntrinsic<float>{}, 4);
    // Without a curriculum the env bounds follow the agent's set (single-variable bounds).
    CHECK(agent.env().lower_bound(0) == 0.2f);
    CHECK(agent.env().lower_bound(1) == 0.3f);
    CHECK(agent.env().upper_bound(1) == 0.7f);
    CHECK(agent.env().lower_bound(2) == 0.6f);
    const Set wide({"energy", "temp", "integrity"}, {"energy >= 0.0", "temp in [0.1, 0.9]", "integrity >= 0.2"});
    agent.set_curriculum(train::Curriculum<float>(
        wide, seed_constraints(),
        train::CurriculumOptions{.warmup_steps = 0, .total_steps = 1000, .lambda_homeo_start = 0.1,
                                 .lambda_homeo_end = 0.7, .lambda_intr_start = 0.0, .lambda_intr_end = 0.3}));
    CHECK(agent.lambda_homeo() == 0.1f);
    agent.step();  // episode starts at step 0: the wide set
    CHECK(agent.env().lower_bound(0) == 0.0f);
    CHECK(agent.env().lower_bound(1) == Approx(0.1f));
    CHECK(agent.constraints().bounds(2).lo == Approx(0.2f));
    // Run past the schedule: later episodes use tighter sets, finally the target.
    while (agent.total_steps() < 1000) agent.step();
    while (agent.in_episode()) agent.step();
    agent.step();
    CHECK(agent.env().lower_bound(0) == 0.2f);
    CHECK(agent.env().upper_bound(1) == 0.7f);
    CHECK(agent.lambda_homeo() == 0.7f);
    CHECK(agent.lambda_intr() == Approx(0.3f));
}

TEST_CASE("smoke: GridLife + SAC + RND for a few thousand steps", "[train][gridlife][smoke]") {
    Env probe(env::GridLifeConfig{.width = 10, .height = 10});
    intrinsic::RNDOptions ro;
    ro.obs_dim = probe.observation_dim();
    ro.output_dim = 16;
    ro.hidden = {32};
    ro.predictor_extra = {};
    auto agent = make(intrinsic::RND<float>(ro), 7);
    std::int64_t episodes = 0;
    double sum_len = 0;
    agent.on_episode_end([&](const train::EpisodeRecord& r) {
        ++episodes;
        sum_len += double(r.length);
        CHECK(std::isfinite(r.return_total));
        CHECK(r.shield_trigger_rate == 0.0);
    });
    agent.train(3000);
    std::int64_t rounds = 0;
    for (std::int64_t t = 200; t <= 3000; ++t) rounds += (t % 16 == 0);
    CHECK(agent.updates() == 4 * rounds);  // rounds at t = 208, 224, ..., 2992
    CHECK(episodes > 0);
    CHECK(agent.near_boundary() != nullptr);
    CHECK(agent.near_boundary()->offered() == 3000u);
    const auto s = agent.metrics().summary();
    CHECK(s.episodes == episodes);
    CHECK(std::isfinite(s.mean_policy_entropy));
    float dummy_len = 0;
    std::int64_t len = 0;
    const double ret = agent.evaluate_episode(123, &len);
    CHECK(std::isfinite(ret));
    CHECK(len >= 1);
    (void)dummy_len;
}

TEST_CASE("evaluate_episode: sampled actions are reproducible per seed and leave training's streams alone",
          "[train][gridlife][evaluate]") {
    auto trained = [] {
        auto agent = make(intrinsic::NoIntrinsic<float>{}, 5);
        agent.train(400);
        return agent;
    };
    auto a = trained();
    std::int64_t len_d1 = 0, len_d2 = 0, len_s1 = 0, len_s2 = 0, len_s3 = 0;
    const double d1 = a.evaluate_episode(77, &len_d1);
    const double s1 = a.evaluate_episode(77, &len_s1, train::EvalActions::sampled);
    const double d2 = a.evaluate_episode(77, &len_d2, train::EvalActions::deterministic);
    const double s2 = a.evaluate_episode(77, &len_s2, train::EvalActions::sampled);
    const double s3 = a.evaluate_episode(78, &len_s3, train::EvalActions::sampled);
    CHECK(d1 == d2);  // same episode seed: the same episode, bitwise
    CHECK(len_d1 == len_d2);
    CHECK(s1 == s2);
    CHECK(len_s1 == len_s2);
    // A barely trained SAC policy has high entropy: its samples leave the mean's trajectory.
    CHECK((s1 != d1 || len_s1 != len_d1));
    CHECK((s3 != s1 || len_s3 != len_s1));

    // The evaluation's stream is its own: training after a sampled and after a deterministic
    // evaluation (both interrupt the episode the same way) continues identically.
    auto b = trained();
    a.train(300);
    b.evaluate_episode(77, nullptr, train::EvalActions::deterministic);
    b.train(300);
    const Index n = a.replay().size();
    REQUIRE(b.replay().size() == n);
    std::vector<Index> idx(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = i;
    TransitionBatch<float> ba, bb;
    a.replay().gather(idx, ba);
    b.replay().gather(idx, bb);
    CHECK(ba.action == bb.action);
    CHECK(ba.next_internal == bb.next_internal);
}

namespace {
using Estimator = models::GruStateEstimator<float>;
using EstAgent = train::PersistAgent<Env, agents::SAC<float>, shield::NullShield<float>, intrinsic::NoIntrinsic<float>>;

/// GridLife with x hidden from the observation; the policy sees [o; x_hat] (estimate_internal).
EstAgent make_estimating(std::uint64_t seed) {
    Env e(env::GridLifeConfig{.width = 10, .height = 10, .partial_observability = true});
    auto sac = small_sac(e, seed);  // state_dim = observation_dim + internal_dim: [o; x_hat]
    auto opt = small_opts(seed);
    opt.policy_sees_internal = false;
    opt.estimate_internal = true;
    opt.estimator_updates = 4;  // as many as gradient steps: a short run
    return EstAgent(std::move(e), std::move(sac), {}, {}, seed_homeostat(), seed_constraints(), opt);
}
Estimator small_estimator(Index obs_dim, std::uint64_t seed) {
    return Estimator({.obs_dim = obs_dim, .state_dim = 3, .hidden = 16, .sequence_length = 8, .burn_in = 2,
                      .lr = 3e-3, .batch_size = 8, .seed = seed});
}
std::vector<unsigned char> estimator_bytes(const EstAgent& a) {
    std::vector<unsigned char> out;
    const_cast<Estimator*>(a.state_estimator()->target<Estimator>())->visit_state([&](persist::TensorRef t) {
        const auto* p = static_cast<const unsigned char*>(t.data);
        out.insert(out.end(), p, p + t.bytes());
    });
    return out;
}
}  // namespace

TEST_CASE("state estimator: the policy acts on [o; x_hat], the estimator trains on the replay's sequences",
          "[train][gridlife][state_estimator]") {
    auto agent = make_estimating(5);
    const Index O = agent.env().observation_dim();
    agent.set_state_estimator(small_estimator(O, 1));
    REQUIRE(agent.policy_state_dim() == O + 3);
    CHECK(std::isnan(agent.state_estimator_loss()));
    double first = std::numeric_limits<double>::quiet_NaN();
    for (int i = 0; i < 4000; ++i) {
        const auto r = agent.step();
        if (std::isnan(first) && r.updates > 0) first = agent.state_estimator_loss();
        if (!agent.in_episode()) continue;
        // the policy reads the observation and the estimator's x_hat, never x itself
        const auto s = agent.policy_state();
        REQUIRE(s.head(O) == agent.state().head(O));
        REQUIRE(s.tail(3) == agent.state_estimator()->estimate());
    }
    const double last = agent.state_estimator_loss();
    INFO("estimator loss at the first update " << first << ", after 4000 steps " << last);
    REQUIRE(std::isfinite(first));
    CHECK(last < 0.5 * first);
    // On windows of the replay (what it trains on), x_hat explains a good part of the variance of
    // every variable: the GRU reads x off the history of observations (heat underfoot, food and
    // stations passed), which no single o_t shows.
    replay::SequenceBatch<float> sb;
    Rng r(5);
    agent.replay().sample_sequences(256, 8, r, sb);
    REQUIRE(agent.state_estimator()->target<Estimator>() != nullptr);
    Estimator copy = *agent.state_estimator()->target<Estimator>();
    const Mat<float> xs = sb.steps.internal.rightCols(6 * 256);
    const Mat<float> err = copy.predict(sb.steps.observation, 8).rightCols(6 * 256) - xs;
    const Vec<float> mean = xs.rowwise().mean();
    for (Index j = 0; j < 3; ++j) {
        const double mse = err.row(j).squaredNorm() / (6 * 256);
        const double var = (xs.row(j).array() - mean[j]).square().mean();
        INFO("variable " << j << ": MSE of x_hat " << mse << ", variance of x " << var);
        CHECK(mse < 0.75 * var);
    }
}

namespace {
/// Passes actions through and remembers the x it was asked about.
struct RecordingShield {
    using scalar_type = float;
    Vec<float> last_x;
    ShieldDecision<float> project(VecCRef<float> a, VecCRef<float>, VecCRef<float> x, VecRef<float> a_safe) {
        last_x = x;
        a_safe = a;
        return {};
    }
    template <class V>
    void visit_state(V&&) {}
};
static_assert(persist::Shield<RecordingShield>);
}  // namespace

TEST_CASE("state estimator: the shield checks from x_hat, not from the hidden x", "[train][gridlife][state_estimator]") {
    Env e(env::GridLifeConfig{.width = 10, .height = 10, .partial_observability = true});
    const Index O = e.observation_dim();
    auto sac = small_sac(e, 3);
    auto opt = small_opts(3);
    opt.policy_sees_internal = false;
    opt.estimate_internal = true;
    train::PersistAgent<Env, agents::SAC<float>, RecordingShield, intrinsic::NoIntrinsic<float>> agent(
        std::move(e), std::move(sac), {}, {}, seed_homeostat(), seed_constraints(), opt);
    agent.set_state_estimator(small_estimator(O, 4));
    int differs = 0;
    for (int i = 0; i < 600; ++i) {
        const bool fresh = !agent.in_episode();
        const Vec<float> x_hat = agent.state_estimator()->estimate(), x = agent.state().tail(3);
        agent.step();
        if (fresh) continue;  // the episode's first estimate is made inside step()
        REQUIRE(agent.shield().last_x == x_hat);
        differs += agent.shield().last_x != x;
    }
    CHECK(differs > 500);  // x_hat is an estimate: it is never exactly x
    std::int64_t len = 0;
    agent.evaluate_episode(11, &len);
    CHECK(agent.shield().last_x == agent.state_estimator()->estimate());
}

TEST_CASE("state estimator: checkpoint resumes exactly; bad set-ups are named", "[train][gridlife][state_estimator]") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("persist_est_agent_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto a = make_estimating(7);
    const Index O = a.env().observation_dim();
    a.set_state_estimator(small_estimator(O, 2));
    a.train(700);
    a.save(dir / "a.ckpt");
    auto b = make_estimating(7);
    b.set_state_estimator(small_estimator(O, 99));  // other weights: the checkpoint replaces them
    b.load(dir / "a.ckpt");
    REQUIRE(estimator_bytes(b) == estimator_bytes(a));
    for (int i = 0; i < 500; ++i) {
        a.step();
        b.step();
    }
    CHECK(estimator_bytes(b) == estimator_bytes(a));
    CHECK(b.policy().actor().params() == a.policy().actor().params());
    CHECK(Vec<float>(b.policy_state()) == Vec<float>(a.policy_state()));
    // an agent without the estimator does not load it
    auto c = make_estimating(7);
    CHECK_THROWS_AS(c.load(dir / "a.ckpt"), CheckpointError);
    fs::remove_all(dir);

    // errors
    CHECK_THROWS_WITH(small_estimator(O, 1).update(Mat<float>(O, 7), Mat<float>(3, 7)),
                      Catch::Contains("sequence_length = 8"));
    Env e(env::GridLifeConfig{.width = 10, .height = 10, .partial_observability = true});
    auto opt = small_opts(1);
    opt.estimate_internal = true;  // while the policy sees x
    CHECK_THROWS_WITH((EstAgent(Env(e), small_sac(e, 1), {}, {}, seed_homeostat(), seed_constraints(), opt)),
                      Catch::Contains("estimate_internal"));
    auto plain = make(intrinsic::NoIntrinsic<float>{}, 1);
    CHECK_THROWS_WITH(plain.set_state_estimator(small_estimator(plain.env().observation_dim(), 1)),
                      Catch::Contains("estimate_internal is false"));
    auto d = make_estimating(1);
    CHECK_THROWS_AS(d.set_state_estimator(small_estimator(O + 1, 1)), ShapeError);
    d.set_state_estimator(small_estimator(O, 1));
    d.step();
    CHECK_THROWS_WITH(d.set_state_estimator(small_estimator(O, 1)), Catch::Contains("an episode is running"));
}

TEST_CASE("state estimator: an EKF on the known dynamics with an exact prior gives the policy the hidden x",
          "[train][gridlife][state_estimator][ekf]") {
    // x hidden, x_0 known (initial_noise 0): the filter's prediction through GridLife's own f is
    // x itself, so the policy's [o; x_hat] is [o; x] bitwise, in training, after a checkpoint
    // round trip, and in evaluation. Nothing trains the filter (its loss stays NaN), and a
    // non-trainable estimator needs no sequence sampling.
    namespace fs = std::filesystem;
    using Ekf = models::ExtendedKalmanFilter<models::KnownDynamics<Env>>;
    const env::GridLifeConfig cfg{.width = 10, .height = 10, .partial_observability = true, .initial_noise = 0.0};
    const Env model_env(cfg);  // the filter's model (outlives the agents)
    models::KalmanFilterOptions ko;
    ko.initial_mean = {0.7, 0.5, 0.9};
    ko.initial_std = {0.0};
    auto make_agent = [&](std::uint64_t seed) {
        Env e(cfg);
        auto opt = small_opts(seed);
        opt.policy_sees_internal = false;
        opt.estimate_internal = true;
        EstAgent agent(std::move(e), small_sac(model_env, seed), {}, {}, seed_homeostat(), seed_constraints(), opt);
        agent.set_state_estimator(Ekf(models::KnownDynamics<Env>(model_env), model_env.observation_dim(), ko));
        return agent;
    };
    auto a = make_agent(4);
    const Index O = a.env().observation_dim();
    REQUIRE(a.state_estimator()->target<Ekf>() != nullptr);
    CHECK_FALSE(a.state_estimator()->trainable());
    Index checked = 0;
    for (int i = 0; i < 700; ++i) {
        a.step();
        if (!a.in_episode()) continue;
        REQUIRE(Vec<float>(a.policy_state().tail(3)) == Vec<float>(a.state().tail(3)));
        REQUIRE(a.policy_state().head(O) == a.state().head(O));
        ++checked;
    }
    CHECK(checked > 600);
    CHECK(a.updates() > 0);
    CHECK(std::isnan(a.state_estimator_loss()));
    CHECK(a.checkpoint_description()["state_estimator"]["type"] == "ekf");

    const fs::path dir = fs::temp_directory_path() / ("persist_ekf_agent_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    a.save(dir / "a.ckpt");
    auto b = make_agent(4);
    b.load(dir / "a.ckpt");
    for (int i = 0; i < 300; ++i) {
        a.step();
        b.step();
        REQUIRE(Vec<float>(b.policy_state()) == Vec<float>(a.policy_state()));
    }
    CHECK(b.policy().actor().params() == a.policy().actor().params());
    // An agent with the GRU estimator does not load an EKF agent's checkpoint (and says so).
    auto c = make_estimating(4);
    c.set_state_estimator(small_estimator(O, 1));
    CHECK_THROWS_AS(c.load(dir / "a.ckpt"), CheckpointError);
    fs::remove_all(dir);

    std::int64_t len = 0;
    a.evaluate_episode(21, &len);
    CHECK(len > 0);
    CHECK(a.state_estimator()->estimate() == Vec<float>(a.state().tail(3)));  // the last non-terminal x
}
