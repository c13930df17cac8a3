#pragma once
// Finite-difference helpers for the nn tests.
#include <cmath>
#include <utility>

#include "persist/core/random.hpp"
#include "persist/core/types.hpp"

namespace nntest {

using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::Vec;

/// Norm-wise relative error ||a - b|| / (||a|| + ||b||) (0 when both are 0). Per-entry relative
/// errors blow up on entries that are ~0 by cancellation; the norm-wise form does not, and
/// still catches any wrong entry of non-negligible size.
template <class A, class B>
double rel_err(const A& a, const B& b) {
    const Mat<double> da = a.template cast<double>(), db = b.template cast<double>();
    const double den = da.norm() + db.norm();
    return den == 0 ? 0.0 : (da - db).norm() / den;
}

/// Central differences of f() wrt every entry of x (perturbed in place and restored).
template <class X, class F>
Mat<double> numgrad(X& x, F&& f, double h = 1e-6) {
    Mat<double> g(x.rows(), x.cols());
    for (Index k = 0; k < x.size(); ++k) {
        const double s = x.data()[k];
        x.data()[k] = s + h;
        const double fp = f();
        x.data()[k] = s - h;
        const double fm = f();
        x.data()[k] = s;
        g.data()[k] = (fp - fm) / (2 * h);
    }
    return g;
}

/// Entries ~ U(-scale, scale).
inline Mat<double> random_mat(Index r, Index c, Rng& rng, double scale = 1.0) {
    Mat<double> m(r, c);
    for (Index k = 0; k < m.size(); ++k) m.data()[k] = rng.uniform<double>(-scale, scale);
    return m;
}

/// Random entries with |x| >= margin (keeps ReLU / Huber away from their kinks).
inline Mat<double> random_away_from_zero(Index r, Index c, Rng& rng, double margin = 0.05) {
    Mat<double> m = random_mat(r, c, rng);
    for (Index k = 0; k < m.size(); ++k)
        m.data()[k] += m.data()[k] < 0 ? -margin : margin;
    return m;
}

/// <R, Y> summed: a scalar whose gradient wrt Y is R.
template <class A, class B>
double dot(const A& r, const B& y) {
    return (r.template cast<double>().array() * y.template cast<double>().array()).sum();
}

inline constexpr double kFdTol = 1e-6;    // double vs central differences
inline constexpr double kFloatTol = 2e-5;  // float implementation vs double implementation

}  // namespace nntest
