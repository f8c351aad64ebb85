"""``FWM-Recall-v0``: simple recall tasks on a stream of random symbols.

Every episode shows a stream of ``max_steps`` symbols drawn uniformly from ``0 .. symbols - 1``, one
per step. The action at step ``t`` is scored against a target that only a policy with memory can
know (:func:`recall_targets`):

- ``task="kback"``: the symbol shown ``k`` steps earlier (scored at the steps ``t >= k``);
- ``task="first"``: the first symbol of the episode (scored at the steps ``t >= 1``);
- ``task="count"``: how many times symbol 0 has been shown so far, the current step included,
  capped at ``symbols - 1`` (scored at every step).

A correct scored action earns +1, anything else 0, so the return is the number of correct answers.
The uniformly random policy expects ``1 / symbols`` per scored step and an oracle scores 1 per scored
step (:func:`scored_steps`; :func:`reference_returns` measures both on seeded episodes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fwmrl.envs import _render as draw
from fwmrl.envs._rng import generator_from_state, generator_state
from fwmrl.envs._validation import (
    EnvStateError,
    check_action,
    check_choice,
    check_int,
    check_render_mode,
    state_array,
    state_entry,
)
from fwmrl.envs.vector import BatchedEnv

TASKS = ("kback", "first", "count")
"""The values of the ``task`` argument."""

NOT_SCORED = -1
"""The target of a step whose action is not scored."""

MAX_SYMBOLS = 100
MAX_EPISODE_STEPS = 100_000


def _validate(task: str, symbols: int, k: int, max_steps: int) -> dict[str, Any]:
    task = check_choice("task", task, TASKS)
    symbols = check_int("symbols", symbols, 2, MAX_SYMBOLS)
    max_steps = check_int("max_steps", max_steps, 2, MAX_EPISODE_STEPS)
    # k only matters for kback; elsewhere any positive k is accepted so that the default k=3 does
    # not forbid short episodes of the other tasks.
    k = check_int("k", k, 1, max_steps - 1 if task == "kback" else None)
    return {"task": task, "symbols": symbols, "k": k, "max_steps": max_steps}


def scored_steps(task: str = "kback", k: int = 3, max_steps: int = 32) -> int:
    """The number of scored steps in an episode: ``max_steps - k`` (kback), ``max_steps - 1``
    (first) or ``max_steps`` (count). The oracle's return; the random policy expects this number
    divided by ``symbols``."""
    kw = _validate(task, 2, k, max_steps)
    if kw["task"] == "kback":
        return kw["max_steps"] - kw["k"]
    if kw["task"] == "first":
        return kw["max_steps"] - 1
    return kw["max_steps"]


def recall_targets(task: str, stream: np.ndarray, k: int, symbols: int) -> np.ndarray:
    """The target of every step of one or many streams.

    Parameters
    ----------
    task
        one of :data:`TASKS`.
    stream
        int array ``[..., T]`` of symbols in ``[0, symbols)``.
    k
        the lag of ``kback`` (``1 <= k < T``; ignored by the other tasks).
    symbols
        the alphabet size (caps the ``count`` targets at ``symbols - 1``).

    Returns
    -------
    int64 array of the shape of ``stream``: the action each step is scored against, or
    :data:`NOT_SCORED`.
    """
    stream = np.asarray(stream, dtype=np.int64)
    targets = np.full(stream.shape, NOT_SCORED, dtype=np.int64)
    if task == "kback":
        targets[..., k:] = stream[..., :-k]
    elif task == "first":
        targets[..., 1:] = stream[..., :1]
    elif task == "count":
        targets[...] = np.minimum(np.cumsum(stream == 0, axis=-1), symbols - 1)
    else:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return targets


def _observation_space(symbols: int) -> spaces.Box:
    return spaces.Box(0.0, 1.0, shape=(symbols + 1,), dtype=np.float32)


class RecallEnv(gym.Env[np.ndarray, np.int64]):
    """Recall from a stream of random symbols: the symbol ``k`` steps back, the first symbol, or a
    count.

    ## Description
    Each episode shows ``max_steps`` symbols drawn uniformly from ``0 .. symbols - 1``, one per step
    (drawn at ``reset`` from the env's generator). The action at step ``t`` is scored against a
    target that depends on symbols already shown (:func:`recall_targets`):

    - ``task="kback"``: the symbol shown at step ``t - k`` (scored for ``t >= k``);
    - ``task="first"``: the symbol shown at step 0 (scored for ``t >= 1``);
    - ``task="count"``: the number of times symbol 0 was shown at steps ``0 .. t``, capped at
      ``symbols - 1`` (scored at every step).

    The observation never shows the target, so a memoryless policy scores like the random one.

    ## Observation
    A float32 vector of ``symbols + 1`` entries: one-hot of the current symbol (all zeros in the
    observation after the last step) and the previous reward (0 on the first step).

    ## Action
    ``Discrete(symbols)``: the answer for the current step. Actions at steps that are not scored
    are ignored.

    ## Reward
    +1 when the action equals the step's target, 0 otherwise and at steps that are not scored. The
    return is the number of correct answers, at most :func:`scored_steps` (``max_steps - k``,
    ``max_steps - 1`` or ``max_steps``: the oracle's return); the uniformly random policy expects
    ``scored_steps / symbols`` (3.625 for the defaults). :func:`reference_returns` (and the method
    of the same name) measures both on seeded episodes.

    ## Termination
    Never terminated; truncated after ``max_steps`` steps.

    ## Arguments
    - ``task`` (``"kback"`` | ``"first"`` | ``"count"``, default ``"kback"``).
    - ``symbols`` (int, 2..100, default 8): alphabet size, also the number of actions.
    - ``k`` (int, default 3): the lag of ``kback``, in ``[1, max_steps - 1]``; the other tasks
      ignore it (any integer >= 1).
    - ``max_steps`` (int, 2..100000, default 32): episode length.
    - ``render_mode`` (``None`` | ``"rgb_array"`` | ``"ansi"``).

    There is no hidden task shared between episodes: ``reset(options={"keep_task": True})`` is
    accepted (for the :class:`~fwmrl.envs.trial.Trial` wrapper) and draws a new stream as usual.
    Actions must be integers in ``[0, symbols - 1]``; stepping after the episode was truncated
    raises until ``reset``. :meth:`state_dict` / :meth:`load_state_dict` save and restore the whole
    state as arrays.

    ## Registered ids
    - ``FWM-Recall-v0``; batched: ``gym.make_vec("FWM-Recall-v0", num_envs=N,
      vectorization_mode="vector_entry_point")`` gives :class:`RecallVectorEnv`.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}
    supports_keep_task = True

    def __init__(
        self,
        task: str = "kback",
        symbols: int = 8,
        k: int = 3,
        max_steps: int = 32,
        render_mode: str | None = None,
    ) -> None:
        self._kwargs = _validate(task, symbols, k, max_steps)
        self.task, self.n_symbols = self._kwargs["task"], self._kwargs["symbols"]
        self.k, self.max_steps = self._kwargs["k"], self._kwargs["max_steps"]
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.observation_space = _observation_space(self.n_symbols)
        self.action_space = spaces.Discrete(self.n_symbols)
        self.stream: np.ndarray | None = None
        self.targets: np.ndarray | None = None
        self._stream: list[int] = []
        self._targets: list[int] = []
        self._actions: list[int] = []
        self._t = 0
        self._prev_reward = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode with a new stream."""
        super().reset(seed=seed)
        self._start(self.np_random.integers(0, self.n_symbols, size=self.max_steps))
        return self._observation(), {}

    def _start(self, stream: np.ndarray) -> None:
        self.stream = np.asarray(stream, dtype=np.int64)
        self.targets = recall_targets(self.task, self.stream, self.k, self.n_symbols)
        self._stream, self._targets = self.stream.tolist(), self.targets.tolist()
        self._actions = []
        self._t = 0
        self._prev_reward = 0.0

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Score ``action`` against the current step's target and show the next symbol."""
        a = check_action(action, self.n_symbols)
        if self.stream is None:
            raise RuntimeError("Cannot call step() before reset()")
        if self._t >= self.max_steps:
            raise RuntimeError("Cannot call step() after the episode ended; call reset() first")
        target = self._targets[self._t]
        reward = 1.0 if target != NOT_SCORED and a == target else 0.0
        self._actions.append(a)
        self._t += 1
        self._prev_reward = reward
        return self._observation(), reward, False, self._t >= self.max_steps, {}

    def oracle_action(self) -> int:
        """The current step's target (0 at a step that is not scored)."""
        if self.stream is None:
            raise RuntimeError("Cannot call oracle_action() before reset()")
        if self._t >= self.max_steps:
            return 0
        return max(self._targets[self._t], 0)

    def reference_returns(self, seed: int, episodes: int = 20) -> dict[str, float]:
        """Mean returns of the oracle and of the random policy; see :func:`reference_returns`."""
        return reference_returns(seed, episodes, **self._kwargs)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The env's state as arrays: the generator, the episode's stream, the step, the actions
        taken so far and the previous reward."""
        if self.stream is None:
            raise RuntimeError("Cannot call state_dict() before reset()")
        return {
            "rng": generator_state(self.np_random),
            "stream": self.stream.copy(),
            "t": np.array(self._t, dtype=np.int64),
            "actions": np.array(self._actions, dtype=np.int64),
            "prev_reward": np.array(self._prev_reward, dtype=np.float64),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` of an env with the same arguments (raises
        :class:`~fwmrl.envs._validation.EnvStateError` naming a bad entry)."""
        rng = generator_from_state(state_entry(state, "rng"))
        n, steps = self.n_symbols, self.max_steps
        stream = state_array("stream", state_entry(state, "stream"), np.int64, (steps,), 0, n - 1)
        t = int(state_array("t", state_entry(state, "t"), np.int64, (), 0, steps))
        actions = state_array("actions", state_entry(state, "actions"), np.int64, (t,), 0, n - 1)
        prev_reward = float(
            state_array("prev_reward", state_entry(state, "prev_reward"), np.float64, (), 0, 1)
        )
        targets = recall_targets(self.task, stream, self.k, n)
        expected = float(t > 0 and actions[-1] == targets[t - 1])
        if prev_reward != expected:
            raise EnvStateError(
                f"prev_reward: the reward of the last saved step is {expected}, got {prev_reward}"
            )
        self.np_random = rng
        self._start(stream)
        self._actions, self._t, self._prev_reward = actions.tolist(), t, prev_reward

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.n_symbols + 1, dtype=np.float32)
        if self._t < self.max_steps:
            obs[self._stream[self._t]] = 1.0
        obs[self.n_symbols] = self._prev_reward
        return obs

    def render(self) -> np.ndarray | str | None:
        """Render the stream shown so far with the actions under it (scored ones green if correct,
        red if wrong)."""
        if self.stream is None or self.render_mode is None:
            return None
        actions = np.array(self._actions, dtype=np.int64)
        if self.render_mode == "rgb_array":
            return render_rgb(self.stream, self.targets, actions)
        return render_ansi(self.stream, self.targets, actions, self._header())

    def _header(self) -> str:
        return _header(self.task, self.k, self._t, self.max_steps)


class RecallVectorEnv(BatchedEnv):
    """``num_envs`` copies of :class:`RecallEnv` advanced with NumPy array operations.

    Same arguments as :class:`RecallEnv` plus ``num_envs``. Seeding and autoreset
    (``AutoresetMode.NEXT_STEP``) follow ``SyncVectorEnv``: for the same seeds and actions the
    trajectories equal those of ``num_envs`` single envs. Each sub-environment draws its streams
    from its own generator, as the single env does.
    """

    def __init__(
        self,
        num_envs: int,
        task: str = "kback",
        symbols: int = 8,
        k: int = 3,
        max_steps: int = 32,
        render_mode: str | None = None,
    ) -> None:
        kw = _validate(task, symbols, k, max_steps)
        self.task, self.n_symbols, self.k, self.max_steps = (
            kw["task"],
            kw["symbols"],
            kw["k"],
            kw["max_steps"],
        )
        n, steps = self.n_symbols, self.max_steps
        super().__init__(num_envs, _observation_space(n), spaces.Discrete(n), render_mode)
        # column max_steps is the end: no symbol (all-zero one-hot), not scored
        self._stream = np.full((self.num_envs, steps + 1), n, dtype=np.int64)
        self._targets = np.full((self.num_envs, steps + 1), NOT_SCORED, dtype=np.int64)
        self._actions = np.full((self.num_envs, steps), -1, dtype=np.int64)
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._eye = np.eye(n + 1, n, dtype=np.float32)  # row n: zeros

    def _state_fields(self) -> dict[str, tuple[float | None, float | None]]:
        return {
            "_stream": (0, self.n_symbols),
            "_targets": (NOT_SCORED, self.n_symbols - 1),
            "_actions": (-1, self.n_symbols - 1),
            "_t": (0, self.max_steps),
        }

    def _check_loaded(self, loaded: dict[str, np.ndarray]) -> None:
        n, steps = self.n_symbols, self.max_steps
        stream, t, actions = loaded["_stream"], loaded["_t"], loaded["_actions"]
        if (stream[:, :steps] == n).any() or (stream[:, steps] != n).any():
            raise EnvStateError(f"stream: symbols must lie in [0, {n - 1}] (and {n} at the end)")
        targets = recall_targets(self.task, stream[:, :steps], self.k, n)
        if (
            not np.array_equal(loaded["_targets"][:, :steps], targets)
            or (loaded["_targets"][:, steps] != NOT_SCORED).any()
        ):
            raise EnvStateError("targets: do not match the stream")
        taken = np.arange(steps) < t[:, None]
        if (taken != (actions >= 0)).any():
            raise EnvStateError("actions: exactly the first t actions of each env must be set")
        rows = self._all
        obs = loaded["_obs"]
        last = np.maximum(t - 1, 0)
        reward = ((t > 0) & (actions[rows, last] == targets[rows, last])).astype(np.float32)
        if not np.array_equal(obs[:, :n], self._eye[stream[rows, t]]) or not np.array_equal(
            obs[:, n], reward
        ):
            raise EnvStateError("obs: do not match the stream, step and actions")

    def _reset_envs(self, idx: np.ndarray, options: dict[str, Any]) -> None:
        n, steps = self.n_symbols, self.max_steps
        for i in idx.tolist():
            self._stream[i, :steps] = self.streams.rngs[i].integers(0, n, size=steps)
        self._targets[idx, :steps] = recall_targets(self.task, self._stream[idx, :steps], self.k, n)
        self._actions[idx] = -1
        self._t[idx] = 0
        self._obs[idx, :n] = self._eye[self._stream[idx, 0]]
        self._obs[idx, n] = 0.0

    def _step_envs(
        self, actions: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows, t = self._all, self._t
        target = self._targets[rows, t]
        rewards = ((target != NOT_SCORED) & (actions == target)).astype(np.float64)
        act = rows if active.all() else np.flatnonzero(active)
        self._actions[act, t[act]] = actions[act]
        self._t = np.minimum(t + 1, self.max_steps)
        self._obs[:, : self.n_symbols] = self._eye[self._stream[rows, self._t]]
        self._obs[:, self.n_symbols] = rewards
        truncated = self._t >= self.max_steps
        return rewards, np.zeros(self.num_envs, dtype=bool), truncated

    def _render_env(self, i: int) -> np.ndarray | str:
        steps, t = self.max_steps, int(self._t[i])
        stream, targets = self._stream[i, :steps], self._targets[i, :steps]
        actions = self._actions[i, :t]
        if self.render_mode == "rgb_array":
            return render_rgb(stream, targets, actions)
        return render_ansi(stream, targets, actions, _header(self.task, self.k, t, steps))


def _header(task: str, k: int, t: int, max_steps: int) -> str:
    lag = f" k={k}" if task == "kback" else ""
    return f"recall task={task}{lag} t={t}/{max_steps}"


def render_rgb(
    stream: np.ndarray, targets: np.ndarray, actions: np.ndarray, per_row: int | None = None
) -> np.ndarray:
    """Draw the stream in rows of ``per_row`` steps: each step's symbol on top and, once taken, its
    action below (green if scored and correct, red if scored and wrong, grey if not scored); the
    current symbol on yellow; future steps as grey dots.

    Parameters
    ----------
    stream
        the episode's symbols ``[max_steps]`` (fixes the image size).
    targets
        their targets (:func:`recall_targets`).
    actions
        the actions taken so far (their number is the current step).
    per_row
        steps per row (default ``max(8, ceil(sqrt(max_steps)))``, a compact picture:
        4 rows of 8 for the default 32 steps).
    """
    cw, ch = 28, 40
    steps, t = len(stream), len(actions)
    if per_row is None:
        per_row = max(8, int(np.ceil(np.sqrt(steps))))
    per_row = min(per_row, steps)
    rows = -(-steps // per_row)
    img = draw.canvas(rows * ch + 4, per_row * cw + 4, (250, 250, 250))
    ink = (20, 20, 20)
    for s in range(steps):
        y, x = 2 + (s // per_row) * ch, 2 + (s % per_row) * cw
        if s > t:
            draw.fill_rect(img, y + 9, x + cw // 2 - 1, y + 11, x + cw // 2 + 1, (200, 200, 200))
            continue
        if s == t:
            draw.fill_rect(img, y, x + 1, y + ch // 2, x + cw - 1, (255, 220, 90))
        draw.draw_text(img, y + 3, x + 3, str(int(stream[s])), ink)
        if s < t:
            if targets[s] == NOT_SCORED:
                color = (215, 215, 215)
            else:
                color = (120, 210, 130) if actions[s] == targets[s] else (240, 120, 110)
            draw.fill_rect(img, y + ch // 2, x + 1, y + ch - 1, x + cw - 1, color)
            draw.draw_text(img, y + ch // 2 + 3, x + 3, str(int(actions[s])), ink)
    return img


def render_ansi(stream: np.ndarray, targets: np.ndarray, actions: np.ndarray, header: str) -> str:
    """Text picture: a header, the stream shown so far (the current symbol in brackets) and the
    actions taken, scored ones marked ``+`` (correct) or ``-`` (wrong)."""
    t = len(actions)
    shown = [str(int(s)) for s in stream[:t]]
    if t < len(stream):
        shown.append(f"[{int(stream[t])}]")
    marks = []
    for a, target in zip(actions.tolist(), targets[:t].tolist(), strict=True):
        marks.append(str(a) + ("" if target == NOT_SCORED else "+" if a == target else "-"))
    return f"{header}\nstream:  {' '.join(shown)}\nactions: {' '.join(marks)}\n"


def reference_returns(seed: int, episodes: int = 20, **env_kwargs: Any) -> dict[str, float]:
    """Mean episode returns of the oracle and of the uniformly random policy.

    Episode ``e`` of both policies is reset with seed ``seed + e``, so both see the same streams.
    The oracle answers every step with its target (:meth:`RecallEnv.oracle_action`) and scores
    :func:`scored_steps`; the random policy draws actions from ``np.random.default_rng(seed)`` and
    expects ``scored_steps / symbols``.

    Parameters
    ----------
    seed
        base seed.
    episodes
        number of episodes per policy.
    **env_kwargs
        :class:`RecallEnv` arguments.

    Returns
    -------
    ``{"oracle": mean oracle return, "random": mean random-policy return}``.
    """
    check_int("episodes", episodes, 1)
    env = RecallEnv(**env_kwargs)
    actions = np.random.default_rng(seed)
    totals = {"oracle": 0.0, "random": 0.0}
    for policy in totals:
        for e in range(episodes):
            env.reset(seed=seed + e)
            truncated = False
            while not truncated:
                if policy == "oracle":
                    a = env.oracle_action()
                else:
                    a = int(actions.integers(env.n_symbols))
                _, reward, _, truncated, _ = env.step(a)
                totals[policy] += reward
    return {k: v / episodes for k, v in totals.items()}
