"""Synchronous advantage actor-critic (A2C) for memory policies, readable top to bottom.

One update:

1. **Collect** ``T`` steps from ``B`` envs without gradients, stepping the core one step at a time.
   The core state is carried from the previous update (truncated BPTT: it is a constant, so gradients
   stop at the rollout boundary), or, with ``n_steps: episode``, every env is reset and the rollout
   runs until each env has finished one episode (full-episode BPTT, as in the FWM paper).
2. **Returns**: GAE(λ) (λ = 1: n-step returns) over the valid steps, bootstrapping from the value of
   the next observation unless the episode *terminated*; a *truncated* episode bootstraps from the
   value of its final observation (or not at all with ``bootstrap_truncated: false``, which with
   ``n_steps: episode`` gives the paper's Monte-Carlo returns).
3. **Loss**: re-run the policy over the whole rollout ``[T, B]`` with gradients from the stored initial
   state, resetting the core where episodes start; ``policy + vf_coef·value − ent_coef·entropy +
   aux`` (MNM's meta loss), averaged over the valid steps; clip the gradient norm; Adam or RMSprop.

Gymnasium's next-step autoreset (``AutoresetMode.NEXT_STEP``): the step after an episode ended
ignores the action, resets the env and returns its first observation with reward 0. That step is
not a transition of any episode: its ``valid`` mask is False, so it contributes nothing to the loss,
and it never propagates advantages. The observation it was taken from is the episode's *final*
observation, so the value computed there (with the episode's core state) is exactly the bootstrap
value of a truncated episode. The observation it returns starts a new episode: ``starts`` is True
there and the core resets its state before that step.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.config import Config, ConfigError
from fwmrl.envs import (
    EnvStateError,
    describe_env,
    load_vector_env_state,
    make_vec_env,
    vector_env_state,
)
from fwmrl.memory import CoreState

CHECKPOINT_FORMAT = 2
"""Version of :meth:`A2C.state_dict` (1: the env was pickled, which is never loaded any more)."""


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN or infinite."""


@dataclasses.dataclass
class Rollout:
    """``T`` steps of ``B`` envs, time-major.

    Attributes:
        obs: observations ``[T, B, *obs_shape]`` the actions were taken from.
        starts: bool ``[T, B]``: ``obs[t, b]`` is the first observation of an episode (core reset).
        valid: bool ``[T, B]``: step ``t`` is a real transition that is learned from; False for the
            autoreset step after an episode ended (and, with ``n_steps: episode``, after an env's
            first episode).
        actions: ``[T, B]`` int64.
        rewards: ``[T, B]`` float32.
        terminated, truncated: bool ``[T, B]``: the episode ended at step ``t`` (the env's flags).
        values: ``[T + 1, B]`` values of the collection pass; ``values[T]`` is the bootstrap value of
            the observation after the rollout.
        initial_state: core state before step 0 (no gradient).
    """

    obs: Tensor
    starts: Tensor
    valid: Tensor
    actions: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    values: Tensor
    initial_state: CoreState


def compute_advantages(
    rewards: Tensor,
    values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    valid: Tensor,
    gamma: float,
    gae_lambda: float,
    bootstrap_truncated: bool = True,
) -> tuple[Tensor, Tensor]:
    """GAE(λ) advantages and returns for a rollout with next-step autoreset.

    Args:
        rewards, terminated, truncated, valid: ``[T, B]`` (see :class:`Rollout`).
        values: ``[T + 1, B]``: ``values[t + 1]`` is the value of the observation step ``t`` led to
            (for an episode that ended at ``t``, its final observation).
        gamma, gae_lambda: discount and GAE λ (1.0: n-step / Monte-Carlo returns).
        bootstrap_truncated: bootstrap a truncated episode from the value of its final observation.

    Returns:
        ``(advantages [T, B], returns [T, B])``, both zero where ``valid`` is False.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(steps)):
        next_value = values[t + 1] * (~terminated[t]).float()
        if not bootstrap_truncated:
            next_value = next_value * (~truncated[t]).float()
        delta = rewards[t] + gamma * next_value - values[t]
        continues = (~(terminated[t] | truncated[t])).float()
        running = (delta + gamma * gae_lambda * continues * running) * valid[t].float()
        advantages[t] = running
    returns = (advantages + values[:-1]) * valid.float()
    return advantages, returns


class A2C:
    """Synchronous A2C over a batched vector env with a :class:`MemoryActorCritic` policy.

    Args:
        config: the experiment (:class:`fwmrl.config.Config`); ``env``, ``core``, ``policy``,
            ``algo`` and ``train.seed`` / ``train.device`` are used here.

    Attributes:
        env: the vector env (next-step autoreset).
        policy: the actor-critic.
        optimizer: Adam or RMSprop over the policy's parameters.
        update: updates done so far.
        env_steps: env steps done so far (``T * B`` per update, autoreset steps included).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        algo = config.algo
        self.device = torch.device(config.train.device)
        torch.manual_seed(config.train.seed)  # parameter initialisation
        self.generator = torch.Generator().manual_seed(config.train.seed + 1)  # action sampling
        self.env = make_env_or_explain(config, config.env.num_envs, config.env.kwargs)
        self.num_envs = self.env.num_envs
        try:
            self.policy = MemoryActorCritic(
                self.env.single_observation_space,
                self.env.single_action_space,
                core=config.core.name,
                core_kwargs=config.core.kwargs,
                encoder_sizes=config.policy.encoder_sizes,
                activation=config.policy.activation,
            ).to(self.device)
        except ValueError as error:
            raise ConfigError(f"env.id: {error}") from None
        optimizer_class = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[algo.optimizer]
        self.optimizer = optimizer_class(self.policy.parameters(), lr=algo.lr, eps=algo.eps)
        self.update = 0
        self.env_steps = 0
        self.episodes = 0
        self.recent_returns: collections.deque[float] = collections.deque(maxlen=100)
        self.recent_lengths: collections.deque[int] = collections.deque(maxlen=100)
        self._reset_envs(seed=config.train.seed)

    # ------------------------------------------------------------------ env bookkeeping
    def _reset_envs(self, seed: int | None) -> None:
        """Reset every env and start fresh episodes (and core states)."""
        obs, _ = self.env.reset(seed=seed)
        self.obs = np.asarray(obs)
        self.starts = np.ones(self.num_envs, dtype=bool)  # obs is the first of an episode
        self.autoreset = np.zeros(self.num_envs, dtype=bool)  # the next step resets the env
        self.state = self.policy.initial_episode_state(self.num_envs, self.device)
        self.episode_return = np.zeros(self.num_envs)
        self.episode_length = np.zeros(self.num_envs, dtype=np.int64)

    def _tensor(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, device=self.device)

    def _sample(self, logits: Tensor) -> Tensor:
        """One action per row of ``logits [B, A]`` by inverting the CDF at a uniform draw: action
        ``k`` where ``cdf_{k-1} ≤ u < cdf_k``, exactly the categorical distribution (a third of
        ``torch.multinomial``'s time at these sizes)."""
        probs = torch.softmax(logits.float(), dim=-1).cpu()
        draw = torch.rand(probs.shape[0], 1, generator=self.generator)
        action = (probs.cumsum(dim=-1) <= draw).sum(dim=-1)
        return action.clamp_(max=probs.shape[-1] - 1)  # u above a rounded-down cdf_A

    # ------------------------------------------------------------------ 1. collect
    @torch.no_grad()
    def collect_rollout(self) -> Rollout:
        """Step the envs ``n_steps`` times (or one episode each) and record the transitions."""
        episode_mode = self.config.algo.n_steps == "episode"
        if episode_mode:
            self._reset_envs(seed=None)  # the envs' generators keep running
            max_steps = self.config.algo.max_episode_steps
        else:
            max_steps = int(self.config.algo.n_steps)
        alive = np.ones(self.num_envs, dtype=bool)  # episode mode: first episode not finished yet
        initial_state = self.state
        record: dict[str, list[Any]] = collections.defaultdict(list)
        for _ in range(max_steps):
            obs, starts = self._tensor(self.obs), self._tensor(self.starts)
            logits, value, self.state = self.policy.step(obs, self.state, starts)
            action = self._sample(logits)
            next_obs, reward, terminated, truncated, _ = self.env.step(action.numpy())
            valid = ~self.autoreset & alive  # False: this step only reset the env
            record["obs"].append(obs)
            record["starts"].append(starts)
            record["valid"].append(valid)
            record["actions"].append(action)
            record["rewards"].append(np.asarray(reward, dtype=np.float32))
            record["terminated"].append(np.asarray(terminated, dtype=bool))
            record["truncated"].append(np.asarray(truncated, dtype=bool))
            record["values"].append(value)
            ended = np.asarray(terminated | truncated, dtype=bool)
            self._track_episodes(np.asarray(reward), ended, valid)
            self.starts = self.autoreset  # after an autoreset step, next_obs starts an episode
            self.autoreset = ended
            self.obs = np.asarray(next_obs)
            self.env_steps += self.num_envs
            if episode_mode:
                alive &= ~ended
                if not alive.any():
                    break
        # bootstrap value of the observation after the rollout (the state is not advanced)
        _, last_value, _ = self.policy.step(
            self._tensor(self.obs), self.state, self._tensor(self.starts)
        )
        record["values"].append(last_value)

        def stack(key: str, dtype: torch.dtype | None = None) -> Tensor:
            items = [torch.as_tensor(x) for x in record[key]]
            return torch.stack(items).to(device=self.device, dtype=dtype)

        return Rollout(
            obs=stack("obs"),
            starts=stack("starts", torch.bool),
            valid=stack("valid", torch.bool),
            actions=stack("actions", torch.int64),
            rewards=stack("rewards", torch.float32),
            terminated=stack("terminated", torch.bool),
            truncated=stack("truncated", torch.bool),
            values=stack("values", torch.float32),
            initial_state=initial_state,
        )

    def _track_episodes(self, reward: np.ndarray, ended: np.ndarray, valid: np.ndarray) -> None:
        self.episode_return += np.where(valid, reward, 0.0)
        self.episode_length += valid
        done = np.flatnonzero(ended & valid)
        if len(done):  # in env order, as appending one by one would
            self.recent_returns.extend(self.episode_return[done].tolist())
            self.recent_lengths.extend(self.episode_length[done].tolist())
            self.episodes += len(done)
            self.episode_return[done] = 0.0
            self.episode_length[done] = 0

    # ------------------------------------------------------------------ 2 + 3. learn
    def train_on_rollout(self, rollout: Rollout) -> dict[str, float]:
        """One gradient step on a rollout; returns the loss terms."""
        algo = self.config.algo
        advantages, returns = compute_advantages(
            rollout.rewards,
            rollout.values,
            rollout.terminated,
            rollout.truncated,
            rollout.valid,
            algo.gamma,
            algo.gae_lambda,
            algo.bootstrap_truncated,
        )
        mask = rollout.valid.float()
        n_valid = mask.sum().clamp_min(1.0)
        if algo.normalize_advantage:
            mean = (advantages * mask).sum() / n_valid
            std = (((advantages - mean) * mask) ** 2).sum().div(n_valid).sqrt()
            advantages = (advantages - mean) / (std + 1e-8) * mask

        logits, values, _ = self.policy(rollout.obs, rollout.initial_state, rollout.starts)
        log_probs = torch.log_softmax(logits, dim=-1)
        action_log_prob = log_probs.gather(-1, rollout.actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)

        policy_loss = -(advantages.detach() * action_log_prob * mask).sum() / n_valid
        value_loss = ((returns.detach() - values) ** 2 * mask).sum() / n_valid
        entropy_mean = (entropy * mask).sum() / n_valid
        loss = policy_loss + algo.vf_coef * value_loss - algo.ent_coef * entropy_mean
        aux = self.policy.aux_loss_per_step  # MNM's meta loss, per step
        aux_loss = (aux * mask).sum() / n_valid if aux is not None else torch.zeros(())
        loss = loss + aux_loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss became {loss.item()} at update {self.update + 1} "
                f"(policy {policy_loss.item():.4g}, value {value_loss.item():.4g}, "
                f"entropy {entropy_mean.item():.4g}, aux {aux_loss.item():.4g})"
            )

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = algo.max_grad_norm if algo.max_grad_norm is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), max_norm)
        if not torch.isfinite(grad_norm):
            raise NonFiniteLossError(
                f"the gradient norm became {grad_norm.item()} at update {self.update + 1}"
            )
        self.optimizer.step()
        self.update += 1
        valid_values = rollout.values[:-1][rollout.valid]
        explained = 1.0 - torch.var(returns[rollout.valid] - valid_values) / (
            torch.var(returns[rollout.valid]) + 1e-8
        )
        return {
            "loss": loss.item(),
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": entropy_mean.item(),
            "aux_loss": aux_loss.item(),
            "grad_norm": grad_norm.item(),
            "explained_variance": explained.item(),
            "rollout_steps": float(rollout.rewards.shape[0]),
        }

    def learn_update(self) -> dict[str, float]:
        """Collect one rollout and train on it."""
        return self.train_on_rollout(self.collect_rollout())

    def learn(
        self,
        total_steps: int,
        callback: Callable[[A2C, dict[str, float]], Any] | None = None,
    ) -> A2C:
        """Train until ``env_steps >= total_steps``; ``callback(self, metrics)`` after every update."""
        while self.env_steps < total_steps:
            metrics = self.learn_update()
            if callback is not None:
                callback(self, metrics)
        return self

    def episode_stats(self) -> dict[str, float]:
        """Mean return and length of the last 100 finished training episodes."""
        if not self.recent_returns:
            return {}
        return {
            "episode_return_mean": float(np.mean(self.recent_returns)),
            "episode_length_mean": float(np.mean(self.recent_lengths)),
        }

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly, as tensors and plain data only (the dict
        loads with ``torch.load(weights_only=True)`` and nothing in it is ever unpickled): model,
        optimizer, RNG states, counters, the carried core state and env bookkeeping, and the env's
        own state (:func:`fwmrl.envs.vector_env_state`: generator states, positions, goals, task
        parameters) where the env can save it. Otherwise ``env_state`` is ``None`` and
        ``env_reset_seed`` is the seed the envs are reset with on resume."""
        env_state = vector_env_state(self.env)
        return {
            "format": CHECKPOINT_FORMAT,
            "update": self.update,
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": self.generator.get_state(),
            "recent_returns": torch.tensor(list(self.recent_returns), dtype=torch.float64),
            "recent_lengths": torch.tensor(list(self.recent_lengths), dtype=torch.int64),
            "rollout": {
                "obs": torch.as_tensor(self.obs),
                "starts": torch.as_tensor(self.starts),
                "autoreset": torch.as_tensor(self.autoreset),
                "episode_return": torch.as_tensor(self.episode_return),
                "episode_length": torch.as_tensor(self.episode_length),
                "core_state": {k: v.cpu() for k, v in self.state.state_dict().items()},
            },
            "env_state": None if env_state is None else _tensors(env_state),
            "env_reset_seed": self.config.train.seed + 1_000_003 * self.update,
            "env": describe_env(self.env),
            "config": self.config.to_dict(),
        }

    def load_state_dict(self, data: dict[str, Any]) -> bool:
        """Restore :meth:`state_dict`. Returns whether the env state was restored; otherwise (an env
        that cannot save its state, or a format-1 checkpoint, whose pickled env is never loaded) the
        envs are reset with the checkpoint's ``env_reset_seed`` and the run is not bit-identical.

        The optimizer continues from its saved state with this config's ``algo.lr`` and
        ``algo.eps`` (a resume override of either takes effect).

        Raises:
            EnvStateError: the saved env state does not fit this env (names the entry).
            ValueError, KeyError, RuntimeError: the checkpoint does not fit this config.
        """
        self.policy.load_state_dict(data["policy"])
        self.optimizer.load_state_dict(data["optimizer"])
        for group in self.optimizer.param_groups:
            group["lr"], group["eps"] = self.config.algo.lr, self.config.algo.eps
        torch.set_rng_state(data["torch_rng"])
        self.generator.set_state(data["sampler_rng"])
        self.update, self.env_steps = int(data["update"]), int(data["env_steps"])
        self.episodes = int(data["episodes"])
        self.recent_returns.clear()
        self.recent_returns.extend(data["recent_returns"].tolist())
        self.recent_lengths.clear()
        self.recent_lengths.extend(data["recent_lengths"].tolist())
        env_state = data.get("env_state")
        if env_state is not None:
            load_vector_env_state(self.env, _arrays(env_state))
            rollout = data["rollout"]
            shapes = {
                "obs": (self.num_envs, *self.env.single_observation_space.shape),
                **dict.fromkeys(
                    ("starts", "autoreset", "episode_return", "episode_length"), (self.num_envs,)
                ),
            }
            restored = {}
            for key, shape in shapes.items():
                value = rollout[key].numpy().copy()
                if value.shape != shape:
                    raise ValueError(f"rollout.{key}: expected shape {shape}, got {value.shape}")
                restored[key] = value
            self.obs, self.starts, self.autoreset = (
                restored[k] for k in ("obs", "starts", "autoreset")
            )
            self.episode_return = restored["episode_return"]
            self.episode_length = restored["episode_length"]
            state_type = type(self.policy.initial_state(1))
            self.state = state_type.from_state_dict(rollout["core_state"]).to(self.device)
            return True
        seed = data.get("env_reset_seed", self.config.train.seed + 1_000_003 * self.update)
        self._reset_envs(seed=int(seed))
        return False

    def nonfinite(self, outputs: bool = False) -> str | None:
        """What became NaN or infinite (the parameters, the current observations, or with
        ``outputs=True`` the policy's logits and value on them), or ``None`` when all is finite.

        The run job calls it after every optimizer step, and with ``outputs=True`` before writing a
        checkpoint, so a kept checkpoint always holds weights that act."""
        for name, param in self.policy.named_parameters():
            if not bool(torch.isfinite(param).all()):
                return f"parameter {name} became non-finite after update {self.update}"
        if not np.isfinite(self.obs).all():
            return f"the env returned non-finite observations (update {self.update})"
        if outputs:
            with torch.no_grad():
                logits, value, _ = self.policy.step(
                    self._tensor(self.obs), self.state, self._tensor(self.starts)
                )
            if not bool(torch.isfinite(logits).all() and torch.isfinite(value).all()):
                return f"the policy's outputs became non-finite after update {self.update}"
        return None

    def close(self) -> None:
        """Close the envs."""
        self.env.close()


def _tensors(value: Any) -> Any:
    """NumPy arrays in nested dicts/lists as tensors (for a ``weights_only`` checkpoint)."""
    if isinstance(value, dict):
        return {k: _tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tensors(v) for v in value]
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value


def _arrays(value: Any) -> Any:
    """The inverse of :func:`_tensors`: tensors as NumPy arrays; anything but tensors, strings,
    numbers, lists and dicts raises :class:`EnvStateError`."""
    if isinstance(value, dict):
        return {k: _arrays(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_arrays(v) for v in value]
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (str, int, float, bool)):
        return value
    raise EnvStateError(f"the saved env state holds a {type(value).__name__}, not plain data")


def make_env_or_explain(
    config: Config, num_envs: int, kwargs: dict[str, Any]
) -> gym.vector.VectorEnv:
    """:func:`fwmrl.envs.make_vec_env` (stepped as ``env.vectorization`` says), turning a bad id or
    argument into a :class:`ConfigError`."""
    try:
        return make_vec_env(
            config.env.id, num_envs, vectorization=config.env.vectorization, **kwargs
        )
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ConfigError(
            f"env: cannot make {config.env.id!r} with kwargs {kwargs}: {message}"
        ) from None


def make_eval_env(config: Config, num_envs: int, **extra: Any) -> gym.vector.VectorEnv:
    """The evaluation vector env: ``env.kwargs`` updated with ``env.eval_kwargs`` and ``extra``."""
    kwargs = {**config.env.kwargs, **config.env.eval_kwargs, **extra}
    return make_env_or_explain(config, num_envs, kwargs)
