#pragma once
/// @file curriculum_from_config.hpp
/// The `curriculum:` section of a PersistConfig as a train::Curriculum<T> (seed sections 2, 3
/// and 11: "start wide tolerances; progressively tighten V and increase lambda_H, lambda_I").
///
///   wide   = viability.constraints widened by curriculum.start_widths (the target itself
///            when start_widths is empty)                       -> make_curriculum_start_set
///   target = viability.constraints over internal_state.dims    -> make_constraint_set
///   s(t)   = curriculum.schedule (linear | cosine) of clamp((t - warmup_steps) / total_steps, 0, 1)
///   lH(t)  = lambda_homeo_start + s (rewards.lambda_homeo - lambda_homeo_start), lI likewise
///
/// One name for the schedule: the config key `curriculum.schedule`
/// (config::CurriculumSchedule) maps onto CurriculumOptions::schedule
/// (train::CurriculumSchedule), enumerator by enumerator. docs/train.md, "Curriculum".
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>

#include "persist/config/persist_config.hpp"
#include "persist/core/error.hpp"
#include "persist/train/curriculum.hpp"

namespace persist::config {

/// config::CurriculumSchedule -> train::CurriculumSchedule (same names, same values).
inline train::CurriculumSchedule to_train_schedule(CurriculumSchedule s) {
    static_assert(static_cast<int>(CurriculumSchedule::linear) == static_cast<int>(train::CurriculumSchedule::linear) &&
                      static_cast<int>(CurriculumSchedule::cosine) == static_cast<int>(train::CurriculumSchedule::cosine),
                  "config::CurriculumSchedule and train::CurriculumSchedule must list the same schedules");
    switch (s) {
        case CurriculumSchedule::linear: return train::CurriculumSchedule::linear;
        case CurriculumSchedule::cosine: return train::CurriculumSchedule::cosine;
    }
    throw ConfigError("curriculum.schedule: expected \"linear\" or \"cosine\", got the value " +
                      std::to_string(static_cast<int>(s)));
}

/// The CurriculumOptions of a run: warmup / total steps, schedule and start lambdas from
/// `curriculum:`, end lambdas from `rewards:`. ConfigError naming the key path (e.g.
/// "curriculum.total_steps: expected >= 1, got 0") for values the config validation would
/// reject, so configs built in code get the same messages as loaded ones.
inline train::CurriculumOptions make_curriculum_options(const PersistConfig& c) {
    const auto& cu = c.curriculum;
    const auto bad = [](const std::string& key, const std::string& expected, const std::string& got) {
        throw ConfigError(key + ": expected " + expected + ", got " + got);
    };
    const auto lam = [&](const char* key, double v) {
        if (!(std::isfinite(v) && v >= 0)) bad(key, "a finite value >= 0", detail::format_value(v));
    };
    if (cu.warmup_steps < 0) bad("curriculum.warmup_steps", ">= 0", std::to_string(cu.warmup_steps));
    if (cu.total_steps < 1) bad("curriculum.total_steps", ">= 1", std::to_string(cu.total_steps));
    lam("curriculum.lambda_homeo_start", cu.lambda_homeo_start);
    lam("curriculum.lambda_intr_start", cu.lambda_intr_start);
    lam("rewards.lambda_homeo", c.rewards.lambda_homeo);
    lam("rewards.lambda_intr", c.rewards.lambda_intr);
    return train::CurriculumOptions{.warmup_steps = cu.warmup_steps,
                                    .total_steps = cu.total_steps,
                                    .schedule = to_train_schedule(cu.schedule),
                                    .lambda_homeo_start = cu.lambda_homeo_start,
                                    .lambda_homeo_end = c.rewards.lambda_homeo,
                                    .lambda_intr_start = cu.lambda_intr_start,
                                    .lambda_intr_end = c.rewards.lambda_intr};
}

/// The curriculum of a run (whether or not curriculum.enabled is set: the caller decides
/// whether to install it, e.g. `if (c.curriculum.enabled) agent.set_curriculum(make_curriculum<T>(c));`).
/// ConfigError naming the key path when start_widths does not have one entry per
/// viability.constraints entry, holds a negative or non-finite width, or a widened interval
/// is invalid; the parser's message (with the caret line) for a bad constraint string.
template <class T = double>
train::Curriculum<T> make_curriculum(const PersistConfig& c) {
    const auto opt = make_curriculum_options(c);
    const auto& widths = c.curriculum.start_widths;
    const std::size_t K = c.viability.constraints.size();
    if (!widths.empty() && widths.size() != K)
        throw ConfigError("curriculum.start_widths: expected " + std::to_string(K) +
                          " values (one per viability.constraints entry) or none, got " + std::to_string(widths.size()));
    for (std::size_t k = 0; k < widths.size(); ++k)
        if (!(std::isfinite(widths[k]) && widths[k] >= 0))
            throw ConfigError("curriculum.start_widths[" + std::to_string(k) + "]: expected a finite value >= 0, got " +
                              detail::format_value(widths[k]));
    auto target = make_constraint_set<T>(c);
    viability::ConstraintSet<T> wide = target;
    try {
        wide = make_curriculum_start_set<T>(c);
    } catch (const ConfigError& e) {
        throw ConfigError(std::string("curriculum.start_widths: ") + e.what());
    }
    return train::Curriculum<T>(std::move(wide), std::move(target), opt);
}

}  // namespace persist::config
