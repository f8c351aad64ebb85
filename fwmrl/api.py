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
validated the same way: a bad one raises :class:`fwmrl.errors.ConfigError` naming it. The classes
here are the trainers (:class:`fwmrl.agents.A2C`, :class:`fwmrl.agents.PPO`, which ``fwmrl train
CONFIG`` builds) with SB3's ``predict``, ``save``, ``load`` and ``num_timesteps`` added.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from typing_extensions import Self

from fwmrl.agents.a2c import A2C as A2CTrainer
from fwmrl.agents.a2c import as_vector_env
from fwmrl.agents.job import build_agent, config_data
from fwmrl.agents.ppo import PPO as PPOTrainer
from fwmrl.config import config_from_dict
from fwmrl.errors import ConfigError, RunError
from fwmrl.memory import CoreState

SAVE_FORMAT = "fwmrl-model-1"
"""The ``format`` of :meth:`SB3Calls.save`'s file: a trainer checkpoint with the ``config`` that
builds the trainer again (:func:`fwmrl.agents.job.config_data`)."""


class SB3Calls:
    """Stable-Baselines3's ``predict``, ``save``, ``load`` and ``num_timesteps`` for a trainer
    (:class:`fwmrl.agents.A2C` or a subclass): mixed into :class:`A2C` and :class:`PPO`, whose
    trainer provides ``policy``, ``seed``, ``env_steps``, ``algorithm``, ``state_dict`` and
    ``load_state_dict``."""

    algorithm: str

    @property
    def num_timesteps(self) -> int:
        """Env steps trained so far (``env_steps``)."""
        return self.env_steps

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
            generator = self._predict_generator = torch.Generator().manual_seed(self.seed + 2)
        actions = policy.sample(params.cpu(), generator, deterministic)
        return policy.action_dist.to_env(actions), state

    def save(self, path: str | Path) -> Path:
        """Write the model (config, parameters, optimizer, RNG and env states) to ``path``: a
        checkpoint of tensors and plain data that :meth:`load` reads with ``weights_only=True``.

        Raises
        ------
        ConfigError
            the model was built around your own ``MemoryActorCritic`` (load could not rebuild it).
        """
        from fwmrl.rundir import atomic_torch_save

        try:
            config = config_data(self)
        except ConfigError as error:
            raise ConfigError(f"save: {error}") from None
        data = {
            **self.state_dict(),
            "config": config,
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
    ) -> Self:
        """A model saved by :meth:`save`. ``env`` (an id, an Env or a VectorEnv) replaces the saved
        env: the envs then start fresh episodes (seeded), everything else continues; continue
        training with ``learn(n, reset_num_timesteps=False)``."""
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
        config = dict(data["config"])
        if device is not None:
            config["train"] = {**config["train"], "device": device}
        vector = None
        if isinstance(env, str):
            config["env"] = {**config["env"], "id": env}
        elif env is not None:
            vector = as_vector_env(env)
            config["env"] = {**config["env"], "num_envs": vector.num_envs}
        model = build_agent(config_from_dict(config), env=vector, trainer=cls)
        trainer_state = {k: v for k, v in data.items() if k not in ("format", "algorithm")}
        if env is not None:  # another env: fresh seeded episodes, not the saved env state
            trainer_state["env_state"] = None
        model.load_state_dict(trainer_state)
        return model


class A2C(SB3Calls, A2CTrainer):
    """Synchronous A2C with a memory policy: :class:`fwmrl.agents.A2C` (the same parameters:
    ``A2C(policy, env, n_envs=..., core_kwargs=..., seed=..., **algo_kwargs)``) with SB3's
    :meth:`predict`, :meth:`save`, :meth:`load` and :attr:`num_timesteps`.

    ``policy`` is a core name (``fwm``, ``lstm``, ``gated_fw``, ``mnm_g``, ``mnm_p`` or ``none``)
    or a :class:`~fwmrl.agents.policy.MemoryActorCritic`; ``env`` a Gymnasium id (``n_envs``
    copies), a ``gymnasium.Env`` instance or a ``gymnasium.vector.VectorEnv``. ``learn`` is the
    trainer's (:meth:`fwmrl.agents.A2C.learn`, SB3's meaning).
    """


class PPO(SB3Calls, PPOTrainer):
    """Native recurrent PPO with a memory policy: :class:`fwmrl.agents.PPO` (A2C's parameters and
    PPO's keys ``n_epochs``, ``num_minibatches``, ``clip_range``, ``clip_range_vf``,
    ``target_kl`` as keywords) with SB3's :meth:`predict`, :meth:`save`, :meth:`load` and
    :attr:`num_timesteps`."""
