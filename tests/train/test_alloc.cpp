// After warm-up (first reset, first update round at the batch size) a PersistAgent step
// allocates nothing: environment, policy, shield, rewards, margins, replay, near-boundary
// buffer, metrics and update rounds included (episode boundaries too, without a curriculum).
#include <catch2/catch.hpp>

#include <atomic>

#include <persist/agents/sac.hpp>
#include <persist/env/gridlife.hpp>
#include <persist/homeostasis/homeostat.hpp>
#include <persist/intrinsic/intrinsic.hpp>
#include <persist/models/kalman_filter.hpp>
#include <persist/models/known_dynamics.hpp>
#include <persist/models/state_estimator.hpp>
#include <persist/shield/null_shield.hpp>
#include <persist/train/persist_agent.hpp>

namespace traintest {
extern std::atomic<long> g_news;
extern std::atomic<bool> g_counting;
}  // namespace traintest

using namespace persist;

namespace {
using Env = env::GridLife<float>;
enum class Est { none, gru, ekf };
template <class Intr>
long allocations_after_warmup(Intr intr, Est kind = Est::none) {
    const bool estimator = kind != Est::none;
    const env::GridLifeConfig cfg{.width = 8, .height = 8, .partial_observability = estimator};
    const Env model_env(cfg);  // the EKF's known dynamics
    Env e(cfg);
    agents::SACOptions so;
    so.hidden = {16, 16};
    agents::SAC<float> sac(e, so);
    Vec<float> mu(3), w(3);
    mu << 0.7f, 0.5f, 0.9f;
    w << 1.0f, 0.5f, 1.5f;
    viability::ConstraintSet<float> set({"energy", "temp", "integrity"},
                                        {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"});
    train::PersistAgent<Env, agents::SAC<float>, shield::NullShield<float>, Intr> agent(
        std::move(e), std::move(sac), {}, std::move(intr), homeostasis::Homeostat<float>(mu, w), set,
        train::AgentOptions{.batch_size = 16, .update_every = 8, .gradient_steps = 2, .learning_starts = 64,
                            .replay_capacity = 4096, .policy_sees_internal = !estimator,
                            .estimate_internal = estimator, .seed = 1});
    if (kind == Est::ekf) {  // x hidden: the policy acts on [o; x_hat] from the filter
        models::KalmanFilterOptions ko;
        ko.initial_mean = {0.7, 0.5, 0.9};
        ko.initial_std = {0.03};
        ko.process_std = {0.01};
        agent.set_state_estimator(models::ExtendedKalmanFilter<models::KnownDynamics<Env>>(
            models::KnownDynamics<Env>(model_env), model_env.observation_dim(), ko));
    }
    if (kind == Est::gru)  // x hidden: the policy acts on [o; x_hat], the GRU trains every round
        agent.set_state_estimator(models::GruStateEstimator<float>({.obs_dim = agent.env().observation_dim(),
                                                                    .state_dim = 3, .hidden = 16,
                                                                    .sequence_length = 8, .burn_in = 2,
                                                                    .batch_size = 8}));
    agent.train(400);  // warm-up: resets, updates at batch 16, act at B = 1
    REQUIRE(agent.updates() > 0);
    const auto eps0 = agent.episodes();
    traintest::g_news = 0;
    traintest::g_counting = true;
    agent.train(1500);
    traintest::g_counting = false;
    REQUIRE(agent.episodes() > eps0);  // episode boundaries were crossed while counting
    return traintest::g_news.load();
}
}  // namespace

TEST_CASE("no allocation per step after warm-up (NoIntrinsic)", "[train][alloc]") {
    CHECK(allocations_after_warmup(intrinsic::NoIntrinsic<float>{}) == 0);
}

TEST_CASE("no allocation per step after warm-up (GRU state estimator, x hidden)", "[train][alloc][state_estimator]") {
    CHECK(allocations_after_warmup(intrinsic::NoIntrinsic<float>{}, Est::gru) == 0);
}

TEST_CASE("no allocation per step after warm-up (EKF state estimator, x hidden)", "[train][alloc][state_estimator]") {
    CHECK(allocations_after_warmup(intrinsic::NoIntrinsic<float>{}, Est::ekf) == 0);
}

TEST_CASE("no allocation per step after warm-up (Surprise)", "[train][alloc]") {
    Env e(env::GridLifeConfig{.width = 8, .height = 8});
    intrinsic::SurpriseOptions o;
    o.obs_dim = e.observation_dim();
    o.internal_dim = 3;
    o.action_dim = 2;
    o.hidden = {16, 16};
    CHECK(allocations_after_warmup(intrinsic::Surprise<float>(o)) == 0);
}
