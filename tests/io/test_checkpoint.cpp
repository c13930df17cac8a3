#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "persist/core/random.hpp"
#include "persist/core/types.hpp"
#include "persist/io/checkpoint.hpp"

namespace fs = std::filesystem;
using persist::CheckpointError;
using persist::Vec;
using namespace persist::io;

namespace {

// ---------------------------------------------------------------- mock stateful objects

/// Stands in for a network + its RNG: weights, moments, a step counter, an RNG position.
template <class W = float>
struct MockT {
    Vec<W> weights;
    Vec<double> moments;
    std::int64_t step = 0;
    std::uint64_t rng_pos = 0;

    MockT(Eigen::Index nw = 10, Eigen::Index nm = 6) : weights(Vec<W>::Zero(nw)), moments(Vec<double>::Zero(nm)) {}

    template <class V>
    void visit_state(V&& v) {
        v(persist::state_tensor("weights", weights.data(), {weights.size()}));
        v(persist::state_tensor("moments", moments.data(), {moments.size()}));
        v(persist::state_tensor("step", &step, {}));
        v(persist::state_tensor("rng_pos", &rng_pos, {}));
    }
    void randomize(std::uint64_t seed) {
        persist::Rng r(seed);
        for (auto& x : weights) x = r.normal<W>();
        for (auto& x : moments) x = r.normal<double>();
        step = static_cast<std::int64_t>(r.next_u64());
        rng_pos = r.next_u64();
    }
    bool bitwise_equal(const MockT& o) const {
        return weights.size() == o.weights.size() && moments.size() == o.moments.size() &&
               std::memcmp(weights.data(), o.weights.data(), sizeof(W) * static_cast<std::size_t>(weights.size())) == 0 &&
               std::memcmp(moments.data(), o.moments.data(), sizeof(double) * static_cast<std::size_t>(moments.size())) == 0 &&
               step == o.step && rng_pos == o.rng_pos;
    }
};
using Mock = MockT<float>;

/// Stands in for an optimizer: first and second moments and a step count.
struct MockOpt {
    Vec<double> m, v;
    std::int64_t t = 0;
    explicit MockOpt(Eigen::Index n = 10) : m(Vec<double>::Zero(n)), v(Vec<double>::Zero(n)) {}
    template <class V>
    void visit_state(V&& vis) {
        vis(persist::state_tensor("m", m.data(), {m.size()}));
        vis(persist::state_tensor("v", v.data(), {v.size()}));
        vis(persist::state_tensor("t", &t, {}));
    }
    void randomize(std::uint64_t seed) {
        persist::Rng r(seed);
        for (auto& x : m) x = r.normal<double>();
        for (auto& x : v) x = r.uniform<double>();
        t = static_cast<std::int64_t>(r.below(1000000));
    }
    bool bitwise_equal(const MockOpt& o) const {
        return m.size() == o.m.size() && v.size() == o.v.size() &&
               std::memcmp(m.data(), o.m.data(), sizeof(double) * static_cast<std::size_t>(m.size())) == 0 &&
               std::memcmp(v.data(), o.v.data(), sizeof(double) * static_cast<std::size_t>(v.size())) == 0 && t == o.t;
    }
};

/// A rank-2 tensor, to check shapes of rank > 1.
struct MockMat {
    persist::Mat<float> w;
    MockMat(Eigen::Index r = 3, Eigen::Index c = 4) : w(persist::Mat<float>::Zero(r, c)) {}
    template <class V>
    void visit_state(V&& v) {
        v(persist::state_tensor("w", w.data(), {w.rows(), w.cols()}));
    }
};

/// An agent checkpoint: actor + critic + optimizer + counters, nested with visit_nested.
struct Agent {
    Mock actor{12, 4};
    Mock critic{20, 3};
    MockOpt opt{12};
    std::int64_t env_steps = 0;

    template <class V>
    void visit_state(V&& v) {
        persist::visit_nested(actor, "actor", v);
        persist::visit_nested(critic, "critic", v);
        persist::visit_nested(opt, "opt", v);
        v(persist::state_tensor("env_steps", &env_steps, {}));
    }
    void randomize(std::uint64_t seed) {
        actor.randomize(seed);
        critic.randomize(seed + 1);
        opt.randomize(seed + 2);
        env_steps = static_cast<std::int64_t>(seed * 1000 + 7);
    }
    bool bitwise_equal(const Agent& o) const {
        return actor.bitwise_equal(o.actor) && critic.bitwise_equal(o.critic) && opt.bitwise_equal(o.opt) &&
               env_steps == o.env_steps;
    }
};

/// Lets a test hand out arbitrary (also invalid) TensorRefs.
struct RawRefs {
    std::vector<persist::TensorRef> refs;
    template <class V>
    void visit_state(V&& v) {
        for (const auto& t : refs) v(t);
    }
};

struct NotStateful {
    int x;
};

static_assert(persist::Stateful<Mock>);
static_assert(persist::Stateful<Agent>);
static_assert(persist::Stateful<MockMat>);
static_assert(persist::Stateful<RawRefs>);
static_assert(!persist::Stateful<NotStateful>);
static_assert(!persist::Stateful<int>);

// CheckpointWriter::add refuses temporaries (they would dangle before save()).
template <class T>
concept WriterAcceptsRvalue = requires(CheckpointWriter w, T&& t) { w.add("", std::move(t)); };
template <class T>
concept WriterAcceptsLvalue = requires(CheckpointWriter w, const T& t) { w.add("", t); };
static_assert(WriterAcceptsLvalue<Mock>);
static_assert(!WriterAcceptsRvalue<Mock>);

// ---------------------------------------------------------------- file helpers

struct TempDir {
    fs::path path;
    TempDir() {
        static std::atomic<int> n{0};
        path = fs::temp_directory_path() /
               ("persist_test_io_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(path, ec);
    }
    fs::path operator/(const std::string& name) const { return path / name; }
    std::set<std::string> listing() const {
        std::set<std::string> s;
        for (const auto& e : fs::directory_iterator(path)) s.insert(e.path().filename().string());
        return s;
    }
};

std::vector<unsigned char> read_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::vector<unsigned char>& b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
std::uint32_t u32_at(const std::vector<unsigned char>& b, std::size_t off) {
    std::uint32_t v;
    std::memcpy(&v, b.data() + off, 4);
    return v;
}
std::uint64_t u64_at(const std::vector<unsigned char>& b, std::size_t off) {
    std::uint64_t v;
    std::memcpy(&v, b.data() + off, 8);
    return v;
}

/// An independent writer of the documented layout (docs/checkpoint.md), used to craft files
/// with valid checksums around an arbitrary header.
std::vector<unsigned char> pack(const std::string& header, const std::vector<unsigned char>& payload,
                                std::uint32_t version = 1) {
    const std::size_t payload_at = (40 + header.size() + 7) / 8 * 8;
    std::vector<unsigned char> f(payload_at + payload.size() + 4, 0);
    std::memcpy(f.data(), "PERSISTCKPT", 12);  // 11 letters + NUL
    std::memcpy(f.data() + 12, &version, 4);
    const std::uint64_t h = header.size(), s = payload.size();
    std::memcpy(f.data() + 16, &h, 8);
    std::memcpy(f.data() + 24, &s, 8);
    const std::uint32_t pcrc = crc32c(f.data(), 32);
    std::memcpy(f.data() + 32, &pcrc, 4);
    std::memcpy(f.data() + 40, header.data(), header.size());
    if (!payload.empty()) std::memcpy(f.data() + payload_at, payload.data(), payload.size());
    const std::uint32_t crc = crc32c(f.data(), payload_at + payload.size());
    std::memcpy(f.data() + payload_at + payload.size(), &crc, 4);
    return f;
}

/// Runs `f`, requires a CheckpointError whose message contains every one of `parts`.
template <class F>
std::string require_error(F&& f, std::initializer_list<std::string> parts) {
    try {
        f();
    } catch (const CheckpointError& e) {
        const std::string msg = e.what();
        for (const auto& p : parts) {
            INFO("message: " << msg);
            CHECK(msg.find(p) != std::string::npos);
        }
        return msg;
    }
    FAIL("expected a CheckpointError containing " << *parts.begin());
    return {};
}

}  // namespace

// ================================================================ checksum

TEST_CASE("crc32c: RFC 3720 check value, piecewise = whole, slicing = bytewise", "[io][crc]") {
    CHECK(crc32c("123456789", 9) == 0xE3069283u);
    CHECK(crc32c("", 0) == 0u);
    // 32 bytes of zeros: RFC 3720 B.4.
    const std::vector<unsigned char> zeros(32, 0), ones(32, 0xFF);
    CHECK(crc32c(zeros.data(), 32) == 0x8A9136AAu);
    CHECK(crc32c(ones.data(), 32) == 0x62A8AB43u);

    persist::Rng r(5);
    std::vector<unsigned char> data(300);
    for (auto& b : data) b = static_cast<unsigned char>(r() & 0xFF);
    for (std::size_t n = 0; n <= data.size(); n += 7) {
        std::uint32_t bytewise = 0;
        for (std::size_t i = 0; i < n; ++i) bytewise = crc32c(&data[i], 1, bytewise);
        CHECK(crc32c(data.data(), n) == bytewise);
        const std::size_t cut = n / 3;
        CHECK(crc32c(data.data() + cut, n - cut, crc32c(data.data(), cut)) == bytewise);
    }
}

// ================================================================ round trips

TEST_CASE("checkpoint: single object round-trips bitwise with metadata", "[io]") {
    TempDir dir;
    const auto path = dir / "mock.ckpt";
    Mock a(100, 37);
    a.randomize(1);
    const nlohmann::json meta = {{"env_steps", 123456789012345ull},
                                 {"algo", "SAC"},
                                 {"lr", 3e-4},
                                 {"nested", {{"list", {1, 2, 3}}, {"unicode", "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93"}}},
                                 {"u64max", std::numeric_limits<std::uint64_t>::max()},
                                 {"i64min", std::numeric_limits<std::int64_t>::min()}};
    save_checkpoint(path, a, meta);

    Mock b(100, 37);
    const auto got = load_checkpoint(path, b);
    CHECK(b.bitwise_equal(a));
    CHECK(got == meta);
    CHECK(got["u64max"].get<std::uint64_t>() == std::numeric_limits<std::uint64_t>::max());
    CHECK(got["i64min"].get<std::int64_t>() == std::numeric_limits<std::int64_t>::min());
    CHECK(dir.listing() == std::set<std::string>{"mock.ckpt"});

    SECTION("same object, same metadata -> identical bytes") {
        const auto path2 = dir / "mock2.ckpt";
        save_checkpoint(path2, a, meta);
        CHECK(read_bytes(path) == read_bytes(path2));
    }
    SECTION("default metadata is an empty object") {
        save_checkpoint(path, a);
        CHECK(load_checkpoint(path, b) == nlohmann::json::object());
    }
    SECTION("a relative path (no directory part) works") {
        const auto old = fs::current_path();
        fs::current_path(dir.path);
        save_checkpoint("rel.ckpt", a);
        Mock c(100, 37);
        load_checkpoint("rel.ckpt", c);
        fs::current_path(old);
        CHECK(c.bitwise_equal(a));
    }
}

TEST_CASE("checkpoint: special values round-trip bitwise", "[io]") {
    TempDir dir;
    Mock a(8, 8);
    const std::uint32_t fbits[8] = {0x7FC00001u, 0xFFC12345u, 0x7F800001u, 0x80000000u,
                                    0x00000001u, 0x7F800000u, 0xFF800000u, 0x007FFFFFu};
    const std::uint64_t dbits[8] = {0x7FF8000000000001ull, 0xFFF0000000000001ull, 0x8000000000000000ull,
                                    0x0000000000000001ull, 0x7FF0000000000000ull, 0x000FFFFFFFFFFFFFull,
                                    0x7FEFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull};
    std::memcpy(a.weights.data(), fbits, sizeof(fbits));
    std::memcpy(a.moments.data(), dbits, sizeof(dbits));
    const std::int64_t ints[] = {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(),
                                 -1, 0};
    const std::uint64_t uints[] = {std::numeric_limits<std::uint64_t>::max(), 0, 1ull << 63, 12345};
    for (int i = 0; i < 4; ++i) {
        a.step = ints[i];
        a.rng_pos = uints[i];
        save_checkpoint(dir / "s.ckpt", a);
        Mock b(8, 8);
        b.randomize(99);
        load_checkpoint(dir / "s.ckpt", b);
        CHECK(b.bitwise_equal(a));
    }
}

TEST_CASE("checkpoint: nested objects, writer/reader prefixes, subsets", "[io]") {
    TempDir dir;
    Agent a;
    a.randomize(3);

    SECTION("one struct nesting everything with visit_nested") {
        save_checkpoint(dir / "agent.ckpt", a, {{"tag", "nested"}});
        Agent b;
        CHECK(load_checkpoint(dir / "agent.ckpt", b)["tag"] == "nested");
        CHECK(b.bitwise_equal(a));
        const auto info = inspect_checkpoint(dir / "agent.ckpt");
        REQUIRE(info.find("actor.weights") != nullptr);
        REQUIRE(info.find("opt.m") != nullptr);
        CHECK(info.find("env_steps")->rank == 0);
    }
    SECTION("CheckpointWriter / CheckpointReader under prefixes") {
        MockMat mat;
        mat.w.setRandom();
        CheckpointWriter w;
        w.add("actor", a.actor).add("critic", a.critic).add("opt", a.opt).add("extra", mat);
        w.save(dir / "multi.ckpt", {{"k", 1}});

        Agent b;
        MockMat mat2;
        CheckpointReader r(dir / "multi.ckpt");
        CHECK(r.metadata()["k"] == 1);
        r.add("actor", b.actor).add("critic", b.critic).add("opt", b.opt).add("extra", mat2);
        CHECK(r.load()["k"] == 1);
        CHECK(b.actor.bitwise_equal(a.actor));
        CHECK(b.critic.bitwise_equal(a.critic));
        CHECK(b.opt.bitwise_equal(a.opt));
        CHECK(mat2.w == mat.w);
        CHECK(r.info().find("extra.w")->shape_string() == "[3, 4]");
    }
    SECTION("prefixed writer and visit_nested give the same names") {
        CheckpointWriter w;
        std::int64_t steps = a.env_steps;
        RawRefs counters{{persist::state_tensor("env_steps", &steps, {})}};
        w.add("actor", a.actor).add("critic", a.critic).add("opt", a.opt).add("", counters);
        w.save(dir / "w.ckpt");
        Agent b;
        load_checkpoint(dir / "w.ckpt", b);
        CHECK(b.bitwise_equal(a));
    }
    SECTION("extra entries are an error unless ExtraEntries::ignore") {
        save_checkpoint(dir / "agent.ckpt", a);
        Mock actor(12, 4);
        const Mock before = actor;
        CheckpointReader r(dir / "agent.ckpt");
        r.add("actor", actor);
        require_error([&] { r.load(); }, {"agent.ckpt", "unexpected entry 'critic.weights'"});
        CHECK(actor.bitwise_equal(before));
        r.load(ExtraEntries::ignore);
        CHECK(actor.bitwise_equal(a.actor));

        Mock whole(12, 4);
        require_error([&] { load_checkpoint(dir / "agent.ckpt", whole); }, {"missing entry 'weights'"});
    }
    SECTION("a failing object leaves the objects before it unchanged (all or nothing)") {
        CheckpointWriter().add("actor", a.actor).add("critic", a.critic).save(dir / "two.ckpt");
        Mock actor(12, 4), critic(21, 3);  // critic has the wrong size
        actor.randomize(50);
        critic.randomize(51);
        const Mock a0 = actor, c0 = critic;
        CheckpointReader r(dir / "two.ckpt");
        r.add("actor", actor).add("critic", critic);
        require_error([&] { r.load(); }, {"entry 'critic.weights' has shape [20], object expects [21]"});
        CHECK(actor.bitwise_equal(a0));
        CHECK(critic.bitwise_equal(c0));
    }
    SECTION("empty tensors are fine") {
        Mock e(0, 0);
        e.step = 5;
        save_checkpoint(dir / "empty.ckpt", e);
        Mock f(0, 0);
        load_checkpoint(dir / "empty.ckpt", f);
        CHECK(f.step == 5);
        CHECK(inspect_checkpoint(dir / "empty.ckpt").find("weights")->shape_string() == "[0]");
    }
}

// ================================================================ the byte layout

TEST_CASE("checkpoint: bytes follow docs/checkpoint.md", "[io][format]") {
    TempDir dir;
    Mock a(3, 2);  // 12 bytes of weights: the next entry needs 4 bytes of padding
    a.randomize(7);
    save_checkpoint(dir / "f.ckpt", a, {{"x", 1}});
    const auto b = read_bytes(dir / "f.ckpt");

    REQUIRE(b.size() >= 44);
    CHECK(std::memcmp(b.data(), "PERSISTCKPT\0", 12) == 0);
    CHECK(u32_at(b, 12) == 1u);
    const std::uint64_t h = u64_at(b, 16), s = u64_at(b, 24);
    CHECK(u32_at(b, 32) == crc32c(b.data(), 32));
    CHECK(u32_at(b, 36) == 0u);
    const std::uint64_t p = (40 + h + 7) / 8 * 8;
    CHECK(b.size() == p + s + 4);
    CHECK(s % 8 == 0);
    for (std::uint64_t i = 40 + h; i < p; ++i) CHECK(b[i] == 0);
    CHECK(u32_at(b, static_cast<std::size_t>(p + s)) == crc32c(b.data(), static_cast<std::size_t>(p + s)));

    const auto header = nlohmann::json::parse(b.begin() + 40, b.begin() + static_cast<long>(40 + h));
    CHECK(header["library_version"] == PERSIST_VERSION_STRING);
    CHECK(header["metadata"] == nlohmann::json{{"x", 1}});
    const auto& e = header["entries"];
    REQUIRE(e.size() == 4);
    CHECK(e[0] == nlohmann::json{{"name", "weights"}, {"dtype", "f32"}, {"shape", {3}}, {"offset", 0}, {"nbytes", 12}});
    CHECK(e[1] == nlohmann::json{{"name", "moments"}, {"dtype", "f64"}, {"shape", {2}}, {"offset", 16}, {"nbytes", 16}});
    CHECK(e[2] == nlohmann::json{{"name", "step"}, {"dtype", "i64"}, {"shape", nlohmann::json::array()}, {"offset", 32}, {"nbytes", 8}});
    CHECK(e[3] == nlohmann::json{{"name", "rng_pos"}, {"dtype", "u64"}, {"shape", nlohmann::json::array()}, {"offset", 40}, {"nbytes", 8}});
    CHECK(s == 48);
    CHECK(std::memcmp(b.data() + p, a.weights.data(), 12) == 0);
    CHECK(u32_at(b, static_cast<std::size_t>(p + 12)) == 0u);  // padding
    CHECK(std::memcmp(b.data() + p + 16, a.moments.data(), 16) == 0);
    CHECK(static_cast<std::int64_t>(u64_at(b, static_cast<std::size_t>(p + 32))) == a.step);
    CHECK(u64_at(b, static_cast<std::size_t>(p + 40)) == a.rng_pos);

    SECTION("a file built independently from the documentation loads") {
        std::vector<unsigned char> payload(b.begin() + static_cast<long>(p), b.begin() + static_cast<long>(p + s));
        const auto crafted = pack(header.dump(2), payload);  // pretty-printed header: any valid JSON
        write_bytes(dir / "crafted.ckpt", crafted);
        Mock c(3, 2);
        CHECK(load_checkpoint(dir / "crafted.ckpt", c) == nlohmann::json{{"x", 1}});
        CHECK(c.bitwise_equal(a));
    }
    SECTION("inspect_checkpoint reports the header") {
        for (bool verify : {true, false}) {
            const auto info = inspect_checkpoint(dir / "f.ckpt", verify);
            CHECK(info.format_version == 1u);
            CHECK(info.library_version == PERSIST_VERSION_STRING);
            CHECK(info.header_size == h);
            CHECK(info.payload_offset == p);
            CHECK(info.payload_size == s);
            CHECK(info.file_size == b.size());
            CHECK(info.checksum == u32_at(b, static_cast<std::size_t>(p + s)));
            CHECK(info.checksum_verified == verify);
            CHECK(info.metadata == nlohmann::json{{"x", 1}});
            REQUIRE(info.entries.size() == 4);
            CHECK(info.entries[1].name == "moments");
            CHECK(info.entries[1].dtype == persist::DType::f64);
            CHECK(info.entries[1].offset == 16);
            CHECK(info.entries[1].nbytes == 16);
            CHECK(info.find("nope") == nullptr);
        }
    }
}

// ================================================================ damaged files

TEST_CASE("checkpoint: truncated files are rejected, object unchanged", "[io][corrupt]") {
    TempDir dir;
    Agent a;
    a.randomize(11);
    const auto good = dir / "good.ckpt";
    save_checkpoint(good, a, {{"meta", std::string(150, 'm')}});
    const auto bytes = read_bytes(good);
    const std::size_t h = static_cast<std::size_t>(u64_at(bytes, 16));
    const std::size_t p = (40 + h + 7) / 8 * 8, s = static_cast<std::size_t>(u64_at(bytes, 24));
    REQUIRE(bytes.size() == p + s + 4);

    std::set<std::size_t> cuts = {1, 5, 11, 12, 14, 16, 20, 39, 40, 41, 40 + h / 2, 40 + h - 1, 40 + h,
                                  p, p + 1, p + s / 2, p + s - 1, p + s, p + s + 1, p + s + 3};
    for (std::size_t c = 0; c < bytes.size(); c += 97) cuts.insert(c);
    const auto bad = dir / "bad.ckpt";
    Agent b;
    b.randomize(12);
    const Agent before = b;
    for (const std::size_t cut : cuts) {
        INFO("cut at " << cut << " of " << bytes.size());
        write_bytes(bad, std::vector<unsigned char>(bytes.begin(), bytes.begin() + static_cast<long>(cut)));
        require_error([&] { load_checkpoint(bad, b); }, {"checkpoint '" + bad.string() + "'", cut == 0 ? "empty file" : "truncated"});
        CHECK(b.bitwise_equal(before));
    }
    write_bytes(bad, std::vector<unsigned char>(bytes.begin(), bytes.begin() + static_cast<long>(p + 100)));
    require_error([&] { load_checkpoint(bad, b); },
                  {"truncated (expected " + std::to_string(s) + " bytes of payload, file has 100"});

    auto longer = bytes;
    longer.push_back(0);
    write_bytes(bad, longer);
    require_error([&] { load_checkpoint(bad, b); }, {"1 unexpected bytes after the checksum"});
    CHECK(b.bitwise_equal(before));
}

TEST_CASE("checkpoint: every flipped byte is detected, object unchanged", "[io][corrupt]") {
    TempDir dir;
    Mock a(9, 5);
    a.randomize(21);
    const auto good = dir / "good.ckpt";
    save_checkpoint(good, a, {{"run", "flip"}});
    const auto bytes = read_bytes(good);
    const std::size_t h = static_cast<std::size_t>(u64_at(bytes, 16));
    const std::size_t p = (40 + h + 7) / 8 * 8;

    const auto bad = dir / "bad.ckpt";
    Mock b(9, 5);
    b.randomize(22);
    const Mock before = b;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        for (unsigned char mask : {0x01, 0x80}) {
            INFO("byte " << i << " ^ " << int(mask) << " (payload starts at " << p << ")");
            auto f = bytes;
            f[i] ^= mask;
            write_bytes(bad, f);
            std::string expect = "checksum mismatch (file corrupted)";  // header, padding, payload, trailer
            if (i < 12) expect = "not a PERSIST checkpoint (bad magic)";
            else if (i < 16) expect = "format version";
            else if (i < 36) expect = "preamble checksum mismatch";
            else if (i < 40) expect = "reserved preamble field is not zero";
            require_error([&] { load_checkpoint(bad, b); }, {"checkpoint '" + bad.string() + "'", expect});
            CHECK(b.bitwise_equal(before));
        }
    }
    // inspect_checkpoint verifies the checksum too (unless asked not to).
    auto f = bytes;
    f[p + 3] ^= 0x10;
    write_bytes(bad, f);
    require_error([&] { inspect_checkpoint(bad); }, {"checksum mismatch"});
    CHECK(inspect_checkpoint(bad, false).entries.size() == 4);
}

TEST_CASE("checkpoint: other format versions are refused, naming both", "[io][corrupt]") {
    TempDir dir;
    Mock a;
    a.randomize(1);
    save_checkpoint(dir / "v.ckpt", a);
    auto bytes = read_bytes(dir / "v.ckpt");
    const std::uint32_t v7 = 7;
    std::memcpy(bytes.data() + 12, &v7, 4);
    write_bytes(dir / "v7.ckpt", bytes);
    Mock b;
    require_error([&] { load_checkpoint(dir / "v7.ckpt", b); },
                  {"checkpoint '" + (dir / "v7.ckpt").string() + "': format version 7, this build reads version 1"});
    // Also when the rest of the file is consistent with its (future) version.
    write_bytes(dir / "v2.ckpt", pack("{}", {}, 2));
    require_error([&] { inspect_checkpoint(dir / "v2.ckpt"); }, {"format version 2, this build reads version 1"});
    CHECK(b.bitwise_equal(Mock{}));
}

TEST_CASE("checkpoint: object mismatches name the entry, object unchanged", "[io][mismatch]") {
    TempDir dir;
    Agent a;
    a.randomize(5);
    Agent b;
    b.randomize(6);
    const Agent before = b;
    const RawRefs steps_ref{{persist::state_tensor("env_steps", &a.env_steps, {})}};

    SECTION("shape") {
        Mock small(100, 4);
        CheckpointWriter().add("actor", small).add("critic", a.critic).add("opt", a.opt).add("", steps_ref).save(dir / "x.ckpt");
        b.actor = Mock(120, 4);
        const Agent before120 = b;
        require_error([&] { load_checkpoint(dir / "x.ckpt", b); },
                      {"checkpoint '" + (dir / "x.ckpt").string() + "': entry 'actor.weights' has shape [100], object expects [120]"});
        CHECK(b.bitwise_equal(before120));

        MockMat m34(3, 4), m43(4, 3);
        save_checkpoint(dir / "m.ckpt", m34);
        require_error([&] { load_checkpoint(dir / "m.ckpt", m43); }, {"entry 'w' has shape [3, 4], object expects [4, 3]"});
    }
    SECTION("dtype") {
        MockT<double> d(12, 4);
        d.randomize(1);
        CheckpointWriter().add("actor", d).add("critic", a.critic).add("opt", a.opt).add("", steps_ref).save(dir / "x.ckpt");
        require_error([&] { load_checkpoint(dir / "x.ckpt", b); },
                      {"entry 'actor.weights' has dtype f64, object expects f32"});
        CHECK(b.bitwise_equal(before));
        // Scalar i64 vs u64.
        std::int64_t i = 5;
        std::uint64_t u = 6;
        save_checkpoint(dir / "i.ckpt", RawRefs{{persist::state_tensor("n", &i, {})}});
        RawRefs ru{{persist::state_tensor("n", &u, {})}};
        require_error([&] { load_checkpoint(dir / "i.ckpt", ru); }, {"entry 'n' has dtype i64, object expects u64"});
        CHECK(u == 6u);
    }
    SECTION("missing entry") {
        RawRefs opt_without_m{{persist::state_tensor("v", a.opt.v.data(), {a.opt.v.size()}),
                               persist::state_tensor("t", &a.opt.t, {})}};
        CheckpointWriter()
            .add("actor", a.actor)
            .add("critic", a.critic)
            .add("opt", opt_without_m)
            .add("", steps_ref)
            .save(dir / "x.ckpt");
        require_error([&] { load_checkpoint(dir / "x.ckpt", b); },
                      {"checkpoint '" + (dir / "x.ckpt").string() + "': missing entry 'opt.m'"});
        CHECK(b.bitwise_equal(before));
    }
    SECTION("extra entry") {
        std::int64_t extra = 1;
        const RawRefs extra_ref{{persist::state_tensor("zz_extra", &extra, {})}};
        CheckpointWriter().add("", a).add("", extra_ref).save(dir / "x.ckpt");
        require_error([&] { load_checkpoint(dir / "x.ckpt", b); }, {"unexpected entry 'zz_extra'"});
        CHECK(b.bitwise_equal(before));
        load_checkpoint(dir / "x.ckpt", b, ExtraEntries::ignore);
        CHECK(b.bitwise_equal(a));
    }
}

TEST_CASE("checkpoint: files that are not checkpoints get a clear error", "[io][corrupt]") {
    TempDir dir;
    Mock b;
    b.randomize(3);
    const Mock before = b;

    SECTION("missing file") {
        require_error([&] { load_checkpoint(dir / "nope.ckpt", b); },
                      {"checkpoint '" + (dir / "nope.ckpt").string() + "': cannot open for reading: No such file"});
    }
    SECTION("empty file") {
        write_bytes(dir / "e.ckpt", {});
        require_error([&] { load_checkpoint(dir / "e.ckpt", b); }, {"empty file (not a PERSIST checkpoint)"});
    }
    SECTION("random bytes") {
        persist::Rng r(9);
        for (std::size_t n : {3, 40, 5000}) {
            std::vector<unsigned char> junk(n);
            for (auto& x : junk) x = static_cast<unsigned char>(r() & 0xFF);
            junk[0] = 'Q';
            write_bytes(dir / "r.bin", junk);
            require_error([&] { load_checkpoint(dir / "r.bin", b); }, {"not a PERSIST checkpoint (bad magic)"});
        }
    }
    SECTION("a text file") {
        std::ofstream(dir / "t.json") << "{\"weights\": [1, 2, 3]}\n";
        require_error([&] { load_checkpoint(dir / "t.json", b); }, {"not a PERSIST checkpoint (bad magic)"});
    }
    SECTION("a directory") {
        require_error([&] { load_checkpoint(dir.path, b); }, {"not a regular file"});
    }
    CHECK(b.bitwise_equal(before));
}

TEST_CASE("checkpoint: malformed headers with valid checksums are rejected", "[io][corrupt]") {
    TempDir dir;
    const std::vector<unsigned char> payload(16, 0);
    const auto entry = [](const char* name, const char* dtype, nlohmann::json shape, int off, int nb) {
        return nlohmann::json{{"name", name}, {"dtype", dtype}, {"shape", std::move(shape)}, {"offset", off}, {"nbytes", nb}};
    };
    const auto hdr = [](nlohmann::json entries) {
        return nlohmann::json{{"entries", std::move(entries)}, {"library_version", "x"}, {"metadata", nlohmann::json::object()}}.dump();
    };
    struct Case {
        std::string header, expect;
    };
    const std::vector<Case> cases = {
        {"{not json", "header is not valid JSON"},
        {"[1, 2]", "malformed header: not a JSON object"},
        {R"({"library_version":"x","metadata":{}})", "no 'entries' array"},
        {R"({"entries":[],"library_version":"x"})", "no 'metadata'"},
        {hdr({entry("a", "f16", {2}, 0, 4)}), "entry 'a' has no valid 'dtype'"},
        {hdr({entry("a", "f32", {1, 1, 1, 1, 1}, 0, 4)}), "entry 'a' has no 'shape' array of rank <= 4"},
        {hdr({entry("a", "f32", {-2}, 0, 8)}), "entry 'a' has a shape dimension that is not a non-negative integer"},
        {hdr({entry("a", "f32", {2}, 0, 12)}), "entry 'a' has nbytes 12, but f32 [2] needs 8"},
        {hdr({entry("a", "f32", {2}, 4, 8)}), "entry 'a' has offset 4, not a multiple of 8"},
        {hdr({entry("a", "f64", {2}, 8, 16)}), "entry 'a' (offset 8, 16 bytes) ends past the payload (16 bytes)"},
        {hdr({entry("a", "f32", {2}, 0, 8), entry("a", "f32", {2}, 8, 8)}), "entry 'a' appears twice"},
        {hdr({entry("a", "f64", {2}, 0, 16), entry("b", "f32", {2}, 8, 8)}), "entries 'a' and 'b' overlap"},
        {hdr({entry("", "f32", {2}, 0, 8)}), "entry #0 has no non-empty 'name' string"},
    };
    Mock b;
    b.randomize(1);
    const Mock before = b;
    for (const auto& c : cases) {
        INFO(c.header);
        write_bytes(dir / "h.ckpt", pack(c.header, payload));
        require_error([&] { load_checkpoint(dir / "h.ckpt", b); }, {c.expect});
        CHECK(b.bitwise_equal(before));
    }
    // A preamble whose checksum is right but whose sizes are absurd.
    auto f = pack(hdr(nlohmann::json::array()), payload);
    const std::uint64_t huge = std::uint64_t{1} << 62;
    std::memcpy(f.data() + 24, &huge, 8);
    const std::uint32_t pcrc = crc32c(f.data(), 32);
    std::memcpy(f.data() + 32, &pcrc, 4);
    write_bytes(dir / "h.ckpt", f);
    require_error([&] { load_checkpoint(dir / "h.ckpt", b); }, {"preamble gives impossible sizes"});
}

TEST_CASE("checkpoint: saving invalid objects fails before touching the destination", "[io][save]") {
    TempDir dir;
    const auto path = dir / "x.ckpt";
    Mock a;
    a.randomize(1);
    save_checkpoint(path, a);
    const auto old = read_bytes(path);

    float w[2] = {1, 2};
    SECTION("duplicate names") {
        require_error([&] { CheckpointWriter().add("p", a).add("p", a).save(path); },
                      {"cannot save", "two state tensors named 'p.weights'"});
    }
    SECTION("empty name") {
        require_error([&] { save_checkpoint(path, RawRefs{{persist::state_tensor("", w, {2})}}); }, {"empty name"});
    }
    SECTION("negative shape") {
        require_error([&] { save_checkpoint(path, RawRefs{{persist::state_tensor("w", w, {-2})}}); },
                      {"state tensor 'w' has negative shape [-2]"});
    }
    SECTION("null data") {
        require_error([&] { save_checkpoint(path, RawRefs{{persist::state_tensor<float>("w", nullptr, {2})}}); },
                      {"'w' has shape [2] but a null data pointer"});
    }
    SECTION("metadata that is not UTF-8") {
        require_error([&] { save_checkpoint(path, a, {{"bad", "\xff\xfe"}}); }, {"not valid UTF-8"});
    }
    CHECK(read_bytes(path) == old);
    CHECK(dir.listing() == std::set<std::string>{"x.ckpt"});
}

// ================================================================ atomic saves

TEST_CASE("checkpoint: a failed save leaves the previous checkpoint and no temporaries", "[io][atomic]") {
    TempDir dir;
    const auto path = dir / "agent.ckpt";
    Mock old_obj(50, 5);
    old_obj.randomize(1);
    save_checkpoint(path, old_obj, {{"gen", 1}});
    const auto old_bytes = read_bytes(path);

    SECTION("overwriting succeeds and leaves only the checkpoint") {
        Mock next(50, 5);
        next.randomize(2);
        save_checkpoint(path, next, {{"gen", 2}});
        Mock c(50, 5);
        CHECK(load_checkpoint(path, c)["gen"] == 2);
        CHECK(c.bitwise_equal(next));
        CHECK(dir.listing() == std::set<std::string>{"agent.ckpt"});
    }
    SECTION("the write itself fails (file size limit -> EFBIG)") {
        Mock big(200000, 5);  // ~800 kB, far above the limit below
        big.randomize(3);
        rlimit saved{};
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
        rlimit low = saved;
        low.rlim_cur = 64 * 1024;
        const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of a signal
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &low) == 0);
        std::string msg;
        try {
            save_checkpoint(path, big);
        } catch (const CheckpointError& e) {
            msg = e.what();
        }
        ::setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, old_handler);
        INFO(msg);
        CHECK(msg.find("checkpoint '" + path.string() + "': write to temporary file") != std::string::npos);
        CHECK(msg.find("File too large") != std::string::npos);
    }
    SECTION("the destination is a directory") {
        fs::create_directory(dir / "d.ckpt");
        require_error([&] { save_checkpoint(dir / "d.ckpt", old_obj); }, {"the destination is a directory"});
        CHECK(fs::is_directory(dir / "d.ckpt"));
        fs::remove(dir / "d.ckpt");
    }
    SECTION("the directory is not writable") {
        if (::geteuid() == 0) {
            // root ignores permission bits; /proc refuses new files even to root.
            require_error([&] { save_checkpoint("/proc/persist_test_io.ckpt", old_obj); },
                          {"cannot create temporary file '/proc/.persist_test_io.ckpt.tmp."});
        } else {
            fs::permissions(dir.path, fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                            fs::perm_options::remove);
            Mock next(50, 5);
            require_error([&] { save_checkpoint(path, next); }, {"cannot create temporary file", "Permission denied"});
            fs::permissions(dir.path, fs::perms::owner_write, fs::perm_options::add);
        }
    }
    // Whatever failed, the old checkpoint is intact, loadable, and alone.
    if (read_bytes(path) != old_bytes) {
        Mock c(50, 5);
        load_checkpoint(path, c);  // the success section replaced it on purpose
        CHECK(c.step != old_obj.step);
    } else {
        Mock c(50, 5);
        CHECK(load_checkpoint(path, c)["gen"] == 1);
        CHECK(c.bitwise_equal(old_obj));
    }
    CHECK(dir.listing() == std::set<std::string>{"agent.ckpt"});
}

TEST_CASE("checkpoint: saving into a missing directory is a clear error", "[io][atomic]") {
    TempDir dir;
    Mock a;
    const auto path = dir / "no" / "such" / "dir" / "a.ckpt";
    require_error([&] { save_checkpoint(path, a); },
                  {"checkpoint '" + path.string() + "': cannot save: directory '" + (dir / "no" / "such" / "dir").string() +
                   "' does not exist"});
    CHECK(!fs::exists(dir / "no"));
    std::ofstream(dir / "file") << "x";
    require_error([&] { save_checkpoint(dir / "file" / "a.ckpt", a); }, {"is not a directory"});
}
