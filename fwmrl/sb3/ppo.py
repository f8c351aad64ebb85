"""``MemoryRecurrentPPO``: sb3-contrib's RecurrentPPO for :class:`~fwmrl.sb3.MemoryPolicy`.

sb3-contrib's ``RecurrentPPO`` hard-codes ``nn.LSTM`` states (it builds zero ``(h, c)`` tensors from
``policy.lstm_actor`` and stores four of them per step), so ``RecurrentPPO(MemoryPolicy, ...)``
raises a ``TypeError`` that points here. :class:`MemoryRecurrentPPO` subclasses it, keeps the
constructor, ``learn``, ``predict``, ``save``/``load`` and logging identical, and replaces only the
state handling: states at sequence starts (:mod:`fwmrl.sb3.buffers`), sequence minibatches, and the
cores' auxiliary losses in the objective.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, explained_variance
from torch.nn import functional as F

from fwmrl.memory.lstm import fused_lstm_windows
from fwmrl.sb3.common import MemoryAlgorithmMixin
from fwmrl.sb3.policies import MemoryPolicy, MultiInputMemoryPolicy

SelfMemoryRecurrentPPO = TypeVar("SelfMemoryRecurrentPPO", bound="MemoryRecurrentPPO")

#: Sequences a minibatch holds at least with the default ``sequence_length`` (where possible).
MIN_SEQUENCES_PER_MINIBATCH = 8


def default_sequence_length(
    n_steps: int,
    batch_size: int | None,
    n_envs: int,
    min_sequences: int = MIN_SEQUENCES_PER_MINIBATCH,
) -> int:
    """The ``sequence_length`` :class:`MemoryRecurrentPPO` uses when none is given.

    The largest divisor ``L`` of ``n_steps`` that divides ``batch_size`` and leaves at least
    ``min_sequences`` sequences in a minibatch (of ``batch_size`` steps, at most the rollout's
    ``n_envs * n_steps``; ``batch_size=None``: the whole rollout); ``1`` where none does. The
    constructor's defaults (``n_steps=128, batch_size=128``) give ``L = 16``: minibatches of 8
    sequences of 16 steps.
    """
    rollout = n_steps * n_envs
    steps = rollout if batch_size is None else min(batch_size, rollout)
    for length in range(n_steps, 0, -1):
        if n_steps % length or (batch_size is not None and batch_size % length):
            continue
        if steps // length >= min_sequences:
            return length
    return 1


def _check_optional_positive_int(owner: str, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: '{name}' must be None or a positive integer, got {value!r}")
    return value


class MemoryRecurrentPPO(MemoryAlgorithmMixin, RecurrentPPO):
    """Recurrent PPO (clip) with any fwmrl memory core (``isinstance(model, RecurrentPPO)`` holds).

    Same parameters as :class:`sb3_contrib.RecurrentPPO`, plus ``sequence_length``. The rollout
    (``n_steps`` per env) is cut into ``n_envs * n_steps / sequence_length`` sequences of
    ``sequence_length`` consecutive steps of one env; a minibatch holds
    ``batch_size // sequence_length`` of them, drawn at random (``batch_size`` steps; the last
    minibatch of an epoch holds the rest), and re-runs each from the core state stored at its
    first step (the gradient is truncated there). With the defaults (``n_steps=128,
    batch_size=128, n_envs=8``) that is 8 sequences of 16 steps per minibatch, 8 minibatches per
    epoch. The minibatches' LSTMs (the LSTM core, FWM's controller) run as fused ``nn.LSTM``
    calls cut at episode starts (:func:`fwmrl.memory.lstm.fused_lstm_windows`; the same values
    and gradients up to float rounding): 1.8-1.9x (LSTM) and 1.2-1.3x (FWM) less CPU time per
    ``train()`` than ``lstm_cell`` steps on FWM-Gridworld-v0 with the defaults and with
    ``batch_size=512, n_epochs=4, sequence_length=32``.

    Parameters
    ----------
    policy:
        ``"MemoryPolicy"``, ``"MultiInputMemoryPolicy"`` or a :class:`MemoryPolicy` subclass; pick
        the core with ``policy_kwargs={"core": "fwm", "core_kwargs": {...}}``.
    env:
        The environment (or its Gymnasium id).
    learning_rate, n_steps, batch_size, n_epochs, gamma, gae_lambda, clip_range, clip_range_vf,
    normalize_advantage, ent_coef, vf_coef, max_grad_norm, use_sde, sde_sample_freq, target_kl,
    stats_window_size, tensorboard_log, policy_kwargs, verbose, seed, device:
        As in sb3-contrib's ``RecurrentPPO`` (same defaults).
    sequence_length:
        Steps per training sequence (the truncated-BPTT window); must divide ``n_steps``, and
        ``batch_size`` must be a multiple of it. ``None`` (default): the largest divisor of
        ``n_steps`` and ``batch_size`` that keeps at least 8 sequences per minibatch
        (:func:`default_sequence_length`); the value used is ``model.sequence_length`` (saved
        with the model). ``sequence_length=n_steps`` keeps one sequence, and one stored state,
        per environment.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {  # type: ignore[misc]
        "MemoryPolicy": MemoryPolicy,
        "MultiInputMemoryPolicy": MultiInputMemoryPolicy,
    }

    def __init__(
        self,
        policy: str | type[MemoryPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 128,
        batch_size: int | None = 128,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        sequence_length: int | None = None,
        _init_setup_model: bool = True,
    ) -> None:
        owner = type(self).__name__
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps <= 0:
            raise ValueError(f"{owner}: 'n_steps' must be a positive integer, got {n_steps!r}")
        self.sequence_length = _check_optional_positive_int(
            owner, "sequence_length", sequence_length
        )
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=_check_optional_positive_int(owner, "batch_size", batch_size),
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self.sequence_length = self._resolve_sequence_length()
        self.rollout_buffer_class = self._check_buffer_class(self.rollout_buffer_class)
        self.rollout_buffer_kwargs = {
            **(self.rollout_buffer_kwargs or {}),
            "sequence_length": self.sequence_length,
        }
        OnPolicyAlgorithm._setup_model(self)
        self._setup_memory()
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            if isinstance(self.clip_range_vf, (float, int)) and self.clip_range_vf <= 0:
                raise ValueError(
                    f"{type(self).__name__}: 'clip_range_vf' must be positive or None, "
                    f"got {self.clip_range_vf}"
                )
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)

    def _resolve_sequence_length(self) -> int:
        """``sequence_length`` checked against ``n_steps`` and ``batch_size``, or its default."""
        owner, length, batch = type(self).__name__, self.sequence_length, self.batch_size
        if length is None:
            return default_sequence_length(self.n_steps, batch, self.n_envs)
        if self.n_steps % length:
            raise ValueError(
                f"{owner}: 'sequence_length' must divide n_steps={self.n_steps}, got {length}"
            )
        if batch is not None and batch % length:
            fits = [d for d in range(1, self.n_steps + 1) if not self.n_steps % d and not batch % d]
            raise ValueError(
                f"{owner}: 'batch_size' (steps per minibatch) must be a multiple of "
                f"sequence_length={length} so that a minibatch holds whole sequences, got "
                f"batch_size={batch}; with this batch_size, sequence_length may be one of {fits}"
            )
        return length

    def _policy_loss(self, advantages: th.Tensor, ratio: th.Tensor, clip_range: float) -> th.Tensor:
        """Clipped surrogate loss (hook)."""
        unclipped = advantages * ratio
        clipped = advantages * th.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
        return -th.min(unclipped, clipped).mean()

    def train(self) -> None:
        """PPO epochs over sequence minibatches of the current rollout."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = None
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)

        pg_losses, value_losses, entropy_losses, aux_losses, clip_fractions = [], [], [], [], []
        approx_kl_divs: list[float] = []
        loss = th.zeros(())
        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for batch in self.rollout_buffer.get(self.batch_size):
                with fused_lstm_windows():  # a few short sequences: fused LSTM calls
                    values, log_prob, entropy, aux = self.policy.evaluate_sequences(
                        batch.observations, batch.actions, batch.states, batch.episode_starts
                    )
                advantages = batch.advantages
                if self.normalize_advantage and advantages.numel() > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = th.exp(log_prob - batch.old_log_prob)
                policy_loss = self._policy_loss(advantages, ratio, clip_range)
                if clip_range_vf is None:
                    values_pred = values
                else:
                    delta = th.clamp(values - batch.old_values, -clip_range_vf, clip_range_vf)
                    values_pred = batch.old_values + delta
                value_loss = F.mse_loss(batch.returns, values_pred)
                entropy_loss = log_prob.mean() if entropy is None else -entropy.mean()
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                if aux is not None:
                    loss = loss + aux
                    aux_losses.append(aux.item())

                pg_losses.append(policy_loss.item())
                value_losses.append(value_loss.item())
                entropy_losses.append(entropy_loss.item())
                clip_fractions.append(((ratio - 1.0).abs() > clip_range).float().mean().item())
                with th.no_grad():
                    log_ratio = log_prob - batch.old_log_prob
                    approx_kl = ((th.exp(log_ratio) - 1) - log_ratio).mean().item()
                approx_kl_divs.append(approx_kl)
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(
                            f"Early stopping at step {epoch} due to reaching max kl: {approx_kl:.2f}"
                        )
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        if aux_losses:
            self.logger.record("train/aux_loss", np.mean(aux_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs) if approx_kl_divs else 0.0)
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

    def learn(
        self: SelfMemoryRecurrentPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "MemoryRecurrentPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfMemoryRecurrentPPO:
        """Train for ``total_timesteps`` environment steps (SB3's ``learn``)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
