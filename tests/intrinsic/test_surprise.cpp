// Surprise: NLL against the closed form, learning (familiar vs novel), setpoint prior,
// normalisation, determinism, state round trip, errors.
#include "intrinsic/intrinsic_test.hpp"

#include <cmath>
#include <filesystem>

#include "persist/io/checkpoint.hpp"
#include "persist/nn/losses.hpp"

using namespace intrtest;
using persist::intrinsic::Reduction;
using persist::intrinsic::Surprise;
using persist::intrinsic::SurpriseNorm;
using persist::intrinsic::SurpriseOptions;

namespace {

constexpr double kHalfLog2Pi = 0.91893853320467274178;  // log(2 pi) / 2

SurpriseOptions small_options() {
    SurpriseOptions o;
    o.obs_dim = 2;
    o.internal_dim = 1;
    o.action_dim = 1;
    o.hidden = {4};
    return o;
}

/// Zero every weight and set the output bias: the model outputs [m; r] for every input.
template <class S>
void set_constant_output(S& sur, const Vec<double>& bias) {
    sur.model().params().setZero();
    auto& last = sur.model().linear(sur.model().num_linear() - 1);
    for (Index i = 0; i < bias.size(); ++i) last.bias()(i) = static_cast<typename S::scalar_type>(bias(i));
}

/// Transitions of o' = o + 0.1 [a; -a] (deterministic), B columns.
template <class T>
TransitionBatch<T> dynamics_batch(Rng& rng, Index B) {
    auto b = random_batch<T>(rng, 2, 1, 1, B);
    for (Index j = 0; j < B; ++j) {
        b.next_observation(0, j) = b.observation(0, j) + T(0.1) * b.action(0, j);
        b.next_observation(1, j) = b.observation(1, j) - T(0.1) * b.action(0, j);
    }
    return b;
}

}  // namespace

TEMPLATE_TEST_CASE("Surprise NLL matches the closed-form Gaussian NLL", "[intrinsic][surprise]", float, double) {
    using T = TestType;
    const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
    Vec<double> bias(4);
    bias << 0.3, -0.2, 0.5, -1.0;  // mean (2), raw log_std (2)
    Mat<T> s(3, 2), a(1, 2), o_next(2, 2);
    s << 0.1, -0.4, 0.7, 0.2, 0.5, 0.9;  // rows: o_1, o_2, x
    a << 0.3, -0.6;
    o_next << 0.6, -0.1, 0.2, 1.1;

    auto expected = [&](bool delta, bool bounded, Index j) {
        double nll = 0;
        for (Index i = 0; i < 2; ++i) {
            const double r = bias(2 + i);
            const double ls = bounded ? -5.0 + 0.5 * (2.0 - -5.0) * (std::tanh(r) + 1.0) : r;
            const double y = static_cast<double>(o_next(i, j)) - (delta ? static_cast<double>(s(i, j)) : 0.0);
            const double z = (y - bias(i)) / std::exp(ls);
            nll += 0.5 * z * z + ls + kHalfLog2Pi;
        }
        return nll;
    };

    for (const bool delta : {true, false})
        for (const bool bounded : {true, false})
            for (const Reduction red : {Reduction::sum, Reduction::mean}) {
                auto o = small_options();
                o.predict_delta = delta;
                o.bound_log_std = bounded;
                o.reduction = red;
                Surprise<T> sur(o);
                set_constant_output(sur, bias);
                Vec<T> nll(2), r(2);
                sur.nll(s, a, o_next, nll);
                sur.reward(s, a, o_next, r);
                const double k = red == Reduction::mean ? 0.5 : 1.0;
                for (Index j = 0; j < 2; ++j) {
                    const double e = k * expected(delta, bounded, j);
                    CHECK(static_cast<double>(nll(j)) == Approx(e).epsilon(tol).margin(tol));
                    CHECK(r(j) == -nll(j));
                }
            }
}

TEST_CASE("Surprise update loss is the batch mean of nn::GaussianNLL", "[intrinsic][surprise]") {
    auto o = small_options();
    o.bound_log_std = false;  // then the head's log_std is the raw output, as GaussianNLL takes it
    Surprise<double> sur(o);
    Rng rng(5);
    const auto batch = random_batch<double>(rng, 2, 1, 1, 8);
    Mat<double> in(4, 8);
    in << batch.observation, batch.internal, batch.action;
    auto ws = sur.model().make_workspace();
    const Mat<double> pred = sur.model().forward(in, ws);
    const Mat<double> y = batch.next_observation - batch.observation;
    const double ref = persist::nn::GaussianNLL<double>{}.value(pred, y);
    const auto st = sur.update(batch);
    CHECK(st.samples == 8);
    CHECK(st.loss == Approx(ref).epsilon(1e-12));
    // The step changed the model and lowered the loss on the same batch.
    const Mat<double> pred2 = sur.model().forward(in, ws);
    CHECK(persist::nn::GaussianNLL<double>{}.value(pred2, y) < ref);
}

TEMPLATE_TEST_CASE("Surprise drops on familiar transitions and stays high on novel ones", "[intrinsic][surprise]",
                   float, double) {
    using T = TestType;
    auto o = small_options();
    o.hidden = {32, 32};
    o.lr = 3e-3;
    o.seed = 11;
    Surprise<T> sur(o);
    Rng rng(17);
    const auto batch = dynamics_batch<T>(rng, 32);
    const Mat<T> s = states(batch);
    // A transition never seen: far from the training inputs, with a jump the dynamics never make.
    Mat<T> s_new(3, 1), a_new(1, 1), o_new(2, 1);
    s_new << T(3), T(-3), T(0.5);
    a_new << T(0.5);
    o_new << T(5), T(-1);

    Vec<T> before(32), after(32), r_before(32), r_after(32), novel(1), r_novel(1);
    sur.nll(s, batch.action, batch.next_observation, before);
    sur.reward(s, batch.action, batch.next_observation, r_before);
    double first_loss = 0, last_loss = 0;
    for (int it = 0; it < 600; ++it) {
        const auto st = sur.update(batch);
        if (it == 0) first_loss = static_cast<double>(st.loss);
        last_loss = static_cast<double>(st.loss);
    }
    sur.nll(s, batch.action, batch.next_observation, after);
    sur.reward(s, batch.action, batch.next_observation, r_after);
    sur.nll(s_new, a_new, o_new, novel);
    sur.reward(s_new, a_new, o_new, r_novel);
    INFO("loss " << first_loss << " -> " << last_loss << ", familiar nll " << before.mean() << " -> "
                 << after.mean() << ", novel nll " << novel(0));
    CHECK(last_loss < first_loss - 4.0);
    CHECK(after.mean() < before.mean() - 4);
    CHECK((after.array() < before.array()).all());  // every familiar transition got less surprising
    CHECK(r_after.mean() > r_before.mean() + 4);    // so its reward -NLL went up
    CHECK(novel(0) > after.maxCoeff() + 20);        // the novel one stays surprising
    CHECK(r_novel(0) < r_after.minCoeff() - 20);
}

TEMPLATE_TEST_CASE("Surprise setpoint prior adds exactly -beta ||x' - mu||^2", "[intrinsic][surprise]", float, double) {
    using T = TestType;
    SurpriseOptions o;
    o.obs_dim = 3;
    o.internal_dim = 3;
    o.action_dim = 2;
    o.hidden = {8};
    o.beta = 0.25;
    o.mu = {0.7, 0.5, 0.9};  // seed section 8
    Surprise<T> sur(o);
    Rng rng(3);
    const auto b = random_batch<T>(rng, 3, 3, 2, 6);
    const Mat<T> s = states(b);
    Vec<T> r(6), rp(6);
    sur.reward(s, b.action, b.next_observation, r);
    sur.reward_with_prior(s, b.action, b.next_observation, b.next_internal, rp);
    Vec<T> mu(3);
    mu << T(0.7), T(0.5), T(0.9);
    CHECK(sur.setpoints() == mu);
    for (Index j = 0; j < 6; ++j) {
        const T pen = T(0.25) * (b.next_internal.col(j) - mu).squaredNorm();
        CHECK(rp(j) == r(j) - pen);
        // (rp - r) cancels the NLL, so the tolerance is relative to |r|, not to the penalty.
        const double tol = (std::is_same_v<T, float> ? 1e-6 : 1e-15) * (1.0 + std::abs(static_cast<double>(r(j))));
        CHECK(static_cast<double>(rp(j) - r(j)) == Approx(-static_cast<double>(pen)).margin(tol));
    }
    // At the setpoint the prior costs nothing; beta = 0 switches it off.
    Mat<T> at_mu = mu.replicate(1, 6);
    sur.reward_with_prior(s, b.action, b.next_observation, at_mu, rp);
    CHECK(rp == r);
    sur.set_beta(T(0));
    sur.reward_with_prior(s, b.action, b.next_observation, b.next_internal, rp);
    CHECK(rp == r);
    // Run-time setpoints (adaptive mu) and beta (curriculum).
    sur.set_beta(T(2));
    Vec<T> mu2 = Vec<T>::Zero(3);
    sur.set_setpoints(mu2);
    sur.reward_with_prior(s, b.action, b.next_observation, b.next_internal, rp);
    for (Index j = 0; j < 6; ++j) CHECK(rp(j) == r(j) - T(2) * b.next_internal.col(j).squaredNorm());
    CHECK_THROWS_AS(sur.set_beta(T(-1)), persist::ConfigError);
    CHECK_THROWS_AS(sur.set_setpoints(Vec<T>::Zero(2)), persist::ShapeError);
    CHECK_THROWS_AS(sur.reward_with_prior(s, b.action, b.next_observation, b.next_internal.topRows(2), rp),
                    persist::ShapeError);
}

TEST_CASE("Surprise reward normalisation uses the replay NLL statistics", "[intrinsic][surprise]") {
    for (const SurpriseNorm mode : {SurpriseNorm::scale, SurpriseNorm::standardize}) {
        auto o = small_options();
        o.normalize = mode;
        Surprise<double> sur(o);
        Rng rng(8);
        const auto b = random_batch<double>(rng, 2, 1, 1, 16);
        const Mat<double> s = states(b);
        Vec<double> nll(16), r(16);
        // Before any update: no statistics, reward = -nll.
        sur.nll(s, b.action, b.next_observation, nll);
        sur.reward(s, b.action, b.next_observation, r);
        CHECK(r == -nll);
        for (int i = 0; i < 3; ++i) sur.update(b);
        CHECK(sur.nll_stats().count() == 48);
        sur.nll(s, b.action, b.next_observation, nll);
        sur.reward(s, b.action, b.next_observation, r);
        const double mean = mode == SurpriseNorm::standardize ? sur.nll_stats().mean(0) : 0.0;
        const double sd = std::sqrt(sur.nll_stats().var(0) + 1e-8);
        for (Index j = 0; j < 16; ++j) CHECK(r(j) == Approx(-(nll(j) - mean) / sd).epsilon(1e-12));
    }
    auto o = small_options();
    Surprise<double> plain(o);
    Rng rng(8);
    plain.update(random_batch<double>(rng, 2, 1, 1, 16));
    CHECK(plain.nll_stats().count() == 0);  // statistics only kept when normalising
}

TEST_CASE("Surprise is deterministic for a fixed seed", "[intrinsic][surprise]") {
    auto o = small_options();
    o.hidden = {16, 16};
    o.seed = 42;
    Surprise<float> a(o), b(o);
    CHECK(same_state(a, b));
    Rng ra(1), rb(1);
    for (int i = 0; i < 5; ++i) {
        const auto ba = random_batch<float>(ra, 2, 1, 1, 8), bb = random_batch<float>(rb, 2, 1, 1, 8);
        CHECK(a.update(ba).loss == b.update(bb).loss);
    }
    CHECK(same_state(a, b));
    o.seed = 43;
    Surprise<float> c(o);
    CHECK(a.model().params().size() == c.model().params().size());
    Surprise<float> a0(small_options()), c0([] {
        auto p = small_options();
        p.seed = 1;
        return p;
    }());
    CHECK(a0.model().params() != c0.model().params());
}

TEST_CASE("Surprise state round trip: copied state gives identical rewards and updates", "[intrinsic][surprise]") {
    auto o = small_options();
    o.internal_dim = 2;
    o.hidden = {16};
    o.beta = 0.5;
    o.mu = {0.2, -0.3};
    o.normalize = SurpriseNorm::standardize;
    o.seed = 5;
    Surprise<double> a(o);
    Rng rng(9);
    for (int i = 0; i < 4; ++i) a.update(random_batch<double>(rng, 2, 2, 1, 16));
    a.set_beta(0.75);

    auto o2 = o;
    o2.seed = 77;  // different initial weights
    o2.beta = 0.0;
    o2.mu = {};
    Surprise<double> b(o2);
    CHECK_FALSE(same_state(a, b));
    copy_state(a, b);
    CHECK(same_state(a, b));
    CHECK(b.beta() == 0.75);

    const auto batch = random_batch<double>(rng, 2, 2, 1, 16);
    const Mat<double> s = states(batch);
    Vec<double> ra(16), rb(16);
    a.reward_with_prior(s, batch.action, batch.next_observation, batch.next_internal, ra);
    b.reward_with_prior(s, batch.action, batch.next_observation, batch.next_internal, rb);
    CHECK(ra == rb);
    CHECK(a.update(batch).loss == b.update(batch).loss);
    CHECK(same_state(a, b));

    // The same through a checkpoint file (io/checkpoint.hpp).
    const auto path = std::filesystem::temp_directory_path() / "persist_test_surprise.ckpt";
    persist::io::save_checkpoint(path, a);
    Surprise<double> c(o2);
    persist::io::load_checkpoint(path, c);
    std::filesystem::remove(path);
    CHECK(same_state(a, c));
    Vec<double> rc(16);
    c.reward_with_prior(s, batch.action, batch.next_observation, batch.next_internal, rc);
    a.reward_with_prior(s, batch.action, batch.next_observation, batch.next_internal, ra);
    CHECK(ra == rc);
}

TEST_CASE("Surprise rejects bad options and shapes", "[intrinsic][surprise]") {
    using persist::ConfigError;
    using persist::ShapeError;
    auto bad = [](auto edit) {
        auto o = small_options();
        edit(o);
        return o;
    };
    CHECK_THROWS_AS(Surprise<double>(bad([](auto& o) { o.obs_dim = 0; })), ConfigError);
    CHECK_THROWS_AS(Surprise<double>(bad([](auto& o) { o.internal_dim = -1; })), ConfigError);
    const auto zero_width = bad([](auto& o) { o.hidden = {8, 0}; });
    CHECK_THROWS_AS(Surprise<double>(zero_width), ConfigError);
    CHECK_THROWS_AS(Surprise<double>(bad([](auto& o) { o.lr = -1; })), ConfigError);
    CHECK_THROWS_AS(Surprise<double>(bad([](auto& o) { o.beta = -0.1; })), ConfigError);
    CHECK_THROWS_AS(Surprise<double>(bad([](auto& o) { o.beta = 0.1; })), ConfigError);  // no mu
    const auto mu_size = bad([](auto& o) { o.mu = {1.0, 2.0}; });
    CHECK_THROWS_AS(Surprise<double>(mu_size), ConfigError);
    CHECK_THROWS_AS(Surprise<double>(bad([](auto& o) { o.log_std_min = 3; })), ConfigError);
    CHECK_THROWS_AS(Surprise<double>(bad([](auto& o) { o.norm_eps = 0; })), ConfigError);
    CHECK_THROWS_WITH(Surprise<double>(bad([](auto& o) { o.beta = 0.1; })),
                      Catch::Contains("beta") && Catch::Contains("mu"));
    Surprise<double> sur(small_options());
    CHECK_THROWS_AS(sur.set_beta(1.0), ConfigError);  // no setpoints given yet
    Rng rng(1);
    auto b = random_batch<double>(rng, 2, 1, 1, 4);
    Mat<double> s = states(b);
    Vec<double> out(4);
    CHECK_THROWS_AS(sur.reward(s.topRows(2), b.action, b.next_observation, out), ShapeError);
    CHECK_THROWS_AS(sur.reward(s, b.action, b.next_observation.topRows(1), out), ShapeError);
    CHECK_THROWS_WITH(sur.reward(s, b.action, b.next_observation.leftCols(3), out),
                      Catch::Contains("Surprise::reward"));
    auto wrong = random_batch<double>(rng, 2, 2, 1, 4);
    CHECK_THROWS_AS(sur.update(wrong), ShapeError);
}
