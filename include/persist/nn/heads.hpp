#pragma once
/// @file heads.hpp
/// Output heads that turn a network's output matrix into a distribution: TanhGaussian (SAC
/// policies), DiagGaussian (probabilistic models), Categorical (discrete actions).
#include "persist/nn/categorical.hpp"
#include "persist/nn/diag_gaussian.hpp"
#include "persist/nn/tanh_gaussian.hpp"
