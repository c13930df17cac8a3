// Rollout kernels (parallel/rollout.hpp, parallel/gridlife_rollout.hpp) against straightforward
// references: single-sample MLP vs nn::MLP, the input gradient vs finite differences, the
// noise stream, constraint views vs ConstraintSet, GridLife's dynamics functor and patch
// kinematics vs the environment itself, whole rollouts vs a scalar reference, and the Thrust
// (OMP, CPP) and Eigen-batched backends against each other.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "persist/parallel/gridlife_rollout.hpp"
#include "persist/parallel/rollout.hpp"
#include "persist/shield/rollout_shield.hpp"
#include "shield/shield_fixtures.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace persist;
using namespace persist::parallel;
using shieldtest::Ensemble;

namespace {
template <class T>
T tol();
template <>
float tol<float>() {
    return 1e-5f;
}
template <>
double tol<double>() {
    return 1e-12;
}
}  // namespace

TEMPLATE_TEST_CASE("mlp_forward equals nn::MLP::forward (relu and tanh)", "[shield][kernels]", float, double) {
    using T = TestType;
    Rng rng(7);
    nn::MLP<T> relu_net({5, 64, 33, 6});
    relu_net.init(rng);
    nn::MLP<T, nn::Tanh> tanh_net({5, 17, 6});
    tanh_net.init(rng);
    auto ws1 = relu_net.make_workspace();
    auto ws2 = tanh_net.make_workspace();
    MLPView<T> v1 = shieldtest::view_of(relu_net);
    MLPView<T> v2;
    v2.params = tanh_net.params().data();
    v2.num_layers = 2;
    v2.widths[0] = 5, v2.widths[1] = 17, v2.widths[2] = 6;
    v2.act = Activation::tanh;
    std::vector<T> scratch(static_cast<std::size_t>(std::max(mlp_scratch_size(v1), mlp_scratch_size(v2))));
    for (int trial = 0; trial < 20; ++trial) {
        Vec<T> in(5);
        for (Index i = 0; i < 5; ++i) in[i] = rng.uniform<T>(T(-2), T(2));
        const Mat<T>& y1 = relu_net.forward(in, ws1);
        const T* o1 = mlp_forward(v1, in.data(), scratch.data());
        for (Index i = 0; i < 6; ++i) REQUIRE(std::abs(o1[i] - y1(i, 0)) <= tol<T>() * (T(1) + std::abs(y1(i, 0))));
        const Mat<T>& y2 = tanh_net.forward(in, ws2);
        const T* o2 = mlp_forward(v2, in.data(), scratch.data());
        for (Index i = 0; i < 6; ++i) REQUIRE(std::abs(o2[i] - y2(i, 0)) <= tol<T>() * (T(1) + std::abs(y2(i, 0))));
    }
}

TEST_CASE("mlp_backward_input matches central finite differences (double)", "[shield][kernels]") {
    Rng rng(11);
    for (auto act : {Activation::relu, Activation::tanh}) {
        nn::MLP<double> net({4, 16, 16, 3});
        net.init(rng);
        MLPView<double> v = shieldtest::view_of(net);
        v.act = act;
        std::vector<double> cache(static_cast<std::size_t>(mlp_cache_size(v))), tmp(static_cast<std::size_t>(2 * v.max_width())),
            sc(static_cast<std::size_t>(mlp_scratch_size(v)));
        Vec<double> in(4), g_out(3), g_in(4);
        for (int trial = 0; trial < 10; ++trial) {
            for (Index i = 0; i < 4; ++i) in[i] = rng.uniform<double>(-1.0, 1.0);
            for (Index i = 0; i < 3; ++i) g_out[i] = rng.uniform<double>(-1.0, 1.0);
            mlp_forward_cached(v, in.data(), cache.data());
            mlp_backward_input(v, cache.data(), g_out.data(), g_in.data(), tmp.data());
            for (Index j = 0; j < 4; ++j) {
                const double hstep = 1e-6;
                Vec<double> p = in, m = in;
                p[j] += hstep;
                m[j] -= hstep;
                const double* yp = mlp_forward(v, p.data(), sc.data());
                double lp = 0;
                for (Index i = 0; i < 3; ++i) lp += g_out[i] * yp[i];
                const double* ym = mlp_forward(v, m.data(), sc.data());
                double lm = 0;
                for (Index i = 0; i < 3; ++i) lm += g_out[i] * ym[i];
                REQUIRE(g_in[j] == Approx((lp - lm) / (2 * hstep)).margin(1e-7));
            }
        }
    }
}

TEST_CASE("rollout_normals: pure function of its key, standard normal, keys independent", "[shield][kernels]") {
    double a[5], b[5];
    rollout_normals<double>(1, 2, 3, 4, 5, 5, a);
    rollout_normals<double>(1, 2, 3, 4, 5, 5, b);
    for (int i = 0; i < 5; ++i) REQUIRE(a[i] == b[i]);
    // Changing any field changes the draw.
    const std::uint64_t keys[5][5] = {{9, 2, 3, 4, 5}, {1, 9, 3, 4, 5}, {1, 2, 9, 4, 5}, {1, 2, 3, 9, 5}, {1, 2, 3, 4, 9}};
    for (const auto& k : keys) {
        rollout_normals<double>(k[0], k[1], static_cast<std::uint32_t>(k[2]), static_cast<std::uint32_t>(k[3]),
                                static_cast<std::uint32_t>(k[4]), 5, b);
        REQUIRE(a[0] != b[0]);
    }
    // The call's high word is in the key too.
    rollout_normals<double>(1, 2 + (std::uint64_t(1) << 32), 3, 4, 5, 5, b);
    REQUIRE(a[0] != b[0]);
    // Moments over many keys: mean 0, variance 1, kurtosis 3 (N = 200k, generous bounds).
    double s1 = 0, s2 = 0, s4 = 0;
    const int n = 100000;
    for (int r = 0; r < n; ++r) {
        double e[2];
        rollout_normals<double>(42, 0, 0, static_cast<std::uint32_t>(r), 0, 2, e);
        for (double v : e) s1 += v, s2 += v * v, s4 += v * v * v * v;
    }
    const double N = 2.0 * n, mean = s1 / N, var = s2 / N - mean * mean;
    REQUIRE(std::abs(mean) < 0.01);
    REQUIRE(std::abs(var - 1.0) < 0.02);
    REQUIRE(std::abs(s4 / N - 3.0) < 0.1);
    // float and double agree to float rounding (same uniforms).
    float f[5];
    rollout_normals<float>(1, 2, 3, 4, 5, 5, f);
    for (int i = 0; i < 5; ++i) REQUIRE(f[i] == static_cast<float>(a[i]));
}

TEMPLATE_TEST_CASE("LinearConstraintsView margins equal ConstraintSet's bitwise, strictness kept", "[shield][kernels]",
                   float, double) {
    using T = TestType;
    const viability::ConstraintSet<T> cs({"a", "b", "c"}, {"a >= 0.2", "b in [0.3, 0.7]", "a + 0.5*c > 0.5",
                                                           "2*b - a <= 1", "c < 0.9", "0.1 <= -c + 2"});
    shield::LinearConstraints<T> lc(cs);
    const auto v = lc.view();
    REQUIRE(v.count() == 6);
    Rng rng(3);
    Mat<T> m(6, 1);
    T out[6];
    for (int t = 0; t < 500; ++t) {
        Vec<T> x(3);
        for (Index i = 0; i < 3; ++i) x[i] = rng.uniform<T>(T(-0.5), T(1.5));
        cs.margins(Mat<T>(x), m);
        v.margins(x.data(), out, nullptr);
        for (Index k = 0; k < 6; ++k) {
            REQUIRE(out[k] == m(k, 0));
            REQUIRE(v.satisfied(static_cast<std::int32_t>(k), out[k]) == cs.satisfied(k, out[k]));
        }
    }
    // Strict at exactly 0 is a violation, non-strict is not.
    REQUIRE_FALSE(v.satisfied(2, T(0)));
    REQUIRE(v.satisfied(0, T(0)));
    // Gradient: margins_vjp with a one-hot weight is ConstraintSet::gradient.
    Vec<T> x(3), g(3), ref(3);
    x << T(0.4), T(0.6), T(0.2);
    for (std::int32_t k = 0; k < 6; ++k) {
        T w[6] = {};
        w[k] = T(1);
        g.setZero();
        v.margins_vjp(x.data(), w, g.data(), nullptr);
        cs.gradient(k, x, ref);
        for (Index j = 0; j < 3; ++j) REQUIRE(g[j] == ref[j]);
    }
}

TEMPLATE_TEST_CASE("GridLife: the dynamics functor and rollout model equal internal_transition bitwise",
                   "[shield][kernels][gridlife]", float, double) {
    using T = TestType;
    env::GridLife<T> env;
    TimeStep<T> ts;
    env.reset(5, ts);
    const auto model = GridLifeRolloutModel<T>::from(env);
    const HoldObservation<T> hold;
    Rng rng(9);
    for (int t = 0; t < 300; ++t) {
        Vec<T> x(3), a(2), ref(3), got(3);
        for (Index i = 0; i < 3; ++i) x[i] = rng.uniform<T>();
        for (Index i = 0; i < 2; ++i) a[i] = rng.uniform<T>(T(-1), T(1));
        Vec<T> o = ts.observation;
        for (Index c = 0; c < 7; ++c) o[env.centre_offset() + c] = rng.uniform<T>() < T(0.3) ? T(1) : rng.uniform<T>();
        env.internal_transition(x, a, o, ref);
        typename HoldObservation<T>::State st;
        const ObsAccessor<T, HoldObservation<T>> obs{&hold, o.data(), &st, x.data()};
        model.step(0, x.data(), a.data(), obs, nullptr, got.data(), nullptr);
        for (Index i = 0; i < 3; ++i) REQUIRE(got[i] == ref[i]);
    }
}

TEST_CASE("GridLife model step_vjp matches finite differences away from the clamps", "[shield][kernels][gridlife]") {
    env::GridLife<double> env;
    TimeStep<double> ts;
    env.reset(1, ts);
    const auto model = GridLifeRolloutModel<double>::from(env);
    const HoldObservation<double> hold;
    typename HoldObservation<double>::State st;
    Vec<double> o = ts.observation;
    o[env.centre_offset() + env::ch_cool] = 1.0;
    const double x[3] = {0.5, 0.45, 0.8}, a[2] = {0.3, -0.7}, g[3] = {0.7, -1.1, 0.4};
    double gx[3] = {}, ga[2] = {};
    const ObsAccessor<double, HoldObservation<double>> obs{&hold, o.data(), &st, x};
    model.step_vjp(0, x, a, obs, g, gx, ga, nullptr);
    auto L = [&](const double* xx, const double* aa) {
        double xn[3];
        const ObsAccessor<double, HoldObservation<double>> ob{&hold, o.data(), &st, xx};
        model.step(0, xx, aa, ob, nullptr, xn, nullptr);
        return g[0] * xn[0] + g[1] * xn[1] + g[2] * xn[2];
    };
    const double hs = 1e-6;
    for (int j = 0; j < 3; ++j) {
        double p[3] = {x[0], x[1], x[2]}, m[3] = {x[0], x[1], x[2]};
        p[j] += hs, m[j] -= hs;
        REQUIRE(gx[j] == Approx((L(p, a) - L(m, a)) / (2 * hs)).margin(1e-8));
    }
    for (int j = 0; j < 2; ++j) {
        double p[2] = {a[0], a[1]}, m[2] = {a[0], a[1]};
        p[j] += hs, m[j] -= hs;
        REQUIRE(ga[j] == Approx((L(x, p) - L(x, m)) / (2 * hs)).margin(1e-8));
    }
}

TEST_CASE("Ensemble step_vjp and MarginNetworkView margins_vjp match finite differences", "[shield][kernels]") {
    Ensemble<double> e(3, 16, 3, 2, 2, 21, 0.05);
    const auto model = e.model();
    const HoldObservation<double> hold;
    typename HoldObservation<double>::State st;
    Vec<double> o = Vec<double>::LinSpaced(6, -0.5, 0.5);
    std::vector<double> sc(static_cast<std::size_t>(std::max(model.vjp_scratch_size(), model.scratch_size())));
    const double x[3] = {0.1, -0.2, 0.3}, a[2] = {0.4, -0.6}, g[3] = {1.0, -0.5, 0.25};
    for (std::int32_t m = 0; m < 3; ++m) {
        double gx[3] = {}, ga[2] = {};
        const ObsAccessor<double, HoldObservation<double>> obs{&hold, o.data(), &st, x};
        model.step_vjp(m, x, a, obs, g, gx, ga, sc.data());
        auto L = [&](const double* xx, const double* aa) {
            double xn[3];
            const ObsAccessor<double, HoldObservation<double>> ob{&hold, o.data(), &st, xx};
            model.step(m, xx, aa, ob, nullptr, xn, sc.data());
            return g[0] * xn[0] + g[1] * xn[1] + g[2] * xn[2];
        };
        const double hs = 1e-6;
        for (int j = 0; j < 3; ++j) {
            double p[3] = {x[0], x[1], x[2]}, q[3] = {x[0], x[1], x[2]};
            p[j] += hs, q[j] -= hs;
            REQUIRE(gx[j] == Approx((L(p, a) - L(q, a)) / (2 * hs)).margin(1e-8));
        }
        for (int j = 0; j < 2; ++j) {
            double p[2] = {a[0], a[1]}, q[2] = {a[0], a[1]};
            p[j] += hs, q[j] -= hs;
            REQUIRE(ga[j] == Approx((L(x, p) - L(x, q)) / (2 * hs)).margin(1e-8));
        }
    }
    // Learned margin with input scaling.
    Rng rng(4);
    nn::MLP<double> mnet({3, 12, 2});
    mnet.init(rng);
    const Vec<double> mean = Vec<double>::Constant(3, 0.1), sd = Vec<double>::Constant(3, 0.7);
    MarginNetworkView<double> mv{shieldtest::view_of(mnet), mean.data(), sd.data()};
    std::vector<double> vs(static_cast<std::size_t>(std::max(mv.vjp_scratch_size(), mv.scratch_size())));
    const double w[2] = {0.3, -0.9};
    double gx[3] = {};
    mv.margins_vjp(x, w, gx, vs.data());
    auto Lm = [&](const double* xx) {
        double mm[2];
        mv.margins(xx, mm, vs.data());
        return w[0] * mm[0] + w[1] * mm[1];
    };
    for (int j = 0; j < 3; ++j) {
        double p[3] = {x[0], x[1], x[2]}, q[3] = {x[0], x[1], x[2]};
        p[j] += 1e-6, q[j] -= 1e-6;
        REQUIRE(gx[j] == Approx((Lm(p) - Lm(q)) / 2e-6).margin(1e-8));
    }
    // margins() is the network on the scaled input.
    auto ws = mnet.make_workspace();
    Vec<double> z(3);
    for (int j = 0; j < 3; ++j) z[j] = (x[j] - 0.1) / 0.7;
    double mm[2];
    mv.margins(x, mm, vs.data());
    const Mat<double>& y = mnet.forward(z, ws);
    REQUIRE(mm[0] == Approx(y(0, 0)).margin(1e-12));
    REQUIRE(mm[1] == Approx(y(1, 0)).margin(1e-12));
}

TEMPLATE_TEST_CASE("GridLife patch kinematics predict the tile the environment reaches", "[shield][kernels][gridlife]",
                   float, double) {
    using T = TestType;
    env::GridLifeConfig cfg;
    cfg.num_walls = 30;
    cfg.view_radius = 3;
    env::GridLife<T> env(cfg);
    const auto kin = GridLifePatchKinematics<T>::from(env);
    const auto model = GridLifeRolloutModel<T>::from(env);
    Rng rng(12);
    TimeStep<T> ts;
    int compared = 0, checked_paths = 0;
    for (int ep = 0; ep < 200; ++ep) {
        env.reset(static_cast<std::uint64_t>(ep), ts);
        const Vec<T> o0 = ts.observation;
        Vec<T> a(2);
        for (Index i = 0; i < 2; ++i) a[i] = rng.uniform<T>(T(-1), T(1));
        typename GridLifePatchKinematics<T>::State st;
        kin.init(o0.data(), st);
        const Index ix0 = env.tile_x(), iy0 = env.tile_y();
        Vec<T> x = ts.internal, xm(3);
        for (int s = 0; s < 6 && !ts.done(); ++s) {
            // The model's view of the current tile, and its prediction of x', equal the env's.
            const ObsAccessor<T, GridLifePatchKinematics<T>> obs{&kin, o0.data(), &st, x.data()};
            const Index dx = env.tile_x() - ix0, dy = env.tile_y() - iy0;
            const bool in_patch = std::abs(dx) <= cfg.view_radius && std::abs(dy) <= cfg.view_radius;
            // Stop comparing once the path leaves the patch or touches the world's edge (the
            // documented approximations).
            const T ms = T(cfg.max_speed);
            const T px = env.position_x() + ms * a[0], py = env.position_y() + ms * a[1];
            const bool edge = px < T(0) || py < T(0) || px >= T(env.width()) || py >= T(env.height());
            if (!in_patch) break;
            REQUIRE(st.tx - cfg.view_radius == dx);
            REQUIRE(st.ty - cfg.view_radius == dy);
            for (Index c = 0; c < 7; ++c)
                REQUIRE(obs(static_cast<std::int32_t>(env.centre_offset() + c)) == env.tile(env.tile_x(), env.tile_y(), c));
            model.step(0, x.data(), a.data(), obs, nullptr, xm.data(), nullptr);
            env.step(a, ts);
            REQUIRE(xm == ts.internal);
            x = ts.internal;
            kin.advance(o0.data(), st, a.data());
            ++compared;
            if (edge) break;
        }
        ++checked_paths;
    }
    REQUIRE(checked_paths == 200);
    REQUIRE(compared > 500);
}

namespace {

/// Kernels of every backend on the same batch; returns outcomes and states.
template <class T, class Model, class Viab, class Kin>
void run_backend(Backend b, const Model& model, const Viab& viab, const Kin& kin, RolloutBatch<T> batch,
                 std::vector<RolloutOutcome<T>>& out, std::vector<T>& states) {
    const std::int64_t n = batch.size();
    out.assign(static_cast<std::size_t>(n), RolloutOutcome<T>{});
    states.assign(static_cast<std::size_t>(n * batch.horizon * model.internal_dim()), T(0));
    batch.outcomes = out.data();
    batch.states = states.data();
    if (b == Backend::eigen) {
        EigenRolloutRunner<T, Model, Viab, Kin> runner;
        runner.reserve(model, viab, n);
        runner.run(model, viab, kin, batch);
    } else {
        const std::int32_t stride = rollout_scratch_size(model, viab);
        std::vector<T> scratch(static_cast<std::size_t>(n * stride));
        const RolloutKernel<T, Model, Viab, Kin> k{model, viab, kin, batch, scratch.data(), stride};
        run_thrust(b, k, n);
    }
}

}  // namespace

TEMPLATE_TEST_CASE("Ensemble rollouts: kernel = scalar reference; Thrust OMP = CPP bitwise; Eigen within tolerance",
                   "[shield][kernels][backends]", float, double) {
    using T = TestType;
    for (std::int32_t F : {0, 2}) {
        Ensemble<T> e(5, 64, 3, 2, F, 100 + static_cast<std::uint64_t>(F));
        const auto model = e.model();
        const auto cs = shieldtest::toy_constraints<T>();
        shield::LinearConstraints<T> lc(cs);
        const HoldObservation<T> hold;
        Rng rng(5);
        const std::int32_t C = 12, K = 10, h = 8;
        Mat<T> act(2, C);
        for (Index j = 0; j < act.size(); ++j) act.data()[j] = rng.uniform<T>(T(-1), T(1));
        Vec<T> x0(3), o(6);
        x0 << T(0.0), T(0.03), T(0.05);
        for (Index i = 0; i < 6; ++i) o[i] = rng.uniform<T>(T(-1), T(1));
        RolloutBatch<T> batch;
        batch.x0 = x0.data();
        batch.o = o.data();
        batch.actions = act.data();
        batch.candidates = C;
        batch.rollouts = K;
        batch.horizon = h;
        batch.seed = 77;
        batch.call = 3;
        batch.candidate_base = 5;
        std::vector<RolloutOutcome<T>> o_omp, o_cpp, o_eig;
        std::vector<T> s_omp, s_cpp, s_eig;
        run_backend(Backend::thrust_device, model, lc.view(), hold, batch, o_omp, s_omp);
        run_backend(Backend::thrust_cpp, model, lc.view(), hold, batch, o_cpp, s_cpp);
        run_backend(Backend::eigen, model, lc.view(), hold, batch, o_eig, s_eig);
        REQUIRE(s_omp == s_cpp);
        int unsafe = 0;
        for (std::int32_t c = 0; c < C; ++c)
            for (std::int32_t k = 0; k < K; ++k) {
                const std::size_t r = static_cast<std::size_t>(c * K + k);
                const auto ref = shieldtest::reference_rollout(e, cs, x0, o, Vec<T>(act.col(c)), h, 77, 3,
                                                               static_cast<std::uint32_t>(5 + c),
                                                               static_cast<std::uint32_t>(k));
                for (std::int32_t s = 0; s < h; ++s)
                    for (Index i = 0; i < 3; ++i) {
                        const T want = ref.states[static_cast<std::size_t>(s)][i];
                        const T got = s_omp[(r * h + static_cast<std::size_t>(s)) * 3 + static_cast<std::size_t>(i)];
                        const T eig = s_eig[(r * h + static_cast<std::size_t>(s)) * 3 + static_cast<std::size_t>(i)];
                        REQUIRE(std::abs(got - want) <= tol<T>());
                        REQUIRE(std::abs(eig - want) <= tol<T>());
                    }
                REQUIRE(o_omp[r].first_violation == ref.first_violation);
                REQUIRE(o_omp[r].violated_constraint == ref.violated_constraint);
                REQUIRE(std::abs(o_omp[r].min_margin - ref.min_margin) <= 10 * tol<T>());
                REQUIRE(o_omp[r].first_violation == o_cpp[r].first_violation);
                REQUIRE(o_omp[r].min_margin == o_cpp[r].min_margin);
                REQUIRE(o_eig[r].first_violation == o_omp[r].first_violation);
                REQUIRE(o_eig[r].violated_constraint == o_omp[r].violated_constraint);
                if (!o_omp[r].safe(h)) ++unsafe;
            }
        // The scene exercises both outcomes.
        REQUIRE(unsafe > 0);
        REQUIRE(unsafe < C * K);
    }
}

TEST_CASE("Rollout kernels give identical results with 1 and 2 OpenMP threads", "[shield][kernels][threads]") {
#if defined(_OPENMP)
    using T = float;
    Ensemble<T> e(5, 64, 3, 2, 0, 8);
    const auto model = e.model();
    const auto cs = shieldtest::toy_constraints<T>();
    shield::LinearConstraints<T> lc(cs);
    const HoldObservation<T> hold;
    Rng rng(1);
    const std::int32_t C = 64, K = 32, h = 8;
    Mat<T> act(2, C);
    for (Index j = 0; j < act.size(); ++j) act.data()[j] = rng.uniform<T>(T(-1), T(1));
    Vec<T> x0 = Vec<T>::Zero(3), o = Vec<T>::Zero(1);
    RolloutBatch<T> batch;
    batch.x0 = x0.data();
    batch.o = o.data();
    batch.actions = act.data();
    batch.candidates = C;
    batch.rollouts = K;
    batch.horizon = h;
    for (Backend b : {Backend::thrust_device, Backend::eigen}) {
        const int before = omp_get_max_threads();
        std::vector<RolloutOutcome<T>> o1, o2;
        std::vector<T> s1, s2;
        omp_set_num_threads(1);
        run_backend(b, model, lc.view(), hold, batch, o1, s1);
        omp_set_num_threads(2);
        run_backend(b, model, lc.view(), hold, batch, o2, s2);
        omp_set_num_threads(before);
        REQUIRE(s1 == s2);
        for (std::size_t r = 0; r < o1.size(); ++r) {
            REQUIRE(o1[r].first_violation == o2[r].first_violation);
            REQUIRE(o1[r].min_margin == o2[r].min_margin);
        }
    }
#else
    SUCCEED("built without OpenMP");
#endif
}
