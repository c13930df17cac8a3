#pragma once
/// @file replay.hpp
/// Module header of persist/replay/: the ring replay buffer (uniform and sequence sampling)
/// and the near-boundary buffer (seed sections 2, 3, 6). docs/replay.md.
#include "persist/replay/near_boundary.hpp"
#include "persist/replay/ring_replay.hpp"
