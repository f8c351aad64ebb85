"""MuJoCo velocity and direction tasks as RL^2 trials: ``FWM-HalfCheetahVel-v0``, ``FWM-HalfCheetahDir-v0``.

The classic continuous meta-RL tasks (MAML, PEARL, VariBAD) on Gymnasium's ``HalfCheetah-v5``
simulation: each task is a hidden target velocity or running direction, drawn once per trial and
kept over its inner episodes. They need MuJoCo (the ``mujoco`` wheel, part of the extra
``fwmrl[metaworld]``); ``import fwmrl`` works without it.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fwmrl.envs._validation import check_float, check_int
from fwmrl.envs.trial import Trial, VectorTrial

INSTALL_HINT = "pip install 'fwmrl[metaworld]' (or pip install mujoco)"


def require_half_cheetah(what: str) -> type:
    """Gymnasium's ``HalfCheetahEnv`` (v5), or an ``ImportError`` saying how to install MuJoCo."""
    try:
        from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
    except (ImportError, gym.error.DependencyNotInstalled) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ImportError(
            f"{what} needs MuJoCo, in the optional extra 'metaworld': {INSTALL_HINT}; "
            f"import failed with: {first}"
        ) from None
    return HalfCheetahEnv


class _HalfCheetahTaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """Shared simulation, truncation and keep-task logic of the HalfCheetah tasks."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 20}
    supports_keep_task = True
    env_id = ""

    def __init__(self, max_steps: int, ctrl_cost_weight: float, render_mode: str | None) -> None:
        cheetah = require_half_cheetah(self.env_id)
        self.max_steps = check_int("max_steps", max_steps, 1)
        self.ctrl_cost_weight = check_float("ctrl_cost_weight", ctrl_cost_weight, 0.0)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self._sim = cheetah(ctrl_cost_weight=self.ctrl_cost_weight, render_mode=render_mode)
        n = self._sim.observation_space.shape[0]
        self.observation_space = spaces.Box(-np.inf, np.inf, (n,), dtype=np.float32)
        low, high = self._sim.action_space.low, self._sim.action_space.high
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        self._has_task = False
        self._t = 0
        self._ended = True

    def _draw_task(self) -> None:
        raise NotImplementedError

    def _task_reward(self, x_velocity: float) -> float:
        raise NotImplementedError

    def _task_info(self) -> dict[str, Any]:
        raise NotImplementedError

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: a new task, or the previous one with ``options={"keep_task": True}``."""
        super().reset(seed=seed)
        if options and options.get("keep_task", False):
            if not self._has_task:
                raise ValueError("options['keep_task'] needs a previous reset")
        else:
            self._draw_task()
            self._has_task = True
        sim_seed = None if seed is None else int(self.np_random.integers(2**31 - 1))
        obs, _ = self._sim.reset(seed=sim_seed)
        self._t = 0
        self._ended = False
        return obs.astype(np.float32), self._task_info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One simulation step (5 MuJoCo frames, 0.05 s) with the task's reward."""
        if self._ended:
            raise RuntimeError("call reset() before step() (the episode ended)")
        space = self.action_space
        action = np.clip(
            np.asarray(action, dtype=np.float64).reshape(space.shape), space.low, space.high
        )
        obs, _, _, _, info = self._sim.step(action)
        self._t += 1
        velocity = float(info["x_velocity"])
        ctrl = float(info["reward_ctrl"])
        reward = self._task_reward(velocity) + ctrl
        truncated = self._t >= self.max_steps
        self._ended = truncated
        return (
            obs.astype(np.float32),
            reward,
            False,
            truncated,
            {"x_velocity": velocity, "reward_ctrl": ctrl, **self._task_info()},
        )

    def render(self) -> Any:
        """A frame (``render_mode="rgb_array"``), else ``None``."""
        return None if self.render_mode is None else self._sim.render()

    def close(self) -> None:
        """Close the simulation."""
        self._sim.close()


class HalfCheetahVelEnv(_HalfCheetahTaskEnv):
    """HalfCheetah that should run at a hidden target velocity (one inner episode of a task).

    A plain ``reset`` draws the target velocity uniformly from ``[velocity_low, velocity_high]``
    (PEARL and VariBAD use [0, 3], MAML [0, 2]); ``reset(options={"keep_task": True})`` keeps it.

    ## Observation
    ``Box(17,)`` float32: Gymnasium's ``HalfCheetah-v5`` observation (joint positions without the
    x coordinate, joint velocities). The target velocity is not observed.

    ## Action
    ``Box(-1, 1, (6,))``: torques of the six joints.

    ## Reward
    ``-|v - v_target| - ctrl_cost_weight * |a|^2`` with ``v`` the forward velocity of the torso
    (``info["x_velocity"]``); ``info["target_velocity"]`` is the task, ``info["reward_ctrl"]`` the
    control term.

    ## Termination
    Never terminated; truncated after ``max_steps`` steps.

    ## Arguments
    - ``velocity_low``, ``velocity_high`` (floats, ``low <= high``, defaults 0.0 and 3.0).
    - ``max_steps`` (int >= 1, default 200).
    - ``ctrl_cost_weight`` (float >= 0, default 0.05, as in MAML and VariBAD).
    - ``render_mode`` (``None`` | ``"rgb_array"``).

    ## Registered ids
    - ``FWM-HalfCheetahVel-v0``: a :class:`Trial` of ``episodes`` (default 2) inner episodes with
      the previous action, reward and ended flag in the observation; batched (``gym.make_vec(...,
      vectorization_mode="vector_entry_point")``): a :class:`VectorTrial`.
    """

    env_id = "FWM-HalfCheetahVel-v0"

    def __init__(
        self,
        velocity_low: float = 0.0,
        velocity_high: float = 3.0,
        max_steps: int = 200,
        ctrl_cost_weight: float = 0.05,
        render_mode: str | None = None,
    ) -> None:
        self.velocity_low = check_float("velocity_low", velocity_low)
        self.velocity_high = check_float("velocity_high", velocity_high, self.velocity_low)
        super().__init__(max_steps, ctrl_cost_weight, render_mode)
        self.target_velocity = float("nan")

    def _draw_task(self) -> None:
        self.target_velocity = float(self.np_random.uniform(self.velocity_low, self.velocity_high))

    def _task_reward(self, x_velocity: float) -> float:
        return -abs(x_velocity - self.target_velocity)

    def _task_info(self) -> dict[str, Any]:
        return {"target_velocity": self.target_velocity}


class HalfCheetahDirEnv(_HalfCheetahTaskEnv):
    """HalfCheetah that should run forward or backward, the direction hidden (one inner episode).

    A plain ``reset`` draws the direction, +1 (forward) or -1 (backward) with probability 1/2 each;
    ``reset(options={"keep_task": True})`` keeps it.

    ## Observation
    ``Box(17,)`` float32: Gymnasium's ``HalfCheetah-v5`` observation. The direction is not observed.

    ## Action
    ``Box(-1, 1, (6,))``: torques of the six joints.

    ## Reward
    ``direction * v - ctrl_cost_weight * |a|^2`` with ``v`` the torso's forward velocity
    (``info["x_velocity"]``); ``info["direction"]`` is the task.

    ## Termination
    Never terminated; truncated after ``max_steps`` steps.

    ## Arguments
    - ``max_steps`` (int >= 1, default 200).
    - ``ctrl_cost_weight`` (float >= 0, default 0.05).
    - ``render_mode`` (``None`` | ``"rgb_array"``).

    ## Registered ids
    - ``FWM-HalfCheetahDir-v0``: as ``FWM-HalfCheetahVel-v0``, with this env.
    """

    env_id = "FWM-HalfCheetahDir-v0"

    def __init__(
        self,
        max_steps: int = 200,
        ctrl_cost_weight: float = 0.05,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(max_steps, ctrl_cost_weight, render_mode)
        self.direction = 0.0

    def _draw_task(self) -> None:
        self.direction = 1.0 if self.np_random.random() < 0.5 else -1.0

    def _task_reward(self, x_velocity: float) -> float:
        return self.direction * x_velocity

    def _task_info(self) -> dict[str, Any]:
        return {"direction": self.direction}


def _trial(cls: type[_HalfCheetahTaskEnv], episodes: int, **kwargs: Any) -> Trial:
    return Trial(cls(**kwargs), episodes=episodes, prev_action=True, prev_reward=True)


def _vector(
    cls: type[_HalfCheetahTaskEnv], num_envs: int, episodes: int, **kwargs: Any
) -> VectorTrial:
    num_envs = check_int("num_envs", num_envs, 1)
    fns = [functools.partial(cls, **kwargs)] * num_envs
    return VectorTrial(
        gym.vector.SyncVectorEnv(fns), episodes=episodes, prev_action=True, prev_reward=True
    )


def make_half_cheetah_vel(episodes: int = 2, **kwargs: Any) -> Trial:
    """Entry point of ``FWM-HalfCheetahVel-v0``: a :class:`Trial` of ``episodes`` inner episodes of
    one :class:`HalfCheetahVelEnv` task with the previous action, reward and ended flag in the
    observation (``Box(17 + 6 + 1 + 1,)``); ``kwargs`` are :class:`HalfCheetahVelEnv`'s."""
    return _trial(HalfCheetahVelEnv, episodes, **kwargs)


def make_half_cheetah_vel_vector(num_envs: int, episodes: int = 2, **kwargs: Any) -> VectorTrial:
    """Vector entry point of ``FWM-HalfCheetahVel-v0`` (:class:`VectorTrial` over a
    ``SyncVectorEnv`` of :class:`HalfCheetahVelEnv`)."""
    return _vector(HalfCheetahVelEnv, num_envs, episodes, **kwargs)


def make_half_cheetah_dir(episodes: int = 2, **kwargs: Any) -> Trial:
    """Entry point of ``FWM-HalfCheetahDir-v0`` (as :func:`make_half_cheetah_vel`, with
    :class:`HalfCheetahDirEnv`)."""
    return _trial(HalfCheetahDirEnv, episodes, **kwargs)


def make_half_cheetah_dir_vector(num_envs: int, episodes: int = 2, **kwargs: Any) -> VectorTrial:
    """Vector entry point of ``FWM-HalfCheetahDir-v0``."""
    return _vector(HalfCheetahDirEnv, num_envs, episodes, **kwargs)
