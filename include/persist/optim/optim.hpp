#pragma once
/// @file optim.hpp
/// Every optimizer, wrapper, schedule and the gradient clipper. Fine-grained headers are public
/// too: include only what you use to keep compile times down.
#include "persist/optim/adafactor.hpp"
#include "persist/optim/adam.hpp"
#include "persist/optim/clip.hpp"
#include "persist/optim/lion.hpp"
#include "persist/optim/lookahead.hpp"
#include "persist/optim/optimizer.hpp"
#include "persist/optim/radam.hpp"
#include "persist/optim/rmsprop.hpp"
#include "persist/optim/sam.hpp"
#include "persist/optim/schedule.hpp"
#include "persist/optim/sgd.hpp"
