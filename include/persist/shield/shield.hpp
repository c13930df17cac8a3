#pragma once
/// @file shield.hpp
/// Every shield: NullShield (pass-through, baselines), LearnedShield (RolloutShield with the
/// models it trains), AmortizedShield (safety network over a search shield) and RolloutShield (predictive check by
/// model rollouts, CEM / gradient projection) with the rollout models, viability views and
/// observation kinematics it is built from (parallel/rollout.hpp, parallel/gridlife_rollout.hpp).
#include "persist/parallel/gridlife_rollout.hpp"
#include "persist/parallel/rollout.hpp"
#include "persist/shield/amortized_shield.hpp"
#include "persist/shield/learned_shield.hpp"
#include "persist/shield/null_shield.hpp"
#include "persist/shield/rollout_shield.hpp"
