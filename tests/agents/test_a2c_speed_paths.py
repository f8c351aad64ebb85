"""A2C's fast paths: low-rank FWM episodes give the dense path's updates; the CDF sampler samples the
categorical distribution; episode bookkeeping in bulk."""

from __future__ import annotations

import numpy as np
import torch

from fwmrl.agents import A2C
from fwmrl.agents.job import build_agent
from fwmrl.config import load_config
from fwmrl.memory.fwm import FWMLowRankState, FWMState

GRAPHNAV = [
    "env.id=FWM-GraphNav-v0",
    "env.num_envs=6",
    "env.kwargs={graphs: train, max_steps: 8}",
    "core.name=fwm",
    "core.hidden_size=8",
    "core.memory_size=8",  # up to 21 writes in factor form; an episode makes 8
    "core.read_hops=2",
    "policy.encoder_sizes=[]",
    "algo.n_steps=episode",
    "algo.max_episode_steps=20",
    "algo.bootstrap_truncated=false",
    "algo.gae_lambda=1.0",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
    "train.progress=false",
]


def agent(*overrides: str) -> A2C:
    return build_agent(load_config(None, [*GRAPHNAV, *overrides]))


def test_lowrank_episodes_give_the_dense_updates() -> None:
    fast, dense = agent(), agent("core.state_form=dense")
    assert isinstance(fast.state, FWMLowRankState) and isinstance(dense.state, FWMState)
    for _ in range(3):
        rollout_fast, rollout_dense = fast.collect_rollout(), dense.collect_rollout()
        torch.testing.assert_close(rollout_fast.actions, rollout_dense.actions, rtol=0, atol=0)
        torch.testing.assert_close(rollout_fast.values, rollout_dense.values, rtol=1e-4, atol=1e-5)
        metrics_fast = fast.train_on_rollout(rollout_fast)
        metrics_dense = dense.train_on_rollout(rollout_dense)
        assert abs(metrics_fast["loss"] - metrics_dense["loss"]) < 1e-4
    assert isinstance(fast.state, FWMLowRankState) and fast.state.k1.shape[1] == 8
    for p_fast, p_dense in zip(fast.policy.parameters(), dense.policy.parameters(), strict=True):
        torch.testing.assert_close(p_fast, p_dense, rtol=1e-4, atol=1e-5)
    # the parameters did move: the comparison is not between two untouched models
    moved = agent()
    assert any(
        not torch.equal(a, b)
        for a, b in zip(fast.policy.parameters(), moved.policy.parameters(), strict=True)
    )


def test_cdf_sampler_follows_the_probabilities_and_skips_impossible_actions() -> None:
    a2c = agent()
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    logits = probs.log().expand(20_000, 4)  # log 0 = -inf: action 1 is impossible
    actions = a2c._sample(logits)
    counts = torch.bincount(actions, minlength=4).double() / len(actions)
    assert counts[1] == 0
    torch.testing.assert_close(counts, probs.double(), rtol=0, atol=0.015)
    again = agent()._sample(logits)
    assert torch.equal(actions, again)  # seeded by train.seed


def test_episode_bookkeeping_records_every_finished_episode_in_env_order() -> None:
    a2c = agent()
    a2c.episode_return[:] = np.arange(6, dtype=float)
    a2c.episode_length[:] = 3
    ended = np.array([True, False, True, True, False, True])
    valid = np.array([True, True, True, False, True, True])
    a2c._track_episodes(np.ones(6), ended, valid)
    assert list(a2c.recent_returns) == [1.0, 3.0, 6.0]
    assert list(a2c.recent_lengths) == [4, 4, 4] and a2c.episodes == 3
    assert a2c.episode_return.tolist() == [0.0, 2.0, 0.0, 3.0, 5.0, 0.0]  # env 3: not valid
