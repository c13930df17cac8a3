// sac_pendulum: Soft Actor-Critic (persist::agents::SAC) on Pendulum-v1 (persist::env::Pendulum).
//
// The usual off-policy loop: `learning_starts` uniformly random actions, then act with the
// stochastic policy, store every transition in a ring replay, and run one SAC update on a
// uniformly sampled minibatch per environment step. Episodes end only by truncation (200 steps),
// and truncated transitions bootstrap. Prints every episode's return, then the mean return over
// the last 10 training episodes, wall time and steps/s, and writes a JSON summary.
//
// Usage: sac_pendulum [--steps N] [--seed S] [--learning-starts N] [--batch B] [--hidden H]
//                     [--eval-episodes N] [--json FILE] [--quiet]
//   defaults: 20000 steps, seed 0, 1000 random steps, batch 256, two hidden layers of 256,
//   10 deterministic evaluation episodes after training, JSON to sac_pendulum_seed<S>.json.
// Target (docs/results.md): mean of the last 10 episodes >= -200 within 20000 steps.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <persist/agents/sac.hpp>
#include <persist/core/error.hpp>
#include <persist/env/pendulum.hpp>
#include <persist/replay/ring_replay.hpp>

#include "example_args.hpp"

namespace {

using persist_examples::parse_int;

using persist::Index;
using persist::Vec;

struct Args {
    std::int64_t steps = 20000;
    std::uint64_t seed = 0;
    std::int64_t learning_starts = 1000;
    Index batch = 256;
    Index hidden = 256;
    int eval_episodes = 10;
    std::string json;
    bool quiet = false;
};


Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string f = argv[i];
        if (f == "--quiet") {
            a.quiet = true;
            continue;
        }
        if (i + 1 >= argc) throw persist::ConfigError(f + ": missing value (see the usage at the top of sac_pendulum.cpp)");
        const std::string v = argv[++i];
        if (f == "--steps") a.steps = parse_int(f, v, 1);
        else if (f == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(f, v, 0));
        else if (f == "--learning-starts") a.learning_starts = parse_int(f, v, 1);
        else if (f == "--batch") a.batch = parse_int(f, v, 1);
        else if (f == "--hidden") a.hidden = parse_int(f, v, 1);
        else if (f == "--eval-episodes") a.eval_episodes = static_cast<int>(parse_int(f, v, 0));
        else if (f == "--json") a.json = v;
        else throw persist::ConfigError("unknown flag '" + f + "'");
    }
    if (a.json.empty()) a.json = "sac_pendulum_seed" + std::to_string(a.seed) + ".json";
    return a;
}

std::string loadavg() {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    f >> a >> b >> c;
    return a + " " + b + " " + c;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they happen, also in logs
    try {
        const Args args = parse(argc, argv);
        using T = float;
        persist::env::Pendulum<T> env;
        persist::agents::SACOptions opt;
        opt.hidden = {args.hidden, args.hidden};
        opt.seed = args.seed;
        persist::agents::SAC<T> sac(env, opt);
        persist::replay::RingReplay<T> replay(args.steps, {.observation = env.observation_dim(),
                                                           .internal = env.internal_dim(),
                                                           .action = env.action_dim()});
        persist::TransitionBatch<T> batch;
        persist::Rng act_rng(args.seed, 1), sample_rng(args.seed, 2);
        persist::TimeStep<T> ts, next;
        Vec<T> a(env.action_dim());
        const Vec<T> lo = env.action_low(), hi = env.action_high();

        std::printf("SAC on Pendulum-v1: seed %llu, %lld steps (%lld random), batch %lld, hidden %lld x 2, "
                    "load average %s\n",
                    static_cast<unsigned long long>(args.seed), static_cast<long long>(args.steps),
                    static_cast<long long>(args.learning_starts), static_cast<long long>(args.batch),
                    static_cast<long long>(args.hidden), loadavg().c_str());
        std::vector<double> returns;
        double ep_return = 0;
        std::uint64_t episode = 0;
        persist::agents::SACStats<T> st;
        env.reset(args.seed * 1000003ULL + episode, ts);
        const auto t0 = std::chrono::steady_clock::now();
        for (std::int64_t step = 0; step < args.steps; ++step) {
            if (step < args.learning_starts) {
                for (Index i = 0; i < a.size(); ++i) a(i) = act_rng.uniform<T>(lo(i), hi(i));
            } else {
                sac.act(ts.observation, a, act_rng);  // internal_dim = 0: s = observation
            }
            env.step(a, next);
            replay.add({.observation = ts.observation, .internal = ts.internal, .action = a,
                        .reward = next.reward, .next_observation = next.observation,
                        .next_internal = next.internal, .terminated = next.terminated,
                        .truncated = next.truncated});
            ep_return += static_cast<double>(next.reward);
            std::swap(ts, next);
            if (step + 1 >= args.learning_starts) {
                replay.sample(args.batch, sample_rng, batch);
                st = sac.update(batch);
            }
            if (ts.done()) {
                returns.push_back(ep_return);
                if (!args.quiet && sac.updates() == 0)
                    std::printf("episode %4zu  step %6lld  return %9.2f  (random actions)\n", returns.size(),
                                static_cast<long long>(step + 1), ep_return);
                else if (!args.quiet)
                    std::printf("episode %4zu  step %6lld  return %9.2f  alpha %.4f  entropy %+.3f  q_loss %.4f\n",
                                returns.size(), static_cast<long long>(step + 1), ep_return,
                                double(st.alpha), double(st.entropy), double(st.q_loss));
                ep_return = 0;
                env.reset(args.seed * 1000003ULL + (++episode), ts);
            }
        }
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const std::size_t k = std::min<std::size_t>(10, returns.size());
        const double last10 = k ? std::accumulate(returns.end() - static_cast<long>(k), returns.end(), 0.0) / double(k) : 0.0;

        // Deterministic evaluation on fresh episodes (not part of the target, reported too).
        std::vector<double> eval;
        for (int e = 0; e < args.eval_episodes; ++e) {
            env.reset(0xE7A1000ULL + args.seed * 1000ULL + static_cast<std::uint64_t>(e), ts);
            double r = 0;
            while (!ts.done()) {
                sac.act_deterministic(ts.observation, a);
                env.step(a, ts);
                r += static_cast<double>(ts.reward);
            }
            eval.push_back(r);
        }
        const double eval_mean = eval.empty() ? 0.0 : std::accumulate(eval.begin(), eval.end(), 0.0) / double(eval.size());

        std::printf("seed %llu: mean return of the last %zu episodes %.2f; deterministic eval (%zu episodes) %.2f\n",
                    static_cast<unsigned long long>(args.seed), k, last10, eval.size(), eval_mean);
        std::printf("wall time %.1f s, %.0f env steps/s (%lld updates), load average %s\n", wall,
                    double(args.steps) / wall,
                    static_cast<long long>(sac.updates()), loadavg().c_str());

        nlohmann::json j = {
            {"algo", "SAC"}, {"env", "Pendulum-v1"}, {"seed", args.seed}, {"steps", args.steps},
            {"learning_starts", args.learning_starts}, {"batch", args.batch},
            {"hidden", {args.hidden, args.hidden}}, {"gamma", opt.gamma}, {"tau", opt.tau},
            {"lr", opt.actor_lr}, {"updates", sac.updates()}, {"episode_returns", returns},
            {"mean_return_last10", last10}, {"eval_returns", eval}, {"eval_mean_return", eval_mean},
            {"final_alpha", double(sac.alpha())}, {"wall_time_s", wall},
            {"steps_per_s", double(args.steps) / wall}, {"loadavg_end", loadavg()},
            {"target_met", last10 >= -200.0}};
        std::ofstream(args.json) << j.dump(2) << "\n";
        return 0;
    } catch (const persist::Error& e) {
        std::fprintf(stderr, "sac_pendulum: %s\n", e.what());
        return 2;
    }
}
