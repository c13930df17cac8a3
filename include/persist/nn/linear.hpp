#pragma once
/// @file linear.hpp
/// Fully connected layer Y = W X + b (layer contract: nn/layer.hpp).
#include <algorithm>
#include <string>
#include <type_traits>

#include "persist/core/error.hpp"
#include "persist/nn/layer.hpp"

// Linear's GEMMs call Eigen's own GEMM kernel with packing buffers kept in the layer's Cache.
// Eigen's expression API (`C.noalias() += A * B`) mallocs and frees those buffers on every
// product once they pass 128 KiB (layers wider than ~180 floats), which costs page faults (20-30%
// of a 256-wide MLP step, measured), and forks OpenMP threads for products too small to gain
// from it. The kernel's interface is internal to Eigen, so this path is enabled only for the
// Eigen series it was written against (3.4) and when Eigen is not routed to an external BLAS;
// define PERSIST_NN_PLAIN_EIGEN_GEMM to use the expression API everywhere.
#if !defined(PERSIST_NN_PLAIN_EIGEN_GEMM) && !defined(EIGEN_USE_BLAS) && \
    !defined(EIGEN_USE_MKL_ALL) && EIGEN_VERSION_AT_LEAST(3, 4, 0) && !EIGEN_VERSION_AT_LEAST(3, 4, 90)
#define PERSIST_NN_KERNEL_GEMM 1
#else
#define PERSIST_NN_KERNEL_GEMM 0
#endif

// Float products C += A op(B) with A not transposed (forward W X and dW = G X^T) use a
// register-blocked AVX-512 kernel without packing (below) when the target has AVX-512: at the
// widths of RL networks (tens to a few hundred) Eigen's packing costs as much as the product.
// Define PERSIST_NN_PLAIN_EIGEN_GEMM to use Eigen everywhere.
#if defined(__AVX512F__) && !defined(PERSIST_NN_PLAIN_EIGEN_GEMM) && !defined(__CUDACC__)
#define PERSIST_NN_AVX512_GEMM 1
#include <immintrin.h>
#else
#define PERSIST_NN_AVX512_GEMM 0
#endif

namespace persist::nn {
namespace detail {

#if PERSIST_NN_AVX512_GEMM
namespace avx512 {

/// One tile: C[0:16 MV (last vector masked), 0:NR] += sum_p A[:, p] B(p, j), with A's column p
/// at A + p lda and B(p, j) at B + p rsb + j csb. MV x NR accumulators stay in registers; each
/// step loads MV vectors of A and broadcasts NR elements of B.
template <int MV, int NR>
inline void tile(Index k, const float* A, Index lda, const float* B, Index rsb, Index csb, float* C, Index ldc,
                 __mmask16 last) {
    __m512 acc[MV][NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) acc[v][j] = _mm512_setzero_ps();
    for (Index p = 0; p < k; ++p) {
        __m512 a[MV];
        const float* ap = A + p * lda;
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v)
            a[v] = v == MV - 1 ? _mm512_maskz_loadu_ps(last, ap + 16 * v) : _mm512_loadu_ps(ap + 16 * v);
        const float* bp = B + p * rsb;
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) {
            const __m512 bj = _mm512_set1_ps(bp[j * csb]);
#pragma GCC unroll 4
            for (int v = 0; v < MV; ++v) acc[v][j] = _mm512_fmadd_ps(a[v], bj, acc[v][j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) {
            float* c = C + j * ldc + 16 * v;
            if (v == MV - 1) _mm512_mask_storeu_ps(c, last, _mm512_add_ps(_mm512_maskz_loadu_ps(last, c), acc[v][j]));
            else _mm512_storeu_ps(c, _mm512_add_ps(_mm512_loadu_ps(c), acc[v][j]));
        }
}

/// All columns of one block of up to 16 MV rows: tiles of 6 columns, then the remainder.
template <int MV>
inline void column_tiles(Index n, Index k, const float* A, Index lda, const float* B, Index rsb, Index csb, float* C,
                         Index ldc, __mmask16 last) {
    Index j = 0;
    for (; j + 6 <= n; j += 6) tile<MV, 6>(k, A, lda, B + j * csb, rsb, csb, C + j * ldc, ldc, last);
    const float* b = B + j * csb;
    float* c = C + j * ldc;
    switch (n - j) {
        case 1: tile<MV, 1>(k, A, lda, b, rsb, csb, c, ldc, last); break;
        case 2: tile<MV, 2>(k, A, lda, b, rsb, csb, c, ldc, last); break;
        case 3: tile<MV, 3>(k, A, lda, b, rsb, csb, c, ldc, last); break;
        case 4: tile<MV, 4>(k, A, lda, b, rsb, csb, c, ldc, last); break;
        case 5: tile<MV, 5>(k, A, lda, b, rsb, csb, c, ldc, last); break;
        default: break;
    }
}

/// C (m x n, ldc) += A (m x k, lda, column-major) B, B(p, j) at B + p rsb + j csb; blocks of 64 rows.
inline void gemm(Index m, Index n, Index k, const float* A, Index lda, const float* B, Index rsb, Index csb, float* C,
                 Index ldc) {
    for (Index i = 0; i < m; i += 64) {
        const Index rows = std::min<Index>(64, m - i);
        const auto tail = static_cast<unsigned>(rows % 16);
        const auto last = static_cast<__mmask16>(tail ? (1u << tail) - 1u : 0xFFFFu);
        switch ((rows + 15) / 16) {
            case 4: column_tiles<4>(n, k, A + i, lda, B, rsb, csb, C + i, ldc, last); break;
            case 3: column_tiles<3>(n, k, A + i, lda, B, rsb, csb, C + i, ldc, last); break;
            case 2: column_tiles<2>(n, k, A + i, lda, B, rsb, csb, C + i, ldc, last); break;
            default: column_tiles<1>(n, k, A + i, lda, B, rsb, csb, C + i, ldc, last); break;
        }
    }
}

}  // namespace avx512
#endif

/// C (m x n, leading dimension ldc) += op(A) op(B), column-major storage; op(A) = A^T when
/// TransA (A stored k x m), likewise for B (stored n x k). Single-threaded; Eigen's packing
/// buffers come from `scratch`, grown on first use of a shape and then reused.
template <bool TransA, bool TransB, class T>
void gemm_acc(Index m, Index n, Index k, const T* A, Index lda, const T* B, Index ldb, T* C,
              Index ldc, [[maybe_unused]] Vec<T>& scratch) {
    if (m == 0 || n == 0 || k == 0) return;
#if PERSIST_NN_AVX512_GEMM
    // Matrix-vector products (n <= 2, m == 1) stay with Eigen's GEMV.
    if constexpr (std::is_same_v<T, float> && !TransA) {
        if (n > 2 && m > 1) {
            avx512::gemm(m, n, k, A, lda, B, TransB ? ldb : 1, TransB ? 1 : ldb, C, ldc);
            return;
        }
    }
#endif
#if PERSIST_NN_KERNEL_GEMM
    // Vectors go to GEMV and tiny products to the coefficient loop, as Eigen itself does.
    if (m > 1 && n > 1 && m + n + k >= EIGEN_GEMM_TO_COEFFBASED_THRESHOLD) {
        namespace ei = Eigen::internal;
        struct Blocking : ei::level3_blocking<T, T> {
            Blocking(Index rows, Index cols, Index depth) {
                this->m_mc = rows;
                this->m_nc = cols;
                this->m_kc = depth;
                ei::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, Index(1));
            }
            void set(T* a, T* b) {
                this->m_blockA = a;
                this->m_blockB = b;
            }
        } blk(m, n, k);
        // blockB must stay aligned like blockA (the packers use aligned stores).
        constexpr Index align = std::max<Index>(1, EIGEN_DEFAULT_ALIGN_BYTES / Index(sizeof(T)));
        const Index size_a = (std::min(m, blk.mc()) * blk.kc() + align - 1) / align * align;
        const Index need = size_a + blk.kc() * std::min(n, blk.nc());
        if (scratch.size() < need) scratch.resize(need);
        blk.set(scratch.data(), scratch.data() + size_a);
        ei::general_matrix_matrix_product<Index, T, TransA ? Eigen::RowMajor : Eigen::ColMajor, false, T,
                                          TransB ? Eigen::RowMajor : Eigen::ColMajor, false,
                                          Eigen::ColMajor, 1>::run(m, n, k, A, lda, B, ldb, C, 1, ldc,
                                                                   T(1), blk, nullptr);
        return;
    }
#endif
    using CMap = Eigen::Map<const Mat<T>, 0, Eigen::OuterStride<>>;
    Eigen::Map<Mat<T>, 0, Eigen::OuterStride<>> Cm(C, m, n, Eigen::OuterStride<>(ldc));
    const CMap Am(A, TransA ? k : m, TransA ? m : k, Eigen::OuterStride<>(lda));
    const CMap Bm(B, TransB ? n : k, TransB ? k : n, Eigen::OuterStride<>(ldb));
    if constexpr (TransA && TransB) Cm.noalias() += Am.transpose() * Bm.transpose();
    else if constexpr (TransA) Cm.noalias() += Am.transpose() * Bm;
    else if constexpr (TransB) Cm.noalias() += Am * Bm.transpose();
    else Cm.noalias() += Am * Bm;
}

}  // namespace detail

/// Y = W X + b with W (out x in) and b (out x 1). Parameters in the flat buffer: W in
/// column-major order, then b. One GEMM forward, two backward (one when grad_in is not needed).
/// @tparam T float or double
template <class T>
class Linear {
public:
    using scalar_type = T;
    /// GEMM packing buffers (see gemm_acc), sized by the first forward/backward at a shape.
    struct Cache {
        Vec<T> gemm;
    };

    Linear(Index in_dim, Index out_dim) : in_(in_dim), out_(out_dim) {
        if (in_dim <= 0 || out_dim <= 0)
            throw ConfigError("Linear: dimensions must be positive, got in = " +
                              std::to_string(in_dim) + ", out = " + std::to_string(out_dim));
    }

    Index in_dim() const { return in_; }
    Index out_dim() const { return out_; }
    Index param_count() const { return out_ * in_ + out_; }
    void bind(T* params, T* grads) {
        p_ = params;
        g_ = grads;
    }
    void init(Rng& rng, const Init& scheme) { init_linear<T>(weight(), bias(), rng, scheme); }

    MatMap<T> weight() { return {p_, out_, in_}; }
    VecMap<T> bias() { return {p_ + out_ * in_, out_}; }
    Eigen::Map<const Mat<T>> weight() const { return {p_, out_, in_}; }
    Eigen::Map<const Vec<T>> bias() const { return {p_ + out_ * in_, out_}; }
    MatMap<T> weight_grad() { return {g_, out_, in_}; }
    VecMap<T> bias_grad() { return {g_ + out_ * in_, out_}; }

    std::string name() const {
        return "Linear(" + std::to_string(in_) + "->" + std::to_string(out_) + ")";
    }

    void forward(MatCRef<T> in, Mat<T>& out, Cache& c) const {
        detail::check_shape([this] { return name(); }, "forward input", in_, in.cols(), in.rows(),
                            in.cols());
        ensure_shape(out, out_, in.cols());
        // Seeding the output with b makes the GEMM accumulate onto it: the bias add costs no
        // extra pass (Eigen's "=" product zero-fills first anyway). Column copies, because
        // Eigen's replicate() of a mapped vector is a scalar loop.
        const auto b = bias();
        for (Index j = 0; j < out.cols(); ++j) out.col(j) = b;
        detail::gemm_acc<false, false>(out_, in.cols(), in_, p_, out_, in.data(), in.outerStride(),
                                       out.data(), out_, c.gemm);
    }

    /// Parameter gradients: `GradMode::accumulate` adds G X^T and G 1 to the gradient views;
    /// `GradMode::overwrite` writes them (equivalent to zeroing this layer's gradients first,
    /// without the separate pass; at B = 1 dW is a single outer product).
    void backward(MatCRef<T> in, MatCRef<T>, MatCRef<T> grad_out, Mat<T>* grad_in, Cache& c,
                  bool param_grads, GradMode mode = GradMode::accumulate) {
        detail::check_shape([this] { return name(); }, "backward grad_out", out_, in.cols(),
                            grad_out.rows(), grad_out.cols());
        const Index B = in.cols();
        if (param_grads) {
            if (mode == GradMode::overwrite && B == 1) {
                // dW = g x^T, db = g: one write pass, no zeroing, no depth-1 GEMM.
                weight_grad().noalias() = grad_out.col(0) * in.col(0).transpose();
                bias_grad() = grad_out.col(0);
            } else {
                if (mode == GradMode::overwrite) {
                    weight_grad().setZero();
                    bias_grad().setZero();
                }
                // dW += G X^T, db += G 1
                detail::gemm_acc<false, true>(out_, in_, B, grad_out.data(), grad_out.outerStride(),
                                              in.data(), in.outerStride(), g_, out_, c.gemm);
                bias_grad().noalias() += grad_out.rowwise().sum();
            }
        }
        if (grad_in) {  // dX = W^T G
            ensure_shape(*grad_in, in_, B);
            grad_in->setZero();
            detail::gemm_acc<true, false>(in_, B, out_, p_, out_, grad_out.data(),
                                          grad_out.outerStride(), grad_in->data(), in_, c.gemm);
        }
    }

private:
    Index in_, out_;
    T* p_ = nullptr;
    T* g_ = nullptr;
};

}  // namespace persist::nn
