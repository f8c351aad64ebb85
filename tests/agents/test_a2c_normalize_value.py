"""``algo.normalize_value`` under A2C: GAE in reward units, standardised value targets, resume."""

from __future__ import annotations

import pytest
import torch

from fwmrl.agents.a2c import compute_advantages
from fwmrl.agents.job import build_agent
from fwmrl.config import load_config
from fwmrl.runs import atomic_torch_save, load_checkpoint


def _config(flag: str = "true", env: str = "Pendulum-v1", *extra: str):
    return load_config(
        None,
        [
            f"env.id={env}",
            "env.num_envs=4",
            "core.name=lstm",
            "core.hidden_size=8",
            "policy.encoder_sizes=[8]",
            "algo.n_steps=16",
            f"algo.normalize_value={flag}",
            "logging.tensorboard=false",
            "train.progress=false",
            *extra,
        ],
    )


def set_prior(normalizer) -> None:  # noqa: ANN001
    """Statistics of 100 earlier returns: mean -30, variance 16 (std 4)."""
    normalizer.mean = torch.tensor(-30.0, dtype=torch.float64)
    normalizer.var = torch.tensor(16.0, dtype=torch.float64)
    normalizer.count = torch.tensor(100.0, dtype=torch.float64)


def test_gae_in_reward_units_and_the_loss_on_standardised_returns() -> None:
    """PPO inherits :meth:`A2C.advantages`: this also covers its GAE in reward units."""
    agent = build_agent(_config())
    normalizer = agent.value_normalizer
    set_prior(normalizer)
    rollout = agent.collect_rollout()
    advantages, returns = agent.advantages(rollout)
    algo = agent.algo
    expected = compute_advantages(
        rollout.rewards,
        rollout.values * 4.0 - 30.0,
        rollout.terminated,
        rollout.truncated,
        rollout.valid,
        algo.gamma,
        algo.gae_lambda,
        algo.bootstrap_truncated,
    )
    torch.testing.assert_close(advantages, expected[0])
    torch.testing.assert_close(returns, expected[1])
    valid = returns[rollout.valid].double()
    merged = torch.cat([torch.full((100,), -30.0, dtype=torch.float64), valid])
    _, values, _ = agent.policy_outputs(rollout)
    mask = rollout.valid.float()
    terms = agent.train_on_rollout(rollout)
    assert float(normalizer.count) == 100 + int(rollout.valid.sum())
    assert float(normalizer.mean) == pytest.approx(float(merged.mean()), rel=1e-6)
    m2 = 16.0 * 100 + ((merged - merged.mean()) ** 2).sum()  # the prior's spread plus the merge's
    assert float(normalizer.var) == pytest.approx(float(m2 / len(merged)), rel=1e-6)
    standardised = (returns.double() - normalizer.mean) / normalizer.std
    expected_loss = ((standardised.float() - values.detach()) ** 2 * mask).sum() / mask.sum()
    assert terms["value_loss"] == pytest.approx(float(expected_loss), rel=1e-4)
    agent.close()


def test_value_loss_stays_small_on_large_returns() -> None:
    losses = {}
    for flag in ("false", "true"):
        agent = build_agent(_config(flag, "CartPole-v1", "algo.n_steps=64", "algo.gamma=0.99"))
        losses[flag] = [agent.learn_update()["value_loss"] for _ in range(3)]
        agent.close()
    assert min(losses["false"]) > 20.0, losses
    assert max(losses["true"]) < 3.0, losses


def test_statistics_resume_and_a_checkpoint_without_them_is_refused(tmp_path) -> None:
    gridworld = _config("true", "FWM-Gridworld-v0")  # an env whose state the checkpoint holds
    first = build_agent(gridworld)
    for _ in range(2):
        first.learn_update()
    atomic_torch_save({**first.state_dict(), "config": gridworld.to_dict()}, tmp_path / "c.pt")
    resumed = build_agent(gridworld)
    resumed.load_state_dict(load_checkpoint(tmp_path / "c.pt"))
    for key in ("count", "mean", "var"):
        assert torch.equal(
            getattr(first.value_normalizer, key), getattr(resumed.value_normalizer, key)
        )
    assert first.learn_update() == resumed.learn_update()
    plain = build_agent(_config("false", "FWM-Gridworld-v0"))
    assert "value_norm" not in plain.state_dict()
    with pytest.raises(KeyError, match="value_norm: the checkpoint has no return statistics"):
        resumed.load_state_dict(plain.state_dict())
    for agent in (first, resumed, plain):
        agent.close()
