// GridLife-v0: concepts, determinism, the internal-dynamics contract, termination/truncation,
// food, stations, observability, bad input, no allocation per step, survival sanity.
#include "env/alloc_counter.hpp"  // first: Eigen allocation guard

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "env/gridlife_policies.hpp"
#include "persist/core/concepts.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/env/gridlife_forager.hpp"

using namespace persist;
using namespace persist::env;

namespace {

/// A ViabilityModel over x (core/concepts.hpp): one constraint, energy >= threshold.
struct EnergyFloor {
    using scalar_type = double;
    double threshold = 0.5;
    Index dim() const { return 3; }
    Index num_constraints() const { return 1; }
    void margins(MatCRef<double> x, MatRef<double> m) const { m.row(0) = x.row(0).array() - threshold; }
};

/// A hook with a run-time settable predicate (what an agent installs after parsing).
struct TempCeiling {
    double ceiling = 2.0;
    Index first_violation(VecCRef<double> x) const { return x[1] > ceiling ? 0 : -1; }
};

struct NotAHook {};

}  // namespace

// --- concepts ------------------------------------------------------------------------------
static_assert(ContinuousEnvironment<GridLife<double>>);
static_assert(ContinuousEnvironment<GridLife<float>>);
static_assert(KnownInternalDynamics<GridLife<double>>);
static_assert(KnownInternalDynamics<GridLife<float>>);
static_assert(Environment<GridLife<>>);
static_assert(!DiscreteEnvironment<GridLife<double>>);
static_assert(KnownInternalDynamics<GridLife<double, ViabilityTermination<EnergyFloor>>>);
static_assert(KnownInternalDynamics<GridLife<double, TempCeiling>>);
static_assert(ViabilityModel<EnergyFloor>);
static_assert(GridLifeTerminationHook<NoTerminationHook, float>);
static_assert(GridLifeTerminationHook<ViabilityTermination<EnergyFloor>, double>);
static_assert(!GridLifeTerminationHook<NotAHook, double>);
static_assert(std::is_aggregate_v<GridLifeConfig>);

namespace {

template <class T>
Vec<T> vec2(T a, T b) {
    Vec<T> v(2);
    v << a, b;
    return v;
}
template <class T>
Vec<T> vec3(T a, T b, T c) {
    Vec<T> v(3);
    v << a, b, c;
    return v;
}

/// Make tile (ix, iy) neutral: heat 0.5, no food, hazard or station.
template <class T, class H>
void neutralise(GridLife<T, H>& env, Index ix, Index iy, TimeStep<T>& ts) {
    env.set_tile(ix, iy, ch_heat, T(0.5), ts);
    for (Index c = ch_food; c <= ch_repair; ++c) env.set_tile(ix, iy, c, T(0), ts);
}

template <class T>
bool same(const Vec<T>& a, const Vec<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(T) * std::size_t(a.size())) == 0;
}

}  // namespace

TEMPLATE_TEST_CASE("GridLife: same seed gives bitwise identical episodes, other seeds other maps",
                   "[env][gridlife]", float, double) {
    using T = TestType;
    GridLife<T> e1, e2;
    TimeStep<T> t1, t2;
    envtest::RandomPolicy p1{Rng(3)}, p2{Rng(3)};
    Vec<T> a1(2), a2(2);
    for (std::uint64_t seed : {0ull, 1ull, 12345ull}) {
        e1.reset(seed, t1);
        e2.reset(seed, t2);
        REQUIRE(same(t1.observation, t2.observation));
        REQUIRE(e1.tiles() == e2.tiles());
        Index steps = 0;
        while (!t1.done()) {
            p1.act(e1, a1);
            p2.act(e2, a2);
            e1.step(a1, t1);
            e2.step(a2, t2);
            ++steps;
            REQUIRE(same(t1.observation, t2.observation));
            REQUIRE(same(t1.internal, t2.internal));
            REQUIRE(std::memcmp(&t1.reward, &t2.reward, sizeof(T)) == 0);
            REQUIRE(t1.terminated == t2.terminated);
            REQUIRE(t1.truncated == t2.truncated);
        }
        REQUIRE(t2.done());
        REQUIRE(steps > 0);
    }
    e1.reset(1, t1);
    e2.reset(2, t2);
    CHECK_FALSE(e1.tiles() == e2.tiles());

    // fixed_map: the map no longer depends on the reset seed, the start still does.
    GridLife<T> f1(GridLifeConfig{.fixed_map = true, .map_seed = 99}), f2(GridLifeConfig{.fixed_map = true, .map_seed = 99});
    f1.reset(1, t1);
    f2.reset(2, t2);
    CHECK(f1.tiles() == f2.tiles());
    CHECK((f1.position_x() != f2.position_x() || f1.position_y() != f2.position_y()));
}

TEMPLATE_TEST_CASE("GridLife: step's x update is exactly internal_transition(x, a, o)", "[env][gridlife]", float,
                   double) {
    using T = TestType;
    for (bool partial : {false, true}) {
        GridLifeConfig cfg;
        cfg.partial_observability = partial;
        cfg.integrity_regen = 0.001;  // exercise every term
        GridLife<T> env(cfg);
        TimeStep<T> ts;
        envtest::RandomPolicy random{Rng(11)};
        envtest::StationKeeper keeper;  // visits stations and food: every channel non-zero
        Vec<T> a(2), x(3), o, x_pred(3);
        Index checked = 0, on_station = 0, on_food = 0, on_hazard = 0;
        for (std::uint64_t ep = 0; checked < 6000; ++ep) {
            env.reset(ep, ts);
            keeper.reset();
            while (!ts.done()) {
                if (ep % 2) random.act(env, a);
                else keeper.act(env, a);
                x = ts.internal;
                o = ts.observation;
                const Index c = env.centre_offset();
                on_station += (o[c + ch_refuel] + o[c + ch_cool] + o[c + ch_repair]) > T(0);
                on_food += o[c + ch_food] > T(0);
                on_hazard += o[c + ch_hazard] > T(0);
                env.internal_transition(x, a, o, x_pred);
                env.step(a, ts);
                REQUIRE(same(x_pred, ts.internal));
                ++checked;
            }
        }
        CHECK(on_station > 100);
        CHECK(on_food > 10);
        CHECK(on_hazard > 10);

        // The batched form agrees column by column.
        const Index B = 5;
        Mat<T> X(3, B), A(2, B), O(env.observation_dim(), B), XN(3, B);
        env.reset(5, ts);
        for (Index b = 0; b < B; ++b) {
            random.act(env, a);
            X.col(b) = ts.internal;
            A.col(b) = a;
            O.col(b) = ts.observation;
            env.step(a, ts);
        }
        env.internal_transition_batch(X, A, O, XN);
        for (Index b = 0; b < B; ++b) {
            env.internal_transition(X.col(b), A.col(b), O.col(b), x_pred);
            REQUIRE(same(x_pred, Vec<T>(XN.col(b))));
        }
    }
}

TEST_CASE("GridLife: internal_transition follows the documented equations", "[env][gridlife]") {
    GridLifeConfig cfg;
    cfg.integrity_regen = 0.002;
    GridLife<double> env(cfg);
    TimeStep<double> ts;
    env.reset(0, ts);
    Vec<double> o = ts.observation, xn(3);
    const Index c = env.centre_offset();
    o.segment(c, 7) << 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0;  // everything at once
    const Vec<double> x = vec3(0.5, 0.6, 0.7), a = vec2(0.5, -1.0);
    env.internal_transition(x, a, o, xn);
    const double a2 = 0.25 + 1.0;
    CHECK(xn[0] == Approx(0.5 - cfg.energy_decay - cfg.effort_cost * a2 + cfg.food_gain + cfg.refuel_gain));
    CHECK(xn[1] == Approx(0.6 + cfg.heat_rate * (0.8 - 0.6) + cfg.cool_rate * (cfg.cool_target - 0.6)));
    CHECK(xn[2] == Approx(0.7 - cfg.hazard_damage + cfg.repair_gain + cfg.integrity_regen));
    // Clamped to the physical range [0, 1].
    env.internal_transition(vec3(0.99, 0.5, 0.01), vec2(0.0, 0.0), o, xn);
    CHECK(xn[0] == 1.0);
    o.segment(c, 7) << 0.5, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0;
    env.internal_transition(vec3(0.001, 0.5, 0.01), vec2(1.0, 1.0), o, xn);
    CHECK(xn[0] == 0.0);
    CHECK(xn[2] == 0.0);
    // Shapes are checked.
    CHECK_THROWS_AS(env.internal_transition(vec2(0.1, 0.2), a, o, xn), ShapeError);
    CHECK_THROWS_AS(env.internal_transition(x, a, Vec<double>(o.head(10)), xn), ShapeError);
}

TEST_CASE("GridLife: observation layout", "[env][gridlife]") {
    for (bool partial : {false, true}) {
        GridLifeConfig cfg;
        cfg.partial_observability = partial;
        cfg.view_radius = 3;
        GridLife<double> env(cfg);
        TimeStep<double> ts;
        const Index side = 7, C = 7;
        REQUIRE(env.observation_dim() == side * side * C + 2 + (partial ? 0 : 3));
        REQUIRE(env.internal_offset() == (partial ? -1 : side * side * C + 2));
        REQUIRE(env.centre_offset() == (3 * side + 3) * C);
        envtest::RandomPolicy random{Rng(5)};
        Vec<double> a(2);
        for (std::uint64_t seed = 0; seed < 3; ++seed) {
            env.reset(seed, ts);
            for (int t = 0; t < 40 && !ts.done(); ++t) {
                const Index ix = env.tile_x(), iy = env.tile_y();
                for (Index dy = -3; dy <= 3; ++dy)
                    for (Index dx = -3; dx <= 3; ++dx)
                        for (Index ch = 0; ch < C; ++ch) {
                            const double o = ts.observation[((dy + 3) * side + (dx + 3)) * C + ch];
                            const Index tx = ix + dx, ty = iy + dy;
                            const bool outside = tx < 0 || ty < 0 || tx >= env.width() || ty >= env.height();
                            const double want = outside ? (ch == ch_wall ? 1.0 : 0.0) : env.tile(tx, ty, ch);
                            REQUIRE(o == want);
                        }
                const Index off = side * side * C;
                REQUIRE(ts.observation[off] == env.position_x() - double(ix) - 0.5);
                REQUIRE(ts.observation[off + 1] == env.position_y() - double(iy) - 0.5);
                REQUIRE(std::abs(ts.observation[off]) <= 0.5);
                if (!partial) REQUIRE(ts.observation.tail(3) == ts.internal);
                REQUIRE(ts.internal == env.internal());
                random.act(env, a);
                env.step(a, ts);
            }
        }
    }
}

TEST_CASE("GridLife: partial observability removes x from o, keeps the patch", "[env][gridlife]") {
    GridLife<double> full, part(GridLifeConfig{.partial_observability = true});
    TimeStep<double> tf, tp;
    full.reset(42, tf);
    part.reset(42, tp);
    REQUIRE(part.observation_dim() == full.observation_dim() - 3);
    REQUIRE(tp.observation.size() == part.observation_dim());
    REQUIRE(tp.internal.size() == 3);
    envtest::RandomPolicy r1{Rng(9)};
    Vec<double> a(2);
    while (!tf.done()) {
        REQUIRE(tp.observation == tf.observation.head(part.observation_dim()));
        REQUIRE(tp.internal == tf.internal);
        r1.act(full, a);
        full.step(a, tf);
        part.step(a, tp);
        REQUIRE(tp.reward == tf.reward);
        REQUIRE(tp.terminated == tf.terminated);
    }
}

TEST_CASE("GridLife: observe_last_action appends a_{t-1}, changes nothing else", "[env][gridlife]") {
    for (bool partial : {false, true}) {
        GridLifeConfig cfg;
        cfg.partial_observability = partial;
        GridLife<float> plain(cfg);
        cfg.observe_last_action = true;
        GridLife<float> with(cfg);
        REQUIRE(with.observation_dim() == plain.observation_dim() + 2);
        CHECK(with.internal_offset() == plain.internal_offset());
        CHECK(with.last_action_offset() == with.observation_dim() - 2);
        CHECK(plain.last_action_offset() == -1);
        CHECK(with.patch_view().last_action == with.observation_dim() - 2);
        CHECK(plain.patch_view().last_action == -1);
        CHECK(with.patch_view().observation_dim == with.observation_dim());
        TimeStep<float> tp, tw;
        envtest::RandomPolicy random{Rng(5)};
        Vec<float> a(2), prev(2);
        Index steps = 0;
        for (std::uint64_t ep = 0; ep < 3; ++ep) {
            plain.reset(ep, tp);
            with.reset(ep, tw);
            CHECK(tw.observation.tail(2).isZero());  // no action before the first step
            while (!tp.done()) {
                REQUIRE(tw.observation.head(plain.observation_dim()) == tp.observation);
                random.act(plain, a);
                plain.step(a, tp);
                with.step(a, tw);
                REQUIRE(tw.observation.tail(2) == a);
                REQUIRE(tw.internal == tp.internal);
                REQUIRE(tw.reward == tp.reward);
                REQUIRE(tw.terminated == tp.terminated);
                REQUIRE(tw.truncated == tp.truncated);
                ++steps;
            }
        }
        CHECK(steps > 50);
        // Rewriting the observation without a step (set_agent) keeps a_{t-1}.
        with.reset(9, tw);
        a << 0.25f, -0.5f;
        with.step(a, tw);
        Vec<float> x = tw.internal;
        with.set_agent(float(with.tile_x()) + 0.5f, float(with.tile_y()) + 0.5f, x, tw);
        CHECK(tw.observation.tail(2) == a);
    }
}

TEST_CASE("GridLife: observation noise and dropout degrade what the agent sees, not the world", "[env][gridlife]") {
    GridLifeConfig clean_cfg;
    clean_cfg.observe_last_action = true;
    GridLife<double> clean(clean_cfg);
    auto noisy_cfg = clean_cfg;
    noisy_cfg.observation_noise_std = 0.1;
    GridLife<double> noisy(noisy_cfg);
    auto drop_cfg = clean_cfg;
    drop_cfg.observation_dropout = 0.3;
    GridLife<double> dropped(drop_cfg);
    const Index n = clean.observation_dim() - 2;  // the sensed part; a_{t-1} stays exact
    TimeStep<double> tc, tn, td;
    envtest::RandomPolicy random{Rng(8)};
    Vec<double> a(2);
    double sum = 0, sum2 = 0, count = 0, nonzero = 0, zeroed = 0;
    for (std::uint64_t ep = 0; ep < 4; ++ep) {
        clean.reset(ep, tc);
        noisy.reset(ep, tn);
        dropped.reset(ep, td);
        while (!tc.done()) {
            for (Index i = 0; i < n; ++i) {
                const double d = tn.observation[i] - tc.observation[i];
                sum += d, sum2 += d * d, count += 1;
                if (tc.observation[i] != 0.0) {
                    nonzero += 1;
                    if (td.observation[i] == 0.0) zeroed += 1;
                    else REQUIRE(td.observation[i] == tc.observation[i]);  // kept entries exact
                }
            }
            REQUIRE(tn.observation.tail(2) == tc.observation.tail(2));
            REQUIRE(td.observation.tail(2) == tc.observation.tail(2));
            random.act(clean, a);
            clean.step(a, tc);
            noisy.step(a, tn);
            dropped.step(a, td);
            // The world runs on the clean observation: same x, rewards and flags.
            REQUIRE(tn.internal == tc.internal);
            REQUIRE(td.internal == tc.internal);
            REQUIRE(tn.reward == tc.reward);
            REQUIRE(td.reward == tc.reward);
            REQUIRE(tn.terminated == tc.terminated);
            REQUIRE(td.terminated == tc.terminated);
            REQUIRE(tn.truncated == tc.truncated);
        }
    }
    REQUIRE(count > 10000);
    const double mean = sum / count, sd = std::sqrt(sum2 / count - mean * mean);
    CHECK(std::abs(mean) < 0.005);          // N(0, 0.1^2): standard error ~0.001
    CHECK(sd == Approx(0.1).epsilon(0.03));
    CHECK(zeroed / nonzero == Approx(0.3).margin(0.03));

    // The same reset seed gives the same degraded observations, step after step.
    GridLife<double> twin(noisy_cfg);
    TimeStep<double> t1, t2;
    noisy.reset(5, t1);
    twin.reset(5, t2);
    for (int i = 0; i < 50 && !t1.done(); ++i) {
        REQUIRE(t1.observation == t2.observation);
        random.act(noisy, a);
        noisy.step(a, t1);
        twin.step(a, t2);
    }

    // No allocation on the hot path with the sensor model on.
    auto both = noisy_cfg;
    both.observation_dropout = 0.2;
    GridLife<float> env(both);
    TimeStep<float> ts;
    env.reset(0, ts);
    Vec<float> af(2);
    envtest::RandomPolicy rf{Rng(4)};
    const long allocs = envtest::count_allocations([&] {
        for (std::uint64_t ep = 1; ep < 5; ++ep) {
            while (!ts.done()) {
                rf.act(env, af);
                env.step(af, ts);
            }
            env.reset(ep, ts);
        }
    });
    CHECK(allocs == 0);

    // Bad values name the field.
    auto bad = clean_cfg;
    bad.observation_dropout = 1.5;
    CHECK_THROWS_WITH(GridLife<double>(bad), Catch::Contains("observation_dropout"));
    bad = clean_cfg;
    bad.observation_noise_std = -0.1;
    CHECK_THROWS_WITH(GridLife<double>(bad), Catch::Contains("observation_noise_std"));
}

TEST_CASE("GridLife: terminates exactly when a bound is crossed", "[env][gridlife]") {
    GridLife<double> env;
    TimeStep<double> ts;
    Vec<double> zero = vec2(0.0, 0.0), pred(3);
    auto setup = [&](const Vec<double>& x) {
        env.reset(3, ts);
        neutralise(env, env.tile_x(), env.tile_y(), ts);
        env.set_agent(double(env.tile_x()) + 0.5, double(env.tile_y()) + 0.5, x, ts);
        env.internal_transition(x, zero, ts.observation, pred);
    };

    SECTION("energy: x' == lower bound is viable, one ulp below is not") {
        setup(vec3(0.3, 0.5, 0.9));
        env.set_bounds(var_energy, pred[0], 1.0);
        env.step(zero, ts);
        CHECK_FALSE(ts.terminated);
        CHECK(env.last_violation().source == GridLifeViolation<double>::Source::none);
        setup(vec3(0.3, 0.5, 0.9));
        env.set_lower_bound(var_energy, std::nextafter(pred[0], 1.0));
        env.step(zero, ts);
        CHECK(ts.terminated);
        CHECK_FALSE(ts.truncated);
        const auto& v = env.last_violation();
        CHECK(v.source == GridLifeViolation<double>::Source::bounds);
        CHECK(v.index == var_energy);
        CHECK(v.below);
        CHECK(v.value == pred[0]);
        CHECK(env.violated(var_energy));
        CHECK_FALSE(env.violated(var_temp));
        CHECK_FALSE(env.violated(var_integrity));
        CHECK_THROWS_WITH(env.step(zero, ts), Catch::Contains("episode is over") && Catch::Contains("terminated"));
    }
    SECTION("temp: upper bound of the seed's [0.3, 0.7]") {
        env.reset(3, ts);
        neutralise(env, env.tile_x(), env.tile_y(), ts);
        env.set_tile(env.tile_x(), env.tile_y(), ch_heat, 1.0, ts);
        env.set_agent(double(env.tile_x()) + 0.5, double(env.tile_y()) + 0.5, vec3(0.9, 0.6, 0.9), ts);
        REQUIRE(env.upper_bound(var_temp) == 0.7);
        int steps = 0;
        Vec<double> x_before(3);
        while (!ts.done()) {
            x_before = ts.internal;
            env.step(zero, ts);
            ++steps;
        }
        CHECK(ts.terminated);
        CHECK(x_before[1] <= 0.7);  // the step before was viable
        CHECK(ts.internal[1] > 0.7);
        CHECK(env.last_violation().index == var_temp);
        CHECK_FALSE(env.last_violation().below);
        CHECK(env.last_violation().bound == 0.7);
        // 1 - temp' = 0.95 (1 - temp): from 0.6, temp > 0.7 first when 0.4 * 0.95^n < 0.3, n = 6.
        CHECK(steps == 6);
    }
    SECTION("integrity: standing on a hazard") {
        env.reset(3, ts);
        neutralise(env, env.tile_x(), env.tile_y(), ts);
        env.set_tile(env.tile_x(), env.tile_y(), ch_hazard, 1.0, ts);
        env.set_agent(double(env.tile_x()) + 0.5, double(env.tile_y()) + 0.5, vec3(0.9, 0.5, 0.9), ts);
        int steps = 0;
        while (!ts.done()) {
            env.step(zero, ts);
            ++steps;
        }
        CHECK(env.last_violation().index == var_integrity);
        CHECK(steps == 4);  // 0.9 - 4 * 0.08 = 0.58 < 0.6 (0.66 after 3)
    }
    SECTION("several variables at once: all flagged, the first reported") {
        setup(vec3(0.3, 0.5, 0.9));
        env.set_bounds(var_energy, 0.5, 1.0);
        env.set_bounds(var_integrity, 0.95, 1.0);
        env.step(zero, ts);
        CHECK(ts.terminated);
        CHECK(env.violated(var_energy));
        CHECK(env.violated(var_integrity));
        CHECK_FALSE(env.violated(var_temp));
        CHECK(env.last_violation().index == var_energy);
    }
    SECTION("margins") {
        Vec<double> m(6);
        env.bound_margins(vec3(0.5, 0.5, 0.7), m);
        CHECK(m[0] == Approx(0.3));
        CHECK(m[1] == Approx(0.5));
        CHECK(m[2] == Approx(0.2));
        CHECK(m[3] == Approx(0.2));
        CHECK(m[4] == Approx(0.1));
        CHECK(m[5] == Approx(0.3));
    }
}

TEST_CASE("GridLife: curriculum setters change termination at run time", "[env][gridlife]") {
    GridLife<double> env;
    TimeStep<double> ts;
    Vec<double> zero = vec2(0.0, 0.0);
    env.reset(8, ts);
    neutralise(env, env.tile_x(), env.tile_y(), ts);
    env.set_agent(double(env.tile_x()) + 0.5, double(env.tile_y()) + 0.5, vec3(0.6, 0.5, 0.9), ts);
    env.step(zero, ts);
    REQUIRE_FALSE(ts.terminated);
    env.set_lower_bound(var_energy, 0.7);  // tighten mid-episode
    env.step(zero, ts);
    CHECK(ts.terminated);
    CHECK(env.last_violation().index == var_energy);
    // Bad bounds are rejected with the values named.
    CHECK_THROWS_AS(env.set_bounds(1, 0.8, 0.2), ConfigError);
    CHECK_THROWS_WITH(env.set_bounds(1, 0.8, 0.2), Catch::Contains("[0.8") && Catch::Contains("lo <= hi"));
    CHECK_THROWS_WITH(env.set_bounds(3, 0.0, 1.0), Catch::Contains("variable index 3"));
    CHECK_THROWS_AS(env.set_upper_bound(0, std::numeric_limits<double>::quiet_NaN()), ConfigError);
    // Loosened bounds persist across resets.
    env.set_bounds(var_energy, 0.0, 1.0);
    env.reset(8, ts);
    CHECK(env.lower_bound(var_energy) == 0.0);
}

TEST_CASE("GridLife: termination hooks (predicate object, ViabilityModel)", "[env][gridlife]") {
    Vec<double> zero = vec2(0.0, 0.0);
    SECTION("a settable predicate") {
        GridLife<double, TempCeiling> env;
        TimeStep<double> ts;
        env.reset(4, ts);
        neutralise(env, env.tile_x(), env.tile_y(), ts);
        env.set_agent(double(env.tile_x()) + 0.5, double(env.tile_y()) + 0.5, vec3(0.9, 0.5, 0.9), ts);
        env.step(zero, ts);
        REQUIRE_FALSE(ts.terminated);
        env.termination_hook().ceiling = 0.45;  // installed at run time
        env.step(zero, ts);
        CHECK(ts.terminated);
        CHECK(env.last_violation().source == GridLifeViolation<double>::Source::hook);
        CHECK(env.last_violation().index == 0);
    }
    SECTION("a ViabilityModel: terminate when a margin is negative") {
        GridLife<double, ViabilityTermination<EnergyFloor>> env(GridLifeConfig{},
                                                                ViabilityTermination<EnergyFloor>(EnergyFloor{0.5}));
        TimeStep<double> ts;
        env.reset(4, ts);
        neutralise(env, env.tile_x(), env.tile_y(), ts);
        env.set_agent(double(env.tile_x()) + 0.5, double(env.tile_y()) + 0.5, vec3(0.51, 0.5, 0.9), ts);
        int steps = 0;
        while (!ts.done()) {
            env.step(zero, ts);
            ++steps;
        }
        CHECK(steps == 3);  // 0.51 - 3 * 0.004 < 0.5 (bounds alone would allow 0.2)
        CHECK(env.last_violation().source == GridLifeViolation<double>::Source::hook);
        CHECK(env.termination_hook().margins()(0, 0) < 0.0);
        struct Wrong : EnergyFloor {
            Index dim() const { return 2; }
        };
        CHECK_THROWS_AS(ViabilityTermination<Wrong>(Wrong{}), ShapeError);
    }
}

TEST_CASE("GridLife: truncation at the horizon", "[env][gridlife]") {
    GridLife<float> env(GridLifeConfig{.horizon = 20});
    TimeStep<float> ts;
    Vec<float> zero = vec2(0.0f, 0.0f);
    env.reset(6, ts);
    neutralise(env, env.tile_x(), env.tile_y(), ts);
    env.set_agent(float(env.tile_x()) + 0.5f, float(env.tile_y()) + 0.5f, vec3(0.9f, 0.5f, 0.9f), ts);
    REQUIRE(env.max_episode_steps() == 20);
    for (int t = 1; t <= 20; ++t) {
        env.step(zero, ts);
        CHECK_FALSE(ts.terminated);
        CHECK(ts.truncated == (t == 20));
    }
    CHECK(env.last_violation().source == GridLifeViolation<float>::Source::none);
    CHECK_THROWS_WITH(env.step(zero, ts), Catch::Contains("truncated at step 20") && Catch::Contains("reset"));
    // Default horizon is the seed's 512.
    CHECK(GridLife<float>().max_episode_steps() == 512);
}

TEST_CASE("GridLife: food is eaten, pays in items mode and respawns after the delay", "[env][gridlife]") {
    GridLifeConfig cfg;
    cfg.reward_mode = GridLifeReward::items;
    cfg.food_respawn_steps = 7;
    GridLife<double> env(cfg);
    TimeStep<double> ts;
    env.reset(10, ts);
    // Walk to a generated food tile by teleporting next to... onto it.
    Index fx = -1, fy = -1;
    for (Index iy = 0; iy < env.height() && fx < 0; ++iy)
        for (Index ix = 0; ix < env.width(); ++ix)
            if (env.tile(ix, iy, ch_food) == 1.0 && env.tile(ix, iy, ch_hazard) == 0.0 &&
                env.tile(ix, iy, ch_refuel) + env.tile(ix, iy, ch_cool) + env.tile(ix, iy, ch_repair) == 0.0) {
                fx = ix;
                fy = iy;
                break;
            }
    REQUIRE(fx >= 0);
    env.set_tile(fx, fy, ch_heat, 0.5, ts);
    env.set_agent(double(fx) + 0.5, double(fy) + 0.5, vec3(0.5, 0.5, 0.9), ts);
    REQUIRE(ts.observation[env.centre_offset() + ch_food] == 1.0);
    const Vec<double> zero = vec2(0.0, 0.0);
    env.step(zero, ts);  // eats
    CHECK(ts.reward == cfg.item_reward);
    CHECK(ts.internal[0] == Approx(0.5 - cfg.energy_decay + cfg.food_gain));
    CHECK(env.tile(fx, fy, ch_food) == 0.0);
    CHECK(ts.observation[env.centre_offset() + ch_food] == 0.0);
    CHECK(env.food_eaten() == 1);
    for (int t = 1; t < 7; ++t) {  // gone for 6 more steps, nothing to eat
        env.step(zero, ts);
        CHECK(ts.reward == 0.0);
        CHECK(env.tile(fx, fy, ch_food) == 0.0);
    }
    env.step(zero, ts);  // the 7th step after eating: back
    CHECK(env.tile(fx, fy, ch_food) == 1.0);
    CHECK(ts.observation[env.centre_offset() + ch_food] == 1.0);
    env.step(zero, ts);  // eaten again
    CHECK(ts.reward == cfg.item_reward);
    CHECK(env.food_eaten() == 2);

    SECTION("food_respawns = false: gone for the episode") {
        cfg.food_respawns = false;
        GridLife<double> once(cfg);
        once.reset(10, ts);
        once.set_tile(fx, fy, ch_heat, 0.5, ts);
        once.set_agent(double(fx) + 0.5, double(fy) + 0.5, vec3(0.9, 0.5, 0.9), ts);
        for (int t = 0; t < 60; ++t) once.step(zero, ts);
        CHECK(once.tile(fx, fy, ch_food) == 0.0);
        CHECK(once.food_eaten() == 1);
    }
}

TEST_CASE("GridLife: stations restore their variable at a task-reward cost", "[env][gridlife]") {
    GridLifeConfig cfg;
    cfg.station_cost = {0.01, 0.02, 0.03};
    GridLife<double> env(cfg);
    TimeStep<double> ts;
    const Vec<double> zero = vec2(0.0, 0.0);
    for (Index s = 0; s < 3; ++s) {
        env.reset(12, ts);
        const Index ix = env.tile_x(), iy = env.tile_y();
        neutralise(env, ix, iy, ts);
        env.set_tile(ix, iy, ch_refuel + s, 1.0, ts);
        env.set_agent(double(ix) + 0.5, double(iy) + 0.5, vec3(0.5, 0.65, 0.7), ts);
        env.step(zero, ts);
        CHECK(ts.reward == -cfg.station_cost[std::size_t(s)]);  // same tile: no exploration bonus
        if (s == 0) CHECK(ts.internal[0] == Approx(0.5 - cfg.energy_decay + cfg.refuel_gain));
        if (s == 1) CHECK(ts.internal[1] == Approx(0.65 + cfg.heat_rate * (0.5 - 0.65) +
                                                   cfg.cool_rate * (cfg.cool_target - 0.65)));
        if (s == 2) CHECK(ts.internal[2] == Approx(0.7 + cfg.repair_gain));
        CHECK(ts.internal[0] > (s == 0 ? 0.5 : 0.49));
    }
}

TEST_CASE("GridLife: exploration bonus for each first visit", "[env][gridlife]") {
    GridLife<double> env;  // default mode: exploration
    TimeStep<double> ts;
    env.reset(21, ts);
    envtest::RandomPolicy random{Rng(1)};
    Vec<double> a(2);
    Index prev_visited = env.num_visited();
    REQUIRE(prev_visited == 1);
    while (!ts.done()) {
        random.act(env, a);
        const double cost = [&] {
            double c = 0;
            for (Index s = 0; s < 3; ++s)
                if (env.tile(env.tile_x(), env.tile_y(), ch_refuel + s) != 0) c += env.config().station_cost[std::size_t(s)];
            return c;
        }();
        env.step(a, ts);
        const bool new_tile = env.num_visited() > prev_visited;
        CHECK(ts.reward == Approx((new_tile ? 1.0 : 0.0) - cost));
        prev_visited = env.num_visited();
    }
    CHECK(env.num_visited() > 3);
}

TEST_CASE("GridLife: movement stays in the world and out of walls", "[env][gridlife]") {
    GridLifeConfig cfg;
    cfg.num_walls = 60;
    cfg.max_speed = 1.0;
    cfg.energy_decay = 0;
    cfg.effort_cost = 0;
    cfg.lower_bounds = {0.0, 0.0, 0.0};
    cfg.upper_bounds = {1.0, 1.0, 1.0};
    GridLife<float> env(cfg);
    TimeStep<float> ts;
    envtest::RandomPolicy random{Rng(2)};
    Vec<float> a(2);
    Index walls = 0, blocked = 0;
    for (std::uint64_t ep = 0; ep < 4; ++ep) {
        env.reset(ep, ts);
        for (Index iy = 0; iy < env.height(); ++iy)
            for (Index ix = 0; ix < env.width(); ++ix) walls += env.tile(ix, iy, ch_wall) != 0.0f;
        while (!ts.done()) {
            random.act(env, a);
            const float px = env.position_x(), py = env.position_y();
            env.step(a, ts);
            REQUIRE(env.position_x() >= 0.0f);
            REQUIRE(env.position_x() < 16.0f);
            REQUIRE(env.position_y() >= 0.0f);
            REQUIRE(env.position_y() < 16.0f);
            REQUIRE(env.tile(env.tile_x(), env.tile_y(), ch_wall) == 0.0f);
            blocked += (env.position_x() == px && a[0] != 0.0f) || (env.position_y() == py && a[1] != 0.0f);
        }
    }
    CHECK(walls == 4 * 60);
    CHECK(blocked > 0);  // walls and edges did block some moves
    // Edges: pushing into a corner clamps to the largest position below the edge.
    GridLife<double> open;
    TimeStep<double> t2;
    open.reset(0, t2);
    open.set_agent(15.9, 0.1, open.internal(), t2);
    open.step(vec2(1.0, -1.0), t2);
    CHECK(open.position_x() == std::nextafter(16.0, 0.0));
    CHECK(open.position_y() == 0.0);
    CHECK(open.tile_x() == 15);
}

TEST_CASE("GridLife: bad actions and configs throw with the value named", "[env][gridlife]") {
    GridLife<double> env;
    TimeStep<double> ts;
    CHECK_THROWS_WITH(env.step(vec2(0.0, 0.0), ts), Catch::Contains("before reset"));
    env.reset(0, ts);
    CHECK_THROWS_AS(env.step(vec2(1.5, 0.0), ts), Error);
    CHECK_THROWS_WITH(env.step(vec2(1.5, 0.0), ts),
                      Catch::Contains("action[0] = 1.5") && Catch::Contains("[-1, 1]"));
    CHECK_THROWS_WITH(env.step(vec2(0.0, -1.0000001), ts), Catch::Contains("action[1] = -1.0000001"));
    CHECK_THROWS_WITH(env.step(vec2(0.0, std::numeric_limits<double>::quiet_NaN()), ts),
                      Catch::Contains("action[1] = nan") && Catch::Contains("not finite"));
    CHECK_THROWS_WITH(env.step(vec2(std::numeric_limits<double>::infinity(), 0.0), ts),
                      Catch::Contains("action[0] = inf"));
    CHECK_THROWS_AS(env.step(Vec<double>::Zero(3), ts), ShapeError);
    env.step(vec2(1.0, -1.0), ts);  // the box itself is fine

    auto bad = [](GridLifeConfig c) { GridLife<double> e(c); };
    CHECK_THROWS_AS(bad(GridLifeConfig{.width = 1}), ConfigError);
    CHECK_THROWS_WITH(bad(GridLifeConfig{.width = 1}),
                      Catch::Contains("GridLifeConfig.width = 1") && Catch::Contains("[2, 4096]"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.max_speed = 1.5}),
                      Catch::Contains("GridLifeConfig.max_speed = 1.5") && Catch::Contains("(0, 1]"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.max_speed = 0.0}), Catch::Contains("max_speed = 0"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.view_radius = -1}), Catch::Contains("view_radius = -1"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.num_hazards = 300}), Catch::Contains("num_hazards = 300"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.num_food = 200, .num_hazards = 100}), Catch::Contains("at most width * height"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.initial_internal = {0.5, 1.2, 0.5}}),
                      Catch::Contains("initial_internal[1] = 1.2"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.heat_rate = 0.6, .cool_rate = 0.6}), Catch::Contains("heat_rate + cool_rate"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.energy_decay = std::numeric_limits<double>::quiet_NaN()}),
                      Catch::Contains("energy_decay = nan"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.lower_bounds = {0.2, 0.8, 0.6}}),
                      Catch::Contains("lower_bounds[1] = 0.8") && Catch::Contains("upper_bounds[1] = 0.7"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.reward_mode = static_cast<GridLifeReward>(7)}),
                      Catch::Contains("reward_mode = 7"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.station_cost = {0.1, -0.1, 0.1}}), Catch::Contains("station_cost[1] = -0.1"));
    CHECK_THROWS_WITH(bad(GridLifeConfig{.food_respawn_steps = 0}), Catch::Contains("food_respawn_steps = 0"));
    CHECK_NOTHROW(bad(GridLifeConfig{}));
}

TEST_CASE("GridLife: step (and reset after the first) never allocates", "[env][gridlife][alloc]") {
    // The counter sees both kinds of allocation (else a zero below would prove nothing).
    CHECK(envtest::count_allocations([] {
              std::string* s = new std::string("counted");
              asm volatile("" : : "r"(s) : "memory");
              delete s;
          }) >= 1);
    CHECK(envtest::count_allocations([] {
              Vec<double> v(64);
              asm volatile("" : : "r"(v.data()) : "memory");
          }) >= 1);
    for (bool partial : {false, true}) {
        GridLifeConfig cfg;
        cfg.partial_observability = partial;
        cfg.num_walls = 10;
        GridLife<float> env(cfg);
        TimeStep<float> ts;
        env.reset(0, ts);
        envtest::RandomPolicy random{Rng(4)};
        Vec<float> a(2), x(3), x_pred(3), o(env.observation_dim());
        Index steps = 0;
        const long n = envtest::count_allocations([&] {
            for (std::uint64_t ep = 1; ep < 20; ++ep) {
                while (!ts.done()) {
                    random.act(env, a);
                    o = ts.observation;
                    x = ts.internal;
                    env.step(a, ts);
                    env.internal_transition(x, a, o, x_pred);  // what a shield calls
                    ++steps;
                }
                env.reset(ep, ts);
            }
        });
        CHECK(n == 0);
        CHECK(steps > 500);
    }
    // The same with a ViabilityModel hook (its margins buffer is sized once).
    GridLife<double, ViabilityTermination<EnergyFloor>> env(GridLifeConfig{},
                                                            ViabilityTermination<EnergyFloor>(EnergyFloor{0.1}));
    TimeStep<double> ts;
    env.reset(0, ts);
    envtest::RandomPolicy random{Rng(4)};
    Vec<double> a(2);
    const long n = envtest::count_allocations([&] {
        for (std::uint64_t ep = 1; ep < 10; ++ep) {
            while (!ts.done()) {
                random.act(env, a);
                env.step(a, ts);
            }
            env.reset(ep, ts);
        }
    });
    CHECK(n == 0);
}

TEST_CASE("GridLife: survival sanity (random dies early, go-to-station survives)", "[env][gridlife][survival]") {
    const GridLifeConfig cfg;  // the defaults
    const int n = 100;
    const auto random = envtest::measure_survival<double>(cfg, envtest::RandomPolicy{Rng(7)}, 0, n);
    const auto keeper = envtest::measure_survival<double>(cfg, envtest::StationKeeper{}, 0, n);
    std::printf("GridLife-v0 defaults, %d episodes: random policy mean survival %.1f steps (%.0f%% reach 512; "
                "deaths energy/temp/integrity %d/%d/%d); StationKeeper mean %.1f steps (%.0f%% reach 512; "
                "deaths %d/%d/%d)\n",
                n, random.mean_length, 100 * random.survived, random.deaths_by_var[0], random.deaths_by_var[1],
                random.deaths_by_var[2], keeper.mean_length, 100 * keeper.survived, keeper.deaths_by_var[0],
                keeper.deaths_by_var[1], keeper.deaths_by_var[2]);
    CHECK(random.mean_length < 200);  // well before the horizon of 512
    CHECK(random.survived < 0.05);
    CHECK(keeper.survived >= 0.8);    // survival is possible: most episodes reach the horizon
    CHECK(keeper.mean_length > 450);
}

TEST_CASE("GridLife: a forager that sees only the observation survives most episodes",
          "[env][gridlife][survival]") {
    // The reference for learned policies: PatchForager reads o_t (the 5 x 5 patch, the sub-tile
    // offset) and x, keeps no map (only an exploration heading and a refuelling latch), and
    // lives > 90 % of the horizon on average.
    const GridLifeConfig cfg;
    const int n = 100;
    const auto forager = envtest::measure_survival<double>(cfg, envtest::PatchForager{1}, 0, n);
    const auto other = envtest::measure_survival<double>(cfg, envtest::PatchForager{1}, 1000, n);
    std::printf("GridLife-v0 defaults: PatchForager mean survival %.1f / %.1f steps (seeds 0-99 / 1000-1099; "
                "%.0f%% / %.0f%% reach 512; deaths energy/temp/integrity %d/%d/%d)\n",
                forager.mean_length, other.mean_length, 100 * forager.survived, 100 * other.survived,
                forager.deaths_by_var[0], forager.deaths_by_var[1], forager.deaths_by_var[2]);
    CHECK(forager.mean_length > 0.85 * 512);
    CHECK(other.mean_length > 0.85 * 512);
    CHECK(forager.survived >= 0.75);
    // It is the foraging that keeps it alive: without food the same policy starves.
    GridLifeConfig no_food = cfg;
    no_food.num_food = 0;
    const auto starved = envtest::measure_survival<double>(no_food, envtest::PatchForager{1}, 0, 20);
    CHECK(starved.mean_length < 0.5 * forager.mean_length);
}

TEST_CASE("GridLifeForager: the default remembers a heading; markov mode is a function of (o, x) alone",
          "[env][gridlife][forager]") {
    GridLifeConfig cfg;
    cfg.observe_last_action = true;
    GridLife<double> env(cfg);
    const auto markov = GridLifeForagerOptions::markov(env);
    CHECK(markov.last_action_offset == env.last_action_offset());
    CHECK_FALSE(markov.refuel_hysteresis);
    // Markov: a forager built afresh at every step (no history, another seed) chooses exactly what
    // the one that lived through the episode chooses. The default forager does not (its heading
    // and refuelling latch are memory): over the same episodes some fresh choice differs.
    Vec<double> a(2), fresh(2), fresh_default(2);
    TimeStep<double> ts;
    int steps = 0, default_differs = 0;
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        GridLifeForager lived(env, 1, markov), lived_default(env, 1);
        env.reset(seed, ts);
        while (!ts.done()) {
            lived.act(env, a);
            lived_default.act(env, fresh_default);
            GridLifeForager(env, 100 + seed, markov).act(env, fresh);
            REQUIRE(fresh == a);
            Vec<double> again(2);
            GridLifeForager(env, 100 + seed).act(env, again);
            default_differs += again != fresh_default;
            env.step(a, ts);
            ++steps;
        }
    }
    CHECK(steps > 1000);
    CHECK(default_differs > 0);
    // It forages too: the same dynamics, most of the horizon (docs/gridlife.md, "Survival").
    const auto m = envtest::measure_survival<double>(cfg, envtest::PatchForager{1, true}, 0, 100);
    std::printf("GridLife-v0 defaults + observe_last_action: markov PatchForager mean survival %.1f steps "
                "(%.0f%% reach 512; deaths energy/temp/integrity %d/%d/%d)\n",
                m.mean_length, 100 * m.survived, m.deaths_by_var[0], m.deaths_by_var[1], m.deaths_by_var[2]);
    CHECK(m.mean_length > 0.85 * 512);
    // It needs a_{t-1} in the observation, and outside the patch.
    GridLife<double> plain;
    CHECK_THROWS_WITH(GridLifeForagerOptions::markov(plain), Catch::Contains("observe_last_action"));
    CHECK_THROWS_WITH(GridLifeForager(2, 0.5, 0, GridLifeForagerOptions{.last_action_offset = 10}),
                      Catch::Contains("last_action_offset 10"));
}

TEST_CASE("GridLifeForager: reads only o and x; bad input is named", "[env][gridlife][forager]") {
    GridLife<float> env;
    TimeStep<float> ts;
    env.reset(3, ts);
    GridLifeForager a(env, 9), b(2, 0.5, 9);
    Vec<float> act_a(2), act_b(2);
    for (int t = 0; t < 300 && !ts.done(); ++t) {
        a.act(env, act_a);
        // Only (o, x) enter: the same decisions from copies of them, and from the sizes alone.
        const Vec<float> o = ts.observation, x = ts.internal;
        b.act<float>(o, x, act_b);
        REQUIRE(act_a == act_b);
        REQUIRE(act_a.cwiseAbs().maxCoeff() <= 1.f);
        env.step(act_a, ts);
    }
    CHECK_THROWS_AS(GridLifeForager(-1, 0.5), ConfigError);
    CHECK_THROWS_AS(GridLifeForager(2, 0.0), ConfigError);
    CHECK_THROWS_AS(GridLifeForager(2, 1.5), ConfigError);
    Vec<float> short_o(10), x(3), a2(2), a3(3);
    CHECK_THROWS_WITH(b.act<float>(short_o, x, a2), Catch::Contains("GridLifeForager::act: o"));
    CHECK_THROWS_AS(b.act<float>(ts.observation, Vec<float>(2), a2), ShapeError);
    CHECK_THROWS_AS(b.act<float>(ts.observation, x, a3), ShapeError);
}
