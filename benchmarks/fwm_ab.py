"""Same-process A/B of FWM speed paths on an A2C config (default: the GraphNav paper protocol).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fwm_ab.py --variant fused [--updates 8]
        [--config graphnav_fwm_paper]

Two agents of the config, seeded alike, alternate updates in one process after two warm-up
updates each: ``A`` runs the code as it is, ``B`` with the speed path named by ``--variant``
switched off on its core (patched on that instance only). Each update's process CPU time
(``time.process_time``: the waits for a core of a loaded machine do not enter it) is split into
collecting and learning; the table gives env steps per CPU second and the ratio A / B. Both
variants see the same machine load in turn, which separate processes cannot promise.

Variants:

- ``fused``: the acting step of :class:`fwmrl.memory.fwm.FWMCore` as one compiled call
  (``fwm_kernel.acting_step``) against the same step as PyTorch operations around the compiled
  FWM step (``B``: ``FWMCore._fused`` returns False).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def _no_fused(agent: Any) -> None:
    agent.policy.core._fused = lambda *args: False


VARIANTS: dict[str, Callable[[Any], None]] = {"fused": _no_fused}
"""``--variant`` name: how agent ``B`` is changed (switching that speed path off)."""


def run(config: str, variant: str, updates: int) -> dict[str, dict[str, float]]:
    """Alternate ``updates`` updates of agents ``A`` (as is) and ``B`` (``variant`` off); per
    agent the env steps and the CPU seconds of collecting and of learning."""
    sys.path.insert(0, str(ROOT))
    from fwmrl.agents.job import build_agent
    from fwmrl.config import load_config

    agents = {}
    for name in ("A", "B"):
        overrides = ["logging.wandb=disabled", "train.progress=false"]
        agents[name] = build_agent(load_config(ROOT / "configs" / f"{config}.yaml", overrides))
    VARIANTS[variant](agents["B"])
    for agent in agents.values():
        for _ in range(2):
            agent.learn_update()
    spent = {name: {"collect": 0.0, "learn": 0.0, "steps": 0.0} for name in agents}
    for _ in range(updates):
        for name, agent in agents.items():
            before, start = agent.env_steps, time.process_time()
            rollout = agent.collect_rollout()
            middle = time.process_time()
            agent.train_on_rollout(rollout)
            spent[name]["collect"] += middle - start
            spent[name]["learn"] += time.process_time() - middle
            spent[name]["steps"] += agent.env_steps - before
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--config", default="graphnav_fwm_paper")
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spent = run(args.config, args.variant, args.updates)
    print(
        f"{args.config}, variant {args.variant!r} (A: on, B: off), {args.updates} alternating "
        f"updates each, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}\n"
    )
    print("| agent | env steps / CPU s | collect CPU s / update | learn CPU s / update |")
    print("|---|---:|---:|---:|")
    rates = {}
    for name, part in spent.items():
        total = part["collect"] + part["learn"]
        rates[name] = part["steps"] / total
        print(
            f"| {name} | {rates[name]:,.0f} | {part['collect'] / args.updates:.4f} "
            f"| {part['learn'] / args.updates:.4f} |"
        )
    print(f"\nA / B: {rates['A'] / rates['B']:.3f}×")


if __name__ == "__main__":
    main()
