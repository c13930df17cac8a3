#!/usr/bin/env python3
"""PyTorch reference for bench/bench_sac.cpp (BM_SacUpdate): the same SAC update.

Shapes: observation 32, action 2, actor 32 -> H -> H -> 2x2 (mean, log-std), twin critics
34 -> H -> H -> 1, ReLU, float32, batch B; (H, B) in {(256, 256), (64, 64)} by default.

One iteration = one update of the canonical implementation (CleanRL's sac_continuous_action.py
and Stable-Baselines3's SAC, ordered as Haarnoja et al. 2018, Algorithm 1):
  1. with torch.no_grad(): a' ~ pi(.|s'), y = r + gamma (1 - terminated) (min_i Qbar_i(s', a')
     - alpha log pi(a'|s'))
  2. critic loss 0.5 mse(Q1, y) + 0.5 mse(Q2, y); one Adam over both critics: zero_grad,
     backward, step
  3. actor loss mean(alpha log pi(a~|s) - min(Q1, Q2)(s, a~)); Adam zero_grad, backward, step
     (the critics' parameter gradients are computed too, as in CleanRL/SB3, and discarded)
  4. alpha loss -mean(log_alpha (log pi + target_entropy).detach()); Adam zero_grad, backward, step
  5. with torch.no_grad(): Polyak update of both target critics, SB3's
     torch._foreach_mul_(target, 1 - tau); torch._foreach_add_(target, online, alpha=tau)
The tanh-Gaussian actor uses torch.distributions.Normal.rsample and the numerically stable
log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)); log-std squashed into [-5, 2] by tanh.
Adam is torch.optim.Adam with default arguments unless --adam-foreach is given.

Timing: warm-up, then --repeats blocks of iterations, each at least --min-time seconds; the
reported time per update is the median over blocks (min and max kept too). Writes JSON (--out,
else stdout) with the environment: torch version, thread counts, OPENBLAS_CORETYPE and the BLAS
library/kernel actually loaded.

Run with a python that has torch (Debian: /usr/bin/python3 with python3-torch). Debian's
OpenBLAS 0.3.21 does not detect newer AVX-512 CPUs: scripts/bench_sac.sh sets
OPENBLAS_CORETYPE=SkylakeX for this process only.
"""
import argparse
import ctypes
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

OBS, ACT = 32, 2
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class QNetwork(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.fc1 = nn.Linear(OBS + ACT, h)
        self.fc2 = nn.Linear(h, h)
        self.fc3 = nn.Linear(h, 1)

    def forward(self, x, a):
        x = torch.cat([x, a], 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class Actor(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.fc1 = nn.Linear(OBS, h)
        self.fc2 = nn.Linear(h, h)
        self.fc_mean = nn.Linear(h, ACT)
        self.fc_logstd = nn.Linear(h, ACT)

    def get_action(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        mean = self.fc_mean(x)
        log_std = torch.tanh(self.fc_logstd(x))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        normal = torch.distributions.Normal(mean, log_std.exp())
        u = normal.rsample()
        a = torch.tanh(u)
        log_prob = normal.log_prob(u) - 2 * (math.log(2) - u - F.softplus(-2 * u))
        return a, log_prob.sum(1, keepdim=True)


class SAC:
    def __init__(self, h, foreach, gamma=0.99, tau=0.005, lr=3e-4):
        self.actor = Actor(h)
        self.qf1, self.qf2 = QNetwork(h), QNetwork(h)
        self.qf1_target, self.qf2_target = QNetwork(h), QNetwork(h)
        self.qf1_target.load_state_dict(self.qf1.state_dict())
        self.qf2_target.load_state_dict(self.qf2.state_dict())
        kw = {"foreach": True} if foreach else {}
        self.q_opt = torch.optim.Adam(list(self.qf1.parameters()) + list(self.qf2.parameters()), lr=lr, **kw)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr, **kw)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=lr, **kw)
        self.alpha = self.log_alpha.exp().item()
        self.target_entropy = -float(ACT)
        self.gamma, self.tau = gamma, tau
        self.online = list(self.qf1.parameters()) + list(self.qf2.parameters())
        self.target = list(self.qf1_target.parameters()) + list(self.qf2_target.parameters())

    def update(self, obs, act, rew, next_obs, term):
        with torch.no_grad():
            next_a, next_logp = self.actor.get_action(next_obs)
            q_next = torch.min(self.qf1_target(next_obs, next_a), self.qf2_target(next_obs, next_a))
            y = rew + (1 - term) * self.gamma * (q_next - self.alpha * next_logp)
        q1, q2 = self.qf1(obs, act), self.qf2(obs, act)
        qf_loss = 0.5 * F.mse_loss(q1, y) + 0.5 * F.mse_loss(q2, y)
        self.q_opt.zero_grad()
        qf_loss.backward()
        self.q_opt.step()

        pi, logp = self.actor.get_action(obs)
        min_q = torch.min(self.qf1(obs, pi), self.qf2(obs, pi))
        actor_loss = (self.alpha * logp - min_q).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        self.alpha = self.log_alpha.exp().item()

        with torch.no_grad():
            torch._foreach_mul_(self.target, 1.0 - self.tau)
            torch._foreach_add_(self.target, self.online, alpha=self.tau)
        return qf_loss, actor_loss


def blas_info(threads):
    """Which BLAS runs torch's sgemm, and with how many threads (set to `threads`)."""
    info = {"torch_blas_info": None, "libraries": []}
    for tok in torch.__config__.show().replace(",", " ").split():
        if tok.startswith("BLAS_INFO="):
            info["torch_blas_info"] = tok.split("=", 1)[1]
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            path = parts[-1] if len(parts) >= 6 else ""
            if any(k in os.path.basename(path) for k in ("openblas", "libblas", "mkl_rt", "blis")):
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
            entry.update(internal_api="openblas", architecture=lib.openblas_get_corename().decode(),
                         config=lib.openblas_get_config().decode(),
                         num_threads=lib.openblas_get_num_threads())
        info["libraries"].append(entry)
    return info


def time_update(h, b, repeats, min_time, warmup, foreach):
    torch.manual_seed(0)
    agent = SAC(h, foreach)
    obs = torch.rand(b, OBS) * 2 - 1
    next_obs = torch.rand(b, OBS) * 2 - 1
    act = torch.rand(b, ACT) * 2 - 1
    rew = -torch.rand(b, 1)
    term = torch.zeros(b, 1)

    def step():
        agent.update(obs, act, rew, next_obs, term)

    n, t0 = 0, time.perf_counter()
    while n < warmup or time.perf_counter() - t0 < 0.2:
        step()
        n += 1
    per_iter = (time.perf_counter() - t0) / n
    iters = max(1, int(min_time / per_iter))
    blocks, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(iters):
            step()
        blocks.append((time.perf_counter() - t0) / iters)
        cpu.append((time.process_time() - c0) / iters)
    med = statistics.median(blocks)
    return {"H": h, "B": b, "time_us": med * 1e6, "time_us_min": min(blocks) * 1e6,
            "time_us_max": max(blocks) * 1e6, "cpu_time_us": statistics.median(cpu) * 1e6,
            "iterations_per_block": iters, "repeats": repeats, "adam_foreach": foreach}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shapes", nargs="+", default=["256x256", "64x64"], help="HxB pairs")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per timed block")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--adam-foreach", action="store_true", help="torch.optim.Adam(foreach=True)")
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True): flush subnormal floats to zero (FTZ/DAZ)")
    ap.add_argument("--out", help="JSON file (default: stdout)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    flush = torch.set_flush_denormal(True) if args.flush_denormal else False
    env = {
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "torch_num_threads": torch.get_num_threads(),
        "requested_threads": args.threads,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "adam_foreach": args.adam_foreach,
        "flush_denormal": flush,
        "blas": blas_info(args.threads),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }
    results = []
    for shape in args.shapes:
        h, b = (int(v) for v in shape.lower().split("x"))
        r = time_update(h, b, args.repeats, args.min_time, args.warmup, args.adam_foreach)
        print(f"torch SAC update H={h:4d} B={b:4d}: {r['time_us']:10.1f} us (cpu {r['cpu_time_us']:.1f} us)",
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
