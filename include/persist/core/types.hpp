#pragma once
/// @file types.hpp
/// Dense types shared by the networks, optimizers and agents.
///
/// Batch convention (one for the whole library): a batch is a column-major Eigen matrix with
/// one COLUMN PER SAMPLE, i.e. features x batch. A Linear layer computes Y = W X + b with W of
/// shape out x in, so the forward pass is one GEMM and the backward pass two.
#include <Eigen/Core>
#include <cstdint>

#if defined(__CUDACC__)
#define PERSIST_HD __host__ __device__
#else
#define PERSIST_HD
#endif

namespace persist {

using Index = Eigen::Index;

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic>;

/// Read-only view of any column-major block, Map or matrix without a copy.
template <class T>
using MatCRef = Eigen::Ref<const Mat<T>>;
template <class T>
using MatRef = Eigen::Ref<Mat<T>>;
template <class T>
using VecCRef = Eigen::Ref<const Vec<T>>;
template <class T>
using VecRef = Eigen::Ref<Vec<T>>;

template <class T>
using MatMap = Eigen::Map<Mat<T>>;
template <class T>
using VecMap = Eigen::Map<Vec<T>>;

/// Resize only when the shape changes, so a hot path at a fixed batch size never allocates.
template <class Derived>
inline void ensure_shape(Eigen::PlainObjectBase<Derived>& m, Index rows, Index cols) {
    if (m.rows() != rows || m.cols() != cols) m.resize(rows, cols);
}

}  // namespace persist
