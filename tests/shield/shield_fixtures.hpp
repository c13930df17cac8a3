#pragma once
// Shared builders for the shield tests: a Gaussian ensemble view made from nn::MLP objects
// (their flat params() have the MLPView layout) with hand-made normalisers, a straightforward
// scalar reference of the rollouts, and GridLife scenes.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "persist/core/random.hpp"
#include "persist/core/types.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/parallel/rollout.hpp"
#include "persist/viability/constraints.hpp"

namespace shieldtest {

using persist::Index;
using persist::Mat;
using persist::Vec;

template <class T>
persist::parallel::MLPView<T> view_of(const persist::nn::MLP<T>& net) {
    persist::parallel::MLPView<T> v;
    v.params = net.params().data();
    v.num_layers = static_cast<std::int32_t>(net.widths().size() - 1);
    for (std::size_t l = 0; l < net.widths().size(); ++l) v.widths[l] = static_cast<std::int32_t>(net.widths()[l]);
    v.act = persist::parallel::Activation::relu;
    return v;
}

/// M members X + A + F -> hidden -> hidden -> 2X, normalisers chosen by hand.
template <class T>
struct Ensemble {
    std::int32_t X, A, F;
    std::vector<persist::nn::MLP<T>> nets;
    Vec<T> in_mean, in_std, delta_mean, delta_std;
    std::vector<std::int32_t> features;

    Ensemble(std::int32_t members, std::int32_t hidden, std::int32_t X_, std::int32_t A_, std::int32_t F_,
             std::uint64_t seed, T delta_scale = T(0.02))
        : X(X_), A(A_), F(F_) {
        persist::Rng rng(seed);
        const Index D = X + A + F;
        for (std::int32_t m = 0; m < members; ++m) {
            nets.emplace_back(std::vector<Index>{D, hidden, hidden, 2 * X});
            nets.back().init(rng);
        }
        in_mean.resize(D);
        in_std.resize(D);
        for (Index i = 0; i < D; ++i) {
            in_mean[i] = T(0.1) * rng.uniform<T>(T(-1), T(1));
            in_std[i] = T(0.5) + rng.uniform<T>();
        }
        delta_mean.resize(X);
        delta_std.resize(X);
        for (Index i = 0; i < X; ++i) {
            delta_mean[i] = T(0.2) * delta_scale * rng.uniform<T>(T(-1), T(1));
            delta_std[i] = delta_scale * (T(0.5) + rng.uniform<T>());
        }
        for (std::int32_t f = 0; f < F; ++f) features.push_back(2 * f + 1);  // o[1], o[3], ...
    }
    persist::parallel::GaussianEnsembleView<T> view() const {
        persist::parallel::GaussianEnsembleView<T> v;
        v.members = static_cast<std::int32_t>(nets.size());
        v.internal_dim = X;
        v.action_dim = A;
        v.num_obs_features = F;
        for (std::size_t m = 0; m < nets.size(); ++m) v.member[m] = view_of(nets[m]);
        v.in_mean = in_mean.data();
        v.in_std = in_std.data();
        v.delta_mean = delta_mean.data();
        v.delta_std = delta_std.data();
        v.obs_features = features.data();
        return v;
    }
    persist::parallel::EnsembleRolloutModel<T> model() const { return {view()}; }
};

/// Straightforward reference of one rollout of the ensemble with HoldObservation and a
/// ConstraintSet: Eigen forward of nn::MLP per step, margins by ConstraintSet::margins.
template <class T>
struct ReferenceOutcome {
    std::int32_t first_violation;
    std::int32_t violated_constraint;
    T min_margin;
    std::vector<Vec<T>> states;
};

template <class T>
ReferenceOutcome<T> reference_rollout(const Ensemble<T>& e, const persist::viability::ConstraintSet<T>& cs,
                                      const Vec<T>& x0, const Vec<T>& o, const Vec<T>& a, std::int32_t h,
                                      std::uint64_t seed, std::uint64_t call, std::uint32_t cand, std::uint32_t k) {
    const auto M = static_cast<std::int32_t>(e.nets.size());
    const auto& net = e.nets[static_cast<std::size_t>(static_cast<std::int32_t>(k) % M)];
    auto ws = net.make_workspace();
    Vec<T> x = x0, z(e.X + e.A + e.F), eps(e.X);
    Mat<T> m(cs.num_constraints(), 1);
    ReferenceOutcome<T> out{h, -1, std::numeric_limits<T>::infinity(), {}};
    for (std::int32_t s = 0; s < h; ++s) {
        persist::parallel::rollout_normals<T>(seed, call, cand, k, static_cast<std::uint32_t>(s), e.X, eps.data());
        z.head(e.X) = x;
        z.segment(e.X, e.A) = a;
        for (std::int32_t f = 0; f < e.F; ++f) z[e.X + e.A + f] = o[e.features[static_cast<std::size_t>(f)]];
        z = ((z - e.in_mean).array() / e.in_std.array()).matrix();
        const Mat<T>& y = net.forward(z, ws);
        for (std::int32_t i = 0; i < e.X; ++i) {
            const T r = y(e.X + i, 0);
            const T hi = T(0.5), lo = T(-5);
            T ls = hi - std::log1p(std::exp(hi - r));
            ls = lo + std::log1p(std::exp(ls - lo));
            x[i] = x[i] + (e.delta_mean[i] + e.delta_std[i] * (y(i, 0) + std::exp(ls) * eps[i]));
        }
        out.states.push_back(x);
        if (out.first_violation < h) continue;
        cs.margins(Mat<T>(x), m);
        T worst = 0;
        for (Index c = 0; c < cs.num_constraints(); ++c) {
            out.min_margin = std::min(out.min_margin, m(c, 0));
            if (!cs.satisfied(c, m(c, 0)) && (out.violated_constraint < 0 || m(c, 0) < worst)) {
                worst = m(c, 0);
                out.violated_constraint = static_cast<std::int32_t>(c);
            }
        }
        if (out.violated_constraint >= 0) out.first_violation = s;
    }
    return out;
}

/// The seed's constraints over GridLife's x.
template <class T>
persist::viability::ConstraintSet<T> seed_constraints() {
    return persist::viability::ConstraintSet<T>({"energy", "temp", "integrity"},
                                                {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"});
}

/// Constraints for a generic 3-variable ensemble (one of each kind).
template <class T>
persist::viability::ConstraintSet<T> toy_constraints() {
    return persist::viability::ConstraintSet<T>({"u", "v", "w"},
                                                {"u >= -0.06", "v in [-0.08, 0.08]", "u + 0.5*w < 0.07"});
}

}  // namespace shieldtest
