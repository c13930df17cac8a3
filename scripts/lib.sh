# Shared by run.sh and test.sh (sourced, not executed): repo paths, stage timing, summary.
# shellcheck shell=bash

PERSIST_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PERSIST_JOBS="${PERSIST_JOBS:-2}"   # build/test parallelism; CI machines have 2 cores

_stage_names=()
_stage_secs=()
_stage_status=()
_script_t0=$(date +%s.%N)
if [[ -t 1 ]]; then _bold=$'\033[1m' _red=$'\033[1;31m' _off=$'\033[0m'; else _bold= _red= _off=; fi

# stage <name> <command...>: run a command (or shell function) as a named, timed stage; a
# failing stage ends the script after recording it, so the summary says where it stopped.
# The stage runs in a subshell with errexit on: `"$@" || rc=$?` would silently disable set -e
# inside shell functions, letting a failing step in the middle go unnoticed.
stage() {
    local name="$1"
    shift
    printf '\n%s==> [%s] %s%s\n' "$_bold" "$name" "$*" "$_off"
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    set +e
    (set -e; "$@")
    rc=$?
    set -e
    t1=$(date +%s.%N)
    _stage_names+=("$name")
    _stage_secs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')")
    _stage_status+=("$([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc)")")
    if ((rc != 0)); then
        printf '%s==> [%s] failed with exit code %d%s\n' "$_red" "$name" "$rc" "$_off" >&2
        exit "$rc"
    fi
}

# skip_stage <name> <reason>: record a stage that did not run, with why.
skip_stage() {
    _stage_names+=("$1")
    _stage_secs+=("-")
    _stage_status+=("skipped: $2")
}

# print_summary <title>: the per-stage table; call from an EXIT trap.
print_summary() {
    local rc=$? title="$1" i total
    total=$(awk -v a="$_script_t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    printf '\n%s==== %s summary ====%s\n' "$_bold" "$title" "$_off"
    printf '%-24s %9s  %s\n' "stage" "seconds" "result"
    for i in "${!_stage_names[@]}"; do
        printf '%-24s %9s  %s\n' "${_stage_names[$i]}" "${_stage_secs[$i]}" "${_stage_status[$i]}"
    done
    printf '%-24s %9s  %s\n' "total" "$total" "$([[ $rc -eq 0 ]] && echo PASSED || echo "FAILED (exit $rc)")"
    return "$rc"
}

# find_nvcc: print the nvcc to use for the CUDA compile check, or nothing.
find_nvcc() {
    if command -v nvcc >/dev/null 2>&1; then
        command -v nvcc
    elif [[ -x /usr/local/cuda/bin/nvcc ]]; then
        echo /usr/local/cuda/bin/nvcc
    fi
}
