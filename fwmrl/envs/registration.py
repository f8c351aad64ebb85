"""Registration of the fwmrl environments with Gymnasium (done by ``import fwmrl``)."""

from __future__ import annotations

import gymnasium as gym

ENV_SPECS: dict[str, tuple[str, str]] = {
    "FWM-Gridworld-v0": (
        "fwmrl.envs.gridworld:GridworldEnv",
        "fwmrl.envs.gridworld:GridworldVectorEnv",
    ),
    "FWM-GraphNav-v0": (
        "fwmrl.envs.graphnav:GraphNavEnv",
        "fwmrl.envs.graphnav:GraphNavVectorEnv",
    ),
    "FWM-KeyValue-v0": (
        "fwmrl.envs.keyvalue:KeyValueEnv",
        "fwmrl.envs.keyvalue:KeyValueVectorEnv",
    ),
}
"""Registered id -> (entry point, vector entry point)."""

ENV_IDS: tuple[str, ...] = tuple(ENV_SPECS)


def register_envs() -> None:
    """Register every fwmrl id (idempotent).

    The envs truncate their episodes themselves (``max_steps`` arguments), so no ``TimeLimit`` is
    added and ``gym.make`` and ``gym.make_vec(..., vectorization_mode="vector_entry_point")`` take
    the same keyword arguments.
    """
    for env_id, (entry_point, vector_entry_point) in ENV_SPECS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=entry_point,
                vector_entry_point=vector_entry_point,
                disable_env_checker=False,
            )
