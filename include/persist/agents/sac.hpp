#pragma once
/// @file sac.hpp
/// Soft Actor-Critic with automatic entropy tuning (Haarnoja et al. 2018, "Soft Actor-Critic
/// Algorithms and Applications", arXiv:1812.05905, Algorithm 1). Models persist::Policy.
///
/// One update on a batch (s, a, r, s', terminated), s = [observation; internal]:
///   critics  (eq. 5)  L_Q = sum_i 1/2 mean_j (Q_i(s, a) - y)^2,
///                     y = r + gamma (1 - terminated) (min_i Qbar_i(s', a') - alpha log pi(a'|s')),
///                     a' ~ pi(.|s')                       (truncated transitions bootstrap)
///   actor    (eq. 9)  L_pi = mean_j (alpha log pi(a~|s) - min_i Q_i(s, a~)),  a~ = f(eps; s)
///   alpha    (eq. 18) L_alpha = -log_alpha mean_j (log pi(a~|s) + target_entropy)
///   targets           theta_bar <- (1 - tau) theta_bar + tau theta  (flat parameter vectors)
/// in that order (Algorithm 1), each loss with its own optimizer. Every gradient is hand-written
/// through the networks' backward passes: dQ/da by backward(param_grads = false) through both
/// critics, then the TanhGaussian head. Actions are learned in the normalised box [-1, 1]^A
/// (tanh output); act() maps them to [low, high] with a = scale * tanh(u) + bias, and update()
/// maps stored actions back, so critics see normalised actions and log pi (and the entropy
/// target) are measured in [-1, 1]^A. docs/sac.md.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/activations.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/nn/tanh_gaussian.hpp"
#include "persist/optim/adam.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if (defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)) && !defined(__CUDA_ARCH__)
#include <xmmintrin.h>
#define PERSIST_SAC_HAS_MXCSR 1
#else
#define PERSIST_SAC_HAS_MXCSR 0
#endif

namespace persist::agents {

/// Hyperparameters of SAC (defaults: Haarnoja et al. 2018, table 1, and SB3/CleanRL).
struct SACOptions {
    std::vector<Index> hidden{256, 256};  ///< hidden widths of actor and critics
    double actor_lr = 3e-4;               ///< learning rate of the actor's optimizer
    double critic_lr = 3e-4;              ///< learning rate of each critic's optimizer
    double alpha_lr = 3e-4;               ///< learning rate of log alpha's optimizer
    double gamma = 0.99;                  ///< discount, [0, 1]
    double tau = 0.005;                   ///< Polyak rate of the target critics, [0, 1]
    double init_alpha = 1.0;              ///< initial temperature, > 0
    bool autotune_alpha = true;           ///< learn alpha (eq. 18); false keeps init_alpha
    /// Target entropy H-bar in nats in the normalised action box; default -action_dim.
    std::optional<double> target_entropy{};
    Index target_update_interval = 1;     ///< Polyak update every this many updates, >= 1
    nn::TanhGaussianOptions head{};       ///< log-std bounds of the policy head
    nn::MLPOptions actor_mlp{};           ///< used when the network is built from (widths, MLPOptions)
    nn::MLPOptions critic_mlp{};          ///< e.g. {.layer_norm = true}
    std::uint64_t seed = 0;               ///< network initialisation and the update noise stream
    /// Behaviour cloning (bc_gradients): demonstration actions normalised to [-1, 1] are moved
    /// this far inside (atanh(+-1) is infinite), in (0, 0.5].
    double bc_squeeze = 1e-3;
    /// Flush subnormal numbers to zero (x86 FTZ + DAZ) inside act/update, restoring the caller's
    /// mode on return. Adam's first moment of a parameter whose gradient stays 0 (a dead ReLU
    /// unit) decays through the subnormal range, where x86 arithmetic is ~100x slower: measured
    /// 7x slower optimizer steps at 64 x 64. Changes results only for values below ~1e-38 (float).
    bool flush_denormals = true;
    /// Threads of update(), >= 1. With 2 or more (and OpenMP), the work of the two critics
    /// (target forwards, critic forward/backward/optimizer step, the actor step's forwards and
    /// dQ/da, Polyak averaging) and the actor's two forwards (s' and s) run on two threads, and
    /// the actor's backward in blocks on two threads (MLPOptions::threads, when the network has
    /// it and actor_mlp left it at 1); more than 2 are not used. Each thread computes what the
    /// serial code computes: bitwise the same results for every value with float networks on
    /// the AVX-512 kernel, the same results for a given value elsewhere (docs/sac.md). Without
    /// OpenMP update() runs serially.
    Index threads = 1;
};

/// What one update did, for metrics.
template <class T>
struct SACStats {
    T q_loss = 0;       ///< L_Q: sum over both critics of 1/2 mean (Q_i - y)^2
    T actor_loss = 0;   ///< L_pi = mean(alpha log pi - min Q)
    T alpha_loss = 0;   ///< L_alpha = -log_alpha mean(log pi + target_entropy)
    T alpha = 0;        ///< the temperature used by this update's losses (before its alpha step)
    T entropy = 0;      ///< -mean(log pi(a~|s)), the entropy estimate of this batch
    T q_mean = 0;       ///< mean of Q_1(s, a) over the batch (before the critic step)
    T bc_loss = 0;      ///< -mean log pi(a_demo|s_demo) of the demonstration batch (0 without one)
};

/// Demonstration steps for behaviour cloning (SAC::behavior_clone, SAC::update with
/// demonstrations): column j is one step (s_j = [observation; internal], a_j in the action box).
/// Filled by the caller (e.g. from replay::DemonstrationBuffer), reused across updates.
template <class T>
struct DemoBatch {
    Mat<T> observation;  ///< observation_dim x B
    Mat<T> internal;     ///< internal_dim x B (0 rows when internal_dim = 0)
    Mat<T> action;       ///< A x B, in the action box
    Index size() const { return action.cols(); }
};

namespace detail {

/// What SAC needs of a network: the Network contract, construction from widths
/// {in, hidden..., out}, copies (the target critics) and init(rng).
template <class N>
concept SACNetwork = persist::Network<N> && std::copy_constructible<N> &&
                     std::constructible_from<N, std::vector<Index>> && requires(N& n, Rng& rng) {
                         n.init(rng);
                     };

/// What SAC needs of an optimizer: the Optimizer contract and construction from
/// (n_params, Options) with an `lr` option.
template <class O, class T>
concept SACOptimizer = persist::Optimizer<O, T> && requires(typename O::Options o) {
    o.lr = T(1);
    O(Index(1), o);
};

/// Sets FTZ and DAZ in MXCSR for its lifetime (when `on`) and restores the caller's control
/// bits (rounding mode, masks, FTZ, DAZ) afterwards.
class ScopedFlushDenormals {
public:
    explicit ScopedFlushDenormals([[maybe_unused]] bool on) {
#if PERSIST_SAC_HAS_MXCSR
        if (on) {
            saved_ = _mm_getcsr();
            active_ = true;
            _mm_setcsr(saved_ | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
        }
#endif
    }
    ~ScopedFlushDenormals() {
#if PERSIST_SAC_HAS_MXCSR
        // The control bits come back; exception flags raised meanwhile (bits 0-5) are kept.
        if (active_) _mm_setcsr((saved_ & ~0x3Fu) | (_mm_getcsr() & 0x3Fu));
#endif
    }
    ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
    ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;

private:
    [[maybe_unused]] unsigned saved_ = 0;
    [[maybe_unused]] bool active_ = false;
};

inline void sac_require(bool ok, const char* name, const std::string& what, double value) {
    if (!ok)
        throw ConfigError(std::string("SACOptions.") + name + " = " + std::to_string(value) +
                          ": expected " + what);
}

}  // namespace detail

/// Soft Actor-Critic: twin critics with Polyak-averaged targets, tanh-Gaussian actor, learned
/// temperature. No allocation in act(), act_deterministic() or update() at a fixed batch size
/// (after the first call at that size).
/// @tparam T         float or double
/// @tparam Network   actor and critic network type (persist::Network, constructible from widths)
/// @tparam Optimizer optimizer of actor, each critic and log alpha (constructible from
///                   (n_params, Options) with an `lr` option), e.g. optim::AdamW<T>
template <class T = float, class Network = nn::MLP<T, nn::ReLU>,
          class Optimizer = optim::Adam<T>>
class SAC {
    static_assert(Real<T>, "persist::agents::SAC<T>: T must be float or double (docs/sac.md)");
    static_assert(detail::SACNetwork<Network>,
                  "persist::agents::SAC: Network must model persist::Network, be copyable, be "
                  "constructible from std::vector<Index> widths {in, hidden..., out} and have "
                  "init(Rng&) (like nn::MLP; docs/sac.md)");
    static_assert(std::same_as<scalar_of<Network>, T>,
                  "persist::agents::SAC: Network::scalar_type must be T");
    static_assert(detail::SACOptimizer<Optimizer, T>,
                  "persist::agents::SAC: Optimizer must model persist::Optimizer<O, T> and be "
                  "constructible from (Index n_params, Options) with an `lr` option (docs/optim.md)");

public:
    using scalar_type = T;
    using network_type = Network;
    using optimizer_type = Optimizer;
    using Options = SACOptions;
    using Stats = SACStats<T>;
    using Head = nn::TanhGaussian<T>;

    /// Buffers of one batch size (update) or of B = 1 (acting); reused so nothing allocates.
    struct Workspace {
        Mat<T> sa, sa_next;     // (S + A) x B: [s; a] and [s'; a']
        Mat<T> sa_pi;           // (S + A) x B: [s; a~] (actor step)
        Mat<T> eps, eps_next;   // A x B: reparameterisation noise of a~ and a'
        typename Network::Workspace actor, q1, q2;   // actor on s (actor step); critics
        typename Network::Workspace actor_next;      // actor on s' (TD target)
        typename Network::Workspace q1_pi, q2_pi;    // critics on [s; a~] (actor step)
        typename Head::Workspace head;               // a~ ~ pi(.|s) (actor step)
        typename Head::Workspace head_next;          // a' ~ pi(.|s') (TD target)
        Mat<T> y;               // 1 x B: TD target
        Mat<T> d1, d2;          // 1 x B: Q_i(s, a) - y
        Mat<T> g1, g2;          // 1 x B: dL/dQ_i (critic step)
        Mat<T> gp1, gp2;        // 1 x B: dL/dQ_i (actor step)
        Mat<T> dsa1, dsa2;      // A x B: dL/da through each critic
        Mat<T> da;              // A x B: dL/da~
        Mat<T> dlogp;           // 1 x B: dL/dlog pi
        Mat<T> logp;            // 1 x B: log pi(a~|s) of the actor step (for alpha)
        Mat<T> action;          // A x 1: acting
        // behaviour cloning (demonstration batch)
        Mat<T> bc_s;            // S x B_demo
        Mat<T> bc_a;            // A x B_demo: demonstration actions in (-1, 1)
        Mat<T> bc_g;            // 1 x B_demo: dL/dlog pi
        typename Network::Workspace bc_actor;
        typename Head::Workspace bc_head;
    };

    /// @param observation_dim, internal_dim  s = [observation; internal] (internal may be 0)
    /// @param action_low, action_high        the action box; tanh outputs are mapped onto it
    SAC(Index observation_dim, Index internal_dim, const Vec<T>& action_low,
        const Vec<T>& action_high, const Options& options = {})
        : opt_(validated(options, observation_dim, internal_dim, action_low, action_high)),
          obs_dim_(observation_dim),
          int_dim_(internal_dim),
          S_(observation_dim + internal_dim),
          A_(action_low.size()),
          actor_(make_net(widths(S_, 2 * A_), opt_.actor_mlp)),
          q1_(make_net(widths(S_ + A_, 1), opt_.critic_mlp)),
          q2_(make_net(widths(S_ + A_, 1), opt_.critic_mlp)),
          q1_target_(q1_),
          q2_target_(q2_),
          head_(A_, opt_.head),
          actor_opt_(make_opt(actor_.param_count(), opt_.actor_lr)),
          q1_opt_(make_opt(q1_.param_count(), opt_.critic_lr)),
          q2_opt_(make_opt(q2_.param_count(), opt_.critic_lr)),
          alpha_opt_(make_opt(1, opt_.alpha_lr)),
          log_alpha_(Vec<T>::Constant(1, static_cast<T>(std::log(opt_.init_alpha)))),
          alpha_grad_(Vec<T>::Zero(1)),
          scale_((action_high - action_low) / T(2)),
          bias_((action_high + action_low) / T(2)),
          gamma_(static_cast<T>(opt_.gamma)),
          tau_(static_cast<T>(opt_.tau)),
          target_entropy_(static_cast<T>(opt_.target_entropy.value_or(-static_cast<double>(A_)))),
          rng_seed_(opt_.seed) {
        Rng init_rng(opt_.seed);
        actor_.init(init_rng);
        q1_.init(init_rng);
        q2_.init(init_rng);
        q1_target_.params() = q1_.params();
        q2_target_.params() = q2_.params();
        // threads >= 2: the actor's own passes (its backward, behaviour cloning) in column and
        // row blocks too, unless actor_mlp chose a count (the critics run on one thread each).
        if constexpr (requires(Network& n) { n.set_threads(Index(2)); n.threads(); })
            if (opt_.threads >= 2 && actor_.threads() < 2) actor_.set_threads(2);
        inv_scale_ = scale_.cwiseInverse();
        sync_rng();
    }

    /// Build for an environment's dimensions and action box (any scalar; converted to T).
    template <ContinuousEnvironment E>
    explicit SAC(const E& env, const Options& options = {})
        : SAC(env.observation_dim(), env.internal_dim(), env.action_low().template cast<T>(),
              env.action_high().template cast<T>(), options) {}

    // --- persist::Policy ------------------------------------------------------------------

    Index state_dim() const { return S_; }
    Index action_dim() const { return A_; }
    Index observation_dim() const { return obs_dim_; }
    Index internal_dim() const { return int_dim_; }

    /// a = scale * tanh(mean + std eps) + bias with eps ~ N(0, I) drawn from `rng` (training).
    void act(VecCRef<T> s, VecRef<T> a, Rng& rng) {
        check_act(s, a);
        const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
        const Mat<T>& out = actor_.forward(s, act_ws_.actor);
        const Mat<T>& u = head_.sample(out, rng, act_ws_.head);
        a = scale_.cwiseProduct(u.col(0)) + bias_;
    }
    /// a = scale * tanh(mean) + bias (evaluation).
    void act_deterministic(VecCRef<T> s, VecRef<T> a) {
        check_act(s, a);
        const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
        const Mat<T>& out = actor_.forward(s, act_ws_.actor);
        head_.deterministic(out, act_ws_.action);
        a = scale_.cwiseProduct(act_ws_.action.col(0)) + bias_;
    }

    /// One SAC update (Algorithm 1, one gradient step): critics, actor, alpha, then targets.
    /// Draws the noise of a' and a~ from the agent's own stream (checkpointed).
    /// With demonstrations kept (set_demonstrations, bc_weight > 0) the actor's loss also has
    /// bc_weight * L_BC on bc_batch demonstration steps drawn uniformly (with replacement) from the
    /// update noise stream, after the 2 A B normals.
    Stats update(const TransitionBatch<T>& batch) {
        if (demos_.size() == 0 || bc_weight_ == T(0)) return update_impl(batch, nullptr, T(0));
        return update_impl(batch, &demo_batch_, bc_weight_);
    }

    /// Keep demonstrations for behaviour cloning during training (SAC from demonstrations, seed
    /// Change 4 applied to the policy): every update() adds bc_weight * L_BC on bc_batch steps
    /// drawn from `demos` (validated like bc_gradients). An empty `demos` or bc_weight = 0 turns
    /// the term off. The demonstrations are not part of the checkpoint state: set them again
    /// after load (the draws themselves come from the checkpointed noise stream).
    void set_demonstrations(DemoBatch<T> demos, T bc_weight, Index bc_batch) {
        if (!(std::isfinite(double(bc_weight)) && bc_weight >= T(0)))
            throw ConfigError("SAC::set_demonstrations: bc_weight = " + std::to_string(double(bc_weight)) +
                              ": expected finite and >= 0");
        if (bc_batch < 1)
            throw ConfigError("SAC::set_demonstrations: bc_batch = " + std::to_string(bc_batch) + ": expected >= 1");
        if (demos.size() > 0) {
            check_demo(demos);
            for (Index j = 0; j < demos.size(); ++j)  // fail now, not in the middle of training
                for (Index i = 0; i < A_; ++i) normalized_demo_action(demos, i, j, "SAC::set_demonstrations");
            if (!(demos.observation.allFinite() && demos.internal.allFinite()))
                throw Error("SAC::set_demonstrations: non-finite demonstration state");
        }
        demos_ = std::move(demos);
        bc_weight_ = bc_weight;
        demo_batch_.observation.resize(obs_dim_, bc_batch);
        demo_batch_.internal.resize(int_dim_, bc_batch);
        demo_batch_.action.resize(A_, bc_batch);
    }
    /// Change the weight of the kept demonstrations' BC term (e.g. a decay schedule); >= 0.
    void set_bc_weight(T w) {
        if (!(std::isfinite(double(w)) && w >= T(0)))
            throw ConfigError("SAC::set_bc_weight: " + std::to_string(double(w)) + ": expected finite and >= 0");
        bc_weight_ = w;
    }
    T bc_weight() const { return bc_weight_; }
    /// The kept demonstrations (empty without set_demonstrations).
    const DemoBatch<T>& demonstrations() const { return demos_; }

    /// SAC update with a behaviour-cloning term on demonstrations (SAC + BC, as in Nair et al.
    /// 2018, "Overcoming Exploration in RL with Demonstrations", with the policy's log-likelihood
    /// instead of a squared error): the actor minimises L_pi + bc_weight * L_BC, L_BC =
    /// -mean_j log pi(a_j | s_j) over `demo` (bc_gradients). bc_weight >= 0 and finite.
    Stats update(const TransitionBatch<T>& batch, const DemoBatch<T>& demo, T bc_weight) {
        if (!(std::isfinite(double(bc_weight)) && bc_weight >= T(0)))
            throw ConfigError("SAC::update: bc_weight = " + std::to_string(double(bc_weight)) +
                              ": expected finite and >= 0");
        return update_impl(batch, &demo, bc_weight);
    }

    /// One actor step of behaviour cloning alone (pre-training the policy on demonstrations):
    /// minimises L_BC = -mean_j log pi(a_j | s_j) with the actor's optimizer. Critics, alpha and
    /// the update counter are untouched. Returns L_BC before the step.
    T behavior_clone(const DemoBatch<T>& demo) {
        const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
        const T loss = bc_gradients(demo, T(1), nn::GradMode::overwrite);
        actor_opt_.step(actor_.params(), actor_.grads());
        return loss;
    }

    /// Gradient of weight * L_BC, L_BC = -mean_j log pi(a_j | s_j) (TanhGaussian::log_prob_of),
    /// written to (overwrite) or added to (accumulate) actor().grads(). Actions are mapped from
    /// the box to [-1, 1] and then moved `bc_squeeze` inside it (atanh(+-1) is infinite: a
    /// demonstration at full throttle becomes 1 - bc_squeeze); an action outside the box (by
    /// more than 1e-6 of its half-width) or a non-finite entry is an Error naming the column.
    /// Returns L_BC (unweighted).
    T bc_gradients(const DemoBatch<T>& demo, T weight, nn::GradMode mode) {
        check_demo(demo);
        const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
        const Index B = demo.size();
        ensure_shape(ws_.bc_s, S_, B);
        if (obs_dim_ > 0) ws_.bc_s.topRows(obs_dim_) = demo.observation;
        if (int_dim_ > 0) ws_.bc_s.bottomRows(int_dim_) = demo.internal;
        ensure_shape(ws_.bc_a, A_, B);
        const T hi = T(1) - static_cast<T>(opt_.bc_squeeze);
        for (Index j = 0; j < B; ++j)
            for (Index i = 0; i < A_; ++i)
                ws_.bc_a(i, j) = std::clamp(normalized_demo_action(demo, i, j, "SAC::bc_gradients"), -hi, hi);
        const Mat<T>& out = actor_.forward(ws_.bc_s, ws_.bc_actor);
        const Mat<T>& lp = head_.log_prob_of(out, ws_.bc_a, ws_.bc_head);
        const T loss = -lp.mean();
        ensure_shape(ws_.bc_g, 1, B);
        ws_.bc_g.setConstant(-weight / static_cast<T>(B));
        const Mat<T>& gin = head_.log_prob_backward(ws_.bc_head, ws_.bc_g);
        actor_.backward(ws_.bc_actor, gin, nullptr, true, mode);
        return loss;
    }

private:
    Stats update_impl(const TransitionBatch<T>& batch, const DemoBatch<T>* demo, T bc_weight) {
        check_batch(batch);
        const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
        const Index B = batch.size();
        sync_rng();
        ensure_shape(ws_.eps_next, A_, B);
        ensure_shape(ws_.eps, A_, B);
        rng_.normals(ws_.eps_next.data(), ws_.eps_next.size());
        rng_.normals(ws_.eps.data(), ws_.eps.size());
        // 2 A B normals: an even count, so no Box-Muller spare is left cached and the stream's
        // position alone restores it exactly (Rng::set_position drops a spare).
        if (demo == &demo_batch_) {  // the kept demonstrations: draw this update's steps
            const auto n = static_cast<std::uint64_t>(demos_.size());
            for (Index k = 0; k < demo_batch_.size(); ++k) {
                const auto j = static_cast<Index>(rng_.next_u64() % n);
                if (obs_dim_ > 0) demo_batch_.observation.col(k) = demos_.observation.col(j);
                if (int_dim_ > 0) demo_batch_.internal.col(k) = demos_.internal.col(j);
                demo_batch_.action.col(k) = demos_.action.col(j);
            }
        }
        rng_pos_ = rng_.position();

        Stats st;
        st.alpha = alpha();
        fill_batch_states(batch);
        // The actor's parameters do not change before its own step: a' ~ pi(.|s') and
        // a~ ~ pi(.|s) are sampled together (Algorithm 1's values, in either order).
        twin([&](int i) {
            if (i == 0) sample_next_action(ws_.eps_next);
            else sample_policy_action(ws_.eps);
        });
        target_values(batch);
        st.q_loss = critic_pass(/*step=*/true);
        st.q_mean = q_mean_;

        st.actor_loss = actor_pass();
        if (demo) st.bc_loss = bc_gradients(*demo, bc_weight, nn::GradMode::accumulate);
        actor_opt_.step(actor_.params(), actor_.grads());

        st.alpha_loss = alpha_gradient();
        st.entropy = -mean_logp_;
        if (opt_.autotune_alpha) alpha_opt_.step(log_alpha_, alpha_grad_);

        ++updates_;
        if (updates_ % opt_.target_update_interval == 0) soft_update_targets();
        return st;
    }

    /// Runs f(0) and f(1): on two threads when opt_.threads >= 2 (and OpenMP is on), else in
    /// order. Each thread flushes subnormals like the caller (MXCSR is per thread); the first
    /// exception thrown is rethrown after both ran.
    template <class F>
    void twin(F&& f) {
#if defined(_OPENMP)
        if (opt_.threads >= 2) {
            std::exception_ptr err[2];
#pragma omp parallel num_threads(2)
            {
                const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
                const int n = omp_get_num_threads();  // 1 inside another parallel region
                for (int i = omp_get_thread_num(); i < 2; i += n) {
                    try {
                        f(i);
                    } catch (...) {
                        err[i] = std::current_exception();
                    }
                }
            }
            for (auto& e : err)
                if (e) std::rethrow_exception(e);
            return;
        }
#endif
        f(0);
        f(1);
    }

    Network& critic(int i) { return i == 0 ? q1_ : q2_; }
    Network& critic_target(int i) { return i == 0 ? q1_target_ : q2_target_; }
    Optimizer& critic_opt(int i) { return i == 0 ? q1_opt_ : q2_opt_; }
    typename Network::Workspace& critic_ws(int i) { return i == 0 ? ws_.q1 : ws_.q2; }
    typename Network::Workspace& critic_pi_ws(int i) { return i == 0 ? ws_.q1_pi : ws_.q2_pi; }

    /// sa = [s; a normalised], sa_next = [s'; .], sa_pi = [s; .].
    void fill_batch_states(const TransitionBatch<T>& batch) {
        const Index B = batch.size();
        fill_state(ws_.sa, batch.observation, batch.internal);
        fill_state(ws_.sa_pi, batch.observation, batch.internal);
        fill_state(ws_.sa_next, batch.next_observation, batch.next_internal);
        auto an = ws_.sa.bottomRows(A_);
        for (Index j = 0; j < B; ++j)
            for (Index i = 0; i < A_; ++i)
                an(i, j) = (batch.action(i, j) - bias_(i)) * inv_scale_(i);
    }
    /// a' = f(eps_next; s') into sa_next's action rows (head_next keeps log pi(a'|s')).
    void sample_next_action(MatCRef<T> eps_next) {
        const Mat<T>& out = actor_.forward(ws_.sa_next.topRows(S_), ws_.actor_next);
        head_.sample(out, eps_next, ws_.head_next);
        ws_.sa_next.bottomRows(A_) = ws_.head_next.action;
    }
    /// a~ = f(eps; s) into sa_pi's action rows (ws_.actor and ws_.head keep what backward needs).
    void sample_policy_action(MatCRef<T> eps) {
        const Mat<T>& out = actor_.forward(ws_.sa_pi.topRows(S_), ws_.actor);
        head_.sample(out, eps, ws_.head);
        ws_.sa_pi.bottomRows(A_) = ws_.head.action;
    }
    /// y from both target critics on sa_next (after sample_next_action).
    void target_values(const TransitionBatch<T>& batch) {
        const Mat<T>* qt[2] = {nullptr, nullptr};
        twin([&](int i) { qt[i] = &critic_target(i).forward(ws_.sa_next, critic_ws(i)); });
        const Index B = batch.size();
        const T a = alpha();
        ensure_shape(ws_.y, 1, B);
        for (Index j = 0; j < B; ++j) {
            const T r = batch.reward(0, j);
            if (batch.terminated(0, j) != T(0)) {
                ws_.y(0, j) = r;
            } else {
                const T v = std::min((*qt[0])(0, j), (*qt[1])(0, j)) - a * ws_.head_next.log_prob(0, j);
                ws_.y(0, j) = r + gamma_ * v;
            }
        }
    }
    /// Both critics on sa (after target_values): residuals, gradients (overwrite) and, with
    /// `step`, each critic's optimizer step. Returns L_Q; sets q_mean_.
    T critic_pass(bool step) {
        const Index B = ws_.sa.cols();
        const T inv_b = T(1) / static_cast<T>(B);
        const Mat<T>* qv[2] = {nullptr, nullptr};
        twin([&](int i) {
            Mat<T>& d = i == 0 ? ws_.d1 : ws_.d2;
            Mat<T>& g = i == 0 ? ws_.g1 : ws_.g2;
            qv[i] = &critic(i).forward(ws_.sa, critic_ws(i));
            ensure_shape(d, 1, B);
            ensure_shape(g, 1, B);
            for (Index j = 0; j < B; ++j) {
                d(0, j) = (*qv[i])(0, j) - ws_.y(0, j);
                g(0, j) = d(0, j) * inv_b;
            }
            critic(i).backward(critic_ws(i), g, nullptr, true, nn::GradMode::overwrite);
            if (step) critic_opt(i).step(critic(i).params(), critic(i).grads());
        });
        T loss = 0, qsum = 0;
        for (Index j = 0; j < B; ++j) {
            loss += ws_.d1(0, j) * ws_.d1(0, j) + ws_.d2(0, j) * ws_.d2(0, j);
            qsum += (*qv[0])(0, j);
        }
        q_mean_ = qsum * inv_b;
        return T(0.5) * loss * inv_b;
    }
    /// The actor step's gradient (after sample_policy_action): both critics on sa_pi, dQ/da of
    /// the smaller one, the head and the actor backward (overwrite). Returns L_pi.
    T actor_pass() {
        const Index B = ws_.sa_pi.cols();
        const Mat<T>* qv[2] = {nullptr, nullptr};
        twin([&](int i) { qv[i] = &critic(i).forward(ws_.sa_pi, critic_pi_ws(i)); });
        const T a = alpha(), inv_b = T(1) / static_cast<T>(B);
        ensure_shape(ws_.gp1, 1, B);
        ensure_shape(ws_.gp2, 1, B);
        ensure_shape(ws_.dlogp, 1, B);
        ensure_shape(ws_.logp, 1, B);
        T loss = 0, lp_sum = 0;
        for (Index j = 0; j < B; ++j) {
            // d min(Q1, Q2) goes to the smaller critic (Q1 on ties).
            const T q1 = (*qv[0])(0, j), q2 = (*qv[1])(0, j);
            const bool first = q1 <= q2;
            const T lp = ws_.head.log_prob(0, j);
            loss += a * lp - (first ? q1 : q2);
            lp_sum += lp;
            ws_.logp(0, j) = lp;
            ws_.gp1(0, j) = first ? -inv_b : T(0);
            ws_.gp2(0, j) = first ? T(0) : -inv_b;
            ws_.dlogp(0, j) = a * inv_b;
        }
        mean_logp_ = lp_sum * inv_b;
        // dQ_i/da only: the action rows of each critic's input gradient.
        twin([&](int i) {
            critic(i).backward_input_rows(critic_pi_ws(i), i == 0 ? ws_.gp1 : ws_.gp2, S_, A_,
                                          i == 0 ? ws_.dsa1 : ws_.dsa2);
        });
        ensure_shape(ws_.da, A_, B);
        ws_.da = ws_.dsa1 + ws_.dsa2;
        const Mat<T>& gin = head_.backward(ws_.head, ws_.da, ws_.dlogp);
        actor_.backward(ws_.actor, gin, nullptr, true, nn::GradMode::overwrite);
        return loss * inv_b;
    }

public:

    // --- The pieces of update(), public for tests and custom training loops -----------------

    /// TD target y (1 x B) = r + gamma (1 - terminated) (min_i Qbar_i(s', a') - alpha log pi(a'|s'))
    /// with a' = f(eps_next; s') (eq. 5 with V from eq. 3). `terminated` selects (no product with
    /// an unused bootstrap value); truncated transitions bootstrap. Returns a workspace row.
    const Mat<T>& td_target(const TransitionBatch<T>& batch, MatCRef<T> eps_next) {
        check_batch(batch);
        const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
        detail_check(eps_next, A_, batch.size(), "td_target eps_next");
        fill_batch_states(batch);
        sample_next_action(eps_next);
        target_values(batch);
        return ws_.y;
    }

    /// L_Q = sum_i 1/2 mean (Q_i(s, a) - y)^2 (eq. 5); gradients overwrite q1().grads() and
    /// q2().grads(). No optimizer step. Returns L_Q.
    T critic_gradients(const TransitionBatch<T>& batch, MatCRef<T> eps_next) {
        td_target(batch, eps_next);
        const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
        return critic_pass(/*step=*/false);
    }

    /// L_pi = mean(alpha log pi(a~|s) - min_i Q_i(s, a~)), a~ = f(eps; s) (eq. 9); the gradient
    /// overwrites actor().grads(); the critics' gradients are not touched. Keeps log pi for
    /// alpha_gradient(). No optimizer step. Returns L_pi.
    T actor_gradients(const TransitionBatch<T>& batch, MatCRef<T> eps) {
        check_batch(batch);
        const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
        detail_check(eps, A_, batch.size(), "actor_gradients eps");
        fill_state(ws_.sa_pi, batch.observation, batch.internal);
        sample_policy_action(eps);
        return actor_pass();
    }

    /// L_alpha = -log_alpha mean(log pi + target_entropy) (eq. 18, in log space, log pi of the
    /// last actor_gradients() held fixed); dL/dlog_alpha goes to alpha_grad(). Returns L_alpha.
    T alpha_gradient() {
        const T m = mean_logp_ + target_entropy_;
        alpha_grad_(0) = -m;
        return -log_alpha_(0) * m;
    }

    /// theta_bar <- (1 - tau) theta_bar + tau theta for both critics, on the flat vectors.
    void soft_update_targets() {
        const detail::ScopedFlushDenormals ftz(opt_.flush_denormals);
        twin([&](int i) {
            critic_target(i).params() = (T(1) - tau_) * critic_target(i).params() + tau_ * critic(i).params();
        });
    }

    // --- Access ---------------------------------------------------------------------------

    T alpha() const { return std::exp(log_alpha_(0)); }
    T log_alpha() const { return log_alpha_(0); }
    /// Set the temperature (e.g. a fixed alpha with autotune_alpha = false); alpha > 0.
    void set_alpha(T alpha) {
        if (!(std::isfinite(static_cast<double>(alpha)) && alpha > T(0)))
            throw ConfigError("SAC::set_alpha: alpha = " + std::to_string(double(alpha)) +
                              ": expected a finite value > 0");
        log_alpha_(0) = std::log(alpha);
    }
    const Vec<T>& alpha_grad() const { return alpha_grad_; }
    T target_entropy() const { return target_entropy_; }
    std::int64_t updates() const { return updates_; }
    const Options& options() const { return opt_; }
    const Vec<T>& action_scale() const { return scale_; }
    const Vec<T>& action_bias() const { return bias_; }

    Network& actor() { return actor_; }
    Network& q1() { return q1_; }
    Network& q2() { return q2_; }
    Network& q1_target() { return q1_target_; }
    Network& q2_target() { return q2_target_; }
    const Network& actor() const { return actor_; }
    const Network& q1() const { return q1_; }
    const Network& q2() const { return q2_; }
    const Network& q1_target() const { return q1_target_; }
    const Network& q2_target() const { return q2_target_; }
    const Head& head() const { return head_; }
    Optimizer& actor_optimizer() { return actor_opt_; }
    Optimizer& q1_optimizer() { return q1_opt_; }
    Optimizer& q2_optimizer() { return q2_opt_; }
    Optimizer& alpha_optimizer() { return alpha_opt_; }
    /// The update workspace (read its head/log_prob etc. after td_target or actor_gradients).
    const Workspace& workspace() const { return ws_; }

    /// State protocol: networks (online and target), optimizer states, log alpha, the update
    /// counter and the update noise stream (seed and position): a checkpoint resumes exactly.
    template <class V>
    void visit_state(V&& v) {
        visit_nested(actor_, "actor", v);
        visit_nested(q1_, "q1", v);
        visit_nested(q2_, "q2", v);
        visit_nested(q1_target_, "q1_target", v);
        visit_nested(q2_target_, "q2_target", v);
        visit_nested(actor_opt_, "actor_opt", v);
        visit_nested(q1_opt_, "q1_opt", v);
        visit_nested(q2_opt_, "q2_opt", v);
        visit_nested(alpha_opt_, "alpha_opt", v);
        v(state_tensor("log_alpha", log_alpha_.data(), {1}));
        v(state_tensor("updates", &updates_, {}));
        v(state_tensor("rng_seed", &rng_seed_, {}));
        v(state_tensor("rng_position", &rng_pos_, {}));
    }

private:
    static constexpr std::uint64_t kNoiseStream = 0x5AC;

    static std::vector<Index> widths_of(Index in, const std::vector<Index>& hidden, Index out) {
        std::vector<Index> w;
        w.reserve(hidden.size() + 2);
        w.push_back(in);
        w.insert(w.end(), hidden.begin(), hidden.end());
        w.push_back(out);
        return w;
    }
    std::vector<Index> widths(Index in, Index out) const { return widths_of(in, opt_.hidden, out); }

    static Network make_net(std::vector<Index> w, const nn::MLPOptions& mo) {
        if constexpr (std::constructible_from<Network, std::vector<Index>, nn::MLPOptions>) {
            return Network(std::move(w), mo);
        } else {
            if (mo.layer_norm)
                throw ConfigError("SACOptions.actor_mlp/critic_mlp: this Network type is not "
                                  "constructible from (widths, nn::MLPOptions); leave them default");
            return Network(std::move(w));
        }
    }
    static Optimizer make_opt(Index n, double lr) {
        typename Optimizer::Options o{};
        o.lr = static_cast<T>(lr);
        return Optimizer(n, o);
    }

    static const Options& validated(const Options& o, Index obs, Index internal,
                                    const Vec<T>& low, const Vec<T>& high) {
        if (obs < 0 || internal < 0 || obs + internal < 1)
            throw ConfigError("SAC: observation_dim = " + std::to_string(obs) + ", internal_dim = " +
                              std::to_string(internal) + ": expected both >= 0 and a sum >= 1");
        if (low.size() < 1 || low.size() != high.size())
            throw ConfigError("SAC: action_low has " + std::to_string(low.size()) +
                              " entries and action_high " + std::to_string(high.size()) +
                              ": expected the same number >= 1");
        for (Index i = 0; i < low.size(); ++i)
            if (!(std::isfinite(double(low(i))) && std::isfinite(double(high(i))) && low(i) < high(i)))
                throw ConfigError("SAC: action box [" + std::to_string(double(low(i))) + ", " +
                                  std::to_string(double(high(i))) + "] of action " +
                                  std::to_string(i) + ": expected finite low < high");
        if (o.hidden.empty()) throw ConfigError("SACOptions.hidden: expected at least one hidden width");
        for (std::size_t i = 0; i < o.hidden.size(); ++i)
            detail::sac_require(o.hidden[i] > 0, "hidden", "positive widths",
                                static_cast<double>(o.hidden[i]));
        auto finite_nonneg = [](double x) { return std::isfinite(x) && x >= 0; };
        detail::sac_require(finite_nonneg(o.actor_lr), "actor_lr", "finite and >= 0", o.actor_lr);
        detail::sac_require(finite_nonneg(o.critic_lr), "critic_lr", "finite and >= 0", o.critic_lr);
        detail::sac_require(finite_nonneg(o.alpha_lr), "alpha_lr", "finite and >= 0", o.alpha_lr);
        detail::sac_require(o.gamma >= 0 && o.gamma <= 1, "gamma", "in [0, 1]", o.gamma);
        detail::sac_require(o.tau >= 0 && o.tau <= 1, "tau", "in [0, 1]", o.tau);
        detail::sac_require(std::isfinite(o.init_alpha) && o.init_alpha > 0, "init_alpha",
                            "finite and > 0", o.init_alpha);
        if (o.target_entropy)
            detail::sac_require(std::isfinite(*o.target_entropy), "target_entropy", "finite",
                                *o.target_entropy);
        detail::sac_require(o.bc_squeeze > 0 && o.bc_squeeze <= 0.5, "bc_squeeze", "in (0, 0.5]", o.bc_squeeze);
        detail::sac_require(o.threads >= 1, "threads", ">= 1", static_cast<double>(o.threads));
        detail::sac_require(o.target_update_interval >= 1, "target_update_interval", ">= 1",
                            static_cast<double>(o.target_update_interval));
        return o;
    }

    static void detail_check(MatCRef<T> m, Index r, Index c, const char* what) {
        if (m.rows() != r || m.cols() != c)
            persist::detail::throw_shape(std::string("SAC::") + what, r, c, m.rows(), m.cols());
    }

    void check_act(const VecCRef<T>& s, const VecRef<T>& a) const {
        if (s.size() != S_) persist::detail::throw_shape("SAC::act: state", S_, 1, s.size(), 1);
        if (a.size() != A_) persist::detail::throw_shape("SAC::act: action", A_, 1, a.size(), 1);
    }

    /// Demonstration action (i, j) mapped from the box to [-1, 1]; outside the box (beyond 1e-6
    /// of its half-width) or not finite: an Error naming the column, the entry and the box.
    T normalized_demo_action(const DemoBatch<T>& d, Index i, Index j, const char* where) const {
        const T an = (d.action(i, j) - bias_(i)) * inv_scale_(i);
        if (!(std::abs(an) <= T(1) + T(1e-6)))
            throw Error(std::string(where) + ": demonstration action " + std::to_string(j) + " entry " +
                        std::to_string(i) + " = " + std::to_string(double(d.action(i, j))) +
                        ": expected a finite value in the action box [" + std::to_string(double(bias_(i) - scale_(i))) +
                        ", " + std::to_string(double(bias_(i) + scale_(i))) + "]");
        return an;
    }

    void check_demo(const DemoBatch<T>& d) const {
        const Index B = d.size();
        if (B < 1) throw ShapeError("SAC: empty demonstration batch (action has 0 columns)");
        auto chk = [&](const char* what, Index r, Index c, Index er) {
            if (r != er || c != B)
                persist::detail::throw_shape(std::string("SAC: demonstration batch.") + what, er, B, r, c);
        };
        chk("action", d.action.rows(), d.action.cols(), A_);
        if (obs_dim_ > 0) chk("observation", d.observation.rows(), d.observation.cols(), obs_dim_);
        if (int_dim_ > 0) chk("internal", d.internal.rows(), d.internal.cols(), int_dim_);
    }

    void check_batch(const TransitionBatch<T>& b) const {
        const Index B = b.size();
        if (B < 1) throw ShapeError("SAC::update: empty batch (action has 0 columns)");
        auto chk = [&](const char* what, Index r, Index c, Index er) {
            if (r != er || c != B)
                persist::detail::throw_shape(std::string("SAC::update: batch.") + what, er, B, r, c);
        };
        chk("observation", b.observation.rows(), b.observation.cols(), obs_dim_);
        chk("next_observation", b.next_observation.rows(), b.next_observation.cols(), obs_dim_);
        if (int_dim_ > 0) {
            chk("internal", b.internal.rows(), b.internal.cols(), int_dim_);
            chk("next_internal", b.next_internal.rows(), b.next_internal.cols(), int_dim_);
        }
        chk("action", b.action.rows(), b.action.cols(), A_);
        chk("reward", b.reward.rows(), b.reward.cols(), 1);
        chk("terminated", b.terminated.rows(), b.terminated.cols(), 1);
    }

    /// dst.topRows(S) = [obs; internal] (dst resized to (S + A) x B when needed).
    void fill_state(Mat<T>& dst, const Mat<T>& obs, const Mat<T>& internal) const {
        const Index B = obs.cols();
        ensure_shape(dst, S_ + A_, B);
        if (obs_dim_ > 0) dst.topRows(obs_dim_) = obs;
        if (int_dim_ > 0) dst.middleRows(obs_dim_, int_dim_) = internal;
    }

    /// Rebuild the noise stream when a checkpoint changed its seed or position.
    void sync_rng() {
        if (!rng_built_ || rng_key_ != rng_seed_ || rng_.position() != rng_pos_) {
            rng_ = Rng(rng_seed_, kNoiseStream);
            rng_.set_position(rng_pos_);
            rng_key_ = rng_seed_;
            rng_built_ = true;
        }
    }

    Options opt_;
    Index obs_dim_, int_dim_, S_, A_;
    Network actor_, q1_, q2_, q1_target_, q2_target_;
    Head head_;
    Optimizer actor_opt_, q1_opt_, q2_opt_, alpha_opt_;
    Vec<T> log_alpha_, alpha_grad_;
    Vec<T> scale_, bias_, inv_scale_;
    T gamma_, tau_, target_entropy_;
    std::int64_t updates_ = 0;
    std::uint64_t rng_seed_;
    std::uint64_t rng_pos_ = 0;
    std::uint64_t rng_key_ = 0;  // seed rng_ was built with
    bool rng_built_ = false;
    Rng rng_;
    T q_mean_ = 0, mean_logp_ = 0;
    Workspace ws_, act_ws_;
    DemoBatch<T> demos_, demo_batch_;  // kept demonstrations and this update's draw
    T bc_weight_ = 0;
};

}  // namespace persist::agents
