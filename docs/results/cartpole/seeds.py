"""Train one CartPole PPO variant on one seed and score it as the slow test does; one CSV row.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python docs/results/cartpole/seeds.py VARIANT SEED \
        [--config cartpole_lstm_ppo.yaml] [--every 60] [KEY=VALUE ...]

Trains ``configs/CONFIG`` with the overrides and ``train.seed=SEED`` for its
``train.total_steps`` (``agent.learn``, as ``tests/agents/test_ppo_learning.py`` does) and scores
the final policy with ``evaluate_from_config(policy, config, episodes=32)`` (sampled actions,
evaluation seed 12345: the slow test's score). Appends one row to ``seeds.csv`` here (commit,
variant, overrides, seed, env steps, training CPU-s, wall, final eval) and writes the loss terms
of every ``--every``-th update and of the last, with a 16-episode sampled evaluation at the former
(its own generator: the training run is unchanged by it), to ``curves/VARIANT_sSEED.jsonl``.
``--save PATH`` also writes the final policy's weights. ``train_cpu_s`` is the process CPU time of
building and training the agent, without those evaluations.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import time
from pathlib import Path

import torch

from fwmrl.agents.job import build_agent, evaluate_from_config
from fwmrl.config import load_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant")
    parser.add_argument("seed", type=int)
    parser.add_argument("--config", default="cartpole_lstm_ppo.yaml")
    parser.add_argument("--every", type=int, default=60)
    parser.add_argument("--save", help="also write the final policy's state_dict to this path")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    overrides = [*args.overrides, f"train.seed={args.seed}"]
    config = load_config(
        ROOT / "configs" / args.config,
        ["logging.tensorboard=false", "train.progress=false", *overrides],
    )
    torch.set_num_threads(1)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "fwmrl"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    commit += "+dirty" if dirty else ""
    curves = HERE / "curves"
    curves.mkdir(exist_ok=True)
    curve_path = curves / f"{args.variant}_s{args.seed}.jsonl"
    curve_path.unlink(missing_ok=True)
    eval_cpu = 0.0

    keys = ("approx_kl", "clip_fraction", "entropy", "value_loss", "explained_variance")
    keys += ("grad_norm", "episode_return_mean")

    def log(agent, metrics) -> None:
        nonlocal eval_cpu
        last = agent.env_steps >= config.train.total_steps
        if agent.update % args.every and not last:
            return
        row = {"update": agent.update, "steps": agent.env_steps}
        row["lr"] = round(agent.optimizer.param_groups[0]["lr"], 8)
        row.update({k: round(float(metrics[k]), 6) for k in keys if k in metrics})
        if agent.update % args.every == 0:
            before = cpu_s()
            row["eval16"] = evaluate_from_config(agent.policy, config, episodes=16)["return_mean"]
            eval_cpu += cpu_s() - before
        with curve_path.open("a") as out:
            print(json.dumps(row), file=out)

    start_cpu, start = cpu_s(), time.time()
    agent = build_agent(config)
    try:
        agent.learn(config.train.total_steps, callback=log)
        train_cpu = cpu_s() - start_cpu - eval_cpu
        wall = time.time() - start
        result = evaluate_from_config(agent.policy, config, episodes=32)
        steps = agent.env_steps
        if args.save:
            torch.save(agent.policy.state_dict(), args.save)
    finally:
        agent.close()
    row = {
        "commit": commit,
        "variant": args.variant,
        "config": args.config,
        "overrides": " ".join(args.overrides),
        "seed": args.seed,
        "env_steps": steps,
        "train_cpu_s": round(train_cpu, 1),
        "wall_s": round(wall, 1),
        "eval32_sampled": round(result["return_mean"], 2),
        "eval32_std": round(result["return_std"], 2),
    }
    out_path = HERE / "seeds.csv"
    new = not out_path.exists()
    with out_path.open("a", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
