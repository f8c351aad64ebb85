"""Meta-World ML1, ML10 and ML45 as RL^2 trials: ``FWM-MetaWorld-ML1-v0``, ``-ML10-v0``, ``-ML45-v0``.

Needs the optional extra ``fwmrl[metaworld]`` (``metaworld`` 3.x and ``mujoco``); ``import fwmrl``
works without it, and asking for one of these ids then raises an ``ImportError`` that says how to
install it. The train and test task sets are Meta-World's own (``metaworld.ML1`` / ``ML10`` /
``ML45`` built with ``benchmark_seed``): ML1 has one environment with 50 train and 50 test tasks
(object and goal positions drawn with different seeds), ML10 has 10 train environments and 5
held-out test environments with 50 tasks each, ML45 45 train and 5 held-out test environments. The goal is not part of the observation (Meta-World's
``partially_observable`` ML setting), so it has to be found by trying.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fwmrl.envs._validation import check_bool, check_choice, check_float, check_int
from fwmrl.envs.trial import Trial, VectorTrial

BENCHMARKS = ("ML1", "ML10", "ML45")
SPLITS = ("train", "test")
INSTALL_HINT = "pip install 'fwmrl[metaworld]' (metaworld 3.x and mujoco)"
MAX_PATH_LENGTH = 500
"""Meta-World's episode length (``SawyerXYZEnv.max_path_length``); stepping further raises there."""
OBS_SIZE = 36
"""Entries of Meta-World's 39-entry observation that are kept: the last 3 hold the goal, which the ML
benchmarks hide (always zero)."""


def require_metaworld(what: str = "Meta-World") -> Any:
    """Import and return ``metaworld``, or raise an ``ImportError`` naming the extra to install."""
    try:
        import metaworld
    except ImportError as error:
        raise ImportError(
            f"{what} needs the optional extra 'metaworld': {INSTALL_HINT}; "
            f"import failed with: {error}"
        ) from None
    return metaworld


def ml1_env_names() -> list[str]:
    """The Meta-World environments ML1 can be built on (``reach-v3``, ``push-v3``, ...)."""
    return sorted(require_metaworld().ML1.ENV_NAMES)


def _full_name(env_name: Any) -> str:
    if not isinstance(env_name, str):
        raise ValueError(f"env_name must be a Meta-World environment name, got {env_name!r}")
    name = env_name if env_name.endswith("-v3") else f"{env_name}-v3"
    allowed = ml1_env_names()
    if name not in allowed:
        raise ValueError(f"env_name must be one of {allowed} (or without -v3), got {env_name!r}")
    return name


@functools.lru_cache(maxsize=8)
def benchmark(name: str, env_name: str | None = None, seed: int = 0) -> Any:
    """The Meta-World benchmark object (``metaworld.ML1(env_name, seed)``, ``metaworld.ML10(seed)``
    or ``metaworld.ML45(seed)``), built once per process and shared by every env that asks for it.

    Building it resets each environment 50 times per task set (ML1 a few seconds, ML10 about half a
    minute on a loaded core, ML45 about a CPU minute). Its tasks are Meta-World ``Task`` tuples created in this process; they
    are never read from a file.
    """
    metaworld = require_metaworld(f"FWM-MetaWorld-{name}-v0")
    if name == "ML1":
        return metaworld.ML1(env_name, seed=seed)
    if name == "ML10":
        return metaworld.ML10(seed=seed)
    return metaworld.ML45(seed=seed)


def task_set(
    name: str, split: str, env_name: str | None = None, seed: int = 0
) -> tuple[dict[str, type], list[Any]]:
    """``(classes, tasks)`` of a benchmark's ``split``: environment name -> class, and the task list
    (each task names its environment in ``task.env_name``)."""
    bench = benchmark(name, env_name, seed)
    if split == "train":
        return dict(bench.train_classes), list(bench.train_tasks)
    return dict(bench.test_classes), list(bench.test_tasks)


class MetaWorldTaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """One inner episode of a Meta-World ML1, ML10 or ML45 task (the registered ids wrap it in a trial).

    A plain ``reset`` draws a task uniformly from the split's task set with the env's generator and
    sets it (for ML10 this also picks the environment: one instance per Meta-World class, built
    when first drawn); ``reset(options={"keep_task": True})`` restarts the same task (Meta-World
    resets a task to the same object and goal positions).

    ## Observation
    ``Box(36,)`` float32: Meta-World's observation without its last 3 entries (hand position,
    gripper opening, the objects' positions and quaternions, and the same 18 entries of the
    previous frame); the last 3 hold the goal, always zero in the ML benchmarks, which hide it.

    ## Action
    ``Box(-1, 1, (4,))``: hand displacement (x, y, z) and gripper effort.

    ## Reward
    Meta-World's dense v2 reward of the task (0 to 10 per step), times ``reward_scale``.
    ``info["success"]`` is 1.0 on steps where the task is solved (Meta-World's criterion, e.g. the
    hand within 5 cm of the goal for reach); ``info["task_index"]`` is the task's index in the
    split's task list and ``info["env_index"]`` its environment's index in the split's classes.

    ## Termination
    Terminated on the first success when ``terminate_on_success`` is set, never otherwise; truncated
    after ``max_steps`` steps.

    ## Arguments
    - ``benchmark`` (``"ML1"`` | ``"ML10"`` | ``"ML45"``, default ``"ML1"``).
    - ``env_name`` (str, ML1 only, default ``None``: ``"reach-v3"``): the Meta-World environment,
      with or without ``-v3``.
    - ``split`` (``"train"`` | ``"test"``, default ``"train"``): the task set tasks are drawn from.
    - ``benchmark_seed`` (int >= 0, default 0): the seed Meta-World draws the task sets with.
    - ``max_steps`` (int in [1, 500], default 500): steps per episode.
    - ``terminate_on_success`` (bool, default False).
    - ``reward_scale`` (float > 0, default 1.0).
    - ``render_mode`` (``None`` | ``"rgb_array"``; rendering needs an OpenGL context).

    ## Registered ids
    - ``FWM-MetaWorld-ML1-v0`` (ML1), ``FWM-MetaWorld-ML10-v0`` (ML10) and
      ``FWM-MetaWorld-ML45-v0`` (ML45): a :class:`Trial` of
      ``episodes`` (default 10) inner episodes of this env with the previous action, reward and
      ended flag in the observation (:func:`make_metaworld_trial`); batched:
      ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` gives a
      :class:`VectorTrial` (:func:`make_metaworld_vector`).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 80}
    supports_keep_task = True

    def __init__(
        self,
        benchmark: str = "ML1",
        env_name: str | None = None,
        split: str = "train",
        benchmark_seed: int = 0,
        max_steps: int = MAX_PATH_LENGTH,
        terminate_on_success: bool = False,
        reward_scale: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        self.benchmark_name = check_choice("benchmark", benchmark, BENCHMARKS)
        require_metaworld(f"FWM-MetaWorld-{benchmark}-v0")
        if benchmark == "ML1":
            self.env_name: str | None = _full_name("reach-v3" if env_name is None else env_name)
        elif env_name is not None:
            raise ValueError(f"env_name is only used by ML1, got {env_name!r} for {benchmark}")
        else:
            self.env_name = None
        self.split = check_choice("split", split, SPLITS)
        self.benchmark_seed = check_int("benchmark_seed", benchmark_seed, 0)
        self.max_steps = check_int("max_steps", max_steps, 1, MAX_PATH_LENGTH)
        self.terminate_on_success = check_bool("terminate_on_success", terminate_on_success)
        self.reward_scale = check_float("reward_scale", reward_scale, 0.0, low_open=True)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.classes, self.tasks = task_set(benchmark, split, self.env_name, self.benchmark_seed)
        self.class_names = list(self.classes)
        self._sims: dict[str, Any] = {}
        first = self._sim(self.class_names[0])
        space = first.observation_space
        self.observation_space = spaces.Box(
            space.low[:OBS_SIZE].astype(np.float32),
            space.high[:OBS_SIZE].astype(np.float32),
            dtype=np.float32,
        )
        self.action_space = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        self._task = -1
        self._current: Any = None
        self._t = 0
        self._ended = False

    def _sim(self, name: str) -> Any:
        if name not in self._sims:
            self._sims[name] = self.classes[name](render_mode=self.render_mode)
        return self._sims[name]

    @property
    def task_index(self) -> int:
        """Index of the current task in :attr:`tasks` (-1 before the first reset)."""
        return self._task

    @property
    def task_name(self) -> str:
        """The Meta-World environment of the current task (e.g. ``"reach-v3"``)."""
        if self._task < 0:
            raise RuntimeError("no task before the first reset")
        return self.tasks[self._task].env_name

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: a new task, or the previous one with ``options={"keep_task": True}``."""
        super().reset(seed=seed)
        keep = bool(options and options.get("keep_task", False))
        if keep and self._task < 0:
            raise ValueError("options['keep_task'] needs a previous reset")
        if not keep:
            self._task = int(self.np_random.integers(len(self.tasks)))
            task = self.tasks[self._task]
            self._current = self._sim(task.env_name)
            self._current.set_task(task)
        if seed is not None:
            self._current.seed(int(self.np_random.integers(2**31 - 1)))
        obs, _ = self._current.reset()
        self._t = 0
        self._ended = False
        return self._observation(obs), self._info(0.0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (clipped to [-1, 1]) for one Meta-World step."""
        if self._current is None or self._ended:
            raise RuntimeError("call reset() before step() (the episode ended)")
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(4), -1.0, 1.0)
        obs, reward, _, _, info = self._current.step(action)
        self._t += 1
        success = float(info.get("success", 0.0))
        terminated = self.terminate_on_success and success > 0
        truncated = not terminated and self._t >= self.max_steps
        self._ended = terminated or truncated
        return (
            self._observation(obs),
            float(reward) * self.reward_scale,
            terminated,
            truncated,
            self._info(success),
        )

    def _observation(self, obs: np.ndarray) -> np.ndarray:
        space = self.observation_space
        return np.clip(np.asarray(obs[:OBS_SIZE], dtype=np.float32), space.low, space.high)

    def _info(self, success: float) -> dict[str, Any]:
        return {
            "success": success,
            "task_index": self._task,
            "env_index": self.class_names.index(self.tasks[self._task].env_name),
        }

    def render(self) -> Any:
        """A frame of the current task (``render_mode="rgb_array"``), else ``None``."""
        if self.render_mode is None or self._current is None:
            return None
        return self._current.render()

    def close(self) -> None:
        """Close every Meta-World instance this env built."""
        for sim in self._sims.values():
            sim.close()
        self._sims.clear()
        self._current = None


TRIAL_DEFAULTS = {"episodes": 10}
"""Inner episodes per trial of the registered ids (RL^2 on Meta-World: 10 episodes of one task)."""


def make_metaworld_trial(
    benchmark: str = "ML1", episodes: int = TRIAL_DEFAULTS["episodes"], **kwargs: Any
) -> Trial:
    """A :class:`Trial` of ``episodes`` inner episodes of one :class:`MetaWorldTaskEnv` task, with
    the previous action, reward and ended flag in the observation (``Box(36 + 4 + 1 + 1,)``).

    Parameters
    ----------
    benchmark
        ``"ML1"``, ``"ML10"`` or ``"ML45"``.
    episodes
        inner episodes per trial.
    kwargs
        the :class:`MetaWorldTaskEnv` arguments.
    """
    return Trial(
        MetaWorldTaskEnv(benchmark=benchmark, **kwargs),
        episodes=episodes,
        prev_action=True,
        prev_reward=True,
    )


def make_metaworld_vector(
    num_envs: int,
    benchmark: str = "ML1",
    episodes: int = TRIAL_DEFAULTS["episodes"],
    **kwargs: Any,
) -> VectorTrial:
    """A :class:`VectorTrial` over a ``SyncVectorEnv`` of ``num_envs`` :class:`MetaWorldTaskEnv`
    (the ids' vector entry point); transitions equal those of ``num_envs``
    :func:`make_metaworld_trial` envs for the same seeds and actions."""
    num_envs = check_int("num_envs", num_envs, 1)
    fns = [functools.partial(MetaWorldTaskEnv, benchmark=benchmark, **kwargs)] * num_envs
    return VectorTrial(
        gym.vector.SyncVectorEnv(fns), episodes=episodes, prev_action=True, prev_reward=True
    )


def make_ml1(**kwargs: Any) -> Trial:
    """Entry point of ``FWM-MetaWorld-ML1-v0`` (:func:`make_metaworld_trial` with ML1)."""
    return make_metaworld_trial("ML1", **kwargs)


def make_ml1_vector(num_envs: int, **kwargs: Any) -> VectorTrial:
    """Vector entry point of ``FWM-MetaWorld-ML1-v0``."""
    return make_metaworld_vector(num_envs, "ML1", **kwargs)


def make_ml10(**kwargs: Any) -> Trial:
    """Entry point of ``FWM-MetaWorld-ML10-v0`` (:func:`make_metaworld_trial` with ML10)."""
    return make_metaworld_trial("ML10", **kwargs)


def make_ml10_vector(num_envs: int, **kwargs: Any) -> VectorTrial:
    """Vector entry point of ``FWM-MetaWorld-ML10-v0``."""
    return make_metaworld_vector(num_envs, "ML10", **kwargs)


def make_ml45(**kwargs: Any) -> Trial:
    """Entry point of ``FWM-MetaWorld-ML45-v0`` (:func:`make_metaworld_trial` with ML45)."""
    return make_metaworld_trial("ML45", **kwargs)


def make_ml45_vector(num_envs: int, **kwargs: Any) -> VectorTrial:
    """Vector entry point of ``FWM-MetaWorld-ML45-v0``."""
    return make_metaworld_vector(num_envs, "ML45", **kwargs)
