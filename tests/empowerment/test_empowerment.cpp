// Empowerment (intrinsic/empowerment.hpp): the contract, the InfoNCE critic's gradient against
// finite differences, the estimator and loss against the formulas recomputed from the encoders,
// the one-step update, k-step sequences (update_sequences, reward() windows), normalisation,
// determinism, checkpoint round trip, and bad input.
#include "intrinsic/intrinsic_test.hpp"

#include <cmath>
#include <filesystem>
#include <limits>

#include "persist/config/persist_config.hpp"
#include "persist/intrinsic/empowerment.hpp"
#include "persist/io/checkpoint.hpp"
#include "persist/replay/ring_replay.hpp"

using namespace intrtest;
using persist::intrinsic::Empowerment;
using persist::intrinsic::EmpowermentNorm;
using persist::intrinsic::EmpowermentOptions;

// The contract (core/concepts.hpp): what plugs into PersistAgent as its Intrinsic.
static_assert(persist::Intrinsic<Empowerment<float>>);
static_assert(persist::Intrinsic<Empowerment<double>>);
static_assert(persist::Intrinsic<Empowerment<double, persist::nn::Tanh>>);
static_assert(persist::Stateful<Empowerment<float>>);
static_assert(persist::Stateful<Empowerment<double>>);
static_assert(std::is_same_v<persist::scalar_of<Empowerment<float>>, float>);
static_assert(!persist::Intrinsic<persist::intrinsic::RunningMeanStd<float>>);  // no reward / update

namespace {

EmpowermentOptions small(Index k = 1) {
    EmpowermentOptions o;
    o.obs_dim = 3;
    o.internal_dim = 2;
    o.action_dim = 2;
    o.k = k;
    o.num_negatives = 3;  // N = 4
    o.hidden = {16, 12};
    o.embedding_dim = 8;
    o.lr = 1e-3;
    o.seed = 5;
    return o;
}

/// The encoders' outputs recomputed through the public networks: P = phi([s0; o_k - o_0 or
/// o_k]), Q = psi(A), Qb = psi(bank).
template <class E, class T = typename E::scalar_type>
struct Embeddings {
    Mat<T> P, Q, Qb;
    Embeddings(const E& emp, const Mat<T>& s0, const Mat<T>& A, const Mat<T>& ok) {
        const Index O = emp.obs_dim(), S = emp.state_dim();
        Mat<T> xq(S + O, ok.cols());
        xq.topRows(S) = s0;
        xq.bottomRows(O) = emp.options().delta_input ? Mat<T>(ok - s0.topRows(O)) : ok;
        auto pw = emp.state_encoder().make_workspace();
        auto qw = emp.action_encoder().make_workspace();
        P = emp.state_encoder().forward(xq, pw);
        Q = emp.action_encoder().forward(A, qw);
        Qb = emp.action_encoder().forward(emp.negatives(), qw);
    }
};

/// The critic's soft clip c tanh(f / c) (c = 0: identity).
template <class E>
long double clipped(const E& emp, long double f) {
    const long double c = emp.options().score_clip;
    return c > 0 ? c * std::tanh(f / c) : f;
}

/// log sum exp of a list, in long double.
long double lse(const std::vector<long double>& v) {
    long double m = -std::numeric_limits<long double>::infinity();
    for (auto x : v) m = std::max(m, x);
    long double s = 0;
    for (auto x : v) s += std::exp(x - m);
    return m + std::log(s);
}

/// The estimator's formula: f_pos - log(exp f_pos + sum_m exp f(s, A_m, o')) + log(K + 1).
template <class E, class T = typename E::scalar_type>
std::vector<double> formula_estimate(const E& emp, const Mat<T>& s0, const Mat<T>& A, const Mat<T>& ok) {
    const Embeddings<E> em(emp, s0, A, ok);
    std::vector<double> r;
    for (Index j = 0; j < ok.cols(); ++j) {
        std::vector<long double> sc{clipped(emp, em.Q.col(j).dot(em.P.col(j)))};
        for (Index m = 0; m < em.Qb.cols(); ++m) sc.push_back(clipped(emp, em.Qb.col(m).dot(em.P.col(j))));
        r.push_back(static_cast<double>(sc[0] - lse(sc) + std::log(static_cast<long double>(sc.size()))));
    }
    return r;
}

/// InfoNCE over consecutive groups of N columns (the tail of B mod N unused).
template <class E, class T = typename E::scalar_type>
double formula_loss(const E& emp, const Mat<T>& s0, const Mat<T>& A, const Mat<T>& ok) {
    const Embeddings<E> em(emp, s0, A, ok);
    const Index N = emp.num_candidates(), G = ok.cols() / N;
    long double total = 0;
    for (Index g = 0; g < G; ++g)
        for (Index j = g * N; j < (g + 1) * N; ++j) {
            std::vector<long double> sc;
            for (Index i = g * N; i < (g + 1) * N; ++i) sc.push_back(clipped(emp, em.Q.col(i).dot(em.P.col(j))));
            total += lse(sc) - sc[static_cast<std::size_t>(j - g * N)];
        }
    return static_cast<double>(total / static_cast<long double>(G * N));
}

template <class T>
struct Samples {
    Mat<T> s0, A, ok;
};
template <class T>
Samples<T> samples(Rng& rng, const EmpowermentOptions& o, Index B) {
    return {uniform<T>(rng, o.obs_dim + o.internal_dim, B), uniform<T>(rng, o.k * o.action_dim, B),
            uniform<T>(rng, o.obs_dim, B)};
}

}  // namespace

TEST_CASE("Empowerment defaults match rewards.empowerment of the config, and the encoder shapes", "[empowerment]") {
    const EmpowermentOptions o;
    const persist::config::EmpowermentConfig c;
    CHECK(o.num_negatives == c.num_negatives);
    CHECK(std::vector<std::int64_t>(o.hidden.begin(), o.hidden.end()) == c.hidden);
    CHECK(o.lr == c.lr);
    CHECK(o.k == 1);  // one-step batches (the persist::Intrinsic contract); the config's k = 3 needs sequences
    CHECK(c.k == 3);
    CHECK(o.embedding_dim == 64);
    CHECK(o.delta_input);
    CHECK(o.normalize == EmpowermentNorm::none);
    CHECK(o.score_clip == 5.0);
    auto full = o;
    full.obs_dim = 5;
    full.internal_dim = 3;
    full.action_dim = 2;
    full.k = 3;
    Empowerment<float> emp(full);
    CHECK(emp.state_encoder().widths() == std::vector<Index>{5 + 3 + 5, 128, 128, 64});
    CHECK(emp.action_encoder().widths() == std::vector<Index>{6, 128, 128, 64});
    CHECK(emp.num_candidates() == 17);
    CHECK(emp.log_num_candidates() == Approx(std::log(17.0)));
    CHECK(emp.sequence_dim() == 6);
    CHECK(emp.negatives().rows() == 6);
    CHECK(emp.negatives().cols() == 16);
    CHECK_FALSE(emp.has_negatives());
}

TEST_CASE("InfoNCE critic gradient matches central finite differences (double)", "[empowerment][gradient]") {
    for (const Index k : {Index(1), Index(2)})
        for (const bool delta : {true, false}) {
            auto o = small(k);
            o.delta_input = delta;
            o.score_clip = delta ? 0.0 : 0.3;  // off, and tight enough that tanh bends (|f| ~ 0.3)
            Empowerment<double, persist::nn::Tanh> emp(o);
            Rng rng(11 + static_cast<std::uint64_t>(k));
            const auto d = samples<double>(rng, o, 10);  // 2 groups of 4, 2 unused columns
            const double loss = emp.infonce_gradient(d.s0, d.A, d.ok);
            CHECK(loss == Approx(formula_loss(emp, d.s0, d.A, d.ok)).epsilon(1e-12));
            for (auto* net : {&emp.state_encoder(), &emp.action_encoder()}) {
                const Vec<double> g = net->grads();
                Vec<double> fd(g.size());
                const double h = 1e-5;
                for (Index i = 0; i < g.size(); ++i) {
                    const double p0 = net->params()(i);
                    net->params()(i) = p0 + h;
                    const double lp = emp.infonce_loss(d.s0, d.A, d.ok);
                    net->params()(i) = p0 - h;
                    const double lm = emp.infonce_loss(d.s0, d.A, d.ok);
                    net->params()(i) = p0;
                    fd(i) = (lp - lm) / (2 * h);
                }
                const double rel = (g - fd).norm() / g.norm();
                const double rel_inf = (g - fd).cwiseAbs().maxCoeff() / g.cwiseAbs().maxCoeff();
                INFO("k " << k << ", delta " << delta << ", clip " << o.score_clip << ", " << net->name() << ": |g| " << g.norm() << ", rel "
                          << rel << ", rel_inf " << rel_inf);
                CHECK(g.norm() > 1e-3);
                CHECK(rel < 1e-6);
                CHECK(rel_inf < 1e-6);
            }
        }
}

TEMPLATE_TEST_CASE("estimate() is the log-softmax of the positive against the bank plus log N", "[empowerment]", float,
                   double) {
    using T = TestType;
    const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-11;
    for (const Index k : {Index(1), Index(3)}) {
        auto o = small(k);
        o.score_clip = k == 1 ? 0.0 : 0.2;
        Empowerment<T> emp(o);
        Rng rng(3);
        Vec<T> out(7);
        const auto d = samples<T>(rng, o, 7);
        CHECK_THROWS_AS(emp.estimate(d.s0, d.A, d.ok, out), persist::Error);  // no negatives yet
        emp.set_negatives(uniform<T>(rng, o.k * o.action_dim, o.num_negatives));
        CHECK(emp.has_negatives());
        emp.estimate(d.s0, d.A, d.ok, out);
        const auto want = formula_estimate(emp, d.s0, d.A, d.ok);
        for (Index j = 0; j < 7; ++j) {
            CHECK(static_cast<double>(out(j)) == Approx(want[static_cast<std::size_t>(j)]).margin(tol));
            CHECK(out(j) <= emp.log_num_candidates() + T(1e-6));
        }
        // The positive scored as its own negatives: every candidate ties, the estimate is exactly 0.
        Mat<T> same(o.k * o.action_dim, o.num_negatives);
        for (Index m = 0; m < o.num_negatives; ++m) same.col(m) = d.A.col(0);
        emp.set_negatives(same);
        Vec<T> one(1);
        emp.estimate(d.s0.col(0), d.A.col(0), d.ok.col(0), one);
        CHECK(std::abs(static_cast<double>(one(0))) < tol);
    }
}

TEMPLATE_TEST_CASE("update() with k = 1 is one InfoNCE step on [o, x], a, o' and the batch's first actions become "
                   "the bank",
                   "[empowerment]", float, double) {
    using T = TestType;
    const auto o = small(1);
    Empowerment<T> emp(o), twin(o);
    Rng rng(8);
    const auto batch = random_batch<T>(rng, o.obs_dim, o.internal_dim, o.action_dim, 13);  // 3 groups, 1 unused
    const Mat<T> s = states(batch);
    const T before = twin.infonce_loss(s, batch.action, batch.next_observation);
    const auto st = emp.update(batch);
    CHECK(st.loss == before);
    CHECK(static_cast<double>(st.loss) == Approx(formula_loss(twin, s, batch.action, batch.next_observation)).epsilon(1e-5));
    CHECK(st.samples == 12);
    CHECK(emp.steps() == 1);
    CHECK(emp.negatives() == batch.action.leftCols(3));
    CHECK(emp.has_negatives());
    // The same step through the explicit entry point: bitwise the same parameters.
    const auto st2 = twin.train(s, batch.action, batch.next_observation);
    CHECK(st2.loss == st.loss);
    CHECK(same_state(emp, twin));
    CHECK(emp.state_encoder().params() != Empowerment<T>(o).state_encoder().params());
    // reward() with k = 1 is the estimate of the same columns.
    Vec<T> r(13), e(13);
    emp.reward(s, batch.action, batch.next_observation, r);
    emp.estimate(s, batch.action, batch.next_observation, e);
    CHECK(r.isApprox(e, T(1e-5)));
}

TEST_CASE("k > 1: update(batch) does nothing and reward() windows the last k steps per environment",
          "[empowerment][sequence]") {
    using T = double;
    auto o = small(3);
    o.num_envs = 2;
    Empowerment<T> emp(o);
    Rng rng(4);
    const auto batch = random_batch<T>(rng, 3, 2, 2, 16);
    const Vec<T> p0 = emp.state_encoder().params();
    const auto st = emp.update(batch);
    CHECK(st.samples == 0);
    CHECK(emp.steps() == 0);
    CHECK(emp.state_encoder().params() == p0);

    Vec<T> r(2);
    Mat<T> s(5, 2), a(2, 2), on(3, 2);
    // Before any negatives: 0 everywhere (the windows still advance).
    s = uniform<T>(rng, 5, 2);
    a = uniform<T>(rng, 2, 2);
    on = uniform<T>(rng, 3, 2);
    emp.reward(s, a, on, r);
    CHECK(r.isZero(0));
    emp.reset_history();
    emp.set_negatives(uniform<T>(rng, 6, 3));

    // A trajectory per environment: s_t = [o_t; x_t], o_{t+1} continues the next call's s.
    std::vector<Mat<T>> S, Acts, On;
    Mat<T> cur = uniform<T>(rng, 5, 2);
    for (int t = 0; t < 6; ++t) {
        S.push_back(cur);
        Acts.push_back(uniform<T>(rng, 2, 2));
        On.push_back(uniform<T>(rng, 3, 2));
        Mat<T> nxt = uniform<T>(rng, 5, 2);
        nxt.topRows(3) = On.back();
        cur = nxt;
    }
    auto window_estimate = [&](int t, Index j) {  // (s_{t-2}, [a_{t-2}; a_{t-1}; a_t], o_{t+1}) of env j
        Mat<T> s0 = S[static_cast<std::size_t>(t - 2)].col(j), A(6, 1), ok = On[static_cast<std::size_t>(t)].col(j);
        for (int u = 0; u < 3; ++u) A.block(2 * u, 0, 2, 1) = Acts[static_cast<std::size_t>(t - 2 + u)].col(j);
        Vec<T> e(1);
        emp.estimate(s0, A, ok, e);
        return e(0);
    };
    for (int t = 0; t < 6; ++t) {
        emp.reward(S[static_cast<std::size_t>(t)], Acts[static_cast<std::size_t>(t)], On[static_cast<std::size_t>(t)], r);
        for (Index j = 0; j < 2; ++j) {
            if (t < 2) {
                CHECK(r(j) == 0);
            } else {
                CHECK(r(j) == Approx(window_estimate(t, j)).epsilon(1e-12));
                CHECK(r(j) != 0);
            }
        }
    }
    // Environment 0 jumps (a reset: s does not continue o'), environment 1 continues.
    Mat<T> s6 = uniform<T>(rng, 5, 2);
    s6.col(1).head(3) = On[5].col(1);
    const Mat<T> a6 = uniform<T>(rng, 2, 2), o6 = uniform<T>(rng, 3, 2);
    emp.reward(s6, a6, o6, r);
    CHECK(r(0) == 0);
    CHECK(r(1) != 0);
    // reset_history(j) and reset_history(): windows start over.
    Mat<T> s7 = uniform<T>(rng, 5, 2);
    s7.topRows(3) = o6;
    emp.reset_history(1);
    emp.reward(s7, a6, uniform<T>(rng, 3, 2), r);
    CHECK(r(0) == 0);  // env 0: its second step since the reset
    CHECK(r(1) == 0);
    CHECK_THROWS_AS(emp.reset_history(2), persist::ConfigError);
    // One column per environment.
    Vec<T> r3(3);
    CHECK_THROWS_AS(emp.reward(uniform<T>(rng, 5, 3), uniform<T>(rng, 2, 3), uniform<T>(rng, 3, 3), r3),
                    persist::ShapeError);
}

TEST_CASE("update_sequences trains on the valid k-step windows of a replay's sequence batch", "[empowerment][sequence]") {
    using T = double;
    const auto o = small(2);
    SECTION("from RingReplay::sample_sequences: every window, step-major") {
        persist::replay::RingReplay<T> rb(64, {.observation = 3, .internal = 2, .action = 2});
        Rng rng(6);
        for (int t = 0; t < 40; ++t) {
            const Vec<T> ob = uniform<T>(rng, 3, 1), x = uniform<T>(rng, 2, 1), a = uniform<T>(rng, 2, 1),
                         on = uniform<T>(rng, 3, 1), xn = uniform<T>(rng, 2, 1);
            rb.add(persist::TransitionView<T>{ob, x, a, T(0), on, xn, t % 10 == 9, t % 13 == 12});
        }
        persist::replay::SequenceBatch<T> seq;
        Rng srng(2);
        rb.sample_sequences(8, 4, srng, seq);
        // Windows (t, s) for t = 0..2, s = 0..7: 24 samples, 6 groups of N = 4.
        Mat<T> s0(5, 24), A(4, 24), ok(3, 24);
        Index j = 0;
        for (Index t = 0; t < 3; ++t)
            for (Index s = 0; s < 8; ++s, ++j) {
                const Index c0 = seq.column(t, s), c1 = seq.column(t + 1, s);
                s0.col(j) << seq.steps.observation.col(c0), seq.steps.internal.col(c0);
                A.col(j) << seq.steps.action.col(c0), seq.steps.action.col(c1);
                ok.col(j) = seq.steps.next_observation.col(c1);
            }
        Empowerment<T> emp(o), twin(o);
        const auto st = emp.update_sequences(seq);
        const auto st2 = twin.train(s0, A, ok);
        CHECK(st.samples == 24);
        CHECK(st.loss == st2.loss);
        CHECK(same_state(emp, twin));
        // update_from_replay: the same draw through the member sequence batch.
        Empowerment<T> third(o);
        Rng srng2(2);
        const auto st3 = third.update_from_replay(rb, 8, srng2);
        CHECK(st3.loss != T(0));
        CHECK(st3.samples == 8);  // length k = 2 sequences: one window each, 2 groups of 4
    }
    SECTION("windows that cross an episode end or masked steps are dropped") {
        auto o1 = o;
        o1.num_negatives = 1;  // N = 2
        persist::replay::SequenceBatch<T> seq;
        seq.steps.resize(3, 2, 2, 0, 6);
        seq.mask.setOnes(6);
        seq.num_sequences = 2;
        seq.length = 3;
        Rng rng(9);
        seq.steps.observation = uniform<T>(rng, 3, 6);
        seq.steps.internal = uniform<T>(rng, 2, 6);
        seq.steps.action = uniform<T>(rng, 2, 6);
        seq.steps.next_observation = uniform<T>(rng, 3, 6);
        seq.steps.terminated.setZero();
        seq.steps.truncated.setZero();
        seq.steps.terminated(seq.column(0, 0)) = 1;  // sequence 0 ends at its first step
        seq.mask(seq.column(1, 0)) = 0;
        seq.mask(seq.column(2, 0)) = 0;
        Empowerment<T> emp(o1), twin(o1);
        Mat<T> s0(5, 2), A(4, 2), ok(3, 2);
        for (Index t = 0; t < 2; ++t) {
            s0.col(t) << seq.steps.observation.col(seq.column(t, 1)), seq.steps.internal.col(seq.column(t, 1));
            A.col(t) << seq.steps.action.col(seq.column(t, 1)), seq.steps.action.col(seq.column(t + 1, 1));
            ok.col(t) = seq.steps.next_observation.col(seq.column(t + 1, 1));
        }
        const auto st = emp.update_sequences(seq);
        CHECK(st.samples == 2);
        CHECK(st.loss == twin.train(s0, A, ok).loss);
        CHECK(same_state(emp, twin));
        // Too short for k, or too few windows for one group: errors.
        auto o3 = o1;
        o3.k = 4;
        Empowerment<T> longk(o3);
        CHECK_THROWS_AS(longk.update_sequences(seq), persist::ShapeError);
        seq.steps.truncated(seq.column(0, 1)) = 1;  // now only window (1, 1) is valid
        CHECK_THROWS_WITH(emp.update_sequences(seq), Catch::Contains("1 samples") && Catch::Contains("2"));
    }
}

TEST_CASE("normalisation by the running statistics of the estimates", "[empowerment]") {
    using T = double;
    for (const auto mode : {EmpowermentNorm::scale, EmpowermentNorm::standardize}) {
        auto o = small(1);
        o.normalize = mode;
        Empowerment<T> emp(o);
        auto ro = o;
        ro.normalize = EmpowermentNorm::none;
        Empowerment<T> raw(ro);
        Rng rng(15);
        const Mat<T> bank = uniform<T>(rng, 2, 3);
        emp.set_negatives(bank);
        raw.set_negatives(bank);
        std::vector<double> all;
        for (int t = 0; t < 6; ++t) {
            const auto d = samples<T>(rng, o, 3);
            Vec<T> r(3), e(3);
            raw.reward(d.s0, d.A, d.ok, e);
            emp.reward(d.s0, d.A, d.ok, r);
            for (Index j = 0; j < 3; ++j) all.push_back(e(j));
            double m = 0, v = 0;
            for (double x : all) m += x;
            m /= static_cast<double>(all.size());
            for (double x : all) v += (x - m) * (x - m);
            v /= static_cast<double>(all.size());
            const double c = mode == EmpowermentNorm::standardize ? m : 0.0;
            for (Index j = 0; j < 3; ++j) CHECK(r(j) == Approx((e(j) - c) / std::sqrt(v + 1e-8)).epsilon(1e-9));
        }
        CHECK(emp.reward_stats().count() == 18);
        CHECK(raw.reward_stats().count() == 0);
    }
}

TEST_CASE("same seed and calls give bitwise-identical state and another seed differs", "[empowerment]") {
    using T = float;
    auto o = small(3);
    auto run = [&](std::uint64_t seed) {
        auto oo = o;
        oo.seed = seed;
        Empowerment<T> emp(oo);
        persist::replay::RingReplay<T> rb(200, {.observation = 3, .internal = 2, .action = 2});
        Rng rng(1);
        std::vector<T> rewards;
        Mat<T> s = uniform<T>(rng, 5, 1);
        Vec<T> r(1);
        for (int t = 0; t < 120; ++t) {
            const Mat<T> a = uniform<T>(rng, 2, 1), on = uniform<T>(rng, 3, 1), xn = uniform<T>(rng, 2, 1);
            emp.reward(s, a, on, r);
            rewards.push_back(r(0));
            rb.add(persist::TransitionView<T>{s.col(0).head(3), s.col(0).tail(2), a.col(0), T(0), on.col(0), xn.col(0),
                                              false, t % 30 == 29});
            s << on, xn;
            if (t >= 40 && t % 10 == 0) emp.update_from_replay(rb, 8, rng);
        }
        return std::make_pair(std::move(emp), rewards);
    };
    auto [a, ra] = run(3);
    auto [b, rb] = run(3);
    auto [c, rc] = run(4);
    CHECK(same_state(a, b));
    CHECK(ra == rb);
    CHECK_FALSE(same_state(a, c));
    CHECK(ra != rc);
    CHECK(a.steps() == 8);
}

TEMPLATE_TEST_CASE("checkpoint round trip is bitwise and resumes exactly", "[empowerment][checkpoint]", float, double) {
    using T = TestType;
    auto o = small(2);
    o.normalize = EmpowermentNorm::standardize;
    Empowerment<T> a(o);
    Rng rng(21);
    persist::replay::RingReplay<T> rb(100, {.observation = 3, .internal = 2, .action = 2});
    Mat<T> s = uniform<T>(rng, 5, 1);
    Vec<T> r(1);
    auto step = [&](Empowerment<T>& emp, Rng& g, const Mat<T>& st, const Mat<T>& act, const Mat<T>& on) {
        emp.reward(st, act, on, r);
        (void)g;
        return r(0);
    };
    for (int t = 0; t < 60; ++t) {
        const Mat<T> act = uniform<T>(rng, 2, 1), on = uniform<T>(rng, 3, 1), xn = uniform<T>(rng, 2, 1);
        step(a, rng, s, act, on);
        rb.add(persist::TransitionView<T>{s.col(0).head(3), s.col(0).tail(2), act.col(0), T(0), on.col(0), xn.col(0),
                                          false, false});
        s << on, xn;
        if (t >= 20 && t % 5 == 0) a.update_from_replay(rb, 8, rng);
    }
    const auto path = std::filesystem::temp_directory_path() / "persist_empowerment_roundtrip.ckpt";
    persist::io::save_checkpoint(path, a);
    auto o2 = o;
    o2.seed = 99;  // different initial parameters: all of them must come from the file
    Empowerment<T> b(o2);
    persist::io::load_checkpoint(path, b);
    std::filesystem::remove(path);
    CHECK(same_state(a, b));
    // Resume: the same calls give bitwise the same rewards and state (the window, the bank
    // embeddings and the statistics came through).
    Rng ra = rng, rbng = rng;
    for (int t = 0; t < 12; ++t) {
        const Mat<T> act = uniform<T>(rng, 2, 1), on = uniform<T>(rng, 3, 1), xn = uniform<T>(rng, 2, 1);
        const T x = step(a, ra, s, act, on), y = step(b, rbng, s, act, on);
        CHECK(x == y);
        CHECK(x != T(0));
        s << on, xn;
        if (t % 4 == 0) {
            a.update_from_replay(rb, 8, ra);
            b.update_from_replay(rb, 8, rbng);
        }
    }
    CHECK(same_state(a, b));
    const auto e = entries(a);
    std::vector<std::string> names;
    for (const auto& x : e) names.push_back(x.name);
    CHECK(names == std::vector<std::string>{"state_encoder.params", "action_encoder.params", "state_opt.m", "state_opt.v",
                                            "state_opt.step", "action_opt.m", "action_opt.v", "action_opt.step",
                                            "negatives", "has_negatives", "steps", "reward_stats.mean",
                                            "reward_stats.var", "reward_stats.count", "history.states",
                                            "history.actions", "history.count", "history.last_obs"});
}

TEST_CASE("Empowerment rejects bad options and shapes", "[empowerment]") {
    using persist::ConfigError;
    using persist::ShapeError;
    auto bad = [](auto edit) {
        auto o = small(1);
        edit(o);
        return o;
    };
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.obs_dim = 0; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.internal_dim = -1; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.action_dim = 0; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.k = 0; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.num_negatives = 0; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.hidden = {8, 0}; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.embedding_dim = 0; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.lr = std::nan(""); })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.max_grad_norm = -1; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.num_envs = 0; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.norm_eps = 0; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.score_clip = -1; })), ConfigError);
    CHECK_THROWS_AS(Empowerment<double>(bad([](auto& o) { o.score_clip = std::numeric_limits<double>::infinity(); })),
                    ConfigError);
    CHECK_THROWS_WITH(Empowerment<double>(bad([](auto& o) { o.k = -2; })), Catch::Contains("k") && Catch::Contains("-2"));
    CHECK_THROWS_WITH(Empowerment<double>(bad([](auto& o) { o.hidden = {8, 0}; })), Catch::Contains("hidden[1]"));

    Empowerment<double> emp(small(1));
    Rng rng(1);
    Vec<double> r(4);
    CHECK_THROWS_WITH(emp.reward(Mat<double>(4, 4), Mat<double>(2, 4), Mat<double>(3, 4), r),
                      Catch::Contains("Empowerment::reward: s") && Catch::Contains("expected 5 x 4"));
    CHECK_THROWS_AS(emp.reward(Mat<double>(5, 4), Mat<double>(1, 4), Mat<double>(3, 4), r), ShapeError);
    Vec<double> r3(3);
    CHECK_THROWS_AS(emp.reward(Mat<double>(5, 4), Mat<double>(2, 4), Mat<double>(3, 4), r3), ShapeError);
    const auto few = random_batch<double>(rng, 3, 2, 2, 3);  // fewer than N = 4
    CHECK_THROWS_WITH(emp.update(few), Catch::Contains("need at least num_negatives + 1 = 4"));
    const auto wrong = random_batch<double>(rng, 3, 1, 2, 8);
    CHECK_THROWS_WITH(emp.update(wrong), Catch::Contains("batch.internal"));
    CHECK_THROWS_AS(emp.set_negatives(Mat<double>::Zero(2, 4)), ShapeError);
    Mat<double> nan_bank = Mat<double>::Zero(2, 3);
    nan_bank(1, 1) = std::nan("");
    CHECK_THROWS_AS(emp.set_negatives(nan_bank), persist::Error);
    CHECK_FALSE(emp.has_negatives());
    CHECK_THROWS_AS(emp.infonce_loss(Mat<double>(5, 8), Mat<double>(3, 8), Mat<double>(3, 8)), ShapeError);
}
