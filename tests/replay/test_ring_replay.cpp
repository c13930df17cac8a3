// RingReplay: wrap-around order, uniform sampling, alignment of every field and the extras,
// sequence sampling (contiguity, write head, episode boundaries, mask), errors, and exact
// checkpoint resumption through visit_state.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/io/checkpoint.hpp"
#include "replay_fixtures.hpp"

using namespace replaytest;
using persist::ConfigError;
using persist::Rng;
using persist::ShapeError;
using persist::TransitionBatch;
using persist::replay::ReplayDims;
using persist::replay::RingReplay;
using persist::replay::SequenceBatch;
using persist::replay::SequenceOptions;

static_assert(persist::ReplayBuffer<RingReplay<double>>);
static_assert(persist::ReplayBuffer<RingReplay<float>>);
static_assert(persist::Stateful<RingReplay<double>>);

namespace {
/// Chi-square statistic of counts against a uniform expectation.
double chi_square(const std::map<double, long>& counts, double expected) {
    double chi = 0;
    for (const auto& [id, c] : counts) chi += (c - expected) * (c - expected) / expected;
    return chi;
}
}  // namespace

TEST_CASE("ring replay construction and shape errors", "[replay]") {
    CHECK_THROWS_AS(RingReplay<double>(0, kDims), ConfigError);
    CHECK_THROWS_WITH(RingReplay<double>(4, ReplayDims{.observation = -1}), Catch::Contains("dims.observation"));
    RingReplay<double> r(4, kDims);
    CHECK(r.size() == 0);
    CHECK(r.capacity() == 4);
    Owned ok(1);
    Owned bad(2);
    bad.next_x.resize(3);
    CHECK_THROWS_WITH(r.add(bad.view()), "RingReplay::add: next_internal: expected 2 x 1, got 3 x 1");
    Owned no_margins(3);
    no_margins.margins.resize(0);
    CHECK_THROWS_WITH(r.add(no_margins.view()), "RingReplay::add: margins: expected 2 x 1, got 0 x 1");
    CHECK(r.size() == 0);  // failed adds change nothing
    CHECK(r.total_added() == 0);
    r.add(ok.view());
    CHECK(r.size() == 1);
    // sampling errors
    Rng rng(1);
    TransitionBatch<double> b;
    CHECK_THROWS_AS(r.sample(0, rng, b), ConfigError);
    CHECK_THROWS_AS(r.sample(-3, rng, b), ConfigError);
    RingReplay<double> empty(4, kDims);
    CHECK_THROWS_WITH(empty.sample(8, rng, b), Catch::Contains("empty"));
    CHECK_THROWS_AS(empty.sample(8, rng, b), persist::Error);
}

TEST_CASE("ring replay wraps around oldest-first", "[replay]") {
    RingReplay<double> r(5, kDims);
    for (int id = 0; id < 12; ++id) r.add(Owned(id).view());
    CHECK(r.size() == 5);
    CHECK(r.full());
    CHECK(r.total_added() == 12);
    CHECK(r.head() == 2);
    CHECK(r.slot_of(0) == 2);
    const std::vector<Index> all{0, 1, 2, 3, 4};
    TransitionBatch<double> b;
    r.gather(all, b);
    for (Index i = 0; i < 5; ++i) {
        double id;
        CHECK(column_consistent(b, i, id));
        CHECK(id == 7 + i);  // oldest (7) to newest (11)
    }
    // the storage view: slot = column; slot 2 holds the oldest
    CHECK(r.storage_view(RingReplay<double>::Field::observation)(0, 2) == 7);
    CHECK(r.storage_view(RingReplay<double>::Field::margins).rows() == 2);
    const std::vector<Index> bad{5};
    CHECK_THROWS_AS(r.gather(bad, b), ConfigError);
    // partially filled
    RingReplay<double> p(5, kDims);
    for (int id = 0; id < 3; ++id) p.add(Owned(id).view());
    p.gather(std::vector<Index>{0, 1, 2}, b);
    CHECK(b.observation(0, 0) == 0);
    CHECK(b.observation(0, 2) == 2);
    r.clear();
    CHECK(r.size() == 0);
    r.add(Owned(42).view());
    r.gather(std::vector<Index>{0}, b);
    CHECK(b.observation(0, 0) == 42);
}

TEST_CASE("ring replay samples every stored transition uniformly, fields aligned", "[replay]") {
    RingReplay<double> r(50, kDims);
    for (int id = 0; id < 130; ++id) r.add(Owned(id, id % 7 == 0, id % 11 == 0).view());
    Rng rng(2024);
    TransitionBatch<double> b;
    std::map<double, long> counts;
    const int calls = 80, n = 250;  // 20000 draws, 400 expected per transition
    for (int c = 0; c < calls; ++c) {
        r.sample(n, rng, b);
        REQUIRE(b.size() == n);
        REQUIRE(b.margins.rows() == 2);
        for (Index i = 0; i < n; ++i) {
            double id;
            REQUIRE(column_consistent(b, i, id));
            REQUIRE(b.terminated(i) == (static_cast<int>(id) % 7 == 0 ? 1.0 : 0.0));
            REQUIRE(b.truncated(i) == (static_cast<int>(id) % 11 == 0 ? 1.0 : 0.0));
            ++counts[id];
        }
    }
    CHECK(counts.size() == 50);
    CHECK(counts.begin()->first == 80);    // oldest stored
    CHECK(counts.rbegin()->first == 129);  // newest
    // 49 degrees of freedom: mean 49, sd ~9.9; 100 is beyond p = 1e-5
    CHECK(chi_square(counts, calls * n / 50.0) < 100.0);
    // same seed -> same batch
    Rng a(5), c(5);
    TransitionBatch<double> ba, bc;
    r.sample(64, a, ba);
    r.sample(64, c, bc);
    CHECK(ba.observation == bc.observation);
}

TEST_CASE("float replay stores and samples", "[replay]") {
    RingReplay<float> r(8, ReplayDims{.observation = 2, .internal = 0, .action = 1, .constraints = 0});
    persist::Vec<float> o(2), a(1), none(0);
    o << 1, 2;
    a << 3;
    r.add({o, none, a, 0.5f, o, none, false, true});
    Rng rng(3);
    TransitionBatch<float> b;
    r.sample(4, rng, b);
    CHECK(b.internal.rows() == 0);
    CHECK(b.margins.rows() == 0);
    CHECK(b.action(0, 3) == 3.0f);
    CHECK(b.truncated(2) == 1.0f);
    CHECK(b.reward(1) == 0.5f);
}

namespace {
/// Episodes of varied lengths; returns the ids that end an episode.
std::set<int> fill_episodes(RingReplay<double>& r, int n, std::uint64_t seed) {
    Rng rng(seed);
    std::set<int> ends;
    int left = 0;
    for (int id = 0; id < n; ++id) {
        if (left == 0) left = 3 + static_cast<int>(rng.below(10));
        --left;
        const bool end = left == 0;
        const bool trunc = end && rng.below(3) == 0;  // some episodes are time-limit cuts
        if (end) ends.insert(id);
        r.add(Owned(id, end && !trunc, trunc).view());
    }
    return ends;
}
}  // namespace

TEST_CASE("sequences are contiguous, time-major, inside the ring and inside episodes", "[replay][sequence]") {
    RingReplay<double> r(128, kDims);
    const auto ends = fill_episodes(r, 300, 77);  // wrapped: stored ids 172 .. 299
    const int oldest = 300 - 128;
    const Index L = 5, S = 16;
    Rng rng(9);
    SequenceBatch<double> sb;
    std::set<int> starts_seen;
    for (int rep = 0; rep < 200; ++rep) {
        r.sample_sequences(S, L, rng, sb);
        REQUIRE(sb.num_sequences == S);
        REQUIRE(sb.length == L);
        REQUIRE(sb.steps.size() == S * L);
        REQUIRE(sb.mask.cols() == S * L);
        for (Index s = 0; s < S; ++s) {
            double id0;
            REQUIRE(column_consistent(sb.steps, sb.column(0, s), id0));
            REQUIRE(sb.start[static_cast<std::size_t>(s)] == static_cast<std::int64_t>(id0) - oldest);
            starts_seen.insert(static_cast<int>(id0));
            for (Index t = 0; t < L; ++t) {
                double id;
                REQUIRE(column_consistent(sb.steps, t * S + s, id));
                REQUIRE(id == id0 + static_cast<double>(t));  // consecutive: never spans the head
                REQUIRE(id >= oldest);
                REQUIRE(id <= 299);
                REQUIRE(sb.mask(t * S + s) == 1.0);
                if (t + 1 < L) REQUIRE(ends.count(static_cast<int>(id)) == 0);  // no episode end inside
            }
        }
    }
    // every valid start was drawn, and only valid ones
    std::set<int> valid;
    for (int i = oldest; i + L - 1 <= 299; ++i) {
        bool ok = true;
        for (int t = 0; t + 1 < L; ++t) ok = ok && ends.count(i + t) == 0;
        if (ok) valid.insert(i);
    }
    CHECK(starts_seen == valid);
}

TEST_CASE("sequences crossing episodes carry a mask", "[replay][sequence]") {
    RingReplay<double> r(64, kDims);
    const auto ends = fill_episodes(r, 100, 5);
    Rng rng(10);
    SequenceBatch<double> sb;
    const Index L = 8, S = 32;
    bool saw_masked = false;
    for (int rep = 0; rep < 20; ++rep) {
        r.sample_sequences(S, L, rng, sb, SequenceOptions{.cross_episodes = true});
        for (Index s = 0; s < S; ++s) {
            bool ended = false;
            const double id0 = sb.steps.observation(0, sb.column(0, s));
            for (Index t = 0; t < L; ++t) {
                const double id = sb.steps.observation(0, sb.column(t, s));
                REQUIRE(id == id0 + static_cast<double>(t));
                REQUIRE(sb.mask(sb.column(t, s)) == (ended ? 0.0 : 1.0));
                saw_masked = saw_masked || ended;
                const bool done = sb.steps.terminated(sb.column(t, s)) != 0 || sb.steps.truncated(sb.column(t, s)) != 0;
                REQUIRE(done == (ends.count(static_cast<int>(id)) == 1));
                ended = ended || done;
            }
        }
    }
    CHECK(saw_masked);
}

TEST_CASE("sequence sampling with rare valid starts and its errors", "[replay][sequence]") {
    // every transition ends an episode except a run of 9: exactly one valid start for L = 10
    RingReplay<double> r(1000, kDims);
    for (int id = 0; id < 1000; ++id) r.add(Owned(id, !(id >= 500 && id < 509)).view());
    Rng rng(1);
    SequenceBatch<double> sb;
    r.sample_sequences(6, 10, rng, sb);  // rejection fails -> exact scan fallback
    for (Index s = 0; s < 6; ++s) {
        CHECK(sb.start[static_cast<std::size_t>(s)] == 500);
        CHECK(sb.steps.observation(0, sb.column(9, s)) == 509);
    }
    // L = 11: no valid start
    CHECK_THROWS_WITH(r.sample_sequences(2, 11, rng, sb), Catch::Contains("cross_episodes"));
    r.sample_sequences(2, 11, rng, sb, SequenceOptions{.cross_episodes = true});
    // L = 1 always works: any transition is a sequence
    r.sample_sequences(3, 1, rng, sb);
    CHECK_THROWS_AS(r.sample_sequences(0, 4, rng, sb), ConfigError);
    CHECK_THROWS_AS(r.sample_sequences(4, 0, rng, sb), ConfigError);
    RingReplay<double> small(10, kDims);
    for (int id = 0; id < 3; ++id) small.add(Owned(id).view());
    CHECK_THROWS_WITH(small.sample_sequences(1, 4, rng, sb), Catch::Contains("exceeds the 3 stored"));
}

namespace {
/// Copies every state tensor of `from` into `to` (same names, dtypes, shapes).
template <class A>
void copy_state(A& from, A& to) {
    std::vector<std::vector<unsigned char>> bytes;
    std::vector<std::string> names;
    from.visit_state([&](persist::TensorRef t) {
        const auto* p = static_cast<const unsigned char*>(t.data);
        bytes.emplace_back(p, p + t.bytes());
        names.push_back(t.name);
    });
    std::size_t i = 0;
    to.visit_state([&](persist::TensorRef t) {
        REQUIRE(t.name == names[i]);
        REQUIRE(t.bytes() == bytes[i].size());
        if (t.bytes()) std::memcpy(t.data, bytes[i].data(), t.bytes());
        ++i;
    });
    REQUIRE(i == bytes.size());
}
}  // namespace

TEST_CASE("ring replay state round trip resumes exactly", "[replay][state]") {
    RingReplay<double> a(40, kDims);
    for (int id = 0; id < 57; ++id) a.add(Owned(id, id % 9 == 0).view());
    RingReplay<double> b(40, kDims);
    b.add(Owned(1000).view());  // different content, overwritten by the copy
    copy_state(a, b);
    CHECK(b.size() == a.size());
    CHECK(b.head() == a.head());
    CHECK(b.total_added() == a.total_added());
    std::vector<std::string> names;
    a.visit_state([&](persist::TensorRef t) { names.push_back(t.name + t.shape_string()); });
    CHECK(names == std::vector<std::string>{"observation[40, 3]", "internal[40, 2]", "action[40, 2]", "reward[40]",
                                            "next_observation[40, 3]", "next_internal[40, 2]", "terminated[40]",
                                            "truncated[40]", "r_task[40]", "r_homeo[40]", "r_intr[40]",
                                            "margins[40, 2]", "head[]", "size[]", "added[]"});
    // both continue identically
    for (int id = 57; id < 70; ++id) {
        a.add(Owned(id).view());
        b.add(Owned(id).view());
    }
    Rng ra(3), rb(3);
    TransitionBatch<double> ba, bb;
    a.sample(100, ra, ba);
    b.sample(100, rb, bb);
    CHECK(ba.observation == bb.observation);
    CHECK(ba.margins == bb.margins);
    CHECK(ba.terminated == bb.terminated);
    SequenceBatch<double> sa, sb;
    a.sample_sequences(4, 6, ra, sa);
    b.sample_sequences(4, 6, rb, sb);
    CHECK(sa.steps.observation == sb.steps.observation);
    CHECK(sa.start == sb.start);
}

TEST_CASE("ring replay checkpoint file round trip", "[replay][state]") {
    RingReplay<float> a(16, ReplayDims{.observation = 2, .internal = 1, .action = 1, .constraints = 1});
    persist::Vec<float> o(2), x(1), act(1), m(1);
    for (int id = 0; id < 21; ++id) {
        o << float(id), float(id) + 0.5f;
        x << float(-id);
        act << float(2 * id);
        m << 0.01f * float(id);
        a.add({o, x, act, float(id), o, x, id % 4 == 3, false, 1.f, 2.f, 3.f, m});
    }
    const auto path = std::filesystem::temp_directory_path() / "persist_test_ring_replay.ckpt";
    persist::io::save_checkpoint(path, a);
    RingReplay<float> b(16, ReplayDims{.observation = 2, .internal = 1, .action = 1, .constraints = 1});
    persist::io::load_checkpoint(path, b);
    std::filesystem::remove(path);
    CHECK(b.size() == 16);
    CHECK(b.head() == a.head());
    Rng ra(8), rb(8);
    TransitionBatch<float> ba, bb;
    a.sample(32, ra, ba);
    b.sample(32, rb, bb);
    CHECK(ba.observation == bb.observation);
    CHECK(ba.margins == bb.margins);
    CHECK(ba.r_intr == bb.r_intr);
    // a buffer of another capacity does not accept it
    RingReplay<float> c(8, ReplayDims{.observation = 2, .internal = 1, .action = 1, .constraints = 1});
    persist::io::save_checkpoint(path, a);
    CHECK_THROWS_AS(persist::io::load_checkpoint(path, c), persist::CheckpointError);
    std::filesystem::remove(path);
}

TEST_CASE("inconsistent restored counters are reported", "[replay][state]") {
    RingReplay<double> r(4, kDims);
    r.add(Owned(1).view());
    r.visit_state([](persist::TensorRef t) {
        if (t.name == "head") *static_cast<std::int64_t*>(t.data) = 7;
    });
    Rng rng(1);
    TransitionBatch<double> b;
    CHECK_THROWS_AS(r.sample(2, rng, b), persist::CheckpointError);
    CHECK_THROWS_AS(r.add(Owned(2).view()), persist::CheckpointError);
}
