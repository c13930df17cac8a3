#pragma once
/// @file env.hpp
/// Every environment and the vectorised wrapper (namespace persist::env). Fine-grained
/// headers are public too: include only what you use to keep compile times down.
/// Catalogue: docs/environments.md; GridLife in depth: docs/gridlife.md.
#include "persist/env/cartpole.hpp"
#include "persist/env/exact_fp.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/env/gridlife_forager.hpp"
#include "persist/env/pendulum.hpp"
#include "persist/env/vector_env.hpp"
