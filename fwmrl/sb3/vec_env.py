"""SB3 vector envs of fwmrl's envs (and MiniGrid ids with flat observations)."""

from __future__ import annotations

import functools
from typing import Any

from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from fwmrl.envs import make_env


def make_sb3_vec_env(
    env_id: str,
    n_envs: int,
    seed: int | None = None,
    subproc: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    start_method: str | None = None,
) -> VecEnv:
    """An SB3 ``VecEnv`` of :func:`fwmrl.envs.make_env` envs.

    Parameters
    ----------
    env_id:
        A Gymnasium id (fwmrl ids, MiniGrid ids with flat observations, any registered id).
    n_envs:
        Number of envs.
    seed:
        Sub-env ``i`` is seeded with ``seed + i``.
    subproc:
        Step each env in its own worker process (SB3's ``SubprocVecEnv``); otherwise a
        ``DummyVecEnv`` steps them in this process.
    env_kwargs:
        Keyword arguments of every env.
    start_method:
        ``multiprocessing`` start method of the workers (``subproc=True`` only).
    """
    return sb3_make_vec_env(
        functools.partial(make_env, env_id, **(env_kwargs or {})),
        n_envs=n_envs,
        seed=seed,
        vec_env_cls=SubprocVecEnv if subproc else DummyVecEnv,
        vec_env_kwargs={"start_method": start_method} if subproc and start_method else None,
    )
