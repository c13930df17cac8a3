#pragma once
// Shared by every optim test translation unit; include it FIRST so that every TU of an
// executable sees the same Eigen configuration: heap allocation can be forbidden at run time
// (EIGEN_RUNTIME_NO_MALLOC) and a violated Eigen assertion throws, even in Release builds.
#define EIGEN_RUNTIME_NO_MALLOC
#include <stdexcept>
namespace persist_test {
struct EigenAssertion : std::logic_error {
    using std::logic_error::logic_error;
};
}  // namespace persist_test
#define eigen_assert(x)                                                   \
    do {                                                                  \
        if (!(x)) throw ::persist_test::EigenAssertion("eigen_assert: " #x); \
    } while (false)

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "persist/core/random.hpp"
#include "persist/core/types.hpp"

namespace persist_test {

using persist::Index;
template <class T>
using Vec = persist::Vec<T>;

/// Forbid Eigen heap allocation in a scope (step() must not allocate).
struct NoEigenMalloc {
    NoEigenMalloc() { Eigen::internal::set_is_malloc_allowed(false); }
    ~NoEigenMalloc() { Eigen::internal::set_is_malloc_allowed(true); }
    NoEigenMalloc(const NoEigenMalloc&) = delete;
    NoEigenMalloc& operator=(const NoEigenMalloc&) = delete;
};

/// |a - b| <= abs + rel max(|a|, |b|).
inline bool close(double a, double b, double rel, double abs) {
    return std::abs(a - b) <= abs + rel * std::max(std::abs(a), std::abs(b));
}

/// Largest violation ratio |a - b| / (abs + rel max(|a|, |b|)) over two vectors (<= 1 passes).
template <class A, class B>
double worst_ratio(const A& a, const B& b, double rel, double abs) {
    double w = 0.0;
    for (Index i = 0; i < a.size(); ++i) {
        const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
        w = std::max(w, std::abs(x - y) / (abs + rel * std::max(std::abs(x), std::abs(y))));
    }
    return w;
}

/// A fixed, reproducible gradient sequence (Philox stream) with mixed scales and exact zeros.
template <class T>
std::vector<Vec<T>> gradient_sequence(Index n, int steps, std::uint64_t seed) {
    persist::CounterRng rng(seed);
    std::vector<Vec<T>> out;
    for (int t = 0; t < steps; ++t) {
        Vec<T> g(n);
        for (Index i = 0; i < n; ++i) {
            const double scale = std::pow(10.0, static_cast<double>(i % 4) - 2.0);  // 1e-2 .. 10
            g[i] = static_cast<T>(scale * (rng.normal<double>() + 0.5 * std::sin(t / 13.0 + i)));
        }
        if (t % 11 == 3) g[0] = T(0);
        out.push_back(g);
    }
    return out;
}

}  // namespace persist_test
