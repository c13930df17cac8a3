// The property test of issue 4: with GridLife's known dynamics, alpha = 1 and a deterministic
// model, across thousands of random states and proposed actions, the shielded action never
// leads to a state outside the viability set when a safe action exists. Existence is checked
// by brute force over a 41 x 41 grid of the action box: with h = 1 against the environment
// itself (one real step), with h = 8 against the shield's own model (the whole look-ahead).
// The next state is produced by stepping the real environment with the shielded action.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "persist/parallel/gridlife_rollout.hpp"
#include "persist/shield/shield.hpp"
#include "shield/shield_fixtures.hpp"

using namespace persist;
using namespace persist::parallel;
using persist::shield::CandidateStats;
using persist::shield::RolloutShield;
using persist::shield::RolloutShieldOptions;

namespace {

constexpr int kGrid = 41;

/// A random scene: random map, agent on a random free tile, x near the constraint boundaries.
template <class T>
void random_scene(env::GridLife<T>& env, TimeStep<T>& ts, Rng& rng, std::uint64_t seed) {
    env.reset(seed, ts);
    for (;;) {
        const T px = rng.uniform<T>(T(0), T(env.width()) - T(0.001));
        const T py = rng.uniform<T>(T(0), T(env.height()) - T(0.001));
        if (env.tile(static_cast<Index>(px), static_cast<Index>(py), env::ch_wall) != T(0)) continue;
        Vec<T> x(3);
        x << rng.uniform<T>(T(0.2), T(0.3)), rng.uniform<T>(T(0.3), T(0.7)), rng.uniform<T>(T(0.6), T(0.7));
        env.set_agent(px, py, x, ts);
        return;
    }
}

Mat<double> action_grid() {
    Mat<double> g(2, kGrid * kGrid);
    for (int i = 0; i < kGrid; ++i)
        for (int j = 0; j < kGrid; ++j) {
            g(0, i * kGrid + j) = -1.0 + 2.0 * i / (kGrid - 1);
            g(1, i * kGrid + j) = -1.0 + 2.0 * j / (kGrid - 1);
        }
    return g;
}

}  // namespace

TEMPLATE_TEST_CASE("Property: h = 1, alpha = 1, known dynamics: the shielded step is viable whenever a safe action exists",
                   "[shield][property]", float, double) {
    using T = TestType;
    env::GridLifeConfig cfg;
    cfg.num_hazards = 40;
    cfg.num_walls = 20;
    env::GridLife<T> env(cfg);
    const auto cs = shieldtest::seed_constraints<T>();
    const Mat<T> grid = action_grid().cast<T>();
    TimeStep<T> ts;
    env.reset(0, ts);
    RolloutShieldOptions opt{.conf = 1.0, .horizon = 1, .num_rollouts = 1};
    RolloutShield<T, GridLifeRolloutModel<T>, LinearConstraintsView<T>, HoldObservation<T>> sh(
        GridLifeRolloutModel<T>::from(env), cs, {}, env.action_low(), env.action_high(), opt);
    Rng rng(2024);
    int exists = 0, none = 0, projected = 0;
    Vec<T> xn(3), a(2), out(2);
    for (int trial = 0; trial < 3000; ++trial) {
        random_scene(env, ts, rng, static_cast<std::uint64_t>(trial % 50));
        const Vec<T> o = ts.observation, x = ts.internal;
        bool any_safe = false;
        for (Index g = 0; g < grid.cols() && !any_safe; ++g) {
            env.internal_transition(x, grid.col(g), o, xn);
            any_safe = cs.satisfied(xn);
        }
        a << rng.uniform<T>(T(-1), T(1)), rng.uniform<T>(T(-1), T(1));
        const auto d = sh.project(a, o, x, out);
        projected += d.projected;
        env.step(out, ts);  // the real environment decides
        if (any_safe) {
            ++exists;
            REQUIRE(d.feasible);
            REQUIRE(cs.satisfied(ts.internal));
            REQUIRE_FALSE(ts.terminated);
        } else {
            ++none;
            REQUIRE_FALSE(d.feasible);
        }
        // Whatever it says about feasibility is true of the real step.
        REQUIRE(d.feasible == cs.satisfied(ts.internal));
    }
    // Both regimes and real projections were exercised.
    REQUIRE(exists > 1000);
    REQUIRE(none > 10);
    REQUIRE(projected > 100);
}

TEMPLATE_TEST_CASE("Property: h = 8, alpha = 1, known dynamics with patch kinematics", "[shield][property]", float,
                   double) {
    using T = TestType;
    env::GridLifeConfig cfg;
    cfg.num_hazards = 40;
    cfg.num_walls = 20;
    env::GridLife<T> env(cfg);
    const auto cs = shieldtest::seed_constraints<T>();
    const Mat<T> grid = action_grid().cast<T>();
    TimeStep<T> ts;
    env.reset(0, ts);
    const auto model = GridLifeRolloutModel<T>::from(env);
    const auto kin = GridLifePatchKinematics<T>::from(env);
    RolloutShieldOptions opt{.conf = 1.0, .horizon = 8, .num_rollouts = 1};
    RolloutShield<T, GridLifeRolloutModel<T>, LinearConstraintsView<T>, GridLifePatchKinematics<T>> sh(
        model, cs, kin, env.action_low(), env.action_high(), opt);
    // The brute-force checker: the same model and kinematics, 64 grid actions per batch.
    RolloutShield<T, GridLifeRolloutModel<T>, LinearConstraintsView<T>, GridLifePatchKinematics<T>> oracle(
        model, cs, kin, env.action_low(), env.action_high(), opt);
    std::vector<CandidateStats<T>> stats;
    Rng rng(77);
    int exists = 0, found = 0, step_safe_exists = 0, projected = 0;
    Vec<T> xn(3), a(2), out(2);
    for (int trial = 0; trial < 2000; ++trial) {
        random_scene(env, ts, rng, static_cast<std::uint64_t>(trial % 50));
        const Vec<T> o = ts.observation, x = ts.internal;
        bool any_safe = false, any_step_safe = false;
        for (Index g = 0; g < grid.cols(); ++g) {
            env.internal_transition(x, grid.col(g), o, xn);
            any_step_safe = any_step_safe || cs.satisfied(xn);
        }
        for (Index g0 = 0; g0 < grid.cols() && !any_safe; g0 += 64) {
            const Index n = std::min<Index>(64, grid.cols() - g0);
            oracle.evaluate_candidates(grid.middleCols(g0, n), o, x, stats);
            for (const auto& s : stats) any_safe = any_safe || s.probability == T(1);
        }
        a << rng.uniform<T>(T(-1), T(1)), rng.uniform<T>(T(-1), T(1));
        const auto d = sh.project(a, o, x, out);
        projected += d.projected;
        env.step(out, ts);
        // A feasible decision's first step is exact (known dynamics), so it is always viable.
        if (d.feasible) REQUIRE(cs.satisfied(ts.internal));
        if (any_safe) {
            ++exists;
            found += d.feasible;
            REQUIRE(cs.satisfied(ts.internal));
            REQUIRE_FALSE(ts.terminated);
        }
        if (any_step_safe) {
            ++step_safe_exists;
            // Even when no 8-step-safe action exists, the safest (longest-surviving) action is
            // chosen, so a one-step-safe action is taken whenever there is one.
            REQUIRE(cs.satisfied(ts.internal));
        }
    }
    REQUIRE(exists > 500);
    REQUIRE(projected > 200);
    // How often CEM (64 x 4) finds an 8-step-safe action when the 41 x 41 grid has one: not
    // always (the safe set can be a thin corridor); the rate is reported in docs/shield.md.
    CAPTURE(exists, found, step_safe_exists);
    WARN("h = 8: CEM found a safe action in " << found << " of " << exists << " scenes where the grid found one");
    REQUIRE(double(found) >= 0.95 * double(exists));
}
