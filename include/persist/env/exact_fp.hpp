#pragma once
/// @file exact_fp.hpp
/// Floating-point helpers for environments that must reproduce a reference bit for bit
/// (the Gymnasium ports in pendulum.hpp and cartpole.hpp).
///
/// Why: C++ compilers may fuse `a * b + c` into one fused multiply-add (GCC does so by default
/// in C++, even with -std=c++20, whenever FMA is available, e.g. -march=native). An FMA rounds
/// once where numpy rounds twice, so the trajectory drifts from Gymnasium's in the last bit and
/// rewards can no longer be compared exactly. `rounded(x)` makes the compiler materialise x as
/// a rounded value of its type before it is used again, which rules out the fusion whatever
/// the user's compiler flags are. The environments use it wherever a product meets a sum, so
/// their trajectories are also the same with and without FMA (-march=native or not).
#include <cmath>

namespace persist::env::detail {

/// x, rounded to its type and opaque to the optimiser (blocks multiply-add contraction).
template <class F>
inline F rounded(F x) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__SSE2__))
    asm("" : "+x"(x));  // x must live in an SSE register: the product is already rounded
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
    asm("" : "+w"(x));
#else
    volatile F v = x;  // portable fallback: a store and a load
    x = v;
#endif
    return x;
}

/// a * b rounded on its own (never fused with a following addition).
template <class F>
inline F mul(F a, F b) noexcept {
    return rounded(a * b);
}

/// Uniform in [lo, hi) from any generator with `uniform<F>()` in [0, 1) (persist::Rng), as
/// lo + (hi - lo) u with the product rounded on its own: Rng::uniform(lo, hi) computes the same
/// expression but the compiler may fuse it, giving other numbers in FMA builds.
template <class F, class G>
inline F uniform(G& rng, F lo, F hi) {
    return lo + mul(hi - lo, rng.template uniform<F>());
}

/// numpy's scalar `x ** 2`: numpy calls the C library's pow / powf for scalar powers, which
/// (glibc) is not always the correctly rounded x * x. The exponent is made opaque so the
/// compiler cannot fold pow(x, 2) into x * x.
template <class F>
inline F py_square(F x) {
    return std::pow(x, rounded(F(2)));
}

/// numpy's float64 `a % b` (npy_remainder / npy_divmod): fmod, then moved into the sign of b
/// as Python's floored modulo demands.
inline double py_mod(double a, double b) noexcept {
    double mod = std::fmod(a, b);
    if (mod != 0.0) {
        if ((b < 0) != (mod < 0)) mod += b;
    } else {
        mod = std::copysign(0.0, b);
    }
    return mod;
}

}  // namespace persist::env::detail
