#pragma once
/// @file known_dynamics.hpp
/// The "known dynamics" internal model: an environment whose internal transition
/// x' = f(x, a, o) is a public pure function (persist::KnownInternalDynamics, e.g. GridLife's
/// `internal_transition`) used as an exact, deterministic persist::InternalModel. For tests
/// (property tests of the shield with a perfect model) and for users who know their dynamics
/// (seed section 1: "learned or known internal-state transition"). docs/models.md.
#include <concepts>
#include <string>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/types.hpp"

namespace persist::models {

/// Environments that also offer a batched transition over columns (GridLife does).
template <class E>
concept BatchedKnownInternalDynamics =
    KnownInternalDynamics<E> &&
    requires(const E& ce, MatCRef<scalar_of<E>> x, MatCRef<scalar_of<E>> a, MatCRef<scalar_of<E>> o,
             MatRef<scalar_of<E>> x_next) { ce.internal_transition_batch(x, a, o, x_next); };

/// f(x, a, o) of an environment as an InternalModel: predict == sample (no noise; the Rng is
/// not touched). Holds a pointer to the environment, which must outlive this object; only the
/// const transition function is called, so stepping the environment meanwhile is fine (the
/// dynamics read the map only through o).
/// @tparam Env a persist::KnownInternalDynamics environment
template <class Env>
    requires KnownInternalDynamics<Env>
class KnownDynamics {
public:
    using scalar_type = scalar_of<Env>;
    using T = scalar_type;
    using env_type = Env;

    explicit KnownDynamics(const Env& env) : env_(&env) {}

    Index internal_dim() const { return static_cast<Index>(env_->internal_dim()); }
    Index action_dim() const { return static_cast<Index>(env_->action_dim()); }
    Index observation_dim() const { return static_cast<Index>(env_->observation_dim()); }
    const Env& environment() const { return *env_; }

    /// x_next (resized to X x B) = f(x, a, o) column by column. Shapes as the environment's
    /// transition expects (ShapeError otherwise): x X x B, a A x B, o observation_dim x B.
    void predict(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& x_next) const {
        const Index B = x.cols();
        const Index X = internal_dim();
        if (x.rows() != X) persist::detail::throw_shape("KnownDynamics::predict: x", X, B, x.rows(), B);
        if (a.cols() != B) persist::detail::throw_shape("KnownDynamics::predict: a", action_dim(), B, a.rows(), a.cols());
        if (o.cols() != B)
            persist::detail::throw_shape("KnownDynamics::predict: o", observation_dim(), B, o.rows(), o.cols());
        ensure_shape(x_next, X, B);
        if constexpr (BatchedKnownInternalDynamics<Env>) {
            env_->internal_transition_batch(x, a, o, x_next);
        } else {
            for (Index b = 0; b < B; ++b) env_->internal_transition(x.col(b), a.col(b), o.col(b), x_next.col(b));
        }
    }
    /// Same as predict: the dynamics are deterministic. `rng` is not used.
    void sample(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& x_next, Rng&) const { predict(x, a, o, x_next); }

    /// Margins of f(x, a, o) under a viability model (num_constraints x B).
    template <ViabilityModel V>
        requires std::same_as<scalar_of<V>, T>
    void predict_margins(const V& viability, MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, Mat<T>& margins_out) {
        if (viability.dim() != internal_dim())
            throw ShapeError("KnownDynamics::predict_margins: the viability model has dim " +
                             std::to_string(viability.dim()) + ", expected internal_dim " +
                             std::to_string(internal_dim()));
        predict(x, a, o, xn_);
        ensure_shape(margins_out, viability.num_constraints(), x.cols());
        viability.margins(xn_, margins_out);
    }

    /// Nothing is learned: an empty state, so it can sit in a checkpoint next to learned models.
    template <class V>
    void visit_state(V&&) {}

private:
    const Env* env_;
    Mat<T> xn_;
};

}  // namespace persist::models
