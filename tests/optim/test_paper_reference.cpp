// Lion, Adafactor, Lookahead and SAM against independent, deliberately plain scalar-loop
// implementations of the papers' algorithms, compared at every step.
#include "optim/test_common.hpp"

#include <catch2/catch.hpp>

#include <vector>

#include "persist/optim/adafactor.hpp"
#include "persist/optim/adam.hpp"
#include "persist/optim/lion.hpp"
#include "persist/optim/lookahead.hpp"
#include "persist/optim/sam.hpp"
#include "persist/optim/sgd.hpp"

using namespace persist;
using namespace persist::optim;
using persist_test::worst_ratio;

namespace {

// The difference between implementation and reference is operation order, FMA contraction
// and (Adafactor) sums vs means, accumulated over 200+ steps; momentum amplifies float
// round-off by up to 1 / (1 - mu) = 10, hence the looser float tolerance.
template <class T>
struct Tol;
template <>
struct Tol<double> {
    static constexpr double rel = 1e-12, abs = 1e-14;
};
template <>
struct Tol<float> {
    static constexpr double rel = 1e-4, abs = 1e-5;
};

using Dv = std::vector<double>;

template <class T>
Dv to_dv(const Vec<T>& v) {
    Dv out(static_cast<std::size_t>(v.size()));
    for (Index i = 0; i < v.size(); ++i) out[static_cast<std::size_t>(i)] = static_cast<double>(v[i]);
    return out;
}

template <class T>
double worst(const Vec<T>& a, const std::vector<T>& b) {
    double w = 0.0;
    for (Index i = 0; i < a.size(); ++i) {
        const double x = static_cast<double>(a[i]), y = static_cast<double>(b[static_cast<std::size_t>(i)]);
        w = std::max(w, std::abs(x - y) / (Tol<T>::abs + Tol<T>::rel * std::max(std::abs(x), std::abs(y))));
    }
    return w;
}

template <class T>
T sgn(T x) {
    return static_cast<T>((x > T(0)) - (x < T(0)));
}

// ---- Lion: Chen et al. 2023, Algorithm 2 -------------------------------------------------
template <class T>
struct LionRef {
    T lr, b1, b2, wd;
    std::vector<T> m;
    void step(std::vector<T>& p, const std::vector<T>& g) {
        if (m.empty()) m.assign(p.size(), T(0));
        for (std::size_t i = 0; i < p.size(); ++i) {
            const T c = b1 * m[i] + (T(1) - b1) * g[i];  // interpolation
            p[i] = p[i] - lr * (sgn(c) + wd * p[i]);      // sign update + decoupled decay
            m[i] = b2 * m[i] + (T(1) - b2) * g[i];        // momentum
        }
    }
};

// ---- torch-semantics SGD and Adam as scalar loops (inner optimizers) ----------------------
template <class T>
struct SgdRef {
    T lr, mu;
    std::vector<T> b;
    bool first = true;
    void step(std::vector<T>& p, const std::vector<T>& g) {
        if (b.empty()) b.assign(p.size(), T(0));
        for (std::size_t i = 0; i < p.size(); ++i) {
            b[i] = first ? g[i] : mu * b[i] + g[i];
            p[i] -= lr * b[i];
        }
        first = false;
    }
};

template <class T>
struct AdamRef {
    T lr = T(1e-3), b1 = T(0.9), b2 = T(0.999), eps = T(1e-8);
    std::vector<T> m, v;
    long t = 0;
    void step(std::vector<T>& p, const std::vector<T>& g) {
        if (m.empty()) m.assign(p.size(), T(0)), v.assign(p.size(), T(0));
        ++t;
        const double bc1 = 1.0 - std::pow(static_cast<double>(b1), static_cast<double>(t));
        const double bc2 = 1.0 - std::pow(static_cast<double>(b2), static_cast<double>(t));
        for (std::size_t i = 0; i < p.size(); ++i) {
            m[i] = b1 * m[i] + (T(1) - b1) * g[i];
            v[i] = b2 * v[i] + (T(1) - b2) * g[i] * g[i];
            const double mh = static_cast<double>(m[i]) / bc1, vh = static_cast<double>(v[i]) / bc2;
            p[i] = static_cast<T>(static_cast<double>(p[i]) - static_cast<double>(lr) * mh /
                                                                  (std::sqrt(vh) + static_cast<double>(eps)));
        }
    }
};

template <class T>
std::vector<T> to_std(const Vec<T>& v) {
    return std::vector<T>(v.data(), v.data() + v.size());
}

// ---- Adafactor: Shazeer & Stern 2018, Algorithms 4 and 5, relative step (Sec. 8) -----------
// Written with the paper's row SUMS R = (G^2 + eps1) 1_m and column sums C = 1_n^T (G^2 + eps1),
// V = R C / (1_n^T R), computed in double with explicit loops.
struct AdafactorRef {
    struct Blk {
        Index off, rows, cols;
    };
    std::vector<Blk> blocks;  // full, gap-filled layout
    double lr = 1e-2, b1 = 0.0, c = 0.8, d = 1.0, eps1 = 1e-30, eps2 = 1e-3;
    bool relative = true, scale = true;
    std::vector<Dv> R, C, V, M;
    long t = 0;

    void step(Dv& x, const Dv& g) {
        if (R.empty()) {
            for (const auto& b : blocks) {
                const bool fac = b.rows > 1 && b.cols > 1;
                R.push_back(Dv(fac ? static_cast<std::size_t>(b.rows) : 0, 0.0));
                C.push_back(Dv(fac ? static_cast<std::size_t>(b.cols) : 0, 0.0));
                V.push_back(Dv(fac ? 0 : static_cast<std::size_t>(b.rows * b.cols), 0.0));
                M.push_back(Dv(static_cast<std::size_t>(b.rows * b.cols), 0.0));
            }
        }
        ++t;
        const double beta2 = 1.0 - std::pow(static_cast<double>(t), -c);
        const double rho = relative ? std::min(lr, 1.0 / std::sqrt(static_cast<double>(t))) : lr;
        for (std::size_t k = 0; k < blocks.size(); ++k) {
            const auto& b = blocks[k];
            const auto n = static_cast<std::size_t>(b.rows), m = static_cast<std::size_t>(b.cols);
            const auto at = [&](std::size_t i, std::size_t j) {  // column-major
                return static_cast<std::size_t>(b.off) + i + j * n;
            };
            double ss = 0.0;
            for (std::size_t i = 0; i < n; ++i)
                for (std::size_t j = 0; j < m; ++j) ss += x[at(i, j)] * x[at(i, j)];
            const double alpha = scale ? std::max(eps2, std::sqrt(ss / double(n * m))) * rho : rho;
            std::vector<double> U(n * m);
            if (n > 1 && m > 1) {
                for (std::size_t i = 0; i < n; ++i) {
                    double s = 0.0;
                    for (std::size_t j = 0; j < m; ++j) s += g[at(i, j)] * g[at(i, j)] + eps1;
                    R[k][i] = beta2 * R[k][i] + (1.0 - beta2) * s;
                }
                for (std::size_t j = 0; j < m; ++j) {
                    double s = 0.0;
                    for (std::size_t i = 0; i < n; ++i) s += g[at(i, j)] * g[at(i, j)] + eps1;
                    C[k][j] = beta2 * C[k][j] + (1.0 - beta2) * s;
                }
                double rsum = 0.0;
                for (double r : R[k]) rsum += r;
                for (std::size_t i = 0; i < n; ++i)
                    for (std::size_t j = 0; j < m; ++j)
                        U[i + j * n] = g[at(i, j)] / std::sqrt(R[k][i] * C[k][j] / rsum);
            } else {
                for (std::size_t e = 0; e < n * m; ++e) {
                    const double gg = g[static_cast<std::size_t>(b.off) + e];
                    V[k][e] = beta2 * V[k][e] + (1.0 - beta2) * (gg * gg + eps1);
                    U[e] = gg / std::sqrt(V[k][e]);
                }
            }
            double us = 0.0;
            for (double u : U) us += u * u;
            const double denom = std::max(1.0, std::sqrt(us / double(n * m)) / d);
            for (std::size_t e = 0; e < n * m; ++e) {
                const double u = U[e] / denom;
                const std::size_t idx = static_cast<std::size_t>(b.off) + e;
                if (b1 > 0.0) {
                    M[k][e] = b1 * M[k][e] + (1.0 - b1) * alpha * u;
                    x[idx] -= M[k][e];
                } else {
                    x[idx] -= alpha * u;
                }
            }
        }
    }
};

}  // namespace

TEMPLATE_TEST_CASE("Lion matches a scalar loop of Chen et al. 2023 Algorithm 2", "[optim][paper][lion]",
                   float, double) {
    using T = TestType;
    const Index n = 7;
    const auto grads = persist_test::gradient_sequence<T>(n, 250, 11);
    struct Case {
        T lr, b1, b2, wd;
    };
    for (const Case c : {Case{T(1e-4), T(0.9), T(0.99), T(0)}, Case{T(1e-2), T(0.95), T(0.98), T(0.1)},
                         Case{T(3e-3), T(0), T(0.5), T(1)}}) {
        Lion<T> opt(n, {.lr = c.lr, .beta1 = c.b1, .beta2 = c.b2, .weight_decay = c.wd});
        LionRef<T> ref{c.lr, c.b1, c.b2, c.wd, {}};
        Vec<T> p = Vec<T>::LinSpaced(n, T(-1), T(2));
        std::vector<T> q = to_std(p);
        double w = 0.0;
        for (const auto& g : grads) {
            opt.step(p, g);
            ref.step(q, to_std(g));
            w = std::max(w, worst(p, q));
        }
        CHECK(w <= 1.0);
        CHECK(opt.state().step == 250);
    }
}

TEMPLATE_TEST_CASE("Adafactor matches a scalar loop of Shazeer & Stern 2018 Algorithms 4/5",
                   "[optim][paper][adafactor]", float, double) {
    using T = TestType;
    // 3x4 matrix, gap (5, vector), 2x6 matrix, 1x3 row (vector), tail gap (2).
    const std::vector<ParamBlock> layout{{17, 2, 6}, {0, 3, 4}, {29, 1, 3}};
    const Index n = 34;
    const std::vector<AdafactorRef::Blk> full{{0, 3, 4}, {12, 5, 1}, {17, 2, 6}, {29, 1, 3}, {32, 2, 1}};
    const auto grads = persist_test::gradient_sequence<T>(n, 200, 5);

    struct Case {
        const char* name;
        AdafactorOptions<T> o;
    };
    const Case cases[] = {
        {"paper defaults", {}},
        {"absolute step, no parameter scale", {.lr = T(0.05), .relative_step = false, .scale_parameter = false}},
        {"momentum", {.beta1 = T(0.9)}},
        {"tight clipping, c = 0.5",
         {.lr = T(0.1), .decay_rate = T(0.5), .clip_threshold = T(0.5), .eps2 = T(1e-2)}},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.name) {
            Adafactor<T> opt(n, layout, c.o);
            REQUIRE(opt.blocks().size() == full.size());
            for (std::size_t k = 0; k < full.size(); ++k) {
                CHECK(opt.blocks()[k].block.offset == full[k].off);
                CHECK(opt.blocks()[k].block.rows == full[k].rows);
                CHECK(opt.blocks()[k].block.cols == full[k].cols);
            }
            AdafactorRef ref;
            ref.blocks = full;
            ref.lr = static_cast<double>(c.o.lr);
            ref.relative = c.o.relative_step;
            ref.scale = c.o.scale_parameter;
            ref.b1 = static_cast<double>(c.o.beta1);
            ref.c = static_cast<double>(c.o.decay_rate);
            ref.d = static_cast<double>(c.o.clip_threshold);
            ref.eps1 = static_cast<double>(c.o.eps1);
            ref.eps2 = static_cast<double>(c.o.eps2);
            Vec<T> p = Vec<T>::LinSpaced(n, T(-0.7), T(0.9));
            Dv q = to_dv(p);
            double w = 0.0;
            int step = 0;
            for (const auto& g : grads) {
                ++step;
                opt.step(p, g);
                ref.step(q, to_dv(g));
                Vec<T> qt(n);
                for (Index i = 0; i < n; ++i) qt[i] = static_cast<T>(q[static_cast<std::size_t>(i)]);
                // (float: the reference runs in double.)
                const double ws = worst_ratio(p, qt, Tol<T>::rel, Tol<T>::abs);
                if (ws > 1.0) FAIL_CHECK("differs at step " << step << "\n  " << p.transpose() << "\n  " << qt.transpose());
                w = std::max(w, ws);
            }
            CHECK(w <= 1.0);
        }
    }
}

TEMPLATE_TEST_CASE("Adafactor's factored second moment is the paper's row/column construction",
                   "[optim][paper][adafactor]", float, double) {
    using T = TestType;
    const Index rows = 5, cols = 4;
    SECTION("state after one step: row/column means of G^2 + eps1 (beta2_1 = 0)") {
        Adafactor<T> opt(rows * cols, {{0, rows, cols}});
        const auto g = persist_test::gradient_sequence<T>(rows * cols, 1, 3)[0];
        Vec<T> p = Vec<T>::Constant(rows * cols, T(0.5));
        opt.step(p, g);
        const Eigen::Map<const Mat<T>> G(g.data(), rows, cols);
        const Mat<T> G2 = (G.array().square() + opt.options().eps1).matrix();
        REQUIRE(opt.state().row.size() == rows);
        REQUIRE(opt.state().col.size() == cols);
        CHECK(worst_ratio(opt.state().row, Vec<T>(G2.rowwise().mean()), Tol<T>::rel, Tol<T>::abs) <= 1.0);
        CHECK(worst_ratio(opt.state().col, Vec<T>(G2.colwise().mean().transpose()), Tol<T>::rel,
                          Tol<T>::abs) <= 1.0);
        // Means reproduce the paper's V = R C / 1^T R with row/column sums.
        const Vec<T> rsum = G2.rowwise().sum(), csum = G2.colwise().sum().transpose();
        const Mat<T> v_paper = rsum * csum.transpose() / rsum.sum();
        const Mat<T> v_means = opt.state().row * opt.state().col.transpose() / opt.state().row.mean();
        CHECK(worst_ratio(v_means.reshaped(), v_paper.reshaped(), 10 * Tol<T>::rel, Tol<T>::abs) <= 1.0);
    }
    SECTION("rank-1 G^2 is factored exactly: U = sign(G), update = alpha sign(G)") {
        Adafactor<T> opt(rows * cols, {{0, rows, cols}}, {.eps1 = T(0)});
        Vec<T> u(rows), v(cols);
        u << T(0.3), T(-1.2), T(2.0), T(0.05), T(-0.7);
        v << T(1.5), T(-0.2), T(0.8), T(-3.0);
        const Mat<T> G = u * v.transpose();
        Vec<T> g = G.reshaped();
        Vec<T> p = Vec<T>::LinSpaced(rows * cols, T(-1), T(1));
        const Vec<T> p0 = p;
        opt.step(p, g);
        const double rms_x = std::sqrt(static_cast<double>(p0.squaredNorm()) / double(rows * cols));
        const double alpha = std::max(1e-3, rms_x) * 1e-2;  // rho_1 = min(1e-2, 1)
        const Vec<T> expect = (p0.array() - static_cast<T>(alpha) * g.array().sign()).matrix();
        CHECK(worst_ratio(p, expect, 10 * Tol<T>::rel, Tol<T>::abs) <= 1.0);
    }
    SECTION("state is O(rows + cols) for matrices, O(n) only for vectors and momentum") {
        const Index r = 30, c = 40;
        Adafactor<T> opt(r * c + c, {{0, r, c}});  // a 30x40 weight and its bias (a gap)
        CHECK(opt.state_numel() == r + c + c);
        CHECK(opt.state_numel() < r * c / 10);
        Adafactor<T> with_momentum(r * c + c, {{0, r, c}}, {.beta1 = T(0.9)});
        CHECK(with_momentum.state_numel() == r + c + c + r * c + c);
        Index visited = 0;
        opt.visit_state([&](const TensorRef& t) { visited += static_cast<Index>(t.numel()); });
        CHECK(visited == r + c + c + 1);  // + the step counter
    }
}

TEMPLATE_TEST_CASE("Lookahead matches a scalar loop of Zhang et al. 2019 Algorithm 1",
                   "[optim][paper][lookahead]", float, double) {
    using T = TestType;
    const Index n = 6;
    const auto grads = persist_test::gradient_sequence<T>(n, 203, 21);
    auto run = [&](auto& opt, auto& inner_ref, Index k, T alpha) {
        Vec<T> p = Vec<T>::LinSpaced(n, T(0.5), T(-1.5));
        std::vector<T> fast = to_std(p), slow = fast;  // phi_0 = theta_0
        double w = 0.0;
        Index i = 0;
        for (const auto& g : grads) {
            opt.step(p, g);
            inner_ref.step(fast, to_std(g));  // theta_{t,i} = theta_{t,i-1} + A(L, theta, d)
            if (++i % k == 0) {
                for (std::size_t j = 0; j < fast.size(); ++j) {
                    slow[j] = slow[j] + alpha * (fast[j] - slow[j]);  // phi_t
                    fast[j] = slow[j];                                 // theta_{t+1,0} = phi_t
                }
            }
            w = std::max(w, worst(p, fast));
        }
        CHECK(w <= 1.0);
        CHECK(worst(Vec<T>(opt.state().slow), slow) <= 1.0);
    };
    SECTION("defaults k = 5, alpha = 0.5 around momentum SGD") {
        Lookahead<SGD<T>> opt(SGD<T>(n, {.lr = T(0.01), .momentum = T(0.9)}));
        CHECK(opt.options().k == 5);
        CHECK(opt.options().alpha == T(0.5));
        SgdRef<T> ref{T(0.01), T(0.9), {}};
        run(opt, ref, 5, T(0.5));
    }
    SECTION("k = 3, alpha = 0.8 around Adam") {
        Lookahead<Adam<T>> opt(Adam<T>(n, {.lr = T(0.01)}), {.k = 3, .alpha = T(0.8)});
        AdamRef<T> ref;
        ref.lr = T(0.01);
        run(opt, ref, 3, T(0.8));
    }
}

TEMPLATE_TEST_CASE("SAM matches a scalar loop of Foret et al. 2021 Algorithm 1", "[optim][paper][sam]",
                   float, double) {
    using T = TestType;
    const Index n = 5;
    // L(w) = sum_i a_i (w_i - c_i)^2 / 2 + 0.3 sin(2 w_i): non-quadratic, so w + e matters.
    const std::vector<T> a{T(1), T(10), T(0.5), T(3), T(30)}, c{T(1), T(-1), T(2), T(0.5), T(0)};
    auto grad_at = [&](const auto& w, auto& out) {
        for (Index i = 0; i < n; ++i) {
            const auto k = static_cast<std::size_t>(i);
            out[i] = a[k] * (w[i] - c[k]) + T(0.6) * std::cos(T(2) * w[i]);
        }
    };
    auto run = [&](auto& opt, auto& inner_ref, T rho, bool closure_only) {
        Vec<T> p = Vec<T>::LinSpaced(n, T(-2), T(3));
        std::vector<T> w = to_std(p);
        Vec<T> g(n);
        double worst_p = 0.0;
        for (int t = 0; t < 200; ++t) {
            // Reference: e = rho g / ||g||, g_sam = grad L(w + e), inner step from w.
            std::vector<T> gw(w.size()), we(w.size()), gs(w.size());
            grad_at(w, gw);
            double nn = 0.0;
            for (T x : gw) nn += static_cast<double>(x) * static_cast<double>(x);
            const T norm = static_cast<T>(std::sqrt(nn));
            for (std::size_t i = 0; i < w.size(); ++i) we[i] = w[i] + (norm > T(0) ? rho / norm * gw[i] : T(0));
            grad_at(we, gs);
            inner_ref.step(w, gs);
            const T* buffer = p.data();
            auto fn = [&](VecCRef<T> wpe, VecRef<T> out) {
                CHECK(wpe.data() == buffer);  // the caller's own buffer, perturbed in place
                grad_at(wpe, out);
            };
            if (closure_only) {
                opt.step(p, fn);
            } else {
                grad_at(p, g);
                opt.step(p, g, fn);
            }
            worst_p = std::max(worst_p, worst(p, w));
        }
        CHECK(worst_p <= 1.0);
    };
    SECTION("rho = 0.05 (default) around momentum SGD, gradient given") {
        SAM<SGD<T>> opt(SGD<T>(n, {.lr = T(0.01), .momentum = T(0.9)}));
        CHECK(opt.options().rho == T(0.05));
        SgdRef<T> ref{T(0.01), T(0.9), {}};
        run(opt, ref, T(0.05), false);
    }
    SECTION("rho = 0.2 around Adam, closure-only step") {
        SAM<Adam<T>> opt(Adam<T>(n, {.lr = T(0.02)}), {.rho = T(0.2)});
        AdamRef<T> ref;
        ref.lr = T(0.02);
        run(opt, ref, T(0.2), true);
    }
    SECTION("the parameter buffer is restored exactly before the inner step") {
        // Inner = NullOptimizer: after a SAM step the parameters must be bitwise unchanged.
        SAM<NullOptimizer<T>> opt(NullOptimizer<T>(n), {.rho = T(0.3)});
        Vec<T> p = Vec<T>::LinSpaced(n, T(-0.3), T(0.77));
        const Vec<T> p0 = p;
        Vec<T> seen(n);
        opt.step(p, [&](VecCRef<T> wpe, VecRef<T> out) {
            seen = wpe;
            grad_at(wpe, out);
        });
        CHECK(p == p0);
        CHECK((seen - p0).norm() == Approx(0.3).epsilon(1e-5));
    }
}

// ---- Adam / AdamW over several of step()'s 1024-element chunks --------------------------
TEMPLATE_TEST_CASE("Adam and AdamW over 2500 parameters (three chunks) match an element-wise loop",
                   "[optim][paper][adam]", float, double) {
    using T = TestType;
    const Index n = 2500;
    const auto grads = persist_test::gradient_sequence<T>(n, 30, 13);
    for (bool decoupled : {false, true})
        for (bool ams : {false, true}) {
            const T lr = T(3e-3), b1 = T(0.9), b2 = T(0.99), eps = T(1e-8), wd = T(0.05);
            Vec<T> p = Vec<T>::LinSpaced(n, T(-1), T(2));
            std::vector<T> q = to_std(p), m(static_cast<std::size_t>(n), T(0)), v = m, vmax = m;
            Adam<T> adam(n, {.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd, .amsgrad = ams});
            AdamW<T> adamw(n, {.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd, .amsgrad = ams});
            double w = 0.0;
            int t = 0;
            for (const auto& g : grads) {
                if (decoupled) adamw.step(p, g);
                else adam.step(p, g);
                ++t;
                const double bc1 = 1.0 - std::pow(static_cast<double>(b1), t);
                const double bc2 = 1.0 - std::pow(static_cast<double>(b2), t);
                for (std::size_t i = 0; i < q.size(); ++i) {
                    T gi = g[static_cast<Index>(i)];
                    if (decoupled) q[i] *= static_cast<T>(1.0 - static_cast<double>(lr) * static_cast<double>(wd));
                    else gi += wd * q[i];
                    m[i] = b1 * m[i] + (T(1) - b1) * gi;
                    v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
                    vmax[i] = std::max(vmax[i], v[i]);
                    const T vh = ams ? vmax[i] : v[i];
                    q[i] -= static_cast<T>(static_cast<double>(lr) / bc1) * m[i] /
                            (std::sqrt(vh) / static_cast<T>(std::sqrt(bc2)) + eps);
                }
                w = std::max(w, worst(p, q));
            }
            INFO("decoupled " << decoupled << " amsgrad " << ams);
            CHECK(w <= 1.0);
        }
}
