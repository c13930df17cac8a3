#pragma once
/// @file learned_shield.hpp
/// LearnedShield: the seed's shield with the models it learns (seed sections 2-4 and 6). It owns
///   - the internal model f_theta: a probabilistic ensemble (models::GaussianEnsemble) of
///     x_{t+1} from (x, a, o[obs_features]), trained with the Gaussian NLL on replay batches;
///   - the viability approximator V_psi (viability::ViabilityApproximator), a margin network
///     trained with the focal loss on labels from the true constraints, fed from the replay batch
///     and the near-boundary buffer (0 < m(x) < epsilon);
///   - a RolloutShield that rolls f_theta out K times over h steps per candidate action and
///     accepts an action when Pr(x_{t+1:t+h} in V_psi) >= alpha, else projects it (CEM or
///     gradient steps; docs/shield.md).
/// PersistAgent trains it: it calls `update(batch, near_boundary)` at every gradient step of its
/// update rounds (the agent detects the method; seed loop: "internal_model.update(...);
/// viability_approx.update(near_boundary_buffer)"). Until the models have had
/// `warmup_updates` updates the shield passes actions through (an untrained model would filter
/// at random); those decisions report projected = false and count as `passthrough`.
///
/// The rollout shield reads the models through plain views (parallel/views.hpp). The views
/// point into this object; they are refreshed whenever the object was copied or moved (a
/// pointer comparison per decision), so a LearnedShield can be moved into a PersistAgent.
/// docs/shield.md, "LearnedShield", has the parameters and an example.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"
#include "persist/models/gaussian_ensemble.hpp"
#include "persist/parallel/rollout.hpp"
#include "persist/replay/demonstrations.hpp"
#include "persist/replay/near_boundary.hpp"
#include "persist/shield/rollout_shield.hpp"
#include "persist/viability/approximator.hpp"
#include "persist/viability/constraints.hpp"

namespace persist::shield {

/// Options of LearnedShield (defaults: the seed's viability.shield, models.internal_model and
/// viability.approximator sections).
struct LearnedShieldOptions {
    RolloutShieldOptions rollout{};            ///< conf 0.97, horizon 8, K 32, CEM 64 x 4 ...
    models::EnsembleOptions model{};           ///< internal_dim, action_dim, obs_features required
    viability::ApproximatorOptions viability{};  ///< dim = internal_dim (set automatically when 0)
    std::int64_t warmup_updates = 1000;        ///< model updates before the shield filters, >= 0
    /// States per update drawn uniformly from the box the observed internal states span
    /// (extended to the constraints' boundaries when synthetic_cover_constraints, then widened
    /// by synthetic_box_margin of its width on each side) and labelled by the true
    /// constraints: replay data holds few unsafe states (an episode has one), so without them
    /// V_psi's frontier is wherever the network happens to put it. 0 disables, >= 0.
    Index synthetic_states = 256;
    double synthetic_box_margin = 0.1;         ///< >= 0
    /// The synthetic box also spans every constraint's boundary (before the widening): for a
    /// constraint on one variable its thresholds, for a linear combination the point on the
    /// boundary along each of its variables through the observed box's centre. Without it, data
    /// from a careful agent (or demonstrations) that never came near a bound leaves V_psi with
    /// no unsafe example on that side, and it extrapolates "safe" there.
    bool synthetic_cover_constraints = true;
    std::uint64_t seed = 0;                    ///< synthetic-state stream
};

/// Counters of a LearnedShield (on top of RolloutShield's).
struct LearnedShieldCounters {
    std::uint64_t decisions = 0;    ///< project() calls
    std::uint64_t passthrough = 0;  ///< decisions made before warmup_updates (action unchanged)
    std::uint64_t updates = 0;      ///< update() calls (each: one ensemble and one V_psi step)
};

/// @tparam T          float or double
/// @tparam Kinematics observation kinematics of the rollouts (parallel::HoldObservation, or
///                    parallel::GridLifePatchKinematics for GridLife)
/// @tparam Viability  what the rollouts' states are checked against:
///                    parallel::MarginNetworkView<T> (default): V_psi's learned margin, the
///                    seed's V_hat; parallel::LinearConstraintsView<T>: the constraint set itself
///                    (known constraints, learned dynamics), one margin per constraint, so
///                    relax_unavoidable can give up one constraint and keep the others. V_psi
///                    is trained either way.
template <class T, class Kinematics = parallel::HoldObservation<T>, class Viability = parallel::MarginNetworkView<T>>
class LearnedShield {
    static_assert(Real<T>, "persist::shield::LearnedShield<T, ...>: T must be float or double");
    static constexpr bool exact_constraints = std::is_same_v<Viability, parallel::LinearConstraintsView<T>>;
    static_assert(exact_constraints || std::is_same_v<Viability, parallel::MarginNetworkView<T>>,
                  "persist::shield::LearnedShield: Viability must be parallel::MarginNetworkView<T> (V_psi) or "
                  "parallel::LinearConstraintsView<T> (the constraints)");

public:
    using scalar_type = T;
    using Model = parallel::EnsembleRolloutModel<T>;
    using Viab = Viability;
    using Search = RolloutShield<T, Model, Viab, Kinematics>;

    /// `constraints`: the true viability constraints (labels of V_psi); copied.
    LearnedShield(const viability::ConstraintSet<T>& constraints, const Kinematics& kinematics, Vec<T> low,
                  Vec<T> high, LearnedShieldOptions opt)
        : opt_(prepared(std::move(opt), constraints)),
          constraints_(constraints),
          model_(opt_.model),
          viab_(opt_.viability),
          search_(make_search(kinematics, std::move(low), std::move(high))) {
        refresh();
    }

    LearnedShield(const LearnedShield& o)
        : opt_(o.opt_), constraints_(o.constraints_), model_(o.model_), viab_(o.viab_), search_(o.search_),
          counters_(o.counters_), box_lo_(o.box_lo_), box_hi_(o.box_hi_), last_model_(o.last_model_),
          last_viab_(o.last_viab_) {
        refresh();
    }
    LearnedShield(LearnedShield&& o) noexcept(false)
        // constraints_ copied, not moved: with exact constraints the search's copy re-reads the
        // source's set (then refresh() points it at ours).
        : opt_(std::move(o.opt_)), constraints_(o.constraints_), model_(std::move(o.model_)),
          viab_(std::move(o.viab_)), search_(std::move(o.search_)), counters_(o.counters_),
          box_lo_(std::move(o.box_lo_)), box_hi_(std::move(o.box_hi_)), last_model_(o.last_model_),
          last_viab_(o.last_viab_) {
        refresh();
    }
    LearnedShield& operator=(const LearnedShield& o) {
        if (this != &o) {
            LearnedShield tmp(o);
            *this = std::move(tmp);
        }
        return *this;
    }
    LearnedShield& operator=(LearnedShield&& o) noexcept(false) {
        opt_ = std::move(o.opt_);
        constraints_ = o.constraints_;  // copied, not moved: as in the move constructor
        model_ = std::move(o.model_);
        viab_ = std::move(o.viab_);
        search_ = std::move(o.search_);
        counters_ = o.counters_;
        box_lo_ = std::move(o.box_lo_);
        box_hi_ = std::move(o.box_hi_);
        last_model_ = o.last_model_;
        last_viab_ = o.last_viab_;
        refresh();
        return *this;
    }

    // --- persist::Shield ---------------------------------------------------------------------
    ShieldDecision<T> project(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x, VecRef<T> a_safe) {
        ++counters_.decisions;
        if (!active()) {
            if (a_safe.size() != a.size())
                persist::detail::throw_shape("LearnedShield::project: a_safe", static_cast<long>(a.size()), 1,
                                             static_cast<long>(a_safe.size()), 1);
            ++counters_.passthrough;
            a_safe = a;
            return ShieldDecision<T>{};
        }
        refresh_if_moved();
        return search_.project(a, o, x, a_safe);
    }

    /// One predictive check of `a` (the amortized shield's ProbabilisticShield interface);
    /// 1 before warm-up.
    T probability(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x) {
        if (!active()) return T(1);
        refresh_if_moved();
        return search_.probability(a, o, x);
    }
    T alpha() const { return search_.alpha(); }

    // --- learning ----------------------------------------------------------------------------
    /// One training step of f_theta (Gaussian NLL) and of V_psi (focal loss; labels from the
    /// true constraints; a share of the states from the near-boundary buffer when it holds any).
    void update(const TransitionBatch<T>& batch, const replay::NearBoundaryBuffer<T>* near = nullptr) {
        last_model_ = model_.update(batch);
        viab_.set_constraints(&constraints_);
        if (near && near->size() > 0)
            last_viab_ = viab_.update(batch, *near);
        else
            last_viab_ = viab_.update(batch);
        if (opt_.synthetic_states > 0) synthetic_step(batch);
        ++counters_.updates;
    }

    /// Pre-train f_theta and V_psi on safe demonstrations (seed Change 4) before the agent
    /// acts: `steps` calls of update(), which count toward warmup_updates (steps >=
    /// warmup_updates: the shield filters from the first decision), each on `batch_size`
    /// transitions (x_t, a_t, o_t) -> x_{t+1} drawn uniformly with replacement from consecutive
    /// steps of one episode (lines of an episode are its steps in order, docs/models.md
    /// "Demonstration files"). V_psi's labels are the true constraints', as in training (its
    /// synthetic states cover the box the demonstrations span, extended to the constraints'
    /// boundaries). Only what the demonstrations
    /// show is learned: a careful expert that never steps on a hazard teaches f_theta nothing
    /// about hazards (docs/shield.md, "Pre-training on demonstrations"). The demonstrations must carry
    /// actions and the observation entries f_theta reads (ShapeError naming the dimensions);
    /// steps < 0 or batch_size < 1 is a ConfigError; no transition at all is an Error.
    /// Returns the number of transitions available.
    Index pretrain(const replay::DemonstrationBuffer<T>& demos, Index steps, Index batch_size, Rng& rng) {
        if (steps < 0) throw ConfigError("LearnedShield::pretrain: steps must be >= 0, got " + std::to_string(steps));
        if (batch_size < 1)
            throw ConfigError("LearnedShield::pretrain: batch_size must be >= 1, got " + std::to_string(batch_size));
        const Index X = constraints_.dim(), A = opt_.model.action_dim;
        if (demos.internal_dim() != X)
            throw ShapeError("LearnedShield::pretrain: demonstrations have internal_dim " +
                             std::to_string(demos.internal_dim()) + ", the shield's internal state has " + std::to_string(X));
        if (demos.action_dim() != A)
            throw ShapeError("LearnedShield::pretrain: demonstrations have action_dim " + std::to_string(demos.action_dim()) +
                             ", the internal model takes " + std::to_string(A));
        Index min_obs = 0;
        for (Index f : opt_.model.obs_features) min_obs = std::max(min_obs, f + 1);
        if (demos.observation_dim() < min_obs)
            throw ShapeError("LearnedShield::pretrain: demonstrations have observation_dim " +
                             std::to_string(demos.observation_dim()) + ", the internal model reads o[" +
                             std::to_string(min_obs - 1) + "] (observations with at least " + std::to_string(min_obs) +
                             " entries are needed)");
        std::vector<Index> from;  // steps t whose successor t + 1 belongs to the same episode
        for (Index t = 0; t + 1 < demos.size(); ++t)
            if (demos.episode(t) == demos.episode(t + 1)) from.push_back(t);
        if (from.empty())
            throw Error("LearnedShield::pretrain: the demonstrations hold no transition (no two consecutive steps of one "
                        "episode among " + std::to_string(demos.size()) + " steps)");
        const auto xs = demos.states();
        const auto as = demos.actions();
        const auto os = demos.observations();
        TransitionBatch<T> b;
        b.resize(os.rows(), X, A, constraints_.num_constraints(), batch_size);
        b.reward.setZero(), b.terminated.setZero(), b.truncated.setZero();
        b.r_task.setZero(), b.r_homeo.setZero(), b.r_intr.setZero();
        for (Index s = 0; s < steps; ++s) {
            for (Index j = 0; j < batch_size; ++j) {
                const Index t = from[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(from.size())))];
                b.internal.col(j) = xs.col(t);
                b.next_internal.col(j) = xs.col(t + 1);
                if (A > 0) b.action.col(j) = as.col(t);
                if (os.rows() > 0) b.observation.col(j) = os.col(t), b.next_observation.col(j) = os.col(t + 1);
            }
            constraints_.margins(b.next_internal, b.margins);
            update(b);
        }
        return static_cast<Index>(from.size());
    }

    /// Filtering has started (warmup_updates model updates done).
    bool active() const { return static_cast<std::int64_t>(counters_.updates) >= opt_.warmup_updates; }

    // --- inspection --------------------------------------------------------------------------
    models::GaussianEnsemble<T>& model() { return model_; }
    const models::GaussianEnsemble<T>& model() const { return model_; }
    viability::ViabilityApproximator<T>& viability_model() { return viab_; }
    const viability::ViabilityApproximator<T>& viability_model() const { return viab_; }
    Search& search() { return search_; }
    const Search& search() const { return search_; }
    const LearnedShieldCounters& counters() const { return counters_; }
    const LearnedShieldOptions& options() const { return opt_; }
    /// The box the next synthetic states are drawn from (internal_dim x 2: lo, hi per
    /// variable): the observed states' box, extended to the constraints' boundaries when
    /// synthetic_cover_constraints, widened by synthetic_box_margin of its width per side.
    /// Empty (0 x 2) before any state was seen.
    Mat<T> synthetic_box() const {
        Mat<T> box(box_lo_.size() == constraints_.dim() ? constraints_.dim() : 0, 2);
        if (box.rows() > 0 && box_lo_[0] <= box_hi_[0]) sampling_box(box);
        else box.resize(0, 2);
        return box;
    }
    const models::EnsembleUpdateStats<T>& last_model_stats() const { return last_model_; }
    const viability::ApproximatorStats<T>& last_viability_stats() const { return last_viab_; }

    template <class V>
    void visit_state(V&& v) {
        visit_nested(model_, "internal_model", v);
        visit_nested(viab_, "viability", v);
        visit_nested(search_, "rollout", v);
        v(state_tensor("decisions", &counters_.decisions, {}));
        v(state_tensor("passthrough", &counters_.passthrough, {}));
        v(state_tensor("updates", &counters_.updates, {}));
        if (box_lo_.size() != constraints_.dim()) {  // shape the box so a checkpoint always has it
            box_lo_ = Vec<T>::Constant(constraints_.dim(), std::numeric_limits<T>::max());
            box_hi_ = Vec<T>::Constant(constraints_.dim(), std::numeric_limits<T>::lowest());
        }
        v(state_tensor("synthetic_box_lo", box_lo_.data(), {static_cast<std::int64_t>(box_lo_.size())}));
        v(state_tensor("synthetic_box_hi", box_hi_.data(), {static_cast<std::int64_t>(box_hi_.size())}));
    }

private:
    static LearnedShieldOptions prepared(LearnedShieldOptions o, const viability::ConstraintSet<T>& c) {
        if (o.warmup_updates < 0)
            throw ConfigError("LearnedShieldOptions.warmup_updates = " + std::to_string(o.warmup_updates) +
                              ": expected >= 0");
        if (o.model.internal_dim != c.dim())
            throw ShapeError("LearnedShield: model.internal_dim = " + std::to_string(o.model.internal_dim) +
                             ", the constraint set is over " + std::to_string(c.dim()) + " variables");
        if (o.synthetic_states < 0 || !(o.synthetic_box_margin >= 0 && std::isfinite(o.synthetic_box_margin)))
            throw ConfigError("LearnedShieldOptions.synthetic_states / synthetic_box_margin: expected >= 0, got " +
                              std::to_string(o.synthetic_states) + " / " + std::to_string(o.synthetic_box_margin));

        if (o.viability.dim == 0) o.viability.dim = o.model.internal_dim;
        if (o.viability.dim != o.model.internal_dim)
            throw ShapeError("LearnedShield: viability.dim = " + std::to_string(o.viability.dim) +
                             ", expected internal_dim = " + std::to_string(o.model.internal_dim));
        return o;
    }

    /// V_psi step on states drawn uniformly from the (widened) box of every internal state seen
    /// so far, labelled by the true constraints. The stream is keyed by (seed, update index).
    void synthetic_step(const TransitionBatch<T>& batch) {
        const Index X = constraints_.dim(), N = opt_.synthetic_states;
        if (box_lo_.size() != X) {
            box_lo_ = Vec<T>::Constant(X, std::numeric_limits<T>::max());
            box_hi_ = Vec<T>::Constant(X, std::numeric_limits<T>::lowest());
        }
        if (batch.internal.rows() == X && batch.internal.cols() > 0) {
            box_lo_ = box_lo_.cwiseMin(batch.internal.rowwise().minCoeff()).cwiseMin(batch.next_internal.rowwise().minCoeff());
            box_hi_ = box_hi_.cwiseMax(batch.internal.rowwise().maxCoeff()).cwiseMax(batch.next_internal.rowwise().maxCoeff());
        }
        ensure_shape(synth_x_, X, N);
        ensure_shape(synth_y_, 1, N);
        ensure_shape(synth_m_, constraints_.num_constraints(), N);
        ensure_shape(synth_box_, X, 2);
        sampling_box(synth_box_);
        Rng rng(opt_.seed, /*stream=*/0x5359'0000'0000ull + counters_.updates);
        for (Index j = 0; j < X; ++j) {
            const T lo = synth_box_(j, 0), hi = synth_box_(j, 1);
            for (Index b = 0; b < N; ++b) synth_x_(j, b) = lo + (hi - lo) * rng.template uniform<T>();
        }
        constraints_.margins(synth_x_, synth_m_);
        for (Index b = 0; b < N; ++b) {
            bool safe = true;
            for (Index k = 0; k < synth_m_.rows(); ++k) safe = safe && constraints_.satisfied(k, synth_m_(k, b));
            synth_y_(0, b) = safe ? T(1) : T(0);
        }
        viab_.train_step(synth_x_, synth_y_);
    }

    /// box (X x 2) = the observed box, extended to the constraints' boundaries
    /// (synthetic_cover_constraints), then widened by synthetic_box_margin of its width.
    void sampling_box(MatRef<T> box) const {
        const Index X = constraints_.dim();
        box.col(0) = box_lo_;
        box.col(1) = box_hi_;
        if (opt_.synthetic_cover_constraints) {
            const auto reach = [&](Index j, T v) {
                if (!std::isfinite(v)) return;
                box(j, 0) = std::min(box(j, 0), v);
                box(j, 1) = std::max(box(j, 1), v);
            };
            for (Index k = 0; k < constraints_.num_constraints(); ++k) {
                const auto& c = constraints_.constraint(k);
                // e(x) = a . x crosses a threshold t along variable j (the others at the
                // observed box's centre) at x_j = (t - sum_{i != j} a_i centre_i) / a_j.
                T rest_all = T(0);
                for (Index i = 0; i < X; ++i)
                    if (c.a[i] != T(0)) rest_all += c.a[i] * (box_lo_[i] + box_hi_[i]) / T(2);
                for (Index j = 0; j < X; ++j) {
                    if (c.a[j] == T(0)) continue;
                    const T rest = rest_all - c.a[j] * (box_lo_[j] + box_hi_[j]) / T(2);
                    if (c.is_interval()) {
                        reach(j, (c.lo - rest) / c.a[j]);
                        reach(j, (c.hi - rest) / c.a[j]);
                    } else {
                        reach(j, (c.threshold - rest) / c.a[j]);
                    }
                }
            }
        }
        for (Index j = 0; j < X; ++j) {
            const T w = box(j, 1) - box(j, 0);
            box(j, 0) -= T(opt_.synthetic_box_margin) * w;
            box(j, 1) += T(opt_.synthetic_box_margin) * w;
        }
    }

    Search make_search(const Kinematics& kinematics, Vec<T> low, Vec<T> high) {
        if constexpr (exact_constraints)
            return Search(Model{model_.view()}, constraints_, kinematics, std::move(low), std::move(high), opt_.rollout);
        else
            return Search(Model{model_.view()}, Viab{viab_.view(), nullptr, nullptr}, kinematics, std::move(low),
                          std::move(high), opt_.rollout);
    }

    void refresh() {
        model_view_ = model_.view();
        viab_view_ = viab_.view();
        search_.set_model(Model{model_view_});
        if constexpr (exact_constraints)
            search_.set_constraints(constraints_);
        else
            search_.set_viability(Viab{viab_view_, nullptr, nullptr});
        viab_.set_constraints(&constraints_);
    }
    void refresh_if_moved() {
        const auto mv = model_.view();
        const auto vv = viab_.view();
        if (mv.member[0].params != model_view_.member[0].params || mv.in_mean != model_view_.in_mean ||
            vv.params != viab_view_.params)
            refresh();
    }

    LearnedShieldOptions opt_;
    viability::ConstraintSet<T> constraints_;
    models::GaussianEnsemble<T> model_;
    viability::ViabilityApproximator<T> viab_;
    Search search_;
    LearnedShieldCounters counters_{};
    parallel::GaussianEnsembleView<T> model_view_{};
    parallel::MLPView<T> viab_view_{};
    Vec<T> box_lo_, box_hi_;
    Mat<T> synth_x_, synth_y_, synth_m_, synth_box_;
    models::EnsembleUpdateStats<T> last_model_{};
    viability::ApproximatorStats<T> last_viab_{};
};

}  // namespace persist::shield
