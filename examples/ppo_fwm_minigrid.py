"""RecurrentPPO with a Fast Weight Memory policy on MiniGrid-MemoryS7-v0.

Run (about 30 s with the default budget on the 2-core development machine; fwmrl picks one torch
thread, see README "Threads")::

    .venv/bin/python examples/ppo_fwm_minigrid.py --timesteps 8000

The agent sees an object in a start room, walks down a corridor and must pick the matching object at
its end: it has to remember the first object. Reward > 0 only on success (MiniGrid's
``1 - 0.9 * steps / max_steps``). A short budget shows the pipeline, not a solved task: expect a mean
reward around chance (~0.25-0.5); solving it takes a few hundred thousand steps.
"""

from __future__ import annotations

import argparse

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from fwmrl.envs import make_env
from fwmrl.sb3 import MemoryRecurrentPPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=8_000, help="environment steps to train")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="where to save the model (.zip)")
    args = parser.parse_args()

    def env_fn():
        return make_env("MiniGrid-MemoryS7-v0")

    env = make_vec_env(env_fn, n_envs=args.n_envs, seed=args.seed)
    model = MemoryRecurrentPPO(
        "MemoryPolicy",
        env,
        n_steps=64,
        batch_size=256,
        n_epochs=4,
        learning_rate=5e-4,
        ent_coef=0.01,
        sequence_length=32,
        policy_kwargs={
            "core": "fwm",
            "core_kwargs": {"hidden_size": 32, "memory_size": 16, "read_hops": 1},
            "net_arch": [64],
        },
        seed=args.seed,
        verbose=1,
    )
    model.learn(total_timesteps=args.timesteps)
    eval_env = make_vec_env(env_fn, n_envs=4, seed=args.seed + 1000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20)
    print(f"mean reward over 20 episodes: {mean:.3f} +/- {std:.3f}")
    if args.save:
        model.save(args.save)
        reloaded = MemoryRecurrentPPO.load(args.save)
        obs = eval_env.reset()
        action, state = reloaded.predict(obs, deterministic=True)
        print(
            f"reloaded from {args.save}: actions {action}, state arrays {[a.shape for a in state]}"
        )


if __name__ == "__main__":
    main()
