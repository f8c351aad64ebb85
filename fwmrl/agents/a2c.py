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
3. **Loss**: the policy's outputs over the whole rollout ``[T, B]`` with gradients: the collection
   steps' own, recorded by autograd (``A2C.reuse_collection_graph``; the parameters have not changed
   since), or the policy re-run over the rollout from the stored initial state, resetting the core
   where episodes start (FWM, whose window scan back-propagates faster); ``policy +
   vf_coef·value − ent_coef·entropy + aux`` (MNM's meta loss), averaged over the valid steps; clip
   the gradient norm; Adam or RMSprop.

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
import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from fwmrl import distributed
from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.agents.value_norm import ValueNormalizer
from fwmrl.config import AlgoConfig, ConfigError, section_from_dict
from fwmrl.envs import (
    EnvStateError,
    describe_env,
    load_vector_env_state,
    make_vec_env,
    vector_env_state,
)
from fwmrl.errors import NonFiniteLossError
from fwmrl.memory import CoreState
from fwmrl.memory.lstm import compiled_lstm_cells

CHECKPOINT_FORMAT = 2
"""Version of :meth:`A2C.state_dict` (1: the env was pickled, which is never loaded any more)."""


@dataclasses.dataclass
class Rollout:
    """``T`` steps of ``B`` envs, time-major.

    Attributes
    ----------
    obs
        the observations the actions were taken from, as the policy's flat features
        ``[T, B, obs_size]`` (:meth:`MemoryActorCritic.preprocess`).
    starts
        bool ``[T, B]``: ``obs[t, b]`` is the first observation of an episode (core reset).
    valid
        bool ``[T, B]``: step ``t`` is a real transition that is learned from; False for the
        autoreset step after an episode ended (and, with ``n_steps: episode``, after an env's
        first episode).
    actions
        ``[T, B, *action_shape]`` as the policy's action distribution stores them (int64
        for Discrete/MultiDiscrete/MultiBinary; float32 unclipped samples for Box).
    rewards
        ``[T, B]`` float32.
    terminated, truncated
        bool ``[T, B]``: the episode ended at step ``t`` (the env's flags).
    values
        ``[T + 1, B]`` values of the collection pass; ``values[T]`` is the bootstrap value of
        the observation after the rollout.
    initial_state
        core state before step 0 (no gradient).
    log_probs
        ``[T, B]`` log-probabilities of ``actions`` under the collection policy, or
        ``None`` (recorded only when the trainer's ``record_log_probs`` is set: PPO's old
        log-probabilities; A2C does not need them).
    outputs
        the collection pass's policy outputs with their autograd graph
        (:class:`PolicyOutputs`, with :attr:`A2C.reuse_collection_graph`), or ``None``.
        :meth:`A2C.train_on_rollout` back-propagates through them instead of re-running the
        policy over the rollout while the parameters are still the ones they were computed
        with, and consumes them (a second call re-runs the policy).
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
    log_probs: Tensor | None = None
    outputs: PolicyOutputs | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class PolicyOutputs:
    """The policy's outputs over a rollout, recorded step by step with their autograd graph.

    Attributes
    ----------
    params
        ``[T, B, param_size]`` action-distribution parameters (logits or means).
    values
        ``[T, B]`` value-head outputs.
    aux
        ``[T, B]`` the core's auxiliary loss per step (MNM's meta loss), or ``None``.
    versions
        the policy parameters' version counters when the outputs were computed; the
        outputs are those of today's parameters while these are unchanged (an optimizer step
        or ``load_state_dict`` changes them in place).
    """

    params: Tensor
    values: Tensor
    aux: Tensor | None
    versions: tuple[int, ...]

    @staticmethod
    def parameter_versions(policy: MemoryActorCritic) -> tuple[int, ...]:
        """The version counters of ``policy``'s parameters (each in-place change increments one)."""
        return tuple(p._version for p in policy.parameters())

    def current(self, policy: MemoryActorCritic) -> bool:
        """Whether ``policy``'s parameters are unchanged since these outputs were computed."""
        return self.versions == self.parameter_versions(policy)


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

    Parameters
    ----------
    rewards, terminated, truncated, valid
        ``[T, B]`` (see :class:`Rollout`).
    values
        ``[T + 1, B]``: ``values[t + 1]`` is the value of the observation step ``t`` led to
        (for an episode that ended at ``t``, its final observation).
    gamma, gae_lambda
        discount and GAE λ (1.0: n-step / Monte-Carlo returns).
    bootstrap_truncated
        bootstrap a truncated episode from the value of its final observation.

    Returns
    -------
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


def env_shard(num_envs: int, world: int, rank: int) -> slice:
    """The envs (indices of the global ``env.num_envs``) that rank ``rank`` of ``world`` steps.

    Raises
    ------
    ConfigError
        ``num_envs`` is not a multiple of ``world``.
    """
    if num_envs % world:
        divisors = [n for n in range(1, num_envs + 1) if num_envs % n == 0]
        raise ConfigError(
            f"env.num_envs: {num_envs} envs cannot be split evenly over {world} processes; "
            f"use an env.num_envs that is a multiple of {world}, or a number of processes "
            f"that divides {num_envs} ({', '.join(map(str, divisors[:12]))}"
            f"{', ...' if len(divisors) > 12 else ''})"
        )
    per = num_envs // world
    return slice(rank * per, (rank + 1) * per)


def build_policy(
    core: str,
    env: gym.vector.VectorEnv | gym.Env,
    core_kwargs: dict[str, Any] | None = None,
    policy_kwargs: dict[str, Any] | None = None,
) -> MemoryActorCritic:
    """The :class:`MemoryActorCritic` with core ``core`` (its arguments ``core_kwargs``) and
    ``policy_kwargs`` (``encoder_sizes``, ``activation``, ``head_init``) for the spaces of ``env``
    (a single env's spaces of a vector env).

    Raises
    ------
    ConfigError
        the env's spaces are not supported (the message names them).
    """
    vector = isinstance(env, gym.vector.VectorEnv)
    try:
        return MemoryActorCritic(
            env.single_observation_space if vector else env.observation_space,
            env.single_action_space if vector else env.action_space,
            core=core,
            core_kwargs=dict(core_kwargs or {}),
            **(policy_kwargs or {}),
        )
    except ValueError as error:
        raise ConfigError(f"env.id: {error}") from None


def as_vector_env(env: gym.Env | gym.vector.VectorEnv) -> gym.vector.VectorEnv:
    """``env`` as a vector env: a ``gymnasium.vector.VectorEnv`` as it is, a ``gymnasium.Env``
    instance as a ``SyncVectorEnv`` of that one env (as SB3 does).

    Raises
    ------
    ConfigError
        ``env`` is neither.
    """
    if isinstance(env, gym.vector.VectorEnv):
        return env
    if isinstance(env, gym.Env):
        return gym.vector.SyncVectorEnv([lambda: env])
    raise ConfigError(
        f"env: give a Gymnasium id, a gymnasium.Env or a gymnasium.vector.VectorEnv, "
        f"got {type(env).__name__}"
    )


class A2C:
    """Synchronous A2C over a batched vector env with a :class:`MemoryActorCritic` policy.

    Under ``torchrun`` (:mod:`fwmrl.distributed`) each of the ``N`` ranks steps its own
    ``env.num_envs / N`` of the envs (rank ``r`` the envs ``r·B/N … (r+1)·B/N − 1`` of a one-process
    run, seeded as those are), every rank draws the whole batch's sampling uniforms and uses its
    own rows, the loss is normalised by the global number of valid steps and the gradients are
    summed over the ranks before clipping, so an update is the one-process update up to
    floating-point summation order. Episode statistics are gathered from every rank.

    The trainer takes objects and plain values, never a config: :func:`fwmrl.agents.job.build_agent`
    builds one from a :class:`fwmrl.config.Config` (``fwmrl train``), :class:`fwmrl.A2C` adds
    Stable-Baselines3's calls. Every argument is checked as the config's key of the same name is
    (a bad one raises :class:`ConfigError` naming it).

    Parameters
    ----------
    policy
        a core name (``fwm``, ``lstm``, ``gated_fw``, ``mnm_g``, ``mnm_p`` or ``none``), built for
        the env's spaces with ``core_kwargs`` and ``policy_kwargs``, or a
        :class:`MemoryActorCritic` for the env's spaces.
    env
        a Gymnasium id (``n_envs`` copies made with ``env_kwargs`` and stepped as
        ``vectorization`` says; under ``torchrun`` each rank makes its share), a
        ``gymnasium.Env`` instance (trained as a vector env of that one env) or a
        ``gymnasium.vector.VectorEnv`` (one process only). The env's state is saved in
        checkpoints only if it is one of fwmrl's envs.
    n_envs, env_kwargs, vectorization
        ``env.num_envs``, ``env.kwargs`` and ``env.vectorization`` of a config; for an env
        given by its id only.
    core_kwargs, policy_kwargs
        the core's arguments (``core.*``) and ``encoder_sizes``, ``activation``, ``head_init``
        (``policy.*``); for a policy given by its core name only.
    seed
        seeds the parameters, the action sampling and the envs (``train.seed``).
    device
        ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (``train.device``).
    **hyperparameters
        the ``algo.*`` keys (:class:`fwmrl.config.AlgoConfig`) but ``name``: ``n_steps``,
        ``gamma``, ``gae_lambda``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``, ``lr``, ...

    Attributes
    ----------
    env
        the vector env (next-step autoreset): this rank's envs.
    num_envs
        this rank's envs; ``global_num_envs`` all ranks' (``env.num_envs``) and
        ``env_slice`` this rank's share of them.
    rank, world
        this process's rank and the number of data-parallel processes.
    policy
        the actor-critic.
    algo
        the hyperparameters, checked (:class:`fwmrl.config.AlgoConfig`, ``name`` the class's
        :attr:`algorithm`).
    seed
        the seed of the parameters, the action sampling and the envs.
    init_arguments
        the constructor's arguments as checked, plain data that builds this trainer again
        (``type(self)(**init_arguments)``); ``policy`` / ``env`` are ``None`` where they were
        given as objects.
    optimizer
        Adam or RMSprop over the policy's parameters.
    update
        updates done so far.
    env_steps
        env steps done so far over all ranks (``T * B`` per update, autoreset steps
        included).
    """

    record_log_probs = False
    """Whether :meth:`collect_rollout` stores the actions' log-probabilities (PPO sets it)."""

    reuse_collection_graph = True
    """Whether :meth:`collect_rollout` records the policy's steps with autograd (the rest of
    collecting runs without) and :meth:`train_on_rollout` back-propagates through those outputs
    instead of re-running the policy over the rollout from its initial state: the same function of
    the same parameters, so the same loss and gradients up to float rounding (tested for every
    core), one forward pass less per update. Used for cores whose ``step_graph_is_cheap`` (all but
    FWM, whose window scan back-propagates faster than its recorded steps); ignored where
    ``record_log_probs`` is set (PPO re-runs its minibatches after each step). False gives the
    re-running path."""

    algorithm = "a2c"
    """The ``algo.name`` the hyperparameters are checked for (PPO's keys are refused)."""

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
        **hyperparameters: Any,
    ) -> None:
        if "name" in hyperparameters:
            raise ConfigError(
                f"algo.name: {type(self).__name__} is algo.name {self.algorithm}; give the "
                "hyperparameters without a name (or use the class of the other algorithm)"
            )
        algo = section_from_dict("algo", {"name": self.algorithm, **hyperparameters})
        self.algo: AlgoConfig = algo  # type: ignore[assignment]
        run = section_from_dict("train", {"seed": seed, "device": device})
        self.seed: int = run.seed  # type: ignore[attr-defined]
        vector = None
        if isinstance(env, str):
            spec = section_from_dict(
                "env",
                {
                    "id": env,
                    "num_envs": n_envs,
                    "kwargs": dict(env_kwargs or {}),
                    "vectorization": vectorization,
                },
            )
            env_kwargs, global_num_envs = spec.kwargs, spec.num_envs  # type: ignore[attr-defined]
        else:
            if env_kwargs or vectorization != "auto":
                raise ConfigError("env_kwargs, vectorization: only for an env given by its id")
            vector = as_vector_env(env)
            global_num_envs = vector.num_envs
            if distributed.world_size() > 1:
                raise ConfigError(
                    "env: a given env cannot be split over processes; give its id under torchrun"
                )
        if isinstance(policy, str):
            core = section_from_dict("core", {"name": policy, **(core_kwargs or {})})
            policy_kwargs = section_from_dict("policy", dict(policy_kwargs or {})).model_dump()
            core_kwargs = core.kwargs  # type: ignore[attr-defined]
        elif not isinstance(policy, MemoryActorCritic):
            raise ConfigError(
                f"policy: give a core name or a MemoryActorCritic, got {type(policy).__name__}"
            )
        elif core_kwargs or policy_kwargs:
            raise ConfigError(
                "core_kwargs, policy_kwargs: only for a policy given by its core name"
            )
        self._check_num_envs(global_num_envs)
        self.init_arguments: dict[str, Any] = {
            "policy": policy if isinstance(policy, str) else None,
            "env": env if isinstance(env, str) else None,
            "n_envs": global_num_envs,
            "env_kwargs": dict(env_kwargs or {}),
            "vectorization": vectorization,
            "core_kwargs": dict(core_kwargs or {}),
            "policy_kwargs": dict(policy_kwargs or {}),
            "seed": self.seed,
            "device": run.device,  # type: ignore[attr-defined]
            **algo.model_dump(exclude={"name"}),
        }
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.global_num_envs = global_num_envs
        self.env_slice = env_shard(global_num_envs, self.world, self.rank)
        self.device = distributed.local_device(device)
        torch.manual_seed(self.seed)  # parameter initialisation (the same on every rank)
        self.generator = torch.Generator().manual_seed(self.seed + 1)  # action sampling
        local = self.env_slice.stop - self.env_slice.start
        if vector is None:
            vector = make_vector_env(env, local, self._shard_kwargs(env_kwargs), vectorization)
        self.env = vector
        self.num_envs = self.env.num_envs
        if isinstance(policy, str):
            policy = build_policy(policy, self.env, core_kwargs, policy_kwargs)
        else:
            check_policy_spaces(policy, self.env)
        self.policy = policy.to(self.device)
        optimizer_class = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[algo.optimizer]
        self.optimizer = optimizer_class(self.policy.parameters(), lr=algo.lr, eps=algo.eps)
        self.update = 0
        self.env_steps = 0
        self.episodes = 0
        self.recent_returns: collections.deque[float] = collections.deque(maxlen=100)
        self.recent_lengths: collections.deque[int] = collections.deque(maxlen=100)
        self._finished: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # _flush_episodes
        self._tracked_steps = 0
        self.value_normalizer = ValueNormalizer() if algo.normalize_value else None
        self._reset_envs(seed=self.seed)

    def _check_num_envs(self, num_envs: int) -> None:
        """Refuse a number of envs (of all ranks) this algorithm cannot split (A2C takes any)."""

    def _shard_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``env.kwargs`` for this rank's envs. GraphNav's ``graph_order: fixed`` gives env ``k``
        bank graph ``graph_offset + k``: rank ``r`` continues at its first global env index, so
        every rank plays the graphs its envs play in a one-process run."""
        if self.world == 1 or kwargs.get("graph_order") != "fixed":
            return kwargs
        offset = int(kwargs.get("graph_offset", 0)) + self.env_slice.start
        return {**kwargs, "graph_offset": offset}

    # ------------------------------------------------------------------ env bookkeeping
    def _reset_envs(self, seed: int | None) -> None:
        """Reset every env and start fresh episodes (and core states); ``seed`` is the one of the
        whole batch (env ``i`` of all ranks gets ``seed + i``)."""
        obs, _ = self.env.reset(seed=None if seed is None else seed + self.env_slice.start)
        self.obs = self._features(obs)
        self.starts = np.ones(self.num_envs, dtype=bool)  # obs is the first of an episode
        self.autoreset = np.zeros(self.num_envs, dtype=bool)  # the next step resets the env
        self.state = self.policy.initial_episode_state(self.num_envs, self.device)
        self.episode_return = np.zeros(self.num_envs)
        self.episode_length = np.zeros(self.num_envs, dtype=np.int64)

    def _tensor(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, device=self.device)

    def _features(self, obs: Any) -> np.ndarray:
        """The envs' observations as the policy's flat float32 features ``[B, obs_size]``
        (:mod:`fwmrl.agents.spaces`: one-hot, image scaling, Dict/Tuple concatenation)."""
        return self.policy.flatten(obs, batch_dims=1).numpy()

    def _sample(self, params: Tensor) -> Tensor:
        """One action per row of the head outputs ``params [B, P]``, a deterministic function of
        uniform draws (:class:`fwmrl.agents.spaces.ActionDistribution`; Discrete: the CDF
        inverted at the draw, exactly the categorical distribution in a third of
        ``torch.multinomial``'s time). Under ``torchrun`` every rank draws the uniforms of all
        ranks' rows and uses its own (the generator stays the same everywhere)."""
        dist = self.policy.action_dist
        rows = params.shape[0]
        draw = torch.rand(rows * self.world, dist.noise_size, generator=self.generator)
        draw = draw[self.rank * rows : (self.rank + 1) * rows]
        log_std = None if self.policy.log_std is None else self.policy.log_std.detach().cpu()
        return dist.sample(params.cpu(), draw, log_std)

    # ------------------------------------------------------------------ 1. collect
    def collect_rollout(self) -> Rollout:
        """Step the envs ``n_steps`` times (or one episode each) and record the transitions.

        With :attr:`reuse_collection_graph` (and no ``record_log_probs``) the policy's steps are
        recorded by autograd from the detached carried state and the rollout keeps their outputs
        (:attr:`Rollout.outputs`); everything else runs without gradients."""
        record_graph = (
            self.reuse_collection_graph
            and not self.record_log_probs
            and getattr(self.policy.core, "step_graph_is_cheap", True)
        )
        with torch.no_grad(), self._cells():
            return self._collect(record_graph)

    def _cells(self) -> contextlib.AbstractContextManager[None]:
        """The context the policy runs in while collecting and learning: LSTM cells (the LSTM
        core's steps) in the compiled kernels (:func:`fwmrl.memory.lstm.compiled_lstm_cells`,
        the same values to float rounding); a trainer that records log-probabilities (PPO) keeps
        ``torch.lstm_cell``."""
        return contextlib.nullcontext() if self.record_log_probs else compiled_lstm_cells()

    def _collect(self, record_graph: bool) -> Rollout:
        episode_mode = self.algo.n_steps == "episode"
        if episode_mode:
            self._reset_envs(seed=None)  # the envs' generators keep running
            max_steps = self.algo.max_episode_steps
        else:
            max_steps = int(self.algo.n_steps)
        alive = np.ones(self.num_envs, dtype=bool)  # episode mode: first episode not finished yet
        self.state = self.state.detach()  # a truncated-BPTT boundary
        initial_state = self.state
        record: dict[str, list[Any]] = collections.defaultdict(list)
        versions = PolicyOutputs.parameter_versions(self.policy) if record_graph else ()
        # Under torchrun, episode mode: a rank whose envs have all ended learns the rollout's
        # length from the others (it steps on, without valid steps, until the last rank's envs end).
        ends = distributed.EpisodeEnds(self.device) if episode_mode and self.world > 1 else None
        for step in range(1, max_steps + 1):
            obs, starts = self._tensor(self.obs), self._tensor(self.starts)
            with torch.set_grad_enabled(record_graph):
                logits, value, state, aux = self.policy.forward_flat(
                    obs.unsqueeze(0), self.state, starts.unsqueeze(0)
                )  # a one-step window: with its aux loss [1, B] (MNM's meta loss)
                logits, value = logits.squeeze(0), value.squeeze(0)
            self.state = state
            with torch.set_grad_enabled(record_graph):
                if record_graph:  # (views made without grad mode would drop the graph)
                    record["params"].append(logits)
                    record["value_outputs"].append(value)
                    if aux is not None:
                        record["aux"].append(aux.squeeze(0))
                    logits, value = logits.detach(), value.detach()
            action = self._sample(logits)
            env_action = self.policy.action_dist.to_env(action)
            next_obs, reward, terminated, truncated, _ = self.env.step(env_action)
            valid = ~self.autoreset & alive  # False: this step only reset the env
            record["obs"].append(obs)
            record["starts"].append(starts)
            record["valid"].append(valid)
            record["actions"].append(action)
            record["rewards"].append(np.asarray(reward, dtype=np.float32))
            record["terminated"].append(np.asarray(terminated, dtype=bool))
            record["truncated"].append(np.asarray(truncated, dtype=bool))
            record["values"].append(value)
            if self.record_log_probs:  # PPO's old log-probabilities; draws nothing
                dist, log_std = self.policy.action_dist, self.policy.log_std
                record["log_probs"].append(dist.log_prob(logits, action.to(logits.device), log_std))
            ended = np.asarray(terminated | truncated, dtype=bool)
            self._track_episodes(np.asarray(reward), ended, valid)
            self.starts = self.autoreset  # after an autoreset step, next_obs starts an episode
            self.autoreset = ended
            self.obs = self._features(next_obs)
            self.env_steps += self.global_num_envs
            if episode_mode:
                alive &= ~ended
                if not alive.any():
                    if ends is None:
                        break
                    if ends.steps is None:
                        ends.finish(step)
                if ends is not None and ends.steps == step:
                    break
        if ends is not None and ends.steps is None:
            ends.finish(max_steps)  # (some env still ran at the step limit)
        self._flush_episodes()
        outputs = None
        if record_graph:
            self.state = self.state.detach()  # the graph stays with the rollout's outputs only
            with torch.enable_grad():
                outputs = PolicyOutputs(
                    params=torch.stack(record["params"]),
                    values=torch.stack(record["value_outputs"]),
                    aux=torch.stack(record["aux"]) if record["aux"] else None,
                    versions=versions,
                )
        # the value of the observation after the rollout (the state not advanced)
        _, bootstrap, _ = self.policy.step_flat(
            self._tensor(self.obs), self.state, self._tensor(self.starts)
        )
        record["values"].append(bootstrap)

        def stack(key: str, dtype: torch.dtype | None = None) -> Tensor:
            items = [torch.as_tensor(x) for x in record[key]]
            return torch.stack(items).to(device=self.device, dtype=dtype)

        return Rollout(
            obs=stack("obs"),
            starts=stack("starts", torch.bool),
            valid=stack("valid", torch.bool),
            actions=stack("actions", self.policy.action_dist.action_dtype),
            rewards=stack("rewards", torch.float32),
            terminated=stack("terminated", torch.bool),
            truncated=stack("truncated", torch.bool),
            values=stack("values", torch.float32),
            initial_state=initial_state,
            log_probs=stack("log_probs", torch.float32) if self.record_log_probs else None,
            outputs=outputs,
        )

    def _track_episodes(self, reward: np.ndarray, ended: np.ndarray, valid: np.ndarray) -> None:
        self.episode_return += np.where(valid, reward, 0.0)
        self.episode_length += valid
        done = np.flatnonzero(ended & valid)
        if len(done):  # (step, global env) keys: all ranks' episodes in one-process order
            key = self._tracked_steps * self.global_num_envs + done + self.env_slice.start
            self._finished.append(
                (key, self.episode_return[done].copy(), self.episode_length[done].copy())
            )
            self.episode_return[done] = 0.0
            self.episode_length[done] = 0
        self._tracked_steps += 1
        if self.world == 1:
            self._flush_episodes()

    def _flush_episodes(self) -> None:
        """Add the episodes finished since the last call, of every rank, to the statistics in the
        order a one-process run finishes them (by step, then env); a collective under
        ``torchrun``."""
        parts = self._finished
        if self.world > 1:
            local = [np.concatenate(x) for x in zip(*parts, strict=True)] if parts else []
            parts = [p for p in distributed.all_gather_objects(local) if p]
        self._finished, self._tracked_steps = [], 0
        if not parts:
            return
        keys, returns, lengths = (np.concatenate(x) for x in zip(*parts, strict=True))
        order = np.argsort(keys, kind="stable")
        self.recent_returns.extend(returns[order].tolist())
        self.recent_lengths.extend(lengths[order].tolist())
        self.episodes += len(order)

    # ------------------------------------------------------------------ 2 + 3. learn
    def real_values(self, values: Tensor) -> Tensor:
        """Value-head outputs in reward units (the head predicts standardised returns with
        ``algo.normalize_value``; otherwise they are returned as they are)."""
        if self.value_normalizer is None:
            return values
        return self.value_normalizer.denormalize(values)

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor]:
        """``(advantages, value targets)`` of a rollout with the trainer's γ, λ and truncation rule,
        on the collection values in reward units (:meth:`real_values`); with ``algo.baseline:
        batch_mean`` the values and the value targets are replaced by their mean over the batch's
        valid envs at each step (:meth:`per_step_batch_mean`)."""
        algo = self.algo
        batch_mean = algo.baseline == "batch_mean"
        values = self.real_values(rollout.values)
        if batch_mean:
            values = self.per_step_batch_mean(values, rollout.valid)
        advantages, returns = compute_advantages(
            rollout.rewards,
            values,
            rollout.terminated,
            rollout.truncated,
            rollout.valid,
            algo.gamma,
            algo.gae_lambda,
            algo.bootstrap_truncated,
        )
        if batch_mean:
            returns = self.per_step_batch_mean(returns, rollout.valid)
        return advantages, returns

    def per_step_batch_mean(self, x: Tensor, valid: Tensor) -> Tensor:
        """``x [T or T + 1, B]`` replaced by its mean over the valid envs of all ranks at each
        step (a row past ``valid``'s ``T`` averages every env), broadcast back to ``[., B]``."""
        mask = valid.to(x.dtype)
        if x.shape[0] == mask.shape[0] + 1:
            mask = torch.cat([mask, torch.ones_like(mask[:1])])
        sums = distributed.all_reduce_sum(torch.stack([(x * mask).sum(1), mask.sum(1)]))
        return (sums[0] / sums[1].clamp_min(1.0)).unsqueeze(1).expand_as(x)

    def train_on_rollout(self, rollout: Rollout) -> dict[str, float]:
        """One gradient step on a rollout; returns the loss terms.

        Under ``torchrun`` each rank's rollout holds its own envs: the loss terms are this rank's
        sums over the global number of valid steps, and the gradients (and the reported terms)
        are summed over the ranks before clipping, so every rank takes the one-process step."""
        algo = self.algo
        advantages, returns = self.advantages(rollout)
        mask = rollout.valid.float()
        valid_returns = returns[rollout.valid]
        residuals = valid_returns - self.real_values(rollout.values[:-1])[rollout.valid]
        sums = torch.stack(
            [mask.sum(), (advantages * mask).sum(), valid_returns.sum(), residuals.sum()]
        )
        sums = distributed.all_reduce_sum(sums)  # over all ranks' envs
        n_valid = sums[0].clamp_min(1.0)
        targets = returns
        if self.value_normalizer is not None:  # this rollout's returns join the statistics first
            mean_return = sums[2] / n_valid
            spread = distributed.all_reduce_sum(((valid_returns - mean_return) ** 2).sum())
            self.value_normalizer.update(n_valid, mean_return, spread)
            targets = self.value_normalizer.normalize(returns) * mask
        if algo.normalize_advantage:
            mean = sums[1] / n_valid
            spread = distributed.all_reduce_sum((((advantages - mean) * mask) ** 2).sum())
            std = spread.div(n_valid).sqrt()
            advantages = (advantages - mean) / (std + 1e-8) * mask

        params, values, aux = self.policy_outputs(rollout)
        dist, log_std = self.policy.action_dist, self.policy.log_std
        action_log_prob = dist.log_prob(params, rollout.actions, log_std)
        entropy = dist.entropy(params, log_std)

        policy_loss = -(advantages.detach() * action_log_prob * mask).sum() / n_valid
        value_loss = ((targets.detach() - values) ** 2 * mask).sum() / n_valid
        entropy_mean = (entropy * mask).sum() / n_valid
        loss = policy_loss + algo.vf_coef * value_loss - algo.ent_coef * entropy_mean
        aux_loss = (aux * mask).sum() / n_valid if aux is not None else torch.zeros(())
        loss = loss + aux_loss
        mean_return, mean_residual = sums[2:] / n_valid
        terms = torch.stack(
            [
                loss.detach(),
                policy_loss.detach(),
                value_loss.detach(),
                entropy_mean.detach(),
                aux_loss.detach().to(loss.device),
                ((valid_returns - mean_return) ** 2).sum(),
                ((residuals - mean_residual) ** 2).sum(),
            ]
        )
        if self.world == 1:
            self._check_loss(terms)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1:
            terms = self._sum_gradients(terms)  # the global loss terms, the same on every rank
            self._check_loss(terms)
        grad_norm = self._clip_and_step()
        self.update += 1
        loss_value, policy_value, value_value, entropy_value, aux_value, *spreads = terms.tolist()
        n = float(sums[0])  # unbiased variances, as torch.var
        explained = 1.0 - spreads[1] / (spreads[0] + 1e-8 * (n - 1)) if n > 1 else math.nan
        return {
            "loss": loss_value,
            "policy_loss": policy_value,
            "value_loss": value_value,
            "entropy": entropy_value,
            "aux_loss": aux_value,
            "grad_norm": grad_norm,
            "explained_variance": explained,
            "rollout_steps": float(rollout.rewards.shape[0]),
        }

    def _clip_and_step(self) -> float:
        """Clip the gradient norm to ``max_grad_norm``, step the optimizer; returns the norm before
        clipping (:class:`NonFiniteLossError` when it is NaN or infinite: no step is taken)."""
        max_grad_norm = self.algo.max_grad_norm
        max_norm = max_grad_norm if max_grad_norm is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), max_norm)
        if not torch.isfinite(grad_norm):
            raise NonFiniteLossError(
                f"the gradient norm became {grad_norm.item()} at update {self.update + 1}"
            )
        self.optimizer.step()
        return grad_norm.item()

    def policy_outputs(self, rollout: Rollout) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(params [T, B, P], values [T, B], aux [T, B] or None)`` of the policy over the
        rollout, with gradients: the collection pass's (:attr:`Rollout.outputs`, consumed) while
        the parameters are the ones it ran with, otherwise the policy re-run over the rollout
        from its initial state, resetting where episodes start."""
        outputs, rollout.outputs = rollout.outputs, None
        if outputs is not None and outputs.current(self.policy):
            return outputs.params, outputs.values, outputs.aux
        with self._cells():
            params, values, _, aux = self.policy.forward_flat(
                rollout.obs, rollout.initial_state, rollout.starts
            )
        return params, values, aux  # aux: MNM's meta loss, per step

    def _check_loss(self, terms: Tensor) -> None:
        """:class:`NonFiniteLossError` when the loss (``terms[0]``; then policy, value, entropy,
        aux) is NaN or infinite."""
        if not torch.isfinite(terms[0]):
            loss, policy, value, entropy, aux = terms[:5].tolist()
            raise NonFiniteLossError(
                f"the loss became {loss} at update {self.update + 1} "
                f"(policy {policy:.4g}, value {value:.4g}, entropy {entropy:.4g}, aux {aux:.4g})"
            )

    def _sum_gradients(self, extra: Tensor) -> Tensor:
        """Sum the policy's gradients over the ranks in place (a parameter that has no gradient on
        any rank keeps none, as in a one-process run) in one all-reduce with ``extra``; returns the
        sum of ``extra``."""
        params = list(self.policy.parameters())
        pieces = [
            p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params
        ]
        has_grad = extra.new_tensor([float(p.grad is not None) for p in params])
        flat = distributed.all_reduce_sum(torch.cat([*pieces, has_grad, extra.to(has_grad)]))
        offset = sum(p.numel() for p in params)
        chunks = flat[:offset].split([p.numel() for p in params])
        had = flat[offset : offset + len(params)].tolist()
        for p, chunk, any_grad in zip(params, chunks, had, strict=True):
            p.grad = chunk.view_as(p) if any_grad > 0 else None
        return flat[offset + len(params) :]

    def learn_update(self) -> dict[str, float]:
        """Collect one rollout and train on it, at the learning rate of ``algo.lr_decay_steps``
        (:meth:`scheduled_lr`)."""
        lr = self.scheduled_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return self.train_on_rollout(self.collect_rollout())

    def scheduled_lr(self) -> float:
        """The learning rate of the next update: ``algo.lr``, or with ``algo.lr_decay_steps`` that
        rate scaled by ``1 - env_steps / lr_decay_steps`` (at least 0): a function of the env
        steps done, so a resumed run continues on the same schedule."""
        decay = self.algo.lr_decay_steps
        if decay is None:
            return self.algo.lr
        return self.algo.lr * max(0.0, 1.0 - self.env_steps / decay)

    def learn(
        self,
        total_timesteps: int,
        callback: Callable[[A2C, dict[str, float]], Any] | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> A2C:
        """Train for ``total_timesteps`` env steps (whole updates: the last may go past), as
        Stable-Baselines3's ``learn``.

        Parameters
        ----------
        total_timesteps
            env steps (over all ranks) this call trains.
        callback
            ``callback(self, metrics)`` after every update, with the update's loss terms and the
            episode statistics (:meth:`episode_stats`); returning ``False`` stops training.
        reset_num_timesteps
            ``True`` (SB3's default): a new run of this model. The counters (``env_steps``,
            ``episodes``) and the episode statistics start again from 0, and a trainer that has
            already trained resets its envs to fresh episodes (their generators continue; a
            trainer that has not trained keeps its seeded start). ``False``: continue the counters
            and the episodes where they are, e.g. after :meth:`load_state_dict` (a resume).
            ``algo.lr_decay_steps`` follows ``env_steps``, so it restarts with the counter.
        progress_bar
            show a tqdm bar of the env steps.

        Returns
        -------
        ``self``.

        Raises
        ------
        ConfigError
            ``total_timesteps`` is not a non-negative integer.
        """
        if (
            isinstance(total_timesteps, bool)
            or not isinstance(total_timesteps, (int, np.integer))
            or total_timesteps < 0
        ):
            raise ConfigError(
                f"total_timesteps: give a non-negative number of env steps, got {total_timesteps!r}"
            )
        if reset_num_timesteps and (self.env_steps or self.episodes):
            self.env_steps, self.episodes = 0, 0
            self.recent_returns.clear()
            self.recent_lengths.clear()
            self._reset_envs(seed=None)
        from tqdm import tqdm

        target = self.env_steps + int(total_timesteps)
        with tqdm(
            total=int(total_timesteps), unit="step", unit_scale=True, disable=not progress_bar
        ) as bar:
            while self.env_steps < target:
                before = self.env_steps
                metrics = self.learn_update()
                bar.update(min(self.env_steps, target) - before)
                metrics = {**metrics, **self.episode_stats()}
                if callback is not None and callback(self, metrics) is False:
                    break
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
        ``env_reset_seed`` is the seed the envs are reset with on resume.

        Under ``torchrun`` every rank must call it: the envs' states, the env bookkeeping and the
        core states of all ranks are gathered and joined in rank order, so the checkpoint holds
        the whole batch exactly as a one-process run of the same ``env.num_envs`` would (and
        resumes on any number of processes that divides it); ``core_state_ranks`` and
        ``torch_rng_ranks`` keep each rank's own core state (in the form, dense or factors, it
        had) and torch RNG state for a resume on the same number of processes."""
        local = {
            "env_state": vector_env_state(self.env),
            "rollout": {
                "obs": self.obs,
                "starts": self.starts,
                "autoreset": self.autoreset,
                "episode_return": self.episode_return,
                "episode_length": self.episode_length,
            },
            "core_state": self._carried_state(),
            "torch_rng": torch.get_rng_state(),
        }
        parts = distributed.all_gather_objects(local) if self.world > 1 else [local]
        env_states = [part["env_state"] for part in parts]
        env_state = (
            None if any(e is None for e in env_states) else distributed.concat_batches(env_states)
        )
        rollout = distributed.concat_batches([part["rollout"] for part in parts])
        core_states = [part["core_state"] for part in parts]
        ranks: dict[str, Any] = {}
        if self.world > 1:
            ranks = {
                "core_state_ranks": core_states,
                "torch_rng_ranks": [part["torch_rng"] for part in parts],
            }
        return {
            "format": CHECKPOINT_FORMAT,
            "world_size": self.world,
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
                **{k: torch.as_tensor(v) for k, v in rollout.items()},
                "core_state": self._joined_core_state(core_states),
            },
            **ranks,
            "env_state": None if env_state is None else _tensors(env_state),
            "env_reset_seed": self.env_reset_seed(),
            "env": describe_env(self.env),
            **(
                {}
                if self.value_normalizer is None
                else {"value_norm": self.value_normalizer.state_dict()}
            ),
        }

    def load_state_dict(self, data: dict[str, Any]) -> bool:
        """Restore :meth:`state_dict`. Returns whether the env state was restored; otherwise (an env
        that cannot save its state, or a format-1 checkpoint, whose pickled env is never loaded) the
        envs are reset with the checkpoint's ``env_reset_seed`` and the run is not bit-identical.

        The optimizer continues from its saved state with this trainer's ``lr`` and
        ``eps`` (a resume override of either takes effect).

        Under ``torchrun`` each rank takes its own envs' rows of the checkpoint's whole-batch env
        state, bookkeeping and core state; on the number of processes that wrote the checkpoint
        each rank gets back exactly its own core state and torch RNG state.

        Raises
        ------
        EnvStateError
            the saved env state does not fit this env (names the entry).
        ValueError, KeyError, RuntimeError
            the checkpoint does not fit this trainer (its env, policy or hyperparameters).
        """
        if self.value_normalizer is not None and "value_norm" not in data:
            raise KeyError(
                "value_norm: the checkpoint has no return statistics but algo.normalize_value is "
                "set (it was saved by a run without value normalisation)"
            )
        self.policy.load_state_dict(data["policy"])
        self.optimizer.load_state_dict(data["optimizer"])
        if self.value_normalizer is not None:
            self.value_normalizer.load_state_dict(data["value_norm"])
        for group in self.optimizer.param_groups:
            group["lr"], group["eps"] = self.algo.lr, self.algo.eps
        same_world = self.world > 1 and len(data.get("core_state_ranks") or []) == self.world
        torch.set_rng_state(data["torch_rng_ranks"][self.rank] if same_world else data["torch_rng"])
        self.generator.set_state(data["sampler_rng"])  # the same on every rank
        self.update, self.env_steps = int(data["update"]), int(data["env_steps"])
        self.episodes = int(data["episodes"])
        self.recent_returns.clear()
        self.recent_returns.extend(data["recent_returns"].tolist())
        self.recent_lengths.clear()
        self.recent_lengths.extend(data["recent_lengths"].tolist())
        env_state = data.get("env_state")
        if env_state is not None:
            env_state = _arrays(env_state)
            if self.world > 1:  # this rank's envs of the whole batch
                try:
                    env_state = distributed.batch_slice(
                        env_state, self.env_slice, self.global_num_envs
                    )
                except ValueError as error:
                    raise EnvStateError(str(error)) from None
            load_vector_env_state(self.env, env_state)
            rollout = data["rollout"]
            total = self.global_num_envs
            shapes = {
                "obs": (total, self.policy.obs_size),
                **dict.fromkeys(
                    ("starts", "autoreset", "episode_return", "episode_length"), (total,)
                ),
            }
            restored = {}
            for key, shape in shapes.items():
                value = rollout[key].numpy()
                if value.shape != shape:
                    raise ValueError(f"rollout.{key}: expected shape {shape}, got {value.shape}")
                restored[key] = value[self.env_slice].copy()
            self.obs, self.starts, self.autoreset = (
                restored[k] for k in ("obs", "starts", "autoreset")
            )
            self.episode_return = restored["episode_return"]
            self.episode_length = restored["episode_length"]
            state_type = type(self.policy.initial_state(1))
            saved = data["core_state_ranks"][self.rank] if same_world else rollout["core_state"]
            if not saved:  # episode mode: every collection starts from fresh states
                self.state = self.policy.initial_episode_state(self.num_envs, self.device)
                return True
            if same_world:
                state = state_type.from_state_dict(data["core_state_ranks"][self.rank])
            else:
                state = state_type.from_state_dict(rollout["core_state"])
                if state.batch_size != total:
                    raise ValueError(
                        f"rollout.core_state: expected {total} sequences, got {state.batch_size}"
                    )
                state = state[self.env_slice] if self.world > 1 else state
            self.state = state.to(self.device)
            return True
        seed = data.get("env_reset_seed", self.env_reset_seed())
        self._reset_envs(seed=int(seed))
        return False

    def env_reset_seed(self) -> int:
        """The seed the envs are reset with when a checkpoint cannot restore their state (saved as
        ``env_reset_seed``; a different one at every update)."""
        return self.seed + 1_000_003 * self.update

    def _carried_state(self) -> dict[str, Tensor]:
        """The core state a checkpoint keeps, as tensors: in episode mode every collection starts
        fresh episodes (and states), so the last episode's state is never used again and nothing
        is saved (an empty dict; :meth:`load_state_dict` starts fresh states). At GraphNav's paper
        size this keeps the checkpoint small enough for the repository (LSTM 128: 600×256 floats;
        FWM's factor form: 600×30×3m)."""
        if self.algo.n_steps == "episode":
            return {}
        return {k: v.cpu() for k, v in self.state.state_dict().items()}

    def _joined_core_state(self, states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """The whole batch's core state from every rank's (rank order). Ranks whose states differ
        in form (FWM: factors with different numbers of writes, or dense) are joined densely."""
        if len(states) == 1 or not any(states):  # one rank, or nothing saved (episode mode)
            return states[0]
        state_type = type(self.policy.initial_state(1))
        parts = [state_type.from_state_dict(s) for s in states]
        try:
            return type(parts[0]).cat(parts).state_dict()
        except (TypeError, RuntimeError):  # different types or shapes: one form for all
            dense = [p.to_dense() if hasattr(p, "to_dense") else p for p in parts]
            return type(dense[0]).cat(dense).state_dict()

    def nonfinite(self, outputs: bool = False) -> str | None:
        """What became NaN or infinite (the parameters, the current observations, or with
        ``outputs=True`` the policy's logits and value on them), or ``None`` when all is finite.

        The run job calls it after every optimizer step, and with ``outputs=True`` before writing a
        checkpoint, so a kept checkpoint always holds weights that act. Under ``torchrun`` every
        rank must call it and all get the same answer (the first rank's problem)."""
        problem = self._local_nonfinite(outputs)
        if self.world > 1 and distributed.any_rank(problem is not None, self.device):
            return next(p for p in distributed.all_gather_objects(problem) if p is not None)
        return problem

    def _local_nonfinite(self, outputs: bool) -> str | None:
        for name, param in self.policy.named_parameters():
            if not bool(torch.isfinite(param).all()):
                return f"parameter {name} became non-finite after update {self.update}"
        if not np.isfinite(self.obs).all():
            return f"the env returned non-finite observations (update {self.update})"
        if outputs:
            with torch.no_grad():
                logits, value, _ = self.policy.step_flat(
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


def make_vector_env(
    env_id: str, num_envs: int, kwargs: dict[str, Any], vectorization: str = "auto"
) -> gym.vector.VectorEnv:
    """:func:`fwmrl.envs.make_vec_env` (``num_envs`` copies of ``env_id`` with ``kwargs``, stepped
    as ``vectorization`` says), turning a bad id or argument into a :class:`ConfigError`."""
    try:
        return make_vec_env(env_id, num_envs, vectorization=vectorization, **kwargs)
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ConfigError(f"env: cannot make {env_id!r} with kwargs {kwargs}: {message}") from None


def check_policy_spaces(policy: MemoryActorCritic, env: gym.vector.VectorEnv) -> None:
    """Raise :class:`ConfigError` unless ``policy`` was built for the spaces of ``env``'s envs."""
    for what in ("observation", "action"):
        ours = getattr(policy, f"{what}_space")
        theirs = getattr(env, f"single_{what}_space")
        if ours != theirs:
            raise ConfigError(f"policy: its {what} space {ours} is not the env's {theirs}")
