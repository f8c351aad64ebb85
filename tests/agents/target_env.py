"""A one-step continuous-control task for the learning checks of A2C and PPO (imported by tests)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

TARGET = 0.6
TARGET_ENV_ID = "FWMTest-Target-v0"


class TargetEnv(gym.Env):
    """One-step episodes: reward -(a - 0.6)^2 for a scalar Box action in [-1, 1]."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        reward = -float((action[0] - TARGET) ** 2)
        return np.ones(1, np.float32), reward, True, False, {}


if TARGET_ENV_ID not in gym.registry:
    gym.register(TARGET_ENV_ID, entry_point=TargetEnv)
