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


def _recall_settings(seed: int) -> dict[str, Any]:
    return dict(
        n_steps=32,
        batch_size=64,
        n_epochs=4,
        learning_rate=3e-3,
        ent_coef=0.01,
        seed=seed,
        device="cpu",
    )


@pytest.mark.slow
def test_fwm_solves_recall_that_mlp_cannot() -> None:
    """At 12k steps a seed's FWM policy either solves the recall (1.0) or stays at chance (0.5):
    seeds 0-4 gave 0.51, 1.0, 1.0, 0.51, 0.49 on an AVX-512 machine, where seed 0 had solved it on
    an AVX2 one (the float rounding of torch's kernels alone decides it;
    docs/results/sb3_recall/seeds.py). So six seeds are trained
    and one must solve it; the memoryless MLP stays at chance."""
    eval_env = make_vec_env(CueRecall, n_envs=4, seed=123)
    solved = []
    for seed in range(6):
        th.manual_seed(seed)
        env = make_vec_env(CueRecall, n_envs=8, seed=seed)
        memory = MemoryRecurrentPPO(
            "MemoryPolicy",
            env,
            sequence_length=8,
            policy_kwargs={
                "core": "fwm",
                "core_kwargs": {"hidden_size": 16, "memory_size": 4, "read_hops": 1},
                "net_arch": [16],
            },
            **_recall_settings(seed),
        )
        memory.learn(12_000)
        score, _ = evaluate_policy(memory, eval_env, n_eval_episodes=100, deterministic=True)
        solved.append(round(float(score), 2))
        if score >= 0.9:
            break
    th.manual_seed(0)
    env = make_vec_env(CueRecall, n_envs=8, seed=0)
    mlp = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [16]}, **_recall_settings(0))
    mlp.learn(12_000)
    baseline, _ = evaluate_policy(mlp, eval_env, n_eval_episodes=100, deterministic=True)
    assert max(solved) >= 0.9, f"no FWM seed solved the recall: {solved}"
    assert baseline <= 0.7, f"an MLP should be at chance, got {baseline:.2f}"
