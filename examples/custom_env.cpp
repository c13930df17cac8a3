// custom_env: plug an environment of your own into PersistAgent.
//
// PersistAgent<Env, Policy, Shield, Intrinsic> accepts ANY type that models the concepts in
// include/persist/core/concepts.hpp (catalogue: docs/concepts.md). Nothing is registered: write
// the members and the compiler checks them. If one is missing, PersistAgent's static_assert
// tells you which concept failed and where it is documented.
//
// The environment below is a one-room "thermostat": the agent moves along a line between a
// heater (position +1) and a window (position -1); its internal temperature relaxes toward the
// temperature at its position. Alive means "temp in [0.3, 0.8]". Task reward: +0.1 per step
// near the middle of the room (where, say, the food is).
#include <algorithm>
#include <cstdint>
#include <cstdio>

#include <persist/agents/sac.hpp>
#include <persist/homeostasis/homeostat.hpp>
#include <persist/intrinsic/none.hpp>
#include <persist/shield/null_shield.hpp>
#include <persist/train/persist_agent.hpp>

using persist::Index;
using persist::Vec;

/// A ContinuousEnvironment (docs/concepts.md): the members it needs are marked "contract".
struct ThermostatRoom {
    using scalar_type = float;  // contract: every part of one agent uses the same scalar

    // --- contract: sizes -------------------------------------------------------------------
    Index observation_dim() const { return 2; }  // o = [position, local temperature]
    Index internal_dim() const { return 1; }     // x = [temp]
    Index max_episode_steps() const { return 200; }
    Index action_dim() const { return 1; }
    Vec<float> action_low() const { return Vec<float>::Constant(1, -1.f); }
    Vec<float> action_high() const { return Vec<float>::Constant(1, 1.f); }

    // --- contract: reset(seed, ts) and step(a, ts) fill a caller-owned TimeStep -------------
    // Gymnasium semantics: `terminated` = left the viability set (no bootstrap), `truncated` =
    // time limit (bootstrap). Write into ts without reallocating (ensure_shape is a no-op
    // once the shape is right), so stepping never allocates.
    void reset(std::uint64_t seed, persist::TimeStep<float>& ts) {
        persist::Rng rng(seed);
        pos_ = rng.uniform<float>(-0.5f, 0.5f);
        temp_ = 0.55f;
        t_ = 0;
        emit(ts, 0.f, false, false);
    }
    void step(persist::VecCRef<float> a, persist::TimeStep<float>& ts) {
        pos_ = std::clamp(pos_ + 0.1f * a[0], -1.f, 1.f);
        temp_ += 0.1f * (local_temp() - temp_);
        ++t_;
        const bool dead = temp_ < 0.3f || temp_ > 0.8f;
        const float reward = std::abs(pos_) < 0.2f ? 0.1f : 0.f;
        emit(ts, reward, dead, !dead && t_ >= max_episode_steps());
    }

private:
    float local_temp() const { return 0.55f + 0.45f * pos_; }  // window 0.1 .. heater 1.0
    void emit(persist::TimeStep<float>& ts, float r, bool term, bool trunc) const {
        persist::ensure_shape(ts.observation, 2, 1);
        persist::ensure_shape(ts.internal, 1, 1);
        ts.observation << pos_, local_temp();
        ts.internal << temp_;
        ts.reward = r;
        ts.terminated = term;
        ts.truncated = trunc;
    }
    float pos_ = 0, temp_ = 0.55f;
    std::int64_t t_ = 0;
};
// Check the contract right here, next to the type (the agent would check it too).
static_assert(persist::ContinuousEnvironment<ThermostatRoom>);

int main() {
    ThermostatRoom env;
    // The learner: SAC sized for the environment (s = [o; x], 3 inputs, 1 action).
    persist::agents::SACOptions so;
    so.hidden = {64, 64};
    persist::agents::SAC<float> sac(env, so);
    // Homeostatic drive: stay near temp 0.55. Viability: the same interval the env enforces.
    persist::homeostasis::Homeostat<float> homeo(Vec<float>::Constant(1, 0.55f), Vec<float>::Constant(1, 4.f), {"temp"});
    persist::viability::ConstraintSet<float> alive({"temp"}, {"temp in [0.3, 0.8]"});

    persist::train::PersistAgent<ThermostatRoom, persist::agents::SAC<float>, persist::shield::NullShield<float>,
                                 persist::intrinsic::NoIntrinsic<float>>
        agent(env, std::move(sac), {}, {}, homeo, alive,
              persist::train::AgentOptions{.lambda_homeo = 1.0, .lambda_intr = 0.0, .batch_size = 64,
                                           .update_every = 4, .learning_starts = 500, .replay_capacity = 20000});
    agent.train(4000);
    const auto s = agent.metrics().summary();
    std::printf("custom_env: %lld episodes, mean survival %.1f of 200 steps, %lld violations, "
                "temp satisfaction %.3f, mean task return %.2f, %lld updates\n",
                static_cast<long long>(s.episodes), s.mean_length, static_cast<long long>(s.violations),
                s.variable_satisfaction[0], s.mean_return_task, static_cast<long long>(agent.updates()));
    return s.episodes > 0 ? 0 : 1;
}
