"""Diagnostic GraphNav runs: the paper protocol with the policy head at PyTorch's default initialisation.

fwmrl's policy head starts at orthogonal(0.01) (near-uniform logits); the FWM authors' RL code used
``nn.Linear``'s default. This trains ``configs/graphnav_fwm_paper.yaml`` (plus any ``KEY=VALUE``
overrides, e.g. ``algo.baseline=batch_mean core.tanh_hop_keys=false`` for all of the authors'
choices) with the head re-initialised (``default``) or as is (``small``), and writes one JSON line
every 50 updates (entropy, training return, and every ``EVERY`` updates the mean return of 600
sampled episodes on the test graphs).

    python scripts/graphnav_probe.py OUT.jsonl UPDATES EVERY default|small [KEY=VALUE ...]
"""

from __future__ import annotations

import json
import sys
import time

import torch

from fwmrl.agents.job import build_agent
from fwmrl.agents.job import evaluate_from_config as evaluate
from fwmrl.config import load_config


def main() -> None:
    if len(sys.argv) < 5 or sys.argv[4] not in ("default", "small"):
        sys.exit(__doc__)
    out, updates, every, head = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(1)
    config = load_config("configs/graphnav_fwm_paper.yaml", sys.argv[5:])
    trainer = build_agent(config)
    if head == "default":
        trainer.policy.policy_head.reset_parameters()
    start = time.time()
    with open(out, "w") as f:
        while trainer.update < updates:
            metrics = trainer.learn_update()
            if trainer.update % 50:
                continue
            record = {
                "update": trainer.update,
                "entropy": metrics["entropy"],
                "grad_norm": metrics["grad_norm"],
                "value_loss": metrics["value_loss"],
                **trainer.episode_stats(),
                "time_s": round(time.time() - start),
            }
            if trainer.update % every == 0:
                record["eval"] = evaluate(trainer.policy, config, episodes=600)["return_mean"]
            f.write(json.dumps(record) + "\n")
            f.flush()
    trainer.close()


if __name__ == "__main__":
    main()
