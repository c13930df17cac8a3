#pragma once
/// @file surprise.hpp
/// Surprise as an intrinsic reward (seed section 5B, "active-inference-lite"): a learned
/// diagonal-Gaussian world model p_phi(o_{t+1} | s_t, a_t) (an MLP followed by a DiagGaussian
/// head, as the probabilistic members of PETS, Chua et al. 2018), trained by Gaussian NLL on
/// replay minibatches with Adam, and
///
///     R_intr = -NLL_phi(o_{t+1} | s_t, a_t)                          (reward)
///     R_intr = -NLL_phi(o_{t+1} | s_t, a_t) - beta ||x_{t+1} - mu||^2 (reward_with_prior)
///
/// with s_t = [o_t; x_t]. By default the model predicts the change o_{t+1} - o_t; the NLL of
/// o_{t+1} under N(o_t + mean, std^2) is the same number (a translation has Jacobian 1).
/// docs/intrinsic.md has the equations, option table and an example.
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
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
#include "persist/nn/diag_gaussian.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/optim/adam.hpp"
#include "persist/optim/clip.hpp"

namespace persist::intrinsic {

/// How Surprise rescales -NLL before the setpoint prior is added. Statistics are those of the
/// (reduced) NLL of the replay samples seen by update(); with fewer than 2 samples seen the
/// reward is left unnormalised.
enum class SurpriseNorm {
    none,         ///< r = -nll
    scale,        ///< r = -nll / sqrt(var + eps): keeps the sign (a negative reward per step stays negative)
    standardize,  ///< r = -(nll - mean) / sqrt(var + eps): zero-mean surprise
};

inline const char* surprise_norm_name(SurpriseNorm n) {
    switch (n) {
        case SurpriseNorm::none: return "none";
        case SurpriseNorm::scale: return "scale";
        case SurpriseNorm::standardize: return "standardize";
    }
    return "?";
}

/// Options of Surprise (a plain aggregate: designated initialisers work). Table with defaults
/// in docs/intrinsic.md.
struct SurpriseOptions {
    Index obs_dim = 0;       ///< dim of o (>= 1, required)
    Index internal_dim = 0;  ///< dim of x (>= 0); s = [o; x] has obs_dim + internal_dim rows
    Index action_dim = 0;    ///< dim of a (>= 0)
    std::vector<Index> hidden{200, 200, 200};  ///< hidden widths of the world-model MLP
    bool layer_norm = false;                   ///< LayerNorm in every hidden block
    double lr = 1e-3;                          ///< Adam learning rate
    double max_grad_norm = 0.0;                ///< global-norm gradient clip; 0 = off
    double beta = 0.0;                         ///< weight of the setpoint prior (>= 0)
    std::vector<double> mu{};                  ///< setpoints (internal_dim entries); required when beta > 0
    bool predict_delta = true;                 ///< model o_{t+1} - o_t (true) or o_{t+1} (false)
    Reduction reduction = Reduction::sum;      ///< NLL summed over the obs dims or averaged
    bool bound_log_std = true;                 ///< squash log_std into [log_std_min, log_std_max]
    double log_std_min = -5.0;
    double log_std_max = 2.0;
    SurpriseNorm normalize = SurpriseNorm::none;  ///< optional reward normalisation
    double norm_eps = 1e-8;                       ///< added to the variance before its square root
    std::uint64_t seed = 0;                       ///< initialisation of the world model
};

/// Surprise intrinsic reward with a learned Gaussian world model. Models persist::Intrinsic and
/// persist::Stateful. No allocation at a fixed batch size after the first call: reward(), nll()
/// and update() keep a workspace each, so acting at B = 1 and learning at B = 256 never
/// reallocate.
/// @tparam T   float or double
/// @tparam Act activation of the world-model MLP (SiLU = swish, as PETS)
template <class T, template <class> class Act = nn::SiLU>
class Surprise {
    static_assert(Real<T>, "persist::intrinsic::Surprise<T>: T must be float or double");

public:
    using scalar_type = T;
    using Options = SurpriseOptions;
    using Model = nn::MLP<T, Act>;
    using Head = nn::DiagGaussian<T>;
    using Optimizer = optim::Adam<T>;

    explicit Surprise(const Options& opt)
        : opt_(validated(opt)),
          model_(widths(opt_), nn::MLPOptions{.layer_norm = opt_.layer_norm}),
          head_(opt_.obs_dim, nn::DiagGaussianOptions{.bound_log_std = opt_.bound_log_std,
                                                       .log_std_min = opt_.log_std_min,
                                                       .log_std_max = opt_.log_std_max}),
          adam_(model_.param_count(), optim::AdamOptions<T>{.lr = static_cast<T>(opt_.lr)}),
          stats_(1),
          beta_(static_cast<T>(opt_.beta)),
          mu_given_(!opt_.mu.empty()) {
        Rng rng(opt_.seed, kInitStream);
        model_.init(rng);
        mu_.setZero(opt_.internal_dim);
        for (Index j = 0; j < static_cast<Index>(opt_.mu.size()); ++j)
            mu_(j) = static_cast<T>(opt_.mu[static_cast<std::size_t>(j)]);
    }

    const Options& options() const { return opt_; }
    Index obs_dim() const { return opt_.obs_dim; }
    Index internal_dim() const { return opt_.internal_dim; }
    Index state_dim() const { return opt_.obs_dim + opt_.internal_dim; }
    Index action_dim() const { return opt_.action_dim; }

    /// The world model: input [o; x; a], output [mean; raw log_std] (2 obs_dim rows).
    Model& model() { return model_; }
    const Model& model() const { return model_; }
    const Head& head() const { return head_; }
    Optimizer& optimizer() { return adam_; }
    /// Statistics of the reduced NLL over replay samples (used by `normalize`).
    const RunningMeanStd<T>& nll_stats() const { return stats_; }

    T beta() const { return beta_; }
    /// Change beta (curriculum). beta > 0 needs setpoints (options.mu or set_setpoints).
    void set_beta(T beta) {
        detail::require(std::isfinite(static_cast<double>(beta)) && beta >= T(0), "Surprise::set_beta", "beta",
                        "finite and >= 0", static_cast<double>(beta));
        if (beta > T(0) && !mu_given_ && opt_.internal_dim > 0)
            throw ConfigError("Surprise::set_beta: beta > 0 needs setpoints mu (options.mu or set_setpoints)");
        beta_ = beta;
    }
    const Vec<T>& setpoints() const { return mu_; }
    /// Replace mu (adaptive setpoints): internal_dim finite entries.
    void set_setpoints(VecCRef<T> mu) {
        if (mu.size() != opt_.internal_dim)
            persist::detail::throw_shape("Surprise::set_setpoints: mu", opt_.internal_dim, 1, mu.size(), 1);
        for (Index j = 0; j < mu.size(); ++j)
            detail::require(std::isfinite(static_cast<double>(mu(j))), "Surprise::set_setpoints", "mu",
                            "finite", static_cast<double>(mu(j)));
        mu_ = mu;
        mu_given_ = true;
    }

    /// Surprise of each transition: NLL_phi(o_next | s, a) (summed or averaged over the obs
    /// dims per `reduction`), unnormalised. out has one entry per column.
    void nll(MatCRef<T> s, MatCRef<T> a, MatCRef<T> o_next, VecRef<T> out) {
        check_args("Surprise::nll", s, a, o_next, out.size());
        const Mat<T>& n = forward_nll(s, a, o_next, eval_);
        const T sc = reduce_scale();
        for (Index j = 0; j < n.cols(); ++j) out(j) = sc * n(0, j);
    }

    /// R_intr = -NLL (normalised per `normalize`). Pure: updates nothing but the workspace, so
    /// calling it twice gives the same numbers.
    void reward(MatCRef<T> s, MatCRef<T> a, MatCRef<T> o_next, VecRef<T> out) {
        check_args("Surprise::reward", s, a, o_next, out.size());
        const Mat<T>& n = forward_nll(s, a, o_next, act_);
        const T sc = reduce_scale();
        const bool ready = opt_.normalize != SurpriseNorm::none && stats_.count() >= 2;
        const T center = ready && opt_.normalize == SurpriseNorm::standardize ? stats_.mean(0) : T(0);
        const T inv = ready ? T(1) / std::sqrt(stats_.var(0) + static_cast<T>(opt_.norm_eps)) : T(1);
        for (Index j = 0; j < n.cols(); ++j) out(j) = -(sc * n(0, j) - center) * inv;
    }

    /// reward() minus the setpoint prior: out(j) = reward_j - beta ||x_next(:, j) - mu||^2.
    /// x_next (internal_dim x B) is the next internal state: observed (env) or predicted by an
    /// internal model ("penalise predicted internal drift", seed 5B): the caller chooses.
    void reward_with_prior(MatCRef<T> s, MatCRef<T> a, MatCRef<T> o_next, MatCRef<T> x_next, VecRef<T> out) {
        if (x_next.rows() != opt_.internal_dim || x_next.cols() != o_next.cols())
            persist::detail::throw_shape("Surprise::reward_with_prior: x_next", opt_.internal_dim, o_next.cols(),
                                         x_next.rows(), x_next.cols());
        reward(s, a, o_next, out);
        if (beta_ == T(0)) return;
        for (Index j = 0; j < x_next.cols(); ++j) out(j) -= beta_ * (x_next.col(j) - mu_).squaredNorm();
    }

    /// One Adam step on the mean (reduced) NLL of the batch: input [observation; internal;
    /// action], target next_observation (- observation when predict_delta). Updates the NLL
    /// statistics used by `normalize` with the pre-step NLLs. Returns the pre-step mean loss.
    UpdateStats<T> update(const TransitionBatch<T>& batch) {
        const Index B = batch.size();
        check_batch(batch);
        Work& w = train_;
        ensure_shape(w.in, in_dim(), B);
        w.in.topRows(opt_.obs_dim) = batch.observation;
        w.in.middleRows(opt_.obs_dim, opt_.internal_dim) = batch.internal;
        w.in.bottomRows(opt_.action_dim) = batch.action;
        ensure_shape(w.y, opt_.obs_dim, B);
        if (opt_.predict_delta)
            w.y = batch.next_observation - batch.observation;
        else
            w.y = batch.next_observation;
        const Mat<T>& n = head_.nll(model_.forward(w.in, w.net), w.y, w.head);
        const T sc = reduce_scale();
        ensure_shape(w.r, 1, B);
        w.r = sc * n;
        const T loss = w.r.sum() / static_cast<T>(B);
        if (opt_.normalize != SurpriseNorm::none) stats_.update(w.r);
        ensure_shape(w.g, 1, B);
        w.g.setConstant(sc / static_cast<T>(B));
        const Mat<T>& gin = head_.backward(w.head, w.g);
        model_.zero_grad();
        model_.backward(w.net, gin);
        if (opt_.max_grad_norm > 0) optim::clip_grad_norm(model_.grads(), static_cast<T>(opt_.max_grad_norm));
        adam_.step(model_.params(), model_.grads());
        return {loss, B};
    }

    /// State protocol: "model.params", "opt.{m,v,step}", "nll_stats.{mean,var,count}",
    /// "beta", "mu" [internal_dim] when internal_dim > 0, and "mu_given" (u64 flag: set_beta
    /// accepts beta > 0 only with setpoints).
    template <class V>
    void visit_state(V&& v) {
        visit_nested(model_, "model", v);
        visit_nested(adam_, "opt", v);
        visit_nested(stats_, "nll_stats", v);
        v(state_tensor("beta", &beta_, {}));
        if (opt_.internal_dim > 0)
            v(state_tensor("mu", mu_.data(), {static_cast<std::int64_t>(opt_.internal_dim)}));
        v(state_tensor("mu_given", &mu_given_, {}));
    }

private:
    static constexpr std::uint64_t kInitStream = 0x5355u;  // "SU"

    struct Work {
        Mat<T> in, y, r, g;
        typename Model::Workspace net;
        typename Head::Workspace head;
    };

    static Options validated(const Options& o) {
        const char* who = "Surprise";
        detail::require(o.obs_dim >= 1, who, "obs_dim", ">= 1", static_cast<double>(o.obs_dim));
        detail::require(o.internal_dim >= 0, who, "internal_dim", ">= 0", static_cast<double>(o.internal_dim));
        detail::require(o.action_dim >= 0, who, "action_dim", ">= 0", static_cast<double>(o.action_dim));
        for (std::size_t i = 0; i < o.hidden.size(); ++i)
            if (o.hidden[i] < 1)
                throw ConfigError("Surprise: hidden[" + std::to_string(i) + "] must be >= 1, got " +
                                  std::to_string(o.hidden[i]));
        detail::require(std::isfinite(o.lr) && o.lr >= 0, who, "lr", "finite and >= 0", o.lr);
        detail::require(std::isfinite(o.max_grad_norm) && o.max_grad_norm >= 0, who, "max_grad_norm",
                        "finite and >= 0 (0 = off)", o.max_grad_norm);
        detail::require(std::isfinite(o.beta) && o.beta >= 0, who, "beta", "finite and >= 0", o.beta);
        if (!o.mu.empty() && static_cast<Index>(o.mu.size()) != o.internal_dim)
            throw ConfigError("Surprise: mu must have internal_dim = " + std::to_string(o.internal_dim) +
                              " entries, got " + std::to_string(o.mu.size()));
        if (o.beta > 0 && o.mu.empty() && o.internal_dim > 0)
            throw ConfigError("Surprise: beta = " + detail::num(o.beta) +
                              " > 0 needs the setpoints mu (internal_dim = " + std::to_string(o.internal_dim) +
                              " entries)");
        for (std::size_t j = 0; j < o.mu.size(); ++j)
            if (!std::isfinite(o.mu[j]))
                throw ConfigError("Surprise: mu[" + std::to_string(j) + "] must be finite, got " +
                                  detail::num(o.mu[j]));
        if (o.bound_log_std && !(o.log_std_min < o.log_std_max))
            throw ConfigError("Surprise: log_std_min (" + detail::num(o.log_std_min) + ") must be < log_std_max (" +
                              detail::num(o.log_std_max) + ")");
        detail::require(std::isfinite(o.norm_eps) && o.norm_eps > 0, who, "norm_eps", "finite and > 0", o.norm_eps);
        return o;
    }

    static std::vector<Index> widths(const Options& o) {
        std::vector<Index> w;
        w.push_back(o.obs_dim + o.internal_dim + o.action_dim);
        for (Index h : o.hidden) w.push_back(h);
        w.push_back(2 * o.obs_dim);
        return w;
    }

    Index in_dim() const { return opt_.obs_dim + opt_.internal_dim + opt_.action_dim; }
    T reduce_scale() const {
        return opt_.reduction == Reduction::mean ? T(1) / static_cast<T>(opt_.obs_dim) : T(1);
    }

    void check_args(const char* who, const MatCRef<T>& s, const MatCRef<T>& a, const MatCRef<T>& o, Index n) const {
        detail::check_reward_args(who, s.rows(), s.cols(), a.rows(), a.cols(), o.rows(), o.cols(), n, state_dim(),
                                  opt_.action_dim, opt_.obs_dim);
    }

    void check_batch(const TransitionBatch<T>& b) const {
        const Index B = b.size();
        auto chk = [B](const char* what, const Mat<T>& m, Index rows) {
            if (m.rows() != rows || m.cols() != B)
                persist::detail::throw_shape(std::string("Surprise::update: batch.") + what, rows, B, m.rows(),
                                             m.cols());
        };
        chk("observation", b.observation, opt_.obs_dim);
        chk("internal", b.internal, opt_.internal_dim);
        chk("action", b.action, opt_.action_dim);
        chk("next_observation", b.next_observation, opt_.obs_dim);
    }

    /// Per-sample summed NLL (1 x B) in w.head.nll.
    const Mat<T>& forward_nll(const MatCRef<T>& s, const MatCRef<T>& a, const MatCRef<T>& o_next, Work& w) {
        const Index B = o_next.cols();
        ensure_shape(w.in, in_dim(), B);
        w.in.topRows(state_dim()) = s;
        w.in.bottomRows(opt_.action_dim) = a;
        ensure_shape(w.y, opt_.obs_dim, B);
        if (opt_.predict_delta)
            w.y = o_next - s.topRows(opt_.obs_dim);
        else
            w.y = o_next;
        return head_.nll(model_.forward(w.in, w.net), w.y, w.head);
    }

    Options opt_;
    Model model_;
    Head head_;
    Optimizer adam_;
    RunningMeanStd<T> stats_;
    T beta_;
    Vec<T> mu_;
    std::uint64_t mu_given_;  ///< setpoints were given (options or set_setpoints); u64: checkpointed
    Work act_, eval_, train_;  // reward() / reward_with_prior(); nll(); update()
};

}  // namespace persist::intrinsic
