#pragma once
// Counts heap allocations made by a callable: global operator new calls (the replacement
// operators live in alloc_counter.cpp, a separate translation unit so GCC does not pair an
// inlined malloc-backed new with free in -Wmismatched-new-delete) and Eigen's own heap use
// (Eigen allocates with std::malloc; EIGEN_RUNTIME_NO_MALLOC + a counting eigen_assert see it).
// Include this header FIRST in every translation unit of the executable, so all of them see
// the same Eigen settings. Catch macros allocate: keep them outside the counted callable.
#include <atomic>

namespace agentstest {
extern std::atomic<long> g_news;
extern std::atomic<long> g_eigen_heap;
extern std::atomic<bool> g_counting;
extern const bool kCountNew;  // false under AddressSanitizer (it owns operator new)
}  // namespace agentstest

#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x)                                      \
    do {                                                     \
        if (!(x)) agentstest::g_eigen_heap.fetch_add(1);     \
    } while (0)

#include <Eigen/Core>

namespace agentstest {
/// operator-new calls plus Eigen heap allocations made by f.
template <class F>
long count_allocations(F&& f) {
    g_news = 0;
    g_eigen_heap = 0;
    Eigen::internal::set_is_malloc_allowed(false);
    g_counting = kCountNew;
    f();
    g_counting = false;
    Eigen::internal::set_is_malloc_allowed(true);
    return g_news.load() + g_eigen_heap.load();
}
}  // namespace agentstest
