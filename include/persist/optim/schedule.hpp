#pragma once
/// @file schedule.hpp
/// Learning-rate schedules. A schedule is a pure formula lr_at(t) of the number of steps t
/// since it was (re)started, plus that counter: `apply(opt)` sets the optimizer's lr to lr(),
/// `advance()` moves to the next step, `restart()` starts the schedule over (after a fire
/// event). The counter is the schedule's checkpoint state ("t").
///
/// Loop: `for (...) { sched.apply(opt); opt.step(p, g); sched.advance(); }`
/// which gives the optimizer lr_at(0), lr_at(1), ... (torch: optimizer.step(); scheduler.step()).
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numbers>
#include <utility>

#include "persist/optim/optimizer.hpp"

namespace persist::optim {

/// Base of every schedule (CRTP): Derived provides `T lr_at(Index t) const`.
/// Writing your own: copy ConstantLr, derive from Schedule<YourSchedule, T>, implement lr_at.
template <class Derived, class T>
class Schedule {
    static_assert(Real<T>,
                  "persist::optim schedules: T must be float or double (docs/optim.md)");

public:
    using scalar_type = T;

    /// The learning rate for the current step.
    T lr() const { return self().lr_at(static_cast<Index>(t_)); }
    /// Steps since construction or the last restart().
    Index step_count() const { return static_cast<Index>(t_); }
    /// Move to the next step; returns its learning rate.
    T advance() {
        ++t_;
        return lr();
    }
    /// Start over from step 0 (e.g. warm-up again after a fire reset).
    void restart() { t_ = 0; }
    /// Set the optimizer's learning rate to lr(); returns it.
    template <class Opt>
    T apply(Opt& opt) const {
        const T v = lr();
        opt.set_lr(static_cast<typename Opt::scalar_type>(v));
        return v;
    }

    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("t", &t_, {}));
    }

private:
    const Derived& self() const { return static_cast<const Derived&>(*this); }
    std::int64_t t_ = 0;
};

/// What `SequentialLr` and the trainers expect of a schedule.
template <class S>
concept LrSchedule = HasScalar<S> && Stateful<S> &&
                     requires(S& s, const S& cs, Index t) {
                         { cs.lr_at(t) } -> std::convertible_to<scalar_of<S>>;
                         { cs.lr() } -> std::convertible_to<scalar_of<S>>;
                         s.advance();
                         s.restart();
                     };

template <class T>
struct ConstantLrOptions {
    T lr = T(1e-3);
};

/// lr_at(t) = lr. The null schedule.
template <class T>
class ConstantLr : public Schedule<ConstantLr<T>, T> {
public:
    using Options = ConstantLrOptions<T>;
    explicit ConstantLr(const Options& o = {}) : opt_(o) {
        detail::require_lr("ConstantLr", static_cast<double>(o.lr));
    }
    T lr_at(Index) const { return opt_.lr; }
    const Options& options() const { return opt_; }

private:
    Options opt_;
};

template <class T>
struct LinearWarmupOptions {
    T lr = T(1e-3);              ///< reached at t = warmup_steps and kept
    T start_factor = T(1) / 3;   ///< lr_at(0) = start_factor lr, [0, 1] (torch LinearLR default)
    Index warmup_steps = 5;      ///< >= 1
};

/// lr_at(t) = lr (f + (1 - f) min(t, W) / W): torch.optim.lr_scheduler.LinearLR with
/// end_factor = 1 and total_iters = W.
template <class T>
class LinearWarmup : public Schedule<LinearWarmup<T>, T> {
public:
    using Options = LinearWarmupOptions<T>;
    explicit LinearWarmup(const Options& o = {}) : opt_(o) {
        detail::require_lr("LinearWarmup", static_cast<double>(o.lr));
        detail::require(detail::unit_closed(o.start_factor), "LinearWarmup", "start_factor",
                        "in [0, 1]", o.start_factor);
        detail::require(o.warmup_steps >= 1, "LinearWarmup", "warmup_steps", ">= 1", o.warmup_steps);
    }
    T lr_at(Index t) const {
        const double f = static_cast<double>(opt_.start_factor);
        const double w = static_cast<double>(opt_.warmup_steps);
        const double tt = static_cast<double>(t < opt_.warmup_steps ? t : opt_.warmup_steps);
        return static_cast<T>(static_cast<double>(opt_.lr) * (f + (1.0 - f) * tt / w));
    }
    const Options& options() const { return opt_; }

private:
    Options opt_;
};

template <class T>
struct CosineWarmRestartsOptions {
    T lr = T(1e-3);       ///< eta_max, the lr at each (re)start
    T eta_min = T(0);     ///< [0, lr]
    Index t0 = 100;       ///< length of the first cycle, >= 1
    Index t_mult = 1;     ///< cycle i has length t0 t_mult^i, >= 1
};

/// SGDR (Loshchilov & Hutter 2017, eq. 5), as torch CosineAnnealingWarmRestarts stepped once per
/// step: lr_at(t) = eta_min + (eta_max - eta_min)(1 + cos(pi T_cur / T_i)) / 2, where T_cur
/// counts steps since the last warm restart and T_i is the current cycle length.
template <class T>
class CosineWarmRestarts : public Schedule<CosineWarmRestarts<T>, T> {
public:
    using Options = CosineWarmRestartsOptions<T>;
    explicit CosineWarmRestarts(const Options& o = {}) : opt_(o) {
        detail::require_lr("CosineWarmRestarts", static_cast<double>(o.lr));
        detail::require(o.eta_min >= T(0) && o.eta_min <= o.lr, "CosineWarmRestarts", "eta_min",
                        "in [0, lr]", o.eta_min);
        detail::require(o.t0 >= 1, "CosineWarmRestarts", "t0", ">= 1", o.t0);
        detail::require(o.t_mult >= 1, "CosineWarmRestarts", "t_mult", ">= 1", o.t_mult);
    }
    /// (T_cur, T_i) at step t.
    std::pair<Index, Index> cycle(Index t) const {
        Index ti = opt_.t0;
        if (opt_.t_mult == 1) return {t % ti, ti};
        while (t >= ti) {  // cycles grow geometrically: O(log t) iterations
            t -= ti;
            ti *= opt_.t_mult;
        }
        return {t, ti};
    }
    T lr_at(Index t) const {
        const auto [t_cur, t_i] = cycle(t);
        const double lo = static_cast<double>(opt_.eta_min), hi = static_cast<double>(opt_.lr);
        return static_cast<T>(
            lo + (hi - lo) *
                     (1.0 + std::cos(std::numbers::pi * static_cast<double>(t_cur) /
                                     static_cast<double>(t_i))) /
                     2.0);
    }
    const Options& options() const { return opt_; }

private:
    Options opt_;
};

/// First for t < milestone, then Second restarted at the milestone:
/// lr_at(t) = t < milestone ? first.lr_at(t) : second.lr_at(t - milestone)
/// (torch SequentialLR with one milestone). restart() starts over with First.
/// @tparam First, Second schedules with the same scalar_type.
template <class First, class Second>
class SequentialLr : public Schedule<SequentialLr<First, Second>, scalar_of<First>> {
    static_assert(LrSchedule<First> && LrSchedule<Second>,
                  "persist::optim::SequentialLr<First, Second>: both must be schedules (docs/optim.md)");
    static_assert(std::is_same_v<scalar_of<First>, scalar_of<Second>>,
                  "persist::optim::SequentialLr<First, Second>: both schedules need the same scalar_type");

public:
    using T = scalar_of<First>;
    SequentialLr(First first, Second second, Index milestone)
        : first_(std::move(first)), second_(std::move(second)), milestone_(milestone) {
        detail::require(milestone >= 0, "SequentialLr", "milestone", ">= 0", milestone);
    }
    T lr_at(Index t) const { return t < milestone_ ? first_.lr_at(t) : second_.lr_at(t - milestone_); }
    Index milestone() const { return milestone_; }
    const First& first() const { return first_; }
    const Second& second() const { return second_; }

private:
    First first_;
    Second second_;
    Index milestone_;
};

template <class T>
struct WarmupCosineOptions {
    T lr = T(1e-3);              ///< peak lr: end of warm-up, start of every cosine cycle
    T start_factor = T(0.1);     ///< warm-up starts at start_factor lr
    Index warmup_steps = 100;    ///< linear warm-up length
    T eta_min = T(0);            ///< cosine floor
    Index t0 = 1000;             ///< first cosine cycle length
    Index t_mult = 1;            ///< cycle growth
};

/// Linear warm-up to lr over warmup_steps, then SGDR cosine annealing with warm restarts.
/// Errors name "LinearWarmup" / "CosineWarmRestarts" and the offending option.
template <class T>
class WarmupCosine : public SequentialLr<LinearWarmup<T>, CosineWarmRestarts<T>> {
    using Base = SequentialLr<LinearWarmup<T>, CosineWarmRestarts<T>>;

public:
    using Options = WarmupCosineOptions<T>;
    explicit WarmupCosine(const Options& o = {})
        : Base(LinearWarmup<T>({o.lr, o.start_factor, o.warmup_steps}),
               CosineWarmRestarts<T>({o.lr, o.eta_min, o.t0, o.t_mult}), o.warmup_steps),
          opt_(o) {}
    const Options& options() const { return opt_; }

private:
    Options opt_;
};

}  // namespace persist::optim
