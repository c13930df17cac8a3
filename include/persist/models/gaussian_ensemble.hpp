#pragma once
/// @file gaussian_ensemble.hpp
/// The learned internal model f_theta of the seed (section 2: "Internal Model f_theta: predicts
/// x_{t+1} and constraint margins g(x)") as a probabilistic ensemble of Gaussian MLPs (PETS,
/// Chua et al. 2018, sections 4.1-4.2): M members, each an MLP with ReLU hidden layers mapping
/// the normalised input z = ((x; a; o[obs_features]) - in_mean) ./ in_std to [mu_hat; r]:
///
///   log_sigma = max_logstd - softplus(max_logstd - r)                  (soft upper bound)
///   log_sigma = min_logstd + softplus(log_sigma - min_logstd)          (soft lower bound)
///   delta     = delta_mean + delta_std .* (mu_hat + exp(log_sigma) .* eps),  eps ~ N(0, I)
///   x_next    = x + delta
///
/// (PETS, appendix A.1, bounds the log-variance the same way). Each member is trained on the
/// Gaussian negative log-likelihood of the normalised delta y = (x_next - x - delta_mean) ./
/// delta_std, one Adam step per member per update, each on its own bootstrap resample of the
/// batch (PETS "bootstrapped ensembles"). The layout and every formula above are exactly those
/// of parallel::GaussianEnsembleView (parallel/views.hpp), which `view()` returns, so the
/// rollout kernels of the shield evaluate the very numbers this class trains.
///
/// docs/models.md has the option table, the normaliser rules and an example.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/activations.hpp"
#include "persist/nn/detail.hpp"
#include "persist/nn/init.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/optim/adam.hpp"
#include "persist/parallel/views.hpp"

namespace persist::models {

/// Options of GaussianEnsemble (a plain aggregate; designated initialisers work). Defaults
/// and ranges: docs/models.md.
struct EnsembleOptions {
    Index internal_dim = 0;              ///< X, >= 1 (required)
    Index action_dim = 0;                ///< A, >= 0
    std::vector<Index> obs_features{};   ///< F indices into o that enter the input (may be empty)
    Index members = 5;                   ///< M, [1, parallel::max_view_members]
    std::vector<Index> hidden{64, 64};   ///< hidden widths, each >= 1, at most max_view_layers - 1
    double lr = 1e-3;                    ///< Adam learning rate, finite > 0
    double weight_decay = 0.0;           ///< Adam (coupled L2) weight decay, >= 0
    double min_logstd = -5.0;            ///< soft lower bound of log_sigma (normalised units)
    double max_logstd = 0.5;             ///< soft upper bound, > min_logstd
    bool bootstrap = true;               ///< each member trains on its own resample of the batch
    bool running_normalizers = true;     ///< update() folds every batch into the normalisers
    double std_epsilon = 1e-6;           ///< relative std floor: std >= std_epsilon * max(1, |mean|)
    std::uint64_t seed = 0;              ///< initialisation and bootstrap draws
};

/// What one GaussianEnsemble::update measured (before its Adam steps), averaged over members,
/// each on the batch it trained on.
template <class T>
struct EnsembleUpdateStats {
    T nll = T(0);        ///< Gaussian NLL of the normalised delta, summed over the X dims, batch mean
    T mse = T(0);        ///< mean squared error of the member mean of x_next, in x units, per entry
    Index samples = 0;   ///< batch columns each member trained on
};

/// Running mean / standard deviation per feature (Chan et al. 1979 parallel merge of Welford
/// accumulators), accumulated in double so float models do not lose the statistics over long
/// runs. `mean` and `std` are the T arrays the ensemble normalises with (and view() points at):
/// before any data mean = 0, std = 1; afterwards std = max(sqrt(M2 / n), eps * max(1, |mean|)),
/// so it is never zero (a constant feature gets the floor, not a division by zero).
template <class T>
struct RunningNormalizer {
    std::uint64_t count = 0;
    Vec<double> acc_mean, acc_m2;  ///< Welford accumulators
    Vec<T> mean, std;              ///< what the model uses
    Vec<double> bmean, bm2;        ///< scratch of one batch

    void resize(Index d) {
        acc_mean.setZero(d);
        acc_m2.setZero(d);
        bmean.setZero(d);
        bm2.setZero(d);
        mean.setZero(d);
        std.setOnes(d);
        count = 0;
    }
    void reset() { resize(mean.size()); }
    /// Fold the columns of `data` (d x n) into the statistics.
    template <class Derived>
    void add(const Eigen::MatrixBase<Derived>& data, double eps) {
        const Index n = data.cols();
        if (n == 0) return;
        const double nb = static_cast<double>(n);
        bmean.setZero();
        for (Index j = 0; j < n; ++j) bmean += data.col(j).template cast<double>();
        bmean /= nb;
        bm2.setZero();
        for (Index j = 0; j < n; ++j) bm2.array() += (data.col(j).template cast<double>() - bmean).array().square();
        const double na = static_cast<double>(count), nt = na + nb;
        for (Index i = 0; i < acc_mean.size(); ++i) {
            const double d = bmean(i) - acc_mean(i);
            acc_mean(i) += d * nb / nt;
            acc_m2(i) += bm2(i) + d * d * na * nb / nt;
        }
        count += static_cast<std::uint64_t>(n);
        derive(eps);
    }
    void derive(double eps) {
        for (Index i = 0; i < mean.size(); ++i) {
            const double m = count ? acc_mean(i) : 0.0;
            const double s = count ? std::sqrt(std::max(acc_m2(i), 0.0) / static_cast<double>(count)) : 1.0;
            mean(i) = static_cast<T>(m);
            std(i) = static_cast<T>(std::max(s, eps * std::max(1.0, std::abs(m))));
            // The floor is relative to |mean|, but a T-rounded floor must still be > 0.
            if (!(std(i) > T(0))) std(i) = std::numeric_limits<T>::min();
        }
    }
    template <class V>
    void visit_state(V&& v) {
        const auto d = static_cast<std::int64_t>(mean.size());
        v(state_tensor("count", &count, {}));
        v(state_tensor("acc_mean", acc_mean.data(), {d}));
        v(state_tensor("acc_m2", acc_m2.data(), {d}));
        v(state_tensor("mean", mean.data(), {d}));
        v(state_tensor("std", std.data(), {d}));
    }
};

/// Soft-bounded log-std of views.hpp and its derivative d log_sigma / d r.
template <class T>
inline T soft_bounded_logstd(T r, T lo, T hi, T* dls_dr = nullptr) {
    const T ls1 = hi - nn::detail::softplus(hi - r);
    const T ls = lo + nn::detail::softplus(ls1 - lo);
    if (dls_dr) *dls_dr = nn::detail::sigmoid(hi - r) * nn::detail::sigmoid(ls1 - lo);
    return ls;
}

/// Probabilistic ensemble internal model f_theta. Models persist::InternalModel and
/// persist::Stateful. No allocation at a fixed batch size after the first call of each entry
/// point (predict, sample, member_predict, update each keep their buffers). Not thread-safe:
/// the const-looking queries use internal workspaces.
/// @tparam T float or double
template <class T>
class GaussianEnsemble {
    static_assert(Real<T>, "persist::models::GaussianEnsemble<T>: T must be float or double (docs/models.md)");

public:
    using scalar_type = T;
    using Options = EnsembleOptions;
    using Network = nn::MLP<T, nn::ReLU>;
    using Optimizer = optim::Adam<T>;
    using Stats = EnsembleUpdateStats<T>;
    using View = parallel::GaussianEnsembleView<T>;

    explicit GaussianEnsemble(const Options& opt) : opt_(validated(opt)) {
        X_ = opt_.internal_dim;
        A_ = opt_.action_dim;
        F_ = static_cast<Index>(opt_.obs_features.size());
        D_ = X_ + A_ + F_;
        min_obs_rows_ = 0;
        for (Index f : opt_.obs_features) {
            feat_.push_back(static_cast<std::int32_t>(f));
            min_obs_rows_ = std::max(min_obs_rows_, f + 1);
        }
        std::vector<Index> widths{D_};
        for (Index h : opt_.hidden) widths.push_back(h);
        widths.push_back(2 * X_);
        const auto M = static_cast<std::size_t>(opt_.members);
        nets_.reserve(M);
        adam_.reserve(M);
        for (std::size_t m = 0; m < M; ++m) {
            nets_.emplace_back(widths);
            Rng init(opt_.seed, kInitStream + m);
            nets_.back().init(init);
            adam_.emplace_back(nets_.back().param_count(),
                               optim::AdamOptions<T>{.lr = static_cast<T>(opt_.lr),
                                                     .weight_decay = static_cast<T>(opt_.weight_decay)});
        }
        ws_.resize(M);
        in_norm_.resize(D_);
        delta_norm_.resize(X_);
        rng_seed_ = opt_.seed;
        lo_ = static_cast<T>(opt_.min_logstd);
        hi_ = static_cast<T>(opt_.max_logstd);
    }

    // Copyable and movable: a copy's view() points at the copy. Views taken before an
    // assignment to this object are invalidated by it.

    const Options& options() const { return opt_; }
    Index internal_dim() const { return X_; }
    Index action_dim() const { return A_; }
    Index num_obs_features() const { return F_; }
    Index input_dim() const { return D_; }
    Index members() const { return opt_.members; }
    /// o needs at least this many rows when obs_features is non-empty (max index + 1).
    Index min_observation_rows() const { return min_obs_rows_; }

    Network& member(Index m) { return nets_[check_member(m, "member")]; }
    const Network& member(Index m) const { return nets_[check_member(m, "member")]; }
    Optimizer& optimizer(Index m) { return adam_[check_member(m, "optimizer")]; }
    const RunningNormalizer<T>& input_normalizer() const { return in_norm_; }
    const RunningNormalizer<T>& delta_normalizer() const { return delta_norm_; }
    /// Updates applied so far.
    std::int64_t updates() const { return updates_; }

    // --- normalisers --------------------------------------------------------------------------
    /// Replace the statistics by those of this batch (observation, internal, action,
    /// next_internal are read).
    void fit_normalizers(const TransitionBatch<T>& batch) {
        check_batch(batch, "fit_normalizers(batch)");
        fit_normalizers(batch.internal, batch.action, batch.observation, batch.next_internal);
    }
    void fit_normalizers(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, MatCRef<T> x_next) {
        check_inputs(x, a, o, "fit_normalizers");
        check_x(x_next, x.cols(), "fit_normalizers", "x_next");
        in_norm_.reset();
        delta_norm_.reset();
        accumulate(x, a, o, x_next);
    }

    // --- InternalModel --------------------------------------------------------------------------
    /// x_next = ensemble mean of the members' means: x + delta_mean + delta_std .* (1/M) sum_m mu_hat_m.
    /// x: X x B, a: A x B, o: rows >= min_observation_rows() and B columns (not read when there are
    /// no obs_features). x_next is resized to X x B.
    void predict(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& x_next) {
        check_inputs(x, a, o, "predict");
        const Index B = x.cols();
        normalize_inputs(x, a, o, pz_);
        ensure_shape(pacc_, X_, B);
        pacc_.setZero();
        for (std::size_t m = 0; m < nets_.size(); ++m) pacc_ += nets_[m].forward(pz_, ws_[m].eval).topRows(X_);
        const T inv_m = T(1) / static_cast<T>(nets_.size());
        ensure_shape(x_next, X_, B);
        const auto& dm = delta_norm_.mean;
        const auto& ds = delta_norm_.std;
        for (Index j = 0; j < B; ++j)
            for (Index i = 0; i < X_; ++i) x_next(i, j) = x(i, j) + (dm(i) + ds(i) * (pacc_(i, j) * inv_m));
    }

    /// One draw per column: column j uses member j % M and eps ~ N(0, I) drawn from `rng` in
    /// column order, X normals per column (rng.normal<T>()).
    void sample(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& x_next, Rng& rng) {
        check_inputs(x, a, o, "sample");
        const Index B = x.cols();
        normalize_inputs(x, a, o, sz_);
        const Index M = opt_.members;
        ensure_shape(x_next, X_, B);
        // Each member evaluates only its own columns (j = m, m + M, ...): B forward columns in all.
        for (Index m = 0; m < M && m < B; ++m) {
            auto& w = ws_[static_cast<std::size_t>(m)];
            const Index n = (B - m + M - 1) / M;
            ensure_shape(w.zs, D_, n);
            for (Index k = 0; k < n; ++k) w.zs.col(k) = sz_.col(m + k * M);
            const Mat<T>& out = nets_[static_cast<std::size_t>(m)].forward(w.zs, w.samp);
            ensure_shape(w.mu, X_, n);
            ensure_shape(w.rraw, X_, n);
            w.mu = out.topRows(X_);
            w.rraw = out.bottomRows(X_);
        }
        const auto& dm = delta_norm_.mean;
        const auto& ds = delta_norm_.std;
        for (Index j = 0; j < B; ++j) {
            const auto& w = ws_[static_cast<std::size_t>(j % M)];
            const Index k = j / M;
            for (Index i = 0; i < X_; ++i) {
                const T eps = rng.normal<T>();
                const T ls = soft_bounded_logstd(w.rraw(i, k), lo_, hi_);
                const T mu = w.mu(i, k);
                x_next(i, j) = x(i, j) + (dm(i) + ds(i) * (mu + std::exp(ls) * eps));
            }
        }
    }

    /// Member m's predictive distribution of x_next in x units: mean_out = x + delta_mean +
    /// delta_std .* mu_hat and logstd_out = log_sigma + log(delta_std) (both X x B).
    void member_predict(Index m, MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& mean_out, Mat<T>& logstd_out) {
        const auto mm = check_member(m, "member_predict");
        check_inputs(x, a, o, "member_predict");
        const Index B = x.cols();
        normalize_inputs(x, a, o, mz_);
        const Mat<T>& out = nets_[mm].forward(mz_, ws_[mm].memb);
        ensure_shape(mean_out, X_, B);
        ensure_shape(logstd_out, X_, B);
        const auto& dm = delta_norm_.mean;
        const auto& ds = delta_norm_.std;
        for (Index j = 0; j < B; ++j)
            for (Index i = 0; i < X_; ++i) {
                mean_out(i, j) = x(i, j) + (dm(i) + ds(i) * out(i, j));
                logstd_out(i, j) = soft_bounded_logstd(out(X_ + i, j), lo_, hi_) + std::log(ds(i));
            }
    }

    /// Constraint margins g(x_{t+1}) of the mean prediction (seed section 2): margins_out is
    /// resized to viability.num_constraints() x B.
    template <ViabilityModel V>
        requires std::same_as<scalar_of<V>, T>
    void predict_margins(const V& viability, MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& margins_out) {
        if (viability.dim() != X_)
            throw ShapeError("GaussianEnsemble::predict_margins: the viability model has dim " +
                             std::to_string(viability.dim()) + ", expected internal_dim " + std::to_string(X_));
        predict(x, a, o, pmargin_x_);
        ensure_shape(margins_out, viability.num_constraints(), x.cols());
        viability.margins(pmargin_x_, margins_out);
    }

    // --- the view for rollout kernels --------------------------------------------------------------
    /// Plain pointers into this object's parameters and normalisers (parallel/views.hpp). Valid
    /// while this object lives and is not assigned to; updates change the numbers behind the
    /// pointers, never the pointers.
    View view() const {
        View v;
        v.members = static_cast<std::int32_t>(opt_.members);
        v.internal_dim = static_cast<std::int32_t>(X_);
        v.action_dim = static_cast<std::int32_t>(A_);
        v.num_obs_features = static_cast<std::int32_t>(F_);
        for (std::size_t m = 0; m < nets_.size(); ++m) v.member[m] = mlp_view(nets_[m]);
        v.in_mean = in_norm_.mean.data();
        v.in_std = in_norm_.std.data();
        v.delta_mean = delta_norm_.mean.data();
        v.delta_std = delta_norm_.std.data();
        v.obs_features = feat_.empty() ? nullptr : feat_.data();
        v.min_logstd = lo_;
        v.max_logstd = hi_;
        return v;
    }

    /// An MLPView of any ReLU MLP (no LayerNorm) with at most max_view_layers Linear layers.
    static parallel::MLPView<T> mlp_view(const Network& net) {
        if (net.options().layer_norm || net.num_linear() > parallel::max_view_layers)
            throw ConfigError("mlp_view: " + net.name() + " has LayerNorm or more than " +
                              std::to_string(parallel::max_view_layers) + " Linear layers");
        parallel::MLPView<T> v;
        v.params = net.params().data();
        v.num_layers = static_cast<std::int32_t>(net.num_linear());
        for (std::size_t l = 0; l < net.widths().size(); ++l) v.widths[l] = static_cast<std::int32_t>(net.widths()[l]);
        v.act = parallel::Activation::relu;
        return v;
    }

    // --- learning ------------------------------------------------------------------------------------
    /// One Adam step per member on the Gaussian NLL of the normalised delta (x_next - x), each on
    /// its own bootstrap resample of the batch (with options().bootstrap; otherwise all on the
    /// whole batch). With running_normalizers the batch is first folded into the normalisers.
    /// Reads observation, internal, action, next_internal. Non-finite entries: persist::Error.
    Stats update(const TransitionBatch<T>& batch) {
        check_batch(batch, "update(batch)");
        const Index B = batch.internal.cols();
        if (opt_.running_normalizers) accumulate(batch.internal, batch.action, batch.observation, batch.next_internal);
        normalize_inputs(batch.internal, batch.action, batch.observation, uz_);
        normalize_targets(batch.internal, batch.next_internal, uy_);
        sync_rng();
        Stats st;
        st.samples = B;
        for (std::size_t m = 0; m < nets_.size(); ++m) {
            auto& w = ws_[m];
            const Mat<T>* z = &uz_;
            const Mat<T>* y = &uy_;
            if (opt_.bootstrap) {
                ensure_shape(w.zin, D_, B);
                ensure_shape(w.yb, X_, B);
                for (Index j = 0; j < B; ++j) {
                    const auto s = static_cast<Index>(rng_.below(static_cast<std::uint64_t>(B)));
                    w.zin.col(j) = uz_.col(s);
                    w.yb.col(j) = uy_.col(s);
                }
                z = &w.zin;
                y = &w.yb;
            }
            T mse = 0;
            st.nll += loss_and_grad(m, *z, *y, true, &mse);
            st.mse += mse;
            adam_[m].step(nets_[m].params(), nets_[m].grads());
        }
        rng_pos_ = rng_.position();
        st.nll /= static_cast<T>(nets_.size());
        st.mse /= static_cast<T>(nets_.size());
        ++updates_;
        return st;
    }

    /// Member m's training loss on (x, a, o, x_next) with the current normalisers: the batch mean
    /// of sum_i [ (y_i - mu_i)^2 / (2 sigma_i^2) + log sigma_i + log(2 pi)/2 ], y the normalised
    /// delta, sigma = exp(log_sigma). With `grad`, member(m).grads() is overwritten with
    /// dL/dparams (no optimizer step). For gradient checks and diagnostics.
    T member_nll(Index m, MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, MatCRef<T> x_next, bool grad = false) {
        const auto mm = check_member(m, "member_nll");
        check_inputs(x, a, o, "member_nll");
        check_x(x_next, x.cols(), "member_nll", "x_next");
        normalize_inputs(x, a, o, uz_);
        normalize_targets(x, x_next, uy_);
        return loss_and_grad(mm, uz_, uy_, grad, nullptr);
    }

    /// State protocol: per member "member.<m>.params" and its Adam state "member.<m>.adam.*",
    /// the normalisers "in_norm.*" and "delta_norm.*" (Welford accumulators and the derived
    /// mean/std arrays), the bootstrap stream "rng_seed", "rng_position", and "updates".
    template <class V>
    void visit_state(V&& v) {
        for (std::size_t m = 0; m < nets_.size(); ++m) {
            const std::string p = "member." + std::to_string(m);
            visit_nested(nets_[m], p, v);
            visit_nested(adam_[m], p + ".adam", v);
        }
        visit_nested(in_norm_, "in_norm", v);
        visit_nested(delta_norm_, "delta_norm", v);
        v(state_tensor("rng_seed", &rng_seed_, {}));
        v(state_tensor("rng_position", &rng_pos_, {}));
        v(state_tensor("updates", &updates_, {}));
    }

private:
    static constexpr std::uint64_t kInitStream = 0x454e5300u;  // "ENS": + member index
    static constexpr std::uint64_t kBootStream = 0x454e5342u;  // "ENSB"

    struct MemberWorkspace {
        // One forward workspace per entry point, so alternating calls at different batch
        // sizes (predict at B, sample at B / M per member, update) never reallocate.
        typename Network::Workspace eval, samp, memb, train;
        Mat<T> zin, zs, yb, mu, rraw, grad;
    };

    static Options validated(const Options& o) {
        auto fail = [](const std::string& what) { throw ConfigError("GaussianEnsemble: " + what); };
        if (o.internal_dim < 1) fail("internal_dim must be >= 1, got " + std::to_string(o.internal_dim));
        if (o.action_dim < 0) fail("action_dim must be >= 0, got " + std::to_string(o.action_dim));
        if (o.members < 1 || o.members > parallel::max_view_members)
            fail("members must be in [1, " + std::to_string(parallel::max_view_members) + "], got " +
                 std::to_string(o.members));
        if (static_cast<int>(o.hidden.size()) > parallel::max_view_layers - 1)
            fail("hidden has " + std::to_string(o.hidden.size()) + " layers, at most " +
                 std::to_string(parallel::max_view_layers - 1) + " fit a parallel::MLPView");
        for (std::size_t i = 0; i < o.hidden.size(); ++i)
            if (o.hidden[i] < 1) fail("hidden[" + std::to_string(i) + "] must be >= 1, got " + std::to_string(o.hidden[i]));
        for (std::size_t i = 0; i < o.obs_features.size(); ++i)
            if (o.obs_features[i] < 0 || o.obs_features[i] > std::numeric_limits<std::int32_t>::max())
                fail("obs_features[" + std::to_string(i) + "] must be a non-negative int32 index, got " +
                     std::to_string(o.obs_features[i]));
        if (!(std::isfinite(o.lr) && o.lr > 0)) fail("lr must be finite and > 0, got " + std::to_string(o.lr));
        if (!(std::isfinite(o.weight_decay) && o.weight_decay >= 0))
            fail("weight_decay must be finite and >= 0, got " + std::to_string(o.weight_decay));
        if (!(std::isfinite(o.min_logstd) && std::isfinite(o.max_logstd) && o.min_logstd < o.max_logstd))
            fail("need finite min_logstd < max_logstd, got " + std::to_string(o.min_logstd) + " and " +
                 std::to_string(o.max_logstd));
        if (!(std::isfinite(o.std_epsilon) && o.std_epsilon > 0))
            fail("std_epsilon must be finite and > 0, got " + std::to_string(o.std_epsilon));
        return o;
    }

    std::size_t check_member(Index m, const char* where) const {
        if (m < 0 || m >= opt_.members)
            throw ShapeError(std::string("GaussianEnsemble::") + where + ": member index " + std::to_string(m) +
                             " outside [0, " + std::to_string(opt_.members) + ")");
        return static_cast<std::size_t>(m);
    }
    // Checks build their message only on failure: no allocation on the hot path.
    static std::string where_of(const char* where, const char* what) {
        return std::string("GaussianEnsemble::") + where + ": " + what;
    }
    void check_x(MatCRef<T> x, Index B, const char* where, const char* what) const {
        if (x.rows() != X_ || x.cols() != B) [[unlikely]]
            persist::detail::throw_shape(where_of(where, what), X_, B, x.rows(), x.cols());
    }
    void check_inputs(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, const char* where) const {
        const Index B = x.cols();
        check_x(x, B, where, "x");
        // With A = 0 the action is not read: an empty matrix is accepted too.
        if (a.rows() != A_ || (a.cols() != B && !(A_ == 0 && a.size() == 0))) [[unlikely]]
            persist::detail::throw_shape(where_of(where, "a"), A_, B, a.rows(), a.cols());
        if (F_ > 0 && (o.rows() < min_obs_rows_ || o.cols() != B)) [[unlikely]]
            throw ShapeError(where_of(where, "o") + ": expected at least " + std::to_string(min_obs_rows_) + " x " +
                             std::to_string(B) + " (obs_features index up to " + std::to_string(min_obs_rows_ - 1) +
                             "), got " + std::to_string(o.rows()) + " x " + std::to_string(o.cols()));
    }
    void check_batch(const TransitionBatch<T>& b, const char* where) const {
        const Index B = b.internal.cols();
        if (B < 1) throw ShapeError(where_of(where, "empty batch"));
        check_inputs(b.internal, b.action, b.observation, where);
        check_x(b.next_internal, B, where, "next_internal");
        auto finite = [&](const Mat<T>& m, const char* name) {
            if (!m.allFinite()) [[unlikely]]
                throw Error(where_of(where, name) + " has a non-finite entry");
        };
        finite(b.internal, "internal");
        finite(b.action, "action");
        finite(b.next_internal, "next_internal");
        for (Index j = 0; j < (F_ > 0 ? B : 0); ++j)
            for (std::int32_t f : feat_)
                if (!std::isfinite(b.observation(f, j))) [[unlikely]]
                    throw Error(where_of(where, "observation") + "(" + std::to_string(f) + ", " + std::to_string(j) +
                                ") is not finite");
    }

    /// raw = (x; a; o[features]) into dst (D x B).
    void gather_raw(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& dst) const {
        const Index B = x.cols();
        ensure_shape(dst, D_, B);
        dst.topRows(X_) = x;
        if (A_ > 0) dst.middleRows(X_, A_) = a;
        for (Index j = 0; j < (F_ > 0 ? B : 0); ++j)
            for (Index f = 0; f < F_; ++f) dst(X_ + A_ + f, j) = o(feat_[static_cast<std::size_t>(f)], j);
    }
    void normalize_inputs(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& z) const {
        gather_raw(x, a, o, z);
        const auto& mu = in_norm_.mean;
        const auto& sd = in_norm_.std;
        for (Index j = 0; j < z.cols(); ++j)
            for (Index i = 0; i < D_; ++i) z(i, j) = (z(i, j) - mu(i)) / sd(i);
    }
    void normalize_targets(MatCRef<T> x, MatCRef<T> x_next, Mat<T>& y) const {
        ensure_shape(y, X_, x.cols());
        const auto& mu = delta_norm_.mean;
        const auto& sd = delta_norm_.std;
        for (Index j = 0; j < x.cols(); ++j)
            for (Index i = 0; i < X_; ++i) y(i, j) = ((x_next(i, j) - x(i, j)) - mu(i)) / sd(i);
    }
    void accumulate(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, MatCRef<T> x_next) {
        gather_raw(x, a, o, raw_);
        in_norm_.add(raw_, opt_.std_epsilon);
        ensure_shape(raw_delta_, X_, x.cols());
        raw_delta_ = x_next - x;
        delta_norm_.add(raw_delta_, opt_.std_epsilon);
    }

    /// Loss of member m on normalised (z, y); with `grad` overwrites its grads(). mse (x units).
    T loss_and_grad(std::size_t m, const Mat<T>& z, const Mat<T>& y, bool grad, T* mse) {
        auto& w = ws_[m];
        const Index n = z.cols();
        const Mat<T>& out = nets_[m].forward(z, w.train);
        ensure_shape(w.grad, 2 * X_, n);
        const T inv_n = T(1) / static_cast<T>(n);
        const T c = static_cast<T>(0.5 * nn::detail::kLog2Pi);
        const auto& ds = delta_norm_.std;
        T loss = 0, se = 0;
        for (Index j = 0; j < n; ++j)
            for (Index i = 0; i < X_; ++i) {
                T dls = 0;
                const T ls = soft_bounded_logstd(out(X_ + i, j), lo_, hi_, &dls);
                const T is = std::exp(-ls);
                const T e = y(i, j) - out(i, j);
                const T zz = e * is;
                loss += T(0.5) * zz * zz + ls + c;
                const T ex = e * ds(i);
                se += ex * ex;
                w.grad(i, j) = -inv_n * zz * is;
                w.grad(X_ + i, j) = inv_n * (T(1) - zz * zz) * dls;
            }
        if (mse) *mse = se / static_cast<T>(n * X_);
        if (grad) {
            nets_[m].zero_grad();
            nets_[m].backward(w.train, w.grad, nullptr, true);
        }
        return loss * inv_n;
    }

    void sync_rng() {
        if (!rng_built_ || rng_key_ != rng_seed_ || rng_.position() != rng_pos_) {
            rng_ = Rng(rng_seed_, kBootStream);
            rng_.set_position(rng_pos_);
            rng_key_ = rng_seed_;
            rng_built_ = true;
        }
    }

    Options opt_;
    Index X_ = 0, A_ = 0, F_ = 0, D_ = 0, min_obs_rows_ = 0;
    std::vector<std::int32_t> feat_;
    std::vector<Network> nets_;
    std::vector<Optimizer> adam_;
    std::vector<MemberWorkspace> ws_;
    RunningNormalizer<T> in_norm_, delta_norm_;
    T lo_ = T(-5), hi_ = T(0.5);
    Mat<T> pz_, sz_, mz_, pacc_, pmargin_x_, uz_, uy_, raw_, raw_delta_;
    Rng rng_;
    std::uint64_t rng_seed_ = 0, rng_pos_ = 0, rng_key_ = 0;
    bool rng_built_ = false;
    std::int64_t updates_ = 0;
};

}  // namespace persist::models
