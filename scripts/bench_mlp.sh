#!/usr/bin/env bash
# MLP training-step benchmark: PERSIST (Google Benchmark) vs. PyTorch, same thread count.
#
#   scripts/bench_mlp.sh [--threads N] [--wait-idle SECONDS] [--quick] [--stat median|min]
#                        [--clock real|cpu] [--strict] [--markdown]
#
# Builds bench_mlp in a Release tree (PERSIST_BENCH_BUILD_DIR, default build-bench), runs it
# with MLPOptions::threads = N, runs bench/reference/torch_mlp.py with torch.set_num_threads(N)
# and OpenBLAS at N threads (with N > 1 also at 1 thread: per shape the faster PyTorch time is
# the reference), and prints the merged table with pass/fail per target (docs/benchmarks.md).
# Results: <build dir>/bench-results/{persist,torch}_tN.json (and torch_t1.json).
#
# OPENBLAS_CORETYPE: Debian's OpenBLAS 0.3.21 does not recognise newer AVX-512 CPUs and falls
# back to a slower kernel; on a CPU with avx512f the PyTorch process (only) gets
# OPENBLAS_CORETYPE=SkylakeX unless the caller already set OPENBLAS_CORETYPE.
#
# Exit status: non-zero when the build or a benchmark fails; missed targets only with --strict.
# Not run by CI (timings on a shared runner mean nothing).
set -euo pipefail

threads=1 wait_idle=0 quick=0 compare_flags=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --threads=*) threads="${1#*=}"; shift ;;
        --wait-idle) wait_idle="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        --strict|--markdown) compare_flags+=("$1"); shift ;;
        --stat|--clock) compare_flags+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "bench_mlp.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "bench_mlp.sh: --threads needs a positive integer" >&2; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PERSIST_BENCH_BUILD_DIR:-$root/build-bench}"
torch_python="${PERSIST_TORCH_PYTHON:-/usr/bin/python3}"
python="${PYTHON:-python3}"
out="$build/bench-results"

generator=()
command -v ninja >/dev/null && [[ ! -f "$build/CMakeCache.txt" ]] && generator=(-G Ninja)
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DPERSIST_BUILD_BENCH=ON -DPERSIST_BUILD_TESTS=OFF -DPERSIST_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target bench_mlp
mkdir -p "$out"

# Busy fraction of all CPUs over one second, from /proc/stat (load average lags by minutes).
busy_percent() {
    local a b
    read -ra a < <(head -1 /proc/stat); sleep 1; read -ra b < <(head -1 /proc/stat)
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
if (( wait_idle > 0 )); then
    deadline=$(( SECONDS + wait_idle ))
    until (( $(busy_percent) < 10 )) || (( SECONDS >= deadline )); do sleep 5; done
fi
echo "machine before the run: $(busy_percent)% CPU busy, load average $(cut -d' ' -f1-3 /proc/loadavg)"

gb_flags=(--benchmark_repetitions=7 --benchmark_min_time=0.3)
torch_flags=(--repeats 7 --min-time 0.3)
if (( quick )); then gb_flags=(--benchmark_repetitions=3 --benchmark_min_time=0.05)
                     torch_flags=(--repeats 3 --min-time 0.05); fi

echo "== PERSIST (MLPOptions::threads = $threads)"
PERSIST_BENCH_THREADS="$threads" "$build/bench/bench_mlp" "${gb_flags[@]}" \
    --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/persist_t$threads.json" --benchmark_out_format=json

coretype="${OPENBLAS_CORETYPE:-}"
if [[ -z "$coretype" ]] && grep -qw avx512f /proc/cpuinfo; then coretype=SkylakeX; fi
echo "== PyTorch (torch.set_num_threads($threads), OPENBLAS_CORETYPE=${coretype:-<auto>})"
env ${coretype:+OPENBLAS_CORETYPE="$coretype"} OPENBLAS_NUM_THREADS="$threads" \
    OMP_NUM_THREADS="$threads" \
    "$torch_python" "$root/bench/reference/torch_mlp.py" --threads "$threads" "${torch_flags[@]}" \
    --out "$out/torch_t$threads.json"
alt=()
if (( threads > 1 )); then
    echo "== PyTorch (torch.set_num_threads(1)): the reference where it is faster"
    env ${coretype:+OPENBLAS_CORETYPE="$coretype"} OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
        "$torch_python" "$root/bench/reference/torch_mlp.py" --threads 1 "${torch_flags[@]}" \
        --out "$out/torch_t1.json"
    alt=(--torch-alt "$out/torch_t1.json")
fi

echo "machine after the run: load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$python" "$root/bench/compare_mlp.py" "${compare_flags[@]}" "${alt[@]}" \
    "$out/persist_t$threads.json" "$out/torch_t$threads.json"
