// Demonstrations: the buffer, the JSON-lines and CSV loaders (fixtures under models/data/),
// exact save -> load round trips, and every error path with "<file>:<line>:" in the message.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <unistd.h>

#include "models/models_fixtures.hpp"
#include "persist/replay/demonstrations.hpp"

namespace fs = std::filesystem;
using persist::ConfigError;
using persist::Error;
using persist::Index;
using persist::IoError;
using persist::Mat;
using persist::Rng;
using persist::ShapeError;
using persist::Vec;
using persist::replay::DemonstrationBuffer;
using persist::replay::load_demonstrations;
using persist::replay::save_demonstrations;

namespace {

const fs::path data_dir{PERSIST_MODELS_DATA_DIR};

/// A scratch directory removed at scope exit.
struct TempDir {
    fs::path path;
    TempDir() : path(fs::temp_directory_path() / ("persist_demos_" + std::to_string(::getpid()))) {
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path write(const std::string& name, const std::string& text) const {
        const fs::path p = path / name;
        std::ofstream(p, std::ios::binary) << text;
        return p;
    }
};

/// The message of the persist::Error subtype E thrown by f (fails the test otherwise).
template <class E, class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        FAIL("wrong exception type: " << e.what());
    }
    FAIL("no exception");
    return {};
}

template <class T>
bool same_bits(const DemonstrationBuffer<T>& a, const DemonstrationBuffer<T>& b) {
    auto eq = [](const auto& x, const auto& y) {
        return x.rows() == y.rows() && x.cols() == y.cols() &&
               std::memcmp(x.data(), y.data(), sizeof(T) * static_cast<std::size_t>(x.size())) == 0;
    };
    return a.episodes() == b.episodes() && eq(a.states(), b.states()) && eq(a.actions(), b.actions()) &&
           eq(a.observations(), b.observations());
}

}  // namespace

TEST_CASE("demonstration fixtures load: JSON lines and CSV agree", "[models][demonstrations]") {
    const auto j = load_demonstrations<double>(data_dir / "gridlife_demos.jsonl", 3, 2);
    const auto c = load_demonstrations<double>(data_dir / "gridlife_demos.csv", 3, 2);
    CHECK(j.size() == 4);  // the empty line is skipped
    CHECK(j.num_episodes() == 2);
    CHECK(j.episode(2) == 1);
    CHECK(j.states()(1, 3) == 0.4525);
    CHECK(j.actions()(0, 2) == -1.0);
    CHECK(j.observation_dim() == 0);  // "o" on the last line is not read
    CHECK(same_bits(j, c));
    // CSV columns in any order, spaces around names, CRLF line ends, no episode column
    const auto r = load_demonstrations<float>(data_dir / "reordered_crlf.csv", 3, 2);
    REQUIRE(r.size() == 1);
    CHECK(r.episode(0) == 0);
    CHECK(r.states()(0, 0) == 0.7f);
    CHECK(r.states()(2, 0) == 0.9f);
    CHECK(r.actions()(1, 0) == -0.5f);
    // only the states (action_dim 0: "a" is not read)
    const auto s = load_demonstrations<double>(data_dir / "gridlife_demos.jsonl", 3, 0);
    CHECK(s.action_dim() == 0);
    CHECK(s.size() == 4);
}

TEMPLATE_TEST_CASE("demonstrations: save -> load round-trips bitwise (JSON lines and CSV)", "[models][demonstrations]",
                   float, double) {
    using T = TestType;
    TempDir tmp;
    Rng rng(1);
    DemonstrationBuffer<T> buf(3, 2, 4);
    for (int k = 0; k < 50; ++k) {
        Vec<T> x = modtest::uniform<T>(3, 1, rng, -1e3, 1e3), a = modtest::uniform<T>(2, 1, rng, -1, 1),
               o = modtest::uniform<T>(4, 1, rng, -1e-8, 1e-8);
        if (k == 3) x(0) = std::numeric_limits<T>::denorm_min();
        if (k == 4) x(1) = std::numeric_limits<T>::max();
        if (k == 5) a(0) = T(-0.0);
        buf.add(k / 7 + (k == 49 ? 1000000000000LL : 0), x, a, o);
    }
    for (const char* name : {"demos.jsonl", "demos.csv"}) {
        const fs::path p = tmp.path / name;
        save_demonstrations(p, buf);
        const auto back = load_demonstrations<T>(p, 3, 2, 4);
        INFO(name);
        CHECK(back.size() == 50);
        CHECK(same_bits(buf, back));
        CHECK(back.num_episodes() == buf.num_episodes());
    }
    // observations present in the file but not requested
    const fs::path p = tmp.path / "demos.csv";
    const auto no_obs = load_demonstrations<T>(p, 3, 2);
    CHECK(no_obs.observation_dim() == 0);
    CHECK(no_obs.states() == buf.states());
}

TEST_CASE("demonstration buffer: add, sample, errors", "[models][demonstrations]") {
    DemonstrationBuffer<double> buf(2, 1);
    CHECK(buf.empty());
    Rng rng(2);
    Mat<double> out;
    CHECK_THROWS_AS(buf.sample_states(4, rng, out), Error);
    buf.add(0, Vec<double>::Constant(2, 1.0), Vec<double>::Constant(1, 0.0));
    buf.add(3, Vec<double>::Constant(2, 2.0), Vec<double>::Constant(1, 0.0));
    buf.sample_states(100, rng, out);
    CHECK(out.rows() == 2);
    CHECK(out.cols() == 100);
    CHECK(((out.array() == 1.0) || (out.array() == 2.0)).all());
    CHECK((out.row(0).array() == 1.0).count() > 20);
    CHECK((out.row(0).array() == 2.0).count() > 20);
    CHECK_THROWS_AS(buf.sample_states(0, rng, out), ConfigError);
    CHECK_THROWS_AS(buf.add(0, Vec<double>::Zero(3), Vec<double>::Zero(1)), ShapeError);
    CHECK_THROWS_AS(buf.add(0, Vec<double>::Zero(2), Vec<double>::Zero(2)), ShapeError);
    CHECK_THROWS_AS(buf.add(-1, Vec<double>::Zero(2), Vec<double>::Zero(1)), Error);
    CHECK_THROWS_AS(buf.add(0, Vec<double>::Constant(2, std::nan("")), Vec<double>::Zero(1)), Error);
    CHECK_THROWS_AS(DemonstrationBuffer<double>(0, 1), ConfigError);
    CHECK_THROWS_AS(DemonstrationBuffer<double>(2, -1), ConfigError);
}

TEST_CASE("demonstration files: every error names the file and the line", "[models][demonstrations][errors]") {
    using Catch::Contains;
    TempDir tmp;
    auto jl = [&](const std::string& text) { return tmp.write("d.jsonl", text); };
    auto cv = [&](const std::string& text) { return tmp.write("d.csv", text); };
    auto load = [](const fs::path& p, Index obs = 0) { return [p, obs] { load_demonstrations<double>(p, 3, 2, obs); }; };
    const std::string ok = R"({"episode": 0, "x": [0.7, 0.5, 0.9], "a": [0.1, 0.2]})";

    SECTION("missing file, unknown extension, empty file") {
        CHECK_THAT(error_of<IoError>(load(tmp.path / "nope.jsonl")), Contains("nope.jsonl") && Contains("no such file"));
        CHECK_THAT(error_of<IoError>(load(tmp.write("d.txt", ok))), Contains("d.txt") && Contains("unknown extension"));
        CHECK_THAT(error_of<IoError>(load(jl("\n\n"))), Contains("d.jsonl") && Contains("no demonstration steps"));
        CHECK_THAT(error_of<IoError>(load(cv(""))), Contains("d.csv") && Contains("no demonstration steps"));
    }
    SECTION("fixtures: wrong dimension, malformed JSON, non-finite CSV value") {
        CHECK_THAT(error_of<ShapeError>(load(data_dir / "bad_dimension.jsonl")),
                   Contains("bad_dimension.jsonl:2:") && Contains("\"x\" has 2 entries, expected internal_dim = 3"));
        CHECK_THAT(error_of<IoError>(load(data_dir / "bad_json.jsonl")),
                   Contains("bad_json.jsonl:3:") && Contains("malformed JSON"));
        CHECK_THAT(error_of<IoError>(load(data_dir / "bad_value.csv")),
                   Contains("bad_value.csv:3:") && Contains("column 3 (x1)") && Contains("not finite"));
    }
    SECTION("JSON lines") {
        CHECK_THAT(error_of<IoError>(load(jl(ok + "\n[1, 2]\n"))), Contains("d.jsonl:2:") && Contains("expected a JSON object"));
        CHECK_THAT(error_of<IoError>(load(jl(ok + "\n" + ok + "\n{\"x\": [1, 2, 3], \"a\": [0, 0]}\n"))),
                   Contains("d.jsonl:3:") && Contains("missing \"episode\""));
        CHECK_THAT(error_of<IoError>(load(jl("{\"episode\": 0, \"a\": [0, 0]}"))),
                   Contains("d.jsonl:1:") && Contains("missing \"x\""));
        CHECK_THAT(error_of<IoError>(load(jl("{\"episode\": 0, \"x\": [1, 2, 3]}"))),
                   Contains("d.jsonl:1:") && Contains("missing \"a\" (action_dim = 2)"));
        CHECK_THAT(error_of<ShapeError>(load(jl("{\"episode\": 0, \"x\": [1, 2, 3], \"a\": [0, 0, 0]}"))),
                   Contains("d.jsonl:1:") && Contains("\"a\" has 3 entries, expected action_dim = 2"));
        CHECK_THAT(error_of<IoError>(load(jl("{\"episode\": 0, \"x\": [1, \"2\", 3], \"a\": [0, 0]}"))),
                   Contains("d.jsonl:1:") && Contains("\"x\"[1] is not a number"));
        CHECK_THAT(error_of<IoError>(load(jl("{\"episode\": 0, \"x\": [1, 2, 1e999], \"a\": [0, 0]}"))),
                   Contains("d.jsonl:1:"));
        CHECK_THAT(error_of<IoError>(load(jl("{\"episode\": -1, \"x\": [1, 2, 3], \"a\": [0, 0]}"))),
                   Contains("d.jsonl:1:") && Contains("\"episode\" must be an integer"));
        CHECK_THAT(error_of<IoError>(load(jl("{\"episode\": 0.5, \"x\": [1, 2, 3], \"a\": [0, 0]}"))),
                   Contains("\"episode\" must be an integer"));
        CHECK_THAT(error_of<IoError>(load(jl("{\"episode\": 0, \"x\": [1, 2, 3], \"a\": [0, 0], \"obs\": []}"))),
                   Contains("d.jsonl:1:") && Contains("unknown key \"obs\""));
        CHECK_THAT(error_of<IoError>(load(jl("{\"episode\": 0, \"x\": 3, \"a\": [0, 0]}"))),
                   Contains("\"x\" must be an array"));
        // observations requested: "o" required with obs_dim entries
        CHECK_THAT(error_of<IoError>(load(jl(ok), 2)), Contains("d.jsonl:1:") && Contains("missing \"o\""));
        CHECK_THAT(error_of<ShapeError>(load(jl(ok.substr(0, ok.size() - 1) + ", \"o\": [1]}"), 2)),
                   Contains("d.jsonl:1:") && Contains("expected observation_dim = 2"));
        // float overflow is non-finite after conversion
        const auto pf = jl("{\"episode\": 0, \"x\": [1, 2, 1e300], \"a\": [0, 0]}");
        CHECK_THAT(error_of<IoError>([&] { load_demonstrations<float>(pf, 3, 2); }),
                   Contains("d.jsonl:1:") && Contains("not finite"));
        CHECK_NOTHROW(load_demonstrations<double>(pf, 3, 2));
    }
    SECTION("CSV") {
        const std::string head = "episode,x0,x1,x2,a0,a1\n";
        CHECK_THAT(error_of<IoError>(load(cv(head + "0,1,2,3,4,5\n0,1,2,3,4\n"))),
                   Contains("d.csv:3:") && Contains("expected 6 fields (as the header), got 5"));
        CHECK_THAT(error_of<IoError>(load(cv(head + "0,1,2,x,4,5\n"))),
                   Contains("d.csv:2:") && Contains("column 4 (x2): not a number: \"x\""));
        CHECK_THAT(error_of<IoError>(load(cv(head + "0,1,2,inf,4,5\n"))), Contains("d.csv:2:") && Contains("not finite"));
        CHECK_THAT(error_of<IoError>(load(cv(head + "0,1,2,1e999,4,5\n"))), Contains("d.csv:2:") && Contains("not finite"));
        CHECK_THAT(error_of<IoError>(load(cv(head + "0,1,,3,4,5\n"))), Contains("d.csv:2:") && Contains("not a number"));
        CHECK_THAT(error_of<IoError>(load(cv(head + "-2,1,2,3,4,5\n"))), Contains("d.csv:2:") && Contains("\"episode\""));
        CHECK_THAT(error_of<ShapeError>(load(cv("episode,x0,x1,a0,a1\n0,1,2,3,4\n"))),
                   Contains("d.csv:1:") && Contains("missing column \"x2\" (internal_dim = 3)"));
        CHECK_THAT(error_of<ShapeError>(load(cv("x0,x1,x2,x3,a0,a1\n1,2,3,4,5,6\n"))),
                   Contains("d.csv:1:") && Contains("\"x3\" is beyond internal_dim = 3"));
        CHECK_THAT(error_of<IoError>(load(cv("\nx0,x1,x2,a0,a1,speed\n1,2,3,4,5,6\n"))),
                   Contains("d.csv:2:") && Contains("unknown column \"speed\""));
        CHECK_THAT(error_of<IoError>(load(cv("x0,x1,x2,a0,a1,x1\n1,2,3,4,5,6\n"))),
                   Contains("d.csv:1:") && Contains("duplicate column \"x1\""));
        CHECK_THAT(error_of<IoError>(load(cv("x0,x01,x2,a0,a1\n1,2,3,4,5\n"))), Contains("unknown column \"x01\""));
        CHECK_THAT(error_of<ShapeError>(load(cv(head + "0,1,2,3,4,5\n"), 1)),
                   Contains("d.csv:1:") && Contains("missing column \"o0\""));
        // a leading '+' and spaces are fine
        const auto good = load_demonstrations<double>(cv(head + "7, +1 ,2,3,4,5\n"), 3, 2);
        CHECK(good.episode(0) == 7);
        CHECK(good.states()(0, 0) == 1.0);
    }
}
