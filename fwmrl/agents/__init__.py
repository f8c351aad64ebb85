"""Agents: the memory actor-critic policy and the A2C and PPO trainers."""

from fwmrl.agents.a2c import A2C, NonFiniteLossError, Rollout, compute_advantages
from fwmrl.agents.policy import MemoryActorCritic, NoMemoryCore
from fwmrl.agents.ppo import PPO

__all__ = [
    "A2C",
    "MemoryActorCritic",
    "NoMemoryCore",
    "NonFiniteLossError",
    "PPO",
    "Rollout",
    "compute_advantages",
]
