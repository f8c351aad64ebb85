"""fwmrl's own trainers in Stable-Baselines3's shape.

::

    from fwmrl import A2C

    model = A2C("fwm", "FWM-Gridworld-v0", n_envs=64, core_kwargs={"memory_size": 16}, n_steps=20)
    model.learn(200_000, progress_bar=True)
    model.save("a2c_fwm.pt")
    model = A2C.load("a2c_fwm.pt", env="FWM-Gridworld-v0")
    action, state = model.predict(obs, state=None, episode_start=episode_start)

The keyword arguments are the keys of the config file's sections (``algo.*`` as plain keywords,
``core.*`` in ``core_kwargs``, ``policy.*`` in ``policy_kwargs``, ``env.kwargs`` as ``env_kwargs``),
validated the same way: a bad one raises :class:`fwmrl.errors.ConfigError` naming it. ``fwmrl train
CONFIG`` and this class build the same trainer (:class:`fwmrl.agents.A2C`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from fwmrl.agents.a2c import A2C as A2CTrainer
from fwmrl.agents.a2c import as_vector_env
from fwmrl.agents.job import build_agent
from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.config import Config, config_from_dict
from fwmrl.errors import ConfigError, RunError
from fwmrl.memory import CoreState

SAVE_FORMAT = "fwmrl-model-1"


def _vector_env(env: Any) -> tuple[str, gym.vector.VectorEnv | None]:
    """``(env id for the config, vector env to use or None to build it from the config)``."""
    if isinstance(env, str):
        return env, None
    vector = as_vector_env(env)
    spec = getattr(env, "spec", None)
    return (spec.id if spec is not None else "custom"), vector


class A2C:
    """Synchronous A2C with a memory policy (:class:`fwmrl.agents.A2C`), built from Python.

    Parameters
    ----------
    policy:
        A core name (``fwm``, ``lstm``, ``gated_fw``, ``mnm_g``, ``mnm_p`` or ``none``) or a
        :class:`~fwmrl.agents.policy.MemoryActorCritic` for the env's spaces.
    env:
        A Gymnasium id (``n_envs`` copies, fwmrl's ids batched in NumPy), a ``gymnasium.Env``
        instance (trained as a vector env of that one env) or a ``gymnasium.vector.VectorEnv``.
    n_envs:
        Envs per update when ``env`` is an id.
    core_kwargs:
        The core's arguments (``core.*`` of a config), e.g. ``{"memory_size": 16}``.
    policy_kwargs:
        ``encoder_sizes``, ``activation`` and ``head_init`` (``policy.*``).
    env_kwargs:
        Arguments of the env constructor (``env.kwargs``) when ``env`` is an id.
    seed:
        Seed of the parameters, the action sampling and the envs.
    device:
        ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    **algo_kwargs:
        The ``algo.*`` keys: ``n_steps`` (an int or ``"episode"``), ``gamma``, ``gae_lambda``,
        ``ent_coef``, ``vf_coef``, ``max_grad_norm``, ``lr``, ``eps``, ``optimizer``, ...
    """

    def __init__(
        self,
        policy: str | MemoryActorCritic = "fwm",
        env: str | gym.Env | gym.vector.VectorEnv = "FWM-Gridworld-v0",
        *,
        n_envs: int = 16,
        core_kwargs: dict[str, Any] | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        env_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        device: str = "cpu",
        **algo_kwargs: Any,
    ) -> None:
        env_id, vector = _vector_env(env)
        if isinstance(policy, MemoryActorCritic):
            core, policy_object = "none", policy  # the config records no core of its own
        elif isinstance(policy, str):
            core, policy_object = policy, None
        else:
            raise ConfigError(
                f"policy: give a core name or a MemoryActorCritic, got {type(policy).__name__}"
            )
        if vector is not None and env_kwargs:
            raise ConfigError("env_kwargs: only for an env given by its id")
        data = {
            "env": {
                "id": env_id,
                "num_envs": vector.num_envs if vector is not None else n_envs,
                "kwargs": dict(env_kwargs or {}),
            },
            "core": {"name": core, **(core_kwargs or {})},
            "policy": dict(policy_kwargs or {}),
            "algo": {"name": self.algorithm, **algo_kwargs},
            "train": {"seed": seed, "device": device, "progress": False},
            "logging": {"tensorboard": False, "wandb": "disabled"},
        }
        self._build(config_from_dict(data), vector, policy_object)

    algorithm = "a2c"

    def _build(
        self,
        config: Config,
        vector: gym.vector.VectorEnv | None,
        policy: MemoryActorCritic | None,
    ) -> None:
        self.config = config
        self._custom_policy = policy is not None
        self.trainer: A2CTrainer = build_agent(config, env=vector, policy=policy)

    # ------------------------------------------------------------------ SB3's calls
    @property
    def policy(self) -> MemoryActorCritic:
        """The actor-critic being trained."""
        return self.trainer.policy

    @property
    def env(self) -> gym.vector.VectorEnv:
        """The vector env trained on."""
        return self.trainer.env

    @property
    def num_timesteps(self) -> int:
        """Env steps trained so far."""
        return self.trainer.env_steps

    def learn(
        self,
        total_timesteps: int,
        callback: Callable[[A2C, dict[str, float]], Any] | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> A2C:
        """Train for ``total_timesteps`` env steps, as SB3's ``learn``
        (:meth:`fwmrl.agents.A2C.learn`): ``reset_num_timesteps=True`` starts the step counter
        (:attr:`num_timesteps`) and the episodes anew, ``False`` continues them (after
        :meth:`load`, a resume).

        ``callback(model, metrics)`` is called after every update with that update's loss terms
        and episode statistics; returning ``False`` stops training. Returns ``self``.
        """
        wrapped = None
        if callback is not None:

            def wrapped(_: A2CTrainer, metrics: dict[str, float]) -> Any:
                return callback(self, metrics)

        self.trainer.learn(total_timesteps, wrapped, reset_num_timesteps, progress_bar)
        return self

    @torch.no_grad()
    def predict(
        self,
        observation: Any,
        state: CoreState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, CoreState]:
        """Actions for a batch of observations (as a vector env returns them), SB3's recurrent
        contract: pass the returned ``state`` back in, with ``episode_start[b]`` True where env
        ``b`` starts an episode (``state=None``: every env starts one).

        Returns
        -------
        ``(actions as env.step takes them, state)``; the state is the core's
        :class:`~fwmrl.memory.CoreState` (batch first).
        """
        policy = self.policy
        flat = policy.preprocess(observation, batch_dims=1)
        batch = flat.shape[0]
        device = flat.device
        if state is None:
            state = policy.initial_state(batch, device)
            starts = torch.ones(batch, dtype=torch.bool, device=device)
        else:
            if state.batch_size != batch:
                raise ValueError(
                    f"predict: the state holds {state.batch_size} sequences, the observations {batch}"
                )
            starts = torch.zeros(batch, dtype=torch.bool, device=device)
        if episode_start is not None:
            episode_start = np.asarray(episode_start, dtype=bool)
            if episode_start.shape != (batch,):
                raise ValueError(
                    f"predict: episode_start must have shape ({batch},), got {episode_start.shape}"
                )
            starts = torch.as_tensor(episode_start, device=device)
        params, _, state = policy.step_flat(flat, state, starts)
        generator = getattr(self, "_predict_generator", None)
        if generator is None:
            generator = self._predict_generator = torch.Generator().manual_seed(
                self.config.train.seed + 2
            )
        actions = policy.sample(params.cpu(), generator, deterministic)
        return policy.action_dist.to_env(actions), state

    def save(self, path: str | Path) -> Path:
        """Write the model (config, parameters, optimizer, RNG and env states) to ``path``: a
        checkpoint of tensors and plain data that :meth:`load` reads with ``weights_only=True``."""
        from fwmrl.rundir import atomic_torch_save

        if self._custom_policy:
            raise ConfigError(
                "save: a model built around your own MemoryActorCritic cannot be rebuilt by load; "
                "save model.policy.state_dict() and build the policy again"
            )
        data = {
            **self.trainer.state_dict(),
            "config": self.config.to_dict(),
            "format": SAVE_FORMAT,
            "algorithm": self.algorithm,
        }
        atomic_torch_save(data, path)
        return Path(path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: str | gym.Env | gym.vector.VectorEnv | None = None,
        device: str | None = None,
    ) -> A2C:
        """A model saved by :meth:`save`. ``env`` (an id, an Env or a VectorEnv) replaces the saved
        env: the envs then start fresh episodes (seeded), everything else continues."""
        from fwmrl.rundir import check_env_id_trusted, checkpoint_config, load_checkpoint

        data = load_checkpoint(path)
        if data.get("format") != SAVE_FORMAT:
            raise RunError(f"{path}: not a model saved by fwmrl's {cls.__name__}.save")
        if data.get("algorithm") != cls.algorithm:
            raise RunError(
                f"{path}: a {data.get('algorithm')} model; load it with that class, not {cls.__name__}"
            )
        if env is None:  # the saved env id is data: it must not name a module to import
            check_env_id_trusted(checkpoint_config(data, path), path)
        config_data = data["config"]
        if device is not None:
            config_data = {**config_data, "train": {**config_data["train"], "device": device}}
        vector = None
        if env is not None:
            env_id, vector = _vector_env(env)
            config_data = {**config_data, "env": {**config_data["env"], "id": env_id}}
            if vector is not None:
                config_data["env"]["num_envs"] = vector.num_envs
        model = cls.__new__(cls)
        model._build(config_from_dict(config_data), vector, None)
        trainer = {k: v for k, v in data.items() if k not in ("format", "algorithm")}
        if env is not None:  # another env: fresh seeded episodes, not the saved env state
            trainer["env_state"] = None
        model.trainer.load_state_dict(trainer)
        return model


class PPO(A2C):
    """Native recurrent PPO with a memory policy (:class:`fwmrl.agents.PPO`), built from Python;
    the same parameters and calls as :class:`A2C`, with PPO's ``algo.*`` keys (``n_epochs``,
    ``num_minibatches``, ``clip_range``, ``clip_range_vf``, ``target_kl``, ...) as keywords."""

    algorithm = "ppo"
