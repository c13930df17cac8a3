// Replacement global operator new/delete of test_intrinsic: they count calls while
// intrtest::g_counting is set (intrinsic_test.hpp, count_allocations). Kept alone in this unit.
#include <atomic>

#include <cstdlib>
#include <new>

namespace intrtest {
std::atomic<long> g_news{0};
std::atomic<long> g_eigen_heap{0};
std::atomic<bool> g_counting{false};
}  // namespace intrtest

// AddressSanitizer owns operator new/delete: there only Eigen's heap use is counted
// (intrtest::kCountNew is false).
#if !defined(__SANITIZE_ADDRESS__)
void* operator new(std::size_t n) {
    if (intrtest::g_counting.load(std::memory_order_relaxed)) intrtest::g_news.fetch_add(1);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
    if (intrtest::g_counting.load(std::memory_order_relaxed)) intrtest::g_news.fetch_add(1);
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

