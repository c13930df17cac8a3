#pragma once
/// @file running_mean_std.hpp
/// Running per-dimension mean and (population) variance of a stream of vectors, merged batch
/// by batch with the parallel algorithm of Chan, Golub & LeVeque (1979/1983):
///
///     n = n_a + n_b,  delta = mean_b - mean_a,
///     mean = mean_a + delta n_b / n,
///     M2   = M2_a + M2_b + delta^2 n_a n_b / n,      var = M2 / n.
///
/// A batch of one sample is Welford's update (1962). The statistics equal the two-pass mean
/// and population variance of everything seen, up to rounding, whatever the batch sizes. This is
/// the `RunningMeanStd` of OpenAI baselines / the RND reference code, without its `epsilon`
/// pseudo-count: with no samples the state is mean 0, var 1 (an identity normaliser), and the
/// first merge replaces it exactly. docs/intrinsic.md.
#include <cmath>
#include <cstdint>
#include <string>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

namespace persist::intrinsic {

/// Running mean / population variance of `dim`-dimensional samples (batches: dim x B, one
/// column per sample). Allocates only in the constructor. Models persist::Stateful.
/// @tparam T float or double (the statistics are kept in T; merge weights in double).
template <class T>
class RunningMeanStd {
    static_assert(Real<T>, "persist::intrinsic::RunningMeanStd<T>: T must be float or double");

public:
    using scalar_type = T;

    explicit RunningMeanStd(Index dim = 1) : dim_(dim) {
        if (dim < 1)
            throw ConfigError("RunningMeanStd: dim must be >= 1, got " + std::to_string(dim));
        mean_.setZero(dim);
        var_.setOnes(dim);
        bmean_.setZero(dim);
        bvar_.setZero(dim);
        delta_.setZero(dim);
    }

    Index dim() const { return dim_; }
    /// Samples seen so far.
    std::int64_t count() const { return count_; }
    const Vec<T>& mean() const { return mean_; }
    /// Population variance M2 / n (1 before the first sample).
    const Vec<T>& var() const { return var_; }
    T mean(Index i) const { return mean_(i); }
    T var(Index i) const { return var_(i); }
    T std(Index i) const { return std::sqrt(var_(i)); }

    /// Merge a batch x (dim x B): its mean and population variance are taken in two passes,
    /// then merged (Chan et al.). B = 0 is a no-op. Never allocates.
    void update(MatCRef<T> x) {
        if (x.rows() != dim_) persist::detail::throw_shape("RunningMeanStd::update: x", dim_, x.cols(), x.rows(), x.cols());
        const Index B = x.cols();
        if (B == 0) return;
        const T inv_b = T(1) / static_cast<T>(B);
        bmean_.noalias() = x.rowwise().sum() * inv_b;
        bvar_.setZero();
        for (Index j = 0; j < B; ++j) bvar_.array() += (x.col(j) - bmean_).array().square();
        bvar_ *= inv_b;
        merge_moments(B, bmean_, bvar_);
    }

    /// Merge precomputed moments of `n` samples: their mean and population variance.
    void merge_moments(std::int64_t n, VecCRef<T> mean, VecCRef<T> var) {
        if (n < 0) throw ConfigError("RunningMeanStd::merge_moments: n must be >= 0, got " + std::to_string(n));
        if (mean.size() != dim_) persist::detail::throw_shape("RunningMeanStd::merge_moments: mean", dim_, 1, mean.size(), 1);
        if (var.size() != dim_) persist::detail::throw_shape("RunningMeanStd::merge_moments: var", dim_, 1, var.size(), 1);
        if (n == 0) return;
        const std::int64_t total = count_ + n;
        const double wa = static_cast<double>(count_) / static_cast<double>(total);
        const double wb = static_cast<double>(n) / static_cast<double>(total);
        delta_ = mean - mean_;
        mean_ += static_cast<T>(wb) * delta_;
        // M2 / n = wa var_a + wb var_b + delta^2 wa wb  (Chan et al., divided through by n)
        var_.array() = static_cast<T>(wa) * var_.array() + static_cast<T>(wb) * var.array() +
                       static_cast<T>(wa * wb) * delta_.array().square();
        count_ = total;
    }

    /// Merge another accumulator over the same dimension (the parallel case of Chan et al.).
    void merge(const RunningMeanStd& other) {
        if (other.dim_ != dim_) persist::detail::throw_shape("RunningMeanStd::merge: other", dim_, 1, other.dim_, 1);
        merge_moments(other.count_, other.mean_, other.var_);
    }

    /// Back to no samples (mean 0, var 1).
    void reset() {
        mean_.setZero();
        var_.setOnes();
        count_ = 0;
    }

    /// State protocol: "mean" [dim], "var" [dim], "count" (i64 scalar).
    template <class V>
    void visit_state(V&& v) {
        const auto d = static_cast<std::int64_t>(dim_);
        v(state_tensor("mean", mean_.data(), {d}));
        v(state_tensor("var", var_.data(), {d}));
        v(state_tensor("count", &count_, {}));
    }

private:
    Index dim_;
    Vec<T> mean_, var_;
    std::int64_t count_ = 0;
    Vec<T> bmean_, bvar_, delta_;  // scratch
};

}  // namespace persist::intrinsic
