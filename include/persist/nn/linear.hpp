#pragma once
/// @file linear.hpp
/// Fully connected layer Y = W X + b (layer contract: nn/layer.hpp).
#include <algorithm>
#include <string>

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

namespace persist::nn {
namespace detail {

/// C (m x n, leading dimension ldc) += op(A) op(B), column-major storage; op(A) = A^T when
/// TransA (A stored k x m), likewise for B (stored n x k). Single-threaded; Eigen's packing
/// buffers come from `scratch`, grown on first use of a shape and then reused.
template <bool TransA, bool TransB, class T>
void gemm_acc(Index m, Index n, Index k, const T* A, Index lda, const T* B, Index ldb, T* C,
              Index ldc, [[maybe_unused]] Vec<T>& scratch) {
    if (m == 0 || n == 0 || k == 0) return;
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
