// Homeostat: value, gradient (vs central differences), batched forms, run-time setpoints,
// state protocol and errors.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/homeostasis/homeostat.hpp"

using persist::ConfigError;
using persist::Index;
using persist::Mat;
using persist::RowVec;
using persist::ShapeError;
using persist::Vec;
using persist::homeostasis::Homeostat;

static_assert(persist::Homeostat<Homeostat<float>>);
static_assert(persist::Homeostat<Homeostat<double>>);
static_assert(persist::Stateful<Homeostat<double>>);
static_assert(!persist::ViabilityModel<Homeostat<double>>);

namespace {
Vec<double> v3(double a, double b, double c) {
    Vec<double> v(3);
    v << a, b, c;
    return v;
}
Homeostat<double> seed_homeostat() {  // seed section 8
    return Homeostat<double>(v3(0.7, 0.5, 0.9), v3(1.0, 0.5, 1.5), {"energy", "temp", "integrity"});
}
}  // namespace

TEST_CASE("homeostat reward matches -sum w (x - mu)^2", "[homeostasis]") {
    const auto h = seed_homeostat();
    CHECK(h.dim() == 3);
    CHECK(h.reward(h.setpoints()) == 0.0);
    const Vec<double> x = v3(0.2, 0.8, 1.0);
    const double expected = -(1.0 * 0.25 + 0.5 * 0.09 + 1.5 * 0.01);
    CHECK(h.reward(x) == Approx(expected).epsilon(1e-15));
    Vec<double> terms(3);
    h.terms(x, terms);
    CHECK(terms.sum() == Approx(expected).epsilon(1e-15));
    CHECK(terms(0) == Approx(-0.25));
    CHECK(h.reward(x) <= 0.0);
}

TEST_CASE("homeostat gradient matches central differences", "[homeostasis]") {
    const auto h = seed_homeostat();
    persist::Rng rng(7);
    for (int trial = 0; trial < 20; ++trial) {
        Vec<double> x(3);
        for (Index j = 0; j < 3; ++j) x(j) = rng.uniform(-1.0, 2.0);
        Vec<double> g(3);
        h.gradient(x, g);
        for (Index j = 0; j < 3; ++j) {
            const double eps = 1e-6;
            Vec<double> xp = x, xm = x;
            xp(j) += eps;
            xm(j) -= eps;
            const double fd = (h.reward(xp) - h.reward(xm)) / (2 * eps);
            CHECK(g(j) == Approx(fd).margin(1e-8));
        }
        CHECK((g - (-2.0 * h.weights().array() * (x - h.setpoints()).array()).matrix()).norm() <= 1e-15);
    }
}

TEST_CASE("homeostat batched rewards and gradients equal per-column values", "[homeostasis]") {
    const auto h = seed_homeostat();
    Mat<double> X = Mat<double>::Random(3, 17);
    RowVec<double> r(17);
    h.rewards(X, r);
    Mat<double> G(3, 17);
    h.gradients(X, G);
    Mat<double> out2(2, 17);
    h.rewards(X, out2.row(1));  // a row of a column-major matrix (strided) works too
    for (Index b = 0; b < 17; ++b) {
        CHECK(r(b) == h.reward(X.col(b)));
        CHECK(out2(1, b) == r(b));
        Vec<double> g(3);
        h.gradient(X.col(b), g);
        CHECK((G.col(b) - g).norm() == 0.0);
    }
    // float instantiation agrees to float precision
    Homeostat<float> hf(h.setpoints().cast<float>(), h.weights().cast<float>());
    RowVec<float> rf(17);
    hf.rewards(X.cast<float>(), rf);
    for (Index b = 0; b < 17; ++b) CHECK(rf(b) == Approx(r(b)).epsilon(1e-5));
}

TEST_CASE("homeostat setpoints and weights change at run time", "[homeostasis]") {
    auto h = seed_homeostat();
    const Vec<double> x = v3(0.2, 0.8, 1.0);
    h.set_setpoints(x);
    CHECK(h.reward(x) == 0.0);
    h.set_setpoint(h.index_of("temp"), 0.0);
    CHECK(h.reward(x) == Approx(-0.5 * 0.64));
    h.set_weights(v3(0, 0, 0));
    CHECK(h.reward(x) == 0.0);
    // errors leave the object unchanged
    CHECK_THROWS_AS(h.set_weights(v3(1, -1, 1)), ConfigError);
    CHECK(h.weights().isZero());
    CHECK_THROWS_AS(h.set_setpoints(Vec<double>(2)), ShapeError);
    CHECK_THROWS_AS(h.set_setpoint(3, 0.0), ConfigError);
    CHECK_THROWS_AS(h.index_of("hunger"), ConfigError);
}

TEST_CASE("homeostat state round trip through visit_state", "[homeostasis]") {
    auto a = seed_homeostat();
    a.set_setpoints(v3(0.1, 0.2, 0.3));
    auto b = seed_homeostat();
    std::vector<std::vector<double>> saved;
    a.visit_state([&](persist::TensorRef t) {
        const auto* p = static_cast<const double*>(t.data);
        saved.emplace_back(p, p + t.numel());
    });
    std::size_t i = 0;
    b.visit_state([&](persist::TensorRef t) {
        REQUIRE(t.dtype == persist::DType::f64);
        std::copy(saved[i].begin(), saved[i].end(), static_cast<double*>(t.data));
        ++i;
    });
    CHECK(i == 2);
    CHECK(b.setpoints() == a.setpoints());
    CHECK(b.weights() == a.weights());
}

TEST_CASE("homeostat errors name the index and value", "[homeostasis]") {
    auto msg = [](auto&& f) {
        try {
            f();
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(msg([] { Homeostat<double>(v3(0, 0, 0), v3(1, -0.5, 1)); }) ==
          "Homeostat: w[1] must be finite and >= 0, got -0.5");
    CHECK(msg([] { Homeostat<double>(v3(0, 0, 0), v3(1, 1, 1), {"a", "b"}); }).find("one entry per dimension") !=
          std::string::npos);
    CHECK(msg([] { Homeostat<double>(v3(0, 0, 0), v3(1, 1, 1), {"a", "b", "a"}); }).find("repeats") !=
          std::string::npos);
    CHECK(msg([] { Homeostat<double>(v3(0, 0, 0), Vec<double>(2)); }) ==
          "Homeostat: mu and w must have the same size, got 3 and 2");
    CHECK(msg([] { Homeostat<double>(v3(0, std::nan(""), 0), v3(1, 1, 1)); }).find("mu[1] must be finite") !=
          std::string::npos);
    CHECK(msg([] {
              Homeostat<double>(v3(0, 0, 0), v3(1, 1, std::numeric_limits<double>::infinity()), {"e", "t", "i"});
          }) == "Homeostat: w[2] (\"i\") must be finite and >= 0, got inf");
    const auto h = seed_homeostat();
    CHECK_THROWS_AS(h.reward(Vec<double>(2)), ShapeError);
    Vec<double> g(2);
    CHECK_THROWS_AS(h.gradient(v3(0, 0, 0), g), ShapeError);
    RowVec<double> r(3);
    CHECK_THROWS_AS(h.rewards(Mat<double>(3, 4), r), ShapeError);
    // a zero-dimensional homeostat is valid (environments without internal variables)
    Homeostat<double> empty(Vec<double>(0), Vec<double>(0));
    CHECK(empty.reward(Vec<double>(0)) == 0.0);
}
