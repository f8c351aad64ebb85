"""Memory actor-critic: observation encoder → memory core → policy and value heads."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from gymnasium import spaces
from torch import Tensor, nn
from typing_extensions import override

from fwmrl.agents.spaces import DiagGaussian, ObservationFlattener, action_distribution
from fwmrl.memory import NO_CORE, CoreOutput, CoreState, MemoryCore, make_core
from fwmrl.threads import apply_default_threads

HEAD_INITS = ("small", "default")
"""``MemoryActorCritic(head_init=...)`` choices."""

CRITICS = ("shared", "separate")
"""``MemoryActorCritic(critic=...)`` choices."""


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

    @override
    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> NoMemoryState:
        return NoMemoryState(torch.zeros(batch_size, 1, device=device))

    @override
    def forward(
        self, x: Tensor, state: CoreState | None = None, resets: Tensor | None = None
    ) -> CoreOutput:
        x, state, _ = self._check_inputs(x, state, resets)
        return CoreOutput(x, state, None)


class MemoryActorCritic(nn.Module):
    """Actor-critic whose recurrent part is any fwmrl memory core.

    ``obs[T, B, ...] → flat features → encoder MLP → core (reset where an episode starts) →
    y[T, B, D]`` then a linear policy head (the action distribution's parameters: logits, or the
    Gaussian's means) and a linear value head, both on ``y`` (``critic="shared"``), or with
    ``critic="separate"`` the value head on a critic MLP of its own over the flat observation and
    ``y`` detached. Spaces: :mod:`fwmrl.agents.spaces`.

    Parameters
    ----------
    observation_space
        a single env's observation space (Box, Discrete, MultiDiscrete,
        MultiBinary, or Dict/Tuple of them).
    action_space
        a single env's action space (Discrete, MultiDiscrete, MultiBinary or Box;
        a Box gets a learned state-independent ``log_std``).
    core
        core name (``lstm``, ``fwm``, ``gated_fw``, ``mnm_g``, ``mnm_p`` or ``none``).
    core_kwargs
        the core's constructor arguments (``input_size`` is set here).
    encoder_sizes
        hidden sizes of the encoder MLP; ``[]`` feeds the flat observation to the core.
    activation
        ``"tanh"`` or ``"relu"``.
    head_init
        ``"small"`` (default): the policy head starts at orthogonal weights of gain 0.01 and a zero
        bias, so the first policy is near-uniform (as in CleanRL and SB3). ``"default"``: PyTorch's
        ``nn.Linear`` initialisation, as the FWM authors' meta-RL code has it; the head's first
        gradients then reach the core about as strongly as the value head's.
    critic
        ``"shared"`` (default): the value head sits on the core output ``y``, so the value loss
        trains the encoder and the core together with the policy loss. ``"separate"``: the value
        head sits on a critic MLP of its own (hidden sizes ``encoder_sizes``, same activation) over
        ``[flat observation, y.detach()]``: the critic reads the memory but its gradient never
        reaches the encoder or the core, which only the policy loss (and a core's aux loss) trains.
        No second recurrent state is carried, and the actor is the same module either way.

    Attributes
    ----------
    critic_encoder
        the critic MLP of ``critic="separate"``, or ``None``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        core: str = "fwm",
        core_kwargs: dict[str, Any] | None = None,
        encoder_sizes: list[int] | tuple[int, ...] = (64,),
        activation: str = "tanh",
        head_init: str = "small",
        critic: str = "shared",
    ) -> None:
        super().__init__()
        if head_init not in HEAD_INITS:
            raise ValueError(f"head_init: one of {', '.join(HEAD_INITS)}, got {head_init!r}")
        if critic not in CRITICS:
            raise ValueError(f"critic: one of {', '.join(CRITICS)}, got {critic!r}")
        self.critic = critic
        apply_default_threads()
        self.observation_space, self.action_space = observation_space, action_space
        self.flatten = ObservationFlattener(observation_space)
        self.action_dist = action_distribution(action_space)
        self.obs_size = self.flatten.size
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
        self.policy_head = nn.Linear(self.core.output_size, self.action_dist.param_size)
        self.log_std = (
            nn.Parameter(torch.zeros(self.action_dist.param_size))
            if isinstance(self.action_dist, DiagGaussian)
            else None
        )
        self.critic_encoder: nn.Sequential | None = None
        critic_width = self.core.output_size
        if critic == "separate":  # (created after the actor: the shared policy's init is kept)
            critic_layers: list[nn.Module] = []
            critic_width = self.obs_size + self.core.output_size
            for size in encoder_sizes:
                critic_layers += [nn.Linear(critic_width, size), act()]
                critic_width = size
            self.critic_encoder = nn.Sequential(*critic_layers)
        self.value_head = nn.Linear(critic_width, 1)
        if head_init == "small":  # near-uniform initial logits
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

    def preprocess(self, obs: Any, batch_dims: int = 2) -> Tensor:
        """Raw observations (``batch_dims`` leading batch dimensions; a dict/tuple for Dict/Tuple
        spaces) → float features ``[..., obs_size]``."""
        return self.flatten(obs, batch_dims).to(self.policy_head.weight.device)

    @property
    def n_actions(self) -> int:
        """Outputs of the policy head (the number of actions for a Discrete space)."""
        return self.action_dist.param_size

    def forward(
        self, obs: Tensor, state: CoreState, resets: Tensor
    ) -> tuple[Tensor, Tensor, CoreState, Tensor | None]:
        """Run over a sequence (a training pass: it returns the core's auxiliary loss).

        Parameters
        ----------
        obs
            observations ``[T, B, *obs_shape]``.
        state
            core state before the first step.
        resets
            bool ``[T, B]``, True where ``obs[t, b]`` is the first observation of an episode.

        Returns
        -------
        ``(logits [T, B, A], values [T, B], state after the last step, aux loss)``: the core's
        auxiliary loss ``[T, B]`` (MNM's meta loss, to add to the loss over the valid steps) or
        ``None`` for cores without one (:class:`~fwmrl.memory.base.CoreOutput`).
        """
        return self._run(self.preprocess(obs, batch_dims=2), state, resets)

    def step(
        self, obs: Tensor, state: CoreState, reset: Tensor
    ) -> tuple[Tensor, Tensor, CoreState]:
        """One step for acting: ``obs[B, ...]``, ``reset[B]`` → ``(logits [B, A], values [B],
        state)`` (no auxiliary loss: a training pass is :meth:`forward`)."""
        return self.step_flat(self.preprocess(obs, batch_dims=1), state, reset)

    def forward_flat(
        self, flat: Tensor, state: CoreState, resets: Tensor
    ) -> tuple[Tensor, Tensor, CoreState, Tensor | None]:
        """:meth:`forward` on features ``[T, B, obs_size]`` already made by :meth:`preprocess`
        (the trainers flatten each observation once, when the env returns it)."""
        return self._run(flat, state, resets)

    def step_flat(
        self, flat: Tensor, state: CoreState, reset: Tensor
    ) -> tuple[Tensor, Tensor, CoreState]:
        """:meth:`step` on features ``[B, obs_size]``."""
        logits, values, state, _ = self._run(flat.unsqueeze(0), state, reset.unsqueeze(0))
        return logits.squeeze(0), values.squeeze(0), state

    def _run(
        self, flat: Tensor, state: CoreState, resets: Tensor
    ) -> tuple[Tensor, Tensor, CoreState, Tensor | None]:
        y, state, aux = self.core(self.encoder(flat), state, resets)
        if self.critic_encoder is None:
            return self.policy_head(y), self.value_head(y).squeeze(-1), state, aux
        critic_features = self.critic_encoder(torch.cat([flat, y.detach()], dim=-1))
        return self.policy_head(y), self.value_head(critic_features).squeeze(-1), state, aux

    def sample(
        self,
        params: Tensor,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> Tensor:
        """Actions for the head outputs ``params [B, param_size]`` (the distribution's mode with
        ``deterministic=True``), as the trainers store them; ``action_dist.to_env`` turns them
        into what ``env.step`` takes."""
        if deterministic:
            return self.action_dist.mode(params)
        return self.action_dist.draw(params, generator, self.log_std)
