"""RL^2 trials: several episodes of one task as one outer episode.

:class:`Trial` wraps a single env, :class:`VectorTrial` a vector env (each sub-env runs its own
trials, all stepped together); :func:`fwmrl.agents.trial_eval.evaluate_trials` runs a policy for
whole trials and reports each inner episode's return and success.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from fwmrl.envs._validation import check_bool, check_choice, check_int
from fwmrl.envs.vector import BatchedEnv

TASK_MODES = ("keep_task", "seed")


def _action_size(space: spaces.Space) -> int:
    """Entries the previous action takes in the observation (a one-hot for ``Discrete``)."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    raise ValueError(f"prev_action needs a Discrete or Box action space, got {space}")


def _encode_actions(space: spaces.Space, actions: Any, batch: int) -> np.ndarray:
    """``batch`` actions as float32 rows: one-hot for ``Discrete``, clipped and flat for ``Box``."""
    if isinstance(space, spaces.Discrete):
        index = np.asarray(actions, dtype=np.int64).reshape(batch) - int(space.start)
        out = np.zeros((batch, int(space.n)), dtype=np.float32)
        out[np.arange(batch), index] = 1.0
        return out
    flat = np.asarray(actions, dtype=np.float64).reshape(batch, *space.shape)
    return np.clip(flat, space.low, space.high).reshape(batch, -1).astype(np.float32)


def _trial_observation_space(
    obs_space: spaces.Space, action_space: spaces.Space, prev_action: bool, prev_reward: bool
) -> spaces.Box:
    """The inner observation, then the previous action, the previous reward and the ended flag."""
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"env must have a 1-D Box observation space, got {obs_space}")
    low, high = [obs_space.low.astype(np.float32)], [obs_space.high.astype(np.float32)]
    if prev_action:
        size = _action_size(action_space)
        if isinstance(action_space, spaces.Box):
            low.append(action_space.low.reshape(-1).astype(np.float32))
            high.append(action_space.high.reshape(-1).astype(np.float32))
        else:
            low.append(np.zeros(size, np.float32))
            high.append(np.ones(size, np.float32))
    if prev_reward:
        low.append(np.array([-np.inf], np.float32))
        high.append(np.array([np.inf], np.float32))
    low.append(np.zeros(1, np.float32))
    high.append(np.ones(1, np.float32))
    return spaces.Box(np.concatenate(low), np.concatenate(high), dtype=np.float32)


class Trial(gym.Wrapper[np.ndarray, Any, np.ndarray, Any]):
    """Chain ``episodes`` inner episodes of one task into one outer episode (RL^2).

    The agent's memory is meant to persist over the whole outer episode, so it can carry what it
    learned about the task (the hidden goal, the graph) from one inner episode to the next. The
    observation is the inner observation, then (with ``prev_action``) the previous action (one-hot
    for ``Discrete``, the action clipped to the bounds for ``Box``; zeros on a trial's first step),
    then (with ``prev_reward``) the previous reward (0 on a trial's first step), then one entry, 1.0
    on the first observation of every inner episode after the first ("the previous inner episode
    just ended") and 0.0 otherwise. The previous action and reward carry over an inner episode's
    end: the first observation of the next inner episode shows the last action and reward of the one
    that ended.

    When an inner episode ends before the last one, the step returns that step's reward and info,
    the first observation of the next inner episode and ``terminated = truncated = False``. The
    outer episode ends with the last inner episode's ``terminated``/``truncated`` flags.
    ``info["inner_episode"]`` is the index of the current inner episode (after the step).

    Parameters
    ----------
    env
        an env with a 1-D ``Box`` observation space.
    episodes
        inner episodes per trial (>= 1).
    task
        how the task is kept between inner episodes. ``"keep_task"`` (default) resets the inner
        env with ``options={"keep_task": True}``, which every fwmrl env supports (same goal, same
        graph, same Meta-World task). ``"seed"`` draws one seed per trial and resets every inner
        episode with it: for procedurally generated envs such as MiniGrid this repeats the same
        layout and start. The trial seeds come from the wrapper's own generator, seeded by
        ``reset(seed=...)``.
    prev_action
        add the previous action to the observation (``Discrete`` or ``Box`` actions).
    prev_reward
        add the previous reward to the observation.
    """

    def __init__(
        self,
        env: gym.Env,
        episodes: int = 2,
        task: str = "keep_task",
        prev_action: bool = False,
        prev_reward: bool = False,
    ) -> None:
        super().__init__(env)
        self.episodes = check_int("episodes", episodes, 1)
        self.task = check_choice("task", task, TASK_MODES)
        self.prev_action = check_bool("prev_action", prev_action)
        self.prev_reward = check_bool("prev_reward", prev_reward)
        self.observation_space = _trial_observation_space(
            env.observation_space, env.action_space, self.prev_action, self.prev_reward
        )
        if task == "keep_task" and not getattr(env.unwrapped, "supports_keep_task", False):
            raise ValueError(
                "task='keep_task' needs an env that supports reset(options={'keep_task': True}) "
                "(the fwmrl envs); use task='seed' for other envs"
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
        return self._augmented(obs, None, 0.0, 0.0), {**info, "inner_episode": 0}

    def step(self, action: Any) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        """Step the inner env; start its next inner episode when one ends."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and self._inner + 1 < self.episodes:
            self._inner += 1
            if self.task == "seed":
                obs, _ = self.env.reset(seed=self._task_seed)
            else:
                obs, _ = self.env.reset(options={"keep_task": True})
            flagged = self._augmented(obs, action, reward, 1.0)
            return flagged, reward, False, False, {**info, "inner_episode": self._inner}
        return (
            self._augmented(obs, action, reward, 0.0),
            reward,
            terminated,
            truncated,
            {**info, "inner_episode": self._inner},
        )

    def _augmented(self, obs: np.ndarray, action: Any, reward: Any, flag: float) -> np.ndarray:
        parts = [np.asarray(obs, dtype=np.float32).reshape(-1)]
        if self.prev_action:
            if action is None:
                parts.append(np.zeros(_action_size(self.action_space), np.float32))
            else:
                parts.append(_encode_actions(self.action_space, action, 1)[0])
        if self.prev_reward:
            parts.append(np.array([reward], np.float32))
        parts.append(np.array([flag], np.float32))
        return np.concatenate(parts)


def _supports_keep_task(env: VectorEnv) -> bool:
    base = env.unwrapped
    flag = getattr(base, "supports_keep_task", None)
    if flag is not None:
        return bool(flag)
    if isinstance(base, BatchedEnv):  # every fwmrl batched env takes options={"keep_task": True}
        return True
    if isinstance(base, gym.vector.SyncVectorEnv):
        return all(getattr(e.unwrapped, "supports_keep_task", False) for e in base.envs)
    try:
        return all(bool(v) for v in env.get_attr("supports_keep_task"))
    except (AttributeError, NotImplementedError):
        return False


class VectorTrial(VectorWrapper):
    """:class:`Trial` for a vector env: every sub-env runs trials of ``episodes`` inner episodes.

    The observations, rewards and flags are those of a ``SyncVectorEnv`` of :class:`Trial` envs
    (``task="keep_task"``) for the same seeds and actions, and the wrapper autoresets in
    ``AutoresetMode.NEXT_STEP`` like its inner env: when an inner episode that is not the trial's
    last ends, the sub-env is reset at once with ``options={"reset_mask": ..., "keep_task": True}``
    (same task) and returns its first observation with the ended flag set; when a trial's last
    inner episode ends, the sub-env reports ``terminated``/``truncated`` and the inner env's own
    autoreset on the next step starts a new trial with a new task. Infos are the inner env's step
    infos (for a sub-env whose inner episode ended, those of its last step, so e.g. Meta-World's
    ``success`` of that step is kept) plus ``inner_episode``, the current inner episode of each
    sub-env.

    Parameters
    ----------
    env
        a vector env in ``AutoresetMode.NEXT_STEP`` with a 1-D ``Box`` observation space whose
        ``reset`` takes ``options["reset_mask"]`` (Gymnasium's ``SyncVectorEnv`` and
        ``AsyncVectorEnv``, fwmrl's batched envs) and whose sub-envs support
        ``reset(options={"keep_task": True})``.
    episodes
        inner episodes per trial (>= 1).
    prev_action
        add the previous action to the observation (``Discrete`` or ``Box`` actions).
    prev_reward
        add the previous reward to the observation.
    """

    def __init__(
        self,
        env: VectorEnv,
        episodes: int = 2,
        prev_action: bool = False,
        prev_reward: bool = False,
    ) -> None:
        super().__init__(env)
        self.episodes = check_int("episodes", episodes, 1)
        self.prev_action = check_bool("prev_action", prev_action)
        self.prev_reward = check_bool("prev_reward", prev_reward)
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode != AutoresetMode.NEXT_STEP:
            raise ValueError(f"env must autoreset in AutoresetMode.NEXT_STEP, got {mode}")
        if not _supports_keep_task(env):
            raise ValueError(
                "VectorTrial needs sub-envs that support reset(options={'keep_task': True}) "
                "(the fwmrl envs)"
            )
        self.single_observation_space = _trial_observation_space(
            env.single_observation_space,
            env.single_action_space,
            self.prev_action,
            self.prev_reward,
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        n = self.num_envs
        self._inner = np.zeros(n, dtype=np.int64)
        self._trial_ended = np.zeros(n, dtype=bool)
        self._actions = np.zeros(
            (n, _action_size(env.single_action_space) if prev_action else 0), np.float32
        )
        self._rewards = np.zeros(n, dtype=np.float32)

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new trials in all sub-envs (or those in ``options["reset_mask"]``)."""
        mask = None if options is None else options.get("reset_mask")
        obs, infos = self.env.reset(seed=seed, options=options)
        idx = slice(None) if mask is None else np.asarray(mask, dtype=bool)
        self._inner[idx] = 0
        self._trial_ended[idx] = False
        self._actions[idx] = 0.0
        self._rewards[idx] = 0.0
        flags = np.zeros(self.num_envs, dtype=np.float32)
        return self._augmented(obs, flags), {**infos, **self._inner_info()}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env; start the next inner episode of those whose inner episode ended."""
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        terminated = np.array(terminated, dtype=bool)
        truncated = np.array(truncated, dtype=bool)
        starting = self._trial_ended  # the inner env autoreset these: a new trial, a new task
        self._inner[starting] = 0
        if self.prev_action:
            self._actions[:] = _encode_actions(self.single_action_space, actions, self.num_envs)
            self._actions[starting] = 0.0
        self._rewards[:] = np.asarray(rewards, dtype=np.float32)
        self._rewards[starting] = 0.0
        flags = np.zeros(self.num_envs, dtype=np.float32)
        inner_end = (terminated | truncated) & ~starting & (self._inner + 1 < self.episodes)
        if inner_end.any():
            first, _ = self.env.reset(options={"reset_mask": inner_end.copy(), "keep_task": True})
            obs = np.array(obs, copy=True)
            obs[inner_end] = np.asarray(first)[inner_end]
            self._inner[inner_end] += 1
            terminated[inner_end] = False
            truncated[inner_end] = False
            flags[inner_end] = 1.0
        self._trial_ended = terminated | truncated
        return (
            self._augmented(obs, flags),
            rewards,
            terminated,
            truncated,
            {
                **infos,
                **self._inner_info(),
            },
        )

    def _inner_info(self) -> dict[str, np.ndarray]:
        return {
            "inner_episode": self._inner.copy(),
            "_inner_episode": np.ones(self.num_envs, dtype=bool),
        }

    def _augmented(self, obs: Any, flags: np.ndarray) -> np.ndarray:
        parts = [np.asarray(obs, dtype=np.float32).reshape(self.num_envs, -1)]
        if self.prev_action:
            parts.append(self._actions)
        if self.prev_reward:
            parts.append(self._rewards[:, None])
        parts.append(flags[:, None])
        return np.concatenate(parts, axis=1)
