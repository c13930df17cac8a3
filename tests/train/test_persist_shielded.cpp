// PersistAgent with the whole PERSIST stack: GridLife + SAC + LearnedShield (internal-model
// ensemble and V_psi trained by the agent) + k-step Empowerment (sequence updates driven by the
// agent). Checks the wiring (the agent trains the shield's models and the sequence intrinsic at
// every gradient step, the shield starts filtering after its warm-up) and exact resume from a
// checkpoint of the whole stack.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>

#include <persist/agents/sac.hpp>
#include <persist/env/gridlife.hpp>
#include <persist/homeostasis/homeostat.hpp>
#include <persist/intrinsic/empowerment.hpp>
#include <persist/parallel/gridlife_rollout.hpp>
#include <persist/shield/learned_shield.hpp>
#include <persist/train/persist_agent.hpp>

using namespace persist;
namespace {
using Env = env::GridLife<float>;
using Kin = parallel::GridLifePatchKinematics<float>;
using Sh = shield::LearnedShield<float, Kin>;
using Emp = intrinsic::Empowerment<float>;
using Agent = train::PersistAgent<Env, agents::SAC<float>, Sh, Emp>;

viability::ConstraintSet<float> constraints() {
    return {{"energy", "temp", "integrity"}, {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"}};
}

Agent make(std::uint64_t seed) {
    Env e(env::GridLifeConfig{.width = 10, .height = 10});
    agents::SACOptions so;
    so.hidden = {32, 32};
    so.seed = seed;
    agents::SAC<float> sac(e, so);
    shield::LearnedShieldOptions lo;
    lo.model.internal_dim = 3;
    lo.model.action_dim = 2;
    lo.model.obs_features = parallel::gridlife_centre_features(e);
    lo.model.hidden = {32, 32};
    lo.model.seed = seed + 1;
    lo.viability.hidden = {32, 32};
    lo.viability.seed = seed + 2;
    lo.rollout.num_rollouts = 8;
    lo.rollout.cem_population = 16;
    lo.rollout.cem_iterations = 2;
    lo.rollout.cem_elites = 4;
    lo.rollout.seed = seed + 3;
    lo.warmup_updates = 100;
    lo.seed = seed + 4;
    Sh sh(constraints(), Kin::from(e), e.action_low(), e.action_high(), lo);
    intrinsic::EmpowermentOptions eo;
    eo.obs_dim = e.observation_dim();
    eo.internal_dim = 3;
    eo.action_dim = 2;
    eo.k = 3;
    eo.hidden = {32, 32};
    eo.embedding_dim = 16;
    eo.seed = seed + 5;
    Emp emp(eo);
    Vec<float> mu(3), w(3);
    mu << 0.7f, 0.5f, 0.9f;
    w << 1.0f, 0.5f, 1.5f;
    return Agent(std::move(e), std::move(sac), std::move(sh), std::move(emp),
                 homeostasis::Homeostat<float>(mu, w, {"energy", "temp", "integrity"}), constraints(),
                 train::AgentOptions{.batch_size = 32, .update_every = 16, .gradient_steps = 4, .learning_starts = 200,
                                     .replay_capacity = 5000, .seed = seed});
}
}  // namespace

TEST_CASE("PersistAgent trains the LearnedShield's models and a k-step Empowerment, then the shield filters",
          "[train][shield][persist]") {
    Agent agent = make(7);
    bool nonzero_intr = false;
    for (int i = 0; i < 1200; ++i) nonzero_intr = (agent.step().r_intr != 0.f) || nonzero_intr;
    CHECK(agent.updates() > 100);
    CHECK(agent.shield().counters().updates == static_cast<std::uint64_t>(agent.updates()));
    CHECK(agent.shield().active());
    CHECK(agent.shield().search().counters().decisions > 0);                 // filtering after warm-up
    CHECK(agent.shield().counters().passthrough < agent.shield().counters().decisions);
    CHECK(nonzero_intr);  // k = 3: reward() is 0 until update_from_replay has trained the critic
    CHECK(agent.shield().last_model_stats().mse < 1e-3f);
}

TEST_CASE("PersistAgent with LearnedShield and Empowerment resumes exactly from a checkpoint", "[train][shield][persist]") {
    const auto path = std::filesystem::temp_directory_path() / "persist_shielded_agent.ckpt";
    Agent a = make(11);
    a.train(700);
    a.save(path);
    a.train(300);
    Agent b = make(11);
    b.load(path);
    b.train(300);
    std::filesystem::remove(path);
    CHECK(a.total_steps() == b.total_steps());
    CHECK(a.policy().actor().params() == b.policy().actor().params());
    CHECK(a.shield().model().view().member[0].params[5] == b.shield().model().view().member[0].params[5]);
    CHECK(a.shield().viability_model().network().params() == b.shield().viability_model().network().params());
    CHECK(a.shield().search().counters().decisions == b.shield().search().counters().decisions);
    CHECK(a.metrics().summary().mean_length == b.metrics().summary().mean_length);
}
