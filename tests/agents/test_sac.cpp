// SAC (agents/sac.hpp): the hand-written gradients of all three losses against central finite
// differences (double), the TD target's bootstrapping rules, Polyak averaging, determinism,
// exact checkpoint resume, the Policy concept and input validation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "agents/sac_fixtures.hpp"
#include "nn/gradcheck.hpp"
#include "persist/agents/sac.hpp"
#include "persist/env/pendulum.hpp"
#include "persist/io/checkpoint.hpp"
#include "persist/optim/adam.hpp"

using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::TransitionBatch;
using persist::Vec;
using persist::agents::DemoBatch;
using persist::agents::SAC;
using persist::agents::SACOptions;
using namespace sactest;

// --- The concept wall -------------------------------------------------------------------------
static_assert(persist::Policy<SAC<float>>);
static_assert(persist::Policy<SAC<double>>);
static_assert(persist::Policy<SAC<float, persist::nn::MLP<float, persist::nn::Tanh>,
                                  persist::optim::AdamW<float>>>);
static_assert(persist::Stateful<SAC<float>>);
static_assert(std::same_as<persist::scalar_of<SAC<double>>, double>);
static_assert(persist::agents::detail::SACNetwork<persist::nn::MLP<float>>);
static_assert(!persist::agents::detail::SACNetwork<persist::nn::Linear<float>>);  // a layer, not a network
static_assert(persist::agents::detail::SACOptimizer<persist::optim::Adam<double>, double>);
static_assert(!persist::agents::detail::SACOptimizer<persist::nn::MLP<double>, double>);

namespace {

constexpr Index kB = 6;

SAC<double> small_agent(std::uint64_t seed = 3) { return sactest::small_agent<SAC<double>>(seed); }

Mat<double> normal_mat(Index r, Index c, Rng& rng) {
    Mat<double> m(r, c);
    for (Index k = 0; k < m.size(); ++k) m.data()[k] = rng.normal<double>();
    return m;
}

std::filesystem::path temp_file(const std::string& name) {
    static std::atomic<int> counter{0};
    return std::filesystem::temp_directory_path() /
           ("persist_sac_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + name);
}

}  // namespace

TEST_CASE("SAC actor gradient equals d(actor loss)/d(actor params)", "[agents][sac][gradcheck]") {
    SAC<double> sac = small_agent();
    Rng rng(11);
    const auto batch = random_batch<double>(kObs, kInt, low_d(), high_d(), kB, rng);
    const Mat<double> eps = normal_mat(kAct, kB, rng);

    const Vec<double> q1_before = sac.q1().grads(), q2_before = sac.q2().grads();
    sac.actor_gradients(batch, eps);
    const Vec<double> analytic = sac.actor().grads();
    // backward(param_grads = false) through the critics leaves their gradients alone.
    CHECK(bitwise_equal(sac.q1().grads(), q1_before));
    CHECK(bitwise_equal(sac.q2().grads(), q2_before));
    REQUIRE(analytic.norm() > 1e-3);

    const Mat<double> numeric = nntest::numgrad(sac.actor().params(), [&] { return sac.actor_gradients(batch, eps); });
    CHECK(nntest::rel_err(analytic, numeric) < nntest::kFdTol);
}

TEST_CASE("SAC critic gradients equal d(critic loss)/d(critic params)", "[agents][sac][gradcheck]") {
    SAC<double> sac = small_agent();
    Rng rng(12);
    const auto batch = random_batch<double>(kObs, kInt, low_d(), high_d(), kB, rng);
    const Mat<double> eps_next = normal_mat(kAct, kB, rng);

    sac.critic_gradients(batch, eps_next);
    const Vec<double> g1 = sac.q1().grads(), g2 = sac.q2().grads();
    REQUIRE(g1.norm() > 1e-3);
    REQUIRE(g2.norm() > 1e-3);
    auto loss = [&] { return sac.critic_gradients(batch, eps_next); };
    CHECK(nntest::rel_err(g1, nntest::numgrad(sac.q1().params(), loss)) < nntest::kFdTol);
    CHECK(nntest::rel_err(g2, nntest::numgrad(sac.q2().params(), loss)) < nntest::kFdTol);
    // critic_gradients uses exactly td_target's y (a constant of the critic loss).
    const Vec<double> y = sac.td_target(batch, eps_next).row(0).transpose();
    sac.critic_gradients(batch, eps_next);
    CHECK(bitwise_equal(Vec<double>(sac.workspace().y.row(0).transpose()), y));
}

TEST_CASE("SAC alpha gradient equals d(alpha loss)/d(log alpha)", "[agents][sac][gradcheck]") {
    SAC<double> sac = small_agent();
    Rng rng(13);
    const auto batch = random_batch<double>(kObs, kInt, low_d(), high_d(), kB, rng);
    const Mat<double> eps = normal_mat(kAct, kB, rng);
    sac.actor_gradients(batch, eps);
    const double loss = sac.alpha_gradient();
    const double g = sac.alpha_grad()(0);
    const double logp_mean = sac.workspace().logp.mean();
    CHECK(g == Approx(-(logp_mean + sac.target_entropy())).epsilon(1e-12));
    CHECK(loss == Approx(-sac.log_alpha() * (logp_mean + sac.target_entropy())).epsilon(1e-12));
    CHECK(sac.target_entropy() == -static_cast<double>(kAct));

    const double la = sac.log_alpha(), h = 1e-6;
    sac.set_alpha(std::exp(la + h));
    const double fp = sac.alpha_gradient();
    sac.set_alpha(std::exp(la - h));
    const double fm = sac.alpha_gradient();
    CHECK((fp - fm) / (2 * h) == Approx(g).epsilon(1e-6));
}

TEST_CASE("SAC actor gradient check also holds with LayerNorm critics and a fixed alpha",
          "[agents][sac][gradcheck]") {
    SACOptions o;
    o.hidden = {9, 7};
    o.critic_mlp = {.layer_norm = true};
    o.init_alpha = 0.05;
    o.autotune_alpha = false;
    o.target_entropy = -0.5;
    SAC<double> sac(kObs, 0, low_d(), high_d(), o);
    Rng rng(14);
    const auto batch = random_batch<double>(kObs, 0, low_d(), high_d(), kB, rng);
    const Mat<double> eps = normal_mat(kAct, kB, rng);
    sac.actor_gradients(batch, eps);
    const Vec<double> analytic = sac.actor().grads();
    const Mat<double> numeric = nntest::numgrad(sac.actor().params(), [&] { return sac.actor_gradients(batch, eps); });
    CHECK(nntest::rel_err(analytic, numeric) < nntest::kFdTol);
    sac.critic_gradients(batch, eps);
    const Vec<double> g1 = sac.q1().grads();
    CHECK(nntest::rel_err(g1, nntest::numgrad(sac.q1().params(), [&] { return sac.critic_gradients(batch, eps); })) <
          nntest::kFdTol);
    CHECK(sac.target_entropy() == -0.5);
    // A fixed alpha stays fixed through update().
    sac.update(batch);
    CHECK(sac.alpha() == Approx(0.05).epsilon(1e-15));
}

TEST_CASE("SAC TD target: no bootstrap when terminated, bootstrap when truncated", "[agents][sac]") {
    SAC<double> sac = small_agent();
    Rng rng(21);
    auto batch = random_batch<double>(kObs, kInt, low_d(), high_d(), 4, rng);
    // (terminated, truncated) = (1, 0), (0, 1), (0, 0), (1, 1)
    batch.terminated << 1, 0, 0, 1;
    batch.truncated << 0, 1, 0, 1;
    const Mat<double> eps_next = normal_mat(kAct, 4, rng);
    const Mat<double> y = sac.td_target(batch, eps_next);

    // Independent computation of the bootstrap value min_i Qbar_i(s', a') - alpha log pi(a'|s').
    Mat<double> s_next(kObs + kInt, 4);
    s_next << batch.next_observation, batch.next_internal;
    auto aws = sac.actor().make_workspace();
    persist::nn::TanhGaussian<double>::Workspace hws;
    sac.head().sample(sac.actor().forward(s_next, aws), eps_next, hws);
    Mat<double> sa(kObs + kInt + kAct, 4);
    sa << s_next, hws.action;
    auto w1 = sac.q1_target().make_workspace(), w2 = sac.q2_target().make_workspace();
    const Mat<double> qt1 = sac.q1_target().forward(sa, w1), qt2 = sac.q2_target().forward(sa, w2);
    for (Index j = 0; j < 4; ++j) {
        const double v = std::min(qt1(0, j), qt2(0, j)) - sac.alpha() * hws.log_prob(0, j);
        const double expected = batch.terminated(0, j) != 0 ? batch.reward(0, j)
                                                            : batch.reward(0, j) + 0.99 * v;
        INFO("column " << j);
        CHECK(y(0, j) == Approx(expected).epsilon(1e-13));
    }
    CHECK(y(0, 0) == batch.reward(0, 0));  // terminated: exactly r
    CHECK(y(0, 3) == batch.reward(0, 3));  // terminated and truncated: terminated wins
    CHECK(y(0, 1) != batch.reward(0, 1));  // truncated only: bootstraps
    // gamma = 0 removes the bootstrap everywhere.
    SACOptions o;
    o.hidden = {8};
    o.gamma = 0;
    SAC<double> myopic(kObs, kInt, low_d(), high_d(), o);
    const Mat<double> y0 = myopic.td_target(batch, eps_next);
    CHECK(bitwise_equal(y0, batch.reward));
}

TEST_CASE("SAC Polyak averaging of the target critics on the flat vectors", "[agents][sac]") {
    SACOptions o;
    o.hidden = {8, 8};
    o.tau = 0.125;
    SAC<double> sac(kObs, kInt, low_d(), high_d(), o);
    Rng rng(31);
    for (auto* net : {&sac.q1(), &sac.q2(), &sac.q1_target(), &sac.q2_target()})
        for (Index k = 0; k < net->params().size(); ++k) net->params()(k) = rng.uniform<double>(-1, 1);
    const Vec<double> t1 = sac.q1_target().params(), t2 = sac.q2_target().params();
    const Vec<double> p1 = sac.q1().params(), p2 = sac.q2().params();
    sac.soft_update_targets();
    for (Index k = 0; k < t1.size(); ++k) {
        CHECK(sac.q1_target().params()(k) == Approx(0.875 * t1(k) + 0.125 * p1(k)).epsilon(1e-15));
        CHECK(sac.q2_target().params()(k) == Approx(0.875 * t2(k) + 0.125 * p2(k)).epsilon(1e-15));
    }
    CHECK(bitwise_equal(sac.q1().params(), p1));  // the online critics are not touched

    // Targets start as copies; target_update_interval = 2 averages every second update.
    o.tau = 0.5;
    o.target_update_interval = 2;
    SAC<double> slow(kObs, kInt, low_d(), high_d(), o);
    CHECK(bitwise_equal(slow.q1_target().params(), slow.q1().params()));
    CHECK(bitwise_equal(slow.q2_target().params(), slow.q2().params()));
    const auto batch = random_batch<double>(kObs, kInt, low_d(), high_d(), 5, rng);
    const Vec<double> before = slow.q1_target().params();
    slow.update(batch);
    CHECK(bitwise_equal(slow.q1_target().params(), before));
    const Vec<double> online = slow.q1().params();
    slow.update(batch);
    const Vec<double> expected = 0.5 * before + 0.5 * slow.q1().params();
    CHECK(nntest::rel_err(slow.q1_target().params(), expected) < 1e-15);
    CHECK(!bitwise_equal(online, slow.q1().params()));
}

TEST_CASE("SAC update order is critics, actor, alpha, targets and its stats describe the batch", "[agents][sac]") {
    // Reproduce one update() from its public pieces with the same noise.
    SAC<double> a = small_agent(5), b = small_agent(5);
    Rng rng(41);
    const auto batch = random_batch<double>(kObs, kInt, low_d(), high_d(), kB, rng);
    const auto st = a.update(batch);

    Rng noise(5, 0x5AC);  // the agent's noise stream: (seed, stream 0x5AC), a' first, then a~
    Mat<double> eps_next(kAct, kB), eps(kAct, kB);
    for (Index k = 0; k < eps_next.size(); ++k) eps_next.data()[k] = noise.normal<double>();
    for (Index k = 0; k < eps.size(); ++k) eps.data()[k] = noise.normal<double>();
    const double alpha0 = b.alpha();
    const double q_loss = b.critic_gradients(batch, eps_next);
    b.q1_optimizer().step(b.q1().params(), b.q1().grads());
    b.q2_optimizer().step(b.q2().params(), b.q2().grads());
    const double actor_loss = b.actor_gradients(batch, eps);
    b.actor_optimizer().step(b.actor().params(), b.actor().grads());
    const double entropy = -b.workspace().logp.mean();
    const double alpha_loss = b.alpha_gradient();
    Vec<double> la = Vec<double>::Constant(1, b.log_alpha());
    b.alpha_optimizer().step(la, b.alpha_grad());
    b.set_alpha(std::exp(la(0)));
    b.soft_update_targets();

    CHECK(bitwise_equal(a.actor().params(), b.actor().params()));
    CHECK(bitwise_equal(a.q1().params(), b.q1().params()));
    CHECK(bitwise_equal(a.q2_target().params(), b.q2_target().params()));
    CHECK(a.log_alpha() == Approx(la(0)).epsilon(1e-14));
    CHECK(st.alpha == alpha0);
    CHECK(st.q_loss == Approx(q_loss).epsilon(1e-14));
    CHECK(st.actor_loss == Approx(actor_loss).epsilon(1e-14));
    CHECK(st.alpha_loss == Approx(alpha_loss).epsilon(1e-14));
    CHECK(st.entropy == Approx(entropy).epsilon(1e-12));
    CHECK(std::isfinite(st.q_mean));
    CHECK(a.updates() == 1);
}

TEST_CASE("SAC is deterministic: same seed, same batches -> bitwise identical parameters",
          "[agents][sac]") {
    const Vec<float> lo = low_d().cast<float>(), hi = high_d().cast<float>();
    SACOptions o;
    o.hidden = {32, 32};
    o.seed = 7;
    SAC<float> a(kObs, kInt, lo, hi, o), b(kObs, kInt, lo, hi, o);
    o.seed = 8;
    SAC<float> c(kObs, kInt, lo, hi, o);
    Rng data(99);
    for (int k = 0; k < 25; ++k) {
        const auto batch = random_batch<float>(kObs, kInt, lo, hi, 16, data);
        a.update(batch);
        b.update(batch);
        c.update(batch);
    }
    CHECK(same_params(a, b));
    CHECK(!bitwise_equal(a.actor().params(), c.actor().params()));
    // Acting is a pure function of (parameters, state, caller's rng).
    Vec<float> s = Vec<float>::LinSpaced(kObs + kInt, -1, 1), x(kAct), y(kAct);
    Rng r1(5), r2(5);
    a.act(s, x, r1);
    b.act(s, y, r2);
    CHECK(bitwise_equal(x, y));
}

TEST_CASE("SAC with threads = 2 (twin critics on two threads) is bitwise the same as threads = 1",
          "[agents][sac]") {
    const Vec<float> lo = low_d().cast<float>(), hi = high_d().cast<float>();
    SACOptions o;
    o.hidden = {48, 40};
    o.seed = 11;
    o.init_alpha = 0.4;
    SAC<float> one(kObs, kInt, lo, hi, o);
    o.threads = 2;
    SAC<float> two(kObs, kInt, lo, hi, o);
    o.threads = 3;  // more than two are accepted and not used
    SAC<float> three(kObs, kInt, lo, hi, o);
    Rng data(123);
    // Kept demonstrations too: the BC draw and term run between the parallel parts.
    DemoBatch<float> demos;
    const auto d = random_batch<float>(kObs, kInt, lo, hi, 30, data);
    demos.observation = d.observation;
    demos.internal = d.internal;
    demos.action = d.action;
    for (auto* s : {&one, &two, &three}) s->set_demonstrations(demos, 0.5f, 8);
    for (int k = 0; k < 30; ++k) {
        const auto batch = random_batch<float>(kObs, kInt, lo, hi, 37, data);
        const auto s1 = one.update(batch), s2 = two.update(batch), s3 = three.update(batch);
        CHECK(std::memcmp(&s1, &s2, sizeof s1) == 0);
        CHECK(std::memcmp(&s1, &s3, sizeof s1) == 0);
    }
    CHECK(same_params(one, two));
    CHECK(same_params(one, three));
    // The public pieces give the same values in both modes too.
    const auto batch = random_batch<float>(kObs, kInt, lo, hi, 19, data);
    Mat<float> eps = Mat<float>::Constant(kAct, 19, 0.3f);
    CHECK(one.critic_gradients(batch, eps) == two.critic_gradients(batch, eps));
    CHECK(bitwise_equal(one.q2().grads(), two.q2().grads()));
    CHECK(one.actor_gradients(batch, eps) == two.actor_gradients(batch, eps));
    CHECK(bitwise_equal(one.actor().grads(), two.actor().grads()));
    CHECK_THROWS_WITH(SAC<float>(kObs, kInt, lo, hi, SACOptions{.threads = 0}),
                      Catch::Contains("SACOptions.threads") && Catch::Contains(">= 1"));
}

TEST_CASE("SAC checkpoint: train N, save, continue M == restore into a fresh agent + M",
          "[agents][sac][checkpoint]") {
    const Vec<float> lo = low_d().cast<float>(), hi = high_d().cast<float>();
    SACOptions o;
    o.hidden = {24, 24};
    o.seed = 1;
    SAC<float> a(kObs, kInt, lo, hi, o);
    o.seed = 2;  // a different seed: the checkpoint must carry the noise stream's seed
    o.critic_lr = 3e-4;
    SAC<float> b(kObs, kInt, lo, hi, o);
    Rng data(123);
    for (int k = 0; k < 7; ++k) a.update(random_batch<float>(kObs, kInt, lo, hi, 16, data));
    const auto path = temp_file("resume.ckpt");
    persist::io::save_checkpoint(path, a, {{"env_steps", 7}});
    const std::uint64_t data_pos = data.position();

    for (int k = 0; k < 9; ++k) a.update(random_batch<float>(kObs, kInt, lo, hi, 16, data));

    const auto meta = persist::io::load_checkpoint(path, b);
    CHECK(meta.at("env_steps") == 7);
    CHECK(b.updates() == 7);
    data.set_position(data_pos);
    for (int k = 0; k < 9; ++k) b.update(random_batch<float>(kObs, kInt, lo, hi, 16, data));
    CHECK(same_params(a, b));
    CHECK(bitwise_equal(a.actor_optimizer().state().m, b.actor_optimizer().state().m));
    CHECK(bitwise_equal(a.q2_optimizer().state().v, b.q2_optimizer().state().v));
    CHECK(a.alpha_optimizer().state().step == b.alpha_optimizer().state().step);

    // The state names a checkpoint holds (stable: files written today must load tomorrow).
    const auto info = persist::io::inspect_checkpoint(path);
    for (const char* name : {"actor.params", "q1.params", "q2.params", "q1_target.params",
                             "q2_target.params", "actor_opt.m", "actor_opt.step", "q1_opt.v",
                             "q2_opt.m", "alpha_opt.m", "log_alpha", "updates", "rng_seed",
                             "rng_position"}) {
        INFO(name);
        CHECK(info.find(name) != nullptr);
    }
    std::filesystem::remove(path);

    // A checkpoint of a differently shaped agent is refused and leaves the agent unchanged.
    SACOptions wide;
    wide.hidden = {32, 24};
    SAC<float> other(kObs, kInt, lo, hi, wide);
    const auto path2 = temp_file("other.ckpt");
    persist::io::save_checkpoint(path2, other);
    const Vec<float> before = b.actor().params();
    CHECK_THROWS_AS(persist::io::load_checkpoint(path2, b), persist::CheckpointError);
    CHECK(bitwise_equal(before, b.actor().params()));
    std::filesystem::remove(path2);
}

TEST_CASE("SAC acting maps tanh outputs onto the action box", "[agents][sac]") {
    persist::env::Pendulum<double> env;
    SACOptions o;
    o.hidden = {16};
    SAC<float> sac(env, o);  // built from the environment (double box converted to float)
    CHECK(sac.state_dim() == 3);
    CHECK(sac.action_dim() == 1);
    CHECK(sac.action_scale()(0) == 2.0f);
    CHECK(sac.action_bias()(0) == 0.0f);
    CHECK(sac.target_entropy() == -1.0f);

    SAC<double> box = small_agent();
    Rng rng(51);
    Vec<double> s(kObs + kInt), a(kAct), d(kAct);
    for (int k = 0; k < 200; ++k) {
        for (Index i = 0; i < s.size(); ++i) s(i) = rng.uniform<double>(-3, 3);
        box.act(s, a, rng);
        CHECK(a(0) >= -2.0);
        CHECK(a(0) <= 2.0);
        CHECK(a(1) >= -1.0);
        CHECK(a(1) <= 3.0);
    }
    box.act_deterministic(s, d);
    auto ws = box.actor().make_workspace();
    const Mat<double> out = box.actor().forward(s, ws);
    CHECK(d(0) == Approx(2.0 * std::tanh(out(0, 0))).epsilon(1e-14));
    CHECK(d(1) == Approx(2.0 * std::tanh(out(1, 0)) + 1.0).epsilon(1e-14));
}

TEST_CASE("SAC rejects bad options and shapes with messages naming them", "[agents][sac]") {
    const Vec<double> lo = low_d(), hi = high_d();
    auto make = [&](SACOptions o) { return SAC<double>(kObs, kInt, lo, hi, o); };
    CHECK_THROWS_WITH(make({.gamma = 1.5}), Catch::Contains("SACOptions.gamma") && Catch::Contains("[0, 1]"));
    CHECK_THROWS_WITH(make({.tau = -0.1}), Catch::Contains("SACOptions.tau"));
    CHECK_THROWS_WITH(make({.init_alpha = 0}), Catch::Contains("SACOptions.init_alpha"));
    CHECK_THROWS_WITH(make({.actor_lr = -1}), Catch::Contains("SACOptions.actor_lr"));
    CHECK_THROWS_WITH(make({.hidden = {}}), Catch::Contains("SACOptions.hidden"));
    CHECK_THROWS_WITH(make({.hidden = {8, 0}}), Catch::Contains("SACOptions.hidden"));
    CHECK_THROWS_WITH(make({.target_entropy = std::nan("")}), Catch::Contains("target_entropy"));
    CHECK_THROWS_WITH(make({.target_update_interval = 0}), Catch::Contains("target_update_interval"));
    CHECK_THROWS_AS(SAC<double>(kObs, kInt, hi, lo), persist::ConfigError);  // low > high
    CHECK_THROWS_AS(SAC<double>(0, 0, lo, hi), persist::ConfigError);

    SAC<double> sac = small_agent();
    Rng rng(61);
    auto batch = random_batch<double>(kObs, kInt, lo, hi, 4, rng);
    batch.next_observation.resize(kObs + 1, 4);
    CHECK_THROWS_WITH(sac.update(batch), Catch::Contains("batch.next_observation") &&
                                             Catch::Contains("expected 3 x 4, got 4 x 4"));
    Vec<double> s(kObs), a(kAct);
    CHECK_THROWS_AS(sac.act(s, a, rng), persist::ShapeError);
    CHECK_THROWS_AS(sac.set_alpha(-1.0), persist::ConfigError);
}

#if PERSIST_SAC_HAS_MXCSR
TEST_CASE("SAC flushes subnormals inside act/update only and restores the caller's FP mode",
          "[agents][sac]") {
    // Control bits only: the low 6 bits are sticky exception flags.
    const auto control = [] { return _mm_getcsr() & ~0x3Fu; };
    const unsigned caller = control();
    REQUIRE((caller & 0x8040u) == 0u);  // the test process runs without FTZ/DAZ
    SACOptions o;
    o.hidden = {8};
    SAC<float> on(3, 0, Vec<float>::Constant(1, -1), Vec<float>::Constant(1, 1), o);
    Rng rng(71);
    const auto batch = random_batch<float>(3, 0, Vec<float>::Constant(1, -1), Vec<float>::Constant(1, 1), 4, rng);
    on.update(batch);
    CHECK(control() == caller);
    // A subnormal input is read as 0 with flushing (DAZ), and as itself without.
    Vec<float> s0 = Vec<float>::Zero(3), s1 = s0, a0(1), a1(1);
    s1(0) = 1e-40f;
    REQUIRE(std::fpclassify(s1(0)) == FP_SUBNORMAL);
    on.act_deterministic(s0, a0);
    on.act_deterministic(s1, a1);
    CHECK(control() == caller);
    CHECK(bitwise_equal(a0, a1));
    o.flush_denormals = false;
    SAC<float> off(3, 0, Vec<float>::Constant(1, -1), Vec<float>::Constant(1, 1), o);
    off.update(batch);
    CHECK(control() == caller);
}
#endif
