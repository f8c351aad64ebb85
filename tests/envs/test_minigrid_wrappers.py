"""MiniGrid observation wrappers and the make helpers."""

import warnings

import gymnasium as gym
import minigrid  # noqa: F401
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from fwmrl.envs import FlatMiniGridObs, GridworldVectorEnv, make_env, make_vec_env

MEMORY_IDS = ["MiniGrid-MemoryS7-v0", "MiniGrid-MemoryS13Random-v0", "MiniGrid-MemoryS17Random-v0"]


@pytest.mark.parametrize("env_id", MEMORY_IDS)
def test_flat_observation(env_id):
    env = make_env(env_id)
    assert isinstance(env, FlatMiniGridObs)
    assert env.observation_space.shape == (7 * 7 * 3 + 4,)
    obs, _ = env.reset(seed=0)
    raw = env.unwrapped.gen_obs()
    assert env.observation_space.contains(obs)
    np.testing.assert_array_equal(obs[-4:], np.eye(4)[raw["direction"]])
    assert np.allclose(obs[:-4].reshape(7, 7, 3) * [10, 5, 2], raw["image"])
    for _ in range(20):
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)


def test_one_hot_observation():
    env = make_env("MiniGrid-MemoryS7-v0", one_hot=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (7 * 7 * (11 + 6 + 3) + 4,)
    per_cell = obs[:-4].reshape(49, 20)
    np.testing.assert_array_equal(per_cell.sum(1), 3)


def test_sb3_checker_accepts_wrapped_minigrid():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(FlatMiniGridObs(gym.make("MiniGrid-MemoryS7-v0").unwrapped), warn=True)


def test_make_helpers():
    assert not isinstance(make_env("FWM-Gridworld-v0"), FlatMiniGridObs)
    assert isinstance(make_vec_env("FWM-Gridworld-v0", 3).unwrapped, GridworldVectorEnv)
    vec = make_vec_env("MiniGrid-MemoryS7-v0", 2)
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (2, 151) and obs.dtype == np.float32
    plain = make_vec_env("CartPole-v1", 2)
    assert plain.reset(seed=0)[0].shape == (2, 4)
    with pytest.raises(ValueError, match="image"):
        FlatMiniGridObs(gym.make("CartPole-v1"))
