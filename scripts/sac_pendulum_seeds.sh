#!/usr/bin/env bash
# SAC on Pendulum-v1 over several seeds: builds examples/sac_pendulum (Release), runs it once per
# seed and prints a per-seed table (steps, wall time, steps/s, mean return of the last 10
# training episodes, deterministic evaluation return, target met). docs/results.md.
#
#   scripts/sac_pendulum_seeds.sh [--seeds "0 1 2 3 4"] [--steps N] [--jobs 1|2]
#                                 [--out DIR] [--strict] [-- extra sac_pendulum flags...]
#
# --jobs 2 runs two seeds at a time (each run is single-threaded). --strict exits non-zero when
# a seed misses the target (mean of the last 10 episodes >= -200). Results: DIR (default
# <build>/sac-pendulum) holds seed<S>.json and seed<S>.log.
# Environment: PERSIST_BUILD_DIR (default build-release under the repo), PERSIST_JOBS (build).
# Not run by CI (minutes per seed).
set -euo pipefail

seeds="0 1 2 3 4" steps=20000 jobs=1 out="" strict=0 extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seeds) seeds="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --strict) strict=1; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "sac_pendulum_seeds.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$jobs" =~ ^[12]$ ]] || { echo "sac_pendulum_seeds.sh: --jobs must be 1 or 2" >&2; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PERSIST_BUILD_DIR:-$root/build-release}"
out="${out:-$build/sac-pendulum}"
generator=()
command -v ninja >/dev/null && [[ ! -f "$build/CMakeCache.txt" ]] && generator=(-G Ninja)
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DPERSIST_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "${PERSIST_JOBS:-2}" --target sac_pendulum
mkdir -p "$out"

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); $jobs run(s) at a time"
run_seed() {
    local s="$1"
    "$build/examples/sac_pendulum" --seed "$s" --steps "$steps" --json "$out/seed$s.json" \
        "${extra[@]}" >"$out/seed$s.log" 2>&1
    echo "seed $s done: $(tail -2 "$out/seed$s.log" | head -1)"
}
pids=()
for s in $seeds; do
    run_seed "$s" &
    pids+=($!)
    if (( ${#pids[@]} >= jobs )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

python3 - "$out" "$strict" $seeds <<'EOF'
import json, sys
out, strict, seeds = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
rows, failed = [], 0
print("| seed | env steps | updates | wall time (s) | steps/s | mean return, last 10 episodes | deterministic eval (10 episodes) | >= -200 |")
print("|---:|---:|---:|---:|---:|---:|---:|:---:|")
for s in seeds:
    d = json.load(open(f"{out}/seed{s}.json"))
    ok = d["mean_return_last10"] >= -200.0
    failed += not ok
    rows.append(d)
    print(f"| {s} | {d['steps']} | {d['updates']} | {d['wall_time_s']:.1f} | {d['steps_per_s']:.0f} | "
          f"{d['mean_return_last10']:.1f} | {d['eval_mean_return']:.1f} | {'yes' if ok else 'NO'} |")
m = sum(r["mean_return_last10"] for r in rows) / len(rows)
e = sum(r["eval_mean_return"] for r in rows) / len(rows)
print(f"| mean | | | {sum(r['wall_time_s'] for r in rows) / len(rows):.1f} | | {m:.1f} | {e:.1f} | {len(rows) - failed}/{len(rows)} |")
sys.exit(1 if strict and failed else 0)
EOF
