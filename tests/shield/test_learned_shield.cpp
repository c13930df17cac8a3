// LearnedShield: the shield with the models it trains (GaussianEnsemble f_theta, margin network
// V_psi) on GridLife. Checks: pass-through during warm-up; the models learn GridLife's
// internal dynamics and constraints from random-play data; once trained, the shielded random
// policy dies of temperature / integrity far less often than the unshielded one (the violations
// a horizon-8 look-ahead can prevent); copies and moves keep the views valid (identical
// decisions); checkpoint round trip.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "persist/core/random.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/io/checkpoint.hpp"
#include "persist/parallel/gridlife_rollout.hpp"
#include "persist/replay/near_boundary.hpp"
#include "persist/replay/ring_replay.hpp"
#include "persist/shield/amortized_shield.hpp"
#include "persist/shield/learned_shield.hpp"
#include "persist/train/persist_agent.hpp"
#include "persist/viability/constraints.hpp"

namespace {

using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::TimeStep;
using persist::TransitionBatch;
using persist::TransitionView;
using persist::Vec;
using Env = persist::env::GridLife<float>;
using Kin = persist::parallel::GridLifePatchKinematics<float>;
using Shield = persist::shield::LearnedShield<float, Kin>;

persist::viability::ConstraintSet<float> seed_set() {
    return {{"energy", "temp", "integrity"}, {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"}};
}

Shield make_shield(const Env& env, std::int64_t warmup, std::uint64_t seed, std::uint64_t noise_seed = 0) {
    persist::shield::LearnedShieldOptions o;
    o.model.internal_dim = 3;
    o.model.action_dim = 2;
    o.model.obs_features = persist::parallel::gridlife_centre_features(env);
    o.model.seed = seed;
    o.viability.seed = seed + 1;
    o.rollout.num_rollouts = 8;  // test budget: K 8, CEM 32 x 3
    o.rollout.cem_population = 32;
    o.rollout.cem_iterations = 3;
    o.rollout.cem_elites = 6;
    o.rollout.seed = noise_seed ? noise_seed : seed + 2;  // the shield's noise key (an option, not state)
    o.warmup_updates = warmup;
    return Shield(seed_set(), Kin::from(env), env.action_low(), env.action_high(), o);
}

/// Random play (uniform actions) into a replay buffer, with the near-boundary buffer fed as the
/// agent feeds it.
struct Data {
    persist::replay::RingReplay<float> replay;
    persist::replay::NearBoundaryBuffer<float> near;
    Data(Env& env, const persist::viability::ConstraintSet<float>& cs, Index steps, std::uint64_t seed)
        : replay(steps, persist::replay::ReplayDims{env.observation_dim(), 3, 2, cs.num_constraints()}),
          near(persist::replay::NearBoundaryOptions<float>{.capacity = 4096, .internal_dim = 3, .observation_dim = 0,
                                                           .epsilon = 0.05f, .seed = seed}) {
        Rng rng(seed);
        TimeStep<float> ts;
        std::uint64_t ep = seed * 1000;
        env.reset(ep, ts);
        Vec<float> o = ts.observation, x = ts.internal, a(2), m(cs.num_constraints());
        for (Index t = 0; t < steps; ++t) {
            for (Index i = 0; i < 2; ++i) a[i] = rng.uniform<float>(-1.f, 1.f);
            env.step(a, ts);
            cs.margins(Eigen::Map<const Mat<float>>(ts.internal.data(), 3, 1), Eigen::Map<Mat<float>>(m.data(), m.size(), 1));
            replay.add(TransitionView<float>{o, x, a, ts.reward, ts.observation, ts.internal, ts.terminated, ts.truncated,
                                             ts.reward, 0.f, 0.f, m});
            near.offer(ts.internal, m);
            if (ts.terminated || ts.truncated) {
                env.reset(++ep, ts);
            }
            o = ts.observation;
            x = ts.internal;
        }
    }
};

void train(Shield& sh, Data& d, Index updates, std::uint64_t seed) {
    Rng rng(seed);
    TransitionBatch<float> batch;
    for (Index u = 0; u < updates; ++u) {
        d.replay.sample(256, rng, batch);
        sh.update(batch, &d.near);
    }
}

struct Outcome {
    int episodes = 0, fast_deaths = 0, energy_deaths = 0;
    double mean_length = 0;
};

/// Uniform random policy for `episodes` episodes, optionally through the shield.
Outcome play(Env& env, Shield* sh, int episodes, std::uint64_t seed) {
    Rng rng(seed);
    TimeStep<float> ts;
    Vec<float> a(2), a_safe(2);
    Outcome out;
    for (int e = 0; e < episodes; ++e) {
        env.reset(seed * 7919 + static_cast<std::uint64_t>(e), ts);
        Index len = 0;
        while (true) {
            for (Index i = 0; i < 2; ++i) a[i] = rng.uniform<float>(-1.f, 1.f);
            if (sh)
                sh->project(a, ts.observation, ts.internal, a_safe);
            else
                a_safe = a;
            env.step(a_safe, ts);
            ++len;
            if (ts.terminated || ts.truncated) break;
        }
        ++out.episodes;
        out.mean_length += double(len);
        if (ts.terminated) {
            if (env.last_violation().index == persist::env::var_energy)
                ++out.energy_deaths;
            else
                ++out.fast_deaths;
        }
    }
    out.mean_length /= out.episodes;
    return out;
}

}  // namespace

TEST_CASE("LearnedShield passes actions through until warmup_updates, then filters", "[shield][learned]") {
    Env env;
    auto cs = seed_set();
    Data d(env, cs, 2000, 3);
    Shield sh = make_shield(env, 5, 11);
    TimeStep<float> ts;
    env.reset(1, ts);
    Vec<float> a(2), a_safe(2);
    a << 0.9f, -0.4f;
    const auto dec = sh.project(a, ts.observation, ts.internal, a_safe);
    CHECK(!sh.active());
    CHECK(!dec.projected);
    CHECK(a_safe == a);
    CHECK(sh.counters().passthrough == 1);
    CHECK(sh.probability(a, ts.observation, ts.internal) == 1.f);
    train(sh, d, 5, 4);
    CHECK(sh.active());
    CHECK(sh.counters().updates == 5);
    sh.project(a, ts.observation, ts.internal, a_safe);
    CHECK(sh.counters().passthrough == 1);
    CHECK(sh.search().counters().decisions == 1);
}

TEST_CASE("LearnedShield learns GridLife from random play and prevents the violations it can foresee",
          "[shield][learned][learning]") {
    // Over 3 seeds: f_theta's one-step error falls to a small fraction of the per-step change,
    // V_psi classifies the constraint set, and the shielded random policy suffers far fewer
    // temperature / integrity terminations (the ones an 8-step look-ahead can avoid) than the
    // unshielded one, and lives longer.
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        Env env;
        auto cs = seed_set();
        Data d(env, cs, 20000, seed);
        Shield sh = make_shield(env, 0, 100 + seed);
        train(sh, d, 1500, seed + 50);
        INFO("seed " << seed << ": model mse " << sh.last_model_stats().mse << ", V_psi accuracy "
                     << sh.last_viability_stats().accuracy);
        CHECK(sh.last_model_stats().mse < 1e-4f);  // per-entry squared error; steps change x by ~1e-2
        CHECK(sh.last_viability_stats().accuracy > 0.95f);
        const Outcome plain = play(env, nullptr, 30, 900 + seed);
        const Outcome shielded = play(env, &sh, 30, 900 + seed);
        INFO("unshielded: " << plain.fast_deaths << " temp/integrity deaths, " << plain.energy_deaths
                            << " energy deaths, mean length " << plain.mean_length);
        INFO("shielded:   " << shielded.fast_deaths << " temp/integrity deaths, " << shielded.energy_deaths
                            << " energy deaths, mean length " << shielded.mean_length);
        INFO("projections " << sh.search().counters().projections << " infeasible " << sh.search().counters().infeasible << " decisions " << sh.search().counters().decisions << " pl " << plain.mean_length << " sl " << shielded.mean_length);
        CHECK(plain.fast_deaths >= 6);
        CHECK(shielded.fast_deaths * 3 <= plain.fast_deaths);
        CHECK(shielded.mean_length > plain.mean_length);
        CHECK(sh.search().counters().projections > 0);
    }
}

TEST_CASE("LearnedShield copies and moves keep decisions identical; checkpoint round trip", "[shield][learned]") {
    Env env;
    auto cs = seed_set();
    Data d(env, cs, 3000, 8);
    Shield a = make_shield(env, 0, 21);
    train(a, d, 200, 9);
    Shield b = a;             // copy: its views must point into b
    Shield c = std::move(b);  // move: into c
    TimeStep<float> ts;
    env.reset(77, ts);
    Vec<float> act(2), out_a(2), out_c(2);
    Rng rng(5);
    for (int i = 0; i < 40; ++i) {
        act << rng.uniform<float>(-1.f, 1.f), rng.uniform<float>(-1.f, 1.f);
        const auto da = a.project(act, ts.observation, ts.internal, out_a);
        const auto dc = c.project(act, ts.observation, ts.internal, out_c);
        REQUIRE(out_a == out_c);
        REQUIRE(da.probability == dc.probability);
        REQUIRE(da.projected == dc.projected);
        env.step(out_a, ts);
        if (ts.terminated || ts.truncated) env.reset(78 + static_cast<std::uint64_t>(i), ts);
    }
    const auto path = std::filesystem::temp_directory_path() / "persist_learned_shield.ckpt";
    persist::io::save_checkpoint(path.string(), a);
    // Other initialisation of the models (restored from the checkpoint); the noise seed is an
    // option, so the resumed shield is built with the same one as `a`.
    Shield e = make_shield(env, 0, 999, 21 + 2);
    persist::io::load_checkpoint(path.string(), e);
    std::filesystem::remove(path);
    CHECK(e.model().view().member[0].params != a.model().view().member[0].params);
    for (int i = 0; i < 10; ++i) {
        act << rng.uniform<float>(-1.f, 1.f), rng.uniform<float>(-1.f, 1.f);
        const auto da = a.project(act, ts.observation, ts.internal, out_a);
        const auto de = e.project(act, ts.observation, ts.internal, out_c);
        REQUIRE(out_a == out_c);
        REQUIRE(da.probability == de.probability);
    }
}


TEST_CASE("AmortizedShield<LearnedShield> forwards PersistAgent's training hook to the learned models", "[shield][learned]") {
    using Amortized = persist::shield::AmortizedShield<Shield>;
    STATIC_REQUIRE(persist::train::detail::LearningShield<Amortized, float>);
    Env env;
    auto cs = seed_set();
    Data d(env, cs, 2000, 4);
    Shield direct = make_shield(env, 0, 31);
    persist::shield::AmortizedShieldOptions ao;
    ao.hidden = {32};
    ao.capacity = 64;
    ao.min_samples = 0;
    Amortized wrapped(make_shield(env, 0, 31), env.observation_dim(), 3, env.action_low(), env.action_high(), ao);
    // The same batches for both (no near-boundary buffer: its sampling stream would differ).
    const persist::replay::NearBoundaryBuffer<float>* none = nullptr;
    for (int which = 0; which < 2; ++which) {
        Rng rng(3);
        TransitionBatch<float> batch;
        for (Index u = 0; u < 30; ++u) {
            d.replay.sample(256, rng, batch);
            if (which == 0) direct.update(batch, none);
            else wrapped.update(batch, none);
        }
    }
    REQUIRE(wrapped.search().counters().updates == 30);
    // Same data, same seeds: the wrapped shield's models are the directly trained ones.
    REQUIRE(wrapped.search().last_model_stats().mse == direct.last_model_stats().mse);
    REQUIRE(wrapped.search().model().view().member[0].params[7] == direct.model().view().member[0].params[7]);
    REQUIRE(wrapped.search().last_viability_stats().loss == direct.last_viability_stats().loss);
    REQUIRE(wrapped.stats().train_steps == 0);  // g_phi trains on the search's pairs, not here
}
