"""Env-steps per second of a Gymnasium env stepped in this process vs in worker processes.

Usage::

    .venv/bin/python benchmarks/vector_envs.py [--env-id MiniGrid-MemoryS7-v0] [--num-envs 8]
        [--seconds 3] [--a2c] [--step-cost-ms 0 1]

For each vectorization of :func:`fwmrl.envs.make_vec_env` (``sync``: a ``SyncVectorEnv`` in this
process; ``async``: a ``gymnasium.vector.AsyncVectorEnv``, one worker process per env) it measures
env-steps per second under random actions (drawn before timing) and, with ``--a2c``, of A2C
training (``fwmrl.agents.A2C``, FWM core, ``env.vectorization`` set accordingly). ``--step-cost-ms``
adds a busy-wait of that many milliseconds to every env step, standing in for an env whose step is
expensive (physics, rendering): worker processes pay off once the step cost outweighs the
inter-process traffic and there are free cores. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np
import torch

from fwmrl.envs import make_env, make_vec_env


class StepCost(gym.Wrapper):
    """Busy-waits ``ms`` milliseconds in every step (a stand-in for an expensive simulator)."""

    def __init__(self, env: gym.Env, ms: float) -> None:
        super().__init__(env)
        self.seconds = ms / 1000.0

    def step(self, action):  # noqa: ANN001, ANN201
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return self.env.step(action)


def _make_vec(env_id: str, num_envs: int, mode: str, step_cost_ms: float) -> gym.vector.VectorEnv:
    if step_cost_ms <= 0:
        return make_vec_env(env_id, num_envs, vectorization=mode)
    fns = [lambda: StepCost(make_env(env_id), step_cost_ms) for _ in range(num_envs)]
    return (gym.vector.AsyncVectorEnv if mode == "async" else gym.vector.SyncVectorEnv)(fns)


def env_steps_per_second(
    env_id: str, num_envs: int, mode: str, seconds: float, step_cost_ms: float = 0.0
) -> float:
    """Env-steps per second of a vector env under random actions (autoreset included)."""
    env = _make_vec(env_id, num_envs, mode, step_cost_ms)
    try:
        env.reset(seed=0)
        actions = np.random.default_rng(0).integers(env.single_action_space.n, size=(256, num_envs))
        for a in actions[:8]:  # warm-up
            env.step(a)
        steps, start = 0, time.perf_counter()
        while True:
            for a in actions:
                env.step(a)
                steps += num_envs
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    return steps / elapsed
    finally:
        env.close()


def a2c_steps_per_second(env_id: str, num_envs: int, mode: str, seconds: float) -> float:
    """Env-steps per second of A2C training (FWM core, 20-step rollouts) on the vector env."""
    try:
        from fwmrl.agents.job import build_agent
    except ImportError:  # a revision before the trainers took objects: A2C(config)
        from fwmrl.agents import A2C as build_agent
    from fwmrl.config import load_config

    config = load_config(
        None,
        [
            f"env.id={env_id}",
            f"env.num_envs={num_envs}",
            f"env.vectorization={mode}",
            "core.name=fwm",
            "core.hidden_size=32",
            "core.memory_size=16",
            "algo.n_steps=20",
        ],
    )
    agent = build_agent(config)
    try:
        agent.learn_update()  # warm-up
        steps, start = agent.env_steps, time.perf_counter()
        while time.perf_counter() - start < seconds:
            agent.learn_update()
        return (agent.env_steps - steps) / (time.perf_counter() - start)
    finally:
        agent.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="MiniGrid-MemoryS7-v0")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[8])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    parser.add_argument("--a2c", action="store_true", help="also time A2C training")
    parser.add_argument(
        "--step-cost-ms", type=float, nargs="+", default=[0.0], help="extra ms per env step"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"{args.env_id}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| measurement | envs | extra step cost | sync (steps/s) | async (steps/s) | async/sync |"
    )
    print("|---|---|---|---|---|---|")
    for num_envs in args.num_envs:
        for cost in args.step_cost_ms:
            sync = env_steps_per_second(args.env_id, num_envs, "sync", args.seconds, cost)
            workers = env_steps_per_second(args.env_id, num_envs, "async", args.seconds, cost)
            print(
                f"| random actions | {num_envs} | {cost:g} ms | {sync:,.0f} | {workers:,.0f} "
                f"| {workers / sync:.2f} |",
                flush=True,
            )
        if args.a2c:
            sync = a2c_steps_per_second(args.env_id, num_envs, "sync", args.seconds)
            workers = a2c_steps_per_second(args.env_id, num_envs, "async", args.seconds)
            print(
                f"| A2C training (FWM) | {num_envs} | 0 ms | {sync:,.0f} | {workers:,.0f} "
                f"| {workers / sync:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
