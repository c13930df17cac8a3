// The hot path does not allocate at a fixed batch size. This executable replaces the global
// operator new/delete to count allocations, and builds Eigen with EIGEN_RUNTIME_NO_MALLOC and a
// counting eigen_assert to see Eigen's heap use (Eigen allocates with std::malloc, so this is
// what catches a temporary matrix, and GEMM packing buffers: Linear keeps those in its Cache).
#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> g_news{0};
std::atomic<long> g_eigen_heap{0};
std::atomic<bool> g_counting{false};
}  // namespace

#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x)                          \
    do {                                         \
        if (!(x)) g_eigen_heap.fetch_add(1);     \
    } while (0)

#include <catch2/catch.hpp>

#include <vector>

#include "gradcheck.hpp"
#include "persist/nn/nn.hpp"

// AddressSanitizer owns operator new/delete (and checks new/free pairing): there the
// operator-new count is not available and only Eigen's heap use is checked.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCountNew = false;
#else
constexpr bool kCountNew = true;
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
#endif

using namespace persist::nn;
using namespace nntest;

namespace {

/// operator-new calls made by f (no Catch macros inside f: they allocate).
template <class F>
long count_news(F&& f) {
    if (!kCountNew) {
        f();
        return 0;
    }
    g_news = 0;
    g_counting = true;
    f();
    g_counting = false;
    return g_news.load();
}

/// Eigen-internal heap allocations (GEMM packing buffers etc.) made by f.
template <class F>
long count_eigen_heap(F&& f) {
    g_eigen_heap = 0;
    Eigen::internal::set_is_malloc_allowed(false);
    f();
    Eigen::internal::set_is_malloc_allowed(true);
    return g_eigen_heap.load();
}

template <class Net, class T = typename Net::scalar_type>
struct Loop {
    Net& net;
    typename Net::Workspace act, learn;
    persist::Vec<T> obs;
    Mat<T> X, R, gin;
    Loop(Net& n, Index B, Rng& rng)
        : net(n), act(n.make_workspace()), learn(n.make_workspace()),
          obs(random_mat(n.in_dim(), 1, rng).col(0).template cast<T>()),
          X(random_mat(n.in_dim(), B, rng).template cast<T>()),
          R(random_mat(n.out_dim(), B, rng).template cast<T>()) {}
    void run(int iters) {
        for (int i = 0; i < iters; ++i) {
            net.forward(obs, act);                 // acting, B = 1
            net.zero_grad();
            net.forward(X, learn);                 // learning, B = batch
            net.backward(learn, R);                // grad_in of the first layer skipped
            net.backward(learn, R, &gin, false);   // dQ/da style: input gradient only
            net.forward(obs, act);
        }
    }
    std::vector<const void*> buffers(const typename Net::Workspace& w) const {
        std::vector<const void*> p;
        if constexpr (requires { w.z; }) {
            for (const auto* v : {&w.z, &w.h, &w.n, &w.g, &w.gz})
                for (const auto& m : *v) p.push_back(m.data());
        } else {
            for (const auto& m : w.out) p.push_back(m.data());
            for (const auto& m : w.grad) p.push_back(m.data());
        }
        return p;
    }
};

template <class Net>
void check_network_no_alloc(Net& net, Index B) {
    Rng rng(61);
    net.init(rng);
    Loop<Net> loop(net, B, rng);
    loop.run(1);  // first call at each batch size sizes the workspaces
    const auto act_before = loop.buffers(loop.act), learn_before = loop.buffers(loop.learn);
    long heap = 0;
    const long news = count_news([&] { heap = count_eigen_heap([&] { loop.run(3); }); });
    CHECK(news == 0);
    if (PERSIST_NN_KERNEL_GEMM)
        CHECK(heap == 0);
    else  // Eigen's expression API mallocs GEMM packing buffers above 128 KiB (nn/linear.hpp)
        WARN("PERSIST_NN_PLAIN_EIGEN_GEMM: Eigen heap allocations per 3 steps: " << heap);
    CHECK(loop.buffers(loop.act) == act_before);
    CHECK(loop.buffers(loop.learn) == learn_before);
}

}  // namespace

TEMPLATE_TEST_CASE("MLP forward/backward at fixed batch sizes makes no allocation", "[nn][alloc]",
                   float, double) {
    using T = TestType;
    for (bool ln : {false, true}) {
        INFO("layer_norm " << ln);
        MLP<T> net({17, 256, 256, 6}, {.layer_norm = ln});
        check_network_no_alloc(net, 256);
        MLP<T, SiLU> small({5, 32, 32, 2}, {.layer_norm = ln});
        check_network_no_alloc(small, 8);
    }
    // Threaded passes (MLPOptions::threads): the blocks' GEMM caches are shaped on the first call.
    MLP<T> threaded({17, 64, 64, 6}, {.threads = 2});
    check_network_no_alloc(threaded, 48);
}

TEMPLATE_TEST_CASE("Sequential forward/backward at fixed batch sizes makes no allocation",
                   "[nn][alloc]", float, double) {
    using T = TestType;
    Sequential net(Linear<T>(17, 128), LayerNorm<T>(128), ELU<T>{}, Linear<T>(128, 128), Tanh<T>{},
                   Linear<T>(128, 4), Sigmoid<T>{});
    check_network_no_alloc(net, 64);
}

TEMPLATE_TEST_CASE("Heads and losses make no allocation at a fixed batch size", "[nn][alloc]", float,
                   double) {
    using T = TestType;
    Rng rng(62);
    const Index A = 3, B = 64, K = 5;
    const Mat<T> in = random_mat(2 * A, B, rng).template cast<T>();
    const Mat<T> y = random_mat(A, B, rng).template cast<T>();
    const Mat<T> ga = random_mat(A, B, rng).template cast<T>(), g1 = random_mat(1, B, rng).template cast<T>();
    const Mat<T> logits = random_mat(K, B, rng).template cast<T>();
    const Mat<T> scores = random_mat(B, B, rng).template cast<T>();
    const Mat<T> quant = random_mat(8, B, rng).template cast<T>(), qt = random_mat(6, B, rng).template cast<T>();
    std::vector<Index> actions(static_cast<std::size_t>(B), 1);
    TanhGaussian<T> tg(A);
    DiagGaussian<T> dg(A, {true});
    Categorical<T> cat(K);
    typename TanhGaussian<T>::Workspace tw;
    typename DiagGaussian<T>::Workspace dw;
    typename Categorical<T>::Workspace cw;
    Mat<T> grad, grad2, grad3, grad4, grad5, grad6, act;
    T sink = 0;
    auto step = [&] {
        tg.sample(in, rng, tw);
        tg.backward(tw, ga, g1);
        tg.deterministic(in, act);
        dg.nll(in, y, dw);
        dg.backward(dw, g1);
        dg.sample(in, rng, dw);
        cat.forward(logits, cw);
        cat.log_prob(cw, actions);
        cat.backward(cw, actions, g1, g1);
        cat.sample(cw, rng, actions);
        cat.mode(cw, actions);
        sink += MSE<T>{}.value(y, y) + Huber<T>{}.value(y, y) + BinaryFocal<T>{}.value(y, y) +
                GaussianNLL<T>{}.value(in, y) + InfoNCE<T>{}.value(scores) +
                QuantileHuber<T>{}.value(quant, qt);
        MSE<T>{}.gradient(y, y, grad);
        Huber<T>{}.gradient(y, y, grad2);
        BinaryFocal<T>{}.gradient(y, y, grad3);
        GaussianNLL<T>{}.gradient(in, y, grad4);
        InfoNCE<T>{}.gradient(scores, grad5);
        QuantileHuber<T>{}.gradient(quant, qt, grad6);
    };
    step();
    long heap = 0;
    const long news = count_news([&] { heap = count_eigen_heap([&] { step(); step(); }); });
    CHECK(news == 0);
    CHECK(heap == 0);
    CHECK(std::isfinite(sink));
}
