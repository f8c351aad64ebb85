"""The RL^2 ``Trial`` wrapper: several episodes of one task as one outer episode."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fwmrl.envs._validation import check_choice, check_int

TASK_MODES = ("keep_task", "seed")


class Trial(gym.Wrapper[np.ndarray, Any, np.ndarray, Any]):
    """Chain ``episodes`` inner episodes of one task into one outer episode (RL^2).

    The agent's memory is meant to persist over the whole outer episode, so it can carry what it
    learned about the task (the hidden goal, the graph) from one inner episode to the next. The
    observation is the inner observation followed by one entry, 1.0 on the first observation of
    every inner episode after the first ("the previous inner episode just ended") and 0.0 otherwise.
    When an inner episode ends before the last one, the step returns that step's reward, the first
    observation of the next inner episode and ``terminated = truncated = False``. The outer episode
    ends with the last inner episode's ``terminated``/``truncated`` flags. ``info["inner_episode"]``
    is the index of the current inner episode.

    Args:
        env: an env with a 1-D ``Box`` observation space.
        episodes: inner episodes per trial (>= 1).
        task: how the task is kept between inner episodes. ``"keep_task"`` (default) resets the inner
            env with ``options={"keep_task": True}``, which every fwmrl env supports (same goal, same
            graph). ``"seed"`` draws one seed per trial and resets every inner episode with it: for
            procedurally generated envs such as MiniGrid this repeats the same layout and start. The
            trial seeds come from the wrapper's own generator, seeded by ``reset(seed=...)``.
    """

    def __init__(self, env: gym.Env, episodes: int = 2, task: str = "keep_task") -> None:
        super().__init__(env)
        self.episodes = check_int("episodes", episodes, 1)
        self.task = check_choice("task", task, TASK_MODES)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"env must have a 1-D Box observation space, got {space}")
        if task == "keep_task" and not getattr(env.unwrapped, "supports_keep_task", False):
            raise ValueError(
                "task='keep_task' needs an env that supports reset(options={'keep_task': True}) "
                "(the fwmrl envs); use task='seed' for other envs"
            )
        self.observation_space = spaces.Box(
            np.append(space.low, 0.0).astype(np.float32),
            np.append(space.high, 1.0).astype(np.float32),
            dtype=np.float32,
        )
        self._inner = 0
        self._task_seed: int | None = None
        self._trial_rng: np.random.Generator | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a trial: a new task and its first inner episode."""
        if self.task == "seed":
            if seed is not None or self._trial_rng is None:
                self._trial_rng, _ = gym.utils.seeding.np_random(seed)
            self._task_seed = int(self._trial_rng.integers(2**31 - 1))
            seed = self._task_seed
        obs, info = self.env.reset(seed=seed, options=options)
        self._inner = 0
        return self._flagged(obs, 0.0), {**info, "inner_episode": 0}

    def step(self, action: Any) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        """Step the inner env; start its next inner episode when one ends."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and self._inner + 1 < self.episodes:
            self._inner += 1
            if self.task == "seed":
                obs, info = self.env.reset(seed=self._task_seed)
            else:
                obs, info = self.env.reset(options={"keep_task": True})
            return (
                self._flagged(obs, 1.0),
                reward,
                False,
                False,
                {**info, "inner_episode": self._inner},
            )
        return (
            self._flagged(obs, 0.0),
            reward,
            terminated,
            truncated,
            {**info, "inner_episode": self._inner},
        )

    def _flagged(self, obs: np.ndarray, flag: float) -> np.ndarray:
        return np.append(obs, flag).astype(np.float32)
