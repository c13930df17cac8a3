#pragma once
/// @file lanes.hpp
/// Lane vectors for the CPU rollout path (parallel/rollout.hpp, EigenRolloutRunner): L
/// rollouts of one ensemble member side by side, one rollout per SIMD lane, so the member's
/// MLP is a sequence of broadcast-weight x lane-vector FMAs and everything elementwise (input
/// scaling, noise, log-std squashing, margins, bookkeeping) runs L rollouts per instruction.
///
/// Built on GCC/Clang vector extensions (`vector_size`), which compile to AVX-512 (L = 16) or
/// AVX/SSE pairs where the target has less; not under nvcc (device code keeps the scalar
/// kernel) and not on compilers without the extension (PERSIST_HAS_LANES = 0: the runner keeps
/// its GEMM path). Define PERSIST_NO_LANES to switch the lane path off.
///
/// The float math here (exp, log, log1p, sin/cos of 2 pi u) are the Cephes single-precision
/// polynomials (S. L. Moshier, Cephes Math Library, `expf.c`, `logf.c`, `sinf.c`), accurate to
/// 1-2 ulp on the ranges stated; the tests compare them against libm (tests/shield/test_lanes.cpp).
#include <cstdint>
#include <utility>

#if (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__) && !defined(PERSIST_NO_LANES)
#define PERSIST_HAS_LANES 1
#if defined(__AVX512F__) || defined(__FMA__) || defined(__AVX__)
#include <immintrin.h>
#endif
#else
#define PERSIST_HAS_LANES 0
#endif

#if PERSIST_HAS_LANES
/// For the lane path's FMA kernels: a function of its own whose loops start on a 64-byte
/// boundary. Their 16-FMA body is 128 bytes; left where the code happens to fall it may span
/// three 64-byte fetch windows instead of two, which was measured to cost 30 % of the check's
/// time on a Zen 4 core (identical instructions, only the loop address differing).
#if defined(__clang__)
#define PERSIST_LANE_KERNEL __attribute__((noinline))
#else
#define PERSIST_LANE_KERNEL __attribute__((noinline, optimize("align-loops=64")))
#endif
// GCC notes that returning a 16-lane vector by value "changes the ABI" when the translation
// unit is compiled without AVX-512 (-Wpsabi). These functions are inline and never cross a
// library boundary, so the note says nothing to a user compiling with default flags.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
namespace persist::parallel::lanes {

/// L lanes of float / int32 / uint32 / uint64 (L = 8 or 16).
template <int L>
struct Types {
    typedef float vf __attribute__((vector_size(4 * L)));
    typedef std::int32_t vi __attribute__((vector_size(4 * L)));
    typedef std::uint32_t vu __attribute__((vector_size(4 * L)));
    typedef std::uint64_t vu64 __attribute__((vector_size(8 * L)));
};
template <int L>
using vf = typename Types<L>::vf;
template <int L>
using vi = typename Types<L>::vi;
template <int L>
using vu = typename Types<L>::vu;

/// Every lane = s.
template <int L>
inline vf<L> splat(float s) {
    // Not `vf<L>{} + s`: 0 + s is not s for s = -0, so the compiler must add before broadcasting.
#if defined(__AVX512F__)
    if constexpr (L == 16) return _mm512_set1_ps(s);
#endif
#if defined(__AVX__)
    if constexpr (L == 8) return _mm256_set1_ps(s);
#endif
    vf<L> v;
    for (int j = 0; j < L; ++j) v[j] = s;
    return v;
}
template <int L>
inline vi<L> splat_i(std::int32_t s) {
    vi<L> v = {};
    return v + s;
}
template <int L>
inline vu<L> splat_u(std::uint32_t s) {
    vu<L> v = {};
    return v + s;
}

/// m ? a : b per lane (m: all-ones / all-zeros lanes, as comparisons give).
template <int L>
inline vf<L> select(vi<L> m, vf<L> a, vf<L> b) {
    return reinterpret_cast<vf<L>>((reinterpret_cast<vi<L>>(a) & m) | (reinterpret_cast<vi<L>>(b) & ~m));
}
template <int L>
inline vi<L> select(vi<L> m, vi<L> a, vi<L> b) {
    return (a & m) | (b & ~m);
}
template <int L>
inline vf<L> vmin(vf<L> a, vf<L> b) {
    return select<L>(b < a, b, a);
}
template <int L>
inline vf<L> vmax(vf<L> a, vf<L> b) {
    return select<L>(a < b, b, a);
}

/// a * b + c, fused where the target has FMA (one rounding), else two roundings.
template <int L>
inline vf<L> fmadd(vf<L> a, vf<L> b, vf<L> c) {
#if defined(__AVX512F__)
    if constexpr (L == 16) return _mm512_fmadd_ps(a, b, c);
#endif
#if defined(__FMA__)
    if constexpr (L == 8) return _mm256_fmadd_ps(a, b, c);
#endif
    return a * b + c;
}

/// Correctly rounded square root per lane.
template <int L>
inline vf<L> vsqrt(vf<L> a) {
#if defined(__AVX512F__)
    if constexpr (L == 16) return _mm512_sqrt_ps(a);
#endif
#if defined(__AVX__)
    if constexpr (L == 8) return _mm256_sqrt_ps(a);
#endif
    vf<L> r;
    for (int j = 0; j < L; ++j) r[j] = __builtin_sqrtf(a[j]);
    return r;
}

/// Round to nearest (ties to even) for |x| < 2^22, as float and as int.
template <int L>
inline vf<L> round_nearest(vf<L> x, vi<L>& n) {
    const vf<L> magic = splat<L>(12582912.0f);  // 1.5 * 2^23
    const vf<L> t = x + magic;
    n = reinterpret_cast<vi<L>>(t) - 0x4B400000;
    return t - magic;
}

/// e^x for x in [-87.3, 88.0] (Cephes expf: Cody-Waite reduction by ln 2, degree-6
/// polynomial, 2^n from the exponent bits); inputs outside that range are taken at its ends
/// (e^-87.3 = 1.2e-38 instead of a subnormal, e^88 = 1.65e38 instead of overflow).
template <int L>
inline vf<L> vexp(vf<L> x) {
    x = vmax<L>(vmin<L>(x, splat<L>(88.0f)), splat<L>(-87.33654f));
    vi<L> n;
    const vf<L> fn = round_nearest<L>(x * 1.44269504088896341f, n);
    vf<L> r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    vf<L> p = splat<L>(1.9875691500e-4f);
    p = fmadd<L>(p, r, splat<L>(1.3981999507e-3f));
    p = fmadd<L>(p, r, splat<L>(8.3334519073e-3f));
    p = fmadd<L>(p, r, splat<L>(4.1665795894e-2f));
    p = fmadd<L>(p, r, splat<L>(1.6666665459e-1f));
    p = fmadd<L>(p, r, splat<L>(5.0000001201e-1f));
    const vf<L> y = fmadd<L>(p, r * r, r) + 1.0f;
    return y * reinterpret_cast<vf<L>>((n + 127) << 23);
}

/// ln x for positive normal x (Cephes logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)),
/// degree-9 polynomial in m - 1). Zero, negative, subnormal and non-finite inputs are not
/// handled (callers pass values in [2^-24, 2]).
template <int L>
inline vf<L> vlog(vf<L> x) {
    const vi<L> bits = reinterpret_cast<vi<L>>(x);
    vi<L> e = (bits >> 23) - 126;                                              // x = m 2^e, m in [0.5, 1)
    vf<L> m = reinterpret_cast<vf<L>>((bits & 0x007FFFFF) | 0x3F000000);
    const vi<L> small = m < 0.707106781186547524f;
    e = e + small;                                                             // -1 where m < sqrt(1/2)
    m = select<L>(small, m + m, m) - 1.0f;
    const vf<L> z = m * m;
    vf<L> y = splat<L>(7.0376836292e-2f);
    y = fmadd<L>(y, m, splat<L>(-1.1514610310e-1f));
    y = fmadd<L>(y, m, splat<L>(1.1676998740e-1f));
    y = fmadd<L>(y, m, splat<L>(-1.2420140846e-1f));
    y = fmadd<L>(y, m, splat<L>(1.4249322787e-1f));
    y = fmadd<L>(y, m, splat<L>(-1.6668057665e-1f));
    y = fmadd<L>(y, m, splat<L>(2.0000714765e-1f));
    y = fmadd<L>(y, m, splat<L>(-2.4999993993e-1f));
    y = fmadd<L>(y, m, splat<L>(3.3333331174e-1f));
    y = y * m * z;
    const vf<L> fe = __builtin_convertvector(e, vf<L>);
    y = fmadd<L>(fe, splat<L>(-2.12194440e-4f), y);
    y = fmadd<L>(z, splat<L>(-0.5f), y);
    return fmadd<L>(fe, splat<L>(0.693359375f), m + y);
}

/// ln(1 + y) for y in [0, 1]: ln(u) for u = fl(1 + y), corrected by the rounding of u
/// (Goldberg's trick: + (y - (u - 1)) / u).
template <int L>
inline vf<L> vlog1p(vf<L> y) {
    const vf<L> u = y + 1.0f;
    return vlog<L>(u) + (y - (u - 1.0f)) / u;
}

/// log(1 + e^x) = max(x, 0) + log1p(e^-|x|), any finite x.
template <int L>
inline vf<L> vsoftplus(vf<L> x) {
    const vf<L> ax = vmax<L>(x, -x);
    return vmax<L>(x, splat<L>(0.0f)) + vlog1p<L>(vexp<L>(-ax));
}

/// tanh x, any finite x (Cephes tanhf: odd polynomial for |x| < 0.625, else
/// 1 - 2 / (e^{2|x|} + 1) with the sign of x; +-1 beyond |x| = 44 through vexp's clamp).
template <int L>
inline vf<L> vtanh(vf<L> x) {
    const vf<L> ax = vmax<L>(x, -x);
    const vf<L> big = 1.0f - 2.0f / (vexp<L>(ax + ax) + 1.0f);
    const vf<L> s = x * x;
    vf<L> p = splat<L>(-5.70498872745e-3f);
    p = fmadd<L>(p, s, splat<L>(2.06390887954e-2f));
    p = fmadd<L>(p, s, splat<L>(-5.37397155531e-2f));
    p = fmadd<L>(p, s, splat<L>(1.33314422036e-1f));
    p = fmadd<L>(p, s, splat<L>(-3.33332819422e-1f));
    const vf<L> small = fmadd<L>(p * s, x, x);
    const vi<L> sign = reinterpret_cast<vi<L>>(x) & static_cast<std::int32_t>(0x80000000u);
    const vf<L> signed_big = reinterpret_cast<vf<L>>(reinterpret_cast<vi<L>>(big) | sign);
    return select<L>(ax < 0.625f, small, signed_big);
}

/// sin(2 pi u) and cos(2 pi u) for u in [0, 1]: u = q / 4 + f exactly (|f| <= 1/8), Cephes
/// sinf/cosf polynomials on [-pi/4, pi/4], then the quadrant q's swap and signs.
template <int L>
inline void vsincos_2pi(vf<L> u, vf<L>& s, vf<L>& c) {
    vi<L> q;
    const vf<L> fq = round_nearest<L>(u * 4.0f, q);
    const vf<L> t = (u - fq * 0.25f) * 6.28318530717958647f;
    const vf<L> z = t * t;
    vf<L> ps = splat<L>(-1.9515295891e-4f);
    ps = fmadd<L>(ps, z, splat<L>(8.3321608736e-3f));
    ps = fmadd<L>(ps, z, splat<L>(-1.6666654611e-1f));
    const vf<L> sn = fmadd<L>(ps * z, t, t);
    vf<L> pc = splat<L>(2.443315711809948e-5f);
    pc = fmadd<L>(pc, z, splat<L>(-1.388731625493765e-3f));
    pc = fmadd<L>(pc, z, splat<L>(4.166664568298827e-2f));
    const vf<L> cs = fmadd<L>(pc * z, z, fmadd<L>(z, splat<L>(-0.5f), splat<L>(1.0f)));
    // angle = t + q pi/2: q odd swaps sin and cos; sin < 0 for q in {2, 3}, cos < 0 for {1, 2}.
    const vi<L> odd = -(q & 1);
    const vf<L> s0 = select<L>(odd, cs, sn), c0 = select<L>(odd, sn, cs);
    const vu<L> qu = reinterpret_cast<vu<L>>(q);
    const vu<L> neg_s = (qu & 2u) << 30;          // sign bit where q & 2
    const vu<L> neg_c = ((qu + 1u) & 2u) << 30;   // sign bit where (q + 1) & 2
    s = reinterpret_cast<vf<L>>(reinterpret_cast<vu<L>>(s0) ^ neg_s);
    c = reinterpret_cast<vf<L>>(reinterpret_cast<vu<L>>(c0) ^ neg_c);
}

/// Philox4x32-10 (core/random.hpp) on L counters at once, same key for every lane: w[0..4) are
/// the output words. The 32 x 32 -> 64-bit products use the even/odd-lane form (vpmuludq).
template <int L>
inline void philox(vu<L> c0, vu<L> c1, vu<L> c2, vu<L> c3, std::uint32_t k0, std::uint32_t k1, vu<L>* w) {
    typedef std::uint64_t v64 __attribute__((vector_size(4 * L)));
    constexpr std::uint64_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    constexpr std::uint64_t lo32 = 0xFFFFFFFFu;
    const auto mulhilo = [](vu<L> a, std::uint64_t m, vu<L>& hi, vu<L>& lo) {
        const v64 a64 = reinterpret_cast<v64>(a);
        const v64 pe = (a64 & lo32) * m;  // lanes 0, 2, 4, ...
        const v64 po = (a64 >> 32) * m;   // lanes 1, 3, 5, ...
        lo = reinterpret_cast<vu<L>>((pe & lo32) | (po << 32));
        hi = reinterpret_cast<vu<L>>((pe >> 32) | (po & ~lo32));
    };
    for (int r = 0; r < 10; ++r) {
        vu<L> hi0, lo0, hi1, lo1;
        mulhilo(c0, M0, hi0, lo0);
        mulhilo(c2, M1, hi1, lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += W0;
        k1 += W1;
    }
    w[0] = c0;
    w[1] = c1;
    w[2] = c2;
    w[3] = c3;
}

}  // namespace persist::parallel::lanes
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif
