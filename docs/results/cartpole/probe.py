"""Train a config with overrides and evaluate it every K updates (16 episodes each with the mean /
argmax action and with sampled actions, evaluation seed 12345); one JSON line per evaluation.

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/cartpole/probe.py LABEL CONFIG K [KEY=VALUE ...]

e.g. ``probe.py lstm_s0 cartpole_lstm_ppo.yaml 40 train.seed=0``; writes LABEL.jsonl here. The
runs in probe/ were made with this loop at 9ea75ce (before ``algo.lr_decay_steps`` existed: the
loop set the optimizer's rate to ``lr * (1 - env_steps / ANNEAL)`` before each update, the rule
``lr_decay_steps`` now implements; runs named ``*a_s*`` used it with ANNEAL=60000).
"""

import json
import resource
import sys
import time
from pathlib import Path

import torch

from fwmrl.agents.job import build_agent
from fwmrl.agents.job import evaluate_from_config as evaluate
from fwmrl.config import load_config

ROOT = Path(__file__).resolve().parents[3]
label, name, every, *overrides = sys.argv[1:]
config = load_config(
    ROOT / "configs" / name, ["logging.tensorboard=false", "train.progress=false", *overrides]
)
torch.set_num_threads(1)
start = time.time()
agent = build_agent(config)
out_path = Path(__file__).parent / f"{label}.jsonl"
while agent.env_steps < config.train.total_steps:
    metrics = agent.learn_update()
    if agent.update % int(every) == 0 or agent.env_steps >= config.train.total_steps:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        row = {
            "label": label,
            "update": agent.update,
            "steps": agent.env_steps,
            "det": evaluate(agent.policy, config, episodes=16, deterministic=True)["return_mean"],
            "smp": evaluate(agent.policy, config, episodes=16)["return_mean"],
            "train": agent.episode_stats().get("episode_return_mean", float("nan")),
            "kl": metrics["approx_kl"],
            "ent": metrics["entropy"],
            "ev": metrics["explained_variance"],
            "cpu": usage.ru_utime + usage.ru_stime,
            "wall": time.time() - start,
        }
        with out_path.open("a") as out:
            print(json.dumps(row), file=out)
        print(json.dumps(row), flush=True)
agent.close()
