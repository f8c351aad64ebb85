"""What :class:`~fwmrl.sb3.MemoryRecurrentPPO` and :class:`~fwmrl.sb3.RecurrentA2C` share: rollout
collection that carries :class:`~fwmrl.sb3.policies.MemoryStates`, the buffer set-up, and hooks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from fwmrl.sb3.buffers import MemoryDictRolloutBuffer, MemoryRolloutBuffer, memory_buffer_class
from fwmrl.sb3.policies import MemoryPolicy, MemoryStates


class MemoryAlgorithmMixin:
    """Mixin for SB3 on-policy algorithms that train a :class:`MemoryPolicy`.

    Provides :meth:`collect_rollouts` (states carried across steps and rollouts, reset by the cores
    at episode starts) and :meth:`_setup_memory` (buffer class check and fresh states). The cores'
    auxiliary loss (MNM's meta loss) comes with each training pass, from
    :meth:`MemoryPolicy.evaluate_sequences`.
    """

    # Attributes provided by OnPolicyAlgorithm.
    policy: MemoryPolicy
    rollout_buffer: RolloutBuffer
    observation_space: spaces.Space
    action_space: spaces.Space
    device: th.device
    n_envs: int
    gamma: float
    use_sde: bool
    sde_sample_freq: int
    num_timesteps: int
    _last_obs: Any
    _last_episode_starts: np.ndarray
    _last_states: MemoryStates | None

    def _check_buffer_class(self, buffer_class: type | None) -> type[RolloutBuffer]:
        if buffer_class is None:
            return memory_buffer_class(self.observation_space)
        allowed = (MemoryRolloutBuffer, MemoryDictRolloutBuffer)
        if not (isinstance(buffer_class, type) and issubclass(buffer_class, allowed)):
            raise TypeError(
                f"{type(self).__name__}: 'rollout_buffer_class' must be None or a subclass of "
                f"{[c.__name__ for c in allowed]}, got {buffer_class!r}"
            )
        return buffer_class

    def _setup_memory(self) -> None:
        """Check the policy and create fresh states for every environment."""
        if not isinstance(self.policy, MemoryPolicy):
            raise TypeError(
                f"{type(self).__name__}: 'policy' must be a MemoryPolicy (or subclass, e.g. "
                f"'MemoryPolicy', 'MultiInputMemoryPolicy'), got {type(self.policy).__name__}"
            )
        self._last_states = self.policy.initial_state(self.n_envs)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_last_states"]  # type: ignore[misc]

    def _terminal_values(self, observations: list[Any], states: MemoryStates) -> np.ndarray:
        """Values ``[k]`` of ``k`` terminal observations (one per env) from their envs' states."""
        if isinstance(observations[0], dict):
            stacked: Any = {
                key: np.stack([obs[key] for obs in observations]) for key in observations[0]
            }
        else:
            stacked = np.stack(observations)
        obs_tensor = self.policy.obs_to_tensor(stacked)[0]
        no_start = th.zeros(len(observations), dtype=th.bool, device=self.device)
        with th.no_grad():
            values = self.policy.predict_values(obs_tensor, states, no_start)
        return values.cpu().numpy().reshape(-1)

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """Collect ``n_rollout_steps`` steps per environment into ``rollout_buffer``, carrying the
        memory states (SB3 semantics otherwise: callbacks, timeout bootstrapping, episode info).

        Returns ``False`` if a callback stopped training.
        """
        if not isinstance(rollout_buffer, (MemoryRolloutBuffer, MemoryDictRolloutBuffer)):
            raise TypeError(
                f"{type(self).__name__}.collect_rollouts: 'rollout_buffer' must be a "
                f"MemoryRolloutBuffer or MemoryDictRolloutBuffer, got {type(rollout_buffer).__name__}"
            )
        assert self._last_obs is not None, "No previous observation was provided"
        if self._last_states is None or self._last_states.batch_size != env.num_envs:
            self._last_states = self.policy.initial_state(env.num_envs)
        self.policy.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        states = self._last_states
        dones = self._last_episode_starts
        new_obs = self._last_obs
        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)
                starts = (  # None: no env starts an episode, the cores skip the reset
                    th.as_tensor(self._last_episode_starts, device=self.device).bool()
                    if np.any(self._last_episode_starts)
                    else None
                )
                actions, values, log_probs, new_states = self.policy(obs_tensor, states, starts)
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                if self.policy.squash_output:
                    clipped_actions = self.policy.unscale_action(clipped_actions)
                else:
                    clipped_actions = np.clip(
                        actions, self.action_space.low, self.action_space.high
                    )

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)  # type: ignore[attr-defined]
            n_steps += 1
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)

            # Bootstrap truncated episodes from the value of the terminal observation, read with
            # the state the environment reached (before any reset): one critic pass for all.
            truncated = [
                idx
                for idx in np.flatnonzero(dones)
                if infos[idx].get("terminal_observation") is not None
                and infos[idx].get("TimeLimit.truncated", False)
            ]
            if truncated:
                rewards[truncated] += self.gamma * self._terminal_values(
                    [infos[idx]["terminal_observation"] for idx in truncated],
                    new_states[th.as_tensor(truncated, device=self.device)],
                )

            rollout_buffer.add(
                self._last_obs,
                actions,
                rewards,
                self._last_episode_starts,
                values,
                log_probs,
                states=states,
            )
            self._last_obs = new_obs
            self._last_episode_starts = dones
            states = new_states
            self._last_states = new_states

        with th.no_grad():
            starts = th.as_tensor(dones, device=self.device).bool()
            values = self.policy.predict_values(obs_as_tensor(new_obs, self.device), states, starts)
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True
