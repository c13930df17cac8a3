// Concepts, NoIntrinsic, RunningMeanStd (parallel merge vs two-pass statistics).
#include "intrinsic/intrinsic_test.hpp"

#include <cmath>

using namespace intrtest;
using persist::intrinsic::NoIntrinsic;
using persist::intrinsic::RND;
using persist::intrinsic::RunningMeanStd;
using persist::intrinsic::Surprise;

static_assert(persist::Intrinsic<NoIntrinsic<float>>);
static_assert(persist::Intrinsic<NoIntrinsic<double>>);
static_assert(persist::Intrinsic<Surprise<float>>);
static_assert(persist::Intrinsic<Surprise<double>>);
static_assert(persist::Intrinsic<RND<float>>);
static_assert(persist::Intrinsic<RND<double>>);
static_assert(persist::Intrinsic<Surprise<double, persist::nn::ReLU>>);
static_assert(persist::Intrinsic<RND<float, persist::nn::Tanh>>);
static_assert(persist::Stateful<NoIntrinsic<double>>);
static_assert(persist::Stateful<Surprise<float>>);
static_assert(persist::Stateful<RND<double>>);
static_assert(persist::Stateful<RunningMeanStd<float>>);
static_assert(std::same_as<persist::scalar_of<Surprise<float>>, float>);
static_assert(std::same_as<persist::scalar_of<RND<double>>, double>);
static_assert(!persist::Intrinsic<RunningMeanStd<double>>);

TEMPLATE_TEST_CASE("NoIntrinsic returns zeros and learns nothing", "[intrinsic][none]", float, double) {
    using T = TestType;
    NoIntrinsic<T> none;
    Rng rng(1);
    const auto batch = random_batch<T>(rng, 3, 2, 1, 5);
    const Mat<T> s = states(batch);
    Vec<T> out = Vec<T>::Constant(5, T(7));
    none.reward(s, batch.action, batch.next_observation, out);
    CHECK(out.isZero(0));
    const auto st = none.update(batch);
    CHECK(st.loss == T(0));
    CHECK(st.samples == 0);
    CHECK(entries(none).empty());
    Vec<T> wrong(4);
    CHECK_THROWS_AS(none.reward(s, batch.action, batch.next_observation, wrong), persist::ShapeError);
    CHECK_THROWS_AS(none.reward(s.leftCols(4), batch.action, batch.next_observation, out), persist::ShapeError);
}

namespace {
/// Two-pass mean and population variance in long double.
template <class T>
void two_pass(const Mat<T>& x, Vec<long double>& mean, Vec<long double>& var) {
    const Index d = x.rows(), n = x.cols();
    mean.setZero(d);
    var.setZero(d);
    for (Index j = 0; j < n; ++j)
        for (Index i = 0; i < d; ++i) mean(i) += static_cast<long double>(x(i, j));
    mean /= static_cast<long double>(n);
    for (Index j = 0; j < n; ++j)
        for (Index i = 0; i < d; ++i) {
            const long double c = static_cast<long double>(x(i, j)) - mean(i);
            var(i) += c * c;
        }
    var /= static_cast<long double>(n);
}
}  // namespace

TEMPLATE_TEST_CASE("RunningMeanStd merge equals two-pass statistics over a stream", "[intrinsic][rms]", float,
                   double) {
    using T = TestType;
    // float: relative errors of a few 1e-6 per dimension are rounding (Welford accumulates one
    // rounding per sample); double: round-off only.
    const double mtol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
    const double vtol = std::is_same_v<T, float> ? 1e-4 : 1e-11;
    Rng rng(2024);
    const Index d = 3, n = 4000;
    // Offsets and scales differ per dimension (an offset is where a naive sum of squares fails).
    Mat<T> x(d, n);
    for (Index j = 0; j < n; ++j) {
        x(0, j) = static_cast<T>(rng.normal<double>());
        x(1, j) = static_cast<T>(10.0 + 0.5 * rng.normal<double>());
        x(2, j) = static_cast<T>(rng.uniform<double>(-5.0, 20.0));
    }
    Vec<long double> m, v;
    two_pass(x, m, v);

    auto check = [&](const RunningMeanStd<T>& r) {
        REQUIRE(r.count() == n);
        for (Index i = 0; i < d; ++i) {
            const double mi = static_cast<double>(m(i)), vi = static_cast<double>(v(i));
            CHECK(std::abs(static_cast<double>(r.mean(i)) - mi) <= mtol * (std::abs(mi) + std::sqrt(vi)));
            CHECK(std::abs(static_cast<double>(r.var(i)) - vi) <= vtol * vi);
        }
    };

    SECTION("random chunk sizes") {
        RunningMeanStd<T> r(d);
        Index j = 0;
        while (j < n) {
            const Index c = std::min<Index>(n - j, 1 + static_cast<Index>(rng.below(64)));
            r.update(x.middleCols(j, c));
            j += c;
        }
        check(r);
    }
    SECTION("one sample at a time (Welford)") {
        RunningMeanStd<T> r(d);
        for (Index j = 0; j < n; ++j) r.update(x.col(j));
        check(r);
    }
    SECTION("parallel halves merged") {
        RunningMeanStd<T> a(d), b(d);
        a.update(x.leftCols(1234));
        for (Index j = 1234; j < n; j += 100) b.update(x.middleCols(j, std::min<Index>(100, n - j)));
        a.merge(b);
        check(a);
    }
    SECTION("whole stream at once") {
        RunningMeanStd<T> r(d);
        r.update(x);
        check(r);
    }
}

TEST_CASE("RunningMeanStd edge cases", "[intrinsic][rms]") {
    RunningMeanStd<double> r(2);
    CHECK(r.count() == 0);
    CHECK(r.mean().isZero(0));
    CHECK(r.var() == Vec<double>::Ones(2));  // identity normaliser before any sample
    r.update(Mat<double>(2, 0));
    CHECK(r.count() == 0);
    Mat<double> one(2, 1);
    one << 3.0, -4.0;
    r.update(one);
    CHECK(r.count() == 1);
    CHECK(r.mean() == one.col(0));
    CHECK(r.var().isZero(0));  // the prior is replaced exactly, not blended
    RunningMeanStd<double> empty(2);
    r.merge(empty);
    CHECK(r.count() == 1);
    r.reset();
    CHECK(r.count() == 0);
    CHECK(r.var() == Vec<double>::Ones(2));
    CHECK_THROWS_AS(RunningMeanStd<double>(0), persist::ConfigError);
    CHECK_THROWS_AS(r.update(Mat<double>(3, 2)), persist::ShapeError);
    CHECK_THROWS_AS(r.merge(RunningMeanStd<double>(3)), persist::ShapeError);
    const auto e = entries(r);
    REQUIRE(e.size() == 3);
    CHECK(e[0].name == "mean");
    CHECK(e[1].name == "var");
    CHECK(e[2].name == "count");
}
