// The pieces PersistAgent checkpoints need beyond the networks: GridLife's episode state
// (visit_state) and the MetricsTracker's running counters.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include <persist/core/random.hpp>
#include <persist/env/gridlife.hpp>
#include <persist/io/checkpoint.hpp>
#include <persist/train/metrics.hpp>

#include "checkpointing/checkpoint_fixtures.hpp"

using namespace ckpttest;
namespace fs = std::filesystem;

namespace {
fs::path temp_file(const std::string& tag) {
    return fs::temp_directory_path() / ("persist_ckpt_env_" + tag + "_" + std::to_string(::getpid()) + ".ckpt");
}

/// Step with actions from a fixed stream; record everything the env emits.
template <class T>
struct Trace {
    std::vector<Vec<T>> obs, x;
    std::vector<T> reward;
    std::vector<int> flags;
};
template <class T>
Trace<T> drive(Env<T>& e, persist::TimeStep<T>& ts, persist::Rng& rng, int n, std::uint64_t reset_seed) {
    Trace<T> tr;
    Vec<T> a(2);
    for (int i = 0; i < n; ++i) {
        if (ts.terminated || ts.truncated) e.reset(reset_seed++, ts);
        a << rng.uniform<T>(T(-1), T(1)), rng.uniform<T>(T(-1), T(1));
        e.step(a, ts);
        tr.obs.push_back(ts.observation);
        tr.x.push_back(ts.internal);
        tr.reward.push_back(ts.reward);
        tr.flags.push_back(int(ts.terminated) * 2 + int(ts.truncated));
    }
    return tr;
}
}  // namespace

TEMPLATE_TEST_CASE("GridLife visit_state: a loaded environment continues the episode bitwise", "[checkpoint][gridlife]",
                   float, double) {
    using T = TestType;
    // Food respawns quickly and the bounds are loose, so eaten food, respawn clocks and
    // visited tiles all matter within the traced window.
    persist::env::GridLifeConfig cfg = small_world();
    cfg.horizon = 200;
    cfg.num_food = 20;
    cfg.food_respawn_steps = 5;
    cfg.reward_mode = persist::env::GridLifeReward::items;
    cfg.lower_bounds = {0.0, 0.0, 0.0};
    const fs::path file = temp_file(std::string("gl_") + persist::dtype_name(persist::dtype_of<T>()));

    Env<T> a(cfg);
    persist::TimeStep<T> ts_a;
    a.reset(7, ts_a);
    a.set_bounds(1, T(0.05), T(0.95));  // a curriculum would move these
    persist::Rng rng(99);
    drive(a, ts_a, rng, 60, 8);
    REQUIRE(a.food_eaten() > 0);
    REQUIRE_FALSE(ts_a.terminated);  // mid-episode
    REQUIRE_FALSE(ts_a.truncated);
    persist::io::save_checkpoint(file, a);
    persist::Rng rng_b = rng;
    const auto ta = drive(a, ts_a, rng, 80, 100);

    Env<T> b(cfg);  // never reset
    persist::io::load_checkpoint(file, b);
    CHECK(b.elapsed_steps() == 60);
    CHECK(b.upper_bound(1) == T(0.95));
    persist::TimeStep<T> ts_b;
    const auto tb = drive(b, ts_b, rng_b, 80, 100);
    CHECK(ta.obs == tb.obs);
    CHECK(ta.x == tb.x);
    CHECK(ta.reward == tb.reward);
    CHECK(ta.flags == tb.flags);
    CHECK(a.food_eaten() == b.food_eaten());
    CHECK(a.num_visited() == b.num_visited());
    fs::remove(file);
}

TEST_CASE("GridLife visit_state: shapes follow the configuration; a never-reset state stays unstarted",
          "[checkpoint][gridlife]") {
    const fs::path file = temp_file("gl_shapes");
    Env<double> fresh(small_world());
    persist::io::save_checkpoint(file, fresh);
    Env<double> used(small_world());
    persist::TimeStep<double> ts;
    used.reset(1, ts);
    persist::io::load_checkpoint(file, used);
    Vec<double> a = Vec<double>::Zero(2);
    CHECK_THROWS_WITH(used.step(a, ts), Catch::Contains("before reset"));

    auto big = small_world();
    big.width = 9;
    Env<double> other(big);
    CHECK_THROWS_WITH(persist::io::load_checkpoint(file, other), Catch::Contains("entry 'tiles' has shape"));
    fs::remove(file);
}

TEST_CASE("GridLife visit_state: a_{t-1} is state only with observe_last_action", "[checkpoint][gridlife]") {
    const fs::path file = temp_file("gl_last_action"), plain_file = temp_file("gl_plain");
    auto cfg = small_world();
    cfg.observe_last_action = true;
    Env<float> a(cfg);
    persist::TimeStep<float> ts_a;
    a.reset(3, ts_a);
    persist::Rng rng(5);
    drive(a, ts_a, rng, 7, 4);
    persist::io::save_checkpoint(file, a);
    Env<float> b(cfg);
    persist::TimeStep<float> ts_b;
    b.reset(11, ts_b);
    Vec<float> other(2);
    other << -1.0f, 1.0f;
    b.step(other, ts_b);
    persist::io::load_checkpoint(file, b);
    // set_tile rewrites the observation from the state: a_{t-1} must have come with it.
    a.set_tile(0, 0, persist::env::ch_food, 1.0f, ts_a);
    b.set_tile(0, 0, persist::env::ch_food, 1.0f, ts_b);
    CHECK(ts_b.observation == ts_a.observation);
    CHECK(ts_b.observation.tail(2) != other);

    // A checkpoint of the default configuration has no a_{t-1}: loading it here is an error,
    // not a silent zero.
    Env<float> plain(small_world());
    persist::io::save_checkpoint(plain_file, plain);
    CHECK_THROWS_WITH(persist::io::load_checkpoint(plain_file, b), Catch::Contains("observation"));
    fs::remove(file);
    fs::remove(plain_file);
}

TEST_CASE("GridLife visit_state: the sensor model's stream continues after a load", "[checkpoint][gridlife]") {
    const fs::path file = temp_file("gl_sensor");
    auto cfg = small_world();
    cfg.horizon = 300;
    cfg.lower_bounds = {0.0, 0.0, 0.0};
    cfg.observation_noise_std = 0.05;
    cfg.observation_dropout = 0.1;
    Env<double> a(cfg);
    persist::TimeStep<double> ts_a;
    a.reset(3, ts_a);
    persist::Rng rng(5);
    drive(a, ts_a, rng, 40, 4);
    persist::io::save_checkpoint(file, a);
    persist::Rng rng_b = rng;
    const auto ta = drive(a, ts_a, rng, 60, 50);

    Env<double> b(cfg);
    persist::TimeStep<double> ts_b;
    b.reset(99, ts_b);  // a different stream until the load replaces it
    persist::Rng other = rng_b.fork(1);
    drive(b, ts_b, other, 3, 100);
    persist::io::load_checkpoint(file, b);
    const auto tb = drive(b, ts_b, rng_b, 60, 50);
    CHECK(ta.obs == tb.obs);  // noisy observations included, bitwise
    CHECK(ta.x == tb.x);
    CHECK(ta.reward == tb.reward);
    fs::remove(file);
}

TEST_CASE("MetricsTracker visit_state: a loaded tracker closes the episode and the run identically",
          "[checkpoint][metrics]") {
    const auto set = target_set<double>();
    persist::train::MetricsTracker<double> a(set, 0.05, 3), b(set, 0.05, 3);
    Vec<double> x(3), m(3);
    auto feed = [&](persist::train::MetricsTracker<double>& t, int from, int to) {
        for (int i = from; i < to; ++i) {
            // Wander around the boundary of "energy >= 0.2": near-boundary states, recoveries.
            x << 0.2 + 0.03 * ((i * 7) % 5), 0.5, 0.9;
            set.margins(Eigen::Map<const persist::Mat<double>>(x.data(), 3, 1), Eigen::Map<persist::Mat<double>>(m.data(), 3, 1));
            t.record_step(set, x, m, 0.1 * i, -0.01, 0.5, 1.0, i % 4 == 0);
            if (i % 6 == 0) t.record_update(1.25 + 0.01 * i);
        }
    };
    a.begin_episode(0, 0);
    feed(a, 0, 20);
    a.end_episode(set, x, false, true);
    a.begin_episode(1, 20);
    feed(a, 20, 27);
    // Copy the state into b (the checkpoint protocol, without a file).
    std::vector<persist::TensorRef> ra, rb;
    a.visit_state([&](persist::TensorRef t) { ra.push_back(t); });
    b.visit_state([&](persist::TensorRef t) { rb.push_back(t); });
    REQUIRE(ra.size() == rb.size());
    for (std::size_t i = 0; i < ra.size(); ++i) {
        REQUIRE(ra[i].name == rb[i].name);
        REQUIRE(ra[i].bytes() == rb[i].bytes());
        if (ra[i].bytes()) std::memcpy(rb[i].data, ra[i].data, ra[i].bytes());
    }
    CHECK(b.in_episode());
    feed(a, 27, 40);
    feed(b, 27, 40);
    const auto& cn = a.constraint_names();
    const auto& vn = a.variable_names();
    const auto ja = persist::train::to_json(a.end_episode(set, x, true, false), cn, vn);
    const auto jb = persist::train::to_json(b.end_episode(set, x, true, false), cn, vn);
    CHECK(ja == jb);
    CHECK(ja["episode"] == 1);
    CHECK(ja["survival_steps"] == 20);
    CHECK(persist::train::to_json(a.summary(), cn, vn) == persist::train::to_json(b.summary(), cn, vn));
    CHECK(b.summary().episodes == 2);
}
