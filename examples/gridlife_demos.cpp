// gridlife_demos: safe GridLife demonstrations for seed Change 4 ("learn viability from safe
// demonstrations"), written in the documented demonstration format (docs/models.md,
// "Demonstration files"; JSON lines or CSV by the extension of --out).
//
// Usage: gridlife_demos --out FILE [--config FILE] [--episodes N] [--seed S] [--noise P]
//                       [--record executed|expert] [--expert heading|markov]
//        gridlife_demos --evaluate N [--config FILE] [--seed S] [--expert heading|markov]
//
// The expert is persist::env::GridLifeForager (it reads only o_t and x, keeps no map;
// docs/gridlife.md, "Survival"). --expert heading (default) remembers an exploration heading and
// a refuelling latch across steps; --expert markov remembers nothing (heading = the direction of
// a_{t-1}, read from the observation, so the config must set env.gridlife.observe_last_action):
// its choices are a function of what the learner sees, the expert to clone a policy from.
// --evaluate N writes nothing: it plays N episodes (reset seeds 0 .. N-1, no noise) and prints
// the expert's mean survival, the fraction reaching the horizon and the deaths per variable.
//
// Each step is recorded as {episode, x_t, a_t, o_t}; only episodes that reach the
// horizon without a violation are written (the others are counted and dropped), so every
// demonstrated state is safe. --noise P replaces each action with a uniform random one with
// probability P: a careful expert never stands on a hazard or in the heat, so its
// demonstrations cannot show a learned model what those do (docs/shield.md, "Pre-training on
// demonstrations"). --record expert writes the action the expert chose instead of the random one
// that was executed (noise injection as in DART, Laskey et al. 2017: states off the expert's path,
// labelled with what the expert would do there), which is what behaviour cloning of the policy
// needs; such a file's (x_t, a_t, x_t+1) are then not transitions of the world, so do not
// pre-train the shield's models on it (demonstrations.pretrain_steps: 0). The world is the
// config's env section (default examples/configs/gridlife.yaml).
//
// Then: gridlife_persist --demonstrations FILE (or demonstrations.enabled / path in the config).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <persist/config/config.hpp>
#include <persist/config/yaml.hpp>
#include <persist/env/gridlife.hpp>
#include <persist/env/gridlife_forager.hpp>
#include <persist/replay/demonstrations.hpp>

#include "example_args.hpp"

#ifndef PERSIST_EXAMPLES_CONFIG_DIR
#define PERSIST_EXAMPLES_CONFIG_DIR "examples/configs"
#endif

namespace {

using persist::Index;
using persist::Vec;
using T = float;
using persist_examples::parse_int;
using persist_examples::parse_number;

struct Args {
    std::string config = PERSIST_EXAMPLES_CONFIG_DIR "/gridlife.yaml";
    std::optional<std::string> out;
    std::int64_t episodes = 20;
    std::uint64_t seed = 0;
    double noise = 0.0;
    bool record_expert = false;  ///< --record expert: the expert's choice, not the executed random action
    bool markov = false;         ///< --expert markov: GridLifeForagerOptions::markov
    std::int64_t evaluate = 0;   ///< --evaluate N: survival of the expert over N episodes, no file
};


Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string f = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw persist::ConfigError(f + ": missing value");
            return argv[++i];
        };
        if (f == "--out") a.out = value();
        else if (f == "--config") a.config = value();
        else if (f == "--evaluate") a.evaluate = parse_int(f, value(), 1);
        else if (f == "--episodes") a.episodes = parse_int(f, value(), 1);
        else if (f == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(f, value(), 0));
        else if (f == "--noise") a.noise = parse_number(f, value(), 0.0, 1.0, /*hi_open=*/true);
        else if (f == "--record") {
            const std::string v = value();
            if (v != "executed" && v != "expert")
                throw persist::ConfigError("--record " + v + ": expected executed or expert");
            a.record_expert = v == "expert";
        } else if (f == "--expert") {
            const std::string v = value();
            if (v != "heading" && v != "markov")
                throw persist::ConfigError("--expert " + v + ": expected heading or markov");
            a.markov = v == "markov";
        } else if (f == "-h" || f == "--help") {
            std::printf("usage: gridlife_demos --out FILE.jsonl|FILE.csv [--config FILE] [--episodes N] [--seed S] "
                        "[--noise P] [--record executed|expert] [--expert heading|markov]\n"
                        "       gridlife_demos --evaluate N [--config FILE] [--seed S] [--expert heading|markov]\n");
            std::exit(0);
        } else {
            throw persist::ConfigError("unknown argument '" + f + "' (see --help)");
        }
    }
    if (!a.out && a.evaluate == 0) throw persist::ConfigError("--out FILE is required (.jsonl or .csv)");
    if (a.out && a.evaluate > 0) throw persist::ConfigError("--evaluate N writes no file: drop --out");
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse(argc, argv);
        const auto c = persist::config::load_config(a.config);
        persist::env::GridLife<T> env(persist::config::make_gridlife_config(c));
        persist::env::GridLifeForager expert(
            env, a.seed,
            a.markov ? persist::env::GridLifeForagerOptions::markov(env) : persist::env::GridLifeForagerOptions{});
        if (a.evaluate > 0) {  // the expert's survival, nothing written
            persist::TimeStep<T> ts;
            Vec<T> act(env.action_dim());
            double mean = 0;
            std::int64_t reached = 0, deaths[3] = {0, 0, 0};
            for (std::int64_t e = 0; e < a.evaluate; ++e) {
                env.reset(static_cast<std::uint64_t>(e), ts);
                expert.reset();
                while (!ts.done()) {
                    expert.act(env, act);
                    env.step(act, ts);
                }
                mean += double(env.elapsed_steps()) / double(a.evaluate);
                if (!ts.terminated) ++reached;
                else if (const Index v = env.last_violation().index; v >= 0 && v < 3) ++deaths[v];
            }
            std::printf("gridlife_demos: expert %s, %lld episodes (seeds 0-%lld): mean survival %.1f steps (%.1f %% of the "
                        "horizon %lld), %.1f %% reach it; deaths energy / temp / integrity %lld / %lld / %lld\n",
                        a.markov ? "markov" : "heading", static_cast<long long>(a.evaluate),
                        static_cast<long long>(a.evaluate - 1), mean, 100.0 * mean / double(env.config().horizon),
                        static_cast<long long>(env.config().horizon), 100.0 * double(reached) / double(a.evaluate),
                        static_cast<long long>(deaths[0]), static_cast<long long>(deaths[1]),
                        static_cast<long long>(deaths[2]));
            return 0;
        }
        persist::Rng noise(a.seed, 1);
        persist::replay::DemonstrationBuffer<T> demos(env.internal_dim(), env.action_dim(), env.observation_dim());
        std::vector<Vec<T>> xs, as, os;
        persist::TimeStep<T> ts;
        Vec<T> act(env.action_dim()), chosen(env.action_dim());
        std::int64_t kept = 0, dropped = 0, random_actions = 0;
        // Bounded: a world where the expert never survives is reported, not looped on forever.
        const std::int64_t max_episodes = 20 * a.episodes + 100;
        for (std::int64_t e = 0; kept < a.episodes && kept + dropped < max_episodes; ++e) {
            env.reset(a.seed * 1'000'003ull + static_cast<std::uint64_t>(e), ts);
            expert.reset();
            xs.clear(), as.clear(), os.clear();
            while (!ts.done()) {
                expert.act(env, act);
                chosen = act;
                if (a.noise > 0 && noise.uniform<double>() < a.noise) {
                    for (Index i = 0; i < act.size(); ++i) act[i] = noise.uniform<T>(T(-1), T(1));
                    ++random_actions;
                }
                xs.push_back(ts.internal), as.push_back(a.record_expert ? chosen : act), os.push_back(ts.observation);
                env.step(act, ts);
            }
            if (ts.terminated) {
                ++dropped;
                continue;
            }
            for (std::size_t t = 0; t < xs.size(); ++t) demos.add(kept, xs[t], as[t], os[t]);
            ++kept;
        }
        if (kept < a.episodes)
            throw persist::Error("gridlife_demos: only " + std::to_string(kept) + " of " + std::to_string(kept + dropped) +
                                 " episodes reached the horizon without a violation; asked for " +
                                 std::to_string(a.episodes) + " (lower --noise, or check the env section of " + a.config +
                                 ")");
        persist::replay::save_demonstrations(*a.out, demos);
        std::printf("gridlife_demos: %lld safe episodes (%lld steps, %lld random actions%s) written to %s; %lld episodes "
                    "ended in a violation and were dropped\n",
                    static_cast<long long>(kept), static_cast<long long>(demos.size()),
                    static_cast<long long>(random_actions),
                    a.record_expert && random_actions > 0 ? ", recorded as the expert's choice" : "", a.out->c_str(),
                    static_cast<long long>(dropped));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gridlife_demos: error: %s\n", e.what());
        return 1;
    }
}
