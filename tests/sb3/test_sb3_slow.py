"""Slow: MemoryRecurrentPPO + FWM solves a recall task that a memoryless MLP policy cannot."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from fwmrl.sb3 import MemoryRecurrentPPO


class CueRecall(gym.Env):
    """Step 0 shows one of two cues, then ``delay`` blank steps, then a query: the action at the
    query must name the cue (+1). A policy without memory scores 0.5 on average."""

    def __init__(self, delay: int = 3) -> None:
        self.delay = delay
        self.observation_space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        obs = np.zeros(4, dtype=np.float32)
        if self._t == 0:
            obs[self._cue] = 1.0
        elif self._t == self.delay + 1:
            obs[3] = 1.0
        else:
            obs[2] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._t, self._cue = 0, int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        query = self._t == self.delay + 1
        reward = float(query and int(action) == self._cue)
        self._t += 1
        return (self._obs() if not query else np.zeros(4, np.float32)), reward, query, False, {}


@pytest.mark.slow
def test_fwm_solves_recall_that_mlp_cannot() -> None:
    th.manual_seed(0)
    env = make_vec_env(CueRecall, n_envs=8, seed=0)
    eval_env = make_vec_env(CueRecall, n_envs=4, seed=123)
    settings = dict(
        n_steps=32,
        batch_size=64,
        n_epochs=4,
        learning_rate=3e-3,
        ent_coef=0.01,
        seed=0,
        device="cpu",
    )
    memory = MemoryRecurrentPPO(
        "MemoryPolicy",
        env,
        sequence_length=8,
        policy_kwargs={
            "core": "fwm",
            "core_kwargs": {"hidden_size": 16, "memory_size": 4, "read_hops": 1},
            "net_arch": [16],
        },
        **settings,
    )
    memory.learn(12_000)
    solved, _ = evaluate_policy(memory, eval_env, n_eval_episodes=100, deterministic=True)
    mlp = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [16]}, **settings)
    mlp.learn(12_000)
    baseline, _ = evaluate_policy(mlp, eval_env, n_eval_episodes=100, deterministic=True)
    assert solved >= 0.9, f"FWM policy solved only {solved:.2f} of recalls"
    assert baseline <= 0.7, f"an MLP should be at chance, got {baseline:.2f}"
