#pragma once
// Shared by every translation unit of test_intrinsic. Include it FIRST: it defines
// EIGEN_RUNTIME_NO_MALLOC and a counting eigen_assert before Eigen is seen, so all units agree
// on Eigen's settings (the replacement operator new lives in test_alloc.cpp), as in
// tests/env/alloc_counter.hpp. Catch macros allocate: keep them outside counted callables.
#include <atomic>

namespace intrtest {
// AddressSanitizer owns operator new/delete: there only Eigen's heap use is counted.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kCountNew = false;
#else
inline constexpr bool kCountNew = true;
#endif
extern std::atomic<long> g_news;
extern std::atomic<long> g_eigen_heap;
extern std::atomic<bool> g_counting;
}  // namespace intrtest

#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x)                                  \
    do {                                                 \
        if (!(x)) intrtest::g_eigen_heap.fetch_add(1);   \
    } while (0)

#include <Eigen/Core>

#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/state.hpp"
#include "persist/intrinsic/intrinsic.hpp"

namespace intrtest {

using persist::Index;
using persist::Mat;
using persist::Rng;
using persist::TransitionBatch;
using persist::Vec;

/// operator-new calls plus Eigen heap allocations made by f.
template <class F>
long count_allocations(F&& f) {
    g_news = 0;
    g_eigen_heap = 0;
    Eigen::internal::set_is_malloc_allowed(false);
    g_counting = true;
    f();
    g_counting = false;
    Eigen::internal::set_is_malloc_allowed(true);
    return g_news.load() + g_eigen_heap.load();
}

template <class T>
Mat<T> uniform(Rng& rng, Index rows, Index cols, double lo = -1.0, double hi = 1.0) {
    Mat<T> m(rows, cols);
    for (Index k = 0; k < m.size(); ++k) m.data()[k] = static_cast<T>(rng.uniform<double>(lo, hi));
    return m;
}

template <class T>
Mat<T> normal(Rng& rng, Index rows, Index cols, double mean = 0.0, double sd = 1.0) {
    Mat<T> m(rows, cols);
    for (Index k = 0; k < m.size(); ++k) m.data()[k] = static_cast<T>(mean + sd * rng.normal<double>());
    return m;
}

/// A batch of B transitions with uniform entries in [-1, 1] and no constraints.
template <class T>
TransitionBatch<T> random_batch(Rng& rng, Index O, Index I, Index A, Index B) {
    TransitionBatch<T> b;
    b.resize(O, I, A, 0, B);
    b.observation = uniform<T>(rng, O, B);
    b.internal = uniform<T>(rng, I, B);
    b.action = uniform<T>(rng, A, B);
    b.next_observation = uniform<T>(rng, O, B);
    b.next_internal = uniform<T>(rng, I, B);
    return b;
}

/// s = [observation; internal] of a batch.
template <class T>
Mat<T> states(const TransitionBatch<T>& b) {
    Mat<T> s(b.observation.rows() + b.internal.rows(), b.size());
    s << b.observation, b.internal;
    return s;
}

struct Entry {
    std::string name;
    persist::DType dtype;
    void* data;
    std::size_t bytes;
    std::string shape;
};

template <class Obj>
std::vector<Entry> entries(Obj& obj) {
    std::vector<Entry> e;
    obj.visit_state([&](persist::TensorRef t) {
        e.push_back({t.name, t.dtype, t.data, t.bytes(), t.shape_string()});
    });
    return e;
}

/// Copy every state tensor of src into dst (same names, dtypes and shapes, else the test fails).
template <class Obj>
void copy_state(Obj& src, Obj& dst) {
    const auto a = entries(src), b = entries(dst);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        REQUIRE(a[i].name == b[i].name);
        REQUIRE(a[i].dtype == b[i].dtype);
        REQUIRE(a[i].shape == b[i].shape);
        if (a[i].bytes) std::memcpy(b[i].data, a[i].data, a[i].bytes);
    }
}

/// Bitwise equality of two objects' states.
template <class Obj>
bool same_state(Obj& x, Obj& y) {
    const auto a = entries(x), b = entries(y);
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].name != b[i].name || a[i].bytes != b[i].bytes ||
            (a[i].bytes && std::memcmp(a[i].data, b[i].data, a[i].bytes) != 0))
            return false;
    return true;
}

}  // namespace intrtest
