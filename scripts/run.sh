#!/usr/bin/env bash
# The run command: install dependencies, configure a Release build, build the main example
# and run it. Arguments are passed to the example.
#
#   ./scripts/run.sh [example arguments...]
#
# Environment: PERSIST_BUILD_DIR (default build-release under the repo), PERSIST_JOBS (2),
#              PERSIST_MAIN_EXAMPLE (override the example target below).
set -euo pipefail

# The example target ./scripts/run.sh builds and runs: an executable defined in
# examples/CMakeLists.txt (so it lands in <build>/examples/).
PERSIST_MAIN_EXAMPLE="${PERSIST_MAIN_EXAMPLE:-gridlife_persist}"
# Without arguments: the GridLife PERSIST experiment on the seed's config
# (examples/configs/gridlife.yaml): SAC + LearnedShield (rollout shield, conf 0.97, horizon 8)
# + empowerment, as the seed configures it. Budget overrides (printed by the example): the
# seed's batch 1024 with one update per step and 1M steps do not fit the 5-minute budget on
# 2 cores (build included), so 25000 steps, batch 256, 8 gradient steps per 64 env steps; then 5 evaluation
# episodes. The full comparison over seeds is scripts/gridlife_results.sh (docs/results.md).
if [[ $# -eq 0 && "$PERSIST_MAIN_EXAMPLE" == gridlife_persist ]]; then
    set -- --steps 25000 --learning-starts 5000 --batch-size 256 --gradient-steps 8 \
           --eval-episodes 5 --metrics gridlife_metrics.jsonl
fi

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build="${PERSIST_BUILD_DIR:-$PERSIST_ROOT/build-release}"
trap 'print_summary "run.sh ($PERSIST_MAIN_EXAMPLE)"' EXIT

stage deps "$PERSIST_ROOT/scripts/install_deps.sh"
stage configure cmake -S "$PERSIST_ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPERSIST_BUILD_EXAMPLES=ON -DPERSIST_BUILD_TESTS=OFF -DPERSIST_BUILD_BENCH=OFF
stage build cmake --build "$build" -j "$PERSIST_JOBS" --target "$PERSIST_MAIN_EXAMPLE"
stage run "$build/examples/$PERSIST_MAIN_EXAMPLE" "$@"
