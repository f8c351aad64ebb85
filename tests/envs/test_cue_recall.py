"""FWM-CueRecall-v0: checkers, docstring sections, scoring, the memoryless bound, seeding, state."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import fwmrl  # noqa: F401 (registers the ids)
from fwmrl.envs import CueRecallEnv, EnvStateError

ENV_ID = "FWM-CueRecall-v0"


@pytest.mark.parametrize("kwargs", [{}, {"dim": 4, "delay": 1}, {"dim": 1, "delay": 12}])
def test_gymnasium_and_sb3_checkers_pass_without_warnings(kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ENV_ID, **kwargs).unwrapped)
        sb3_check_env(gym.make(ENV_ID, **kwargs).unwrapped, warn=True)


def test_registered_with_box_spaces_and_docstring_sections() -> None:
    env = gym.make(ENV_ID)
    assert isinstance(env.unwrapped, CueRecallEnv)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert env.observation_space.shape == (4,)
    doc = CueRecallEnv.__doc__
    for section in (
        "Description",
        "Observation",
        "Action",
        "Reward",
        "Termination",
        "Arguments",
        "Registered ids",
    ):
        assert f"## {section}" in doc
    assert ENV_ID in doc


def _episode(env: CueRecallEnv, policy, seed: int | None = None) -> tuple[list, float]:
    obs, _ = env.reset(seed=seed)
    observations, total, done = [obs], 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(env))
        observations.append(obs)
        total += reward
        done = terminated or truncated
    return observations, total


def test_cue_shown_once_then_recall_flag_and_perfect_recall_scores_zero() -> None:
    env = CueRecallEnv(dim=3, delay=4)
    observations, total = _episode(env, lambda e: e.cue, seed=0)
    assert len(observations) == 4 + 2  # delay + 1 steps, and the final observation
    first = observations[0]
    np.testing.assert_array_equal(first[:3], env.cue)
    assert first[3] == 1.0 and first[4] == 0.0
    for obs in observations[1:4]:  # the delay: nothing to see
        assert not obs.any()
    assert observations[4][4] == 1.0 and not observations[4][:4].any()  # the recall step
    assert total == 0.0


def test_only_the_recall_action_counts_and_the_reward_is_minus_the_distance() -> None:
    env = CueRecallEnv(dim=2, delay=2)
    env.reset(seed=1)
    cue = env.cue.copy()
    assert env.step(np.array([5.0, -5.0]))[1] == 0.0  # outside the bounds, ignored
    assert env.step(np.ones(2))[1] == 0.0
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0]))
    expected = -float(np.linalg.norm(np.array([1.0, 0.0]) - cue))
    assert reward == pytest.approx(expected) and info["distance"] == pytest.approx(-expected)
    assert terminated and not truncated
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(np.zeros(2))
    env.reset()
    for _ in range(2):
        env.step(np.zeros(2))
    clipped = env.cue.copy()
    assert env.step(np.array([3.0, -3.0]))[1] == pytest.approx(
        -float(np.linalg.norm(np.array([1.0, -1.0]) - clipped))
    )


def test_a_memoryless_policy_scores_about_minus_the_mean_cue_norm() -> None:
    """The best action without memory is the mean cue 0: about -0.765 for dim 2 (the mean norm
    of a uniform point in the square); any other constant does worse."""
    env = CueRecallEnv()
    zero = [_episode(env, lambda e: np.zeros(2), seed=s)[1] for s in range(2000)]
    shifted = [_episode(env, lambda e: np.full(2, 0.3), seed=s)[1] for s in range(2000)]
    assert np.mean(zero) == pytest.approx(-0.765, abs=0.02)
    assert np.mean(shifted) < np.mean(zero) - 0.03


def test_keep_task_keeps_the_cue_and_seeds_reproduce() -> None:
    env = CueRecallEnv(dim=2)
    env.reset(seed=3)
    cue = env.cue.copy()
    env.reset(options={"keep_task": True})
    np.testing.assert_array_equal(env.cue, cue)
    env.reset()
    assert not np.array_equal(env.cue, cue)
    env.reset(seed=3)
    np.testing.assert_array_equal(env.cue, cue)


def test_bad_arguments_and_actions_name_themselves() -> None:
    with pytest.raises(ValueError, match=r"dim must be an integer in \[1, 64\]"):
        gym.make(ENV_ID, dim=0)
    with pytest.raises(ValueError, match=r"delay must be an integer in \[1, 1000\]"):
        gym.make(ENV_ID, delay=2.5)
    env = CueRecallEnv()
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros(2))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be a finite array of shape \(2,\)"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([np.nan, 0.0]))


def test_state_dict_and_pickle_continue_identically() -> None:
    env = CueRecallEnv(dim=2, delay=3)
    env.reset(seed=5)
    env.step(np.zeros(2))
    clone = CueRecallEnv(dim=2, delay=3)
    clone.load_state_dict(env.state_dict())
    copy = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, 2)
        steps = [e.step(action) for e in (env, clone, copy)]
        for other in steps[1:]:
            np.testing.assert_array_equal(other[0], steps[0][0])
            assert other[1:4] == steps[0][1:4]
        if steps[0][2]:
            obs = [e.reset()[0] for e in (env, clone, copy)]
            np.testing.assert_array_equal(obs[0], obs[1])
            np.testing.assert_array_equal(obs[0], obs[2])
    bad = {**env.state_dict(), "t": np.array(9)}
    with pytest.raises(EnvStateError, match="t: values must lie in"):
        clone.load_state_dict(bad)


def test_ansi_render_shows_the_cue_and_the_recall() -> None:
    env = gym.make(ENV_ID, render_mode="ansi", delay=1)
    env.reset(seed=0)
    assert "cue [" in env.render()
    env.step(np.zeros(2))
    env.step(np.zeros(2))
    assert "recalled: reward" in env.render()
