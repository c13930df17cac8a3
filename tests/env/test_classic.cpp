// Pendulum-v1 and CartPole-v1 against Gymnasium (recorded by reference/make_gym_reference.py;
// CI needs no Python): same initial state, same actions -> observations within 1e-5, rewards
// and terminated / truncated exactly (EnvPool's test, tightened). Plus contracts and bad input.
#include "env/alloc_counter.hpp"  // first: Eigen allocation guard

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "env/example_env.hpp"
#include "persist/core/concepts.hpp"
#include "persist/env/cartpole.hpp"
#include "persist/env/pendulum.hpp"
#include "persist/env/vector_env.hpp"

using namespace persist;
using namespace persist::env;

static_assert(ContinuousEnvironment<Pendulum<double>> && ContinuousEnvironment<Pendulum<float>>);
static_assert(!DiscreteEnvironment<Pendulum<double>>);
static_assert(!KnownInternalDynamics<Pendulum<double>>);  // no internal variables
static_assert(DiscreteEnvironment<CartPole<double>> && DiscreteEnvironment<CartPole<float>>);
static_assert(!ContinuousEnvironment<CartPole<double>>);
static_assert(ContinuousEnvironment<ContinuousCartPole<float>>);
static_assert(!DiscreteEnvironment<ContinuousCartPole<float>>);
static_assert(Environment<Pendulum<>> && Environment<CartPole<>> && Environment<ContinuousCartPole<>>);
static_assert(std::is_aggregate_v<PendulumConfig> && std::is_aggregate_v<CartPoleConfig>);

namespace {

const nlohmann::json& fixture() {
    static const nlohmann::json j = [] {
        const std::string path = std::string(PERSIST_ENV_REFERENCE_DIR) + "/gym_classic.json";
        std::ifstream in(path);
        if (!in) throw std::runtime_error("cannot open " + path);
        return nlohmann::json::parse(in);
    }();
    return j;
}

template <class T>
struct Tally {
    double max_obs_err = 0;
    long steps = 0, exact_obs = 0;
};

/// Steps `env` through every recorded episode of `name`; make_action(json) -> the env's action.
template <class T, class Env, class State, class MakeAction>
Tally<T> replay(Env& env, const char* name, MakeAction make_action) {
    const auto& spec = fixture().at(name);
    REQUIRE(env.max_episode_steps() == spec.at("max_episode_steps").template get<Index>());
    Tally<T> tally;
    TimeStep<T> ts;
    auto check_obs = [&](const nlohmann::json& ref) {
        REQUIRE(ts.observation.size() == static_cast<Index>(ref.size()));
        bool exact = true;
        for (Index i = 0; i < ts.observation.size(); ++i) {
            const double want = ref[static_cast<std::size_t>(i)].template get<double>();
            // the reference is a float32 printed in shortest form: compare with that float32
            const double err = std::abs(double(ts.observation[i]) - double(static_cast<float>(want)));
            tally.max_obs_err = std::max(tally.max_obs_err, err);
            REQUIRE(err <= 1e-5);
            exact = exact && ts.observation[i] == static_cast<T>(static_cast<float>(want));
        }
        tally.exact_obs += exact;
    };
    int e = 0;
    for (const auto& ep : spec.at("episodes")) {
        INFO(name << " episode " << e++);
        env.reset(0, ts);
        env.set_state(ep.at("state").template get<State>());
        env.write_observation(ts);
        check_obs(ep.at("obs0"));
        const auto& actions = ep.at("actions");
        for (std::size_t t = 0; t < actions.size(); ++t) {
            INFO("step " << t);
            env.step(make_action(actions[t]), ts);
            check_obs(ep.at("obs")[t]);
            const double r = ep.at("rewards")[t].template get<double>();
            REQUIRE(ts.reward == static_cast<T>(r));  // exact (float64 -> T once, as stored)
            REQUIRE(ts.terminated == (ep.at("terminated")[t].template get<int>() != 0));
            REQUIRE(ts.truncated == (ep.at("truncated")[t].template get<int>() != 0));
            ++tally.steps;
        }
        REQUIRE(ts.done());  // the recording stops exactly where Gymnasium's episode ended
    }
    return tally;
}

}  // namespace

TEMPLATE_TEST_CASE("Pendulum-v1 matches Gymnasium step by step", "[env][classic][gym]", float, double) {
    using T = TestType;
    Pendulum<T> env;
    Vec<T> a(1);
    const auto tally = replay<T, Pendulum<T>, std::array<double, 2>>(env, "Pendulum-v1", [&](const nlohmann::json& j) {
        a[0] = static_cast<T>(j.get<double>());
        return VecCRef<T>(a);
    });
    CHECK(tally.steps == 20 * 200);
    CHECK(tally.exact_obs == tally.steps + 20);  // float32 observations agree to the bit here
    std::printf("Pendulum-v1<%s>: %ld steps, max |obs - gym| = %.3g, rewards and flags exact\n",
                sizeof(T) == 4 ? "float" : "double", tally.steps, tally.max_obs_err);
}

TEMPLATE_TEST_CASE("CartPole-v1 matches Gymnasium step by step", "[env][classic][gym]", float, double) {
    using T = TestType;
    CartPole<T> env;
    const auto tally = replay<T, CartPole<T>, std::array<double, 4>>(
        env, "CartPole-v1", [](const nlohmann::json& j) { return j.get<Index>(); });
    CHECK(tally.steps > 4000);
    CHECK(tally.exact_obs == tally.steps + 20);
    std::printf("CartPole-v1<%s>: %ld steps, max |obs - gym| = %.3g, rewards and flags exact\n",
                sizeof(T) == 4 ? "float" : "double", tally.steps, tally.max_obs_err);

    // The continuous variant at a = +-1 is CartPole-v1 exactly.
    ContinuousCartPole<T> cont;
    Vec<T> a(1);
    replay<T, ContinuousCartPole<T>, std::array<double, 4>>(cont, "CartPole-v1", [&](const nlohmann::json& j) {
        a[0] = j.get<Index>() == 1 ? T(1) : T(-1);
        return VecCRef<T>(a);
    });
}

TEST_CASE("Pendulum: clip is dynamics, non-finite is bad input, TimeLimit 200", "[env][classic]") {
    Pendulum<double> p1, p2;
    TimeStep<double> t1, t2;
    p1.reset(5, t1);
    p2.reset(5, t2);
    REQUIRE(t1.observation == t2.observation);
    REQUIRE(t1.internal.size() == 0);
    REQUIRE(std::abs(p1.state()[0]) <= 3.141592653589793);
    REQUIRE(std::abs(p1.state()[1]) <= 1.0);
    Vec<double> big(1), two(1);
    big << 7.0;
    two << 2.0;
    p1.step(big, t1);
    p2.step(two, t2);
    CHECK(t1.observation == t2.observation);  // a torque of 7 is clipped to 2, as in Gymnasium
    CHECK(t1.reward == t2.reward);
    Vec<double> nan(1);
    nan << std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(p1.step(nan, t1), Catch::Contains("action[0] = nan") && Catch::Contains("not finite"));
    CHECK_THROWS_AS(p1.step(Vec<double>::Zero(2), t1), ShapeError);
    int steps = 1;
    while (!t1.truncated) {
        p1.step(two, t1);
        ++steps;
        CHECK_FALSE(t1.terminated);
    }
    CHECK(steps == 200);
    CHECK_THROWS_WITH(p1.step(two, t1), Catch::Contains("truncated") && Catch::Contains("reset"));
    Pendulum<double> fresh;
    CHECK_THROWS_WITH(fresh.step(two, t1), Catch::Contains("before reset"));
    CHECK_THROWS_WITH(Pendulum<double>(PendulumConfig{.g = -1.0}), Catch::Contains("PendulumConfig.g = -1"));
    CHECK_THROWS_AS(Pendulum<double>(PendulumConfig{.max_episode_steps = 0}), ConfigError);
    // angle_normalize is Python's floored modulo.
    CHECK(Pendulum<double>::angle_normalize(3 * 3.141592653589793) == -3.141592653589793);  // as numpy
    CHECK(Pendulum<double>::angle_normalize(-0.5) == -0.5);
    CHECK(Pendulum<double>::angle_normalize(-7.0) == Approx(-7.0 + 2 * 3.141592653589793));
}

TEST_CASE("CartPole: reset range, actions, stepping after the end", "[env][classic]") {
    CartPole<float> env;
    TimeStep<float> ts;
    env.reset(77, ts);
    for (double s : env.state()) REQUIRE(std::abs(s) <= 0.05);
    CHECK(ts.internal.size() == 0);
    CHECK_THROWS_WITH(env.step(2, ts), Catch::Contains("action = 2") && Catch::Contains("{0, 1}"));
    CHECK_THROWS_WITH(env.step(-1, ts), Catch::Contains("action = -1"));
    int steps = 0;
    while (!ts.done()) {
        env.step(1, ts);  // always push right: falls quickly
        ++steps;
    }
    CHECK(ts.terminated);
    CHECK(steps < 50);
    CHECK(ts.reward == 1.0f);
    CHECK_THROWS_WITH(env.step(0, ts), Catch::Contains("terminated") && Catch::Contains("reset"));

    CartPole<double> sb(CartPoleConfig{.sutton_barto_reward = true});
    TimeStep<double> t2;
    sb.reset(77, t2);
    while (!t2.done()) {
        sb.step(1, t2);
        if (!t2.done()) CHECK(t2.reward == 0.0);
    }
    CHECK(t2.reward == -1.0);

    ContinuousCartPole<double> cont;
    cont.reset(1, t2);
    Vec<double> a(1);
    a << 1.5;
    CHECK_THROWS_WITH(cont.step(a, t2), Catch::Contains("action[0] = 1.5") && Catch::Contains("never clipped"));
    a << 0.25;
    cont.step(a, t2);
    CHECK_THROWS_AS(CartPole<double>(CartPoleConfig{.max_episode_steps = 0}), ConfigError);
}

TEST_CASE("Classic envs: step never allocates", "[env][classic][alloc]") {
    Pendulum<float> p;
    CartPole<double> c;
    TimeStep<float> tp;
    TimeStep<double> tc;
    p.reset(0, tp);
    c.reset(0, tc);
    Vec<float> a(1);
    a << 0.5f;
    const long n = envtest::count_allocations([&] {
        for (std::uint64_t ep = 1; ep < 5; ++ep) {
            while (!tp.done()) p.step(a, tp);
            while (!tc.done()) c.step(Index(ep % 2), tc);
            p.reset(ep, tp);
            c.reset(ep, tc);
        }
    });
    CHECK(n == 0);
}

TEST_CASE("The documented example environment (docs/environments.md) works as documented", "[env][example]") {
    Thermostat<double> env;
    TimeStep<double> ts;
    env.reset(3, ts);
    Vec<double> a(1), x(1), o(2), x_pred(1);
    Rng rng(1);
    int episodes = 0;
    const long n = envtest::count_allocations([&] {
        for (int t = 0; t < 1000; ++t) {
            a[0] = rng.uniform<double>(-1.0, 1.0);
            x = ts.internal;
            o = ts.observation;
            env.step(a, ts);
            env.internal_transition(x, a, o, x_pred);
            if (x_pred[0] != ts.internal[0]) throw std::runtime_error("step != internal_transition");
            if (ts.done()) env.reset(std::uint64_t(++episodes), ts);
        }
    });
    CHECK(n == 0);
    CHECK(episodes > 5);
    a[0] = 2.0;
    CHECK_THROWS_WITH(env.step(a, ts), Catch::Contains("outside [-1, 1]"));
    VectorEnv<Thermostat<float>> venv(2, Thermostat<float>());
    VectorTimeStep<float> out;
    venv.reset(0, out);
    venv.step(Mat<float>::Zero(1, 2), out);
    CHECK(out.internal.rows() == 1);
}
