#pragma once
/// @file curriculum.hpp
/// The seed's curriculum (sections 2 and 11): "start wide tolerances; progressively tighten V
/// and increase lambda_H, lambda_I". A pure function of the number of environment steps t:
///
///     u(t)   = clamp((t - warmup_steps) / total_steps, 0, 1)
///     s(t)   = u                        (linear)
///            = (1 - cos(pi u)) / 2      (cosine: slow start, slow end)
///     V(t)   = ConstraintSet::interpolate(wide, target, s(t))   (thresholds lerped)
///     lH(t)  = lambda_homeo_start + s(t) (lambda_homeo_end - lambda_homeo_start)
///     lI(t)  = lambda_intr_start  + s(t) (lambda_intr_end  - lambda_intr_start)
///
/// s = 0 gives `wide` and the start lambdas exactly, s = 1 the target set and end lambdas
/// exactly. PersistAgent re-evaluates the lambdas every step and the constraint set (and with
/// it the environment's termination bounds) at each episode start, so an episode never
/// changes its rules midway. docs/train.md, "Curriculum".
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <utility>

#include "persist/core/error.hpp"
#include "persist/core/types.hpp"
#include "persist/viability/constraints.hpp"

namespace persist::train {

/// The schedule s(u) of the progress. One name everywhere: `schedule`, as the config key
/// `curriculum.schedule` (config::CurriculumSchedule has the same enumerators, mapped by
/// config::make_curriculum).
enum class CurriculumSchedule : std::uint8_t { linear = 0, cosine = 1 };
/// Former name of CurriculumSchedule, kept so existing code compiles.
using CurriculumShape = CurriculumSchedule;

/// Schedule of the curriculum (a plain aggregate). Mirrors config::CurriculumConfig, with the
/// end lambdas explicit (in a PersistConfig they are rewards.lambda_homeo / lambda_intr).
struct CurriculumOptions {
    std::int64_t warmup_steps = 0;       ///< steps held at s = 0, >= 0
    std::int64_t total_steps = 200'000;  ///< steps from s = 0 to s = 1, >= 1
    CurriculumSchedule schedule = CurriculumSchedule::linear;  ///< s(u): linear or cosine
    double lambda_homeo_start = 0.0;  ///< >= 0
    double lambda_homeo_end = 0.7;    ///< >= 0 (the seed's lambda_homeo)
    double lambda_intr_start = 0.0;   ///< >= 0
    double lambda_intr_end = 0.3;     ///< >= 0 (the seed's lambda_intr)
};

/// Tightens a constraint set from `wide` to `target` and raises the reward weights.
template <class T>
class Curriculum {
public:
    using scalar_type = T;
    using Set = viability::ConstraintSet<T>;

    /// `wide` and `target` must have the same structure (ConstraintSet::interpolate); checked
    /// here by building the s = 0 set. ConfigError for bad options.
    Curriculum(Set wide, Set target, const CurriculumOptions& opt)
        : wide_(std::move(wide)), target_(std::move(target)), opt_(opt) {
        auto bad = [](const char* f, double v, const char* e) {
            throw ConfigError(std::string("CurriculumOptions.") + f + " = " + std::to_string(v) + ": expected " + e);
        };
        if (opt_.warmup_steps < 0) bad("warmup_steps", double(opt_.warmup_steps), ">= 0");
        if (opt_.total_steps < 1) bad("total_steps", double(opt_.total_steps), ">= 1");
        if (opt_.schedule != CurriculumSchedule::linear && opt_.schedule != CurriculumSchedule::cosine)
            bad("schedule", double(static_cast<int>(opt_.schedule)), "linear (0) or cosine (1)");
        auto lam = [&](const char* f, double v) {
            if (!(std::isfinite(v) && v >= 0.0)) bad(f, v, "a finite value >= 0");
        };
        lam("lambda_homeo_start", opt_.lambda_homeo_start);
        lam("lambda_homeo_end", opt_.lambda_homeo_end);
        lam("lambda_intr_start", opt_.lambda_intr_start);
        lam("lambda_intr_end", opt_.lambda_intr_end);
        (void)Set::interpolate(wide_, target_, T(0));  // structure check (throws ConfigError)
    }

    const CurriculumOptions& options() const { return opt_; }
    const Set& wide() const { return wide_; }
    const Set& target() const { return target_; }

    /// s(t) in [0, 1].
    double progress(std::int64_t step) const {
        const double u = std::clamp(static_cast<double>(step - opt_.warmup_steps) /
                                        static_cast<double>(opt_.total_steps),
                                    0.0, 1.0);
        if (opt_.schedule == CurriculumSchedule::cosine) {
            if (u <= 0.0) return 0.0;
            if (u >= 1.0) return 1.0;
            return 0.5 * (1.0 - std::cos(std::numbers::pi * u));
        }
        return u;
    }
    T lambda_homeo(std::int64_t step) const {
        return lerp(opt_.lambda_homeo_start, opt_.lambda_homeo_end, progress(step));
    }
    T lambda_intr(std::int64_t step) const {
        return lerp(opt_.lambda_intr_start, opt_.lambda_intr_end, progress(step));
    }
    /// The constraint set at `step` (allocates: a new set).
    Set constraints(std::int64_t step) const {
        return Set::interpolate(wide_, target_, static_cast<T>(progress(step)));
    }
    /// Write the constraint set at `step` into `current` in place (same structure).
    void apply(std::int64_t step, Set& current) const {
        current.assign_interpolation(wide_, target_, static_cast<T>(progress(step)));
    }

private:
    static T lerp(double a, double b, double s) {
        if (s <= 0.0) return static_cast<T>(a);
        if (s >= 1.0) return static_cast<T>(b);
        return static_cast<T>(a + s * (b - a));
    }

    Set wide_, target_;
    CurriculumOptions opt_;
};

}  // namespace persist::train
