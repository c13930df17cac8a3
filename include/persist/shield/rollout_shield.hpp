#pragma once
/// @file rollout_shield.hpp
/// The rollout shield (seed section 4): a predictive check of the proposed action by K sampled
/// model rollouts of horizon h, and, when it fails, a projection onto the nearest action that
/// passes it, by CEM or by gradient steps through the model. Models persist::Shield.
///
///   P_hat(a) = (1/K) sum_k 1[ every constraint holds at x_{t+1..t+h} of rollout k ]
///   accept a               if P_hat(a) >= alpha
///   else a' = argmin ||a' - a||_2  s.t.  P_hat(a') >= alpha,  a' in [low, high]
///
/// The rollouts run in parallel/rollout.hpp (Thrust or Eigen-batched backend); equations,
/// parameters with defaults and an example: docs/shield.md.
///
/// Lifetime: the shield holds the model, viability and kinematics as VIEWS (plain pointers into
/// memory owned elsewhere: the ensemble's parameter and normaliser vectors, a margin network's
/// parameters). Training them in place is fine (the next decision sees the new values); if the
/// owner reallocates (e.g. replaces a network), call set_model / set_viability with a fresh
/// view. A ConstraintSet given to the constructor is held by reference and re-read at every
/// decision (curriculum changes apply at once); it must outlive the shield.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"
#include "persist/parallel/rollout.hpp"
#include "persist/viability/constraints.hpp"

namespace persist::shield {

/// How a failed check is repaired.
enum class Projection : std::uint8_t {
    cem = 0,       ///< cross-entropy search over the action box (default)
    gradient = 1,  ///< penalty-method gradient steps on a softmin surrogate of the margins
};

/// Parameters of RolloutShield (defaults: config viability.shield, persist_config.hpp).
struct RolloutShieldOptions {
    double conf = 0.97;              ///< alpha: required P_hat, (0, 1]
    std::int32_t horizon = 8;        ///< h, [1, 65535]
    std::int32_t num_rollouts = 32;  ///< K, >= 1
    // CEM (viability.shield.cem)
    std::int32_t cem_iterations = 4;   ///< >= 1
    std::int32_t cem_population = 64;  ///< candidates per iteration, >= 1
    std::int32_t cem_elites = 8;       ///< [1, population]
    double cem_init_std = 0.5;         ///< initial std around the proposed action (action units), > 0
    double cem_momentum = 0.0;         ///< mean/std smoothing, [0, 1)
    bool cem_include_centre = true;    ///< the first population contains the box centre
    double cem_uniform_fraction = 0.25;  ///< share of the first population drawn uniformly over the box, [0, 1]
    // gradient projection
    std::int32_t grad_rounds = 4;          ///< augmented-Lagrangian rounds (multiplier update each), >= 1
    std::int32_t grad_steps = 30;          ///< gradient steps per round, >= 1
    double grad_step_size = 0.25;          ///< step length cap per gradient step (action units), > 0
    double grad_penalty = 100.0;           ///< penalty weight rho, > 0
    double grad_temperature = 0.01;        ///< softmin temperature tau (margin units), > 0
    double grad_margin_target = 0.005;     ///< delta: pushed to S / ||dS/da'|| >= delta (action units), >= 0
    Projection projection = Projection::cem;
    /// When no action reaches alpha: give up the constraint that binds the best action found (it
    /// is predicted violated whatever the action) and check the proposal, then search, again for
    /// the remaining constraints; repeated while infeasible (only constraints 0..31 can be given
    /// up). With all of them given up the proposal passes unchanged: for a single learned margin
    /// (LearnedShield's V_psi) this option means "defer to the policy when no action is safe".
    /// Off: return the safest action found, which under an unavoidable violation is the one that
    /// delays it most (e.g. standing still while starving).
    bool relax_unavoidable = false;
    parallel::Backend backend = parallel::Backend::eigen;
    std::uint64_t seed = 0;  ///< noise and CEM sampling key

    /// From config::ShieldConfig (viability.shield) or anything with the same fields.
    template <class Cfg>
    static RolloutShieldOptions from_config(const Cfg& c, std::uint64_t seed = 0) {
        RolloutShieldOptions o;
        o.conf = c.conf;
        o.horizon = static_cast<std::int32_t>(c.horizon);
        o.num_rollouts = static_cast<std::int32_t>(c.num_rollouts);
        o.cem_iterations = static_cast<std::int32_t>(c.cem.iterations);
        o.cem_population = static_cast<std::int32_t>(c.cem.population);
        o.cem_elites = static_cast<std::int32_t>(c.cem.elites);
        o.cem_init_std = c.cem.init_std;
        o.cem_momentum = c.cem.momentum;
        if constexpr (requires { c.relax_unavoidable; }) o.relax_unavoidable = c.relax_unavoidable;
        o.seed = seed;
        return o;
    }

    /// ConfigError naming the first bad field.
    void validate() const {
        auto bad = [](const std::string& f, const std::string& v, const char* expected) {
            throw ConfigError("RolloutShieldOptions." + f + " = " + v + ": expected " + expected);
        };
        if (!(conf > 0.0 && conf <= 1.0)) bad("conf", std::to_string(conf), "a value in (0, 1]");
        if (horizon < 1 || horizon > parallel::max_rollout_horizon)
            bad("horizon", std::to_string(horizon), "an integer in [1, 65535]");
        if (num_rollouts < 1) bad("num_rollouts", std::to_string(num_rollouts), "an integer >= 1");
        if (cem_iterations < 1) bad("cem_iterations", std::to_string(cem_iterations), "an integer >= 1");
        if (cem_population < 1) bad("cem_population", std::to_string(cem_population), "an integer >= 1");
        if (cem_elites < 1 || cem_elites > cem_population)
            bad("cem_elites", std::to_string(cem_elites), "an integer in [1, cem_population]");
        if (!(cem_init_std > 0.0 && std::isfinite(cem_init_std)))
            bad("cem_init_std", std::to_string(cem_init_std), "a finite value > 0");
        if (!(cem_uniform_fraction >= 0.0 && cem_uniform_fraction <= 1.0))
            bad("cem_uniform_fraction", std::to_string(cem_uniform_fraction), "a value in [0, 1]");
        if (!(cem_momentum >= 0.0 && cem_momentum < 1.0))
            bad("cem_momentum", std::to_string(cem_momentum), "a value in [0, 1)");
        if (grad_rounds < 1) bad("grad_rounds", std::to_string(grad_rounds), "an integer >= 1");
        if (grad_steps < 1) bad("grad_steps", std::to_string(grad_steps), "an integer >= 1");
        if (!(grad_step_size > 0.0 && std::isfinite(grad_step_size)))
            bad("grad_step_size", std::to_string(grad_step_size), "a finite value > 0");
        if (!(grad_penalty > 0.0 && std::isfinite(grad_penalty)))
            bad("grad_penalty", std::to_string(grad_penalty), "a finite value > 0");
        if (!(grad_temperature > 0.0 && std::isfinite(grad_temperature)))
            bad("grad_temperature", std::to_string(grad_temperature), "a finite value > 0");
        if (!(grad_margin_target >= 0.0 && std::isfinite(grad_margin_target)))
            bad("grad_margin_target", std::to_string(grad_margin_target), "a finite value >= 0");
        if (backend != parallel::Backend::thrust_device && backend != parallel::Backend::thrust_cpp &&
            backend != parallel::Backend::eigen)
            bad("backend", std::to_string(static_cast<int>(backend)), "thrust_device, thrust_cpp or eigen");
        if (projection != Projection::cem && projection != Projection::gradient)
            bad("projection", std::to_string(static_cast<int>(projection)), "cem or gradient");
    }
};

/// A viability::ConstraintSet as the plain arrays of parallel::LinearConstraintsView. Holds the
/// set by reference; `sync()` re-reads it (no allocation unless the number of constraints or
/// variables changed), `view()` points into this object (invalidated by copying or moving it).
template <class T>
class LinearConstraints {
public:
    explicit LinearConstraints(const viability::ConstraintSet<T>& set) : set_(&set) { sync(); }

    void sync() {
        const auto& s = *set_;
        const auto m = static_cast<std::size_t>(s.num_constraints());
        const auto d = static_cast<std::size_t>(s.dim());
        if (coef_.size() != m * d) coef_.assign(m * d, T(0));
        if (sense_.size() != m) {
            sense_.assign(m, 0);
            lo_.assign(m, T(0));
            hi_.assign(m, T(0));
        }
        for (std::size_t k = 0; k < m; ++k) {
            const auto& c = s.constraint(static_cast<Index>(k));
            for (std::size_t j = 0; j < d; ++j) coef_[k * d + j] = c.a(static_cast<Index>(j));
            sense_[k] = static_cast<std::int32_t>(c.sense);  // same order as parallel::ConstraintSense
            lo_[k] = c.is_interval() ? c.lo : c.threshold;
            hi_[k] = c.is_interval() ? c.hi : T(0);
        }
        view_.num_constraints = static_cast<std::int32_t>(m);
        view_.dim = static_cast<std::int32_t>(d);
        view_.coef = coef_.data();
        view_.sense = sense_.data();
        view_.lo = lo_.data();
        view_.hi = hi_.data();
    }
    const parallel::LinearConstraintsView<T>& view() const { return view_; }
    const viability::ConstraintSet<T>& set() const { return *set_; }

private:
    const viability::ConstraintSet<T>* set_;
    std::vector<T> coef_, lo_, hi_;
    std::vector<std::int32_t> sense_;
    parallel::LinearConstraintsView<T> view_{};
};

static_assert(static_cast<int>(viability::Sense::ge) == static_cast<int>(parallel::ConstraintSense::ge) &&
                  static_cast<int>(viability::Sense::gt) == static_cast<int>(parallel::ConstraintSense::gt) &&
                  static_cast<int>(viability::Sense::le) == static_cast<int>(parallel::ConstraintSense::le) &&
                  static_cast<int>(viability::Sense::lt) == static_cast<int>(parallel::ConstraintSense::lt) &&
                  static_cast<int>(viability::Sense::interval) == static_cast<int>(parallel::ConstraintSense::interval),
              "parallel::ConstraintSense must follow viability::Sense");

/// Statistics of one candidate action over its K rollouts.
template <class T>
struct CandidateStats {
    T probability = T(0);         ///< P_hat: safe rollouts / K
    T mean_survival = T(0);       ///< mean over rollouts of the first violated step (h if safe)
    T mean_min_margin = T(0);     ///< mean over rollouts of the smallest margin up to the first violation
    T distance = T(0);            ///< ||a' - a||_2 to the proposed action
    std::int32_t binding = -1;    ///< see RolloutShield
};

/// Counters for metrics (shield trigger rate = projections / decisions).
struct ShieldCounters {
    std::uint64_t decisions = 0;    ///< project() calls
    std::uint64_t projections = 0;  ///< decisions whose check failed (a projection was searched)
    std::uint64_t infeasible = 0;   ///< projections that found no action reaching alpha
    /// Decisions that gave up at least one constraint (relax_unavoidable). Not in visit_state
    /// (checkpoints written before it existed must still load): 0 again after a load.
    std::uint64_t relaxed = 0;
    std::uint64_t checks = 0;       ///< candidate actions evaluated (K rollouts each)
};

/// The rollout shield. Models persist::Shield and persist::Stateful.
/// @tparam T          float or double
/// @tparam Model      rollout model view: parallel::EnsembleRolloutModel<T> (learned ensemble) or
///                    parallel::GridLifeRolloutModel<T> (known dynamics), or any type with the
///                    same members (docs/shield.md, "Writing a model")
/// @tparam Viability  parallel::LinearConstraintsView<T> (exact constraints) or
///                    parallel::MarginNetworkView<T> (learned margin)
/// @tparam Kinematics parallel::HoldObservation<T> or parallel::GridLifePatchKinematics<T>
///
/// The binding constraint of a decision: the constraint violated first most often among the
/// returned action's unsafe rollouts (ties: lower index), or, when none is unsafe, the
/// constraint with the smallest margin seen.
template <class T, class Model, class Viability = parallel::LinearConstraintsView<T>,
          class Kinematics = parallel::HoldObservation<T>>
class RolloutShield {
    static_assert(Real<T>, "persist::shield::RolloutShield<T, ...>: T must be float or double");
    static_assert(std::is_same_v<typename Model::scalar_type, T> && std::is_same_v<typename Viability::scalar_type, T> &&
                      std::is_same_v<typename Kinematics::scalar_type, T>,
                  "persist::shield::RolloutShield: Model, Viability and Kinematics must use the shield's scalar T");
    static_assert(std::is_trivially_copyable_v<Model> && std::is_trivially_copyable_v<Viability> &&
                      std::is_trivially_copyable_v<Kinematics>,
                  "persist::shield::RolloutShield: Model, Viability and Kinematics must be plain views "
                  "(trivially copyable) so rollout kernels can capture them by value (docs/shield.md)");
    static constexpr bool exact_constraints = std::is_same_v<Viability, parallel::LinearConstraintsView<T>>;
    static constexpr bool has_vjp = requires(const Model& m, const Viability& v) {
        m.vjp_scratch_size();
        v.vjp_scratch_size();
    };

public:
    using scalar_type = T;
    using model_type = Model;
    using viability_type = Viability;
    using kinematics_type = Kinematics;

    /// @param low, high  the action box (finite, low < high), e.g. env.action_low() / action_high()
    RolloutShield(const Model& model, const Viability& viability, const Kinematics& kinematics, Vec<T> low,
                  Vec<T> high, RolloutShieldOptions options = {})
        : model_(model), viab_(viability), kin_(kinematics), low_(std::move(low)), high_(std::move(high)),
          opt_(options) {
        setup();
    }
    /// Exact linear constraints from a ConstraintSet, held by reference and re-read at every
    /// decision (so curriculum changes, ConstraintSet::assign_interpolation, apply at once).
    RolloutShield(const Model& model, const viability::ConstraintSet<T>& constraints, const Kinematics& kinematics,
                  Vec<T> low, Vec<T> high, RolloutShieldOptions options = {})
        requires std::is_same_v<Viability, parallel::LinearConstraintsView<T>>
        : model_(model), kin_(kinematics), low_(std::move(low)), high_(std::move(high)), opt_(options),
          constraints_(std::in_place, constraints) {
        if constexpr (exact_constraints) viab_ = constraints_->view();
        setup();
    }
    RolloutShield(const RolloutShield& o)
        : model_(o.model_), viab_(o.viab_), kin_(o.kin_), low_(o.low_), high_(o.high_), opt_(o.opt_),
          constraints_(o.constraints_), counters_(o.counters_), calls_(o.calls_) {
        if constexpr (exact_constraints) {
            if (constraints_) constraints_->sync(), viab_ = constraints_->view();
        }
        setup();
    }
    /// Assignment copies what the copy constructor copies and rebuilds the scratch buffers
    /// (moves copy too: nothing here is worth stealing once the views are re-pointed).
    RolloutShield& operator=(const RolloutShield& o) {
        if (this == &o) return *this;
        model_ = o.model_;
        viab_ = o.viab_;
        kin_ = o.kin_;
        low_ = o.low_;
        high_ = o.high_;
        opt_ = o.opt_;
        constraints_ = o.constraints_;
        counters_ = o.counters_;
        calls_ = o.calls_;
        if constexpr (exact_constraints) {
            if (constraints_) constraints_->sync(), viab_ = constraints_->view();
        }
        setup();
        return *this;
    }

    // --- the Shield contract -------------------------------------------------------------
    /// Check `a` (P_hat(a) >= alpha: a_safe = a) or project it (docs/shield.md). Never
    /// allocates. Throws ShapeError for wrong sizes, persist::Error for a non-finite input or
    /// an action outside the box.
    ShieldDecision<T> project(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x, VecRef<T> a_safe) {
        check_inputs(a, o, x, "RolloutShield::project");
        if (a_safe.size() != A_) persist::detail::throw_shape("RolloutShield::project: a_safe", A_, 1, a_safe.size(), 1);
        sync();
        ++counters_.decisions;
        const std::uint64_t call = calls_++;
        for (Index i = 0; i < A_; ++i) act_(i, 0) = a[i];
        evaluate(1, 0, call, o.data(), x.data(), a.data());
        ShieldDecision<T> d;
        if (stats_[0].probability >= alpha_) {
            a_safe = a;
            d.projected = false;
            d.feasible = true;
            d.probability = stats_[0].probability;
            d.distance = T(0);
            d.binding_constraint = stats_[0].binding;
            return d;
        }
        ++counters_.projections;
        best_ = stats_[0];
        best_a_ = a;
        if (opt_.projection == Projection::gradient) project_gradient(a, o, x, call);
        else project_cem(a, o, x, call);
        bool feasible = best_.probability >= alpha_;
        if (!feasible) ++counters_.infeasible;
        if (!feasible && opt_.relax_unavoidable) {
            const std::uint32_t before = viab_.ignore;
            std::uint32_t mask = 0;
            std::int32_t left = viab_.count();
            while (!feasible && left > 0 && best_.binding >= 0 && best_.binding < 32 &&
                   !((mask >> best_.binding) & 1u)) {
                mask |= 1u << best_.binding;
                --left;
                viab_.ignore = before | mask;
                for (Index i = 0; i < A_; ++i) act_(i, 0) = a[i];
                evaluate(1, 0, call, o.data(), x.data(), a.data());  // the proposal, relaxed
                best_ = stats_[0];
                best_a_ = a;
                if (best_.probability < alpha_) {
                    if (opt_.projection == Projection::gradient) project_gradient(a, o, x, call);
                    else project_cem(a, o, x, call);
                }
                feasible = best_.probability >= alpha_;
            }
            viab_.ignore = before;
            d.relaxed = mask;
            if (mask) ++counters_.relaxed;
        }
        a_safe = best_a_;
        d.projected = best_.distance > T(0);
        d.feasible = feasible && std::popcount(d.relaxed) < viab_.count();  // nothing enforced: not feasible
        d.probability = best_.probability;
        d.distance = best_.distance;
        d.binding_constraint = best_.binding;
        return d;
    }

    /// One predictive check: P_hat(a) from K rollouts (its own noise key; counts as a call).
    T probability(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x) {
        check_inputs(a, o, x, "RolloutShield::probability");
        sync();
        const std::uint64_t call = calls_++;
        for (Index i = 0; i < A_; ++i) act_(i, 0) = a[i];
        evaluate(1, 0, call, o.data(), x.data(), a.data());
        return stats_[0].probability;
    }

    /// Evaluate the columns of `actions` (A x C, C <= max(population, 1)) as one batch under
    /// one call key; fills `stats` (C). For tests and benchmarks; `states`, if non-null, gets
    /// every rollout's state after every step (C K x h x X, see parallel::RolloutBatch).
    void evaluate_candidates(MatCRef<T> actions, VecCRef<T> o, VecCRef<T> x, std::vector<CandidateStats<T>>& stats,
                             T* states = nullptr) {
        if (actions.rows() != A_ || actions.cols() < 1 || actions.cols() > cap_)
            persist::detail::throw_shape("RolloutShield::evaluate_candidates: actions", A_, cap_, actions.rows(),
                                         actions.cols());
        check_inputs(actions.col(0), o, x, "RolloutShield::evaluate_candidates");
        sync();
        const auto C = static_cast<std::int32_t>(actions.cols());
        act_.leftCols(C) = actions;
        evaluate(C, 0, calls_++, o.data(), x.data(), actions.col(0).data(), states);
        stats.assign(stats_.begin(), stats_.begin() + C);
    }

    // --- views and settings ---------------------------------------------------------------
    void set_model(const Model& m) {
        model_ = m;
        setup();
    }
    void set_viability(const Viability& v)
        requires(!std::is_same_v<Viability, parallel::LinearConstraintsView<T>>)
    {
        viab_ = v;
        setup();
    }
    void set_kinematics(const Kinematics& k) { kin_ = k; }
    /// Exact constraints: hold `constraints` (by reference, as the constructor does) instead of
    /// the set held so far, e.g. after the owner of the set was copied or moved. Allocates.
    void set_constraints(const viability::ConstraintSet<T>& constraints)
        requires std::is_same_v<Viability, parallel::LinearConstraintsView<T>>
    {
        constraints_.emplace(constraints);
        viab_ = constraints_->view();
        setup();
    }
    /// Switch the executor (all backends give the same decisions).
    void set_backend(parallel::Backend b) {
        opt_.backend = b;
        opt_.validate();
    }
    const Model& model() const { return model_; }
    const Viability& viability() const { return viab_; }
    const Kinematics& kinematics() const { return kin_; }
    const RolloutShieldOptions& options() const { return opt_; }
    const ShieldCounters& counters() const { return counters_; }
    void reset_counters() { counters_ = ShieldCounters{}; }
    T alpha() const { return alpha_; }
    const Vec<T>& action_low() const { return low_; }
    const Vec<T>& action_high() const { return high_; }
    /// Number of calls so far (the noise key of the next one).
    std::uint64_t calls() const { return calls_; }

    /// Counters and the call counter (the noise key): restoring them resumes bitwise.
    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("calls", &calls_, {}));
        v(state_tensor("decisions", &counters_.decisions, {}));
        v(state_tensor("projections", &counters_.projections, {}));
        v(state_tensor("infeasible", &counters_.infeasible, {}));
        v(state_tensor("checks", &counters_.checks, {}));
    }

private:
    void setup() {
        opt_.validate();
        X_ = model_.internal_dim();
        A_ = model_.action_dim();
        if (model_.members() < 1 || model_.members() > parallel::max_view_members)
            throw ConfigError("RolloutShield: the model has " + std::to_string(model_.members()) +
                              " members, expected 1 .. " + std::to_string(parallel::max_view_members));
        if (X_ < 1 || A_ < 1)
            throw ShapeError("RolloutShield: the model has internal_dim " + std::to_string(X_) + " and action_dim " +
                             std::to_string(A_) + ", expected both >= 1");
        if (low_.size() != A_ || high_.size() != A_)
            persist::detail::throw_shape("RolloutShield: action box low / high", A_, 1,
                                         low_.size() != A_ ? low_.size() : high_.size(), 1);
        for (Index i = 0; i < A_; ++i)
            if (!(std::isfinite(double(low_[i])) && std::isfinite(double(high_[i])) && low_[i] < high_[i]))
                throw ConfigError("RolloutShield: action box [" + std::to_string(double(low_[i])) + ", " +
                                  std::to_string(double(high_[i])) + "] of component " + std::to_string(i) +
                                  ": expected finite low < high");
        if constexpr (std::is_same_v<Viability, parallel::LinearConstraintsView<T>>) {
            if (viab_.dim != X_)
                throw ShapeError("RolloutShield: the constraints are over " + std::to_string(viab_.dim) +
                                 " variables, the model's internal state has " + std::to_string(X_));
        }
        if constexpr (std::is_same_v<Viability, parallel::MarginNetworkView<T>>) {
            if (viab_.dim() != X_)
                throw ShapeError("RolloutShield: the margin network takes " + std::to_string(viab_.dim()) +
                                 " inputs, the model's internal state has " + std::to_string(X_));
        }
        if (opt_.projection == Projection::gradient && !has_vjp)
            throw ConfigError("RolloutShield: projection = gradient needs step_vjp / margins_vjp on the model and "
                              "the viability view (docs/shield.md)");
        obs_needed_ = std::max(model_.observation_dim(), kin_.observation_dim());
        alpha_ = static_cast<T>(opt_.conf);
        K_ = opt_.num_rollouts;
        h_ = opt_.horizon;
        cap_ = std::max<std::int32_t>(opt_.cem_population, 1);
        const std::int64_t n = std::int64_t(cap_) * K_;
        stride_ = parallel::rollout_scratch_size(model_, viab_);
        scratch_.assign(static_cast<std::size_t>(n * stride_ + 1), T(0));
        outcomes_.assign(static_cast<std::size_t>(n), parallel::RolloutOutcome<T>{});
        act_.setZero(A_, cap_);
        stats_.assign(static_cast<std::size_t>(cap_), CandidateStats<T>{});
        order_.assign(static_cast<std::size_t>(cap_), 0);
        counts_.assign(static_cast<std::size_t>(std::max<std::int32_t>(viab_.count(), 1)), 0);
        mean_.setZero(A_);
        std_.setZero(A_);
        tmp_mean_.setZero(A_);
        tmp_std_.setZero(A_);
        best_a_.setZero(A_);
        runner_.reserve(model_, viab_, n);
        if constexpr (has_vjp) {
            const std::int32_t M = model_.members(), nc = viab_.count();
            traj_.assign(static_cast<std::size_t>(M * (h_ + 1) * X_), T(0));
            kst_.assign(static_cast<std::size_t>(M * (h_ + 1)), typename Kinematics::State{});
            marg_.assign(static_cast<std::size_t>(std::max(M * h_ * nc, 1)), T(0));
            vjp_scratch_.assign(static_cast<std::size_t>(
                                    std::max({model_.vjp_scratch_size(), viab_.vjp_scratch_size(),
                                              model_.scratch_size() + viab_.scratch_size(), 1})),
                                T(0));
            gx_.setZero(X_);
            gx_prev_.setZero(X_);
            ga_.setZero(A_);
            ga_total_.setZero(A_);
            ag_.setZero(A_);
            sf_a_.setZero(A_);
            trial_.setZero(A_);
        }
    }

    void sync() {
        if constexpr (exact_constraints) {
            if (constraints_) {
                const auto before = constraints_->view().num_constraints;
                constraints_->sync();
                viab_ = constraints_->view();
                if (viab_.num_constraints != before) setup();  // structure changed (allocates once)
            }
        }
    }

    void check_inputs(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x, const char* where) const {
        if (a.size() != A_) persist::detail::throw_shape(std::string(where) + ": a", A_, 1, a.size(), 1);
        if (x.size() != X_) persist::detail::throw_shape(std::string(where) + ": x", X_, 1, x.size(), 1);
        if (o.size() < obs_needed_)
            throw ShapeError(std::string(where) + ": o has " + std::to_string(o.size()) +
                             " entries, the model / kinematics read " + std::to_string(obs_needed_));
        for (Index i = 0; i < A_; ++i) {
            if (!std::isfinite(double(a[i])))
                throw Error(std::string(where) + ": a[" + std::to_string(i) + "] = " + std::to_string(double(a[i])) +
                            " is not finite");
            if (a[i] < low_[i] || a[i] > high_[i])
                throw Error(std::string(where) + ": a[" + std::to_string(i) + "] = " + std::to_string(double(a[i])) +
                            " is outside the action box [" + std::to_string(double(low_[i])) + ", " +
                            std::to_string(double(high_[i])) + "]");
        }
        for (Index i = 0; i < X_; ++i)
            if (!std::isfinite(double(x[i])))
                throw Error(std::string(where) + ": x[" + std::to_string(i) + "] = " + std::to_string(double(x[i])) +
                            " is not finite");
        for (Index i = 0; i < o.size(); ++i)
            if (!std::isfinite(double(o[i])))
                throw Error(std::string(where) + ": o[" + std::to_string(i) + "] = " + std::to_string(double(o[i])) +
                            " is not finite");
    }

    /// Rollouts of the first C columns of act_ under (call, candidate_base); fills stats_[0..C).
    void evaluate(std::int32_t C, std::uint32_t candidate_base, std::uint64_t call, const T* o, const T* x,
                  const T* a_ref, T* states = nullptr) {
        parallel::RolloutBatch<T> b;
        b.x0 = x;
        b.o = o;
        b.actions = act_.data();
        b.candidates = C;
        b.rollouts = K_;
        b.horizon = h_;
        b.seed = opt_.seed;
        b.call = call;
        b.candidate_base = candidate_base;
        b.outcomes = outcomes_.data();
        b.states = states;
        if (opt_.backend == parallel::Backend::eigen) {
            runner_.run(model_, viab_, kin_, b);
        } else {
            const parallel::RolloutKernel<T, Model, Viability, Kinematics> kernel{model_, viab_, kin_, b,
                                                                                   scratch_.data(), stride_};
            parallel::run_thrust(opt_.backend, kernel, b.size());
        }
        counters_.checks += static_cast<std::uint64_t>(C);
        for (std::int32_t c = 0; c < C; ++c) summarize(c, a_ref);
    }

    void summarize(std::int32_t c, const T* a_ref) {
        CandidateStats<T>& s = stats_[static_cast<std::size_t>(c)];
        const parallel::RolloutOutcome<T>* out = outcomes_.data() + std::int64_t(c) * K_;
        std::int32_t safe = 0;
        T surv = T(0), marg = T(0);
        std::fill(counts_.begin(), counts_.end(), 0);
        T smallest = std::numeric_limits<T>::infinity();
        std::int32_t smallest_k = -1;
        for (std::int32_t k = 0; k < K_; ++k) {
            const auto& r = out[k];
            if (r.safe(h_)) ++safe;
            else if (r.violated_constraint >= 0) ++counts_[static_cast<std::size_t>(r.violated_constraint)];
            surv += T(r.first_violation);
            marg += r.min_margin;
            if (r.min_constraint >= 0 && (smallest_k < 0 || r.min_margin < smallest)) {
                smallest = r.min_margin;
                smallest_k = r.min_constraint;
            }
        }
        s.probability = T(safe) / T(K_);
        s.mean_survival = surv / T(K_);
        s.mean_min_margin = marg / T(K_);
        T d2 = T(0);
        for (Index i = 0; i < A_; ++i) {
            const T d = act_(i, c) - a_ref[i];
            d2 += d * d;
        }
        s.distance = std::sqrt(d2);
        if (safe < K_) {
            std::int32_t best = -1;
            for (std::size_t k = 0; k < counts_.size(); ++k)
                if (counts_[k] > 0 && (best < 0 || counts_[k] > counts_[static_cast<std::size_t>(best)]))
                    best = static_cast<std::int32_t>(k);
            s.binding = best;
        } else {
            s.binding = smallest_k;
        }
    }

    /// Strict weak order "i is a better projection than j": feasible (P >= alpha) before
    /// infeasible; feasible by distance; infeasible by P, then mean survival, then mean margin
    /// (the safest), then distance.
    bool better(const CandidateStats<T>& i, const CandidateStats<T>& j) const {
        const bool fi = i.probability >= alpha_, fj = j.probability >= alpha_;
        if (fi != fj) return fi;
        if (fi) return i.distance < j.distance;
        if (i.probability != j.probability) return i.probability > j.probability;
        if (i.mean_survival != j.mean_survival) return i.mean_survival > j.mean_survival;
        if (i.mean_min_margin != j.mean_min_margin) return i.mean_min_margin > j.mean_min_margin;
        return i.distance < j.distance;
    }

    /// CEM (Rubinstein 1999) over the box: sample N(mean, std^2) clipped to [low, high], rank by
    /// `better`, refit std to the elites and the mean to the elites' mean, or to the nearest
    /// feasible action found so far once there is one (elitist), with momentum; keep the best
    /// candidate seen.
    void project_cem(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x, std::uint64_t call) {
        const std::int32_t N = opt_.cem_population, E = opt_.cem_elites;
        Rng rng = Rng(opt_.seed, call).fork(0xCE11u);
        mean_ = a;
        std_.setConstant(static_cast<T>(opt_.cem_init_std));
        const T mom = static_cast<T>(opt_.cem_momentum);
        const auto n_uniform = static_cast<std::int32_t>(std::floor(opt_.cem_uniform_fraction * N));
        for (std::int32_t it = 0; it < opt_.cem_iterations; ++it) {
            for (std::int32_t j = 0; j < N; ++j)
                for (Index i = 0; i < A_; ++i) {
                    const T v = mean_[i] + std_[i] * rng.template normal<T>();
                    act_(i, j) = std::clamp(v, low_[i], high_[i]);
                }
            if (it == 0) {
                // Exploration: the last n_uniform candidates uniform over the box, the first the centre.
                for (std::int32_t j = N - n_uniform; j < N; ++j)
                    for (Index i = 0; i < A_; ++i) act_(i, j) = rng.template uniform<T>(low_[i], high_[i]);
                if (opt_.cem_include_centre) act_.col(0) = (low_ + high_) * T(0.5);
            }
            evaluate(N, static_cast<std::uint32_t>(1 + it * N), call, o.data(), x.data(), a.data());
            for (std::int32_t j = 0; j < N; ++j) order_[static_cast<std::size_t>(j)] = j;
            std::partial_sort(order_.begin(), order_.begin() + E, order_.begin() + N,
                              [this](std::int32_t p, std::int32_t q) {
                                  const auto &sp = stats_[static_cast<std::size_t>(p)], &sq = stats_[static_cast<std::size_t>(q)];
                                  if (better(sp, sq)) return true;
                                  if (better(sq, sp)) return false;
                                  return p < q;
                              });
            const std::int32_t top = order_[0];
            if (better(stats_[static_cast<std::size_t>(top)], best_)) {
                best_ = stats_[static_cast<std::size_t>(top)];
                best_a_ = act_.col(top);
            }
            tmp_mean_.setZero();
            for (std::int32_t e = 0; e < E; ++e) tmp_mean_ += act_.col(order_[static_cast<std::size_t>(e)]);
            tmp_mean_ /= T(E);
            tmp_std_.setZero();
            for (std::int32_t e = 0; e < E; ++e)
                tmp_std_.array() += (act_.col(order_[static_cast<std::size_t>(e)]) - tmp_mean_).array().square();
            tmp_std_ = (tmp_std_ / T(E)).cwiseSqrt();
            // Elitist: once a feasible action is known, search around the nearest one found
            // (the elite mean of a curved feasible set lies inside it, away from the optimum).
            if (best_.probability >= alpha_) tmp_mean_ = best_a_;
            mean_ = mom * mean_ + (T(1) - mom) * tmp_mean_;
            std_ = mom * std_ + (T(1) - mom) * tmp_std_;
        }
    }

    /// Gradient projection (augmented Lagrangian): minimise 1/2 ||a' - a||^2 +
    /// rho/2 max(0, delta + s - d(a'))^2 by Gauss-Newton steps (length <= grad_step_size)
    /// projected on the box, where S = softmin_tau of every margin along the M members' mean
    /// rollouts and d = S / ||dS/da'|| its first-order distance to the boundary in action units
    /// (so rho and delta do not depend on the margins' units). Each round ends with a
    /// predictive check of the nearest iterate with d >= delta + s (else the last one); if it
    /// fails, the shift s (= lambda / rho) grows by the violation the round ended with.
    void project_gradient(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x, std::uint64_t call) {
        if constexpr (has_vjp) {
            ag_ = a;
            const T rho = static_cast<T>(opt_.grad_penalty);
            const T delta0 = static_cast<T>(opt_.grad_margin_target), lr = static_cast<T>(opt_.grad_step_size);
            T shift = T(0);  // lambda / rho of the augmented Lagrangian
            T last_d = T(0);
            for (std::int32_t round = 0; round < opt_.grad_rounds; ++round) {
                const T delta = delta0 + shift;
                // The nearest iterate of this round that the surrogate deems safe (d >= delta).
                T sf_dist = std::numeric_limits<T>::infinity();
                for (std::int32_t it = 0; it <= opt_.grad_steps; ++it) {
                    const T S = surrogate(ag_, o.data(), x.data(), &ga_total_);
                    const T gn = ga_total_.norm();
                    const T dist = gn > T(0) ? S / gn : (S >= T(0) ? std::numeric_limits<T>::infinity() : -std::numeric_limits<T>::infinity());
                    const T viol = std::max(T(0), delta - dist);
                    last_d = dist;
                    if (dist >= delta0 && (ag_ - a).norm() < sf_dist) {
                        sf_dist = (ag_ - a).norm();
                        sf_a_ = ag_;
                    }
                    if (it == opt_.grad_steps) break;  // the last iterate was only scored
                    ga_ = ag_ - a;  // gradient of the objective
                    if (viol > T(0) && gn > T(0)) {
                        // Gauss-Newton step on 1/2 ||a' - a||^2 + rho/2 viol^2 with the unit
                        // normal u = dS/da' / ||dS/da'||: H = I + rho u u^T, g = (a' - a) - rho viol u,
                        // step = -H^-1 g = -(g - rho / (1 + rho) u (u.g)) (Sherman-Morrison).
                        ga_total_ /= gn;
                        ga_ -= (rho * viol) * ga_total_;
                        ga_ -= (rho / (T(1) + rho) * ga_total_.dot(ga_)) * ga_total_;
                    } else if (gn > T(0)) {
                        // Surrogate-safe side: the tangential part of the step towards a in
                        // full, the outward normal part at most the slack d - delta (to first
                        // order the step stays safe).
                        ga_total_ /= gn;
                        const T gu = ga_total_.dot(ga_);
                        if (gu > T(0)) ga_ -= (gu - std::min(gu, dist - delta)) * ga_total_;
                    }
                    const T n = ga_.norm();
                    if (!(n > T(0)) || !std::isfinite(double(n))) break;
                    ga_ *= std::min(lr, n) / n;  // step length <= lr
                    // Backtracking on the merit 1/2 ||a' - a||^2 + rho/2 viol^2 (d rescaled by the
                    // current ||dS/da'||): Gauss-Newton ignores the curvature of the margins.
                    const T phi0 = T(0.5) * (ag_ - a).squaredNorm() + T(0.5) * rho * viol * viol;
                    for (int bt = 0; bt < 10; ++bt) {
                        trial_ = ag_ - ga_;
                        for (Index i = 0; i < A_; ++i) trial_[i] = std::clamp(trial_[i], low_[i], high_[i]);
                        if (!(gn > T(0))) break;
                        const T vt = std::max(T(0), delta - surrogate(trial_, o.data(), x.data(), nullptr) / gn);
                        if (T(0.5) * (trial_ - a).squaredNorm() + T(0.5) * rho * vt * vt <= phi0) break;
                        ga_ *= T(0.5);
                    }
                    ag_ = trial_;
                }
                act_.col(0) = sf_dist < std::numeric_limits<T>::infinity() ? sf_a_ : ag_;
                evaluate(1, static_cast<std::uint32_t>(1 + round), call, o.data(), x.data(), a.data());
                if (better(stats_[0], best_)) {
                    best_ = stats_[0];
                    best_a_ = act_.col(0);
                }
                if (best_.probability >= alpha_) break;
                // Multiplier update (Hestenes 1969, Powell 1969) in shift form: the next round
                // aims past the target by the violation this round ended with.
                shift += std::max(T(0), delta0 - last_d);
            }
        }
    }

    /// S(a') = -tau log sum exp(-m / tau) over members, steps and constraints of the mean
    /// rollouts (eps = 0); if `grad` is non-null, dS/da' into it.
    T surrogate(const Vec<T>& ap, const T* o, const T* x, Vec<T>* grad) {
        const std::int32_t M = model_.members(), nc = viab_.count();
        const T tau = static_cast<T>(opt_.grad_temperature);
        T* sc = vjp_scratch_.data();
        T mmin = std::numeric_limits<T>::infinity();
        for (std::int32_t m = 0; m < M; ++m) {
            T* xs = traj_.data() + std::int64_t(m) * (h_ + 1) * X_;
            auto* ks = kst_.data() + std::int64_t(m) * (h_ + 1);
            for (std::int32_t i = 0; i < X_; ++i) xs[i] = x[i];
            kin_.init(o, ks[0]);
            for (std::int32_t s = 0; s < h_; ++s) {
                const parallel::ObsAccessor<T, Kinematics> obs{&kin_, o, &ks[s], xs + s * X_};
                model_.step(m, xs + s * X_, ap.data(), obs, nullptr, xs + (s + 1) * X_, sc);
                ks[s + 1] = ks[s];
                kin_.advance(o, ks[s + 1], ap.data());
                T* mg = marg_.data() + (std::int64_t(m) * h_ + s) * nc;
                viab_.margins(xs + (s + 1) * X_, mg, sc + model_.scratch_size());
                for (std::int32_t k = 0; k < nc; ++k) mmin = std::min(mmin, mg[k]);
            }
        }
        if (nc == 0) {
            if (grad) grad->setZero();
            return std::numeric_limits<T>::infinity();
        }
        T Z = T(0);
        const std::int64_t total = std::int64_t(M) * h_ * nc;
        for (std::int64_t q = 0; q < total; ++q) {
            marg_[static_cast<std::size_t>(q)] = std::exp(-(marg_[static_cast<std::size_t>(q)] - mmin) / tau);
            Z += marg_[static_cast<std::size_t>(q)];
        }
        const T S = mmin - tau * std::log(Z);
        if (!grad) return S;
        for (std::int64_t q = 0; q < total; ++q) marg_[static_cast<std::size_t>(q)] /= Z;  // weights dS/dm
        grad->setZero();
        for (std::int32_t m = 0; m < M; ++m) {
            const T* xs = traj_.data() + std::int64_t(m) * (h_ + 1) * X_;
            const auto* ks = kst_.data() + std::int64_t(m) * (h_ + 1);
            gx_.setZero();
            for (std::int32_t s = h_ - 1; s >= 0; --s) {
                const T* w = marg_.data() + (std::int64_t(m) * h_ + s) * nc;
                viab_.margins_vjp(xs + (s + 1) * X_, w, gx_.data(), sc);
                gx_prev_.setZero();
                const parallel::ObsAccessor<T, Kinematics> obs{&kin_, o, &ks[s], xs + s * X_};
                model_.step_vjp(m, xs + s * X_, ap.data(), obs, gx_.data(), gx_prev_.data(), grad->data(), sc);
                gx_.swap(gx_prev_);
            }
        }
        return S;
    }

    Model model_;
    Viability viab_{};
    Kinematics kin_;
    Vec<T> low_, high_;
    RolloutShieldOptions opt_;
    std::optional<LinearConstraints<T>> constraints_;
    ShieldCounters counters_{};
    std::uint64_t calls_ = 0;

    Index X_ = 0, A_ = 0;
    std::int32_t K_ = 0, h_ = 0, cap_ = 0, stride_ = 0;
    Index obs_needed_ = 0;
    T alpha_ = T(1);
    std::vector<T> scratch_;
    std::vector<parallel::RolloutOutcome<T>> outcomes_;
    Mat<T> act_;
    std::vector<CandidateStats<T>> stats_;
    std::vector<std::int32_t> order_;
    std::vector<std::int32_t> counts_;
    Vec<T> mean_, std_, tmp_mean_, tmp_std_, best_a_;
    CandidateStats<T> best_{};
    parallel::EigenRolloutRunner<T, Model, Viability, Kinematics> runner_;
    // gradient projection
    std::vector<T> traj_, marg_, vjp_scratch_;
    std::vector<typename Kinematics::State> kst_;
    Vec<T> gx_, gx_prev_, ga_, ga_total_, ag_, sf_a_, trial_;
};

}  // namespace persist::shield
