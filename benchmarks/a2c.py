"""Training throughput of fwmrl's A2C with each core on FWM-Gridworld-v0.

Env steps per second of full training updates (collect + returns + forward/backward + Adam), 64 envs,
``n_steps`` 20, the cores as in ``configs/gridworld_<core>.yaml``. Prints a Markdown table.

    .venv/bin/python benchmarks/a2c.py [--envs 64] [--updates 20] [--threads 1] [--only fwm lstm]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from fwmrl.agents.job import build_agent
from fwmrl.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CORES = ["mlp", "lstm", "fwm", "gated_fw", "mnm_p", "mnm_g"]


def measure(core: str, envs: int, updates: int, warmup: int) -> tuple[float, int]:
    """Env steps per second and parameter count of A2C with ``configs/gridworld_<core>.yaml``."""
    config = load_config(
        ROOT / f"configs/gridworld_{core}.yaml",
        [f"env.num_envs={envs}", "logging.wandb=disabled", "train.progress=false"],
    )
    agent = build_agent(config)
    for _ in range(warmup):
        agent.learn_update()
    steps = agent.env_steps
    start = time.perf_counter()
    for _ in range(updates):
        agent.learn_update()
    elapsed = time.perf_counter() - start
    params = sum(p.numel() for p in agent.policy.parameters())
    agent.close()
    return (agent.env_steps - steps) / elapsed, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    parser.add_argument("--only", nargs="+", choices=CORES, default=CORES)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"A2C on FWM-Gridworld-v0 (configs/gridworld_<core>.yaml), {args.envs} envs, n_steps 20, {args.updates} updates, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n"
    )
    print("| core | parameters | env steps/s |")
    print("|---|---:|---:|")
    for core in args.only:
        rate, params = measure(core, args.envs, args.updates, args.warmup)
        print(f"| {core} | {params:,} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
