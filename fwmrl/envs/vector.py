"""Base class of the natively batched NumPy environments.

A batched env holds the state of ``num_envs`` environments in arrays and advances all of them with
array operations. It is seeded like Gymnasium's ``SyncVectorEnv`` (an integer ``seed`` gives sub-env
``i`` the seed ``seed + i``; a list gives one seed per sub-env) and autoresets in
``AutoresetMode.NEXT_STEP`` like ``SyncVectorEnv``'s default: the step after a sub-env terminated or was
truncated ignores that sub-env's action, resets it and returns its first observation with reward 0 and
``terminated = truncated = False``. For the same seeds and actions it returns exactly what a
``SyncVectorEnv`` of the single envs returns (observations, rewards, flags and infos).

:meth:`BatchedEnv.state_dict` returns the whole state as NumPy arrays (generator states as int64
words, positions, goals, task parameters, step counters); :meth:`BatchedEnv.load_state_dict` checks
every entry's shape, dtype and range and continues exactly where the saved env was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from fwmrl.envs._rng import UniformStreams, vector_seeds
from fwmrl.envs._validation import (
    check_int,
    check_render_mode,
    state_array,
    state_entry,
)


class BatchedEnv(VectorEnv):
    """Shared seeding, reset masks and next-step autoreset of the batched envs.

    Subclasses set ``single_observation_space`` and ``single_action_space`` (a ``Discrete``), keep their
    state in arrays, write observations into ``self._obs`` and implement :meth:`_reset_envs`,
    :meth:`_step_envs` and :meth:`_infos`.

    Parameters
    ----------
    num_envs
        number of sub-environments (at least 1).
    render_mode
        ``None``, ``"rgb_array"`` or ``"ansi"``; :meth:`render` returns one frame per
        sub-environment.
    """

    metadata: dict[str, Any] = {
        "render_modes": ["rgb_array", "ansi"],
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int,
        single_observation_space: spaces.Box,
        single_action_space: spaces.Discrete,
        render_mode: str | None = None,
    ) -> None:
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, self.num_envs)
        self.action_space = batch_space(single_action_space, self.num_envs)
        self._n_actions = int(single_action_space.n)
        self.streams = UniformStreams(self.num_envs)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._obs = np.zeros((self.num_envs, *single_observation_space.shape), dtype=np.float32)
        self._all = np.arange(self.num_envs)
        self._has_reset = False

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all sub-environments, or those in ``options["reset_mask"]`` (a bool array).

        Other options are passed to every reset sub-environment (e.g. ``{"keep_task": True}``).
        """
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            idx = self._all
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) "
                    "with at least one True entry"
                )
            idx = np.flatnonzero(mask)
        if not self._has_reset and len(idx) < self.num_envs:
            raise ValueError("options['reset_mask'] can only be used after a full reset")
        seeds = vector_seeds(seed, self.num_envs)
        self.streams.seed([seeds[i] for i in idx.tolist()], idx)
        self._reset_envs(idx, options)
        self._autoreset[idx] = False
        self._has_reset = True
        infos = self._infos()
        if len(idx) < self.num_envs:
            partial = np.zeros(self.num_envs, dtype=bool)
            partial[idx] = True
            for key in [k for k in infos if not k.startswith("_")]:
                infos[key] = np.where(partial, infos[key], np.zeros_like(infos[key]))
                infos[f"_{key}"] = partial.copy()
        return self._obs.copy(), infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment; those that ended on the previous step are reset instead."""
        if not self._has_reset:
            raise RuntimeError("Cannot call step() before reset()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or actions.dtype.kind not in "iu":
            raise ValueError(
                f"actions must be an integer array of shape ({self.num_envs},), "
                f"got shape {actions.shape} and dtype {actions.dtype}"
            )
        if ((actions < 0) | (actions >= self._n_actions)).any():
            raise ValueError(f"actions must be in [0, {self._n_actions - 1}], got {actions}")
        actions = actions.astype(np.int64, copy=False)
        ending = self._autoreset
        rewards, terminated, truncated = self._step_envs(actions, ~ending)
        if ending.any():
            idx = np.flatnonzero(ending)
            self._reset_envs(idx, {})
            rewards[idx] = 0.0
            terminated[idx] = False
            truncated[idx] = False
        self._autoreset = terminated | truncated
        return self._obs.copy(), rewards, terminated, truncated, self._infos()

    def state_dict(self) -> dict[str, Any]:
        """The state of every sub-environment as NumPy arrays (plain data, no objects).

        Holds the uniform streams (``streams.*``), the pending autoresets, the last observations and
        the subclass's arrays (:meth:`_state_fields`); :meth:`load_state_dict` restores it.
        """
        if not self._has_reset:
            raise RuntimeError("Cannot call state_dict() before reset()")
        state: dict[str, Any] = {f"streams.{k}": v for k, v in self.streams.state_dict().items()}
        state["autoreset"] = self._autoreset.copy()
        state["obs"] = self._obs.copy()
        for attr in self._state_fields():
            state[attr.lstrip("_")] = np.array(getattr(self, attr), copy=True)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` of an env with the same arguments and ``num_envs``.

        Raises
        ------
        EnvStateError
            an entry is missing or has the wrong shape, dtype or range (the env is
            left unchanged).
        """
        state_entry(state, "obs")  # a mapping with at least the observations
        n = self.num_envs

        def get(key: str) -> Any:
            return state_entry(state, key)

        streams = UniformStreams(n)
        streams.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("streams.")})
        loaded = {
            "_autoreset": state_array("autoreset", get("autoreset"), np.bool_, (n,)),
            "_obs": state_array("obs", get("obs"), np.float32, self._obs.shape),
        }
        for attr, (low, high) in self._state_fields().items():
            current = getattr(self, attr)
            key = attr.lstrip("_")
            loaded[attr] = state_array(key, get(key), current.dtype, current.shape, low, high)
        self._check_loaded(loaded)
        self.streams = streams
        for attr, value in loaded.items():
            np.copyto(getattr(self, attr), value)  # in place: views of these arrays stay valid
        self._has_reset = True

    def _state_fields(self) -> dict[str, tuple[float | None, float | None]]:
        """The subclass's state arrays (attribute name -> allowed ``(low, high)``, ``None``: any)."""
        return {}

    def _check_loaded(self, loaded: dict[str, np.ndarray]) -> None:
        """Cross-checks of a state about to be loaded (raise :class:`EnvStateError`)."""

    def render(self) -> tuple[Any, ...] | None:
        """Return one frame per sub-environment (``None`` when ``render_mode`` is ``None``)."""
        if self.render_mode is None:
            return None
        return tuple(self._render_env(i) for i in range(self.num_envs))

    def _reset_envs(self, idx: np.ndarray, options: dict[str, Any]) -> None:
        """Start a new episode in the sub-environments ``idx`` and write their observations."""
        raise NotImplementedError

    def _step_envs(
        self, actions: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance all sub-environments and write observations.

        Sub-environments where ``active`` is False are reset right afterwards: their new state does
        not matter, but they must not consume random numbers. Returns float64 rewards and bool
        ``terminated``/``truncated`` arrays of shape ``(num_envs,)``.
        """
        raise NotImplementedError

    def _infos(self) -> dict[str, Any]:
        """Infos in the layout ``SyncVectorEnv`` produces (value arrays plus ``_key`` masks)."""
        return {}

    def _render_env(self, i: int) -> Any:
        raise NotImplementedError
