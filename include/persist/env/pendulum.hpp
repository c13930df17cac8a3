#pragma once
/// @file pendulum.hpp
/// Pendulum-v1, an exact port of Gymnasium 1.x `classic_control/pendulum.py` wrapped in
/// `gymnasium.make`'s TimeLimit(200): same constants, same explicit Euler update, same
/// clipping, same reward, same float32 observation. tests/env/test_classic.cpp steps this port
/// and Gymnasium (through a recorded fixture) with the same actions and compares every
/// observation, reward and flag.
///
/// Per step (theta, theta_dot in float64, the torque u in float32 as Gymnasium's
/// Box(float32) action space delivers it):
///   u          = clip(float32(a), -2, 2)                           (part of the dynamics)
///   cost       = angle_normalize(theta)^2 + 0.1 theta_dot^2 + float32(0.001 * u^2)
///                (the squares are pow(x, 2) calls as numpy makes them, not x * x)
///   theta_dot' = clip(theta_dot + (3 g / (2 l) sin(theta) + float32(3 / (m l^2) * u)) dt, -8, 8)
///   theta'     = theta + theta_dot' dt
///   o'         = float32([cos theta', sin theta', theta_dot']),  r = -cost
/// with g = 10, m = l = 1, dt = 0.05. The float32 products reproduce numpy 2's promotion rules
/// (python float * np.float32 -> float32), so rewards match Gymnasium to the last bit.
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"
#include "persist/env/exact_fp.hpp"

namespace persist::env {

/// Spec of Pendulum-v1 (EnvPool-style: defaults = Gymnasium's, validated at construction).
struct PendulumConfig {
    double g = 10.0;                        ///< gravity (gymnasium.make("Pendulum-v1", g=...)), > 0
    std::int32_t max_episode_steps = 200;   ///< TimeLimit of gymnasium.make, >= 1
};

/// Pendulum-v1 swing-up. Continuous action: torque in [-2, 2] (1-D); observation
/// [cos theta, sin theta, theta_dot] (3-D); no internal variables (internal_dim() = 0); never
/// terminates, truncates after max_episode_steps.
///
/// Out-of-range torques are clipped to [-2, 2] because Gymnasium's dynamics do exactly that
/// (np.clip in step); a non-finite torque is bad input and throws persist::Error.
/// @tparam T scalar of observations, actions and rewards (float or double); the state is
///           always double, as numpy's float64.
template <class T = double>
class Pendulum {
public:
    using scalar_type = T;
    static constexpr double max_speed = 8.0;
    static constexpr double max_torque = 2.0;
    static constexpr double dt = 0.05;
    static constexpr double m = 1.0;
    static constexpr double l = 1.0;

    explicit Pendulum(const PendulumConfig& config = {}) : cfg_(config) {
        if (!(std::isfinite(cfg_.g) && cfg_.g > 0))
            throw ConfigError("PendulumConfig.g = " + std::to_string(cfg_.g) +
                              ": expected a finite value > 0");
        if (cfg_.max_episode_steps < 1)
            throw ConfigError("PendulumConfig.max_episode_steps = " +
                              std::to_string(cfg_.max_episode_steps) + ": expected >= 1");
    }

    const PendulumConfig& config() const noexcept { return cfg_; }
    Index observation_dim() const noexcept { return 3; }
    Index internal_dim() const noexcept { return 0; }
    Index max_episode_steps() const noexcept { return cfg_.max_episode_steps; }
    Index action_dim() const noexcept { return 1; }
    Vec<T> action_low() const { return Vec<T>::Constant(1, T(-max_torque)); }
    Vec<T> action_high() const { return Vec<T>::Constant(1, T(max_torque)); }

    /// Gymnasium's reset ranges: theta ~ U[-pi, pi], theta_dot ~ U[-1, 1], drawn with
    /// persist::Rng(seed) (not numpy's generator: tests set the state explicitly).
    void reset(std::uint64_t seed, TimeStep<T>& ts) {
        Rng rng(seed);
        constexpr double pi = 3.141592653589793;
        state_[0] = detail::uniform(rng, -pi, pi);
        state_[1] = detail::uniform(rng, -1.0, 1.0);
        elapsed_ = 0;
        started_ = true;
        done_ = false;
        ensure_shape(ts.internal, 0, 1);
        write_observation(ts);
        ts.reward = T(0);
        ts.terminated = ts.truncated = false;
    }

    void step(VecCRef<T> action, TimeStep<T>& ts) {
        if (action.size() != 1)
            persist::detail::throw_shape("Pendulum::step: action", 1, 1, static_cast<long>(action.size()), 1);
        if (!started_) throw Error("Pendulum::step: called before reset()");
        if (done_) throw Error("Pendulum::step: the episode was truncated; call reset() first");
        if (!std::isfinite(static_cast<double>(action[0])))
            throw Error("Pendulum::step: action[0] = " + std::to_string(double(action[0])) +
                        " is not finite");
        using detail::mul;
        // np.clip(u: float32, -2.0, 2.0) stays float32.
        float u = static_cast<float>(action[0]);
        u = u < -2.0f ? -2.0f : (u > 2.0f ? 2.0f : u);
        const double th = state_[0], thdot = state_[1];
        const double an = angle_normalize(th);
        // float32: 0.001 * (u ** 2), 3.0 / (m * l**2) * u  (numpy 2 / NEP 50 promotion); the
        // scalar powers are libm pow / powf calls, as in numpy.
        using detail::py_square;
        const float u_cost = detail::rounded(static_cast<float>(0.001) * py_square(u));
        const float u_acc = detail::rounded(static_cast<float>(3.0 / (m * py_square(l))) * u);
        const double costs = (py_square(an) + mul(0.1, py_square(thdot))) + static_cast<double>(u_cost);
        const double acc = mul(3.0 * cfg_.g / (2.0 * l), std::sin(th)) + static_cast<double>(u_acc);
        double newthdot = thdot + mul(acc, dt);
        newthdot = newthdot < -max_speed ? -max_speed : (newthdot > max_speed ? max_speed : newthdot);
        const double newth = th + mul(newthdot, dt);
        state_[0] = newth;
        state_[1] = newthdot;
        ++elapsed_;
        write_observation(ts);
        ts.reward = static_cast<T>(-costs);
        ts.terminated = false;
        ts.truncated = elapsed_ >= cfg_.max_episode_steps;  // TimeLimit wrapper
        done_ = ts.truncated;
    }

    /// [theta, theta_dot] (float64, as Gymnasium's env.unwrapped.state).
    const std::array<double, 2>& state() const noexcept { return state_; }
    /// Overwrite the state (as `env.unwrapped.state = ...`); the step counter is kept.
    void set_state(const std::array<double, 2>& s) { state_ = s; }
    /// The observation of the current state, float32-rounded, into ts.observation.
    void write_observation(TimeStep<T>& ts) const {
        ensure_shape(ts.observation, 3, 1);
        ts.observation[0] = static_cast<T>(static_cast<float>(std::cos(state_[0])));
        ts.observation[1] = static_cast<T>(static_cast<float>(std::sin(state_[0])));
        ts.observation[2] = static_cast<T>(static_cast<float>(state_[1]));
    }
    Index elapsed_steps() const noexcept { return elapsed_; }

    /// Gymnasium's angle_normalize: ((x + pi) % (2 pi)) - pi with numpy's floored modulo.
    static double angle_normalize(double x) noexcept {
        constexpr double pi = 3.141592653589793;
        return detail::py_mod(x + pi, 2 * pi) - pi;
    }

private:
    PendulumConfig cfg_;
    std::array<double, 2> state_{0.0, 0.0};
    Index elapsed_ = 0;
    bool started_ = false;
    bool done_ = false;
};

}  // namespace persist::env
