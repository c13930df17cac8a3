#!/usr/bin/env python3
"""Merge bench_mlp's Google Benchmark JSON with torch_mlp.py's JSON into one table.

Standard library only. Prints H | B | PERSIST us | PyTorch us | PERSIST GFLOP/s |
PyTorch GFLOP/s | speed-up, the ceilings measured in the same run (Eigen 256^3 SGEMM, FMA
peak) and pass/fail against the targets of docs/benchmarks.md:
  B = 256, H = 256: speed-up >= 1.5;  B <= 32: speed-up >= 10.
Times are wall-clock medians over repetitions (--stat min: the fastest repetition; --clock
cpu: CPU time, for one thread on a machine shared with other work); GFLOP/s = FLOPs per step / that time. Exit status: 0 when
both inputs hold every benchmark, 1 when one is missing or reported an error, 3 with
--strict when a target is missed.

--torch-alt JSON: PyTorch's same step in another configuration (bench_mlp.sh --threads N > 1
passes its 1-thread run): per shape the faster of the two PyTorch times is the reference, and
the row says which configuration it was.
"""
import argparse
import json
import re
import sys

TARGETS = [  # (predicate on (H, B), required speed-up, label)
    (lambda h, b: b == 256 and h == 256, 1.5, "B=256,H=256: >= 1.5x"),
    (lambda h, b: b <= 32, 10.0, "B<=32: >= 10x"),
]
TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def load_persist(path, stat):
    """{name: row} from Google Benchmark JSON: the `stat` aggregate, else the plain run."""
    with open(path) as f:
        doc = json.load(f)
    rows, errors = {}, []
    for r in doc.get("benchmarks", []):
        if r.get("error_occurred"):
            errors.append(f"{r.get('name')}: {r.get('error_message')}")
            continue
        if r.get("run_type") == "aggregate" and r.get("aggregate_name") != stat:
            continue
        name = r.get("run_name", r["name"])
        if name in rows and rows[name].get("run_type") == "aggregate":
            continue  # already have the aggregate
        rows[name] = r
    return doc.get("context", {}), rows, errors


CLOCK = "real_time"


def us(row):
    return row[CLOCK] * TO_US[row.get("time_unit", "ns")]


def gflops(row):
    return row["flops_per_iter"] / us(row) * 1e-3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("persist_json")
    ap.add_argument("torch_json")
    ap.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    ap.add_argument("--torch-alt", help="PyTorch JSON of another thread count; the faster one is used per shape")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--stat", choices=("median", "min"), default="median",
                    help="which statistic over repetitions (default median)")
    ap.add_argument("--clock", choices=("real", "cpu"), default="real",
                    help="wall-clock (default) or CPU time; cpu is only meaningful at one "
                         "thread (PERSIST's CPU time is the main thread's)")
    args = ap.parse_args()

    global CLOCK
    CLOCK = "real_time" if args.clock == "real" else "cpu_time"
    ctx, prow, errors = load_persist(args.persist_json, args.stat)
    with open(args.torch_json) as f:
        tdoc = json.load(f)
    tctx = tdoc["context"]
    trow = {(r["H"], r["B"]): r for r in tdoc["benchmarks"]}
    alt_rows, alt_threads = {}, None
    if args.torch_alt:
        with open(args.torch_alt) as f:
            adoc = json.load(f)
        alt_threads = adoc["context"]["torch_num_threads"]
        alt_rows = {(r["H"], r["B"]): r for r in adoc["benchmarks"]}

    mlp = {}
    for name, r in prow.items():
        m = re.match(r"BM_MlpStep/H:(\d+)/B:(\d+)", name)
        if m:
            mlp[(int(m.group(1)), int(m.group(2)))] = r
    missing = sorted(set(trow) - set(mlp)) + sorted(set(mlp) - set(trow))
    status = 0
    for e in errors:
        print(f"ERROR (PERSIST benchmark): {e}", file=sys.stderr)
        status = 1
    if missing:
        print(f"ERROR: (H, B) measured on one side only: {missing}", file=sys.stderr)
        status = 1
    if not mlp or not trow:
        print("ERROR: no MLP results", file=sys.stderr)
        return 1

    libs = tctx["blas"]["libraries"]
    kernel = ", ".join(sorted({str(l.get("architecture")) for l in libs})) or "?"
    print(f"statistic over repetitions: {args.stat}, clock: {args.clock} time")
    if args.clock == "cpu" and str(ctx.get("persist_threads", "1")) != "1":
        print("WARNING: --clock cpu with more than one thread undercounts PERSIST's time",
              file=sys.stderr)
    print(f"PERSIST threads (MLPOptions::threads): {ctx.get('persist_threads', '?')}   "
          f"PyTorch threads: {tctx['torch_num_threads']}"
          f"{f' or {alt_threads} where faster' if alt_rows else ''}   torch {tctx['torch_version']}   "
          f"OPENBLAS_CORETYPE={tctx.get('OPENBLAS_CORETYPE')}   BLAS kernel: {kernel} "
          f"(via {tctx['blas']['source']})")
    print(f"Eigen {ctx.get('eigen_version', '?')}, {ctx.get('compiler', '?')}, "
          f"SIMD {ctx.get('simd', '?')}, host {ctx.get('host_name', '?')}, "
          f"{ctx.get('num_cpus', '?')} CPUs @ {ctx.get('mhz_per_cpu', '?')} MHz")
    print()

    sep = "|" if args.markdown else " "
    header = ["H", "B", "PERSIST us", "PyTorch us", "PERSIST GFLOP/s", "PyTorch GFLOP/s",
              "speed-up", "target"]
    widths = [4, 4, 11, 11, 15, 15, 9, 22]
    if alt_rows:
        header.append("PyTorch threads")
        widths.append(15)
    line = lambda cells: (sep + sep.join(f" {c:>{w}} " for c, w in zip(cells, widths)) + sep
                          if args.markdown else "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    print(line(header))
    if args.markdown:
        print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    verdicts = []
    for (h, b) in sorted(mlp):
        if (h, b) not in trow:
            continue
        p, t = mlp[(h, b)], trow[(h, b)]
        p_us = us(p)
        t_key = {("real", "median"): "time_us", ("real", "min"): "time_us_min",
                 ("cpu", "median"): "cpu_time_us", ("cpu", "min"): "cpu_time_us_min"}
        t_us = t[t_key[(args.clock, args.stat)]]
        t_threads = tctx["torch_num_threads"]
        if (h, b) in alt_rows and alt_rows[(h, b)][t_key[(args.clock, args.stat)]] < t_us:
            t = alt_rows[(h, b)]
            t_us, t_threads = t[t_key[(args.clock, args.stat)]], alt_threads
        p_gf, t_gf = gflops(p), t["flops_per_iter"] / t_us * 1e-3
        speedup = t_us / p_us
        target = "-"
        for pred, need, label in TARGETS:
            if pred(h, b):
                ok = speedup >= need
                verdicts.append(ok)
                target = f"{'PASS' if ok else 'FAIL'} (>= {need:g}x)"
                break
        cells = [h, b, f"{p_us:.1f}", f"{t_us:.1f}", f"{p_gf:.1f}", f"{t_gf:.1f}", f"{speedup:.2f}x", target]
        if alt_rows:
            cells.append(t_threads)
        print(line(cells))

    print()
    for name, r in sorted(prow.items()):
        if name.startswith("BM_EigenSgemm"):
            print(f"Ceiling: Eigen SGEMM 256^3: {us(r):.1f} us = {gflops(r):.1f} GFLOP/s "
                  f"({ctx.get('persist_threads', '?')} thread(s))")
        elif name.startswith("BM_FmaPeak"):
            print(f"Ceiling: FMA peak, one core, {int(r.get('vector_bits', 0))}-bit: "
                  f"{gflops(r):.1f} GFLOP/s")
    passed = sum(verdicts)
    print(f"\nTargets: {passed}/{len(verdicts)} met")
    if args.strict and passed < len(verdicts):
        status = status or 3
    return status


if __name__ == "__main__":
    sys.exit(main())
