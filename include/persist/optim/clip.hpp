#pragma once
/// @file clip.hpp
/// Gradient clipping by global norm, with torch.nn.utils.clip_grad_norm_ semantics: the norm is
/// taken over the whole flat gradient (all tensors concatenated), the gradient is multiplied by
/// min(1, max_norm / (norm + 1e-6)), and the pre-clip norm is returned.
#include <algorithm>
#include <cmath>

#include "persist/optim/optimizer.hpp"

namespace persist::optim {

namespace detail {
template <class T>
T grad_norm(const VecCRef<T>& g, double norm_type) {
    if (std::isinf(norm_type)) return g.size() ? g.cwiseAbs().maxCoeff() : T(0);
    if (norm_type == 2.0) return g.norm();
    if (norm_type == 1.0) return g.cwiseAbs().sum();
    const T p = static_cast<T>(norm_type);
    return std::pow(g.array().abs().pow(p).sum(), T(1) / p);
}

template <class T>
T clip_grad_norm_impl(VecRef<T> grads, T max_norm, T norm_type) {
    require(detail::finite_nonneg(max_norm), "clip_grad_norm", "max_norm", "finite and >= 0",
            max_norm);
    require(norm_type >= T(1) || (std::isinf(static_cast<double>(norm_type)) && norm_type > T(0)),
            "clip_grad_norm", "norm_type", ">= 1 or +infinity", norm_type);
    const T total = grad_norm<T>(grads, static_cast<double>(norm_type));
    // torch multiplies even when the coefficient clamps to 1 (a no-op), and lets a non-finite
    // norm propagate into the gradient; both kept.
    const T coef = std::min(T(1), max_norm / (total + T(1e-6)));
    grads *= coef;
    return total;
}
}  // namespace detail

/// Scale `grads` in place so that its `norm_type`-norm is at most `max_norm` (approximately:
/// torch's 1e-6 guard); returns the norm before clipping. norm_type: any p >= 1, or
/// std::numeric_limits<T>::infinity() for the max-norm. Throws ConfigError on max_norm < 0.
inline float clip_grad_norm(VecRef<float> grads, float max_norm, float norm_type = 2.0f) {
    return detail::clip_grad_norm_impl<float>(grads, max_norm, norm_type);
}
inline double clip_grad_norm(VecRef<double> grads, double max_norm, double norm_type = 2.0) {
    return detail::clip_grad_norm_impl<double>(grads, max_norm, norm_type);
}

/// The norm clip_grad_norm would return, without modifying anything.
inline float grad_norm(VecCRef<float> grads, float norm_type = 2.0f) {
    return detail::grad_norm<float>(grads, static_cast<double>(norm_type));
}
inline double grad_norm(VecCRef<double> grads, double norm_type = 2.0) {
    return detail::grad_norm<double>(grads, norm_type);
}

}  // namespace persist::optim
