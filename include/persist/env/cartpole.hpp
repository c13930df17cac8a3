#pragma once
/// @file cartpole.hpp
/// CartPole-v1, an exact port of Gymnasium 1.x `classic_control/cartpole.py` wrapped in
/// `gymnasium.make`'s TimeLimit(500), plus a continuous-force variant.
///
/// State (x, x_dot, theta, theta_dot) in float64; per step with force F = +-10 (Euler
/// integrator, Barto, Sutton & Anderson 1983; equations as in Florian 2007):
///   temp    = (F + m_p l theta_dot^2 sin theta) / (m_c + m_p)
///   theta'' = (g sin theta - cos theta temp) / (l (4/3 - m_p cos^2 theta / (m_c + m_p)))
///   x''     = temp - m_p l theta'' cos theta / (m_c + m_p)
///   x += tau x_dot, x_dot += tau x'', theta += tau theta_dot, theta_dot += tau theta''
/// g = 9.8, m_c = 1, m_p = 0.1, l = 0.5 (half the pole), tau = 0.02. terminated when
/// |x| > 2.4 or |theta| > 12 deg; reward 1 per step (0 / -1 with sutton_barto_reward);
/// observation float32(state). Every operation is evaluated in numpy's order and rounding
/// (no fused multiply-add, see exact_fp.hpp).
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"
#include "persist/env/exact_fp.hpp"

namespace persist::env {

/// Spec of CartPole-v1 (defaults = Gymnasium's, validated at construction).
struct CartPoleConfig {
    bool sutton_barto_reward = false;      ///< Gymnasium's option: reward 0 per step, -1 on failure
    std::int32_t max_episode_steps = 500;  ///< TimeLimit of gymnasium.make, >= 1
};

/// Shared dynamics of CartPole and ContinuousCartPole (force in newtons as input).
template <class T>
class CartPoleBase {
public:
    using scalar_type = T;
    static constexpr double gravity = 9.8;
    static constexpr double masscart = 1.0;
    static constexpr double masspole = 0.1;
    static constexpr double total_mass = masspole + masscart;
    static constexpr double length = 0.5;  // half the pole's length
    static constexpr double polemass_length = masspole * length;
    static constexpr double force_mag = 10.0;
    static constexpr double tau = 0.02;
    static constexpr double theta_threshold_radians = 12 * 2 * 3.141592653589793 / 360;
    static constexpr double x_threshold = 2.4;

    explicit CartPoleBase(const CartPoleConfig& config) : cfg_(config) {
        if (cfg_.max_episode_steps < 1)
            throw ConfigError("CartPoleConfig.max_episode_steps = " +
                              std::to_string(cfg_.max_episode_steps) + ": expected >= 1");
    }

    const CartPoleConfig& config() const noexcept { return cfg_; }
    Index observation_dim() const noexcept { return 4; }
    Index internal_dim() const noexcept { return 0; }
    Index max_episode_steps() const noexcept { return cfg_.max_episode_steps; }

    /// Gymnasium's reset range: each state component ~ U[-0.05, 0.05], drawn with
    /// persist::Rng(seed) (not numpy's generator: tests set the state explicitly).
    void reset(std::uint64_t seed, TimeStep<T>& ts) {
        Rng rng(seed);
        for (double& s : state_) s = detail::uniform(rng, -0.05, 0.05);
        elapsed_ = 0;
        started_ = true;
        terminated_ = truncated_ = false;
        ensure_shape(ts.internal, 0, 1);
        write_observation(ts);
        ts.reward = T(0);
        ts.terminated = ts.truncated = false;
    }

    /// [x, x_dot, theta, theta_dot] (float64, as Gymnasium's env.unwrapped.state).
    const std::array<double, 4>& state() const noexcept { return state_; }
    /// Overwrite the state (as `env.unwrapped.state = ...`); the step counter is kept.
    void set_state(const std::array<double, 4>& s) { state_ = s; }
    /// The observation of the current state, float32-rounded, into ts.observation.
    void write_observation(TimeStep<T>& ts) const {
        ensure_shape(ts.observation, 4, 1);
        for (Index i = 0; i < 4; ++i)
            ts.observation[i] = static_cast<T>(static_cast<float>(state_[static_cast<std::size_t>(i)]));
    }
    Index elapsed_steps() const noexcept { return elapsed_; }

protected:
    void check_can_step(const char* who) const {
        if (!started_) throw Error(std::string(who) + "::step: called before reset()");
        if (terminated_ || truncated_)
            throw Error(std::string(who) + "::step: the episode " +
                        (terminated_ ? "terminated" : "was truncated") + "; call reset() first");
    }

    /// One Gymnasium step with force F, in numpy's evaluation order.
    void step_force(double force, TimeStep<T>& ts) {
        using detail::mul;
        double x = state_[0], x_dot = state_[1], theta = state_[2], theta_dot = state_[3];
        const double costheta = std::cos(theta);
        const double sintheta = std::sin(theta);
        const double temp =
            (force + mul(mul(polemass_length, mul(theta_dot, theta_dot)), sintheta)) / total_mass;
        const double thetaacc =
            (mul(gravity, sintheta) - mul(costheta, temp)) /
            (length * (4.0 / 3.0 - mul(masspole, mul(costheta, costheta)) / total_mass));
        const double xacc = temp - mul(mul(polemass_length, thetaacc), costheta) / total_mass;
        x = x + mul(tau, x_dot);
        x_dot = x_dot + mul(tau, xacc);
        theta = theta + mul(tau, theta_dot);
        theta_dot = theta_dot + mul(tau, thetaacc);
        state_ = {x, x_dot, theta, theta_dot};
        const bool terminated = x < -x_threshold || x > x_threshold ||
                                theta < -theta_threshold_radians || theta > theta_threshold_radians;
        ++elapsed_;
        write_observation(ts);
        // Gymnasium: 1 (0 with sutton_barto) while alive; on the failing step 1 (-1).
        ts.reward = cfg_.sutton_barto_reward ? T(terminated ? -1 : 0) : T(1);
        ts.terminated = terminated_ = terminated;
        ts.truncated = truncated_ = elapsed_ >= cfg_.max_episode_steps;  // TimeLimit wrapper
    }

    CartPoleConfig cfg_;
    std::array<double, 4> state_{0.0, 0.0, 0.0, 0.0};
    Index elapsed_ = 0;
    bool started_ = false;
    bool terminated_ = false;
    bool truncated_ = false;
};

/// CartPole-v1: two actions, 0 pushes left (F = -10 N), 1 pushes right (F = +10 N).
/// Stepping after the episode ended throws (Gymnasium calls it undefined behaviour).
/// @tparam T scalar of observations and rewards (float or double); the state is double.
template <class T = double>
class CartPole : public CartPoleBase<T> {
public:
    using scalar_type = T;
    explicit CartPole(const CartPoleConfig& config = {}) : CartPoleBase<T>(config) {}

    Index num_actions() const noexcept { return 2; }

    void step(Index action, TimeStep<T>& ts) {
        if (action != 0 && action != 1)
            throw Error("CartPole::step: action = " + std::to_string(action) +
                        " is not in the action set {0, 1}");
        this->check_can_step("CartPole");
        this->step_force(action == 1 ? this->force_mag : -this->force_mag, ts);
    }
};

/// CartPole with a continuous force: a in [-1, 1], F = a * 10 N (so a = +-1 reproduces
/// CartPole-v1 exactly). Not a Gymnasium environment; everything else is CartPole-v1.
/// Actions outside [-1, 1] or non-finite throw persist::Error (never clipped).
/// @tparam T scalar of observations, actions and rewards (float or double).
template <class T = double>
class ContinuousCartPole : public CartPoleBase<T> {
public:
    using scalar_type = T;
    explicit ContinuousCartPole(const CartPoleConfig& config = {}) : CartPoleBase<T>(config) {}

    Index action_dim() const noexcept { return 1; }
    Vec<T> action_low() const { return Vec<T>::Constant(1, T(-1)); }
    Vec<T> action_high() const { return Vec<T>::Constant(1, T(1)); }

    void step(VecCRef<T> action, TimeStep<T>& ts) {
        if (action.size() != 1)
            persist::detail::throw_shape("ContinuousCartPole::step: action", 1, 1,
                                         static_cast<long>(action.size()), 1);
        const double a = static_cast<double>(action[0]);
        if (!(a >= -1.0 && a <= 1.0))
            throw Error("ContinuousCartPole::step: action[0] = " + std::to_string(a) +
                        " is outside the action box [-1, 1] (actions are never clipped)");
        this->check_can_step("ContinuousCartPole");
        this->step_force(a * this->force_mag, ts);
    }
};

}  // namespace persist::env
