"""Native recurrent PPO beside the SB3 recurrent PPOs: env steps/s of training, one table.

In one run on one machine, on the same env with the same sizes (``--n-envs`` envs, ``n_steps``
128 steps per env and update, ``n_epochs`` 4, minibatches of 512 steps, an encoder of 64 units,
LSTM(64) or FWM(hidden 32, memory 16)):

- :class:`fwmrl.agents.PPO` (``algo.name: ppo``) with the fwm and lstm cores: minibatches of
  whole env sequences (``num_minibatches = n_envs * n_steps / 512``), states recomputed from the
  rollout's stored start states in every epoch; the env vectorised as fwmrl's trainers do it
  (``fwmrl.envs.make_vec_env``: the natively batched NumPy env for fwmrl ids);
- :class:`fwmrl.sb3.MemoryRecurrentPPO` + ``MemoryPolicy`` (fwm, lstm), ``batch_size`` 512 and its
  default ``sequence_length``;
- sb3-contrib's ``RecurrentPPO`` + ``MlpLstmPolicy`` (LSTM(64), ``net_arch`` [64]),
  ``batch_size`` 512; both SB3 rows on SB3's ``DummyVecEnv`` of ``fwmrl.envs.make_env`` envs.

One more native row runs the epochs' LSTM windows (FWM's controller) as ``lstm_cell`` steps, as
PPO did before ``memory.lstm.fused_lstm_windows`` (commit bb08115): the same-run effect of the
fused windows (``PPO._epoch_windows``; since 6f04073 the LSTM core's epochs run fused too, and
``MemoryRecurrentPPO`` trains inside the same context since 3f0f024).

Each row is a fresh process with one torch thread: one warm-up update, then ``--timesteps`` timed
env steps (collection and training); the row is the best of ``--repeats`` runs by the process's
CPU time (the waits of a shared machine excluded; wall-clock steps/s are printed beside it), the
rows alternated. Ratios are only formed within this run, from CPU time. This is the documented
place of the native-PPO speed rows (README "Native PPO: speed"); ``benchmarks/throughput.py``
holds the A2C rows.

    .venv/bin/python benchmarks/ppo.py [--env gridworld|cartpole|pendulum] [--timesteps 4096]
        [--repeats 2] [--n-envs 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _revision import revision as commit_label  # benchmarks/_revision.py (run as a script)

ROOT = Path(__file__).resolve().parent.parent
N_STEPS, N_EPOCHS, BATCH_SIZE, ENCODER = 128, 4, 512, 64
ENVS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gridworld": ("FWM-Gridworld-v0, 100-step episodes", "FWM-Gridworld-v0", {"max_steps": 100}),
    "cartpole": ("CartPole-v1", "CartPole-v1", {}),
    "pendulum": ("Pendulum-v1 (Box actions)", "Pendulum-v1", {}),
}
CORE_KWARGS: dict[str, dict[str, Any]] = {
    "lstm": {"hidden_size": 64},
    "fwm": {"hidden_size": 32, "memory_size": 16},
}
ROWS = [
    ("fwmrl PPO (native) + fwm", "native", "fwm"),
    ("fwmrl PPO (native) + lstm", "native", "lstm"),
    ("fwmrl PPO (native) + fwm, epoch windows as LSTM cells (before bb08115)", "cells", "fwm"),
    ("MemoryRecurrentPPO + MemoryPolicy(fwm)", "sb3", "fwm"),
    ("MemoryRecurrentPPO + MemoryPolicy(lstm)", "sb3", "lstm"),
    ("RecurrentPPO + MlpLstmPolicy (sb3-contrib)", "contrib", "lstm"),
]


def _native(env_key: str, core: str, n_envs: int) -> Any:
    try:
        from fwmrl.agents.job import build_agent
    except ImportError:  # a revision before the trainers took objects: PPO(config)
        from fwmrl.agents import PPO as build_agent
    from fwmrl.config import load_config

    _, env_id, kwargs = ENVS[env_key]
    overrides = [
        f"env.id={env_id}",
        f"env.num_envs={n_envs}",
        f"env.kwargs={json.dumps(kwargs)}",
        f"core.name={core}",
        *(f"core.{k}={v}" for k, v in CORE_KWARGS[core].items()),
        f"policy.encoder_sizes=[{ENCODER}]",
        "algo.name=ppo",
        f"algo.n_steps={N_STEPS}",
        f"algo.n_epochs={N_EPOCHS}",
        f"algo.num_minibatches={max(1, n_envs * N_STEPS // BATCH_SIZE)}",
        "logging.tensorboard=false",
        "logging.wandb=disabled",
        "train.progress=false",
    ]
    return build_agent(load_config(None, overrides))


def _sb3(algo: str, env_key: str, core: str, n_envs: int) -> Any:
    import functools

    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env

    from fwmrl.envs import make_env
    from fwmrl.sb3 import MemoryRecurrentPPO

    _, env_id, kwargs = ENVS[env_key]
    env = make_vec_env(functools.partial(make_env, env_id, **kwargs), n_envs=n_envs, seed=0)
    common = {
        "n_steps": N_STEPS,
        "n_epochs": N_EPOCHS,
        "batch_size": BATCH_SIZE,
        "seed": 0,
        "device": "cpu",
    }
    if algo == "contrib":
        policy_kwargs = {
            "lstm_hidden_size": CORE_KWARGS[core]["hidden_size"],
            "net_arch": [ENCODER],
        }
        return RecurrentPPO("MlpLstmPolicy", env, policy_kwargs=policy_kwargs, **common)
    policy_kwargs = {"core": core, "core_kwargs": CORE_KWARGS[core], "net_arch": [ENCODER]}
    return MemoryRecurrentPPO("MemoryPolicy", env, policy_kwargs=policy_kwargs, **common)


def run_one(request: dict[str, Any]) -> dict[str, float]:
    """Train one row: env steps/s over ``timesteps`` steps after a warm-up update."""
    import torch

    import fwmrl  # noqa: F401  (registers the ids)

    torch.set_num_threads(request["threads"])
    algo, env_key, core, n_envs = (
        request["algo"],
        request["env"],
        request["core"],
        request["n_envs"],
    )
    if algo in ("native", "cells"):
        if algo == "cells":  # the epochs' LSTM windows by torch.lstm_cell steps, as before
            import contextlib

            import fwmrl.agents.ppo as ppo_module

            ppo_module.fused_lstm_windows = contextlib.nullcontext
        agent = _native(env_key, core, n_envs)
        agent.learn_update()  # warm-up
        first, start, cpu = agent.env_steps, time.perf_counter(), time.process_time()
        agent.learn(request["timesteps"], reset_num_timesteps=False)
        elapsed, steps = time.perf_counter() - start, agent.env_steps - first
        cpu = time.process_time() - cpu
        agent.close()
    else:
        model = _sb3(algo, env_key, core, n_envs)
        model.learn(n_envs * N_STEPS)  # warm-up
        first, start, cpu = model.num_timesteps, time.perf_counter(), time.process_time()
        model.learn(request["timesteps"], reset_num_timesteps=False)
        elapsed, steps = time.perf_counter() - start, model.num_timesteps - first
        cpu = time.process_time() - cpu
    return {
        "steps_per_s": steps / elapsed,
        "steps_per_cpu_s": steps / cpu,
        "steps": float(steps),
        "seconds": elapsed,
        "cpu_seconds": cpu,
    }


def run_worker(request: dict[str, Any]) -> dict[str, float]:
    """:func:`run_one` in a fresh process."""
    threads = str(request["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    done = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(request)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{request} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=list(ENVS), default="gridworld")
    parser.add_argument("--timesteps", type=int, default=4096, help="timed env steps per row")
    parser.add_argument("--repeats", type=int, default=2, help="runs per row (best kept)")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT", json.dumps(run_one(json.loads(args.one))))
        return
    if args.n_envs * N_STEPS % BATCH_SIZE and args.n_envs * N_STEPS > BATCH_SIZE:
        parser.error(f"--n-envs x {N_STEPS} must be a multiple of {BATCH_SIZE}")
    print(
        f"{commit_label('benchmarks/ppo.py')}; {ENVS[args.env][0]}; {args.n_envs} envs x {N_STEPS} steps per update, "
        f"{N_EPOCHS} epochs, minibatches of {BATCH_SIZE} steps; {args.timesteps} timed env steps "
        f"per row after one warm-up update, best of {args.repeats} runs (rows alternated), "
        f"{args.threads} torch thread(s)\n"
    )
    best: dict[str, dict[str, float]] = {label: {"steps_per_cpu_s": 0.0} for label, _, _ in ROWS}
    for _ in range(args.repeats):
        for label, algo, core in ROWS:
            request = {
                "algo": algo,
                "core": core,
                "env": args.env,
                "n_envs": args.n_envs,
                "timesteps": args.timesteps,
                "threads": args.threads,
            }
            result = run_worker(request)
            best[label] = max(best[label], result, key=lambda r: r["steps_per_cpu_s"])
    contrib = best[ROWS[-1][0]]["steps_per_cpu_s"]
    memory = {
        core: best[f"MemoryRecurrentPPO + MemoryPolicy({core})"]["steps_per_cpu_s"]
        for core in CORE_KWARGS
    }
    print(
        "| algorithm + policy | env steps per CPU-s | env steps/s (wall) "
        "| × sb3-contrib RecurrentPPO | × MemoryRecurrentPPO, same core |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, algo, core in ROWS:
        rate, wall = best[label]["steps_per_cpu_s"], best[label]["steps_per_s"]
        same = f"{rate / memory[core]:.2f}×" if algo != "contrib" else "–"
        print(
            f"| {label} | {rate:,.0f} | {wall:,.0f} | {rate / contrib:.2f}× | {same} |", flush=True
        )


if __name__ == "__main__":
    main()
