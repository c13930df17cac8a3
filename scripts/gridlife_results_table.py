#!/usr/bin/env python3
"""Table of scripts/gridlife_results.sh: reads <dir>/{rollout,none,sac}_s<S>.jsonl (+ .time.json)."""
import json
import sys
from pathlib import Path


def load(path):
    eps, summary, evaluation = [], None, None
    for line in path.read_text().splitlines():
        j = json.loads(line)
        t = j.get("type")
        if t == "episode":
            eps.append(j)
        elif t == "summary":
            summary = j
        elif t == "evaluation":
            evaluation = j
    return eps, summary, evaluation


def main():
    out = Path(sys.argv[1])
    seeds = sys.argv[2:]
    names = {"rollout": "PERSIST (LearnedShield)", "none": "SAC, no shield", "sac": "plain SAC (seed config)"}
    rows, totals = [], {}
    for v in ("rollout", "none", "sac"):
        for s in seeds:
            f = out / f"{v}_s{s}.jsonl"
            if not f.exists():
                if v != "sac":
                    print(f"missing {f}", file=sys.stderr)
                continue
            eps, summ, ev = load(f)
            wall = json.loads((out / f"{v}_s{s}.time.json").read_text())["wall_s"]
            viol = sum(1 for e in eps if e["terminated"])
            per = {}
            for e in eps:
                if e["terminated"]:
                    for var in e.get("violated_variables", []):
                        per[var] = per.get(var, 0) + 1
            # After the shield's warm-up (learning_starts 5000 + 500 model updates at 8 per 64 steps
            # = step 9000): which violations remain.
            late = [e for e in eps if e["start_step"] >= 9000 and e["terminated"]]
            late_fast = sum(1 for e in late if any(v in ("temp", "integrity") for v in e.get("violated_variables", [])))
            steps = sum(e["survival_steps"] for e in eps)
            trig = sum(e["shield_trigger_rate"] * e["survival_steps"] for e in eps) / max(steps, 1)
            last = eps[-50:]
            r = dict(variant=v, seed=s, episodes=len(eps), violations=viol,
                     energy=per.get("energy", 0), temp=per.get("temp", 0), integrity=per.get("integrity", 0),
                     train_surv=sum(e["survival_steps"] for e in eps) / max(len(eps), 1),
                     last50=sum(e["survival_steps"] for e in last) / max(len(last), 1),
                     task=sum(e["return_task"] for e in eps) / max(len(eps), 1),
                     eval_surv=ev["mean_survival_steps"] if ev else float("nan"),
                     eval_viol=ev["violations"] if ev else -1, eval_n=ev["episodes"] if ev else 0,
                     horizon=ev["horizon"] if ev else 512, trigger=trig, wall=wall,
                     late=len(late), late_fast=late_fast)
            rows.append(r)
            t = totals.setdefault(v, dict(viol=0, surv=[], eval=[], steps=0, late_fast=0))
            t["viol"] += viol
            t["late_fast"] += late_fast
            t["eval"].append(r["eval_surv"])
            t["surv"].append(r["train_surv"])
    print("| agent | seed | episodes | violations (energy / temp / integrity) | mean survival, training "
          "| last 50 episodes | evaluation survival (violations / episodes) | mean task return | shield trigger rate "
          "| violations after step 9000 (of them temp or integrity) | wall s |")
    print("|---|--:|--:|---|--:|--:|---|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {names[r['variant']]} | {r['seed']} | {r['episodes']} | {r['violations']} "
              f"({r['energy']} / {r['temp']} / {r['integrity']}) | {r['train_surv']:.1f} | {r['last50']:.1f} "
              f"| {r['eval_surv']:.1f} ({100 * r['eval_surv'] / r['horizon']:.0f} %; {r['eval_viol']} / {r['eval_n']}) "
              f"| {r['task']:.2f} | {r['trigger']:.3f} | {r['late']} ({r['late_fast']}) | {r['wall']:.0f} |")
    if "rollout" in totals and "none" in totals:
        a, b = totals["rollout"], totals["none"]
        ratio = b["viol"] / a["viol"] if a["viol"] else float("inf")
        print()
        print(f"Violations during training, all seeds: PERSIST {a['viol']}, SAC {b['viol']}: "
              f"{ratio:.2f}x fewer with the shield (target >= 10x).")
        lf = b["late_fast"] / a["late_fast"] if a["late_fast"] else float("inf")
        print(f"Temperature / integrity violations after the shield's warm-up (step >= 9000): PERSIST "
              f"{a['late_fast']}, SAC {b['late_fast']}: {lf:.2f}x fewer.")
        ea = sum(a["eval"]) / len(a["eval"])
        eb = sum(b["eval"]) / len(b["eval"])
        print(f"Mean evaluation survival: PERSIST {ea:.1f}, SAC {eb:.1f} steps of 512 "
              f"(PERSIST {100 * ea / 512:.0f} % of the horizon; target >= 90 %).")
    if "rollout" in totals and "sac" in totals:
        a, c = totals["rollout"], totals["sac"]
        ratio = c["viol"] / a["viol"] if a["viol"] else float("inf")
        ec = sum(c["eval"]) / len(c["eval"])
        print(f"Against plain SAC (seed config, no demonstrations, no shield): violations PERSIST {a['viol']}, "
              f"SAC {c['viol']}: {ratio:.2f}x fewer (target >= 10x); plain SAC's evaluation survival {ec:.1f} steps "
              f"({100 * ec / 512:.0f} %).")


if __name__ == "__main__":
    main()
