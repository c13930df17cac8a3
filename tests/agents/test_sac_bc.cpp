// SAC from demonstrations (agents/sac.hpp: bc_gradients, behavior_clone, update with a
// demonstration batch, set_demonstrations) and the head's log-likelihood of given actions
// (nn::TanhGaussian::log_prob_of): values against the closed form, gradients against central
// finite differences (double), update composition, determinism/checkpoints, errors, and that
// behaviour cloning imitates an expert over several seeds.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "agents/sac_fixtures.hpp"
#include "nn/gradcheck.hpp"
#include "persist/agents/sac.hpp"
#include "persist/io/checkpoint.hpp"
#include "persist/nn/tanh_gaussian.hpp"

using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::Vec;
using persist::agents::DemoBatch;
using persist::agents::SAC;
using persist::agents::SACOptions;
using namespace sactest;

namespace {

SAC<double> small_agent(std::uint64_t seed = 3) { return sactest::small_agent<SAC<double>>(seed); }

/// B demonstration steps with states in U(-1, 1) and actions inside the box (not on it).
template <class T>
DemoBatch<T> random_demos(Index B, Rng& rng, const Vec<double>& lo, const Vec<double>& hi) {
    DemoBatch<T> d;
    d.observation.resize(kObs, B);
    d.internal.resize(kInt, B);
    d.action.resize(kAct, B);
    for (Index k = 0; k < d.observation.size(); ++k) d.observation.data()[k] = T(rng.uniform<double>(-1, 1));
    for (Index k = 0; k < d.internal.size(); ++k) d.internal.data()[k] = T(rng.uniform<double>(-1, 1));
    for (Index j = 0; j < B; ++j)
        for (Index i = 0; i < kAct; ++i) d.action(i, j) = T(rng.uniform<double>(0.95 * lo(i) + 0.05 * hi(i), 0.05 * lo(i) + 0.95 * hi(i)));
    return d;
}

}  // namespace

TEST_CASE("TanhGaussian::log_prob_of: the closed form, the density of sample() and its gradient",
          "[agents][sac][bc][fd]") {
    Rng rng(31);
    const Index A = 3, B = 5;
    for (auto opt : {persist::nn::TanhGaussianOptions{}, persist::nn::TanhGaussianOptions{-20.0, 2.0}}) {
        persist::nn::TanhGaussian<double> head(A, opt);
        Mat<double> in = nntest::random_mat(2 * A, B, rng, 1.5);
        Mat<double> act(A, B);
        for (Index k = 0; k < act.size(); ++k) act.data()[k] = rng.uniform<double>(-0.97, 0.97);

        persist::nn::TanhGaussian<double>::Workspace ws;
        const Mat<double> lp = head.log_prob_of(in, act, ws);
        for (Index j = 0; j < B; ++j) {  // sum_i log N(atanh a; mean, std) - log(1 - a^2)
            double ref = 0;
            for (Index i = 0; i < A; ++i) {
                const double ls = opt.log_std_min + 0.5 * (opt.log_std_max - opt.log_std_min) * (std::tanh(in(A + i, j)) + 1);
                const double z = (std::atanh(act(i, j)) - in(i, j)) / std::exp(ls);
                ref += -0.5 * z * z - ls - 0.5 * std::log(2 * M_PI) - std::log(1 - act(i, j) * act(i, j));
            }
            CHECK(lp(0, j) == Approx(ref).epsilon(1e-12));
        }
        // The density sample() reports for the action it drew is the same function.
        persist::nn::TanhGaussian<double>::Workspace ws2;
        Mat<double> eps(A, B);
        for (Index k = 0; k < eps.size(); ++k) eps.data()[k] = 0.5 * rng.normal<double>();
        const Mat<double> drawn = head.sample(in, eps, ws2);
        const Mat<double> lp_drawn = ws2.log_prob;
        persist::nn::TanhGaussian<double>::Workspace ws3;
        CHECK(nntest::rel_err(head.log_prob_of(in, drawn, ws3), lp_drawn) < 1e-9);

        const Mat<double> g = nntest::random_mat(1, B, rng);
        head.log_prob_of(in, act, ws);
        const Mat<double> analytic = head.log_prob_backward(ws, g);
        auto loss = [&] {
            persist::nn::TanhGaussian<double>::Workspace w;
            return nntest::dot(g, head.log_prob_of(in, act, w));
        };
        CHECK(nntest::rel_err(analytic, nntest::numgrad(in, loss)) < nntest::kFdTol);
    }
}

TEST_CASE("TanhGaussian::log_prob_of rejects actions on or outside (-1, 1) and wrong shapes", "[agents][sac][bc]") {
    persist::nn::TanhGaussian<float> head(2);
    persist::nn::TanhGaussian<float>::Workspace ws;
    const Mat<float> in = Mat<float>::Zero(4, 3);
    Mat<float> act = Mat<float>::Zero(2, 3);
    act(1, 2) = 1.0f;
    CHECK_THROWS_WITH(head.log_prob_of(in, act, ws),
                      Catch::Contains("action(1, 2) = 1.0") && Catch::Contains("open interval (-1, 1)"));
    act(1, 2) = std::nanf("");
    CHECK_THROWS_AS(head.log_prob_of(in, act, ws), persist::Error);
    CHECK_THROWS_AS(head.log_prob_of(in, Mat<float>::Zero(2, 2), ws), persist::ShapeError);
}

TEST_CASE("SAC bc_gradients equals d(weight * L_BC)/d(actor params); accumulate adds to the actor gradient",
          "[agents][sac][bc][gradcheck]") {
    SAC<double> sac = small_agent();
    Rng rng(17);
    const auto demo = random_demos<double>(7, rng, low_d(), high_d());
    const double w = 0.7;
    const double loss = sac.bc_gradients(demo, w, persist::nn::GradMode::overwrite);
    const Vec<double> analytic = sac.actor().grads();
    REQUIRE(analytic.norm() > 1e-3);
    CHECK(std::isfinite(loss));
    const Mat<double> numeric = nntest::numgrad(sac.actor().params(), [&] {
        return w * sac.bc_gradients(demo, w, persist::nn::GradMode::overwrite);
    });
    CHECK(nntest::rel_err(analytic, numeric) < nntest::kFdTol);

    // accumulate: actor loss gradient + weight * BC gradient.
    const auto batch = random_batch<double>(kObs, kInt, low_d(), high_d(), 6, rng);
    Mat<double> eps(kAct, 6);
    for (Index k = 0; k < eps.size(); ++k) eps.data()[k] = rng.normal<double>();
    sac.actor_gradients(batch, eps);
    const Vec<double> g_actor = sac.actor().grads();
    sac.bc_gradients(demo, w, persist::nn::GradMode::accumulate);
    CHECK(nntest::rel_err(sac.actor().grads(), g_actor + analytic) < 1e-12);
}

TEST_CASE("SAC bc_gradients squeezes actions on the box bounds and rejects actions outside it",
          "[agents][sac][bc]") {
    SAC<double> sac = small_agent();
    Rng rng(18);
    auto demo = random_demos<double>(4, rng, low_d(), high_d());
    demo.action(0, 1) = 2.0;   // on the upper bound of action 0: atanh(1 - bc_squeeze)
    demo.action(1, 3) = -1.0;  // on the lower bound of action 1
    CHECK(std::isfinite(sac.bc_gradients(demo, 1.0, persist::nn::GradMode::overwrite)));
    CHECK(sac.actor().grads().allFinite());
    CHECK(sac.workspace().bc_a(0, 1) == Approx(1.0 - sac.options().bc_squeeze).epsilon(1e-15));
    CHECK(sac.workspace().bc_a(1, 3) == Approx(-(1.0 - sac.options().bc_squeeze)).epsilon(1e-15));
    demo.action(1, 2) = 3.5;
    CHECK_THROWS_WITH(sac.bc_gradients(demo, 1.0, persist::nn::GradMode::overwrite),
                      Catch::Contains("demonstration action 2 entry 1 = 3.5") && Catch::Contains("[-1.000000, 3.000000]"));
    DemoBatch<double> wrong = random_demos<double>(4, rng, low_d(), high_d());
    wrong.internal.resize(kInt + 1, 4);
    CHECK_THROWS_WITH(sac.bc_gradients(wrong, 1.0, persist::nn::GradMode::overwrite),
                      Catch::Contains("demonstration batch.internal"));
    CHECK_THROWS_AS(sac.update(random_batch<double>(kObs, kInt, low_d(), high_d(), 4, rng), demo, -1.0),
                    persist::ConfigError);
    SACOptions o;
    o.bc_squeeze = 0.0;
    CHECK_THROWS_WITH((SAC<double>(kObs, kInt, low_d(), high_d(), o)), Catch::Contains("SACOptions.bc_squeeze"));
}

TEST_CASE("SAC update with demonstrations = critics, actor + weight * BC, alpha, targets", "[agents][sac][bc]") {
    SAC<double> a = small_agent(5), b = small_agent(5), c = small_agent(5);
    Rng rng(42);
    const auto batch = random_batch<double>(kObs, kInt, low_d(), high_d(), 6, rng);
    const auto demo = random_demos<double>(5, rng, low_d(), high_d());
    const double w = 2.5;
    const auto st = a.update(batch, demo, w);

    Rng noise(5, 0x5AC);
    Mat<double> eps_next(kAct, 6), eps(kAct, 6);
    for (Index k = 0; k < eps_next.size(); ++k) eps_next.data()[k] = noise.normal<double>();
    for (Index k = 0; k < eps.size(); ++k) eps.data()[k] = noise.normal<double>();
    b.critic_gradients(batch, eps_next);
    b.q1_optimizer().step(b.q1().params(), b.q1().grads());
    b.q2_optimizer().step(b.q2().params(), b.q2().grads());
    b.actor_gradients(batch, eps);
    const double bc = b.bc_gradients(demo, w, persist::nn::GradMode::accumulate);
    b.actor_optimizer().step(b.actor().params(), b.actor().grads());
    CHECK(bitwise_equal(a.actor().params(), b.actor().params()));
    CHECK(bitwise_equal(a.q1().params(), b.q1().params()));
    CHECK(st.bc_loss == Approx(bc).epsilon(1e-14));
    // The BC term changes the actor (and only the actor's step) compared with plain SAC.
    c.update(batch);
    CHECK(!bitwise_equal(a.actor().params(), c.actor().params()));
    CHECK(bitwise_equal(a.q1().params(), c.q1().params()));
    CHECK(c.update(batch).bc_loss == 0.0);
}

TEST_CASE("SAC with kept demonstrations: draws from the noise stream, deterministic, resumes exactly",
          "[agents][sac][bc][checkpoint]") {
    const Vec<float> lo = low_d().cast<float>(), hi = high_d().cast<float>();
    SACOptions o;
    o.hidden = {16, 16};
    o.seed = 9;
    Rng dr(3);
    const auto demos = random_demos<float>(40, dr, low_d(), high_d());
    SAC<float> a(kObs, kInt, lo, hi, o), b(kObs, kInt, lo, hi, o), plain(kObs, kInt, lo, hi, o);
    a.set_demonstrations(demos, 1.0f, 8);
    b.set_demonstrations(demos, 1.0f, 8);
    CHECK(a.bc_weight() == 1.0f);
    CHECK(a.demonstrations().size() == 40);
    Rng data(99);
    for (int k = 0; k < 10; ++k) {
        const auto batch = random_batch<float>(kObs, kInt, lo, hi, 16, data);
        CHECK(a.update(batch).bc_loss != 0.0f);  // the BC term was applied
        b.update(batch);
        plain.update(batch);
    }
    CHECK(same_params(a, b));
    CHECK(!bitwise_equal(a.actor().params(), plain.actor().params()));

    // Save after 10, continue 5 == restore into a fresh agent (demonstrations set again) + 5.
    const auto path = std::filesystem::temp_directory_path() /
                      ("persist_sac_bc_" + std::to_string(::getpid()) + ".ckpt");
    persist::io::save_checkpoint(path, a);
    SAC<float> r(kObs, kInt, lo, hi, o);
    r.set_demonstrations(demos, 1.0f, 8);
    persist::io::load_checkpoint(path, r);
    std::filesystem::remove(path);
    Rng d1(7), d2(7);
    for (int k = 0; k < 5; ++k) {
        a.update(random_batch<float>(kObs, kInt, lo, hi, 16, d1));
        r.update(random_batch<float>(kObs, kInt, lo, hi, 16, d2));
    }
    CHECK(same_params(a, r));

    // Weight 0 or no demonstrations: plain SAC; errors name what is wrong.
    SAC<float> z(kObs, kInt, lo, hi, o), p2(kObs, kInt, lo, hi, o);
    z.set_demonstrations(demos, 0.0f, 8);
    Rng d3(1), d4(1);
    for (int k = 0; k < 3; ++k) {
        z.update(random_batch<float>(kObs, kInt, lo, hi, 16, d3));
        p2.update(random_batch<float>(kObs, kInt, lo, hi, 16, d4));
    }
    CHECK(same_params(z, p2));
    CHECK_THROWS_WITH(z.set_demonstrations(demos, 1.0f, 0), Catch::Contains("bc_batch = 0"));
    CHECK_THROWS_WITH(z.set_bc_weight(-1.0f), Catch::Contains("expected finite and >= 0"));
    auto bad = demos;
    bad.action(1, 7) = 9.0f;
    CHECK_THROWS_WITH(z.set_demonstrations(bad, 1.0f, 8), Catch::Contains("demonstration action 7 entry 1 = 9.0"));
}

TEST_CASE("SAC behaviour cloning imitates an expert (3 seeds)", "[agents][sac][bc][learning]") {
    // Expert: a = box(tanh(K s)) for a fixed K; 2000 demonstration steps; 1500 BC steps of 64.
    // The deterministic policy must reproduce the expert on held-out states.
    const Vec<float> lo = low_d().cast<float>(), hi = high_d().cast<float>();
    const Vec<float> scale = (hi - lo) / 2.0f, bias = (hi + lo) / 2.0f;
    Rng kr(123);
    Mat<float> K(kAct, kObs + kInt);
    for (Index k = 0; k < K.size(); ++k) K.data()[k] = kr.uniform<float>(-1.0f, 1.0f);
    auto expert = [&](const Vec<float>& s) {
        Vec<float> a = (K * s).array().tanh().matrix();
        return Vec<float>(scale.cwiseProduct(a) + bias);
    };
    auto make = [&](Index n, Rng& rng) {
        DemoBatch<float> d;
        d.observation.resize(kObs, n);
        d.internal.resize(kInt, n);
        d.action.resize(kAct, n);
        for (Index j = 0; j < n; ++j) {
            Vec<float> s(kObs + kInt);
            for (Index i = 0; i < s.size(); ++i) s(i) = rng.uniform<float>(-1.0f, 1.0f);
            d.observation.col(j) = s.head(kObs);
            d.internal.col(j) = s.tail(kInt);
            d.action.col(j) = expert(s);
        }
        return d;
    };
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        SACOptions o;
        o.hidden = {64, 64};
        o.seed = seed;
        o.actor_lr = 1e-3;
        SAC<float> sac(kObs, kInt, lo, hi, o);
        Rng rng(seed + 50);
        const auto demos = make(2000, rng);
        const auto test = make(200, rng);
        auto err = [&] {  // mean |a - a_expert| / half-width over held-out states
            double e = 0;
            Vec<float> s(kObs + kInt), a(kAct);
            for (Index j = 0; j < test.size(); ++j) {
                s << test.observation.col(j), test.internal.col(j);
                sac.act_deterministic(s, a);
                e += ((a - test.action.col(j)).cwiseQuotient(scale)).cwiseAbs().mean();
            }
            return e / double(test.size());
        };
        const double before = err();
        DemoBatch<float> b;
        b.observation.resize(kObs, 64);
        b.internal.resize(kInt, 64);
        b.action.resize(kAct, 64);
        float first = 0, last = 0;
        for (int k = 0; k < 1500; ++k) {
            for (Index j = 0; j < 64; ++j) {
                const Index i = static_cast<Index>(rng.next_u64() % 2000u);
                b.observation.col(j) = demos.observation.col(i);
                b.internal.col(j) = demos.internal.col(i);
                b.action.col(j) = demos.action.col(i);
            }
            const float l = sac.behavior_clone(b);
            if (k == 0) first = l;
            last = l;
        }
        const double after = err();
        INFO("seed " << seed << ": error " << before << " -> " << after << ", -log pi " << first << " -> " << last);
        CHECK(before > 0.2);
        CHECK(after < 0.05);
        CHECK(last < first - 3.0f);
        CHECK(sac.updates() == 0);  // BC alone leaves the SAC update counter (and critics) alone
    }
}
