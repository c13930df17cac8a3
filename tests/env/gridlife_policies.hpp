#pragma once
// Scripted GridLife policies for sanity checks and the survival numbers in docs/gridlife.md:
// a uniformly random policy, and StationKeeper, a hand-coded "go to a station when low"
// policy that plans on the (fully known) tile map.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "persist/core/random.hpp"
#include "persist/env/exact_fp.hpp"
#include "persist/env/gridlife.hpp"

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

/// An egocentric reactive forager: it sees only what an agent sees, the (2r+1)^2 observation
/// patch, the sub-tile offset and x, and keeps no map. It is the reference for what a policy
/// *without memory* can reach from the default view (docs/gridlife.md, "Survival"):
/// - targets in priority order: a cool-down station or a tile of opposite heat when temp leaves
///   [0.4, 0.6]; a repair station when integrity < 0.8; a refuel station when energy < 0.5
///   (staying until 0.9); the nearest food item when energy < 0.95;
/// - otherwise it explores in a persistent direction, turning (seeded) when the tile ahead is a
///   hazard, a wall, outside the world or of extreme heat, and at random every ~25 steps, at
///   0.7 of full speed;
/// - each step it picks, among 8 full-speed moves, the exact move onto the target and standing
///   still, the one that gets closest to the target without ending on a hazard or wall tile.
class PatchForager {
public:
    explicit PatchForager(std::uint64_t seed = 0) : rng_(seed) {}

    template <class T, class Hook>
    void act(const persist::env::GridLife<T, Hook>& env, persist::Vec<T>& a) {
        using namespace persist::env;
        const auto& o = env.observation();
        const int r = static_cast<int>(env.config().view_radius), P = 2 * r + 1;
        const double ms = env.config().max_speed;
        const auto tile = [&](int dx, int dy, int c) {  // dx, dy relative to the agent's tile
            return double(o[static_cast<persist::Index>(((dy + r) * P + (dx + r)) * 7 + c)]);
        };
        const double offx = double(o[static_cast<persist::Index>(P * P * 7)]);
        const double offy = double(o[static_cast<persist::Index>(P * P * 7 + 1)]);
        const auto& x = env.internal();
        const double e = double(x[0]), tp = double(x[1]), in = double(x[2]);
        if (refuelling_ && e >= 0.9) refuelling_ = false;
        if (e < 0.5) refuelling_ = true;

        // Pick the nearest visible tile satisfying want (Chebyshev distance, then Euclidean).
        const auto nearest = [&](auto&& want, int& tx, int& ty) {
            double best = 1e9;
            for (int dy = -r; dy <= r; ++dy)
                for (int dx = -r; dx <= r; ++dx)
                    if (want(dx, dy) && tile(dx, dy, ch_hazard) == 0 && tile(dx, dy, ch_wall) == 0) {
                        const double d = std::hypot(dx - offx, dy - offy);
                        if (d < best) best = d, tx = dx, ty = dy;
                    }
            return best < 1e9;
        };
        int tx = 0, ty = 0;
        bool have = false;
        if (tp > 0.6 || tp < 0.4) {
            have = nearest([&](int dx, int dy) { return tile(dx, dy, ch_cool) != 0; }, tx, ty);
            if (!have)
                have = nearest([&](int dx, int dy) {
                    const double h = tile(dx, dy, ch_heat);
                    return tp > 0.5 ? h < 0.45 : h > 0.55;
                }, tx, ty);
        }
        if (!have && in < 0.8) have = nearest([&](int dx, int dy) { return tile(dx, dy, ch_repair) != 0; }, tx, ty);
        if (!have && refuelling_) have = nearest([&](int dx, int dy) { return tile(dx, dy, ch_refuel) != 0; }, tx, ty);
        if (!have && e < 0.95)
            have = nearest([&](int dx, int dy) {
                const double h = tile(dx, dy, ch_heat);
                return tile(dx, dy, ch_food) != 0 && h > 0.32 && h < 0.68;
            }, tx, ty);
        const auto bad = [&](int dx, int dy) {
            if (dx < -r || dx > r || dy < -r || dy > r) return false;
            const double h = tile(dx, dy, ch_heat);
            return tile(dx, dy, ch_hazard) != 0 || tile(dx, dy, ch_wall) != 0 || h > 0.68 || h < 0.32;
        };
        double gx, gy;  // goal, relative to the centre of the agent's tile
        if (have) {
            gx = tx, gy = ty;
        } else {
            ++since_turn_;
            const bool blocked = bad(hx_, hy_) || bad(2 * hx_, 2 * hy_) || (hx_ == 0 && hy_ == 0);
            if (blocked || since_turn_ > 25) {
                int k = 0, nx = 0, ny = 0;  // reservoir-sample a free direction
                for (int dy = -1; dy <= 1; ++dy)
                    for (int dx = -1; dx <= 1; ++dx)
                        if ((dx || dy) && !bad(dx, dy) && !bad(2 * dx, 2 * dy) &&
                            rng_.next_u64() % static_cast<std::uint64_t>(++k) == 0)
                            nx = dx, ny = dy;
                if (k == 0) nx = -hx_, ny = -hy_;
                hx_ = nx, hy_ = ny, since_turn_ = 0;
            }
            gx = 3.0 * hx_, gy = 3.0 * hy_;
        }
        // Choose the move that gets closest to the goal without ending on a hazard / wall.
        double best = 1e18, bax = 0, bay = 0;
        const auto consider = [&](double ax, double ay) {
            ax = std::clamp(ax, -1.0, 1.0), ay = std::clamp(ay, -1.0, 1.0);
            const double px = offx + ms * ax, py = offy + ms * ay;
            const int nx = static_cast<int>(std::floor(px + 0.5)), ny = static_cast<int>(std::floor(py + 0.5));
            if (nx >= -r && nx <= r && ny >= -r && ny <= r &&
                (tile(nx, ny, ch_hazard) != 0 || tile(nx, ny, ch_wall) != 0) && !(nx == 0 && ny == 0))
                return;
            const double d = std::hypot(px - gx, py - gy) + 1e-3 * (ax * ax + ay * ay);
            if (d < best) best = d, bax = ax, bay = ay;
        };
        consider(0.0, 0.0);
        consider((gx - offx) / ms, (gy - offy) / ms);
        for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx)
                if (dx || dy) consider(dx, dy);
        // Exploring, it walks at 0.7 of full speed: energy per tile covered,
        // (decay + effort_cost * 2 s^2) / s, is smallest at s = sqrt(decay / (2 effort_cost)).
        const double sc = have ? 1.0 : 0.7;
        a[0] = static_cast<T>(sc * bax);
        a[1] = static_cast<T>(sc * bay);
    }

    void reset() { refuelling_ = false, hx_ = 1, hy_ = 0, since_turn_ = 0; }

private:
    persist::Rng rng_;
    bool refuelling_ = false;
    int hx_ = 1, hy_ = 0, since_turn_ = 0;
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
