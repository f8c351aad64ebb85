"""Rollout buffers for memory policies that store core states only at sequence starts.

sb3-contrib's recurrent buffer stores four LSTM-shaped arrays (actor/critic hidden and cell) for
every step. For a fast-weight memory that is the whole ``m^3`` tensor per step and environment
(FWM with ``m = 32``: 32,768 floats, about 1 GiB for 16 envs x 128 steps). These buffers store the
ordinary SB3 rollout arrays plus the policy's :class:`~fwmrl.sb3.policies.MemoryStates` **once per
sequence** -- at the first step of every ``sequence_length`` window of every environment -- and
training re-runs the cores over the stored sequences (episode starts inside a sequence are applied
by the core itself). The state cost of a rollout is therefore::

    n_envs * (n_steps / sequence_length) * policy.state_numel * 4 bytes

i.e. one state per environment with the buffers' default ``sequence_length = n_steps`` (what
:class:`~fwmrl.sb3.RecurrentA2C` uses), ``n_steps / sequence_length`` with
:class:`~fwmrl.sb3.MemoryRecurrentPPO`'s (8 with its constructor defaults).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import PyTorchObs

from fwmrl.sb3.policies import MemoryStates


class MemoryRolloutSamples(NamedTuple):
    """A minibatch of ``S`` whole sequences of ``L`` steps, time-major.

    Attributes
    ----------
    observations:
        ``[L, S, ...]`` (a dict of those for ``Dict`` spaces).
    actions:
        ``[L, S, action_dim]`` float.
    old_values, old_log_prob, advantages, returns:
        ``[L, S]``.
    episode_starts:
        ``[L, S]`` bool: where the cores reset.
    states:
        States of the ``S`` sequences before their first step.
    """

    observations: PyTorchObs
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    episode_starts: th.Tensor
    states: MemoryStates


class _SequenceStorage:
    """Shared part of both buffers: sequence-start states and sequence minibatches."""

    buffer_size: int
    n_envs: int
    pos: int
    observations: Any
    actions: np.ndarray
    values: np.ndarray
    log_probs: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray
    episode_starts: np.ndarray
    full: bool

    def _init_sequences(self, sequence_length: int | None) -> None:
        if sequence_length is None:
            sequence_length = self.buffer_size
        if (
            isinstance(sequence_length, bool)
            or not isinstance(sequence_length, int)
            or sequence_length <= 0
            or self.buffer_size % sequence_length
        ):
            raise ValueError(
                f"{type(self).__name__}: 'sequence_length' must be None or a positive divisor of "
                f"n_steps={self.buffer_size}, got {sequence_length!r}"
            )
        self.sequence_length = sequence_length
        self.sequence_states: list[MemoryStates] = []

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]  (the SB3 buffer this mixin is combined with)
        self.sequence_states = []

    @property
    def n_sequences(self) -> int:
        """Sequences per rollout: ``n_envs * n_steps / sequence_length``."""
        return self.n_envs * (self.buffer_size // self.sequence_length)

    def _store_state(self, states: MemoryStates | None) -> None:
        if self.pos % self.sequence_length:
            return
        if states is None:
            raise ValueError(
                f"{type(self).__name__}.add: 'states' is required at step {self.pos} "
                f"(a sequence of {self.sequence_length} steps starts there)"
            )
        if states.batch_size != self.n_envs:
            raise ValueError(
                f"{type(self).__name__}.add: 'states' holds {states.batch_size} environments, "
                f"expected n_envs={self.n_envs}"
            )
        self.sequence_states.append(states.detach())

    @property
    def state_nbytes(self) -> int:
        """Bytes of core state the buffer holds (see the module docstring for the formula)."""
        return sum(s.nbytes for s in self.sequence_states)

    @property
    def nbytes(self) -> int:
        """Bytes of everything the buffer holds: rollout arrays and states."""
        arrays = [self.actions, self.values, self.log_probs, self.advantages, self.returns]
        arrays += [self.episode_starts, self.rewards]  # type: ignore[attr-defined]
        obs = self.observations
        arrays += list(obs.values()) if isinstance(obs, dict) else [obs]
        return sum(a.nbytes for a in arrays) + self.state_nbytes

    def _as_sequences(self, array: np.ndarray, dtype: np.dtype | None = None) -> th.Tensor:
        """``[n_steps, n_envs, ...]`` -> tensor ``[L, n_sequences, ...]``, sequence ``chunk * n_envs
        + env`` (the order of :attr:`sequence_states`)."""
        length, tail = self.sequence_length, array.shape[2:]
        chunks = self.buffer_size // length
        by_chunk = array.reshape(chunks, length, self.n_envs, *tail).swapaxes(0, 1)
        flat = by_chunk.reshape(length, chunks * self.n_envs, *tail)
        return self.to_torch(flat if dtype is None else flat.astype(dtype))  # type: ignore[attr-defined]

    def minibatch_sequences(self, batch_size: int | None) -> int:
        """Sequences per minibatch for ``batch_size`` steps (``None``: all of them).

        Raises a ``ValueError`` unless ``batch_size`` is ``None`` or a positive multiple of
        :attr:`sequence_length` (a minibatch holds whole sequences only).
        """
        if batch_size is None:
            return self.n_sequences
        length = self.sequence_length
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size <= 0
            or batch_size % length
        ):
            raise ValueError(
                f"{type(self).__name__}.get: 'batch_size' (steps per minibatch) must be None or a "
                f"positive multiple of sequence_length={length} (a minibatch holds "
                f"batch_size // sequence_length whole sequences), got {batch_size!r}"
            )
        return int(batch_size) // length

    def get(  # type: ignore[override]
        self, batch_size: int | None = None
    ) -> Generator[MemoryRolloutSamples, None, None]:
        """Minibatches of whole sequences in random order.

        Parameters
        ----------
        batch_size:
            Steps per minibatch, a multiple of ``sequence_length``: each minibatch holds
            ``batch_size // sequence_length`` sequences of ``sequence_length`` steps (the last one
            fewer when they do not divide :attr:`n_sequences`). ``None``: one minibatch with every
            sequence.
        """
        if not self.full:
            raise RuntimeError(f"{type(self).__name__}.get: the rollout is not complete yet")
        per_batch = self.minibatch_sequences(batch_size)
        # The whole rollout as [L, n_sequences, ...] tensors, once per call; a minibatch is then
        # one index_select per field.
        obs = self.observations
        if isinstance(obs, dict):
            observations: Any = {k: self._as_sequences(v) for k, v in obs.items()}
        else:
            observations = self._as_sequences(obs)
        actions = self._as_sequences(self.actions, np.dtype(np.float32))
        old_values = self._as_sequences(self.values)
        old_log_prob = self._as_sequences(self.log_probs)
        advantages = self._as_sequences(self.advantages)
        returns = self._as_sequences(self.returns)
        episode_starts = self._as_sequences(self.episode_starts).bool()
        all_states = MemoryStates.cat(self.sequence_states)  # index = chunk * n_envs + env
        order = np.random.permutation(self.n_sequences)  # noqa: NPY002 (SB3 seeds the global RNG)
        for start in range(0, self.n_sequences, per_batch):
            index = th.as_tensor(order[start : start + per_batch], device=actions.device)

            def pick(tensor: th.Tensor, index: th.Tensor = index) -> th.Tensor:
                return tensor.index_select(1, index)

            if isinstance(observations, dict):
                batch_obs: PyTorchObs = {k: pick(v) for k, v in observations.items()}
            else:
                batch_obs = pick(observations)
            yield MemoryRolloutSamples(
                observations=batch_obs,
                actions=pick(actions),
                old_values=pick(old_values),
                old_log_prob=pick(old_log_prob),
                advantages=pick(advantages),
                returns=pick(returns),
                episode_starts=pick(episode_starts),
                states=all_states[index.to(all_states.pi.device)],
            )


class MemoryRolloutBuffer(_SequenceStorage, RolloutBuffer):
    """:class:`~stable_baselines3.common.buffers.RolloutBuffer` that also keeps the policy states
    at sequence starts and yields whole sequences (:class:`MemoryRolloutSamples`).

    Parameters
    ----------
    buffer_size:
        Steps per environment (``n_steps``).
    observation_space, action_space, device, gae_lambda, gamma, n_envs:
        As in SB3's ``RolloutBuffer``.
    sequence_length:
        Steps per training sequence; must divide ``buffer_size``. ``None`` (default): one sequence
        of ``buffer_size`` steps per environment (one stored state per environment).
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        sequence_length: int | None = None,
    ) -> None:
        self.buffer_size = buffer_size
        self._init_sequences(sequence_length)
        super().__init__(
            buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs
        )

    def add(  # type: ignore[override]
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor,
        log_prob: th.Tensor,
        states: MemoryStates | None = None,
    ) -> None:
        """Add one step; ``states`` (before the step) is kept at sequence starts only."""
        self._store_state(states)
        super().add(obs, action, reward, episode_start, value, log_prob)


class MemoryDictRolloutBuffer(_SequenceStorage, DictRolloutBuffer):
    """:class:`MemoryRolloutBuffer` for ``Dict`` observation spaces (same parameters)."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        sequence_length: int | None = None,
    ) -> None:
        self.buffer_size = buffer_size
        self._init_sequences(sequence_length)
        super().__init__(
            buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs
        )

    def add(  # type: ignore[override]
        self,
        obs: dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor,
        log_prob: th.Tensor,
        states: MemoryStates | None = None,
    ) -> None:
        """Add one step; ``states`` (before the step) is kept at sequence starts only."""
        self._store_state(states)
        super().add(obs, action, reward, episode_start, value, log_prob)


def memory_buffer_class(observation_space: spaces.Space) -> type[RolloutBuffer]:
    """The memory buffer class for an observation space."""
    if isinstance(observation_space, spaces.Dict):
        return MemoryDictRolloutBuffer
    return MemoryRolloutBuffer
