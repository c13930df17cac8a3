// Curriculum schedule values and metrics computations on constructed episodes.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <persist/train/curriculum.hpp>
#include <persist/train/metrics.hpp>

using persist::Index;
using persist::Vec;
using persist::train::Curriculum;
using persist::train::CurriculumOptions;
using persist::train::CurriculumSchedule;
using persist::train::MetricsTracker;
using Set = persist::viability::ConstraintSet<double>;

namespace {
const std::vector<std::string> dims{"energy", "temp", "integrity"};
Set target() { return Set(dims, {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"}); }
Set wide() { return Set(dims, {"energy >= 0.0", "temp in [0.1, 0.9]", "integrity >= 0.2"}); }
}  // namespace

TEST_CASE("curriculum: linear schedule values at given steps", "[train][curriculum]") {
    CurriculumOptions o{.warmup_steps = 100, .total_steps = 1000, .lambda_homeo_start = 0.1, .lambda_homeo_end = 0.7,
                        .lambda_intr_start = 0.0, .lambda_intr_end = 0.3};
    Curriculum<double> c(wide(), target(), o);
    CHECK(c.progress(0) == 0.0);
    CHECK(c.progress(100) == 0.0);
    CHECK(c.progress(600) == 0.5);
    CHECK(c.progress(1100) == 1.0);
    CHECK(c.progress(5000) == 1.0);
    CHECK(c.lambda_homeo(0) == 0.1);
    CHECK(c.lambda_homeo(600) == Approx(0.4));
    CHECK(c.lambda_homeo(1100) == 0.7);  // exactly the end value
    CHECK(c.lambda_intr(350) == Approx(0.075));
    CHECK(c.lambda_intr(2000) == 0.3);

    auto s0 = c.constraints(0), s_half = c.constraints(600), s1 = c.constraints(1100);
    Vec<double> x(3);
    x << 0.1, 0.5, 0.9;  // energy 0.1: fine under wide (>= 0), violated at the target (>= 0.2)
    CHECK(s0.satisfied(x));
    CHECK(s_half.margin(0, x) == Approx(0.0).margin(1e-12));  // threshold 0.1 halfway
    CHECK_FALSE(s1.satisfied(x));
    CHECK(s1.margin(0, x) == Approx(-0.1));
    CHECK(s_half.bounds(1).lo == Approx(0.2));
    CHECK(s_half.bounds(1).hi == Approx(0.8));
    CHECK(s_half.bounds(2).lo == Approx(0.4));
    // apply() in place
    Set cur = target();
    c.apply(100, cur);
    CHECK(cur.bounds(0).lo == 0.0);
}

TEST_CASE("curriculum: cosine shape and errors", "[train][curriculum]") {
    CurriculumOptions o{.warmup_steps = 0, .total_steps = 100, .schedule = CurriculumSchedule::cosine};
    Curriculum<double> c(wide(), target(), o);
    CHECK(c.progress(0) == 0.0);
    CHECK(c.progress(50) == Approx(0.5));
    CHECK(c.progress(25) == Approx(0.5 * (1 - std::cos(M_PI * 0.25))));
    CHECK(c.progress(100) == 1.0);
    CHECK_THROWS_WITH(Curriculum<double>(wide(), target(), CurriculumOptions{.total_steps = 0}),
                      Catch::Contains("total_steps"));
    Set other(dims, {"energy >= 0.2", "temp <= 0.7", "integrity >= 0.6"});  // different sense
    CHECK_THROWS_AS(Curriculum<double>(other, target(), CurriculumOptions{}), persist::ConfigError);
}

namespace {
// Feed a sequence of states (one per step) into a tracker.
void feed(MetricsTracker<double>& m, const Set& set, const std::vector<std::array<double, 3>>& xs,
          const std::vector<bool>& projected = {}) {
    Vec<double> x(3), mg(set.num_constraints());
    for (std::size_t t = 0; t < xs.size(); ++t) {
        x << xs[t][0], xs[t][1], xs[t][2];
        set.margins(Eigen::Map<const persist::Mat<double>>(x.data(), 3, 1), Eigen::Map<persist::Mat<double>>(mg.data(), mg.size(), 1));
        m.record_step(set, x, mg, 1.0, -0.5, 0.25, 2.0, projected.empty() ? false : bool(projected[t]));
    }
}
}  // namespace

TEST_CASE("metrics: satisfaction rates, violation, returns on a constructed episode", "[train][metrics]") {
    const Set set = target();
    MetricsTracker<double> m(set, 0.05, 3);
    m.begin_episode(0, 0);
    // 5 steps: temp too hot at t=2 (only constraint 1 / variable temp unsatisfied), energy
    // violation at the last step.
    feed(m, set,
         {{0.7, 0.5, 0.9}, {0.7, 0.75, 0.9}, {0.6, 0.5, 0.9}, {0.5, 0.5, 0.9}, {0.1, 0.5, 0.9}},
         {false, true, false, false, true});
    Vec<double> last(3);
    last << 0.1, 0.5, 0.9;
    const auto& r = m.end_episode(set, last, true, false, 0.7, 0.3, 1.0);
    CHECK(r.length == 5);
    CHECK(r.violated);
    CHECK(r.violated_constraint == 0);
    CHECK(r.violated_variables == std::vector<std::uint8_t>{1, 0, 0});
    CHECK(r.constraint_satisfaction[0] == Approx(0.8));
    CHECK(r.constraint_satisfaction[1] == Approx(0.8));
    CHECK(r.constraint_satisfaction[2] == 1.0);
    CHECK(r.variable_satisfaction[0] == Approx(0.8));
    CHECK(r.variable_satisfaction[1] == Approx(0.8));
    CHECK(r.return_task == 5.0);
    CHECK(r.return_total == 10.0);
    CHECK(r.mean_r_intr == 0.25);
    CHECK(r.mean_r_homeo == -0.5);
    CHECK(r.shield_trigger_rate == Approx(0.4));
    CHECK(std::isnan(r.policy_entropy));
    const auto j = persist::train::to_json(r, m.constraint_names(), m.variable_names());
    CHECK(j["time_to_violation"] == 5);
    CHECK(j["violated_constraint"] == "energy >= 0.2");
    CHECK(j["violated_variables"] == nlohmann::json::array({"energy"}));
    CHECK(j["policy_entropy"].is_null());
}

TEST_CASE("metrics: recovery rate (near-boundary states back to the core within h)", "[train][metrics]") {
    const Set set = target();
    MetricsTracker<double> m(set, 0.05, 3);  // epsilon 0.05, h = 3
    m.begin_episode(0, 0);
    // energy margins: x_energy - 0.2. Core: >= 0.05 -> energy >= 0.25. Near: 0.2 < e < 0.25.
    //   t1 0.30 core
    //   t2 0.22 near (A)
    //   t3 0.23 near (B)
    //   t4 0.30 core  -> A and B recovered (within 2 and 1 steps)
    //   t5 0.21 near (C)
    //   t6 0.21 near (D)
    //   t7 0.21 near (E)
    //   t8 0.21 near (F)   C expires here? C at 5: window (5, 8]; still open at t8
    //   t9 0.21 near (G)   C expired (9 - 5 > 3) -> failure
    //   t10 0.26 core      -> D? 10 - 6 = 4 > 3: expired; E: 3 ok, F, G ok -> 3 recovered
    //   t11 0.22 near (H), then truncation: H censored
    feed(m, set,
         {{0.30, 0.5, 0.9}, {0.22, 0.5, 0.9}, {0.23, 0.5, 0.9}, {0.30, 0.5, 0.9}, {0.21, 0.5, 0.9},
          {0.21, 0.5, 0.9}, {0.21, 0.5, 0.9}, {0.21, 0.5, 0.9}, {0.21, 0.5, 0.9}, {0.26, 0.5, 0.9},
          {0.22, 0.5, 0.9}});
    Vec<double> last(3);
    last << 0.22, 0.5, 0.9;
    auto r = m.end_episode(set, last, false, true);
    CHECK(r.near_boundary == 8);
    CHECK(r.censored == 1);
    CHECK(r.recovered == 5);  // A, B, E, F, G
    CHECK(r.recovery_rate == Approx(5.0 / 7.0));
    CHECK_FALSE(r.violated);

    // A termination right after a near-boundary state counts it as a failure.
    m.begin_episode(1, 11);
    feed(m, set, {{0.22, 0.5, 0.9}, {0.1, 0.5, 0.9}});
    last << 0.1, 0.5, 0.9;
    r = m.end_episode(set, last, true, false);
    CHECK(r.near_boundary == 1);
    CHECK(r.recovered == 0);
    CHECK(r.recovery_rate == 0.0);

    // No near-boundary state: null.
    m.begin_episode(2, 13);
    feed(m, set, {{0.7, 0.5, 0.9}});
    m.record_update(2.0);
    m.record_update(std::nan(""));
    m.record_update(4.0);
    last << 0.7, 0.5, 0.9;
    r = m.end_episode(set, last, false, true);
    CHECK(std::isnan(r.recovery_rate));
    CHECK(r.policy_entropy == 3.0);
    CHECK(r.updates == 3);

    const auto s = m.summary();
    CHECK(s.episodes == 3);
    CHECK(s.steps == 14);
    CHECK(s.violations == 1);
    CHECK(s.violations_per_variable == std::vector<std::int64_t>{1, 0, 0});
    CHECK(s.survived == 2);
    CHECK(s.near_boundary == 8);  // 7 + 1 (censored excluded)
    CHECK(s.recovered == 5);
    CHECK(s.recovery_rate == Approx(5.0 / 8.0));
    CHECK(s.constraint_satisfaction[0] == Approx(13.0 / 14.0));
    CHECK(s.mean_policy_entropy == 3.0);
    const auto j = persist::train::to_json(s, m.constraint_names(), m.variable_names());
    CHECK(j["violations_per_variable"]["energy"] == 1);
    CHECK(j["type"] == "summary");
}

namespace {
std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
}  // namespace

TEST_CASE("MetricsWriter::resume keeps the episodes that ended by the checkpoint, appends after them",
          "[train][metrics][checkpoint]") {
    namespace fs = std::filesystem;
    const fs::path file = fs::temp_directory_path() / ("persist_metrics_resume_" + std::to_string(::getpid()) + ".jsonl");
    const std::string e0 = R"({"type":"episode","episode":0,"start_step":0,"survival_steps":100})";
    const std::string e1 = R"({"type":"episode","episode":1,"start_step":100,"survival_steps":50})";
    const std::string e2 = R"({"type":"episode","episode":2,"start_step":150,"survival_steps":80})";
    {
        std::ofstream o(file);
        o << e0 << "\n" << e1 << "\n" << e2 << "\n"
          << R"({"type":"summary","episodes":3})" << "\n" << R"({"type":"evaluation","episodes":2})" << "\n";
    }
    std::int64_t kept = -1;
    {
        auto w = persist::train::MetricsWriter::resume(file, 180, &kept);  // e2 ended at 230: replayed
        w.write(nlohmann::json{{"type", "episode"}, {"episode", 2}, {"start_step", 150}, {"survival_steps", 90}});
    }
    CHECK(kept == 2);
    CHECK(slurp(file) == e0 + "\n" + e1 + "\n" +
                             R"({"episode":2,"start_step":150,"survival_steps":90,"type":"episode"})" + "\n");
    CHECK_FALSE(fs::exists(file.string() + ".resume.tmp"));

    // Exactly at an episode's end: kept.
    { auto w = persist::train::MetricsWriter::resume(file, 150, &kept); }
    CHECK(kept == 2);

    // A damaged line: IoError naming file and line; the file is left as it was.
    {
        std::ofstream o(file);
        o << e0 << "\n" << "{not json\n" << e1 << "\n";
    }
    const std::string before = slurp(file);
    CHECK_THROWS_AS(persist::train::MetricsWriter::resume(file, 1000), persist::IoError);
    CHECK_THROWS_WITH(persist::train::MetricsWriter::resume(file, 1000),
                      Catch::Contains(file.string() + ":2: not a JSON object"));
    CHECK(slurp(file) == before);
    {
        std::ofstream o(file);
        o << R"({"type":"episode","start_step":"zero","survival_steps":3})" << "\n";
    }
    CHECK_THROWS_WITH(persist::train::MetricsWriter::resume(file, 1000),
                      Catch::Contains(":1: episode line without integer start_step"));

    // No file yet: starts empty.
    fs::remove(file);
    {
        auto w = persist::train::MetricsWriter::resume(file, 10, &kept);
        w.write(nlohmann::json{{"type", "summary"}});
    }
    CHECK(kept == 0);
    CHECK(slurp(file) == std::string(R"({"type":"summary"})") + "\n");
    fs::remove(file);
}
