"""A2C: returns, next-step autoreset masks, truncated/full-episode BPTT, aux loss, checkpoints."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from fwmrl.agents import compute_advantages
from fwmrl.agents.a2c import NonFiniteLossError
from fwmrl.agents.job import build_agent
from fwmrl.config import ConfigError, load_config

TINY = [
    "env.id=FWM-Gridworld-v0",
    "env.num_envs=3",
    "env.kwargs={size: 5, max_steps: 4}",
    "core.name=fwm",
    "core.hidden_size=8",
    "core.memory_size=4",
    "core.read_hops=1",
    "policy.encoder_sizes=[8]",
    "algo.n_steps=6",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
    "train.progress=false",
]


def tiny(*overrides: str):
    return load_config(None, [*TINY, *overrides])


def _b(*xs):
    return torch.tensor(xs, dtype=torch.bool).unsqueeze(1)


def _f(*xs):
    return torch.tensor(xs, dtype=torch.float32).unsqueeze(1)


def test_returns_terminated_truncated_and_reset_step():
    # steps: 0 normal, 1 truncated, 2 reset step (invalid), 3 normal, 4 terminated
    rewards = _f(1.0, 2.0, 0.0, 3.0, 4.0)
    values = _f(0.5, 0.6, 7.0, 0.8, 0.9, 5.0)  # values[2] = V(final obs of episode 1)
    terminated = _b(False, False, False, False, True)
    truncated = _b(False, True, False, False, False)
    valid = _b(True, True, False, True, True)
    g = 0.9
    adv, ret = compute_advantages(rewards, values, terminated, truncated, valid, g, 1.0)
    # truncated episode bootstraps from V(final obs) = 7.0; terminated one never does (not 5.0)
    assert ret[1, 0] == pytest.approx(2.0 + g * 7.0)
    assert ret[0, 0] == pytest.approx(1.0 + g * (2.0 + g * 7.0))
    assert ret[4, 0] == pytest.approx(4.0)
    assert ret[3, 0] == pytest.approx(3.0 + g * 4.0)
    assert adv[2, 0] == 0.0 and ret[2, 0] == 0.0  # the reset step is not a transition
    assert adv[0, 0] == pytest.approx(ret[0, 0] - 0.5)
    # Monte-Carlo returns: no bootstrap on truncation either
    _, mc = compute_advantages(
        rewards, values, terminated, truncated, valid, g, 1.0, bootstrap_truncated=False
    )
    assert mc[1, 0] == pytest.approx(2.0)
    assert mc[0, 0] == pytest.approx(1.0 + g * 2.0)


def test_gae_lambda_zero_is_one_step_td():
    rewards = _f(1.0, 1.0)
    values = _f(0.2, 0.3, 0.4)
    no = _b(False, False)
    adv, _ = compute_advantages(rewards, values, no, no, ~no, 0.5, 0.0)
    assert adv[0, 0] == pytest.approx(1.0 + 0.5 * 0.3 - 0.2)
    assert adv[1, 0] == pytest.approx(1.0 + 0.5 * 0.4 - 0.3)


def test_rollout_masks_follow_next_step_autoreset():
    agent = build_agent(tiny())
    r = agent.collect_rollout()  # episodes of 4 steps, rollout of 6: step 4 is the reset step
    assert r.obs.shape[:2] == (6, 3)
    assert r.valid[:, 0].tolist() == [True, True, True, True, False, True]
    assert r.truncated[:, 0].tolist() == [False, False, False, True, False, False]
    assert r.starts[:, 0].tolist() == [True, False, False, False, False, True]
    assert r.rewards[4].abs().sum() == 0  # the reset step returns reward 0
    # the reset step was taken from the episode's final observation (time fraction 4/4 = 1)
    assert r.obs[4, :, -1].tolist() == [1.0, 1.0, 1.0]
    assert r.obs[5, :, -1].tolist() == [0.0, 0.0, 0.0]
    assert r.values.shape == (7, 3)
    assert agent.env_steps == 18


def test_no_learning_from_the_reset_transition():
    agent = build_agent(tiny())
    rollout = agent.collect_rollout()
    reset_steps = ~rollout.valid
    assert reset_steps.any()

    def grads(r):
        agent.optimizer.zero_grad()
        state = {k: v.clone() for k, v in agent.policy.state_dict().items()}
        opt = {k: v for k, v in agent.optimizer.state_dict().items()}
        agent.train_on_rollout(r)
        out = [p.detach().clone() for p in agent.policy.parameters()]
        agent.policy.load_state_dict(state)
        agent.optimizer.load_state_dict(opt)
        return out

    before = grads(rollout)
    # change what happened at the reset steps: other actions, a huge reward
    rollout.actions[reset_steps] = (rollout.actions[reset_steps] + 1) % 4
    rollout.rewards[reset_steps] = 1000.0
    after = grads(rollout)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # control: changing a valid step's reward does change the update
    rollout.rewards[0, 0] = 1000.0
    changed = grads(rollout)
    assert not all(torch.equal(a, b) for a, b in zip(before, changed, strict=True))


def test_core_state_is_carried_and_detached_between_rollouts():
    agent = build_agent(tiny("algo.n_steps=3"))
    agent.learn_update()
    carried = agent.state
    second = agent.collect_rollout()
    for (_, a), (_, b) in zip(carried.tensors(), second.initial_state.tensors(), strict=True):
        assert torch.equal(a, b)
        assert not b.requires_grad
    assert not second.starts[0].any()  # mid-episode: the core is not reset at the boundary


def test_episode_mode_runs_each_env_for_one_episode():
    agent = build_agent(
        tiny(
            "env.id=FWM-GraphNav-v0",
            "env.kwargs={max_steps: 7}",
            "algo.n_steps=episode",
            "algo.bootstrap_truncated=false",
        )
    )
    r = agent.collect_rollout()
    assert r.obs.shape[0] == 7 and r.valid.all()
    assert r.starts[0].all() and not r.starts[1:].any()
    assert r.truncated[-1].all()
    metrics = agent.train_on_rollout(r)
    assert np.isfinite(metrics["loss"])
    r2 = agent.collect_rollout()  # a fresh episode: envs reset, state fresh
    assert r2.starts[0].all() and r2.obs.shape[0] == 7


def test_mnm_meta_loss_is_added():
    config = load_config(
        None,
        [*[o for o in TINY if not o.startswith("core.")], "core.name=mnm_p", "core.hidden_size=8"]
        + ["core.key_size=8", "core.memory_size=8"],
    )
    agent = build_agent(config)
    metrics = agent.learn_update()
    assert metrics["aux_loss"] > 0.0
    assert metrics["loss"] == pytest.approx(
        metrics["policy_loss"]
        + 0.5 * metrics["value_loss"]
        - 0.01 * metrics["entropy"]
        + metrics["aux_loss"],
        rel=1e-4,
    )


@pytest.mark.parametrize("core", ["none", "lstm", "gated_fw"])
def test_other_cores_train(core):
    kwargs = {"none": [], "lstm": ["core.hidden_size=8"], "gated_fw": ["core.fast_size=8"]}
    base = [o for o in TINY if not o.startswith("core.")]
    agent = build_agent(load_config(None, [*base, f"core.name={core}", *kwargs[core]]))
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(36)
    assert agent.update == 2
    after = list(agent.policy.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_rmsprop_and_cartpole():
    base = [o for o in TINY if not o.startswith(("env.", "algo.optimizer"))]
    agent = build_agent(load_config(None, [*base, "env.id=CartPole-v1", "algo.optimizer=rmsprop"]))
    assert isinstance(agent.optimizer, torch.optim.RMSprop)
    agent.learn(50)
    assert agent.env_steps >= 50


def test_bad_env_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="env: cannot make 'FWM-Gridworld-v0'.*size"):
        build_agent(tiny("env.kwargs={size: 2}"))
    with pytest.raises(ConfigError, match="Nope-v0"):
        build_agent(tiny("env.id=Nope-v0"))
    gym.register("FWMTest-TextActions-v0", entry_point=TextActionEnv)
    with pytest.raises(ConfigError, match="action space Text.*supported: Discrete, MultiDiscrete"):
        build_agent(tiny("env.id=FWMTest-TextActions-v0", "env.kwargs={}"))


class TextActionEnv(gym.Env):
    """An action space no trainer can take."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Text(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


class NaNRewardEnv(gym.Env):
    """Rewards turn NaN after 12 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    calls = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        NaNRewardEnv.calls += 1
        reward = float("nan") if NaNRewardEnv.calls > 12 else 1.0
        return np.zeros(2, np.float32), reward, False, False, {}


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    from fwmrl.runs import load_checkpoint, train_run

    gym.register("FwmrlTestNaN-v0", entry_point=NaNRewardEnv)
    NaNRewardEnv.calls = 0
    base = [o for o in TINY if not o.startswith(("env.", "algo.n_steps"))]
    config = load_config(
        None,
        [*base, "env.id=FwmrlTestNaN-v0", "env.num_envs=1", "algo.n_steps=5"]
        + ["train.checkpoint_every=1", "train.total_steps=100"],
    )
    with pytest.raises(NonFiniteLossError, match="nan at update 3"):
        train_run(config, tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["update"] == 2


def test_learn_counts_steps_as_sb3():
    """``learn(n)`` trains ``n`` env steps per call: ``reset_num_timesteps=True`` restarts the
    counters and the episodes (fresh envs), ``False`` continues them; a fresh trainer trains the
    same with either."""
    from fwmrl.agents import A2C

    def make() -> A2C:
        return A2C("lstm", "FWM-Gridworld-v0", n_envs=2, n_steps=4, core_kwargs={"hidden_size": 8})

    fresh, kept = make().learn(16), make().learn(16, reset_num_timesteps=False)
    for a, b in zip(fresh.policy.parameters(), kept.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    kept.learn(24, reset_num_timesteps=False)
    assert (kept.env_steps, kept.update) == (40, 5)
    fresh.learn(24)
    assert (fresh.env_steps, fresh.update) == (24, 5)  # updates still count on
    assert fresh.episodes == len(fresh.recent_returns)  # since the reset only
    fresh.learn(0)  # a new run, nothing trained: counters, statistics and episodes start anew
    assert (fresh.env_steps, fresh.episodes, fresh.update) == (0, 0, 5)
    assert not fresh.recent_returns and fresh.starts.all() and not fresh.autoreset.any()
    seen = []
    fresh.learn(100, callback=lambda agent, m: seen.append(m["loss"]) or len(seen) < 3)
    assert len(seen) == 3 and fresh.env_steps == 24
    for bad in (1.5, -8, True):
        with pytest.raises(ConfigError, match="total_timesteps"):
            fresh.learn(bad)  # type: ignore[arg-type]
    fresh.close()
    kept.close()
