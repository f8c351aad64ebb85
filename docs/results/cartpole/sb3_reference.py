"""SB3's PPO + MlpPolicy (separate [64] tanh policy and value nets) on CartPole-v1 with RL Zoo's
PPO settings for it but a constant lr, as fwmrl's MLP probes M0-M2 (8 envs x 32 steps, 20 epochs of
one 256-step batch, gamma 0.98, lambda 0.8, constant lr 1e-3, clip 0.2, no entropy): evaluated
every 10,240 steps (16 episodes, argmax and sampled actions).

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/cartpole/sb3_reference.py SEED
"""

import json
import sys

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

torch.set_num_threads(1)
seed = int(sys.argv[1])
model = PPO(
    "MlpPolicy",
    make_vec_env("CartPole-v1", n_envs=8, seed=seed),
    n_steps=32,
    batch_size=256,
    gae_lambda=0.8,
    gamma=0.98,
    n_epochs=20,
    ent_coef=0.0,
    learning_rate=1e-3,
    clip_range=0.2,
    policy_kwargs={"net_arch": [64]},
    seed=seed,
    verbose=0,
)
for _ in range(6):
    model.learn(10240, reset_num_timesteps=False)
    scores = {
        key: evaluate_policy(
            model,
            make_vec_env("CartPole-v1", n_envs=8, seed=99),
            n_eval_episodes=16,
            deterministic=key == "det",
        )[0]
        for key in ("det", "smp")
    }
    print(json.dumps({"seed": seed, "steps": model.num_timesteps, **scores}), flush=True)
