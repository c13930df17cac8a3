// config::make_curriculum: the `curriculum:` section as a train::Curriculum -- widths per
// constraint, both schedules, lambdas from `rewards:`, errors naming the key path; the seed's
// config files still load and `schedule` means the same thing on both sides.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <string>

#include <persist/config/config.hpp>
#include <persist/config/curriculum_from_config.hpp>

namespace cfg = persist::config;
using persist::train::CurriculumSchedule;

namespace {
cfg::PersistConfig seed_config() {
    cfg::PersistConfig c;  // = examples/configs/gridlife.yaml: energy >= 0.2, temp in [0.3, 0.7], integrity >= 0.6
    c.curriculum.enabled = true;
    c.curriculum.warmup_steps = 100;
    c.curriculum.total_steps = 1000;
    c.curriculum.start_widths = {0.15, 0.2, 0.3};
    c.curriculum.lambda_homeo_start = 0.1;
    c.curriculum.lambda_intr_start = 0.05;
    return c;
}
}  // namespace

TEST_CASE("make_curriculum: start set widened per constraint, target = viability.constraints", "[curriculum][config]") {
    const auto c = seed_config();
    const auto cur = cfg::make_curriculum<double>(c);
    const auto& w = cur.wide();
    const auto& t = cur.target();
    REQUIRE(w.num_constraints() == 3);
    CHECK(w.constraint(0).threshold == Approx(0.2 - 0.15));   // energy >= 0.05
    CHECK(w.constraint(1).lo == Approx(0.3 - 0.2));           // temp in [0.1, 0.9]
    CHECK(w.constraint(1).hi == Approx(0.7 + 0.2));
    CHECK(w.constraint(2).threshold == Approx(0.6 - 0.3));    // integrity >= 0.3
    CHECK(t.constraint(0).threshold == 0.2);
    CHECK(t.constraint(1).lo == 0.3);
    CHECK(t.constraint(1).hi == 0.7);
    CHECK(t.constraint(2).threshold == 0.6);
    // Before warm-up ends: the wide set; after warmup + total: exactly the target.
    const auto s0 = cur.constraints(50);
    CHECK(s0.constraint(0).threshold == w.constraint(0).threshold);
    const auto s1 = cur.constraints(1100);
    CHECK(s1.constraint(1).hi == t.constraint(1).hi);
    // Halfway (linear): thresholds halfway, per constraint with its own width.
    const auto h = cur.constraints(600);
    CHECK(h.constraint(0).threshold == Approx(0.2 - 0.075));
    CHECK(h.constraint(1).lo == Approx(0.3 - 0.1));
    CHECK(h.constraint(2).threshold == Approx(0.6 - 0.15));

    auto none = seed_config();
    none.curriculum.start_widths.clear();  // no tightening: wide = target
    const auto flat = cfg::make_curriculum<float>(none);
    for (persist::Index k = 0; k < 3; ++k) {
        CHECK(flat.wide().constraint(k).threshold == flat.target().constraint(k).threshold);
        CHECK(flat.wide().constraint(k).lo == flat.target().constraint(k).lo);
    }
}

TEST_CASE("make_curriculum: schedules and lambdas", "[curriculum][config]") {
    auto c = seed_config();
    c.rewards.lambda_homeo = 0.9;
    c.rewards.lambda_intr = 0.4;
    const auto lin = cfg::make_curriculum<double>(c);
    CHECK(lin.options().schedule == CurriculumSchedule::linear);
    CHECK(lin.progress(100) == 0.0);
    CHECK(lin.progress(350) == Approx(0.25));
    CHECK(lin.progress(1100) == 1.0);
    CHECK(lin.lambda_homeo(0) == 0.1);
    CHECK(lin.lambda_homeo(5000) == 0.9);  // end = rewards.lambda_homeo
    CHECK(lin.lambda_intr(0) == 0.05);
    CHECK(lin.lambda_intr(5000) == 0.4);   // end = rewards.lambda_intr
    CHECK(lin.lambda_homeo(600) == Approx(0.5));

    c.curriculum.schedule = cfg::CurriculumSchedule::cosine;
    const auto cosine = cfg::make_curriculum<double>(c);
    CHECK(cosine.options().schedule == CurriculumSchedule::cosine);
    CHECK(cosine.progress(350) == Approx((1 - std::cos(std::numbers::pi * 0.25)) / 2));
    CHECK(cosine.progress(600) == Approx(0.5));
    CHECK(cosine.progress(350) < lin.progress(350));  // slow start
    CHECK(cosine.progress(850) > lin.progress(850));  // ... and slow end
    CHECK(cfg::to_train_schedule(cfg::CurriculumSchedule::linear) == CurriculumSchedule::linear);
    CHECK(cfg::to_train_schedule(cfg::CurriculumSchedule::cosine) == CurriculumSchedule::cosine);
}

TEST_CASE("make_curriculum: errors name the key path", "[curriculum][config][errors]") {
    auto c = seed_config();
    SECTION("start_widths of the wrong length") {
        c.curriculum.start_widths = {0.1, 0.1};
        CHECK_THROWS_AS(cfg::make_curriculum<double>(c), persist::ConfigError);
        CHECK_THROWS_WITH(cfg::make_curriculum<double>(c),
                          "curriculum.start_widths: expected 3 values (one per viability.constraints entry) or none, got 2");
        c.curriculum.start_widths = {0.1, 0.1, 0.1, 0.1};
        CHECK_THROWS_WITH(cfg::make_curriculum<double>(c), Catch::StartsWith("curriculum.start_widths: expected 3 values"));
    }
    SECTION("a negative width") {
        c.curriculum.start_widths = {0.1, -0.2, 0.1};
        CHECK_THROWS_WITH(cfg::make_curriculum<double>(c), Catch::StartsWith("curriculum.start_widths[1]: expected a finite value >= 0"));
    }
    SECTION("total_steps 0") {
        c.curriculum.total_steps = 0;
        CHECK_THROWS_WITH(cfg::make_curriculum<double>(c), "curriculum.total_steps: expected >= 1, got 0");
    }
    SECTION("negative warm-up and lambdas") {
        c.curriculum.warmup_steps = -1;
        CHECK_THROWS_WITH(cfg::make_curriculum<double>(c), "curriculum.warmup_steps: expected >= 0, got -1");
        c.curriculum.warmup_steps = 0;
        c.curriculum.lambda_intr_start = -0.5;
        CHECK_THROWS_WITH(cfg::make_curriculum<double>(c), Catch::StartsWith("curriculum.lambda_intr_start: expected a finite value >= 0"));
        c.curriculum.lambda_intr_start = 0;
        c.rewards.lambda_homeo = std::nan("");
        CHECK_THROWS_WITH(cfg::make_curriculum<double>(c), Catch::StartsWith("rewards.lambda_homeo: expected a finite value >= 0"));
    }
    SECTION("a bad constraint string keeps the parser's message") {
        c.viability.constraints[1] = "temp >>= 0.3";
        CHECK_THROWS_AS(cfg::make_curriculum<double>(c), persist::ConfigError);
    }
}

TEST_CASE("config files still load; schedule by name in JSON maps onto the curriculum", "[curriculum][config]") {
    const std::filesystem::path dir = PERSIST_CONFIG_EXAMPLES_DIR;
    const auto seed = cfg::load_json_file<cfg::PersistConfig>(dir / "gridlife.json");
    CHECK_FALSE(seed.curriculum.enabled);
    CHECK(cfg::make_curriculum<float>(seed).options().schedule == CurriculumSchedule::linear);

    const auto c = cfg::load_json_string<cfg::PersistConfig>(
        R"({"curriculum": {"enabled": true, "schedule": "cosine", "total_steps": 500, "start_widths": [0.1, 0.1, 0.2]}})",
        "run.json");
    const auto cur = cfg::make_curriculum<float>(c);
    CHECK(cur.options().schedule == CurriculumSchedule::cosine);
    CHECK(cur.options().total_steps == 500);
    CHECK(cur.wide().constraint(2).threshold == Approx(0.4f));
    // A wrong length in a file is caught by the loader, with the same key path.
    CHECK_THROWS_WITH(cfg::load_json_string<cfg::PersistConfig>(R"({"curriculum": {"start_widths": [0.1]}})", "run.json"),
                      Catch::Contains("curriculum.start_widths: expected 3 values"));
}
