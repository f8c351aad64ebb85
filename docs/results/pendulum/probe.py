"""Train a Pendulum config with overrides, logging PPO's diagnostics, and evaluate it every K
updates (16 episodes with the mean action and 16 sampled, evaluation seed 12345); one JSON line per
evaluation in probe/LABEL.jsonl, and at the end 32 episodes of each.

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/pendulum/probe.py LABEL CONFIG K [KEY=VALUE ...]

e.g. ``probe.py sep_s0 pendulum_fwm_ppo.yaml 20 policy.critic=separate``. Each line holds the
update's means over the K updates since the last line of ``value_loss``, ``explained_variance``,
``approx_kl``, ``clip_fraction``, ``grad_norm`` and the policy's mean ``log_std``, the
advantage-free return scale (``return_std``: the value normaliser's running std, if any), the
training episodes' mean return and the process CPU time.
"""

import json
import resource
import sys
import time
from pathlib import Path

import torch

from fwmrl.agents.job import build_agent, evaluate_from_config
from fwmrl.config import load_config

ROOT = Path(__file__).resolve().parents[3]
KEYS = ("value_loss", "explained_variance", "approx_kl", "clip_fraction", "grad_norm", "entropy")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    label, name, every, *overrides = sys.argv[1:]
    config = load_config(
        ROOT / "configs" / name, ["logging.tensorboard=false", "train.progress=false", *overrides]
    )
    torch.set_num_threads(1)
    start = time.time()
    agent = build_agent(config)
    out = Path(__file__).parent / "probe" / f"{label}.jsonl"
    out.parent.mkdir(exist_ok=True)
    sums = dict.fromkeys(KEYS, 0.0)
    count = 0

    def row(episodes: int) -> dict:
        mean = evaluate_from_config(agent.policy, config, episodes=episodes, deterministic=True)
        sampled = evaluate_from_config(agent.policy, config, episodes=episodes)
        normalizer = agent.value_normalizer
        return {
            "label": label,
            "update": agent.update,
            "steps": agent.env_steps,
            **{k: sums[k] / max(count, 1) for k in KEYS},
            "log_std": float(agent.policy.log_std.detach().mean())
            if agent.policy.log_std is not None
            else None,
            "return_std": float(normalizer.std) if normalizer is not None else None,
            "train_return": agent.episode_stats().get("episode_return_mean"),
            "eval_mean_action": mean["return_mean"],
            "eval_mean_action_std": mean["return_std"],
            "eval_sampled": sampled["return_mean"],
            "eval_sampled_std": sampled["return_std"],
            "episodes": episodes,
            "wall_s": round(time.time() - start, 1),
            "cpu_s": round(_cpu(), 1),
        }

    with out.open("w") as file:
        while agent.env_steps < config.train.total_steps:
            metrics = agent.learn_update()
            for k in KEYS:
                sums[k] += metrics.get(k, float("nan"))
            count += 1
            last = agent.env_steps >= config.train.total_steps
            if agent.update % int(every) == 0 or last:
                line = row(32 if last else 16)
                sums, count = dict.fromkeys(KEYS, 0.0), 0
                print(json.dumps(line), flush=True)
                file.write(json.dumps(line) + "\n")
                file.flush()
    agent.close()


if __name__ == "__main__":
    main()
