// The CPU lane path of the rollout runner (parallel/lanes.hpp): its float math against libm in
// double, its vectorised Philox against Philox4x32 itself, its float Box-Muller against
// rollout_normals, and lane-path rollouts with the per-lane fallbacks (a learned margin, tanh
// members, observation features, lane groups of 16 and 8 with padding) against the scalar
// Thrust kernel.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "persist/parallel/lanes.hpp"
#include "persist/parallel/rollout.hpp"
#include "shield/shield_fixtures.hpp"

using namespace persist;
using namespace persist::parallel;

#if PERSIST_HAS_LANES
namespace {

/// Largest relative error of f (lanes) against g (double) over `n` random inputs in [lo, hi].
template <int L, class F, class G>
double max_rel_error(F f, G g, float lo, float hi, int n, std::uint64_t seed, double floor = 1e-30) {
    Rng rng(seed);
    double worst = 0;
    for (int it = 0; it < n; ++it) {
        lanes::vf<L> x;
        for (int j = 0; j < L; ++j) x[j] = rng.uniform<float>(lo, hi);
        const lanes::vf<L> y = f(x);
        for (int j = 0; j < L; ++j) {
            const double want = g(static_cast<double>(x[j]));
            const double err = std::abs(static_cast<double>(y[j]) - want) / std::max(std::abs(want), floor);
            worst = std::max(worst, err);
        }
    }
    return worst;
}

}  // namespace

TEMPLATE_TEST_CASE_SIG("lane math matches libm (double) to a few float ulp", "[shield][lanes]", ((int L), L), 8, 16) {
    constexpr double ulp = 5.96e-8;  // 2^-24
    const int n = 20000;
    CHECK(max_rel_error<L>([](auto x) { return lanes::vexp<L>(x); }, [](double x) { return std::exp(x); }, -87.f, 88.f, n, 1) < 3 * ulp);
    CHECK(max_rel_error<L>([](auto x) { return lanes::vlog<L>(x); }, [](double x) { return std::log(x); }, 6e-8f, 2.f, n, 2) < 3 * ulp);
    CHECK(max_rel_error<L>([](auto x) { return lanes::vlog<L>(x); }, [](double x) { return std::log(x); }, 0.5f, 1.5f, n, 3, 1e-3) < 3 * ulp);
    CHECK(max_rel_error<L>([](auto x) { return lanes::vlog1p<L>(x); }, [](double x) { return std::log1p(x); }, 0.f, 1.f, n, 4) < 4 * ulp);
    CHECK(max_rel_error<L>([](auto x) { return lanes::vlog1p<L>(x); }, [](double x) { return std::log1p(x); }, 0.f, 1e-6f, n, 5) < 4 * ulp);
    CHECK(max_rel_error<L>([](auto x) { return lanes::vsoftplus<L>(x); },
                           [](double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))); }, -60.f, 60.f, n, 6) < 6 * ulp);
    // tanh on both branches (|x| < 0.625 polynomial, else via exp), tiny arguments, saturation.
    CHECK(max_rel_error<L>([](auto x) { return lanes::vtanh<L>(x); }, [](double x) { return std::tanh(x); }, -0.7f, 0.7f, n, 7) < 3 * ulp);
    CHECK(max_rel_error<L>([](auto x) { return lanes::vtanh<L>(x); }, [](double x) { return std::tanh(x); }, -12.f, 12.f, n, 8) < 3 * ulp);
    CHECK(max_rel_error<L>([](auto x) { return lanes::vtanh<L>(x); }, [](double x) { return std::tanh(x); }, -1e-5f, 1e-5f, n, 9) < 2 * ulp);
    CHECK(lanes::vtanh<L>(lanes::splat<L>(60.0f))[0] == 1.0f);
    CHECK(lanes::vtanh<L>(lanes::splat<L>(-60.0f))[L - 1] == -1.0f);
    CHECK(lanes::vtanh<L>(lanes::splat<L>(0.0f))[0] == 0.0f);
    // sin / cos of 2 pi u: absolute error (the result passes through 0).
    Rng rng(7);
    double ws = 0, wc = 0;
    for (int it = 0; it < n; ++it) {
        lanes::vf<L> u, s, c;
        for (int j = 0; j < L; ++j) u[j] = it == 0 && j < 5 ? 0.25f * static_cast<float>(j) : rng.uniform<float>(0.f, 1.f);
        lanes::vsincos_2pi<L>(u, s, c);
        for (int j = 0; j < L; ++j) {
            const double a = 6.283185307179586 * static_cast<double>(u[j]);
            ws = std::max(ws, std::abs(static_cast<double>(s[j]) - std::sin(a)));
            wc = std::max(wc, std::abs(static_cast<double>(c[j]) - std::cos(a)));
        }
    }
    CHECK(ws < 3 * ulp);
    CHECK(wc < 3 * ulp);
    // Edges: exp at the ends of its range, log at 1 and at the smallest uniform.
    const lanes::vf<L> one = lanes::splat<L>(1.0f);
    CHECK(lanes::vlog<L>(one)[0] == 0.0f);
    CHECK(lanes::vexp<L>(lanes::splat<L>(0.0f))[L - 1] == 1.0f);
    CHECK(std::isfinite(lanes::vexp<L>(lanes::splat<L>(88.0f))[0]));
    CHECK(lanes::vlog<L>(lanes::splat<L>(5.9604644775390625e-8f))[0] == Approx(std::log(5.9604644775390625e-8)).epsilon(1e-6));
}

TEMPLATE_TEST_CASE_SIG("lane Philox equals Philox4x32 lane by lane (and the Random123 answer)", "[shield][lanes]", ((int L), L), 8, 16) {
    lanes::vu<L> z = lanes::splat_u<L>(0u), w[4];
    lanes::philox<L>(z, z, z, z, 0u, 0u, w);
    // Random123 known answer, philox4x32-10, counter 0, key 0: 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
    CHECK(w[0][0] == 0x6627e8d5u);
    CHECK(w[1][1] == 0xe169c58du);
    CHECK(w[2][L - 1] == 0xbc57ac4cu);
    CHECK(w[3][2] == 0x9b00dbd8u);
    Rng rng(11);
    for (int it = 0; it < 200; ++it) {
        lanes::vu<L> c[4];
        for (auto& v : c)
            for (int j = 0; j < L; ++j) v[j] = static_cast<std::uint32_t>(rng.next_u64());
        const auto k0 = static_cast<std::uint32_t>(rng.next_u64()), k1 = static_cast<std::uint32_t>(rng.next_u64());
        lanes::philox<L>(c[0], c[1], c[2], c[3], k0, k1, w);
        for (int j = 0; j < L; ++j) {
            const Philox4x32::Block want = Philox4x32::apply({{c[0][j], c[1][j], c[2][j], c[3][j]}}, k0, k1);
            for (int q = 0; q < 4; ++q) REQUIRE(w[q][j] == want.v[q]);
        }
    }
}

TEST_CASE("Lane-path rollouts (scaled margin network, tanh members, features) match the scalar kernel", "[shield][lanes][backends]") {
    using T = float;
    const std::int32_t X = 3, A = 2, F = 2;
    shieldtest::Ensemble<T> e(5, 32, X, A, F, 21);
    auto view = e.view();
    for (std::int32_t m = 0; m < view.members; ++m) view.member[m].act = Activation::tanh;
    const EnsembleRolloutModel<T> model{view};
    // A learned margin: a small random MLP over x, positive = safe.
    nn::MLP<T> mnet({X, 16, 1});
    Rng rng(3);
    mnet.init(rng);
    Vec<T> mmean(X), msd(X);  // input scaling of the margin network
    mmean << T(0.05), T(-0.1), T(0.02);
    msd << T(0.5), T(1.5), T(0.8);
    const MarginNetworkView<T> viab{shieldtest::view_of(mnet), mmean.data(), msd.data()};
    const HoldObservation<T> hold;
    // 37 candidates x 9 rollouts: members get 67 or 66 rollouts = 4 groups of 16 + one of 3 or 2
    // (8-lane group, padded), so both lane widths and padding are exercised.
    const std::int32_t C = 37, K = 9, h = 6;
    Mat<T> act(A, C);
    for (Index j = 0; j < act.size(); ++j) act.data()[j] = rng.uniform<T>(T(-1), T(1));
    Vec<T> x0(X), o(4);
    x0 << T(0.1), T(-0.2), T(0.05);
    for (Index i = 0; i < o.size(); ++i) o[i] = rng.uniform<T>(T(-1), T(1));
    {  // output bias: margin 0.004 at x0, so that the rollouts end both ways
        mnet.params()[mnet.param_count() - 1] = T(0);
        auto ws = mnet.make_workspace();
        const Vec<T> z0 = (x0 - mmean).cwiseQuotient(msd);
        const T m0 = mnet.forward(z0, ws)(0, 0);
        mnet.params()[mnet.param_count() - 1] = T(0.004) - m0;
    }
    const RolloutBatch<T> batch{.x0 = x0.data(), .o = o.data(), .actions = act.data(), .candidates = C,
                                .rollouts = K, .horizon = h, .seed = 5, .call = (std::uint64_t(3) << 32) + 9,
                                .candidate_base = 2};
    const std::int64_t n = batch.size();
    using Runner = EigenRolloutRunner<T, EnsembleRolloutModel<T>, MarginNetworkView<T>, HoldObservation<T>>;
    STATIC_REQUIRE(Runner::lane_path);
    for (bool with_states : {true, false}) {
        std::vector<RolloutOutcome<T>> o_ref(static_cast<std::size_t>(n)), o_lane(static_cast<std::size_t>(n));
        std::vector<T> s_ref(static_cast<std::size_t>(n * h * X)), s_lane(s_ref.size(), T(0));
        RolloutBatch<T> b1 = batch, b2 = batch;
        b1.outcomes = o_ref.data();
        b1.states = s_ref.data();
        b2.outcomes = o_lane.data();
        b2.states = with_states ? s_lane.data() : nullptr;
        const std::int32_t stride = rollout_scratch_size(model, viab);
        std::vector<T> scratch(static_cast<std::size_t>(n * stride));
        run_thrust(Backend::thrust_cpp, RolloutKernel<T, EnsembleRolloutModel<T>, MarginNetworkView<T>, HoldObservation<T>>{
                                            model, viab, hold, b1, scratch.data(), stride},
                   n);
        Runner runner;
        runner.reserve(model, viab, n);
        runner.run(model, viab, hold, b2);
        int unsafe = 0;
        for (std::int64_t r = 0; r < n; ++r) {
            const auto& a = o_ref[static_cast<std::size_t>(r)];
            const auto& b = o_lane[static_cast<std::size_t>(r)];
            REQUIRE(b.first_violation == a.first_violation);
            REQUIRE(b.violated_constraint == a.violated_constraint);
            REQUIRE(b.min_constraint == a.min_constraint);
            REQUIRE(std::abs(b.min_margin - a.min_margin) <= 1e-5f);
            if (!a.safe(h)) ++unsafe;
            if (with_states)
                for (std::int64_t q = 0; q < h * X; ++q)
                    REQUIRE(std::abs(s_lane[static_cast<std::size_t>(r * h * X + q)] - s_ref[static_cast<std::size_t>(r * h * X + q)]) <= 1e-5f);
        }
        REQUIRE(unsafe > n / 20);
        REQUIRE(unsafe < n - n / 20);
    }
}

TEST_CASE("Lane-path noise: Box-Muller in float from the same counter words as rollout_normals", "[shield][lanes]") {
    // A one-member, zero-weight model whose state moves by exactly delta_std * exp(log_std) * eps:
    // the lane path's states reveal its eps, compared with rollout_normals<double>.
    const std::int32_t X = 5, A = 1;  // 5 normals: blocks 0 and 1 of the stream
    nn::MLP<float> net({X + A, 4, 2 * X});
    net.params().setZero();
    GaussianEnsembleView<float> v;
    v.members = 1;
    v.internal_dim = X;
    v.action_dim = A;
    v.member[0] = shieldtest::view_of(net);
    const Vec<float> mean = Vec<float>::Zero(X + A), sd = Vec<float>::Ones(X + A), dm = Vec<float>::Zero(X),
                     ds = Vec<float>::Ones(X);
    v.in_mean = mean.data();
    v.in_std = sd.data();
    v.delta_mean = dm.data();
    v.delta_std = ds.data();
    v.min_logstd = -5.0f;
    v.max_logstd = 0.5f;
    const EnsembleRolloutModel<float> model{v};
    const double log_std = 0.5 - std::log1p(std::exp(0.5));        // r = 0: max - softplus(max)
    const double sigma = std::exp(-5.0 + std::log1p(std::exp(log_std + 5.0)));
    LinearConstraintsView<float> none;  // no constraints
    const HoldObservation<float> hold;
    const std::int32_t C = 3, K = 24, h = 4;
    std::vector<float> actions(C, 0.0f), x0(X, 0.0f), o(1, 0.0f);
    std::vector<RolloutOutcome<float>> out(C * K);
    std::vector<float> states(static_cast<std::size_t>(C * K * h * X));
    const RolloutBatch<float> b{.x0 = x0.data(), .o = o.data(), .actions = actions.data(), .candidates = C,
                                .rollouts = K, .horizon = h, .seed = 0x1234567890ull, .call = 77,
                                .candidate_base = 4, .outcomes = out.data(), .states = states.data()};
    EigenRolloutRunner<float, EnsembleRolloutModel<float>, LinearConstraintsView<float>, HoldObservation<float>> runner;
    runner.reserve(model, none, C * K);
    runner.run(model, none, hold, b);
    double worst = 0;
    for (std::int32_t c = 0; c < C; ++c)
        for (std::int32_t k = 0; k < K; ++k)
            for (std::int32_t s = 0; s < h; ++s) {
                double eps[X];
                rollout_normals<double>(b.seed, b.call, static_cast<std::uint32_t>(4 + c), static_cast<std::uint32_t>(k),
                                        static_cast<std::uint32_t>(s), X, eps);
                for (std::int32_t i = 0; i < X; ++i) {
                    const std::size_t r = static_cast<std::size_t>(c * K + k);
                    const double prev = s == 0 ? 0.0 : states[(r * h + static_cast<std::size_t>(s - 1)) * X + static_cast<std::size_t>(i)];
                    const double step = states[(r * h + static_cast<std::size_t>(s)) * X + static_cast<std::size_t>(i)] - prev;
                    worst = std::max(worst, std::abs(step / sigma - eps[i]) / (1.0 + std::abs(eps[i])));
                }
            }
    // Float Box-Muller of the top 24 bits of the same words: a few 1e-7 of eps, plus the float
    // rounding of the state accumulation.
    CHECK(worst < 2e-5);
}
#else
TEST_CASE("lane path not built (no GNU vector extensions)", "[shield][lanes]") { SUCCEED(); }
#endif
