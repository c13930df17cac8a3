// ViabilityApproximator (V_psi): focal-loss gradient vs central differences, learning the
// seed's constraint set, near-boundary mixing counts, failure labels, margins() vs
// classification, view(), pre-training from demonstrations, and the checkpoint round trip of
// the ensemble + approximator.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <unistd.h>
#include <vector>

#include "models/models_fixtures.hpp"
#include "persist/io/checkpoint.hpp"
#include "persist/models/models.hpp"

using persist::ConfigError;
using persist::Error;
using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::RowVec;
using persist::ShapeError;
using persist::TransitionBatch;
using persist::Vec;
using persist::replay::DemonstrationBuffer;
using persist::replay::NearBoundaryBuffer;
using persist::viability::ApproximatorOptions;
using persist::viability::ConstraintSet;
using persist::viability::LabelSource;
using persist::viability::ViabilityApproximator;
using modtest::uniform;

static_assert(persist::ViabilityModel<ViabilityApproximator<double>>);
static_assert(persist::ViabilityModel<ViabilityApproximator<float>>);
static_assert(persist::Stateful<ViabilityApproximator<double>>);
static_assert(persist::Stateful<ViabilityApproximator<float>>);

namespace {

ConstraintSet<double> seed_constraints() {
    return ConstraintSet<double>({"energy", "temp", "integrity"},
                                 {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"});
}

/// Fraction of columns where (m(x) >= 0) agrees with the constraint set.
template <class T>
double accuracy(const ViabilityApproximator<T>& v, const ConstraintSet<T>& cs, const Mat<T>& x) {
    Mat<T> m(1, x.cols());
    v.margins(x, m);
    Index ok = 0;
    for (Index j = 0; j < x.cols(); ++j) ok += ((m(0, j) >= 0) == cs.satisfied(Vec<T>(x.col(j)))) ? 1 : 0;
    return static_cast<double>(ok) / static_cast<double>(x.cols());
}

TransitionBatch<double> state_batch(const Mat<double>& next) {
    TransitionBatch<double> b;
    b.resize(0, next.rows(), 0, 0, next.cols());
    b.next_internal = next;
    b.internal = next;
    b.terminated.setZero();
    b.truncated.setZero();
    b.reward.setZero();
    return b;
}

}  // namespace

TEST_CASE("approximator focal-loss gradient matches central differences", "[models][approximator][grad]") {
    ViabilityApproximator<double> v({.dim = 3, .hidden = {8, 8}, .seed = 3});
    Rng rng(4);
    const Mat<double> x = uniform(3, 20, rng, -1, 2);
    Mat<double> y(1, 20);
    for (Index j = 0; j < 20; ++j) y(0, j) = j % 5 == 0 ? 0.3 : static_cast<double>(j % 2);  // hard and soft labels
    v.network().params() *= 3.0;  // logits of both signs and sizes
    v.loss_and_gradient(x, y);
    const Vec<double> g = v.network().grads();
    auto& p = v.network().params();
    const Mat<double> fd = modtest::numgrad(p, [&] { return v.loss_and_gradient(x, y); });
    const double err = modtest::rel_err(g, fd);
    INFO("rel err " << err);
    CHECK(err < 1e-6);
    CHECK(g.norm() > 1e-3);
    // the loss is nn::BinaryFocal on the network output
    typename ViabilityApproximator<double>::Network::Workspace ws;
    CHECK(v.loss_and_gradient(x, y) == persist::nn::BinaryFocal<double>{0.25, 2.0}.value(v.network().forward(x, ws), y));
    CHECK_THROWS_AS(v.loss_and_gradient(x.topRows(2), y), ShapeError);
    CHECK_THROWS_AS(v.loss_and_gradient(x, y.leftCols(3)), ShapeError);
    Mat<double> bad = y;
    bad(0, 2) = 1.5;
    CHECK_THROWS_WITH(v.loss_and_gradient(x, bad), Catch::Contains("label 2"));
}

TEST_CASE("approximator options are validated", "[models][approximator]") {
    auto with = [](auto f) {
        ApproximatorOptions o{.dim = 3};
        f(o);
        return o;
    };
    CHECK_THROWS_WITH(ViabilityApproximator<double>(with([](auto& o) { o.dim = 0; })), Catch::Contains("dim"));
    CHECK_THROWS_AS(ViabilityApproximator<double>(with([](auto& o) { o.hidden = {1, 1, 1, 1, 1, 1, 1, 1}; })), ConfigError);
    CHECK_THROWS_AS(ViabilityApproximator<double>(with([](auto& o) { o.focal_alpha = 1.5; })), ConfigError);
    CHECK_THROWS_AS(ViabilityApproximator<double>(with([](auto& o) { o.focal_gamma = -1; })), ConfigError);
    CHECK_THROWS_AS(ViabilityApproximator<double>(with([](auto& o) { o.batch_size = 0; })), ConfigError);
    CHECK_THROWS_WITH(ViabilityApproximator<double>(with([](auto& o) { o.near_boundary_fraction = 1.1; })),
                      Catch::Contains("near_boundary_fraction"));
    CHECK_THROWS_AS(ViabilityApproximator<double>(with([](auto& o) { o.negative_box_scale = 0.5; })), ConfigError);
    CHECK_THROWS_AS(ViabilityApproximator<double>(with([](auto& o) { o.demo_negative_fraction = 1.0; })), ConfigError);
    ViabilityApproximator<double> v({.dim = 3});
    const auto wrong = ConstraintSet<double>({"a", "b"}, {"a >= 0"});
    CHECK_THROWS_AS(v.set_constraints(&wrong), ShapeError);
}

TEST_CASE("approximator learns the seed's constraint set from uniform samples (>= 97%, 3 seeds)",
          "[models][approximator][learning]") {
    // Labels from the true constraints (LabelSource::constraints), states uniform in [0, 1]^3
    // (12.8% of them safe), default options (hidden 64-64, lr 1e-3, batch 256, focal 2 / 0.25).
    const auto cs = seed_constraints();
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        ViabilityApproximator<double> v({.dim = 3, .seed = seed});
        v.set_constraints(&cs);
        CHECK(v.label_source() == LabelSource::constraints);
        Rng rng(50 + seed);
        TransitionBatch<double> b = state_batch(uniform(3, 256, rng));
        for (int k = 0; k < 4000; ++k) {
            b.next_internal = uniform(3, 256, rng);
            v.update(b);
        }
        const Mat<double> test = uniform(3, 20000, rng);
        const double acc = accuracy(v, cs, test);
        INFO("seed " << seed << " held-out accuracy " << acc);
        CHECK(acc >= 0.97);
        // margins() sign agrees with the classification Pr(safe) >= 1/2, batched and per state
        Mat<double> m(1, 500);
        v.margins(test.leftCols(500), m);
        Index agree = 0;
        for (Index j = 0; j < 500; ++j) {
            const Vec<double> xj = test.col(j);
            CHECK(m(0, j) == Approx(v.margin(xj)).epsilon(1e-12).margin(1e-12));  // B = 1 takes another GEMM path
            if (std::abs(m(0, j)) > 1e-9) agree += (m(0, j) >= 0) == (v.probability(xj) >= 0.5) ? 1 : 0;
            else ++agree;
        }
        CHECK(agree == 500);
    }
}

TEST_CASE("approximator update mixes replay and near-boundary states in the configured proportion",
          "[models][approximator][near_boundary]") {
    // Replay states have energy 0.9 (deep inside), buffer states energy in (0.2, 0.25) (near the
    // boundary): the origin of every drawn state is recognisable.
    const auto cs = seed_constraints();
    NearBoundaryBuffer<double> nb({.capacity = 64, .internal_dim = 3, .epsilon = 0.05});
    Rng rng(7);
    std::set<double> nb_energies;
    while (nb.size() < 20) {
        Vec<double> x(3);
        x << rng.uniform<double>(0.2, 0.25), 0.5, 0.9;
        if (nb.offer(cs, x)) nb_energies.insert(x(0));
    }
    Mat<double> rep = uniform(3, 40, rng, 0.4, 0.6);
    rep.row(0).setConstant(0.9);
    TransitionBatch<double> b = state_batch(rep);
    ViabilityApproximator<double> v({.dim = 3, .batch_size = 100, .near_boundary_fraction = 0.3, .seed = 1});
    v.set_constraints(&cs);
    auto st = v.update(b, nb);
    CHECK(st.near_boundary_samples == 30);
    CHECK(st.replay_samples == 70);
    CHECK(st.positives + st.negatives == 100);
    const Mat<double>& xs = v.last_states();
    REQUIRE(xs.cols() == 100);
    for (Index j = 0; j < 70; ++j) CHECK(xs(0, j) == 0.9);
    for (Index j = 70; j < 100; ++j) CHECK(nb_energies.count(xs(0, j)) == 1);
    // several distinct buffer states are drawn (uniform sampling, not one repeated)
    std::set<double> drawn(xs.row(0).rightCols(30).data(), xs.row(0).rightCols(30).data() + 30);
    CHECK(drawn.size() >= 10);
    // an empty buffer contributes nothing: all from replay
    NearBoundaryBuffer<double> empty({.capacity = 8, .internal_dim = 3});
    st = v.update(b, empty);
    CHECK(st.near_boundary_samples == 0);
    CHECK(st.replay_samples == 100);
    // fraction 1: everything from the buffer, the replay batch may be empty
    ViabilityApproximator<double> all({.dim = 3, .batch_size = 16, .near_boundary_fraction = 1.0});
    TransitionBatch<double> none;
    none.resize(0, 3, 0, 0, 0);
    st = all.update(none, nb);
    CHECK(st.near_boundary_samples == 16);
    CHECK(st.replay_samples == 0);
    CHECK_THROWS_AS(all.update(none), ShapeError);  // without the buffer the replay batch is needed
    // rounding of the count: 0.25 * 10 = 2.5 -> 3 (llround)
    ViabilityApproximator<double> r({.dim = 3, .batch_size = 10, .near_boundary_fraction = 0.25});
    CHECK(r.update(b, nb).near_boundary_samples == 3);
    NearBoundaryBuffer<double> wrong({.capacity = 8, .internal_dim = 2});
    CHECK_THROWS_AS(r.update(b, wrong), ShapeError);
}

TEST_CASE("approximator failure labels: terminated next states unsafe, the rest safe", "[models][approximator]") {
    ViabilityApproximator<double> v({.dim = 3, .batch_size = 200, .near_boundary_fraction = 0.5, .seed = 2});
    CHECK(v.label_source() == LabelSource::failures);
    Rng rng(9);
    Mat<double> next = uniform(3, 30, rng);
    TransitionBatch<double> b = state_batch(next);
    for (Index j = 0; j < 30; ++j) {
        b.terminated(0, j) = j % 3 == 0 ? 1.0 : 0.0;
        b.next_internal(2, j) = static_cast<double>(j);  // tag
    }
    NearBoundaryBuffer<double> nb({.capacity = 8, .internal_dim = 3, .epsilon = 0.05});
    nb.offer_margin(Vec<double>::Constant(3, -7.0), 0.01);  // labelled by its (positive) margin: safe
    const auto st = v.update(b, nb);
    const Mat<double>& xs = v.last_states();
    const Mat<double>& ys = v.last_labels();
    Index neg = 0;
    for (Index j = 0; j < 100; ++j) {
        const auto tag = static_cast<Index>(xs(2, j));
        CHECK(ys(0, j) == (tag % 3 == 0 ? 0.0 : 1.0));
        neg += tag % 3 == 0 ? 1 : 0;
    }
    for (Index j = 100; j < 200; ++j) {
        CHECK(xs(0, j) == -7.0);
        CHECK(ys(0, j) == 1.0);
    }
    CHECK(st.negatives == neg);
    CHECK(st.positives == 200 - neg);
}

TEST_CASE("approximator view() is its network as an MLPView", "[models][approximator][view]") {
    ViabilityApproximator<double> v({.dim = 3, .hidden = {16, 8}, .seed = 5});
    const auto w = v.view();
    CHECK(w.params == v.network().params().data());
    CHECK(w.num_layers == 3);
    CHECK(w.in_dim() == 3);
    CHECK(w.out_dim() == 1);
    CHECK(w.widths[1] == 16);
    CHECK(w.max_width() == 16);
    Rng rng(6);
    const Mat<double> x = uniform(3, 10, rng);
    for (Index j = 0; j < 10; ++j) {
        std::vector<double> h(x.col(j).data(), x.col(j).data() + 3);
        const double* p = w.params;
        for (int l = 0; l < w.num_layers; ++l) {
            const int in = w.widths[l], out = w.widths[l + 1];
            std::vector<double> y(static_cast<std::size_t>(out));
            for (int r = 0; r < out; ++r) {
                double s = p[out * in + r];
                for (int c = 0; c < in; ++c) s += p[r + c * out] * h[static_cast<std::size_t>(c)];
                y[static_cast<std::size_t>(r)] = (l + 1 < w.num_layers && s < 0) ? 0.0 : s;
            }
            h = y;
            p += out * in + out;
        }
        CHECK(h[0] == Approx(v.margin(Vec<double>(x.col(j)))).epsilon(1e-12).margin(1e-12));
    }
}

TEST_CASE("approximator pre-trained on safe demonstrations classifies held-out states (>= 90%, 3 seeds)",
          "[models][approximator][demonstrations]") {
    // The known safe set: the seed's constraints within GridLife's physical range [0, 1]^3, i.e.
    // the box energy in [0.2, 1], temp in [0.3, 0.7], integrity in [0.6, 1]. Demonstrations:
    // 2000 states uniform in it; no constraints are given to the approximator. Held-out states:
    // uniform in the box the negatives are generated from (the demos' bounding box scaled by
    // negative_box_scale = 2, 8x the set's volume), labelled by membership of the set.
    const ConstraintSet<double> cs({"energy", "temp", "integrity"},
                                   {"energy in [0.2, 1]", "temp in [0.3, 0.7]", "integrity in [0.6, 1]"});
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        Rng rng(300 + seed);
        DemonstrationBuffer<double> demos(3, 0);
        for (int k = 0; k < 2000; ++k) {
            Vec<double> x(3);
            x << rng.uniform<double>(0.2, 1.0), rng.uniform<double>(0.3, 0.7), rng.uniform<double>(0.6, 1.0);
            demos.add(k / 100, x, Vec<double>());
        }
        ViabilityApproximator<double> v({.dim = 3, .seed = seed});
        const auto st = v.pretrain(demos, 1500, rng);
        const Vec<double> lo = demos.states().rowwise().minCoeff(), hi = demos.states().rowwise().maxCoeff();
        Mat<double> test(3, 20000);
        for (Index j = 0; j < test.cols(); ++j)
            for (Index i = 0; i < 3; ++i) {
                const double c = (lo(i) + hi(i)) / 2, e = hi(i) - lo(i);
                test(i, j) = c + 2.0 * e * (rng.uniform<double>() - 0.5);
            }
        const double acc = accuracy(v, cs, test);
        INFO("seed " << seed << " held-out accuracy " << acc << " last pretrain loss " << st.loss);
        CHECK(acc >= 0.90);
        CHECK(st.positives == 128);
        CHECK(st.negatives == 128);
    }
}

TEST_CASE("generated negatives: in the scaled box, farther than the radius, violating given constraints",
          "[models][approximator][demonstrations]") {
    Rng rng(17);
    DemonstrationBuffer<double> demos(2, 1);
    for (int k = 0; k < 300; ++k) {
        Vec<double> x(2), a(1);
        x << rng.uniform<double>(0, 1), rng.uniform<double>(0, 2);
        a << 0;
        demos.add(0, x, a);
    }
    ViabilityApproximator<double> v({.dim = 2, .negative_box_scale = 3.0, .negative_radius = 0.1});
    Mat<double> neg;
    v.generate_negatives(demos, 500, rng, neg);
    REQUIRE(neg.cols() == 500);
    const Vec<double> lo = demos.states().rowwise().minCoeff(), hi = demos.states().rowwise().maxCoeff();
    const Vec<double> c = (lo + hi) / 2, e = hi - lo;
    for (Index k = 0; k < 500; ++k) {
        CHECK((((neg.col(k) - c).array().abs()) <= 1.5 * e.array()).all());
        double dmin = 1e9;
        for (Index i = 0; i < demos.size(); ++i)
            dmin = std::min(dmin, ((neg.col(k) - demos.states().col(i)).array() / e.array()).matrix().norm());
        CHECK(dmin > 0.1);
    }
    // with constraints attached, every negative violates them
    const ConstraintSet<double> cs({"p", "q"}, {"p + q <= 2.5"});
    v.set_constraints(&cs);
    v.generate_negatives(demos, 200, rng, neg);
    for (Index k = 0; k < 200; ++k) CHECK_FALSE(cs.satisfied(Vec<double>(neg.col(k))));
    // impossible: the scaled box is the demos' own box and the radius covers it
    ViabilityApproximator<double> full({.dim = 2, .negative_box_scale = 1.0, .negative_radius = 5.0,
                                        .negative_max_tries = 10});
    CHECK_THROWS_WITH(full.generate_negatives(demos, 4, rng, neg), Catch::Contains("covered by demonstrations"));
    DemonstrationBuffer<double> wrong(3, 0);
    CHECK_THROWS_AS(v.pretrain(wrong, 10, rng), ShapeError);
}

TEMPLATE_TEST_CASE("checkpoint round trip of ensemble + approximator is bitwise and resumes exactly",
                   "[models][checkpoint]", float, double) {
    using T = TestType;
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("persist_models_ckpt_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path file = dir / "models.ckpt";
    using persist::models::GaussianEnsemble;
    const persist::models::EnsembleOptions eo{.internal_dim = 3, .action_dim = 2, .obs_features = {0}, .members = 3,
                                             .hidden = {16, 16}, .seed = 1};
    const ApproximatorOptions ao{.dim = 3, .hidden = {16}, .batch_size = 32, .seed = 1};
    const auto cs_d = seed_constraints();
    const ConstraintSet<T> cs({"energy", "temp", "integrity"}, {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"});
    GaussianEnsemble<T> ens(eo);
    ViabilityApproximator<T> apx(ao);
    apx.set_constraints(&cs);
    Rng rng(3);
    auto batch = [&] {
        TransitionBatch<T> b;
        b.resize(2, 3, 2, 0, 32);
        b.observation = uniform<T>(2, 32, rng);
        b.internal = uniform<T>(3, 32, rng);
        b.action = uniform<T>(2, 32, rng, -1, 1);
        b.next_internal = b.internal + uniform<T>(3, 32, rng, -0.05, 0.05);
        b.terminated.setZero();
        return b;
    };
    for (int k = 0; k < 5; ++k) {
        const auto b = batch();
        ens.update(b);
        apx.update(b);
    }
    persist::io::CheckpointWriter().add("internal_model", ens).add("viability", apx).save(file);
    // fresh objects with other seeds: same shapes, different numbers
    auto eo2 = eo;
    eo2.seed = 99;
    auto ao2 = ao;
    ao2.seed = 99;
    GaussianEnsemble<T> ens2(eo2);
    ViabilityApproximator<T> apx2(ao2);
    apx2.set_constraints(&cs);
    CHECK_FALSE(modtest::state_bytes(ens2) == modtest::state_bytes(ens));
    persist::io::CheckpointReader r(file);
    r.add("internal_model", ens2).add("viability", apx2).load();
    CHECK(modtest::state_bytes(ens2) == modtest::state_bytes(ens));
    CHECK(modtest::state_bytes(apx2) == modtest::state_bytes(apx));
    // both continue identically (bootstrap and update streams resumed)
    for (int k = 0; k < 3; ++k) {
        const auto b = batch();
        ens.update(b);
        ens2.update(b);
        apx.update(b);
        apx2.update(b);
    }
    CHECK(modtest::state_bytes(ens2) == modtest::state_bytes(ens));
    CHECK(modtest::state_bytes(apx2) == modtest::state_bytes(apx));
    // a model of another shape does not load (and is left unchanged)
    GaussianEnsemble<T> other({.internal_dim = 3, .action_dim = 2, .members = 2});
    const auto before = modtest::state_bytes(other);
    persist::io::CheckpointReader r2(file);
    r2.add("internal_model", other);
    CHECK_THROWS_AS(r2.load(persist::io::ExtraEntries::ignore), persist::CheckpointError);
    CHECK(modtest::state_bytes(other) == before);
    (void)cs_d;
    fs::remove_all(dir);
}
