#!/usr/bin/env bash
# GridLife results of issue 4: the shielded PERSIST agent (LearnedShield: internal-model ensemble
# + V_psi trained by the agent, rollout check + CEM projection) against unshielded SAC with the
# same rewards (seed config: lambda_H 0.7, lambda_I 0.3, empowerment), over several seeds.
# Builds examples/gridlife_persist (Release), runs both variants per seed, then prints and writes
# the table (docs/results.md): episode-ending violations during training (per variable), mean
# survival during training, mean survival and violations of evaluation episodes after training
# (deterministic policy, shield on for PERSIST), task return, shield trigger rate, wall time.
#
#   scripts/gridlife_results.sh [--seeds "0 1 2 3 4"] [--steps N] [--jobs 1|2] [--eval N]
#                               [--out DIR] [--demonstrations] [--sac-baseline]
#                               [-- extra gridlife_persist flags...]
#
# --demonstrations: seed Change 4 for both agents. Writes DIR/demos_shield.jsonl (gridlife_demos:
#   30 forager episodes, 20 % random actions, as executed: the shield's models pre-train on them)
#   and DIR/demos_policy.jsonl (300 episodes, 30 % random actions labelled with the forager's
#   choice: behaviour cloning of the policy), and runs both variants with
#   --config examples/configs/gridlife_demos.yaml --demonstrations ... --policy-demonstrations ...
# --sac-baseline: also runs plain SAC ("sac": --shield none with the seed config and none of the
#   extra flags or demonstrations), the issue's unshielded baseline, and reports ratios to it.
#
# Defaults: 60000 steps per run (learning from step 5000, batch 256, 8 gradient steps per 64
# env steps, shield warm-up 500 model updates), 20 evaluation episodes, 2 runs at a time.
# Results: DIR (default <build>/gridlife-results) holds <variant>_s<S>.{log,jsonl} and table.md.
# Environment: PERSIST_BUILD_DIR (default build-release), PERSIST_JOBS (build parallelism).
# Not run by CI (minutes per run).
set -euo pipefail

seeds="0 1 2 3 4" steps=60000 jobs=2 out="" evals=20 extra=() demos=0 baseline=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seeds) seeds="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --eval) evals="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --demonstrations) demos=1; shift ;;
        --sac-baseline) baseline=1; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "gridlife_results.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$jobs" =~ ^[12]$ ]] || { echo "gridlife_results.sh: --jobs must be 1 or 2" >&2; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PERSIST_BUILD_DIR:-$root/build-release}"
out="${out:-$build/gridlife-results}"
generator=()
command -v ninja >/dev/null && [[ ! -f "$build/CMakeCache.txt" ]] && generator=(-G Ninja)
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DPERSIST_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "${PERSIST_JOBS:-2}" --target gridlife_persist gridlife_demos
mkdir -p "$out"
exe="$build/examples/gridlife_persist"
common=(--steps "$steps" --learning-starts 5000 --batch-size 256 --gradient-steps 8 --eval-episodes "$evals" --threads $(( jobs == 2 ? 1 : 0 )) --checkpoint-every 0 --quiet)
if (( demos )); then
    "$build/examples/gridlife_demos" --out "$out/demos_shield.jsonl" --episodes 30 --seed 1 --noise 0.2
    "$build/examples/gridlife_demos" --out "$out/demos_policy.jsonl" --episodes 300 --seed 1 --noise 0.3 --record expert
    extra=(--config "$root/examples/configs/gridlife_demos.yaml" --demonstrations "$out/demos_shield.jsonl"
           --policy-demonstrations "$out/demos_policy.jsonl" "${extra[@]}")
fi

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); $jobs run(s) at a time; $steps steps per run"
run_one() {  # variant seed
    local variant="$1" seed="$2" t0 t1
    t0=$(date +%s.%N)
    if [[ "$variant" == sac ]]; then  # plain SAC: seed config, no extra flags
        "$exe" --shield none --seed "$seed" --metrics "$out/${variant}_s${seed}.jsonl" "${common[@]}" \
            > "$out/${variant}_s${seed}.log" 2>&1
    else
        "$exe" --shield "$variant" --seed "$seed" --metrics "$out/${variant}_s${seed}.jsonl" "${common[@]}" "${extra[@]}" \
            > "$out/${variant}_s${seed}.log" 2>&1
    fi
    t1=$(date +%s.%N)
    echo "{\"wall_s\": $(echo "$t1 - $t0" | bc)}" > "$out/${variant}_s${seed}.time.json"
    echo "  done: $variant seed $seed ($(echo "$t1 - $t0" | bc | cut -d. -f1) s)"
}
variants="rollout none"
(( baseline )) && variants="rollout none sac"
running=0
for s in $seeds; do
    for v in $variants; do
        if (( running >= jobs )); then wait -n; running=$((running - 1)); fi
        run_one "$v" "$s" &
        running=$((running + 1))
    done
done
wait

python3 "$root/scripts/gridlife_results_table.py" "$out" $seeds | tee "$out/table.md"
