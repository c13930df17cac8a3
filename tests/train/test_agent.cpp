// PersistAgent: reward composition, stored extras, update cadence, terminated vs truncated,
// option and shape errors, custom types (environment, policy, intrinsic written here).
#include <catch2/catch.hpp>

#include <array>
#include <vector>

#include <persist/homeostasis/homeostat.hpp>
#include <persist/intrinsic/none.hpp>
#include <persist/shield/null_shield.hpp>
#include <persist/train/persist_agent.hpp>

#include "train/train_fixtures.hpp"

using namespace traintest;
using persist::train::AgentOptions;
using persist::train::PersistAgent;

namespace {
using Agent = PersistAgent<CorridorEnv, FixedPolicy, persist::shield::NullShield<double>, PositionIntrinsic>;

persist::viability::ConstraintSet<double> energy_set() {
    return persist::viability::ConstraintSet<double>({"energy"}, {"energy >= 0.2"});
}
persist::homeostasis::Homeostat<double> homeo() {
    return persist::homeostasis::Homeostat<double>(Vec<double>::Constant(1, 0.7), Vec<double>::Constant(1, 2.0));
}
Agent make_agent(const AgentOptions& opt, double action = 0.0, CorridorEnv env = {}) {
    FixedPolicy p;
    p.action = action;
    return Agent(env, p, {}, {}, homeo(), energy_set(), opt);
}
// The last n stored transitions (logical order).
persist::TransitionBatch<double> last_stored(const Agent& agent, Index n) {
    std::vector<Index> idx;
    for (Index i = agent.replay().size() - n; i < agent.replay().size(); ++i) idx.push_back(i);
    persist::TransitionBatch<double> b;
    agent.replay().gather(idx, b);
    return b;
}
}  // namespace

TEST_CASE("r_total = r_task + lambda_H r_homeo + lambda_I r_intr, extras stored", "[train][agent]") {
    AgentOptions opt{.lambda_homeo = 0.7, .lambda_intr = 0.3, .batch_size = 4, .learning_starts = 1000,
                     .random_actions_before_learning = false, .replay_capacity = 64};
    auto agent = make_agent(opt, 0.25);
    const auto h = homeo();
    for (int t = 0; t < 6; ++t) {
        const Vec<double> o = agent.in_episode() ? Vec<double>(agent.state().head(2)) : Vec<double>();
        const auto r = agent.step();
        const double energy = agent.env().energy;
        const double r_homeo = h.reward(Vec<double>::Constant(1, energy));
        const double r_intr = 0.5 * agent.env().pos;
        CHECK(r.r_task == 0.25);
        CHECK(r.r_homeo == r_homeo);
        CHECK(r.r_intr == r_intr);
        CHECK(r.r_total == 0.25 + 0.7 * r_homeo + 0.3 * r_intr);  // exact: same expression, same order
        const auto b = last_stored(agent, 1);
        CHECK(b.reward(0, 0) == r.r_total);
        CHECK(b.r_task(0, 0) == r.r_task);
        CHECK(b.r_homeo(0, 0) == r.r_homeo);
        CHECK(b.r_intr(0, 0) == r.r_intr);
        CHECK(b.action(0, 0) == 0.25);
        CHECK(b.next_internal(0, 0) == energy);
        CHECK(b.margins(0, 0) == Approx(energy - 0.2).margin(1e-15));
        CHECK(b.next_observation(0, 0) == agent.env().pos);
        if (o.size() == 2) CHECK(b.observation(0, 0) == o[0]);
    }
    // The state the policy sees is [o; x].
    CHECK(agent.state().size() == 3);
    CHECK(agent.state()[2] == agent.env().energy);
}

TEST_CASE("update cadence: gradient_steps updates every update_every steps after learning_starts", "[train][agent]") {
    for (Index gs : {Index(0), Index(3)}) {
        AgentOptions opt{.batch_size = 4, .update_every = 5, .gradient_steps = gs, .learning_starts = 12,
                         .replay_capacity = 64};
        CorridorEnv env;
        env.horizon = 1000;
        env.drain = 0.0;  // never terminates
        auto agent = make_agent(opt, 0.0, env);
        const Index per_round = gs == 0 ? 5 : gs;
        Index expected = 0;
        for (std::int64_t t = 1; t <= 53; ++t) {
            const auto r = agent.step();
            const bool due = t >= 12 && t % 5 == 0;
            CHECK(r.updates == (due ? per_round : 0));
            if (due) expected += per_round;
        }
        CHECK(agent.policy().updates == expected);
        CHECK(agent.intrinsic().updates == expected);
        CHECK(agent.updates() == expected);
        CHECK(agent.policy().last_batch == 4);
        CHECK(expected == 8 * per_round);  // t = 15, 20, ..., 50
    }
}

TEST_CASE("no update before the replay holds a batch", "[train][agent]") {
    AgentOptions opt{.batch_size = 16, .update_every = 1, .gradient_steps = 1, .learning_starts = 0,
                     .replay_capacity = 64};
    CorridorEnv env;
    env.drain = 0.0;
    auto agent = make_agent(opt, 0.0, env);
    agent.train(15);
    CHECK(agent.policy().updates == 0);
    agent.step();
    CHECK(agent.policy().updates == 1);
}

TEST_CASE("terminated and truncated are stored apart", "[train][agent]") {
    AgentOptions opt{.batch_size = 1, .learning_starts = 100000, .random_actions_before_learning = false,
                     .replay_capacity = 256};
    SECTION("termination: energy falls below the floor") {
        auto agent = make_agent(opt, -1.0);  // energy drops 0.15 per step from ~0.7
        persist::train::StepResult<double> r;
        int n = 0;
        do {
            r = agent.step();
            ++n;
        } while (!r.terminated && !r.truncated && n < 100);
        REQUIRE(r.terminated);
        CHECK_FALSE(r.truncated);
        REQUIRE(r.episode != nullptr);
        CHECK(r.episode->violated);
        CHECK(r.episode->length == n);
        CHECK(r.episode->violated_constraint == 0);
        CHECK(r.episode->violated_variables[0] == 1);
        const auto b = last_stored(agent, n);
        for (Index j = 0; j < n; ++j) {
            CHECK(b.terminated(0, j) == (j == n - 1 ? 1.0 : 0.0));
            CHECK(b.truncated(0, j) == 0.0);
        }
        CHECK(b.margins(0, n - 1) < 0.0);
        // the next step starts a new episode
        agent.step();
        CHECK(agent.episodes() == 1);
        CHECK(agent.replay().size() == n + 1);
    }
    SECTION("truncation: the time limit") {
        CorridorEnv env;
        env.drain = 0.0;
        env.horizon = 7;
        auto agent = make_agent(opt, 0.0, env);
        persist::train::StepResult<double> r;
        for (int i = 0; i < 7; ++i) r = agent.step();
        CHECK(r.truncated);
        CHECK_FALSE(r.terminated);
        REQUIRE(r.episode != nullptr);
        CHECK_FALSE(r.episode->violated);
        CHECK(r.episode->length == 7);
        const auto b = last_stored(agent, 7);
        for (Index j = 0; j < 7; ++j) {
            CHECK(b.truncated(0, j) == (j == 6 ? 1.0 : 0.0));
            CHECK(b.terminated(0, j) == 0.0);
        }
        const auto j = persist::train::to_json(*r.episode, agent.metrics().constraint_names(),
                                               agent.metrics().variable_names());
        CHECK(j["time_to_violation"].is_null());
        CHECK(j["survival_steps"] == 7);
        CHECK(j["constraint_satisfaction"]["energy >= 0.2"] == 1.0);
    }
}

TEST_CASE("policy_sees_internal = false gives the policy s = [o]", "[train][agent]") {
    AgentOptions opt{.batch_size = 2, .learning_starts = 0, .replay_capacity = 8, .policy_sees_internal = false};
    FixedPolicy p;
    p.S = 2;
    Agent agent(CorridorEnv{}, p, {}, {}, homeo(), energy_set(), opt);
    CHECK(agent.policy_state_dim() == 2);
    agent.train(5);
    FixedPolicy wrong;  // state_dim 3 but the agent expects 2
    CHECK_THROWS_AS(Agent(CorridorEnv{}, wrong, {}, {}, homeo(), energy_set(), opt), persist::ShapeError);
}

TEST_CASE("bad options and mismatched parts throw with the field named", "[train][agent]") {
    CHECK_THROWS_WITH(make_agent(AgentOptions{.update_every = 0}), Catch::Contains("AgentOptions.update_every"));
    CHECK_THROWS_WITH(make_agent(AgentOptions{.batch_size = 10, .replay_capacity = 5}),
                      Catch::Contains("AgentOptions.replay_capacity"));
    CHECK_THROWS_WITH(make_agent(AgentOptions{.lambda_homeo = -1}), Catch::Contains("lambda_homeo"));
    auto two = persist::viability::ConstraintSet<double>({"energy", "temp"}, {"energy >= 0.2"});
    CHECK_THROWS_AS(Agent(CorridorEnv{}, FixedPolicy{}, {}, {}, homeo(), two, AgentOptions{}), persist::ShapeError);
}

TEST_CASE("NullShield passes actions through and never triggers", "[train][shield]") {
    persist::shield::NullShield<double> sh;
    static_assert(persist::Shield<persist::shield::NullShield<double>>);
    static_assert(persist::Shield<persist::shield::NullShield<float>>);
    Vec<double> a(2), out(2), o(3), x(1);
    a << 0.3, -0.9;
    const auto d = sh.project(a, o, x, out);
    CHECK(out == a);
    CHECK_FALSE(d.projected);
    CHECK(d.probability == 1.0);
    CHECK(d.feasible);
    Vec<double> bad(3);
    CHECK_THROWS_AS(sh.project(a, o, x, bad), persist::ShapeError);
}

TEST_CASE("same seed, same run; the agent with the built-in NoIntrinsic compiles", "[train][agent]") {
    using A2 = PersistAgent<CorridorEnv, FixedPolicy, persist::shield::NullShield<double>,
                            persist::intrinsic::NoIntrinsic<double>>;
    AgentOptions opt{.batch_size = 4, .update_every = 4, .learning_starts = 8, .replay_capacity = 64, .seed = 5};
    auto run = [&] {
        A2 agent(CorridorEnv{}, FixedPolicy{}, {}, {}, homeo(), energy_set(), opt);
        std::vector<double> rs;
        for (int i = 0; i < 60; ++i) rs.push_back(agent.step().r_total);
        return rs;
    };
    CHECK(run() == run());
}
