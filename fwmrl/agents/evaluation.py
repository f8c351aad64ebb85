"""Evaluate a trained policy, record a GIF, and compute an env's reference returns.

The functions take plain values (an env id and its keyword arguments, counts, seeds) and objects (the
policy); the config layer, :mod:`fwmrl.agents.job`, reads them from a run's config
(:func:`~fwmrl.agents.job.evaluate_from_config`, :func:`~fwmrl.agents.job.references_from_config`,
:func:`~fwmrl.agents.job.make_eval_env`, :func:`~fwmrl.agents.job.run_references`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from fwmrl.agents.a2c import make_vector_env
from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.envs import make_env
from fwmrl.memory import CoreState

MAX_EPISODE_STEPS = 10_000
"""Default cap on an episode's steps (``algo.max_episode_steps``' default), so that an env without a
time limit cannot loop forever."""


def start_round(
    env: gym.vector.VectorEnv, policy: MemoryActorCritic, seed: int
) -> tuple[Any, CoreState, Tensor]:
    """A round of evaluation episodes, one per env: the observations of ``env.reset(seed=seed)``,
    the policy's fresh state and the episode-start flags (all True) for its first step."""
    device = next(policy.parameters()).device
    obs, _ = env.reset(seed=seed)
    n = env.num_envs
    return obs, policy.initial_state(n, device), torch.ones(n, dtype=torch.bool, device=device)


def act(
    policy: MemoryActorCritic,
    obs: Any,
    state: CoreState,
    starts: Tensor,
    generator: torch.Generator | None = None,
    deterministic: bool = False,
) -> tuple[Any, CoreState]:
    """One acting step on raw observations ``obs [B, ...]``: the actions as ``env.step`` takes
    them (sampled with ``generator``, or the mode with ``deterministic=True``) and the state
    after the step (:meth:`MemoryActorCritic.step`, :meth:`MemoryActorCritic.sample`)."""
    params, _, state = policy.step(obs, state, starts)
    action = policy.sample(params.cpu(), generator, deterministic)
    return policy.action_dist.to_env(action), state


@torch.no_grad()
def evaluate(
    policy: MemoryActorCritic,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    vectorization: str = "auto",
    episodes: int = 32,
    seed: int = 12345,
    deterministic: bool = False,
    num_envs: int | None = None,
    max_steps: int = MAX_EPISODE_STEPS,
) -> dict[str, float]:
    """Mean return of ``episodes`` episodes of ``policy`` on the env ``env_id``.

    Each env runs exactly one episode per round; actions are sampled from the policy (or the argmax
    with ``deterministic=True``) with a generator seeded by ``seed``, so the result is reproducible.
    An episode is cut after ``max_steps`` steps; a warning says how many were cut.

    Parameters
    ----------
    policy
        the policy (its ``initial_state``, ``step``, ``sample`` and ``action_dist``).
    env_id
        the env (a Gymnasium id, fwmrl's included), built with ``env_kwargs``.
    env_kwargs
        the env's keyword arguments (a run's ``env.kwargs`` updated with ``env.eval_kwargs``).
    vectorization
        how the envs are stepped (``env.vectorization``: ``auto``, ``native``, ``sync`` or
        ``async``).
    episodes
        episodes to run.
    seed
        seed of the envs' resets (``seed + 7919 · round``) and of the action sampling.
    deterministic
        take the mode of the action distribution instead of sampling.
    num_envs
        envs stepped together (at most ``episodes``; ``None``: ``episodes``).
    max_steps
        steps after which an episode is cut.

    Returns
    -------
    ``{"return_mean", "return_std", "length_mean", "episodes"}``.
    """
    generator = torch.Generator().manual_seed(seed)
    cut = 0
    n = min(episodes, num_envs or episodes)
    env = make_vector_env(env_id, n, dict(env_kwargs or {}), vectorization)
    returns: list[float] = []
    lengths: list[int] = []
    round_index = 0
    try:
        while len(returns) < episodes:
            obs, state, starts = start_round(env, policy, seed + 7919 * round_index)
            round_index += 1
            alive = np.ones(n, dtype=bool)
            ret, length = np.zeros(n), np.zeros(n, dtype=np.int64)
            for _ in range(max_steps):
                action, state = act(policy, obs, state, starts, generator, deterministic)
                obs, reward, terminated, truncated, _ = env.step(action)
                ret += np.where(alive, reward, 0.0)
                length += alive
                alive &= ~np.asarray(terminated | truncated, dtype=bool)
                starts = torch.zeros_like(starts)
                if not alive.any():
                    break
            take = min(n, episodes - len(returns))
            returns += ret[:take].tolist()
            lengths += length[:take].tolist()
            cut += int(alive[:take].sum())
    finally:
        env.close()
    if cut:
        _warn_cut(cut, max_steps, "evaluation")
    return {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "length_mean": float(np.mean(lengths)),
        "episodes": float(len(returns)),
    }


@torch.no_grad()
def record_gif(
    policy: MemoryActorCritic,
    env_id: str,
    path: str | Path,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    max_frames: int = 300,
    fps: int = 8,
) -> int:
    """Run one episode of ``env_id`` with ``render_mode="rgb_array"`` and write it as a GIF.

    Frames are scaled up (nearest neighbour) to at least :data:`GIF_MIN_HEIGHT` pixels and get a
    caption: the step, the action, the reward and the return so far, and what the colours mean
    (:data:`GIF_LEGENDS`, for fwmrl's envs).

    Parameters
    ----------
    policy
        the policy that acts (sampled actions).
    env_id
        the env, built with ``env_kwargs`` (FWM-Gridworld also draws its goal).
    path
        the GIF file to write.
    env_kwargs
        the env's keyword arguments (a run's eval env: ``env.kwargs`` + ``env.eval_kwargs``).
    seed
        seed of the env's reset and of the action sampling.
    max_frames
        frames at the most (the episode is cut there).
    fps
        frames per second of the GIF.

    Returns
    -------
    int
        the number of frames written.
    """
    kwargs = {**(env_kwargs or {}), "render_mode": "rgb_array"}
    if env_id.startswith("FWM-Gridworld"):
        kwargs.setdefault("render_goal", True)
    env = make_env(env_id, **kwargs)
    device = next(policy.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    state = policy.initial_state(1, device)
    start = torch.ones(1, dtype=torch.bool, device=device)
    frames = [env.render()]
    captions = ["step 0 (start)"]
    total = 0.0
    try:
        for t in range(1, max_frames):
            flat = policy.preprocess(obs, batch_dims=0).unsqueeze(0)  # one env: a batch of one
            params, _, state = policy.step_flat(flat, state, start)
            start = torch.zeros(1, dtype=torch.bool, device=device)
            action = policy.action_dist.to_env(policy.sample(params.cpu(), generator))[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            frames.append(env.render())
            captions.append(f"step {t}  action {action}  reward {reward:+g}  return {total:g}")
            if terminated or truncated:
                break
    finally:
        env.close()
    legend = next((text for key, text in GIF_LEGENDS.items() if env_id.startswith(key)), "")
    images = [
        _annotated(np.asarray(f, dtype=np.uint8), caption, legend)
        for f, caption in zip(frames, captions, strict=True)
        if f is not None
    ]
    if not images:
        raise ValueError(f"env {env_id} rendered no rgb_array frames")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return len(images)


GIF_MIN_HEIGHT = 360
GIF_LEGENDS = {
    "FWM-Gridworld": "red: agent  green: goal (unseen by it)  yellow: its view  dark: walls",
    "FWM-GraphNav": "red: agent  green ring: goal  arrows: edges, one colour per action",
    "FWM-Recall": "top: symbols shown  bottom: actions (green right, red wrong, grey not scored)",
    "MiniGrid": "red triangle: agent (MiniGrid's own colours)",
}


def _annotated(frame: np.ndarray, caption: str, legend: str) -> Any:
    """``frame`` scaled up by an integer factor, with ``caption`` and ``legend`` in a band below."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame[..., :3])
    factor = max(1, -(-GIF_MIN_HEIGHT // image.height))
    image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    font = ImageFont.load_default(size=14)
    band = 44 if legend else 24
    out = Image.new("RGB", (max(image.width, 480), image.height + band), (255, 255, 255))
    out.paste(image, ((out.width - image.width) // 2, 0))
    pen = ImageDraw.Draw(out)
    pen.text((6, image.height + 4), caption, fill=(20, 20, 20), font=font)
    if legend:
        pen.text((6, image.height + 24), legend, fill=(90, 90, 90), font=font)
    return out


def _warn_cut(count: int, max_steps: int, what: str) -> None:
    from fwmrl.rundir import RunNote

    warnings.warn(
        f"{count} {what} episode(s) cut at {max_steps} steps (the env has no time limit of its own; "
        "max_steps, a run's algo.max_episode_steps, sets the cap)",
        RunNote,
        stacklevel=3,
    )


def reference_returns(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    episodes: int = 32,
    seed: int = 0,
    max_steps: int = MAX_EPISODE_STEPS,
) -> dict[str, float]:
    """Reference returns of an env: ``random`` (uniform random policy, any env) and ``oracle``
    where the env has one (FWM-Gridworld-v0's shortest-path oracle, FWM-Recall-v0's oracle that
    answers every step with its target).

    Parameters
    ----------
    env_id
        the env, built with ``env_kwargs``.
    env_kwargs
        the env's keyword arguments.
    episodes
        episodes to average over.
    seed
        seed of the first episode (episode ``e`` resets with ``seed + e``) and of the random
        actions.
    max_steps
        steps after which an episode is cut, as in :func:`evaluate`.
    """
    kwargs: dict[str, Any] = dict(env_kwargs or {})
    if env_id.startswith("FWM-Gridworld"):
        from fwmrl.envs.gridworld import reference_returns as gridworld_references

        return gridworld_references(seed, episodes, **kwargs)
    if env_id.startswith("FWM-Recall"):
        from fwmrl.envs.recall import reference_returns as recall_references

        return recall_references(seed, episodes, **kwargs)
    env = make_env(env_id, **kwargs)
    env.action_space.seed(seed)
    total, cut = 0.0, 0
    try:
        for e in range(episodes):
            env.reset(seed=seed + e)
            done = False
            for _ in range(max_steps):
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(reward)
                done = terminated or truncated
                if done:
                    break
            cut += not done
    finally:
        env.close()
    if cut:
        _warn_cut(cut, max_steps, "reference")
    return {"random": total / episodes}
