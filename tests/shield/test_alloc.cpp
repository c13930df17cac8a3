// No allocation per decision after warm-up: project() (check + CEM or gradient projection) and
// probability() on every backend, learned ensemble and GridLife known dynamics.
#include "env/alloc_counter.hpp"  // first: Eigen allocation guard

#include <catch2/catch.hpp>

#include "persist/parallel/gridlife_rollout.hpp"
#include "persist/shield/shield.hpp"
#include "shield/shield_fixtures.hpp"

using namespace persist;
using namespace persist::parallel;
using persist::shield::Projection;
using persist::shield::RolloutShield;
using persist::shield::RolloutShieldOptions;

TEMPLATE_TEST_CASE("RolloutShield: project and probability never allocate after warm-up", "[shield][alloc]", float,
                   double) {
    using T = TestType;
    shieldtest::Ensemble<T> e(5, 64, 3, 2, 0, 3, T(0.006));
    const auto cs = shieldtest::toy_constraints<T>();
    const Vec<T> low = Vec<T>::Constant(2, T(-1)), high = Vec<T>::Constant(2, T(1)), o = Vec<T>::Zero(1);
    for (Backend b : {Backend::eigen, Backend::thrust_device, Backend::thrust_cpp})
        for (Projection p : {Projection::cem, Projection::gradient}) {
            RolloutShieldOptions opt;
            opt.backend = b;
            opt.projection = p;
            RolloutShield<T, EnsembleRolloutModel<T>, LinearConstraintsView<T>, HoldObservation<T>> sh(e.model(), cs, {},
                                                                                                       low, high, opt);
            Vec<T> x(3), a(2), out(2);
            x << T(0.05), T(0.07), T(0.1);  // close to the boundary: projections happen
            a << T(0.9), T(-0.9);
            sh.project(a, o, x, out);  // warm-up (OpenMP thread pool)
            const auto before = sh.counters().projections;
            const long n = envtest::count_allocations([&] {
                for (int i = 0; i < 3; ++i) {
                    sh.project(a, o, x, out);
                    (void)sh.probability(a, o, x);
                }
            });
            CAPTURE(backend_name(b), static_cast<int>(p));
            REQUIRE(sh.counters().projections > before);
            REQUIRE(n == 0);
        }
    // Known dynamics with patch kinematics.
    env::GridLife<T> env;
    TimeStep<T> ts;
    env.reset(1, ts);
    const auto gcs = shieldtest::seed_constraints<T>();
    RolloutShield<T, GridLifeRolloutModel<T>, LinearConstraintsView<T>, GridLifePatchKinematics<T>> g(
        GridLifeRolloutModel<T>::from(env), gcs, GridLifePatchKinematics<T>::from(env), env.action_low(),
        env.action_high());
    Vec<T> x(3), a(2), out(2);
    x << T(0.21), T(0.5), T(0.9);
    a << T(1), T(1);
    g.project(a, ts.observation, x, out);
    const long n = envtest::count_allocations([&] { g.project(a, ts.observation, x, out); });
    REQUIRE(g.counters().projections == 2);
    REQUIRE(n == 0);
}
