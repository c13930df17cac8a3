#pragma once
/// @file intrinsic.hpp
/// Module header of persist/intrinsic/: the intrinsic rewards R_intr(s, a, o') of the seed
/// (section 5B surprise with setpoint prior, "Change 2" random network distillation) and the
/// null reward for baselines, all models of persist::Intrinsic. docs/intrinsic.md.
#include "persist/intrinsic/common.hpp"
#include "persist/intrinsic/empowerment.hpp"
#include "persist/intrinsic/none.hpp"
#include "persist/intrinsic/rnd.hpp"
#include "persist/intrinsic/running_mean_std.hpp"
#include "persist/intrinsic/surprise.hpp"
