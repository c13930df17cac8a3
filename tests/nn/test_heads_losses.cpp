// Heads (TanhGaussian, DiagGaussian, Categorical) and losses: finite differences in double,
// float vs double agreement, reference values and numerical stability.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "gradcheck.hpp"
#include "persist/nn/heads.hpp"
#include "persist/nn/losses.hpp"

using namespace persist::nn;
using namespace nntest;
using persist::ShapeError;

namespace {

Mat<double> normal_mat(Index r, Index c, Rng& rng) {
    Mat<double> m(r, c);
    for (Index k = 0; k < m.size(); ++k) m.data()[k] = rng.normal<double>();
    return m;
}

template <class T>
bool all_finite(const Mat<T>& m) {
    return m.array().isFinite().all();
}

const Mat<double> kEmpty;

}  // namespace

// ---------------------------------------------------------------------------------------------
// TanhGaussian
// ---------------------------------------------------------------------------------------------

TEST_CASE("TanhGaussian gradients match finite differences (eps fixed)", "[nn][heads][fd]") {
    Rng rng(21);
    const Index A = 3, B = 5;
    for (auto opt : {TanhGaussianOptions{}, TanhGaussianOptions{-20.0, 2.0}}) {
        TanhGaussian<double> head(A, opt);
        Mat<double> in = random_mat(2 * A, B, rng, 1.5);
        const Mat<double> eps = normal_mat(A, B, rng);
        const Mat<double> Ra = random_mat(A, B, rng), Rl = random_mat(1, B, rng);
        for (int which = 0; which < 3; ++which) {  // both terms, action only, log_prob only
            const Mat<double> ga = which == 2 ? Mat<double>::Zero(A, B) : Ra;
            const Mat<double> gl = which == 1 ? Mat<double>::Zero(1, B) : Rl;
            auto loss = [&] {
                TanhGaussian<double>::Workspace w;
                head.sample(in, eps, w);
                return dot(ga, w.action) + dot(gl, w.log_prob);
            };
            TanhGaussian<double>::Workspace ws;
            head.sample(in, eps, ws);
            const Mat<double> g = head.backward(ws, ga, gl);
            CHECK(rel_err(g, numgrad(in, loss)) < kFdTol);
        }
    }
}

TEST_CASE("TanhGaussian<float> (lane-vector math where available) agrees with TanhGaussian<double>",
          "[nn][heads]") {
    Rng rng(23);
    for (Index B : {1, 15, 16, 17, 40}) {
        const Index A = 3;
        TanhGaussian<double> hd(A);
        TanhGaussian<float> hf(A);
        Mat<double> in = random_mat(2 * A, B, rng, 3.0);
        in(0, 0) = 30.0;  // saturated tanh(u): the stable log(1 - tanh^2) form
        in(1, B - 1) = -25.0;
        in(A, 0) = 0.01;  // small log-std pre-activation: tanh's polynomial branch
        const Mat<double> eps = normal_mat(A, B, rng);
        TanhGaussian<double>::Workspace wd;
        TanhGaussian<float>::Workspace wf;
        hd.sample(in, eps, wd);
        hf.sample(in.cast<float>(), eps.cast<float>(), wf);
        const auto close = [](const Mat<float>& f, const Mat<double>& d, double tol) {
            REQUIRE(f.rows() == d.rows());
            REQUIRE(f.cols() == d.cols());
            for (Index k = 0; k < d.size(); ++k) {
                INFO("element " << k << ": float " << f.data()[k] << " double " << d.data()[k]);
                CHECK(std::abs(static_cast<double>(f.data()[k]) - d.data()[k]) <= tol * (1.0 + std::abs(d.data()[k])));
            }
        };
        close(wf.action, wd.action, 1e-6);
        close(wf.log_std, wd.log_std, 1e-6);
        close(wf.std, wd.std, 1e-6);
        close(wf.u, wd.u, 1e-6);
        close(wf.da_du, wd.da_du, 1e-5);
        close(wf.dls_dr, wd.dls_dr, 1e-6);
        close(wf.log_prob, wd.log_prob, 1e-5);
        const Mat<double> ga = random_mat(A, B, rng), gl = random_mat(1, B, rng);
        const Mat<double> gd = hd.backward(wd, ga, gl);
        const Mat<float> gf = hf.backward(wf, ga.cast<float>(), gl.cast<float>());
        close(gf, gd, 1e-5);
    }
}

TEST_CASE("TanhGaussian log_prob equals log N(u) - sum log(1 - tanh(u)^2)", "[nn][heads]") {
    Rng rng(22);
    const Index A = 4, B = 6;
    TanhGaussian<double> head(A);
    const Mat<double> in = random_mat(2 * A, B, rng);
    TanhGaussian<double>::Workspace ws;
    head.sample(in, rng, ws);
    const double lo = -5, hi = 2;
    for (Index j = 0; j < B; ++j) {
        double ref = 0;
        for (Index i = 0; i < A; ++i) {
            const double ls = lo + 0.5 * (hi - lo) * (std::tanh(in(A + i, j)) + 1);
            const double sd = std::exp(ls);
            const double u = in(i, j) + sd * ws.eps(i, j);
            CHECK(ws.u(i, j) == Approx(u).epsilon(1e-14));
            CHECK(ws.action(i, j) == Approx(std::tanh(u)).epsilon(1e-14));
            const double z = (u - in(i, j)) / sd;
            ref += -0.5 * z * z - std::log(sd) - 0.5 * std::log(2 * M_PI);
            ref -= std::log(1 - std::tanh(u) * std::tanh(u));
        }
        CHECK(ws.log_prob(0, j) == Approx(ref).epsilon(1e-12));
    }
}

TEMPLATE_TEST_CASE("TanhGaussian: bounds, determinism, stability, float vs double", "[nn][heads]",
                   float, double) {
    using T = TestType;
    const Index A = 2, B = 3;
    TanhGaussian<T> head(A);
    typename TanhGaussian<T>::Workspace ws;
    SECTION("log_std is squashed into [lo, hi]") {
        Mat<T> in(2 * A, B);
        in.topRows(A).setZero();
        in.bottomRows(A).setConstant(T(100));
        head.sample(in, Mat<T>::Zero(A, B), ws);
        CHECK(ws.log_std.maxCoeff() == Approx(2.0));
        in.bottomRows(A).setConstant(T(-100));
        head.sample(in, Mat<T>::Zero(A, B), ws);
        CHECK(ws.log_std.minCoeff() == Approx(-5.0));
    }
    SECTION("deterministic action is tanh(mean); seeded sampling is reproducible") {
        Rng rng(23);
        const Mat<T> in = random_mat(2 * A, B, rng).template cast<T>();
        Mat<T> a;
        head.deterministic(in, a);
        CHECK(rel_err(a, in.topRows(A).array().tanh().matrix()) < 1e-7);
        Rng r1(5), r2(5);
        typename TanhGaussian<T>::Workspace w2;
        head.sample(in, r1, ws);
        head.sample(in, r2, w2);
        CHECK(ws.action == w2.action);
        CHECK(ws.log_prob == w2.log_prob);
    }
    SECTION("saturated actions keep a finite log_prob and gradient") {
        Mat<T> in(2 * A, B);
        in.topRows(A).setConstant(T(40));
        in.bottomRows(A).setZero();
        in(0, 0) = T(-40);
        head.sample(in, Mat<T>::Ones(A, B), ws);
        CHECK(all_finite(ws.log_prob));
        CHECK(ws.log_prob.minCoeff() > T(50));  // -log(1 - a^2) ~ 2u - 2 log 2
        head.backward(ws, Mat<T>::Ones(A, B), Mat<T>::Ones(1, B));
        CHECK(all_finite(ws.grad_in));
    }
    SECTION("float agrees with double") {
        Rng rng(24);
        const Mat<double> in = random_mat(2 * A, B, rng, 2.0);
        const Mat<double> eps = normal_mat(A, B, rng);
        const Mat<double> ga = random_mat(A, B, rng), gl = random_mat(1, B, rng);
        TanhGaussian<double> hd(A);
        TanhGaussian<double>::Workspace wd;
        hd.sample(in, eps, wd);
        hd.backward(wd, ga, gl);
        head.sample(in.cast<T>(), eps.cast<T>(), ws);
        head.backward(ws, ga.cast<T>(), gl.cast<T>());
        CHECK(rel_err(ws.action, wd.action) < kFloatTol);
        CHECK(rel_err(ws.log_prob, wd.log_prob) < kFloatTol);
        CHECK(rel_err(ws.grad_in, wd.grad_in) < kFloatTol);
    }
    SECTION("shape errors") {
        REQUIRE_THROWS_AS(head.sample(Mat<T>::Zero(3, B), Mat<T>::Zero(A, B), ws), ShapeError);
        REQUIRE_THROWS_AS(head.sample(Mat<T>::Zero(2 * A, B), Mat<T>::Zero(A, B + 1), ws), ShapeError);
        head.sample(Mat<T>::Zero(2 * A, B), Mat<T>::Zero(A, B), ws);
        REQUIRE_THROWS_WITH(head.backward(ws, Mat<T>::Zero(A, B), Mat<T>::Zero(1, B + 1)),
                            Catch::Contains("TanhGaussian") && Catch::Contains("expected 1 x 3"));
    }
}

// ---------------------------------------------------------------------------------------------
// DiagGaussian
// ---------------------------------------------------------------------------------------------

TEST_CASE("DiagGaussian NLL gradient matches finite differences", "[nn][heads][fd]") {
    Rng rng(31);
    const Index D = 3, B = 4;
    for (bool bounded : {false, true}) {
        DiagGaussian<double> head(D, {bounded, -5.0, 1.0});
        Mat<double> in = random_mat(2 * D, B, rng, 1.5);
        const Mat<double> y = random_mat(D, B, rng, 2.0);
        const Mat<double> R = random_mat(1, B, rng);
        auto loss = [&] {
            DiagGaussian<double>::Workspace w;
            return dot(R, head.nll(in, y, w));
        };
        DiagGaussian<double>::Workspace ws;
        head.nll(in, y, ws);
        CHECK(rel_err(head.backward(ws, R), numgrad(in, loss)) < kFdTol);
    }
}

TEMPLATE_TEST_CASE("DiagGaussian: agrees with GaussianNLL, samples, float vs double", "[nn][heads]",
                   float, double) {
    using T = TestType;
    Rng rng(32);
    const Index D = 2, B = 5;
    DiagGaussian<T> head(D);
    typename DiagGaussian<T>::Workspace ws;
    const Mat<T> in = random_mat(2 * D, B, rng).template cast<T>();
    const Mat<T> y = random_mat(D, B, rng).template cast<T>();
    SECTION("per-sample nll averages to GaussianNLL; gradients agree") {
        const Mat<T>& nll = head.nll(in, y, ws);
        CHECK(nll.mean() == Approx(GaussianNLL<T>{}.value(in, y)).epsilon(1e-5));
        Mat<T> g;
        GaussianNLL<T>{}.gradient(in, y, g);
        const Mat<T> gh = head.backward(ws, Mat<T>::Constant(1, B, T(1) / B));
        CHECK(rel_err(gh, g) < 1e-6);
    }
    SECTION("sampling: mean and std") {
        const Index N = 20000;
        Mat<T> p(2, N);
        p.row(0).setConstant(T(1.5));
        p.row(1).setConstant(std::log(T(0.5)));
        DiagGaussian<T> h1(1);
        const Mat<T>& s = h1.sample(p, rng, ws);
        const double m = s.template cast<double>().mean();
        const double sd = std::sqrt((s.template cast<double>().array() - m).square().mean());
        CHECK(m == Approx(1.5).margin(0.015));
        CHECK(sd == Approx(0.5).margin(0.01));
        const Mat<T> eps = Mat<T>::Ones(1, N);
        CHECK(h1.sample(p, eps, ws).isApproxToConstant(T(2.0)));
    }
    SECTION("float agrees with double") {
        const Mat<double> ind = random_mat(2 * D, B, rng), yd = random_mat(D, B, rng);
        const Mat<double> R = random_mat(1, B, rng);
        DiagGaussian<double> hd(D, {true});
        DiagGaussian<T> ht(D, {true});
        typename DiagGaussian<double>::Workspace wd;
        const Mat<double> nd = hd.nll(ind, yd, wd);
        const Mat<double> gd = hd.backward(wd, R);
        CHECK(rel_err(ht.nll(ind.cast<T>(), yd.cast<T>(), ws), nd) < kFloatTol);
        CHECK(rel_err(ht.backward(ws, R.cast<T>()), gd) < kFloatTol);
    }
    SECTION("shape errors") {
        REQUIRE_THROWS_AS(head.nll(in, Mat<T>::Zero(D + 1, B), ws), ShapeError);
        REQUIRE_THROWS_AS(head.nll(Mat<T>::Zero(D, B), y, ws), ShapeError);
    }
}

// ---------------------------------------------------------------------------------------------
// Categorical
// ---------------------------------------------------------------------------------------------

TEST_CASE("Categorical gradients of log_prob and entropy match finite differences",
          "[nn][heads][fd]") {
    Rng rng(41);
    const Index K = 5, B = 4;
    Categorical<double> head(K);
    Mat<double> logits = random_mat(K, B, rng, 3.0);
    const std::vector<Index> actions{0, 3, 4, 2};
    const Mat<double> Rl = random_mat(1, B, rng), Rh = random_mat(1, B, rng);
    for (int which = 0; which < 3; ++which) {  // both, log_prob only, entropy only
        const bool lp = which != 2, ent = which != 1;
        auto loss = [&] {
            Categorical<double>::Workspace w;
            head.forward(logits, w);
            return (lp ? dot(Rl, head.log_prob(w, actions)) : 0.0) + (ent ? dot(Rh, w.entropy) : 0.0);
        };
        Categorical<double>::Workspace ws;
        head.forward(logits, ws);
        const Mat<double> g = head.backward(ws, actions, lp ? Rl : kEmpty, ent ? Rh : kEmpty);
        CHECK(rel_err(g, numgrad(logits, loss)) < kFdTol);
    }
}

TEMPLATE_TEST_CASE("Categorical: entropy, stability, sampling, float vs double", "[nn][heads]", float,
                   double) {
    using T = TestType;
    typename Categorical<T>::Workspace ws;
    SECTION("uniform logits have entropy log K") {
        for (Index K : {1, 2, 3, 7, 100}) {
            Categorical<T> head(K);
            head.forward(Mat<T>::Constant(K, 3, T(-4.5)), ws);
            for (Index j = 0; j < 3; ++j) CHECK(ws.entropy(0, j) == Approx(std::log(double(K))).margin(1e-6));
        }
    }
    SECTION("huge logits stay finite") {
        Categorical<T> head(3);
        Mat<T> l(3, 2);
        l << T(1e4), T(-3e4), T(0), T(-3e4), T(-1e4), T(3e4);
        head.forward(l, ws);
        CHECK(all_finite(ws.log_probs));
        CHECK(all_finite(ws.entropy));
        CHECK(ws.probs.colwise().sum().isOnes(1e-6));
        CHECK(ws.log_probs(0, 0) == T(0));
        CHECK(ws.entropy(0, 0) == Approx(0.0).margin(1e-6));
        std::vector<Index> m(2);
        head.mode(ws, m);
        CHECK(m == std::vector<Index>{0, 2});
    }
    SECTION("sampling frequencies follow the probabilities") {
        const Index N = 20000;
        Categorical<T> head(4);
        Mat<T> l(4, 1);
        l << T(0.5), T(-1), T(1.2), T(0);
        head.forward(l.replicate(1, N), ws);
        std::vector<Index> a(static_cast<std::size_t>(N));
        Rng rng(42);
        head.sample(ws, rng, a);
        std::vector<double> freq(4, 0.0);
        for (Index x : a) freq[static_cast<std::size_t>(x)] += 1.0 / N;
        for (Index k = 0; k < 4; ++k) CHECK(freq[static_cast<std::size_t>(k)] == Approx(double(ws.probs(k, 0))).margin(0.01));
    }
    SECTION("float agrees with double") {
        Rng rng(43);
        const Mat<double> l = random_mat(6, 5, rng, 4.0);
        const std::vector<Index> act{5, 0, 1, 1, 3};
        const Mat<double> gl = random_mat(1, 5, rng), gh = random_mat(1, 5, rng);
        Categorical<double> hd(6);
        Categorical<T> ht(6);
        Categorical<double>::Workspace wd;
        hd.forward(l, wd);
        ht.forward(l.cast<T>(), ws);
        CHECK(rel_err(ht.log_prob(ws, act), hd.log_prob(wd, act)) < kFloatTol);
        CHECK(rel_err(ws.entropy, wd.entropy) < kFloatTol);
        CHECK(rel_err(ht.backward(ws, act, gl.cast<T>(), gh.cast<T>()), hd.backward(wd, act, gl, gh)) < kFloatTol);
    }
    SECTION("bad actions throw") {
        Categorical<T> head(3);
        head.forward(Mat<T>::Zero(3, 2), ws);
        const std::vector<Index> bad{0, 3}, short_{1};
        REQUIRE_THROWS_WITH(head.log_prob(ws, bad), Catch::Contains("action 3 of sample 1"));
        REQUIRE_THROWS_AS(head.log_prob(ws, short_), ShapeError);
        REQUIRE_THROWS_AS(head.forward(Mat<T>::Zero(4, 2), ws), ShapeError);
    }
}

// ---------------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------------

namespace {

// value/gradient in double against central differences, and float against double.
template <template <class> class Loss, class Make>
void check_pair_loss(Make make, Mat<double> pred, const Mat<double>& target) {
    const Loss<double> ld = make(0.0);
    auto f = [&] { return ld.value(pred, target); };
    Mat<double> g;
    ld.gradient(pred, target, g);
    CHECK(rel_err(g, numgrad(pred, f)) < kFdTol);
    const Loss<float> lf = make(0.0f);
    Mat<float> gf;
    lf.gradient(pred.cast<float>(), target.cast<float>(), gf);
    CHECK(std::abs(lf.value(pred.cast<float>(), target.cast<float>()) - ld.value(pred, target)) <
          kFloatTol * (1 + std::abs(ld.value(pred, target))));
    CHECK(rel_err(gf, g) < kFloatTol);
}

}  // namespace

TEST_CASE("MSE", "[nn][losses]") {
    Rng rng(51);
    check_pair_loss<MSE>([](auto tag) { return MSE<decltype(tag)>{}; }, random_mat(3, 6, rng),
                         random_mat(3, 6, rng));
    Mat<double> p(1, 2), t(1, 2);
    p << 1, 2;
    t << 0, 0;
    CHECK(MSE<double>{}.value(p, t) == Approx(2.5));  // (1 + 4) / 2
}

TEST_CASE("Huber", "[nn][losses]") {
    Rng rng(52);
    const double delta = 0.7;
    Mat<double> pred = random_mat(4, 6, rng, 2.0), d = random_mat(4, 6, rng, 2.0);
    for (Index k = 0; k < d.size(); ++k)
        if (std::abs(std::abs(d.data()[k]) - delta) < 0.05) d.data()[k] += 0.1;
    const Mat<double> target = pred - d;
    check_pair_loss<Huber>([delta](auto tag) { return Huber<decltype(tag)>{decltype(tag)(delta)}; },
                           pred, target);
    Mat<double> p(2, 1), t = Mat<double>::Zero(2, 1);
    p << 0.5, -3;
    CHECK(Huber<double>{1.0}.value(p, t) == Approx(0.125 + 2.5));
}

TEST_CASE("Binary focal loss", "[nn][losses]") {
    Rng rng(53);
    const Mat<double> logits = random_mat(3, 5, rng, 3.0);
    Mat<double> hard = random_mat(3, 5, rng);
    hard = (hard.array() > 0).cast<double>();
    const Mat<double> soft = (random_mat(3, 5, rng).array() * 0.5 + 0.5).matrix();
    for (auto [alpha, gamma] : {std::pair{0.25, 2.0}, {0.6, 0.5}, {-1.0, 0.0}, {0.25, 1.0}}) {
        INFO("alpha " << alpha << " gamma " << gamma);
        const double a = alpha, g = gamma;  // clang < 16 cannot capture structured bindings
        auto make = [a, g](auto tag) {
            using T = decltype(tag);
            return BinaryFocal<T>{T(a), T(g)};
        };
        check_pair_loss<BinaryFocal>(make, logits, hard);
        check_pair_loss<BinaryFocal>(make, logits, soft);
    }
    SECTION("gamma = 0, no alpha: binary cross-entropy") {
        double bce = 0;
        for (Index k = 0; k < logits.size(); ++k) {
            const double p = 1 / (1 + std::exp(-logits.data()[k])), y = soft.data()[k];
            bce -= y * std::log(p) + (1 - y) * std::log(1 - p);
        }
        CHECK(BinaryFocal<double>{-1.0, 0.0}.value(logits, soft) == Approx(bce / 5));
    }
    SECTION("reference value: one hard positive") {
        Mat<double> x(1, 1), y = Mat<double>::Ones(1, 1);
        x << 0.3;
        const double p = 1 / (1 + std::exp(-0.3));
        CHECK(BinaryFocal<double>{}.value(x, y) == Approx(-0.25 * (1 - p) * (1 - p) * std::log(p)));
    }
    SECTION("extreme logits are finite in float") {
        Mat<float> x(2, 2), y(2, 2), g;
        x << 100.f, -100.f, 100.f, -100.f;
        y << 1.f, 1.f, 0.f, 0.f;
        const float v = BinaryFocal<float>{}.value(x, y);
        BinaryFocal<float>{}.gradient(x, y, g);
        CHECK(std::isfinite(v));
        CHECK(all_finite(g));
        CHECK(v > 1.f);  // the two confidently wrong entries dominate
    }
}

TEST_CASE("Gaussian NLL", "[nn][losses]") {
    Rng rng(54);
    check_pair_loss<GaussianNLL>([](auto tag) { return GaussianNLL<decltype(tag)>{}; },
                                 random_mat(6, 4, rng, 1.5), random_mat(3, 4, rng, 2.0));
    Mat<double> in = Mat<double>::Zero(4, 3), y = Mat<double>::Zero(2, 3);
    CHECK(GaussianNLL<double>{}.value(in, y) == Approx(std::log(2 * M_PI)));  // 2 x 0.5 log 2pi
    REQUIRE_THROWS_AS(GaussianNLL<double>{}.value(Mat<double>::Zero(3, 3), y), ShapeError);
}

TEST_CASE("InfoNCE", "[nn][losses]") {
    Rng rng(55);
    for (auto [K, B, tau] : {std::tuple<Index, Index, double>{5, 5, 1.0}, {7, 4, 0.5}}) {
        Mat<double> S = random_mat(K, B, rng, 3.0);
        const InfoNCE<double> loss{tau};
        auto f = [&] { return loss.value(S); };
        Mat<double> g;
        loss.gradient(S, g);
        CHECK(rel_err(g, numgrad(S, f)) < kFdTol);
        double ref = 0;  // naive cross-entropy over rows, target row j
        for (Index j = 0; j < B; ++j) ref += -std::log(std::exp(S(j, j) / tau) / (S.col(j).array() / tau).exp().sum());
        CHECK(loss.value(S) == Approx(ref / B));
        Mat<float> gf;
        InfoNCE<float>{float(tau)}.gradient(S.cast<float>(), gf);
        CHECK(rel_err(gf, g) < kFloatTol);
        CHECK(InfoNCE<float>{float(tau)}.value(S.cast<float>()) == Approx(ref / B).epsilon(1e-5));
    }
    CHECK(InfoNCE<double>{}.value(Mat<double>::Constant(6, 6, 1e3)) == Approx(std::log(6.0)));
    REQUIRE_THROWS_AS(InfoNCE<double>{}.value(Mat<double>::Zero(3, 4)), ShapeError);
}

TEST_CASE("Quantile Huber (QR-DQN)", "[nn][losses]") {
    Rng rng(56);
    for (double kappa : {1.0, 0.3, 0.0}) {
        INFO("kappa " << kappa);
        check_pair_loss<QuantileHuber>(
            [kappa](auto tag) { return QuantileHuber<decltype(tag)>{decltype(tag)(kappa)}; },
            random_mat(5, 3, rng, 2.0), random_mat(7, 3, rng, 2.0));
    }
    SECTION("reference values") {
        Mat<double> theta(2, 1), target(3, 1);  // tau = 1/4, 3/4
        theta << 0.0, 1.0;
        target << -1.0, 0.5, 2.0;
        // kappa = 0: rho = u (tau - 1[u < 0]); u for theta_0: -1, .5, 2; for theta_1: -2, -.5, 1
        const double q0 = (0.75 * 1 + 0.25 * 0.5 + 0.25 * 2) / 3;
        const double q1 = (0.25 * 2 + 0.25 * 0.5 + 0.75 * 1) / 3;
        CHECK(QuantileHuber<double>{0.0}.value(theta, target) == Approx(q0 + q1));
        // kappa = 1: |tau - 1[u<0]| * Huber_1(u)
        const double h0 = (0.75 * 0.5 + 0.25 * 0.125 + 0.25 * 1.5) / 3;
        const double h1 = (0.25 * 1.5 + 0.25 * 0.125 + 0.75 * 0.5) / 3;
        CHECK(QuantileHuber<double>{1.0}.value(theta, target) == Approx(h0 + h1));
    }
    REQUIRE_THROWS_AS(QuantileHuber<double>{}.value(Mat<double>::Zero(3, 2), Mat<double>::Zero(3, 3)),
                      ShapeError);
}

TEST_CASE("Loss shape mismatches throw", "[nn][losses][errors]") {
    const Mat<double> a = Mat<double>::Zero(2, 3), b = Mat<double>::Zero(3, 3);
    REQUIRE_THROWS_WITH(MSE<double>{}.value(a, b), Catch::Contains("MSE") &&
                                                     Catch::Contains("expected 2 x 3, got 3 x 3"));
    REQUIRE_THROWS_AS(Huber<double>{}.value(a, b), ShapeError);
    REQUIRE_THROWS_AS(BinaryFocal<double>{}.value(a, b), ShapeError);
    Mat<double> g;
    REQUIRE_THROWS_AS(MSE<double>{}.gradient(a, b, g), ShapeError);
}
