#pragma once
/// @file amortized_shield.hpp
/// The amortized safety shield (seed "Change 3"): a safety network g_phi learns the map
/// (s, a) -> a' that a search shield computes by optimisation, from the (a, a_safe) pairs the
/// search produces; after a switch point one forward pass plus ONE predictive check replaces
/// the search, which stays as the fallback whenever the check fails. docs/amortized_shield.md
/// has the equations, every option with its default and an example.
///
/// Decision in amortized mode (alpha = confidence target):
///   1. [precheck] p = Pr(a);  p >= alpha -> return a unchanged (no network).
///   2. a' = g_phi(s, a);  p' = Pr(a');  p' >= alpha -> return a'.
///   3. otherwise -> search.project(a) (a "fallback"; its pair is stored for training).
/// Output parameterisation ("box residual", always inside [low, high], identity at z = 0):
///   t = tanh(z),  a'_i = a_i + t_i (high_i - a_i)   if z_i >= 0,
///                 a'_i = a_i + t_i (a_i - low_i)    if z_i <  0,
/// where z = MLP([s; (a - mid) / half]). Training minimises the MSE (1/B) sum_j ||a'_j - y_j||^2
/// against the search's a_safe by Adam.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
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
#include "persist/nn/init.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/optim/adam.hpp"

namespace persist::shield {

/// A search shield that can also score ONE candidate action: `probability(a, o, x)` estimates
/// Pr(x_{t+1:t+h} stays viable) when `a` is held for the horizon. This is what lets an
/// amortized shield verify a network's proposal with one cheap check instead of a search.
template <class S>
concept ProbabilisticShield =
    Shield<S> && requires(S& s, VecCRef<scalar_of<S>> a, VecCRef<scalar_of<S>> o,
                          VecCRef<scalar_of<S>> x) {
        { s.probability(a, o, x) } -> std::convertible_to<scalar_of<S>>;
    };

/// Options of AmortizedShield. The first five are config `safety_network:` (persist_config.hpp,
/// same defaults; `amortized_options_from` copies them); the rest are this shield's own.
struct AmortizedShieldOptions {
    std::vector<Index> hidden{256, 256};     ///< hidden widths of g_phi (ReLU MLP), each >= 1
    double lr = 1e-3;                        ///< Adam learning rate, (0, 10]
    Index batch_size = 256;                  ///< training minibatch, >= 1
    Index min_samples = 1000;                ///< pairs stored before training / switching, [0, capacity]
    std::int64_t switch_after_steps = 50'000;  ///< decisions in search mode before the switch, >= 0

    /// Confidence target of the checks, (0, 1]. Unset: the search's `alpha()` when it has one
    /// (RolloutShield: its conf), else 0.97 (the seed's conf).
    std::optional<double> alpha{};
    Index capacity = 50'000;             ///< ring of (s, a, a_safe) pairs, >= 1
    double identity_fraction = 0.1;      ///< share of accepted search decisions stored as a -> a, [0, 1]
    Index train_steps_per_decision = 1;  ///< Adam steps after each search-mode decision, >= 0
    Index train_steps_per_fallback = 1;  ///< Adam steps after each fallback, >= 0
    bool precheck = true;                ///< amortized mode checks a itself first
    double projection_tolerance = 1e-4;  ///< |a'_i - a_i| / half_i above this = "projected", >= 0
    bool use_observation = true;         ///< feed (selected) o to g_phi
    std::vector<Index> observation_features{};  ///< indices into o; empty = all of o
    bool use_internal = true;            ///< feed x to g_phi
    double output_gain = 0.01;           ///< Xavier gain of the output layer (near-identity start), > 0
    /// Train g_phi on a + (1 + target_overshoot) (a_safe - a), clipped to the box, instead of
    /// a_safe: a search returns boundary points, a network regresses to their middle and half of
    /// its outputs land just outside; overshooting along the projection puts the targets inside
    /// with a margin. 0 = the search's answer itself. [0, 1]
    double target_overshoot = 0.0;
    std::uint64_t seed = 0;              ///< network init, identity sampling, minibatches
};

/// Copy the `safety_network:` config section (config::SafetyNetworkConfig or anything with the
/// same fields) into AmortizedShieldOptions; the other options keep `base`'s values.
template <class Cfg>
    requires requires(const Cfg& c) {
        c.hidden.begin();
        c.lr;
        c.batch_size;
        c.min_samples;
        c.switch_after_steps;
    }
AmortizedShieldOptions amortized_options_from(const Cfg& c, AmortizedShieldOptions base = {}) {
    base.hidden.assign(c.hidden.begin(), c.hidden.end());
    base.lr = static_cast<double>(c.lr);
    base.batch_size = static_cast<Index>(c.batch_size);
    base.min_samples = static_cast<Index>(c.min_samples);
    base.switch_after_steps = static_cast<std::int64_t>(c.switch_after_steps);
    return base;
}

/// Counters of an AmortizedShield (all checkpointed).
struct AmortizedShieldStats {
    std::int64_t decisions = 0;              ///< project() calls
    std::int64_t search_mode_decisions = 0;  ///< decisions taken in search mode
    std::int64_t precheck_accepts = 0;       ///< amortized mode: a passed the first check, returned as is
    std::int64_t amortized_accepts = 0;      ///< amortized mode: g_phi's a' passed its check
    std::int64_t fallbacks = 0;              ///< amortized mode: a' failed its check -> search.project
    std::int64_t search_calls = 0;           ///< search.project calls (search mode + fallbacks)
    std::int64_t probability_calls = 0;      ///< search.probability calls made by this shield
    std::int64_t pairs_stored = 0;           ///< pairs written to the ring (>= its size)
    std::int64_t train_steps = 0;            ///< Adam steps on g_phi
};

/// Wraps a search shield with a learned, one-pass projection. Models persist::Shield and
/// persist::Stateful.
/// @tparam Search a ProbabilisticShield held by value (owned, checkpointed under "search." when
///         Stateful) or an lvalue reference type `S&` (shared; its owner checkpoints it).
template <class Search>
class AmortizedShield {
public:
    using search_type = std::remove_cvref_t<Search>;
    static_assert(ProbabilisticShield<search_type>,
                  "persist::shield::AmortizedShield<Search>: Search must model "
                  "persist::shield::ProbabilisticShield: a persist::Shield with "
                  "`T probability(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x)` "
                  "(docs/amortized_shield.md)");
    using scalar_type = scalar_of<search_type>;
    using Network = nn::MLP<scalar_type>;
    using Optimizer = optim::Adam<scalar_type>;
    enum class Mode { search, amortized };

private:
    using T = scalar_type;

public:
    /// @param search        the search shield (moved in, or bound when Search is a reference)
    /// @param observation_dim, internal_dim  sizes of o and x passed to project()
    /// @param action_low, action_high  the action box (finite, low < high elementwise)
    AmortizedShield(Search search, Index observation_dim, Index internal_dim, Vec<T> action_low,
                    Vec<T> action_high, AmortizedShieldOptions options = {})
        : search_(std::forward<Search>(search)),
          opt_(validated(std::move(options))),
          no_(observation_dim),
          nx_(internal_dim),
          low_(std::move(action_low)),
          high_(std::move(action_high)),
          feat_(features(opt_, observation_dim)),
          ds_(static_cast<Index>(feat_.size()) + (opt_.use_internal ? internal_dim : 0)),
          na_(check_box(low_, high_)),
          net_(widths(opt_, ds_ + na_, na_)),
          adam_(net_.param_count(), adam_options(opt_)),
          alpha_(alpha_of(search_, opt_)),
          rng_seed_(opt_.seed) {
        if (internal_dim < 0)
            throw ConfigError("AmortizedShield: internal_dim must be >= 0, got " +
                              std::to_string(internal_dim));
        mid_ = (low_ + high_) / T(2);
        half_ = (high_ - low_) / T(2);
        Rng init_rng(opt_.seed, kInitStream);
        net_.init(init_rng, nn::Init::torch_default(), nn::Init::xavier_uniform(opt_.output_gain));

        const Index cap = opt_.capacity, B = opt_.batch_size, in = ds_ + na_;
        ring_s_.setZero(ds_, cap);
        ring_a_.setZero(na_, cap);
        ring_y_.setZero(na_, cap);
        xb_.setZero(in, B);
        ab_.setZero(na_, B);
        yb_.setZero(na_, B);
        pb_.setZero(na_, B);
        gb_.setZero(na_, B);
        x1_.setZero(in, 1);
        a_in_.setZero(na_);
        a_prop_.setZero(na_);
        // Warm-up: size every workspace and GEMM packing buffer now, so no decision or training
        // step allocates afterwards.
        net_.forward(x1_, ws1_);
        loss_and_grad(xb_, ab_, yb_, wsb_, pb_, gb_);
        net_.zero_grad();
        rng_ = Rng(rng_seed_, kRunStream);
        rng_key_ = rng_seed_;
    }

    // ------------------------------------------------------------------------------------------
    // Shield
    // ------------------------------------------------------------------------------------------

    /// Filter `a` for the state (o, x) into `a_safe` (see the file comment for the algorithm).
    /// Throws ShapeError on wrong sizes, persist::Error on non-finite inputs or `a` outside the
    /// action box. In search mode the record is the search's; in amortized mode:
    /// - precheck accept: projected = false, a_safe = a, probability = Pr(a);
    /// - network accept: a_safe = a', probability = Pr(a'), feasible = true,
    ///   binding_constraint = -1 (a single check names none), and projected = true iff the
    ///   precheck ran (a failed it) or max_i |a'_i - a_i| / half_i > projection_tolerance;
    /// - fallback: the search's record.
    ShieldDecision<T> project(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x, VecRef<T> a_safe) {
        check_inputs(a, o, x, a_safe);
        sync_rng();
        a_in_ = a;  // a_safe may alias a
        const Mode m = mode();
        ++stats_.decisions;
        if (m == Mode::search) {
            ++stats_.search_mode_decisions;
            return search_decision(o, x, a_safe, opt_.train_steps_per_decision);
        }
        if (opt_.precheck) {
            const T p = check(a_in_, o, x);
            if (p >= alpha_) {
                ++stats_.precheck_accepts;
                a_safe = a_in_;
                ShieldDecision<T> d;
                d.probability = p;
                return d;
            }
        }
        propose_into(a_in_, o, x);
        const T p = check(a_prop_, o, x);
        if (p >= alpha_) {
            ++stats_.amortized_accepts;
            ShieldDecision<T> d;
            d.projected = opt_.precheck || moved(a_in_, a_prop_);
            d.feasible = true;
            d.probability = p;
            d.distance = (a_prop_ - a_in_).norm();
            a_safe = a_prop_;
            return d;
        }
        ++stats_.fallbacks;
        return search_decision(o, x, a_safe, opt_.train_steps_per_fallback);
    }

    /// The network's proposal a' = g_phi(s, a) alone (no check, no counters); for diagnostics.
    void propose(VecCRef<T> a, VecCRef<T> o, VecCRef<T> x, VecRef<T> a_out) {
        check_inputs(a, o, x, a_out);
        a_in_ = a;
        propose_into(a_in_, o, x);
        a_out = a_prop_;
    }

    // ------------------------------------------------------------------------------------------
    // Training
    // ------------------------------------------------------------------------------------------

    /// One Adam step on a minibatch of batch_size pairs drawn uniformly (with replacement) from
    /// the ring with `rng`; returns the minibatch MSE before the step. Throws persist::Error
    /// when no pair is stored yet.
    T update(Rng& rng) {
        if (size_ == 0)
            throw Error("AmortizedShield::update: no (a, a_safe) pairs stored yet (the ring fills "
                        "from search-mode decisions and fallbacks)");
        const Index B = opt_.batch_size, n = static_cast<Index>(size_);
        for (Index j = 0; j < B; ++j) {
            const auto k = static_cast<Index>(rng.below(static_cast<std::uint64_t>(n)));
            if (ds_ > 0) xb_.col(j).head(ds_) = ring_s_.col(k);
            ab_.col(j) = ring_a_.col(k);
            xb_.col(j).tail(na_) = (ring_a_.col(k) - mid_).cwiseQuotient(half_);
            yb_.col(j) = ring_y_.col(k);
        }
        const T loss = loss_and_grad(xb_, ab_, yb_, wsb_, pb_, gb_);
        adam_.step(net_.params(), net_.grads());
        ++stats_.train_steps;
        last_loss_ = loss;
        return loss;
    }
    /// The agent's training hook, forwarded to the search when it has one (LearnedShield trains
    /// its internal model and V_psi there), so that PersistAgent keeps training the models
    /// behind an AmortizedShield<LearnedShield> exactly as behind the LearnedShield alone.
    /// g_phi itself trains on the search's pairs (project), not here.
    template <class Batch, class Near>
        requires requires(search_type& s, const Batch& b, const Near* n) { s.update(b, n); }
    void update(const Batch& batch, const Near* near) {
        search_.update(batch, near);
    }

    /// update() with the shield's own stream (checkpointed).
    T update() {
        sync_rng();
        const T loss = update(rng_);
        rng_pos_ = rng_.position();
        return loss;
    }

    /// The training loss L = (1/B) sum_j ||a'_j - y_j||^2 for pairs given as columns: s (state
    /// features as fed to g_phi, feature_dim() x B), a (proposed actions), target (a_safe).
    /// Overwrites network().grads() with dL/dphi. Not a hot path (allocates per call); for
    /// gradient checks and diagnostics.
    T loss_and_gradient(MatCRef<T> s, MatCRef<T> a, MatCRef<T> target) {
        const Index B = a.cols();
        if (s.rows() != ds_ || s.cols() != B)
            persist::detail::throw_shape("AmortizedShield::loss_and_gradient: s", static_cast<long>(ds_),
                                         static_cast<long>(B), static_cast<long>(s.rows()),
                                         static_cast<long>(s.cols()));
        if (a.rows() != na_ || target.rows() != na_ || target.cols() != B)
            persist::detail::throw_shape("AmortizedShield::loss_and_gradient: a / target",
                                         static_cast<long>(na_), static_cast<long>(B),
                                         static_cast<long>(target.rows()),
                                         static_cast<long>(target.cols()));
        Mat<T> xin(ds_ + na_, B), ab = a, yb = target, pb, gb;
        if (ds_ > 0) xin.topRows(ds_) = s;
        for (Index j = 0; j < B; ++j) xin.col(j).tail(na_) = (a.col(j) - mid_).cwiseQuotient(half_);
        typename Network::Workspace ws;
        return loss_and_grad(xin, ab, yb, ws, pb, gb);
    }

    // ------------------------------------------------------------------------------------------
    // Inspection
    // ------------------------------------------------------------------------------------------

    /// Search until switch_after_steps decisions AND min_samples pairs; amortized from then on
    /// (both counts only grow, so the switch happens once).
    Mode mode() const {
        return (stats_.decisions >= opt_.switch_after_steps && size_ >= opt_.min_samples)
                   ? Mode::amortized
                   : Mode::search;
    }
    const AmortizedShieldStats& stats() const { return stats_; }
    /// The confidence target in use (options().alpha, or the search's).
    T alpha() const { return alpha_; }
    const AmortizedShieldOptions& options() const { return opt_; }
    search_type& search() { return search_; }
    const search_type& search() const { return search_; }
    Network& network() { return net_; }
    const Network& network() const { return net_; }
    Optimizer& optimizer() { return adam_; }
    /// Pairs currently in the ring (<= capacity).
    Index size() const { return static_cast<Index>(size_); }
    /// The ring's proposed actions and training targets (na x size(), ring order; a target is
    /// the search's a_safe, or its overshoot with options().target_overshoot > 0).
    auto stored_actions() const { return ring_a_.leftCols(size()); }
    auto stored_targets() const { return ring_y_.leftCols(size()); }
    Index capacity() const { return opt_.capacity; }
    /// Rows of s fed to g_phi: selected observation features, then x.
    Index feature_dim() const { return ds_; }
    Index observation_dim() const { return no_; }
    Index internal_dim() const { return nx_; }
    Index action_dim() const { return na_; }
    const Vec<T>& action_low() const { return low_; }
    const Vec<T>& action_high() const { return high_; }
    /// MSE of the last training minibatch (NaN before the first step).
    T last_loss() const { return last_loss_; }

    /// Write the features s of (o, x) into `s` (feature_dim() entries).
    void features_of(VecCRef<T> o, VecCRef<T> x, VecRef<T> s) const {
        if (o.size() != no_) shape_error("o", no_, o.size());
        if (x.size() != nx_) shape_error("x", nx_, x.size());
        if (s.size() != ds_)
            persist::detail::throw_shape("AmortizedShield::features_of: s", static_cast<long>(ds_), 1,
                                         static_cast<long>(s.size()), 1);
        write_features(o, x, s.data());
    }

    /// Network, optimizer, ring, counters and RNG stream (and the search's state when owned).
    template <class V>
    void visit_state(V&& v) {
        visit_nested(net_, "net", v);
        visit_nested(adam_, "opt", v);
        const auto cap = static_cast<std::int64_t>(opt_.capacity);
        v(state_tensor("ring.s", ring_s_.data(), {cap, static_cast<std::int64_t>(ds_)}));
        v(state_tensor("ring.a", ring_a_.data(), {cap, static_cast<std::int64_t>(na_)}));
        v(state_tensor("ring.a_safe", ring_y_.data(), {cap, static_cast<std::int64_t>(na_)}));
        v(state_tensor("ring.size", &size_, {}));
        v(state_tensor("ring.head", &head_, {}));
        v(state_tensor("stats.decisions", &stats_.decisions, {}));
        v(state_tensor("stats.search_mode_decisions", &stats_.search_mode_decisions, {}));
        v(state_tensor("stats.precheck_accepts", &stats_.precheck_accepts, {}));
        v(state_tensor("stats.amortized_accepts", &stats_.amortized_accepts, {}));
        v(state_tensor("stats.fallbacks", &stats_.fallbacks, {}));
        v(state_tensor("stats.search_calls", &stats_.search_calls, {}));
        v(state_tensor("stats.probability_calls", &stats_.probability_calls, {}));
        v(state_tensor("stats.pairs_stored", &stats_.pairs_stored, {}));
        v(state_tensor("stats.train_steps", &stats_.train_steps, {}));
        v(state_tensor("last_loss", &last_loss_, {}));
        v(state_tensor("rng_seed", &rng_seed_, {}));
        v(state_tensor("rng_position", &rng_pos_, {}));
        if constexpr (!std::is_reference_v<Search> && Stateful<search_type>)
            visit_nested(search_, "search", v);
    }

private:
    static constexpr std::uint64_t kInitStream = 0xA5A1;
    static constexpr std::uint64_t kRunStream = 0xA5A2;

    // ---- construction helpers ----------------------------------------------------------------

    static void require(bool ok, const char* what, const std::string& got) {
        if (!ok) throw ConfigError(std::string("AmortizedShieldOptions.") + what + ", got " + got);
    }

    static AmortizedShieldOptions validated(AmortizedShieldOptions o) {
        const auto s = [](auto v) { return std::to_string(v); };
        require(!o.hidden.empty(), "hidden must list at least one width", "[]");
        for (std::size_t i = 0; i < o.hidden.size(); ++i)
            require(o.hidden[i] >= 1, ("hidden[" + std::to_string(i) + "] must be >= 1").c_str(),
                    s(o.hidden[i]));
        require(std::isfinite(o.lr) && o.lr > 0 && o.lr <= 10, "lr must be in (0, 10]", s(o.lr));
        require(o.batch_size >= 1, "batch_size must be >= 1", s(o.batch_size));
        require(o.capacity >= 1, "capacity must be >= 1", s(o.capacity));
        require(o.min_samples >= 0 && o.min_samples <= o.capacity,
                "min_samples must be in [0, capacity] (else the switch never happens)",
                s(o.min_samples) + " with capacity " + s(o.capacity));
        require(o.switch_after_steps >= 0, "switch_after_steps must be >= 0", s(o.switch_after_steps));
        if (o.alpha) require(*o.alpha > 0 && *o.alpha <= 1, "alpha must be in (0, 1]", s(*o.alpha));
        require(o.identity_fraction >= 0 && o.identity_fraction <= 1,
                "identity_fraction must be in [0, 1]", s(o.identity_fraction));
        require(o.train_steps_per_decision >= 0, "train_steps_per_decision must be >= 0",
                s(o.train_steps_per_decision));
        require(o.train_steps_per_fallback >= 0, "train_steps_per_fallback must be >= 0",
                s(o.train_steps_per_fallback));
        require(std::isfinite(o.projection_tolerance) && o.projection_tolerance >= 0,
                "projection_tolerance must be finite and >= 0", s(o.projection_tolerance));
        require(std::isfinite(o.output_gain) && o.output_gain > 0, "output_gain must be finite and > 0",
                s(o.output_gain));
        require(o.target_overshoot >= 0 && o.target_overshoot <= 1, "target_overshoot must be in [0, 1]",
                s(o.target_overshoot));
        return o;
    }

    static T alpha_of(const search_type& search, const AmortizedShieldOptions& o) {
        if (o.alpha) return static_cast<T>(*o.alpha);
        if constexpr (requires { { search.alpha() } -> std::convertible_to<T>; }) {
            const T a = static_cast<T>(search.alpha());
            if (!(a > T(0) && a <= T(1)))
                throw ConfigError("AmortizedShield: the search's alpha() must be in (0, 1], got " +
                                  std::to_string(a));
            return a;
        } else {
            return static_cast<T>(0.97);
        }
    }

    static std::vector<Index> features(const AmortizedShieldOptions& o, Index no) {
        if (no < 0)
            throw ConfigError("AmortizedShield: observation_dim must be >= 0, got " + std::to_string(no));
        std::vector<Index> f;
        if (!o.use_observation) {
            if (!o.observation_features.empty())
                throw ConfigError("AmortizedShieldOptions.observation_features must be empty when "
                                  "use_observation is false, got " +
                                  std::to_string(o.observation_features.size()) + " indices");
            return f;
        }
        if (o.observation_features.empty()) {
            for (Index i = 0; i < no; ++i) f.push_back(i);
            return f;
        }
        for (std::size_t k = 0; k < o.observation_features.size(); ++k) {
            const Index i = o.observation_features[k];
            if (i < 0 || i >= no)
                throw ConfigError("AmortizedShieldOptions.observation_features[" + std::to_string(k) +
                                  "] must be in [0, observation_dim = " + std::to_string(no) +
                                  "), got " + std::to_string(i));
            if (std::find(f.begin(), f.end(), i) != f.end())
                throw ConfigError("AmortizedShieldOptions.observation_features[" + std::to_string(k) +
                                  "] repeats index " + std::to_string(i));
            f.push_back(i);
        }
        return f;
    }

    static Index check_box(const Vec<T>& lo, const Vec<T>& hi) {
        if (lo.size() < 1 || lo.size() != hi.size())
            throw ShapeError("AmortizedShield: action_low and action_high must have the same size >= 1, "
                             "got " + std::to_string(lo.size()) + " and " + std::to_string(hi.size()));
        for (Index i = 0; i < lo.size(); ++i)
            if (!(std::isfinite(lo[i]) && std::isfinite(hi[i]) && lo[i] < hi[i]))
                throw ConfigError("AmortizedShield: action box entry " + std::to_string(i) +
                                  " must be finite with low < high, got [" + std::to_string(lo[i]) +
                                  ", " + std::to_string(hi[i]) + "]");
        return lo.size();
    }

    static std::vector<Index> widths(const AmortizedShieldOptions& o, Index in, Index out) {
        std::vector<Index> w{in};
        w.insert(w.end(), o.hidden.begin(), o.hidden.end());
        w.push_back(out);
        return w;
    }

    static typename Optimizer::Options adam_options(const AmortizedShieldOptions& o) {
        typename Optimizer::Options a{};
        a.lr = static_cast<T>(o.lr);
        return a;
    }

    // ---- hot path ----------------------------------------------------------------------------

    void check_inputs(const VecCRef<T>& a, const VecCRef<T>& o, const VecCRef<T>& x,
                      const VecRef<T>& a_out) const {
        if (a.size() != na_) shape_error("a", na_, a.size());
        if (a_out.size() != na_) shape_error("a_safe", na_, a_out.size());
        if (o.size() != no_) shape_error("o", no_, o.size());
        if (x.size() != nx_) shape_error("x", nx_, x.size());
        for (Index i = 0; i < na_; ++i)
            if (!(a[i] >= low_[i] && a[i] <= high_[i])) [[unlikely]]
                throw Error("AmortizedShield::project: a[" + std::to_string(i) + "] = " +
                            std::to_string(a[i]) + " is not inside the action box [" +
                            std::to_string(low_[i]) + ", " + std::to_string(high_[i]) + "]");
        if (!o.allFinite()) [[unlikely]]
            throw Error("AmortizedShield::project: o has a non-finite entry");
        if (!x.allFinite()) [[unlikely]]
            throw Error("AmortizedShield::project: x has a non-finite entry");
    }
    [[noreturn]] static void shape_error(const char* what, Index expected, Index got) {
        persist::detail::throw_shape(std::string("AmortizedShield::project: ") + what,
                                     static_cast<long>(expected), 1, static_cast<long>(got), 1);
    }

    void write_features(const VecCRef<T>& o, const VecCRef<T>& x, T* dst) const {
        Index r = 0;
        for (const Index i : feat_) dst[r++] = o[i];
        if (opt_.use_internal)
            for (Index i = 0; i < nx_; ++i) dst[r++] = x[i];
    }

    /// a_prop_ = g_phi(s, a_in) through the box residual.
    void propose_into(const Vec<T>& a, const VecCRef<T>& o, const VecCRef<T>& x) {
        write_features(o, x, x1_.data());
        x1_.col(0).tail(na_) = (a - mid_).cwiseQuotient(half_);
        const Mat<T>& z = net_.forward(x1_, ws1_);
        for (Index i = 0; i < na_; ++i) {
            const T t = std::tanh(z(i, 0));
            a_prop_[i] = a[i] + t * (z(i, 0) >= T(0) ? high_[i] - a[i] : a[i] - low_[i]);
        }
    }

    T check(const Vec<T>& a, const VecCRef<T>& o, const VecCRef<T>& x) {
        ++stats_.probability_calls;
        return static_cast<T>(search_.probability(a, o, x));
    }

    bool moved(const Vec<T>& a, const Vec<T>& b) const {
        for (Index i = 0; i < na_; ++i)
            if (std::abs(b[i] - a[i]) > static_cast<T>(opt_.projection_tolerance) * half_[i]) return true;
        return false;
    }

    ShieldDecision<T> search_decision(const VecCRef<T>& o, const VecCRef<T>& x, VecRef<T>& a_safe,
                                      Index train_steps) {
        ++stats_.search_calls;
        const ShieldDecision<T> d = search_.project(a_in_, o, x, a_safe);
        if (d.projected) {
            store(o, x, a_safe);
        } else if (opt_.identity_fraction >= 1.0 ||
                   (opt_.identity_fraction > 0.0 && rng_.uniform<double>() < opt_.identity_fraction)) {
            store(o, x, a_safe);  // the search left a alone: teach g_phi to do the same
        }
        if (size_ > 0 && size_ >= opt_.min_samples)
            for (Index k = 0; k < train_steps; ++k) update(rng_);
        rng_pos_ = rng_.position();
        return d;
    }

    void store(const VecCRef<T>& o, const VecCRef<T>& x, const VecRef<T>& a_safe) {
        const auto k = static_cast<Index>(head_);
        if (ds_ > 0) write_features(o, x, ring_s_.col(k).data());
        ring_a_.col(k) = a_in_;
        if (opt_.target_overshoot > 0) {
            const T f = T(1) + static_cast<T>(opt_.target_overshoot);
            for (Index i = 0; i < na_; ++i)
                ring_y_(i, k) = std::clamp(a_in_[i] + f * (a_safe[i] - a_in_[i]), low_[i], high_[i]);
        } else {
            ring_y_.col(k) = a_safe;
        }
        head_ = (head_ + 1) % static_cast<std::int64_t>(opt_.capacity);
        if (size_ < static_cast<std::int64_t>(opt_.capacity)) ++size_;
        ++stats_.pairs_stored;
    }

    /// Forward, box residual, MSE and backward on a prepared batch (x: input rows, a: raw
    /// actions, y: targets). Overwrites grads(); returns the loss. p and g are scratch.
    T loss_and_grad(const Mat<T>& xin, const Mat<T>& a, const Mat<T>& y, typename Network::Workspace& ws,
                    Mat<T>& p, Mat<T>& g) {
        const Index B = a.cols();
        ensure_shape(p, na_, B);
        ensure_shape(g, na_, B);
        const Mat<T>& z = net_.forward(xin, ws);
        const T scale = T(2) / static_cast<T>(B);
        T loss = 0;
        for (Index j = 0; j < B; ++j)
            for (Index i = 0; i < na_; ++i) {
                const T zi = z(i, j), t = std::tanh(zi), ai = a(i, j);
                const T room = zi >= T(0) ? high_[i] - ai : ai - low_[i];  // da'/dt
                const T ap = ai + t * room;
                const T r = ap - y(i, j);
                loss += r * r;
                p(i, j) = ap;
                g(i, j) = scale * r * (T(1) - t * t) * room;  // dL/dz
            }
        net_.zero_grad();
        net_.backward(ws, g, nullptr, true);
        return loss / static_cast<T>(B);
    }

    void sync_rng() {
        if (rng_key_ != rng_seed_ || rng_.position() != rng_pos_) {  // after a checkpoint load
            rng_ = Rng(rng_seed_, kRunStream);
            rng_.set_position(rng_pos_);
            rng_key_ = rng_seed_;
        }
    }

    Search search_;
    AmortizedShieldOptions opt_;
    Index no_, nx_;
    Vec<T> low_, high_, mid_, half_;
    std::vector<Index> feat_;
    Index ds_, na_;
    Network net_;
    Optimizer adam_;
    T alpha_;

    Mat<T> ring_s_, ring_a_, ring_y_;  // columns: s, a, a_safe
    std::int64_t size_ = 0, head_ = 0;

    typename Network::Workspace ws1_, wsb_;
    Mat<T> x1_, xb_, ab_, yb_, pb_, gb_;
    Vec<T> a_in_, a_prop_;

    AmortizedShieldStats stats_;
    T last_loss_ = std::numeric_limits<T>::quiet_NaN();
    std::uint64_t rng_seed_;
    std::uint64_t rng_pos_ = 0;
    std::uint64_t rng_key_ = 0;
    Rng rng_;
};

}  // namespace persist::shield
