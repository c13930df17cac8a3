#pragma once
/// @file rnd.hpp
/// Random Network Distillation (Burda, Edwards, Storkey, Klimov 2018, "Exploration by Random
/// Network Distillation", arXiv:1810.12894), the seed's "Change 2". A fixed, randomly
/// initialised target network f and a predictor f_hat trained by MSE to imitate it on the
/// observations the agent has seen; the prediction error is high on novel observations:
///
///     z        = clip((o' - mean_o) / sqrt(var_o + eps), -c, c)      (observation normalisation, c = 5)
///     e(o')    = || f_hat(z) - f(z) ||^2                             (or its mean over the k features)
///     R_t      = gamma_I R_{t-1} + e_t                               (per environment, never reset)
///     R_intr   = e_t / sqrt(var(R) + eps)                            (running variance over all R_t seen)
///
/// The intrinsic reward is divided by a running estimate of the standard deviation of the
/// discounted intrinsic *return* (the paper's choice, RewardForwardFilter of the reference code),
/// not of the reward itself (available as RndRewardNorm::reward_std). docs/intrinsic.md.
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
#include "persist/nn/init.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/optim/adam.hpp"
#include "persist/optim/clip.hpp"

namespace persist::intrinsic {

/// What RND divides the prediction error by.
enum class RndRewardNorm {
    none,        ///< raw prediction error
    reward_std,  ///< running std of the prediction error itself
    return_std,  ///< running std of the discounted intrinsic return (Burda et al. 2018)
};

inline const char* rnd_reward_norm_name(RndRewardNorm n) {
    switch (n) {
        case RndRewardNorm::none: return "none";
        case RndRewardNorm::reward_std: return "reward_std";
        case RndRewardNorm::return_std: return "return_std";
    }
    return "?";
}

/// Options of RND (a plain aggregate). Defaults follow the paper / reference code where they
/// carry over from its Atari CNNs to MLPs; docs/intrinsic.md has the table and sources.
struct RNDOptions {
    Index obs_dim = 0;                              ///< dim of o' (>= 1, required)
    Index output_dim = 512;                         ///< k, the embedding size (paper: 512)
    std::vector<Index> hidden{256, 256};            ///< hidden widths of the target (and the predictor's trunk)
    std::vector<Index> predictor_extra{512, 512};   ///< extra hidden layers of the predictor only
    double lr = 1e-4;                               ///< Adam learning rate of the predictor (paper: 1e-4)
    double update_proportion = 1.0;                 ///< fraction of each batch used for the predictor loss
    double max_grad_norm = 0.0;                     ///< global-norm gradient clip; 0 = off (reference: 0)
    double init_gain = 1.4142135623730951;          ///< orthogonal init gain of every layer (sqrt 2)
    Reduction reduction = Reduction::sum;           ///< e = squared norm (sum) or mean over the k features
    bool normalize_observations = true;             ///< whiten o' with running mean/std, then clip
    bool update_obs_stats = true;                   ///< reward() merges each o' into the observation statistics
    double obs_clip = 5.0;                          ///< c: normalised observations clipped to [-c, c]
    RndRewardNorm reward_norm = RndRewardNorm::return_std;
    double gamma = 0.99;                            ///< gamma_I of the return filter (paper: 0.99)
    Index num_envs = 1;                             ///< columns of every reward() call with return_std
    double norm_eps = 1e-8;                         ///< added to variances before their square root
    std::uint64_t seed = 0;                         ///< target / predictor initialisation, update mask
};

/// Random Network Distillation. Models persist::Intrinsic and persist::Stateful. The target
/// network is initialised once and never trained. reward() is the online call (one column per
/// environment, once per environment step): it updates the observation and reward statistics;
/// score() and prediction_error() update nothing. No allocation at a fixed batch size after the
/// first call: reward(), score()/prediction_error() and update() have a workspace each, so each
/// may run at its own batch size.
/// @tparam T   float or double
/// @tparam Act activation of both networks
template <class T, template <class> class Act = nn::ReLU>
class RND {
    static_assert(Real<T>, "persist::intrinsic::RND<T>: T must be float or double");

public:
    using scalar_type = T;
    using Options = RNDOptions;
    using Net = nn::MLP<T, Act>;
    using Optimizer = optim::Adam<T>;

    explicit RND(const Options& opt)
        : opt_(validated(opt)),
          target_(target_widths(opt_)),
          predictor_(predictor_widths(opt_)),
          adam_(predictor_.param_count(), optim::AdamOptions<T>{.lr = static_cast<T>(opt_.lr)}),
          obs_stats_(opt_.obs_dim),
          rew_stats_(1),
          seed_(opt_.seed) {
        Rng trng(opt_.seed, kTargetStream), prng(opt_.seed, kPredictorStream);
        target_.init(trng, nn::Init::orthogonal(opt_.init_gain));
        predictor_.init(prng, nn::Init::orthogonal(opt_.init_gain));
        returns_.setZero(opt_.num_envs);
        inv_std_.setOnes(opt_.obs_dim);
    }

    const Options& options() const { return opt_; }
    Index obs_dim() const { return opt_.obs_dim; }
    Index output_dim() const { return opt_.output_dim; }

    /// f: fixed random features, never trained.
    const Net& target() const { return target_; }
    /// f_hat: trained by update().
    const Net& predictor() const { return predictor_; }
    Net& predictor() { return predictor_; }
    Optimizer& optimizer() { return adam_; }
    /// Running mean / var of the raw observations (normalisation of the networks' input).
    const RunningMeanStd<T>& obs_stats() const { return obs_stats_; }
    /// Running var of what the reward is divided by: the discounted intrinsic return
    /// (return_std) or the prediction error (reward_std).
    const RunningMeanStd<T>& reward_stats() const { return rew_stats_; }
    /// The per-environment discounted intrinsic returns R (return_std).
    const Vec<T>& returns() const { return returns_; }

    /// Merge observations (obs_dim x B) into the normalisation statistics without computing a
    /// reward: the paper initialises them by running a random agent for a few steps first.
    void observe(MatCRef<T> o) {
        if (o.rows() != opt_.obs_dim)
            persist::detail::throw_shape("RND::observe: o", opt_.obs_dim, o.cols(), o.rows(), o.cols());
        obs_stats_.update(o);
    }

    /// The networks' input for o (obs_dim x B) under the current statistics, into z (resized
    /// when its shape differs): clip((o - mean) / sqrt(var + eps), -c, c); the identity, then
    /// the clip, while fewer than 2 observations were seen; o itself when
    /// normalize_observations is off.
    void normalize_observations(MatCRef<T> o, Mat<T>& z) {
        if (o.rows() != opt_.obs_dim)
            persist::detail::throw_shape("RND::normalize_observations: o", opt_.obs_dim, o.cols(), o.rows(), o.cols());
        normalize(o, z);
    }

    /// Online intrinsic reward of the step that produced o_next (obs_dim x B; s and a are not
    /// used, only their column counts are checked). In this order: merge o_next into the
    /// observation statistics (update_obs_stats), compute e, update the return filter and the
    /// reward statistics, write e / sqrt(var + eps) (unnormalised until 2 values were seen).
    /// With return_std, B must equal num_envs (column j = environment j).
    void reward(MatCRef<T> s, MatCRef<T> a, MatCRef<T> o_next, VecRef<T> out) {
        detail::check_reward_args("RND::reward", s.rows(), s.cols(), a.rows(), a.cols(), o_next.rows(), o_next.cols(),
                                  out.size(), -1, -1, opt_.obs_dim);
        const Index B = o_next.cols();
        if (opt_.reward_norm == RndRewardNorm::return_std && B != opt_.num_envs)
            throw ShapeError("RND::reward: with reward_norm = return_std each call holds one column per "
                             "environment (num_envs = " + std::to_string(opt_.num_envs) + "), got " +
                             std::to_string(B) + " columns; use score() for other batches");
        if (opt_.normalize_observations && opt_.update_obs_stats) obs_stats_.update(o_next);
        const Mat<T>& e = errors(o_next, act_);
        switch (opt_.reward_norm) {
            case RndRewardNorm::none: break;
            case RndRewardNorm::reward_std: rew_stats_.update(e); break;
            case RndRewardNorm::return_std: {
                const T g = static_cast<T>(opt_.gamma);
                for (Index j = 0; j < B; ++j) returns_(j) = g * returns_(j) + e(0, j);
                rew_stats_.update(Eigen::Map<const Mat<T>>(returns_.data(), 1, B));
                break;
            }
        }
        const T inv = T(1) / divisor();
        for (Index j = 0; j < B; ++j) out(j) = e(0, j) * inv;
    }

    /// The reward of o_next (obs_dim x B, any B) under the current statistics, updating none of
    /// them: for relabelling replay batches, evaluation and metrics.
    void score(MatCRef<T> o_next, VecRef<T> out) {
        check_obs("RND::score", o_next, out.size());
        const Mat<T>& e = errors(o_next, eval_);
        const T inv = T(1) / divisor();
        for (Index j = 0; j < e.cols(); ++j) out(j) = e(0, j) * inv;
    }

    /// The raw prediction error e(o') of each column (normalised input, unnormalised output).
    void prediction_error(MatCRef<T> o_next, VecRef<T> out) {
        check_obs("RND::prediction_error", o_next, out.size());
        const Mat<T>& e = errors(o_next, eval_);
        for (Index j = 0; j < e.cols(); ++j) out(j) = e(0, j);
    }

    /// One Adam step of the predictor on batch.next_observation (normalised with the current
    /// statistics, which update() does not change): loss = sum_j m_j e_j / max(sum_j m_j, 1),
    /// m_j ~ Bernoulli(update_proportion) (all 1 when it is 1: no random draw). Returns the
    /// pre-step loss and the number of samples used; with none used, no step is taken.
    UpdateStats<T> update(const TransitionBatch<T>& batch) {
        const Mat<T>& o = batch.next_observation;
        const Index B = o.cols();
        if (o.rows() != opt_.obs_dim)
            persist::detail::throw_shape("RND::update: batch.next_observation", opt_.obs_dim, B, o.rows(), B);
        Work& w = train_;
        const Mat<T>& e = errors(o, w);
        ensure_shape(w.mask, 1, B);
        if (opt_.update_proportion >= 1.0) {
            w.mask.setOnes();
        } else {
            Rng rng(seed_, kMaskStream);
            rng.set_position(draws_);
            const T p = static_cast<T>(opt_.update_proportion);
            for (Index j = 0; j < B; ++j) w.mask(0, j) = rng.template uniform<T>() < p ? T(1) : T(0);
            draws_ = rng.position();
        }
        const T used = w.mask.sum();
        const Index n_used = static_cast<Index>(used);
        if (n_used == 0) return {T(0), 0};
        const T loss = (w.mask.array() * e.array()).sum() / used;
        // d loss / d f_hat(:, j) = m_j * 2 (f_hat - f)(:, j) * scale / n_used
        const T c = T(2) * reduce_scale() / used;
        for (Index j = 0; j < B; ++j) w.diff.col(j) *= c * w.mask(0, j);
        predictor_.zero_grad();
        predictor_.backward(w.pws, w.diff);
        if (opt_.max_grad_norm > 0) optim::clip_grad_norm(predictor_.grads(), static_cast<T>(opt_.max_grad_norm));
        adam_.step(predictor_.params(), predictor_.grads());
        return {loss, n_used};
    }

    /// State protocol: "target.params", "predictor.params", "opt.{m,v,step}",
    /// "obs_stats.{mean,var,count}", "reward_stats.{mean,var,count}", "returns" [num_envs],
    /// "mask_seed", "mask_draws" (the update mask's random stream).
    template <class V>
    void visit_state(V&& v) {
        visit_nested(target_, "target", v);
        visit_nested(predictor_, "predictor", v);
        visit_nested(adam_, "opt", v);
        visit_nested(obs_stats_, "obs_stats", v);
        visit_nested(rew_stats_, "reward_stats", v);
        v(state_tensor("returns", returns_.data(), {static_cast<std::int64_t>(opt_.num_envs)}));
        v(state_tensor("mask_seed", &seed_, {}));
        v(state_tensor("mask_draws", &draws_, {}));
    }

private:
    static constexpr std::uint64_t kTargetStream = 0x524e4454u;     // "RNDT"
    static constexpr std::uint64_t kPredictorStream = 0x524e4450u;  // "RNDP"
    static constexpr std::uint64_t kMaskStream = 0x524e444du;       // "RNDM"

    struct Work {
        Mat<T> z, diff, err, mask;
        typename Net::Workspace tws, pws;
    };

    static Options validated(const Options& o) {
        const char* who = "RND";
        detail::require(o.obs_dim >= 1, who, "obs_dim", ">= 1", static_cast<double>(o.obs_dim));
        detail::require(o.output_dim >= 1, who, "output_dim", ">= 1", static_cast<double>(o.output_dim));
        for (std::size_t i = 0; i < o.hidden.size(); ++i)
            if (o.hidden[i] < 1)
                throw ConfigError("RND: hidden[" + std::to_string(i) + "] must be >= 1, got " +
                                  std::to_string(o.hidden[i]));
        for (std::size_t i = 0; i < o.predictor_extra.size(); ++i)
            if (o.predictor_extra[i] < 1)
                throw ConfigError("RND: predictor_extra[" + std::to_string(i) + "] must be >= 1, got " +
                                  std::to_string(o.predictor_extra[i]));
        detail::require(std::isfinite(o.lr) && o.lr >= 0, who, "lr", "finite and >= 0", o.lr);
        detail::require(o.update_proportion > 0 && o.update_proportion <= 1, who, "update_proportion", "in (0, 1]",
                        o.update_proportion);
        detail::require(std::isfinite(o.max_grad_norm) && o.max_grad_norm >= 0, who, "max_grad_norm",
                        "finite and >= 0 (0 = off)", o.max_grad_norm);
        detail::require(std::isfinite(o.init_gain) && o.init_gain > 0, who, "init_gain", "finite and > 0",
                        o.init_gain);
        detail::require(o.obs_clip > 0, who, "obs_clip", "> 0 (+inf: no clip)", o.obs_clip);
        detail::require(o.gamma >= 0 && o.gamma < 1, who, "gamma", "in [0, 1)", o.gamma);
        detail::require(o.num_envs >= 1, who, "num_envs", ">= 1", static_cast<double>(o.num_envs));
        detail::require(std::isfinite(o.norm_eps) && o.norm_eps > 0, who, "norm_eps", "finite and > 0", o.norm_eps);
        return o;
    }
    static std::vector<Index> target_widths(const Options& o) {
        std::vector<Index> w{o.obs_dim};
        w.insert(w.end(), o.hidden.begin(), o.hidden.end());
        w.push_back(o.output_dim);
        return w;
    }
    static std::vector<Index> predictor_widths(const Options& o) {
        std::vector<Index> w{o.obs_dim};
        w.insert(w.end(), o.hidden.begin(), o.hidden.end());
        w.insert(w.end(), o.predictor_extra.begin(), o.predictor_extra.end());
        w.push_back(o.output_dim);
        return w;
    }

    T reduce_scale() const {
        return opt_.reduction == Reduction::mean ? T(1) / static_cast<T>(opt_.output_dim) : T(1);
    }
    /// sqrt(var + eps) of the reward statistics; 1 when off or with fewer than 2 values seen.
    T divisor() const {
        if (opt_.reward_norm == RndRewardNorm::none || rew_stats_.count() < 2) return T(1);
        return std::sqrt(rew_stats_.var(0) + static_cast<T>(opt_.norm_eps));
    }
    void check_obs(const char* who, const MatCRef<T>& o, Index n) const {
        if (o.rows() != opt_.obs_dim) persist::detail::throw_shape(std::string(who) + ": o_next", opt_.obs_dim, o.cols(), o.rows(), o.cols());
        if (n != o.cols()) persist::detail::throw_shape(std::string(who) + ": out", o.cols(), 1, n, 1);
    }

    /// z = clip((o - mean) / sqrt(var + eps), -c, c); the identity (then clip) while fewer than
    /// 2 observations were seen.
    void normalize(const MatCRef<T>& o, Mat<T>& z) {
        ensure_shape(z, o.rows(), o.cols());
        if (!opt_.normalize_observations) {
            z = o;
            return;
        }
        const T c = static_cast<T>(opt_.obs_clip);
        const bool ready = obs_stats_.count() >= 2;
        if (ready)
            inv_std_ = (obs_stats_.var().array() + static_cast<T>(opt_.norm_eps)).rsqrt().matrix();
        for (Index j = 0; j < o.cols(); ++j)
            for (Index i = 0; i < o.rows(); ++i) {
                const T v = ready ? (o(i, j) - obs_stats_.mean(i)) * inv_std_(i) : o(i, j);
                z(i, j) = std::clamp(v, -c, c);
            }
    }

    /// e (1 x B) in w.err; leaves f_hat - f in w.diff and the predictor's forward in w.pws.
    const Mat<T>& errors(const MatCRef<T>& o, Work& w) {
        normalize(o, w.z);
        const Mat<T>& ft = target_.forward(w.z, w.tws);
        const Mat<T>& fp = predictor_.forward(w.z, w.pws);
        ensure_shape(w.diff, opt_.output_dim, o.cols());
        w.diff = fp - ft;
        ensure_shape(w.err, 1, o.cols());
        w.err = reduce_scale() * w.diff.colwise().squaredNorm();
        return w.err;
    }

    Options opt_;
    Net target_, predictor_;
    Optimizer adam_;
    RunningMeanStd<T> obs_stats_, rew_stats_;
    Vec<T> returns_, inv_std_;
    std::uint64_t seed_;
    std::uint64_t draws_ = 0;
    Work act_, eval_, train_;  // reward(); score() and prediction_error(); update()
};

}  // namespace persist::intrinsic
