#!/usr/bin/env python3
"""Reference trajectories of torch.optim optimizers, LR schedulers and clip_grad_norm_ for the
PERSIST optim/ tests (tests/optim/test_torch_reference.cpp).

Run with Debian's PyTorch (python3-torch):
    /usr/bin/python3 tests/optim/reference/make_torch_reference.py
It rewrites tests/optim/reference/torch_optim.json next to this script. Everything is float64
and single-tensor (foreach=False); the gradient sequence is stored in the fixture, so the C++
test does not depend on torch's random generator.

Per optimizer case: a per-step checksum [sum_i (i+1)|p_i|, sum_i p_i^2] (sums of non-negative
terms, so a relative comparison is meaningful) and the full parameter vector at steps
1, 10, 20, ..., 200.
"""
import json
import math
import os

import torch

N_PARAMS = 6
N_STEPS = 200
SNAPSHOTS = [1] + list(range(10, N_STEPS + 1, 10))
HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_default_dtype(torch.float64)


def gradient_sequence():
    gen = torch.Generator().manual_seed(20240601)
    scales = torch.tensor([1.0, 0.1, 10.0, 1e-3, 3.0, 0.5])
    rows = []
    for t in range(N_STEPS):
        noise = torch.randn(N_PARAMS, generator=gen)
        drift = torch.tensor([0.5 * math.sin(t / 15.0 + i) for i in range(N_PARAMS)])
        g = scales * (noise + drift)
        if t % 17 == 5:
            g[3] = 0.0  # exact zeros: sign(0), zero-gradient paths
        rows.append(g)
    return rows


INIT = [1.0, -0.5, 0.25, 2.0, -3.0, 0.01]

# name, torch class, kwargs (persist option names where they differ are mapped in C++).
CASES = [
    ("sgd_plain", "SGD", dict(lr=0.01)),
    ("sgd_momentum", "SGD", dict(lr=0.01, momentum=0.9)),
    ("sgd_dampening", "SGD", dict(lr=0.01, momentum=0.9, dampening=0.3)),
    ("sgd_nesterov", "SGD", dict(lr=0.01, momentum=0.9, nesterov=True)),
    ("sgd_weight_decay", "SGD", dict(lr=0.01, momentum=0.5, weight_decay=0.1)),
    ("sgd_nesterov_weight_decay", "SGD", dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("adam", "Adam", dict(lr=0.01)),
    ("adam_weight_decay", "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adam_amsgrad", "Adam", dict(lr=0.01, amsgrad=True)),
    ("adamw", "AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("adamw_amsgrad", "AdamW", dict(lr=0.005, betas=(0.85, 0.995), weight_decay=0.02, amsgrad=True)),
    ("radam", "RAdam", dict(lr=0.01)),
    ("radam_weight_decay", "RAdam", dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)),
    ("rmsprop", "RMSprop", dict(lr=0.001)),
    ("rmsprop_centered", "RMSprop", dict(lr=0.001, alpha=0.9, centered=True)),
    ("rmsprop_momentum", "RMSprop", dict(lr=0.001, momentum=0.9)),
    ("rmsprop_centered_momentum_wd", "RMSprop",
     dict(lr=0.002, alpha=0.95, eps=1e-6, momentum=0.5, centered=True, weight_decay=0.05)),
    # A schedule driving the optimizer's lr (set before each step).
    ("sgd_momentum_sgdr", "SGD", dict(lr=0.05, momentum=0.9)),
    ("adamw_warmup_cosine", "AdamW", dict(lr=0.01, weight_decay=0.05)),
]

CASE_SCHEDULES = {
    "sgd_momentum_sgdr": dict(type="CosineWarmRestarts", lr=0.05, eta_min=0.001, t0=15, t_mult=2),
    "adamw_warmup_cosine": dict(type="WarmupCosine", lr=0.01, start_factor=0.1, warmup_steps=20,
                                eta_min=1e-4, t0=50, t_mult=1),
}


def make_scheduler(opt, spec):
    S = torch.optim.lr_scheduler
    if spec is None:
        return None
    if spec["type"] == "CosineWarmRestarts":
        return S.CosineAnnealingWarmRestarts(opt, T_0=spec["t0"], T_mult=spec["t_mult"],
                                             eta_min=spec["eta_min"])
    if spec["type"] == "LinearWarmup":
        return S.LinearLR(opt, start_factor=spec["start_factor"], end_factor=1.0,
                          total_iters=spec["warmup_steps"])
    if spec["type"] == "WarmupCosine":
        warm = S.LinearLR(opt, start_factor=spec["start_factor"], end_factor=1.0,
                          total_iters=spec["warmup_steps"])
        cos = S.CosineAnnealingWarmRestarts(opt, T_0=spec["t0"], T_mult=spec["t_mult"],
                                            eta_min=spec["eta_min"])
        return S.SequentialLR(opt, [warm, cos], milestones=[spec["warmup_steps"]])
    raise ValueError(spec["type"])


def checksum(p):
    w = torch.arange(1, N_PARAMS + 1, dtype=torch.float64)
    return [float((w * p.abs()).sum()), float((p * p).sum())]


def run_case(name, cls, kwargs, grads):
    p = torch.nn.Parameter(torch.tensor(INIT))
    opt = getattr(torch.optim, cls)([p], foreach=False, **kwargs)
    sched = make_scheduler(opt, CASE_SCHEDULES.get(name))
    sums, snaps, lrs = [], [], []
    for t in range(N_STEPS):
        p.grad = grads[t].clone()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
        sums.append(checksum(p.detach()))
        if t + 1 in SNAPSHOTS:
            snaps.append(p.detach().tolist())
    options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    case = dict(name=name, optimizer=cls, options=options, checksums=sums, snapshots=snaps)
    if name in CASE_SCHEDULES:
        case["schedule"] = CASE_SCHEDULES[name]
        case["lrs"] = lrs
    return case


def schedule_sequences():
    out = []
    specs = [
        ("sgdr_tmult2", 0.1, dict(type="CosineWarmRestarts", lr=0.1, eta_min=1e-4, t0=10, t_mult=2), 200),
        ("sgdr_tmult1", 0.1, dict(type="CosineWarmRestarts", lr=0.1, eta_min=0.0, t0=7, t_mult=1), 60),
        ("sgdr_tmult3", 2.0, dict(type="CosineWarmRestarts", lr=2.0, eta_min=0.5, t0=3, t_mult=3), 150),
        ("linear_warmup", 0.1, dict(type="LinearWarmup", lr=0.1, start_factor=0.25, warmup_steps=8), 30),
        ("warmup_cosine", 0.1, dict(type="WarmupCosine", lr=0.1, start_factor=0.1, warmup_steps=10,
                                    eta_min=1e-3, t0=20, t_mult=2), 200),
    ]
    for name, base, spec, steps in specs:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=base)
        sched = make_scheduler(opt, spec)
        lrs = []
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out.append(dict(name=name, schedule=spec, lrs=lrs))
    return out


def clip_cases():
    gen = torch.Generator().manual_seed(7)
    out = []
    for k, (scale, max_norm, norm_type) in enumerate([
            (1.0, 1.0, 2.0), (10.0, 1.0, 2.0), (0.01, 1.0, 2.0), (5.0, 0.5, math.inf),
            (5.0, 2.0, 1.0), (3.0, 1.5, 3.0), (1e-3, 1e-2, 2.0), (0.0, 1.0, 2.0)]):
        g = scale * torch.randn(9, generator=gen)
        p = torch.nn.Parameter(torch.zeros(9))
        p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_([p], max_norm, norm_type=norm_type)
        out.append(dict(grads=g.tolist(), max_norm=max_norm,
                        norm_type="inf" if math.isinf(norm_type) else norm_type,
                        total_norm=float(total), clipped=p.grad.tolist()))
    return out


def main():
    grads = gradient_sequence()
    fixture = dict(
        generator="tests/optim/reference/make_torch_reference.py",
        torch_version=torch.__version__,
        n_params=N_PARAMS, n_steps=N_STEPS, snapshot_steps=SNAPSHOTS, init=INIT,
        grads=[g.tolist() for g in grads],
        cases=[run_case(n, c, k, grads) for n, c, k in CASES],
        schedules=schedule_sequences(),
        clip=clip_cases(),
    )
    path = os.path.join(HERE, "torch_optim.json")
    with open(path, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(fixture['cases'])} optimizer cases)")


if __name__ == "__main__":
    main()
