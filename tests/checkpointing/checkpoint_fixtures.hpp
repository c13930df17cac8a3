#pragma once
// Agents for the checkpoint tests: GridLife + SAC + {Surprise (double), RND (float)} with small
// networks, a replay and a near-boundary buffer small enough to wrap, and a curriculum that
// changes the constraint set between episodes; plus a bitwise snapshot of any Stateful object.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <persist/agents/sac.hpp>
#include <persist/core/state.hpp>
#include <persist/env/gridlife.hpp>
#include <persist/homeostasis/homeostat.hpp>
#include <persist/intrinsic/intrinsic.hpp>
#include <persist/shield/null_shield.hpp>
#include <persist/train/persist_agent.hpp>

namespace ckpttest {

using persist::Index;
using persist::Vec;

/// Every state tensor of an object: name, dtype, shape and bytes.
struct Snapshot {
    std::vector<std::string> names;
    std::vector<std::vector<unsigned char>> bytes;
    std::size_t total_bytes() const {
        std::size_t n = 0;
        for (const auto& b : bytes) n += b.size();
        return n;
    }
};

template <class Obj>
Snapshot snapshot(Obj& o) {
    Snapshot s;
    o.visit_state([&](persist::TensorRef t) {
        s.names.push_back(t.name + " " + persist::dtype_name(t.dtype) + " " + t.shape_string());
        const auto* p = static_cast<const unsigned char*>(t.data);
        s.bytes.emplace_back(p, p + t.bytes());
    });
    return s;
}

/// "" when equal, else the first differing tensor.
inline std::string first_difference(const Snapshot& a, const Snapshot& b) {
    if (a.names.size() != b.names.size()) return "different numbers of tensors";
    for (std::size_t i = 0; i < a.names.size(); ++i) {
        if (a.names[i] != b.names[i]) return "tensor " + a.names[i] + " vs " + b.names[i];
        if (a.bytes[i] != b.bytes[i]) return "values of " + a.names[i];
    }
    return "";
}

template <class T>
using Env = persist::env::GridLife<T>;
template <class T>
using Set = persist::viability::ConstraintSet<T>;

inline persist::env::GridLifeConfig small_world() {
    return persist::env::GridLifeConfig{.width = 8, .height = 8, .horizon = 48};
}

template <class T>
Set<T> target_set() {
    return Set<T>({"energy", "temp", "integrity"}, {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6"});
}
template <class T>
Set<T> wide_set() {
    return Set<T>({"energy", "temp", "integrity"}, {"energy >= 0.05", "temp in [0.15, 0.85]", "integrity >= 0.3"});
}
template <class T>
persist::train::Curriculum<T> curriculum(std::int64_t total = 400) {
    return persist::train::Curriculum<T>(
        wide_set<T>(), target_set<T>(),
        persist::train::CurriculumOptions{.warmup_steps = 40, .total_steps = total,
                                          .schedule = persist::train::CurriculumSchedule::cosine,
                                          .lambda_homeo_start = 0.1, .lambda_homeo_end = 0.7,
                                          .lambda_intr_start = 0.0, .lambda_intr_end = 0.3});
}

template <class T>
persist::homeostasis::Homeostat<T> homeostat() {
    Vec<T> mu(3), w(3);
    mu << T(0.7), T(0.5), T(0.9);
    w << T(1.0), T(0.5), T(1.5);
    return persist::homeostasis::Homeostat<T>(mu, w, {"energy", "temp", "integrity"});
}

template <class T>
persist::agents::SAC<T> sac(const Env<T>& e, std::uint64_t seed, Index hidden = 24) {
    persist::agents::SACOptions o;
    o.hidden = {hidden, hidden};
    o.seed = seed;
    return persist::agents::SAC<T>(e, o);
}

inline persist::train::AgentOptions options(std::uint64_t seed) {
    return persist::train::AgentOptions{.batch_size = 16, .update_every = 8, .gradient_steps = 2,
                                        .learning_starts = 64, .replay_capacity = 150,
                                        .near_boundary_capacity = 12, .near_boundary_epsilon = 0.15,
                                        .seed = seed};
}

template <class T>
persist::intrinsic::Surprise<T> surprise(const Env<T>& e) {
    persist::intrinsic::SurpriseOptions o;
    o.obs_dim = e.observation_dim();
    o.internal_dim = e.internal_dim();
    o.action_dim = e.action_dim();
    o.hidden = {24, 24};
    o.normalize = persist::intrinsic::SurpriseNorm::standardize;
    o.seed = 5;
    return persist::intrinsic::Surprise<T>(o);
}

template <class T>
persist::intrinsic::RND<T> rnd(const Env<T>& e) {
    persist::intrinsic::RNDOptions o;
    o.obs_dim = e.observation_dim();
    o.output_dim = 8;
    o.hidden = {16};
    o.predictor_extra = {16};
    o.update_proportion = 0.5;  // the update mask stream is part of the state
    o.seed = 6;
    return persist::intrinsic::RND<T>(o);
}

template <class T, class Intr>
using Agent = persist::train::PersistAgent<Env<T>, persist::agents::SAC<T>, persist::shield::NullShield<T>, Intr>;

/// A fresh agent; `with_curriculum` installs curriculum<T>().
template <class T, class Intr, class MakeIntr>
Agent<T, Intr> make_agent(MakeIntr make_intr, std::uint64_t seed, bool with_curriculum = true,
                          persist::train::AgentOptions opt = options(1), Index hidden = 24) {
    opt.seed = seed;
    Env<T> e(small_world());
    auto intr = make_intr(e);
    auto policy = sac<T>(e, seed, hidden);
    Agent<T, Intr> a(std::move(e), std::move(policy), {}, std::move(intr), homeostat<T>(), target_set<T>(), opt);
    if (with_curriculum) a.set_curriculum(curriculum<T>());
    return a;
}

/// Collects the JSON metrics lines an agent writes from now on.
template <class A>
void record_lines(A& agent, std::vector<std::string>& lines) {
    agent.on_episode_end([&agent, &lines](const persist::train::EpisodeRecord& r) {
        lines.push_back(persist::train::to_json(r, agent.metrics().constraint_names(), agent.metrics().variable_names()).dump());
    });
}

}  // namespace ckpttest
