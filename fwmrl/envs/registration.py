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

SINGLE_ENV_SPECS: dict[str, str] = {
    "FWM-CueRecall-v0": "fwmrl.envs.cue_recall:CueRecallEnv",
}
"""Registered id -> entry point of the fwmrl envs without a batched implementation (Gymnasium
vectorises them; Box actions, outside the Discrete-action checks every :data:`ENV_IDS` env passes)."""

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
    for env_id, entry_point in SINGLE_ENV_SPECS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, disable_env_checker=False)
