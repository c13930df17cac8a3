#pragma once
/// @file gridlife.hpp
/// GridLife-v0, the PERSIST testbed (seed document, section 9): a 2-D world of W x H tiles
/// with a smooth heat map, food, hazards and refuel / cool-down / repair stations, and an agent
/// whose internal state x = [energy, temp, integrity] must stay in a viability set.
///
/// Equations, config table, observation layout and measured survival: docs/gridlife.md.
///
/// Design points:
/// - The internal dynamics x' = f(x, a, o) are a pure public function (`internal_transition`)
///   of x, the action and the tile channels at the centre of the observation patch (the tile
///   the agent stands on), so GridLife models KnownInternalDynamics and a shield can use f
///   as an exact model. `step` calls exactly this function.
/// - The observation's patch part is identical with and without partial observability (x is
///   only appended at the end), so f reads the same entries in both modes.
/// - Everything random comes from persist::Rng keyed by the reset seed: episodes are bitwise
///   reproducible. Stepping is deterministic given the actions.
/// - Termination is a set of per-variable bounds (the seed's constraints by default, changeable
///   at run time for curricula) plus an optional hook (template parameter) through which an
///   agent installs a parsed constraint set, e.g. ViabilityTermination<Model>.
/// - step() never allocates: every buffer is sized at construction or at the first reset.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"
#include "persist/env/exact_fp.hpp"

namespace persist::env {

/// What the task reward pays for (the seed: "task reward = exploration bonus or item
/// collection").
enum class GridLifeReward : std::uint8_t {
    exploration = 0,  ///< exploration_bonus for the first visit of each tile in an episode
    items = 1,        ///< item_reward for each food item collected
};

/// Internal variables, in the order of x.
enum GridLifeVar : Index { var_energy = 0, var_temp = 1, var_integrity = 2 };

/// Tile channels, in the order they appear per tile in the observation patch.
enum GridLifeChannel : Index {
    ch_heat = 0,    ///< heat-map value in [0, 1] (0 outside the world)
    ch_food = 1,    ///< 1 while a food item lies here
    ch_hazard = 2,  ///< 1 on hazard tiles
    ch_refuel = 3,  ///< 1 on refuel stations (restore energy)
    ch_cool = 4,    ///< 1 on cool-down stations (pull temp to cool_target)
    ch_repair = 5,  ///< 1 on repair stations (restore integrity)
    ch_wall = 6,    ///< 1 on walls and outside the world
};

/// Configuration of GridLife-v0. A plain aggregate of scalars, bools, an enum and small
/// std::arrays, so it can be reflected (JSON/YAML) and written with designated initialisers:
/// `GridLifeConfig{.width = 24, .partial_observability = true}`. Validated by the GridLife
/// constructor (persist::ConfigError naming the field, the value and the expected range).
/// Defaults: the seed's values where it gives them (horizon 512, mu, the three constraints),
/// otherwise chosen so a random policy dies well before the horizon while a simple
/// "go to a station when low" policy survives (docs/gridlife.md, "Survival").
struct GridLifeConfig {
    // --- world -----------------------------------------------------------------------------
    std::int32_t width = 16;                ///< W, tiles, [2, 4096]
    std::int32_t height = 16;               ///< H, tiles, [2, 4096]
    std::int32_t horizon = 512;             ///< truncation after this many steps, >= 1
    std::int32_t view_radius = 2;           ///< r: the patch is (2r+1) x (2r+1) tiles, [0, 16]
    double max_speed = 0.5;                 ///< tiles per step per unit action, (0, 1]
    bool partial_observability = false;     ///< true: x is not appended to the observation
    bool observe_last_action = false;       ///< true: a_{t-1} (2 values, 0 after reset) ends the observation
    /// Sensor degradation of the emitted observation (patch, sub-tile offset and x; a_{t-1} is
    /// exact): N(0, observation_noise_std^2) added to each entry, then each entry zeroed with
    /// probability observation_dropout. The world (dynamics, rewards, termination) uses the
    /// clean observation. Draws come from a stream seeded by the reset seed.
    double observation_dropout = 0.0;       ///< [0, 1]
    double observation_noise_std = 0.0;     ///< [0, 1e3]
    // --- map generation (from the reset seed unless fixed_map) ------------------------------
    bool fixed_map = false;                 ///< true: every episode uses the map of map_seed
    std::uint64_t map_seed = 0;             ///< map seed when fixed_map
    double base_heat = 0.5;                 ///< heat far from any spot, [0, 1]
    std::int32_t num_hot_spots = 3;         ///< Gaussian bumps of +spot_amplitude, [0, 64]
    std::int32_t num_cold_spots = 3;        ///< Gaussian bumps of -spot_amplitude, [0, 64]
    double spot_amplitude = 0.5;            ///< [0, 1]
    double spot_sigma = 2.0;                ///< spot width in tiles, (0, 1e3]
    std::int32_t num_food = 16;             ///< food tiles, >= 0
    bool food_respawns = true;              ///< false: eaten food never comes back this episode
    std::int32_t food_respawn_steps = 40;   ///< steps until an eaten item reappears, >= 1
    std::int32_t num_hazards = 12;          ///< hazard tiles, >= 0
    std::int32_t num_walls = 0;             ///< interior wall tiles, >= 0
    std::int32_t num_refuel = 2;            ///< refuel stations, >= 0
    std::int32_t num_cool = 2;              ///< cool-down stations, >= 0
    std::int32_t num_repair = 2;            ///< repair stations, >= 0
    // --- internal dynamics (docs/gridlife.md, "Dynamics") ----------------------------------
    std::array<double, 3> initial_internal{0.7, 0.5, 0.9};  ///< x_0 centre (seed's mu), [0, 1]
    double initial_noise = 0.05;            ///< x_0 = centre + U[-noise, noise], [0, 0.5]
    double energy_decay = 0.004;            ///< basal metabolism per step, [0, 1]
    double effort_cost = 0.004;             ///< energy per unit ||a||^2, [0, 1]
    double food_gain = 0.15;                ///< energy per food item eaten, [0, 1]
    double refuel_gain = 0.05;              ///< energy per step on a refuel station, [0, 1]
    double heat_rate = 0.05;                ///< temp relaxation rate to the tile's heat, [0, 1]
    double cool_rate = 0.2;                 ///< cool-down station pull to cool_target, [0, 1]
    double cool_target = 0.5;               ///< temp a cool-down station drives to, [0, 1]
    double hazard_damage = 0.08;            ///< integrity lost per step on a hazard, [0, 1]
    double repair_gain = 0.04;              ///< integrity per step on a repair station, [0, 1]
    double integrity_regen = 0.0;           ///< slow integrity regeneration per step, [0, 1]
    // --- termination (the seed's viability constraints) ------------------------------------
    std::array<double, 3> lower_bounds{0.2, 0.3, 0.6};  ///< violated when x_j < lower_j
    std::array<double, 3> upper_bounds{1.0, 0.7, 1.0};  ///< violated when x_j > upper_j
    // --- task reward -----------------------------------------------------------------------
    GridLifeReward reward_mode = GridLifeReward::exploration;
    double exploration_bonus = 1.0;         ///< per first visit of a tile (exploration mode)
    double item_reward = 1.0;               ///< per food item eaten (items mode)
    std::array<double, 3> station_cost{0.05, 0.05, 0.05};  ///< per step on refuel/cool/repair
};

/// Why the last episode ended (if it was terminated).
template <class T>
struct GridLifeViolation {
    enum class Source : std::uint8_t {
        none = 0,    ///< not terminated
        bounds = 1,  ///< a per-variable bound: `index` is the variable (GridLifeVar)
        hook = 2,    ///< the termination hook: `index` is the hook's constraint index
    };
    Source source = Source::none;
    Index index = -1;
    T value = T(0);  ///< the offending variable's value (bounds only)
    T bound = T(0);  ///< the bound it crossed (bounds only)
    bool below = false;  ///< crossed the lower bound (bounds only)
};

/// The default termination hook: nothing beyond the per-variable bounds. Use it as the
/// template for your own: a hook is any type with `Index first_violation(VecCRef<T> x)`
/// returning -1 when x is viable and otherwise the index of a violated constraint.
struct NoTerminationHook {
    template <class X>
    Index first_violation(const X&) const noexcept {
        return -1;
    }
};

/// What GridLife accepts as its termination hook (see NoTerminationHook).
template <class H, class T>
concept GridLifeTerminationHook = requires(H& h, VecCRef<T> x) {
    { h.first_violation(x) } -> std::convertible_to<Index>;
};

/// Terminate when any margin of a ViabilityModel (core/concepts.hpp, positive = safe) is
/// negative: how an agent installs its parsed constraint set in GridLife. Owns the model and
/// a margins buffer sized once, so checking never allocates.
/// @tparam V a persist::ViabilityModel over the 3 internal variables.
template <ViabilityModel V>
class ViabilityTermination {
public:
    using scalar_type = scalar_of<V>;
    explicit ViabilityTermination(V model)
        : model_(std::move(model)), margins_(model_.num_constraints(), 1) {
        if (model_.dim() != 3)
            throw ShapeError("ViabilityTermination: the viability model has dim() = " +
                             std::to_string(model_.dim()) +
                             ", GridLife has 3 internal variables [energy, temp, integrity]");
    }
    Index first_violation(VecCRef<scalar_type> x) {
        model_.margins(Eigen::Map<const Mat<scalar_type>>(x.data(), x.size(), 1), margins_);
        for (Index i = 0; i < margins_.rows(); ++i)
            if (margins_(i, 0) < scalar_type(0)) return i;
        return -1;
    }
    /// The margins of the last check (num_constraints x 1).
    const Mat<scalar_type>& margins() const noexcept { return margins_; }
    V& model() noexcept { return model_; }
    const V& model() const noexcept { return model_; }

private:
    V model_;
    Mat<scalar_type> margins_;
};

namespace detail {
[[noreturn]] inline void gridlife_bad(const char* field, const std::string& value, const char* expected) {
    throw ConfigError(std::string("GridLifeConfig.") + field + " = " + value + ": expected " + expected);
}
inline void check_int(const char* field, std::int64_t v, std::int64_t lo, std::int64_t hi) {
    if (v < lo || v > hi)
        gridlife_bad(field, std::to_string(v),
                     ("an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]").c_str());
}
/// Shortest decimal that reads back as v (0.8, not 0.80000000000000004), for messages.
inline std::string fmt_double(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, res.ptr);
}
/// lo <= v <= hi (open_lo: lo < v), finite.
inline void check_real(const char* field, double v, double lo, double hi, bool open_lo = false) {
    const bool ok = std::isfinite(v) && (open_lo ? v > lo : v >= lo) && v <= hi;
    if (!ok)
        gridlife_bad(field, fmt_double(v),
                     ((open_lo ? "a finite value in (" : "a finite value in [") + fmt_double(lo) +
                      ", " + fmt_double(hi) + "]")
                         .c_str());
}
inline void check_real3(const char* field, const std::array<double, 3>& v, double lo, double hi) {
    for (std::size_t j = 0; j < 3; ++j)
        check_real((std::string(field) + "[" + std::to_string(j) + "]").c_str(), v[j], lo, hi);
}
}  // namespace detail

/// Check every field of a GridLifeConfig; throws persist::ConfigError naming the first bad one.
inline void validate(const GridLifeConfig& c) {
    using detail::check_int;
    using detail::check_real;
    check_int("width", c.width, 2, 4096);
    check_int("height", c.height, 2, 4096);
    check_int("horizon", c.horizon, 1, std::numeric_limits<std::int32_t>::max());
    check_int("view_radius", c.view_radius, 0, 16);
    check_real("max_speed", c.max_speed, 0.0, 1.0, /*open_lo=*/true);
    check_real("observation_dropout", c.observation_dropout, 0.0, 1.0);
    check_real("observation_noise_std", c.observation_noise_std, 0.0, 1e3);
    check_real("base_heat", c.base_heat, 0.0, 1.0);
    check_int("num_hot_spots", c.num_hot_spots, 0, 64);
    check_int("num_cold_spots", c.num_cold_spots, 0, 64);
    check_real("spot_amplitude", c.spot_amplitude, 0.0, 1.0);
    check_real("spot_sigma", c.spot_sigma, 0.0, 1e3, true);
    const std::int64_t tiles = std::int64_t(c.width) * c.height;
    check_int("num_food", c.num_food, 0, tiles);
    check_int("food_respawn_steps", c.food_respawn_steps, 1, std::numeric_limits<std::int32_t>::max());
    check_int("num_hazards", c.num_hazards, 0, tiles);
    check_int("num_walls", c.num_walls, 0, tiles);
    check_int("num_refuel", c.num_refuel, 0, tiles);
    check_int("num_cool", c.num_cool, 0, tiles);
    check_int("num_repair", c.num_repair, 0, tiles);
    const std::int64_t used = std::int64_t(c.num_food) + c.num_hazards + c.num_walls + c.num_refuel +
                              c.num_cool + c.num_repair + 1;
    if (used > tiles)
        throw ConfigError("GridLifeConfig: num_food + num_hazards + num_walls + num_refuel + num_cool + "
                          "num_repair + 1 (start tile) = " + std::to_string(used) +
                          ": expected at most width * height = " + std::to_string(tiles));
    detail::check_real3("initial_internal", c.initial_internal, 0.0, 1.0);
    check_real("initial_noise", c.initial_noise, 0.0, 0.5);
    check_real("energy_decay", c.energy_decay, 0.0, 1.0);
    check_real("effort_cost", c.effort_cost, 0.0, 1.0);
    check_real("food_gain", c.food_gain, 0.0, 1.0);
    check_real("refuel_gain", c.refuel_gain, 0.0, 1.0);
    check_real("heat_rate", c.heat_rate, 0.0, 1.0);
    check_real("cool_rate", c.cool_rate, 0.0, 1.0);
    if (c.heat_rate + c.cool_rate > 1.0)
        throw ConfigError("GridLifeConfig: heat_rate + cool_rate = " +
                          detail::fmt_double(c.heat_rate + c.cool_rate) +
                          ": expected at most 1 (temp' is then a convex combination, no overshoot)");
    check_real("cool_target", c.cool_target, 0.0, 1.0);
    check_real("hazard_damage", c.hazard_damage, 0.0, 1.0);
    check_real("repair_gain", c.repair_gain, 0.0, 1.0);
    check_real("integrity_regen", c.integrity_regen, 0.0, 1.0);
    constexpr double big = 1e30;
    detail::check_real3("lower_bounds", c.lower_bounds, -big, big);
    detail::check_real3("upper_bounds", c.upper_bounds, -big, big);
    for (std::size_t j = 0; j < 3; ++j)
        if (c.lower_bounds[j] > c.upper_bounds[j])
            throw ConfigError("GridLifeConfig.lower_bounds[" + std::to_string(j) + "] = " +
                              detail::fmt_double(c.lower_bounds[j]) + " > upper_bounds[" +
                              std::to_string(j) + "] = " + detail::fmt_double(c.upper_bounds[j]) +
                              ": expected lower <= upper");
    if (c.reward_mode != GridLifeReward::exploration && c.reward_mode != GridLifeReward::items)
        detail::gridlife_bad("reward_mode", std::to_string(static_cast<int>(c.reward_mode)),
                             "exploration (0) or items (1)");
    check_real("exploration_bonus", c.exploration_bonus, -big, big);
    check_real("item_reward", c.item_reward, -big, big);
    detail::check_real3("station_cost", c.station_cost, 0.0, big);
}

namespace detail {
/// a * b rounded on its own in host and device code: detail::mul on the host (exact_fp.hpp),
/// the non-contracting intrinsics __fmul_rn / __dmul_rn on a CUDA device.
template <class F>
PERSIST_HD inline F hd_mul(F a, F b) noexcept {
#if defined(__CUDA_ARCH__)
    if constexpr (sizeof(F) == 4) return __fmul_rn(a, b);
    else return __dmul_rn(a, b);
#else
    return mul(a, b);
#endif
}
/// std::clamp(v, lo, hi) for host and device (same comparisons, so NaN passes through).
template <class F>
PERSIST_HD inline F hd_clamp(F v, F lo, F hi) noexcept {
    return v < lo ? lo : (hi < v ? hi : v);
}
}  // namespace detail

/// GridLife's internal dynamics x' = f(x, a, c) as a plain functor (scalars only, trivially
/// copyable, `__host__ __device__` under nvcc), so batched rollout kernels (parallel/) run the
/// very same code as GridLife::step: the environment's own transition delegates to it. `c` is
/// the 7 channels (GridLifeChannel order) of the tile the agent stands on. Equations: see
/// GridLife::internal_transition. Bit-exact on the host with and without FMA (detail::mul).
template <class T>
struct GridLifeDynamics {
    T energy_decay, effort_cost, food_gain, refuel_gain, heat_rate, cool_rate, cool_target,
        hazard_damage, repair_gain, integrity_regen;

    /// The coefficients of a (validated) config, converted to T once.
    static GridLifeDynamics from_config(const GridLifeConfig& c) {
        return {T(c.energy_decay), T(c.effort_cost),  T(c.food_gain),     T(c.refuel_gain),
                T(c.heat_rate),    T(c.cool_rate),    T(c.cool_target),   T(c.hazard_damage),
                T(c.repair_gain),  T(c.integrity_regen)};
    }

    /// x: 3, a: 2, c: 7 channels, xn: 3 (may alias x: every read of x happens first).
    PERSIST_HD void operator()(const T* x, const T* a, const T* c, T* xn) const {
        using detail::hd_mul;
        const T a2 = hd_mul(a[0], a[0]) + hd_mul(a[1], a[1]);
        const T e = x[0] - energy_decay - hd_mul(effort_cost, a2) + hd_mul(food_gain, c[ch_food]) +
                    hd_mul(refuel_gain, c[ch_refuel]);
        const T tp = x[1] + hd_mul(heat_rate, c[ch_heat] - x[1]) +
                     hd_mul(hd_mul(cool_rate, c[ch_cool]), cool_target - x[1]);
        const T in = x[2] - hd_mul(hazard_damage, c[ch_hazard]) + hd_mul(repair_gain, c[ch_repair]) +
                     integrity_regen;
        // Physics: the variables live in [0, 1] (an empty tank, a full one).
        xn[0] = detail::hd_clamp(e, T(0), T(1));
        xn[1] = detail::hd_clamp(tp, T(0), T(1));
        xn[2] = detail::hd_clamp(in, T(0), T(1));
    }
};

/// Where things are in a GridLife observation, and how the agent moves: what a rollout needs
/// to predict the tile under the agent from the egocentric patch (parallel/gridlife_rollout.hpp).
/// Plain data; indices are offsets into o.
template <class T>
struct GridLifePatchView {
    std::int32_t radius = 0;        ///< r: the patch is side x side tiles, side = 2r + 1
    std::int32_t side = 1;
    std::int32_t channels = 7;      ///< per tile, innermost (GridLifeChannel)
    std::int32_t centre = 0;        ///< offset of the centre tile's channel 0 (= (r side + r) 7)
    std::int32_t subtile = 0;       ///< offset of the sub-tile position p - floor(p) - 0.5 (2)
    std::int32_t internal = -1;     ///< offset of x in o (-1 with partial observability)
    std::int32_t last_action = -1;  ///< offset of a_{t-1} in o (-1 unless observe_last_action)
    std::int32_t observation_dim = 0;
    T max_speed = T(0.5);           ///< tiles per step per unit action
};

/// GridLife-v0. Models persist::ContinuousEnvironment and persist::KnownInternalDynamics.
///
/// Action a in [-1, 1]^2: the agent's continuous position p in [0, W) x [0, H) moves by
/// max_speed * a, one axis at a time (x first, then y); a component whose move would leave
/// the world is clamped to the edge, one whose move would enter a wall tile is cancelled
/// (the agent slides along walls). Actions outside the box or non-finite throw persist::Error.
///
/// Observation (observation_dim() = (2r+1)^2 * 7 + 2 [+ 3] [+ 2]):
///   [ patch (2r+1) x (2r+1) x 7, row-major: row = y from iy-r to iy+r, column = x from
///     ix-r to ix+r, the 7 channels (GridLifeChannel) innermost;
///     sub-tile offset p - floor(p) - 0.5 (2 values in [-0.5, 0.5));
///     x = [energy, temp, integrity] unless partial_observability;
///     a_{t-1}, the action of the previous step (0 after reset), with observe_last_action ]
///
/// @tparam T scalar of observations, actions, internal state and rewards (float or double).
/// @tparam Hook extra termination test (NoTerminationHook, ViabilityTermination<V>, ...).
template <class T = double, class Hook = NoTerminationHook>
class GridLife {
    static_assert(Real<T>, "persist::env::GridLife<T>: T must be float or double (docs/gridlife.md)");
    static_assert(GridLifeTerminationHook<Hook, T>,
                  "persist::env::GridLife<T, Hook>: Hook needs `Index first_violation(VecCRef<T> x)` "
                  "returning -1 or a violated constraint's index (see NoTerminationHook)");

public:
    using scalar_type = T;
    using hook_type = Hook;
    using Violation = GridLifeViolation<T>;
    static constexpr Index num_channels = 7;
    static constexpr Index num_internal = 3;

    explicit GridLife(const GridLifeConfig& config = {}, Hook hook = Hook{})
        : cfg_(config), hook_(std::move(hook)) {
        validate(cfg_);
        check_hook_dim();
        W_ = cfg_.width;
        H_ = cfg_.height;
        r_ = cfg_.view_radius;
        side_ = 2 * r_ + 1;
        obs_dim_ = side_ * side_ * num_channels + 2 + (cfg_.partial_observability ? 0 : num_internal) +
                   (cfg_.observe_last_action ? 2 : 0);
        centre_ = (r_ * side_ + r_) * num_channels;
        dyn_ = GridLifeDynamics<T>::from_config(cfg_);
        tiles_ = xt::xtensor<T, 3>::from_shape({static_cast<std::size_t>(H_ + 2 * r_),
                                                 static_cast<std::size_t>(W_ + 2 * r_),
                                                 static_cast<std::size_t>(num_channels)});
        const auto n_tiles = static_cast<std::size_t>(W_ * H_);
        perm_.resize(n_tiles);
        used_.resize(n_tiles);
        visited_.resize(n_tiles);
        food_item_of_tile_.resize(n_tiles);
        food_tiles_.reserve(static_cast<std::size_t>(cfg_.num_food));
        food_ready_at_.reserve(static_cast<std::size_t>(cfg_.num_food));
        x_.setZero(num_internal);
        x_next_.setZero(num_internal);
        obs_.setZero(obs_dim_);
        for (std::size_t j = 0; j < 3; ++j) {
            lo_[j] = static_cast<T>(cfg_.lower_bounds[j]);
            hi_[j] = static_cast<T>(cfg_.upper_bounds[j]);
        }
    }

    // --- the Environment contract -----------------------------------------------------------
    const GridLifeConfig& config() const noexcept { return cfg_; }
    Index observation_dim() const noexcept { return obs_dim_; }
    Index internal_dim() const noexcept { return num_internal; }
    Index max_episode_steps() const noexcept { return cfg_.horizon; }
    Index action_dim() const noexcept { return 2; }
    Vec<T> action_low() const { return Vec<T>::Constant(2, T(-1)); }
    Vec<T> action_high() const { return Vec<T>::Constant(2, T(1)); }

    /// Start an episode: generate the map (from `seed`, or from map_seed when fixed_map), the
    /// start position and x_0, all with persist::Rng. Allocates only on the first call (the
    /// caller's TimeStep is shaped once).
    void reset(std::uint64_t seed, TimeStep<T>& ts) {
        Rng map_rng(cfg_.fixed_map ? cfg_.map_seed : seed, /*stream=*/0);
        generate_map(map_rng);
        Rng ep_rng(seed, /*stream=*/1);
        place_agent(ep_rng);
        for (Index j = 0; j < num_internal; ++j) {
            const double c = cfg_.initial_internal[static_cast<std::size_t>(j)];
            const double v = c + detail::mul(cfg_.initial_noise, 2.0 * ep_rng.uniform<double>() - 1.0);
            x_[j] = static_cast<T>(std::clamp(v, 0.0, 1.0));
        }
        std::fill(visited_.begin(), visited_.end(), std::uint8_t(0));
        visited_[static_cast<std::size_t>(tile_index(ix_, iy_))] = 1;
        num_visited_ = 1;
        t_ = 0;
        started_ = true;
        done_ = false;
        violation_ = Violation{};
        violated_.fill(false);
        last_a_.fill(T(0));
        sensor_rng_ = Rng(seed, /*stream=*/2);
        sensor_seed_ = sensor_live_seed_ = seed;
        sensor_pos_ = 0;
        write_observation();
        emit(ts, T(0), false, false);
    }

    /// One step. x_{t+1} = internal_transition(x_t, a_t, o_t) with o_t the observation the
    /// agent acted on; task reward from the tile it stood on (items, station costs) and the
    /// tile it reaches (exploration); then termination (bounds, hook) and truncation
    /// (horizon). Never allocates once `ts` has been shaped by reset().
    void step(VecCRef<T> a, TimeStep<T>& ts) {
        check_action(a);
        if (!started_) throw Error("GridLife::step: called before reset()");
        if (done_)
            throw Error("GridLife::step: the episode is over (" +
                        std::string(violation_.source != Violation::Source::none ? "terminated"
                                                                                 : "truncated") +
                        " at step " + std::to_string(t_) + "); call reset() first");
        // 1. internal state from (x_t, a_t, o_t): the single definition of the dynamics.
        internal_transition(x_, a, obs_, x_next_);
        // 2. what the tile under the agent did this step.
        const Index k = tile_index(ix_, iy_);
        double reward = 0.0;
        for (Index s = 0; s < 3; ++s)
            if (tile(ix_, iy_, ch_refuel + s) != T(0)) reward -= cfg_.station_cost[static_cast<std::size_t>(s)];
        if (tile(ix_, iy_, ch_food) != T(0)) {  // eaten: gone until respawn
            tile_ref(ix_, iy_, ch_food) = T(0);
            // Respawn clock: the item is back in o_{t+1+delay} (food placed by set_tile never is).
            const std::int64_t item = food_item_of_tile_[static_cast<std::size_t>(k)];
            if (item >= 0)
                food_ready_at_[static_cast<std::size_t>(item)] =
                    cfg_.food_respawns ? t_ + 1 + cfg_.food_respawn_steps : never;
            ++food_eaten_;
            if (cfg_.reward_mode == GridLifeReward::items) reward += cfg_.item_reward;
        }
        // 3. movement.
        move(a);
        ++t_;
        auto& visited = visited_[static_cast<std::size_t>(tile_index(ix_, iy_))];
        if (!visited) {  // first visit of this tile in the episode
            visited = 1;
            ++num_visited_;
            if (cfg_.reward_mode == GridLifeReward::exploration) reward += cfg_.exploration_bonus;
        }
        // 4. food respawns (an item reappears food_respawn_steps steps after it was eaten).
        for (std::size_t i = 0; i < food_tiles_.size(); ++i) {
            if (food_ready_at_[i] == t_) {
                const Index ft = food_tiles_[i];
                tile_ref(ft % W_, ft / W_, ch_food) = T(1);
                food_ready_at_[i] = present;
            }
        }
        // 5. termination and truncation.
        x_ = x_next_;
        last_a_[0] = a[0];
        last_a_[1] = a[1];
        check_termination();
        const bool terminated = violation_.source != Violation::Source::none;
        const bool truncated = t_ >= cfg_.horizon;
        done_ = terminated || truncated;
        write_observation();
        emit(ts, static_cast<T>(reward), terminated, truncated);
    }

    // --- KnownInternalDynamics ----------------------------------------------------------------
    /// x' = f(x, a, o): a pure function of x, the action and the centre-tile channels of the
    /// observation o (observation_dim() entries, either observability mode):
    ///   energy'    = energy - energy_decay - effort_cost ||a||^2 + food_gain food + refuel_gain refuel
    ///   temp'      = temp + heat_rate (heat - temp) + cool_rate cool (cool_target - temp)
    ///   integrity' = integrity - hazard_damage hazard + repair_gain repair + integrity_regen
    /// each clamped to the physical range [0, 1]. Any action is accepted here (a shield may
    /// probe candidates); step() rejects actions outside [-1, 1]^2. x_next may alias x.
    void internal_transition(VecCRef<T> x, VecCRef<T> a, VecCRef<T> o, VecRef<T> x_next) const {
        if (x.size() != num_internal || x_next.size() != num_internal)
            persist::detail::throw_shape("GridLife::internal_transition: x / x_next", num_internal, 1,
                                         static_cast<long>(x.size() != num_internal ? x.size() : x_next.size()), 1);
        if (a.size() != 2)
            persist::detail::throw_shape("GridLife::internal_transition: a", 2, 1, static_cast<long>(a.size()), 1);
        if (o.size() != obs_dim_)
            persist::detail::throw_shape("GridLife::internal_transition: o", obs_dim_, 1,
                                         static_cast<long>(o.size()), 1);
        const T* c = o.data() + centre_;
        transition_kernel(x.data(), a.data(), c, x_next.data());
    }

    /// Batched f over columns (a shield's K candidates): x 3 x B, a 2 x B, o obs_dim x B.
    void internal_transition_batch(MatCRef<T> x, MatCRef<T> a, MatCRef<T> o, MatRef<T> x_next) const {
        const Index B = x.cols();
        if (x.rows() != num_internal || x_next.rows() != num_internal || x_next.cols() != B)
            persist::detail::throw_shape("GridLife::internal_transition_batch: x_next", num_internal,
                                         static_cast<long>(B), static_cast<long>(x_next.rows()),
                                         static_cast<long>(x_next.cols()));
        if (a.rows() != 2 || a.cols() != B)
            persist::detail::throw_shape("GridLife::internal_transition_batch: a", 2, static_cast<long>(B),
                                         static_cast<long>(a.rows()), static_cast<long>(a.cols()));
        if (o.rows() != obs_dim_ || o.cols() != B)
            persist::detail::throw_shape("GridLife::internal_transition_batch: o", obs_dim_,
                                         static_cast<long>(B), static_cast<long>(o.rows()),
                                         static_cast<long>(o.cols()));
        for (Index b = 0; b < B; ++b)
            transition_kernel(x.data() + b * x.outerStride(), a.data() + b * a.outerStride(),
                              o.data() + b * o.outerStride() + centre_,
                              x_next.data() + b * x_next.outerStride());
    }

    /// Per-bound margins of x, positive = safe, in the variables' units:
    /// [x_0 - lo_0, hi_0 - x_0, x_1 - lo_1, hi_1 - x_1, x_2 - lo_2, hi_2 - x_2].
    void bound_margins(VecCRef<T> x, VecRef<T> out) const {
        if (x.size() != num_internal || out.size() != 2 * num_internal)
            persist::detail::throw_shape("GridLife::bound_margins: out", 2 * num_internal, 1,
                                         static_cast<long>(out.size()), 1);
        for (Index j = 0; j < num_internal; ++j) {
            out[2 * j] = x[j] - lo_[static_cast<std::size_t>(j)];
            out[2 * j + 1] = hi_[static_cast<std::size_t>(j)] - x[j];
        }
    }

    // --- termination: bounds (curriculum) and hook ------------------------------------------
    /// Change the bounds of variable j at run time (curriculum); applies from the next check.
    void set_bounds(Index j, T lo, T hi) {
        if (j < 0 || j >= num_internal)
            throw ConfigError("GridLife::set_bounds: variable index " + std::to_string(j) +
                              ": expected 0 (energy), 1 (temp) or 2 (integrity)");
        if (!(std::isfinite(double(lo)) && std::isfinite(double(hi)) && lo <= hi))
            throw ConfigError("GridLife::set_bounds(" + std::to_string(j) + "): [" +
                              detail::fmt_double(double(lo)) + ", " + detail::fmt_double(double(hi)) +
                              "]: expected finite lo <= hi");
        lo_[static_cast<std::size_t>(j)] = lo;
        hi_[static_cast<std::size_t>(j)] = hi;
    }
    void set_lower_bound(Index j, T lo) { set_bounds(j, lo, upper_bound(j)); }
    void set_upper_bound(Index j, T hi) { set_bounds(j, lower_bound(j), hi); }
    T lower_bound(Index j) const { return lo_.at(static_cast<std::size_t>(j)); }
    T upper_bound(Index j) const { return hi_.at(static_cast<std::size_t>(j)); }

    Hook& termination_hook() noexcept { return hook_; }
    const Hook& termination_hook() const noexcept { return hook_; }
    void set_termination_hook(Hook hook) {
        hook_ = std::move(hook);
        check_hook_dim();
    }

    /// Why the current episode terminated (source none while it has not).
    const Violation& last_violation() const noexcept { return violation_; }
    /// Whether variable j is outside its bounds at the current step (all of them, not only the
    /// first in the order energy, temp, integrity that last_violation() reports).
    bool violated(Index j) const { return violated_.at(static_cast<std::size_t>(j)); }

    // --- inspection (tests, scripted policies, renderers) -----------------------------------
    /// Channel c of tile (ix, iy); outside the world: walls (ch_wall = 1, the rest 0).
    T tile(Index ix, Index iy, Index c) const {
        return tiles_(static_cast<std::size_t>(iy + r_), static_cast<std::size_t>(ix + r_),
                      static_cast<std::size_t>(c));
    }
    /// The padded tile tensor: shape (H + 2r) x (W + 2r) x 7, tile (ix, iy) at [iy + r, ix + r].
    const xt::xtensor<T, 3>& tiles() const noexcept { return tiles_; }
    Index width() const noexcept { return W_; }
    Index height() const noexcept { return H_; }
    T position_x() const noexcept { return px_; }
    T position_y() const noexcept { return py_; }
    Index tile_x() const noexcept { return ix_; }
    Index tile_y() const noexcept { return iy_; }
    const Vec<T>& internal() const noexcept { return x_; }
    /// The current observation o_t (the one internal_transition receives in step()).
    const Vec<T>& observation() const noexcept { return obs_; }
    Index elapsed_steps() const noexcept { return t_; }
    Index num_visited() const noexcept { return num_visited_; }
    Index food_eaten() const noexcept { return food_eaten_; }
    /// Offset of the centre tile's channels in the observation.
    Index centre_offset() const noexcept { return centre_; }
    /// The internal dynamics as a plain functor (what internal_transition runs).
    const GridLifeDynamics<T>& dynamics() const noexcept { return dyn_; }
    /// Observation layout and movement rule as plain data (for rollout kinematics).
    GridLifePatchView<T> patch_view() const noexcept {
        GridLifePatchView<T> v;
        v.radius = static_cast<std::int32_t>(r_);
        v.side = static_cast<std::int32_t>(side_);
        v.channels = static_cast<std::int32_t>(num_channels);
        v.centre = static_cast<std::int32_t>(centre_);
        v.subtile = static_cast<std::int32_t>(side_ * side_ * num_channels);
        v.internal = static_cast<std::int32_t>(internal_offset());
        v.last_action = static_cast<std::int32_t>(last_action_offset());
        v.observation_dim = static_cast<std::int32_t>(obs_dim_);
        v.max_speed = static_cast<T>(cfg_.max_speed);
        return v;
    }
    /// Offset of x in the observation (-1 with partial observability).
    Index internal_offset() const noexcept {
        return cfg_.partial_observability ? -1 : side_ * side_ * num_channels + 2;
    }
    /// Offset of a_{t-1} in the observation (-1 unless observe_last_action): the last 2 entries.
    Index last_action_offset() const noexcept { return cfg_.observe_last_action ? obs_dim_ - 2 : -1; }

    /// Place the agent and set x (tests and scripted scenarios); keeps the map, the step count
    /// and the episode's status, and rewrites the observation (returned via ts).
    void set_agent(T px, T py, VecCRef<T> x, TimeStep<T>& ts) {
        if (!started_) throw Error("GridLife::set_agent: called before reset()");
        if (x.size() != num_internal)
            persist::detail::throw_shape("GridLife::set_agent: x", num_internal, 1, static_cast<long>(x.size()), 1);
        if (!(px >= T(0) && px < T(W_) && py >= T(0) && py < T(H_)))
            throw Error("GridLife::set_agent: position (" + detail::fmt_double(double(px)) + ", " +
                        detail::fmt_double(double(py)) + ") is outside [0, W) x [0, H)");
        const Index nx = static_cast<Index>(std::floor(px)), ny = static_cast<Index>(std::floor(py));
        if (tile(nx, ny, ch_wall) != T(0)) throw Error("GridLife::set_agent: position is inside a wall");
        px_ = px;
        py_ = py;
        ix_ = nx;
        iy_ = ny;
        x_ = x;
        write_observation();
        emit(ts, ts.reward, ts.terminated, ts.truncated);
    }
    /// State protocol (core/state.hpp): everything a running episode needs to continue
    /// bitwise: the tile tensor (with eaten food), position, x, the current observation, the
    /// step count, visited tiles, food items and respawn clocks, a_{t-1} (observe_last_action),
    /// the termination bounds (a curriculum moves them), the episode status, and the hook's
    /// state when it has one.
    /// Shapes follow the configuration. Not state: the configuration itself, scratch buffers,
    /// and the last step's violation report (last_violation(), violated()), which a loaded
    /// environment keeps from before the load. docs/checkpoint.md, "Resuming a PersistAgent".
    template <class V>
    void visit_state(V&& v) {
        // Fixed shapes: once a map exists the food lists hold exactly num_food items; before the
        // first reset they are filled with zeros (capacity reserved: no allocation).
        const auto nf = static_cast<std::size_t>(cfg_.num_food);
        if (food_tiles_.size() != nf) {
            food_tiles_.assign(nf, Index(0));
            food_ready_at_.assign(nf, present);
        }
        const auto n_tiles = static_cast<std::int64_t>(W_ * H_);
        v(state_tensor("tiles", tiles_.data(),
                       {static_cast<std::int64_t>(tiles_.shape()[0]), static_cast<std::int64_t>(tiles_.shape()[1]),
                        static_cast<std::int64_t>(tiles_.shape()[2])}));
        v(state_tensor("internal", x_.data(), {num_internal}));
        v(state_tensor("observation", obs_.data(), {obs_dim_}));
        v(state_tensor("position_x", &px_, {}));
        v(state_tensor("position_y", &py_, {}));
        v(state_tensor("tile_x", &ix_, {}));
        v(state_tensor("tile_y", &iy_, {}));
        v(state_tensor("t", &t_, {}));
        v(state_tensor("num_visited", &num_visited_, {}));
        v(state_tensor("food_eaten", &food_eaten_, {}));
        v(state_tensor("visited", visited_.data(), {n_tiles}));
        v(state_tensor("food_item_of_tile", food_item_of_tile_.data(), {n_tiles}));
        v(state_tensor("food_tiles", food_tiles_.data(), {static_cast<std::int64_t>(nf)}));
        v(state_tensor("food_ready_at", food_ready_at_.data(), {static_cast<std::int64_t>(nf)}));
        v(state_tensor("lower_bounds", lo_.data(), {3}));
        v(state_tensor("upper_bounds", hi_.data(), {3}));
        v(state_tensor("started", &started_, {}));
        v(state_tensor("done", &done_, {}));
        if (cfg_.observe_last_action) v(state_tensor("last_action", last_a_.data(), {2}));
        if (degrades()) {  // the sensor stream's position (reset seed and draws taken)
            v(state_tensor("sensor_rng_seed", &sensor_seed_, {}));
            v(state_tensor("sensor_rng_position", &sensor_pos_, {}));
        }
        if constexpr (Stateful<Hook>) visit_nested(hook_, "hook", v);
    }

    /// Set one channel of one tile (tests and scripted scenarios); food set here never respawns
    /// unless the tile was generated as a food tile.
    void set_tile(Index ix, Index iy, Index c, T value, TimeStep<T>& ts) {
        if (ix < 0 || ix >= W_ || iy < 0 || iy >= H_ || c < 0 || c >= num_channels)
            throw Error("GridLife::set_tile: (" + std::to_string(ix) + ", " + std::to_string(iy) +
                        ", channel " + std::to_string(c) + ") is outside the world");
        tile_ref(ix, iy, c) = value;
        write_observation();
        emit(ts, ts.reward, ts.terminated, ts.truncated);
    }

private:
    static constexpr std::int64_t present = -1;
    static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

    void check_hook_dim() const {
        if constexpr (requires(const Hook& h) { h.model().dim(); }) {
            if (hook_.model().dim() != num_internal)
                throw ShapeError("GridLife: termination hook's model has dim() = " +
                                 std::to_string(hook_.model().dim()) + ", expected 3");
        }
    }

    /// f on raw pointers (x: 3, a: 2, c: the 7 centre-tile channels). Products are rounded on
    /// their own (detail::mul), so results do not depend on whether the compiler fuses
    /// multiply-adds: the same trajectories with and without -march=native / FMA.
    /// The single definition of the dynamics: GridLifeDynamics (above), also what rollout
    /// kernels run.
    void transition_kernel(const T* x, const T* a, const T* c, T* xn) const { dyn_(x, a, c, xn); }

    void check_action(VecCRef<T> a) const {
        if (a.size() != 2)
            persist::detail::throw_shape("GridLife::step: action", 2, 1, static_cast<long>(a.size()), 1);
        for (Index i = 0; i < 2; ++i) {
            const T v = a[i];
            if (!std::isfinite(double(v)))
                throw Error("GridLife::step: action[" + std::to_string(i) + "] = " +
                            detail::fmt_double(double(v)) + " is not finite");
            if (v < T(-1) || v > T(1))
                throw Error("GridLife::step: action[" + std::to_string(i) + "] = " +
                            detail::fmt_double(double(v)) +
                            " is outside the action box [-1, 1] (actions are never clipped; "
                            "project them first)");
        }
    }

    void check_termination() {
        violation_ = Violation{};
        for (std::size_t j = 0; j < 3; ++j) {
            const T v = x_[static_cast<Index>(j)];
            const bool below = v < lo_[j], above = v > hi_[j];
            violated_[j] = below || above;
            if (violated_[j] && violation_.source == Violation::Source::none) {
                violation_.source = Violation::Source::bounds;
                violation_.index = static_cast<Index>(j);
                violation_.value = v;
                violation_.bound = below ? lo_[j] : hi_[j];
                violation_.below = below;
            }
        }
        if (violation_.source == Violation::Source::none) {
            const Index h = static_cast<Index>(hook_.first_violation(VecCRef<T>(x_)));
            if (h >= 0) {
                violation_.source = Violation::Source::hook;
                violation_.index = h;
            }
        }
    }

    Index tile_index(Index ix, Index iy) const noexcept { return iy * W_ + ix; }
    T& tile_ref(Index ix, Index iy, Index c) {
        return tiles_(static_cast<std::size_t>(iy + r_), static_cast<std::size_t>(ix + r_),
                      static_cast<std::size_t>(c));
    }
    bool is_wall(Index ix, Index iy) const { return tile(ix, iy, ch_wall) != T(0); }

    /// Largest representable position strictly below the edge.
    static T below(Index edge) noexcept { return std::nextafter(T(edge), T(0)); }

    void move(VecCRef<T> a) {
        const T ms = static_cast<T>(cfg_.max_speed);
        T nx = std::clamp(px_ + detail::mul(ms, a[0]), T(0), below(W_));
        Index tx = static_cast<Index>(std::floor(nx));
        if (is_wall(tx, iy_)) {  // blocked on x: stay on this axis
            nx = px_;
            tx = ix_;
        }
        T ny = std::clamp(py_ + detail::mul(ms, a[1]), T(0), below(H_));
        Index ty = static_cast<Index>(std::floor(ny));
        if (is_wall(tx, ty)) {
            ny = py_;
            ty = iy_;
        }
        px_ = nx;
        py_ = ny;
        ix_ = tx;
        iy_ = ty;
    }

    void write_observation() {
        T* out = obs_.data();
        const std::size_t row = static_cast<std::size_t>(side_ * num_channels);
        for (Index dy = 0; dy < side_; ++dy) {
            // padded row iy + dy holds world row iy - r + dy; columns ix .. ix + 2r likewise.
            const T* src = &tiles_(static_cast<std::size_t>(iy_ + dy), static_cast<std::size_t>(ix_), 0);
            std::memcpy(out, src, row * sizeof(T));
            out += row;
        }
        *out++ = px_ - static_cast<T>(ix_) - T(0.5);
        *out++ = py_ - static_cast<T>(iy_) - T(0.5);
        if (!cfg_.partial_observability)
            for (Index j = 0; j < num_internal; ++j) *out++ = x_[j];
        if (cfg_.observe_last_action) {
            *out++ = last_a_[0];
            *out++ = last_a_[1];
        }
    }

    bool degrades() const noexcept { return cfg_.observation_dropout > 0.0 || cfg_.observation_noise_std > 0.0; }

    /// The sensor model on the emitted copy: noise, then dropout, entry by entry over the
    /// sensed part (everything before a_{t-1}). Box-Muller without a cached spare, so the
    /// stream's position alone is its state (checkpoints).
    void degrade(Vec<T>& o) {
        if (sensor_live_seed_ != sensor_seed_ || sensor_rng_.position() != sensor_pos_) {  // loaded state
            sensor_rng_ = Rng(sensor_seed_, /*stream=*/2);
            sensor_rng_.set_position(sensor_pos_);
            sensor_live_seed_ = sensor_seed_;
        }
        const Index n = cfg_.observe_last_action ? obs_dim_ - 2 : obs_dim_;
        const double sd = cfg_.observation_noise_std, p = cfg_.observation_dropout;
        for (Index i = 0; i < n; ++i) {
            double v = double(o[i]);
            if (sd > 0.0) {
                const double u1 = 1.0 - sensor_rng_.uniform<double>(), u2 = sensor_rng_.uniform<double>();
                v += sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
            }
            if (p > 0.0 && sensor_rng_.uniform<double>() < p) v = 0.0;
            o[i] = static_cast<T>(v);
        }
        sensor_pos_ = sensor_rng_.position();
    }

    void emit(TimeStep<T>& ts, T reward, bool terminated, bool truncated) {
        ensure_shape(ts.observation, obs_dim_, 1);
        ensure_shape(ts.internal, num_internal, 1);
        ts.observation = obs_;
        if (degrades()) degrade(ts.observation);
        ts.internal = x_;
        ts.reward = reward;
        ts.terminated = terminated;
        ts.truncated = truncated;
    }

    // --- map generation ---------------------------------------------------------------------
    void generate_map(Rng& rng) {
        // Outside the world: wall = 1, all else 0 (the padding is what the patch sees there).
        std::fill(tiles_.begin(), tiles_.end(), T(0));
        for (Index py = 0; py < H_ + 2 * r_; ++py)
            for (Index px = 0; px < W_ + 2 * r_; ++px) {
                const bool inside = px >= r_ && px < W_ + r_ && py >= r_ && py < H_ + r_;
                if (!inside) tiles_(static_cast<std::size_t>(py), static_cast<std::size_t>(px), ch_wall) = T(1);
            }
        // Heat: base + sum of Gaussian hot spots - sum of cold spots, clamped to [0, 1].
        std::array<double, 128> sx{}, sy{}, sign{};
        const int ns = cfg_.num_hot_spots + cfg_.num_cold_spots;
        for (int s = 0; s < ns; ++s) {
            sx[static_cast<std::size_t>(s)] = detail::uniform(rng, 0.0, double(W_));
            sy[static_cast<std::size_t>(s)] = detail::uniform(rng, 0.0, double(H_));
            sign[static_cast<std::size_t>(s)] = s < cfg_.num_hot_spots ? 1.0 : -1.0;
        }
        const double inv2s2 = 1.0 / (2.0 * cfg_.spot_sigma * cfg_.spot_sigma);
        for (Index iy = 0; iy < H_; ++iy)
            for (Index ix = 0; ix < W_; ++ix) {
                double h = cfg_.base_heat;
                for (int s = 0; s < ns; ++s) {
                    const auto su = static_cast<std::size_t>(s);
                    using detail::mul;
                    const double dx = double(ix) + 0.5 - sx[su], dy = double(iy) + 0.5 - sy[su];
                    h += mul(sign[su] * cfg_.spot_amplitude, std::exp(-mul(mul(dx, dx) + mul(dy, dy), inv2s2)));
                }
                tile_ref(ix, iy, ch_heat) = static_cast<T>(std::clamp(h, 0.0, 1.0));
            }
        // Objects on distinct tiles, in a seeded random order (Fisher-Yates with Rng::below).
        const auto n = static_cast<std::int64_t>(W_ * H_);
        for (std::int64_t i = 0; i < n; ++i) perm_[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
        for (std::int64_t i = n - 1; i > 0; --i)
            std::swap(perm_[static_cast<std::size_t>(i)],
                      perm_[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
        std::fill(used_.begin(), used_.end(), std::uint8_t(0));
        place(cfg_.num_walls, ch_wall, false);
        // Stations on temperate tiles (heat in [0.3, 0.7]) when there are enough, so sitting
        // on one is sustainable; hazards and food anywhere free.
        place(cfg_.num_refuel, ch_refuel, true);
        place(cfg_.num_cool, ch_cool, true);
        place(cfg_.num_repair, ch_repair, true);
        place(cfg_.num_hazards, ch_hazard, false);
        food_tiles_.clear();
        food_ready_at_.clear();
        std::fill(food_item_of_tile_.begin(), food_item_of_tile_.end(), -1);
        place(cfg_.num_food, ch_food, false);
        food_eaten_ = 0;
    }

    bool temperate(Index k) const {
        const T h = tile(k % W_, k / W_, ch_heat);
        return h >= T(0.3) && h <= T(0.7);
    }

    /// Mark `count` unused tiles with channel c: first pass over the permutation takes only
    /// temperate tiles when `prefer_temperate`, a second pass anything free.
    void place(std::int32_t count, Index c, bool prefer_temperate) {
        std::int32_t placed = 0;
        for (int pass = prefer_temperate ? 0 : 1; pass < 2 && placed < count; ++pass)
            for (std::size_t i = 0; i < perm_.size() && placed < count; ++i) {
                const Index k = perm_[i];
                if (used_[static_cast<std::size_t>(k)] || (pass == 0 && !temperate(k))) continue;
                used_[static_cast<std::size_t>(k)] = 1;
                tile_ref(k % W_, k / W_, c) = T(1);
                if (c == ch_wall) {  // walls: nothing else on them
                    tile_ref(k % W_, k / W_, ch_heat) = T(0);
                }
                if (c == ch_food) {
                    food_item_of_tile_[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(food_tiles_.size());
                    food_tiles_.push_back(k);  // capacity reserved: no allocation
                    food_ready_at_.push_back(present);
                }
                ++placed;
            }
    }

    /// Start on a free temperate tile (or, failing that, any free tile), uniformly inside it.
    /// The search starts at a random point of the permutation, so with a fixed map the start
    /// tile still varies with the reset seed.
    void place_agent(Rng& rng) {
        const auto n = perm_.size();
        const auto offset = static_cast<std::size_t>(rng.below(n));
        Index start = -1;
        for (int pass = 0; pass < 2 && start < 0; ++pass)
            for (std::size_t i = 0; i < n; ++i) {
                const Index k = perm_[(i + offset) % n];
                if (used_[static_cast<std::size_t>(k)] || (pass == 0 && !temperate(k))) continue;
                start = k;
                break;
            }
        ix_ = start % W_;
        iy_ = start / W_;
        px_ = std::min(static_cast<T>(double(ix_) + rng.uniform<double>()), below(ix_ + 1));
        py_ = std::min(static_cast<T>(double(iy_) + rng.uniform<double>()), below(iy_ + 1));
    }

    GridLifeConfig cfg_;
    Hook hook_;
    Index W_ = 0, H_ = 0, r_ = 0, side_ = 0, obs_dim_ = 0, centre_ = 0;
    GridLifeDynamics<T> dyn_{};
    xt::xtensor<T, 3> tiles_;
    std::vector<std::int32_t> perm_;
    std::vector<std::uint8_t> used_;
    // Checkpointed state is held in checkpoint dtypes (u64 flags, i64 indices): visit_state.
    std::vector<std::uint64_t> visited_;
    std::vector<std::int64_t> food_item_of_tile_;
    std::vector<Index> food_tiles_;
    std::vector<std::int64_t> food_ready_at_;
    std::array<T, 3> lo_{}, hi_{};
    std::array<std::uint64_t, 3> violated_{};
    Violation violation_{};
    Vec<T> x_, x_next_, obs_;
    std::array<T, 2> last_a_{};  // a_{t-1} (observe_last_action)
    Rng sensor_rng_{};           // observation_dropout / observation_noise_std
    // Its state as checkpointed (visit_state): reset seed and draws taken; the live seed tells
    // a loaded state from the running stream.
    std::uint64_t sensor_seed_ = 0, sensor_pos_ = 0, sensor_live_seed_ = 0;
    T px_ = T(0), py_ = T(0);
    Index ix_ = 0, iy_ = 0;
    std::int64_t t_ = 0;
    Index num_visited_ = 0;
    Index food_eaten_ = 0;
    std::uint64_t started_ = 0;
    std::uint64_t done_ = 0;
};

}  // namespace persist::env
