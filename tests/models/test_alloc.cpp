// No heap allocation on the hot paths of the models after warm-up (one call at the batch size):
// GaussianEnsemble predict / sample / member_predict / predict_margins / update,
// ViabilityApproximator margins / update (with the near-boundary buffer) / train_step, and
// KnownDynamics::predict. Replaces operator new (env/alloc_counter.cpp), hence its own executable.
#include "env/alloc_counter.hpp"  // first: Eigen's malloc checks

#include <catch2/catch.hpp>

#include "models/models_fixtures.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/models/models.hpp"

using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::TransitionBatch;
using persist::Vec;
using envtest::count_allocations;

TEMPLATE_TEST_CASE("models: no allocation after warm-up", "[models][alloc]", float, double) {
    using T = TestType;
    Rng rng(1);
    const Index B = 64;
    TransitionBatch<T> b;
    b.resize(6, 3, 2, 0, B);
    b.observation = modtest::uniform<T>(6, B, rng);
    b.internal = modtest::uniform<T>(3, B, rng);
    b.action = modtest::uniform<T>(2, B, rng, -1, 1);
    b.next_internal = b.internal + modtest::uniform<T>(3, B, rng, -0.1, 0.1);
    b.terminated.setZero();
    const persist::viability::ConstraintSet<T> cs({"energy", "temp", "integrity"},
                                                  {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"});

    persist::models::GaussianEnsemble<T> ens({.internal_dim = 3, .action_dim = 2, .obs_features = {0, 5}});
    Mat<T> xn, mean, ls, margins;
    Rng r(2);
    // Each call once to warm up, then counted.
    auto zero = [](const char* what, auto f) {
        f();
        const long n = count_allocations(f);
        INFO(what << ": " << n << " allocations");
        CHECK(n == 0);
    };
    zero("ensemble update", [&] { ens.update(b); });
    zero("ensemble predict", [&] { ens.predict(b.internal, b.action, b.observation, xn); });
    zero("ensemble sample", [&] { ens.sample(b.internal, b.action, b.observation, xn, r); });
    zero("ensemble member_predict", [&] { ens.member_predict(1, b.internal, b.action, b.observation, mean, ls); });
    zero("ensemble predict_margins", [&] { ens.predict_margins(cs, b.internal, b.action, b.observation, margins); });

    persist::viability::ViabilityApproximator<T> apx({.dim = 3, .batch_size = 128});
    persist::replay::NearBoundaryBuffer<T> nb({.capacity = 32, .internal_dim = 3, .epsilon = T(0.05)});
    Vec<T> x(3);
    x << T(0.22), T(0.5), T(0.9);
    nb.offer(cs, x);
    Mat<T> m(1, B), labels = Mat<T>::Ones(1, B);
    apx.set_constraints(&cs);
    zero("approximator update (constraints, near-boundary)", [&] { apx.update(b, nb); });
    apx.set_constraints(nullptr);
    zero("approximator update (failures)", [&] { apx.update(b); });
    zero("approximator margins", [&] { apx.margins(b.internal, m); });
    zero("approximator train_step", [&] { apx.train_step(b.internal, labels); });

    persist::env::GridLife<T> env;
    persist::TimeStep<T> ts;
    env.reset(3, ts);
    persist::models::KnownDynamics<persist::env::GridLife<T>> known(env);
    Mat<T> o = ts.observation.replicate(1, B);
    // The realistic pattern: the entry points interleaved (each at its own batch size; the
    // ensemble's sample runs B / M columns per member, predict B), repeatedly.
    zero("interleaved", [&] {
        for (int k = 0; k < 2; ++k) {
            ens.update(b);
            ens.sample(b.internal, b.action, b.observation, xn, r);
            ens.member_predict(0, b.internal, b.action, b.observation, mean, ls);
            ens.predict(b.internal, b.action, b.observation, xn);
            apx.update(b, nb);
            apx.margins(b.internal, m);
            apx.margin(x);
            apx.train_step(b.internal, labels);
        }
    });
    zero("known predict", [&] { known.predict(b.internal, b.action, o, xn); });
    zero("known sample", [&] { known.sample(b.internal, b.action, o, xn, r); });
}
