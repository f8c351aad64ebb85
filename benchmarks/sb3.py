"""SB3 drop-ins: throughput and memory of recurrent PPO / A2C with each memory policy.

Compares, on the same env in the same run: sb3-contrib ``RecurrentPPO`` + ``MlpLstmPolicy``,
:class:`fwmrl.sb3.MemoryRecurrentPPO` + ``MemoryPolicy`` with the lstm, fwm and mnm_p cores, and
:class:`fwmrl.sb3.RecurrentA2C` + fwm. Each configuration runs in a fresh subprocess so that its
peak resident memory (``ru_maxrss``) is its own. Prints two Markdown tables: throughput / memory,
and the recurrent-state cost per core (what a rollout buffer must hold).

    .venv/bin/python benchmarks/sb3.py [--timesteps 4096] [--n-envs 8] [--n-steps 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

ENV_ID = "FWM-Gridworld-v0"
CORE_KWARGS: dict[str, dict[str, Any]] = {
    "lstm": {"hidden_size": 64},
    "fwm": {"hidden_size": 32, "memory_size": 16},
    "fwm_m32": {"hidden_size": 32, "memory_size": 32, "read_hops": 1},
    "mnm_p": {"hidden_size": 32, "key_size": 32, "memory_size": 32},
}
CONFIGS = [
    ("RecurrentPPO + MlpLstmPolicy (sb3-contrib)", "contrib", "lstm"),
    ("MemoryRecurrentPPO + MemoryPolicy(lstm)", "ppo", "lstm"),
    ("MemoryRecurrentPPO + MemoryPolicy(fwm)", "ppo", "fwm"),
    ("MemoryRecurrentPPO + MemoryPolicy(fwm m=32)", "ppo", "fwm_m32"),
    ("MemoryRecurrentPPO + MemoryPolicy(mnm_p)", "ppo", "mnm_p"),
    ("RecurrentA2C + MemoryPolicy(fwm)", "a2c", "fwm"),
]


def _buffer_bytes(buffer: Any) -> int:
    if hasattr(buffer, "nbytes"):
        return int(buffer.nbytes)
    return sum(v.nbytes for v in vars(buffer).values() if hasattr(v, "nbytes"))


def run_one(algo: str, core: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one configuration; env steps per second, buffer bytes and peak RSS."""
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env

    import fwmrl  # noqa: F401
    from fwmrl.sb3 import MemoryRecurrentPPO, RecurrentA2C

    torch.set_num_threads(args.threads)
    env = make_vec_env(ENV_ID, n_envs=args.n_envs, seed=0, env_kwargs={"max_steps": 100})
    kwargs = CORE_KWARGS[core]
    common = {"seed": 0, "device": "cpu"}
    if algo == "contrib":
        model = RecurrentPPO(
            "MlpLstmPolicy",
            env,
            n_steps=args.n_steps,
            n_epochs=4,
            policy_kwargs={"lstm_hidden_size": kwargs["hidden_size"], "net_arch": [64]},
            **common,
        )
    else:
        policy_kwargs = {
            "core": core.split("_m")[0],
            "core_kwargs": kwargs,
            "net_arch": [64],
        }
        if algo == "ppo":
            model = MemoryRecurrentPPO(
                "MemoryPolicy",
                env,
                n_steps=args.n_steps,
                n_epochs=4,
                sequence_length=args.sequence_length,
                policy_kwargs=policy_kwargs,
                **common,
            )
        else:
            model = RecurrentA2C(
                "MemoryPolicy", env, n_steps=args.a2c_steps, policy_kwargs=policy_kwargs, **common
            )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.learn(args.n_envs * args.n_steps)  # warm-up (one update)
    start_steps, start = model.num_timesteps, time.perf_counter()
    model.learn(args.timesteps, reset_num_timesteps=False)
    elapsed = time.perf_counter() - start
    return {
        "steps_per_s": (model.num_timesteps - start_steps) / elapsed,
        "buffer_mib": _buffer_bytes(model.rollout_buffer) / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
    }


def state_cost_table(args: argparse.Namespace) -> str:
    """Floats of state per env per core, and the bytes a rollout must keep with each buffer."""
    from fwmrl.memory import make_core

    lines = [
        f"| core (config) | state floats / env | fwmrl buffer ({args.n_envs} envs, sequence_length ="
        f" n_steps: 1 actor + 1 critic state / env) | sb3-contrib-style (4 arrays x {args.n_steps} steps) |",
        "|---|---:|---:|---:|",
    ]
    for core, kwargs in CORE_KWARGS.items():
        numel = make_core(core.split("_m")[0], input_size=32, **kwargs).state_numel
        ours = 2 * args.n_envs * numel * 4
        # sb3-contrib keeps (h, c) for actor and critic every step; for a general core that is the
        # whole state twice (actor, critic) per step.
        theirs = 2 * args.n_steps * args.n_envs * numel * 4
        lines.append(
            f"| {core} {kwargs} | {numel:,} | {ours / 2**20:.2f} MiB | {theirs / 2**20:.1f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=4096, help="timed env steps per config")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=128, help="PPO rollout length")
    parser.add_argument("--a2c-steps", type=int, default=16, help="RecurrentA2C rollout length")
    parser.add_argument("--sequence-length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("ALGO", "CORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args)))
        return

    forwarded = [
        f"--timesteps={args.timesteps}",
        f"--n-envs={args.n_envs}",
        f"--n-steps={args.n_steps}",
        f"--a2c-steps={args.a2c_steps}",
        f"--sequence-length={args.sequence_length}",
        f"--threads={args.threads}",
    ]
    print(
        f"{ENV_ID}, {args.n_envs} envs, PPO n_steps={args.n_steps} (4 epochs, sequences of "
        f"{args.sequence_length}), A2C n_steps={args.a2c_steps}, {args.timesteps} timed steps, "
        f"{args.threads} thread(s)\n"
    )
    print("| algorithm + policy | env steps/s | rollout buffer | peak RSS |")
    print("|---|---:|---:|---:|")
    for label, algo, core in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--one", algo, core, *forwarded],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            print(f"| {label} | failed: {out.stderr.strip().splitlines()[-1]} | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {label} | {r['steps_per_s']:.0f} | {r['buffer_mib']:.2f} MiB "
            f"| {r['peak_rss_mib']:.0f} MiB |"
        )
    print()
    print(state_cost_table(args))


if __name__ == "__main__":
    main()
