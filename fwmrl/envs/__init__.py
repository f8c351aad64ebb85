"""Environments: FWM-Gridworld-v0, FWM-GraphNav-v0, FWM-KeyValue-v0, FWM-Recall-v0, the Trial wrappers,
MiniGrid wrappers.

Importing this package (or ``fwmrl``) registers the ids with Gymnasium, also the RL^2 trial ids that
need the extra ``fwmrl[metaworld]`` (:data:`EXTRA_ENV_IDS`: Meta-World ML1/ML10/ML45 in
:mod:`fwmrl.envs.metaworld_tasks`, HalfCheetah velocity/direction in :mod:`fwmrl.envs.mujoco_tasks`).
"""

from fwmrl.envs._validation import EnvStateError
from fwmrl.envs.cue_recall import CueRecallEnv
from fwmrl.envs.graphnav import GraphNavEnv, GraphNavVectorEnv, graph_banks, sample_graphs
from fwmrl.envs.gridworld import (
    GridworldEnv,
    GridworldVectorEnv,
    normalized_score,
    reference_returns,
)
from fwmrl.envs.keyvalue import (
    KeyValueEnv,
    KeyValueSequence,
    KeyValueVectorEnv,
    generate_batch,
    generate_sequence,
)
from fwmrl.envs.make import make_env, make_vec_env
from fwmrl.envs.minigrid_wrappers import FlatMiniGridObs
from fwmrl.envs.recall import RecallEnv, RecallVectorEnv
from fwmrl.envs.registration import ENV_IDS, EXTRA_ENV_IDS, register_envs
from fwmrl.envs.state import describe_env, load_vector_env_state, vector_env_state
from fwmrl.envs.trial import Trial, VectorTrial

register_envs()

__all__ = [
    "CueRecallEnv",
    "ENV_IDS",
    "EXTRA_ENV_IDS",
    "EnvStateError",
    "FlatMiniGridObs",
    "GraphNavEnv",
    "GraphNavVectorEnv",
    "GridworldEnv",
    "GridworldVectorEnv",
    "KeyValueEnv",
    "KeyValueSequence",
    "KeyValueVectorEnv",
    "RecallEnv",
    "RecallVectorEnv",
    "Trial",
    "VectorTrial",
    "describe_env",
    "generate_batch",
    "generate_sequence",
    "graph_banks",
    "load_vector_env_state",
    "make_env",
    "make_vec_env",
    "normalized_score",
    "reference_returns",
    "register_envs",
    "sample_graphs",
    "vector_env_state",
]
