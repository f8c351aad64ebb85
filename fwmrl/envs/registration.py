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
    "FWM-Recall-v0": (
        "fwmrl.envs.recall:RecallEnv",
        "fwmrl.envs.recall:RecallVectorEnv",
    ),
}
"""Registered id -> (entry point, vector entry point)."""

SINGLE_ENV_SPECS: dict[str, str] = {
    "FWM-CueRecall-v0": "fwmrl.envs.cue_recall:CueRecallEnv",
}
"""Registered id -> entry point of the fwmrl envs without a batched implementation (Gymnasium
vectorises them; Box actions, outside the Discrete-action checks every :data:`ENV_IDS` env passes)."""

ENV_IDS: tuple[str, ...] = tuple(ENV_SPECS)

EXTRA_ENV_SPECS: dict[str, tuple[str, str]] = {
    "FWM-MetaWorld-ML1-v0": (
        "fwmrl.envs.metaworld_tasks:make_ml1",
        "fwmrl.envs.metaworld_tasks:make_ml1_vector",
    ),
    "FWM-MetaWorld-ML10-v0": (
        "fwmrl.envs.metaworld_tasks:make_ml10",
        "fwmrl.envs.metaworld_tasks:make_ml10_vector",
    ),
    "FWM-MetaWorld-ML45-v0": (
        "fwmrl.envs.metaworld_tasks:make_ml45",
        "fwmrl.envs.metaworld_tasks:make_ml45_vector",
    ),
    "FWM-HalfCheetahVel-v0": (
        "fwmrl.envs.mujoco_tasks:make_half_cheetah_vel",
        "fwmrl.envs.mujoco_tasks:make_half_cheetah_vel_vector",
    ),
    "FWM-HalfCheetahDir-v0": (
        "fwmrl.envs.mujoco_tasks:make_half_cheetah_dir",
        "fwmrl.envs.mujoco_tasks:make_half_cheetah_dir_vector",
    ),
}
"""The RL^2 trial ids that need the optional extra ``fwmrl[metaworld]`` (Meta-World, MuJoCo):
registered always, their modules imported only when one is made."""

EXTRA_ENV_IDS: tuple[str, ...] = tuple(EXTRA_ENV_SPECS)


def register_envs() -> None:
    """Register every fwmrl id (idempotent).

    The envs truncate their episodes themselves (``max_steps`` arguments), so no ``TimeLimit`` is
    added and ``gym.make`` and ``gym.make_vec(..., vectorization_mode="vector_entry_point")`` take
    the same keyword arguments. The ids of :data:`EXTRA_ENV_SPECS` are registered too; making one
    without the extra raises an ``ImportError`` that says how to install it.
    """
    for env_id, (entry_point, vector_entry_point) in {**ENV_SPECS, **EXTRA_ENV_SPECS}.items():
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
