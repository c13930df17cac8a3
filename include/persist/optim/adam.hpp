#pragma once
/// @file adam.hpp
/// Adam (Kingma & Ba 2015, Algorithm 1) with optional AMSGrad (Reddi et al. 2018), and AdamW
/// (Loshchilov & Hutter 2019, Algorithm 2: decoupled weight decay), as documented for
/// torch.optim.Adam / torch.optim.AdamW. One class template; the weight-decay policy picks
/// the variant.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "persist/optim/optimizer.hpp"

namespace persist::optim {

/// Hyperparameters of Adam (torch.optim.Adam defaults).
template <class T>
struct AdamOptions {
    T lr = T(1e-3);            ///< gamma
    T beta1 = T(0.9);          ///< first-moment decay, [0, 1)
    T beta2 = T(0.999);        ///< second-moment decay, [0, 1)
    T eps = T(1e-8);           ///< added to sqrt(v_hat), >= 0
    T weight_decay = T(0);     ///< lambda >= 0
    bool amsgrad = false;      ///< normalise by max_t v_t (Reddi et al. 2018)
};

/// Hyperparameters of AdamW: as Adam, but weight decay defaults to 1e-2 (torch.optim.AdamW).
template <class T>
struct AdamWOptions {
    T lr = T(1e-3);
    T beta1 = T(0.9);
    T beta2 = T(0.999);
    T eps = T(1e-8);
    T weight_decay = T(1e-2);
    bool amsgrad = false;
};

/// Weight-decay policy of Adam: L2 penalty folded into the gradient, g <- g + lambda theta.
struct CoupledWeightDecay {
    static constexpr const char* name = "Adam";
    static constexpr bool decoupled = false;
    template <class T>
    using options = AdamOptions<T>;
};

/// Weight-decay policy of AdamW: theta <- theta (1 - gamma lambda) before the Adam step.
struct DecoupledWeightDecay {
    static constexpr const char* name = "AdamW";
    static constexpr bool decoupled = true;
    template <class T>
    using options = AdamWOptions<T>;
};

/// Adam / AdamW. Per step t (torch.optim.Adam/AdamW documentation):
///   m_t = b1 m + (1 - b1) g,  v_t = b2 v + (1 - b2) g^2,
///   v_max = max(v_max, v_t) if amsgrad,
///   theta <- theta - gamma / (1 - b1^t) * m_t / (sqrt(v) / sqrt(1 - b2^t) + eps).
/// @tparam T float or double.
/// @tparam DecayPolicy CoupledWeightDecay (Adam) or DecoupledWeightDecay (AdamW).
template <class T, class DecayPolicy>
class AdamBase {
    static_assert(Real<T>,
                  "persist::optim::Adam<T>/AdamW<T>: T must be float or double (docs/optim.md)");

public:
    using scalar_type = T;
    using Options = typename DecayPolicy::template options<T>;
    struct State {
        Vec<T> m;                 ///< first moment
        Vec<T> v;                 ///< second moment
        Vec<T> v_max;             ///< running max of v (amsgrad only, else empty)
        std::int64_t step = 0;    ///< t
    };

    explicit AdamBase(Index n_params, const Options& options = {}) : n_(n_params), opt_(options) {
        detail::check_n(name(), n_params);
        validate(opt_);
        state_.m.setZero(n_);
        state_.v.setZero(n_);
        if (opt_.amsgrad) state_.v_max.setZero(n_);
    }

    static constexpr const char* name() { return DecayPolicy::name; }

    static void validate(const Options& o) {
        detail::require_lr(name(), static_cast<double>(o.lr));
        detail::require(detail::unit_half_open(o.beta1), name(), "beta1", "in [0, 1)", o.beta1);
        detail::require(detail::unit_half_open(o.beta2), name(), "beta2", "in [0, 1)", o.beta2);
        detail::require(detail::finite_nonneg(o.eps), name(), "eps", "finite and >= 0", o.eps);
        detail::require(detail::finite_nonneg(o.weight_decay), name(), "weight_decay",
                        "finite and >= 0", o.weight_decay);
    }

    Index size() const { return n_; }
    const Options& options() const { return opt_; }
    const State& state() const { return state_; }

    void step(VecRef<T> params, VecCRef<T> grads) {
        detail::check_step(name(), n_, params, grads);
        const std::int64_t t = ++state_.step;
        // Scalar factors in double, as torch computes them from Python floats.
        const double bc1 = 1.0 - std::pow(static_cast<double>(opt_.beta1), static_cast<double>(t));
        const double bc2 = 1.0 - std::pow(static_cast<double>(opt_.beta2), static_cast<double>(t));
        const T step_size = static_cast<T>(static_cast<double>(opt_.lr) / bc1);
        const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
        // The three element-wise passes (decay, moments, update) run chunk by chunk so that each
        // chunk of p, g, m, v is read from cache once instead of three times: the same
        // operations per element, so the same values as whole-vector passes.
        constexpr Index chunk = 1024;
        for (Index b = 0; b < n_; b += chunk) {
            const Index len = std::min(chunk, n_ - b);
            auto p = params.segment(b, len).array();
            const auto g = grads.segment(b, len).array();
            update_chunk(p, g, b, len, step_size, bc2_sqrt);
        }
    }

    void reset() {
        state_.m.setZero();
        state_.v.setZero();
        state_.v_max.setZero();
        state_.step = 0;
    }
    void set_lr(T lr) {
        detail::require_lr(name(), static_cast<double>(lr));
        opt_.lr = lr;
    }
    T lr() const { return opt_.lr; }

    template <class V>
    void visit_state(V&& v) {
        const auto n = static_cast<std::int64_t>(n_);
        v(state_tensor("m", state_.m.data(), {n}));
        v(state_tensor("v", state_.v.data(), {n}));
        if (opt_.amsgrad) v(state_tensor("v_max", state_.v_max.data(), {n}));
        v(state_tensor("step", &state_.step, {}));
    }

private:
    template <class P, class G>
    void update_chunk(P& p, const G& g, Index b, Index len, T step_size, T bc2_sqrt) {
        const T wd = opt_.weight_decay;
        if constexpr (DecayPolicy::decoupled) {
            p *= static_cast<T>(1.0 - static_cast<double>(opt_.lr) * static_cast<double>(wd));
            moments(g, b, len);
        } else {
            if (wd != T(0)) {
                moments(g + wd * p, b, len);
            } else {
                moments(g, b, len);
            }
        }
        const auto m = state_.m.segment(b, len).array();
        const auto v = state_.v.segment(b, len).array();
        if (opt_.amsgrad) {
            auto vmax = state_.v_max.segment(b, len).array();
            vmax = vmax.max(v);
            p -= step_size * m / (vmax.sqrt() / bc2_sqrt + opt_.eps);
        } else {
            p -= step_size * m / (v.sqrt() / bc2_sqrt + opt_.eps);
        }
    }

    template <class G>
    void moments(const G& g, Index b, Index len) {
        const T b1 = opt_.beta1, b2 = opt_.beta2;
        auto m = state_.m.segment(b, len).array();
        auto v = state_.v.segment(b, len).array();
        m = b1 * m + (T(1) - b1) * g;
        v = b2 * v + (T(1) - b2) * g * g;
    }

    Index n_;
    Options opt_;
    State state_;
};

/// torch.optim.Adam: L2 weight decay in the gradient.
template <class T>
using Adam = AdamBase<T, CoupledWeightDecay>;
/// torch.optim.AdamW: decoupled weight decay (the seed guide's reliable baseline after fires).
template <class T>
using AdamW = AdamBase<T, DecoupledWeightDecay>;

}  // namespace persist::optim
