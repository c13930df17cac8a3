#pragma once
// Scripted GridLife policies for sanity checks and the survival numbers in docs/gridlife.md:
// a uniformly random policy, and StationKeeper, a hand-coded "go to a station when low"
// policy that plans on the (fully known) tile map.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "persist/core/random.hpp"
#include "persist/env/exact_fp.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/env/gridlife_forager.hpp"

namespace envtest {

/// a ~ U[-1, 1]^2 from persist::Rng.
struct RandomPolicy {
    persist::Rng rng;
    template <class T, class Env>
    void act(const Env&, persist::Vec<T>& a) {
        // persist::env::detail::uniform: the same numbers with and without FMA builds
        a[0] = persist::env::detail::uniform(rng, T(-1), T(1));
        a[1] = persist::env::detail::uniform(rng, T(-1), T(1));
    }
};

/// Hand-coded survival: keep x near the middle of the viability set by visiting stations.
/// - needs: energy < 0.45 -> refuel until 0.95; integrity < 0.75 -> repair until 0.97;
///   temp outside [0.4, 0.6] -> cool-down until within 0.03 of 0.5 (temp first when urgent);
/// - otherwise eat the nearest food item on a temperate tile when energy < 0.85, else rest;
/// - routes: Dijkstra over tiles (8-neighbourhood) where hazards and extreme heat are costly,
///   then steer to the next tile's centre at full speed (arriving exactly, no overshoot).
class StationKeeper {
public:
    enum Goal : int { none = -1, refuel = 0, cool = 1, repair = 2 };

    template <class T, class Hook>
    void act(const persist::env::GridLife<T, Hook>& env, persist::Vec<T>& a) {
        using namespace persist::env;
        const auto& x = env.internal();
        const double e = double(x[0]), tp = double(x[1]), in = double(x[2]);
        // Finish the current goal, or pick a new one.
        if (goal_ == refuel && e >= 0.95) goal_ = none;
        if (goal_ == repair && in >= 0.97) goal_ = none;
        if (goal_ == cool && std::abs(tp - 0.5) <= 0.03) goal_ = none;
        const bool temp_bad = tp > 0.6 || tp < 0.4;
        if (temp_bad && (tp > 0.64 || tp < 0.36)) goal_ = cool;  // urgent: pre-empts
        if (goal_ == none) {
            if (e < 0.45) goal_ = refuel;
            else if (in < 0.75) goal_ = repair;
            else if (temp_bad) goal_ = cool;
        }
        Index target = -1;
        if (goal_ != none) target = nearest(env, [&](Index ix, Index iy) {
            return env.tile(ix, iy, ch_refuel + goal_) != T(0);
        });
        if (target < 0 && e < 0.85)  // forage
            target = nearest(env, [&](Index ix, Index iy) {
                const double h = double(env.tile(ix, iy, ch_heat));
                return env.tile(ix, iy, ch_food) != T(0) && env.tile(ix, iy, ch_hazard) == T(0) &&
                       h > 0.3 && h < 0.7;
            });
        if (target < 0) {  // rest
            a.setZero();
            return;
        }
        const Index W = env.width();
        const Index here = env.tile_y() * W + env.tile_x();
        Index next = target;
        while (prev_[static_cast<std::size_t>(next)] != here && next != here)
            next = prev_[static_cast<std::size_t>(next)];
        const double ms = env.config().max_speed;
        const double tx = double(next % W) + 0.5, ty = double(next / W) + 0.5;
        a[0] = static_cast<T>(std::clamp((tx - double(env.position_x())) / ms, -1.0, 1.0));
        a[1] = static_cast<T>(std::clamp((ty - double(env.position_y())) / ms, -1.0, 1.0));
    }

    void reset() { goal_ = none; }

private:
    using Index = persist::Index;

    /// Dijkstra from the agent's tile; returns the cheapest tile satisfying `want` (-1: none)
    /// and leaves the shortest-path tree in prev_.
    template <class Env, class Pred>
    Index nearest(const Env& env, Pred&& want) {
        using namespace persist::env;
        const Index W = env.width(), H = env.height(), n = W * H;
        dist_.assign(static_cast<std::size_t>(n), std::numeric_limits<double>::infinity());
        prev_.assign(static_cast<std::size_t>(n), -1);
        done_.assign(static_cast<std::size_t>(n), 0);
        const Index start = env.tile_y() * W + env.tile_x();
        dist_[static_cast<std::size_t>(start)] = 0.0;
        for (Index it = 0; it < n; ++it) {  // O(n^2) Dijkstra: n = 256 tiles by default
            Index u = -1;
            for (Index k = 0; k < n; ++k)
                if (!done_[static_cast<std::size_t>(k)] &&
                    (u < 0 || dist_[static_cast<std::size_t>(k)] < dist_[static_cast<std::size_t>(u)]))
                    u = k;
            if (u < 0 || !std::isfinite(dist_[static_cast<std::size_t>(u)])) break;
            done_[static_cast<std::size_t>(u)] = 1;
            if (want(u % W, u / W)) return u;
            for (int dy = -1; dy <= 1; ++dy)
                for (int dx = -1; dx <= 1; ++dx) {
                    if (!dx && !dy) continue;
                    const Index vx = u % W + dx, vy = u / W + dy;
                    if (vx < 0 || vy < 0 || vx >= W || vy >= H) continue;
                    if (env.tile(vx, vy, ch_wall) != 0) continue;
                    // diagonal steps must not cut a wall corner
                    if (dx && dy && (env.tile(u % W + dx, u / W, ch_wall) != 0 ||
                                     env.tile(u % W, u / W + dy, ch_wall) != 0))
                        continue;
                    const double h = double(env.tile(vx, vy, ch_heat));
                    using persist::env::detail::mul;  // FMA-proof: same routes in every build
                    const double c = (dx && dy ? 1.4142 : 1.0) + mul(25.0, double(env.tile(vx, vy, ch_hazard))) +
                                     mul(20.0, std::max(0.0, std::abs(h - 0.5) - 0.15));
                    const Index v = vy * W + vx;
                    if (dist_[static_cast<std::size_t>(u)] + c < dist_[static_cast<std::size_t>(v)]) {
                        dist_[static_cast<std::size_t>(v)] = dist_[static_cast<std::size_t>(u)] + c;
                        prev_[static_cast<std::size_t>(v)] = u;
                    }
                }
        }
        return -1;
    }

    int goal_ = none;
    std::vector<double> dist_;
    std::vector<Index> prev_;
    std::vector<std::uint8_t> done_;
};

/// persist::env::GridLifeForager (the library's reference policy, reading only o_t and x) in the
/// act(env, a) / reset() shape measure_survival expects; `markov`: GridLifeForagerOptions::markov.
class PatchForager {
public:
    explicit PatchForager(std::uint64_t seed = 0, bool markov = false) : seed_(seed), markov_(markov) {}
    template <class T, class Hook>
    void act(const persist::env::GridLife<T, Hook>& env, persist::Vec<T>& a) {
        if (!pol_)
            pol_.emplace(env, seed_,
                         markov_ ? persist::env::GridLifeForagerOptions::markov(env)
                                 : persist::env::GridLifeForagerOptions{});
        pol_->act(env, a);
    }
    void reset() {
        if (pol_) pol_->reset();
    }

private:
    std::uint64_t seed_;
    bool markov_;
    std::optional<persist::env::GridLifeForager> pol_;
};

/// Mean episode length and fraction reaching the horizon over seeds [seed0, seed0 + n).
struct SurvivalStats {
    double mean_length = 0;
    double survived = 0;  ///< fraction truncated at the horizon (never terminated)
    std::array<int, 3> deaths_by_var{0, 0, 0};
};

template <class T, class Policy>
SurvivalStats measure_survival(const persist::env::GridLifeConfig& cfg, Policy policy, std::uint64_t seed0,
                               int n) {
    persist::env::GridLife<T> env(cfg);
    persist::TimeStep<T> ts;
    persist::Vec<T> a(2);
    SurvivalStats s;
    for (int e = 0; e < n; ++e) {
        env.reset(seed0 + static_cast<std::uint64_t>(e), ts);
        if constexpr (requires { policy.reset(); }) policy.reset();
        while (!ts.done()) {
            policy.act(env, a);
            env.step(a, ts);
        }
        s.mean_length += double(env.elapsed_steps()) / n;
        if (!ts.terminated) s.survived += 1.0 / n;
        else if (env.last_violation().index >= 0)
            ++s.deaths_by_var[static_cast<std::size_t>(env.last_violation().index)];
    }
    return s;
}

}  // namespace envtest
