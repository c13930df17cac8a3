#!/usr/bin/env bash
# The test command: everything CI checks, on a fresh machine or a developer's.
#
#   ./scripts/test.sh              deps, configure (Release, -Werror, header check, CUDA check
#                                  where nvcc exists), build, ctest, installed-package test
#   ./scripts/test.sh --sanitize   the same tests under AddressSanitizer + UBSan
#                                  (Debug -Og, build dir build-asan; no package/CUDA stages)
# Options: --no-deps (skip install_deps.sh), --no-cuda (skip the nvcc compile check).
# Environment: PERSIST_BUILD_DIR (default build-test / build-asan under the repo),
#              PERSIST_JOBS (default 2).
# Exits non-zero on the first failing stage and prints a per-stage timing summary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PERSIST_ROOT"

sanitize=0 deps=1 cuda=1
for arg in "$@"; do
    case "$arg" in
        --sanitize) sanitize=1 ;;
        --no-deps) deps=0 ;;
        --no-cuda) cuda=0 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "test.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

if ((sanitize)); then
    title="test.sh --sanitize (ASan + UBSan)"
    build="${PERSIST_BUILD_DIR:-$PERSIST_ROOT/build-asan}"
    # Debug keeps assertions (Eigen's bounds checks included). -Og -g1 (line tables, enough for
    # sanitizer stack traces) compiles ~2x faster than -O1 -g, and the tests still run fast.
    config=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -Og" -DPERSIST_SANITIZE=ON
            -DPERSIST_WERROR=ON -DPERSIST_HEADER_CHECK=OFF -DPERSIST_CUDA=OFF
            -DPERSIST_BUILD_BENCH=OFF)
    # alloc_dealloc_mismatch=0: the allocation-counting tests replace global operator new/delete,
    # which ASan would otherwise report as mismatched with its own allocator.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:strict_init_order=1:alloc_dealloc_mismatch=0}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    cuda=0
else
    title="test.sh"
    build="${PERSIST_BUILD_DIR:-$PERSIST_ROOT/build-test}"
    config=(-DCMAKE_BUILD_TYPE=Release -DPERSIST_SANITIZE=OFF -DPERSIST_WERROR=ON
            -DPERSIST_HEADER_CHECK=OFF)
fi
nvcc=""
if ((cuda)); then
    nvcc=$(find_nvcc)
fi
if [[ -n "$nvcc" ]]; then
    config+=(-DPERSIST_CUDA=ON "-DCMAKE_CUDA_COMPILER=$nvcc")
elif ((!sanitize)); then
    config+=(-DPERSIST_CUDA=OFF)
fi
trap 'print_summary "$title"' EXIT
echo "$title: build dir $build, $PERSIST_JOBS jobs, nvcc: ${nvcc:-none}"

if ((deps)); then
    stage deps "$PERSIST_ROOT/scripts/install_deps.sh"
else
    skip_stage deps "--no-deps"
fi
stage configure cmake -S "$PERSIST_ROOT" -B "$build" -G Ninja "${config[@]}"
if [[ -n "$nvcc" ]]; then
    # Compiled (never run: no GPU needed). Its own stage so its time shows in the summary.
    stage cuda-compile-check cmake --build "$build" -j "$PERSIST_JOBS" --target persist_cuda_compile_check
elif ((!sanitize)); then
    skip_stage cuda-compile-check "$( ((cuda)) && echo "no nvcc found" || echo "--no-cuda")"
fi
if ((sanitize)); then
    # The sanitizer configuration covers the foundation (core, nn, optim, checkpoints) and the
    # data structures with hand-written memory handling (replay, config, constraints): a full
    # second build of every executable would push CI past its time budget on 2 cores.
    san_targets=(test_core test_io test_nn_layers test_nn_heads_losses test_nn_alloc test_nn_gru
                 test_models_state_estimator test_models_kalman_filter
                 test_optim_rules test_optim_convergence test_replay test_homeostasis
                 test_viability_constraints test_config)
    san_regex="^($(IFS='|'; echo "${san_targets[*]}")):"
    stage build cmake --build "$build" -j "$PERSIST_JOBS" --target "${san_targets[@]}"
    stage ctest ctest --test-dir "$build" --output-on-failure -j "$PERSIST_JOBS" -R "$san_regex"
else
    stage build cmake --build "$build" -j "$PERSIST_JOBS"
    stage ctest ctest --test-dir "$build" --output-on-failure -j "$PERSIST_JOBS"
fi
if ((!sanitize)); then
    stage package "$PERSIST_ROOT/scripts/test_package.sh"
fi
