"""Saving and restoring the state of a vector env as plain data (arrays, strings, numbers).

:func:`vector_env_state` returns the state of fwmrl's batched envs (:class:`BatchedEnv`) and of a
``SyncVectorEnv`` whose sub-envs are fwmrl envs (each single env's ``state_dict`` plus the pending
autoresets), or ``None`` for envs whose state cannot be saved this way (other Gymnasium envs such as
MiniGrid or CartPole, and ``AsyncVectorEnv`` worker processes): those are reset with a seed instead,
and the run is then not bit-identical to an uninterrupted one. Nothing here unpickles anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import SyncVectorEnv

from fwmrl.envs._validation import EnvStateError, state_array, state_entry
from fwmrl.envs.vector import BatchedEnv


def _single_envs(env: SyncVectorEnv) -> list[gym.Env] | None:
    envs = [e.unwrapped for e in env.envs]
    ok = all(callable(getattr(e, "load_state_dict", None)) for e in envs)
    return envs if ok else None


def vector_env_state(env: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """The state of ``env`` as nested dicts of NumPy arrays and strings, or ``None`` when ``env`` is
    not one whose state fwmrl can save (see the module docstring)."""
    base = env.unwrapped
    if isinstance(base, BatchedEnv):
        return {"kind": "batched", "class": type(base).__name__, "state": base.state_dict()}
    if isinstance(base, SyncVectorEnv):
        envs = _single_envs(base)
        if envs is not None:
            return {
                "kind": "sync",
                "class": type(envs[0]).__name__,
                "autoreset": np.array(base._autoreset_envs, dtype=bool),
                "envs": [e.state_dict() for e in envs],
            }
    return None


def describe_env(env: gym.vector.VectorEnv) -> str:
    """A short name of a vector env for messages, e.g. ``AsyncVectorEnv of MiniGrid-MemoryS7-v0``."""
    base = env.unwrapped
    spec = getattr(env, "spec", None) or getattr(base, "spec", None)
    name = type(base).__name__
    if spec is None and isinstance(base, SyncVectorEnv) and base.envs:
        spec = base.envs[0].spec
    return f"{name} of {spec.id}" if spec is not None else name


def load_vector_env_state(env: gym.vector.VectorEnv, saved: Mapping[str, Any]) -> None:
    """Restore what :func:`vector_env_state` returned into an env built with the same arguments.

    Raises
    ------
    EnvStateError
        the saved state is of another kind, class or size, or an entry is malformed
        (the message names it).
    """
    kind = state_entry(saved, "kind")
    cls = state_entry(saved, "class")
    base = env.unwrapped
    if kind == "batched" and isinstance(base, BatchedEnv):
        if cls != type(base).__name__:
            raise EnvStateError(f"class: saved from {cls!r}, this env is {type(base).__name__!r}")
        base.load_state_dict(state_entry(saved, "state"))
        return
    if kind == "sync" and isinstance(base, SyncVectorEnv):
        envs = _single_envs(base)
        if envs is None or cls != type(envs[0]).__name__:
            raise EnvStateError(f"class: saved from {cls!r} envs, this is {describe_env(env)}")
        states = state_entry(saved, "envs")
        if not isinstance(states, (list, tuple)) or len(states) != len(envs):
            raise EnvStateError(f"envs: expected {len(envs)} saved env states")
        autoreset = state_array("autoreset", state_entry(saved, "autoreset"), bool, (len(envs),))
        for i, (e, s) in enumerate(zip(envs, states, strict=True)):
            try:
                e.load_state_dict(s)
            except EnvStateError as error:
                raise EnvStateError(f"envs[{i}].{error}") from None
        base._autoreset_envs = autoreset
        return
    raise EnvStateError(f"kind: saved from a {kind!r} env, this is {describe_env(env)}")
