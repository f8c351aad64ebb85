"""SB3's predict contract, save/load, evaluate_policy, episode boundaries, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from sb3_helpers import CORES, gridworld_vec, tiny_policy_kwargs
from stable_baselines3.common.evaluation import evaluate_policy

from fwmrl.sb3 import MemoryPolicy, MemoryRecurrentPPO, MemoryStates, RecurrentA2C


def _ppo(core: str, env=None, **policy_extra) -> MemoryRecurrentPPO:
    return MemoryRecurrentPPO(
        "MemoryPolicy",
        env if env is not None else gridworld_vec(),
        n_steps=8,
        batch_size=8,
        n_epochs=1,
        policy_kwargs=tiny_policy_kwargs(core, **policy_extra),
        seed=0,
        device="cpu",
    )


def _rollout(model, obs_seq, starts_seq, state=None):
    """Deterministic predictions along a fixed observation sequence."""
    actions, states = [], []
    for obs, start in zip(obs_seq, starts_seq, strict=True):
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        actions.append(action)
        states.append(state)
    return actions, states


def _observations(env, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    obs = [env.reset()]
    for _ in range(n - 1):
        obs.append(env.step(rng.integers(0, 4, size=env.num_envs))[0])
    return obs


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
@pytest.mark.parametrize("core", CORES)
def test_save_load_identical_predictions(core: str, algo: str, tmp_path) -> None:
    env = gridworld_vec()
    if algo == "ppo":
        model, cls = _ppo(core, env), MemoryRecurrentPPO
    else:
        cls = RecurrentA2C
        model = cls("MemoryPolicy", env, policy_kwargs=tiny_policy_kwargs(core), device="cpu")
    model.learn(32)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = cls.load(path, env=env, device="cpu")
    assert type(loaded.policy) is MemoryPolicy and loaded.policy.core_name == core
    if algo == "ppo":
        assert isinstance(loaded, RecurrentPPO)
        assert loaded.sequence_length == model.sequence_length == 1  # n_steps 8, batch_size 8
    obs = _observations(env, 6)
    starts = [np.ones(2, bool)] + [np.zeros(2, bool)] * 5
    a1, s1 = _rollout(model, obs, starts)
    a2, s2 = _rollout(loaded, obs, starts)
    for x, y in zip(a1, a2, strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(s1[-1], s2[-1], strict=True):
        np.testing.assert_array_equal(x, y)
    # ... and learning continues after loading (the states are rebuilt, not saved).
    loaded.learn(16)
    assert loaded.num_timesteps >= 16


@pytest.mark.parametrize("core", CORES)
def test_episode_start_resets_and_state_matters(core: str) -> None:
    model = _ppo(core)
    policy = model.policy
    # Random, larger parameters so that the state visibly influences the output.
    with th.no_grad():
        for p in policy.parameters():
            p.add_(th.randn_like(p) * 0.5)
    env = gridworld_vec()
    obs = _observations(env, 5)
    _, states = _rollout(model, obs[:4], [np.ones(2, bool)] + [np.zeros(2, bool)] * 3)
    carried = states[-1]
    _, with_start = model.predict(obs[4], state=carried, episode_start=np.ones(2, bool))
    _, without_start = model.predict(obs[4], state=carried, episode_start=np.zeros(2, bool))
    _, fresh = model.predict(obs[4], state=None)
    # episode_start=True gives exactly what a fresh state gives ...
    for x, y in zip(with_start, fresh, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)
    # ... and differs from carrying the memory over the boundary.
    assert any(
        not np.allclose(x, y, atol=1e-6) for x, y in zip(with_start, without_start, strict=True)
    )
    # Resetting only env 0 leaves env 1 as if carried.
    _, mixed = model.predict(obs[4], state=carried, episode_start=np.array([True, False]))
    for m, w, wo in zip(mixed, with_start, without_start, strict=True):
        np.testing.assert_allclose(m[0], w[0], atol=1e-6)
        np.testing.assert_allclose(m[1], wo[1], atol=1e-6)


def test_state_format_is_batch_first_numpy_tuple() -> None:
    model = _ppo("fwm")
    obs = gridworld_vec().reset()
    actions, state = model.predict(obs)
    assert actions.shape == (2,)
    # the actor core's fields only (acting runs no critic, as in sb3-contrib): (pi.h, pi.c, pi.F)
    assert len(state) == 3 and all(isinstance(a, np.ndarray) and a.shape[0] == 2 for a in state)
    assert state[2].shape == (2, 4, 4, 4)
    # The arrays go back in without a copy.
    rebuilt = model.policy.states_from_numpy(state)
    assert rebuilt.vf is None
    assert all(
        t.data_ptr() == a.ctypes.data for (_, t), a in zip(rebuilt.pi.tensors(), state, strict=True)
    )
    # A single (non-vectorised) observation gives a single action and a batch of one.
    action, single = model.predict(obs[0])
    assert np.ndim(action) == 0 and single[0].shape[0] == 1
    # MemoryStates in, MemoryStates out.
    _, ms = model.predict(obs, state=model.policy.initial_state(2))
    assert isinstance(ms, MemoryStates)
    np.testing.assert_allclose(ms.to_numpy()[2], state[2], atol=1e-6)


@pytest.mark.parametrize("critic_memory", ["separate", "shared", "none"])
def test_predict_acts_as_forward_does(critic_memory: str) -> None:
    """predict runs the actor's path only: the same actions and actor states as forward()."""
    model = _ppo("fwm", critic_memory=critic_memory)
    policy = model.policy
    with th.no_grad():
        for p in policy.parameters():
            p.add_(th.randn_like(p) * 0.5)
    obs = _observations(gridworld_vec(), 6)
    states, state = policy.initial_state(2), None
    for t, o in enumerate(obs):
        starts = np.array([t == 0, t in (0, 3)])
        action, state = model.predict(o, state=state, episode_start=starts, deterministic=True)
        with th.no_grad():
            expected, _, _, states = policy(
                th.as_tensor(o), states, th.as_tensor(starts), deterministic=True
            )
        np.testing.assert_array_equal(action, expected.numpy())
        for a, (_, t_ref) in zip(state, states.pi.tensors(), strict=True):
            np.testing.assert_allclose(a, t_ref.numpy(), atol=1e-6)


def test_predict_rejects_bad_states() -> None:
    model = _ppo("lstm")
    obs = gridworld_vec().reset()
    _, state = model.predict(obs)
    with pytest.raises(ValueError, match="'state'"):
        model.predict(obs, state=state[:1])
    with pytest.raises(ValueError, match="'state' holds 1"):
        model.predict(obs, state=tuple(a[:1] for a in state))
    with pytest.raises(ValueError, match="'episode_start'"):
        model.predict(obs, state=state, episode_start=np.ones(3, bool))
    with pytest.raises(ValueError, match=r"field pi.c must have shape \[n_envs, 1, 8\]"):
        model.predict(obs, state=(state[0], state[1][:, :, :4]))
    with pytest.raises(ValueError, match="same n_envs in every field"):
        model.predict(obs, state=(state[0], state[1][:1]))


@pytest.mark.parametrize("core", ["fwm", "mnm_p"])
def test_evaluate_policy_threads_states(core: str) -> None:
    model = _ppo(core)
    env = gridworld_vec(max_steps=6)
    seen = []
    predict = model.predict

    def recording_predict(obs, state=None, episode_start=None, deterministic=False):
        seen.append(state)
        return predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)

    model.predict = recording_predict  # type: ignore[method-assign]
    mean, std = evaluate_policy(model, env, n_eval_episodes=4)
    assert np.isfinite(mean) and np.isfinite(std)
    assert seen[0] is None and all(isinstance(s, tuple) for s in seen[1:])
    assert len(seen) >= 12  # two rounds of 6-step episodes


def test_clear_errors() -> None:
    env = gridworld_vec()
    with pytest.raises(TypeError, match="MemoryRecurrentPPO"):
        RecurrentPPO(MemoryPolicy, env, policy_kwargs=tiny_policy_kwargs("fwm"))
    with pytest.raises(ValueError, match=r"'core' must be one of \['fwm'"):
        _ppo("fwm", env).__class__("MemoryPolicy", env, policy_kwargs={"core": "gru"})
    with pytest.raises(ValueError, match="'critic_memory' must be one of"):
        _ppo("lstm", env, critic_memory="both")
    with pytest.raises(ValueError, match="'sequence_length' must divide n_steps=8"):
        MemoryRecurrentPPO("MemoryPolicy", env, n_steps=8, sequence_length=3)
    with pytest.raises(ValueError, match="'batch_size'"):
        MemoryRecurrentPPO("MemoryPolicy", env, batch_size=0)
    with pytest.raises(
        ValueError,
        match=r"'batch_size' \(steps per minibatch\) must be a multiple of sequence_length=32.*"
        r"got batch_size=48; .* one of \[1, 2, 4, 8, 16\]",
    ):
        MemoryRecurrentPPO("MemoryPolicy", env, n_steps=128, batch_size=48, sequence_length=32)
    with pytest.raises(ValueError, match="'n_steps' must be a positive integer, got 0"):
        MemoryRecurrentPPO("MemoryPolicy", env, n_steps=0)
    with pytest.raises(ValueError, match="'n_steps'"):
        RecurrentA2C("MemoryPolicy", env, n_steps=0)
    from stable_baselines3.common.buffers import RolloutBuffer

    with pytest.raises(TypeError, match="'rollout_buffer_class'"):
        RecurrentA2C("MemoryPolicy", env, rollout_buffer_class=RolloutBuffer)
    with pytest.raises(ValueError, match="input_size"):
        _ppo("lstm", env).__class__(
            "MemoryPolicy", env, policy_kwargs={"core": "lstm", "core_kwargs": {"input_size": 3}}
        )
