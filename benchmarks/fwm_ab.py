"""Same-process A/B of FWM speed paths on an A2C config (default: the GraphNav paper protocol).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fwm_ab.py --variant fused [--updates 8]
        [--config graphnav_fwm_paper]

Two agents of the config, seeded alike, alternate updates in one process (in the order ABBA...)
after two warm-up updates each: ``A`` runs the code as it is, ``B`` with the speed path named by ``--variant``
switched off on its core (patched on that instance only). Each update's process CPU time
(``time.process_time``: the waits for a core of a loaded machine do not enter it) is split into
collecting and learning; the table gives env steps per CPU second and the ratio A / B. Both
variants see the same machine load in turn, which separate processes cannot promise.

Variants:

- ``fused``: the acting step of :class:`fwmrl.memory.fwm.FWMCore` as four batched products
  around the compiled LSTM-cell and memory loops (``FWMCore._fused_step``) against the step as
  PyTorch operations around the compiled FWM step (``B``: ``FWMCore._fused`` returns False).
- ``inplace``: the fused step appending each write to its buffer in place against copying the
  old factors into new tensors at every step (``B``: ``fwm_kernel._factor_buffer`` returns None
  during its updates).
- ``lstm_window``: the controller's windows with gradients (the learning pass) with each step's
  gates as two batched products and the cells in the compiled kernels
  (``FWMCore._controller_window``) against ``torch.lstm_cell`` steps (``B``:
  ``run_lstm_with_resets``).
- ``lstm_cells``: A2C's LSTM-core steps (collecting with their graph recorded, and the backward
  through them) with the gates as two batched products and the cells in the compiled kernels
  (:func:`fwmrl.memory.lstm.compiled_lstm_cells`) against ``torch.lstm_cell`` (``B``: the agent's
  ``_cells`` context is a null context); for the LSTM configs, e.g. ``--config graphnav_lstm``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _no_fused(agent: Any) -> Iterator[None]:
    agent.policy.core._fused = lambda *args: False
    try:
        yield
    finally:
        del agent.policy.core._fused


@contextlib.contextmanager
def _no_inplace(agent: Any) -> Iterator[None]:
    from fwmrl.memory import fwm_kernel

    original = fwm_kernel._factor_buffer
    fwm_kernel._factor_buffer = lambda *args: None
    try:
        yield
    finally:
        fwm_kernel._factor_buffer = original


@contextlib.contextmanager
def _no_lstm_window(agent: Any) -> Iterator[None]:
    from fwmrl.memory.lstm import run_lstm_with_resets

    core = agent.policy.core
    core._controller_window = lambda x, state, resets: run_lstm_with_resets(
        core.controller, x, state.h, state.c, resets
    )
    try:
        yield
    finally:
        del core._controller_window


@contextlib.contextmanager
def _no_lstm_cells(agent: Any) -> Iterator[None]:
    agent._cells = contextlib.nullcontext
    try:
        yield
    finally:
        del agent._cells


VARIANTS: dict[str, Callable[[Any], contextlib.AbstractContextManager[None]]] = {
    "fused": _no_fused,
    "inplace": _no_inplace,
    "lstm_window": _no_lstm_window,
    "lstm_cells": _no_lstm_cells,
}
"""``--variant`` name: a context manager that switches that speed path off for agent ``B``
(entered around each of its updates)."""


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

    def switch(name: str) -> contextlib.AbstractContextManager[None]:
        return VARIANTS[variant](agents[name]) if name == "B" else contextlib.nullcontext()

    for name, agent in agents.items():
        with switch(name):
            for _ in range(2):
                agent.learn_update()
    spent = {name: {"collect": 0.0, "learn": 0.0, "steps": 0.0} for name in agents}
    for round_ in range(updates):
        for name in ("A", "B") if round_ % 2 == 0 else ("B", "A"):  # ABBA: no order bias
            agent = agents[name]
            with switch(name):
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
