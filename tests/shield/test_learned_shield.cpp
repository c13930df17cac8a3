// LearnedShield: the shield with the models it trains (GaussianEnsemble f_theta, margin network
// V_psi) on GridLife. Checks: pass-through during warm-up; the models learn GridLife's
// internal dynamics and constraints from random-play data; once trained, the shielded random
// policy dies of temperature / integrity far less often than the unshielded one (the violations
// a horizon-8 look-ahead can prevent); copies and moves keep the views valid (identical
// decisions); checkpoint round trip.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "persist/core/random.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/env/gridlife_forager.hpp"
#include "persist/replay/demonstrations.hpp"
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

persist::shield::LearnedShieldOptions test_options(const Env& env, std::int64_t warmup, std::uint64_t seed,
                                                   std::uint64_t noise_seed = 0) {
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
    return o;
}

Shield make_shield(const Env& env, std::int64_t warmup, std::uint64_t seed, std::uint64_t noise_seed = 0) {
    return Shield(seed_set(), Kin::from(env), env.action_low(), env.action_high(),
                  test_options(env, warmup, seed, noise_seed));
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

template <class S>
void train(S& sh, Data& d, Index updates, std::uint64_t seed) {
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
    // The last training statistics travel with the shield (the example's summary prints them).
    CHECK(c.last_model_stats().mse == a.last_model_stats().mse);
    CHECK(c.last_model_stats().mse > 0.f);
    CHECK(c.last_viability_stats().accuracy == a.last_viability_stats().accuracy);
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
    // Copy and move assignment over shields built differently: the targets then decide as a.
    Shield f = make_shield(env, 0, 555, 21);
    f = a;
    Shield g = make_shield(env, 0, 556, 21);
    g = std::move(f);
    f = g;  // a moved-from shield can be assigned again
    for (int i = 0; i < 20; ++i) {
        act << rng.uniform<float>(-1.f, 1.f), rng.uniform<float>(-1.f, 1.f);
        Vec<float> out_f(2), out_g(2);
        const auto da = a.project(act, ts.observation, ts.internal, out_a);
        const auto df = f.project(act, ts.observation, ts.internal, out_f);
        const auto dg = g.project(act, ts.observation, ts.internal, out_g);
        REQUIRE(out_a == out_f);
        REQUIRE(out_a == out_g);
        REQUIRE(da.probability == df.probability);
        REQUIRE(da.probability == dg.probability);
        env.step(out_a, ts);
        if (ts.terminated || ts.truncated) env.reset(200 + static_cast<std::uint64_t>(i), ts);
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

namespace {

/// Safe demonstrations from GridLifeForager (seed Change 4): the steps of `episodes` episodes
/// that reached the horizon (episodes that ended in a violation are left out). With
/// probability `noise` a step takes a uniform random action instead, so the demonstrations
/// also show what hazards and heat do (a perfectly careful expert never shows them).
persist::replay::DemonstrationBuffer<float> forager_demos(const Env& proto, int episodes, std::uint64_t seed,
                                                         double noise) {
    Rng rng(seed, 1);
    Env env(proto.config());
    persist::env::GridLifeForager pol(env, seed);
    persist::replay::DemonstrationBuffer<float> demos(3, 2, env.observation_dim());
    std::vector<Vec<float>> xs, as, os;
    TimeStep<float> ts;
    Vec<float> a(2);
    for (int e = 0, kept = 0; kept < episodes; ++e) {
        env.reset(seed * 131 + static_cast<std::uint64_t>(e), ts);
        pol.reset();
        xs.clear(), as.clear(), os.clear();
        while (!ts.done()) {
            pol.act(env, a);
            if (rng.uniform<double>() < noise) a << rng.uniform<float>(-1.f, 1.f), rng.uniform<float>(-1.f, 1.f);
            xs.push_back(ts.internal), as.push_back(a), os.push_back(ts.observation);
            env.step(a, ts);
        }
        if (ts.terminated) continue;
        for (std::size_t t = 0; t < xs.size(); ++t) demos.add(kept, xs[t], as[t], os[t]);
        ++kept;
    }
    return demos;
}

}  // namespace

TEST_CASE("LearnedShield::pretrain on safe demonstrations: f_theta and V_psi learned before the first step",
          "[shield][learned][demonstrations]") {
    Env env;
    const auto demos = forager_demos(env, 4, 5, 0.0);
    REQUIRE(demos.num_episodes() == 4);
    // Through the documented file format and back.
    const auto path = std::filesystem::temp_directory_path() / "persist_test_forager_demos.jsonl";
    persist::replay::save_demonstrations(path, demos);
    const auto loaded = persist::replay::load_demonstrations<float>(path, 3, 2, env.observation_dim());
    std::filesystem::remove(path);
    REQUIRE(loaded.size() == demos.size());
    CHECK(loaded.states() == demos.states());

    // Held-out transitions: random play (hazards, heat and food included) and fresh
    // demonstrations of other episodes.
    Data d(env, seed_set(), 3000, 9);
    TransitionBatch<float> random_play;
    Rng r2(3);
    d.replay.sample(2000, r2, random_play);
    const auto held_out = forager_demos(env, 1, 99, 0.3);
    const auto disagreements = [&](Shield& s) {  // V_psi vs the constraints on random-play states
        Mat<float> m(1, 2000), tm(3, 2000);
        s.viability_model().margins(random_play.next_internal, m);
        seed_set().margins(random_play.next_internal, tm);
        int wrong = 0;
        for (Index j = 0; j < 2000; ++j) wrong += (m(0, j) > 0) != (tm.col(j).minCoeff() > 0);
        return wrong;
    };

    Shield sh = make_shield(env, 600, 21);
    Rng rng(8);
    const Index transitions = sh.pretrain(loaded, 600, 256, rng);
    CHECK(transitions == loaded.size() - 4);  // every step but each episode's last
    CHECK(sh.active());                       // warmup_updates reached: filters from the first step
    CHECK(sh.counters().updates == 600);
    // f_theta predicts the held-out demonstrations' next states (they change x by ~1e-2 a step).
    Mat<float> xn;
    const Index n = held_out.size() - 1;
    sh.model().predict(held_out.states().leftCols(n), held_out.actions().leftCols(n),
                       held_out.observations().leftCols(n), xn);
    const float mse = (xn - held_out.states().rightCols(n)).array().square().mean();
    INFO("held-out demonstration mse " << mse << ", V_psi disagreements " << disagreements(sh) << " / 2000");
    CHECK(mse < 1e-4f);
    // V_psi learned the constraint set, unsafe side included, from safe data only (labels from
    // the constraints; measured 30 of 2000 random-play states misjudged).
    CHECK(disagreements(sh) < 100);
    // Bad input names what is wrong.
    persist::replay::DemonstrationBuffer<float> no_obs(3, 2, 0);
    no_obs.add(0, demos.states().col(0), demos.actions().col(0));
    no_obs.add(0, demos.states().col(1), demos.actions().col(1));
    CHECK_THROWS_WITH(sh.pretrain(no_obs, 1, 8, rng), Catch::Contains("observation_dim 0") && Catch::Contains("at least"));
    persist::replay::DemonstrationBuffer<float> singles(3, 2, env.observation_dim());
    singles.add(0, demos.states().col(0), demos.actions().col(0), demos.observations().col(0));
    singles.add(1, demos.states().col(1), demos.actions().col(1), demos.observations().col(1));
    CHECK_THROWS_WITH(sh.pretrain(singles, 1, 8, rng), Catch::Contains("no transition"));
    persist::replay::DemonstrationBuffer<float> wrong_a(3, 1, env.observation_dim());
    CHECK_THROWS_AS(sh.pretrain(wrong_a, 1, 8, rng), persist::ShapeError);
    CHECK_THROWS_AS(sh.pretrain(loaded, -1, 8, rng), persist::ConfigError);
    CHECK_THROWS_AS(sh.pretrain(loaded, 1, 0, rng), persist::ConfigError);
    CHECK(sh.counters().updates == 600);  // failed calls changed nothing
}

TEST_CASE("LearnedShield's synthetic states reach the constraints' boundaries the data never came near",
          "[shield][learned][demonstrations]") {
    Env env;
    // A linear combination too: along energy it crosses 0.9 - 0.5 * 0.925 = 0.4375 (inside the
    // data's box), along integrity (0.9 - 0.61) / 0.5 = 0.58 (below it).
    const persist::viability::ConstraintSet<float> cs{{"energy", "temp", "integrity"},
                                                      {"energy >= 0.2", "temp in [0.3, 0.7]",
                                                       "energy + 0.5*integrity >= 0.9"}};
    TransitionBatch<float> b;
    b.resize(env.observation_dim(), 3, 2, cs.num_constraints(), 2);
    b.observation.setZero(), b.next_observation.setZero(), b.action.setZero();
    b.reward.setZero(), b.terminated.setZero(), b.truncated.setZero();
    b.r_task.setZero(), b.r_homeo.setZero(), b.r_intr.setZero();
    b.internal.col(0) << 0.6f, 0.45f, 0.9f;
    b.internal.col(1) << 0.62f, 0.55f, 0.95f;
    b.next_internal = b.internal;
    cs.margins(b.next_internal, b.margins);
    const auto box_after_one_update = [&](bool cover) {
        auto o = test_options(env, 0, 3);
        o.synthetic_cover_constraints = cover;
        Shield sh(cs, Kin::from(env), env.action_low(), env.action_high(), o);
        CHECK(sh.synthetic_box().rows() == 0);  // nothing seen yet
        sh.update(b);
        return sh.synthetic_box();
    };
    const Mat<float> on = box_after_one_update(true), off = box_after_one_update(false);
    REQUIRE(on.rows() == 3);
    REQUIRE(off.rows() == 3);
    const auto widened = [](float lo, float hi) {  // synthetic_box_margin 0.1 of the width per side
        return std::pair{lo - 0.1f * (hi - lo), hi + 0.1f * (hi - lo)};
    };
    const std::pair<float, float> want_on[3] = {widened(0.2f, 0.62f), widened(0.3f, 0.7f), widened(0.58f, 0.95f)};
    const std::pair<float, float> want_off[3] = {widened(0.6f, 0.62f), widened(0.45f, 0.55f), widened(0.9f, 0.95f)};
    for (Index j = 0; j < 3; ++j) {
        INFO("variable " << j);
        CHECK(on(j, 0) == Approx(want_on[j].first).margin(1e-6));
        CHECK(on(j, 1) == Approx(want_on[j].second).margin(1e-6));
        CHECK(off(j, 0) == Approx(want_off[j].first).margin(1e-6));
        CHECK(off(j, 1) == Approx(want_off[j].second).margin(1e-6));
    }

    // What it changes: a careful forager's demonstrations keep temp well inside [0.3, 0.7], so
    // without the boundaries V_psi has no hot or cold example and calls them safe.
    const auto demos = forager_demos(env, 4, 5, 0.0);
    const float t_lo = demos.states().row(1).minCoeff(), t_hi = demos.states().row(1).maxCoeff();
    INFO("demonstrations' temp range [" << t_lo << ", " << t_hi << "]");
    REQUIRE(t_lo > 0.33f);
    REQUIRE(t_hi < 0.67f);
    Mat<float> probe(3, 40);  // energy 0.7, integrity 0.9 (safe), temp across [0.2, 0.8]
    for (Index j = 0; j < 40; ++j) probe.col(j) << 0.7f, 0.2f + 0.6f * float(j) / 39.f, 0.9f;
    Mat<float> truth(3, 40);
    seed_set().margins(probe, truth);
    const auto misjudged = [&](bool cover) {
        auto o = test_options(env, 0, 21);
        o.synthetic_cover_constraints = cover;
        Shield sh(seed_set(), Kin::from(env), env.action_low(), env.action_high(), o);
        Rng rng(8);
        sh.pretrain(demos, 600, 256, rng);
        Mat<float> m(1, 40);
        sh.viability_model().margins(probe, m);
        int wrong = 0;
        for (Index j = 0; j < 40; ++j) wrong += (m(0, j) > 0) != (truth.col(j).minCoeff() > 0);
        return wrong;
    };
    const int wrong_on = misjudged(true), wrong_off = misjudged(false);
    INFO("temp probes misjudged by V_psi: " << wrong_on << " / 40 with the boundaries, " << wrong_off << " without");
    CHECK(wrong_on <= 2);   // at most the probes next to 0.3 and 0.7
    CHECK(wrong_off >= 8);  // a good part of the unsafe ones called safe
}

TEST_CASE("LearnedShield checking the constraints themselves: the decisions of a RolloutShield over its model and "
          "set; copies and moves; one constraint given up at a time",
          "[shield][learned]") {
    using Exact = persist::shield::LearnedShield<float, Kin, persist::parallel::LinearConstraintsView<float>>;
    using Reference = persist::shield::RolloutShield<float, persist::parallel::EnsembleRolloutModel<float>,
                                                     persist::parallel::LinearConstraintsView<float>, Kin>;
    Env env;
    const auto cs = seed_set();
    Data d(env, cs, 3000, 8);
    auto o = test_options(env, 0, 41);
    o.rollout.relax_unavoidable = true;
    Exact a(cs, Kin::from(env), env.action_low(), env.action_high(), o);
    train(a, d, 200, 9);
    CHECK(a.last_viability_stats().accuracy > 0.5f);  // V_psi is trained all the same
    Reference ref(persist::parallel::EnsembleRolloutModel<float>{a.model().view()}, cs, Kin::from(env),
                  env.action_low(), env.action_high(), o.rollout);
    std::optional<Exact> b(a);      // copy: its search must read b's constraint set ...
    Exact c(std::move(*b));         // ... and after a move, c's,
    b.reset();                      // not the destroyed source's (ASan would see it)
    std::optional<Exact> src(a);
    Exact f(cs, Kin::from(env), env.action_low(), env.action_high(), test_options(env, 0, 77));
    f = *src;                       // assignment: likewise, f's own set
    src.reset();
    TimeStep<float> ts;
    env.reset(77, ts);
    Vec<float> act(2), out_a(2), out_c(2), out_r(2);
    Rng rng(5);
    int projected = 0;
    for (int i = 0; i < 60; ++i) {
        act << rng.uniform<float>(-1.f, 1.f), rng.uniform<float>(-1.f, 1.f);
        const auto da = a.project(act, ts.observation, ts.internal, out_a);
        const auto dc = c.project(act, ts.observation, ts.internal, out_c);
        const auto dr = ref.project(act, ts.observation, ts.internal, out_r);
        Vec<float> out_f(2);
        const auto df = f.project(act, ts.observation, ts.internal, out_f);
        REQUIRE(out_f == out_a);
        REQUIRE(df.probability == da.probability);
        REQUIRE(out_a == out_r);
        REQUIRE(da.probability == dr.probability);
        REQUIRE(da.binding_constraint == dr.binding_constraint);
        REQUIRE(out_a == out_c);
        REQUIRE(da.probability == dc.probability);
        projected += da.projected;
        env.step(out_a, ts);
        if (ts.terminated || ts.truncated) env.reset(78 + static_cast<std::uint64_t>(i), ts);
    }
    CHECK(projected > 0);
    // Energy 0.205 with a 0.004-a-step decay crosses 0.2 within the horizon whatever the action:
    // only that constraint is given up (bit 0), temperature and integrity are still checked
    // (with V_psi's single margin the whole check would be given up).
    env.reset(90, ts);
    Vec<float> x = ts.internal;
    x[0] = 0.205f;
    act << 1.f, 1.f;
    const auto dz = a.project(act, ts.observation, x, out_a);
    CHECK(dz.relaxed == 1u);
    CHECK(dz.binding_constraint != 0);
}
