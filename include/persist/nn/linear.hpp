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

/// What gemm_acc does with the product R = op(A) op(B): C += R by default; C = R with
/// `overwrite`; C = b 1^T + R with `bias` (a column of m, implies overwrite); with `relu` it
/// also writes H = max(C, 0) (leading dimension `ldh`, NaN propagates as in Eigen's max);
/// with `relu_in_place` C itself becomes max(C, 0); with `mask` (leading dimension `ldm`) C is
/// zeroed where mask <= 0 or NaN (ReLU's derivative from its output: C = mask > 0 ? C : 0;
/// backward products only: the AVX-512 kernel ignores `mask` together with `bias`);
/// with `row_sum` the row sums of op(A) (m of them) are written (`overwrite`) or added to it
/// (db = G 1 beside dW = G X^T). The AVX-512 kernel applies these in its register epilogue:
/// no zeroing, bias, activation or reduction pass over memory.
template <class T>
struct GemmEpilogue {
    bool overwrite = false;
    const T* bias = nullptr;
    T* relu = nullptr;
    Index ldh = 0;
    bool relu_in_place = false;
    const T* mask = nullptr;
    Index ldm = 0;
    T* row_sum = nullptr;
};

#if PERSIST_NN_AVX512_GEMM
namespace avx512 {

/// 512-bit vectors (16 floats): the tiles for row blocks of more than 8 rows.
struct V16 {
    using V = __m512;
    using Mask = __mmask16;
    static constexpr int W = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static V load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
    static void store(float* p, V x) { _mm512_storeu_ps(p, x); }
    static void store(Mask m, float* p, V x) { _mm512_mask_storeu_ps(p, m, x); }
    static V set1(float x) { return _mm512_set1_ps(x); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
    /// m > 0 ? x : 0 (false for NaN m).
    static V where_positive(V m, V x) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, zero(), _CMP_GT_OQ), x); }
};

#if defined(__AVX512VL__)
/// 256-bit vectors (8 floats) for row blocks of at most 8 rows (heads with a few outputs, a few
/// input rows): half the lanes of a 512-bit tile would be masked off, and cores that split a
/// 512-bit FMA into two 256-bit halves (AMD Zen 4) run two 256-bit FMAs per cycle.
struct V8 {
    using V = __m256;
    using Mask = __mmask8;
    static constexpr int W = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static V load(Mask m, const float* p) { return _mm256_maskz_loadu_ps(m, p); }
    static void store(float* p, V x) { _mm256_storeu_ps(p, x); }
    static void store(Mask m, float* p, V x) { _mm256_mask_storeu_ps(p, m, x); }
    static V set1(float x) { return _mm256_set1_ps(x); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V max(V a, V b) { return _mm256_max_ps(a, b); }
    static V where_positive(V m, V x) { return _mm256_maskz_mov_ps(_mm256_cmp_ps_mask(m, zero(), _CMP_GT_OQ), x); }
};
#endif

/// One tile: C[0:W MV (last vector masked), 0:NR] (op)= sum_p A[:, p] B(p, j), with A's column
/// p at A + p lda and B(p, j) at B + p rsb + j csb, then the epilogue `e`. MV x NR accumulators
/// stay in registers; each step loads MV vectors of A and broadcasts NR elements of B.
template <class S, int MV, int NR>
inline void tile(Index k, const float* A, Index lda, const float* B, Index rsb, Index csb, float* C, Index ldc,
                 typename S::Mask last, const GemmEpilogue<float>& e) {
    using V = typename S::V;
    constexpr int W = S::W;
    V acc[MV][NR];
#pragma GCC unroll 12
    for (int j = 0; j < NR; ++j)
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) acc[v][j] = S::zero();
    V rsum[MV];
#pragma GCC unroll 4
    for (int v = 0; v < MV; ++v) rsum[v] = S::zero();
    const bool sums = e.row_sum != nullptr;
    for (Index p = 0; p < k; ++p) {
        V a[MV];
        const float* ap = A + p * lda;
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) a[v] = v == MV - 1 ? S::load(last, ap + W * v) : S::load(ap + W * v);
        if (sums) {
#pragma GCC unroll 4
            for (int v = 0; v < MV; ++v) rsum[v] = S::add(rsum[v], a[v]);
        }
        const float* bp = B + p * rsb;
#pragma GCC unroll 12
        for (int j = 0; j < NR; ++j) {
            const V bj = S::set1(bp[j * csb]);
#pragma GCC unroll 4
            for (int v = 0; v < MV; ++v) acc[v][j] = S::fmadd(a[v], bj, acc[v][j]);
        }
    }
    const auto load = [last](const float* q, int v) { return v == MV - 1 ? S::load(last, q) : S::load(q); };
    const auto store = [last](float* q, int v, V x) {
        if (v == MV - 1) S::store(last, q, x);
        else S::store(q, x);
    };
    if (sums) {
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) {
            float* q = e.row_sum + W * v;
            store(q, v, e.overwrite ? rsum[v] : S::add(load(q, v), rsum[v]));
        }
    }
    if (e.bias) {
        V b[MV];
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) b[v] = load(e.bias + W * v, v);
#pragma GCC unroll 12
        for (int j = 0; j < NR; ++j)
#pragma GCC unroll 4
            for (int v = 0; v < MV; ++v) {
                const V r = S::add(b[v], acc[v][j]);
                store(C + j * ldc + W * v, v, e.relu_in_place ? S::max(S::zero(), r) : r);
                // max(0, r) returns r when r is NaN, like Eigen's max(r, 0).
                if (e.relu) store(e.relu + j * e.ldh + W * v, v, S::max(S::zero(), r));
            }
        return;
    }
#pragma GCC unroll 12
    for (int j = 0; j < NR; ++j)
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) {
            float* c = C + j * ldc + W * v;
            V r = e.overwrite ? acc[v][j] : S::add(load(c, v), acc[v][j]);
            if (e.mask) r = S::where_positive(load(e.mask + j * e.ldm + W * v, v), r);
            store(c, v, e.relu_in_place ? S::max(S::zero(), r) : r);
            if (e.relu) store(e.relu + j * e.ldh + W * v, v, S::max(S::zero(), r));
        }
}

/// All columns of one block of up to W MV rows: tiles of NR columns, then the remainder.
/// `e` points at this block's rows (bias) and at column 0 (relu).
template <class S, int MV, int NR = 6>
inline void column_tiles(Index n, Index k, const float* A, Index lda, const float* B, Index rsb, Index csb, float* C,
                         Index ldc, typename S::Mask last, GemmEpilogue<float> e) {
    Index j = 0;
    float* const h0 = e.relu;
    const float* const m0 = e.mask;
    float* const sum0 = e.row_sum;
    const auto at = [&](Index col) {
        if (h0) e.relu = h0 + col * e.ldh;
        if (m0) e.mask = m0 + col * e.ldm;
        e.row_sum = col == 0 ? sum0 : nullptr;  // the row sums once, in the first column tile
        return e;
    };
    for (; j + NR <= n; j += NR) tile<S, MV, NR>(k, A, lda, B + j * csb, rsb, csb, C + j * ldc, ldc, last, at(j));
    if constexpr (NR > 6) {
        if (j + 6 <= n) {
            tile<S, MV, 6>(k, A, lda, B + j * csb, rsb, csb, C + j * ldc, ldc, last, at(j));
            j += 6;
        }
    }
    const float* b = B + j * csb;
    float* c = C + j * ldc;
    switch (n - j) {
        case 1: tile<S, MV, 1>(k, A, lda, b, rsb, csb, c, ldc, last, at(j)); break;
        case 2: tile<S, MV, 2>(k, A, lda, b, rsb, csb, c, ldc, last, at(j)); break;
        case 3: tile<S, MV, 3>(k, A, lda, b, rsb, csb, c, ldc, last, at(j)); break;
        case 4: tile<S, MV, 4>(k, A, lda, b, rsb, csb, c, ldc, last, at(j)); break;
        case 5: tile<S, MV, 5>(k, A, lda, b, rsb, csb, c, ldc, last, at(j)); break;
        default: break;
    }
}

/// One block of `rows` <= 64 rows of C: A's rows at A (column stride lda), C's at C.
inline void row_block(Index rows, Index n, Index k, const float* A, Index lda, const float* B, Index rsb, Index csb,
                      float* C, Index ldc, const GemmEpilogue<float>& e) {
#if defined(__AVX512VL__)
    if (rows <= 8) {
        const auto last8 = static_cast<__mmask8>((1u << rows) - 1u);
        column_tiles<V8, 1, 12>(n, k, A, lda, B, rsb, csb, C, ldc, last8, e);
        return;
    }
#endif
    const auto tail = static_cast<unsigned>(rows % 16);
    const auto last = static_cast<__mmask16>(tail ? (1u << tail) - 1u : 0xFFFFu);
    switch ((rows + 15) / 16) {
        case 4: column_tiles<V16, 4>(n, k, A, lda, B, rsb, csb, C, ldc, last, e); break;
        case 3: column_tiles<V16, 3>(n, k, A, lda, B, rsb, csb, C, ldc, last, e); break;
        case 2: column_tiles<V16, 2>(n, k, A, lda, B, rsb, csb, C, ldc, last, e); break;
        default: column_tiles<V16, 1>(n, k, A, lda, B, rsb, csb, C, ldc, last, e); break;
    }
}

/// The epilogue of the row block starting at row i.
inline GemmEpilogue<float> rows_from(GemmEpilogue<float> e, Index i) {
    if (e.bias) e.bias += i;
    if (e.relu) e.relu += i;
    if (e.mask) e.mask += i;
    if (e.row_sum) e.row_sum += i;
    return e;
}

/// C (m x n, ldc) += A (m x k, lda, column-major) B, B(p, j) at B + p rsb + j csb; blocks of 64 rows.
inline void gemm(Index m, Index n, Index k, const float* A, Index lda, const float* B, Index rsb, Index csb, float* C,
                 Index ldc, const GemmEpilogue<float>& e) {
    for (Index i = 0; i < m; i += 64)
        row_block(std::min<Index>(64, m - i), n, k, A + i, lda, B, rsb, csb, C + i, ldc, rows_from(e, i));
}

/// dst(r, c) = src(c, r) for a 16 x 16 block: src's columns r < nr (ld lds) hold nc <= 16
/// contiguous elements each; dst gets nc columns of 16 (ld ldd), zero in rows nr..15.
inline void transpose16(const float* src, Index lds, Index nr, Index nc, float* dst, Index ldd) {
    const auto cm = static_cast<__mmask16>(nc == 16 ? 0xFFFFu : (1u << nc) - 1u);
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) r[j] = j < nr ? _mm512_maskz_loadu_ps(cm, src + j * lds) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 16; j += 4) {
        r[j] = _mm512_shuffle_ps(t[j], t[j + 2], 0x44);
        r[j + 1] = _mm512_shuffle_ps(t[j], t[j + 2], 0xEE);
        r[j + 2] = _mm512_shuffle_ps(t[j + 1], t[j + 3], 0x44);
        r[j + 3] = _mm512_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 16; h += 8)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            t[h + j] = _mm512_shuffle_f32x4(r[h + j], r[h + j + 4], 0x88);
            t[h + j + 4] = _mm512_shuffle_f32x4(r[h + j], r[h + j + 4], 0xDD);
        }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
    }
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j)
        if (j < nc) _mm512_storeu_ps(dst + j * ldd, r[j]);
}

/// C (m x n, ldc) += A^T B with A stored k x m (lda) and B k x n (ldb), column-major: each
/// block of 64 rows of A^T is transposed into `panel` (64 x k, leading dimension 64) and fed to
/// the tiles above, so the inner loop reads contiguous rows as in `gemm`. `panel` holds >= 64 k.
inline void gemm_tn(Index m, Index n, Index k, const float* A, Index lda, const float* B, Index ldb, float* C,
                    Index ldc, float* panel, const GemmEpilogue<float>& e) {
    for (Index i = 0; i < m; i += 64) {
        const Index rows = std::min<Index>(64, m - i);
        // panel(r, p) = A(p, i + r), in 16 x 16 register transposes (rows past `rows` are zero).
        for (Index r0 = 0; r0 < rows; r0 += 16)
            for (Index p0 = 0; p0 < k; p0 += 16)
                transpose16(A + (i + r0) * lda + p0, lda, std::min<Index>(16, rows - r0),
                            std::min<Index>(16, k - p0), panel + r0 + p0 * 64, 64);
        row_block(rows, n, k, panel, 64, B, 1, ldb, C + i, ldc, rows_from(e, i));
    }
}

}  // namespace avx512
#endif

// Out of line: every caller of one instantiation runs the same machine code. GCC contracts
// a * b + c into FMAs by default in C++ (-ffp-contract=fast), and an inlined copy may be
// contracted differently from another, which would make e.g. a threaded MLP pass (docs/nn.md)
// differ in the last bit from the serial one on the products that go through Eigen.
#if defined(__GNUC__) || defined(__clang__)
#define PERSIST_NN_GEMM_NOINLINE __attribute__((noinline))
#else
#define PERSIST_NN_GEMM_NOINLINE
#endif

template <bool TransA, bool TransB, class T>
PERSIST_NN_GEMM_NOINLINE void gemm_acc_eigen(Index m, Index n, Index k, const T* A, Index lda, const T* B, Index ldb,
                                             T* C, Index ldc, Vec<T>& scratch);

/// C (m x n, leading dimension ldc) = or += op(A) op(B) (see GemmEpilogue; default +=),
/// column-major storage; op(A) = A^T when TransA (A stored k x m), likewise for B (stored
/// n x k). Single-threaded; packing buffers come from `scratch`, grown on first use of a shape
/// and then reused.
template <bool TransA, bool TransB, class T>
void gemm_acc(Index m, Index n, Index k, const T* A, Index lda, const T* B, Index ldb, T* C,
              Index ldc, Vec<T>& scratch, const GemmEpilogue<T>& e = {}) {
    if (m == 0 || n == 0) return;
#if PERSIST_NN_AVX512_GEMM
    // Single-row products (m == 1) and W^T G with n <= 2 columns stay with Eigen's GEMV (the
    // kernel would transpose all of W for one column); W x at batch 1 uses the kernel.
    if constexpr (std::is_same_v<T, float> && !(TransA && TransB)) {
        if ((n > 2 || !TransA) && m > 1 && k > 0) {
            if constexpr (!TransA) {
                avx512::gemm(m, n, k, A, lda, B, TransB ? ldb : 1, TransB ? 1 : ldb, C, ldc, e);
            } else {  // dX = W^T G: A^T packed 64 rows at a time into `scratch` (grown once)
                if (scratch.size() < 64 * k) scratch.resize(64 * k);
                avx512::gemm_tn(m, n, k, A, lda, B, ldb, C, ldc, scratch.data(), e);
            }
            return;
        }
    }
#endif
    // Column by column: contiguous maps vectorise without the strided traversal's set-up.
    if (e.bias) {
        const Eigen::Map<const Vec<T>> b(e.bias, m);
        for (Index j = 0; j < n; ++j) VecMap<T>(C + j * ldc, m) = b;
    } else if (e.overwrite) {
        for (Index j = 0; j < n; ++j) VecMap<T>(C + j * ldc, m).setZero();
    }
    if (e.row_sum) {
        VecMap<T> rs(e.row_sum, m);
        if (e.overwrite) rs.setZero();
        using CMap = Eigen::Map<const Mat<T>, 0, Eigen::OuterStride<>>;
        if (k > 0) {
            if constexpr (TransA) rs.noalias() += CMap(A, k, m, Eigen::OuterStride<>(lda)).colwise().sum().transpose();
            else rs.noalias() += CMap(A, m, k, Eigen::OuterStride<>(lda)).rowwise().sum();
        }
    }
    if (k > 0) gemm_acc_eigen<TransA, TransB>(m, n, k, A, lda, B, ldb, C, ldc, scratch);
    if (e.mask)
        for (Index j = 0; j < n; ++j) {
            T* c = C + j * ldc;
            const T* mk = e.mask + j * e.ldm;
            for (Index i = 0; i < m; ++i) c[i] = mk[i] > T(0) ? c[i] : T(0);
        }
    if (e.relu_in_place)
        for (Index j = 0; j < n; ++j) {
            VecMap<T> c(C + j * ldc, m);
            c.array() = c.array().max(T(0));
        }
    if (e.relu)
        for (Index j = 0; j < n; ++j)
            VecMap<T>(e.relu + j * e.ldh, m).array() = Eigen::Map<const Vec<T>>(C + j * ldc, m).array().max(T(0));
}

/// C += op(A) op(B) through Eigen (see gemm_acc).
template <bool TransA, bool TransB, class T>
PERSIST_NN_GEMM_NOINLINE void gemm_acc_eigen(Index m, Index n, Index k, const T* A, Index lda, const T* B, Index ldb,
                                             T* C, Index ldc, [[maybe_unused]] Vec<T>& scratch) {
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
        detail::GemmEpilogue<T> e;
        e.bias = p_ + out_ * in_;  // out = b 1^T + W X, the bias added in the GEMM's epilogue
        detail::gemm_acc<false, false>(out_, in.cols(), in_, p_, out_, in.data(), in.outerStride(),
                                       out.data(), out_, c.gemm, e);
    }

    /// h = max(W X + b, 0): forward() followed by ReLU, with the bias and the activation in
    /// the GEMM's epilogue where the kernel supports it (the pre-activation is not kept: the
    /// ReLU's backward needs only h). The same values as forward() then ReLU::forward.
    void forward_relu(MatCRef<T> in, Mat<T>& h, Cache& c) const {
        detail::check_shape([this] { return name(); }, "forward input", in_, in.cols(), in.rows(),
                            in.cols());
        ensure_shape(h, out_, in.cols());
        detail::GemmEpilogue<T> e;
        e.bias = p_ + out_ * in_;
        e.relu_in_place = true;
        detail::gemm_acc<false, false>(out_, in.cols(), in_, p_, out_, in.data(), in.outerStride(),
                                       h.data(), out_, c.gemm, e);
    }

    /// Parameter gradients: `GradMode::accumulate` adds G X^T and G 1 to the gradient views;
    /// `GradMode::overwrite` writes them (equivalent to zeroing this layer's gradients first,
    /// without the separate pass; at B = 1 dW is a single outer product).
    /// With `relu_mask` (the output h of a ReLU that computed this layer's input), grad_in gets
    /// dL/d(ReLU input) = (h > 0) * W^T G directly, the ReLU's backward fused into the product.
    void backward(MatCRef<T> in, MatCRef<T>, MatCRef<T> grad_out, Mat<T>* grad_in, Cache& c,
                  bool param_grads, GradMode mode = GradMode::accumulate, const Mat<T>* relu_mask = nullptr) {
        detail::check_shape([this] { return name(); }, "backward grad_out", out_, in.cols(),
                            grad_out.rows(), grad_out.cols());
        const Index B = in.cols();
        if (param_grads) {
            if (mode == GradMode::overwrite && B == 1) {
                // dW = g x^T, db = g: one write pass, no zeroing, no depth-1 GEMM.
                weight_grad().noalias() = grad_out.col(0) * in.col(0).transpose();
                bias_grad() = grad_out.col(0);
            } else {
                // dW (+)= G X^T, db (+)= G 1 (the row sums of G, in the same GEMM)
                detail::GemmEpilogue<T> e;
                e.overwrite = mode == GradMode::overwrite;
                e.row_sum = g_ + out_ * in_;
                detail::gemm_acc<false, true>(out_, in_, B, grad_out.data(), grad_out.outerStride(),
                                              in.data(), in.outerStride(), g_, out_, c.gemm, e);
            }
        }
        if (grad_in) {  // dX = W^T G
            ensure_shape(*grad_in, in_, B);
            detail::GemmEpilogue<T> e;
            e.overwrite = true;
            if (relu_mask) {  // dX * (h > 0): the derivative of a ReLU that produced this input
                detail::check_shape([this] { return name(); }, "backward relu_mask", in_, B, relu_mask->rows(),
                                    relu_mask->cols());
                e.mask = relu_mask->data();
                e.ldm = in_;
            }
            detail::gemm_acc<true, false>(in_, B, out_, p_, out_, grad_out.data(),
                                          grad_out.outerStride(), grad_in->data(), in_, c.gemm, e);
        }
    }

    // --- Blocks of a product, for callers that split one layer's work across threads -------
    // No shape checks and no resizing: the caller shaped every operand for the whole batch.
    // Each output element is computed by the same instruction sequence as in the unsplit
    // product (the AVX-512 kernel accumulates every element over k in order), so the blocks
    // together equal forward()/backward() bitwise there; Eigen's GEMM (double, other targets)
    // may block differently for a different shape.

    /// Columns [c0, c0 + nc) of forward() (relu: of forward_relu()) into `out` (out x B).
    void forward_cols(MatCRef<T> in, Mat<T>& out, Index c0, Index nc, bool relu, Cache& c) const {
        detail::GemmEpilogue<T> e;
        e.bias = p_ + out_ * in_;
        e.relu_in_place = relu;
        detail::gemm_acc<false, false>(out_, nc, in_, p_, out_, in.data() + c0 * in.outerStride(), in.outerStride(),
                                       out.data() + c0 * out_, out_, c.gemm, e);
    }
    /// Rows [r0, r0 + nr) of the parameter gradients dW (+)= G X^T, db (+)= G 1 over the whole
    /// batch (as backward() with param_grads, B > 1).
    void param_grad_rows(MatCRef<T> in, MatCRef<T> grad_out, Index r0, Index nr, GradMode mode, Cache& c) {
        if (nr <= 0) return;
        detail::GemmEpilogue<T> e;
        e.overwrite = mode == GradMode::overwrite;
        e.row_sum = g_ + out_ * in_ + r0;
        detail::gemm_acc<false, true>(nr, in_, in.cols(), grad_out.data() + r0, grad_out.outerStride(), in.data(),
                                      in.outerStride(), g_ + r0, out_, c.gemm, e);
    }
    /// Columns [c0, c0 + nc) of dX = W^T G (times relu_mask > 0 when given) into grad_in
    /// (in x B), as backward()'s grad_in.
    void input_grad_cols(MatCRef<T> grad_out, Mat<T>& grad_in, Index c0, Index nc, const Mat<T>* relu_mask,
                         Cache& c) const {
        detail::GemmEpilogue<T> e;
        e.overwrite = true;
        if (relu_mask) {
            e.mask = relu_mask->data() + c0 * in_;
            e.ldm = in_;
        }
        detail::gemm_acc<true, false>(in_, nc, out_, p_, out_, grad_out.data() + c0 * grad_out.outerStride(),
                                      grad_out.outerStride(), grad_in.data() + c0 * in_, in_, c.gemm, e);
    }

    /// Rows [row0, row0 + rows) of dX = W^T G only (no parameter gradients): the product with
    /// those columns of W, for callers that need the gradient of a few inputs (SAC's actor loss
    /// needs dQ/da, not dQ/ds). grad_in becomes rows x B.
    void input_grad_rows(MatCRef<T> grad_out, Index row0, Index rows, Mat<T>& grad_in, Cache& c) const {
        detail::check_shape([this] { return name(); }, "input_grad_rows grad_out", out_, grad_out.cols(),
                            grad_out.rows(), grad_out.cols());
        if (row0 < 0 || rows < 0 || row0 + rows > in_)
            throw ShapeError(name() + ": input rows [" + std::to_string(row0) + ", " +
                             std::to_string(row0 + rows) + ") outside the " + std::to_string(in_) + " inputs");
        const Index B = grad_out.cols();
        ensure_shape(grad_in, rows, B);
        detail::GemmEpilogue<T> e;
        e.overwrite = true;
        detail::gemm_acc<true, false>(rows, B, out_, p_ + row0 * out_, out_, grad_out.data(),
                                      grad_out.outerStride(), grad_in.data(), rows, c.gemm, e);
    }

private:
    Index in_, out_;
    T* p_ = nullptr;
    T* g_ = nullptr;
};

}  // namespace persist::nn
