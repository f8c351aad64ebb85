"""Recurrent proximal policy optimisation (PPO) for memory policies, readable top to bottom.

:class:`PPO` is :class:`fwmrl.agents.a2c.A2C` with another learning step: the collection, the env
handling (next-step autoreset, truncated BPTT or ``n_steps: episode``), GAE, checkpoints, the
data-parallel machinery and evaluation are A2C's. One update:

1. **Collect** ``T`` steps of ``B`` envs exactly as A2C does, also storing each action's
   log-probability under the collection policy (``Rollout.log_probs``) beside its value
   (``Rollout.values``): the "old" policy and value of the PPO objective.
2. **Advantages**: GAE(λ) over the valid steps (:func:`fwmrl.agents.a2c.compute_advantages`); with
   ``algo.normalize_advantage`` they are standardised **once per rollout**, over all valid steps of
   all envs (of all ranks), not per minibatch: a minibatch is a few whole env sequences, and its
   own mean and spread would be noisy and would reweight the minibatches against each other.
3. **Epochs**: ``algo.n_epochs`` passes; each draws a random order of the ``B`` envs and splits it
   into ``algo.num_minibatches`` minibatches of ``B / num_minibatches`` envs. A minibatch is the
   full ``T``-step sequence of each of its envs, **re-run from the rollout's stored initial state of
   those envs** (``rollout.initial_state[idx]``), resetting the core where episodes start, so the
   core states are recomputed with the current parameters in every epoch. (sb3-contrib's
   ``RecurrentPPO`` instead reuses the LSTM states stored at collection time for every step of
   every epoch: stale after the first gradient step, and never differentiated through.)
4. **Loss** per minibatch, averaged over its valid steps: the clipped surrogate
   ``-min(r·A, clip(r, 1 ± clip_range)·A)`` with ``r = exp(log π(a) − log π_old(a))``; the squared
   value error (with ``algo.clip_range_vf``, the larger of it and the error of the value clipped to
   within ``clip_range_vf`` of the collection value, as in SB3); ``− ent_coef·entropy``; MNM's
   meta loss (the aux loss ``policy.forward_flat`` returns); the gradient norm clipped to
   ``max_grad_norm``; one optimizer step per minibatch.
5. **Target KL**: with ``algo.target_kl``, the approximate KL divergence of each minibatch from the
   collection policy, ``mean((r − 1) − log r)`` (measured before its step), stops the update at the
   first minibatch where it exceeds ``target_kl``: that minibatch takes no step and the remaining
   minibatches and epochs are skipped.

**Value normalisation** (``algo.normalize_value``): the value head then predicts the return
standardised by a running mean and variance of all returns seen so far (:class:`ValueNormalizer`,
over all valid steps of all ranks, saved in checkpoints). The collection values are mapped back to
reward units for GAE and the bootstrap, the value loss compares the head with the standardised
returns, and value clipping (``clip_range_vf``) acts in standardised units. Why: the policy and
value heads share the encoder and the core, and with returns of tens or hundreds (CartPole-v1 with
γ = 0.99, Pendulum-v1) the squared value error's gradient is orders of magnitude larger than the
policy's (advantage-normalised) one; clipped to ``max_grad_norm`` together, the policy part of the
step all but vanishes and a recurrent trunk learns only to predict returns. Standardised targets
keep the value term O(1) whatever the reward scale (the remedy of PopArt without its output
correction, as in MAPPO's value normalisation; SB3 instead normalises rewards in ``VecNormalize``).

With ``n_epochs: 1``, ``num_minibatches: 1`` and no clipping in effect, the one step is A2C's: at
``r = 1`` the gradient of ``r·A`` is that of ``A·log π(a)`` (tested).

Under ``torchrun`` every rank draws the same env order (a generator seeded alike everywhere), so the
minibatches are those of a one-process run with the same ``env.num_envs``; each rank runs the
minibatch's envs that it steps (possibly none), the loss is normalised by the minibatch's global
number of valid steps, and the gradients and loss terms are summed over the ranks in one all-reduce
per minibatch (A2C's ``_sum_gradients``), so every rank takes the one-process step and makes the
same early-stop decision.

Checkpoints are A2C's plus the state of the minibatch-order generator: an update (all its epochs)
is never split by a checkpoint, so that is the whole epoch state, and a resumed run continues
bit-identically.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor
from typing_extensions import override

from fwmrl import distributed
from fwmrl.agents.a2c import A2C, Rollout
from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.config import ConfigError, minibatch_split_problem
from fwmrl.memory.lstm import fused_lstm_windows

TERMS = ("loss", "policy_loss", "value_loss", "entropy", "aux_loss", "approx_kl", "clip_fraction")
"""The per-minibatch terms of :meth:`PPO._minibatch_terms`, in order (A2C's first five)."""


class PPO(A2C):
    """Recurrent PPO over a batched vector env with a :class:`MemoryActorCritic` policy.

    Parameters
    ----------
    policy, env, n_envs, env_kwargs, vectorization, core_kwargs, policy_kwargs, seed, device
        as :class:`A2C`'s.
    n_epochs
        passes over each rollout (``algo.n_epochs``).
    num_minibatches
        minibatches per epoch, each ``n_envs / num_minibatches`` whole env sequences; it must
        divide the number of envs (``algo.num_minibatches``).
    clip_range
        the probability ratio is clipped to ``[1 - clip_range, 1 + clip_range]``
        (``algo.clip_range``).
    clip_range_vf
        the new value is clipped to within this distance of the collection value, in the value
        head's units, or ``None`` for no value clipping (``algo.clip_range_vf``).
    target_kl
        stop the update at the first minibatch whose approximate KL divergence from the
        collection policy exceeds this, or ``None`` to run every epoch (``algo.target_kl``).
    **hyperparameters
        A2C's ``algo.*`` keys (:class:`A2C`'s ``**hyperparameters``: ``n_steps``, ``gamma``,
        ``lr``, ``normalize_value``, ...).

    Attributes
    ----------
    minibatch_generator
        draws each epoch's env order (the same on every rank; saved in
        checkpoints).
    value_normalizer
        the running return statistics of ``algo.normalize_value`` (saved in
        checkpoints), or ``None`` without it.
        (and those of :class:`A2C`)

    Raises
    ------
    ConfigError
        a bad argument, or ``num_minibatches`` does not divide the number of envs.
    """

    record_log_probs = True

    algorithm = "ppo"

    def __init__(
        self,
        policy: str | MemoryActorCritic = "fwm",
        env: str | gym.Env | gym.vector.VectorEnv = "FWM-Gridworld-v0",
        *,
        n_envs: int = 16,
        env_kwargs: dict[str, Any] | None = None,
        vectorization: str = "auto",
        core_kwargs: dict[str, Any] | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        device: str = "cpu",
        n_epochs: int = 4,
        num_minibatches: int = 4,
        clip_range: float = 0.2,
        clip_range_vf: float | None = None,
        target_kl: float | None = None,
        **hyperparameters: Any,
    ) -> None:
        super().__init__(
            policy,
            env,
            n_envs=n_envs,
            env_kwargs=env_kwargs,
            vectorization=vectorization,
            core_kwargs=core_kwargs,
            policy_kwargs=policy_kwargs,
            seed=seed,
            device=device,
            n_epochs=n_epochs,
            num_minibatches=num_minibatches,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            target_kl=target_kl,
            **hyperparameters,
        )
        self.minibatch_generator = torch.Generator().manual_seed(self.seed + 2)

    @override
    def _check_num_envs(self, num_envs: int) -> None:
        problem = minibatch_split_problem(self.algo.num_minibatches, num_envs)
        if problem is not None:
            raise ConfigError(problem)

    # ------------------------------------------------------------------ 2-5. learn
    def train_on_rollout(self, rollout: Rollout) -> dict[str, float]:
        """``n_epochs`` epochs of minibatch steps on a rollout; returns the loss terms (means over
        the minibatches measured), ``approx_kl``, ``clip_fraction``, ``ppo_steps`` (optimizer
        steps taken) and ``stopped_early`` (1.0 when ``target_kl`` cut the update short)."""
        algo = self.algo
        if rollout.log_probs is None:
            raise ValueError(
                "PPO needs a rollout with log_probs (collected by PPO.collect_rollout)"
            )
        advantages, returns = self.advantages(rollout)
        mask = rollout.valid.float()
        total = self.global_num_envs
        old_values = self.real_values(rollout.values[:-1])
        valid_returns = returns[rollout.valid]
        residuals = valid_returns - old_values[rollout.valid]
        # valid steps of every env of every rank (for each minibatch's normaliser), and sums
        counts = mask.new_zeros(total)
        counts[self.env_slice] = mask.sum(0)
        sums = torch.stack([(advantages * mask).sum(), valid_returns.sum(), residuals.sum()])
        reduced = distributed.all_reduce_sum(torch.cat([counts, sums]))
        env_valid, sums = reduced[:total], reduced[total:]
        n_valid = env_valid.sum().clamp_min(1.0)
        mean_advantage, mean_return, mean_residual = sums / n_valid
        spreads = distributed.all_reduce_sum(
            torch.stack(
                [
                    (((advantages - mean_advantage) * mask) ** 2).sum(),
                    ((valid_returns - mean_return) ** 2).sum(),
                    ((residuals - mean_residual) ** 2).sum(),
                ]
            )
        )
        if algo.normalize_advantage:  # once per rollout, over all valid steps
            std = spreads[0].div(n_valid).sqrt()
            advantages = (advantages - mean_advantage) / (std + 1e-8) * mask
        targets = returns
        if self.value_normalizer is not None:  # this rollout's returns join the statistics first
            self.value_normalizer.update(n_valid, mean_return, spreads[1])
            targets = self.value_normalizer.normalize(returns) * mask
            old_values = self.value_normalizer.normalize(old_values)

        per_minibatch = total // algo.num_minibatches
        first, last = self.env_slice.start, self.env_slice.stop
        measured: list[Tensor] = []
        grad_norms: list[float] = []
        stopped = False
        for _ in range(algo.n_epochs):
            order = torch.randperm(total, generator=self.minibatch_generator)
            for m in range(algo.num_minibatches):
                chosen = order[m * per_minibatch : (m + 1) * per_minibatch]  # the same on all ranks
                n_minibatch = env_valid[chosen.to(env_valid.device)].sum().clamp_min(1.0)
                mine = chosen[(chosen >= first) & (chosen < last)].sort().values - first
                with self._epoch_windows():
                    loss, terms = self._minibatch_terms(
                        rollout, mine.to(self.device), advantages, targets, old_values, n_minibatch
                    )
                if self.world == 1:
                    self._check_loss(terms)
                self.optimizer.zero_grad(set_to_none=True)
                if loss is not None:
                    loss.backward()
                if self.world > 1:
                    terms = self._sum_gradients(terms)  # the minibatch's global terms, on all ranks
                    self._check_loss(terms)
                measured.append(terms)
                if algo.target_kl is not None and float(terms[5]) > algo.target_kl:
                    self.optimizer.zero_grad(set_to_none=True)
                    stopped = True
                    break
                grad_norms.append(self._clip_and_step())
            if stopped:
                break
        self.update += 1
        means = torch.stack(measured).mean(0).tolist()
        n = float(n_valid)  # unbiased variances, as torch.var
        spread_return, spread_residual = spreads[1:].tolist()
        explained = 1.0 - spread_residual / (spread_return + 1e-8 * (n - 1)) if n > 1 else math.nan
        return {
            **dict(zip(TERMS, means, strict=True)),
            "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else math.nan,
            "explained_variance": explained,
            "rollout_steps": float(rollout.rewards.shape[0]),
            "ppo_steps": float(len(grad_norms)),
            "stopped_early": float(stopped),
        }

    def _epoch_windows(self) -> contextlib.AbstractContextManager[None]:
        """The context of a minibatch's re-run: :func:`fwmrl.memory.lstm.fused_lstm_windows`
        (a few whole sequences: fused LSTM windows, several times cheaper than ``lstm_cell``
        steps; the LSTM core's minibatch of ``benchmarks/ppo.py`` 12.6 ms instead of 75). The
        same values and gradients up to float rounding, which moves single learning runs:
        CartPole-v1 with the 60k-step ``cartpole_lstm_ppo.yaml`` of 6f04073 solved 2 of 3 seeds
        with the cells and 2 of 3 fused (README, "Native PPO: results")."""
        return fused_lstm_windows()

    def _minibatch_terms(
        self,
        rollout: Rollout,
        envs: Tensor,
        advantages: Tensor,
        targets: Tensor,
        old_values: Tensor,
        n_valid: Tensor,
    ) -> tuple[Tensor | None, Tensor]:
        """The loss of this rank's envs ``envs`` (local indices) of a minibatch, with every sum
        divided by the minibatch's global number of valid steps ``n_valid``, and its detached
        :data:`TERMS`. ``targets`` and ``old_values`` ``[T, B]`` are the value targets and the
        collection values in the head's units (standardised with ``algo.normalize_value``). With
        no envs here the loss is ``None`` and the terms are zeros."""
        if len(envs) == 0:
            return None, torch.zeros(len(TERMS), device=self.device)
        algo = self.algo
        mask = rollout.valid[:, envs].float()
        params, values, _, aux = self.policy.forward_flat(
            rollout.obs[:, envs], rollout.initial_state[envs], rollout.starts[:, envs]
        )  # aux: MNM's meta loss, per step
        dist, log_std = self.policy.action_dist, self.policy.log_std
        log_prob = dist.log_prob(params, rollout.actions[:, envs], log_std)
        entropy = dist.entropy(params, log_std)
        log_ratio = log_prob - rollout.log_probs[:, envs]
        ratio = log_ratio.exp()
        advantage = advantages[:, envs].detach()
        clipped_ratio = ratio.clamp(1.0 - algo.clip_range, 1.0 + algo.clip_range)
        surrogate = torch.min(ratio * advantage, clipped_ratio * advantage)
        policy_loss = -(surrogate * mask).sum() / n_valid

        target = targets[:, envs].detach()
        value_error = (target - values) ** 2
        if algo.clip_range_vf is not None:
            old = old_values[:, envs]
            clipped = old + (values - old).clamp(-algo.clip_range_vf, algo.clip_range_vf)
            value_error = torch.max(value_error, (target - clipped) ** 2)
        value_loss = (value_error * mask).sum() / n_valid
        entropy_mean = (entropy * mask).sum() / n_valid
        loss = policy_loss + algo.vf_coef * value_loss - algo.ent_coef * entropy_mean
        aux_loss = (aux * mask).sum() / n_valid if aux is not None else torch.zeros(())
        loss = loss + aux_loss
        with torch.no_grad():
            approx_kl = (((ratio - 1.0) - log_ratio) * mask).sum() / n_valid
            clip_fraction = (((ratio - 1.0).abs() > algo.clip_range).float() * mask).sum() / n_valid
        terms = torch.stack(
            [
                loss.detach(),
                policy_loss.detach(),
                value_loss.detach(),
                entropy_mean.detach(),
                aux_loss.detach().to(loss.device),
                approx_kl,
                clip_fraction,
            ]
        )
        return loss, terms

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """:meth:`A2C.state_dict` plus the minibatch-order generator's state (``minibatch_rng``)
        (the return statistics of ``algo.normalize_value`` are :meth:`A2C.state_dict`'s): all an
        update's epochs run between two checkpoints, so nothing else of them is kept."""
        return {**super().state_dict(), "minibatch_rng": self.minibatch_generator.get_state()}

    def load_state_dict(self, data: dict[str, Any]) -> bool:
        """:meth:`A2C.load_state_dict` and the minibatch-order generator.

        Raises
        ------
        KeyError
            the checkpoint has no ``minibatch_rng`` (not a PPO checkpoint)
            (and those of :meth:`A2C.load_state_dict`)
        """
        minibatch_rng = data["minibatch_rng"]
        restored = super().load_state_dict(data)
        self.minibatch_generator.set_state(minibatch_rng)
        return restored
