#pragma once
/// @file random.hpp
/// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011, "Parallel random numbers:
/// as easy as 1, 2, 3"). A stream is keyed by (seed, stream id); the n-th draw is a pure
/// function of (seed, stream, n), so batched rollouts give identical results for any number of
/// threads and on any Thrust backend. Distributions are our own (not <random>'s, whose output
/// is implementation-defined), so results are bitwise reproducible across standard libraries.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "persist/core/types.hpp"
#include "persist/parallel/lanes.hpp"

namespace persist {

/// Philox4x32-10 block function: 4 x 32-bit counter and 2 x 32-bit key -> 4 x 32-bit output.
struct Philox4x32 {
    struct Block {
        std::uint32_t v[4];
    };
    PERSIST_HD static inline void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi,
                                          std::uint32_t& lo) {
        const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
        hi = static_cast<std::uint32_t>(p >> 32);
        lo = static_cast<std::uint32_t>(p);
    }
    PERSIST_HD static inline Block apply(Block c, std::uint32_t k0, std::uint32_t k1) {
        constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
        constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
        for (int r = 0; r < 10; ++r) {
            std::uint32_t hi0, lo0, hi1, lo1;
            mulhilo(M0, c.v[0], hi0, lo0);
            mulhilo(M1, c.v[2], hi1, lo1);
            c = Block{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
            k0 += W0;
            k1 += W1;
        }
        return c;
    }
};

/// A reproducible random stream: draw n of stream `stream` under `seed` is a pure function of
/// (seed, stream, n). Cheap to construct (no state tables), usable in `__host__ __device__`
/// kernels, and a std::uniform_random_bit_generator for host code.
class CounterRng {
public:
    using result_type = std::uint32_t;

    PERSIST_HD CounterRng() : CounterRng(0u, 0u) {}
    PERSIST_HD explicit CounterRng(std::uint64_t seed, std::uint64_t stream = 0)
        : k0_(static_cast<std::uint32_t>(seed)), k1_(static_cast<std::uint32_t>(seed >> 32)),
          s0_(static_cast<std::uint32_t>(stream)), s1_(static_cast<std::uint32_t>(stream >> 32)) {}

    static constexpr result_type min() { return 0u; }
    static constexpr result_type max() { return std::numeric_limits<std::uint32_t>::max(); }

    /// Next 32 random bits.
    PERSIST_HD result_type operator()() {
        if (pos_ == 4) refill();
        return buf_.v[pos_++];
    }
    PERSIST_HD std::uint64_t next_u64() {
        const std::uint64_t hi = (*this)();
        return (hi << 32) | (*this)();
    }
    /// Uniform in [0, 1): 24 (float) or 53 (double) random mantissa bits.
    template <class T>
    PERSIST_HD T uniform() {
        if constexpr (sizeof(T) <= 4) {
            return static_cast<T>((*this)() >> 8) * static_cast<T>(1.0f / 16777216.0f);
        } else {
            return static_cast<T>(next_u64() >> 11) * static_cast<T>(1.0 / 9007199254740992.0);
        }
    }
    /// Uniform in [lo, hi).
    template <class T>
    PERSIST_HD T uniform(T lo, T hi) {
        return lo + (hi - lo) * uniform<T>();
    }
    /// Standard normal by Box-Muller (both outputs used; the spare is cached).
    template <class T>
    PERSIST_HD T normal() {
        if (has_spare_) {
            has_spare_ = false;
            return static_cast<T>(spare_);
        }
        const double u1 = 1.0 - uniform<double>();  // (0, 1]: log is finite
        const double u2 = uniform<double>();
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double th = 6.283185307179586476925 * u2;
        spare_ = r * std::sin(th);
        has_spare_ = true;
        return static_cast<T>(r * std::cos(th));
    }
#if PERSIST_HAS_LANES
    /// out[0..n) = n successive normal<float>() draws, from the same uniforms in the same order
    /// (so the stream ends where n normal() calls would, spare included), with the Box-Muller
    /// transform on 16-lane float vectors (Cephes log and sin/cos of parallel/lanes.hpp)
    /// instead of double libm calls: values agree with normal<float>() to ~1e-6 relative.
    void normals(float* out, Index n) {
        namespace ln = persist::parallel::lanes;
        constexpr int L = 16;
        Index i = 0;
        if (n > 0 && has_spare_) out[i++] = normal<float>();
        while (n - i >= 2) {
            const int pairs = static_cast<int>(std::min<Index>(L, (n - i) / 2));
            ln::vf<L> u1 = ln::splat<L>(1.0f), u2 = ln::splat<L>(0.0f);
            if (pos_ == 4) {
                // Block-aligned: pair l takes exactly block ctr_ + l (u1 from words 0-1, u2 from
                // 2-3), so the 16 Philox blocks are computed side by side on lane vectors.
                ln::vu<L> c0, c1, w[4];
                for (int l = 0; l < L; ++l) {
                    const std::uint64_t c = ctr_ + static_cast<std::uint64_t>(l);
                    c0[l] = static_cast<std::uint32_t>(c);
                    c1[l] = static_cast<std::uint32_t>(c >> 32);
                }
                ln::philox<L>(c0, c1, ln::splat_u<L>(s0_), ln::splat_u<L>(s1_), k0_, k1_, w);
                const auto unit = [](std::uint32_t hi, std::uint32_t lo) {
                    const std::uint64_t v = (static_cast<std::uint64_t>(hi) << 32) | lo;
                    return static_cast<double>(v >> 11) * (1.0 / 9007199254740992.0);
                };
                for (int l = 0; l < pairs; ++l) {
                    u1[l] = static_cast<float>(1.0 - unit(w[0][l], w[1][l]));
                    u2[l] = static_cast<float>(unit(w[2][l], w[3][l]));
                }
                ctr_ += static_cast<std::uint64_t>(pairs);
            } else {
                for (int l = 0; l < pairs; ++l) {
                    u1[l] = static_cast<float>(1.0 - uniform<double>());  // (0, 1]: log is finite
                    u2[l] = static_cast<float>(uniform<double>());
                }
            }
            const ln::vf<L> r = ln::vsqrt<L>(-2.0f * ln::vlog<L>(u1));
            ln::vf<L> sn, cs;
            ln::vsincos_2pi<L>(u2, sn, cs);
            const ln::vf<L> a = r * cs, b = r * sn;
            for (int l = 0; l < pairs; ++l) {
                out[i++] = a[l];
                out[i++] = b[l];
            }
        }
        if (i < n) out[i] = normal<float>();
    }
#endif
    /// n successive normal<T>() draws into out (the lane path above for float where available).
    template <class T>
    void normals(T* out, Index n) {
        for (Index i = 0; i < n; ++i) out[i] = normal<T>();
    }

    /// Unbiased integer in [0, n) (Lemire 2019, multiply-and-reject). n must be > 0.
    PERSIST_HD std::uint64_t below(std::uint64_t n) {
        if (n <= 0xFFFFFFFFull) {
            const auto n32 = static_cast<std::uint32_t>(n);
            std::uint64_t m = static_cast<std::uint64_t>((*this)()) * n32;
            auto low = static_cast<std::uint32_t>(m);
            if (low < n32) {
                const std::uint32_t t = static_cast<std::uint32_t>(-n32) % n32;
                while (low < t) {
                    m = static_cast<std::uint64_t>((*this)()) * n32;
                    low = static_cast<std::uint32_t>(m);
                }
            }
            return m >> 32;
        }
        // Rare 64-bit case: rejection on the top multiple.
        const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() -
                                    std::numeric_limits<std::uint64_t>::max() % n;
        std::uint64_t x;
        do {
            x = next_u64();
        } while (x >= limit);
        return x % n;
    }
    /// A statistically independent stream derived from this one's seed.
    PERSIST_HD CounterRng fork(std::uint64_t stream) const {
        CounterRng r;
        r.k0_ = k0_ ^ 0x85EBCA6Bu;
        r.k1_ = k1_ ^ 0xC2B2AE35u;
        r.s0_ = static_cast<std::uint32_t>(stream) ^ s0_;
        r.s1_ = static_cast<std::uint32_t>(stream >> 32) ^ s1_ ^ 0x27D4EB2Fu;
        return r;
    }
    /// Draws taken so far (for checkpoints); restore with `set_position`.
    PERSIST_HD std::uint64_t position() const {
        return ctr_ * 4 - static_cast<std::uint64_t>(4 - pos_);
    }
    PERSIST_HD void set_position(std::uint64_t n) {
        ctr_ = n / 4;
        pos_ = 4;
        has_spare_ = false;
        const auto skip = static_cast<int>(n % 4);
        if (skip) {
            refill();
            pos_ = skip;
        }
    }

private:
    PERSIST_HD void refill() {
        Philox4x32::Block c{{static_cast<std::uint32_t>(ctr_), static_cast<std::uint32_t>(ctr_ >> 32),
                             s0_, s1_}};
        buf_ = Philox4x32::apply(c, k0_, k1_);
        ++ctr_;
        pos_ = 0;
    }

    std::uint32_t k0_, k1_, s0_, s1_;
    std::uint64_t ctr_ = 0;
    Philox4x32::Block buf_{{0, 0, 0, 0}};
    int pos_ = 4;
    bool has_spare_ = false;
    double spare_ = 0.0;
};

/// The library's default generator.
using Rng = CounterRng;

}  // namespace persist
