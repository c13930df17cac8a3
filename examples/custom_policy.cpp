// custom_policy: plug a policy AND an intrinsic reward of your own into PersistAgent, on
// GridLife-v0.
//
// A Policy (docs/concepts.md) needs: scalar_type, state_dim(), action_dim(),
// act(s, a, rng) (stochastic, training), act_deterministic(s, a) (evaluation), update(batch)
// and visit_state(visitor) (its trained state as named tensors, for checkpoints).
// An Intrinsic needs: scalar_type, reward(s, a, o_next, out) and update(batch).
// Batches follow the library convention: one COLUMN per sample (docs/concepts.md).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include <persist/env/gridlife.hpp>
#include <persist/homeostasis/homeostat.hpp>
#include <persist/shield/null_shield.hpp>
#include <persist/train/persist_agent.hpp>

using persist::Index;
using persist::Mat;
using persist::Vec;

/// A linear Gaussian policy a = clip(tanh(W s) + sigma eps) trained by reward-weighted
/// regression: W += lr * mean_j (r_j - mean r) (a_j - tanh(W s_j)) s_j^T  (roughly: move the
/// mean action toward actions that earned more than average). Tiny, but a real learner.
class LinearRwrPolicy {
public:
    using scalar_type = float;  // contract

    LinearRwrPolicy(Index state_dim, Index action_dim) : W_(Mat<float>::Zero(action_dim, state_dim)) {}

    Index state_dim() const { return W_.cols(); }   // contract: the agent checks = obs + internal
    Index action_dim() const { return W_.rows(); }  // contract

    // contract: stochastic action in the box (GridLife's is [-1, 1]^2). No allocation here:
    // the agent promises an allocation-free step, so work on fixed-size buffers.
    void act(persist::VecCRef<float> s, persist::VecRef<float> a, persist::Rng& rng) {
        act_deterministic(s, a);
        for (Index i = 0; i < a.size(); ++i) a[i] = std::clamp(a[i] + sigma_ * rng.normal<float>(), -1.f, 1.f);
    }
    void act_deterministic(persist::VecCRef<float> s, persist::VecRef<float> a) {
        a.noalias() = W_ * s;
        a = a.array().tanh().matrix();
    }

    // contract: learn from a minibatch. s = [observation; internal] per column.
    void update(const persist::TransitionBatch<float>& b) {
        const Index B = b.size(), O = b.observation.rows();
        ensure(B);
        s_.topRows(O) = b.observation;
        s_.bottomRows(s_.rows() - O) = b.internal;
        const float mean_r = b.reward.mean();
        mean_.noalias() = W_ * s_;
        mean_ = mean_.array().tanh().matrix();
        adv_ = (b.reward.array() - mean_r).matrix();
        err_ = (b.action - mean_).array().rowwise() * adv_.array();
        W_.noalias() += (lr_ / float(B)) * err_ * s_.transpose();
    }

    // contract: expose trained state for checkpoints (core/state.hpp); here one tensor.
    template <class V>
    void visit_state(V&& v) {
        v(persist::state_tensor("W", W_.data(), {W_.rows(), W_.cols()}));
    }

private:
    void ensure(Index B) {
        persist::ensure_shape(s_, W_.cols(), B);
        persist::ensure_shape(mean_, W_.rows(), B);
        persist::ensure_shape(err_, W_.rows(), B);
        persist::ensure_shape(adv_, 1, B);
    }
    Mat<float> W_, s_, mean_, err_;
    persist::RowVec<float> adv_;
    float sigma_ = 0.5f, lr_ = 0.05f;
};

/// Count-based novelty on the tile under the agent: r_intr = 1 / sqrt(visits of the position
/// bucket of o'). o' carries the sub-tile offset, so we bucket on the centre tile's heat (a
/// cheap proxy for "where am I"). Learns nothing from replay (update is a no-op).
class HeatNovelty {
public:
    using scalar_type = float;
    explicit HeatNovelty(Index centre_heat_index) : idx_(centre_heat_index) {}
    void reward(persist::MatCRef<float>, persist::MatCRef<float>, persist::MatCRef<float> o_next,
                persist::VecRef<float> out) {
        for (Index j = 0; j < o_next.cols(); ++j) {
            const auto bucket = static_cast<std::size_t>(std::clamp(o_next(idx_, j), 0.f, 1.f) * 15.f);
            out[j] = 1.f / std::sqrt(float(++counts_[bucket]));
        }
    }
    void update(const persist::TransitionBatch<float>&) {}

private:
    Index idx_;
    std::array<std::int64_t, 16> counts_{};
};

static_assert(persist::Policy<LinearRwrPolicy>);
static_assert(persist::Intrinsic<HeatNovelty>);

int main() {
    using Env = persist::env::GridLife<float>;
    Env env(persist::env::GridLifeConfig{.width = 12, .height = 12});
    LinearRwrPolicy policy(env.observation_dim() + env.internal_dim(), env.action_dim());
    HeatNovelty novelty(env.centre_offset() + persist::env::ch_heat);
    Vec<float> mu(3), w(3);
    mu << 0.7f, 0.5f, 0.9f;
    w << 1.0f, 0.5f, 1.5f;
    persist::train::PersistAgent<Env, LinearRwrPolicy, persist::shield::NullShield<float>, HeatNovelty> agent(
        std::move(env), std::move(policy), {}, novelty, persist::homeostasis::Homeostat<float>(mu, w),
        persist::viability::ConstraintSet<float>({"energy", "temp", "integrity"},
                                                 {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"}),
        persist::train::AgentOptions{.batch_size = 128, .update_every = 16, .gradient_steps = 4,
                                     .learning_starts = 1000, .replay_capacity = 20000});
    agent.train(10000);
    const auto s = agent.metrics().summary();
    std::printf("custom_policy: %lld episodes, mean survival %.1f steps, violations energy %lld temp %lld "
                "integrity %lld, mean r_intr %.3f, %lld updates\n",
                static_cast<long long>(s.episodes), s.mean_length, static_cast<long long>(s.violations_per_variable[0]),
                static_cast<long long>(s.violations_per_variable[1]), static_cast<long long>(s.violations_per_variable[2]),
                s.mean_r_intr, static_cast<long long>(agent.updates()));
    return s.episodes > 0 ? 0 : 1;
}
