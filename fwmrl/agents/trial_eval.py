"""Evaluate a policy over whole RL^2 trials: each inner episode's return and success."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from fwmrl.agents.evaluation import act, start_round
from fwmrl.envs._validation import check_int


def evaluate_trials(
    policy: Any,
    env: VectorEnv,
    trials: int,
    episodes: int,
    seed: int = 12345,
    deterministic: bool = False,
    max_steps: int = 100_000,
) -> dict[str, np.ndarray]:
    """Run ``policy`` for ``trials`` whole trials on ``env`` and score each inner episode.

    The memory is kept over a trial (reset only at its start), as in training. An inner episode
    counts as a success when ``info["success"]`` was true on any of its steps (Meta-World's
    definition); envs without a ``success`` info score 0.

    Parameters
    ----------
    policy
        a :class:`fwmrl.agents.policy.MemoryActorCritic` (``initial_state``, ``step``,
        ``sample``, ``action_dist.to_env``).
    env
        a :class:`VectorTrial` (or a vector env of :class:`Trial` envs) whose trials have
        ``episodes`` inner episodes; each sub-env plays one trial per round.
    trials
        trials to run (rounds of ``env.num_envs`` trials; the last round is cut).
    episodes
        inner episodes per trial.
    seed
        the seed of round ``r`` is ``seed + 7919 * r`` (env) and the sampling generator's.
    deterministic
        take the policy's mode instead of sampling.
    max_steps
        steps after which a round is cut (a guard against envs without a time limit).

    Returns
    -------
    ``{"returns": float[trials, episodes], "success": float[trials, episodes]}``.
    """
    trials = check_int("trials", trials, 1)
    episodes = check_int("episodes", episodes, 1)
    generator = torch.Generator().manual_seed(seed)
    n = env.num_envs
    returns, success = [], []
    round_index = 0
    with torch.no_grad():
        while len(returns) < trials:
            obs, state, starts = start_round(env, policy, seed + 7919 * round_index)
            round_index += 1
            alive = np.ones(n, dtype=bool)
            inner = np.zeros(n, dtype=np.int64)
            ret = np.zeros((n, episodes))
            won = np.zeros((n, episodes), dtype=bool)
            rows = np.arange(n)
            for _ in range(max_steps):
                action, state = act(policy, obs, state, starts, generator, deterministic)
                obs, reward, terminated, truncated, infos = env.step(action)
                k = np.minimum(inner, episodes - 1)
                ret[rows[alive], k[alive]] += np.asarray(reward)[alive]
                if "success" in infos:
                    hit = np.asarray(infos["success"], dtype=bool) & alive
                    won[rows[hit], k[hit]] = True
                inner = inner + (np.asarray(obs)[:, -1] == 1.0)
                alive &= ~np.asarray(terminated | truncated, dtype=bool)
                starts = torch.zeros_like(starts)
                if not alive.any():
                    break
            take = min(n, trials - len(returns))
            returns += list(ret[:take])
            success += list(won[:take].astype(np.float64))
    return {"returns": np.array(returns), "success": np.array(success)}
