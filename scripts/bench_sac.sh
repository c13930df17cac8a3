#!/usr/bin/env bash
# SAC update benchmark: PERSIST (bench/bench_sac.cpp, Google Benchmark) vs. PyTorch
# (bench/reference/torch_sac.py) and the speed-up per shape.
#
#   scripts/bench_sac.sh [--threads N] [--rounds N] [--wait-idle SECONDS] [--quick] [--adam-foreach] [--markdown]
#
# --threads N (default 1): PERSIST runs with SACOptions::threads = N (N >= 2: the twin critics on
# two threads); PyTorch runs with torch.set_num_threads(N) and N OpenBLAS threads, and, when N > 1,
# also with 1 thread: the speed-up is taken against PyTorch's faster configuration of the two
# (on this 2-core machine Debian's PyTorch is slower with 2 threads than with 1 at 256/256).
#
# Shapes: observation 32, action 2, hidden H x 2, batch B, float, (H, B) = (256, 256), (64, 64).
# Targets (docs/benchmarks.md): >= 2.5x at 256/256, >= 15x at 64/64.
# Builds bench_sac in a Release tree (PERSIST_BENCH_BUILD_DIR, default build-bench); PyTorch runs
# under PERSIST_TORCH_PYTHON (default /usr/bin/python3, Debian's python3-torch) with
# torch.set_num_threads(1), OpenBLAS at 1 thread and, on a CPU with avx512f, OPENBLAS_CORETYPE=
# SkylakeX for that process only (Debian's OpenBLAS 0.3.21 does not recognise newer AVX-512
# CPUs) unless the caller set OPENBLAS_CORETYPE. --rounds N (default 3) alternates the two
# programs N times so that a change of machine load hits both; each side's time is the median
# over rounds of its per-round median over repetitions, and the per-round speed-ups are listed
# too. CPU times are printed next to wall-clock times (on a busy machine wall time includes
# waiting for a core). Results: <build dir>/bench-results/{persist,torch}_sac_r<k>.json.
# Not run by CI (timings on a shared runner mean nothing).
set -euo pipefail

wait_idle=0 quick=0 torch_extra=() markdown=0 rounds=3 threads=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --wait-idle) wait_idle="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        --adam-foreach) torch_extra+=(--adam-foreach); shift ;;
        --markdown) markdown=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "bench_sac.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench_sac.sh: --rounds needs a positive integer" >&2; exit 2; }
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "bench_sac.sh: --threads needs a positive integer" >&2; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PERSIST_BENCH_BUILD_DIR:-$root/build-bench}"
torch_python="${PERSIST_TORCH_PYTHON:-/usr/bin/python3}"
python="${PYTHON:-python3}"
out="$build/bench-results"

generator=()
command -v ninja >/dev/null && [[ ! -f "$build/CMakeCache.txt" ]] && generator=(-G Ninja)
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DPERSIST_BUILD_BENCH=ON -DPERSIST_BUILD_TESTS=OFF -DPERSIST_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target bench_sac
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

gb_flags=(--benchmark_repetitions=5 --benchmark_min_time=0.3)
torch_flags=(--repeats 5 --min-time 0.3)
if (( quick )); then gb_flags=(--benchmark_repetitions=3 --benchmark_min_time=0.05)
                     torch_flags=(--repeats 3 --min-time 0.05); fi

coretype="${OPENBLAS_CORETYPE:-}"
if [[ -z "$coretype" ]] && grep -qw avx512f /proc/cpuinfo; then coretype=SkylakeX; fi
rm -f "$out"/persist_sac_r*.json "$out"/torch_sac_r*.json "$out"/torch1_sac_r*.json
for (( r = 1; r <= rounds; ++r )); do
    echo "== round $r/$rounds: PERSIST ($threads thread(s))"
    PERSIST_BENCH_THREADS=$threads "$build/bench/bench_sac" "${gb_flags[@]}" \
        --benchmark_report_aggregates_only=true \
        --benchmark_out="$out/persist_sac_r$r.json" --benchmark_out_format=json
    echo "== round $r/$rounds: PyTorch (torch.set_num_threads($threads), OPENBLAS_CORETYPE=${coretype:-<auto>})"
    env ${coretype:+OPENBLAS_CORETYPE="$coretype"} OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads \
        "$torch_python" "$root/bench/reference/torch_sac.py" --threads "$threads" "${torch_flags[@]}" \
        "${torch_extra[@]}" --out "$out/torch_sac_r$r.json"
    if (( threads > 1 )); then
        echo "== round $r/$rounds: PyTorch (torch.set_num_threads(1))"
        env ${coretype:+OPENBLAS_CORETYPE="$coretype"} OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
            "$torch_python" "$root/bench/reference/torch_sac.py" --threads 1 "${torch_flags[@]}" \
            "${torch_extra[@]}" --out "$out/torch1_sac_r$r.json"
    fi
done

echo "machine after the run: load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$python" - "$out" "$rounds" "$markdown" "$threads" <<'PY'
import json, os, re, statistics, sys
out, rounds, markdown, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
targets = {(256, 256): 2.5, (64, 64): 15.0}
scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
P, T = {}, {}  # (H, B) -> per round (wall us, cpu us); T: PyTorch's faster configuration
T1, best1 = {}, {}  # with --threads > 1: PyTorch's 1-thread times; rounds in which 1 thread won
for r in range(1, rounds + 1):
    for b in json.load(open(f"{out}/persist_sac_r{r}.json"))["benchmarks"]:
        m = re.match(r"BM_SacUpdate/H:(\d+)/B:(\d+)", b["name"])
        if m and b.get("aggregate_name") == "median":
            k = scale[b.get("time_unit", "ns")]
            P.setdefault((int(m.group(1)), int(m.group(2))), []).append((b["real_time"] * k, b["cpu_time"] * k))
    torch = json.load(open(f"{out}/torch_sac_r{r}.json"))
    one = f"{out}/torch1_sac_r{r}.json"
    alt = {(t["H"], t["B"]): t for t in json.load(open(one))["benchmarks"]} if os.path.exists(one) else {}
    for t in torch["benchmarks"]:
        key = (t["H"], t["B"])
        T.setdefault(key, []).append((t["time_us"], t["cpu_time_us"]))
        if key in alt:  # PyTorch's faster configuration (N threads or 1) of this round
            T1.setdefault(key, []).append(alt[key]["time_us"])
            if alt[key]["time_us"] < t["time_us"]:
                T[key][-1] = (alt[key]["time_us"], alt[key]["cpu_time_us"])
                best1.setdefault(key, 0)
                best1[key] += 1
ctx = torch["context"]
lib = next((l for l in ctx["blas"]["libraries"] if l.get("architecture")), {})
print(f"PERSIST {threads} thread(s); PyTorch {ctx['torch_version']}, {ctx['torch_num_threads']} thread(s)"
      f"{' (or 1 where faster)' if threads > 1 else ''}, BLAS "
      f"{lib.get('filepath', ctx['blas'].get('torch_blas_info'))} ({lib.get('architecture', '?')}), "
      f"OPENBLAS_CORETYPE={ctx['OPENBLAS_CORETYPE']}, Adam foreach={ctx['adam_foreach']}; {rounds} round(s)")
head = ["H", "B", "PERSIST (us)", "PyTorch (us)", "speed-up", "per round", "PERSIST CPU (us)",
        "PyTorch CPU (us)", "speed-up (CPU)", "target", "met"]
rows = []
for key in sorted(P, reverse=True):
    if key not in T:
        continue
    pw, pc = statistics.median(x[0] for x in P[key]), statistics.median(x[1] for x in P[key])
    tw, tc = statistics.median(x[0] for x in T[key]), statistics.median(x[1] for x in T[key])
    per = ", ".join(f"{t[0] / p[0]:.2f}" for p, t in zip(P[key], T[key]))
    tgt = targets.get(key)
    # Google Benchmark's CPU time is the main thread's: with 2 threads only wall time compares.
    cpu = [f"{pc:.0f}", f"{tc:.0f}", f"{tc / pc:.2f}x"] if threads == 1 else ["-", "-", "-"]
    rows.append([key[0], key[1], f"{pw:.0f}", f"{tw:.0f}", f"{tw / pw:.2f}x", per, *cpu, f">= {tgt:g}x" if tgt else "-",
                 ("yes" if tw / pw >= tgt else "NO") if tgt else "-"])
for key in sorted(best1, reverse=True):
    print(f"H={key[0]} B={key[1]}: PyTorch was faster with 1 thread in {best1[key]} of {rounds} round(s) "
          f"(1-thread median {statistics.median(T1[key]):.0f} us)")
if markdown:
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---:" for _ in head) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
else:
    w = [max(len(str(h)), *(len(str(row[i])) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(str(h).rjust(w[i]) for i, h in enumerate(head)))
    for row in rows:
        print("  ".join(str(c).rjust(w[i]) for i, c in enumerate(row)))
PY
