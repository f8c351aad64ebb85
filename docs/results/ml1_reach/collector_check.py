"""A saved ML1-reach run's policy through the training loop's own collector (``collect_rollout``,
no update) on the training tasks: the trials' returns, to compare with ``evaluate_trials``
(docs/results.md, "The FWM runs: unstable, and not an evaluation artefact"):

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/ml1_reach/collector_check.py CKPT CORE SEED

CKPT is a ``scripts/metarl_benchmark.py --checkpoints`` file of ``configs/ml1_reach_fwm.yaml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from metarl_benchmark import CORE_DEFAULTS  # noqa: E402

from fwmrl import rundir  # noqa: E402
from fwmrl.agents.job import build_agent  # noqa: E402
from fwmrl.config import load_config  # noqa: E402


def main() -> None:
    path, core, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    overrides = [f"core.name={core}", *CORE_DEFAULTS[core], f"train.seed={seed}"]
    config = load_config(ROOT / "configs/ml1_reach_fwm.yaml", overrides)
    trainer = build_agent(config)
    try:
        state, _ = rundir.load_progress(path, config)
        trainer.load_state_dict(state)
        trainer.recent_returns.clear()
        rollouts = -(-5000 // int(config.algo.n_steps)) + 2  # one whole trial per env
        for _ in range(rollouts):
            trainer.collect_rollout()
        returns = list(trainer.recent_returns)
        print(
            f"{trainer.env_steps} env steps: {len(returns)} trials, mean {np.mean(returns):.0f} "
            f"per trial, from {min(returns):.0f} to {max(returns):.0f}"
        )
    finally:
        trainer.close()


if __name__ == "__main__":
    main()
