// Replaces the global operator new/delete to count allocations (see alloc_counter.hpp).
#include "agents/alloc_counter.hpp"

#include <cstdlib>
#include <new>

namespace agentstest {
std::atomic<long> g_news{0};
std::atomic<long> g_eigen_heap{0};
std::atomic<bool> g_counting{false};
#if defined(__SANITIZE_ADDRESS__)
const bool kCountNew = false;
#else
const bool kCountNew = true;
#endif
}  // namespace agentstest

#if !defined(__SANITIZE_ADDRESS__)
void* operator new(std::size_t n) {
    if (agentstest::g_counting.load(std::memory_order_relaxed)) agentstest::g_news.fetch_add(1);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
    if (agentstest::g_counting.load(std::memory_order_relaxed)) agentstest::g_news.fetch_add(1);
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
#endif
