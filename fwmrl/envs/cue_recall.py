"""``FWM-CueRecall-v0``: recall a continuous cue after a delay, with a Box action.

A memory task for continuous control: a memoryless policy cannot do better than the mean cue
(its expected return is ``-E|cue|``, about ``-0.77`` for the default 2-dimensional cue), while a
policy that stores the cue scores close to 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fwmrl.envs._rng import generator_from_state, generator_state
from fwmrl.envs._validation import (
    check_int,
    check_render_mode,
    state_array,
    state_entry,
)


class CueRecallEnv(gym.Env[np.ndarray, np.ndarray]):
    """Show a cue vector once, then ask for it back as the action after a delay.

    ## Description
    At the first step of an episode the observation holds a cue ``c`` drawn uniformly from
    ``[-1, 1]^dim``; for the next ``delay - 1`` steps it holds zeros; at step ``delay`` a recall
    flag is set and the action taken there is scored against the cue. A policy without memory sees
    the same observation at the recall step whatever the cue was, so its best action is the mean
    cue 0, with an expected return of ``-E|c|`` (about -0.77 for ``dim=2``, -1.13 for ``dim=4``);
    a policy that remembers the cue scores 0.

    ## Observation
    A float32 vector of ``dim + 2`` entries: the cue (step 0 only, zeros after), a cue flag
    (1 at step 0) and a recall flag (1 at step ``delay``).

    ## Action
    ``Box(-1, 1, (dim,), float32)``: the recalled cue. Only the action at the recall step counts;
    actions at other steps are ignored. Actions outside the bounds are clipped before scoring.

    ## Reward
    ``-|a - c|`` (Euclidean distance, at most ``2 sqrt(dim)``) at the recall step, 0 at every
    other step. The return is the reward of the recall step.

    ## Termination
    Terminated after the recall step (episodes last ``delay + 1`` steps); never truncated.

    ## Arguments
    - ``dim`` (int, 1..64, default 2): size of the cue.
    - ``delay`` (int, 1..1000, default 5): steps from the cue to the recall step.
    - ``render_mode`` (``None`` | ``"ansi"``).

    Actions must be finite arrays of shape ``(dim,)``; stepping after the episode terminated
    raises until ``reset``. ``reset(options={"keep_task": True})`` is accepted (for the
    :class:`~fwmrl.envs.trial.Trial` wrapper) and keeps the cue, so a trial of several episodes
    can be solved by carrying the cue across them. :meth:`state_dict` / :meth:`load_state_dict`
    save and restore the whole state as arrays.

    ## Registered ids
    - ``FWM-CueRecall-v0`` (vectorised by Gymnasium's ``SyncVectorEnv`` / ``AsyncVectorEnv``).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}
    supports_keep_task = True

    def __init__(self, dim: int = 2, delay: int = 5, render_mode: str | None = None) -> None:
        self.dim = check_int("dim", dim, 1, 64)
        self.delay = check_int("delay", delay, 1, 1000)
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(self.dim + 2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.dim,), dtype=np.float32)
        self.cue: np.ndarray | None = None
        self._t = 0
        self._last_reward: float | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode with a new cue (the same one with ``options={"keep_task": True}``)."""
        super().reset(seed=seed)
        keep = bool((options or {}).get("keep_task", False)) and self.cue is not None
        if not keep:
            self.cue = self.np_random.uniform(-1.0, 1.0, self.dim).astype(np.float32)
        self._t = 0
        self._last_reward = None
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance one step; ``action`` is scored at the recall step (``info["distance"]``)."""
        if self.cue is None:
            raise RuntimeError("Cannot call step() before reset()")
        if self._t > self.delay:
            raise RuntimeError("Cannot call step() after the episode ended; call reset() first")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.dim,) or not np.isfinite(a).all():
            raise ValueError(
                f"action must be a finite array of shape ({self.dim},), got {action!r}"
            )
        reward, info = 0.0, {}
        if self._t == self.delay:
            distance = float(np.linalg.norm(np.clip(a, -1.0, 1.0) - self.cue))
            reward, info = -distance, {"distance": distance}
            self._last_reward = reward
        self._t += 1
        return self._observation(), reward, self._t > self.delay, False, info

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.dim + 2, dtype=np.float32)
        if self._t == 0:
            obs[: self.dim] = self.cue
            obs[self.dim] = 1.0
        if self._t == self.delay:
            obs[self.dim + 1] = 1.0
        return obs

    def state_dict(self) -> dict[str, np.ndarray]:
        """The env's state as arrays: the generator, the cue and the step within the episode."""
        if self.cue is None:
            raise RuntimeError("Cannot call state_dict() before reset()")
        return {
            "rng": generator_state(self.np_random),
            "cue": self.cue.copy(),
            "t": np.array(self._t, dtype=np.int64),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` of an env with the same arguments (raises
        :class:`~fwmrl.envs._validation.EnvStateError` naming a bad entry)."""
        rng = generator_from_state(state_entry(state, "rng"))
        cue = state_array("cue", state_entry(state, "cue"), np.float32, (self.dim,), -1.0, 1.0)
        t = int(state_array("t", state_entry(state, "t"), np.int64, (), 0, self.delay + 1))
        self.np_random, self.cue, self._t = rng, cue.copy(), t
        self._last_reward = None

    def render(self) -> str | None:
        """A text line per call: the step, the cue and, after the recall step, its reward."""
        if self.cue is None or self.render_mode is None:
            return None
        cue = " ".join(f"{x:+.2f}" for x in self.cue)
        done = "" if self._last_reward is None else f"\nrecalled: reward {self._last_reward:.3f}"
        return f"step {self._t}/{self.delay}  cue [{cue}]{done}"
