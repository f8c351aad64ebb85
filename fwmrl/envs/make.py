"""``make_env`` and ``make_vec_env``: build any supported env with the wrappers policies need."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

from fwmrl.envs.minigrid_wrappers import FlatMiniGridObs
from fwmrl.envs.registration import ENV_IDS, EXTRA_ENV_IDS, register_envs

MINIGRID_PREFIXES = ("MiniGrid-", "BabyAI-")


def is_minigrid_id(env_id: str) -> bool:
    """Whether ``env_id`` names a MiniGrid (or BabyAI) env."""
    return env_id.split(":")[-1].startswith(MINIGRID_PREFIXES)


def _ensure_registered(env_id: str) -> None:
    register_envs()
    if is_minigrid_id(env_id):
        import minigrid  # noqa: F401  (registers the MiniGrid ids)


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, **kwargs)``, with :class:`FlatMiniGridObs` applied to MiniGrid ids.

    Any other Gymnasium id with ``Box`` or ``Discrete`` spaces is returned as ``gym.make`` builds it.
    """
    _ensure_registered(env_id)
    if is_minigrid_id(env_id):
        one_hot = kwargs.pop("one_hot", False)
        return FlatMiniGridObs(gym.make(env_id, **kwargs), one_hot=one_hot)
    return gym.make(env_id, **kwargs)


VECTORIZATIONS = ("auto", "sync", "async")
"""Values of ``env.vectorization`` (see :func:`make_vec_env`)."""


def make_vec_env(
    env_id: str,
    num_envs: int,
    vectorization: str = "auto",
    async_context: str | None = None,
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` copies, in ``AutoresetMode.NEXT_STEP``.

    Parameters
    ----------
    env_id
        a Gymnasium id.
    num_envs
        copies stepped together.
    vectorization
        ``auto``: fwmrl ids use their natively batched NumPy implementation
        (``vector_entry_point``; the Meta-World and MuJoCo trial ids a ``VectorTrial``), other
        ids a ``SyncVectorEnv`` of :func:`make_env` envs (so
        MiniGrid observations are flattened); ``sync``: always a ``SyncVectorEnv`` of
        :func:`make_env` envs; ``async``: a ``gymnasium.vector.AsyncVectorEnv`` of
        :func:`make_env` envs, each stepped in its own worker process.
    async_context
        multiprocessing start method of the ``async`` workers (``fork``,
        ``forkserver``, ``spawn``; ``None``: the platform default).
    kwargs
        arguments of the env constructor.

    All three give the same transitions for the same seeds and actions (sub-env ``i`` of
    ``reset(seed=s)`` is seeded with ``s + i``).
    """
    if vectorization not in VECTORIZATIONS:
        raise ValueError(
            f"unknown vectorization {vectorization!r}; allowed: {', '.join(VECTORIZATIONS)}"
        )
    _ensure_registered(env_id)
    if vectorization == "auto" and env_id.split(":")[-1] in ENV_IDS + EXTRA_ENV_IDS:
        return gym.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
        )
    fns = [functools.partial(make_env, env_id, **kwargs) for _ in range(num_envs)]
    if vectorization == "async":
        return gym.vector.AsyncVectorEnv(fns, context=async_context)
    return gym.vector.SyncVectorEnv(fns)
