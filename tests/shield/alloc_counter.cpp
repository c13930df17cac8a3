// Replaces the global operator new/delete to count allocations (as tests/env/alloc_counter.cpp).
#include "env/alloc_counter.hpp"

#include <cstdlib>
#include <new>

namespace envtest {
std::atomic<long> g_news{0};
std::atomic<long> g_eigen_heap{0};
std::atomic<bool> g_counting{false};
}  // namespace envtest

void* operator new(std::size_t n) {
    if (envtest::g_counting.load(std::memory_order_relaxed)) envtest::g_news.fetch_add(1);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
    if (envtest::g_counting.load(std::memory_order_relaxed)) envtest::g_news.fetch_add(1);
    void* p = nullptr;
    if (posix_memalign(&p, static_cast<std::size_t>(a), n ? n : 1) != 0) throw std::bad_alloc();
    return p;
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
