#pragma once
/// @file persist.hpp
/// Umbrella header: the whole public API of PERSIST in one include. Every fine-grained header
/// is public too (and each module has its own, e.g. persist/nn/nn.hpp); include only what you
/// use to keep compile times down.
///
/// MAINTAINERS: this list is written by hand, on purpose (no globbing). When you add a public
/// header under include/persist/ -- a new file, or a new module directory -- add its #include
/// here, in the module's block. The CTest check `persist_umbrella_complete`
/// (cmake/CheckUmbrella.cmake) fails while a header is missing from this list, and
/// tests/cuda/compile_check.cu compiles everything included here under nvcc.

// core: concepts, dense types, errors, counter-based RNG, state protocol, records
#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

// nn: flat-parameter layers with hand-written backward, networks, heads, losses
#include "persist/nn/activations.hpp"
#include "persist/nn/categorical.hpp"
#include "persist/nn/detail.hpp"
#include "persist/nn/diag_gaussian.hpp"
#include "persist/nn/gru.hpp"
#include "persist/nn/heads.hpp"
#include "persist/nn/init.hpp"
#include "persist/nn/layer.hpp"
#include "persist/nn/layer_norm.hpp"
#include "persist/nn/linear.hpp"
#include "persist/nn/losses.hpp"
#include "persist/nn/mlp.hpp"
#include "persist/nn/nn.hpp"
#include "persist/nn/sequential.hpp"
#include "persist/nn/tanh_gaussian.hpp"

// optim: optimizers, wrappers, schedules, gradient clipping
#include "persist/optim/adafactor.hpp"
#include "persist/optim/adam.hpp"
#include "persist/optim/clip.hpp"
#include "persist/optim/lion.hpp"
#include "persist/optim/lookahead.hpp"
#include "persist/optim/optim.hpp"
#include "persist/optim/optimizer.hpp"
#include "persist/optim/radam.hpp"
#include "persist/optim/rmsprop.hpp"
#include "persist/optim/sam.hpp"
#include "persist/optim/schedule.hpp"
#include "persist/optim/sgd.hpp"

// io: checkpoints
#include "persist/io/checkpoint.hpp"
#include "persist/io/crc32c.hpp"

// env: environments and the vectorised wrapper
#include "persist/env/cartpole.hpp"
#include "persist/env/env.hpp"
#include "persist/env/exact_fp.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/env/gridlife_forager.hpp"
#include "persist/env/pendulum.hpp"
#include "persist/env/vector_env.hpp"

// homeostasis: the homeostatic drive
#include "persist/homeostasis/homeostasis.hpp"
#include "persist/homeostasis/homeostat.hpp"

// viability: constraints and viability margins
#include "persist/viability/constraints.hpp"
#include "persist/viability/approximator.hpp"
#include "persist/models/gaussian_ensemble.hpp"
#include "persist/models/known_dynamics.hpp"
#include "persist/models/state_estimator.hpp"
#include "persist/models/kalman_filter.hpp"
#include "persist/models/any_state_estimator.hpp"
#include "persist/models/models.hpp"

// replay: ring and near-boundary replay buffers
#include "persist/replay/near_boundary.hpp"
#include "persist/replay/replay.hpp"
#include "persist/replay/ring_replay.hpp"
#include "persist/replay/demonstrations.hpp"

// intrinsic: intrinsic rewards (none, surprise, RND) and running statistics
#include "persist/intrinsic/common.hpp"
#include "persist/intrinsic/empowerment.hpp"
#include "persist/intrinsic/intrinsic.hpp"
#include "persist/intrinsic/none.hpp"
#include "persist/intrinsic/rnd.hpp"
#include "persist/intrinsic/running_mean_std.hpp"
#include "persist/intrinsic/surprise.hpp"

// agents: learners modelling persist::Policy
#include "persist/agents/sac.hpp"

// shield: action filters modelling persist::Shield
#include "persist/parallel/lanes.hpp"
#include "persist/parallel/views.hpp"
#include "persist/parallel/rollout.hpp"
#include "persist/parallel/gridlife_rollout.hpp"
#include "persist/shield/null_shield.hpp"
#include "persist/shield/amortized_shield.hpp"
#include "persist/shield/rollout_shield.hpp"
#include "persist/shield/learned_shield.hpp"
#include "persist/shield/shield.hpp"

// config: typed, reflected configuration (JSON here; YAML in config/yaml.hpp, which needs
// yaml-cpp and is therefore not part of the umbrella: link persist::yaml and include it)
#include "persist/config/config.hpp"
#include "persist/config/json.hpp"
#include "persist/config/persist_config.hpp"
#include "persist/config/reflect.hpp"
#include "persist/config/curriculum_from_config.hpp"

// train: PersistAgent, curriculum, metrics
#include "persist/train/curriculum.hpp"
#include "persist/train/metrics.hpp"
#include "persist/train/persist_agent.hpp"
#include "persist/train/checkpointing.hpp"
