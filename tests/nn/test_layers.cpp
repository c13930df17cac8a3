// Layers, Sequential, MLP and initialisation: finite-difference gradients (double), float vs
// double agreement, accumulation semantics, shape errors, init schemes, copy/rebind, state.
#include <catch2/catch.hpp>

#include <Eigen/QR>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gradcheck.hpp"
#include "persist/core/concepts.hpp"
#include "persist/nn/activations.hpp"
#include "persist/nn/init.hpp"
#include "persist/nn/layer.hpp"
#include "persist/nn/layer_norm.hpp"
#include "persist/nn/linear.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/nn/sequential.hpp"

using namespace persist::nn;
using namespace nntest;
using persist::MatCRef;
using persist::ShapeError;

// ---------------------------------------------------------------------------------------------
// Concepts (core/concepts.hpp)
// ---------------------------------------------------------------------------------------------
static_assert(persist::Layer<Linear<float>> && persist::Layer<Linear<double>>);
static_assert(persist::Layer<ReLU<float>> && persist::Layer<Tanh<double>>);
static_assert(persist::Layer<ELU<float>> && persist::Layer<SiLU<double>>);
static_assert(persist::Layer<Sigmoid<float>> && persist::Layer<LayerNorm<double>>);
static_assert(persist::Layer<Identity<float>>);
static_assert(persist::Network<MLP<float>> && persist::Network<MLP<double, Tanh>>);
static_assert(persist::Network<Sequential<Linear<float>, ReLU<float>, Linear<float>>>);
static_assert(!persist::Network<Linear<double>>);  // a layer is not a network

namespace {

// Bind a free-standing layer to its own buffers, init it, and perturb the parameters so
// LayerNorm's (gain 1, bias 0) is not a special point.
template <class L>
struct Bound {
    using T = typename L::scalar_type;
    L layer;
    Vec<T> p, g;
    Bound(L l, Rng& rng) : layer(std::move(l)) {
        p = Vec<T>::Zero(layer.param_count());
        g = Vec<T>::Zero(layer.param_count());
        layer.bind(p.data(), g.data());
        layer.init(rng, Init{});
        p += (0.3 * random_mat(p.size(), 1, rng).col(0)).template cast<T>();
    }
    Bound(const Bound&) = delete;
};

template <class L>
void fd_check_layer(L l, const Mat<double>& x0, Rng& rng) {
    Bound<L> b(std::move(l), rng);
    Mat<double> x = x0;
    typename L::Cache c;
    Mat<double> y, gin;
    b.layer.forward(x, y, c);
    const Mat<double> R = random_mat(y.rows(), y.cols(), rng);
    auto loss = [&] {
        Mat<double> yy;
        typename L::Cache cc;
        b.layer.forward(x, yy, cc);
        return dot(R, yy);
    };
    b.layer.backward(x, y, R, &gin, c, true);
    CHECK(rel_err(gin, numgrad(x, loss)) < kFdTol);
    if (b.p.size() > 0) CHECK(rel_err(b.g, numgrad(b.p, loss)) < kFdTol);
}

template <class LD, class LF>
void float_matches_double(LD ld, LF lf, const Mat<double>& x, Rng& rng) {
    Bound<LD> d(std::move(ld), rng);
    Rng rng2(0);
    Bound<LF> f(std::move(lf), rng2);
    f.p = d.p.template cast<float>();
    Mat<double> yd, gd;
    Mat<float> yf, gf;
    typename LD::Cache cd;
    typename LF::Cache cf;
    const Mat<float> xf = x.cast<float>();
    d.layer.forward(x, yd, cd);
    f.layer.forward(xf, yf, cf);
    const Mat<double> R = random_mat(yd.rows(), yd.cols(), rng);
    const Mat<float> Rf = R.cast<float>();
    d.layer.backward(x, yd, R, &gd, cd, true);
    f.layer.backward(xf, yf, Rf, &gf, cf, true);
    CHECK(rel_err(yf, yd) < kFloatTol);
    CHECK(rel_err(gf, gd) < kFloatTol);
    if (d.p.size() > 0) CHECK(rel_err(f.g, d.g) < kFloatTol);
}

template <class Net>
void fd_check_network(Net& net, const Mat<double>& x0, Rng& rng) {
    Mat<double> x = x0;
    auto ws = net.make_workspace();
    const Mat<double> R = random_mat(net.out_dim(), x.cols(), rng);
    auto loss = [&] {
        auto w = net.make_workspace();
        return dot(R, net.forward(x, w));
    };
    net.zero_grad();
    net.forward(x, ws);
    Mat<double> gin;
    net.backward(ws, R, &gin);
    const Vec<double> g = net.grads();
    CHECK(rel_err(gin, numgrad(x, loss)) < kFdTol);
    CHECK(rel_err(g, numgrad(net.params(), loss)) < kFdTol);
}

template <class ND, class NF>
void network_float_matches_double(ND& nd, NF& nf, const Mat<double>& x, Rng& rng) {
    nf.params() = nd.params().template cast<float>();
    auto wd = nd.make_workspace();
    auto wf = nf.make_workspace();
    const Mat<double> R = random_mat(nd.out_dim(), x.cols(), rng);
    nd.zero_grad();
    nf.zero_grad();
    Mat<double> gd;
    Mat<float> gf;
    const Mat<double> yd = nd.forward(x, wd);
    const Mat<float> yf = nf.forward(x.cast<float>(), wf);
    nd.backward(wd, R, &gd);
    nf.backward(wf, R.cast<float>(), &gf);
    CHECK(rel_err(yf, yd) < kFloatTol);
    CHECK(rel_err(gf, gd) < kFloatTol);
    CHECK(rel_err(nf.grads(), nd.grads()) < kFloatTol);
}

template <template <class> class Act>
void mlp_checks(bool layer_norm, const char* name) {
    INFO("activation " << name << ", layer_norm " << layer_norm);
    Rng rng(11);
    MLP<double, Act> net({4, 9, 7, 3}, {.layer_norm = layer_norm});
    net.init(rng, Init::xavier_uniform());
    net.params() += 0.2 * random_mat(net.param_count(), 1, rng).col(0);
    const Mat<double> x = random_mat(4, 6, rng, 2.0);
    fd_check_network(net, x, rng);
    MLP<float, Act> netf({4, 9, 7, 3}, {.layer_norm = layer_norm});
    network_float_matches_double(net, netf, x, rng);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

TEST_CASE("Every layer matches central finite differences in double", "[nn][layers][fd]") {
    Rng rng(1);
    const Mat<double> x = random_mat(5, 4, rng, 2.0);
    const Mat<double> xk = random_away_from_zero(5, 4, rng);  // away from ReLU/ELU kinks
    SECTION("Linear") { fd_check_layer(Linear<double>(5, 3), x, rng); }
    SECTION("ReLU") { fd_check_layer(ReLU<double>(5), xk, rng); }
    SECTION("Tanh") { fd_check_layer(Tanh<double>(5), x, rng); }
    SECTION("ELU") {
        fd_check_layer(ELU<double>(5), xk, rng);
        fd_check_layer(ELU<double>(5, 0.5), xk, rng);
    }
    SECTION("SiLU") { fd_check_layer(SiLU<double>(5), x, rng); }
    SECTION("Sigmoid") { fd_check_layer(Sigmoid<double>(5), x, rng); }
    SECTION("LayerNorm") { fd_check_layer(LayerNorm<double>(5), x, rng); }
    SECTION("Identity") { fd_check_layer(Identity<double>(5), x, rng); }
}

TEST_CASE("Every layer in float agrees with the double implementation", "[nn][layers][float]") {
    Rng rng(2);
    const Mat<double> x = random_away_from_zero(6, 5, rng);
    float_matches_double(Linear<double>(6, 4), Linear<float>(6, 4), x, rng);
    float_matches_double(ReLU<double>(6), ReLU<float>(6), x, rng);
    float_matches_double(Tanh<double>(6), Tanh<float>(6), x, rng);
    float_matches_double(ELU<double>(6), ELU<float>(6), x, rng);
    float_matches_double(SiLU<double>(6), SiLU<float>(6), x, rng);
    float_matches_double(Sigmoid<double>(6), Sigmoid<float>(6), x, rng);
    float_matches_double(LayerNorm<double>(6), LayerNorm<float>(6), x, rng);
}

TEMPLATE_TEST_CASE("Layer forward values", "[nn][layers]", float, double) {
    using T = TestType;
    Mat<T> x(3, 1);
    x << T(-1), T(0.5), T(2);
    Mat<T> y;
    SECTION("activations") {
        typename ReLU<T>::Cache c;
        ReLU<T>(3).forward(x, y, c);
        CHECK(y(0) == T(0));
        CHECK(y(2) == T(2));
        ELU<T>(3).forward(x, y, c);
        CHECK(y(0) == Approx(std::expm1(-1.0)));
        CHECK(y(1) == T(0.5));
        SiLU<T>(3).forward(x, y, c);
        CHECK(y(2) == Approx(2.0 / (1.0 + std::exp(-2.0))));
        Sigmoid<T>(3).forward(x, y, c);
        CHECK(y(1) == Approx(1.0 / (1.0 + std::exp(-0.5))));
        Tanh<T>(3).forward(x, y, c);
        CHECK(y(0) == Approx(std::tanh(-1.0)));
    }
    SECTION("LayerNorm normalises each column over its features") {
        Rng rng(3);
        Bound<LayerNorm<T>> ln(LayerNorm<T>(8), rng);
        ln.layer.init(rng, Init{});
        const Mat<T> xs = (random_mat(8, 5, rng, 3.0).array() + 7.0).matrix().template cast<T>();
        typename LayerNorm<T>::Cache c;
        ln.layer.forward(xs, y, c);
        for (Index j = 0; j < 5; ++j) {
            CHECK(std::abs(y.col(j).mean()) < 1e-5);
            const double var = y.col(j).array().square().mean();
            CHECK(var == Approx(1.0).epsilon(1e-3));  // eps = 1e-5 shrinks it slightly
        }
    }
    SECTION("Linear computes W x + b") {
        Rng rng(4);
        Bound<Linear<T>> lin(Linear<T>(3, 2), rng);
        typename Linear<T>::Cache c;
        lin.layer.forward(x, y, c);
        const Mat<T> ref = lin.layer.weight() * x + lin.layer.bias();
        CHECK(rel_err(y, ref) < 1e-6);
    }
}

// ---------------------------------------------------------------------------------------------
// Networks
// ---------------------------------------------------------------------------------------------

TEST_CASE("Sequential matches finite differences and agrees in float", "[nn][sequential][fd]") {
    Rng rng(5);
    auto make = [](auto tag) {
        using T = decltype(tag);
        return Sequential(Linear<T>(4, 7), Tanh<T>{}, Linear<T>(7, 6), LayerNorm<T>(6), SiLU<T>{},
                          Linear<T>(6, 5), ELU<T>{}, Identity<T>{}, Linear<T>(5, 5), Sigmoid<T>(5),
                          Linear<T>(5, 3), ReLU<T>{});
    };
    auto net = make(0.0);
    net.init(rng);
    net.params() += 0.2 * random_mat(net.param_count(), 1, rng).col(0);
    CHECK(net.in_dim() == 4);
    CHECK(net.out_dim() == 3);
    CHECK(net.param_count() == (4 * 7 + 7) + (7 * 6 + 6) + 12 + (6 * 5 + 5) + (5 * 5 + 5) + (5 * 3 + 3));
    const Mat<double> x = random_mat(4, 5, rng, 2.0);
    // ReLU at the output: check no output sits on the kink.
    {
        auto ws = net.make_workspace();
        const Mat<double>& y = net.forward(x, ws);
        const Mat<double>& pre = ws.out[10];
        REQUIRE(pre.cwiseAbs().minCoeff() > 1e-4);
        CHECK((y.array() >= 0).all());
    }
    fd_check_network(net, x, rng);
    auto netf = make(0.0f);
    network_float_matches_double(net, netf, x, rng);
}

TEST_CASE("MLP matches finite differences and agrees in float", "[nn][mlp][fd]") {
    for (bool ln : {false, true}) {
        mlp_checks<ReLU>(ln, "ReLU");
        mlp_checks<Tanh>(ln, "Tanh");
        mlp_checks<ELU>(ln, "ELU");
        mlp_checks<SiLU>(ln, "SiLU");
        mlp_checks<Sigmoid>(ln, "Sigmoid");
    }
    SECTION("a single Linear (no hidden layer)") {
        Rng rng(6);
        MLP<double> net({3, 2});
        net.init(rng);
        fd_check_network(net, random_mat(3, 4, rng), rng);
    }
}

TEST_CASE("MLP and the equivalent Sequential compute the same function", "[nn][mlp][sequential]") {
    Rng rng(7);
    MLP<double, Tanh> mlp({3, 8, 5, 2}, {.layer_norm = true});
    mlp.init(rng);
    mlp.params() += 0.1 * random_mat(mlp.param_count(), 1, rng).col(0);
    Sequential seq(Linear<double>(3, 8), LayerNorm<double>(8), Tanh<double>{}, Linear<double>(8, 5),
                   LayerNorm<double>(5), Tanh<double>{}, Linear<double>(5, 2));
    REQUIRE(seq.param_count() == mlp.param_count());
    seq.params() = mlp.params();  // same flat layout
    const Mat<double> x = random_mat(3, 6, rng);
    auto wm = mlp.make_workspace();
    auto wsq = seq.make_workspace();
    CHECK(rel_err(mlp.forward(x, wm), seq.forward(x, wsq)) < 1e-14);
}

TEST_CASE("MLP<float, ReLU> with bias and ReLU fused into the GEMM equals the unfused Sequential bitwise",
          "[nn][mlp][sequential][gemm]") {
    Rng rng(8);
    MLP<float, ReLU> mlp({20, 70, 33, 3});
    mlp.init(rng);
    Sequential seq(Linear<float>(20, 70), ReLU<float>{}, Linear<float>(70, 33), ReLU<float>{}, Linear<float>(33, 3));
    seq.params() = mlp.params();
    for (Index B : {1, 2, 13, 64}) {
        Mat<float> x = random_mat(20, B, rng).cast<float>();
        x(0, 0) = std::numeric_limits<float>::quiet_NaN();  // propagates through ReLU in both
        const Mat<float> g = random_mat(3, B, rng).cast<float>();
        auto wm = mlp.make_workspace();
        auto wsq = seq.make_workspace();
        const Mat<float> ym = mlp.forward(x, wm);
        const Mat<float> ys = seq.forward(x, wsq);
        REQUIRE(ym.rows() == ys.rows());
        for (Index k = 0; k < ym.size(); ++k) {
            INFO("B " << B << " output " << k);
            if (std::isnan(ys.data()[k])) REQUIRE(std::isnan(ym.data()[k]));
            else REQUIRE(ym.data()[k] == ys.data()[k]);
        }
        x(0, 0) = 0.5f;
        mlp.forward(x, wm);
        seq.forward(x, wsq);
        Mat<float> gm, gs;
        mlp.zero_grad();
        seq.zero_grad();
        mlp.backward(wm, g, &gm);
        seq.backward(wsq, g, &gs);
        REQUIRE((gm.array() == gs.array()).all());
        REQUIRE((mlp.grads().array() == seq.grads().array()).all());
    }
}

TEMPLATE_TEST_CASE("MLP::backward_input_rows equals those rows of the full input gradient", "[nn][mlp]", float,
                   double) {
    using T = TestType;
    Rng rng(9);
    for (bool ln : {false, true}) {
        MLP<T, ReLU> mlp({34, 40, 24, 1}, {.layer_norm = ln});
        mlp.init(rng);
        const Index B = 19;
        const Mat<T> x = random_mat(34, B, rng).template cast<T>();
        const Mat<T> g = random_mat(1, B, rng).template cast<T>();
        auto ws = mlp.make_workspace();
        mlp.forward(x, ws);
        const persist::Vec<T> grads_before = mlp.grads();
        Mat<T> full, part;
        mlp.backward(ws, g, &full, false);
        for (auto [r0, rows] : {std::pair<Index, Index>{32, 2}, {0, 34}, {5, 17}, {33, 1}}) {
            mlp.backward_input_rows(ws, g, r0, rows, part);
            REQUIRE(part.rows() == rows);
            REQUIRE(part.cols() == B);
            const Mat<T> want = full.middleRows(r0, rows);
            CHECK(rel_err(part.template cast<double>(), want.template cast<double>()) <
                  (std::is_same_v<T, float> ? 1e-6 : 1e-14));
        }
        CHECK((mlp.grads().array() == grads_before.array()).all());  // no parameter gradients
        CHECK_THROWS_AS(mlp.backward_input_rows(ws, g, 30, 5, part), persist::ShapeError);
        CHECK_THROWS_AS(mlp.backward_input_rows(ws, g, -1, 2, part), persist::ShapeError);
    }
}

namespace {
template <class Net, class T>
void semantics_checks(Net& net, Rng& rng) {
    using persist::Mat;
    const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
    const Mat<T> x = random_mat(net.in_dim(), 5, rng).template cast<T>();
    const Mat<T> R = random_mat(net.out_dim(), 5, rng).template cast<T>();
    auto ws = net.make_workspace();
    net.zero_grad();
    net.forward(x, ws);
    Mat<T> gin1, gin2;
    net.backward(ws, R, &gin1);
    const persist::Vec<T> g1 = net.grads();
    REQUIRE(g1.norm() > 0);

    // accumulation: a second backward adds the same gradient again
    net.backward(ws, R);
    CHECK(rel_err(net.grads(), (2 * g1).eval()) < tol);

    // param_grads = false: grads untouched, grad_in still correct
    const persist::Vec<T> before = net.grads();
    net.backward(ws, R, &gin2, false);
    CHECK(net.grads() == before);
    CHECK(rel_err(gin2, gin1) < tol);

    // no grad_in requested: same parameter gradients
    net.zero_grad();
    net.backward(ws, R);
    CHECK(rel_err(net.grads(), g1) < tol);

    net.zero_grad();
    CHECK(net.grads().isZero(0));
    CHECK(net.grads().size() == net.param_count());
}
}  // namespace

TEMPLATE_TEST_CASE("Networks accumulate gradients; param_grads=false and zero_grad", "[nn][semantics]",
                   float, double) {
    using T = TestType;
    Rng rng(8);
    SECTION("MLP") {
        MLP<T, SiLU> net({3, 6, 6, 2}, {.layer_norm = true});
        net.init(rng);
        semantics_checks<decltype(net), T>(net, rng);
    }
    SECTION("Sequential") {
        Sequential net(Linear<T>(3, 6), LayerNorm<T>(6), Tanh<T>{}, Linear<T>(6, 2));
        net.init(rng);
        semantics_checks<decltype(net), T>(net, rng);
    }
    SECTION("Sequential starting with a parameter-free layer") {
        Sequential net(Tanh<T>(3), Linear<T>(3, 4), ReLU<T>{}, Linear<T>(4, 2));
        net.init(rng);
        semantics_checks<decltype(net), T>(net, rng);
    }
}

TEMPLATE_TEST_CASE("GradMode::overwrite equals zero_grad + accumulating backward", "[nn][semantics]", float,
                   double) {
    using T = TestType;
    Rng rng(19);
    for (const bool ln : {false, true}) {
        for (const Index B : {Index(1), Index(7)}) {
            MLP<T> net({5, 9, 9, 3}, {.layer_norm = ln});
            net.init(rng);
            auto ws = net.make_workspace();
            const Mat<T> x = Mat<T>::Random(5, B), g = Mat<T>::Random(3, B);
            Mat<T> dx_ref, dx;
            net.zero_grad();
            net.forward(x, ws);
            net.backward(ws, g, &dx_ref);
            const Vec<T> ref = net.grads();
            net.grads().setConstant(T(123.5));  // stale gradients must not leak through
            net.forward(x, ws);
            net.backward(ws, g, &dx, true, GradMode::overwrite);
            INFO("layer_norm " << ln << ", B " << B);
            // Same products in the same order except the B = 1 outer product; tolerance covers
            // the float rounding of a different summation order.
            const T tol = std::is_same_v<T, float> ? T(1e-5) : T(1e-13);
            CHECK((net.grads() - ref).cwiseAbs().maxCoeff() <= tol * (T(1) + ref.cwiseAbs().maxCoeff()));
            CHECK((dx - dx_ref).cwiseAbs().maxCoeff() == T(0));
            // A second overwrite backward gives the same again (no accumulation).
            net.backward(ws, g, nullptr, true, GradMode::overwrite);
            CHECK((net.grads() - ref).cwiseAbs().maxCoeff() <= tol * (T(1) + ref.cwiseAbs().maxCoeff()));
        }
    }
}

TEMPLATE_TEST_CASE("One network, two workspaces, two batch sizes", "[nn][workspace]", float, double) {
    using T = TestType;
    Rng rng(9);
    MLP<T> net({5, 16, 16, 3});
    net.init(rng);
    const Mat<T> X = random_mat(5, 32, rng).template cast<T>();
    auto act_ws = net.make_workspace();
    auto learn_ws = net.make_workspace();
    const Mat<T> Y = net.forward(X, learn_ws);
    for (Index j = 0; j < 4; ++j) {
        const persist::Vec<T> v = X.col(j);  // a single observation as a vector
        const Mat<T>& y1 = net.forward(v, act_ws);
        REQUIRE(y1.cols() == 1);
        CHECK(rel_err(y1, Y.col(j)) < (std::is_same_v<T, float> ? 1e-5 : 1e-13));
    }
}

TEMPLATE_TEST_CASE("Copies rebind their layers; weight copy by params() assignment", "[nn][copy]",
                   float, double) {
    using T = TestType;
    Rng rng(10);
    const Mat<T> x = random_mat(3, 4, rng).template cast<T>();
    SECTION("MLP") {
        MLP<T> online({3, 8, 2}, {.layer_norm = true});
        online.init(rng);
        MLP<T> copy = online;
        CHECK(copy.linear(0).weight().data() == copy.params().data());
        copy.params() *= T(2);
        auto w1 = online.make_workspace();
        auto w2 = online.make_workspace();
        CHECK(rel_err(online.forward(x, w1), copy.forward(x, w2)) > 1e-3);
        MLP<T> target({3, 8, 2}, {.layer_norm = true});
        target.params() = online.params();
        CHECK(target.forward(x, w2) == online.forward(x, w1));
        MLP<T> moved = std::move(copy);
        CHECK(moved.linear(1).weight().data() == moved.params().data() + moved.linear(0).param_count() +
                                                      moved.layer_norm(0).param_count());
        target = moved;
        CHECK(target.linear(0).weight().data() == target.params().data());
        CHECK(target.params() == moved.params());
    }
    SECTION("Sequential") {
        Sequential online(Linear<T>(3, 8), ReLU<T>{}, Linear<T>(8, 2));
        online.init(rng);
        auto copy = online;
        CHECK(copy.template layer<0>().weight().data() == copy.params().data());
        copy.params().setZero();
        auto w1 = online.make_workspace();
        auto w2 = online.make_workspace();
        CHECK(copy.forward(x, w2).isZero(0));
        CHECK(!online.forward(x, w1).isZero(0));
        copy.params() = online.params();
        CHECK(copy.forward(x, w2) == online.forward(x, w1));
    }
}

TEMPLATE_TEST_CASE("visit_state exposes one tensor 'params'", "[nn][state]", float, double) {
    using T = TestType;
    MLP<T> net({3, 4, 2});
    std::vector<persist::TensorRef> seen;
    net.visit_state([&](persist::TensorRef t) { seen.push_back(t); });
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].name == "params");
    CHECK(seen[0].dtype == persist::dtype_of<T>());
    CHECK(seen[0].rank == 1);
    CHECK(seen[0].shape[0] == net.param_count());
    CHECK(seen[0].data == net.params().data());
    Sequential seq(Linear<T>(3, 4), Tanh<T>{});
    seen.clear();
    seq.visit_state([&](persist::TensorRef t) { seen.push_back(t); });
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].shape[0] == 16);
}

TEMPLATE_TEST_CASE("Shape errors throw persist::ShapeError naming the culprit", "[nn][errors]", float,
                   double) {
    using T = TestType;
    Rng rng(12);
    MLP<T> net({3, 8, 2});
    net.init(rng);
    auto ws = net.make_workspace();
    const Mat<T> bad = Mat<T>::Zero(4, 5);
    const Mat<T> good = Mat<T>::Zero(3, 5);
    REQUIRE_THROWS_AS(net.forward(bad, ws), ShapeError);
    REQUIRE_THROWS_WITH(net.forward(bad, ws), Catch::Contains("MLP[3-8-2]") &&
                                                  Catch::Contains("expected 3 x 5, got 4 x 5"));
    REQUIRE_THROWS_AS(net.backward(ws, Mat<T>::Zero(2, 5)), ShapeError);  // no forward yet
    net.forward(good, ws);
    REQUIRE_THROWS_AS(net.backward(ws, Mat<T>::Zero(3, 5)), ShapeError);
    REQUIRE_THROWS_WITH(net.backward(ws, Mat<T>::Zero(2, 4)), Catch::Contains("expected 2 x 5, got 2 x 4"));
    {
        MLP<T> resized({3, 8, 2});
        resized.params().resize(5);  // breaks the layers' views: caught, not a dangling read
        auto rws = resized.make_workspace();
        REQUIRE_THROWS_WITH(resized.forward(good, rws), Catch::Contains("resized"));
        Sequential seq2(Linear<T>(3, 2));
        seq2.grads().resize(1);
        auto sws2 = seq2.make_workspace();
        REQUIRE_THROWS_AS(seq2.forward(good, sws2), ShapeError);
    }
    REQUIRE_THROWS_AS(MLP<T>(std::vector<Index>{3}), persist::ConfigError);
    REQUIRE_THROWS_AS(MLP<T>(std::vector<Index>{3, 0, 2}), persist::ConfigError);

    Sequential seq(Linear<T>(3, 4), ReLU<T>{}, Linear<T>(4, 2));
    auto sws = seq.make_workspace();
    REQUIRE_THROWS_WITH(seq.forward(bad, sws), Catch::Contains("Sequential") &&
                                                   Catch::Contains("expected 3 x 5, got 4 x 5"));
    seq.forward(good, sws);
    REQUIRE_THROWS_AS(seq.backward(sws, Mat<T>::Zero(2, 6)), ShapeError);
    REQUIRE_THROWS_AS(Sequential(Linear<T>(3, 4), Linear<T>(5, 2)), ShapeError);
    REQUIRE_THROWS_AS(Sequential(Linear<T>(3, 4), ReLU<T>(5)), ShapeError);

    Mat<T> y;
    typename Linear<T>::Cache lc;
    REQUIRE_THROWS_WITH(Linear<T>(3, 4).forward(bad, y, lc), Catch::Contains("Linear(3->4)"));
    typename LayerNorm<T>::Cache nc;
    REQUIRE_THROWS_AS(LayerNorm<T>(3).forward(bad, y, nc), ShapeError);
    typename Tanh<T>::Cache tc;
    REQUIRE_THROWS_WITH(Tanh<T>(3).forward(bad, y, tc), Catch::Contains("Tanh(3)"));
}

// ---------------------------------------------------------------------------------------------
// Initialisation
// ---------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("Init is seeded and reproducible; float equals rounded double", "[nn][init]",
                   float, double) {
    using T = TestType;
    for (auto scheme : {Init::torch_default(), Init::xavier_uniform(2.0), Init::orthogonal(1.5)}) {
        MLP<T> a({6, 16, 4}), b({6, 16, 4}), c({6, 16, 4});
        MLP<double> d({6, 16, 4});
        Rng r1(42), r2(42), r3(43), r4(42);
        a.init(r1, scheme);
        b.init(r2, scheme);
        c.init(r3, scheme);
        d.init(r4, scheme);
        CHECK(a.params() == b.params());
        CHECK(a.params() != c.params());
        CHECK(a.params() == d.params().cast<T>());
    }
}

TEST_CASE("TorchDefault and XavierUniform bounds and variance", "[nn][init]") {
    Rng rng(13);
    Linear<double> lin(400, 300);
    Vec<double> p(lin.param_count()), g(lin.param_count());
    lin.bind(p.data(), g.data());
    auto stats = [](const auto& m) {
        const double mean = m.mean();
        return std::pair{mean, (m.array() - mean).square().mean()};
    };
    SECTION("TorchDefault: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b") {
        lin.init(rng, Init::torch_default());
        const double bound = 1.0 / std::sqrt(400.0);
        CHECK(lin.weight().cwiseAbs().maxCoeff() <= bound);
        CHECK(lin.bias().cwiseAbs().maxCoeff() <= bound);
        CHECK(lin.weight().cwiseAbs().maxCoeff() > 0.99 * bound);
        const auto [m, v] = stats(lin.weight());
        CHECK(std::abs(m) < 0.01 * bound);
        CHECK(v == Approx(bound * bound / 3).epsilon(0.02));
        const auto [bm, bv] = stats(lin.bias());
        CHECK(bv == Approx(bound * bound / 3).epsilon(0.25));  // 300 samples
        (void)bm;
    }
    SECTION("XavierUniform: U(+-gain sqrt(6/(fan_in+fan_out))), zero bias") {
        lin.init(rng, Init::xavier_uniform(1.7));
        const double bound = 1.7 * std::sqrt(6.0 / 700.0);
        CHECK(lin.weight().cwiseAbs().maxCoeff() <= bound);
        CHECK(lin.weight().cwiseAbs().maxCoeff() > 0.99 * bound);
        const auto [m, v] = stats(lin.weight());
        CHECK(std::abs(m) < 0.01 * bound);
        CHECK(v == Approx(1.7 * 1.7 * 2.0 / 700.0).epsilon(0.02));
        CHECK(lin.bias().isZero(0));
    }
}

TEMPLATE_TEST_CASE("Orthogonal init: W W^T = gain^2 I (wide) or W^T W = gain^2 I (tall)",
                   "[nn][init]", float, double) {
    using T = TestType;
    const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
    const double gain = std::sqrt(2.0);
    Rng rng(14);
    for (auto [in, out] : {std::pair<Index, Index>{64, 32}, {32, 64}, {40, 40}, {1, 5}, {5, 1}}) {
        INFO("in " << in << " out " << out);
        Linear<T> lin(in, out);
        Vec<T> p(lin.param_count()), g(lin.param_count());
        lin.bind(p.data(), g.data());
        lin.init(rng, Init::orthogonal(gain));
        const Mat<double> W = lin.weight().template cast<double>();
        const Mat<double> G = out <= in ? Mat<double>(W * W.transpose()) : Mat<double>(W.transpose() * W);
        const Mat<double> I = gain * gain * Mat<double>::Identity(G.rows(), G.cols());
        CHECK((G - I).cwiseAbs().maxCoeff() < tol * 10);
        CHECK(lin.bias().isZero(0));
    }
}

TEST_CASE("Orthogonal init's QR equals Eigen's HouseholderQR with diag(R) > 0", "[nn][init]") {
    Rng rng(17);
    for (auto [m, n] : {std::pair<Index, Index>{7, 7}, {30, 4}, {64, 64}, {5, 1}}) {
        const Mat<double> A = random_mat(m, n, rng);
        Eigen::HouseholderQR<Mat<double>> qr(A);
        Mat<double> Q = qr.householderQ() * Mat<double>::Identity(m, n);
        for (Index j = 0; j < n; ++j)
            if (qr.matrixQR()(j, j) < 0) Q.col(j) *= -1;
        CHECK((persist::nn::detail::orthonormal_q(A) - Q).cwiseAbs().maxCoeff() < 1e-12);
    }
}

TEST_CASE("LayerNorm init ignores the scheme: gain 1, bias 0", "[nn][init]") {
    Rng rng(15);
    MLP<double> net({3, 5, 2}, {.layer_norm = true});
    net.params().setConstant(7);
    net.init(rng, Init::orthogonal());
    CHECK(net.layer_norm(0).gain().isOnes(0));
    CHECK(net.layer_norm(0).bias().isZero(0));
}

TEST_CASE("MLP init with separate output scheme", "[nn][init]") {
    Rng rng(16);
    MLP<double> net({4, 64, 64, 2});
    net.init(rng, Init::orthogonal(std::sqrt(2.0)), Init::orthogonal(0.01));
    const Mat<double> W = net.linear(2).weight();
    CHECK((W * W.transpose() - 1e-4 * Mat<double>::Identity(2, 2)).cwiseAbs().maxCoeff() < 1e-15);
    const Mat<double> W0 = net.linear(1).weight();
    CHECK((W0 * W0.transpose() - 2.0 * Mat<double>::Identity(64, 64)).cwiseAbs().maxCoeff() < 1e-12);
}
