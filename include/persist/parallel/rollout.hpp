#pragma once
/// @file rollout.hpp
/// Batched model rollouts for the rollout shield (shield/rollout_shield.hpp): candidates x K
/// rollouts x h steps, each rollout a pure function of plain views (parallel/views.hpp) and a
/// counter-based random stream, so the result is identical for any thread count and backend.
///
/// Pieces (all trivially copyable, `__host__ __device__` under nvcc via PERSIST_HD):
/// - single-sample MLP evaluation from an MLPView (`mlp_forward`) and its input gradient
///   (`mlp_forward_cached` + `mlp_backward_input`, for the gradient projection);
/// - models: `EnsembleRolloutModel` (the learned Gaussian ensemble, GaussianEnsembleView);
///   GridLife's known dynamics live in parallel/gridlife_rollout.hpp;
/// - viability inside rollouts: `LinearConstraintsView` (exact linear constraints, the POD form
///   of viability::ConstraintSet) and `MarginNetworkView` (a learned margin m(x), positive = safe);
/// - observation kinematics: `HoldObservation` (o stays o_t); GridLife's egocentric patch
///   kinematics in parallel/gridlife_rollout.hpp;
/// - `rollout_normals`: the noise of (seed, call, candidate, rollout, step) from Philox4x32;
/// - `RolloutKernel`: one rollout per index, launched with Thrust (`run_thrust`);
/// - `EigenRolloutRunner`: the same rollouts grouped by ensemble member and pushed through
///   column-batched GEMMs (the fast CPU path).
///
/// Rollout semantics (docs/shield.md): candidate c's action is held constant for the h steps;
/// rollout k of a candidate uses ensemble member k % M; at step s the model reads the
/// observation the kinematics predicts, the state moves x_{s+1} = f(x_s, a, o_hat_s), then the
/// kinematics advance with a, then the margins of x_{s+1} are checked. A rollout is safe iff
/// every constraint holds (margin >= 0, > 0 for strict constraints) at all h steps.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/system/cpp/execution_policy.h>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/linear.hpp"
#include "persist/parallel/lanes.hpp"
#include "persist/parallel/views.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace persist::parallel {

// ---------------------------------------------------------------------------------------------
// Scalar helpers usable in device code
// ---------------------------------------------------------------------------------------------
namespace detail {
template <class T>
PERSIST_HD inline T hd_min(T a, T b) {
    return b < a ? b : a;
}
template <class T>
PERSIST_HD inline T hd_max(T a, T b) {
    return a < b ? b : a;
}
/// log(1 + e^x), stable for any x: max(x, 0) + log1p(e^-|x|).
template <class T>
PERSIST_HD inline T softplus(T x) {
    using std::exp;
    using std::log1p;
    const T ax = x < T(0) ? -x : x;
    return hd_max(x, T(0)) + log1p(exp(-ax));
}
/// d softplus / dx = sigmoid(x).
template <class T>
PERSIST_HD inline T sigmoid(T x) {
    using std::exp;
    if (x >= T(0)) return T(1) / (T(1) + exp(-x));
    const T e = exp(x);
    return e / (T(1) + e);
}
template <class T>
PERSIST_HD inline T infinity() {
    return std::numeric_limits<T>::infinity();
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// MLPView evaluation (one sample)
// ---------------------------------------------------------------------------------------------

/// Scratch (in T) that `mlp_forward` needs: two buffers of the widest layer.
template <class T>
PERSIST_HD inline std::int32_t mlp_scratch_size(const MLPView<T>& net) {
    return 2 * net.max_width();
}

/// y = MLP(in) for one sample; returns a pointer to the out_dim() outputs, which live in
/// `scratch` (mlp_scratch_size entries, must not overlap `in`). Layer l: h = act(W_l h + b_l),
/// the last layer linear; W column-major as in nn::Linear.
template <class T>
PERSIST_HD inline const T* mlp_forward(const MLPView<T>& net, const T* in, T* scratch) {
    const std::int32_t mw = net.max_width();
    T* buf[2] = {scratch, scratch + mw};
    const T* p = net.params;
    const T* h = in;
    for (std::int32_t l = 0; l < net.num_layers; ++l) {
        const std::int32_t ni = net.widths[l], no = net.widths[l + 1];
        const T* W = p;
        const T* b = p + static_cast<std::int64_t>(ni) * no;
        T* out = buf[l & 1];
        for (std::int32_t i = 0; i < no; ++i) out[i] = b[i];
        for (std::int32_t j = 0; j < ni; ++j) {
            const T hj = h[j];
            const T* Wj = W + static_cast<std::int64_t>(j) * no;
            for (std::int32_t i = 0; i < no; ++i) out[i] += Wj[i] * hj;
        }
        if (l + 1 < net.num_layers) {
            if (net.act == Activation::relu) {
                for (std::int32_t i = 0; i < no; ++i) out[i] = out[i] > T(0) ? out[i] : T(0);
            } else {
                using std::tanh;
                for (std::int32_t i = 0; i < no; ++i) out[i] = tanh(out[i]);
            }
        }
        p = b + no;
        h = out;
    }
    return h;
}

/// Sum of widths[1..num_layers]: what `mlp_forward_cached` stores.
template <class T>
PERSIST_HD inline std::int32_t mlp_cache_size(const MLPView<T>& net) {
    std::int32_t n = 0;
    for (std::int32_t l = 1; l <= net.num_layers; ++l) n += net.widths[l];
    return n;
}

/// Forward keeping every layer's output (post-activation) in `cache` (mlp_cache_size), layer
/// after layer; returns the output (the last out_dim() entries of cache).
template <class T>
PERSIST_HD inline const T* mlp_forward_cached(const MLPView<T>& net, const T* in, T* cache) {
    const T* p = net.params;
    const T* h = in;
    T* out = cache;
    for (std::int32_t l = 0; l < net.num_layers; ++l) {
        const std::int32_t ni = net.widths[l], no = net.widths[l + 1];
        const T* W = p;
        const T* b = p + static_cast<std::int64_t>(ni) * no;
        for (std::int32_t i = 0; i < no; ++i) out[i] = b[i];
        for (std::int32_t j = 0; j < ni; ++j) {
            const T hj = h[j];
            const T* Wj = W + static_cast<std::int64_t>(j) * no;
            for (std::int32_t i = 0; i < no; ++i) out[i] += Wj[i] * hj;
        }
        if (l + 1 < net.num_layers) {
            if (net.act == Activation::relu) {
                for (std::int32_t i = 0; i < no; ++i) out[i] = out[i] > T(0) ? out[i] : T(0);
            } else {
                using std::tanh;
                for (std::int32_t i = 0; i < no; ++i) out[i] = tanh(out[i]);
            }
        }
        p = b + no;
        h = out;
        out += no;
    }
    return h;
}

/// Input gradient of the last `mlp_forward_cached` (same `cache`): g_in = J^T g_out, the
/// hand-written backward pass (relu' = [h > 0], tanh' = 1 - h^2, from the stored outputs).
/// `tmp`: 2 * max_width entries. g_in must not overlap g_out or tmp.
template <class T>
PERSIST_HD inline void mlp_backward_input(const MLPView<T>& net, const T* cache, const T* g_out,
                                          T* g_in, T* tmp) {
    const std::int32_t mw = net.max_width();
    T* buf[2] = {tmp, tmp + mw};
    // Offsets of every layer's parameters and cached outputs.
    std::int64_t poff[max_view_layers + 1];
    std::int32_t coff[max_view_layers + 1];
    poff[0] = 0;
    coff[0] = 0;
    for (std::int32_t l = 0; l < net.num_layers; ++l) {
        poff[l + 1] = poff[l] + static_cast<std::int64_t>(net.widths[l]) * net.widths[l + 1] + net.widths[l + 1];
        coff[l + 1] = coff[l] + net.widths[l + 1];
    }
    const T* g = g_out;  // dL/d(output of layer l), post-activation
    for (std::int32_t l = net.num_layers - 1; l >= 0; --l) {
        const std::int32_t ni = net.widths[l], no = net.widths[l + 1];
        T* gz = buf[l & 1];
        // dL/dz_l (pre-activation): hidden layers multiply by act'(z) from the stored output.
        const T* h = cache + coff[l];
        for (std::int32_t i = 0; i < no; ++i) {
            T d = g[i];
            if (l + 1 < net.num_layers)
                d = net.act == Activation::relu ? (h[i] > T(0) ? d : T(0)) : d * (T(1) - h[i] * h[i]);
            gz[i] = d;
        }
        T* gi = l == 0 ? g_in : buf[(l + 1) & 1];
        const T* W = net.params + poff[l];
        for (std::int32_t j = 0; j < ni; ++j) {
            const T* Wj = W + static_cast<std::int64_t>(j) * no;
            T s = T(0);
            for (std::int32_t i = 0; i < no; ++i) s += Wj[i] * gz[i];
            gi[j] = s;
        }
        g = gi;
    }
}

// ---------------------------------------------------------------------------------------------
// Noise: Philox4x32 (core/random.hpp) keyed by (seed, call, candidate, rollout, step)
// ---------------------------------------------------------------------------------------------

/// Largest horizon the noise counter layout supports (step is 16 bits of the counter).
inline constexpr std::int32_t max_rollout_horizon = 65535;

/// eps[0..n) ~ N(0, 1) for one (seed, call, candidate, rollout, step): counter
/// {block | step << 16, rollout, candidate, call_lo}, key {seed_lo ^ c0, seed_hi ^ call_hi ^ c1}
/// (c0, c1 domain-separation constants). Philox block b gives normals 4b .. 4b + 3 by
/// Box-Muller in double from its four 32-bit words: (w0, w1) -> u1 = 1 - w0 2^-32 in (0, 1],
/// u2 = w1 2^-32 -> eps[4b] = r cos(2 pi u2), eps[4b + 1] = r sin(2 pi u2) with
/// r = sqrt(-2 ln u1); (w2, w3) likewise for 4b + 2, 4b + 3. A pure function of its arguments.
/// (|eps| <= sqrt(64 ln 2) = 6.66: the 32-bit uniforms cut the tails there.)
template <class T>
PERSIST_HD inline void rollout_normals(std::uint64_t seed, std::uint64_t call, std::uint32_t candidate,
                                       std::uint32_t rollout, std::uint32_t step, std::int32_t n, T* eps) {
    const std::uint32_t k0 = static_cast<std::uint32_t>(seed) ^ 0xA511E9B3u;
    const std::uint32_t k1 = static_cast<std::uint32_t>(seed >> 32) ^ static_cast<std::uint32_t>(call >> 32) ^ 0x63D83595u;
    for (std::int32_t b = 0; 4 * b < n; ++b) {
        Philox4x32::Block c{{static_cast<std::uint32_t>(b) | (step << 16), rollout, candidate,
                             static_cast<std::uint32_t>(call)}};
        const Philox4x32::Block w = Philox4x32::apply(c, k0, k1);
        for (std::int32_t q = 0; q < 2 && 4 * b + 2 * q < n; ++q) {
            const double u1 = 1.0 - static_cast<double>(w.v[2 * q]) * (1.0 / 4294967296.0);  // (0, 1]
            const double u2 = static_cast<double>(w.v[2 * q + 1]) * (1.0 / 4294967296.0);
            const double r = std::sqrt(-2.0 * std::log(u1));
            const double th = 6.283185307179586476925 * u2;
            const std::int32_t i = 4 * b + 2 * q;
            eps[i] = static_cast<T>(r * std::cos(th));
            if (i + 1 < n) eps[i + 1] = static_cast<T>(r * std::sin(th));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Observation kinematics
// ---------------------------------------------------------------------------------------------

/// What a model reads of the predicted observation o_hat_s: `obs(i)` = entry i of o_hat_s.
template <class T, class Kin>
struct ObsAccessor {
    const Kin* kin;
    const T* o;
    const typename Kin::State* state;
    const T* x;  ///< the rollout's current internal state x_s
    PERSIST_HD T operator()(std::int32_t i) const { return kin->feature(o, *state, x, i); }
};

/// The observation stays o_t for the whole rollout (the model sees the features of the
/// tile / scene the agent acts in now). Use it when nothing better is known.
template <class T>
struct HoldObservation {
    using scalar_type = T;
    struct State {
        std::int32_t unused = 0;
    };
    static constexpr bool differentiable_position = false;
    PERSIST_HD void init(const T*, State&) const {}
    PERSIST_HD void advance(const T*, State&, const T*) const {}
    PERSIST_HD T feature(const T* o, const State&, const T*, std::int32_t i) const { return o[i]; }
    /// Entries of o this kinematics reads at most (-1: any; the shield checks o's size).
    PERSIST_HD std::int32_t observation_dim() const { return -1; }
};

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/// The learned probabilistic ensemble f_theta (GaussianEnsembleView semantics, views.hpp).
/// Member m maps z = ((x; a; o[obs_features]) - in_mean) ./ in_std to (mu_hat; r) and
///   log_sigma = max_logstd - softplus(max_logstd - r), then min_logstd + softplus(. - min_logstd)
///   x_next = x + delta_mean + delta_std .* (mu_hat + exp(log_sigma) .* eps)
/// eps == nullptr gives the member's mean prediction.
template <class T>
struct EnsembleRolloutModel {
    using scalar_type = T;
    static constexpr bool has_network = true;
    static constexpr bool stochastic = true;
    GaussianEnsembleView<T> view{};

    PERSIST_HD std::int32_t members() const { return view.members; }
    PERSIST_HD std::int32_t internal_dim() const { return view.internal_dim; }
    PERSIST_HD std::int32_t action_dim() const { return view.action_dim; }
    PERSIST_HD std::int32_t input_dim() const { return view.internal_dim + view.action_dim + view.num_obs_features; }
    PERSIST_HD const MLPView<T>& network(std::int32_t m) const { return view.member[m]; }
    PERSIST_HD std::int32_t max_width() const {
        std::int32_t w = 0;
        for (std::int32_t m = 0; m < view.members; ++m) w = detail::hd_max(w, view.member[m].max_width());
        return w;
    }
    /// Scratch of `step`: the input z plus mlp_forward's buffers.
    PERSIST_HD std::int32_t scratch_size() const { return input_dim() + 2 * max_width(); }
    /// Largest observation index read + 1 (0 without features).
    PERSIST_HD std::int32_t observation_dim() const {
        std::int32_t n = 0;
        for (std::int32_t f = 0; f < view.num_obs_features; ++f) n = detail::hd_max(n, view.obs_features[f] + 1);
        return n;
    }

    /// z = (x; a; o_hat[obs_features]) normalised.
    template <class Obs>
    PERSIST_HD void input(const T* x, const T* a, const Obs& obs, T* z) const {
        const std::int32_t X = view.internal_dim, A = view.action_dim, F = view.num_obs_features;
        for (std::int32_t i = 0; i < X; ++i) z[i] = (x[i] - view.in_mean[i]) / view.in_std[i];
        for (std::int32_t i = 0; i < A; ++i) z[X + i] = (a[i] - view.in_mean[X + i]) / view.in_std[X + i];
        for (std::int32_t f = 0; f < F; ++f)
            z[X + A + f] = (obs(view.obs_features[f]) - view.in_mean[X + A + f]) / view.in_std[X + A + f];
    }
    /// x_next from the network output (2X: mu_hat, r) and eps (X normals, or nullptr).
    PERSIST_HD void output(const T* x, const T* out, const T* eps, T* xn) const {
        const std::int32_t X = view.internal_dim;
        for (std::int32_t i = 0; i < X; ++i) {
            T u = out[i];
            if (eps) {
                T ls = view.max_logstd - detail::softplus(view.max_logstd - out[X + i]);
                ls = view.min_logstd + detail::softplus(ls - view.min_logstd);
                using std::exp;
                u += exp(ls) * eps[i];
            }
            xn[i] = x[i] + (view.delta_mean[i] + view.delta_std[i] * u);
        }
    }
    template <class Obs>
    PERSIST_HD void step(std::int32_t m, const T* x, const T* a, const Obs& obs, const T* eps, T* xn,
                         T* scratch) const {
        T* z = scratch;
        input(x, a, obs, z);
        const T* out = mlp_forward(view.member[m], z, scratch + input_dim());
        output(x, out, eps, xn);
    }

    /// Scratch of `step_vjp`: z, the cached activations, the output gradient, the input
    /// gradient and mlp_backward_input's buffers.
    PERSIST_HD std::int32_t vjp_scratch_size() const {
        std::int32_t c = 0;
        for (std::int32_t m = 0; m < view.members; ++m) c = detail::hd_max(c, mlp_cache_size(view.member[m]));
        return 2 * input_dim() + c + 2 * view.internal_dim + 2 * max_width();
    }
    /// Mean step (eps = 0) vector-Jacobian product: given g_xn = dL/dx_next, ADDS dL/dx to g_x
    /// and dL/da to g_a. The observation features are treated as constants.
    template <class Obs>
    PERSIST_HD void step_vjp(std::int32_t m, const T* x, const T* a, const Obs& obs, const T* g_xn, T* g_x,
                             T* g_a, T* scratch) const {
        const MLPView<T>& net = view.member[m];
        const std::int32_t X = view.internal_dim, A = view.action_dim, D = input_dim();
        T* z = scratch;
        T* cache = z + D;
        T* gout = cache + mlp_cache_size(net);
        T* gz = gout + 2 * X;
        T* tmp = gz + D;
        input(x, a, obs, z);
        mlp_forward_cached(net, z, cache);
        for (std::int32_t i = 0; i < X; ++i) {
            gout[i] = g_xn[i] * view.delta_std[i];  // x_next = x + delta_mean + delta_std mu_hat
            gout[X + i] = T(0);                     // the log-std does not move the mean
        }
        mlp_backward_input(net, cache, gout, gz, tmp);
        for (std::int32_t i = 0; i < X; ++i) g_x[i] += g_xn[i] + gz[i] / view.in_std[i];
        for (std::int32_t i = 0; i < A; ++i) g_a[i] += gz[X + i] / view.in_std[X + i];
    }
};

// ---------------------------------------------------------------------------------------------
// Viability inside rollouts
// ---------------------------------------------------------------------------------------------

/// The margin reported for a constraint a view is told to ignore (its bit in `ignore`): far on
/// the safe side, so it never fails and never binds (RolloutShieldOptions::relax_unavoidable).
inline constexpr double kIgnoredMargin = 1e6;

/// Sense codes of LinearConstraintsView (viability::Sense order).
enum class ConstraintSense : std::int32_t { ge = 0, gt = 1, le = 2, lt = 3, interval = 4 };

/// viability::ConstraintSet as plain data (shield/rollout_shield.hpp: LinearConstraints builds
/// it). Constraint k: e = sum_j coef[k dim + j] x_j over the non-zero coefficients in ascending
/// j (as ConstraintSet sums them), margin = e - lo[k] (>=, >), lo[k] - e (<=, <; the threshold
/// is stored in lo), min(e - lo[k], hi[k] - e) (interval). Satisfied: margin >= 0, > 0 if strict.
template <class T>
struct LinearConstraintsView {
    using scalar_type = T;
    std::int32_t num_constraints = 0;
    std::int32_t dim = 0;
    const T* coef = nullptr;                ///< num_constraints x dim, row-major
    const std::int32_t* sense = nullptr;    ///< ConstraintSense codes
    const T* lo = nullptr;                  ///< threshold (one-sided) or lower bound (interval)
    const T* hi = nullptr;                  ///< upper bound (interval)
    std::uint32_t ignore = 0;               ///< bit k: constraint k reported as kIgnoredMargin (k < 32)

    PERSIST_HD std::int32_t count() const { return num_constraints; }
    PERSIST_HD std::int32_t scratch_size() const { return 0; }
    PERSIST_HD T expr(std::int32_t k, const T* x) const {
        T e = T(0);
        const T* a = coef + static_cast<std::int64_t>(k) * dim;
        for (std::int32_t j = 0; j < dim; ++j)
            if (a[j] != T(0)) e += a[j] * x[j];
        return e;
    }
    PERSIST_HD void margins(const T* x, T* m, T*) const {
        for (std::int32_t k = 0; k < num_constraints; ++k) {
            const T e = expr(k, x);
            switch (static_cast<ConstraintSense>(sense[k])) {
                case ConstraintSense::ge:
                case ConstraintSense::gt: m[k] = e - lo[k]; break;
                case ConstraintSense::le:
                case ConstraintSense::lt: m[k] = lo[k] - e; break;
                default: m[k] = detail::hd_min(e - lo[k], hi[k] - e); break;
            }
            if (k < 32 && ((ignore >> k) & 1u)) m[k] = static_cast<T>(kIgnoredMargin);
        }
    }
    PERSIST_HD bool satisfied(std::int32_t k, T m) const {
        const auto s = static_cast<ConstraintSense>(sense[k]);
        return (s == ConstraintSense::gt || s == ConstraintSense::lt) ? m > T(0) : m >= T(0);
    }
    /// Scratch of `margins_vjp`.
    PERSIST_HD std::int32_t vjp_scratch_size() const { return 0; }
    /// ADDS sum_k g_m[k] d margin_k / dx to g_x (interval: the binding side; 0 at a tie).
    PERSIST_HD void margins_vjp(const T* x, const T* g_m, T* g_x, T*) const {
        for (std::int32_t k = 0; k < num_constraints; ++k) {
            T s = T(1);
            const auto sn = static_cast<ConstraintSense>(sense[k]);
            if (sn == ConstraintSense::le || sn == ConstraintSense::lt) s = T(-1);
            if (sn == ConstraintSense::interval) {
                const T e = expr(k, x), lower = e - lo[k], upper = hi[k] - e;
                s = lower < upper ? T(1) : (upper < lower ? T(-1) : T(0));
            }
            if (k < 32 && ((ignore >> k) & 1u)) continue;  // a constant margin
            const T* a = coef + static_cast<std::int64_t>(k) * dim;
            for (std::int32_t j = 0; j < dim; ++j) g_x[j] += g_m[k] * s * a[j];
        }
    }
};

/// A learned viability margin m(x) = net((x - in_mean) ./ in_std) (one output per margin,
/// usually 1; positive = safe, m >= 0 satisfied). in_mean / in_std may be null (no scaling).
template <class T>
struct MarginNetworkView {
    using scalar_type = T;
    MLPView<T> net{};
    const T* in_mean = nullptr;
    const T* in_std = nullptr;
    std::uint32_t ignore = 0;  ///< bit k: output k reported as kIgnoredMargin (k < 32)

    PERSIST_HD std::int32_t count() const { return net.out_dim(); }
    PERSIST_HD std::int32_t dim() const { return net.in_dim(); }
    PERSIST_HD std::int32_t scratch_size() const { return net.in_dim() + mlp_scratch_size(net); }
    PERSIST_HD void margins(const T* x, T* m, T* scratch) const {
        const std::int32_t D = net.in_dim();
        const T* in = x;
        if (in_mean) {
            for (std::int32_t j = 0; j < D; ++j) scratch[j] = (x[j] - in_mean[j]) / in_std[j];
            in = scratch;
        }
        const T* out = mlp_forward(net, in, scratch + D);
        for (std::int32_t k = 0; k < net.out_dim(); ++k)
            m[k] = (k < 32 && ((ignore >> k) & 1u)) ? static_cast<T>(kIgnoredMargin) : out[k];
    }
    PERSIST_HD bool satisfied(std::int32_t, T m) const { return m >= T(0); }
    PERSIST_HD std::int32_t vjp_scratch_size() const {
        return 2 * net.in_dim() + mlp_cache_size(net) + mlp_scratch_size(net) + net.out_dim();
    }
    PERSIST_HD void margins_vjp(const T* x, const T* g_m, T* g_x, T* scratch) const {
        const std::int32_t D = net.in_dim();
        T* z = scratch;
        T* gz = z + D;
        T* cache = gz + D;
        T* tmp = cache + mlp_cache_size(net);
        for (std::int32_t j = 0; j < D; ++j) z[j] = in_mean ? (x[j] - in_mean[j]) / in_std[j] : x[j];
        mlp_forward_cached(net, z, cache);
        if (ignore) {  // ignored outputs are constants: no gradient through them
            T* gm = tmp + mlp_scratch_size(net);
            for (std::int32_t k = 0; k < net.out_dim(); ++k) gm[k] = (k < 32 && ((ignore >> k) & 1u)) ? T(0) : g_m[k];
            g_m = gm;
        }
        mlp_backward_input(net, cache, g_m, gz, tmp);
        for (std::int32_t j = 0; j < D; ++j) g_x[j] += in_mean ? gz[j] / in_std[j] : gz[j];
    }
};

// ---------------------------------------------------------------------------------------------
// The rollout kernel
// ---------------------------------------------------------------------------------------------

/// What one rollout reports. Steps are 0-based (step s checks x_{t+s+1}).
template <class T>
struct RolloutOutcome {
    std::int32_t first_violation = 0;      ///< first step with a violated constraint; h if safe
    std::int32_t violated_constraint = -1; ///< at that step, the violated constraint with the smallest margin
    std::int32_t min_constraint = -1;      ///< constraint of min_margin
    T min_margin = T(0);                   ///< min margin over constraints and steps 0..first_violation
    PERSIST_HD bool safe(std::int32_t h) const { return first_violation >= h; }
};

/// One batch of rollouts: C candidates (actions, A x C column-major) x K rollouts of h steps
/// from (x0, o). Rollout r = c K + k runs candidate c with ensemble member k % M and noise
/// key (seed, call, candidate_base + c, k, step).
template <class T>
struct RolloutBatch {
    const T* x0 = nullptr;        ///< X
    const T* o = nullptr;         ///< observation o_t
    const T* actions = nullptr;   ///< A x C
    std::int32_t candidates = 0;  ///< C
    std::int32_t rollouts = 0;    ///< K per candidate
    std::int32_t horizon = 0;     ///< h, [1, max_rollout_horizon]
    std::uint64_t seed = 0;
    std::uint64_t call = 0;
    std::uint32_t candidate_base = 0;
    RolloutOutcome<T>* outcomes = nullptr;  ///< C K
    T* states = nullptr;  ///< optional (tests): C K x h x X, state after every step
    std::int64_t size() const { return std::int64_t(candidates) * rollouts; }
};

/// Scratch per rollout (in T) the kernel needs for a model/viability pair.
template <class Model, class Viab>
PERSIST_HD inline std::int32_t rollout_scratch_size(const Model& model, const Viab& viab) {
    const std::int32_t X = model.internal_dim();
    return 3 * X + model.scratch_size() + viab.count() + viab.scratch_size();
}

/// Outcome bookkeeping after the margins of one step (shared by both backends, so they make
/// identical decisions from identical margins).
template <class T, class Viab>
PERSIST_HD inline void record_step(const Viab& viab, const T* marg, std::int32_t step, std::int32_t h,
                                   RolloutOutcome<T>& out) {
    if (out.first_violation < h) return;  // already decided: nothing after the first violation counts
    T worst = detail::infinity<T>();
    std::int32_t worst_k = -1;
    for (std::int32_t k = 0; k < viab.count(); ++k) {
        const T m = marg[k];
        if (m < out.min_margin || out.min_constraint < 0) {
            out.min_margin = m;
            out.min_constraint = k;
        }
        if (!viab.satisfied(k, m) && (worst_k < 0 || m < worst)) {
            worst = m;
            worst_k = k;
        }
    }
    if (worst_k >= 0) {
        out.first_violation = step;
        out.violated_constraint = worst_k;
    }
}

template <class T>
PERSIST_HD inline void init_outcome(RolloutOutcome<T>& out, std::int32_t h) {
    out.first_violation = h;
    out.violated_constraint = -1;
    out.min_constraint = -1;
    out.min_margin = detail::infinity<T>();
}

/// One rollout per index: the Thrust functor (thrust::for_each over [0, C K)). Trivially
/// copyable; `scratch` holds rollout_scratch_size entries per rollout.
template <class T, class Model, class Viab, class Kin>
struct RolloutKernel {
    Model model;
    Viab viab;
    Kin kin;
    RolloutBatch<T> batch;
    T* scratch = nullptr;
    std::int32_t stride = 0;

    PERSIST_HD void operator()(std::int64_t r) const {
        const std::int32_t K = batch.rollouts, h = batch.horizon;
        const std::int32_t X = model.internal_dim(), A = model.action_dim();
        const auto c = static_cast<std::int32_t>(r / K);
        const auto k = static_cast<std::int32_t>(r % K);
        const std::int32_t m = k % model.members();
        T* x = scratch + r * stride;
        T* xn = x + X;
        T* eps = xn + X;
        T* msc = eps + X;
        T* marg = msc + model.scratch_size();
        T* vsc = marg + viab.count();
        const T* a = batch.actions + static_cast<std::int64_t>(c) * A;
        for (std::int32_t i = 0; i < X; ++i) x[i] = batch.x0[i];
        typename Kin::State st;
        kin.init(batch.o, st);
        RolloutOutcome<T> out;
        init_outcome(out, h);
        for (std::int32_t s = 0; s < h; ++s) {
            if (out.first_violation < h && !batch.states) break;  // decided
            if (Model::stochastic)
                rollout_normals(batch.seed, batch.call, batch.candidate_base + static_cast<std::uint32_t>(c),
                                static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(s), X, eps);
            const ObsAccessor<T, Kin> obs{&kin, batch.o, &st, x};
            model.step(m, x, a, obs, Model::stochastic ? eps : nullptr, xn, msc);
            kin.advance(batch.o, st, a);
            for (std::int32_t i = 0; i < X; ++i) x[i] = xn[i];
            viab.margins(x, marg, vsc);
            record_step(viab, marg, s, h, out);
            if (batch.states) {
                T* dst = batch.states + (r * h + s) * X;
                for (std::int32_t i = 0; i < X; ++i) dst[i] = x[i];
            }
        }
        batch.outcomes[r] = out;
    }
};

/// Which executor runs the rollouts.
enum class Backend : std::uint8_t {
    thrust_device = 0,  ///< thrust::device: the build's THRUST_DEVICE_SYSTEM (OpenMP on host builds)
    thrust_cpp = 1,     ///< thrust::cpp::par: sequential, on the calling thread
    eigen = 2,          ///< EigenRolloutRunner: grouped by member, column-batched GEMMs (+ OpenMP over tasks)
};

inline const char* backend_name(Backend b) {
    switch (b) {
        case Backend::thrust_device: return "thrust_device";
        case Backend::thrust_cpp: return "thrust_cpp";
        case Backend::eigen: return "eigen";
    }
    return "?";
}

/// Run a RolloutKernel over [0, n) with Thrust on host memory (thrust_device or thrust_cpp).
/// Never allocates. (Under a CUDA device system the views and buffers would have to be device
/// memory; the host shield only compiles there.)
template <class Kernel>
void run_thrust(Backend b, const Kernel& kernel, std::int64_t n) {
    const thrust::counting_iterator<std::int64_t> first(0);
    if (b == Backend::thrust_cpp) thrust::for_each(thrust::cpp::par, first, first + n, kernel);
    else thrust::for_each(thrust::device, first, first + n, kernel);
}

// ---------------------------------------------------------------------------------------------
// The Eigen-batched path
// ---------------------------------------------------------------------------------------------

/// The same rollouts as RolloutKernel, grouped by ensemble member: each task takes up to
/// `chunk` rollouts of one member and runs them for h steps. For a float ensemble model
/// (EnsembleRolloutModel<float>) on GCC/Clang, the task runs as lane groups (parallel/lanes.hpp):
/// 16 rollouts (8 for a remainder of <= 8) side by side in SIMD lanes, the member's MLP as
/// broadcast-weight FMAs on lane vectors with bias and activation applied in registers, and the
/// noise (Philox on lane vectors, Box-Muller in float from the top 24 bits of the same counter
/// words as rollout_normals), the log-std squashing (as sigma = e^min + e^max / (1 + e^(max - r)),
/// the same function with one exp), linear-constraint margins and outcome bookkeeping vectorised over the
/// lanes; other kinematics and viability models are evaluated lane by lane. Otherwise the task
/// builds the member's input column by column and pushes all columns through the MLP as GEMMs
/// (nn::detail::gemm_acc, single-threaded, packing buffers kept per task). Tasks are a fixed partition of the
/// rollouts (independent of the thread count) and run under `omp parallel for`, so results do
/// not depend on the number of threads. Models without a network (known dynamics) run column
/// by column. Buffers are sized by `reserve` (call once; `run` never allocates).
template <class T, class Model, class Viab, class Kin>
class EigenRolloutRunner {
public:
    static constexpr std::int32_t chunk = 128;
#if PERSIST_HAS_LANES
    /// Whether run() takes the lane path (see the class comment).
    static constexpr bool lane_path = std::is_same_v<T, float> && std::is_same_v<Model, EnsembleRolloutModel<float>>;
#else
    static constexpr bool lane_path = false;
#endif

    /// Size every buffer for batches of up to `max_rollouts` rollouts.
    void reserve(const Model& model, const Viab& viab, std::int64_t max_rollouts) {
        const std::int32_t M = model.members();
        max_rollouts_ = max_rollouts;
        order_.assign(static_cast<std::size_t>(max_rollouts), 0);
        const std::int64_t max_tasks = (max_rollouts + chunk - 1) / chunk + M;
        tasks_.assign(static_cast<std::size_t>(max_tasks), Task{});
        buffers_.resize(static_cast<std::size_t>(max_tasks));
        const std::int32_t X = model.internal_dim();
        const auto cols = static_cast<Index>(std::min<std::int64_t>(chunk, max_rollouts));
        for (auto& b : buffers_) {
            b.x.setZero(X, cols);
            b.xn.setZero(X, cols);
            b.eps.setZero(X, cols);
            b.marg.setZero(std::max<std::int32_t>(viab.count(), 1), cols);
            b.vsc.setZero(std::max<std::int32_t>(viab.scratch_size(), 1));
            b.msc.setZero(std::max<std::int32_t>({model.scratch_size(), X + viab.count(), 1}));  // lane path: x + margins of one lane
            b.kin.assign(static_cast<std::size_t>(cols), typename Kin::State{});
            b.out.assign(static_cast<std::size_t>(cols), RolloutOutcome<T>{});
#if PERSIST_HAS_LANES
            if constexpr (lane_path) {
                const std::size_t need = static_cast<std::size_t>(lane_buffer_size(model, viab));
                b.lane16.assign(need, lanes::vf<16>{});
                b.lane8.assign(need, lanes::vf<8>{});
                continue;
            }
#endif
            if constexpr (Model::has_network) {
                b.z.setZero(model.input_dim(), cols);
                const MLPView<T>& net = model.network(0);
                b.layers.resize(static_cast<std::size_t>(net.num_layers));
                for (std::int32_t m = 0; m < M; ++m)
                    if (model.network(m).num_layers != net.num_layers)
                        throw ShapeError("EigenRolloutRunner: ensemble members differ in depth");
                for (std::int32_t l = 0; l < net.num_layers; ++l) {
                    std::int32_t w = 0;
                    for (std::int32_t m = 0; m < M; ++m) w = std::max(w, model.network(m).widths[l + 1]);
                    b.layers[static_cast<std::size_t>(l)].setZero(w, cols);
                }
                // Warm the GEMM packing buffers at the largest shape.
                b.gemm.setZero(0);
                for (std::int32_t m = 0; m < M; ++m) {
                    const MLPView<T>& nm = model.network(m);
                    for (std::int32_t l = 0; l < nm.num_layers; ++l) {
                        Mat<T> dummy_out(nm.widths[l + 1], cols);
                        dummy_out.setZero();
                        Mat<T> dummy_in(nm.widths[l], cols);
                        dummy_in.setZero();
                        nn::detail::gemm_acc<false, false, T>(nm.widths[l + 1], cols, nm.widths[l], nm.params,
                                                              nm.widths[l + 1], dummy_in.data(), nm.widths[l],
                                                              dummy_out.data(), nm.widths[l + 1], b.gemm);
                    }
                }
            }
        }
    }
    std::int64_t capacity() const { return max_rollouts_; }

    void run(const Model& model, const Viab& viab, const Kin& kin, const RolloutBatch<T>& batch) {
        const std::int64_t n = batch.size();
        if (n > max_rollouts_)
            throw ShapeError("EigenRolloutRunner::run: " + std::to_string(n) + " rollouts, reserved for " +
                             std::to_string(max_rollouts_));
        const std::int32_t M = model.members(), K = batch.rollouts;
        // Rollouts ordered by member (stable), then cut into chunks: a fixed partition.
        std::int64_t pos = 0, ntask = 0;
        for (std::int32_t m = 0; m < M; ++m) {
            const std::int64_t begin = pos;
            for (std::int64_t c = 0; c < batch.candidates; ++c)  // r = c K + k with k % M == m, ascending
                for (std::int32_t k = m; k < K; k += M) order_[static_cast<std::size_t>(pos++)] = c * K + k;
            for (std::int64_t b = begin; b < pos; b += chunk)
                tasks_[static_cast<std::size_t>(ntask++)] = Task{m, b, std::min<std::int64_t>(pos, b + chunk)};
        }
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) if (ntask > 1 && n >= 256)
#endif
        for (std::int64_t t = 0; t < ntask; ++t)
            run_task(model, viab, kin, batch, tasks_[static_cast<std::size_t>(t)], buffers_[static_cast<std::size_t>(t)]);
    }

private:
    struct Task {
        std::int32_t member = 0;
        std::int64_t begin = 0, end = 0;  ///< range of order_
    };
    struct Buffers {
        Mat<T> x, xn, eps, z, marg;
        Vec<T> vsc, msc, gemm;
        std::vector<Mat<T>> layers;
        std::vector<typename Kin::State> kin;
        std::vector<RolloutOutcome<T>> out;
#if PERSIST_HAS_LANES
        std::vector<lanes::vf<16>> lane16;  ///< lane-group buffers (lane_buffer_size vectors)
        std::vector<lanes::vf<8>> lane8;
#endif
    };

#if PERSIST_HAS_LANES
    /// Lane vectors one group needs: z (D), two layer buffers (widest layer), x (X), noise
    /// (X rounded up to pairs), margins.
    static std::int64_t lane_buffer_size(const Model& model, const Viab& viab) {
        const std::int32_t X = model.internal_dim();
        std::int64_t margin_net = 0;  // a learned margin's two layer buffers
        if constexpr (std::is_same_v<Viab, MarginNetworkView<float>>) margin_net = 2 * viab.net.max_width();
        return model.input_dim() + 2 * model.max_width() + X + (X + 1) / 2 * 2 + std::max<std::int32_t>(viab.count(), 1) +
               margin_net;
    }

    /// y = act(W x + b) on lane vectors for rows [i0, i0 + R): R accumulators kept in registers.
    template <int L, int R>
    PERSIST_LANE_KERNEL static void dense_rows(const float* W, std::int32_t no, std::int32_t ni, const float* bias, std::int32_t i0,
                           const lanes::vf<L>* in, lanes::vf<L>* out, bool relu) {
        lanes::vf<L> acc[R];
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[r] = lanes::splat<L>(bias[i0 + r]);
        for (std::int32_t k = 0; k < ni; ++k) {
            const lanes::vf<L> xk = in[k];
            const float* w = W + static_cast<std::int64_t>(k) * no + i0;
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r) acc[r] = lanes::fmadd<L>(lanes::splat<L>(w[r]), xk, acc[r]);
        }
        const lanes::vf<L> zero = lanes::splat<L>(0.0f);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) out[i0 + r] = relu ? lanes::vmax<L>(acc[r], zero) : acc[r];
    }

    /// One Linear layer (+ ReLU) on lane vectors: blocks of 16 rows, then the remainder.
    template <int L>
    static void dense(const float* W, std::int32_t no, std::int32_t ni, const float* bias, const lanes::vf<L>* in,
                      lanes::vf<L>* out, bool relu) {
        std::int32_t i0 = 0;
        for (; i0 + 16 <= no; i0 += 16) dense_rows<L, 16>(W, no, ni, bias, i0, in, out, relu);
        const std::int32_t rem = no - i0;
        [&]<int... Rs>(std::integer_sequence<int, Rs...>) {
            (void)((rem == Rs + 1 ? (dense_rows<L, Rs + 1>(W, no, ni, bias, i0, in, out, relu), true) : false) || ...);
        }(std::make_integer_sequence<int, 15>{});
    }

    /// Rollouts rid[0..nv) (nv <= L, all of member `member`) as one lane group; lanes past nv
    /// repeat rollout rid[0] and are not recorded. `ks`: their kinematics states.
    template <int L>
    void run_lanes(const Model& model, const Viab& viab, const Kin& kin, const RolloutBatch<T>& batch,
                   std::int32_t member, const std::int64_t* rid, std::int32_t nv, typename Kin::State* ks,
                   lanes::vf<L>* buf, float* tmp, float* vsc) const {
        using V = lanes::vf<L>;
        using VI = lanes::vi<L>;
        using VU = lanes::vu<L>;
        const GaussianEnsembleView<float>& view = model.view;
        const MLPView<float>& net = view.member[member];
        const std::int32_t K = batch.rollouts, h = batch.horizon;
        const std::int32_t X = view.internal_dim, A = view.action_dim, F = view.num_obs_features;
        const std::int32_t D = X + A + F, C = viab.count(), P = (X + 1) / 2;
        V* z = buf;
        V* hb[2] = {z + D, z + D + model.max_width()};
        V* x = hb[1] + model.max_width();
        V* eps = x + X;
        V* marg = eps + 2 * P;

        VU cand, kidx;
        for (int j = 0; j < L; ++j) {
            const std::int64_t r = rid[j < nv ? j : 0];
            cand[j] = static_cast<std::uint32_t>(r / K);
            kidx[j] = static_cast<std::uint32_t>(r % K);
        }
        const VU cand_key = cand + batch.candidate_base;
        for (std::int32_t i = 0; i < X; ++i) x[i] = lanes::splat<L>(batch.x0[i]);
        for (std::int32_t i = 0; i < A; ++i) {  // the scaled action: constant over the rollout
            V av;
            for (int j = 0; j < L; ++j) av[j] = batch.actions[static_cast<std::int64_t>(cand[j]) * A + i];
            z[X + i] = (av - view.in_mean[X + i]) / view.in_std[X + i];
        }
        for (std::int32_t j = 0; j < nv; ++j) kin.init(batch.o, ks[j]);
        VI fv = lanes::splat_i<L>(h), vc = lanes::splat_i<L>(-1), mc = lanes::splat_i<L>(-1);
        V mm = lanes::splat<L>(detail::infinity<float>());
        const std::uint32_t k0 = static_cast<std::uint32_t>(batch.seed) ^ 0xA511E9B3u;
        const std::uint32_t k1 = static_cast<std::uint32_t>(batch.seed >> 32) ^
                                 static_cast<std::uint32_t>(batch.call >> 32) ^ 0x63D83595u;
        const VU call_lo = lanes::splat_u<L>(static_cast<std::uint32_t>(batch.call));
        const V e_min = lanes::splat<L>(std::exp(view.min_logstd)), e_max = lanes::splat<L>(std::exp(view.max_logstd));
        auto lane_x = [&](std::int32_t j) {  // rollout j's x as a plain vector, in tmp
            for (std::int32_t i = 0; i < X; ++i) tmp[i] = x[i][j];
            return static_cast<const float*>(tmp);
        };

        for (std::int32_t s = 0; s < h; ++s) {
            if (!batch.states) {  // every recorded lane decided: nothing left to learn
                bool open = false;
                for (std::int32_t j = 0; j < nv && !open; ++j) open = fv[j] >= h;
                if (!open) break;
            }
            if (Model::stochastic) {
                VU w[4];
                for (std::int32_t p = 0; p < P; ++p) {  // pair p: words (2 (p % 2), 2 (p % 2) + 1) of block p / 2
                    if (p % 2 == 0)
                        lanes::philox<L>(lanes::splat_u<L>(static_cast<std::uint32_t>(p / 2) | (static_cast<std::uint32_t>(s) << 16)),
                                         kidx, cand_key, call_lo, k0, k1, w);
                    const VU wa = w[2 * (p % 2)], wb = w[2 * (p % 2) + 1];
                    const V u1 = 1.0f - __builtin_convertvector(reinterpret_cast<VI>(wa >> 8), V) * 5.9604644775390625e-8f;
                    const V u2 = __builtin_convertvector(reinterpret_cast<VI>(wb >> 8), V) * 5.9604644775390625e-8f;
                    const V r = lanes::vsqrt<L>(lanes::vlog<L>(u1) * -2.0f);
                    V sn, cs;
                    lanes::vsincos_2pi<L>(u2, sn, cs);
                    eps[2 * p] = r * cs;
                    eps[2 * p + 1] = r * sn;
                }
            }
            for (std::int32_t i = 0; i < X; ++i) z[i] = (x[i] - view.in_mean[i]) / view.in_std[i];
            for (std::int32_t f = 0; f < F; ++f) {
                const std::int32_t fi = view.obs_features[f];
                V fv_lane;
                for (int j = 0; j < L; ++j) {
                    const std::int32_t jj = j < nv ? j : 0;
                    const ObsAccessor<T, Kin> obs{&kin, batch.o, &ks[jj], lane_x(jj)};
                    fv_lane[j] = obs(fi);
                }
                z[X + A + f] = (fv_lane - view.in_mean[X + A + f]) / view.in_std[X + A + f];
            }
            const float* p = net.params;
            const V* in = z;
            for (std::int32_t l = 0; l < net.num_layers; ++l) {
                const std::int32_t ni = net.widths[l], no = net.widths[l + 1];
                const float* bias = p + static_cast<std::int64_t>(ni) * no;
                V* out = hb[l & 1];
                const bool hidden = l + 1 < net.num_layers;
#ifndef PERSIST_PROF_SKIP_MLP
                dense<L>(p, no, ni, bias, in, out, hidden && net.act == Activation::relu);
#endif
                if (hidden && net.act != Activation::relu)
                    for (std::int32_t i = 0; i < no; ++i)
                        for (int j = 0; j < L; ++j) out[i][j] = std::tanh(out[i][j]);
                in = out;
                p = bias + no;
            }
            for (std::int32_t i = 0; i < X; ++i) {
                V u = in[i];
                if (Model::stochastic) {
                    // sigma = exp(min + softplus(max - softplus(max - r) - min)) = e^min + e^max / (1 + e^(max - r)),
                    // since exp(softplus(y)) = 1 + e^y: one exp instead of three exps and two logs.
                    const V sigma = e_min + e_max / (lanes::vexp<L>(view.max_logstd - in[X + i]) + 1.0f);
                    u = lanes::fmadd<L>(sigma, eps[i], u);
                }
                x[i] = x[i] + (view.delta_mean[i] + view.delta_std[i] * u);
            }
            if constexpr (!std::is_same_v<Kin, HoldObservation<T>>)
                for (std::int32_t j = 0; j < nv; ++j)
                    kin.advance(batch.o, ks[j], batch.actions + static_cast<std::int64_t>(cand[j]) * A);
            if constexpr (std::is_same_v<Viab, LinearConstraintsView<float>>) {
                for (std::int32_t k = 0; k < C; ++k) {
                    V e = lanes::splat<L>(0.0f);
                    const float* a = viab.coef + static_cast<std::int64_t>(k) * viab.dim;
                    for (std::int32_t jd = 0; jd < viab.dim; ++jd)
                        if (a[jd] != 0.0f) e = e + a[jd] * x[jd];
                    switch (static_cast<ConstraintSense>(viab.sense[k])) {
                        case ConstraintSense::ge:
                        case ConstraintSense::gt: marg[k] = e - viab.lo[k]; break;
                        case ConstraintSense::le:
                        case ConstraintSense::lt: marg[k] = viab.lo[k] - e; break;
                        default: marg[k] = lanes::vmin<L>(e - viab.lo[k], viab.hi[k] - e); break;
                    }
                }
            } else if constexpr (std::is_same_v<Viab, MarginNetworkView<float>>) {
                // The learned margin m(x) on whole lane vectors, with the model's layer kernel.
                const MLPView<float>& mn = viab.net;
                V* mb[2] = {marg + std::max<std::int32_t>(C, 1), marg + std::max<std::int32_t>(C, 1) + mn.max_width()};
                for (std::int32_t j = 0; j < mn.widths[0]; ++j)
                    mb[1][j] = viab.in_mean ? (x[j] - viab.in_mean[j]) / viab.in_std[j] : x[j];
                const float* q = mn.params;
                const V* min = mb[1];
                for (std::int32_t l = 0; l < mn.num_layers; ++l) {
                    const std::int32_t ni = mn.widths[l], no = mn.widths[l + 1];
                    const float* bias = q + static_cast<std::int64_t>(ni) * no;
                    const bool hidden = l + 1 < mn.num_layers;
                    V* mout = hidden ? mb[l & 1] : marg;
                    dense<L>(q, no, ni, bias, min, mout, hidden && mn.act == Activation::relu);
                    if (hidden && mn.act != Activation::relu)
                        for (std::int32_t i = 0; i < no; ++i)
                            for (int j = 0; j < L; ++j) mout[i][j] = std::tanh(mout[i][j]);
                    min = mout;
                    q = bias + no;
                }
            } else {
                for (int j = 0; j < L; ++j) {
                    viab.margins(lane_x(j < nv ? j : 0), tmp + X, vsc);
                    for (std::int32_t k = 0; k < C; ++k) marg[k][j] = tmp[X + k];
                }
            }
            if (viab.ignore)  // constraints the view ignores (as its margins() does)
                for (std::int32_t k = 0; k < C && k < 32; ++k)
                    if ((viab.ignore >> k) & 1u) marg[k] = lanes::splat<L>(static_cast<float>(kIgnoredMargin));
            // record_step on all lanes at once (same rules, same order of constraints).
            const VI open = fv >= h;
            V worst = lanes::splat<L>(detail::infinity<float>());
            VI wk = lanes::splat_i<L>(-1);
            for (std::int32_t k = 0; k < C; ++k) {
                const V m = marg[k];
                const VI upd = open & ((m < mm) | (mc < 0));
                mm = lanes::select<L>(upd, m, mm);
                mc = lanes::select<L>(upd, lanes::splat_i<L>(k), mc);
                const bool strict = !viab.satisfied(k, 0.0f);  // satisfied iff m > 0 (else m >= 0)
                const VI bad = strict ? ~(m > 0.0f) : ~(m >= 0.0f);
                const VI wupd = open & bad & ((wk < 0) | (m < worst));
                worst = lanes::select<L>(wupd, m, worst);
                wk = lanes::select<L>(wupd, lanes::splat_i<L>(k), wk);
            }
            const VI newly = open & (wk >= 0);
            fv = lanes::select<L>(newly, lanes::splat_i<L>(s), fv);
            vc = lanes::select<L>(newly, wk, vc);
            if (batch.states)
                for (std::int32_t j = 0; j < nv; ++j) {
                    T* dst = batch.states + (rid[j] * h + s) * X;
                    for (std::int32_t i = 0; i < X; ++i) dst[i] = x[i][j];
                }
        }
        for (std::int32_t j = 0; j < nv; ++j) {
            RolloutOutcome<T>& o = batch.outcomes[rid[j]];
            o.first_violation = fv[j];
            o.violated_constraint = vc[j];
            o.min_constraint = mc[j];
            o.min_margin = mm[j];
        }
    }
#endif

    void run_task(const Model& model, const Viab& viab, const Kin& kin, const RolloutBatch<T>& batch,
                  const Task& task, Buffers& b) const {
        const std::int32_t K = batch.rollouts, h = batch.horizon;
        const std::int32_t X = model.internal_dim(), A = model.action_dim();
        const auto n = static_cast<Index>(task.end - task.begin);
        const std::int64_t* rid = order_.data() + task.begin;
#if PERSIST_HAS_LANES
        if constexpr (lane_path) {
            for (Index j = 0; j < n;) {
                const Index rem = n - j;
                if (rem > 8) {
                    const auto nv = static_cast<std::int32_t>(std::min<Index>(rem, 16));
                    run_lanes<16>(model, viab, kin, batch, task.member, rid + j, nv, &b.kin[static_cast<std::size_t>(j)],
                                  b.lane16.data(), b.msc.data(), b.vsc.data());
                    j += nv;
                } else {
                    run_lanes<8>(model, viab, kin, batch, task.member, rid + j, static_cast<std::int32_t>(rem),
                                 &b.kin[static_cast<std::size_t>(j)], b.lane8.data(), b.msc.data(), b.vsc.data());
                    j += rem;
                }
            }
            return;
        }
#endif
        auto action = [&](Index j) {
            return batch.actions + (rid[j] / K) * A;
        };
        for (Index j = 0; j < n; ++j) {
            for (std::int32_t i = 0; i < X; ++i) b.x(i, j) = batch.x0[i];
            kin.init(batch.o, b.kin[static_cast<std::size_t>(j)]);
            init_outcome(b.out[static_cast<std::size_t>(j)], h);
        }
        for (std::int32_t s = 0; s < h; ++s) {
            if (Model::stochastic)
                for (Index j = 0; j < n; ++j)
                    rollout_normals(batch.seed, batch.call,
                                    batch.candidate_base + static_cast<std::uint32_t>(rid[j] / K),
                                    static_cast<std::uint32_t>(rid[j] % K), static_cast<std::uint32_t>(s), X,
                                    b.eps.col(j).data());
            if constexpr (Model::has_network) {
                const MLPView<T>& net = model.network(task.member);
                for (Index j = 0; j < n; ++j) {
                    const ObsAccessor<T, Kin> obs{&kin, batch.o, &b.kin[static_cast<std::size_t>(j)], b.x.col(j).data()};
                    model.input(b.x.col(j).data(), action(j), obs, b.z.col(j).data());
                }
                const T* in = b.z.data();
                std::int32_t ld_in = net.widths[0];
                const T* p = net.params;
                for (std::int32_t l = 0; l < net.num_layers; ++l) {
                    const std::int32_t ni = net.widths[l], no = net.widths[l + 1];
                    const T* W = p;
                    const T* bias = p + static_cast<std::int64_t>(ni) * no;
                    T* out = b.layers[static_cast<std::size_t>(l)].data();
                    for (Index j = 0; j < n; ++j)
                        for (std::int32_t i = 0; i < no; ++i) out[j * no + i] = bias[i];
                    nn::detail::gemm_acc<false, false, T>(no, n, ni, W, no, in, ld_in, out, no, b.gemm);
                    if (l + 1 < net.num_layers) {
                        const Index len = n * no;
                        if (net.act == Activation::relu) {
                            for (Index q = 0; q < len; ++q) out[q] = out[q] > T(0) ? out[q] : T(0);
                        } else {
                            for (Index q = 0; q < len; ++q) out[q] = std::tanh(out[q]);
                        }
                    }
                    in = out;
                    ld_in = no;
                    p = bias + no;
                }
                const std::int32_t ld_out = net.widths[net.num_layers];
                for (Index j = 0; j < n; ++j)
                    model.output(b.x.col(j).data(), in + j * ld_out, Model::stochastic ? b.eps.col(j).data() : nullptr,
                                 b.xn.col(j).data());
            } else {
                for (Index j = 0; j < n; ++j) {
                    const ObsAccessor<T, Kin> obs{&kin, batch.o, &b.kin[static_cast<std::size_t>(j)], b.x.col(j).data()};
                    model.step(task.member, b.x.col(j).data(), action(j), obs,
                               Model::stochastic ? b.eps.col(j).data() : nullptr, b.xn.col(j).data(), b.msc.data());
                }
            }
            for (Index j = 0; j < n; ++j) {
                kin.advance(batch.o, b.kin[static_cast<std::size_t>(j)], action(j));
                for (std::int32_t i = 0; i < X; ++i) b.x(i, j) = b.xn(i, j);
                viab.margins(b.x.col(j).data(), b.marg.col(j).data(), b.vsc.data());
                record_step(viab, b.marg.col(j).data(), s, h, b.out[static_cast<std::size_t>(j)]);
                if (batch.states) {
                    T* dst = batch.states + (rid[j] * h + s) * X;
                    for (std::int32_t i = 0; i < X; ++i) dst[i] = b.x(i, j);
                }
            }
        }
        for (Index j = 0; j < n; ++j) batch.outcomes[rid[j]] = b.out[static_cast<std::size_t>(j)];
    }

    std::int64_t max_rollouts_ = 0;
    std::vector<std::int64_t> order_;
    std::vector<Task> tasks_;
    std::vector<Buffers> buffers_;
};

}  // namespace persist::parallel
