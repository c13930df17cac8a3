#pragma once
/// @file gridlife_forager.hpp
/// GridLifeForager: a hand-coded GridLife-v0 policy that reads only what an agent reads, the
/// observation o_t (the egocentric patch and the sub-tile offset) and x, and keeps no map. It is
/// the reference for learned policies (docs/gridlife.md, "Survival": 93.4 % of the horizon with
/// the defaults) and the source of the example demonstrations for seed Change 4
/// (examples/gridlife_demos.cpp).
///
/// It is not memoryless by default: it keeps an exploration heading (and a refuelling latch)
/// across steps, which no policy of (o_t, x_t) alone can reproduce. With
/// GridLifeForagerOptions::markov(env) on a GridLife that observes its last action
/// (GridLifeConfig::observe_last_action) it keeps none: the heading is the direction of a_{t-1},
/// read from o_t, turns are deterministic, and refuelling depends on the energy alone, so every
/// choice is a function of (o_t, x_t), which a policy of the same inputs can imitate
/// (docs/gridlife.md, "Survival").
///
/// Each step, in priority order:
/// - temp outside [0.4, 0.6]: the nearest visible cool-down station, else the nearest visible
///   tile whose heat is on the other side of 0.5 (beyond 0.05);
/// - integrity < 0.8: the nearest visible repair station;
/// - energy < 0.5 (and until 0.9 once started): the nearest visible refuel station;
/// - energy < 0.95: the nearest visible food item on a temperate tile (heat in (0.32, 0.68));
/// - otherwise explore: keep a heading (one of 8 directions), turning to a random free one
///   (seeded) when one of the two tiles ahead is a hazard, a wall, outside the world or of
///   extreme heat, and every 25 steps (markov: the heading is a_{t-1}'s direction rounded to
///   the nearest of the 8, and when it is blocked, or after standing still, it turns to the
///   first free direction 45 degrees at a time, counterclockwise in (x, y)); exploring it
///   walks at 0.7 of full speed, close to the
///   speed that minimises energy per tile covered, (decay + 2 effort_cost s^2) / s.
/// Targets on hazard or wall tiles are never chosen. Each step it picks, among the 8
/// full-speed moves, the exact move onto the target and standing still, the move that ends
/// closest to the target without ending on a hazard or wall tile (Euclidean distance plus
/// 1e-3 ||a||^2, so ties go to less effort).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/types.hpp"
#include "persist/env/gridlife.hpp"

namespace persist::env {

/// What the forager remembers between steps (defaults: the heading and the refuelling latch).
struct GridLifeForagerOptions {
    /// true: once energy < 0.5, refuel until 0.9 (a latch kept across steps); false: refuel
    /// while energy < 0.5 only.
    bool refuel_hysteresis = true;
    /// >= 0: the heading is read from o[last_action_offset .. +1] = a_{t-1} (a GridLife with
    /// observe_last_action: GridLife::last_action_offset()) instead of being remembered, and it
    /// turns only when blocked, deterministically. -1: the remembered heading, turning to a
    /// random free direction when blocked and every 25 steps.
    Index last_action_offset = -1;

    /// Nothing remembered: every choice a function of (o_t, x_t) and the turn stream. ConfigError
    /// unless `env` observes its last action.
    template <class Env>
    static GridLifeForagerOptions markov(const Env& env) {
        if (env.last_action_offset() < 0)
            throw ConfigError(
                "GridLifeForagerOptions::markov: the GridLife does not observe its last action "
                "(set GridLifeConfig::observe_last_action, config env.gridlife.observe_last_action)");
        return {.refuel_hysteresis = false, .last_action_offset = env.last_action_offset()};
    }
};

class GridLifeForager {
public:
    /// `view_radius` and `max_speed` of the GridLife it acts in; `seed`: the exploration turns.
    GridLifeForager(Index view_radius, double max_speed, std::uint64_t seed = 0, GridLifeForagerOptions options = {})
        : r_(static_cast<int>(view_radius)), ms_(max_speed), rng_(seed), opt_(options) {
        if (view_radius < 0 || view_radius > 16)
            throw ConfigError("GridLifeForager: view_radius must be in [0, 16], got " + std::to_string(view_radius));
        if (!(max_speed > 0.0 && max_speed <= 1.0))
            throw ConfigError("GridLifeForager: max_speed must be in (0, 1], got " + std::to_string(max_speed));
        const Index P = 2 * view_radius + 1;
        if (opt_.last_action_offset >= 0 && opt_.last_action_offset < P * P * 7 + 2)
            throw ConfigError("GridLifeForager: last_action_offset " + std::to_string(opt_.last_action_offset) +
                              " lies inside the patch and sub-tile offset (the first " + std::to_string(P * P * 7 + 2) +
                              " entries of o)");
    }
    template <class T, class Hook>
    explicit GridLifeForager(const GridLife<T, Hook>& env, std::uint64_t seed = 0, GridLifeForagerOptions options = {})
        : GridLifeForager(env.config().view_radius, env.config().max_speed, seed, options) {}

    const GridLifeForagerOptions& options() const noexcept { return opt_; }

    /// a (2) from o (at least (2r+1)^2 * 7 + 2 entries: patch, then the sub-tile offset) and
    /// x = [energy, temp, integrity]. ShapeError for wrong sizes.
    template <class T>
    void act(VecCRef<T> o, VecCRef<T> x, VecRef<T> a) {
        const int r = r_, P = 2 * r + 1;
        const Index need = std::max(static_cast<Index>(P * P * 7 + 2), opt_.last_action_offset + 2);
        if (o.size() < need) persist::detail::throw_shape("GridLifeForager::act: o", need, 1, o.size(), 1);
        if (x.size() != 3) persist::detail::throw_shape("GridLifeForager::act: x", 3, 1, x.size(), 1);
        if (a.size() != 2) persist::detail::throw_shape("GridLifeForager::act: a", 2, 1, a.size(), 1);
        const auto tile = [&](int dx, int dy, int c) {  // dx, dy relative to the agent's tile
            return double(o[static_cast<Index>(((dy + r) * P + (dx + r)) * 7 + c)]);
        };
        const double offx = double(o[static_cast<Index>(P * P * 7)]);
        const double offy = double(o[static_cast<Index>(P * P * 7 + 1)]);
        const double e = double(x[0]), tp = double(x[1]), in = double(x[2]);
        if (!opt_.refuel_hysteresis) refuelling_ = e < 0.5;
        if (refuelling_ && e >= 0.9) refuelling_ = false;
        if (e < 0.5) refuelling_ = true;

        // The nearest visible tile satisfying `want` that is neither a hazard nor a wall.
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
                have = nearest(
                    [&](int dx, int dy) {
                        const double h = tile(dx, dy, ch_heat);
                        return tp > 0.5 ? h < 0.45 : h > 0.55;
                    },
                    tx, ty);
        }
        if (!have && in < 0.8) have = nearest([&](int dx, int dy) { return tile(dx, dy, ch_repair) != 0; }, tx, ty);
        if (!have && refuelling_) have = nearest([&](int dx, int dy) { return tile(dx, dy, ch_refuel) != 0; }, tx, ty);
        if (!have && e < 0.95)
            have = nearest(
                [&](int dx, int dy) {
                    const double h = tile(dx, dy, ch_heat);
                    return tile(dx, dy, ch_food) != 0 && h > 0.32 && h < 0.68;
                },
                tx, ty);
        const auto bad = [&](int dx, int dy) {
            if (dx < -r || dx > r || dy < -r || dy > r) return false;  // not visible: assume free
            const double h = tile(dx, dy, ch_heat);
            return tile(dx, dy, ch_hazard) != 0 || tile(dx, dy, ch_wall) != 0 || h > 0.68 || h < 0.32;
        };
        double gx = 0, gy = 0;  // goal, relative to the centre of the agent's tile
        if (have) {
            gx = tx, gy = ty;
        } else {
            ++since_turn_;
            const bool markov = opt_.last_action_offset >= 0;
            if (markov) {  // the heading: a_{t-1}'s direction, rounded to the nearest of the 8
                const double lx = double(o[opt_.last_action_offset]), ly = double(o[opt_.last_action_offset + 1]);
                hx_ = hy_ = 0;
                if (lx * lx + ly * ly > 1e-6) {
                    const double k = std::round(std::atan2(ly, lx) / (std::numbers::pi / 4));  // -4 .. 4
                    constexpr int dirs[9][2] = {{-1, 0}, {-1, -1}, {0, -1}, {1, -1}, {1, 0},
                                                {1, 1},  {0, 1},   {-1, 1}, {-1, 0}};
                    hx_ = dirs[static_cast<int>(k) + 4][0], hy_ = dirs[static_cast<int>(k) + 4][1];
                }
            }
            const bool blocked = bad(hx_, hy_) || bad(2 * hx_, 2 * hy_) || (hx_ == 0 && hy_ == 0);
            if (markov && blocked) {  // deterministic: the first free direction, 45 degrees at a time
                constexpr int ring[8][2] = {{1, 0}, {1, 1}, {0, 1}, {-1, 1}, {-1, 0}, {-1, -1}, {0, -1}, {1, -1}};
                int k0 = 0;
                for (int k = 0; k < 8; ++k)
                    if (ring[k][0] == hx_ && ring[k][1] == hy_) k0 = k;
                int nx = hx_ == 0 && hy_ == 0 ? 1 : -hx_, ny = -hy_;  // nothing free: turn back
                for (int j = 1; j <= 8; ++j) {
                    const int k = (k0 + j) % 8, dx = ring[k][0], dy = ring[k][1];
                    if (!bad(dx, dy) && !bad(2 * dx, 2 * dy)) {
                        nx = dx, ny = dy;
                        break;
                    }
                }
                hx_ = nx, hy_ = ny;
            } else if (!markov && (blocked || since_turn_ > 25)) {
                int k = 0, nx = 0, ny = 0;  // a uniformly random free direction (reservoir sampling)
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
        double best = 1e18, bax = 0, bay = 0;
        const auto consider = [&](double ax, double ay) {
            ax = std::clamp(ax, -1.0, 1.0), ay = std::clamp(ay, -1.0, 1.0);
            const double px = offx + ms_ * ax, py = offy + ms_ * ay;
            const int nx = static_cast<int>(std::floor(px + 0.5)), ny = static_cast<int>(std::floor(py + 0.5));
            if (nx >= -r && nx <= r && ny >= -r && ny <= r && !(nx == 0 && ny == 0) &&
                (tile(nx, ny, ch_hazard) != 0 || tile(nx, ny, ch_wall) != 0))
                return;
            const double d = std::hypot(px - gx, py - gy) + 1e-3 * (ax * ax + ay * ay);
            if (d < best) best = d, bax = ax, bay = ay;
        };
        consider(0.0, 0.0);
        consider((gx - offx) / ms_, (gy - offy) / ms_);
        for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx)
                if (dx || dy) consider(dx, dy);
        const double sc = have ? 1.0 : 0.7;
        a[0] = static_cast<T>(sc * bax);
        a[1] = static_cast<T>(sc * bay);
    }

    /// Convenience: act on the environment's current observation and internal state.
    template <class T, class Hook>
    void act(const GridLife<T, Hook>& env, Vec<T>& a) {
        act<T>(env.observation(), env.internal(), a);
    }

    /// Start of an episode: forget the refuelling goal and the heading (the turn stream goes on).
    void reset() { refuelling_ = false, hx_ = 1, hy_ = 0, since_turn_ = 0; }

private:
    int r_;
    double ms_;
    Rng rng_;
    GridLifeForagerOptions opt_;
    bool refuelling_ = false;
    int hx_ = 1, hy_ = 0, since_turn_ = 0;
};

}  // namespace persist::env
