#pragma once
/// @file nn.hpp
/// All of persist::nn: layers, networks, initialisation, heads and losses (docs/nn.md).
#include "persist/nn/activations.hpp"
#include "persist/nn/gru.hpp"
#include "persist/nn/heads.hpp"
#include "persist/nn/init.hpp"
#include "persist/nn/layer.hpp"
#include "persist/nn/layer_norm.hpp"
#include "persist/nn/linear.hpp"
#include "persist/nn/losses.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/nn/sequential.hpp"
