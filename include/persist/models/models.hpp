#pragma once
/// @file models.hpp
/// Module header of persist/models/ (docs/models.md): the learned internal model f_theta
/// (GaussianEnsemble, a probabilistic ensemble of Gaussian MLPs), the known-dynamics model
/// (KnownDynamics<Env>), the state estimators (GruStateEstimator, ExtendedKalmanFilter,
/// AnyStateEstimator), and, for convenience, the models the shield pairs with them: the
/// viability approximator V_psi (viability/approximator.hpp) and the demonstration buffer it
/// is pre-trained from (replay/demonstrations.hpp).
#include "persist/models/any_state_estimator.hpp"
#include "persist/models/gaussian_ensemble.hpp"
#include "persist/models/kalman_filter.hpp"
#include "persist/models/known_dynamics.hpp"
#include "persist/models/state_estimator.hpp"
#include "persist/replay/demonstrations.hpp"
#include "persist/viability/approximator.hpp"
