#!/usr/bin/env python3
"""Record Gymnasium reference trajectories for the C++ ports (tests/env/test_classic.cpp).

    python3 tests/env/reference/make_gym_reference.py   # rewrites gym_classic.json next to it

For each environment, episodes through gymnasium.make (so the TimeLimit wrapper truncates as
in real use): reset with a seed, optionally overwrite env.unwrapped.state, then step with
recorded actions until terminated or truncated. Stored per episode: the initial state (float64,
exact repr), the initial observation, every action, observation (float32 values, shortest
repr), reward (float64, exact repr) and the terminated / truncated flags. CI only reads the
JSON (no Python needed); rerun this script when Gymnasium's classic-control code changes.
"""
import json
import math
import pathlib
import sys

import gymnasium as gym
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def f32(v):
    """A float32 value as the shortest decimal that reads back to the same float32."""
    return float(str(np.float32(v)))


def record(env, seed, state, policy):
    obs, _ = env.reset(seed=seed)
    if state is not None:
        env.unwrapped.state = np.array(state, dtype=np.float64)
        obs = np.array(env.unwrapped._get_obs() if hasattr(env.unwrapped, "_get_obs")
                       else env.unwrapped.state, dtype=np.float32)
    ep = {
        "seed": seed,
        "state": [float(s) for s in env.unwrapped.state],
        "obs0": [f32(o) for o in obs],
        "actions": [], "obs": [], "rewards": [], "terminated": [], "truncated": [],
    }
    t = 0
    while True:
        a = policy(obs, t)
        obs, r, term, trunc, _ = env.step(a)
        ep["actions"].append(float(a[0]) if isinstance(a, np.ndarray) else int(a))
        ep["obs"].append([f32(o) for o in obs])
        ep["rewards"].append(float(r))
        ep["terminated"].append(int(term))
        ep["truncated"].append(int(trunc))
        t += 1
        if term or trunc:
            return ep


def pendulum_episodes():
    env = gym.make("Pendulum-v1")
    eps = []
    for e in range(20):
        rng = np.random.default_rng(100 + e)
        state = None
        if e >= 10:  # beyond the reset ranges: large angles and speeds (angle_normalize, clip)
            state = [rng.uniform(-4 * math.pi, 4 * math.pi), rng.uniform(-8.0, 8.0)]
        hi = 2.0 if e % 2 == 0 else 3.0  # odd episodes also probe the torque clip
        pol = lambda obs, t, rng=rng, hi=hi: rng.uniform(-hi, hi, size=(1,)).astype(np.float32)
        eps.append(record(env, 1000 + e, state, pol))
    return eps


def cartpole_episodes():
    env = gym.make("CartPole-v1")
    eps = []
    for e in range(20):
        rng = np.random.default_rng(200 + e)
        if e < 10:  # uniformly random actions: short episodes that terminate
            pol = lambda obs, t, rng=rng: int(rng.integers(0, 2))
        else:  # a noisy balancing controller: long episodes, several truncated at 500
            eps_greedy = 0.05 + 0.03 * (e - 10)

            def pol(obs, t, rng=rng, eg=eps_greedy):
                if rng.uniform() < eg:
                    return int(rng.integers(0, 2))
                x, xd, th, thd = (float(v) for v in obs)
                return int(th + 0.5 * thd + 0.05 * x + 0.1 * xd > 0)
        eps.append(record(env, 2000 + e, None, pol))
    return eps


def main():
    out = {
        "generator": "tests/env/reference/make_gym_reference.py",
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "Pendulum-v1": {"max_episode_steps": 200, "episodes": pendulum_episodes()},
        "CartPole-v1": {"max_episode_steps": 500, "episodes": cartpole_episodes()},
    }
    path = HERE / "gym_classic.json"
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    for name in ("Pendulum-v1", "CartPole-v1"):
        eps = out[name]["episodes"]
        lens = [len(e["actions"]) for e in eps]
        print(f"{name}: {len(eps)} episodes, lengths {lens}, "
              f"truncated {sum(e['truncated'][-1] for e in eps)}")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
