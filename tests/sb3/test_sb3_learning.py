"""Every core learns a few hundred steps with MemoryRecurrentPPO and RecurrentA2C, on
FWM-Gridworld-v0 and MiniGrid-MemoryS7-v0; the rollout is recomputed exactly from the stored
sequence-start states."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from sb3_helpers import CORES, gridworld_vec, minigrid_vec, tiny_policy_kwargs

from fwmrl.sb3 import MemoryRecurrentPPO, RecurrentA2C
from fwmrl.sb3.ppo import default_sequence_length

ENVS = {"gridworld": gridworld_vec, "minigrid": minigrid_vec}


def _make(algo: str, env, core: str, **extra):
    if algo == "ppo":
        return MemoryRecurrentPPO(
            "MemoryPolicy",
            env,
            n_steps=16,
            batch_size=16,
            n_epochs=2,
            sequence_length=8,
            policy_kwargs=tiny_policy_kwargs(core),
            seed=0,
            device="cpu",
            **extra,
        )
    return RecurrentA2C(
        "MemoryPolicy",
        env,
        n_steps=8,
        policy_kwargs=tiny_policy_kwargs(core),
        seed=0,
        device="cpu",
        **extra,
    )


@pytest.mark.parametrize("env_name", list(ENVS))
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
@pytest.mark.parametrize("core", CORES)
def test_learns_a_few_hundred_steps(core: str, algo: str, env_name: str) -> None:
    model = _make(algo, ENVS[env_name](), core)
    before = {k: v.clone() for k, v in model.policy.memory_actor.state_dict().items()}
    model.learn(total_timesteps=192)
    assert model.num_timesteps >= 192
    assert isinstance(model, RecurrentPPO) == (algo == "ppo")
    after = model.policy.memory_actor.state_dict()
    changed = [k for k in before if not th.equal(before[k], after[k])]
    assert changed, "training did not update the memory core"
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    # The states carried across rollouts are the core's and hold one entry per environment.
    assert model._last_states is not None and model._last_states.batch_size == model.n_envs


@pytest.mark.parametrize("core", CORES)
def test_sequences_recompute_the_rollout(core: str) -> None:
    """Re-running the cores from the states stored at sequence starts reproduces the values and
    log-probabilities of the rollout, across episode boundaries inside sequences."""
    env = gridworld_vec(n_envs=3, max_steps=5)  # episodes of 5 steps inside sequences of 8
    model = _make("ppo", env, core)
    checked = []

    def check_instead_of_training() -> None:
        buffer = model.rollout_buffer
        assert buffer.episode_starts[1:].any(), "the test needs episode starts inside the rollout"
        with th.no_grad():
            for batch in buffer.get(batch_size=None):
                values, log_prob, _, aux = model.policy.evaluate_sequences(
                    batch.observations, batch.actions, batch.states, batch.episode_starts
                )
                # the pass returns its cores' auxiliary loss: MNM's meta loss, a positive scalar
                assert (aux is not None and aux.shape == () and aux > 0) == core.startswith("mnm")
                # float32: the sequence pass and the step-by-step rollout sum in different
                # orders (gated FW differs by ~1e-5); a wrong stored state is off by ~1e-1.
                np.testing.assert_allclose(values, batch.old_values, rtol=1e-4, atol=1e-4)
                np.testing.assert_allclose(log_prob, batch.old_log_prob, rtol=1e-4, atol=1e-4)
                checked.append(batch.episode_starts.shape)

    model.train = check_instead_of_training  # type: ignore[method-assign]
    model.learn(total_timesteps=2 * 16 * 3)
    assert checked and checked[0] == (8, 2 * 3)  # 8 steps, 2 sequences per env


@pytest.mark.parametrize(
    ("n_steps", "batch_size", "n_envs", "expected"),
    [
        (128, 128, 8, 16),  # the constructor's defaults: 8 sequences of 16 steps
        (128, None, 8, 128),  # one minibatch of the whole rollout: 8 sequences of 128
        (128, 64, 1, 8),
        (100, 100, 4, 10),  # 10 of 10
        (128, 4096, 8, 128),  # minibatch larger than the rollout: the rollout's 8 sequences
        (16, 8, 2, 1),  # no divisor leaves 8 sequences of 2 steps or more
    ],
)
def test_default_sequence_length(n_steps, batch_size, n_envs, expected) -> None:
    assert default_sequence_length(n_steps, batch_size, n_envs) == expected


def test_default_minibatches_hold_many_sequences() -> None:
    """With the constructor's defaults every minibatch is 8 sequences of 16 steps, not one of 128."""
    model = MemoryRecurrentPPO(
        "MemoryPolicy", gridworld_vec(n_envs=8), policy_kwargs=tiny_policy_kwargs("fwm")
    )
    assert (model.n_steps, model.batch_size, model.n_epochs) == (128, 128, 10)
    assert model.sequence_length == 16
    shapes = []

    def record_minibatches() -> None:
        for batch in model.rollout_buffer.get(model.batch_size):
            shapes.append(batch.episode_starts.shape)
            assert batch.states.batch_size == batch.episode_starts.shape[1]

    model.train = record_minibatches  # type: ignore[method-assign]
    model.learn(8 * 128)
    assert shapes == [(16, 8)] * 8
    # An explicit value is kept: the previous default, one 128-step sequence per minibatch.
    old = MemoryRecurrentPPO(
        "MemoryPolicy",
        gridworld_vec(n_envs=8),
        sequence_length=128,
        policy_kwargs=tiny_policy_kwargs("fwm"),
    )
    assert old.sequence_length == 128 and old.rollout_buffer.minibatch_sequences(128) == 1


@pytest.mark.parametrize("critic_memory", ["separate", "shared", "none"])
def test_truncated_episodes_bootstrap_from_the_critic(critic_memory: str) -> None:
    """All envs truncated at one step are valued in one critic-only pass; each value equals the
    full forward pass of that env alone, and it is added (discounted) to the env's reward."""
    env = gridworld_vec(n_envs=3, max_steps=5)  # every env is truncated at step 5
    model = MemoryRecurrentPPO(
        "MemoryPolicy",
        env,
        n_steps=8,
        batch_size=8,
        n_epochs=1,
        policy_kwargs=tiny_policy_kwargs("fwm", critic_memory=critic_memory),
        seed=0,
        device="cpu",
    )
    policy = model.policy
    raw_rewards, calls = [], []
    env_step, predict_values = env.step, policy.predict_values

    def recording_step(actions):
        out = env_step(actions)
        raw_rewards.append(out[1].copy())
        return out

    def recording_values(obs, states, starts):
        values = predict_values(obs, states, starts)
        calls.append((obs, states, starts, values))
        return values

    env.step = recording_step  # type: ignore[method-assign]
    policy.predict_values = recording_values  # type: ignore[method-assign]
    model.train = lambda: None  # type: ignore[method-assign]
    model.learn(8 * 3)
    assert len(calls) == 2  # the truncation at step 5 (index 4) and the rollout's end
    obs, states, starts, values = calls[0]
    assert values.shape == (3, 1) and not starts.any()
    with th.no_grad():
        for i in range(3):
            _, alone, _, _ = policy(obs[i : i + 1], states[i], starts[i : i + 1])
            np.testing.assert_allclose(values[i], alone[0], rtol=1e-5, atol=1e-6)
    expected = raw_rewards[4] + model.gamma * values.flatten().numpy()
    np.testing.assert_allclose(model.rollout_buffer.rewards[4], expected, rtol=1e-6)
    assert not np.allclose(model.rollout_buffer.rewards[4], raw_rewards[4])


@pytest.mark.parametrize("critic_memory", ["shared", "none"])
def test_critic_memory_modes_learn(critic_memory: str) -> None:
    env = gridworld_vec()
    kwargs = tiny_policy_kwargs("fwm", critic_memory=critic_memory)
    model = RecurrentA2C("MemoryPolicy", env, n_steps=8, policy_kwargs=kwargs, device="cpu")
    model.learn(64)
    assert model.policy.memory_critic is None
    assert model._last_states.vf is None
    assert (model.policy.critic_projection is None) == (critic_memory == "shared")


def test_a2c_uses_sb3_a2c_defaults() -> None:
    model = RecurrentA2C("MemoryPolicy", gridworld_vec(), policy_kwargs=tiny_policy_kwargs("lstm"))
    optimizer = model.policy.optimizer
    assert isinstance(optimizer, th.optim.RMSprop)
    group = optimizer.param_groups[0]
    assert (group["alpha"], group["eps"], group["lr"]) == (0.99, 1e-5, 7e-4)
    assert (model.n_steps, model.gae_lambda, model.ent_coef, model.vf_coef) == (5, 1.0, 0.0, 0.5)
    assert model.max_grad_norm == 0.5


def test_multi_input_policy_learns_on_dict_observations() -> None:
    from sb3_helpers import DictObsWrapper
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, wrapper_class=DictObsWrapper)
    model = MemoryRecurrentPPO(
        "MultiInputMemoryPolicy",
        env,
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        policy_kwargs=tiny_policy_kwargs("mnm_p"),
        device="cpu",
    )
    model.learn(64)
    obs = env.reset()
    actions, state = model.predict(obs)
    assert actions.shape == (2,)
    assert all(a.shape[0] == 2 for a in state)
