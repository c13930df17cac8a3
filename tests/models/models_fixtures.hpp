#pragma once
// Shared helpers of the models/ tests: finite differences, random matrices, bitwise state
// comparison through the state protocol.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "persist/core/random.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

namespace modtest {

using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::Vec;

/// ||a - b|| / (||a|| + ||b||), 0 when both are 0 (norm-wise: robust to entries ~0).
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

template <class T = double>
Mat<T> uniform(Index r, Index c, Rng& rng, double lo = 0.0, double hi = 1.0) {
    Mat<T> m(r, c);
    for (Index k = 0; k < m.size(); ++k) m.data()[k] = static_cast<T>(rng.uniform<double>(lo, hi));
    return m;
}

/// Every state tensor of obj as (name, bytes), in visit order.
struct StateBytes {
    std::vector<std::string> names;
    std::vector<std::vector<unsigned char>> bytes;
    bool operator==(const StateBytes& o) const { return names == o.names && bytes == o.bytes; }
};
template <class Obj>
StateBytes state_bytes(Obj& obj) {
    StateBytes s;
    obj.visit_state([&](persist::TensorRef t) {
        s.names.push_back(t.name);
        const auto* p = static_cast<const unsigned char*>(t.data);
        s.bytes.emplace_back(p, p + t.bytes());
    });
    return s;
}

}  // namespace modtest
