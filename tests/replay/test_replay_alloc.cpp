// Sampling at a fixed batch size never allocates: this executable replaces the global operator
// new/delete to count allocations (xtensor, std::vector) and builds Eigen with
// EIGEN_RUNTIME_NO_MALLOC and a counting eigen_assert to see Eigen's heap use (Eigen allocates
// matrices with std::malloc, not operator new). Also covers the margins, homeostat and
// near-boundary hot paths.
#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> g_news{0};
std::atomic<long> g_eigen_heap{0};
std::atomic<bool> g_counting{false};
}  // namespace

#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x)                      \
    do {                                     \
        if (!(x)) g_eigen_heap.fetch_add(1); \
    } while (0)

#include <catch2/catch.hpp>

#include "persist/homeostasis/homeostat.hpp"
#include "persist/replay/near_boundary.hpp"
#include "persist/replay/ring_replay.hpp"
#include "persist/viability/constraints.hpp"
#include "replay_fixtures.hpp"

// The replacements below pair malloc with free, which GCC 12 cannot see through.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t n) {
    if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
    if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1);
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

using namespace replaytest;

namespace {
/// Allocations (operator new + Eigen heap) made by f. No Catch macros inside f.
template <class F>
long count_allocs(F&& f) {
    g_news = 0;
    g_eigen_heap = 0;
    Eigen::internal::set_is_malloc_allowed(false);
    g_counting = true;
    f();
    g_counting = false;
    Eigen::internal::set_is_malloc_allowed(true);
    return g_news.load() + g_eigen_heap.load();
}
}  // namespace

TEST_CASE("the counter sees allocations", "[replay][alloc]") {
    CHECK(count_allocs([] { persist::Mat<double> m(4, 4); (void)m; }) > 0);
    CHECK(count_allocs([] { std::vector<int> v(3); (void)v; }) > 0);
}

TEST_CASE("replay add and sampling do not allocate at a fixed batch size", "[replay][alloc]") {
    persist::replay::RingReplay<double> r(64, kDims);
    for (int id = 0; id < 40; ++id) r.add(Owned(id, id % 6 == 5).view());
    persist::Rng rng(1);
    persist::TransitionBatch<double> b;
    r.sample(32, rng, b);  // shapes the batch once
    CHECK(count_allocs([&] {
              for (int i = 0; i < 10; ++i) r.sample(32, rng, b);
          }) == 0);
    const Owned more(99);
    const auto view = more.view();
    CHECK(count_allocs([&] {
              for (int i = 0; i < 100; ++i) r.add(view);  // wraps around
          }) == 0);
    persist::replay::SequenceBatch<double> sb;
    r.sample_sequences(8, 4, rng, sb);
    CHECK(count_allocs([&] {
              for (int i = 0; i < 10; ++i) r.sample_sequences(8, 4, rng, sb);
          }) == 0);
    CHECK(count_allocs([&] {
              for (int i = 0; i < 10; ++i)
                  r.sample_sequences(8, 4, rng, sb, persist::replay::SequenceOptions{.cross_episodes = true});
          }) == 0);
}

TEST_CASE("margins, homeostat and near-boundary hot paths do not allocate", "[replay][alloc]") {
    const persist::viability::ConstraintSet<double> cs(
        {"energy", "temp", "integrity"},
        {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6", "energy + 0.5*integrity >= 0.5"});
    const persist::Mat<double> X = persist::Mat<double>::Random(3, 256);
    persist::Mat<double> M(4, 256);
    persist::RowVec<double> mins(256);
    const persist::homeostasis::Homeostat<double> h(persist::Vec<double>::Constant(3, 0.5),
                                                    persist::Vec<double>::Ones(3));
    persist::RowVec<double> rew(256);
    persist::Vec<double> x0 = X.col(0);
    CHECK(count_allocs([&] {
              cs.margins(X, M);
              cs.min_margins(X, mins);
              h.rewards(X, rew);
              volatile double s = cs.margin(x0) + h.reward(x0);
              (void)s;
          }) == 0);

    persist::replay::NearBoundaryBuffer<double> nb({.capacity = 16, .internal_dim = 3, .epsilon = 0.5});
    nb.offer(cs, x0);  // sizes the model workspace once
    persist::Vec<double> x(3);
    x << 0.3, 0.5, 0.7;  // margins 0.1, 0.2, 0.1, 0.15: in band
    persist::Rng rng(2);
    persist::replay::NearBoundaryBatch<double> nbb;
    nb.offer_margin(x, 0.1);
    nb.sample(8, rng, nbb);
    long stored = 0;
    CHECK(count_allocs([&] {
              for (int i = 0; i < 100; ++i) stored += nb.offer(cs, x) ? 1 : 0;
              nb.sample(8, rng, nbb);
          }) == 0);
    CHECK(stored > 0);
}
