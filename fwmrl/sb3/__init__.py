"""Stable-Baselines3 drop-ins: memory policies for recurrent PPO, and a recurrent A2C.

- :class:`MemoryPolicy` / :class:`MultiInputMemoryPolicy`: actor-critic policies with any fwmrl
  core (``policy_kwargs={"core": "fwm", "core_kwargs": {...}}``).
- :class:`MemoryRecurrentPPO`: sb3-contrib's ``RecurrentPPO`` (subclass, same calls) for them.
- :class:`RecurrentA2C`: SB3's A2C conventions, truncated BPTT over each rollout.
- :class:`MemoryRolloutBuffer`: stores core states only at sequence starts.
- :func:`make_sb3_vec_env`: a ``DummyVecEnv`` / ``SubprocVecEnv`` of fwmrl (or MiniGrid) envs.

States through ``predict`` are tuples of batch-first NumPy arrays (see :mod:`fwmrl.sb3.policies`).
"""

from fwmrl.sb3.a2c import RecurrentA2C
from fwmrl.sb3.buffers import (
    MemoryDictRolloutBuffer,
    MemoryRolloutBuffer,
    MemoryRolloutSamples,
    memory_buffer_class,
)
from fwmrl.sb3.policies import MemoryPolicy, MemoryStates, MultiInputMemoryPolicy
from fwmrl.sb3.ppo import MemoryRecurrentPPO
from fwmrl.sb3.vec_env import make_sb3_vec_env

__all__ = [
    "MemoryDictRolloutBuffer",
    "MemoryPolicy",
    "MemoryRecurrentPPO",
    "MemoryRolloutBuffer",
    "MemoryRolloutSamples",
    "MemoryStates",
    "MultiInputMemoryPolicy",
    "RecurrentA2C",
    "make_sb3_vec_env",
    "memory_buffer_class",
]
