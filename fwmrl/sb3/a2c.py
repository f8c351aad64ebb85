"""``RecurrentA2C``: SB3's A2C for memory policies, trained with truncated BPTT.

SB3 has no recurrent A2C. :class:`RecurrentA2C` takes SB3 A2C's constructor and defaults (``n_steps=5``,
``learning_rate=7e-4``, ``gae_lambda=1.0``, RMSprop with ``alpha=0.99, eps=1e-5``) and trains a
:class:`~fwmrl.sb3.MemoryPolicy`: the memory state is carried across rollouts and the gradient flows
back through the core over each rollout of ``n_steps`` (the truncated-BPTT window; the state at the
rollout start is treated as a constant).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from fwmrl.sb3.common import MemoryAlgorithmMixin
from fwmrl.sb3.policies import MemoryPolicy, MultiInputMemoryPolicy

SelfRecurrentA2C = TypeVar("SelfRecurrentA2C", bound="RecurrentA2C")


class RecurrentA2C(MemoryAlgorithmMixin, OnPolicyAlgorithm):
    """Advantage Actor-Critic (A2C) with recurrent memory policies and truncated BPTT.

    Parameters
    ----------
    policy:
        ``"MemoryPolicy"``, ``"MultiInputMemoryPolicy"`` or a :class:`MemoryPolicy` subclass.
    env:
        The environment (or its Gymnasium id).
    learning_rate:
        Learning rate or schedule (SB3 A2C default ``7e-4``).
    n_steps:
        Steps per environment per update; also the BPTT window.
    gamma, gae_lambda, ent_coef, vf_coef, max_grad_norm:
        As in SB3's A2C (defaults ``0.99``, ``1.0``, ``0.0``, ``0.5``, ``0.5``).
    rms_prop_eps, use_rms_prop:
        RMSprop (``alpha=0.99``, ``eps=rms_prop_eps``) unless ``use_rms_prop=False`` or
        ``policy_kwargs`` names an ``optimizer_class``, as in SB3.
    use_sde, sde_sample_freq:
        gSDE exploration for continuous actions, as in SB3.
    rollout_buffer_class, rollout_buffer_kwargs:
        ``None`` (the memory buffer for the observation space) or a subclass of
        :class:`~fwmrl.sb3.MemoryRolloutBuffer` / :class:`~fwmrl.sb3.MemoryDictRolloutBuffer`.
    normalize_advantage:
        Normalise advantages over the rollout (off by default, as in SB3).
    stats_window_size, tensorboard_log, policy_kwargs, verbose, seed, device, _init_setup_model:
        As in SB3.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MemoryPolicy": MemoryPolicy,
        "MultiInputMemoryPolicy": MultiInputMemoryPolicy,
    }

    def __init__(
        self,
        policy: str | type[MemoryPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 7e-4,
        n_steps: int = 5,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        rms_prop_eps: float = 1e-5,
        use_rms_prop: bool = True,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        normalize_advantage: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps <= 0:
            raise ValueError(f"RecurrentA2C: 'n_steps' must be a positive integer, got {n_steps!r}")
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=(
                spaces.Box,
                spaces.Discrete,
                spaces.MultiDiscrete,
                spaces.MultiBinary,
            ),
        )
        self.normalize_advantage = normalize_advantage
        if use_rms_prop and "optimizer_class" not in self.policy_kwargs:
            self.policy_kwargs["optimizer_class"] = th.optim.RMSprop
            self.policy_kwargs["optimizer_kwargs"] = dict(
                alpha=0.99, eps=rms_prop_eps, weight_decay=0
            )
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self.rollout_buffer_class = self._check_buffer_class(self.rollout_buffer_class)
        super()._setup_model()
        self._setup_memory()

    def train(self) -> None:
        """One gradient step on the whole rollout, back-propagating through the cores over it."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        for batch in self.rollout_buffer.get(batch_size=None):
            values, log_prob, entropy, aux = self.policy.evaluate_sequences(
                batch.observations, batch.actions, batch.states, batch.episode_starts
            )
            advantages = batch.advantages
            if self.normalize_advantage and advantages.numel() > 1:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            policy_loss = -(advantages * log_prob).mean()
            value_loss = F.mse_loss(batch.returns, values)
            entropy_loss = log_prob.mean() if entropy is None else -entropy.mean()
            loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
            if aux is not None:
                loss = loss + aux
                self.logger.record("train/aux_loss", aux.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()

        self._n_updates += 1
        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

    def learn(
        self: SelfRecurrentA2C,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 100,
        tb_log_name: str = "RecurrentA2C",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRecurrentA2C:
        """Train for ``total_timesteps`` environment steps (SB3's ``learn``)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
