"""Tiny configurations shared by the SB3 tests (kept small: the suite runs on 2 shared cores)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

import fwmrl  # noqa: F401  (registers the FWM-* ids)
from fwmrl.envs import make_env

CORES = ["lstm", "fwm", "gated_fw", "mnm_g", "mnm_p"]

TINY_CORE_KWARGS: dict[str, dict[str, Any]] = {
    "lstm": {"hidden_size": 8},
    "fwm": {"hidden_size": 8, "memory_size": 4, "read_hops": 1},
    "gated_fw": {"fast_size": 8, "slow_size": 8, "slow_hidden_size": 8},
    "mnm_g": {"hidden_size": 8, "key_size": 4, "memory_size": 8},
    "mnm_p": {"hidden_size": 8, "key_size": 4, "memory_size": 8},
}


def tiny_policy_kwargs(core: str, **extra: Any) -> dict[str, Any]:
    kwargs = dict(TINY_CORE_KWARGS[core])
    return {"core": core, "core_kwargs": kwargs, "net_arch": [8], **extra}


def gridworld_vec(n_envs: int = 2, max_steps: int = 12, seed: int = 0) -> VecEnv:
    return make_vec_env(
        "FWM-Gridworld-v0", n_envs=n_envs, seed=seed, env_kwargs={"max_steps": max_steps}
    )


def minigrid_vec(n_envs: int = 2, seed: int = 0) -> VecEnv:
    return make_vec_env(
        lambda: make_env("MiniGrid-MemoryS7-v0", max_steps=16), n_envs=n_envs, seed=seed
    )


class DictObsWrapper(gym.ObservationWrapper):
    """Box observation -> Dict with the vector and its first entry's sign as a Discrete."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = spaces.Dict(
            {"vec": env.observation_space, "flag": spaces.Discrete(2)}
        )

    def observation(self, observation: np.ndarray) -> dict[str, Any]:
        return {"vec": observation, "flag": int(observation[0] > 0)}
