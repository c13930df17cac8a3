// NearBoundaryBuffer: the acceptance band at its edges, reservoir uniformity, ring
// replacement, sampling, a ViabilityModel as the margin source, errors and exact resumption.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "persist/replay/near_boundary.hpp"
#include "persist/viability/constraints.hpp"

using persist::ConfigError;
using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::ShapeError;
using persist::Vec;
using persist::replay::NearBoundaryBatch;
using persist::replay::NearBoundaryBuffer;
using persist::replay::NearBoundaryOptions;
using persist::replay::Replacement;

static_assert(persist::Stateful<NearBoundaryBuffer<double>>);
static_assert(persist::Stateful<NearBoundaryBuffer<float>>);

namespace {
Vec<double> one(double v) {
    Vec<double> x(1);
    x << v;
    return x;
}
NearBoundaryOptions<double> opts(Index cap, Replacement rep = Replacement::reservoir, std::uint64_t seed = 0) {
    return {.capacity = cap, .internal_dim = 1, .observation_dim = 0, .epsilon = 0.1, .replacement = rep, .seed = seed};
}
}  // namespace

TEST_CASE("near-boundary acceptance is the open band (0, epsilon)", "[replay][near_boundary]") {
    NearBoundaryBuffer<double> nb(opts(100));
    const double eps = 0.1;
    CHECK_FALSE(nb.offer_margin(one(1), 0.0));                   // on the boundary: not "near", on it
    CHECK_FALSE(nb.offer_margin(one(2), -0.0));
    CHECK_FALSE(nb.offer_margin(one(3), eps));                   // epsilon itself is outside
    CHECK_FALSE(nb.offer_margin(one(4), -1e-3));                 // violated
    CHECK_FALSE(nb.offer_margin(one(5), 0.5));                   // deep inside
    CHECK_FALSE(nb.offer_margin(one(6), std::nan("")));
    CHECK_FALSE(nb.offer_margin(one(7), std::numeric_limits<double>::infinity()));
    CHECK(nb.size() == 0);
    CHECK(nb.offer_margin(one(8), std::nextafter(0.0, 1.0)));      // smallest positive
    CHECK(nb.offer_margin(one(9), std::nextafter(eps, 0.0)));      // just below epsilon
    CHECK(nb.offer_margin(one(10), 0.05));
    CHECK(nb.size() == 3);
    CHECK(nb.offered() == 10);
    CHECK(nb.accepted() == 3);
    CHECK(nb.in_band(0.05));
    CHECK_FALSE(nb.in_band(0.0));
    // per-constraint margins: the minimum decides
    Vec<double> m(3);
    m << 0.5, 0.01, 2.0;
    CHECK(nb.offer(one(11), m));
    CHECK(nb.margins()(3) == 0.01);
    m << 0.5, 0.01, -0.2;  // one constraint violated
    CHECK_FALSE(nb.offer(one(12), m));
    CHECK(nb.states()(0, 3) == 11);
}

TEST_CASE("near-boundary margins from a viability model", "[replay][near_boundary]") {
    const persist::viability::ConstraintSet<double> cs({"energy", "temp"}, {"energy >= 0.2", "temp in [0.3, 0.7]"});
    NearBoundaryBuffer<double> nb({.capacity = 8, .internal_dim = 2, .observation_dim = 2, .epsilon = 0.05});
    Vec<double> x(2), o(2);
    o << 1, 2;
    x << 0.22, 0.5;  // energy margin 0.02 -> in band
    CHECK(nb.offer(cs, x, o));
    x << 0.5, 0.69;  // temp upper side 0.01 -> in band
    CHECK(nb.offer(cs, x, o));
    x << 0.5, 0.5;  // margins 0.3, 0.2 -> deep inside
    CHECK_FALSE(nb.offer(cs, x, o));
    x << 0.1, 0.5;  // violated
    CHECK_FALSE(nb.offer(cs, x, o));
    CHECK(nb.size() == 2);
    CHECK(nb.margins()(0) == Approx(0.02));
    CHECK(nb.margins()(1) == Approx(0.01));
    CHECK(nb.observations()(1, 1) == 2);
    Rng rng(4);
    NearBoundaryBatch<double> b;
    nb.sample(10, rng, b);
    CHECK(b.internal.rows() == 2);
    CHECK(b.observation.rows() == 2);
    for (Index i = 0; i < 10; ++i) {
        Vec<double> xi = b.internal.col(i);
        CHECK(b.margin(i) == Approx(cs.margin(xi)));
        CHECK(b.observation.col(i) == o);
    }
    // observations are required when configured, forbidden otherwise
    CHECK_THROWS_WITH(nb.offer_margin(x, 0.01), "NearBoundaryBuffer::offer: observation: expected 2 x 1, got 0 x 1");
    NearBoundaryBuffer<double> no_obs({.capacity = 8, .internal_dim = 2});
    CHECK_THROWS_AS(no_obs.offer_margin(x, 0.01, o), ShapeError);
    CHECK_THROWS_AS(no_obs.offer_margin(one(1), 0.01), ShapeError);
    CHECK_THROWS_AS(no_obs.offer(x, Vec<double>(0)), ShapeError);
}

TEST_CASE("near-boundary configuration errors", "[replay][near_boundary]") {
    auto with_eps = [](double e) {
        auto o = opts(10);
        o.epsilon = e;
        return o;
    };
    CHECK_THROWS_WITH(NearBoundaryBuffer<double>(with_eps(0.0)), Catch::Contains("epsilon must be finite and > 0, got 0"));
    CHECK_THROWS_AS(NearBoundaryBuffer<double>(with_eps(-0.1)), ConfigError);
    CHECK_THROWS_AS(NearBoundaryBuffer<double>(with_eps(std::nan(""))), ConfigError);
    CHECK_THROWS_AS(NearBoundaryBuffer<double>(with_eps(std::numeric_limits<double>::infinity())), ConfigError);
    CHECK_THROWS_WITH(NearBoundaryBuffer<double>(opts(0)), Catch::Contains("capacity must be >= 1"));
    CHECK_THROWS_AS(NearBoundaryBuffer<double>({.capacity = 4, .internal_dim = 0}), ConfigError);
    NearBoundaryBuffer<double> nb(opts(4));
    Rng rng(1);
    Mat<double> x;
    CHECK_THROWS_AS(nb.sample(3, rng, x), persist::Error);  // empty
    nb.offer_margin(one(1), 0.05);
    CHECK_THROWS_AS(nb.sample(0, rng, x), ConfigError);
    nb.sample(3, rng, x);
    CHECK(x == Mat<double>::Constant(1, 3, 1.0));
}

TEST_CASE("reservoir keeps a uniform sample of the accepted stream", "[replay][near_boundary]") {
    // Each of 2000 runs streams ids 0..49 (all in band) into a reservoir of 10; every id must
    // end up kept with probability 10/50, i.e. in ~400 runs.
    const int runs = 2000, n = 50, cap = 10;
    std::vector<long> kept(n, 0);
    for (int run = 0; run < runs; ++run) {
        NearBoundaryBuffer<double> nb(opts(cap, Replacement::reservoir, static_cast<std::uint64_t>(run)));
        int stored = 0;
        for (int id = 0; id < n; ++id) stored += nb.offer_margin(one(id), 0.05) ? 1 : 0;
        REQUIRE(nb.size() == cap);
        REQUIRE(stored >= cap);
        std::set<double> ids;
        for (Index s = 0; s < cap; ++s) ids.insert(nb.states()(0, s));
        REQUIRE(ids.size() == static_cast<std::size_t>(cap));  // distinct
        for (double id : ids) ++kept[static_cast<std::size_t>(id)];
    }
    const double expected = runs * double(cap) / n;
    double chi = 0;
    for (long k : kept) chi += (k - expected) * (k - expected) / expected;
    // 49 cells of freedom (inclusions are negatively correlated, so chi is smaller still)
    CHECK(chi < 100.0);
    // early and late ids are equally likely: no recency bias
    long first = 0, last = 0;
    for (int i = 0; i < 10; ++i) first += kept[static_cast<std::size_t>(i)], last += kept[static_cast<std::size_t>(n - 1 - i)];
    CHECK(std::abs(first - last) < 300);
}

TEST_CASE("ring replacement keeps the most recent accepted states", "[replay][near_boundary]") {
    NearBoundaryBuffer<double> nb(opts(4, Replacement::ring));
    for (int id = 0; id < 10; ++id) {
        CHECK(nb.offer_margin(one(id), 0.05));  // ring always stores an accepted state
        nb.offer_margin(one(100 + id), 1.0);     // out of band: ignored
    }
    std::set<double> ids;
    for (Index s = 0; s < 4; ++s) ids.insert(nb.states()(0, s));
    CHECK(ids == std::set<double>{6, 7, 8, 9});
    CHECK(nb.accepted() == 10);
    CHECK(nb.offered() == 20);
    nb.clear();
    CHECK(nb.size() == 0);
    CHECK(nb.offer_margin(one(1), 0.05));
    CHECK(nb.states()(0, 0) == 1);
}

TEST_CASE("near-boundary sampling is uniform over stored states", "[replay][near_boundary]") {
    NearBoundaryBuffer<double> nb(opts(20, Replacement::reservoir, 3));
    for (int id = 0; id < 20; ++id) nb.offer_margin(one(id), 0.01 + 0.001 * id);
    Rng rng(99);
    NearBoundaryBatch<double> b;
    std::map<double, long> counts;
    for (int c = 0; c < 40; ++c) {
        nb.sample(200, rng, b);
        for (Index i = 0; i < 200; ++i) {
            REQUIRE(b.margin(i) == Approx(0.01 + 0.001 * b.internal(0, i)));  // aligned
            ++counts[b.internal(0, i)];
        }
    }
    REQUIRE(counts.size() == 20);
    double chi = 0;
    for (const auto& [id, c] : counts) chi += (c - 400.0) * (c - 400.0) / 400.0;
    CHECK(chi < 60.0);  // 19 degrees of freedom
}

TEST_CASE("near-boundary state round trip resumes the reservoir exactly", "[replay][near_boundary][state]") {
    NearBoundaryBuffer<double> a({.capacity = 5, .internal_dim = 1, .observation_dim = 1, .epsilon = 0.1, .seed = 11});
    NearBoundaryBuffer<double> b({.capacity = 5, .internal_dim = 1, .observation_dim = 1, .epsilon = 0.1, .seed = 999});
    for (int id = 0; id < 17; ++id) a.offer_margin(one(id), 0.05, one(-id));
    std::vector<std::vector<unsigned char>> bytes;
    std::vector<std::string> names;
    a.visit_state([&](persist::TensorRef t) {
        const auto* p = static_cast<const unsigned char*>(t.data);
        bytes.emplace_back(p, p + t.bytes());
        names.push_back(t.name + t.shape_string());
    });
    CHECK(names == std::vector<std::string>{"internal[5, 1]", "observation[5, 1]", "margin[5]", "size[]", "head[]",
                                            "offered[]", "accepted[]", "seed[]", "draws[]"});
    std::size_t i = 0;
    b.visit_state([&](persist::TensorRef t) { std::memcpy(t.data, bytes[i++].data(), t.bytes()); });
    // same future: the reservoir's random stream continues where it was
    for (int id = 17; id < 60; ++id) {
        const bool sa = a.offer_margin(one(id), 0.05, one(-id));
        const bool sb = b.offer_margin(one(id), 0.05, one(-id));
        REQUIRE(sa == sb);
    }
    CHECK(a.states() == b.states());
    CHECK(a.observations() == b.observations());
    CHECK(a.accepted() == b.accepted());
}
