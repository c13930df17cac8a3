#!/usr/bin/env python3
"""PyTorch reference for bench/bench_mlp.cpp (BM_MlpStep): the same MLP training step.

Network 32 -> H -> H -> 8 with ReLU, float32, H in {64, 256}, batch B in {1, 32, 256}.
One iteration = model.zero_grad(set_to_none=True) (gradients dropped, so backward writes fresh
ones, like PERSIST's backward with GradMode::overwrite) + forward + backward with a fixed upstream gradient; the input does not require a gradient.

Timing: warm-up, then --repeats blocks of iterations, each block at least --min-time seconds;
the reported time per iteration is the median over blocks (min and max are kept too), in
wall-clock time and in the process's CPU time.
Writes JSON (--out, else stdout) with the environment: torch version, thread counts,
OPENBLAS_CORETYPE and the BLAS library/kernel actually loaded (threadpoolctl when installed,
else OpenBLAS's own openblas_get_corename() through ctypes, else torch.__config__).

Run with a python that has torch (Debian: /usr/bin/python3 with python3-torch). Debian's
OpenBLAS 0.3.21 does not detect newer AVX-512 CPUs: scripts/bench_mlp.sh sets
OPENBLAS_CORETYPE=SkylakeX for this process only.
"""
import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import time

import torch

IN, OUT = 32, 8


def step_flops(h, b):
    """GEMM FLOPs of one step, identical to step_flops() in bench_mlp.cpp."""
    macs_all = IN * h + h * h + OUT * h  # forward and dW of all three layers
    macs_dx = h * h + OUT * h  # dX of layers 2 and 3
    return 2.0 * b * (2.0 * macs_all + macs_dx)


def blas_info(threads):
    """Which BLAS runs torch's sgemm, and with how many threads (set to `threads`)."""
    info = {"torch_blas_info": None, "libraries": [], "source": None}
    cfg = torch.__config__.show()
    for tok in cfg.replace(",", " ").split():
        if tok.startswith("BLAS_INFO="):
            info["torch_blas_info"] = tok.split("=", 1)[1]
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")
        info["libraries"] = [
            {k: d.get(k) for k in ("internal_api", "filepath", "version", "num_threads",
                                    "threading_layer", "architecture")}
            for d in threadpool_info()
        ]
        info["source"] = "threadpoolctl"
        return info
    except ImportError:
        pass
    # Without threadpoolctl: find the BLAS mapped into this process and ask OpenBLAS itself.
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            base = os.path.basename(path)
            if any(k in base for k in ("openblas", "libblas", "mkl_rt", "blis")):
                paths.add(path)
    for path in sorted(paths):
        entry = {"filepath": path}
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | ctypes.RTLD_GLOBAL)
        except OSError:
            info["libraries"].append(entry)
            continue
        if hasattr(lib, "openblas_get_corename"):
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_set_num_threads(ctypes.c_int(threads))
            entry.update(internal_api="openblas",
                         architecture=lib.openblas_get_corename().decode(),
                         config=lib.openblas_get_config().decode(),
                         num_threads=lib.openblas_get_num_threads())
        info["libraries"].append(entry)
    info["source"] = "ctypes" if info["libraries"] else "torch.__config__"
    return info


def time_step(h, b, repeats, min_time, warmup):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(IN, h), torch.nn.ReLU(),
        torch.nn.Linear(h, h), torch.nn.ReLU(),
        torch.nn.Linear(h, OUT))
    x = torch.randn(b, IN)  # row-major batch x features: the same GEMMs, transposed
    g = torch.randn(b, OUT)  # fixed upstream gradient

    def step():
        model.zero_grad(set_to_none=True)
        y = model(x)
        y.backward(g)

    # Warm-up, also used to size a block of iterations to about min_time seconds.
    n, t0 = 0, time.perf_counter()
    while n < warmup or time.perf_counter() - t0 < 0.2:
        step()
        n += 1
    per_iter = (time.perf_counter() - t0) / n
    iters = max(1, int(min_time / per_iter))
    blocks, cpu_blocks = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(iters):
            step()
        blocks.append((time.perf_counter() - t0) / iters)
        cpu_blocks.append((time.process_time() - c0) / iters)
    med = statistics.median(blocks)
    return {
        "H": h, "B": b,
        "time_us": med * 1e6,
        "time_us_min": min(blocks) * 1e6,
        "time_us_max": max(blocks) * 1e6,
        # CPU time of the whole process (all threads): equals wall time on an idle machine at
        # one thread, and stays meaningful when other work shares the cores.
        "cpu_time_us": statistics.median(cpu_blocks) * 1e6,
        "cpu_time_us_min": min(cpu_blocks) * 1e6,
        "iterations_per_block": iters,
        "repeats": repeats,
        "flops_per_iter": step_flops(h, b),
        "gflops": step_flops(h, b) / med * 1e-9,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 32, 256])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per timed block")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--out", help="JSON file (default: stdout)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    env = {
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "torch_num_threads": torch.get_num_threads(),
        "requested_threads": args.threads,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "zero_grad": "zero_grad(set_to_none=True): backward writes fresh gradients",
        "blas": blas_info(args.threads),
        "parallel_info": torch.__config__.parallel_info(),
    }
    results = []
    for h in args.hidden:
        for b in args.batch:
            r = time_step(h, b, args.repeats, args.min_time, args.warmup)
            print(f"torch H={h:4d} B={b:4d}: {r['time_us']:10.1f} us  {r['gflops']:7.2f} GFLOP/s",
                  file=sys.stderr)
            results.append(r)
    doc = json.dumps({"context": env, "benchmarks": results}, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(doc + "\n")
    else:
        print(doc)


if __name__ == "__main__":
    main()
