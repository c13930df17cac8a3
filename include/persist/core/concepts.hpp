#pragma once
/// @file concepts.hpp
/// Every contract PERSIST plugs together, in one place. Small named concepts compose into
/// the ones the agent template asks for; each carries a one-line rationale. The catalogue
/// with examples is docs/concepts.md. Types that model these are found by the compiler, not
/// registered anywhere: write a class with these members and it plugs in.
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

namespace persist {

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

/// The scalar types networks and models are instantiated with.
template <class T>
concept Real = std::same_as<T, float> || std::same_as<T, double>;

/// A type that names the scalar it computes in, so parts of one agent can be checked to agree.
template <class X>
concept HasScalar = requires { typename X::scalar_type; } && Real<typename X::scalar_type>;

template <HasScalar X>
using scalar_of = typename X::scalar_type;

namespace detail {
/// A visitor accepting state tensors; used only to probe `visit_state`.
struct StateProbe {
    void operator()(TensorRef) const {}
};
}  // namespace detail

/// Exposes its trained state as named tensors (core/state.hpp): what makes it checkpointable.
template <class X>
concept Stateful = requires(X& x) { x.visit_state(detail::StateProbe{}); };

// ---------------------------------------------------------------------------------------------
// Networks (nn/)
// ---------------------------------------------------------------------------------------------

/// A differentiable map over batches with hand-written backward; parameters are views into
/// the owning network's flat buffers so optimizers and checkpoints see one vector.
template <class L>
concept Layer = HasScalar<L> && requires(L& l, const L& cl, scalar_of<L>* p, Rng& rng,
                                          MatCRef<scalar_of<L>> in, Mat<scalar_of<L>>& out,
                                          Mat<scalar_of<L>>* grad_in, typename L::Cache& cache) {
    { cl.in_dim() } -> std::convertible_to<Index>;
    { cl.out_dim() } -> std::convertible_to<Index>;
    { cl.param_count() } -> std::convertible_to<Index>;
    l.bind(p, p);
    cl.forward(in, out, cache);
    l.backward(in, in, in, grad_in, cache, true);
};

/// A trainable function approximator: forward into a caller-owned workspace (so acting at
/// B = 1 and learning at B = 256 never reallocate), backward accumulating into grads().
template <class N>
concept Network = HasScalar<N> && Stateful<N> &&
                  requires(N& n, const N& cn, MatCRef<scalar_of<N>> x, typename N::Workspace& ws,
                           Mat<scalar_of<N>>* grad_in) {
                      { cn.in_dim() } -> std::convertible_to<Index>;
                      { cn.out_dim() } -> std::convertible_to<Index>;
                      { cn.param_count() } -> std::convertible_to<Index>;
                      { n.params() } -> std::same_as<Vec<scalar_of<N>>&>;
                      { n.grads() } -> std::same_as<Vec<scalar_of<N>>&>;
                      n.zero_grad();
                      { cn.forward(x, ws) } -> std::same_as<const Mat<scalar_of<N>>&>;
                      n.backward(ws, x, grad_in, true);
                  };

// ---------------------------------------------------------------------------------------------
// Optimizers (optim/)
// ---------------------------------------------------------------------------------------------

/// Updates a flat parameter vector from its gradient; state is separate, resettable (after a
/// "fire" reset) and checkpointable.
template <class O, class T>
concept Optimizer = Real<T> && Stateful<O> && requires(O& o, VecRef<T> p, VecCRef<T> g) {
    o.step(p, g);
    o.reset();
};

// ---------------------------------------------------------------------------------------------
// Environments (env/)
// ---------------------------------------------------------------------------------------------

/// Gymnasium semantics with PERSIST's split state s = [o, x]: reset(seed) and step(a) fill a
/// caller-owned TimeStep, keeping terminated (no bootstrap) apart from truncated (time limit).
template <class E>
concept EnvironmentBase = HasScalar<E> && requires(E& e, const E& ce, std::uint64_t seed,
                                                   TimeStep<scalar_of<E>>& ts) {
    { ce.observation_dim() } -> std::convertible_to<Index>;
    { ce.internal_dim() } -> std::convertible_to<Index>;
    { ce.max_episode_steps() } -> std::convertible_to<Index>;
    e.reset(seed, ts);
};

/// Continuous Box actions in [action_low, action_high], the space a shield projects within.
template <class E>
concept ContinuousEnvironment = EnvironmentBase<E> &&
                                requires(E& e, const E& ce, VecCRef<scalar_of<E>> a,
                                         TimeStep<scalar_of<E>>& ts) {
                                    { ce.action_dim() } -> std::convertible_to<Index>;
                                    { ce.action_low() } -> std::convertible_to<Vec<scalar_of<E>>>;
                                    { ce.action_high() } -> std::convertible_to<Vec<scalar_of<E>>>;
                                    e.step(a, ts);
                                };

/// Finite action sets {0, ..., num_actions - 1} (e.g. CartPole-v1).
template <class E>
concept DiscreteEnvironment = EnvironmentBase<E> && requires(E& e, const E& ce, Index a,
                                                             TimeStep<scalar_of<E>>& ts) {
    { ce.num_actions() } -> std::convertible_to<Index>;
    e.step(a, ts);
};

/// Any environment the library can drive.
template <class E>
concept Environment = ContinuousEnvironment<E> || DiscreteEnvironment<E>;

/// An environment whose internal-state transition x' = f(x, a, o) is a known pure function,
/// so a shield can use it as an exact model.
template <class E>
concept KnownInternalDynamics =
    ContinuousEnvironment<E> &&
    requires(const E& ce, VecCRef<scalar_of<E>> x, VecCRef<scalar_of<E>> a,
             VecCRef<scalar_of<E>> o, VecRef<scalar_of<E>> x_next) {
        ce.internal_transition(x, a, o, x_next);
    };

// ---------------------------------------------------------------------------------------------
// Homeostasis and viability (homeostasis/, viability/)
// ---------------------------------------------------------------------------------------------

/// R_homeo(x) = -sum_j w_j (x_j - mu_j)^2 or any drive with a gradient in x, which
/// gradient-based shields and reward shaping need.
template <class H>
concept Homeostat = HasScalar<H> && requires(const H& h, VecCRef<scalar_of<H>> x,
                                             VecRef<scalar_of<H>> grad) {
    { h.dim() } -> std::convertible_to<Index>;
    { h.reward(x) } -> std::convertible_to<scalar_of<H>>;
    h.gradient(x, grad);
};

/// Margins of the viability set per constraint, positive = safe, in the variables' units;
/// batched over columns because shields evaluate thousands of rollout states at once.
template <class V>
concept ViabilityModel = HasScalar<V> && requires(const V& v, MatCRef<scalar_of<V>> x,
                                                  MatRef<scalar_of<V>> margins) {
    { v.dim() } -> std::convertible_to<Index>;
    { v.num_constraints() } -> std::convertible_to<Index>;
    v.margins(x, margins);  ///< margins: num_constraints x B
};

/// Predicts x_{t+1} from (x_t, a_t, o_t) over batches: a mean for planning and a sample
/// (from an ensemble member / predictive distribution) for the shield's K rollouts.
template <class M>
concept InternalModel = HasScalar<M> && requires(M& m, MatCRef<scalar_of<M>> x,
                                                 MatCRef<scalar_of<M>> a, MatCRef<scalar_of<M>> o,
                                                 Mat<scalar_of<M>>& x_next, Rng& rng) {
    { m.internal_dim() } -> std::convertible_to<Index>;
    { m.action_dim() } -> std::convertible_to<Index>;
    m.predict(x, a, o, x_next);
    m.sample(x, a, o, x_next, rng);
};

// ---------------------------------------------------------------------------------------------
// Intrinsic rewards, shields, policies, replay
// ---------------------------------------------------------------------------------------------

/// R_intr(s, a, o') per sample (surprise, RND, empowerment, or none), learned from replay.
template <class I>
concept Intrinsic = HasScalar<I> && requires(I& i, MatCRef<scalar_of<I>> s,
                                             MatCRef<scalar_of<I>> a, MatCRef<scalar_of<I>> o_next,
                                             VecRef<scalar_of<I>> out,
                                             const TransitionBatch<scalar_of<I>>& batch) {
    i.reward(s, a, o_next, out);
    i.update(batch);
};

/// Filters a proposed action: returns it, or the nearest action predicted to keep x inside
/// the viability set with the required confidence, and says which it did.
template <class S>
concept Shield = HasScalar<S> && requires(S& sh, VecCRef<scalar_of<S>> a,
                                          VecCRef<scalar_of<S>> o, VecCRef<scalar_of<S>> x,
                                          VecRef<scalar_of<S>> a_safe) {
    { sh.project(a, o, x, a_safe) } -> std::same_as<ShieldDecision<scalar_of<S>>>;
};

/// The learner: acts on s = [o, x], updates from sampled batches, and checkpoints its state.
template <class P>
concept Policy = HasScalar<P> && Stateful<P> &&
                 requires(P& p, VecCRef<scalar_of<P>> s, VecRef<scalar_of<P>> a, Rng& rng,
                          const TransitionBatch<scalar_of<P>>& batch) {
                     { p.state_dim() } -> std::convertible_to<Index>;
                     { p.action_dim() } -> std::convertible_to<Index>;
                     p.act(s, a, rng);           ///< stochastic (training)
                     p.act_deterministic(s, a);  ///< evaluation
                     p.update(batch);
                 };

/// A belief over x when the policy cannot read it (partial observability, seed section 11):
/// x_hat_0 from o_0, then x_hat_{t+1} from (o_t, a_t, o_{t+1}); a GRU learned from replay or a
/// Kalman filter on an internal model (models/state_estimator.hpp, models/kalman_filter.hpp).
template <class E>
concept StateEstimator = HasScalar<E> && Stateful<E> &&
                         requires(E& e, const E& ce, VecCRef<scalar_of<E>> o, VecCRef<scalar_of<E>> a) {
                             { ce.obs_dim() } -> std::convertible_to<Index>;
                             { ce.state_dim() } -> std::convertible_to<Index>;
                             { e.begin_episode(o) } -> std::same_as<const Vec<scalar_of<E>>&>;
                             { e.step(o, a, o) } -> std::same_as<const Vec<scalar_of<E>>&>;
                             { ce.estimate() } -> std::same_as<const Vec<scalar_of<E>>&>;
                         };

/// A StateEstimator that learns from contiguous replay sequences with the true x: `update(obs,
/// x)` takes N sequences of sequence_length() steps, time-major, and returns the loss.
template <class E>
concept TrainableStateEstimator = StateEstimator<E> && requires(E& e, const E& ce, MatCRef<scalar_of<E>> m) {
    { ce.sequence_length() } -> std::convertible_to<Index>;
    { ce.batch_size() } -> std::convertible_to<Index>;
    { e.update(m, m) } -> std::convertible_to<scalar_of<E>>;
};

/// Stores transitions and samples minibatches into a preallocated TransitionBatch.
template <class R>
concept ReplayBuffer = HasScalar<R> && requires(R& r, const R& cr,
                                                const TransitionView<scalar_of<R>>& t, Index n,
                                                Rng& rng, TransitionBatch<scalar_of<R>>& batch) {
    { cr.size() } -> std::convertible_to<Index>;
    { cr.capacity() } -> std::convertible_to<Index>;
    r.add(t);
    r.sample(n, rng, batch);
    r.clear();
};

}  // namespace persist
