// GruStateEstimator (models/state_estimator.hpp): its gradients against central differences,
// the online path against the sequence path, learning a hidden state that only memory reveals
// (over 3 seeds), determinism, the checkpoint round trip, and bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>

#include <Eigen/QR>

#include "models/models_fixtures.hpp"
#include "nn/gradcheck.hpp"
#include "persist/io/checkpoint.hpp"
#include "persist/models/state_estimator.hpp"

using persist::ConfigError;
using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::ShapeError;
using persist::Vec;
using persist::models::GruStateEstimator;
using persist::models::StateEstimatorOptions;

namespace {

/// N sequences of L steps, time-major, of a hidden x that only the history of o determines:
/// x_t = 0.8 x_{t-1} + 0.2 s_t with x_0 = 0 at the start of each sequence and o_t = [s_t, d_t]
/// (s_t ~ U(0, 1) the drive, d_t ~ U(-1, 1) a distractor). From o_t alone the best guess
/// of x_t leaves most of its variance unexplained.
struct Sequences {
    Mat<double> o, x;
};
Sequences make_sequences(Index L, Index N, Rng& rng) {
    Sequences s{Mat<double>(2, L * N), Mat<double>(1, L * N)};
    for (Index j = 0; j < N; ++j) {
        double x = 0;
        for (Index t = 0; t < L; ++t) {
            const double drive = rng.uniform<double>(), distract = rng.uniform<double>(-1, 1);
            x = 0.8 * x + 0.2 * drive;
            s.o(0, t * N + j) = drive, s.o(1, t * N + j) = distract;
            s.x(0, t * N + j) = x;
        }
    }
    return s;
}

}  // namespace

TEST_CASE("GruStateEstimator: gradients of the loss match central differences", "[models][state_estimator][gradcheck]") {
    const StateEstimatorOptions o{.obs_dim = 2, .state_dim = 1, .hidden = 5, .sequence_length = 6, .burn_in = 2, .seed = 3};
    GruStateEstimator<double> est(o);
    Rng rng(4);
    const auto s = make_sequences(6, 3, rng);
    (void)est.loss(s.o, s.x);
    const Vec<double> dg = est.gru().grads(), dh = est.head_grads();
    const auto f = [&] { return est.loss(s.o, s.x); };
    Vec<double>& pg = est.gru().params();
    const Mat<double> ng = nntest::numgrad(pg, f);
    Vec<double>& ph = est.head_params();
    const Mat<double> nh = nntest::numgrad(ph, f);
    CHECK(nntest::rel_err(dg, ng) < nntest::kFdTol);
    CHECK(nntest::rel_err(dh, nh) < nntest::kFdTol);
    // the burn-in steps are not scored: changing x there changes nothing
    Mat<double> x2 = s.x;
    x2.leftCols(2 * 3).array() += 5.0;
    CHECK(est.loss(s.o, x2) == est.loss(s.o, s.x));
}

TEST_CASE("GruStateEstimator: learns a state only memory reveals, online and in sequences", "[models][state_estimator]") {
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        const StateEstimatorOptions o{.obs_dim = 2, .state_dim = 1, .hidden = 16, .sequence_length = 16,
                                      .burn_in = 4, .lr = 3e-3, .seed = seed};
        GruStateEstimator<float> est(o);
        Rng rng(100 + seed);
        const auto test = make_sequences(16, 256, rng);
        const Mat<float> to = test.o.cast<float>(), tx = test.x.cast<float>();
        // the variance of x and what the best affine function of o_t alone leaves (least squares)
        const Index used = 12 * 256;
        const Mat<double> xs = test.x.rightCols(used), os = test.o.rightCols(used);
        const double var = (xs.array() - xs.mean()).square().mean();
        Mat<double> A(used, 3);
        A.col(0) = os.row(0).transpose(), A.col(1) = os.row(1).transpose(), A.col(2).setOnes();
        const Vec<double> w = A.colPivHouseholderQr().solve(xs.transpose());
        const double memoryless = (A * w - xs.transpose()).array().square().mean();
        const float before = est.loss(to, tx);
        for (int k = 0; k < 1500; ++k) {
            const auto b = make_sequences(16, 32, rng);
            est.update(b.o.cast<float>(), b.x.cast<float>());
        }
        const float after = est.loss(to, tx);
        INFO("seed " << seed << ": var(x) " << var << ", memoryless affine MSE " << memoryless << ", MSE before "
                     << before << ", after " << after);
        CHECK(memoryless > 0.5 * var);  // o_t alone does not tell x_t
        CHECK(after < 0.1 * memoryless);
        CHECK(after < 0.1 * before);
        // Online (reset, observe step by step) equals the sequence path on the same steps.
        const Mat<float> seq = est.predict(to, 16);
        est.reset();
        double worst = 0, err = 0;
        for (Index t = 0; t < 16; ++t) {
            const Vec<float> ot = to.col(t * 256 + 5);
            const float xh = est.observe(ot)[0];
            CHECK(est.estimate()[0] == xh);
            worst = std::max(worst, double(std::abs(xh - seq(0, t * 256 + 5))));
            if (t >= 4) err += (xh - tx(0, t * 256 + 5)) * (xh - tx(0, t * 256 + 5)) / 12.0;
        }
        CHECK(worst < 1e-5);
        CHECK(err < 0.2 * var);
    }
}

TEST_CASE("GruStateEstimator: online, x_hat_t is the GRU from h = 0 over the last L observations",
          "[models][state_estimator]") {
    GruStateEstimator<double> est({.obs_dim = 3, .state_dim = 2, .hidden = 5, .sequence_length = 4, .burn_in = 1, .seed = 1});
    Rng rng(3);
    const Mat<double> o = nntest::random_mat(3, 12, rng);
    for (int episode = 0; episode < 2; ++episode) {  // reset() empties the window
        est.reset();
        for (Index t = 0; t < 12; ++t) {
            const Vec<double> xh = est.observe(o.col(t));
            const Index n = std::min<Index>(t + 1, 4);
            GruStateEstimator<double> other = est;  // predict() must not disturb the online window
            const Mat<double> p = other.predict(o.middleCols(t + 1 - n, n), n);
            CHECK((p.col(n - 1) - xh).norm() < 1e-12);  // the same function (GEMV vs GEMM rounding)
            CHECK(est.observed() == t + 1);
        }
    }
}

TEST_CASE("GruStateEstimator: deterministic, checkpoint round trip resumes exactly", "[models][state_estimator][checkpoint]") {
    namespace fs = std::filesystem;
    const StateEstimatorOptions o{.obs_dim = 2, .state_dim = 1, .hidden = 8, .sequence_length = 8, .burn_in = 2,
                                  .max_grad_norm = 1.0, .seed = 7};
    GruStateEstimator<float> a(o), b(o);
    Rng ra(9), rb(9);
    for (int k = 0; k < 20; ++k) {
        const auto sa = make_sequences(8, 4, ra), sb = make_sequences(8, 4, rb);
        a.update(sa.o.cast<float>(), sa.x.cast<float>());
        b.update(sb.o.cast<float>(), sb.x.cast<float>());
    }
    a.reset();
    (void)a.observe(Vec<float>::Constant(2, 0.5f));
    b.reset();
    (void)b.observe(Vec<float>::Constant(2, 0.5f));
    REQUIRE(modtest::state_bytes(a) == modtest::state_bytes(b));

    const fs::path dir = fs::temp_directory_path() / ("persist_state_estimator_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path file = dir / "estimator.ckpt";
    persist::io::CheckpointWriter().add("state_estimator", a).save(file);
    auto o2 = o;
    o2.seed = 99;
    GruStateEstimator<float> c(o2);
    CHECK_FALSE(modtest::state_bytes(c) == modtest::state_bytes(a));
    persist::io::CheckpointReader(file).add("state_estimator", c).load();
    CHECK(modtest::state_bytes(c) == modtest::state_bytes(a));
    for (int k = 0; k < 5; ++k) {
        const auto s = make_sequences(8, 4, ra);
        const float la = a.update(s.o.cast<float>(), s.x.cast<float>());
        const float lc = c.update(s.o.cast<float>(), s.x.cast<float>());
        CHECK(la == lc);
    }
    CHECK(a.observe(Vec<float>::Constant(2, 0.1f)) == c.observe(Vec<float>::Constant(2, 0.1f)));
    CHECK(modtest::state_bytes(c) == modtest::state_bytes(a));
    // another hidden size does not load, and leaves the object unchanged
    auto o3 = o;
    o3.hidden = 9;
    GruStateEstimator<float> d(o3);
    const auto before = modtest::state_bytes(d);
    CHECK_THROWS_AS(persist::io::CheckpointReader(file).add("state_estimator", d).load(), persist::Error);
    CHECK(modtest::state_bytes(d) == before);
    fs::remove_all(dir);
}

TEST_CASE("GruStateEstimator: bad options and shapes are named", "[models][state_estimator]") {
    const StateEstimatorOptions ok{.obs_dim = 2, .state_dim = 1, .hidden = 4, .sequence_length = 4, .burn_in = 1};
    auto bad = ok;
    bad.burn_in = 4;
    CHECK_THROWS_WITH(GruStateEstimator<float>(bad), Catch::Contains("burn_in must be in [0, sequence_length = 4)"));
    bad = ok;
    bad.obs_dim = 0;
    CHECK_THROWS_AS(GruStateEstimator<float>(bad), ConfigError);
    bad = ok;
    bad.lr = -1;
    CHECK_THROWS_WITH(GruStateEstimator<float>(bad), Catch::Contains("lr"));
    GruStateEstimator<float> est(ok);
    CHECK_THROWS_AS(est.observe(Vec<float>(3)), ShapeError);
    CHECK_THROWS_WITH(est.update(Mat<float>(2, 6), Mat<float>(1, 6)), Catch::Contains("multiple of sequence_length = 4"));
    CHECK_THROWS_AS(est.update(Mat<float>(2, 8), Mat<float>(2, 8)), ShapeError);
}
