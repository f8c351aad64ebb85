"""Actor-critic policies whose recurrent memory is any fwmrl core (LSTM, FWM, gated FW, MNM-g/-p).

:class:`MemoryPolicy` is an SB3 :class:`~stable_baselines3.common.policies.ActorCriticPolicy`:
observations go through the usual SB3 features extractor, then through a memory core, then through
the usual ``net_arch`` MLP to the action distribution and the value head. It is trained by
:class:`fwmrl.sb3.MemoryRecurrentPPO` and :class:`fwmrl.sb3.RecurrentA2C`.

How recurrent states travel
---------------------------
Inside the algorithms a state is a :class:`MemoryStates` (the actor core's
:class:`~fwmrl.memory.CoreState`, plus the critic's when the critic has its own memory). Through
:meth:`MemoryPolicy.predict` -- and so ``model.predict`` and ``evaluate_policy`` -- states travel the
way SB3 expects, as a **tuple of NumPy arrays**: the actor state's fields in declaration order, each
**batch first** ``[n_envs, ...]`` (e.g. FWM: ``(pi.h, pi.c, pi.F)``). Acting needs no value, so
``predict`` runs only the actor's core (as sb3-contrib's ``RecurrentPPO``, whose ``predict`` state is
the actor LSTM's ``(h, c)``). ``state=None`` starts fresh sequences (the core's own, possibly learned,
initial state). Passing a :class:`MemoryStates` instead returns one (its actor part advanced, no
critic part), which avoids the NumPy round trip for large states. The arrays are the state tensors'
own memory on CPU (no copies either way).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    MlpExtractor,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from fwmrl.memory import CoreOutput, CoreState, MemoryCore, available_cores, make_core
from fwmrl.memory.fwm import can_run_jointly, run_jointly
from fwmrl.threads import apply_default_threads

CRITIC_MEMORY_MODES = ("separate", "shared", "none")


@dataclasses.dataclass
class MemoryStates:
    """Recurrent state of a :class:`MemoryPolicy` for a batch of environments.

    Attributes
    ----------
    pi:
        State of the actor's core (also the critic's when the memory is shared).
    vf:
        State of the critic's own core, or ``None`` when the critic has none (shared memory or
        ``critic_memory="none"``).
    """

    pi: CoreState
    vf: CoreState | None = None

    def parts(self) -> list[CoreState]:
        """The core states present, actor first."""
        return [self.pi] if self.vf is None else [self.pi, self.vf]

    def _map(self, fn: Any) -> MemoryStates:
        return MemoryStates(fn(self.pi), None if self.vf is None else fn(self.vf))

    @property
    def batch_size(self) -> int:
        """Number of environments (sequences) the state holds."""
        return self.pi.batch_size

    @property
    def numel_per_sequence(self) -> int:
        """Floats of state per environment (actor and critic together)."""
        return sum(part.numel_per_sequence for part in self.parts())

    @property
    def nbytes(self) -> int:
        """Bytes held by all tensors of the state."""
        return sum(t.numel() * t.element_size() for part in self.parts() for _, t in part.tensors())

    def __getitem__(self, index: Any) -> MemoryStates:
        """Select environments along the batch (an int keeps a batch of one)."""
        return self._map(lambda s: s[index])

    def detach(self) -> MemoryStates:
        """The same values cut from the autograd graph."""
        return self._map(lambda s: s.detach())

    def clone(self) -> MemoryStates:
        """A copy that owns its tensors."""
        return self._map(lambda s: s.clone())

    def to(self, *args: Any, **kwargs: Any) -> MemoryStates:
        """Move or cast every tensor (arguments of :meth:`torch.Tensor.to`)."""
        return self._map(lambda s: s.to(*args, **kwargs))

    @classmethod
    def cat(cls, states: Sequence[MemoryStates]) -> MemoryStates:
        """Concatenate states along the batch."""
        if not states:
            raise ValueError("MemoryStates.cat: 'states' is empty; pass at least one state")
        pi = type(states[0].pi).cat([s.pi for s in states])
        if states[0].vf is None:
            return cls(pi, None)
        return cls(pi, type(states[0].vf).cat([s.vf for s in states]))  # type: ignore[misc]

    def to_numpy(self) -> tuple[np.ndarray, ...]:
        """The SB3 form: every field as a batch-first NumPy array, actor fields then critic fields."""
        return tuple(t.detach().cpu().numpy() for part in self.parts() for _, t in part.tensors())


class MemoryPolicy(ActorCriticPolicy):
    """Actor-critic policy with an fwmrl memory core between the features extractor and the MLP.

    Data flow per step: ``obs -> features extractor -> core -> net_arch MLP -> action / value``.
    With ``critic_memory="separate"`` the critic has its own core of the same kind; with
    ``"shared"`` both heads read the actor's core output (and the value loss trains the core too);
    with ``"none"`` the critic sees the features through a linear layer, without memory. Two FWM
    memories (``core="fwm"``, ``"separate"``) run their fast-weight scans as one batch
    (:func:`fwmrl.memory.fwm.run_jointly`: the same values and gradients, the scan's per-step cost
    paid once); their controllers run on their own.

    Parameters
    ----------
    observation_space, action_space, lr_schedule:
        As in :class:`~stable_baselines3.common.policies.ActorCriticPolicy`.
    net_arch:
        MLP after the core, SB3 format (``[64]`` or ``dict(pi=[64], vf=[64])``); ``None`` gives
        SB3's default ``dict(pi=[64, 64], vf=[64, 64])``, ``[]`` heads directly on the core.
    activation_fn, ortho_init, use_sde, log_std_init, full_std, use_expln, squash_output:
        As in SB3 (orthogonal initialisation is applied to the extractor and the MLP, not to cores).
    features_extractor_class, features_extractor_kwargs, share_features_extractor, normalize_images:
        As in SB3; any observation space SB3 supports works (``CombinedExtractor`` for ``Dict``,
        see :class:`MultiInputMemoryPolicy`).
    optimizer_class, optimizer_kwargs:
        As in SB3 (the cores' parameters are optimised with the rest); for Adam,
        ``optimizer_kwargs=None`` means ``{"eps": 1e-5, "foreach": True}`` (SB3's ``eps``, and
        one call per operation for all parameters: the same update, faster on CPU).
    core:
        Name of the memory core, one of :func:`fwmrl.memory.available_cores`
        (``"fwm"``, ``"gated_fw"``, ``"lstm"``, ``"mnm_g"``, ``"mnm_p"``).
    core_kwargs:
        Keyword arguments of the core (``input_size`` is set to the features dimension), e.g.
        ``{"hidden_size": 32, "memory_size": 16}`` for FWM.
    critic_memory:
        ``"separate"`` (default, as sb3-contrib), ``"shared"`` or ``"none"``; see above.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        core: str = "lstm",
        core_kwargs: dict[str, Any] | None = None,
        critic_memory: str = "separate",
    ) -> None:
        apply_default_threads()
        if core not in available_cores():
            raise ValueError(
                f"MemoryPolicy: 'core' must be one of {available_cores()}, got {core!r}"
            )
        if core_kwargs is not None and not isinstance(core_kwargs, dict):
            raise TypeError(
                f"MemoryPolicy: 'core_kwargs' must be a dict or None, got {type(core_kwargs).__name__}"
            )
        if "input_size" in (core_kwargs or {}):
            raise ValueError(
                "MemoryPolicy: 'core_kwargs' must not contain 'input_size' "
                "(it is the features extractor's output size)"
            )
        if critic_memory not in CRITIC_MEMORY_MODES:
            raise ValueError(
                f"MemoryPolicy: 'critic_memory' must be one of {list(CRITIC_MEMORY_MODES)}, "
                f"got {critic_memory!r}"
            )
        if critic_memory == "shared" and not share_features_extractor:
            raise ValueError(
                "MemoryPolicy: critic_memory='shared' needs share_features_extractor=True "
                "(one core cannot read two different feature streams)"
            )
        self.core_name = core
        self.core_kwargs = dict(core_kwargs or {})
        self.critic_memory = critic_memory
        if optimizer_kwargs is None and optimizer_class is th.optim.Adam:
            # SB3's default (eps=1e-5), stepping all parameters in one call per operation (the
            # per-tensor loop costs about 1 ms per update on one CPU thread)
            optimizer_kwargs = {"eps": 1e-5, "foreach": True}
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            ortho_init,
            use_sde,
            log_std_init,
            full_std,
            use_expln,
            squash_output,
            features_extractor_class,
            features_extractor_kwargs,
            share_features_extractor,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
        )

    # ------------------------------------------------------------------ build
    def make_core(self) -> MemoryCore:
        """Build one memory core on the features (hook: override to build cores differently)."""
        return make_core(self.core_name, input_size=self.features_dim, **self.core_kwargs)

    def _build_mlp_extractor(self) -> None:
        # Called by ActorCriticPolicy._build before the optimizer is created, so the cores'
        # parameters are optimised too.
        self.memory_actor = self.make_core()
        self.memory_critic: MemoryCore | None = None
        self.critic_projection: nn.Module | None = None
        if self.critic_memory == "separate":
            self.memory_critic = self.make_core()
        elif self.critic_memory == "none":
            self.critic_projection = nn.Linear(self.features_dim, self.memory_actor.output_size)
        self.mlp_extractor = MlpExtractor(
            self.memory_actor.output_size,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            device=self.device,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            core=self.core_name, core_kwargs=self.core_kwargs, critic_memory=self.critic_memory
        )
        return data

    @property
    def lstm_actor(self) -> nn.Module:
        """Not available: sb3-contrib's ``RecurrentPPO`` assumes an ``nn.LSTM`` here."""
        raise TypeError(
            "MemoryPolicy does not work with sb3_contrib.RecurrentPPO, which assumes an nn.LSTM "
            "state; use fwmrl.sb3.MemoryRecurrentPPO (same constructor and calls) instead"
        )

    # ------------------------------------------------------------------ state
    def cores(self) -> list[MemoryCore]:
        """The cores with a state, actor first (the order of :meth:`MemoryStates.parts`)."""
        return (
            [self.memory_actor]
            if self.memory_critic is None
            else [self.memory_actor, self.memory_critic]
        )

    def initial_state(self, n_envs: int) -> MemoryStates:
        """Fresh states for ``n_envs`` environments (each core's own initial state)."""
        parts = [core.initial_state(n_envs, self.device) for core in self.cores()]
        return MemoryStates(*parts)

    @property
    def state_numel(self) -> int:
        """Floats of recurrent state per environment (actor and critic cores together)."""
        return sum(core.state_numel for core in self.cores())

    def _actor_state_layout(self) -> tuple[type[CoreState], tuple[str, ...], list[tuple[int, ...]]]:
        """The actor state's type, field names and per-sequence field shapes (computed once)."""
        layout = getattr(self, "_state_layout", None)
        if layout is None:
            template = self.memory_actor.initial_state(1, "cpu")
            names = tuple(name for name, _ in template.tensors())
            shapes = [tuple(t.shape[1:]) for _, t in template.tensors()]
            layout = (type(template), names, shapes)
            self._state_layout = layout
        return layout

    def states_from_numpy(
        self, state: Sequence[np.ndarray], _device: th.device | None = None
    ) -> MemoryStates:
        """Rebuild the :class:`MemoryStates` (actor part) from the tuple :meth:`predict` returns.

        The arrays become tensors without a copy where their dtype and device already match.
        """
        state_type, names, shapes = self._actor_state_layout()
        if not isinstance(state, (tuple, list)) or len(state) != len(names):
            got = type(state).__name__ if not isinstance(state, (tuple, list)) else len(state)
            raise ValueError(
                f"MemoryPolicy.predict: 'state' must be None, a MemoryStates, or a tuple of "
                f"{len(names)} arrays {[f'pi.{n}' for n in names]} (the actor core's state, "
                f"batch first, as predict returns it), got {got}"
            )
        dtype = self.memory_actor_dtype
        device = self.device if _device is None else _device
        data: dict[str, th.Tensor] = {}
        batch = 0
        for name, shape, array in zip(names, shapes, state, strict=True):
            tensor = th.as_tensor(array, dtype=dtype, device=device)
            batch = tensor.shape[0] if tensor.dim() and not data else batch
            if tensor.dim() == 0 or tuple(tensor.shape) != (batch, *shape):
                raise ValueError(
                    f"MemoryPolicy.predict: 'state' field pi.{name} must have shape "
                    f"[n_envs, {', '.join(map(str, shape))}] with the same n_envs in every "
                    f"field, got {tuple(tensor.shape)}"
                )
            data[name] = tensor
        return MemoryStates(state_type(**data))

    @property
    def memory_actor_dtype(self) -> th.dtype:
        """Floating dtype of the actor core's parameters (and so of its state)."""
        found = getattr(self, "_dtype_parameter", None)
        if found is None:  # looked up once (walking the module tree costs more than a step);
            # kept in a tuple so that the module does not register it as its own parameter
            found = self._dtype_parameter = (next(self.memory_actor.parameters()),)
        return found[0].dtype

    # ------------------------------------------------------------ computation
    def _extract(self, obs: PyTorchObs, critic: bool) -> th.Tensor:
        """Features for one head only (the actor's, or the critic's with ``critic=True``)."""
        if self.share_features_extractor:
            extractor = self.features_extractor
        else:
            extractor = self.vf_features_extractor if critic else self.pi_features_extractor
        return extractor(preprocess_obs(obs, self.observation_space, self.normalize_images))

    def _features(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        features = self.extract_features(obs)
        if self.share_features_extractor:
            return features, features  # type: ignore[return-value]
        return features  # type: ignore[return-value]

    def _run_core(
        self, core: MemoryCore, features: th.Tensor, state: CoreState, resets: th.Tensor, n_seq: int
    ) -> CoreOutput:
        """``core`` over ``T * n_seq`` time-major flattened features: outputs ``[T * n_seq, D]``,
        the state after the last step and the core's auxiliary loss ``[T, n_seq]`` (or ``None``)."""
        length = features.shape[0] // n_seq
        y, state, aux = core(features.reshape(length, n_seq, -1), state, resets)
        return CoreOutput(y.reshape(length * n_seq, -1), state, aux)

    def _resets(
        self, episode_starts: th.Tensor | None, n_seq: int, device: th.device
    ) -> th.Tensor | None:
        if episode_starts is None:  # no episode starts anywhere
            return None
        return episode_starts.reshape(-1, n_seq).to(device=device, dtype=th.bool)

    def _check_batch(self, states: MemoryStates | CoreState, n_seq: int) -> None:
        if states.batch_size != n_seq:
            raise ValueError(
                f"MemoryPolicy: 'states' holds {states.batch_size} environments but the "
                f"observations hold {n_seq}"
            )

    def _sequence_latents(
        self,
        obs: PyTorchObs,
        states: MemoryStates,
        episode_starts: th.Tensor | None,
        n_seq: int,
    ) -> tuple[th.Tensor, th.Tensor, MemoryStates, th.Tensor | None]:
        """Run extractor, cores and MLP over ``T * n_seq`` time-major flattened observations.

        Returns latents ``[T * n_seq, D_pi]``, ``[T * n_seq, D_vf]``, the final states and the
        cores' auxiliary loss (:func:`_aux_loss`).
        """
        self._check_batch(states, n_seq)
        pi_features, vf_features = self._features(obs)
        resets = self._resets(episode_starts, n_seq, pi_features.device)
        if self.memory_critic is not None and self._scan_jointly(states):
            length = pi_features.shape[0] // n_seq
            (y_pi, pi_state, _), (y_vf, vf_state, _) = run_jointly(
                [self.memory_actor, self.memory_critic],  # type: ignore[list-item]
                [f.reshape(length, n_seq, -1) for f in (pi_features, vf_features)],
                [states.pi, states.vf],  # type: ignore[list-item]
                resets,
            )  # (FWM cores: no auxiliary loss)
            latent_pi = self.mlp_extractor.forward_actor(y_pi.reshape(length * n_seq, -1))
            latent_vf = self.mlp_extractor.forward_critic(y_vf.reshape(length * n_seq, -1))
            return latent_pi, latent_vf, MemoryStates(pi_state, vf_state), None
        y_pi, pi_state, pi_aux = self._run_core(
            self.memory_actor, pi_features, states.pi, resets, n_seq
        )
        vf_state = vf_aux = None
        if self.memory_critic is not None:
            assert states.vf is not None, "MemoryStates.vf missing for a separate critic memory"
            y_vf, vf_state, vf_aux = self._run_core(
                self.memory_critic, vf_features, states.vf, resets, n_seq
            )
        elif self.critic_projection is not None:
            y_vf = self.critic_projection(vf_features)
        else:
            y_vf = y_pi
        latent_pi = self.mlp_extractor.forward_actor(y_pi)
        latent_vf = self.mlp_extractor.forward_critic(y_vf)
        return latent_pi, latent_vf, MemoryStates(pi_state, vf_state), _aux_loss(pi_aux, vf_aux)

    def _scan_jointly(self, states: MemoryStates) -> bool:
        """Whether the actor's and the critic's memories run as one scan (two FWM cores of one
        configuration, see :func:`fwmrl.memory.fwm.run_jointly`: the same values, the scan's
        per-step cost paid once)."""
        joint = getattr(self, "_joint_cores", None)
        if joint is None:
            joint = self._joint_cores = can_run_jointly(self.cores())
        return joint and can_run_jointly(self.cores(), states.parts())

    def _actor_latent(
        self, obs: PyTorchObs, state: CoreState, episode_starts: th.Tensor | None, n_seq: int
    ) -> tuple[th.Tensor, CoreState]:
        """The actor's path only (extractor, actor core, actor MLP): latent and actor state."""
        self._check_batch(state, n_seq)
        features = self._extract(obs, critic=False)
        resets = self._resets(episode_starts, n_seq, features.device)
        y_pi, state, _ = self._run_core(self.memory_actor, features, state, resets, n_seq)
        return self.mlp_extractor.forward_actor(y_pi), state

    def _critic_latent(
        self, obs: PyTorchObs, states: MemoryStates, episode_starts: th.Tensor | None, n_seq: int
    ) -> th.Tensor:
        """The critic's path only (the actor core too when the memory is shared)."""
        self._check_batch(states, n_seq)
        features = self._extract(obs, critic=True)
        if self.critic_projection is not None:
            return self.mlp_extractor.forward_critic(self.critic_projection(features))
        resets = self._resets(episode_starts, n_seq, features.device)
        if self.memory_critic is not None:
            assert states.vf is not None, "MemoryStates.vf missing for a separate critic memory"
            y_vf = self._run_core(self.memory_critic, features, states.vf, resets, n_seq).output
        else:
            y_vf = self._run_core(self.memory_actor, features, states.pi, resets, n_seq).output
        return self.mlp_extractor.forward_critic(y_vf)

    def forward(  # type: ignore[override]
        self,
        obs: PyTorchObs,
        states: MemoryStates,
        episode_starts: th.Tensor | None,
        deterministic: bool = False,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, MemoryStates]:
        """One step for a batch of environments.

        Parameters
        ----------
        obs:
            Observations ``[n_envs, ...]`` (or a dict of them).
        states:
            States before the step.
        episode_starts:
            ``[n_envs]``: 1/True where an episode starts at this step (its state is reset first);
            ``None`` where none does (the cores then skip the reset).
        deterministic:
            Take the mode of the action distribution instead of sampling.

        Returns
        -------
        actions, values, log_prob, states:
            ``actions`` ``[n_envs, *action_shape]``, ``values`` ``[n_envs, 1]``, ``log_prob``
            ``[n_envs]`` and the states after the step.
        """
        n_envs = states.batch_size
        latent_pi, latent_vf, states, _ = self._sequence_latents(
            obs, states, episode_starts, n_envs
        )
        values = self.value_net(latent_vf)
        actions, log_prob = self._sample(latent_pi, deterministic)
        return actions.reshape((-1, *self.action_space.shape)), values, log_prob, states

    def _sample(self, latent_pi: th.Tensor, deterministic: bool) -> tuple[th.Tensor, th.Tensor]:
        """Actions and their log-probabilities from the actor's latent.

        ``Discrete`` actions skip building a ``torch.distributions.Categorical`` (its argument
        checks cost more than a small policy's step): the same distribution, the softmax of the
        logits, sampled by the same ``torch.multinomial`` call (the mode: ``argmax``). Other
        action spaces go through SB3's distribution.
        """
        if isinstance(self.action_space, spaces.Discrete):
            log_probs = th.log_softmax(self.action_net(latent_pi), dim=-1)
            if deterministic:
                actions = log_probs.argmax(dim=-1)
            else:
                actions = th.multinomial(log_probs.exp(), 1, True).squeeze(-1)
            return actions, log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        distribution = self._get_action_dist_from_latent(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, distribution.log_prob(actions)

    def get_distribution(  # type: ignore[override]
        self, obs: PyTorchObs, states: MemoryStates, episode_starts: th.Tensor | None
    ) -> tuple[Distribution, MemoryStates]:
        """Action distribution of one step, and the states after it.

        Only the actor's path runs (as in sb3-contrib): the returned :class:`MemoryStates` holds
        the actor's state and no critic state (``vf`` is ``None``).
        """
        n_envs = states.batch_size
        latent_pi, pi_state = self._actor_latent(obs, states.pi, episode_starts, n_envs)
        return self._get_action_dist_from_latent(latent_pi), MemoryStates(pi_state)

    def predict_values(  # type: ignore[override]
        self, obs: PyTorchObs, states: MemoryStates, episode_starts: th.Tensor | None
    ) -> th.Tensor:
        """Values ``[n_envs, 1]`` of one step from ``states`` (only the critic's path runs)."""
        n_envs = states.batch_size
        return self.value_net(self._critic_latent(obs, states, episode_starts, n_envs))

    def evaluate_sequences(
        self,
        obs: PyTorchObs,
        actions: th.Tensor,
        states: MemoryStates,
        episode_starts: th.Tensor,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None, th.Tensor | None]:
        """Values, log-probabilities and entropies of stored actions along sequences, and the
        cores' auxiliary loss of the pass.

        Parameters
        ----------
        obs:
            Observations ``[T, S, ...]`` (time-major; or a dict of them).
        actions:
            Actions ``[T, S, action_dim]`` as stored by the rollout buffer.
        states:
            States of the ``S`` sequences before their first step.
        episode_starts:
            ``[T, S]``: where episodes start (the core resets those sequences before the step).

        Returns
        -------
        values, log_prob, entropy, aux_loss:
            ``[T, S]`` each (``entropy`` is ``None`` for distributions without a closed form);
            ``aux_loss`` is the scalar to add to the loss: the sum over the cores of the mean of
            their auxiliary losses (MNM's meta loss, already weighted by the core), or ``None``
            when no core has one.
        """
        length, n_seq = episode_starts.shape
        flat_obs = _flatten_time(obs)
        latent_pi, latent_vf, _, aux_loss = self._sequence_latents(
            flat_obs, states, episode_starts, n_seq
        )
        distribution = self._get_action_dist_from_latent(latent_pi)
        flat_actions = actions.reshape(length * n_seq, *actions.shape[2:])
        if isinstance(self.action_space, spaces.Discrete):
            flat_actions = flat_actions.long().flatten()
        log_prob = distribution.log_prob(flat_actions).reshape(length, n_seq)
        values = self.value_net(latent_vf).reshape(length, n_seq)
        entropy = distribution.entropy()
        if entropy is not None:
            entropy = entropy.reshape(length, n_seq)
        return values, log_prob, entropy, aux_loss

    def evaluate_actions(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Not available without sequence information: use :meth:`evaluate_sequences`."""
        raise NotImplementedError(
            "MemoryPolicy.evaluate_actions needs sequences; call evaluate_sequences(obs[T, S], "
            "actions[T, S], states, episode_starts[T, S])"
        )

    def _predict(  # type: ignore[override]
        self,
        observation: PyTorchObs,
        states: MemoryStates,
        episode_starts: th.Tensor | None,
        deterministic: bool = False,
    ) -> tuple[th.Tensor, MemoryStates]:
        n_envs = states.batch_size
        latent_pi, pi_state = self._actor_latent(observation, states.pi, episode_starts, n_envs)
        return self._sample(latent_pi, deterministic)[0], MemoryStates(pi_state)

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | MemoryStates | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | MemoryStates]:
        """SB3's ``predict`` contract: actions and the next state.

        Parameters
        ----------
        observation:
            One observation or a batch ``[n_envs, ...]`` (a dict for ``Dict`` spaces).
        state:
            ``None`` (fresh sequences), the tuple of batch-first NumPy arrays returned by the
            previous call (the actor core's fields), or a :class:`MemoryStates` (its critic part,
            if any, is not used: acting runs only the actor's core).
        episode_start:
            ``[n_envs]`` booleans: where to reset the state before this step (``None``: nowhere).
        deterministic:
            Take the mode of the action distribution.

        Returns
        -------
        actions, state:
            Actions (without the batch dimension for a single observation) and the actor's state
            after the step, as a NumPy tuple -- or a :class:`MemoryStates` (``vf=None``) if one
            was passed.
        """
        if self.training:  # the recursive switch costs more than a step of a small policy
            self.set_training_mode(False)
        if (
            isinstance(observation, tuple)
            and len(observation) == 2
            and isinstance(observation[1], dict)
        ):
            raise ValueError(
                "MemoryPolicy.predict: 'observation' is an (obs, info) tuple; pass only obs "
                "(Gymnasium reset() returns both, SB3 VecEnv.reset() only obs)"
            )
        obs_tensor, vectorized_env = self.obs_to_tensor(observation)
        first = next(iter(obs_tensor.values())) if isinstance(obs_tensor, dict) else obs_tensor
        n_envs = first.shape[0]
        as_numpy = not isinstance(state, MemoryStates)
        device = first.device
        if state is None:
            states = MemoryStates(self.memory_actor.initial_state(n_envs, device))
        elif isinstance(state, MemoryStates):
            states = MemoryStates(state.pi.to(device))
        else:
            states = self.states_from_numpy(state, _device=device)
        if states.batch_size != n_envs:
            raise ValueError(
                f"MemoryPolicy.predict: 'state' holds {states.batch_size} environments but "
                f"'observation' holds {n_envs}"
            )
        starts = None  # no episode starts: the cores skip their reset step
        if episode_start is not None:
            start_array = np.asarray(episode_start).reshape(-1)
            if start_array.shape[0] != n_envs:
                raise ValueError(
                    f"MemoryPolicy.predict: 'episode_start' must have {n_envs} entries, "
                    f"got {start_array.shape[0]}"
                )
            if start_array.any():
                starts = th.as_tensor(start_array, device=device).bool()
        with th.no_grad():
            actions, states = self._predict(obs_tensor, states, starts, deterministic=deterministic)
        actions_np = actions.cpu().numpy().reshape((-1, *self.action_space.shape))
        if isinstance(self.action_space, spaces.Box):
            if self.squash_output:
                actions_np = self.unscale_action(actions_np)
            else:
                actions_np = np.clip(actions_np, self.action_space.low, self.action_space.high)
        if not vectorized_env:
            actions_np = actions_np.squeeze(axis=0)
        return actions_np, (states.to_numpy() if as_numpy else states)


class MultiInputMemoryPolicy(MemoryPolicy):
    """:class:`MemoryPolicy` for ``Dict`` observation spaces (SB3's ``CombinedExtractor`` by
    default). Same parameters as :class:`MemoryPolicy`."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            *args,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )


def _aux_loss(*per_step: th.Tensor | None) -> th.Tensor | None:
    """The scalar auxiliary loss of a pass: the sum over the cores of the mean of their per-step
    auxiliary losses (the ``None`` of cores without one left out), or ``None``."""
    losses = [aux.mean() for aux in per_step if aux is not None]
    if not losses:
        return None
    return th.stack(losses).sum() if len(losses) > 1 else losses[0]


def _flatten_time(obs: PyTorchObs) -> PyTorchObs:
    """``[T, S, ...]`` -> ``[T * S, ...]`` (time-major), for tensors or dicts of tensors."""
    if isinstance(obs, dict):
        return {key: value.reshape(-1, *value.shape[2:]) for key, value in obs.items()}
    return obs.reshape(-1, *obs.shape[2:])
