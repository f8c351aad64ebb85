"""Environment throughput: steps per second with random actions, single and batched.

Usage: ``.venv/bin/python benchmarks/envs.py [--seconds 1.5]``

Prints a Markdown table: for every fwmrl env, the single env built by ``gym.make`` (random actions,
reset at episode end) and the natively batched env at 1, 64 and 1024 sub-environments
(``gym.make_vec(..., vectorization_mode="vector_entry_point")``, env-steps per second), next to
``MiniGrid-MemoryS7-v0`` measured the same way in the same run. Random actions are drawn before
timing, so the numbers measure the environments only.
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid ids)
import numpy as np

import fwmrl  # noqa: F401  (registers the fwmrl ids)
from fwmrl.envs import ENV_IDS

BATCH_SIZES = (1, 64, 1024)
MINIGRID_ID = "MiniGrid-MemoryS7-v0"


def single_steps_per_second(env_id: str, seconds: float) -> float:
    """Steps per second of one ``gym.make`` env under random actions."""
    env = gym.make(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(env.action_space.n, size=4096).tolist()
    steps, start = 0, time.perf_counter()
    while True:
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        steps += len(actions)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def batched_steps_per_second(env_id: str, num_envs: int, seconds: float) -> float:
    """Env-steps per second of the natively batched env under random actions."""
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    n_actions = env.single_action_space.n
    actions = np.random.default_rng(0).integers(n_actions, size=(256, num_envs))
    for a in actions[:8]:  # warm-up
        env.step(a)
    steps, start = 0, time.perf_counter()
    while True:
        for a in actions:
            env.step(a)
        steps += actions.size
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    args = parser.parse_args()

    minigrid_sps = single_steps_per_second(MINIGRID_ID, args.seconds)
    rows = []
    for env_id in ENV_IDS:
        single = single_steps_per_second(env_id, args.seconds)
        batched = [batched_steps_per_second(env_id, n, args.seconds) for n in BATCH_SIZES]
        rows.append((env_id, single, batched))

    print(
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, Gymnasium {gym.__version__}; random actions, "
        f"{args.seconds:g} s per measurement.\n"
    )
    head = ["env", "single (steps/s)", "x MiniGrid"]
    for n in BATCH_SIZES:
        head += [f"batched {n} (env-steps/s)", "x MiniGrid"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for env_id, single, batched in rows:
        cells = [env_id, f"{single:,.0f}", f"{single / minigrid_sps:.1f}"]
        for value in batched:
            cells += [f"{value:,.0f}", f"{value / minigrid_sps:.0f}"]
        print("| " + " | ".join(cells) + " |")
    print(f"| {MINIGRID_ID} | {minigrid_sps:,.0f} | 1.0 |" + " - | - |" * len(BATCH_SIZES))


if __name__ == "__main__":
    main()
