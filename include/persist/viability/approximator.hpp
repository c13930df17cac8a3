#pragma once
/// @file approximator.hpp
/// The viability approximator V_psi of the seed (section 2: "classifier/regressor that outputs
/// margin m(x) (positive = safe)"; section 6: "Label states using true constraints when
/// available; otherwise, treat boundary hits (failures or alarms) as negative and
/// far-from-boundary samples as positive; train V_psi with focal loss. Maintain a near-boundary
/// buffer ... to constantly refine the frontier"), and its pre-training from safe
/// demonstrations ("Change 4").
///
/// m(x) is the output of a ReLU MLP {X, hidden..., 1} on the raw internal state x: a logit,
/// positive = safe, Pr(safe | x) = sigmoid(m(x)). It is trained with the binary focal loss
/// (Lin et al. 2017, eq. 5; nn::BinaryFocal) with label 1 = safe. `view()` exposes the network
/// as a parallel::MLPView for the shield's rollout kernels. docs/models.md.
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
#include "persist/nn/losses.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/optim/adam.hpp"
#include "persist/parallel/views.hpp"
#include "persist/replay/demonstrations.hpp"
#include "persist/replay/near_boundary.hpp"
#include "persist/viability/constraints.hpp"

namespace persist::viability {

/// Options of ViabilityApproximator (config `viability.approximator` holds hidden, lr,
/// batch_size, focal_gamma, focal_alpha). Table with defaults: docs/models.md.
struct ApproximatorOptions {
    Index dim = 0;                        ///< X, >= 1 (required)
    std::vector<Index> hidden{64, 64};    ///< hidden widths, each >= 1, at most max_view_layers - 1
    double lr = 1e-3;                     ///< Adam learning rate, finite > 0
    double weight_decay = 0.0;            ///< Adam (coupled L2) weight decay, >= 0
    Index batch_size = 256;               ///< states per update / pretraining step, >= 1
    double focal_gamma = 2.0;             ///< focusing parameter, >= 0
    double focal_alpha = 0.25;            ///< weight of the safe class, [0, 1]
    double near_boundary_fraction = 0.25; ///< share of an update's states drawn from the near-boundary buffer, [0, 1]
    // --- pre-training from demonstrations (generated negatives) ---------------------------------
    double demo_negative_fraction = 0.5;  ///< share of a pretraining minibatch that are generated negatives, [0, 1)
    double negative_box_scale = 2.0;      ///< candidates come from the demos' bounding box scaled by this about its centre, >= 1
    double negative_radius = 0.05;        ///< kept only if farther than this from every demo state (box-normalised units), >= 0
    Index negative_pool = 4096;           ///< negatives generated once per pretrain() call, >= 1
    Index negative_max_tries = 1000;      ///< candidates per pool entry before giving up, >= 1
    std::uint64_t seed = 0;               ///< initialisation and the update stream
};

/// What one update / training step saw (values before its Adam step).
template <class T>
struct ApproximatorStats {
    T loss = T(0);                ///< focal loss (batch mean)
    T accuracy = T(0);            ///< fraction of states with (m(x) >= 0) == label
    Index replay_samples = 0;     ///< states drawn from the replay batch
    Index near_boundary_samples = 0;  ///< states drawn from the near-boundary buffer
    Index positives = 0;          ///< labels 1 (safe)
    Index negatives = 0;          ///< labels 0 (unsafe)
};

/// How update() labels states.
enum class LabelSource : std::uint8_t {
    constraints,  ///< a ConstraintSet is attached: safe iff every constraint is satisfied
    failures,     ///< none: next states of terminated transitions unsafe, all other next states safe
};

/// Learned viability margin m(x). Models persist::ViabilityModel (one "constraint": the margin
/// m(x), 1 x B) and persist::Stateful. margins() is const but uses an internal workspace: not
/// thread-safe. No allocation at a fixed batch size after warm-up.
/// @tparam T float or double
template <class T>
class ViabilityApproximator {
    static_assert(Real<T>, "persist::viability::ViabilityApproximator<T>: T must be float or double (docs/models.md)");

public:
    using scalar_type = T;
    using Options = ApproximatorOptions;
    using Network = nn::MLP<T, nn::ReLU>;
    using Optimizer = optim::Adam<T>;
    using Stats = ApproximatorStats<T>;

    explicit ViabilityApproximator(const Options& opt)
        : opt_(validated(opt)), net_(widths(opt_)),
          adam_(net_.param_count(), optim::AdamOptions<T>{.lr = static_cast<T>(opt_.lr),
                                                          .weight_decay = static_cast<T>(opt_.weight_decay)}),
          focal_{static_cast<T>(opt_.focal_alpha), static_cast<T>(opt_.focal_gamma)} {
        Rng init(opt_.seed, kInitStream);
        net_.init(init);
        rng_seed_ = opt_.seed;
    }

    const Options& options() const { return opt_; }
    Network& network() { return net_; }
    const Network& network() const { return net_; }
    Optimizer& optimizer() { return adam_; }
    std::int64_t updates() const { return updates_; }

    // --- ViabilityModel ---------------------------------------------------------------------------
    Index dim() const { return opt_.dim; }
    Index num_constraints() const { return 1; }
    /// out (1 x B) = m(x) for x (dim x B).
    void margins(MatCRef<T> x, MatRef<T> out) const {
        check_x(x, "margins");
        if (out.rows() != 1 || out.cols() != x.cols())
            persist::detail::throw_shape("ViabilityApproximator::margins: out", 1, x.cols(), out.rows(), out.cols());
        out = net_.forward(x, eval_ws_);
    }
    /// m(x) of one state.
    T margin(VecCRef<T> x) const {
        check_x(x, "margin");
        return net_.forward(x, single_ws_)(0, 0);
    }
    /// Pr(safe | x) = sigmoid(m(x)).
    T probability(VecCRef<T> x) const { return nn::detail::sigmoid(margin(x)); }

    /// The network as plain data for rollout kernels (pointer into this object's parameters;
    /// valid while it lives and is not assigned to).
    parallel::MLPView<T> view() const {
        parallel::MLPView<T> v;
        v.params = net_.params().data();
        v.num_layers = static_cast<std::int32_t>(net_.num_linear());
        for (std::size_t l = 0; l < net_.widths().size(); ++l) v.widths[l] = static_cast<std::int32_t>(net_.widths()[l]);
        v.act = parallel::Activation::relu;
        return v;
    }

    // --- labelling ------------------------------------------------------------------------------------
    /// Attach the true constraints (labelling mode `constraints`), or nullptr for `failures`.
    /// Not owned: it must outlive its use here (a curriculum may tighten it in place).
    void set_constraints(const ConstraintSet<T>* cs) {
        if (cs && cs->dim() != opt_.dim)
            throw ShapeError("ViabilityApproximator::set_constraints: the constraint set has dim " +
                             std::to_string(cs->dim()) + ", expected " + std::to_string(opt_.dim));
        cs_ = cs;
    }
    const ConstraintSet<T>* constraints() const { return cs_; }
    LabelSource label_source() const { return cs_ ? LabelSource::constraints : LabelSource::failures; }

    // --- learning -------------------------------------------------------------------------------------
    /// One Adam step on batch_size states drawn (with replacement, from the internal stream) from
    /// the replay batch's next_internal, labelled per label_source() (failures: terminated ->
    /// unsafe, else safe; terminated must mean "left the viability set").
    Stats update(const TransitionBatch<T>& batch) { return update_impl(batch, nullptr); }
    /// As above, with round(near_boundary_fraction * batch_size) of the states drawn from `nb`
    /// when it is non-empty (the rest from the replay batch). Near-boundary states are labelled
    /// by the constraints when attached, otherwise safe (the buffer only accepts margins > 0).
    Stats update(const TransitionBatch<T>& batch, const replay::NearBoundaryBuffer<T>& nb) {
        if (nb.internal_dim() != opt_.dim)
            throw ShapeError("ViabilityApproximator::update: near-boundary buffer has internal_dim " +
                             std::to_string(nb.internal_dim()) + ", expected " + std::to_string(opt_.dim));
        return update_impl(batch, &nb);
    }

    /// One Adam step on given states x (dim x B) and labels (1 x B, 1 = safe, 0 = unsafe; soft
    /// labels in [0, 1] are accepted).
    Stats train_step(MatCRef<T> x, MatCRef<T> labels) { return step(x, labels, train_ws_, grad_); }
    /// Focal loss of the network on (x, labels); overwrites network().grads() with dL/dparams.
    T loss_and_gradient(MatCRef<T> x, MatCRef<T> labels) { return loss_and_gradient_stats(x, labels, train_ws_, grad_).loss; }

    /// Pre-train on safe demonstrations ("Change 4"): `steps` Adam steps, each on batch_size
    /// states: (1 - demo_negative_fraction) of them demonstration states drawn uniformly (label
    /// safe) and the rest drawn from a pool of generated negatives (see generate_negatives; the
    /// pool has negative_pool states and is generated once per call). Returns the mean loss over
    /// the steps and the counts / accuracy of the last step.
    Stats pretrain(const replay::DemonstrationBuffer<T>& demos, Index steps, Rng& rng) {
        if (steps < 0) throw ConfigError("ViabilityApproximator::pretrain: steps must be >= 0, got " + std::to_string(steps));
        check_demos(demos, "pretrain");
        Stats st;
        if (steps == 0) return st;
        const Index N = opt_.batch_size;
        const Index n_neg = static_cast<Index>(std::llround(opt_.demo_negative_fraction * static_cast<double>(N)));
        const Index n_pos = N - n_neg;
        if (n_neg > 0) generate_negatives(demos, opt_.negative_pool, rng, pool_);
        ensure_shape(tx_, opt_.dim, N);
        ensure_shape(ty_, 1, N);
        T loss_sum = 0;
        for (Index s = 0; s < steps; ++s) {
            if (n_pos > 0) {
                demos.sample_states(n_pos, rng, ptmp_);
                tx_.leftCols(n_pos) = ptmp_;
                ty_.leftCols(n_pos).setOnes();
            }
            for (Index k = 0; k < n_neg; ++k) {
                tx_.col(n_pos + k) = pool_.col(static_cast<Index>(rng.below(static_cast<std::uint64_t>(pool_.cols()))));
                ty_(0, n_pos + k) = T(0);
            }
            st = step(tx_, ty_, update_ws_, ugrad_);
            loss_sum += st.loss;
        }
        st.loss = loss_sum / static_cast<T>(steps);
        return st;
    }

    /// n generated negatives into out (dim x n): candidates uniform in the demonstrations'
    /// bounding box [lo, hi] scaled by negative_box_scale about its centre, kept when their
    /// box-normalised distance sqrt(sum_j ((p_j - d_j) / (hi_j - lo_j))^2) to every demonstration
    /// state d exceeds negative_radius and, when constraints are attached, when they violate
    /// them. (An extent hi_j - lo_j below 1e-6 max(1, |centre_j|) is floored to that.) Throws
    /// persist::Error after n * negative_max_tries rejected candidates.
    void generate_negatives(const replay::DemonstrationBuffer<T>& demos, Index n, Rng& rng, Mat<T>& out) const {
        check_demos(demos, "generate_negatives");
        if (n < 1) throw ConfigError("ViabilityApproximator::generate_negatives: n must be >= 1, got " + std::to_string(n));
        const auto D = demos.states();
        const Index X = opt_.dim, Nd = D.cols();
        Vec<double> lo = D.rowwise().minCoeff().template cast<double>();
        Vec<double> hi = D.rowwise().maxCoeff().template cast<double>();
        Vec<double> c = (lo + hi) / 2.0, e(X);
        for (Index j = 0; j < X; ++j) e(j) = std::max(hi(j) - lo(j), 1e-6 * std::max(1.0, std::abs(c(j))));
        const Vec<double> inv_e = e.cwiseInverse();
        const double r2 = opt_.negative_radius * opt_.negative_radius;
        ensure_shape(out, X, n);
        Vec<T> p(X);
        const std::uint64_t max_tries = static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(opt_.negative_max_tries);
        std::uint64_t tries = 0;
        for (Index k = 0; k < n;) {
            if (tries++ >= max_tries)
                throw Error("ViabilityApproximator::generate_negatives: only " + std::to_string(k) + " of " +
                            std::to_string(n) + " negatives after " + std::to_string(max_tries) +
                            " candidates: the scaled box is covered by demonstrations (increase negative_box_scale "
                            "or decrease negative_radius)");
            for (Index j = 0; j < X; ++j)
                p(j) = static_cast<T>(c(j) + opt_.negative_box_scale * e(j) * (rng.uniform<double>() - 0.5));
            if (cs_ && cs_->satisfied(p)) continue;
            bool far = true;
            for (Index i = 0; i < Nd && far; ++i) {
                double d2 = 0;
                for (Index j = 0; j < X; ++j) {
                    const double d = (static_cast<double>(p(j)) - static_cast<double>(D(j, i))) * inv_e(j);
                    d2 += d * d;
                }
                far = d2 > r2;
            }
            if (!far) continue;
            out.col(k++) = p;
        }
    }

    /// The states and labels of the last update() minibatch (inspection and tests): replay
    /// draws first, then near-boundary draws.
    const Mat<T>& last_states() const { return tx_; }
    const Mat<T>& last_labels() const { return ty_; }

    /// State protocol: "net.params", "adam.*", the update stream "rng_seed", "rng_position",
    /// and "updates".
    template <class V>
    void visit_state(V&& v) {
        visit_nested(net_, "net", v);
        visit_nested(adam_, "adam", v);
        v(state_tensor("rng_seed", &rng_seed_, {}));
        v(state_tensor("rng_position", &rng_pos_, {}));
        v(state_tensor("updates", &updates_, {}));
    }

private:
    static constexpr std::uint64_t kInitStream = 0x56505349u;  // "VPSI"
    static constexpr std::uint64_t kUpdateStream = 0x56505355u;

    static Options validated(const Options& o) {
        auto fail = [](const std::string& what) { throw ConfigError("ViabilityApproximator: " + what); };
        auto num = [](double v) { return std::to_string(v); };
        if (o.dim < 1) fail("dim must be >= 1, got " + std::to_string(o.dim));
        if (static_cast<int>(o.hidden.size()) > parallel::max_view_layers - 1)
            fail("hidden has " + std::to_string(o.hidden.size()) + " layers, at most " +
                 std::to_string(parallel::max_view_layers - 1) + " fit a parallel::MLPView");
        for (std::size_t i = 0; i < o.hidden.size(); ++i)
            if (o.hidden[i] < 1) fail("hidden[" + std::to_string(i) + "] must be >= 1, got " + std::to_string(o.hidden[i]));
        if (!(std::isfinite(o.lr) && o.lr > 0)) fail("lr must be finite and > 0, got " + num(o.lr));
        if (!(std::isfinite(o.weight_decay) && o.weight_decay >= 0)) fail("weight_decay must be finite and >= 0, got " + num(o.weight_decay));
        if (o.batch_size < 1) fail("batch_size must be >= 1, got " + std::to_string(o.batch_size));
        if (!(std::isfinite(o.focal_gamma) && o.focal_gamma >= 0)) fail("focal_gamma must be finite and >= 0, got " + num(o.focal_gamma));
        if (!(o.focal_alpha >= 0 && o.focal_alpha <= 1)) fail("focal_alpha must be in [0, 1], got " + num(o.focal_alpha));
        if (!(o.near_boundary_fraction >= 0 && o.near_boundary_fraction <= 1))
            fail("near_boundary_fraction must be in [0, 1], got " + num(o.near_boundary_fraction));
        if (!(o.demo_negative_fraction >= 0 && o.demo_negative_fraction < 1))
            fail("demo_negative_fraction must be in [0, 1), got " + num(o.demo_negative_fraction));
        if (!(std::isfinite(o.negative_box_scale) && o.negative_box_scale >= 1))
            fail("negative_box_scale must be finite and >= 1, got " + num(o.negative_box_scale));
        if (!(std::isfinite(o.negative_radius) && o.negative_radius >= 0))
            fail("negative_radius must be finite and >= 0, got " + num(o.negative_radius));
        if (o.negative_pool < 1) fail("negative_pool must be >= 1, got " + std::to_string(o.negative_pool));
        if (o.negative_max_tries < 1) fail("negative_max_tries must be >= 1, got " + std::to_string(o.negative_max_tries));
        return o;
    }
    static std::vector<Index> widths(const Options& o) {
        std::vector<Index> w{o.dim};
        for (Index h : o.hidden) w.push_back(h);
        w.push_back(1);
        return w;
    }

    template <class Xpr>
    void check_x(const Xpr& x, const char* where) const {
        if (x.rows() != opt_.dim)
            persist::detail::throw_shape(std::string("ViabilityApproximator::") + where + ": x", opt_.dim, x.cols(),
                                         x.rows(), x.cols());
    }
    void check_demos(const replay::DemonstrationBuffer<T>& demos, const char* where) const {
        if (demos.internal_dim() != opt_.dim)
            throw ShapeError(std::string("ViabilityApproximator::") + where + ": demonstrations have internal_dim " +
                             std::to_string(demos.internal_dim()) + ", expected " + std::to_string(opt_.dim));
        if (demos.empty()) throw Error(std::string("ViabilityApproximator::") + where + ": no demonstrations");
    }

    Stats step(MatCRef<T> x, MatCRef<T> labels, typename Network::Workspace& ws, Mat<T>& grad) {
        Stats st = loss_and_gradient_stats(x, labels, ws, grad);
        adam_.step(net_.params(), net_.grads());
        ++updates_;
        return st;
    }
    Stats loss_and_gradient_stats(MatCRef<T> x, MatCRef<T> labels, typename Network::Workspace& ws, Mat<T>& grad) {
        check_x(x, "train_step");
        if (labels.rows() != 1 || labels.cols() != x.cols())
            persist::detail::throw_shape("ViabilityApproximator::train_step: labels", 1, x.cols(), labels.rows(), labels.cols());
        if (x.cols() < 1) throw ShapeError("ViabilityApproximator::train_step: empty batch");
        if (!x.allFinite()) throw Error("ViabilityApproximator::train_step: x has a non-finite entry");
        for (Index j = 0; j < labels.cols(); ++j)
            if (!(labels(0, j) >= T(0) && labels(0, j) <= T(1)))
                throw Error("ViabilityApproximator::train_step: label " + std::to_string(j) + " is not in [0, 1]");
        const Mat<T>& m = net_.forward(x, ws);
        Stats st;
        st.loss = focal_.value(m, labels);
        focal_.gradient(m, labels, grad);
        net_.zero_grad();
        net_.backward(ws, grad, nullptr, true);
        Index correct = 0;
        for (Index j = 0; j < x.cols(); ++j) {
            const bool safe = labels(0, j) >= T(0.5);
            correct += ((m(0, j) >= T(0)) == safe) ? 1 : 0;
            (safe ? st.positives : st.negatives) += 1;
        }
        st.accuracy = static_cast<T>(correct) / static_cast<T>(x.cols());
        return st;
    }

    T label_of(const T* x, bool fallback_safe) const {
        if (!cs_) return fallback_safe ? T(1) : T(0);
        return cs_->satisfied(Eigen::Map<const Vec<T>>(x, opt_.dim)) ? T(1) : T(0);
    }

    Stats update_impl(const TransitionBatch<T>& batch, const replay::NearBoundaryBuffer<T>* nb) {
        const Index N = opt_.batch_size;
        const Index n_nb = (nb && nb->size() > 0)
                               ? static_cast<Index>(std::llround(opt_.near_boundary_fraction * static_cast<double>(N)))
                               : 0;
        const Index n_rep = N - n_nb;
        const Index B = batch.next_internal.cols();
        if (n_rep > 0) {
            if (B < 1) throw ShapeError("ViabilityApproximator::update: empty replay batch");
            if (batch.next_internal.rows() != opt_.dim)
                persist::detail::throw_shape("ViabilityApproximator::update: batch.next_internal", opt_.dim, B,
                                             batch.next_internal.rows(), B);
            if (!cs_ && (batch.terminated.rows() != 1 || batch.terminated.cols() != B))
                persist::detail::throw_shape("ViabilityApproximator::update: batch.terminated", 1, B,
                                             batch.terminated.rows(), batch.terminated.cols());
        }
        sync_rng();
        ensure_shape(tx_, opt_.dim, N);
        ensure_shape(ty_, 1, N);
        for (Index k = 0; k < n_rep; ++k) {
            const auto s = static_cast<Index>(rng_.below(static_cast<std::uint64_t>(B)));
            tx_.col(k) = batch.next_internal.col(s);
            ty_(0, k) = label_of(tx_.col(k).data(), cs_ ? true : batch.terminated(0, s) == T(0));
        }
        if (n_nb > 0) {
            nb->sample(n_nb, rng_, tmp_);
            tx_.rightCols(n_nb) = tmp_;
            for (Index k = 0; k < n_nb; ++k) ty_(0, n_rep + k) = label_of(tmp_.col(k).data(), true);
        }
        rng_pos_ = rng_.position();
        Stats st = step(tx_, ty_, update_ws_, ugrad_);
        st.replay_samples = n_rep;
        st.near_boundary_samples = n_nb;
        return st;
    }

    void sync_rng() {
        if (!rng_built_ || rng_key_ != rng_seed_ || rng_.position() != rng_pos_) {
            rng_ = Rng(rng_seed_, kUpdateStream);
            rng_.set_position(rng_pos_);
            rng_key_ = rng_seed_;
            rng_built_ = true;
        }
    }

    Options opt_;
    Network net_;
    Optimizer adam_;
    nn::BinaryFocal<T> focal_;
    const ConstraintSet<T>* cs_ = nullptr;
    // One workspace per entry point: alternating calls at different sizes never reallocate.
    mutable typename Network::Workspace eval_ws_, single_ws_;
    typename Network::Workspace train_ws_, update_ws_;
    Mat<T> grad_, ugrad_, tx_, ty_, tmp_, ptmp_, pool_;
    Rng rng_;
    std::uint64_t rng_seed_ = 0, rng_pos_ = 0, rng_key_ = 0;
    bool rng_built_ = false;
    std::int64_t updates_ = 0;
};

}  // namespace persist::viability
