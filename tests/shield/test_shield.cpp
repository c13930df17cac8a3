// RolloutShield: the Shield concept, accept / project / infeasible decisions, CEM and gradient
// projections against the analytic nearest safe action, the binding constraint, backends and
// thread counts, determinism, curriculum changes, counters and checkpoint state, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/parallel/gridlife_rollout.hpp"
#include "persist/shield/shield.hpp"
#include "shield/shield_fixtures.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace persist;
using namespace persist::parallel;
using persist::shield::Projection;
using persist::shield::RolloutShield;
using persist::shield::RolloutShieldOptions;
using shieldtest::Ensemble;

namespace {

template <class T>
using KnownShield = RolloutShield<T, GridLifeRolloutModel<T>, LinearConstraintsView<T>, HoldObservation<T>>;
template <class T>
using LearnedShield = RolloutShield<T, EnsembleRolloutModel<T>, LinearConstraintsView<T>, HoldObservation<T>>;

/// A GridLife scene whose only action-dependent margin is energy: the agent on a plain
/// temperate tile (heat 0.5, nothing else), so e' = e - decay - cost ||a||^2 and the safe
/// actions (h = 1) are the disk ||a|| <= rho with rho^2 = (e - decay - 0.2) / cost.
template <class T>
struct DiskScene {
    env::GridLife<T> env;
    TimeStep<T> ts;
    Vec<T> x;
    explicit DiskScene(double rho) : env(env::GridLifeConfig{}) {
        env.reset(3, ts);
        const Index ix = 5, iy = 5;
        for (Index c = 0; c < 7; ++c) env.set_tile(ix, iy, c, c == env::ch_heat ? T(0.5) : T(0), ts);
        const auto& cfg = env.config();
        x.resize(3);
        x << T(0.2 + cfg.energy_decay + cfg.effort_cost * rho * rho), T(0.5), T(0.9);
        env.set_agent(T(5.5), T(5.5), x, ts);
    }
};

}  // namespace

static_assert(Shield<KnownShield<float>> && Shield<KnownShield<double>> && Shield<LearnedShield<float>>);
static_assert(Stateful<KnownShield<double>>);
static_assert(Shield<shield::NullShield<double>>);

TEMPLATE_TEST_CASE("RolloutShield accepts a safe action unchanged", "[shield]", float, double) {
    using T = TestType;
    DiskScene<T> sc(0.5);
    const auto cs = shieldtest::seed_constraints<T>();
    KnownShield<T> sh(GridLifeRolloutModel<T>::from(sc.env), cs, {}, sc.env.action_low(), sc.env.action_high(),
                      RolloutShieldOptions{.horizon = 1, .num_rollouts = 1});
    Vec<T> a(2), out(2);
    a << T(0.2), T(-0.3);
    const auto d = sh.project(a, sc.ts.observation, sc.x, out);
    REQUIRE_FALSE(d.projected);
    REQUIRE(d.feasible);
    REQUIRE(d.probability == T(1));
    REQUIRE(d.distance == T(0));
    REQUIRE(out == a);
    REQUIRE(d.binding_constraint == 0);  // energy has the smallest margin
    REQUIRE(sh.counters().decisions == 1);
    REQUIRE(sh.counters().projections == 0);
}

TEMPLATE_TEST_CASE("CEM projection returns the nearest safe action to grid accuracy", "[shield][cem]", float, double) {
    using T = TestType;
    const auto cs = shieldtest::seed_constraints<T>();
    Rng rng(2);
    for (int trial = 0; trial < 20; ++trial) {
        const double rho = 0.2 + 0.6 * rng.uniform<double>();
        DiskScene<T> sc(rho);
        RolloutShieldOptions opt{.conf = 1.0, .horizon = 1, .num_rollouts = 1};
        opt.seed = static_cast<std::uint64_t>(trial);
        opt.cem_iterations = 10;  // to converge to grid accuracy (defaults: docs/shield.md)
        KnownShield<T> sh(GridLifeRolloutModel<T>::from(sc.env), cs, {}, sc.env.action_low(), sc.env.action_high(), opt);
        Vec<T> a(2), out(2);
        do {
            a << rng.uniform<T>(T(-1), T(1)), rng.uniform<T>(T(-1), T(1));
        } while (a.norm() < T(rho + 0.1));
        const auto d = sh.project(a, sc.ts.observation, sc.x, out);
        REQUIRE(d.projected);
        REQUIRE(d.feasible);
        REQUIRE(d.probability == T(1));
        REQUIRE(d.binding_constraint == 0);
        REQUIRE(d.distance == Approx(double((out - a).norm())).epsilon(1e-5));
        // The nearest safe action is the radial projection onto the disk.
        const double want = double(a.norm()) - rho;
        REQUIRE(out.norm() <= T(rho) * T(1 + 1e-3));  // the model's disk, up to float rounding
        // Grid accuracy: a 41 x 41 grid over the box has spacing 0.05.
        REQUIRE(double(d.distance) >= want - 1e-3);
        REQUIRE(double(d.distance) <= want + 0.05);
    }
}

TEST_CASE("Gradient projection finds the nearest safe action of the energy disk", "[shield][gradient]") {
    using T = double;
    const auto cs = shieldtest::seed_constraints<T>();
    Rng rng(5);
    for (int trial = 0; trial < 20; ++trial) {
        const double rho = 0.3 + 0.5 * rng.uniform<double>();
        DiskScene<T> sc(rho);
        RolloutShieldOptions opt{.conf = 1.0, .horizon = 1, .num_rollouts = 1};
        opt.projection = Projection::gradient;
        KnownShield<T> sh(GridLifeRolloutModel<T>::from(sc.env), cs, {}, sc.env.action_low(), sc.env.action_high(), opt);
        Vec<T> a(2), out(2);
        do {
            a << rng.uniform<T>(-1, 1), rng.uniform<T>(-1, 1);
        } while (a.norm() < rho + 0.1);
        const auto d = sh.project(a, sc.ts.observation, sc.x, out);
        REQUIRE(d.projected);
        REQUIRE(d.feasible);
        REQUIRE(out.norm() <= rho);
        REQUIRE(d.distance >= a.norm() - rho - 1e-9);
        REQUIRE(d.distance <= a.norm() - rho + 0.05);
        // Along the ray of a (the gradient of ||a||^2 is radial).
        REQUIRE(std::abs(out[0] * a[1] - out[1] * a[0]) <= 1e-6);
    }
}

TEMPLATE_TEST_CASE("No safe action: infeasible is reported and the safest action returned", "[shield]", float, double) {
    using T = TestType;
    const auto cs = shieldtest::seed_constraints<T>();
    for (Projection p : {Projection::cem, Projection::gradient}) {
        DiskScene<T> sc(0.5);
        sc.x[0] = T(0.2 + sc.env.config().energy_decay - 0.001);  // even a = 0 ends below 0.2
        RolloutShieldOptions opt{.conf = 1.0, .horizon = 1, .num_rollouts = 1};
        opt.projection = p;
        opt.cem_include_centre = true;
        KnownShield<T> sh(GridLifeRolloutModel<T>::from(sc.env), cs, {}, sc.env.action_low(), sc.env.action_high(), opt);
        Vec<T> a(2), out(2);
        a << T(0.6), T(0.7);
        const auto d = sh.project(a, sc.ts.observation, sc.x, out);
        REQUIRE_FALSE(d.feasible);
        REQUIRE(d.probability == T(0));
        REQUIRE(d.binding_constraint == 0);
        REQUIRE(sh.counters().infeasible == 1);
        REQUIRE(sh.counters().projections == 1);
        // The safest action spends the least energy.
        REQUIRE(out.norm() < T(0.1));
        REQUIRE(d.projected);
    }
}

TEMPLATE_TEST_CASE("relax_unavoidable: an unavoidable constraint is given up, the others still enforced", "[shield]",
                   float, double) {
    using T = TestType;
    // energy >= 0.5 fails whatever the action (e' < 0.5 even at a = 0); energy >= 0.2 holds on the
    // disk ||a|| <= rho. Off: the safest action (least effort); on: the nearest action of the disk.
    const double rho = 0.5;
    const viability::ConstraintSet<T> cs({"energy", "temp", "integrity"}, {"energy >= 0.5", "energy >= 0.2"});
    for (Projection p : {Projection::cem, Projection::gradient}) {
        DiskScene<T> sc(rho);
        RolloutShieldOptions opt{.conf = 1.0, .horizon = 1, .num_rollouts = 1};
        opt.projection = p;
        opt.cem_iterations = 10;
        Vec<T> a(2), out(2);
        a << T(0.8), T(-0.6);  // |a| = 1: violates both
        KnownShield<T> off(GridLifeRolloutModel<T>::from(sc.env), cs, {}, sc.env.action_low(), sc.env.action_high(), opt);
        const auto d0 = off.project(a, sc.ts.observation, sc.x, out);
        REQUIRE_FALSE(d0.feasible);
        REQUIRE(d0.relaxed == 0u);
        REQUIRE(out.norm() < T(0.1));
        REQUIRE(off.counters().relaxed == 0);

        opt.relax_unavoidable = true;
        KnownShield<T> on(GridLifeRolloutModel<T>::from(sc.env), cs, {}, sc.env.action_low(), sc.env.action_high(), opt);
        const auto d1 = on.project(a, sc.ts.observation, sc.x, out);
        INFO("projection " << int(p) << ": out " << out.transpose() << ", |out| " << out.norm());
        REQUIRE(d1.relaxed == 1u);   // constraint 0 given up
        REQUIRE(d1.feasible);        // for the rest (energy >= 0.2)
        REQUIRE(d1.projected);
        REQUIRE(out.norm() <= T(rho + 1e-6));
        REQUIRE(out.norm() >= T(rho - 0.08));  // near the disk's edge, not the least-effort action
        REQUIRE(d1.distance <= T(1.0 - rho + 0.08));
        REQUIRE(on.counters().relaxed == 1);
        REQUIRE(on.counters().infeasible == 1);
        // A proposal inside the disk passes unchanged once constraint 0 is given up.
        a << T(0.2), T(0.1);
        const auto d2 = on.project(a, sc.ts.observation, sc.x, out);
        REQUIRE(d2.relaxed == 1u);
        REQUIRE_FALSE(d2.projected);
        REQUIRE(out == a);
        // Both unavoidable: everything is given up, the proposal passes and nothing is feasible.
        DiskScene<T> low(rho);
        low.x[0] = T(0.2 + low.env.config().energy_decay - 0.001);
        const auto d3 = on.project(a, low.ts.observation, low.x, out);
        REQUIRE(d3.relaxed == 3u);
        REQUIRE_FALSE(d3.feasible);
        REQUIRE(out == a);
    }
}

TEST_CASE("The binding constraint is the one violated first most often", "[shield]") {
    using T = double;
    DiskScene<T> sc(0.5);
    const auto cs = shieldtest::seed_constraints<T>();
    // Hot tile: temp rises above 0.7 first (step 1), energy would fail only later.
    TimeStep<T> ts = sc.ts;
    sc.env.set_tile(5, 5, env::ch_heat, T(1), ts);
    sc.x << T(0.9), T(0.69), T(0.9);
    sc.env.set_agent(T(5.5), T(5.5), sc.x, ts);
    KnownShield<T> sh(GridLifeRolloutModel<T>::from(sc.env), cs, {}, sc.env.action_low(), sc.env.action_high(),
                      RolloutShieldOptions{.conf = 1.0, .horizon = 8, .num_rollouts = 4});
    Vec<T> a = Vec<T>::Zero(2), out(2);
    const auto d = sh.project(a, ts.observation, sc.x, out);
    REQUIRE_FALSE(d.feasible);  // Hold kinematics: every action stays on the hot tile
    REQUIRE(d.binding_constraint == 1);
}

TEMPLATE_TEST_CASE("Learned ensemble: same seed bitwise identical; backends same decisions; threads no effect",
                   "[shield][backends][threads]", float, double) {
    using T = TestType;
    Ensemble<T> e(5, 64, 3, 2, 0, 31, T(0.006));
    const auto cs = shieldtest::toy_constraints<T>();
    const Vec<T> low = Vec<T>::Constant(2, T(-1)), high = Vec<T>::Constant(2, T(1));
    auto make = [&](parallel::Backend b, std::uint64_t seed) {
        RolloutShieldOptions opt;
        opt.backend = b;
        opt.seed = seed;
        return LearnedShield<T>(e.model(), cs, {}, low, high, opt);
    };
    Rng rng(6);
    std::vector<Vec<T>> xs, as;
    for (int i = 0; i < 25; ++i) {
        Vec<T> x(3), a(2);
        x << T(0.02) * rng.uniform<T>(T(-1), T(1)), T(0.05) * rng.uniform<T>(T(-1), T(1)),
            T(0.05) * rng.uniform<T>(T(-1), T(1));
        a << rng.uniform<T>(T(-1), T(1)), rng.uniform<T>(T(-1), T(1));
        xs.push_back(x);
        as.push_back(a);
    }
    const Vec<T> o = Vec<T>::Zero(1);
    struct Run {
        std::vector<ShieldDecision<T>> d;
        std::vector<Vec<T>> out;
    };
    auto run = [&](LearnedShield<T>& sh, int threads) {
        Run r;
#if defined(_OPENMP)
        const int before = omp_get_max_threads();
        omp_set_num_threads(threads);
#else
        (void)threads;
#endif
        for (std::size_t i = 0; i < xs.size(); ++i) {
            Vec<T> out(2);
            r.d.push_back(sh.project(as[i], o, xs[i], out));
            r.out.push_back(out);
        }
#if defined(_OPENMP)
        omp_set_num_threads(before);
#endif
        return r;
    };
    auto eig1 = make(parallel::Backend::eigen, 9);
    auto eig1b = make(parallel::Backend::eigen, 9);
    auto eig2 = make(parallel::Backend::eigen, 9);
    auto omp1 = make(parallel::Backend::thrust_device, 9);
    auto omp2 = make(parallel::Backend::thrust_device, 9);
    auto cpp = make(parallel::Backend::thrust_cpp, 9);
    auto other = make(parallel::Backend::eigen, 10);
    const Run r_eig1 = run(eig1, 1), r_eig1b = run(eig1b, 1), r_eig2 = run(eig2, 2), r_omp1 = run(omp1, 1),
              r_omp2 = run(omp2, 2), r_cpp = run(cpp, 1), r_other = run(other, 1);
    int projected = 0, infeasible = 0, differs = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        // Bitwise: same seed, same backend, any thread count.
        REQUIRE(r_eig1.out[i] == r_eig1b.out[i]);
        REQUIRE(r_eig1.out[i] == r_eig2.out[i]);
        REQUIRE(r_omp1.out[i] == r_omp2.out[i]);
        REQUIRE(r_omp1.out[i] == r_cpp.out[i]);
        REQUIRE(r_eig1.d[i].probability == r_eig2.d[i].probability);
        // Eigen vs Thrust: same decisions, equal probabilities, actions within rounding.
        REQUIRE(r_eig1.d[i].projected == r_omp1.d[i].projected);
        REQUIRE(r_eig1.d[i].feasible == r_omp1.d[i].feasible);
        REQUIRE(r_eig1.d[i].probability == r_omp1.d[i].probability);
        REQUIRE(r_eig1.d[i].binding_constraint == r_omp1.d[i].binding_constraint);
        REQUIRE((r_eig1.out[i] - r_omp1.out[i]).cwiseAbs().maxCoeff() <= T(1e-5));
        projected += r_eig1.d[i].projected;
        infeasible += !r_eig1.d[i].feasible;
        differs += r_other.out[i] != r_eig1.out[i];
    }
    // The scenes exercise accepts and projections; another seed changes the projections.
    REQUIRE(projected > 0);
    REQUIRE(projected < static_cast<int>(xs.size()));
    REQUIRE(differs > 0);
    REQUIRE(eig1.counters().decisions == xs.size());
    REQUIRE(eig1.counters().projections == static_cast<std::uint64_t>(projected));
    REQUIRE(eig1.counters().infeasible == static_cast<std::uint64_t>(infeasible));
}

TEST_CASE("probability(): P_hat of one action; K rollouts over members k % M", "[shield]") {
    using T = double;
    Ensemble<T> e(4, 16, 3, 2, 0, 41);
    const auto cs = shieldtest::toy_constraints<T>();
    RolloutShieldOptions opt{.horizon = 8, .num_rollouts = 32};
    LearnedShield<T> sh(e.model(), cs, {}, Vec<T>::Constant(2, -1), Vec<T>::Constant(2, 1), opt);
    const Vec<T> o = Vec<T>::Zero(1);
    Vec<T> a(2), x = Vec<T>::Zero(3);
    a << 0.3, -0.2;
    const std::uint64_t call = sh.calls();
    const T p = sh.probability(a, o, x);
    int safe = 0;
    for (std::uint32_t k = 0; k < 32; ++k)
        safe += shieldtest::reference_rollout(e, cs, x, o, a, 8, 0, call, 0, k).first_violation == 8;
    REQUIRE(p == T(safe) / 32);
    REQUIRE(sh.calls() == call + 1);
    REQUIRE(sh.counters().decisions == 0);
}

TEST_CASE("Curriculum: changes to the ConstraintSet apply at the next decision", "[shield]") {
    using T = double;
    DiskScene<T> sc(0.5);
    auto cs = shieldtest::seed_constraints<T>();
    const auto wide = viability::ConstraintSet<T>({"energy", "temp", "integrity"},
                                                  {"energy >= 0.0", "temp in [0.0, 1.0]", "integrity >= 0.0"});
    const auto target = shieldtest::seed_constraints<T>();
    KnownShield<T> sh(GridLifeRolloutModel<T>::from(sc.env), cs, {}, sc.env.action_low(), sc.env.action_high(),
                      RolloutShieldOptions{.conf = 1.0, .horizon = 1, .num_rollouts = 1});
    Vec<T> a(2), out(2);
    a << 0.9, 0.9;
    REQUIRE(sh.project(a, sc.ts.observation, sc.x, out).projected);
    cs.assign_interpolation(wide, target, 0.0);
    REQUIRE_FALSE(sh.project(a, sc.ts.observation, sc.x, out).projected);
}

TEST_CASE("visit_state exposes the call counter and counters; restoring them resumes bitwise", "[shield]") {
    using T = float;
    Ensemble<T> e(5, 32, 3, 2, 0, 51);
    const auto cs = shieldtest::toy_constraints<T>();
    const Vec<T> low = Vec<T>::Constant(2, -1), high = Vec<T>::Constant(2, 1);
    LearnedShield<T> a1(e.model(), cs, {}, low, high), a2(e.model(), cs, {}, low, high);
    const Vec<T> o = Vec<T>::Zero(1);
    Vec<T> x(3), a(2), out1(2), out2(2);
    x << T(0.01), T(0.06), T(0.02);
    a << T(0.9), T(-0.8);
    for (int i = 0; i < 3; ++i) a1.project(a, o, x, out1);
    // Copy a1's state into a2 through the visitor protocol.
    std::vector<std::uint64_t> saved;
    a1.visit_state([&](const TensorRef& t) { saved.push_back(*static_cast<std::uint64_t*>(t.data)); });
    REQUIRE(saved.size() == 5);
    std::size_t i = 0;
    a2.visit_state([&](const TensorRef& t) { *static_cast<std::uint64_t*>(t.data) = saved[i++]; });
    REQUIRE(a2.calls() == 3);
    REQUIRE(a2.counters().decisions == 3);
    const auto d1 = a1.project(a, o, x, out1);
    const auto d2 = a2.project(a, o, x, out2);
    REQUIRE(out1 == out2);
    REQUIRE(d1.probability == d2.probability);
}

TEST_CASE("Options from the config struct; bad options and bad input throw persist errors", "[shield][errors]") {
    struct Cem {
        std::int64_t iterations = 5, population = 32, elites = 4;
        double init_std = 0.3, momentum = 0.1;
    };
    struct Cfg {
        double conf = 0.9;
        std::int64_t horizon = 6, num_rollouts = 16;
        Cem cem{};
    };
    const auto o = RolloutShieldOptions::from_config(Cfg{}, 7);
    REQUIRE(o.conf == 0.9);
    REQUIRE(o.horizon == 6);
    REQUIRE(o.num_rollouts == 16);
    REQUIRE(o.cem_iterations == 5);
    REQUIRE(o.cem_population == 32);
    REQUIRE(o.cem_elites == 4);
    REQUIRE(o.cem_init_std == 0.3);
    REQUIRE(o.cem_momentum == 0.1);
    REQUIRE(o.seed == 7);
    // Defaults = config viability.shield.
    const RolloutShieldOptions d;
    REQUIRE((d.conf == 0.97 && d.horizon == 8 && d.num_rollouts == 32 && d.cem_iterations == 4 &&
             d.cem_population == 64 && d.cem_elites == 8 && d.cem_init_std == 0.5 && d.cem_momentum == 0.0));

    using T = double;
    DiskScene<T> sc(0.5);
    const auto cs = shieldtest::seed_constraints<T>();
    const auto model = GridLifeRolloutModel<T>::from(sc.env);
    const auto low = sc.env.action_low(), high = sc.env.action_high();
    auto with = [&](auto f) {
        RolloutShieldOptions opt;
        f(opt);
        return KnownShield<T>(model, cs, {}, low, high, opt);
    };
    REQUIRE_THROWS_WITH(with([](auto& op) { op.conf = 0.0; }), Catch::Contains("conf") && Catch::Contains("(0, 1]"));
    REQUIRE_THROWS_AS(with([](auto& op) { op.horizon = 0; }), ConfigError);
    REQUIRE_THROWS_AS(with([](auto& op) { op.num_rollouts = 0; }), ConfigError);
    REQUIRE_THROWS_WITH(with([](auto& op) { op.cem_elites = 65; }), Catch::Contains("cem_elites"));
    REQUIRE_THROWS_AS(with([](auto& op) { op.cem_momentum = 1.0; }), ConfigError);
    REQUIRE_THROWS_AS(KnownShield<T>(model, cs, {}, high, low), ConfigError);
    REQUIRE_THROWS_AS(KnownShield<T>(model, cs, {}, Vec<T>::Zero(3), high), ShapeError);
    const auto four = viability::ConstraintSet<T>({"a", "b", "c", "d"}, {"a >= 0"});
    REQUIRE_THROWS_AS(KnownShield<T>(model, four, {}, low, high), ShapeError);

    KnownShield<T> sh(model, cs, {}, low, high);
    Vec<T> a(2), out(2);
    a << 0.1, 0.1;
    REQUIRE_THROWS_AS(sh.project(Vec<T>::Zero(3), sc.ts.observation, sc.x, out), ShapeError);
    REQUIRE_THROWS_AS(sh.project(a, sc.ts.observation, Vec<T>::Zero(2), out), ShapeError);
    REQUIRE_THROWS_AS(sh.project(a, Vec<T>::Zero(5), sc.x, out), ShapeError);
    Vec<T> out3(3);
    REQUIRE_THROWS_AS(sh.project(a, sc.ts.observation, sc.x, out3), ShapeError);
    Vec<T> bad = a;
    bad[1] = std::nan("");
    REQUIRE_THROWS_WITH(sh.project(bad, sc.ts.observation, sc.x, out), Catch::Contains("a[1]") && Catch::Contains("not finite"));
    bad[1] = 1.5;
    REQUIRE_THROWS_WITH(sh.project(bad, sc.ts.observation, sc.x, out), Catch::Contains("outside the action box"));
    Vec<T> xb = sc.x;
    xb[2] = INFINITY;
    REQUIRE_THROWS_AS(sh.project(a, sc.ts.observation, xb, out), Error);
    REQUIRE(sh.counters().decisions == 0);  // rejected calls are not decisions
}

TEST_CASE("A learned margin network as the viability function (CEM and gradient)", "[shield][margin]") {
    using T = double;
    // m(x) = energy - 0.2: a one-layer MLPView, the same boundary as "energy >= 0.2".
    nn::MLP<T> net({3, 1});
    net.params() << 1.0, 0.0, 0.0, -0.2;
    const MarginNetworkView<T> mv{shieldtest::view_of(net), nullptr, nullptr};
    const double rho = 0.5;
    DiskScene<T> sc(rho);
    for (Projection p : {Projection::cem, Projection::gradient}) {
        RolloutShieldOptions opt{.conf = 1.0, .horizon = 1, .num_rollouts = 1};
        opt.projection = p;
        opt.cem_iterations = 10;
        RolloutShield<T, GridLifeRolloutModel<T>, MarginNetworkView<T>, HoldObservation<T>> sh(
            GridLifeRolloutModel<T>::from(sc.env), mv, {}, sc.env.action_low(), sc.env.action_high(), opt);
        Vec<T> a(2), out(2);
        a << 0.8, -0.6;  // |a| = 1
        const auto d = sh.project(a, sc.ts.observation, sc.x, out);
        REQUIRE(d.projected);
        REQUIRE(d.feasible);
        REQUIRE(d.binding_constraint == 0);
        REQUIRE(out.norm() <= rho + 1e-9);
        REQUIRE(d.distance <= 1.0 - rho + 0.05);
        a << 0.1, 0.1;
        REQUIRE_FALSE(sh.project(a, sc.ts.observation, sc.x, out).projected);
    }
}
