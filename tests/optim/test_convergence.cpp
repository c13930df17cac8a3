// Every optimizer, with reasonable hyperparameters, converges on the 2-D Rosenbrock function
// and on a rotated, badly conditioned quadratic (16 dims, condition number 1e3). Deterministic:
// no randomness in the runs, fixed seeds for the problem. Thresholds: distance to the
// minimizer < 1e-2; step counts were chosen so that the measured distance (float and double)
// is at least 3x below the threshold.
//
// Sign-like updates (Lion, RMSprop, Adafactor) move every coordinate by ~lr and hover at a
// distance proportional to lr with a constant lr; they are run under cosine annealing, which
// is also how they are used. SAM with a constant rho settles O(rho) away from a minimum
// (checked separately), so rho is annealed for the convergence runs.
#include "optim/test_common.hpp"

#include <catch2/catch.hpp>

#include <Eigen/QR>
#include <string>

#include "persist/optim/optim.hpp"

using namespace persist;
using namespace persist::optim;

namespace {

constexpr double kTol = 1e-2;

template <class T>
struct Rosenbrock {
    static constexpr Index n = 2;
    // f = (1 - x)^2 + 100 (y - x^2)^2, minimum at (1, 1); classic start (-1.2, 1).
    static void grad(VecCRef<T> p, VecRef<T> g) {
        const T x = p[0], y = p[1];
        g[0] = T(-2) * (T(1) - x) - T(400) * x * (y - x * x);
        g[1] = T(200) * (y - x * x);
    }
    static Vec<T> start() { return (Vec<T>(2) << T(-1.2), T(1)).finished(); }
    static Vec<T> minimum() { return Vec<T>::Ones(2); }
};

template <class T>
struct IllQuadratic {
    static constexpr Index n = 16;
    // f = (x - x*)^T A (x - x*) / 2, A = Q diag(lambda) Q^T, lambda log-spaced in [1, 1e3],
    // Q a fixed random rotation (so no coordinate-wise method gets the basis for free).
    Mat<T> A;
    Vec<T> x_star;
    IllQuadratic() {
        CounterRng rng(2024);
        Mat<double> m(n, n);
        for (Index i = 0; i < n; ++i)
            for (Index j = 0; j < n; ++j) m(i, j) = rng.normal<double>();
        const Mat<double> q = Eigen::HouseholderQR<Mat<double>>(m).householderQ();
        Vec<double> lambda(n), xs(n);
        for (Index i = 0; i < n; ++i) {
            lambda[i] = std::pow(1e3, static_cast<double>(i) / static_cast<double>(n - 1));
            xs[i] = rng.normal<double>();
        }
        A = (q * lambda.asDiagonal() * q.transpose()).template cast<T>();
        x_star = xs.template cast<T>();
    }
    static const IllQuadratic& get() {
        static const IllQuadratic problem;
        return problem;
    }
    static void grad(VecCRef<T> p, VecRef<T> g) { g.noalias() = get().A * (p - get().x_star); }
    static Vec<T> start() { return Vec<T>::Zero(n); }
    static Vec<T> minimum() { return get().x_star; }
};

/// Runs `steps` optimizer steps from the problem's start; a schedule (if given) drives set_lr.
template <class P, class Opt, class Sched = ConstantLr<double>>
double distance_after(Opt& opt, int steps, Sched* sched = nullptr) {
    using T = typename Opt::scalar_type;
    Vec<T> p = P::start(), g(P::n);
    for (int t = 0; t < steps; ++t) {
        if (sched) sched->apply(opt);
        P::grad(p, g);
        opt.step(p, g);
        if (sched) sched->advance();
    }
    return static_cast<double>((p - P::minimum()).norm());
}

/// SAM runs: rho follows a cosine from rho0 to 0 over the run (rho0 = constant if `anneal` off).
template <class P, class Inner>
double sam_distance_after(SAM<Inner>& opt, int steps, double rho0, bool anneal) {
    using T = typename Inner::scalar_type;
    CosineWarmRestarts<double> rho({.lr = rho0, .eta_min = 0.0, .t0 = steps});
    Vec<T> p = P::start();
    for (int t = 0; t < steps; ++t) {
        if (anneal) opt.set_rho(static_cast<T>(rho.lr()));
        opt.step(p, [](VecCRef<T> w, VecRef<T> g) { P::grad(w, g); });
        rho.advance();
    }
    return static_cast<double>((p - P::minimum()).norm());
}

CosineWarmRestarts<double> anneal(double lr, int steps) {
    return CosineWarmRestarts<double>({.lr = lr, .eta_min = 0.0, .t0 = steps});
}

#define PERSIST_EXPECT_CONVERGED(dist)              \
    do {                                            \
        const double d_ = (dist);                   \
        INFO("distance to the minimizer: " << d_);  \
        CHECK(d_ < kTol);                           \
    } while (false)

}  // namespace

TEMPLATE_TEST_CASE("Every optimizer converges on the Rosenbrock function", "[optim][convergence]", float,
                   double) {
    using T = TestType;
    using P = Rosenbrock<T>;
    const Index n = P::n;
    SECTION("SGD") {
        SGD<T> opt(n, {.lr = T(1e-3)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 50000));
    }
    SECTION("SGD with momentum") {
        SGD<T> opt(n, {.lr = T(1e-3), .momentum = T(0.9)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 10000));
    }
    SECTION("SGD with momentum and dampening") {
        SGD<T> opt(n, {.lr = T(1e-3), .momentum = T(0.9), .dampening = T(0.5)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 10000));
    }
    SECTION("SGD with Nesterov momentum") {
        SGD<T> opt(n, {.lr = T(1e-3), .momentum = T(0.9), .nesterov = true});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 10000));
    }
    SECTION("Adam") {
        Adam<T> opt(n, {.lr = T(1e-2)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 10000));
    }
    SECTION("Adam with amsgrad") {
        Adam<T> opt(n, {.lr = T(1e-2), .amsgrad = true});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 50000));
    }
    SECTION("AdamW") {
        AdamW<T> opt(n, {.lr = T(1e-2), .weight_decay = T(1e-3)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 10000));
    }
    SECTION("RAdam") {
        // lr 1e-3: the first steps (rho_t <= 5) are un-adapted momentum SGD on |g| ~ 200.
        RAdam<T> opt(n, {.lr = T(1e-3)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000));
    }
    SECTION("RMSprop, cosine-annealed") {
        RMSprop<T> opt(n);
        auto sched = anneal(1e-3, 20000);
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000, &sched));
    }
    SECTION("RMSprop centered with momentum, cosine-annealed") {
        RMSprop<T> opt(n, {.momentum = T(0.5), .centered = true});
        auto sched = anneal(1e-3, 20000);
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000, &sched));
    }
    SECTION("Lion, cosine-annealed") {
        Lion<T> opt(n);
        auto sched = anneal(1e-3, 20000);
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000, &sched));
    }
    SECTION("Adafactor (relative step), cosine-annealed cap") {
        Adafactor<T> opt(n);
        auto sched = anneal(1e-2, 20000);
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000, &sched));
    }
    SECTION("Adafactor with momentum, cosine-annealed cap") {
        Adafactor<T> opt(n, {}, {.beta1 = T(0.9)});
        auto sched = anneal(1e-2, 20000);
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000, &sched));
    }
    SECTION("Lookahead<Adam>") {
        Lookahead<Adam<T>> opt(Adam<T>(n, {.lr = T(1e-2)}));
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 10000));
    }
    SECTION("Lookahead<RAdam>") {
        LookaheadRAdam<T> opt(RAdam<T>(n, {.lr = T(1e-3)}));
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000));
    }
    SECTION("SAM<SGD with momentum>, rho annealed from 0.05") {
        SAM<SGD<T>> opt(SGD<T>(n, {.lr = T(1e-3), .momentum = T(0.9)}));
        PERSIST_EXPECT_CONVERGED(sam_distance_after<P>(opt, 20000, 0.05, true));
    }
    SECTION("SAM<Adam>, rho annealed from 0.05") {
        SAM<Adam<T>> opt(Adam<T>(n, {.lr = T(1e-2)}));
        PERSIST_EXPECT_CONVERGED(sam_distance_after<P>(opt, 20000, 0.05, true));
    }
}

TEMPLATE_TEST_CASE("Every optimizer converges on a rotated quadratic with condition number 1e3",
                   "[optim][convergence]", float, double) {
    using T = TestType;
    using P = IllQuadratic<T>;
    const Index n = P::n;
    SECTION("SGD") {
        SGD<T> opt(n, {.lr = T(1.5e-3)});  // < 2 / lambda_max
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 5000));
    }
    SECTION("SGD with momentum") {
        SGD<T> opt(n, {.lr = T(1e-3), .momentum = T(0.9)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 2000));
    }
    SECTION("SGD with momentum and dampening") {
        SGD<T> opt(n, {.lr = T(1e-3), .momentum = T(0.9), .dampening = T(0.5)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 5000));
    }
    SECTION("SGD with Nesterov momentum") {
        SGD<T> opt(n, {.lr = T(1e-3), .momentum = T(0.9), .nesterov = true});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 2000));
    }
    SECTION("Adam") {
        Adam<T> opt(n, {.lr = T(1e-2)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 10000));
    }
    SECTION("Adam with amsgrad") {
        Adam<T> opt(n, {.lr = T(1e-2), .amsgrad = true});  // the max of v only grows: slower
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 50000));
    }
    SECTION("AdamW") {
        AdamW<T> opt(n, {.lr = T(1e-2), .weight_decay = T(1e-3)});
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 10000));
    }
    SECTION("RAdam") {
        RAdam<T> opt(n, {.lr = T(1e-3)});  // un-adapted first steps need lr < 2 / lambda_max
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000));
    }
    SECTION("RMSprop, cosine-annealed") {
        RMSprop<T> opt(n);
        auto sched = anneal(1e-3, 20000);
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000, &sched));
    }
    SECTION("Lion, cosine-annealed") {
        Lion<T> opt(n);
        auto sched = anneal(1e-3, 20000);
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000, &sched));
    }
    SECTION("Adafactor, parameters as a factored 4x4 matrix, cosine-annealed cap") {
        Adafactor<T> opt(n, {{0, 4, 4}});
        REQUIRE(opt.blocks().front().factored);
        auto sched = anneal(1e-2, 20000);
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000, &sched));
    }
    SECTION("Adafactor with momentum, 4x4 matrix, cosine-annealed cap") {
        Adafactor<T> opt(n, {{0, 4, 4}}, {.beta1 = T(0.9)});
        auto sched = anneal(1e-2, 20000);
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000, &sched));
    }
    SECTION("Lookahead<Adam>") {
        Lookahead<Adam<T>> opt(Adam<T>(n, {.lr = T(1e-2)}));
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000));
    }
    SECTION("Lookahead<RAdam>") {
        LookaheadRAdam<T> opt(RAdam<T>(n, {.lr = T(1e-3)}));
        PERSIST_EXPECT_CONVERGED(distance_after<P>(opt, 20000));
    }
    SECTION("SAM<SGD with momentum>, rho annealed from 0.05") {
        SAM<SGD<T>> opt(SGD<T>(n, {.lr = T(1e-3), .momentum = T(0.9)}));
        PERSIST_EXPECT_CONVERGED(sam_distance_after<P>(opt, 10000, 0.05, true));
    }
    SECTION("SAM<Adam>, constant rho = 0.05") {
        SAM<Adam<T>> opt(Adam<T>(n, {.lr = T(1e-2)}));
        PERSIST_EXPECT_CONVERGED(sam_distance_after<P>(opt, 20000, 0.05, false));
    }
}

TEMPLATE_TEST_CASE("SAM with a constant rho settles O(rho) from the minimum", "[optim][convergence][sam]",
                   float, double) {
    using T = TestType;
    using P = IllQuadratic<T>;
    for (const double rho : {0.01, 0.05}) {
        SAM<SGD<T>> opt(SGD<T>(P::n, {.lr = T(1e-3), .momentum = T(0.9)}), {.rho = static_cast<T>(rho)});
        const double d = sam_distance_after<P>(opt, 10000, rho, false);
        INFO("rho " << rho << ": distance " << d);
        CHECK(d > 0.2 * rho);  // the iterates keep being pushed off the minimum ...
        CHECK(d < 2.0 * rho);  // ... but only by about rho
    }
}
