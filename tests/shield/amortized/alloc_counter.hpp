#pragma once
// Counts heap allocations made by a callable: global operator new calls (replaced in
// alloc_counter.cpp, linked into test_shield_amortized_alloc only) and Eigen's own heap use
// (EIGEN_RUNTIME_NO_MALLOC + a counting eigen_assert). Include this header FIRST in every
// translation unit of that executable. Catch macros allocate: keep them outside the callable.
#include <atomic>

namespace amortizedalloc {
extern std::atomic<long> g_news;
extern std::atomic<long> g_eigen_heap;
extern std::atomic<bool> g_counting;
}  // namespace amortizedalloc

#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x)                                          \
    do {                                                         \
        if (!(x)) amortizedalloc::g_eigen_heap.fetch_add(1);     \
    } while (0)

#include <Eigen/Core>

namespace amortizedalloc {
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
}  // namespace amortizedalloc
