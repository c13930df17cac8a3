// PersistAgent::save / load: N steps, save, M steps (state A) equals fresh agent, load, M steps
// (state B) bitwise -- every parameter, optimizer moment, replay slot, counter, RNG position and
// metrics line -- mid-episode, with a curriculum, in float and double; refusals (other options,
// shapes, parts, curriculum, corrupted files) leave the agent unchanged.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <persist/io/checkpoint.hpp>
#include <persist/train/checkpointing.hpp>

#include "checkpointing/checkpoint_fixtures.hpp"
#include "train/train_fixtures.hpp"

using namespace ckpttest;
namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
    fs::path path;
    explicit TempDir(const std::string& tag) {
        path = fs::temp_directory_path() / ("persist_ckpt_" + tag + "_" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

/// Run n steps; then, if the episode just ended, one more so that the save happens mid-episode.
template <class A>
void run_to_mid_episode(A& a, std::int64_t n) {
    a.train(n);
    if (!a.in_episode()) a.step();
}

/// The test of the brief: N steps, save, M steps -> A; fresh, load, M steps -> B; A == B.
template <class T, class Intr, class MakeIntr>
void check_resume_exact(MakeIntr make_intr, std::uint64_t seed, const std::string& tag) {
    TempDir dir(tag);
    const fs::path file = dir.path / "agent.ckpt";
    const std::int64_t N = 230, M = 260;

    auto a = make_agent<T, Intr>(make_intr, seed);
    run_to_mid_episode(a, N);
    const std::int64_t saved_at = a.total_steps();
    REQUIRE(a.in_episode());                      // mid-episode: the environment state is in the file
    REQUIRE(a.updates() > 0);                     // networks and optimizers have moved
    REQUIRE(a.episodes() >= 2);                   // the curriculum has changed the set at least once
    REQUIRE(a.replay().size() == a.replay().capacity());  // the ring has wrapped
    REQUIRE(a.near_boundary() != nullptr);
    a.save(file, {{"note", tag}});
    std::vector<std::string> lines_a;
    record_lines(a, lines_a);
    a.train(M);
    const Snapshot A = snapshot(a);

    auto b = make_agent<T, Intr>(make_intr, seed);
    const Snapshot fresh = snapshot(b);
    const auto user = b.load(file);
    CHECK(user == nlohmann::json{{"note", tag}});
    CHECK(b.total_steps() == saved_at);
    CHECK(b.in_episode());
    std::vector<std::string> lines_b;
    record_lines(b, lines_b);
    b.train(M);
    const Snapshot B = snapshot(b);

    INFO("first difference: " << first_difference(A, B));
    CHECK(first_difference(A, B).empty());
    CHECK(A.total_bytes() > 10000);
    REQUIRE(lines_a.size() >= 3);  // several episodes ended after the save
    CHECK(lines_a == lines_b);
    const auto& cn = a.metrics().constraint_names();
    const auto& vn = a.metrics().variable_names();
    CHECK(persist::train::to_json(a.metrics().summary(), cn, vn) == persist::train::to_json(b.metrics().summary(), cn, vn));
    CHECK(a.constraints().constraint(0).threshold == b.constraints().constraint(0).threshold);
    CHECK(a.env().lower_bound(0) == b.env().lower_bound(0));
    CHECK(a.lambda_homeo() == b.lambda_homeo());

    // The comparison can fail: the same agent without the load ends elsewhere.
    auto c = make_agent<T, Intr>(make_intr, seed);
    c.train(M);
    CHECK_FALSE(first_difference(A, snapshot(c)).empty());
    CHECK_FALSE(first_difference(fresh, snapshot(b)).empty());
}

}  // namespace

TEST_CASE("resume is exact: GridLife + SAC + Surprise, double, mid-episode, curriculum", "[checkpoint][agent]") {
    check_resume_exact<double, persist::intrinsic::Surprise<double>>([](const auto& e) { return surprise<double>(e); },
                                                                     11, "surprise_d");
}

TEST_CASE("resume is exact: GridLife + SAC + RND, float, mid-episode, curriculum", "[checkpoint][agent]") {
    check_resume_exact<float, persist::intrinsic::RND<float>>([](const auto& e) { return rnd<float>(e); }, 12, "rnd_f");
}

TEST_CASE("saving does not change the run: save every 37 steps equals never saving", "[checkpoint][agent]") {
    TempDir dir("nochange");
    auto mk = [](const auto& e) { return surprise<float>(e); };
    auto a = make_agent<float, persist::intrinsic::Surprise<float>>(mk, 3);
    auto b = make_agent<float, persist::intrinsic::Surprise<float>>(mk, 3);
    for (int i = 0; i < 10; ++i) {
        a.train(37);
        a.save(dir.path / "a.ckpt");
    }
    b.train(370);
    const Snapshot sa = snapshot(a), sb = snapshot(b);
    INFO(first_difference(sa, sb));
    CHECK(first_difference(sa, sb).empty());
}

TEST_CASE("a policy drawing an odd number of normals per act still resumes exactly", "[checkpoint][agent]") {
    // One action dimension: SAC draws one normal per act, leaving a Box-Muller spare in the
    // agent's stream; the agent drops it at the end of every step, so (seed, position) is
    // the whole stream state.
    using Env1 = traintest::CorridorEnv;
    using A = persist::train::PersistAgent<Env1, persist::agents::SAC<double>, persist::shield::NullShield<double>,
                                           persist::intrinsic::NoIntrinsic<double>>;
    TempDir dir("odd");
    auto make = [] {
        Env1 e;
        e.horizon = 1000;  // long episodes: the env is not Stateful, so save between episodes
        persist::agents::SACOptions so;
        so.hidden = {8, 8};
        so.seed = 4;
        persist::agents::SAC<double> sac(e, so);
        Vec<double> mu(1), w(1);
        mu << 0.7;
        w << 1.0;
        return A(e, std::move(sac), {}, {}, persist::homeostasis::Homeostat<double>(mu, w, {"energy"}),
                 persist::viability::ConstraintSet<double>({"energy"}, {"energy >= 0.2"}),
                 persist::train::AgentOptions{.batch_size = 8, .update_every = 4, .gradient_steps = 1,
                                              .learning_starts = 0, .random_actions_before_learning = false,
                                              .replay_capacity = 64, .seed = 9});
    };
    auto a = make();
    // Every step acts once (one normal): after an odd number of steps a spare would be cached.
    // Save at an episode boundary (the env is not Stateful) after an odd number of steps.
    while (a.total_steps() < 40 || a.in_episode() || a.total_steps() % 2 == 0) {
        a.step();
        REQUIRE(a.total_steps() < 5000);
    }
    CHECK(a.can_save());
    a.save(dir.path / "odd.ckpt");
    a.train(50);
    auto b = make();
    b.load(dir.path / "odd.ckpt");
    b.train(50);
    auto c = make();  // never saved
    c.train(a.total_steps());
    const Snapshot sa = snapshot(a), sb = snapshot(b), sc = snapshot(c);
    INFO(first_difference(sa, sb) << " / " << first_difference(sa, sc));
    CHECK(first_difference(sa, sb).empty());
    CHECK(first_difference(sa, sc).empty());
}

TEST_CASE("an environment without visit_state: checkpoints between episodes only", "[checkpoint][agent]") {
    using A = persist::train::PersistAgent<traintest::CorridorEnv, traintest::FixedPolicy,
                                           persist::shield::NullShield<double>, persist::intrinsic::NoIntrinsic<double>>;
    static_assert(!persist::Stateful<traintest::CorridorEnv>);
    TempDir dir("boundary");
    auto make = [] {
        traintest::CorridorEnv e;
        traintest::FixedPolicy p;
        p.action = -0.1;  // energy falls: episodes end by violation
        Vec<double> mu(1), w(1);
        mu << 0.7;
        w << 1.0;
        return A(e, p, {}, {}, persist::homeostasis::Homeostat<double>(mu, w, {"energy"}),
                 persist::viability::ConstraintSet<double>({"energy"}, {"energy >= 0.2"}),
                 persist::train::AgentOptions{.batch_size = 4, .update_every = 2, .learning_starts = 0,
                                              .random_actions_before_learning = false, .replay_capacity = 16,
                                              .seed = 2});
    };
    auto a = make();
    a.train(5);
    REQUIRE(a.in_episode());
    CHECK_FALSE(a.can_save());
    CHECK_THROWS_WITH(a.save(dir.path / "x.ckpt"), Catch::Contains("save between episodes"));
    CHECK_FALSE(fs::exists(dir.path / "x.ckpt"));
    while (a.in_episode()) a.step();
    CHECK(a.can_save());
    a.save(dir.path / "x.ckpt");
    std::vector<std::string> la, lb;
    record_lines(a, la);
    a.train(30);
    auto b = make();
    b.load(dir.path / "x.ckpt");
    record_lines(b, lb);
    b.train(30);
    CHECK(first_difference(snapshot(a), snapshot(b)).empty());
    REQUIRE(la.size() >= 2);
    CHECK(la == lb);
}

TEST_CASE("refused loads name what differs and leave the agent unchanged", "[checkpoint][agent][errors]") {
    using SD = persist::intrinsic::Surprise<double>;
    auto mk = [](const auto& e) { return surprise<double>(e); };
    TempDir dir("refuse");
    const fs::path file = dir.path / "agent.ckpt";
    auto src = make_agent<double, SD>(mk, 21);
    src.train(120);
    src.save(file);

    auto expect_refused = [&](auto& agent, const std::string& needle) {
        agent.train(70);  // some state of its own
        const Snapshot before = snapshot(agent);
        const auto steps = agent.total_steps();
        CHECK_THROWS_AS(agent.load(file), persist::CheckpointError);
        CHECK_THROWS_WITH(agent.load(file), Catch::Contains(needle));
        CHECK(first_difference(before, snapshot(agent)).empty());
        CHECK(agent.total_steps() == steps);
        agent.step();  // and it still runs
    };

    SECTION("other AgentOptions") {
        auto opt = options(21);
        opt.batch_size = 12;
        auto b = make_agent<double, SD>(mk, 21, true, opt);
        expect_refused(b, "options.batch_size is 16 in the file, 12 in this agent");
    }
    SECTION("another seed") {
        auto b = make_agent<double, SD>(mk, 22);
        expect_refused(b, "options.seed");
    }
    SECTION("no curriculum installed") {
        auto b = make_agent<double, SD>(mk, 21, false);
        expect_refused(b, "curriculum");
    }
    SECTION("another curriculum") {
        auto b = make_agent<double, SD>(mk, 21, false);
        b.set_curriculum(curriculum<double>(999));
        expect_refused(b, "curriculum.total_steps is 400 in the file, 999 in this agent");
    }
    SECTION("other network shapes") {
        auto b = make_agent<double, SD>(mk, 21, true, options(21), 20);
        expect_refused(b, "policy.actor");
    }
    SECTION("another intrinsic part") {
        auto b = make_agent<double, persist::intrinsic::NoIntrinsic<double>>(
            [](const auto&) { return persist::intrinsic::NoIntrinsic<double>{}; }, 21);
        expect_refused(b, "intrinsic.");
    }
    SECTION("float agent, double checkpoint") {
        auto b = make_agent<float, persist::intrinsic::Surprise<float>>([](const auto& e) { return surprise<float>(e); }, 21);
        expect_refused(b, "scalar is \"f64\" in the file, \"f32\" in this agent");
    }
    SECTION("a checkpoint that is not an agent's") {
        persist::io::save_checkpoint(file, src.replay());
        auto b = make_agent<double, SD>(mk, 21);
        expect_refused(b, "not a PersistAgent checkpoint");
    }
}

TEST_CASE("corrupted, truncated or missing files: CheckpointError, agent unchanged", "[checkpoint][agent][errors]") {
    using SD = persist::intrinsic::Surprise<double>;
    auto mk = [](const auto& e) { return surprise<double>(e); };
    TempDir dir("corrupt");
    const fs::path file = dir.path / "agent.ckpt";
    auto src = make_agent<double, SD>(mk, 31);
    src.train(100);
    src.save(file);
    const auto size = fs::file_size(file);

    auto b = make_agent<double, SD>(mk, 31);
    b.train(50);
    const Snapshot before = snapshot(b);
    auto refused = [&](const std::string& needle) {
        CHECK_THROWS_WITH(b.load(file), Catch::Contains(needle));
        CHECK_THROWS_AS(b.load(file), persist::CheckpointError);
        CHECK(first_difference(before, snapshot(b)).empty());
    };
    SECTION("one flipped payload byte") {
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(static_cast<std::streamoff>(size - 100));
        char c = 0;
        f.read(&c, 1);
        c = static_cast<char>(c ^ 0x10);
        f.seekp(static_cast<std::streamoff>(size - 100));
        f.write(&c, 1);
        f.close();
        refused("checksum mismatch");
    }
    SECTION("truncated") {
        fs::resize_file(file, size / 2);
        refused("truncated");
    }
    SECTION("missing") {
        fs::remove(file);
        refused("cannot open");
    }
    // The intact file still loads into b afterwards (b was not damaged by the attempts).
    src.save(file);
    b.load(file);
    CHECK(b.total_steps() == src.total_steps());
}

TEST_CASE("io::save_checkpoint / load_checkpoint on the agent itself resume exactly too", "[checkpoint][agent]") {
    using RF = persist::intrinsic::RND<float>;
    auto mk = [](const auto& e) { return rnd<float>(e); };
    TempDir dir("io");
    auto a = make_agent<float, RF>(mk, 41);
    run_to_mid_episode(a, 150);
    persist::io::save_checkpoint(dir.path / "raw.ckpt", a);
    a.train(120);
    auto b = make_agent<float, RF>(mk, 41);
    persist::io::load_checkpoint(dir.path / "raw.ckpt", b);  // derived state rebuilt at the next step
    b.train(120);
    CHECK(first_difference(snapshot(a), snapshot(b)).empty());
}

TEST_CASE("PeriodicCheckpoints: cadence, keep the newest, resume from the latest", "[checkpoint][periodic]") {
    using SF = persist::intrinsic::Surprise<float>;
    auto mk = [](const auto& e) { return surprise<float>(e); };
    TempDir dir("periodic");
    const fs::path ck = dir.path / "ck";
    CHECK_FALSE(persist::train::latest_checkpoint(ck).has_value());
    CHECK_THROWS_AS(persist::train::PeriodicCheckpoints(ck, -1, 3), persist::ConfigError);
    CHECK_THROWS_AS(persist::train::PeriodicCheckpoints(ck, 10, 0), persist::ConfigError);
    CHECK(persist::train::checkpoint_file_name(1234) == "agent-000000001234.ckpt");
    CHECK(persist::train::checkpoint_step_of("agent-000000001234.ckpt") == 1234);
    CHECK_FALSE(persist::train::checkpoint_step_of("agent-12x.ckpt").has_value());
    CHECK_FALSE(persist::train::checkpoint_step_of("notes.txt").has_value());

    persist::train::PeriodicCheckpoints periodic(ck, 50, 2);
    auto a = make_agent<float, SF>(mk, 51);
    std::vector<std::int64_t> saved;
    for (int i = 0; i < 260; ++i) {
        a.step();
        if (auto p = periodic.maybe_save(a)) saved.push_back(*persist::train::checkpoint_step_of(*p));
    }
    CHECK(saved == std::vector<std::int64_t>{50, 100, 150, 200, 250});
    const auto files = persist::train::list_checkpoints(ck);
    REQUIRE(files.size() == 2);
    CHECK(files[0].filename() == "agent-000000000200.ckpt");
    CHECK(files[1].filename() == "agent-000000000250.ckpt");
    const auto latest = persist::train::latest_checkpoint(ck);
    REQUIRE(latest);
    CHECK(*latest == files[1]);

    // Resume from the latest and continue: same as the run that never stopped.
    a.train(40);
    auto b = make_agent<float, SF>(mk, 51);
    b.load(*latest);
    persist::train::PeriodicCheckpoints resumed(ck, 50, 2);
    for (int i = 0; i < 50; ++i) {
        b.step();
        if (resumed.maybe_save(b)) saved.push_back(b.total_steps());
    }
    CHECK(saved.back() == 300);  // the next multiple after the resume point, not 250 again
    CHECK(first_difference(snapshot(a), snapshot(b)).empty());
}
