#pragma once
/// @file empowerment.hpp
/// Empowerment as an intrinsic reward (seed sections 1, 2 and 5A): the InfoNCE lower bound on
/// the k-step mutual information between an action sequence and the state it leads to,
///
///     E(s_t) ~ I(A_{t:t+k}; S_{t+k} | S_t)             (Klyubin et al. 2005; Mohamed & Rezende 2015)
///
/// estimated with a learned critic f (van den Oord et al. 2018, "Representation Learning with
/// Contrastive Predictive Coding", eq. 4; Poole et al. 2019, "On Variational Bounds of Mutual
/// Information", I_NCE). The critic is separable,
///
///     f(s_t, A, o_{t+k}) = phi([s_t; o_{t+k} - o_t])^T psi(A),      A = [a_t; ...; a_{t+k-1}],
///
/// so the scores of one state against N candidate action sequences cost one phi and N psi
/// evaluations. Every score is soft-clipped, f <- c tanh(f / c) (score_clip, default 5): InfoNCE
/// keeps sharpening a critic whose classes separate, and off its training data such a critic
/// gives pointwise estimates of -100 nats and below; the clip bounds them to [-2c, log N].
/// Training minimises the InfoNCE loss over groups of N = num_negatives + 1 samples of a batch
/// (the other action sequences of the group are the negatives):
///
///     L = (1/B') sum_j [ log sum_{i in group(j)} exp f(s_j, A_i, o_j') - f(s_j, A_j, o_j') ],
///
/// and log N - L is the InfoNCE estimate of the mutual information in nats (at most log N). The
/// reward is the pointwise estimate of the observed transition against a stored bank of
/// num_negatives action sequences (the first ones of the latest training batch, i.e. samples of
/// the replay's action marginal):
///
///     R_intr(s, A, o') = f_pos - log( exp f_pos + sum_{m=1..K} exp f(s, A_m, o') ) + log(K + 1).
///
/// With k = 1 the one-step replay batch of the persist::Intrinsic contract is the training data
/// (s = [o; x], a, o'). With k > 1 training needs k consecutive transitions: update_sequences()
/// / update_from_replay() (replay::RingReplay::sample_sequences), and reward() keeps a window
/// of the last k (s, a) per environment. docs/intrinsic.md has the equations, options and the
/// recipe for PersistAgent.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"
#include "persist/intrinsic/common.hpp"
#include "persist/intrinsic/running_mean_std.hpp"
#include "persist/nn/activations.hpp"
#include "persist/nn/linear.hpp"
#include "persist/nn/losses.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/optim/adam.hpp"
#include "persist/replay/ring_replay.hpp"

namespace persist::intrinsic {

/// How Empowerment rescales the pointwise estimate (running statistics of the raw estimates
/// produced by reward(); unnormalised while fewer than 2 were seen).
enum class EmpowermentNorm {
    none,         ///< r = e (nats, at most log(num_negatives + 1))
    scale,        ///< r = e / sqrt(var + eps)
    standardize,  ///< r = (e - mean) / sqrt(var + eps)
};

inline const char* empowerment_norm_name(EmpowermentNorm n) {
    switch (n) {
        case EmpowermentNorm::none: return "none";
        case EmpowermentNorm::scale: return "scale";
        case EmpowermentNorm::standardize: return "standardize";
    }
    return "?";
}

/// Options of Empowerment (a plain aggregate). Table with defaults in docs/intrinsic.md; the
/// config file's `rewards.empowerment` (k 3, num_negatives 16, hidden {128, 128}, lr 3e-4)
/// maps onto k, num_negatives, hidden and lr.
struct EmpowermentOptions {
    Index obs_dim = 0;                    ///< dim of o (>= 1, required)
    Index internal_dim = 0;               ///< dim of x (>= 0); s = [o; x]
    Index action_dim = 0;                 ///< dim of a (>= 1, required)
    Index k = 1;                          ///< action-sequence length; 1 trains from one-step batches
    Index num_negatives = 16;             ///< K: negatives per positive, N = K + 1 candidates
    std::vector<Index> hidden{128, 128};  ///< hidden widths of phi and psi
    Index embedding_dim = 64;             ///< d, output of phi and psi
    double lr = 3e-4;                     ///< Adam learning rate of both encoders
    double max_grad_norm = 0.0;           ///< global-norm clip over both encoders; 0 = off
    double score_clip = 5.0;              ///< c: scores soft-clipped to c tanh(f / c); 0 = off
    bool delta_input = true;              ///< phi sees o_{t+k} - o_t (true) or o_{t+k}
    Index num_envs = 1;                   ///< columns of every reward() call when k > 1
    EmpowermentNorm normalize = EmpowermentNorm::none;
    double norm_eps = 1e-8;               ///< added to the variance before its square root
    std::uint64_t seed = 0;               ///< initialisation of phi and psi
};

/// InfoNCE k-step empowerment. Models persist::Intrinsic and persist::Stateful. reward() is
/// the online call (one column per environment, once per step); estimate(), infonce_loss()
/// and infonce_gradient() update nothing but their workspace. No allocation at a fixed batch
/// size after the first call of each entry point.
/// @tparam T   float or double
/// @tparam Act activation of both encoders
template <class T, template <class> class Act = nn::ReLU>
class Empowerment {
    static_assert(Real<T>, "persist::intrinsic::Empowerment<T>: T must be float or double");

public:
    using scalar_type = T;
    using Options = EmpowermentOptions;
    using Net = nn::MLP<T, Act>;
    using Optimizer = optim::Adam<T>;

    explicit Empowerment(const Options& opt)
        : opt_(validated(opt)),
          phi_(phi_widths(opt_)),
          psi_(psi_widths(opt_)),
          phi_opt_(phi_.param_count(), optim::AdamOptions<T>{.lr = static_cast<T>(opt_.lr)}),
          psi_opt_(psi_.param_count(), optim::AdamOptions<T>{.lr = static_cast<T>(opt_.lr)}),
          stats_(1) {
        Rng prng(opt_.seed, kPhiStream), qrng(opt_.seed, kPsiStream);
        phi_.init(prng);
        psi_.init(qrng);
        bank_.setZero(seq_dim(), opt_.num_negatives);
        bank_emb_.setZero(opt_.embedding_dim, opt_.num_negatives);
        if (opt_.k > 1) {
            const Index slots = opt_.k * opt_.num_envs;
            hist_s_.setZero(state_dim(), slots);
            hist_a_.setZero(opt_.action_dim, slots);
            last_o_.setZero(opt_.obs_dim, opt_.num_envs);
            count_.assign(static_cast<std::size_t>(opt_.num_envs), 0);
        }
    }

    const Options& options() const { return opt_; }
    Index obs_dim() const { return opt_.obs_dim; }
    Index internal_dim() const { return opt_.internal_dim; }
    Index state_dim() const { return opt_.obs_dim + opt_.internal_dim; }
    Index action_dim() const { return opt_.action_dim; }
    Index k() const { return opt_.k; }
    /// Rows of an action sequence A = [a_t; ...; a_{t+k-1}]: k * action_dim.
    Index sequence_dim() const { return seq_dim(); }
    /// N = num_negatives + 1 candidates per positive; log N bounds every estimate.
    Index num_candidates() const { return opt_.num_negatives + 1; }
    T log_num_candidates() const { return static_cast<T>(std::log(static_cast<double>(num_candidates()))); }

    /// phi: [s_t; o_{t+k} - o_t] (or [s_t; o_{t+k}]) -> R^d.
    const Net& state_encoder() const { return phi_; }
    Net& state_encoder() { return phi_; }
    /// psi: [a_t; ...; a_{t+k-1}] -> R^d.
    const Net& action_encoder() const { return psi_; }
    Net& action_encoder() { return psi_; }
    Optimizer& state_optimizer() { return phi_opt_; }
    Optimizer& action_optimizer() { return psi_opt_; }
    /// Statistics of the raw estimates seen by reward() (used by `normalize`).
    const RunningMeanStd<T>& reward_stats() const { return stats_; }
    /// The negatives of reward() and estimate(): sequence_dim() x num_negatives.
    const Mat<T>& negatives() const { return bank_; }
    /// False until the first training step or set_negatives(): reward() is 0 until then.
    bool has_negatives() const { return has_bank_ != 0; }
    /// Training steps taken (update, update_sequences, train).
    std::int64_t steps() const { return steps_; }

    /// Replace the negatives bank (sequence_dim() x num_negatives, finite), e.g. with sequences
    /// drawn uniformly from the action box. The next training step overwrites it again.
    void set_negatives(MatCRef<T> bank) {
        if (bank.rows() != seq_dim() || bank.cols() != opt_.num_negatives)
            persist::detail::throw_shape("Empowerment::set_negatives: bank", seq_dim(), opt_.num_negatives, bank.rows(),
                                         bank.cols());
        if (!bank.allFinite()) throw Error("Empowerment::set_negatives: bank has a non-finite entry");
        bank_ = bank;
        has_bank_ = 1;
        bank_dirty_ = true;
    }

    /// Online reward of the step s --a--> o_next (one column per environment). k = 1: the
    /// pointwise estimate of (s, a, o_next), any B. k > 1: B = num_envs; the window of the last
    /// k steps of each environment is advanced and the estimate is that of (s_{t-k+1},
    /// [a_{t-k+1}; ...; a_t], o_next); 0 while fewer than k steps of the current episode were
    /// seen. A new episode is detected when the observation part of s differs (bitwise) from the
    /// previous call's o_next (or call reset_history). 0 for every column before the first
    /// training step (no negatives yet). Normalised per `normalize`, whose statistics take each
    /// produced estimate first.
    void reward(MatCRef<T> s, MatCRef<T> a, MatCRef<T> o_next, VecRef<T> out) {
        detail::check_reward_args("Empowerment::reward", s.rows(), s.cols(), a.rows(), a.cols(), o_next.rows(),
                                  o_next.cols(), out.size(), state_dim(), opt_.action_dim, opt_.obs_dim);
        const Index B = o_next.cols();
        Work& w = act_;
        ensure_shape(w.ready, 1, B);
        if (opt_.k == 1) {
            build_query(s, o_next, w.xq);
            ensure_shape(w.xa, seq_dim(), B);
            w.xa = a;
            w.ready.setOnes();
        } else {
            if (B != opt_.num_envs)
                throw ShapeError("Empowerment::reward: with k = " + std::to_string(opt_.k) +
                                 " each call holds one column per environment (num_envs = " +
                                 std::to_string(opt_.num_envs) + "), got " + std::to_string(B) +
                                 " columns; use estimate() for other batches");
            advance_windows(s, a, o_next, w);
        }
        if (!has_bank_) {
            out.setZero();
            return;
        }
        const Mat<T>& e = raw_estimate(w);
        if (opt_.normalize != EmpowermentNorm::none)
            for (Index j = 0; j < B; ++j)
                if (w.ready(0, j) != T(0)) stats_.update(e.col(j));
        const bool norm = opt_.normalize != EmpowermentNorm::none && stats_.count() >= 2;
        const T center = norm && opt_.normalize == EmpowermentNorm::standardize ? stats_.mean(0) : T(0);
        const T inv = norm ? T(1) / std::sqrt(stats_.var(0) + static_cast<T>(opt_.norm_eps)) : T(1);
        for (Index j = 0; j < B; ++j) out(j) = w.ready(0, j) != T(0) ? (e(0, j) - center) * inv : T(0);
    }

    /// Pointwise InfoNCE estimate (nats, unnormalised) of explicit k-step samples against the
    /// bank: s0 (state_dim x B) = s_t, A (sequence_dim x B), o_k (obs_dim x B) = o_{t+k}.
    /// Updates nothing. Throws persist::Error before the first training step.
    void estimate(MatCRef<T> s0, MatCRef<T> A, MatCRef<T> o_k, VecRef<T> out) {
        check_samples("Empowerment::estimate", s0, A, o_k);
        if (out.size() != o_k.cols()) persist::detail::throw_shape("Empowerment::estimate: out", o_k.cols(), 1, out.size(), 1);
        if (!has_bank_)
            throw Error("Empowerment::estimate: no negatives yet (take a training step or call set_negatives first)");
        Work& w = eval_;
        build_query(s0, o_k, w.xq);
        ensure_shape(w.xa, seq_dim(), A.cols());
        w.xa = A;
        const Mat<T>& e = raw_estimate(w);
        for (Index j = 0; j < e.cols(); ++j) out(j) = e(0, j);
    }

    /// The InfoNCE loss of explicit k-step samples (B >= num_negatives + 1; groups of N
    /// consecutive columns, the B mod N last columns unused). log N - loss is the batch
    /// estimate of the mutual information. Updates nothing.
    T infonce_loss(MatCRef<T> s0, MatCRef<T> A, MatCRef<T> o_k) {
        load_samples("Empowerment::infonce_loss", s0, A, o_k, eval_);
        return loss_and_grads(eval_, false);
    }

    /// infonce_loss(), and its gradient written (not accumulated) into state_encoder().grads()
    /// and action_encoder().grads(). No optimizer step.
    T infonce_gradient(MatCRef<T> s0, MatCRef<T> A, MatCRef<T> o_k) {
        load_samples("Empowerment::infonce_gradient", s0, A, o_k, eval_);
        return loss_and_grads(eval_, true);
    }

    /// One Adam step of both encoders on explicit k-step samples (as infonce_loss); the first
    /// num_negatives action sequences become the negatives bank. Returns the pre-step loss and
    /// the number of samples in the gradient.
    UpdateStats<T> train(MatCRef<T> s0, MatCRef<T> A, MatCRef<T> o_k) {
        load_samples("Empowerment::train", s0, A, o_k, train_);
        return step(train_);
    }

    /// persist::Intrinsic's learning call. k = 1: one step on (s = [observation; internal],
    /// action, next_observation) of the batch (B >= num_negatives + 1). k > 1: a one-step batch
    /// holds no k-step sequences: nothing is done and {0, 0} returned; train with
    /// update_sequences() / update_from_replay() (docs/intrinsic.md, "k > 1 with PersistAgent").
    UpdateStats<T> update(const TransitionBatch<T>& batch) {
        if (opt_.k != 1) return {};
        const Index B = batch.size();
        auto chk = [B](const char* what, const Mat<T>& m, Index rows) {
            if (m.rows() != rows || m.cols() != B)
                persist::detail::throw_shape(std::string("Empowerment::update: batch.") + what, rows, B, m.rows(), m.cols());
        };
        chk("observation", batch.observation, opt_.obs_dim);
        chk("internal", batch.internal, opt_.internal_dim);
        chk("action", batch.action, opt_.action_dim);
        chk("next_observation", batch.next_observation, opt_.obs_dim);
        check_count("Empowerment::update", B);
        Work& w = train_;
        ensure_shape(w.xq, state_dim() + opt_.obs_dim, B);
        w.xq.topRows(opt_.obs_dim) = batch.observation;
        w.xq.middleRows(opt_.obs_dim, opt_.internal_dim) = batch.internal;
        if (opt_.delta_input)
            w.xq.bottomRows(opt_.obs_dim) = batch.next_observation - batch.observation;
        else
            w.xq.bottomRows(opt_.obs_dim) = batch.next_observation;
        ensure_shape(w.xa, seq_dim(), B);
        w.xa = batch.action;
        return step(w);
    }

    /// One step on the k-step windows of a sequence batch (replay::RingReplay::sample_sequences,
    /// length L >= k): every window of k consecutive steps t..t+k-1 of a sequence whose steps
    /// all have mask 1 and none of t..t+k-2 ended an episode gives (s_t, [a_t..a_{t+k-1}],
    /// o'_{t+k-1}). Windows are ordered step-major (all sequences at offset 0, then 1, ...) so a
    /// group mixes sequences. With the default SequenceOptions (no episode crossing) every window
    /// is valid and the count n_seq (L - k + 1) is fixed: no allocation after the first call.
    UpdateStats<T> update_sequences(const replay::SequenceBatch<T>& seq) {
        const Index L = seq.length, ns = seq.num_sequences, n_cols = L * ns;
        const auto& st = seq.steps;
        if (L < opt_.k)
            throw ShapeError("Empowerment::update_sequences: sequences of length " + std::to_string(L) +
                             " are shorter than k = " + std::to_string(opt_.k));
        auto chk = [n_cols](const char* what, const Mat<T>& m, Index rows) {
            if (m.rows() != rows || m.cols() != n_cols)
                persist::detail::throw_shape(std::string("Empowerment::update_sequences: steps.") + what, rows, n_cols,
                                             m.rows(), m.cols());
        };
        chk("observation", st.observation, opt_.obs_dim);
        chk("internal", st.internal, opt_.internal_dim);
        chk("action", st.action, opt_.action_dim);
        chk("next_observation", st.next_observation, opt_.obs_dim);
        if (st.terminated.size() != n_cols || st.truncated.size() != n_cols || seq.mask.size() != n_cols)
            persist::detail::throw_shape("Empowerment::update_sequences: mask/terminated/truncated", 1, n_cols,
                                         1, seq.mask.size());
        auto valid = [&](Index t, Index s) {
            for (Index u = 0; u < opt_.k; ++u) {
                const Index c = seq.column(t + u, s);
                if (seq.mask(c) == T(0)) return false;
                if (u + 1 < opt_.k && (st.terminated(c) != T(0) || st.truncated(c) != T(0))) return false;
            }
            return true;
        };
        Index n = 0;
        for (Index t = 0; t + opt_.k <= L; ++t)
            for (Index s = 0; s < ns; ++s) n += valid(t, s) ? 1 : 0;
        check_count("Empowerment::update_sequences (valid k-step windows)", n);
        Work& w = seqw_;
        ensure_shape(w.xq, state_dim() + opt_.obs_dim, n);
        ensure_shape(w.xa, seq_dim(), n);
        const Index O = opt_.obs_dim, X = opt_.internal_dim, Ad = opt_.action_dim;
        Index j = 0;
        for (Index t = 0; t + opt_.k <= L; ++t)
            for (Index s = 0; s < ns; ++s) {
                if (!valid(t, s)) continue;
                const Index c0 = seq.column(t, s), cl = seq.column(t + opt_.k - 1, s);
                w.xq.col(j).head(O) = st.observation.col(c0);
                w.xq.col(j).segment(O, X) = st.internal.col(c0);
                if (opt_.delta_input)
                    w.xq.col(j).tail(O) = st.next_observation.col(cl) - st.observation.col(c0);
                else
                    w.xq.col(j).tail(O) = st.next_observation.col(cl);
                for (Index u = 0; u < opt_.k; ++u) w.xa.col(j).segment(u * Ad, Ad) = st.action.col(seq.column(t + u, s));
                ++j;
            }
        return step(w);
    }

    /// Sample n_seq sequences of length k from a replay buffer with sample_sequences (e.g.
    /// PersistAgent::replay()) and take one update_sequences() step. The sequence batch is a
    /// member, so a fixed n_seq allocates nothing after the first call.
    template <class Replay>
    UpdateStats<T> update_from_replay(const Replay& replay, Index n_seq, Rng& rng, replay::SequenceOptions sopt = {}) {
        replay.sample_sequences(n_seq, opt_.k, rng, seqbuf_, sopt);
        return update_sequences(seqbuf_);
    }

    /// Forget the k-step windows of every environment (call at episode starts if observations
    /// can repeat across a reset). No-op for k = 1.
    void reset_history() {
        for (auto& c : count_) c = 0;
    }
    /// Forget environment j's window (0 <= j < num_envs). No-op for k = 1.
    void reset_history(Index j) {
        if (opt_.k == 1) return;
        if (j < 0 || j >= static_cast<Index>(count_.size()))
            throw ConfigError("Empowerment::reset_history: environment " + std::to_string(j) + " out of range [0, " +
                              std::to_string(count_.size()) + ")");
        count_[static_cast<std::size_t>(j)] = 0;
    }

    /// State protocol: "state_encoder.params", "action_encoder.params", "state_opt.{m,v,step}",
    /// "action_opt.{m,v,step}", "negatives" [num_negatives, sequence_dim], "has_negatives",
    /// "steps", "reward_stats.{mean,var,count}", and with k > 1 "history.states"
    /// [num_envs k, state_dim], "history.actions" [num_envs k, action_dim], "history.count"
    /// [num_envs], "history.last_obs" [num_envs, obs_dim].
    template <class V>
    void visit_state(V&& v) {
        bank_dirty_ = true;  // a load may replace the bank or psi: recompute its embeddings
        visit_nested(phi_, "state_encoder", v);
        visit_nested(psi_, "action_encoder", v);
        visit_nested(phi_opt_, "state_opt", v);
        visit_nested(psi_opt_, "action_opt", v);
        v(state_tensor("negatives", bank_.data(), {i64(opt_.num_negatives), i64(seq_dim())}));
        v(state_tensor("has_negatives", &has_bank_, {}));
        v(state_tensor("steps", &steps_, {}));
        visit_nested(stats_, "reward_stats", v);
        if (opt_.k > 1) {
            const std::int64_t slots = i64(opt_.k * opt_.num_envs);
            v(state_tensor("history.states", hist_s_.data(), {slots, i64(state_dim())}));
            v(state_tensor("history.actions", hist_a_.data(), {slots, i64(opt_.action_dim)}));
            v(state_tensor("history.count", count_.data(), {i64(opt_.num_envs)}));
            v(state_tensor("history.last_obs", last_o_.data(), {i64(opt_.num_envs), i64(opt_.obs_dim)}));
        }
    }

private:
    static constexpr std::uint64_t kPhiStream = 0x454d5053u;  // "EMPS"
    static constexpr std::uint64_t kPsiStream = 0x454d5041u;  // "EMPA"

    struct Work {
        Mat<T> xq, xa, ready, neg, r, S, G, dP, dQ;
        Vec<T> gemm;  // packing buffers of nn::detail::gemm_acc
        typename Net::Workspace pw, qw;
    };

    static std::int64_t i64(Index i) { return static_cast<std::int64_t>(i); }
    Index seq_dim() const { return opt_.k * opt_.action_dim; }

    static Options validated(const Options& o) {
        const char* who = "Empowerment";
        detail::require(o.obs_dim >= 1, who, "obs_dim", ">= 1", static_cast<double>(o.obs_dim));
        detail::require(o.internal_dim >= 0, who, "internal_dim", ">= 0", static_cast<double>(o.internal_dim));
        detail::require(o.action_dim >= 1, who, "action_dim", ">= 1", static_cast<double>(o.action_dim));
        detail::require(o.k >= 1, who, "k", ">= 1", static_cast<double>(o.k));
        detail::require(o.num_negatives >= 1, who, "num_negatives", ">= 1", static_cast<double>(o.num_negatives));
        for (std::size_t i = 0; i < o.hidden.size(); ++i)
            if (o.hidden[i] < 1)
                throw ConfigError("Empowerment: hidden[" + std::to_string(i) + "] must be >= 1, got " +
                                  std::to_string(o.hidden[i]));
        detail::require(o.embedding_dim >= 1, who, "embedding_dim", ">= 1", static_cast<double>(o.embedding_dim));
        detail::require(std::isfinite(o.lr) && o.lr >= 0, who, "lr", "finite and >= 0", o.lr);
        detail::require(std::isfinite(o.max_grad_norm) && o.max_grad_norm >= 0, who, "max_grad_norm",
                        "finite and >= 0 (0 = off)", o.max_grad_norm);
        detail::require(std::isfinite(o.score_clip) && o.score_clip >= 0, who, "score_clip", "finite and >= 0 (0 = off)",
                        o.score_clip);
        detail::require(o.num_envs >= 1, who, "num_envs", ">= 1", static_cast<double>(o.num_envs));
        detail::require(std::isfinite(o.norm_eps) && o.norm_eps > 0, who, "norm_eps", "finite and > 0", o.norm_eps);
        return o;
    }
    static std::vector<Index> phi_widths(const Options& o) {
        std::vector<Index> w{2 * o.obs_dim + o.internal_dim};
        w.insert(w.end(), o.hidden.begin(), o.hidden.end());
        w.push_back(o.embedding_dim);
        return w;
    }
    static std::vector<Index> psi_widths(const Options& o) {
        std::vector<Index> w{o.k * o.action_dim};
        w.insert(w.end(), o.hidden.begin(), o.hidden.end());
        w.push_back(o.embedding_dim);
        return w;
    }

    void check_samples(const char* who, const MatCRef<T>& s0, const MatCRef<T>& A, const MatCRef<T>& ok) const {
        const Index B = ok.cols();
        if (ok.rows() != opt_.obs_dim) persist::detail::throw_shape(std::string(who) + ": o_k", opt_.obs_dim, B, ok.rows(), B);
        if (s0.rows() != state_dim() || s0.cols() != B)
            persist::detail::throw_shape(std::string(who) + ": s0", state_dim(), B, s0.rows(), s0.cols());
        if (A.rows() != seq_dim() || A.cols() != B)
            persist::detail::throw_shape(std::string(who) + ": A", seq_dim(), B, A.rows(), A.cols());
    }
    void check_count(const char* who, Index n) const {
        if (n < num_candidates())
            throw ShapeError(std::string(who) + ": " + std::to_string(n) + " samples, need at least num_negatives + 1 = " +
                             std::to_string(num_candidates()) + " (one InfoNCE group)");
    }
    void load_samples(const char* who, const MatCRef<T>& s0, const MatCRef<T>& A, const MatCRef<T>& ok, Work& w) const {
        check_samples(who, s0, A, ok);
        check_count(who, ok.cols());
        build_query(s0, ok, w.xq);
        ensure_shape(w.xa, seq_dim(), A.cols());
        w.xa = A;
    }

    /// xq = [s0; o_k - o_0] (delta_input) or [s0; o_k].
    void build_query(const MatCRef<T>& s0, const MatCRef<T>& ok, Mat<T>& xq) const {
        const Index O = opt_.obs_dim, S = state_dim();
        ensure_shape(xq, S + O, ok.cols());
        xq.topRows(S) = s0;
        if (opt_.delta_input)
            xq.bottomRows(O) = ok - s0.topRows(O);
        else
            xq.bottomRows(O) = ok;
    }

    /// k > 1: push (s, a) of each environment into its window; the query of the full windows.
    void advance_windows(const MatCRef<T>& s, const MatCRef<T>& a, const MatCRef<T>& o_next, Work& w) {
        const Index B = o_next.cols(), K = opt_.k, O = opt_.obs_dim, S = state_dim(), Ad = opt_.action_dim;
        ensure_shape(w.xq, S + O, B);
        ensure_shape(w.xa, seq_dim(), B);
        for (Index j = 0; j < B; ++j) {
            auto& c = count_[static_cast<std::size_t>(j)];
            if (c > 0 && (s.col(j).head(O).array() != last_o_.col(j).array()).any()) c = 0;  // a new episode
            const Index slot = j * K + static_cast<Index>(c % K);
            hist_s_.col(slot) = s.col(j);
            hist_a_.col(slot) = a.col(j);
            ++c;
            last_o_.col(j) = o_next.col(j);
            if (c >= K) {
                // Window t-k+1 .. t: oldest at ring position c % K.
                const Index first = static_cast<Index>(c % K);
                w.xq.col(j).head(S) = hist_s_.col(j * K + first);
                for (Index u = 0; u < K; ++u)
                    w.xa.col(j).segment(u * Ad, Ad) = hist_a_.col(j * K + (first + u) % K);
                w.ready(0, j) = T(1);
            } else {
                w.xq.col(j).head(S) = s.col(j);  // window not full yet: scored like the rest, reward reported as 0
                w.xa.col(j).setZero();
                w.ready(0, j) = T(0);
            }
            if (opt_.delta_input)
                w.xq.col(j).tail(O) = o_next.col(j) - w.xq.col(j).head(O);
            else
                w.xq.col(j).tail(O) = o_next.col(j);
        }
    }

    /// f -> c tanh(f / c) (score_clip > 0): bounds every score to (-c, c), so one pointwise
    /// estimate is at least -2c however confident the critic is off its training data.
    T clip_score(T f) const {
        if (opt_.score_clip <= 0) return f;
        const T c = static_cast<T>(opt_.score_clip);
        return c * std::tanh(f / c);
    }
    void clip_scores(Mat<T>& S) const {
        if (opt_.score_clip <= 0) return;
        const T c = static_cast<T>(opt_.score_clip), ic = T(1) / c;
        S.array() = c * (S.array() * ic).tanh();
    }

    /// psi of the bank, recomputed after every change of psi or the bank.
    void refresh_bank() {
        if (!bank_dirty_) return;
        bank_emb_ = psi_.forward(bank_, bank_ws_);
        bank_dirty_ = false;
    }

    /// Pointwise estimate (1 x B) of the queries in w.xq, w.xa against the bank, into w.r.
    const Mat<T>& raw_estimate(Work& w) {
        refresh_bank();
        const Index B = w.xq.cols(), K = opt_.num_negatives, d = opt_.embedding_dim;
        const Mat<T>& P = phi_.forward(w.xq, w.pw);
        const Mat<T>& Q = psi_.forward(w.xa, w.qw);
        ensure_shape(w.neg, K, B);
        w.neg.setZero();
        nn::detail::gemm_acc<true, false>(K, B, d, bank_emb_.data(), d, P.data(), d, w.neg.data(), K, w.gemm);
        clip_scores(w.neg);
        ensure_shape(w.r, 1, B);
        const T logn = log_num_candidates();
        for (Index j = 0; j < B; ++j) {
            const T pos = clip_score(Q.col(j).dot(P.col(j)));
            const T m = std::max(pos, w.neg.col(j).maxCoeff());
            const T lse = m + std::log(std::exp(pos - m) + (w.neg.col(j).array() - m).exp().sum());
            w.r(0, j) = pos - lse + logn;
        }
        return w.r;
    }

    /// InfoNCE over groups of N consecutive columns of w.xq, w.xa; with `grads`, the gradient of
    /// the mean loss is written into both encoders' grads().
    T loss_and_grads(Work& w, bool grads) {
        const Index n = w.xq.cols(), N = num_candidates(), d = opt_.embedding_dim, G = n / N;
        const Mat<T>& P = phi_.forward(w.xq, w.pw);
        const Mat<T>& Q = psi_.forward(w.xa, w.qw);
        const nn::InfoNCE<T> nce{};
        ensure_shape(w.S, N, N);
        if (grads) {
            ensure_shape(w.dP, d, n);
            ensure_shape(w.dQ, d, n);
            w.dP.setZero();
            w.dQ.setZero();
        }
        const T invg = T(1) / static_cast<T>(G);
        T loss = 0;
        for (Index g = 0; g < G; ++g) {
            const Index off = g * N;
            const T* Pg = P.data() + off * d;
            const T* Qg = Q.data() + off * d;
            // S(i, j) = psi_i . phi_j: column j is the query, its positive is row j.
            w.S.setZero();
            nn::detail::gemm_acc<true, false>(N, N, d, Qg, d, Pg, d, w.S.data(), N, w.gemm);
            clip_scores(w.S);
            loss += nce.value(w.S);
            if (!grads) continue;
            nce.gradient(w.S, w.G);
            w.G *= invg;
            // Through the soft clip: d(c tanh(u / c))/du = 1 - (S / c)^2.
            if (opt_.score_clip > 0) {
                const T ic = T(1) / static_cast<T>(opt_.score_clip);
                w.G.array() *= T(1) - (w.S.array() * ic).square();
            }
            // dL/dphi_j = sum_i G_ij psi_i;  dL/dpsi_i = sum_j G_ij phi_j.
            nn::detail::gemm_acc<false, false>(d, N, N, Qg, d, w.G.data(), N, w.dP.data() + off * d, d, w.gemm);
            nn::detail::gemm_acc<false, true>(d, N, N, Pg, d, w.G.data(), N, w.dQ.data() + off * d, d, w.gemm);
        }
        if (grads) {
            phi_.zero_grad();
            psi_.zero_grad();
            phi_.backward(w.pw, w.dP);
            psi_.backward(w.qw, w.dQ);
        }
        return loss * invg;
    }

    UpdateStats<T> step(Work& w) {
        const T loss = loss_and_grads(w, true);
        if (opt_.max_grad_norm > 0) {
            const T total = std::sqrt(phi_.grads().squaredNorm() + psi_.grads().squaredNorm());
            const T coef = std::min(T(1), static_cast<T>(opt_.max_grad_norm) / (total + T(1e-6)));
            phi_.grads() *= coef;
            psi_.grads() *= coef;
        }
        phi_opt_.step(phi_.params(), phi_.grads());
        psi_opt_.step(psi_.params(), psi_.grads());
        bank_ = w.xa.leftCols(opt_.num_negatives);
        has_bank_ = 1;
        bank_dirty_ = true;
        ++steps_;
        const Index used = (w.xq.cols() / num_candidates()) * num_candidates();
        return {loss, used};
    }

    Options opt_;
    Net phi_, psi_;
    Optimizer phi_opt_, psi_opt_;
    RunningMeanStd<T> stats_;
    Mat<T> bank_, bank_emb_;
    std::int64_t has_bank_ = 0;
    std::int64_t steps_ = 0;
    bool bank_dirty_ = true;
    // k > 1: per environment j, ring slots j k .. j k + k - 1 of the last k states / actions.
    Mat<T> hist_s_, hist_a_, last_o_;
    std::vector<std::int64_t> count_;
    typename Net::Workspace bank_ws_;
    Work act_, eval_, train_, seqw_;  // reward(); estimate() and infonce_*; update()/train(); update_sequences()
    replay::SequenceBatch<T> seqbuf_;
};

}  // namespace persist::intrinsic
