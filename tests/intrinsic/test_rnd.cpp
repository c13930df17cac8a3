// RND: fixed target, novelty (familiar vs novel), observation normalisation and clip, reward
// normalisation by the std of the discounted intrinsic return, determinism, state round trip.
#include "intrinsic/intrinsic_test.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "persist/io/checkpoint.hpp"

using namespace intrtest;
using persist::intrinsic::Reduction;
using persist::intrinsic::RND;
using persist::intrinsic::RndRewardNorm;
using persist::intrinsic::RNDOptions;

namespace {

RNDOptions small_options() {
    RNDOptions o;
    o.obs_dim = 4;
    o.output_dim = 16;
    o.hidden = {32};
    o.predictor_extra = {32};
    return o;
}

/// Population variance of a list, two-pass.
double pop_var(const std::vector<double>& v) {
    double m = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return s / static_cast<double>(v.size());
}

}  // namespace

TEST_CASE("RND defaults follow Burda et al. 2018", "[intrinsic][rnd]") {
    const RNDOptions o;
    CHECK(o.output_dim == 512);
    CHECK(o.lr == 1e-4);
    CHECK(o.gamma == 0.99);
    CHECK(o.obs_clip == 5.0);
    CHECK(o.normalize_observations);
    CHECK(o.reward_norm == RndRewardNorm::return_std);
    CHECK(o.init_gain == Approx(std::sqrt(2.0)));
    auto full = o;
    full.obs_dim = 6;
    RND<float> rnd(full);
    CHECK(rnd.target().widths() == std::vector<Index>{6, 256, 256, 512});
    CHECK(rnd.predictor().widths() == std::vector<Index>{6, 256, 256, 512, 512, 512});
}

TEMPLATE_TEST_CASE("RND target never changes under update", "[intrinsic][rnd]", float, double) {
    using T = TestType;
    auto o = small_options();
    o.lr = 1e-3;
    RND<T> rnd(o);
    const Vec<T> target0 = rnd.target().params();
    const Vec<T> pred0 = rnd.predictor().params();
    Rng rng(4);
    for (int i = 0; i < 20; ++i) {
        const auto b = random_batch<T>(rng, 4, 0, 1, 16);
        const auto st = rnd.update(b);
        CHECK(st.samples == 16);
    }
    CHECK(rnd.target().params() == target0);  // bitwise
    CHECK(rnd.predictor().params() != pred0);
}

TEMPLATE_TEST_CASE("RND error falls on familiar observations and stays high on novel ones", "[intrinsic][rnd]",
                   float, double) {
    using T = TestType;
    auto o = small_options();
    o.lr = 1e-3;  // the paper's 1e-4 needs more steps than a unit test should take
    o.reward_norm = RndRewardNorm::none;
    o.seed = 7;
    RND<T> rnd(o);
    Rng rng(21);
    TransitionBatch<T> batch = random_batch<T>(rng, 4, 0, 1, 32);
    batch.next_observation = normal<T>(rng, 4, 32, 2.0, 0.5);  // raw scale: normalisation matters
    rnd.observe(batch.next_observation);  // statistics from the familiar data (a "random agent")
    Mat<T> novel(4, 1);
    novel << T(4.5), T(-0.5), T(4.0), T(0.0);  // about 5 std away in every coordinate

    Vec<T> before(32), after(32), nov_before(1), nov_after(1);
    rnd.prediction_error(batch.next_observation, before);
    rnd.prediction_error(novel, nov_before);
    double first = 0, last = 0;
    for (int it = 0; it < 500; ++it) {
        const auto st = rnd.update(batch);
        if (it == 0) first = static_cast<double>(st.loss);
        last = static_cast<double>(st.loss);
    }
    rnd.prediction_error(batch.next_observation, after);
    rnd.prediction_error(novel, nov_after);
    INFO("loss " << first << " -> " << last << "; familiar " << before.mean() << " -> " << after.mean()
                 << "; novel " << nov_before(0) << " -> " << nov_after(0));
    CHECK(static_cast<double>(after.mean()) < 0.05 * static_cast<double>(before.mean()));
    CHECK(last < 0.05 * first);
    CHECK(nov_after(0) > 10 * after.maxCoeff());  // novelty survives training on the familiar set
    // The online reward ranks them the same way.
    Vec<T> r_fam(1), r_nov(1);
    rnd.score(batch.next_observation.col(0), r_fam);
    rnd.score(novel, r_nov);
    CHECK(r_nov(0) > 10 * r_fam(0));
}

TEST_CASE("RND observation normalisation: running mean/std, then clip to [-5, 5]", "[intrinsic][rnd]") {
    RND<double> rnd(small_options());
    Mat<double> o(4, 2), z;
    o << 7.0, -0.5, 0.25, 2.0, -9.0, 1.0, 3.0, -6.0;
    // Fewer than 2 observations: identity, then the clip.
    rnd.normalize_observations(o, z);
    CHECK(z == o.cwiseMax(-5.0).cwiseMin(5.0));
    rnd.observe(o.col(0));
    rnd.normalize_observations(o, z);
    CHECK(z == o.cwiseMax(-5.0).cwiseMin(5.0));
    Rng rng(2);
    rnd.observe(normal<double>(rng, 4, 200, 1.0, 0.1));
    const auto& st = rnd.obs_stats();
    CHECK(st.count() == 201);
    Mat<double> probe(4, 3);
    probe << 1.05, 1.0, 3.0, 0.9, 1.0, -2.0, 1.1, 1.0, 1.5, 0.97, 1.0, 1.0;
    rnd.normalize_observations(probe, z);
    for (Index j = 0; j < 3; ++j)
        for (Index i = 0; i < 4; ++i) {
            const double e = (probe(i, j) - st.mean(i)) / std::sqrt(st.var(i) + 1e-8);
            CHECK(z(i, j) == Approx(std::clamp(e, -5.0, 5.0)).epsilon(1e-12));
        }
    CHECK(z.col(2).cwiseAbs().maxCoeff() == 5.0);  // the far column is clipped
    CHECK(z.cwiseAbs().maxCoeff() <= 5.0);
    // Off: the raw observation.
    auto off = small_options();
    off.normalize_observations = false;
    RND<double> raw(off);
    raw.normalize_observations(o, z);
    CHECK(z == o);
}

TEST_CASE("RND normalises by the running std of the discounted intrinsic return", "[intrinsic][rnd]") {
    auto o = small_options();
    o.num_envs = 2;
    o.gamma = 0.9;
    o.seed = 3;
    RND<double> rnd(o);
    auto ro = o;
    ro.reward_norm = RndRewardNorm::none;
    RND<double> raw(ro);  // same networks and observation statistics, unnormalised reward
    Rng rng(12);
    Vec<double> ret = Vec<double>::Zero(2);
    std::vector<double> all_returns;
    const Mat<double> s(3, 2), a(1, 2);
    for (int t = 0; t < 25; ++t) {
        const Mat<double> on = normal<double>(rng, 4, 2, 0.0, 1.0 + 0.1 * t);
        Vec<double> r(2), e(2);
        raw.reward(s, a, on, e);
        rnd.reward(s, a, on, r);
        for (Index j = 0; j < 2; ++j) {
            ret(j) = 0.9 * ret(j) + e(j);
            all_returns.push_back(ret(j));
        }
        const double sd = std::sqrt(pop_var(all_returns) + 1e-8);
        for (Index j = 0; j < 2; ++j) CHECK(r(j) == Approx(e(j) / sd).epsilon(1e-10));
        if (t % 5 == 4) {  // learning in between changes e, not the bookkeeping
            const auto b = random_batch<double>(rng, 4, 0, 1, 8);
            rnd.update(b);
            raw.update(b);
        }
    }
    CHECK(rnd.returns().isApprox(ret, 1e-12));
    CHECK(rnd.reward_stats().count() == 50);
    CHECK(rnd.obs_stats().count() == 50);
    // score(): the same normaliser, nothing updated, any batch size.
    const Mat<double> probe = normal<double>(rng, 4, 5);
    Vec<double> sc(5), pe(5);
    rnd.score(probe, sc);
    rnd.prediction_error(probe, pe);
    const double sd = std::sqrt(pop_var(all_returns) + 1e-8);
    for (Index j = 0; j < 5; ++j) CHECK(sc(j) == Approx(pe(j) / sd).epsilon(1e-12));
    CHECK(rnd.reward_stats().count() == 50);
    CHECK(rnd.obs_stats().count() == 50);
    // return_std needs one column per environment.
    Vec<double> r3(3);
    CHECK_THROWS_AS(rnd.reward(Mat<double>(3, 3), Mat<double>(1, 3), probe.leftCols(3), r3), persist::ShapeError);
}

TEST_CASE("RND reward_std normalises by the std of the prediction error itself", "[intrinsic][rnd]") {
    auto o = small_options();
    o.reward_norm = RndRewardNorm::reward_std;
    o.reduction = Reduction::mean;
    RND<double> rnd(o);
    auto ro = o;
    ro.reward_norm = RndRewardNorm::none;
    RND<double> raw(ro);
    Rng rng(13);
    std::vector<double> all;
    for (int t = 0; t < 10; ++t) {
        const Index B = 1 + t % 3;  // any batch size
        const Mat<double> on = normal<double>(rng, 4, B);
        Vec<double> r(B), e(B);
        raw.reward(Mat<double>(1, B), Mat<double>(1, B), on, e);
        rnd.reward(Mat<double>(1, B), Mat<double>(1, B), on, r);
        for (Index j = 0; j < B; ++j) all.push_back(e(j));
        const double sd = all.size() >= 2 ? std::sqrt(pop_var(all) + 1e-8) : 1.0;
        for (Index j = 0; j < B; ++j) CHECK(r(j) == Approx(e(j) / sd).epsilon(1e-10));
    }
}

TEST_CASE("RND reduction: sum is output_dim times mean", "[intrinsic][rnd]") {
    auto o = small_options();
    o.reward_norm = RndRewardNorm::none;
    RND<double> sum(o);
    o.reduction = Reduction::mean;
    RND<double> mean(o);
    Rng rng(1);
    const Mat<double> on = normal<double>(rng, 4, 6);
    Vec<double> es(6), em(6);
    sum.prediction_error(on, es);
    mean.prediction_error(on, em);
    CHECK(es.isApprox(16.0 * em, 1e-12));
}

TEST_CASE("RND is deterministic for a fixed seed", "[intrinsic][rnd]") {
    auto o = small_options();
    o.update_proportion = 0.5;  // exercises the mask's random stream
    o.seed = 99;
    RND<float> a(o), b(o);
    CHECK(same_state(a, b));
    Rng ra(6), rb(6);
    Index used_total = 0;
    for (int t = 0; t < 10; ++t) {
        const Mat<float> oa = normal<float>(ra, 4, 1), ob = normal<float>(rb, 4, 1);
        Vec<float> xa(1), xb(1);
        a.reward(Mat<float>(1, 1), Mat<float>(1, 1), oa, xa);
        b.reward(Mat<float>(1, 1), Mat<float>(1, 1), ob, xb);
        CHECK(xa(0) == xb(0));
        const auto ba = random_batch<float>(ra, 4, 0, 1, 16), bb = random_batch<float>(rb, 4, 0, 1, 16);
        const auto sa = a.update(ba), sb = b.update(bb);
        CHECK(sa.loss == sb.loss);
        CHECK(sa.samples == sb.samples);
        used_total += sa.samples;
    }
    CHECK(same_state(a, b));
    CHECK(used_total > 40);   // about half of 160
    CHECK(used_total < 120);
    o.seed = 100;
    RND<float> c(o);
    CHECK(c.target().params() != a.target().params());
    // Target and predictor are initialised from independent streams.
    CHECK(a.target().linear(0).weight() != a.predictor().linear(0).weight());
}

TEST_CASE("RND state round trip: copied state gives identical rewards and updates", "[intrinsic][rnd]") {
    auto o = small_options();
    o.num_envs = 2;
    o.update_proportion = 0.5;
    o.seed = 1;
    RND<double> a(o);
    Rng rng(30);
    const Mat<double> s(1, 2), act(1, 2);
    Vec<double> r(2);
    for (int t = 0; t < 12; ++t) {
        a.reward(s, act, normal<double>(rng, 4, 2), r);
        if (t % 3 == 0) a.update(random_batch<double>(rng, 4, 0, 1, 16));
    }
    auto o2 = o;
    o2.seed = 2;
    RND<double> b(o2);
    CHECK_FALSE(same_state(a, b));
    copy_state(a, b);
    CHECK(same_state(a, b));

    auto step_both = [&](RND<double>& x, RND<double>& y) {
        const Mat<double> on = normal<double>(rng, 4, 2);
        Vec<double> rx(2), ry(2);
        x.reward(s, act, on, rx);
        y.reward(s, act, on, ry);
        CHECK(rx == ry);
        const auto batch = random_batch<double>(rng, 4, 0, 1, 16);
        const auto sx = x.update(batch), sy = y.update(batch);
        CHECK(sx.loss == sy.loss);
        CHECK(sx.samples == sy.samples);
    };
    for (int t = 0; t < 3; ++t) step_both(a, b);
    CHECK(same_state(a, b));

    const auto path = std::filesystem::temp_directory_path() / "persist_test_rnd.ckpt";
    persist::io::save_checkpoint(path, a);
    RND<double> c(o2);
    persist::io::load_checkpoint(path, c);
    std::filesystem::remove(path);
    CHECK(same_state(a, c));
    for (int t = 0; t < 2; ++t) step_both(a, c);
    CHECK(same_state(a, c));
}

TEST_CASE("RND rejects bad options and shapes", "[intrinsic][rnd]") {
    using persist::ConfigError;
    using persist::ShapeError;
    auto bad = [](auto edit) {
        auto o = small_options();
        edit(o);
        return o;
    };
    CHECK_THROWS_AS(RND<double>(bad([](auto& o) { o.obs_dim = 0; })), ConfigError);
    CHECK_THROWS_AS(RND<double>(bad([](auto& o) { o.output_dim = 0; })), ConfigError);
    CHECK_THROWS_AS(RND<double>(bad([](auto& o) { o.update_proportion = 0; })), ConfigError);
    CHECK_THROWS_AS(RND<double>(bad([](auto& o) { o.update_proportion = 1.5; })), ConfigError);
    CHECK_THROWS_AS(RND<double>(bad([](auto& o) { o.gamma = 1.0; })), ConfigError);
    CHECK_THROWS_AS(RND<double>(bad([](auto& o) { o.num_envs = 0; })), ConfigError);
    CHECK_THROWS_AS(RND<double>(bad([](auto& o) { o.obs_clip = 0; })), ConfigError);
    CHECK_THROWS_AS(RND<double>(bad([](auto& o) { o.norm_eps = 0; })), ConfigError);
    CHECK_THROWS_AS(RND<double>(bad([](auto& o) { o.lr = std::nan(""); })), ConfigError);
    CHECK_THROWS_WITH(RND<double>(bad([](auto& o) { o.update_proportion = 2; })),
                      Catch::Contains("update_proportion") && Catch::Contains("2"));
    RND<double> rnd(small_options());
    Vec<double> out(2);
    CHECK_THROWS_AS(rnd.reward(Mat<double>(1, 2), Mat<double>(1, 2), Mat<double>(3, 2), out), ShapeError);
    CHECK_THROWS_AS(rnd.score(Mat<double>(4, 3), out), ShapeError);
    CHECK_THROWS_AS(rnd.observe(Mat<double>(5, 1)), ShapeError);
    TransitionBatch<double> b;
    b.resize(3, 0, 1, 0, 4);
    CHECK_THROWS_AS(rnd.update(b), ShapeError);
}
