"""Episode mode checkpoints keep no core state (every collection starts fresh ones), and still
resume exactly."""

from __future__ import annotations

from pathlib import Path

import torch

from fwmrl.agents.a2c import A2C
from fwmrl.agents.job import build_agent
from fwmrl.config import load_config

GRAPHNAV = str(Path(__file__).resolve().parents[2] / "configs/graphnav_fwm_paper.yaml")
SMALL = ["env.num_envs=8", "train.seed=3"]


def trainer() -> A2C:
    return build_agent(load_config(GRAPHNAV, SMALL))


def test_episode_mode_checkpoint_holds_no_core_state_and_resumes_exactly():
    straight = trainer()
    for _ in range(4):
        straight.learn_update()

    first = trainer()
    for _ in range(2):
        first.learn_update()
    assert first.state.memory.writes == 30  # the last episode's 30 writes are carried ...
    saved = first.state_dict()
    assert saved["rollout"]["core_state"] == {}
    first.close()

    resumed = trainer()
    resumed.load_state_dict(saved)
    for _ in range(2):
        resumed.learn_update()
    for a, b in zip(straight.policy.parameters(), resumed.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.env_steps == straight.env_steps
