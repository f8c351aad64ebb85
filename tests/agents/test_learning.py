"""A short real training run shows learning (slow: minutes on 2 shared cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwmrl.config import load_config
from fwmrl.envs import reference_returns
from fwmrl.runs import read_metrics, train_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fwm_agent_beats_random_on_small_gridworld(tmp_path):
    env_kwargs = {"size": 5, "max_steps": 50}
    config = load_config(
        ROOT / "configs/gridworld_fwm.yaml",
        [
            "env.kwargs={size: 5, max_steps: 50}",
            "env.num_envs=32",
            "train.total_steps=100000",
            "train.progress=false",
            "train.plot_at_end=false",
            "train.gif_at_end=false",
            "logging.wandb=disabled",
            "logging.tensorboard=false",
        ],
    )
    train_run(config, tmp_path)
    random = reference_returns(0, 200, **env_kwargs)["random"]  # about 18.5
    final = read_metrics(tmp_path)[-1]["episode_return_mean"]
    assert final > 1.3 * random, (final, random)
