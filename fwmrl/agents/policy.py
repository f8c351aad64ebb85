"""Memory actor-critic: observation encoder → memory core → policy and value heads."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from fwmrl.memory import NO_CORE, CoreState, MemoryCore, make_core
from fwmrl.threads import apply_default_threads


@dataclasses.dataclass
class NoMemoryState(CoreState):
    """Placeholder state of :class:`NoMemoryCore` (one zero per sequence)."""

    dummy: Tensor


class NoMemoryCore(MemoryCore):
    """The identity "core" of the memoryless baseline: ``y_t = x_t``, nothing is carried."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.output_size = input_size

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> NoMemoryState:
        return NoMemoryState(torch.zeros(batch_size, 1, device=device))

    def forward(
        self, x: Tensor, state: CoreState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, CoreState]:
        x, state, _ = self._check_inputs(x, state, resets)
        self.aux_loss = self.aux_loss_per_step = None
        return x, state


def observation_size(space: spaces.Space) -> int:
    """Features of a flattened observation: ``prod(shape)`` for a Box, ``n`` (one-hot) for Discrete."""
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    raise ValueError(
        f"observation space {space} is not supported; use a Box or Discrete observation space "
        "(MiniGrid ids are flattened automatically)"
    )


class MemoryActorCritic(nn.Module):
    """Actor-critic whose recurrent part is any fwmrl memory core.

    ``obs[T, B, ...] → encoder MLP → core (reset where an episode starts) → y[T, B, D]`` then a linear
    policy head (action logits) and a linear value head, both on ``y``.

    Args:
        observation_space: a single env's observation space (Box or Discrete).
        action_space: a single env's action space (Discrete).
        core: core name (``lstm``, ``fwm``, ``gated_fw``, ``mnm_g``, ``mnm_p`` or ``none``).
        core_kwargs: the core's constructor arguments (``input_size`` is set here).
        encoder_sizes: hidden sizes of the encoder MLP; ``[]`` feeds the flat observation to the core.
        activation: ``"tanh"`` or ``"relu"``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        core: str = "fwm",
        core_kwargs: dict[str, Any] | None = None,
        encoder_sizes: list[int] | tuple[int, ...] = (64,),
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        apply_default_threads()
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(
                f"action space {action_space} is not supported; fwmrl's A2C takes Discrete actions"
            )
        self.observation_space = observation_space
        self.obs_size = observation_size(observation_space)
        self.n_actions = int(action_space.n)
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        layers: list[nn.Module] = []
        width = self.obs_size
        for size in encoder_sizes:
            layers += [nn.Linear(width, size), act()]
            width = size
        self.encoder = nn.Sequential(*layers)
        if core == NO_CORE:
            self.core: MemoryCore = NoMemoryCore(width)
        else:
            self.core = make_core(core, input_size=width, **(core_kwargs or {}))
        self.policy_head = nn.Linear(self.core.output_size, self.n_actions)
        self.value_head = nn.Linear(self.core.output_size, 1)
        # small initial logits: a near-uniform starting policy (as in CleanRL / SB3)
        nn.init.orthogonal_(self.policy_head.weight, gain=0.01)
        nn.init.zeros_(self.policy_head.bias)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> CoreState:
        """The core state of ``batch_size`` fresh episodes."""
        return self.core.initial_state(batch_size, device)

    def initial_episode_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> CoreState:
        """The core state of ``batch_size`` fresh episodes in the form that is cheapest to run
        from (FWM: its fast weights as factors, see ``FWMCore.initial_episode_state``); the same
        values as :meth:`initial_state`."""
        make = getattr(self.core, "initial_episode_state", None)
        if make is None:
            return self.core.initial_state(batch_size, device)
        return make(batch_size, device)

    def preprocess(self, obs: Tensor) -> Tensor:
        """Raw observations ``[..., *obs_shape]`` → float features ``[..., obs_size]``."""
        if isinstance(self.observation_space, spaces.Discrete):
            return nn.functional.one_hot(obs.long(), self.n_obs_classes).float()
        lead = obs.shape[: obs.dim() - len(self.observation_space.shape)]
        return obs.reshape(*lead, self.obs_size).float()

    @property
    def n_obs_classes(self) -> int:
        return self.obs_size

    def forward(
        self, obs: Tensor, state: CoreState, resets: Tensor
    ) -> tuple[Tensor, Tensor, CoreState]:
        """Run over a sequence.

        Args:
            obs: observations ``[T, B, *obs_shape]``.
            state: core state before the first step.
            resets: bool ``[T, B]``, True where ``obs[t, b]`` is the first observation of an episode.

        Returns:
            ``(logits [T, B, A], values [T, B], state after the last step)``.
        """
        features = self.encoder(self.preprocess(obs))
        y, state = self.core(features, state, resets)
        return self.policy_head(y), self.value_head(y).squeeze(-1), state

    def step(
        self, obs: Tensor, state: CoreState, reset: Tensor
    ) -> tuple[Tensor, Tensor, CoreState]:
        """One step: ``obs[B, ...]``, ``reset[B]`` → ``(logits [B, A], values [B], state)``."""
        logits, values, state = self.forward(obs.unsqueeze(0), state, reset.unsqueeze(0))
        return logits.squeeze(0), values.squeeze(0), state

    @property
    def aux_loss_per_step(self) -> Tensor | None:
        """The core's auxiliary loss ``[T, B]`` of the last forward (MNM's meta loss), or None."""
        return self.core.aux_loss_per_step
