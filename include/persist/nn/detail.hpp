#pragma once
/// @file detail.hpp
/// Internals shared by the nn headers: shape checks and numerically stable scalar helpers.
#include <cmath>
#include <string>

#include "persist/core/error.hpp"
#include "persist/core/types.hpp"

namespace persist::nn::detail {

inline constexpr double kLog2Pi = 1.8378770664093454835606594728112;  // log(2 pi)
inline constexpr double kLog2 = 0.69314718055994530941723212145818;

/// Throw ShapeError "<who>: <what>: expected r x c, got r' x c'" unless the shapes agree.
/// `who` is only evaluated on failure, so callers can pass a lambda building a name.
template <class Who>
inline void check_shape(const Who& who, const char* what, Index er, Index ec, Index gr, Index gc) {
    if (er != gr || ec != gc) [[unlikely]]
        persist::detail::throw_shape(std::string(who()) + ": " + what, er, ec, gr, gc);
}

/// log(1 + exp(x)) without overflow.
template <class T>
inline T softplus(T x) {
    return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::abs(x)));
}

/// 1 / (1 + exp(-x)) without overflow.
template <class T>
inline T sigmoid(T x) {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
}

/// log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), finite for any u (SAC, Haarnoja et al.
/// 2018, appendix C; the form used by Spinning Up).
template <class T>
inline T log1m_tanh2(T u) {
    return T(2) * (T(kLog2) - u - softplus(T(-2) * u));
}

}  // namespace persist::nn::detail
