// ExtendedKalmanFilter (models/kalman_filter.hpp): on a linear model it is the textbook Kalman
// filter step by step; on GridLife's known dynamics with an exact prior its mean is the hidden x
// exactly; with a noisy reading of x it beats the reading; checkpoint state; AnyStateEstimator;
// the StateEstimator concepts; bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <Eigen/LU>

#include "persist/env/gridlife.hpp"
#include "persist/models/any_state_estimator.hpp"
#include "persist/models/kalman_filter.hpp"
#include "persist/models/known_dynamics.hpp"
#include "persist/models/state_estimator.hpp"

using persist::ConfigError;
using persist::Index;
using persist::Mat;
using persist::MatCRef;
using persist::Rng;
using persist::ShapeError;
using persist::Vec;
using persist::models::AnyStateEstimator;
using persist::models::ExtendedKalmanFilter;
using persist::models::KalmanFilterOptions;
using persist::models::KnownDynamics;

namespace {

/// x' = A x + B a + C o, an InternalModel (o = [u; z]: u drives the dynamics, z is the reading).
template <class T>
struct LinearModel {
    using scalar_type = T;
    Mat<T> A, B, C;
    Index internal_dim() const { return A.rows(); }
    Index action_dim() const { return B.cols(); }
    void predict(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& xn) const { xn = A * x + B * a + C * o; }
    void sample(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& xn, Rng&) const { predict(x, a, o, xn); }
};

/// A growing-by-a-quadratic model: x' = x + 0.1 x^2 (elementwise) + a, for the Jacobian test.
struct QuadraticModel {
    using scalar_type = double;
    Index internal_dim() const { return 2; }
    Index action_dim() const { return 2; }
    void predict(MatCRef<double> x, MatCRef<double> a, MatCRef<double>, Mat<double>& xn) const {
        xn = x + 0.1 * x.array().square().matrix() + a;
    }
    void sample(MatCRef<double> x, MatCRef<double> a, MatCRef<double> o, Mat<double>& xn, Rng&) const {
        predict(x, a, o, xn);
    }
};

static_assert(persist::InternalModel<LinearModel<double>>);
using GridEnv = persist::env::GridLife<double>;
using GridEkf = ExtendedKalmanFilter<KnownDynamics<GridEnv>>;
static_assert(persist::StateEstimator<GridEkf>);
static_assert(!persist::TrainableStateEstimator<GridEkf>);  // nothing to learn
static_assert(persist::StateEstimator<persist::models::GruStateEstimator<float>>);
static_assert(persist::TrainableStateEstimator<persist::models::GruStateEstimator<float>>);
static_assert(persist::StateEstimator<AnyStateEstimator<double>>);
static_assert(!persist::StateEstimator<int>);
static_assert(!persist::StateEstimator<KnownDynamics<GridEnv>>);  // a model, not a belief

/// One GridLife step with a uniform random action, then the filter's step on it, unless the
/// episode terminated (the agent does not filter past the end either). True when it stepped.
template <class F>
bool random_step(GridEnv& env, F& filter, persist::TimeStep<double>& ts, Rng& rng) {
    Vec<double> a(2);
    a << 2 * rng.uniform<double>() - 1, 2 * rng.uniform<double>() - 1;
    const Vec<double> o_t = ts.observation;
    env.step(a, ts);
    if (ts.terminated) return false;
    filter.step(o_t, a, ts.observation);
    return true;
}

}  // namespace

TEST_CASE("EKF: on a linear model it is the Kalman filter, step by step", "[models][state_estimator][ekf]") {
    Rng rng(11);
    const Index X = 3, A = 2, U = 2, O = U + X;
    LinearModel<double> m;
    m.A.resize(X, X);
    for (Index i = 0; i < X; ++i)
        for (Index j = 0; j < X; ++j) m.A(i, j) = 0.4 * (rng.uniform<double>() - 0.5) + (i == j ? 0.8 : 0.0);
    m.B.resize(X, A);
    for (Index i = 0; i < m.B.size(); ++i) m.B.data()[i] = rng.uniform<double>() - 0.5;
    m.C.setZero(X, O);
    for (Index i = 0; i < X; ++i)
        for (Index j = 0; j < U; ++j) m.C(i, j) = 0.3 * (rng.uniform<double>() - 0.5);
    const std::vector<double> q{0.01, 0.02, 0.03}, r{0.1, 0.2, 0.05}, s0{0.3, 0.2, 0.1};
    KalmanFilterOptions o;
    o.initial_mean = {0.5, -0.2, 0.1};
    o.initial_std = s0;
    o.process_std = q;
    o.measurement_offset = U;
    o.measurement_std = r;
    ExtendedKalmanFilter<LinearModel<double>> ekf(m, O, o);
    REQUIRE(ekf.measuring());

    // The reference: Kalman (1960), in its textbook form (H = I):
    //   x- = A x + B a + C o,  P- = A P A^T + Q,  K = P- (P- + R)^-1,  x = x- + K (z - x-),  P = (I - K) P-.
    const Mat<double> Q = Eigen::Map<const Vec<double>>(q.data(), X).array().square().matrix().asDiagonal();
    const Mat<double> R = Eigen::Map<const Vec<double>>(r.data(), X).array().square().matrix().asDiagonal();
    Vec<double> x = Eigen::Map<const Vec<double>>(o.initial_mean.data(), X);
    Mat<double> P = Eigen::Map<const Vec<double>>(s0.data(), X).array().square().matrix().asDiagonal();
    auto correct = [&](const Vec<double>& obs) {
        const Mat<double> K = P * (P + R).inverse();
        x = x + K * (obs.tail(X) - x);
        P = (Mat<double>::Identity(X, X) - K) * P;
    };
    auto random_obs = [&] {
        Vec<double> v(O);
        for (Index i = 0; i < O; ++i) v[i] = 2 * rng.uniform<double>() - 1;
        return v;
    };
    Vec<double> obs = random_obs();
    correct(obs);
    const Vec<double>& x0 = ekf.begin_episode(obs);
    CHECK((x0 - x).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((ekf.covariance() - P).cwiseAbs().maxCoeff() < 1e-12);
    double worst_x = 0, worst_p = 0;
    for (int t = 0; t < 200; ++t) {
        Vec<double> a(A);
        a << 2 * rng.uniform<double>() - 1, 2 * rng.uniform<double>() - 1;
        const Vec<double> next = random_obs();
        x = m.A * x + m.B * a + m.C * obs;
        P = m.A * P * m.A.transpose() + Q;
        correct(next);
        ekf.step(obs, a, next);
        worst_x = std::max(worst_x, (ekf.estimate() - x).cwiseAbs().maxCoeff());
        worst_p = std::max(worst_p, (ekf.covariance() - P).cwiseAbs().maxCoeff());
        REQUIRE((ekf.jacobian() - m.A).cwiseAbs().maxCoeff() < 1e-9);
        obs = next;
    }
    INFO("largest difference from the textbook filter: x " << worst_x << ", P " << worst_p);
    CHECK(worst_x < 1e-9);
    CHECK(worst_p < 1e-9);
    // P stays symmetric positive definite.
    CHECK((ekf.covariance() - ekf.covariance().transpose()).cwiseAbs().maxCoeff() == 0.0);
    CHECK(Eigen::LLT<Mat<double>>(ekf.covariance()).info() == Eigen::Success);

    // Without a reading (measurement_offset = -1) only the prediction runs: P grows by Q.
    o.measurement_offset = -1;
    ExtendedKalmanFilter<LinearModel<double>> blind(m, O, o);
    blind.begin_episode(obs);
    Vec<double> a = Vec<double>::Zero(A);
    const Mat<double> P0 = blind.covariance();
    blind.step(obs, a, obs);
    const Mat<double> P1 = m.A * P0 * m.A.transpose() + Q;
    CHECK((blind.covariance() - P1).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((blind.estimate() - (m.A * Eigen::Map<const Vec<double>>(o.initial_mean.data(), X) + m.C * obs))
              .cwiseAbs()
              .maxCoeff() < 1e-12);
}

TEST_CASE("EKF: the Jacobian of a nonlinear model by central differences", "[models][state_estimator][ekf]") {
    KalmanFilterOptions o;
    o.initial_mean = {0.3, -0.7};
    o.initial_std = {0.1};
    o.jacobian_step = 1e-4;
    ExtendedKalmanFilter<QuadraticModel> ekf(QuadraticModel{}, 1, o);
    Vec<double> obs = Vec<double>::Zero(1), a(2);
    a << 0.05, -0.02;
    ekf.begin_episode(obs);
    for (int t = 0; t < 5; ++t) {
        const Vec<double> x = ekf.estimate();
        ekf.step(obs, a, obs);
        // df/dx = diag(1 + 0.2 x): central differences are exact for a quadratic up to rounding.
        const Mat<double> F = (Vec<double>::Ones(2) + 0.2 * x).asDiagonal();
        CHECK((ekf.jacobian() - F).cwiseAbs().maxCoeff() < 1e-10);
        CHECK((ekf.estimate() - (x + 0.1 * x.array().square().matrix() + a)).cwiseAbs().maxCoeff() < 1e-15);
    }
}

TEST_CASE("EKF: with GridLife's known dynamics and an exact prior, x_hat is the hidden x",
          "[models][state_estimator][ekf][gridlife]") {
    // x hidden from the observation, x_0 known exactly (initial_noise 0): the prediction through
    // f is the environment's own transition, so the belief's mean is x itself, bitwise.
    GridEnv env(persist::env::GridLifeConfig{.width = 10, .height = 10, .partial_observability = true,
                                             .initial_noise = 0.0});
    GridEnv model_env = env;
    KalmanFilterOptions o;
    o.initial_mean = {0.7, 0.5, 0.9};  // GridLife's default initial_internal
    o.initial_std = {0.0};
    GridEkf ekf(KnownDynamics<GridEnv>(model_env), env.observation_dim(), o);
    persist::TimeStep<double> ts;
    Rng rng(5);
    Index steps = 0, episodes = 0;
    for (std::uint64_t ep = 0; ep < 20; ++ep) {
        env.reset(100 + ep, ts);
        REQUIRE(ekf.begin_episode(ts.observation) == ts.internal);
        ++episodes;
        for (int t = 0; t < 300; ++t) {
            if (!random_step(env, ekf, ts, rng)) break;
            REQUIRE(ekf.estimate() == ts.internal);
            ++steps;
            if (ts.truncated) break;
        }
    }
    INFO(steps << " steps over " << episodes << " episodes");
    CHECK(steps > 300);
    CHECK(ekf.covariance().cwiseAbs().maxCoeff() == 0.0);  // nothing was uncertain
}

TEST_CASE("EKF: a noisy reading of x is filtered below the reading's error (3 seeds)",
          "[models][state_estimator][ekf][gridlife]") {
    const double sd = 0.05;
    for (std::uint64_t seed : {1, 2, 3}) {
        GridEnv env(persist::env::GridLifeConfig{.width = 10, .height = 10, .observation_noise_std = sd});
        GridEnv model_env = env;
        const Index off = env.internal_offset();
        REQUIRE(off >= 0);
        KalmanFilterOptions o;
        o.initial_mean = {0.7, 0.5, 0.9};
        o.initial_std = {0.05 / std::sqrt(3.0)};
        o.process_std = {0.005};  // the model reads the noisy patch: a small process noise
        o.measurement_offset = off;
        o.measurement_std = {sd};
        GridEkf ekf(KnownDynamics<GridEnv>(model_env), env.observation_dim(), o);
        persist::TimeStep<double> ts;
        Rng rng(seed);
        double se_filter = 0, se_reading = 0, inside = 0;
        Index n = 0;
        for (std::uint64_t ep = 0; ep < 10; ++ep) {
            env.reset(seed * 100 + ep, ts);
            ekf.begin_episode(ts.observation);
            for (int t = 0; t < 256; ++t) {
                if (!random_step(env, ekf, ts, rng)) break;
                const Vec<double> e = ekf.estimate() - ts.internal;
                se_filter += e.squaredNorm();
                se_reading += (ts.observation.segment(off, 3) - ts.internal).squaredNorm();
                for (Index j = 0; j < 3; ++j) inside += std::abs(e[j]) <= 3 * std::sqrt(ekf.covariance()(j, j));
                n += 3;
                if (ts.truncated) break;
            }
        }
        const double rmse_f = std::sqrt(se_filter / double(n)), rmse_r = std::sqrt(se_reading / double(n));
        INFO("seed " << seed << ": RMSE filter " << rmse_f << ", reading " << rmse_r << " over " << n / 3
                     << " steps; errors within 3 sigma " << inside / double(n));
                CHECK(n > 300);
        CHECK(rmse_f < 0.5 * rmse_r);
        CHECK(inside / double(n) > 0.9);  // P describes the error it has
    }
}

TEST_CASE("EKF: the belief is its checkpoint state; AnyStateEstimator holds it", "[models][state_estimator][ekf]") {
    GridEnv env(persist::env::GridLifeConfig{.width = 10, .height = 10, .observation_noise_std = 0.05});
    KalmanFilterOptions o;
    o.initial_mean = {0.7, 0.5, 0.9};
    o.initial_std = {0.03};
    o.process_std = {0.01};
    o.measurement_offset = env.internal_offset();
    o.measurement_std = {0.05};
    GridEkf a(KnownDynamics<GridEnv>(env), env.observation_dim(), o);
    persist::TimeStep<double> ts;
    env.reset(9, ts);
    Rng rng(3);
    a.begin_episode(ts.observation);
    for (int t = 0; t < 20; ++t) REQUIRE(random_step(env, a, ts, rng));
    // Copy the belief into a fresh filter through visit_state, then both continue identically.
    GridEkf b(KnownDynamics<GridEnv>(env), env.observation_dim(), o);
    std::vector<persist::TensorRef> ta, tb;
    a.visit_state([&](persist::TensorRef t) { ta.push_back(t); });
    b.visit_state([&](persist::TensorRef t) { tb.push_back(t); });
    REQUIRE(ta.size() == 2);
    for (std::size_t i = 0; i < ta.size(); ++i) {
        REQUIRE(ta[i].name == tb[i].name);
        std::memcpy(tb[i].data, ta[i].data, ta[i].bytes());
    }
    CHECK(ta[0].name == "x_hat");
    CHECK(ta[1].name == "covariance");
    GridEnv env2 = env;
    persist::TimeStep<double> ts2 = ts;
    Rng rng2 = rng;
    for (int t = 0; t < 10; ++t) {
        REQUIRE(random_step(env, a, ts, rng));
        REQUIRE(random_step(env2, b, ts2, rng2));
        REQUIRE(a.estimate() == b.estimate());
    }

    // Type erasure: the same calls, the concrete filter back through target<E>().
    AnyStateEstimator<double> any(a);
    CHECK(any.obs_dim() == env.observation_dim());
    CHECK(any.state_dim() == 3);
    CHECK_FALSE(any.trainable());
    CHECK(any.sequence_length() == 0);
    CHECK(std::isnan(any.update(Mat<double>(1, 1), Mat<double>(1, 1))));
    CHECK(any.describe()["type"] == "ekf");
    REQUIRE(any.target<GridEkf>() != nullptr);
    CHECK(any.target<persist::models::GruStateEstimator<double>>() == nullptr);
    CHECK(any.estimate() == a.estimate());
    AnyStateEstimator<double> copy = any;  // a deep copy: stepping one leaves the other
    const Vec<double> before = copy.estimate();
    REQUIRE(random_step(env, any, ts, rng));
    CHECK(copy.estimate() == before);
    CHECK(any.estimate() != before);
    int n = 0;
    any.visit_state([&](persist::TensorRef) { ++n; });
    CHECK(n == 2);

    AnyStateEstimator<float> gru(persist::models::GruStateEstimator<float>(
        {.obs_dim = 4, .state_dim = 2, .hidden = 8, .sequence_length = 6, .burn_in = 1, .batch_size = 5}));
    CHECK(gru.trainable());
    CHECK(gru.sequence_length() == 6);
    CHECK(gru.batch_size() == 5);
    CHECK(gru.describe()["hidden"] == 8);
    CHECK(std::isfinite(gru.update(Mat<float>::Zero(4, 30), Mat<float>::Zero(2, 30))));
}

TEST_CASE("EKF: bad options and inputs are named", "[models][state_estimator][ekf]") {
    GridEnv env(persist::env::GridLifeConfig{.width = 10, .height = 10, .partial_observability = true});
    const Index O = env.observation_dim();
    auto make = [&](KalmanFilterOptions o) { return GridEkf(KnownDynamics<GridEnv>(env), O, std::move(o)); };
    KalmanFilterOptions ok;
    ok.initial_mean = {0.7, 0.5, 0.9};
    CHECK_NOTHROW(make(ok));
    auto bad = [&](auto edit, const char* needle) {
        KalmanFilterOptions o = ok;
        edit(o);
        CHECK_THROWS_AS(make(o), ConfigError);
        CHECK_THROWS_WITH(make(o), Catch::Contains(needle));
    };
    bad([](auto& o) { o.initial_mean = {0.7, 0.5}; }, "initial_mean: expected 3 entries");
    bad([](auto& o) { o.initial_mean[1] = std::numeric_limits<double>::quiet_NaN(); }, "initial_mean[1]");
    bad([](auto& o) { o.initial_std = {-0.1}; }, "initial_std[0]: expected a finite number >= 0");
    bad([](auto& o) { o.process_std = {0.1, 0.2}; }, "process_std: expected 1 or 3 entries");
    bad([O](auto& o) { o.measurement_offset = O - 2; }, "measurement_offset");
    bad([](auto& o) { o.measurement_offset = -2; }, "measurement_offset");
    bad([](auto& o) { o.measurement_offset = 0, o.measurement_std = {0.0}; }, "measurement_std[0]: expected a finite number > 0");
    bad([](auto& o) { o.jacobian_step = 0; }, "jacobian_step");
    CHECK_THROWS_WITH(GridEkf(KnownDynamics<GridEnv>(env), 0, ok), Catch::Contains("obs_dim 0"));
    auto f = make(ok);
    CHECK_THROWS_AS(f.begin_episode(Vec<double>::Zero(O + 1)), ShapeError);
    f.begin_episode(Vec<double>::Zero(O));
    CHECK_THROWS_AS(f.step(Vec<double>::Zero(O), Vec<double>::Zero(3), Vec<double>::Zero(O)), ShapeError);
    CHECK_THROWS_AS(f.step(Vec<double>::Zero(O), Vec<double>::Zero(2), Vec<double>::Zero(O - 1)), ShapeError);
    // A non-finite reading is an error, not a silently corrupted belief.
    KalmanFilterOptions m = ok;
    m.measurement_offset = 0;
    m.initial_std = {0.1};
    auto g = make(m);
    Vec<double> o = Vec<double>::Zero(O);
    o[0] = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(g.begin_episode(o), Catch::Contains("reading"));
}
