#pragma once
// The example environment of docs/environments.md ("Writing your own environment"), compiled
// and tested by test_classic.cpp so the documentation cannot rot. Keep the two in sync.
#include <cstdint>
#include <string>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"

/// A body in a room: o = [room temperature, body temperature], x = [body temperature].
/// The action heats (a > 0) or cools (a < 0) the body; the body must stay in [0.2, 0.8].
template <class T = double>
class Thermostat {
public:
    using scalar_type = T;  // every part of an agent must agree on the scalar

    // Sizes. internal_dim() is 0 for environments without internal variables.
    persist::Index observation_dim() const { return 2; }
    persist::Index internal_dim() const { return 1; }
    persist::Index max_episode_steps() const { return 100; }  // -> truncated, not terminated

    // Continuous actions: the box a shield projects into.
    persist::Index action_dim() const { return 1; }
    persist::Vec<T> action_low() const { return persist::Vec<T>::Constant(1, T(-1)); }
    persist::Vec<T> action_high() const { return persist::Vec<T>::Constant(1, T(1)); }

    void reset(std::uint64_t seed, persist::TimeStep<T>& ts) {
        persist::Rng rng(seed);  // never <random>: bitwise reproducible everywhere
        room_ = rng.uniform<T>(T(0), T(1));
        body_ = T(0.5);
        t_ = 0;
        done_ = false;
        persist::ensure_shape(ts.observation, 2, 1);  // the only allocation, on first use
        persist::ensure_shape(ts.internal, 1, 1);
        emit(ts, T(0), false, false);
    }

    void step(persist::VecCRef<T> a, persist::TimeStep<T>& ts) {
        if (a.size() != 1)
            persist::detail::throw_shape("Thermostat::step: action", 1, 1, static_cast<long>(a.size()), 1);
        if (!(a[0] >= T(-1) && a[0] <= T(1)))  // bad input is an error, never clipped silently
            throw persist::Error("Thermostat::step: action[0] = " + std::to_string(double(a[0])) +
                                 " is outside [-1, 1] or not finite");
        if (done_) throw persist::Error("Thermostat::step: the episode is over; call reset()");
        // The one definition of the dynamics, on views of member storage: no allocation.
        const T o[2] = {room_, body_};  // o_t, the observation the action was chosen on
        T x_next = T(0);
        internal_transition(Eigen::Map<const persist::Vec<T>>(&body_, 1), a,
                            Eigen::Map<const persist::Vec<T>>(o, 2), Eigen::Map<persist::Vec<T>>(&x_next, 1));
        body_ = x_next;
        ++t_;
        const bool terminated = body_ < T(0.2) || body_ > T(0.8);  // left the viability set
        const bool truncated = t_ >= max_episode_steps();           // time limit
        done_ = terminated || truncated;
        emit(ts, T(1), terminated, truncated);  // task reward: 1 per step alive
    }

    /// KnownInternalDynamics: x' = f(x, a, o), a pure function a shield can use as a model.
    void internal_transition(persist::VecCRef<T> x, persist::VecCRef<T> a, persist::VecCRef<T> o,
                             persist::VecRef<T> x_next) const {
        x_next[0] = x[0] + T(0.1) * (o[0] - x[0]) + T(0.05) * a[0];
    }

private:
    void emit(persist::TimeStep<T>& ts, T reward, bool terminated, bool truncated) const {
        ts.observation[0] = room_;
        ts.observation[1] = body_;
        ts.internal[0] = body_;
        ts.reward = reward;
        ts.terminated = terminated;
        ts.truncated = truncated;
    }

    T room_ = T(0), body_ = T(0.5);
    persist::Index t_ = 0;
    bool done_ = false;
};

static_assert(persist::KnownInternalDynamics<Thermostat<double>>);
static_assert(persist::ContinuousEnvironment<Thermostat<float>>);
