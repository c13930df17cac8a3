// MLPOptions::threads: forward/backward of a ReLU MLP in column blocks (dX) and row blocks (dW)
// on OpenMP threads give the serial pass's values (bitwise with the AVX-512 kernel), nested or
// not, for every batch size around the block threshold; other networks ignore it.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/nn/activations.hpp"
#include "persist/nn/mlp.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using persist::Index;
using persist::Mat;
using persist::Rng;
using namespace persist::nn;

namespace {

template <class A, class B>
bool same_bytes(const A& a, const B& b) {
    return a.size() == b.size() &&
           std::memcmp(a.data(), b.data(), sizeof(*a.data()) * static_cast<std::size_t>(a.size())) == 0;
}

/// One training pass (forward, backward with fresh then accumulated gradients and dX) of `net`
/// on (x, g); returns {output, grads, grad_in}.
template <class Net, class T>
std::vector<Mat<T>> pass(Net& net, const Mat<T>& x, const Mat<T>& g) {
    auto ws = net.make_workspace();
    std::vector<Mat<T>> r;
    r.push_back(net.forward(x, ws));
    Mat<T> gin;
    net.backward(ws, g, &gin, true, GradMode::overwrite);
    net.backward(ws, g, nullptr, true, GradMode::accumulate);  // 2 x the gradient
    r.push_back(net.grads());
    r.push_back(gin);
    return r;
}

template <class T>
Mat<T> random_mat(Index r, Index c, Rng& rng) {
    Mat<T> m(r, c);
    for (Index k = 0; k < m.size(); ++k) m.data()[k] = static_cast<T>(rng.uniform<double>(-1, 1));
    return m;
}

}  // namespace

TEMPLATE_TEST_CASE("MLP with threads = 2 gives the serial pass's output, gradients and dX",
                   "[nn][mlp][threads]", float, double) {
    using T = TestType;
    // Widths with partial 16-row vectors and an output of 1 (the critic's shape) and 8.
    for (const auto& widths : {std::vector<Index>{32, 64, 64, 8}, std::vector<Index>{34, 40, 72, 1},
                                            std::vector<Index>{5, 256, 4}}) {
        MLP<T> serial(widths);
        Rng rng(17);
        serial.init(rng);
        MLP<T> two = serial;
        two.set_threads(2);
        MLP<T> three = serial;
        three.set_threads(3);
        // Below 16 columns the pass stays serial; 16 and above are split.
        for (Index B : {1, 15, 16, 17, 32, 45, 130}) {
            CAPTURE(widths[1], B);
            const Mat<T> x = random_mat<T>(widths.front(), B, rng), g = random_mat<T>(widths.back(), B, rng);
            const auto a = pass(serial, x, g), b = pass(two, x, g), c = pass(three, x, g);
            for (std::size_t k = 0; k < a.size(); ++k) {
                CAPTURE(k);
#if PERSIST_NN_AVX512_GEMM
                if constexpr (std::is_same_v<T, float>) {
                    CHECK(same_bytes(a[k], b[k]));
                    CHECK(same_bytes(a[k], c[k]));
                    continue;
                }
#endif
                // Eigen's GEMM may block a column block differently: equal to rounding.
                const T tol = std::is_same_v<T, float> ? T(1e-5) : T(1e-12);
                CHECK((a[k] - b[k]).cwiseAbs().maxCoeff() <= tol * (T(1) + a[k].cwiseAbs().maxCoeff()));
                CHECK((a[k] - c[k]).cwiseAbs().maxCoeff() <= tol * (T(1) + a[k].cwiseAbs().maxCoeff()));
            }
            // Deterministic for a given thread count, on any run.
            const auto b2 = pass(two, x, g);
            for (std::size_t k = 0; k < b.size(); ++k) CHECK(same_bytes(b[k], b2[k]));
        }
    }
}

TEST_CASE("MLP threads: inside another parallel region the blocks run on the calling thread",
          "[nn][mlp][threads]") {
    MLP<float> serial({32, 64, 64, 8});
    Rng rng(5);
    serial.init(rng);
    const Mat<float> x = random_mat<float>(32, 48, rng), g = random_mat<float>(8, 48, rng);
    MLP<float> nets[2] = {serial, serial};
    for (auto& n : nets) n.set_threads(2);
    std::vector<Mat<float>> out[2];
#if defined(_OPENMP)
#pragma omp parallel for num_threads(2)
#endif
    for (int i = 0; i < 2; ++i) out[i] = pass(nets[i], x, g);
    MLP<float> two = serial;
    two.set_threads(2);
    const auto ref = pass(two, x, g);
    for (int i = 0; i < 2; ++i)
        for (std::size_t k = 0; k < ref.size(); ++k) CHECK(same_bytes(out[i][k], ref[k]));
}

TEST_CASE("MLP threads: non-ReLU and LayerNorm networks run serially; bad counts are errors",
          "[nn][mlp][threads]") {
    Rng rng(9);
    MLP<double, Tanh> tanh_net({6, 32, 3});
    tanh_net.init(rng);
    MLP<double, Tanh> tanh_two = tanh_net;
    tanh_two.set_threads(2);
    MLP<double> ln_net({6, 32, 3}, MLPOptions{.layer_norm = true});
    ln_net.init(rng);
    MLP<double> ln_two = ln_net;
    ln_two.set_threads(2);
    const Mat<double> x = random_mat<double>(6, 40, rng), g = random_mat<double>(3, 40, rng);
    const auto a = pass(tanh_net, x, g), b = pass(tanh_two, x, g);
    const auto c = pass(ln_net, x, g), d = pass(ln_two, x, g);
    for (std::size_t k = 0; k < a.size(); ++k) {
        CHECK(same_bytes(a[k], b[k]));
        CHECK(same_bytes(c[k], d[k]));
    }
    CHECK(tanh_two.threads() == 2);
    CHECK_THROWS_AS(tanh_two.set_threads(0), persist::ConfigError);
    CHECK_THROWS_WITH((MLP<float>({3, 4, 1}, MLPOptions{.threads = 0})),
                      Catch::Contains("MLPOptions.threads") && Catch::Contains(">= 1"));
}
