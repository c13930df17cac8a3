#pragma once
// Counts heap allocations made by a callable: global operator new calls (the replacement
// operators live in alloc_counter.cpp, linked once into each env test executable) and Eigen's
// own heap use (Eigen allocates with std::malloc; EIGEN_RUNTIME_NO_MALLOC + a counting
// eigen_assert see it, as in tests/nn/test_alloc.cpp). Include this header FIRST in every
// translation unit of an env test executable, so all of them see the same Eigen settings.
// Catch macros allocate: keep them outside the counted callable.
#include <atomic>

namespace envtest {
extern std::atomic<long> g_news;
extern std::atomic<long> g_eigen_heap;
extern std::atomic<bool> g_counting;
}  // namespace envtest

#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x)                                   \
    do {                                                  \
        if (!(x)) envtest::g_eigen_heap.fetch_add(1);     \
    } while (0)

#include <Eigen/Core>

namespace envtest {
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
}  // namespace envtest
