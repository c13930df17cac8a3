#pragma once
/// @file ring_replay.hpp
/// The task replay buffer of the seed (sections 2 and 3: "replay.store(s, a_safe, r_total,
/// o_next, x_next, done, extras=dict(r_task, r_homeo, r_intr))"): a fixed-capacity ring that
/// overwrites the oldest transition, with uniform minibatch sampling and contiguous sequence
/// sampling for recurrent models (state estimator, seed "Partial Observability").
///
/// Storage is structure-of-arrays in xtensor, one row-major `capacity x dim` array per field
/// (the same bytes as a column-major `dim x capacity` matrix). One stored transition's field
/// is therefore one contiguous run of `dim` scalars, and so is one column of the column-per-
/// sample Eigen batch it is sampled into: `add` is one memcpy per field and sampling is one
/// memcpy per field per sample, with no strided gathers. `storage_view` maps a field as a
/// `dim x capacity` Eigen matrix without a copy.
///
/// Indices: *slots* are physical rows; *logical* indices count from the oldest stored
/// transition (0) to the newest (size() - 1). Sequences are taken in logical order, so they
/// never span the write head (the newest -> oldest discontinuity). docs/replay.md.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

namespace persist::replay {

/// Per-transition sizes a buffer is built for (fixed for its lifetime).
struct ReplayDims {
    Index observation = 0;  ///< o_t and o_{t+1}
    Index internal = 0;     ///< x_t and x_{t+1} (0 when the environment has none)
    Index action = 0;       ///< continuous action dim, or 1 for a discrete action index
    Index constraints = 0;  ///< number of viability margins stored per transition
};

/// Options of `sample_sequences`.
struct SequenceOptions {
    /// false (default): a sequence never contains an episode end before its last step
    /// (terminated || truncated may only be set on the last transition). true: any window of
    /// consecutive transitions, with SequenceBatch::mask marking the steps after an episode end.
    bool cross_episodes = false;
};

/// Sequences of consecutive transitions, TIME-MAJOR: sequence s, step t (t = 0 is the oldest)
/// is column `t * num_sequences + s` of every member of `steps`, so step t of all sequences
/// is the contiguous block `middleCols(t * num_sequences, num_sequences)`, the input a
/// recurrent cell consumes at time t.
template <class T>
struct SequenceBatch {
    TransitionBatch<T> steps;  ///< num_sequences * length columns, time-major
    /// 1 x (num_sequences * length), same columns as `steps`: 1 while the step belongs to the
    /// episode the sequence started in (the step that ends it included), 0 after. All ones
    /// unless SequenceOptions::cross_episodes is set.
    RowVec<T> mask;
    std::vector<std::int64_t> start;  ///< logical index of each sequence's first step
    Index num_sequences = 0;
    Index length = 0;

    Index column(Index t, Index s) const { return t * num_sequences + s; }
};

/// Fixed-capacity ring replay. Models persist::ReplayBuffer and persist::Stateful.
template <class T>
class RingReplay {
public:
    using scalar_type = T;

    /// capacity >= 1, every dim >= 0; ConfigError otherwise. Allocates all storage now.
    RingReplay(Index capacity, ReplayDims dims) : cap_(capacity), dims_(dims) {
        if (capacity < 1) throw ConfigError("RingReplay: capacity must be >= 1, got " + std::to_string(capacity));
        const std::array<std::pair<const char*, Index>, 4> ds{
            {{"observation", dims.observation}, {"internal", dims.internal}, {"action", dims.action},
             {"constraints", dims.constraints}}};
        for (const auto& [name, d] : ds)
            if (d < 0) throw ConfigError(std::string("RingReplay: dims.") + name + " must be >= 0, got " + std::to_string(d));
        auto mat = [&](Index d) {
            return xt::xtensor<T, 2>(std::array<std::size_t, 2>{sz(capacity), sz(d)}, T(0));
        };
        auto vec = [&] { return xt::xtensor<T, 1>(std::array<std::size_t, 1>{sz(capacity)}, T(0)); };
        obs_ = mat(dims.observation);
        next_obs_ = mat(dims.observation);
        x_ = mat(dims.internal);
        next_x_ = mat(dims.internal);
        act_ = mat(dims.action);
        margins_ = mat(dims.constraints);
        reward_ = vec();
        term_ = vec();
        trunc_ = vec();
        r_task_ = vec();
        r_homeo_ = vec();
        r_intr_ = vec();
    }

    Index size() const { return static_cast<Index>(size_); }
    Index capacity() const { return cap_; }
    bool full() const { return size_ == cap_; }
    const ReplayDims& dims() const { return dims_; }
    /// Transitions ever added (including overwritten ones).
    std::uint64_t total_added() const { return added_; }
    /// Physical slot the next `add` writes.
    Index head() const { return static_cast<Index>(head_); }

    /// Store one transition, overwriting the oldest when full. Every field is checked first
    /// (ShapeError "RingReplay::add: <field>: expected d x 1, got e x 1"), so a failed add
    /// leaves the buffer unchanged. `margins` must have dims().constraints entries.
    void add(const TransitionView<T>& t) {
        check_counters("add");
        check_field("observation", t.observation, dims_.observation);
        check_field("internal", t.internal, dims_.internal);
        check_field("action", t.action, dims_.action);
        check_field("next_observation", t.next_observation, dims_.observation);
        check_field("next_internal", t.next_internal, dims_.internal);
        check_field("margins", t.margins, dims_.constraints);
        const std::size_t s = sz(head_);
        put(obs_, s, t.observation);
        put(x_, s, t.internal);
        put(act_, s, t.action);
        put(next_obs_, s, t.next_observation);
        put(next_x_, s, t.next_internal);
        put(margins_, s, t.margins);
        reward_(s) = t.reward;
        term_(s) = t.terminated ? T(1) : T(0);
        trunc_(s) = t.truncated ? T(1) : T(0);
        r_task_(s) = t.r_task;
        r_homeo_(s) = t.r_homeo;
        r_intr_(s) = t.r_intr;
        head_ = (head_ + 1) % cap_;
        if (size_ < cap_) ++size_;
        ++added_;
    }

    /// n transitions drawn uniformly with replacement into `batch` (resized to n columns:
    /// allocates only when its shape changes). n >= 1 (ConfigError), buffer non-empty
    /// (persist::Error). Draws n values from `rng`.
    void sample(Index n, Rng& rng, TransitionBatch<T>& batch) const {
        check_counters("sample");
        if (n < 1) throw ConfigError("RingReplay::sample: n must be >= 1, got " + std::to_string(n));
        if (size_ == 0) throw Error("RingReplay::sample: the buffer is empty (add transitions first)");
        resize(batch, n);
        const auto stored = static_cast<std::uint64_t>(size_);
        for (Index b = 0; b < n; ++b) copy_slot(static_cast<std::int64_t>(rng.below(stored)), batch, b);
    }

    /// Copy the transitions at the given logical indices (0 = oldest) into `batch`, in order.
    void gather(std::span<const Index> logical, TransitionBatch<T>& batch) const {
        check_counters("gather");
        for (Index i : logical)
            if (i < 0 || i >= size())
                throw ConfigError("RingReplay::gather: logical index " + std::to_string(i) + " out of range [0, " +
                                  std::to_string(size()) + ")");
        resize(batch, static_cast<Index>(logical.size()));
        for (std::size_t b = 0; b < logical.size(); ++b) copy_slot(slot_of(logical[b]), batch, static_cast<Index>(b));
    }

    /// n_seq sequences of seq_len consecutive transitions, start drawn uniformly among the
    /// valid starts (a start i is valid when i + seq_len <= size() and, unless
    /// opt.cross_episodes, none of transitions i .. i + seq_len - 2 ended its episode).
    /// Layout: SequenceBatch (time-major). Sequences are independent draws (they may overlap).
    /// Throws ConfigError for n_seq < 1 or seq_len < 1, persist::Error when fewer than seq_len
    /// transitions are stored or no valid start exists (episodes all shorter than seq_len: use
    /// cross_episodes). Allocates only when `out`'s shape changes.
    void sample_sequences(Index n_seq, Index seq_len, Rng& rng, SequenceBatch<T>& out,
                          SequenceOptions opt = {}) const {
        check_counters("sample_sequences");
        if (n_seq < 1) throw ConfigError("RingReplay::sample_sequences: n_seq must be >= 1, got " + std::to_string(n_seq));
        if (seq_len < 1)
            throw ConfigError("RingReplay::sample_sequences: seq_len must be >= 1, got " + std::to_string(seq_len));
        if (seq_len > size())
            throw Error("RingReplay::sample_sequences: seq_len " + std::to_string(seq_len) + " exceeds the " +
                        std::to_string(size()) + " stored transitions");
        const Index n = n_seq * seq_len;
        resize(out.steps, n);
        ensure_shape(out.mask, 1, n);
        out.start.resize(static_cast<std::size_t>(n_seq));
        out.num_sequences = n_seq;
        out.length = seq_len;
        const Index candidates = size() - seq_len + 1;
        Index valid_count = -1;  // computed once, only if rejection keeps failing
        for (Index s = 0; s < n_seq; ++s) {
            Index start = -1;
            if (opt.cross_episodes) {
                start = static_cast<Index>(rng.below(static_cast<std::uint64_t>(candidates)));
            } else {
                // Rejection sampling is exactly uniform over the valid starts; after many
                // failures fall back to choosing the k-th valid start by a scan.
                for (int attempt = 0; attempt < max_rejections && start < 0; ++attempt) {
                    const auto i = static_cast<Index>(rng.below(static_cast<std::uint64_t>(candidates)));
                    if (valid_start(i, seq_len)) start = i;
                }
                if (start < 0) {
                    if (valid_count < 0) valid_count = count_valid_starts(seq_len);
                    if (valid_count == 0)
                        throw Error("RingReplay::sample_sequences: no " + std::to_string(seq_len) +
                                    " consecutive transitions without an episode end among the " +
                                    std::to_string(size()) +
                                    " stored (episodes shorter than seq_len? set cross_episodes)");
                    start = kth_valid_start(static_cast<Index>(rng.below(static_cast<std::uint64_t>(valid_count))),
                                            seq_len);
                }
            }
            out.start[static_cast<std::size_t>(s)] = start;
            T live = T(1);
            for (Index t = 0; t < seq_len; ++t) {
                const Index col = t * n_seq + s;
                const std::int64_t slot = slot_of(start + t);
                copy_slot(slot, out.steps, col);
                out.mask(col) = live;
                if (done(slot)) live = T(0);
            }
        }
    }

    /// Forget every transition (storage is kept, not zeroed).
    void clear() {
        head_ = 0;
        size_ = 0;
    }

    /// Physical slot of logical index i (0 = oldest).
    std::int64_t slot_of(Index i) const {
        const std::int64_t oldest = (head_ - size_ + cap_) % cap_;
        return (oldest + i) % cap_;
    }

    /// Named fields, for `storage_view`.
    enum class Field { observation, internal, action, next_observation, next_internal, margins };
    /// A field's storage as a dim x capacity column-major matrix (column = slot), no copy.
    Eigen::Map<const Mat<T>> storage_view(Field f) const {
        const xt::xtensor<T, 2>& a = field(f);
        return Eigen::Map<const Mat<T>>(a.data(), static_cast<Index>(a.shape()[1]), cap_);
    }

    /// State protocol: every field array ([capacity, dim] or [capacity]) plus the counters
    /// "head", "size" and "added", so a checkpoint resumes the buffer exactly.
    template <class V>
    void visit_state(V&& v) {
        auto m = [&](const char* name, xt::xtensor<T, 2>& a) {
            v(state_tensor(name, a.data(), {static_cast<std::int64_t>(a.shape()[0]), static_cast<std::int64_t>(a.shape()[1])}));
        };
        auto r = [&](const char* name, xt::xtensor<T, 1>& a) {
            v(state_tensor(name, a.data(), {static_cast<std::int64_t>(a.shape()[0])}));
        };
        m("observation", obs_);
        m("internal", x_);
        m("action", act_);
        r("reward", reward_);
        m("next_observation", next_obs_);
        m("next_internal", next_x_);
        r("terminated", term_);
        r("truncated", trunc_);
        r("r_task", r_task_);
        r("r_homeo", r_homeo_);
        r("r_intr", r_intr_);
        m("margins", margins_);
        v(state_tensor("head", &head_, {}));
        v(state_tensor("size", &size_, {}));
        v(state_tensor("added", &added_, {}));
    }

private:
    static constexpr int max_rejections = 64;

    static std::size_t sz(Index i) { return static_cast<std::size_t>(i); }

    const xt::xtensor<T, 2>& field(Field f) const {
        switch (f) {
            case Field::observation: return obs_;
            case Field::internal: return x_;
            case Field::action: return act_;
            case Field::next_observation: return next_obs_;
            case Field::next_internal: return next_x_;
            case Field::margins: break;
        }
        return margins_;
    }

    /// Counters restored from a checkpoint of another buffer could be inconsistent.
    void check_counters(const char* where) const {
        const bool ok = head_ >= 0 && head_ < cap_ && size_ >= 0 && size_ <= cap_ && (size_ == cap_ || head_ == size_);
        if (!ok)
            throw CheckpointError(std::string("RingReplay::") + where + ": inconsistent counters (head " +
                                  std::to_string(head_) + ", size " + std::to_string(size_) + ", capacity " +
                                  std::to_string(cap_) + "): state restored from another buffer?");
    }
    static void check_field(const char* name, const VecCRef<T>& v, Index d) {
        if (v.size() != d) persist::detail::throw_shape(std::string("RingReplay::add: ") + name, d, 1, v.size(), 1);
    }
    static void put(xt::xtensor<T, 2>& a, std::size_t slot, const VecCRef<T>& v) {
        const std::size_t d = a.shape()[1];
        if (d) std::memcpy(a.data() + slot * d, v.data(), d * sizeof(T));
    }
    static void get(const xt::xtensor<T, 2>& a, std::size_t slot, Mat<T>& dst, Index col) {
        const std::size_t d = a.shape()[1];
        if (d) std::memcpy(dst.data() + static_cast<std::size_t>(col) * d, a.data() + slot * d, d * sizeof(T));
    }
    void resize(TransitionBatch<T>& b, Index n) const {
        b.resize(dims_.observation, dims_.internal, dims_.action, dims_.constraints, n);
    }
    void copy_slot(std::int64_t slot, TransitionBatch<T>& b, Index col) const {
        const auto s = static_cast<std::size_t>(slot);
        get(obs_, s, b.observation, col);
        get(x_, s, b.internal, col);
        get(act_, s, b.action, col);
        get(next_obs_, s, b.next_observation, col);
        get(next_x_, s, b.next_internal, col);
        get(margins_, s, b.margins, col);
        b.reward(col) = reward_(s);
        b.terminated(col) = term_(s);
        b.truncated(col) = trunc_(s);
        b.r_task(col) = r_task_(s);
        b.r_homeo(col) = r_homeo_(s);
        b.r_intr(col) = r_intr_(s);
    }
    bool done(std::int64_t slot) const {
        const auto s = static_cast<std::size_t>(slot);
        return term_(s) != T(0) || trunc_(s) != T(0);
    }
    /// No episode end among logical i .. i + len - 2 (the last step may end the episode).
    bool valid_start(Index i, Index len) const {
        for (Index t = 0; t + 1 < len; ++t)
            if (done(slot_of(i + t))) return false;
        return true;
    }
    /// Number of valid starts, by a sliding count of episode ends over [i, i + len - 2].
    Index count_valid_starts(Index len) const {
        Index count = 0;
        for_each_valid_start(len, [&](Index) {
            ++count;
            return false;
        });
        return count;
    }
    Index kth_valid_start(Index k, Index len) const {
        Index found = -1, seen = 0;
        for_each_valid_start(len, [&](Index i) {
            if (seen++ == k) {
                found = i;
                return true;
            }
            return false;
        });
        return found;
    }
    /// Calls f(i) for each valid start in increasing order until f returns true. O(size()).
    template <class F>
    void for_each_valid_start(Index len, F&& f) const {
        const Index w = len - 1;  // window of transitions that must not end an episode
        Index ends = 0;           // episode ends in logical [i, i + w - 1]
        for (Index j = 0; j < w; ++j) ends += done(slot_of(j)) ? 1 : 0;
        for (Index i = 0; i + len <= size(); ++i) {
            if (i > 0 && w > 0) {
                ends -= done(slot_of(i - 1)) ? 1 : 0;
                ends += done(slot_of(i + w - 1)) ? 1 : 0;
            }
            if (ends == 0 && f(i)) return;
        }
    }

    Index cap_;
    ReplayDims dims_;
    xt::xtensor<T, 2> obs_, x_, act_, next_obs_, next_x_, margins_;
    xt::xtensor<T, 1> reward_, term_, trunc_, r_task_, r_homeo_, r_intr_;
    std::int64_t head_ = 0;
    std::int64_t size_ = 0;
    std::uint64_t added_ = 0;
};

}  // namespace persist::replay
