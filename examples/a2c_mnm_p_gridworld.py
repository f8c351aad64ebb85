"""RecurrentA2C with an MNM-p (perceptron-rule neural memory) policy on FWM-Gridworld-v0.

Run (about 30 s with the default budget on the 2-core development machine; fwmrl picks one torch
thread, see README "Threads")::

    .venv/bin/python examples/a2c_mnm_p_gridworld.py --timesteps 10000

Each episode hides a goal in a 9x9 maze; after reaching it the agent is put back at a random cell
and can use its memory of where the goal was. The core's meta loss is added to the A2C loss.
"""

from __future__ import annotations

import argparse

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import fwmrl  # noqa: F401  (registers FWM-Gridworld-v0)
from fwmrl.sb3 import RecurrentA2C


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=10_000, help="environment steps to train")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=100, help="episode length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="where to save the model (.zip)")
    args = parser.parse_args()

    env_kwargs = {"max_steps": args.max_steps}
    env = make_vec_env(
        "FWM-Gridworld-v0", n_envs=args.n_envs, seed=args.seed, env_kwargs=env_kwargs
    )
    model = RecurrentA2C(
        "MemoryPolicy",
        env,
        n_steps=20,  # also the truncated-BPTT window
        ent_coef=0.01,
        policy_kwargs={
            "core": "mnm_p",
            "core_kwargs": {"hidden_size": 32, "key_size": 16, "memory_size": 32},
            "net_arch": [64],
        },
        seed=args.seed,
        verbose=1,
    )
    eval_env = make_vec_env(
        "FWM-Gridworld-v0", n_envs=4, seed=args.seed + 1000, env_kwargs=env_kwargs
    )
    before, _ = evaluate_policy(model, eval_env, n_eval_episodes=8)
    model.learn(total_timesteps=args.timesteps, log_interval=20)
    after, std = evaluate_policy(model, eval_env, n_eval_episodes=8)
    print(f"mean return before training {before:.2f}, after {after:.2f} +/- {std:.2f}")
    if args.save:
        model.save(args.save)
        RecurrentA2C.load(args.save)
        print(f"saved and reloaded {args.save}")


if __name__ == "__main__":
    main()
