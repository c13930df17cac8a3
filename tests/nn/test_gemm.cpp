// nn::detail::gemm_acc, the product behind Linear and the rollout runner's fallback: all four
// transpose combinations, float and double, against a double-precision triple loop, over shapes
// that hit every tile remainder of the AVX-512 kernel (rows % 16, rows % 64, columns % 6, n <= 2
// and m == 1 routed to GEMV, k % 16 of the transposed panel) with leading dimensions larger than
// the matrices, and every epilogue: C += R, C = R, C = b 1^T + R, H = max(C, 0) beside it, and
// C = max(C + R, 0) in place, C masked by a ReLU output, and the row sums of op(A).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "persist/core/random.hpp"
#include "persist/nn/linear.hpp"

using persist::Index;
using persist::Vec;

namespace {

enum class Epi { accumulate, overwrite, bias, bias_relu, relu_in_place, mask, row_sum, row_sum_overwrite };

template <bool TA, bool TB, class T>
void check_shape(Index m, Index n, Index k, persist::Rng& rng, Vec<T>& scratch, Epi epi = Epi::accumulate) {
    const Index pad = 3;
    const Index lda = (TA ? k : m) + pad, ldb = (TB ? n : k) + pad, ldc = m + pad;
    std::vector<T> A(static_cast<std::size_t>(lda * (TA ? m : k))), B(static_cast<std::size_t>(ldb * (TB ? k : n))),
        C(static_cast<std::size_t>(ldc * n)), bias(static_cast<std::size_t>(m)), H(static_cast<std::size_t>(ldc * n));
    for (auto& v : A) v = rng.uniform<T>(T(-1), T(1));
    for (auto& v : B) v = rng.uniform<T>(T(-1), T(1));
    for (auto& v : C) v = rng.uniform<T>(T(-1), T(1));
    for (auto& v : bias) v = rng.uniform<T>(T(-1), T(1));
    for (auto& v : H) v = T(7);
    const std::vector<T> C0 = C;
    persist::nn::detail::GemmEpilogue<T> e;
    e.overwrite = epi == Epi::overwrite;
    if (epi == Epi::bias || epi == Epi::bias_relu) e.bias = bias.data();
    e.relu_in_place = epi == Epi::relu_in_place;
    std::vector<T> mask(static_cast<std::size_t>(ldc * n)), rsum(static_cast<std::size_t>(m + 1));
    for (auto& v : mask) v = rng.uniform<T>(T(-1), T(1));
    if (!mask.empty()) mask[0] = std::numeric_limits<T>::quiet_NaN();  // NaN masks out, as ReLU' does
    for (auto& v : rsum) v = rng.uniform<T>(T(-1), T(1));
    const std::vector<T> rsum0 = rsum;
    if (epi == Epi::mask) {
        e.mask = mask.data();
        e.ldm = ldc;
    }
    if (epi == Epi::row_sum || epi == Epi::row_sum_overwrite) e.row_sum = rsum.data();
    if (epi == Epi::row_sum_overwrite) e.overwrite = true;
    if (epi == Epi::bias_relu) {
        e.relu = H.data();
        e.ldh = ldc;
    }
    persist::nn::detail::gemm_acc<TA, TB, T>(m, n, k, A.data(), lda, B.data(), ldb, C.data(), ldc, scratch, e);
    const double tol = std::is_same_v<T, float> ? 2e-6 * static_cast<double>(k + 1) : 1e-13 * static_cast<double>(k + 1);
    for (Index j = 0; j < n; ++j)
        for (Index i = 0; i < ldc; ++i) {
            const std::size_t c = static_cast<std::size_t>(i + j * ldc);
            if (i >= m) {  // padding rows untouched
                REQUIRE(C[c] == C0[c]);
                REQUIRE(H[c] == T(7));
                continue;
            }
            if (epi == Epi::bias_relu) REQUIRE(H[c] == std::max(C[c], T(0)));
            else REQUIRE(H[c] == T(7));
            const bool acc = epi == Epi::accumulate || epi == Epi::relu_in_place || epi == Epi::mask ||
                             epi == Epi::row_sum;
            double want = acc ? static_cast<double>(C0[c])
                          : epi == Epi::overwrite || epi == Epi::row_sum_overwrite ? 0.0
                                                  : static_cast<double>(bias[static_cast<std::size_t>(i)]);
            for (Index p = 0; p < k; ++p) {
                const double a = TA ? A[static_cast<std::size_t>(p + i * lda)] : A[static_cast<std::size_t>(i + p * lda)];
                const double b = TB ? B[static_cast<std::size_t>(j + p * ldb)] : B[static_cast<std::size_t>(p + j * ldb)];
                want += a * b;
            }
            if (epi == Epi::relu_in_place) want = std::max(want, 0.0);
            if (epi == Epi::mask && !(mask[c] > T(0))) want = 0.0;
            INFO("m " << m << " n " << n << " k " << k << " TA " << TA << " TB " << TB << " at (" << i << ", " << j << ")");
            REQUIRE(std::abs(static_cast<double>(C[c]) - want) <= tol);
        }
    for (Index i = 0; i <= m; ++i) {  // row sums of op(A); the entry past m untouched
        const std::size_t r = static_cast<std::size_t>(i);
        if (i == m || (epi != Epi::row_sum && epi != Epi::row_sum_overwrite)) {
            REQUIRE(rsum[r] == rsum0[r]);
            continue;
        }
        double want = epi == Epi::row_sum ? static_cast<double>(rsum0[r]) : 0.0;
        for (Index p = 0; p < k; ++p)
            want += TA ? A[static_cast<std::size_t>(p + i * lda)] : A[static_cast<std::size_t>(i + p * lda)];
        INFO("row sum " << i << " of m " << m << " n " << n << " k " << k << " TA " << TA << " TB " << TB);
        REQUIRE(std::abs(static_cast<double>(rsum[r]) - want) <= tol);
    }
}

}  // namespace

TEMPLATE_TEST_CASE("gemm_acc: C += op(A) op(B) for every shape remainder and transpose", "[nn][gemm]", float, double) {
    using T = TestType;
    persist::Rng rng(3);
    Vec<T> scratch;
    for (Index m : {1, 2, 8, 15, 16, 17, 31, 34, 48, 63, 64, 65, 80, 129})
        for (Index n : {1, 2, 3, 5, 6, 7, 12, 13, 32})
            for (Index k : {1, 5, 20, 64}) {
                check_shape<false, false, T>(m, n, k, rng, scratch);
                check_shape<false, true, T>(m, n, k, rng, scratch);
                check_shape<true, false, T>(m, n, k, rng, scratch);
                check_shape<true, true, T>(m, n, k, rng, scratch);
            }
    check_shape<false, false, T>(256, 256, 256, rng, scratch);
    check_shape<false, true, T>(256, 70, 256, rng, scratch);
    check_shape<true, false, T>(256, 70, 256, rng, scratch);
}

TEMPLATE_TEST_CASE("gemm_acc epilogues: overwrite, bias, bias + ReLU", "[nn][gemm]", float, double) {
    using T = TestType;
    persist::Rng rng(4);
    Vec<T> scratch;
    for (Epi epi : {Epi::overwrite, Epi::bias, Epi::bias_relu, Epi::relu_in_place, Epi::mask, Epi::row_sum,
                     Epi::row_sum_overwrite})
        for (Index m : {1, 2, 9, 16, 33, 64, 65, 100})
            for (Index n : {1, 2, 3, 7, 13})
                for (Index k : {0, 1, 17, 64}) {
                    check_shape<false, false, T>(m, n, k, rng, scratch, epi);
                    check_shape<false, true, T>(m, n, k, rng, scratch, epi);
                    check_shape<true, false, T>(m, n, k, rng, scratch, epi);
                    check_shape<true, true, T>(m, n, k, rng, scratch, epi);
                }
}
