// SAC learning smoke test (the CI version of examples/sac_pendulum.cpp): a short, fully seeded
// run on Pendulum-v1 (4000 steps, 64 x 64 networks, batch 64, lr 1e-3) must beat a uniformly
// random policy by a wide margin. Deterministic: the same seed gives the same run for the same
// compiler and flags, so this either always passes or always fails (no retries).
//
// Margin: with seeds 0..9 of this exact setup the deterministic evaluation return was about
// -160 for nine seeds and -832 for one (the pendulum not yet swung up), against -1093 for the
// random policy: the thresholds below (> -900 and 200 better than random) hold for all ten, so
// a change of rounding that alters the trajectory does not flip the test; seed 0 gave -160.
#include <catch2/catch.hpp>

#include <cstdint>
#include <numeric>
#include <vector>

#include "persist/agents/sac.hpp"
#include "persist/env/pendulum.hpp"
#include "persist/replay/ring_replay.hpp"

using persist::Index;
using persist::Rng;
using persist::Vec;

namespace {

constexpr std::int64_t kSteps = 4000;
constexpr std::int64_t kLearningStarts = 1000;
constexpr Index kBatch = 64;
constexpr int kEvalEpisodes = 5;

/// Mean return of `episodes` episodes from fixed start seeds, actions from `policy(obs, a)`.
template <class Policy>
double evaluate(Policy&& policy) {
    persist::env::Pendulum<float> env;
    persist::TimeStep<float> ts;
    Vec<float> a(1);
    double total = 0;
    for (int e = 0; e < kEvalEpisodes; ++e) {
        env.reset(777000 + static_cast<std::uint64_t>(e), ts);
        while (!ts.done()) {
            policy(ts.observation, a);
            env.step(a, ts);
            total += static_cast<double>(ts.reward);
        }
    }
    return total / kEvalEpisodes;
}

}  // namespace

TEST_CASE("SAC learns Pendulum-v1 in 4000 steps (beats a random policy)", "[agents][sac][learning]") {
    persist::env::Pendulum<float> env;
    persist::agents::SACOptions opt;
    opt.hidden = {64, 64};
    opt.actor_lr = opt.critic_lr = opt.alpha_lr = 1e-3;
    opt.seed = 0;
    persist::agents::SAC<float> sac(env, opt);
    persist::replay::RingReplay<float> replay(kSteps, {.observation = 3, .internal = 0, .action = 1});
    persist::TransitionBatch<float> batch;
    Rng act_rng(0, 1), sample_rng(0, 2);
    persist::TimeStep<float> ts, next;
    Vec<float> a(1);
    std::uint64_t episode = 0;
    env.reset(episode, ts);
    for (std::int64_t step = 0; step < kSteps; ++step) {
        if (step < kLearningStarts) a(0) = act_rng.uniform<float>(-2.0f, 2.0f);
        else sac.act(ts.observation, a, act_rng);
        env.step(a, next);
        replay.add({.observation = ts.observation, .internal = ts.internal, .action = a,
                    .reward = next.reward, .next_observation = next.observation,
                    .next_internal = next.internal, .terminated = next.terminated,
                    .truncated = next.truncated});
        std::swap(ts, next);
        if (step + 1 >= kLearningStarts) {
            replay.sample(kBatch, sample_rng, batch);
            sac.update(batch);
        }
        if (ts.done()) env.reset(++episode, ts);
    }

    Rng random_rng(5);
    const double random_return = evaluate([&](const Vec<float>&, Vec<float>& u) {
        u(0) = random_rng.uniform<float>(-2.0f, 2.0f);
    });
    const double sac_return = evaluate([&](const Vec<float>& o, Vec<float>& u) { sac.act_deterministic(o, u); });
    INFO("random policy " << random_return << ", SAC after " << kSteps << " steps " << sac_return);
    CHECK(random_return < -900.0);
    CHECK(sac_return > -900.0);
    CHECK(sac_return > random_return + 200.0);
}
