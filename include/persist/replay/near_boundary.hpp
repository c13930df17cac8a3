#pragma once
/// @file near_boundary.hpp
/// The "near-boundary" buffer of the seed (sections 2 and 6): "Maintain a near-boundary buffer
/// using 0 < m(x) < epsilon to constantly refine the frontier". It keeps internal states x
/// (optionally with their observations) whose viability margin m(x) = min over constraints
/// lies strictly inside (0, epsilon), together with m(x), for training the viability
/// approximator and the internal model where it matters most.
///
/// Replacement once full (Replacement):
/// - reservoir (default): Vitter's Algorithm R. After n accepted states, every one of them is
///   in the buffer with probability capacity / n, i.e. the buffer is a uniform sample of the
///   whole accepted stream; early frontier states are not crowded out by a long run of
///   similar recent ones.
/// - ring: overwrite the oldest, i.e. keep the most recent `capacity` accepted states (for a
///   frontier that moves with the policy or a curriculum).
/// The reservoir's random draws come from an internal counter-based stream (seed + draw
/// count are part of the state), so `offer` needs no Rng and a checkpoint resumes exactly.
/// docs/replay.md.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include <xtensor/xtensor.hpp>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

namespace persist::replay {

/// What a full NearBoundaryBuffer does with a newly accepted state.
enum class Replacement : std::uint8_t {
    reservoir,  ///< uniform sample of all accepted states (Algorithm R)
    ring,       ///< most recent `capacity` accepted states
};

template <class T>
struct NearBoundaryOptions {
    Index capacity = 10000;
    Index internal_dim = 0;     ///< size of x (>= 1)
    Index observation_dim = 0;  ///< 0: observations are not stored
    T epsilon = T(0.05);        ///< band (0, epsilon) of accepted margins; > 0 and finite
    Replacement replacement = Replacement::reservoir;
    std::uint64_t seed = 0;  ///< reservoir draws
};

/// A sampled near-boundary minibatch: one column per sample.
template <class T>
struct NearBoundaryBatch {
    Mat<T> internal;     ///< internal_dim x B
    Mat<T> observation;  ///< observation_dim x B (0 rows when not stored)
    RowVec<T> margin;    ///< 1 x B, the m(x) each state was accepted with
};

/// States with 0 < m(x) < epsilon. Models persist::Stateful.
template <class T>
class NearBoundaryBuffer {
public:
    using scalar_type = T;
    using Options = NearBoundaryOptions<T>;

    /// capacity >= 1, internal_dim >= 1, observation_dim >= 0, epsilon > 0 and finite;
    /// persist::ConfigError naming the option and value otherwise.
    explicit NearBoundaryBuffer(const Options& opt) : opt_(opt), seed_(opt.seed) {
        if (opt.capacity < 1)
            throw ConfigError("NearBoundaryBuffer: capacity must be >= 1, got " + std::to_string(opt.capacity));
        if (opt.internal_dim < 1)
            throw ConfigError("NearBoundaryBuffer: internal_dim must be >= 1, got " + std::to_string(opt.internal_dim));
        if (opt.observation_dim < 0)
            throw ConfigError("NearBoundaryBuffer: observation_dim must be >= 0, got " +
                              std::to_string(opt.observation_dim));
        if (!(std::isfinite(opt.epsilon) && opt.epsilon > T(0)))
            throw ConfigError("NearBoundaryBuffer: epsilon must be finite and > 0, got " +
                              std::to_string(static_cast<double>(opt.epsilon)));
        const auto cap = static_cast<std::size_t>(opt.capacity);
        x_ = xt::xtensor<T, 2>(std::array<std::size_t, 2>{cap, static_cast<std::size_t>(opt.internal_dim)}, T(0));
        obs_ = xt::xtensor<T, 2>(std::array<std::size_t, 2>{cap, static_cast<std::size_t>(opt.observation_dim)}, T(0));
        margin_ = xt::xtensor<T, 1>(std::array<std::size_t, 1>{cap}, T(0));
    }

    const Options& options() const { return opt_; }
    Index size() const { return static_cast<Index>(size_); }
    Index capacity() const { return opt_.capacity; }
    Index internal_dim() const { return opt_.internal_dim; }
    Index observation_dim() const { return opt_.observation_dim; }
    T epsilon() const { return opt_.epsilon; }
    /// States offered so far (any margin) and accepted into the band (the reservoir stream).
    std::uint64_t offered() const { return offered_; }
    std::uint64_t accepted() const { return accepted_; }

    /// The acceptance rule: 0 < m < epsilon, both strict (NaN is rejected).
    bool in_band(T m) const { return m > T(0) && m < opt_.epsilon; }

    /// Offer x with its per-constraint margins (min taken; at least one entry). Returns true
    /// when x was stored (in band, and kept by the replacement rule). `observation` must have
    /// observation_dim entries (empty when observations are not stored). ShapeError otherwise.
    bool offer(VecCRef<T> x, VecCRef<T> margins, VecCRef<T> observation = Vec<T>()) {
        if (margins.size() < 1)
            persist::detail::throw_shape("NearBoundaryBuffer::offer: margins", 1, 1, margins.size(), 1);
        return offer_margin(x, margins.minCoeff(), observation);
    }
    /// Offer x with its (already minimised) margin m(x).
    bool offer_margin(VecCRef<T> x, T margin, VecCRef<T> observation = Vec<T>()) {
        if (x.size() != opt_.internal_dim)
            persist::detail::throw_shape("NearBoundaryBuffer::offer: x", opt_.internal_dim, 1, x.size(), 1);
        if (observation.size() != opt_.observation_dim)
            persist::detail::throw_shape("NearBoundaryBuffer::offer: observation", opt_.observation_dim, 1,
                                         observation.size(), 1);
        ++offered_;
        if (!in_band(margin)) return false;
        ++accepted_;
        std::int64_t slot = -1;
        if (size_ < opt_.capacity) {
            slot = size_++;
            head_ = size_ % opt_.capacity;
        } else if (opt_.replacement == Replacement::ring) {
            slot = head_;
            head_ = (head_ + 1) % opt_.capacity;
        } else {
            Rng rng(seed_, stream_id);
            rng.set_position(draws_);
            const auto j = rng.below(accepted_);  // keep with probability capacity / accepted
            draws_ = rng.position();
            if (j < static_cast<std::uint64_t>(opt_.capacity)) slot = static_cast<std::int64_t>(j);
        }
        if (slot < 0) return false;
        store(static_cast<std::size_t>(slot), x, margin, observation);
        return true;
    }
    /// Offer x, its margins computed by a viability model (allocates a 1-column workspace the
    /// first time only).
    template <ViabilityModel V>
        requires std::same_as<scalar_of<V>, T>
    bool offer(const V& model, VecCRef<T> x, VecCRef<T> observation = Vec<T>()) {
        ensure_shape(work_, model.num_constraints(), 1);
        model.margins(x, work_);
        return offer(x, work_.col(0), observation);
    }

    /// n states drawn uniformly with replacement into `out` (resized; allocates only when its
    /// shape changes). n >= 1 (ConfigError); buffer non-empty (persist::Error).
    void sample(Index n, Rng& rng, NearBoundaryBatch<T>& out) const {
        check_sample(n);
        ensure_shape(out.internal, opt_.internal_dim, n);
        ensure_shape(out.observation, opt_.observation_dim, n);
        ensure_shape(out.margin, 1, n);
        for (Index b = 0; b < n; ++b) {
            const auto s = static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(size_)));
            copy_row(x_, s, out.internal, b);
            copy_row(obs_, s, out.observation, b);
            out.margin(b) = margin_(s);
        }
    }
    /// Only the states: x (internal_dim x n).
    void sample(Index n, Rng& rng, Mat<T>& x) const {
        check_sample(n);
        ensure_shape(x, opt_.internal_dim, n);
        for (Index b = 0; b < n; ++b)
            copy_row(x_, static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(size_))), x, b);
    }

    /// Stored states as internal_dim x capacity (column = slot; columns >= size() are unused).
    Eigen::Map<const Mat<T>> states() const {
        return Eigen::Map<const Mat<T>>(x_.data(), opt_.internal_dim, opt_.capacity);
    }
    Eigen::Map<const Mat<T>> observations() const {
        return Eigen::Map<const Mat<T>>(obs_.data(), opt_.observation_dim, opt_.capacity);
    }
    Eigen::Map<const RowVec<T>> margins() const { return Eigen::Map<const RowVec<T>>(margin_.data(), opt_.capacity); }

    /// Forget every state and restart the stream counts (the seed and draw position are kept,
    /// so the random stream continues).
    void clear() {
        size_ = head_ = 0;
        offered_ = accepted_ = 0;
    }

    /// State protocol: "internal" [capacity, internal_dim], "observation" [capacity,
    /// observation_dim], "margin" [capacity], counters "size", "head", "offered", "accepted",
    /// and the reservoir stream "seed", "draws".
    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("internal", x_.data(), {static_cast<std::int64_t>(x_.shape()[0]), static_cast<std::int64_t>(x_.shape()[1])}));
        v(state_tensor("observation", obs_.data(),
                       {static_cast<std::int64_t>(obs_.shape()[0]), static_cast<std::int64_t>(obs_.shape()[1])}));
        v(state_tensor("margin", margin_.data(), {static_cast<std::int64_t>(margin_.shape()[0])}));
        v(state_tensor("size", &size_, {}));
        v(state_tensor("head", &head_, {}));
        v(state_tensor("offered", &offered_, {}));
        v(state_tensor("accepted", &accepted_, {}));
        v(state_tensor("seed", &seed_, {}));
        v(state_tensor("draws", &draws_, {}));
    }

private:
    static constexpr std::uint64_t stream_id = 0x4e42u;  // "NB"

    void check_sample(Index n) const {
        if (n < 1) throw ConfigError("NearBoundaryBuffer::sample: n must be >= 1, got " + std::to_string(n));
        if (size_ == 0) throw Error("NearBoundaryBuffer::sample: the buffer is empty (no state accepted yet)");
        if (size_ < 0 || size_ > opt_.capacity || head_ < 0 || head_ >= opt_.capacity)
            throw CheckpointError("NearBoundaryBuffer::sample: inconsistent counters (size " + std::to_string(size_) +
                                  ", head " + std::to_string(head_) + ", capacity " + std::to_string(opt_.capacity) +
                                  "): state restored from another buffer?");
    }
    void store(std::size_t s, const VecCRef<T>& x, T m, const VecCRef<T>& obs) {
        const auto dx = static_cast<std::size_t>(opt_.internal_dim);
        std::memcpy(x_.data() + s * dx, x.data(), dx * sizeof(T));
        const auto dobs = static_cast<std::size_t>(opt_.observation_dim);
        if (dobs) std::memcpy(obs_.data() + s * dobs, obs.data(), dobs * sizeof(T));
        margin_(s) = m;
    }
    static void copy_row(const xt::xtensor<T, 2>& a, std::size_t s, Mat<T>& dst, Index col) {
        const std::size_t d = a.shape()[1];
        if (d) std::memcpy(dst.data() + static_cast<std::size_t>(col) * d, a.data() + s * d, d * sizeof(T));
    }

    Options opt_;
    xt::xtensor<T, 2> x_, obs_;
    xt::xtensor<T, 1> margin_;
    Mat<T> work_;
    std::int64_t size_ = 0;
    std::int64_t head_ = 0;  ///< ring: next slot to overwrite (the oldest) once full
    std::uint64_t offered_ = 0;
    std::uint64_t accepted_ = 0;
    std::uint64_t seed_;
    std::uint64_t draws_ = 0;
};

}  // namespace persist::replay
