"""Training throughput on FWM-Gridworld-v0: fwmrl's A2C next to SB3 and sb3-contrib, in one run.

    .venv/bin/python benchmarks/throughput.py [--envs 64] [--steps 50000] [--ppo-steps 4096]

Rows (all training, env steps per second, one torch thread, ``--envs`` envs):
fwmrl A2C with the fwm and lstm cores (``configs/gridworld_<core>.yaml``, batched NumPy env),
sb3-contrib ``RecurrentPPO`` + ``MlpLstmPolicy`` and SB3 ``A2C`` + ``MlpPolicy`` (``DummyVecEnv`` of
the single env, SB3's default hyper-parameters). Each row trains for ``--steps`` env steps after a
warm-up (RecurrentPPO, which is about 300 times slower, for ``--ppo-steps`` after one rollout); the
printed table has each row's ratio to sb3-contrib's RecurrentPPO.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ENV_KWARGS = {"size": 5, "view": 3, "max_steps": 50}


def fwmrl_a2c(core: str, envs: int) -> Callable[[int], int]:
    from fwmrl.agents import A2C
    from fwmrl.config import load_config

    config = load_config(
        ROOT / f"configs/gridworld_{core}.yaml",
        [f"env.num_envs={envs}", "logging.wandb=disabled", "train.progress=false"],
    )
    agent = A2C(config)

    def train(steps: int) -> int:
        start = agent.env_steps
        while agent.env_steps - start < steps:
            agent.learn_update()
        return agent.env_steps - start

    return train


def sb3_model(kind: str, envs: int) -> Callable[[int], int]:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    import fwmrl  # noqa: F401  (registers the env ids)

    env = make_vec_env("FWM-Gridworld-v0", n_envs=envs, seed=0, env_kwargs=ENV_KWARGS)
    if kind == "recurrent_ppo":
        model = RecurrentPPO("MlpLstmPolicy", env, seed=0, device="cpu")
    else:
        model = A2C("MlpPolicy", env, seed=0, device="cpu")

    def train(steps: int) -> int:
        before = model.num_timesteps
        model.learn(steps, reset_num_timesteps=False)
        return model.num_timesteps - before

    return train


ROWS: list[tuple[str, Callable[[int], Callable[[int], int]]]] = [
    ("fwmrl A2C + FWM (LSTM 32, m = 16)", lambda n: fwmrl_a2c("fwm", n)),
    ("fwmrl A2C + LSTM (64)", lambda n: fwmrl_a2c("lstm", n)),
    # 16 envs: with SB3's n_steps = 128 one rollout is 2,048 steps (at 64 envs it takes minutes)
    (
        "sb3-contrib RecurrentPPO + MlpLstmPolicy (16 envs)",
        lambda n: sb3_model("recurrent_ppo", 16),
    ),
    ("SB3 A2C + MlpPolicy (no memory)", lambda n: sb3_model("a2c", n)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--ppo-steps", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results = []
    for label, build in ROWS:
        train = build(args.envs)
        slow = "RecurrentPPO" in label
        train(1 if slow else args.warmup)  # one rollout and update
        start = time.perf_counter()
        steps = train(args.ppo_steps if slow else args.steps)
        results.append((label, steps / (time.perf_counter() - start)))
    baseline = results[2][1]
    print(
        f"FWM-Gridworld-v0 {ENV_KWARGS}, {args.envs} envs, {args.steps:,} env steps per row "
        f"({args.ppo_steps:,} for RecurrentPPO), "
        f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}\n"
    )
    print("| training | env steps/s | × RecurrentPPO |")
    print("|---|---:|---:|")
    for label, rate in results:
        print(f"| {label} | {rate:,.0f} | {rate / baseline:.1f} |")


if __name__ == "__main__":
    main()
