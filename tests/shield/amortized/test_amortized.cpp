// AmortizedShield (shield/amortized_shield.hpp) against the analytic HalfPlaneSearch mock:
// concept walls, option and input errors, search-mode bookkeeping, the box-residual output,
// the MSE gradient against central differences (double), learning the projection over 3 seeds,
// amortized mode (precheck, network accept, fallback exactly when the check fails), safety of
// every returned action, determinism and checkpoint round trips.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "mock_search.hpp"
#include "persist/config/persist_config.hpp"
#include "persist/core/concepts.hpp"
#include "persist/io/checkpoint.hpp"
#include "persist/shield/amortized_shield.hpp"
#include "persist/shield/null_shield.hpp"

using namespace amortizedtest;
using persist::ConfigError;
using persist::Mat;
using persist::Rng;
using persist::ShapeError;
using persist::shield::AmortizedShield;
using persist::shield::AmortizedShieldOptions;
using persist::shield::ProbabilisticShield;

// ---- concept walls ------------------------------------------------------------------------

static_assert(ProbabilisticShield<HalfPlaneSearch<double>>);
static_assert(ProbabilisticShield<HalfPlaneSearch<float>>);
static_assert(!ProbabilisticShield<persist::shield::NullShield<double>>);  // no probability()
static_assert(persist::Shield<AmortizedShield<HalfPlaneSearch<double>>>);
static_assert(persist::Shield<AmortizedShield<HalfPlaneSearch<float>>>);
static_assert(persist::Stateful<AmortizedShield<HalfPlaneSearch<double>>>);
static_assert(persist::Shield<AmortizedShield<HalfPlaneSearch<double>&>>);  // shared search
static_assert(persist::Stateful<AmortizedShield<HalfPlaneSearch<double>&>>);
static_assert(std::is_same_v<persist::scalar_of<AmortizedShield<HalfPlaneSearch<float>>>, float>);

namespace {

/// A scorer whose probability returns a pointer: not convertible to the scalar.
struct BadScorer : persist::shield::NullShield<double> {
    const char* probability(VecCRef<double>, VecCRef<double>, VecCRef<double>) { return ""; }
};
static_assert(!ProbabilisticShield<BadScorer>);

/// Small, fast options for tests.
AmortizedShieldOptions small_options(std::uint64_t seed = 1) {
    AmortizedShieldOptions o;
    o.hidden = {64, 64};
    o.batch_size = 64;
    o.capacity = 4096;
    o.min_samples = 100;
    o.switch_after_steps = 400;
    o.identity_fraction = 0.2;
    o.seed = seed;
    return o;
}

template <class T>
AmortizedShield<HalfPlaneSearch<T>> make_shield(const AmortizedShieldOptions& o,
                                                HalfPlaneSearch<T> search = {}) {
    return AmortizedShield<HalfPlaneSearch<T>>(search, kObs, kInt, box_low<T>(), box_high<T>(), o);
}

template <class T>
bool bitwise_equal(const persist::Vec<T>& a, const persist::Vec<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0;
}

/// Mean ||g_phi(s, a) - projection(a)|| over `n` fresh unsafe states (seeded).
template <class S>
double mean_projection_error(S& shield, std::uint64_t seed, int n, double* max_err = nullptr) {
    using T = typename S::scalar_type;
    Rng rng(seed, 77);
    Sample<T> s;
    persist::Vec<T> got(kAct), want(kAct);
    double sum = 0, mx = 0;
    int k = 0;
    while (k < n) {
        s.draw(rng);
        if (shield.search().safe(s.a, s.o, s.x)) continue;
        shield.propose(s.a, s.o, s.x, got);
        shield.search().projection(s.a, s.o, s.x, want);
        const double e = (got - want).template cast<double>().norm();
        sum += e;
        mx = std::max(mx, e);
        ++k;
    }
    if (max_err) *max_err = mx;
    return sum / n;
}

}  // namespace

// ---- construction and input errors ---------------------------------------------------------

TEST_CASE("amortized shield: defaults equal the safety_network config section", "[shield][amortized]") {
    const persist::config::SafetyNetworkConfig cfg{};
    const AmortizedShieldOptions d{};
    const auto o = persist::shield::amortized_options_from(cfg);
    CHECK(o.hidden == d.hidden);
    CHECK(o.hidden == std::vector<persist::Index>{256, 256});
    CHECK(o.lr == d.lr);
    CHECK(o.batch_size == d.batch_size);
    CHECK(o.min_samples == d.min_samples);
    CHECK(o.switch_after_steps == d.switch_after_steps);
    persist::config::SafetyNetworkConfig c2;
    c2.hidden = {32};
    c2.lr = 3e-4;
    c2.switch_after_steps = 7;
    AmortizedShieldOptions base;
    base.alpha = 0.9;
    const auto o2 = persist::shield::amortized_options_from(c2, base);
    CHECK(o2.hidden == std::vector<persist::Index>{32});
    CHECK(o2.lr == 3e-4);
    CHECK(o2.switch_after_steps == 7);
    CHECK(o2.alpha == 0.9);  // not in the config section: kept from base
}

TEST_CASE("amortized shield: bad options and inputs throw, naming what and where", "[shield][amortized]") {
    using S = AmortizedShield<HalfPlaneSearch<double>>;
    const auto lo = box_low<double>(), hi = box_high<double>();
    auto bad = [&](auto edit, const char* what) {
        AmortizedShieldOptions o = small_options();
        edit(o);
        CHECK_THROWS_WITH(S({}, kObs, kInt, lo, hi, o), Catch::Contains(what));
        CHECK_THROWS_AS(S({}, kObs, kInt, lo, hi, o), ConfigError);
    };
    bad([](auto& o) { o.hidden = {}; }, "hidden");
    bad([](auto& o) { o.hidden = {8, 0}; }, "hidden[1]");
    bad([](auto& o) { o.lr = 0; }, "lr");
    bad([](auto& o) { o.batch_size = 0; }, "batch_size");
    bad([](auto& o) { o.capacity = 0; }, "capacity");
    bad([](auto& o) { o.min_samples = 5000; }, "min_samples");
    bad([](auto& o) { o.switch_after_steps = -1; }, "switch_after_steps");
    bad([](auto& o) { o.alpha = 0; }, "alpha");
    bad([](auto& o) { o.alpha = 1.5; }, "alpha");
    bad([](auto& o) { o.identity_fraction = -0.1; }, "identity_fraction");
    bad([](auto& o) { o.train_steps_per_decision = -1; }, "train_steps_per_decision");
    bad([](auto& o) { o.train_steps_per_fallback = -1; }, "train_steps_per_fallback");
    bad([](auto& o) { o.projection_tolerance = -1; }, "projection_tolerance");
    bad([](auto& o) { o.output_gain = 0; }, "output_gain");
    bad([](auto& o) { o.target_overshoot = -0.1; }, "target_overshoot");
    bad([](auto& o) { o.target_overshoot = 1.5; }, "target_overshoot");
    bad([](auto& o) { o.observation_features = {0, 3}; }, "observation_features[1]");
    bad([](auto& o) { o.observation_features = {1, 1}; }, "repeats");
    bad([](auto& o) {
        o.use_observation = false;
        o.observation_features = {0};
    }, "use_observation");

    // Action box.
    CHECK_THROWS_AS(S({}, kObs, kInt, persist::Vec<double>(2), hi, small_options()), ShapeError);
    persist::Vec<double> hi2 = hi;
    hi2[1] = -1;
    CHECK_THROWS_WITH(S({}, kObs, kInt, lo, hi2, small_options()), Catch::Contains("action box entry 1"));
    CHECK_THROWS_AS(S({}, -1, kInt, lo, hi, small_options()), ConfigError);
    CHECK_THROWS_AS(S({}, kObs, -1, lo, hi, small_options()), ConfigError);

    S s({}, kObs, kInt, lo, hi, small_options());
    persist::Vec<double> a = persist::Vec<double>::Zero(kAct), o = persist::Vec<double>::Zero(kObs),
                         x = persist::Vec<double>::Zero(kInt), out(kAct);
    CHECK_THROWS_WITH(s.project(persist::Vec<double>::Zero(2), o, x, out), Catch::Contains("project: a"));
    CHECK_THROWS_AS(s.project(a, persist::Vec<double>::Zero(2), x, out), ShapeError);
    CHECK_THROWS_AS(s.project(a, o, persist::Vec<double>::Zero(3), out), ShapeError);
    persist::Vec<double> out2(2);
    CHECK_THROWS_WITH(s.project(a, o, x, out2), Catch::Contains("a_safe"));
    a[2] = 1.5;
    CHECK_THROWS_WITH(s.project(a, o, x, out), Catch::Contains("a[2] = 1.5") && Catch::Contains("action box"));
    a[2] = std::nan("");
    CHECK_THROWS_AS(s.project(a, o, x, out), persist::Error);
    a[2] = 0;
    o[1] = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(s.project(a, o, x, out), Catch::Contains("o has a non-finite"));
    o[1] = 0;
    CHECK(s.stats().decisions == 0);  // rejected inputs are not decisions
    CHECK_THROWS_WITH(s.update(), Catch::Contains("no (a, a_safe) pairs"));
    Rng r(1);
    CHECK_THROWS_AS(s.update(r), persist::Error);
}

namespace {
template <int Num>
struct SearchWithAlpha : HalfPlaneSearch<double> {
    double alpha() const { return Num / 100.0; }
};
}  // namespace

TEST_CASE("amortized shield: alpha comes from the options, else the search's alpha(), else 0.97",
          "[shield][amortized]") {
    const auto lo = box_low<double>(), hi = box_high<double>();
    CHECK(AmortizedShield<HalfPlaneSearch<double>>({}, kObs, kInt, lo, hi, small_options()).alpha() == 0.97);
    CHECK(AmortizedShield<SearchWithAlpha<50>>({}, kObs, kInt, lo, hi, small_options()).alpha() == 0.5);
    AmortizedShieldOptions o = small_options();
    o.alpha = 0.8;
    CHECK(AmortizedShield<SearchWithAlpha<50>>({}, kObs, kInt, lo, hi, o).alpha() == 0.8);
    CHECK_THROWS_WITH(AmortizedShield<SearchWithAlpha<150>>({}, kObs, kInt, lo, hi, small_options()),
                      Catch::Contains("alpha() must be in (0, 1]"));
}

// ---- search mode ----------------------------------------------------------------------------

TEMPLATE_TEST_CASE("amortized shield: search mode returns the search's decisions and stores pairs",
                   "[shield][amortized]", float, double) {
    using T = TestType;
    AmortizedShieldOptions opt = small_options();
    opt.identity_fraction = 0.0;
    opt.switch_after_steps = 300;
    opt.min_samples = 10;
    opt.capacity = 64;  // wraps
    opt.train_steps_per_decision = 0;
    auto sh = make_shield<T>(opt);
    HalfPlaneSearch<T> ref;
    Rng rng(3);
    Sample<T> s;
    persist::Vec<T> got(kAct), want(kAct);
    std::int64_t projected = 0;
    for (int t = 0; t < 300; ++t) {
        REQUIRE(sh.mode() == AmortizedShield<HalfPlaneSearch<T>>::Mode::search);
        s.draw(rng);
        const auto d = sh.project(s.a, s.o, s.x, got);
        const auto e = ref.project(s.a, s.o, s.x, want);
        REQUIRE(bitwise_equal(got, want));
        REQUIRE(d.projected == e.projected);
        REQUIRE(d.probability == e.probability);
        REQUIRE(d.binding_constraint == e.binding_constraint);
        projected += d.projected;
    }
    const auto& st = sh.stats();
    CHECK(st.decisions == 300);
    CHECK(st.search_mode_decisions == 300);
    CHECK(st.search_calls == 300);
    CHECK(sh.search().project_calls == 300);
    CHECK(sh.search().probability_calls == 0);  // search mode never scores on its own
    CHECK(st.pairs_stored == projected);        // identity_fraction 0: projected ones only
    CHECK(sh.size() == std::min<persist::Index>(projected, 64));
    CHECK(st.train_steps == 0);
    CHECK(projected > 50);
    // Exactly at decision switch_after_steps (min_samples reached long ago) the mode flips.
    CHECK(sh.mode() == AmortizedShield<HalfPlaneSearch<T>>::Mode::amortized);
}

TEST_CASE("amortized shield: target_overshoot stores a + (1 + o)(a_safe - a), clipped to the box", "[shield][amortized]") {
    using T = double;
    for (double over : {0.0, 0.25, 1.0}) {
        AmortizedShieldOptions opt = small_options();
        opt.identity_fraction = 0.0;
        opt.switch_after_steps = 1000;
        opt.capacity = 256;
        opt.train_steps_per_decision = 0;
        opt.target_overshoot = over;
        auto sh = make_shield<T>(opt);
        HalfPlaneSearch<T> ref;
        Rng rng(8);
        Sample<T> s;
        persist::Vec<T> got(kAct), want(kAct);
        std::vector<persist::Vec<T>> as, safes;
        for (int t = 0; t < 200; ++t) {
            s.draw(rng);
            if (sh.project(s.a, s.o, s.x, got).projected) {
                ref.project(s.a, s.o, s.x, want);
                as.push_back(s.a);
                safes.push_back(want);
            }
        }
        REQUIRE(static_cast<persist::Index>(as.size()) == sh.size());
        REQUIRE(as.size() > 20);
        // (The half-plane projections here stay inside the box, so the clip is part of the
        // expected formula but not exercised.)
        for (std::size_t k = 0; k < as.size(); ++k) {
            const auto idx = static_cast<persist::Index>(k);
            REQUIRE(bitwise_equal(persist::Vec<T>(sh.stored_actions().col(idx)), as[k]));
            for (persist::Index i = 0; i < kAct; ++i) {
                const T raw = as[k][i] + (T(1) + T(over)) * (safes[k][i] - as[k][i]);
                const T want_i = std::clamp(raw, box_low<T>()[i], box_high<T>()[i]);
                REQUIRE(sh.stored_targets()(i, idx) == (over == 0.0 ? safes[k][i] : want_i));
            }
        }
    }
}

TEST_CASE("amortized shield: identity pairs, training cadence and the switch condition", "[shield][amortized]") {
    AmortizedShieldOptions opt = small_options();
    opt.identity_fraction = 1.0;  // every accepted decision stored as a -> a
    opt.switch_after_steps = 0;   // switch as soon as min_samples pairs exist
    opt.min_samples = 50;
    opt.train_steps_per_decision = 2;
    auto sh = make_shield<double>(opt);
    Rng rng(4);
    Sample<double> s;
    persist::Vec<double> out(kAct);
    int t = 0;
    while (sh.mode() == AmortizedShield<HalfPlaneSearch<double>>::Mode::search) {
        s.draw(rng);
        const auto before = sh.size();
        sh.project(s.a, s.o, s.x, out);
        CHECK(sh.size() == before + 1);  // fraction 1: every decision stores a pair
        ++t;
    }
    CHECK(t == 50);  // switched exactly when min_samples pairs were stored
    // Training starts once min_samples pairs exist: only the 50th decision trained (2 steps).
    CHECK(sh.stats().train_steps == 2);
    CHECK(std::isfinite(sh.last_loss()));

    // identity_fraction in (0, 1): roughly that share of accepted decisions is stored.
    AmortizedShieldOptions o2 = small_options();
    o2.identity_fraction = 0.25;
    o2.switch_after_steps = 100000;
    o2.train_steps_per_decision = 0;
    o2.capacity = 20000;
    auto sh2 = make_shield<double>(o2);
    std::int64_t accepted = 0, projected = 0;
    for (int k = 0; k < 8000; ++k) {
        s.draw(rng);
        const auto d = sh2.project(s.a, s.o, s.x, out);
        (d.projected ? projected : accepted) += 1;
    }
    const double share = static_cast<double>(sh2.stats().pairs_stored - projected) / static_cast<double>(accepted);
    CHECK(share == Approx(0.25).margin(0.03));
}

// ---- output parameterisation and gradient ---------------------------------------------------

TEST_CASE("amortized shield: box residual is the identity at z = 0 and never leaves the box", "[shield][amortized]") {
    auto sh = make_shield<double>(small_options());
    Rng rng(5);
    Sample<double> s;
    persist::Vec<double> out(kAct);
    sh.network().params().setZero();  // z = 0 for every input
    for (int k = 0; k < 50; ++k) {
        s.draw(rng);
        sh.propose(s.a, s.o, s.x, out);
        CHECK(bitwise_equal(out, s.a));
    }
    // Huge output biases of either sign: t = +-1, a' is pushed onto the box faces, never past.
    auto& net = sh.network();
    auto b = net.linear(net.num_linear() - 1).bias();
    for (double sign : {1.0, -1.0}) {
        b.setConstant(sign * 50.0);
        for (int k = 0; k < 50; ++k) {
            s.draw(rng);
            sh.propose(s.a, s.o, s.x, out);
            for (persist::Index i = 0; i < kAct; ++i) {
                CHECK(out[i] >= -1.0);
                CHECK(out[i] <= 1.0);
                CHECK(out[i] == Approx(sign).margin(1e-12));
            }
        }
    }
}

TEST_CASE("amortized shield: MSE gradient matches central differences (double)", "[shield][amortized]") {
    AmortizedShieldOptions opt = small_options();
    opt.hidden = {7, 5};
    opt.output_gain = 1.0;  // z of order 1: both branches of the box residual are exercised
    for (bool use_obs : {true, false}) {
        opt.use_observation = use_obs;
        opt.observation_features = use_obs ? std::vector<persist::Index>{2, 0} : std::vector<persist::Index>{};
        auto sh = make_shield<double>(opt);
        const persist::Index B = 6, ds = sh.feature_dim();
        CHECK(ds == (use_obs ? 2 + kInt : kInt));
        Rng rng(6);
        Mat<double> S(ds, B), A(kAct, B), Y(kAct, B);
        for (persist::Index k = 0; k < S.size(); ++k) S.data()[k] = rng.uniform<double>(-1, 1);
        for (persist::Index k = 0; k < A.size(); ++k) A.data()[k] = rng.uniform<double>(-0.9, 0.9);
        for (persist::Index k = 0; k < Y.size(); ++k) Y.data()[k] = rng.uniform<double>(-1, 1);
        // Loss by a direct re-implementation of the formula (the one docs/amortized_shield.md states).
        auto& net = sh.network();
        auto ws = net.make_workspace();
        auto loss = [&] {
            Mat<double> X(ds + kAct, B);
            X.topRows(ds) = S;
            X.bottomRows(kAct) = A;  // box [-1, 1]: (a - mid) / half = a
            const Mat<double>& z = net.forward(X, ws);
            double L = 0;
            for (persist::Index j = 0; j < B; ++j)
                for (persist::Index i = 0; i < kAct; ++i) {
                    const double t = std::tanh(z(i, j)), a = A(i, j);
                    const double ap = z(i, j) >= 0 ? a + t * (1.0 - a) : a + t * (a + 1.0);
                    L += (ap - Y(i, j)) * (ap - Y(i, j));
                }
            return L / B;
        };
        const double L = sh.loss_and_gradient(S, A, Y);
        CHECK(L == Approx(loss()).epsilon(1e-12));
        const persist::Vec<double> g = net.grads();
        persist::Vec<double> num(g.size());
        auto& p = net.params();
        for (persist::Index k = 0; k < p.size(); ++k) {
            const double keep = p[k], h = 1e-6;
            p[k] = keep + h;
            const double fp = loss();
            p[k] = keep - h;
            const double fm = loss();
            p[k] = keep;
            num[k] = (fp - fm) / (2 * h);
        }
        const double rel = (g - num).norm() / (g.norm() + num.norm());
        INFO("relative error " << rel);
        CHECK(rel < 1e-7);
        CHECK(g.norm() > 1e-3);
    }
}

TEST_CASE("amortized shield: float gradient agrees with double", "[shield][amortized]") {
    AmortizedShieldOptions opt = small_options();
    opt.hidden = {16, 16};
    opt.output_gain = 1.0;
    auto shd = make_shield<double>(opt);
    auto shf = make_shield<float>(opt);
    REQUIRE((shd.network().params().cast<float>() - shf.network().params()).norm() <
            1e-6 * shf.network().params().norm());
    Rng rng(8);
    const persist::Index B = 32, ds = shd.feature_dim();
    Mat<double> S(ds, B), A(kAct, B), Y(kAct, B);
    for (persist::Index k = 0; k < S.size(); ++k) S.data()[k] = rng.uniform<double>(-1, 1);
    for (persist::Index k = 0; k < A.size(); ++k) A.data()[k] = rng.uniform<double>(-1, 1);
    for (persist::Index k = 0; k < Y.size(); ++k) Y.data()[k] = rng.uniform<double>(-1, 1);
    shd.network().params() = shf.network().params().cast<double>();
    const double Ld = shd.loss_and_gradient(S, A, Y);
    const float Lf = shf.loss_and_gradient(S.cast<float>(), A.cast<float>(), Y.cast<float>());
    CHECK(Lf == Approx(Ld).epsilon(1e-5));
    const persist::Vec<double> gf = shf.network().grads().cast<double>();
    CHECK((gf - shd.network().grads()).norm() / shd.network().grads().norm() < 2e-5);
}

// ---- learning the projection ----------------------------------------------------------------

TEST_CASE("amortized shield: g_phi learns the projection (3 seeds)", "[shield][amortized][learning]") {
    // Search mode for 3000 decisions (1 Adam step each), then 5000 more steps by update():
    // the network's proposal must land within 0.03 (mean, box half-width 1) of the exact
    // projection on fresh unsafe states, for every seed. Untrained (near identity) it is ~0.5.
    constexpr double kTol = 0.03;
    for (std::uint64_t seed : {11u, 12u, 13u}) {
        AmortizedShieldOptions opt = small_options(seed);
        opt.switch_after_steps = 1'000'000;  // stay in search mode
        opt.batch_size = 128;
        auto sh = make_shield<float>(opt);
        const double before = mean_projection_error(sh, 99, 400);
        Rng rng(seed, 1);
        Sample<float> s;
        persist::Vec<float> out(kAct);
        for (int t = 0; t < 3000; ++t) {
            s.draw(rng);
            sh.project(s.a, s.o, s.x, out);
        }
        for (int k = 0; k < 5000; ++k) sh.update();
        double mx = 0;
        const double after = mean_projection_error(sh, 99, 400, &mx);
        UNSCOPED_INFO("seed " << seed << ": mean |g - proj| " << before << " -> " << after << " (max " << mx
                              << "), last loss " << sh.last_loss());
        CHECK(before > 0.2);
        CHECK(after < kTol);
    }
}

// ---- amortized mode -------------------------------------------------------------------------

namespace {

/// Train a float shield in search mode until it switches, with the given precheck setting.
template <class T>
AmortizedShield<HalfPlaneSearch<T>> trained_shield(bool precheck, std::uint64_t seed,
                                                   HalfPlaneSearch<T> search = {}) {
    AmortizedShieldOptions opt = small_options(seed);
    opt.switch_after_steps = 2500;
    opt.batch_size = 128;
    opt.precheck = precheck;
    opt.identity_fraction = precheck ? 0.1 : 0.5;  // without precheck g_phi must also learn a -> a
    opt.train_steps_per_decision = 2;
    auto sh = make_shield<T>(opt, search);
    Rng rng(seed, 2);
    Sample<T> s;
    persist::Vec<T> out(kAct);
    for (int t = 0; t < 2500; ++t) {
        s.draw(rng);
        sh.project(s.a, s.o, s.x, out);
    }
    return sh;
}

}  // namespace

TEMPLATE_TEST_CASE("amortized shield: amortized mode accepts g_phi's output or falls back exactly when the "
                   "check fails; every returned action is safe",
                   "[shield][amortized]", float, double) {
    using T = TestType;
    for (bool precheck : {true, false}) {
        auto sh = trained_shield<T>(precheck, 21);
        using Mode = typename AmortizedShield<HalfPlaneSearch<T>>::Mode;
        REQUIRE(sh.mode() == Mode::amortized);
        const auto st0 = sh.stats();
        const auto proj0 = sh.search().project_calls, prob0 = sh.search().probability_calls;
        Rng rng(22);
        Sample<T> s;
        persist::Vec<T> got(kAct), net_out(kAct), want(kAct);
        std::int64_t pre = 0, acc = 0, fb = 0, checks = 0;
        const double half_tol = sh.options().projection_tolerance;
        for (int t = 0; t < 2000; ++t) {
            s.draw(rng);
            const bool a_safe = sh.search().safe(s.a, s.o, s.x);
            sh.propose(s.a, s.o, s.x, net_out);  // what g_phi will say (before any fallback training)
            const auto d = sh.project(s.a, s.o, s.x, got);
            REQUIRE(sh.search().safe(got, s.o, s.x));  // never an unsafe action
            if (precheck && a_safe) {
                ++pre;
                ++checks;
                REQUIRE(bitwise_equal(got, s.a));
                REQUIRE_FALSE(d.projected);
            } else if (sh.search().safe(net_out, s.o, s.x)) {
                ++acc;
                checks += precheck ? 2 : 1;
                REQUIRE(bitwise_equal(got, net_out));
                REQUIRE(d.feasible);
                REQUIRE(d.probability == T(1));
                REQUIRE(d.distance == Approx((net_out - s.a).norm()));
                const bool moved = (net_out - s.a).cwiseAbs().maxCoeff() > half_tol;
                REQUIRE(d.projected == (precheck || moved));
            } else {
                ++fb;
                checks += precheck ? 2 : 1;
                sh.search().projection(s.a, s.o, s.x, want);
                REQUIRE(bitwise_equal(got, want));  // the search's own answer
                REQUIRE(d.projected == !a_safe);
            }
        }
        const auto& st = sh.stats();
        INFO("precheck " << precheck << ": precheck accepts " << pre << ", network accepts " << acc
                         << ", fallbacks " << fb);
        CHECK(st.decisions - st0.decisions == 2000);
        CHECK(st.precheck_accepts - st0.precheck_accepts == pre);
        CHECK(st.amortized_accepts - st0.amortized_accepts == acc);
        CHECK(st.fallbacks - st0.fallbacks == fb);
        CHECK(st.search_calls - st0.search_calls == fb);
        CHECK(sh.search().project_calls - proj0 == fb);
        CHECK(st.probability_calls - st0.probability_calls == checks);
        CHECK(sh.search().probability_calls - prob0 == checks);
        CHECK(st.search_mode_decisions == st0.search_mode_decisions);
        // The network does the work: most checked proposals pass (~50% of states are unsafe).
        CHECK(acc > 3 * fb);
        if (precheck) CHECK(pre > 600);
        else CHECK(pre == 0);
    }
}

TEST_CASE("amortized shield: where no action is safe it returns exactly the search's answer",
          "[shield][amortized]") {
    HalfPlaneSearch<double> search;
    search.empty_above = 0.7;  // 30% of states have no safe action
    auto sh = trained_shield<double>(true, 31, search);
    Rng rng(32);
    Sample<double> s;
    persist::Vec<double> got(kAct), want(kAct);
    int empty = 0;
    for (int t = 0; t < 1000; ++t) {
        s.draw(rng);
        HalfPlaneSearch<double> ref = search;
        const auto e = ref.project(s.a, s.o, s.x, want);
        const auto d = sh.project(s.a, s.o, s.x, got);
        if (e.feasible) {
            REQUIRE(sh.search().safe(got, s.o, s.x));  // safe whenever the search is
        } else {
            ++empty;
            REQUIRE(bitwise_equal(got, want));
            REQUIRE_FALSE(d.feasible);
            REQUIRE(d.projected);
        }
    }
    CHECK(empty > 200);
}

// ---- determinism and checkpoints --------------------------------------------------------------

namespace {
template <class S>
void drive(S& sh, std::uint64_t seed, int n, std::vector<double>* trace = nullptr) {
    using T = typename S::scalar_type;
    Rng rng(seed, 3);
    Sample<T> s;
    persist::Vec<T> out(kAct);
    for (int t = 0; t < n; ++t) {
        s.draw(rng);
        const auto d = sh.project(s.a, s.o, s.x, out);
        if (trace) {
            for (persist::Index i = 0; i < kAct; ++i) trace->push_back(static_cast<double>(out[i]));
            trace->push_back(d.projected);
        }
    }
}
}  // namespace

TEST_CASE("amortized shield: same seed gives bitwise identical runs, another seed differs", "[shield][amortized]") {
    AmortizedShieldOptions opt = small_options(41);
    opt.switch_after_steps = 300;
    auto a = make_shield<float>(opt), b = make_shield<float>(opt);
    opt.seed = 42;
    auto c = make_shield<float>(opt);
    std::vector<double> ta, tb, tc;
    drive(a, 5, 800, &ta);
    drive(b, 5, 800, &tb);
    drive(c, 5, 800, &tc);
    CHECK(a.stats().fallbacks > 0);
    CHECK(ta == tb);
    CHECK(bitwise_equal(a.network().params(), b.network().params()));
    CHECK(a.stats().train_steps == b.stats().train_steps);
    CHECK_FALSE(bitwise_equal(a.network().params(), c.network().params()));
}

TEST_CASE("amortized shield: copies, moves and assignments continue exactly like the original",
          "[shield][amortized]") {
    AmortizedShieldOptions opt = small_options(61);
    opt.switch_after_steps = 300;
    auto a = make_shield<float>(opt);
    drive(a, 6, 350);  // crosses the switch: network, optimizer, ring and stream all in use
    auto b = a;        // copy
    opt.seed = 998;
    auto c = make_shield<float>(opt);
    c = a;             // copy assignment over a differently initialised shield
    auto tmp = a;
    opt.seed = 997;
    auto d = make_shield<float>(opt);
    d = std::move(tmp);  // move assignment
    auto e = std::move(b);  // move construction (b is left moved-from)
    std::vector<double> ta, tc, td, te;
    drive(a, 7, 300, &ta);
    drive(c, 7, 300, &tc);
    drive(d, 7, 300, &td);
    drive(e, 7, 300, &te);
    CHECK(ta == tc);
    CHECK(ta == td);
    CHECK(ta == te);
    CHECK(a.stats().train_steps > 0);
    for (auto* s : {&c, &d, &e}) {
        CHECK(bitwise_equal(a.network().params(), s->network().params()));
        CHECK(a.optimizer().state().step == s->optimizer().state().step);
        CHECK(a.stats().train_steps == s->stats().train_steps);
    }
}

TEMPLATE_TEST_CASE("amortized shield: checkpoint round trip is bitwise (save, continue == load, continue)",
                   "[shield][amortized][checkpoint]", float, double) {
    using T = TestType;
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("persist_amortized_" + std::to_string(sizeof(T)));
    fs::create_directories(dir);
    const fs::path path = dir / "shield.ckpt";
    AmortizedShieldOptions opt = small_options(51);
    opt.switch_after_steps = 300;
    auto a = make_shield<T>(opt);
    drive(a, 6, 350);  // crosses the switch
    persist::io::save_checkpoint(path, a);

    opt.seed = 999;  // a different init and stream: everything must come from the file
    auto b = make_shield<T>(opt);
    persist::io::load_checkpoint(path, b);
    CHECK(bitwise_equal(a.network().params(), b.network().params()));
    CHECK(a.stats().decisions == b.stats().decisions);
    CHECK(b.mode() == AmortizedShield<HalfPlaneSearch<T>>::Mode::amortized);

    std::vector<double> ta, tb;
    drive(a, 7, 300, &ta);
    drive(b, 7, 300, &tb);
    CHECK(ta == tb);
    CHECK(bitwise_equal(a.network().params(), b.network().params()));
    CHECK(a.optimizer().state().step == b.optimizer().state().step);
    CHECK(bitwise_equal(a.optimizer().state().v, b.optimizer().state().v));
    const auto& sa = a.stats();
    const auto& sb = b.stats();
    CHECK(sa.fallbacks == sb.fallbacks);
    CHECK(sa.amortized_accepts == sb.amortized_accepts);
    CHECK(sa.pairs_stored == sb.pairs_stored);
    CHECK(sa.train_steps == sb.train_steps);
    CHECK(a.update() == b.update());  // same ring, same stream

    // The state names a checkpoint holds.
    const auto info = persist::io::inspect_checkpoint(path);
    std::vector<std::string> names;
    for (const auto& e : info.entries) names.push_back(e.name);
    for (const char* n : {"net.params", "opt.m", "opt.v", "opt.step", "ring.s", "ring.a", "ring.a_safe",
                          "ring.size", "ring.head", "stats.fallbacks", "rng_seed", "rng_position"})
        CHECK(std::find(names.begin(), names.end(), n) != names.end());

    // A differently shaped shield refuses the file and stays unchanged.
    AmortizedShieldOptions o2 = small_options(51);
    o2.hidden = {32};
    auto c = make_shield<T>(o2);
    const persist::Vec<T> keep = c.network().params();
    CHECK_THROWS_AS(persist::io::load_checkpoint(path, c), persist::CheckpointError);
    CHECK(bitwise_equal(keep, c.network().params()));
    fs::remove_all(dir);
}

TEST_CASE("amortized shield: a shared (reference) search is used in place and not checkpointed",
          "[shield][amortized]") {
    HalfPlaneSearch<double> search;
    AmortizedShield<HalfPlaneSearch<double>&> sh(search, kObs, kInt, box_low<double>(), box_high<double>(),
                                                 small_options());
    Rng rng(9);
    Sample<double> s;
    persist::Vec<double> out(kAct);
    s.draw(rng);
    sh.project(s.a, s.o, s.x, out);
    CHECK(search.project_calls == 1);
    CHECK(&sh.search() == &search);
    bool has_search = false;
    sh.visit_state([&](persist::TensorRef t) { has_search |= t.name.rfind("search.", 0) == 0; });
    CHECK_FALSE(has_search);
}
