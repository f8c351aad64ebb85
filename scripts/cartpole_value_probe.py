"""Does a shared actor-critic trunk learn CartPole-v1? One A2C run per variant, one seed.

    .venv/bin/python scripts/cartpole_value_probe.py mlp lstm lstm_gamma0.9 lstm_vf0.05

Prints the mean training return of the last 100 episodes after every 20k env steps (100k in all;
8 envs, n_steps 5, Adam 7e-4, no entropy bonus, gradient norm clipped at 0.5, seed 0). Random play
scores about 22. The variants change one setting of the ``lstm`` row (LSTM(64) core).
"""

from __future__ import annotations

import sys
import time

from fwmrl import A2C

VARIANTS = {
    "mlp": {"policy": "none"},
    "lstm": {},
    "lstm_noclip": {"max_grad_norm": None},
    "lstm_lr3e-3": {"lr": 3e-3},
    "lstm_n32": {"n_steps": 32},
    "lstm_vf0.05": {"vf_coef": 0.05},
    "lstm_gamma0.9": {"gamma": 0.9},
}


def run(name: str) -> list[float]:
    settings = {"n_steps": 5, "gamma": 0.99, "lr": 7e-4, "ent_coef": 0.0, **VARIANTS[name]}
    policy = settings.pop("policy", "lstm")
    core = {"hidden_size": 64} if policy == "lstm" else None
    model = A2C(policy, "CartPole-v1", n_envs=8, core_kwargs=core, seed=0, **settings)
    curve = []
    for _ in range(5):
        model.learn(20_000, reset_num_timesteps=False)
        curve.append(round(model.episode_stats().get("episode_return_mean", 0.0), 1))
    return curve


if __name__ == "__main__":
    for name in sys.argv[1:] or list(VARIANTS):
        start = time.perf_counter()
        print(name, run(name), f"{time.perf_counter() - start:.0f} s", flush=True)
