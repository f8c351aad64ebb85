"""``algo.baseline: batch_mean`` computes what the FWM authors' meta-RL code computes.

Their loss (``metaRL/train_agent.py``) subtracts values of shape ``[B, 1]`` from returns of shape
``[B]``, which broadcasts to ``[B, B]``: every return is compared with every env's value. These tests
write that broadcast out and check that fwmrl's batch-mean baseline gives the same policy loss and the
same value-loss gradient.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fwmrl.agents.job import build_agent
from fwmrl.config import load_config
from fwmrl.errors import ConfigError

GRAPHNAV = str(Path(__file__).resolve().parents[2] / "configs/graphnav_fwm_paper.yaml")


def discounted(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    returns, running = torch.zeros_like(rewards), torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def test_batch_mean_baseline_matches_the_authors_broadcast_loss():
    config = load_config(GRAPHNAV, ["env.num_envs=6", "algo.baseline=batch_mean"])
    trainer = build_agent(config)
    rollout = trainer.collect_rollout()
    assert bool(rollout.valid.all())  # 30-step episodes: every step of every env is valid
    advantages, targets = trainer.advantages(rollout)
    values = rollout.values[:-1]
    returns = discounted(rollout.rewards, config.algo.gamma)  # Monte-Carlo, no bootstrap

    torch.testing.assert_close(advantages, returns - values.mean(1, keepdim=True))
    torch.testing.assert_close(targets, returns.mean(1, keepdim=True).expand_as(returns))

    # the authors' per-step terms with their [B] - [B, 1] broadcast: ctr[i, j] = R_j - V_i
    log_probs = torch.randn_like(returns)
    ctr = returns.unsqueeze(1) - values.unsqueeze(2)  # [T, B(i), B(j)]
    authors_policy = -(log_probs.unsqueeze(1) * ctr).mean((1, 2)).mean()
    ours_policy = -(advantages * log_probs).mean()
    torch.testing.assert_close(ours_policy, authors_policy)

    v = values.clone().requires_grad_(True)
    ((returns.unsqueeze(1) - v.unsqueeze(2)) ** 2).mean((1, 2)).mean().backward()
    authors_grad = v.grad
    v = values.clone().requires_grad_(True)
    ((targets - v) ** 2).mean().backward()
    torch.testing.assert_close(v.grad, authors_grad)
    trainer.close()


def test_critic_baseline_is_the_default_and_differs():
    config = load_config(GRAPHNAV, ["env.num_envs=6"])
    assert config.algo.baseline == "critic"
    trainer = build_agent(config)
    rollout = trainer.collect_rollout()
    advantages, targets = trainer.advantages(rollout)
    returns = discounted(rollout.rewards, config.algo.gamma)
    torch.testing.assert_close(targets, returns)
    torch.testing.assert_close(advantages, returns - rollout.values[:-1])
    trainer.close()


def test_batch_mean_baseline_is_refused_for_ppo():
    with pytest.raises(ConfigError, match="baseline"):
        load_config(GRAPHNAV, ["algo.name=ppo", "algo.baseline=batch_mean"])
