#pragma once
/// @file gridlife_rollout.hpp
/// GridLife pieces for the rollout kernels (parallel/rollout.hpp): its known internal dynamics
/// as a rollout model, and the egocentric-patch observation kinematics that predict which tile
/// the agent stands on during a rollout. Both are plain data built from a GridLife instance
/// (env/gridlife.hpp: GridLifeDynamics, GridLifePatchView) and `__host__ __device__` under nvcc.
#include <cmath>
#include <cstdint>
#include <vector>

#include "persist/env/gridlife.hpp"
#include "persist/parallel/rollout.hpp"

namespace persist::parallel {

/// GridLife's exact x' = f(x, a, c(o)) (env::GridLifeDynamics, the very code GridLife::step
/// runs) as a deterministic rollout model with one "member". It reads the 7 channels of the
/// centre tile of the predicted observation, so with GridLifePatchKinematics the tile changes
/// as the agent moves, and with HoldObservation it stays the tile of o_t.
template <class T>
struct GridLifeRolloutModel {
    using scalar_type = T;
    static constexpr bool has_network = false;
    static constexpr bool stochastic = false;
    env::GridLifeDynamics<T> f{};
    std::int32_t centre = 0;  ///< offset of the centre tile's channel 0 in o
    std::int32_t obs_dim = 0;

    template <class Hook>
    static GridLifeRolloutModel from(const env::GridLife<T, Hook>& env) {
        return {env.dynamics(), static_cast<std::int32_t>(env.centre_offset()),
                static_cast<std::int32_t>(env.observation_dim())};
    }

    PERSIST_HD std::int32_t members() const { return 1; }
    PERSIST_HD std::int32_t internal_dim() const { return 3; }
    PERSIST_HD std::int32_t action_dim() const { return 2; }
    PERSIST_HD std::int32_t scratch_size() const { return 0; }
    PERSIST_HD std::int32_t observation_dim() const { return obs_dim; }

    template <class Obs>
    PERSIST_HD void step(std::int32_t, const T* x, const T* a, const Obs& obs, const T*, T* xn, T*) const {
        T c[7];
        for (std::int32_t ch = 0; ch < 7; ++ch) c[ch] = obs(centre + ch);
        f(x, a, c, xn);
    }

    PERSIST_HD std::int32_t vjp_scratch_size() const { return 0; }
    /// ADDS dL/dx and dL/da of the step to g_x, g_a (the tile channels are constants; a
    /// clamped variable has derivative 0, one inside [0, 1] derivative 1).
    template <class Obs>
    PERSIST_HD void step_vjp(std::int32_t, const T* x, const T* a, const Obs& obs, const T* g_xn, T* g_x, T* g_a,
                             T*) const {
        T c[7];
        for (std::int32_t ch = 0; ch < 7; ++ch) c[ch] = obs(centre + ch);
        T xn[3];
        f(x, a, c, xn);
        // Pre-clamp values are inside [0, 1] exactly when the clamp did nothing.
        const T e = x[0] - f.energy_decay - f.effort_cost * (a[0] * a[0] + a[1] * a[1]) +
                    f.food_gain * c[env::ch_food] + f.refuel_gain * c[env::ch_refuel];
        const T tp = x[1] + f.heat_rate * (c[env::ch_heat] - x[1]) +
                     f.cool_rate * c[env::ch_cool] * (f.cool_target - x[1]);
        const T in = x[2] - f.hazard_damage * c[env::ch_hazard] + f.repair_gain * c[env::ch_repair] +
                     f.integrity_regen;
        const T d0 = (e >= T(0) && e <= T(1)) ? T(1) : T(0);
        const T d1 = (tp >= T(0) && tp <= T(1)) ? T(1) : T(0);
        const T d2 = (in >= T(0) && in <= T(1)) ? T(1) : T(0);
        g_x[0] += g_xn[0] * d0;
        g_a[0] += g_xn[0] * d0 * (-T(2) * f.effort_cost * a[0]);
        g_a[1] += g_xn[0] * d0 * (-T(2) * f.effort_cost * a[1]);
        g_x[1] += g_xn[1] * d1 * (T(1) - f.heat_rate - f.cool_rate * c[env::ch_cool]);
        g_x[2] += g_xn[2] * d2;
    }
};

/// What the patch kinematics assume beyond the observed (2r+1) x (2r+1) patch.
enum class OutsidePatch : std::int32_t {
    block = 0,        ///< the patch border acts as a wall: the predicted agent never leaves the patch (default)
    default_tile = 1, ///< the agent may leave; unseen tiles read `outside_tile` (e.g. a pessimistic hazard tile)
};

/// Egocentric-patch kinematics for GridLife: track the agent's position relative to where it
/// stands now with GridLife's movement rule (p += max_speed a, x axis first then y; a move into
/// a wall tile is cancelled on that axis), and read the features of the tile it would stand on
/// from the patch of o_t. Predicted observation o_hat_s: the patch shifted by the tracked tile
/// offset (unseen tiles: `outside_tile` with default_tile, the wall padding GridLife itself
/// uses with block), the tracked sub-tile offset, and the rollout's own x where o carries x.
/// Food the predicted agent eats is removed for the rest of the rollout (last 8 tiles kept).
/// Approximations (docs/shield.md): GridLife clamps a move at the world's edge while the patch
/// cannot tell the edge from a wall (both are walls in o), so the move is cancelled instead;
/// positions are tracked relative to the current tile, so rounding differs from the
/// environment's absolute coordinates in the last bit (only a move that ends within an ulp of a
/// tile edge can land on the other tile).
template <class T>
struct GridLifePatchKinematics {
    using scalar_type = T;
    /// Food eaten during the rollout is remembered for the last `max_eaten` tiles.
    static constexpr std::int32_t max_eaten = 8;
    struct State {
        T px = T(0), py = T(0);          ///< position in patch coordinates (tile col/row units)
        std::int32_t tx = 0, ty = 0;     ///< tile (column, row) in the patch frame; centre = (r, r)
        std::int32_t num_eaten = 0;      ///< food tiles eaten so far (patch tile indices in `eaten`, a ring)
        std::int32_t eaten[max_eaten] = {};
    };
    env::GridLifePatchView<T> patch{};
    OutsidePatch outside = OutsidePatch::block;
    T outside_tile[7] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0)};

    template <class Hook>
    static GridLifePatchKinematics from(const env::GridLife<T, Hook>& env, OutsidePatch outside = OutsidePatch::block) {
        GridLifePatchKinematics k;
        k.patch = env.patch_view();
        k.outside = outside;
        return k;
    }

    PERSIST_HD std::int32_t observation_dim() const { return patch.observation_dim; }

    PERSIST_HD void init(const T* o, State& s) const {
        const std::int32_t r = patch.radius;
        s.px = T(r) + (o[patch.subtile] + T(0.5));
        s.py = T(r) + (o[patch.subtile + 1] + T(0.5));
        s.tx = r;
        s.ty = r;
        s.num_eaten = 0;
    }
    PERSIST_HD bool was_eaten(const State& s, std::int32_t col, std::int32_t row) const {
        const std::int32_t q = row * patch.side + col;
        const std::int32_t n = s.num_eaten < max_eaten ? s.num_eaten : max_eaten;
        for (std::int32_t i = 0; i < n; ++i)
            if (s.eaten[i] == q) return true;
        return false;
    }
    /// Inside the observed patch (patch frame)?
    PERSIST_HD bool inside(std::int32_t col, std::int32_t row) const {
        return col >= 0 && row >= 0 && col < patch.side && row < patch.side;
    }
    /// Would the agent be stopped entering tile (col, row)?
    PERSIST_HD bool blocked(const T* o, std::int32_t col, std::int32_t row) const {
        if (!inside(col, row)) return outside == OutsidePatch::block || outside_tile[env::ch_wall] != T(0);
        return o[(static_cast<std::int64_t>(row) * patch.side + col) * patch.channels + env::ch_wall] != T(0);
    }
    PERSIST_HD void advance(const T* o, State& s, const T* a) const {
        using std::floor;
        // The step just taken ate the food of the tile stood on (GridLife::step): gone for the
        // rest of the rollout (respawn takes food_respawn_steps, far beyond a shield's horizon).
        if (inside(s.tx, s.ty) && !was_eaten(s, s.tx, s.ty) &&
            o[(static_cast<std::int64_t>(s.ty) * patch.side + s.tx) * patch.channels + env::ch_food] != T(0))
            s.eaten[s.num_eaten++ % max_eaten] = s.ty * patch.side + s.tx;
        T nx = s.px + env::detail::hd_mul(patch.max_speed, a[0]);
        auto tx = static_cast<std::int32_t>(floor(nx));
        if (blocked(o, tx, s.ty)) {
            nx = s.px;
            tx = s.tx;
        }
        T ny = s.py + env::detail::hd_mul(patch.max_speed, a[1]);
        auto ty = static_cast<std::int32_t>(floor(ny));
        if (blocked(o, tx, ty)) {
            ny = s.py;
            ty = s.ty;
        }
        s.px = nx;
        s.py = ny;
        s.tx = tx;
        s.ty = ty;
    }
    PERSIST_HD T feature(const T* o, const State& s, const T* x, std::int32_t i) const {
        if (i < patch.subtile) {  // patch entry: tile (row, col), channel ch, shifted by the offset
            const std::int32_t q = i / patch.channels, ch = i % patch.channels;
            const std::int32_t row = q / patch.side + (s.ty - patch.radius);
            const std::int32_t col = q % patch.side + (s.tx - patch.radius);
            if (inside(col, row)) {
                if (ch == env::ch_food && was_eaten(s, col, row)) return T(0);
                return o[(static_cast<std::int64_t>(row) * patch.side + col) * patch.channels + ch];
            }
            if (outside == OutsidePatch::default_tile) return outside_tile[ch];
            return ch == env::ch_wall ? T(1) : T(0);  // GridLife's padding
        }
        if (i == patch.subtile) return s.px - T(s.tx) - T(0.5);
        if (i == patch.subtile + 1) return s.py - T(s.ty) - T(0.5);
        if (patch.internal >= 0 && i >= patch.internal && i < patch.internal + 3) return x[i - patch.internal];
        return o[i];
    }
};

/// The observation entries GridLife's internal dynamics read: the 7 channels of the tile the
/// agent stands on (the patch centre). Use them as a learned internal model's obs_features
/// (models::EnsembleOptions::obs_features) so that, with GridLifePatchKinematics, the model
/// sees the tile the agent would stand on at every rollout step.
template <class T, class Hook>
std::vector<Index> gridlife_centre_features(const env::GridLife<T, Hook>& env) {
    const auto p = env.patch_view();
    std::vector<Index> f(static_cast<std::size_t>(p.channels));
    for (std::int32_t c = 0; c < p.channels; ++c) f[static_cast<std::size_t>(c)] = p.centre + c;
    return f;
}

}  // namespace persist::parallel
