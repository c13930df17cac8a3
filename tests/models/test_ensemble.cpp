// GaussianEnsemble (f_theta) and KnownDynamics: NLL gradient vs central differences, shapes
// and errors, sampling semantics and determinism, learning known linear dynamics (mean and
// noise std), view() against a hand-written evaluation, GridLife's exact dynamics.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "models/models_fixtures.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/models/models.hpp"
#include "persist/viability/constraints.hpp"

using persist::ConfigError;
using persist::Error;
using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::ShapeError;
using persist::TransitionBatch;
using persist::Vec;
using persist::models::EnsembleOptions;
using persist::models::GaussianEnsemble;
using persist::models::KnownDynamics;
using modtest::uniform;

static_assert(persist::InternalModel<GaussianEnsemble<double>>);
static_assert(persist::InternalModel<GaussianEnsemble<float>>);
static_assert(persist::Stateful<GaussianEnsemble<double>>);
static_assert(persist::Stateful<GaussianEnsemble<float>>);
static_assert(persist::InternalModel<KnownDynamics<persist::env::GridLife<double>>>);
static_assert(persist::InternalModel<KnownDynamics<persist::env::GridLife<float>>>);
static_assert(persist::Stateful<KnownDynamics<persist::env::GridLife<double>>>);
static_assert(!persist::InternalModel<persist::viability::ConstraintSet<double>>);

namespace {

EnsembleOptions small_opts(std::uint64_t seed = 1) {
    return {.internal_dim = 3, .action_dim = 2, .obs_features = {1, 4}, .members = 3, .hidden = {8, 6}, .seed = seed};
}

/// A batch of random (x, a, o, x_next) with x_next = x + small change.
template <class T>
TransitionBatch<T> random_batch(Index B, Rng& rng, Index obs_rows = 6) {
    TransitionBatch<T> b;
    b.resize(obs_rows, 3, 2, 0, B);
    b.observation = uniform<T>(obs_rows, B, rng, -1, 1);
    b.internal = uniform<T>(3, B, rng, 0, 1);
    b.action = uniform<T>(2, B, rng, -1, 1);
    b.next_internal = b.internal + uniform<T>(3, B, rng, -0.1, 0.1);
    b.next_observation = b.observation;
    b.reward.setZero();
    b.terminated.setZero();
    b.truncated.setZero();
    return b;
}

/// The soft bound of views.hpp, written out again from its formula.
double ref_logstd(double r, double lo, double hi) {
    auto softplus = [](double v) { return std::log1p(std::exp(-std::abs(v))) + std::max(v, 0.0); };
    const double l1 = hi - softplus(hi - r);
    return lo + softplus(l1 - lo);
}

/// Member m of a view evaluated by hand, one column: mean and log-std of x_next in x units.
void eval_view_member(const persist::parallel::GaussianEnsembleView<double>& v, int m, const double* x,
                      const double* a, const double* o, double* mean, double* logstd) {
    const int X = v.internal_dim, A = v.action_dim, F = v.num_obs_features, D = X + A + F;
    std::vector<double> h(static_cast<std::size_t>(D));
    for (int i = 0; i < X; ++i) h[static_cast<std::size_t>(i)] = x[i];
    for (int i = 0; i < A; ++i) h[static_cast<std::size_t>(X + i)] = a[i];
    for (int i = 0; i < F; ++i) h[static_cast<std::size_t>(X + A + i)] = o[v.obs_features[i]];
    for (int i = 0; i < D; ++i) h[static_cast<std::size_t>(i)] = (h[static_cast<std::size_t>(i)] - v.in_mean[i]) / v.in_std[i];
    const auto& net = v.member[m];
    const double* p = net.params;
    for (int l = 0; l < net.num_layers; ++l) {
        const int in = net.widths[l], out = net.widths[l + 1];
        const double* W = p;
        const double* b = p + out * in;
        std::vector<double> y(static_cast<std::size_t>(out));
        for (int r = 0; r < out; ++r) {
            double s = b[r];
            for (int c = 0; c < in; ++c) s += W[r + c * out] * h[static_cast<std::size_t>(c)];
            y[static_cast<std::size_t>(r)] = (l + 1 < net.num_layers && s < 0) ? 0.0 : s;
        }
        h = y;
        p += out * in + out;
    }
    for (int i = 0; i < X; ++i) {
        mean[i] = x[i] + v.delta_mean[i] + v.delta_std[i] * h[static_cast<std::size_t>(i)];
        logstd[i] = ref_logstd(h[static_cast<std::size_t>(X + i)], v.min_logstd, v.max_logstd) + std::log(v.delta_std[i]);
    }
}

}  // namespace

TEST_CASE("ensemble NLL gradient (with the soft-bounded log-std) matches central differences", "[models][ensemble][grad]") {
    // Narrow bounds and enlarged weights put the raw log-std r on both soft bounds' curved parts.
    auto opt = small_opts(7);
    opt.min_logstd = -1.0;
    opt.max_logstd = 0.3;
    GaussianEnsemble<double> ens(opt);
    Rng rng(11);
    auto fit = random_batch<double>(64, rng);
    ens.fit_normalizers(fit);
    const auto b = random_batch<double>(16, rng);
    for (Index m = 0; m < ens.members(); ++m) {
        auto& p = ens.member(m).params();
        p *= 2.5;
        Mat<double> mean, ls;
        ens.member_predict(m, b.internal, b.action, b.observation, mean, ls);
        const Mat<double> lsn = ls - ens.delta_normalizer().std.array().log().matrix().replicate(1, ls.cols());
        INFO("member " << m << " log-sigma range [" << lsn.minCoeff() << ", " << lsn.maxCoeff() << "]");
        CHECK(lsn.minCoeff() < opt.min_logstd + 0.4);  // the lower bound is active
        CHECK(lsn.maxCoeff() > opt.max_logstd - 0.4);  // and the upper
        // soft: the lower bound is never reached; the upper one is applied first, so the lower
        // softplus can lift log_sigma above it by at most log(1 + exp(min - max)).
        CHECK(lsn.minCoeff() > opt.min_logstd);
        CHECK(lsn.maxCoeff() < opt.max_logstd + std::log1p(std::exp(opt.min_logstd - opt.max_logstd)));
        ens.member_nll(m, b.internal, b.action, b.observation, b.next_internal, true);
        const Vec<double> g = ens.member(m).grads();
        const Mat<double> fd = modtest::numgrad(p, [&] {
            return ens.member_nll(m, b.internal, b.action, b.observation, b.next_internal, false);
        });
        const double err = modtest::rel_err(g, fd);
        INFO("member " << m << " rel err " << err);
        CHECK(err < 1e-6);
        CHECK(g.norm() > 1e-3);
    }
}

TEST_CASE("ensemble NLL value is the Gaussian NLL of the normalised delta", "[models][ensemble]") {
    GaussianEnsemble<double> ens(small_opts(3));
    Rng rng(5);
    auto fit = random_batch<double>(50, rng);
    ens.fit_normalizers(fit);
    const auto b = random_batch<double>(9, rng);
    Mat<double> mean, ls;
    for (Index m = 0; m < ens.members(); ++m) {
        ens.member_predict(m, b.internal, b.action, b.observation, mean, ls);
        // In x units the NLL differs from the normalised one by sum_i log(delta_std_i) per sample.
        double nll_x = 0;
        for (Index j = 0; j < b.size(); ++j)
            for (Index i = 0; i < 3; ++i) {
                const double s = std::exp(ls(i, j)), e = b.next_internal(i, j) - mean(i, j);
                nll_x += 0.5 * e * e / (s * s) + ls(i, j) + 0.5 * std::log(2 * M_PI);
            }
        nll_x /= static_cast<double>(b.size());
        const double shift = ens.delta_normalizer().std.array().log().sum();
        CHECK(ens.member_nll(m, b.internal, b.action, b.observation, b.next_internal) ==
              Approx(nll_x - shift).epsilon(1e-12));
    }
}

TEMPLATE_TEST_CASE("ensemble predict / sample shapes, semantics and errors", "[models][ensemble]", float, double) {
    using T = TestType;
    GaussianEnsemble<T> ens(small_opts(2));
    Rng rng(3);
    auto fit = random_batch<T>(40, rng);
    ens.update(fit);
    const Index B = 7;
    const auto b = random_batch<T>(B, rng);
    Mat<T> xp, xs;
    ens.predict(b.internal, b.action, b.observation, xp);
    CHECK(xp.rows() == 3);
    CHECK(xp.cols() == B);
    CHECK(xp.allFinite());
    Rng r1(99);
    ens.sample(b.internal, b.action, b.observation, xs, r1);
    CHECK(xs.rows() == 3);
    CHECK(xs.cols() == B);

    // predict = mean over members of the member means.
    Mat<T> mean, ls, acc = Mat<T>::Zero(3, B);
    std::vector<Mat<T>> means, lss;
    for (Index m = 0; m < ens.members(); ++m) {
        ens.member_predict(m, b.internal, b.action, b.observation, mean, ls);
        acc += mean;
        means.push_back(mean);
        lss.push_back(ls);
    }
    acc /= T(ens.members());
    const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
    CHECK(modtest::rel_err(acc, xp) < tol);

    // sample: column j = member j % M with eps drawn in column order.
    Rng r2(99);
    for (Index j = 0; j < B; ++j)
        for (Index i = 0; i < 3; ++i) {
            const T eps = r2.normal<T>();
            const auto& mm = means[static_cast<std::size_t>(j % ens.members())];
            const auto& ll = lss[static_cast<std::size_t>(j % ens.members())];
            const double expect = double(mm(i, j)) + std::exp(double(ll(i, j))) * double(eps);
            CHECK(double(xs(i, j)) == Approx(expect).epsilon(tol).margin(tol));
        }
    CHECK(r1.position() == r2.position());

    // x_next may alias x
    Mat<T> alias = b.internal;
    ens.predict(alias, b.action, b.observation, alias);
    CHECK(alias == xp);
    alias = b.internal;
    Rng r3(99);
    ens.sample(alias, b.action, b.observation, alias, r3);
    CHECK(alias == xs);

    // errors
    Mat<T> bad_x = Mat<T>::Zero(2, B), bad_a = Mat<T>::Zero(3, B), short_o = Mat<T>::Zero(4, B);
    CHECK_THROWS_AS(ens.predict(bad_x, b.action, b.observation, xp), ShapeError);
    CHECK_THROWS_AS(ens.predict(b.internal, bad_a, b.observation, xp), ShapeError);
    CHECK_THROWS_WITH(ens.predict(b.internal, b.action, short_o, xp), Catch::Contains("at least 5 x 7"));
    CHECK_THROWS_AS(ens.sample(b.internal, b.action.leftCols(3), b.observation, xs, r1), ShapeError);
    CHECK_THROWS_AS(ens.member_predict(3, b.internal, b.action, b.observation, mean, ls), ShapeError);
    CHECK_THROWS_AS(ens.member(-1), ShapeError);
    auto nan_batch = fit;
    nan_batch.next_internal(1, 3) = std::numeric_limits<T>::quiet_NaN();
    CHECK_THROWS_WITH(ens.update(nan_batch), Catch::Contains("next_internal has a non-finite entry"));
    TransitionBatch<T> empty;
    empty.resize(6, 3, 2, 0, 0);
    CHECK_THROWS_AS(ens.update(empty), ShapeError);

    // without obs_features, o is not read (any shape)
    GaussianEnsemble<T> plain({.internal_dim = 3, .action_dim = 2});
    CHECK(plain.members() == 5);
    plain.predict(b.internal, b.action, Mat<T>(), xp);
    CHECK(xp.cols() == B);
}

TEST_CASE("ensemble options are validated", "[models][ensemble]") {
    auto with = [](auto f) {
        EnsembleOptions o{.internal_dim = 3, .action_dim = 2};
        f(o);
        return o;
    };
    CHECK_THROWS_WITH(GaussianEnsemble<double>(with([](auto& o) { o.internal_dim = 0; })), Catch::Contains("internal_dim"));
    CHECK_THROWS_WITH(GaussianEnsemble<double>(with([](auto& o) { o.members = 0; })), Catch::Contains("members"));
    CHECK_THROWS_WITH(GaussianEnsemble<double>(with([](auto& o) { o.members = 17; })), Catch::Contains("[1, 16]"));
    CHECK_THROWS_AS(GaussianEnsemble<double>(with([](auto& o) { o.hidden = {4, 4, 4, 4, 4, 4, 4, 4}; })), ConfigError);
    CHECK_THROWS_AS(GaussianEnsemble<double>(with([](auto& o) { o.hidden = {4, 0}; })), ConfigError);
    CHECK_THROWS_AS(GaussianEnsemble<double>(with([](auto& o) { o.min_logstd = 1; })), ConfigError);
    CHECK_THROWS_AS(GaussianEnsemble<double>(with([](auto& o) { o.lr = 0; })), ConfigError);
    CHECK_THROWS_AS(GaussianEnsemble<double>(with([](auto& o) { o.std_epsilon = 0; })), ConfigError);
    CHECK_THROWS_AS(GaussianEnsemble<double>(with([](auto& o) { o.obs_features = {-1}; })), ConfigError);
    CHECK_NOTHROW(GaussianEnsemble<double>(with([](auto& o) { o.members = 16; o.hidden = {4, 4, 4, 4, 4, 4, 4}; })));
}

TEST_CASE("ensemble normalisers: running Welford equals fitting on the union; std floored, never zero",
          "[models][ensemble]") {
    auto opt = small_opts(4);
    GaussianEnsemble<double> a(opt), b(opt);
    Rng rng(8);
    auto b1 = random_batch<double>(30, rng), b2 = random_batch<double>(50, rng);
    b1.observation.row(4).setConstant(0.25);  // a constant feature
    b2.observation.row(4).setConstant(0.25);
    a.update(b1);
    a.update(b2);
    TransitionBatch<double> all;
    all.resize(6, 3, 2, 0, 80);
    all.observation << b1.observation, b2.observation;
    all.internal << b1.internal, b2.internal;
    all.action << b1.action, b2.action;
    all.next_internal << b1.next_internal, b2.next_internal;
    b.fit_normalizers(all);
    CHECK(modtest::rel_err(a.input_normalizer().mean, b.input_normalizer().mean) < 1e-14);
    CHECK(modtest::rel_err(a.input_normalizer().std, b.input_normalizer().std) < 1e-14);
    CHECK(modtest::rel_err(a.delta_normalizer().std, b.delta_normalizer().std) < 1e-14);
    const Vec<double> mean = all.internal.rowwise().mean();
    CHECK(modtest::rel_err(a.input_normalizer().mean.head(3), mean) < 1e-14);
    // the constant feature (input row X + A + 1 = o[4]) gets the relative floor
    CHECK(a.input_normalizer().std(6) == Approx(1e-6).epsilon(1e-9));
    CHECK(a.input_normalizer().mean(6) == Approx(0.25));
    CHECK((a.input_normalizer().std.array() > 0).all());
    // fresh model: mean 0, std 1
    GaussianEnsemble<double> c(opt);
    CHECK(c.input_normalizer().std.isOnes());
    CHECK(c.delta_normalizer().mean.isZero());
}

TEMPLATE_TEST_CASE("ensemble: identical rng -> bitwise identical samples; same seed -> identical training",
                   "[models][ensemble][determinism]", float, double) {
    using T = TestType;
    GaussianEnsemble<T> e1(small_opts(5)), e2(small_opts(5));
    Rng data(6);
    for (int k = 0; k < 5; ++k) {
        const auto b = random_batch<T>(32, data);
        const auto s1 = e1.update(b);
        const auto s2 = e2.update(b);
        CHECK(std::memcmp(&s1.nll, &s2.nll, sizeof(T)) == 0);
    }
    CHECK(modtest::state_bytes(e1) == modtest::state_bytes(e2));
    const auto q = random_batch<T>(13, data);
    Mat<T> x1, x2;
    Rng r1(42), r2(42);
    e1.sample(q.internal, q.action, q.observation, x1, r1);
    e1.sample(q.internal, q.action, q.observation, x2, r2);
    CHECK(std::memcmp(x1.data(), x2.data(), sizeof(T) * static_cast<std::size_t>(x1.size())) == 0);
    Rng r3(43);
    e1.sample(q.internal, q.action, q.observation, x2, r3);
    CHECK(std::memcmp(x1.data(), x2.data(), sizeof(T) * static_cast<std::size_t>(x1.size())) != 0);
    // a different seed trains differently
    GaussianEnsemble<T> e3(small_opts(6));
    CHECK_FALSE(modtest::state_bytes(e1) == modtest::state_bytes(e3));
}

TEST_CASE("ensemble learns linear dynamics x' = x + A [x; a] + noise: mean and noise std", "[models][ensemble][learning]") {
    // GridLife-like: three internal variables in [0, 1], two actions in [-1, 1], per-variable
    // Gaussian noise. Tolerances: RMSE of the ensemble mean against the noise-free mean below
    // 25% of that variable's noise std; mean predicted std (sqrt of the average member variance)
    // within 30% of the true std, per variable; over 3 seeds.
    Mat<double> A(3, 5);
    A << -0.02, 0.01, 0.0, 0.03, -0.01,  //
        0.05, -0.08, 0.0, 0.0, 0.04,     //
        0.0, 0.02, -0.03, -0.05, 0.0;
    const Vec<double> sigma = (Vec<double>(3) << 0.01, 0.02, 0.005).finished();
    auto make = [&](Index B, Rng& rng, TransitionBatch<double>& b) {
        b.resize(0, 3, 2, 0, B);
        b.internal = uniform(3, B, rng, 0, 1);
        b.action = uniform(2, B, rng, -1, 1);
        Mat<double> xa(5, B);
        xa << b.internal, b.action;
        b.next_internal = b.internal + A * xa;
        for (Index j = 0; j < B; ++j)
            for (Index i = 0; i < 3; ++i) b.next_internal(i, j) += sigma(i) * rng.normal<double>();
    };
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        GaussianEnsemble<double> ens({.internal_dim = 3, .action_dim = 2, .seed = seed});
        Rng rng(100 + seed);
        TransitionBatch<double> b;
        persist::models::EnsembleUpdateStats<double> st;
        for (int k = 0; k < 3000; ++k) {
            make(256, rng, b);
            st = ens.update(b);
        }
        TransitionBatch<double> test;
        make(2000, rng, test);
        Mat<double> xa(5, 2000), pred, mean, ls;
        xa << test.internal, test.action;
        const Mat<double> truth = test.internal + A * xa;
        ens.predict(test.internal, test.action, Mat<double>(), pred);
        const Vec<double> rmse = ((pred - truth).array().square().rowwise().mean()).sqrt();
        Vec<double> var = Vec<double>::Zero(3);
        for (Index m = 0; m < ens.members(); ++m) {
            ens.member_predict(m, test.internal, test.action, Mat<double>(), mean, ls);
            var += (2.0 * ls.array()).exp().rowwise().mean().matrix();
        }
        const Vec<double> std_pred = (var / double(ens.members())).cwiseSqrt();
        INFO("seed " << seed << " rmse " << rmse.transpose() << " predicted std " << std_pred.transpose()
                     << " true std " << sigma.transpose() << " last nll " << st.nll << " mse " << st.mse);
        CHECK((rmse.array() / sigma.array()).maxCoeff() < 0.25);
        CHECK(((std_pred - sigma).array().abs() / sigma.array()).maxCoeff() < 0.3);
        CHECK(st.mse == Approx(sigma.squaredNorm() / 3).epsilon(0.3));
    }
}

TEST_CASE("ensemble view(): raw pointers into the model; hand evaluation equals member_predict", "[models][ensemble][view]") {
    GaussianEnsemble<double> ens(small_opts(9));
    Rng rng(10);
    ens.update(random_batch<double>(64, rng));
    const auto v = ens.view();
    CHECK(v.members == 3);
    CHECK(v.internal_dim == 3);
    CHECK(v.action_dim == 2);
    CHECK(v.num_obs_features == 2);
    CHECK(v.obs_features[0] == 1);
    CHECK(v.obs_features[1] == 4);
    CHECK(v.min_logstd == -5.0);
    CHECK(v.max_logstd == 0.5);
    for (int m = 0; m < 3; ++m) {
        CHECK(v.member[m].params == ens.member(m).params().data());
        CHECK(v.member[m].num_layers == 3);
        CHECK(v.member[m].in_dim() == 7);
        CHECK(v.member[m].out_dim() == 6);
        CHECK(v.member[m].act == persist::parallel::Activation::relu);
    }
    CHECK(v.in_mean == ens.input_normalizer().mean.data());
    CHECK(v.delta_std == ens.delta_normalizer().std.data());
    for (int round = 0; round < 2; ++round) {
        const auto b = random_batch<double>(11, rng);
        for (int m = 0; m < 3; ++m) {
            Mat<double> mean, ls;
            ens.member_predict(m, b.internal, b.action, b.observation, mean, ls);
            double max_diff = 0;
            for (Index j = 0; j < b.size(); ++j) {
                double hm[3], hl[3];
                eval_view_member(v, m, b.internal.col(j).data(), b.action.col(j).data(), b.observation.col(j).data(), hm, hl);
                for (int i = 0; i < 3; ++i)
                    max_diff = std::max({max_diff, std::abs(hm[i] - mean(i, j)), std::abs(hl[i] - ls(i, j))});
            }
            INFO("round " << round << " member " << m);
            CHECK(max_diff < 1e-12);
        }
        ens.update(random_batch<double>(64, rng));  // the old view stays valid and sees the new numbers
        const auto v2 = ens.view();
        CHECK(v2.member[0].params == v.member[0].params);
        CHECK(v2.in_std == v.in_std);
    }
}

TEST_CASE("ensemble predict_margins = constraint margins of the mean prediction", "[models][ensemble]") {
    const persist::viability::ConstraintSet<double> cs({"energy", "temp", "integrity"},
                                                       {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"});
    GaussianEnsemble<double> ens(small_opts(12));
    Rng rng(13);
    ens.update(random_batch<double>(64, rng));
    const auto b = random_batch<double>(10, rng);
    Mat<double> xp, m1, m2(3, 10);
    ens.predict(b.internal, b.action, b.observation, xp);
    ens.predict_margins(cs, b.internal, b.action, b.observation, m1);
    cs.margins(xp, m2);
    CHECK(m1.rows() == 3);
    CHECK(m1 == m2);
    const persist::viability::ConstraintSet<double> wrong({"energy", "temp"}, {"energy >= 0.2"});
    CHECK_THROWS_AS(ens.predict_margins(wrong, b.internal, b.action, b.observation, m1), ShapeError);
}

TEMPLATE_TEST_CASE("KnownDynamics wraps GridLife's internal transition exactly", "[models][known]", float, double) {
    using T = TestType;
    using Env = persist::env::GridLife<T>;
    Env env;
    KnownDynamics model(env);  // CTAD
    static_assert(std::is_same_v<decltype(model), KnownDynamics<Env>>);
    CHECK(model.internal_dim() == 3);
    CHECK(model.action_dim() == 2);
    persist::TimeStep<T> ts;
    Rng rng(21);
    env.reset(1, ts);
    Index steps = 0, episodes = 1;
    Mat<T> x(3, 1), a(2, 1), o, xn, xs;
    Mat<T> X(3, 64), Aa(2, 64), O(env.observation_dim(), 64), XN(3, 64);
    for (int t = 0; t < 600; ++t) {
        x.col(0) = env.internal();
        o = env.observation();
        a(0, 0) = static_cast<T>(rng.uniform<double>(-1, 1));
        a(1, 0) = static_cast<T>(rng.uniform<double>(-1, 1));
        model.predict(x, a, o, xn);
        Rng r(5);
        const auto pos = r.position();
        model.sample(x, a, o, xs, r);
        CHECK(r.position() == pos);  // no noise drawn
        if (t < 64) {
            X.col(t) = x.col(0);
            Aa.col(t) = a.col(0);
            O.col(t) = o;
        }
        env.step(a.col(0), ts);
        ++steps;
        REQUIRE(std::memcmp(xn.data(), ts.internal.data(), 3 * sizeof(T)) == 0);  // bitwise: step calls f
        REQUIRE(std::memcmp(xs.data(), xn.data(), 3 * sizeof(T)) == 0);
        if (t < 64) XN.col(t) = ts.internal;
        if (ts.done()) {
            env.reset(static_cast<std::uint64_t>(100 + t), ts);
            ++episodes;
        }
    }
    // batched path, 64 columns at once
    Mat<T> xb;
    model.predict(X, Aa, O, xb);
    CHECK(std::memcmp(xb.data(), XN.data(), sizeof(T) * 3 * 64) == 0);
    INFO("steps " << steps << " episodes " << episodes);
    CHECK_THROWS_AS(model.predict(X.topRows(2), Aa, O, xb), ShapeError);
    CHECK_THROWS_AS(model.predict(X, Aa, O.topRows(5), xb), ShapeError);
    // margins of the exact prediction
    const persist::viability::ConstraintSet<T> cs({"energy", "temp", "integrity"}, {"energy >= 0.2"});
    Mat<T> m;
    model.predict_margins(cs, X, Aa, O, m);
    CHECK(m.rows() == 1);
    CHECK((m.row(0).array() == (XN.row(0).array() - T(0.2))).all());
}
