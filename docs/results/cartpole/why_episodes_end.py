"""Why the evaluation episodes of a trained CartPole policy end: the cart off the track
(|x| > 2.4), the pole past 12 degrees, or the 500-step cap; sampled and argmax actions.

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/cartpole/seeds.py NAME SEED --save POLICY.pt ...
    OMP_NUM_THREADS=1 .venv/bin/python docs/results/cartpole/why_episodes_end.py POLICY.pt [KEY=VALUE ...]

The overrides must be those of the training run (the policy is built from the config). The
episodes are those of ``evaluate_from_config(..., episodes=32)`` (the same resets and sampling
generator, evaluation seed 12345), so the sampled mean length is the slow test's score.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from fwmrl.agents.a2c import make_vector_env
from fwmrl.agents.evaluation import act, start_round
from fwmrl.agents.job import build_agent
from fwmrl.config import load_config

ROOT = Path(__file__).resolve().parents[3]
path, *overrides = sys.argv[1:]
config = load_config(
    ROOT / "configs" / "cartpole_lstm_ppo.yaml",
    ["logging.tensorboard=false", "train.progress=false", *overrides],
)
agent = build_agent(config)
policy = agent.policy
policy.load_state_dict(torch.load(path))
n = config.env.num_envs
for deterministic in (False, True):
    generator = torch.Generator().manual_seed(12345)
    env = make_vector_env("CartPole-v1", n, {}, config.env.vectorization)
    ends = {"cart off the track": 0, "pole fell": 0, "500 steps": 0}
    lengths = []
    for round_index in range(32 // n):
        obs, state, starts = start_round(env, policy, 12345 + 7919 * round_index)
        alive = np.ones(n, dtype=bool)
        length = np.zeros(n, dtype=int)
        for _ in range(500):
            action, state = act(policy, obs, state, starts, generator, deterministic)
            obs, _, terminated, truncated, _ = env.step(action)
            length += alive
            for i in np.flatnonzero(alive & terminated):
                ends["cart off the track" if abs(obs[i, 0]) > 2.4 else "pole fell"] += 1
            alive &= ~(terminated | truncated)
            starts = torch.zeros_like(starts)
            if not alive.any():
                break
        ends["500 steps"] += int((length >= 500).sum())
        lengths += length.tolist()
    env.close()
    kind = "argmax" if deterministic else "sampled"
    print(f"{kind}: mean length {np.mean(lengths):.2f}, episodes ending: {ends}")
agent.close()
