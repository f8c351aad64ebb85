"""SB3 drop-ins: env steps/s of recurrent PPO with each memory policy, now and at a baseline.

In one run on one machine: sb3-contrib ``RecurrentPPO`` + ``MlpLstmPolicy`` and
:class:`fwmrl.sb3.MemoryRecurrentPPO` + ``MemoryPolicy`` (lstm, fwm) on FWM-Gridworld-v0 with
100-step episodes, MiniGrid-MemoryS7-v0 and FWM-Gridworld-v0 with its default 200-step episodes,
with the constructor's defaults (n_steps 128, batch_size 128, n_epochs 10, 8 envs) and with tuned
settings (batch_size 512, n_epochs 4, sequence_length 32). The fwmrl rows run twice: on the
working tree ("now") and on ``--baseline`` ("before": a revision extracted with ``git archive``,
imported through ``PYTHONPATH``). Then ``evaluate_policy`` over 100 episodes for each policy
against an SB3 ``MlpPolicy`` (one process per tree, policies alternated, best of ``--repeats``),
and the recurrent-state cost per core. Every training run is a fresh process (its peak RSS is its
own); each row is the best of ``--train-repeats`` runs, now and before alternated (the machine is
shared); ratios are only formed within this run.

    .venv/bin/python benchmarks/sb3.py [--baseline REV] [--timesteps 2048] [--train-repeats 2]
        [--threads 1] [--envs gridworld minigrid gridworld200] [--settings defaults tuned]
        [--episodes 100] [--repeats 2] [--no-eval]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _revision import revision as commit_label  # benchmarks/_revision.py (run as a script)
from _revision import source_tree

ROOT = Path(__file__).resolve().parent.parent
#: The SB3 drop-ins before issue 18 (minibatches of one sequence with the constructor defaults).
BASELINE = "662ad5b"
ENVS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gridworld": ("FWM-Gridworld-v0, 100-step episodes", "FWM-Gridworld-v0", {"max_steps": 100}),
    "minigrid": ("MiniGrid-MemoryS7-v0", "MiniGrid-MemoryS7-v0", {}),
    "gridworld200": ("FWM-Gridworld-v0, 200-step episodes", "FWM-Gridworld-v0", {}),
}
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},  # the constructor's: n_steps 128, batch_size 128, n_epochs 10
    "tuned": {"batch_size": 512, "n_epochs": 4, "sequence_length": 32},
}
CORE_KWARGS: dict[str, dict[str, Any]] = {
    "lstm": {"hidden_size": 64},
    "fwm": {"hidden_size": 32, "memory_size": 16},
    "fwm_m32": {"hidden_size": 32, "memory_size": 32, "read_hops": 1},
    "mnm_p": {"hidden_size": 32, "key_size": 32, "memory_size": 32},
}
POLICIES = [
    ("RecurrentPPO + MlpLstmPolicy (sb3-contrib)", "contrib", "lstm"),
    ("MemoryRecurrentPPO + MemoryPolicy(lstm)", "ppo", "lstm"),
    ("MemoryRecurrentPPO + MemoryPolicy(fwm)", "ppo", "fwm"),
]
EVAL_POLICIES = ["mlp", "contrib", "lstm", "fwm"]
EVAL_LABELS = {
    "mlp": "PPO + MlpPolicy (SB3)",
    "contrib": "RecurrentPPO + MlpLstmPolicy (sb3-contrib)",
    "lstm": "MemoryPolicy(lstm)",
    "fwm": "MemoryPolicy(fwm)",
}


def _buffer_bytes(buffer: Any) -> int:
    if hasattr(buffer, "nbytes"):
        return int(buffer.nbytes)
    return sum(v.nbytes for v in vars(buffer).values() if hasattr(v, "nbytes"))


def _vec_env(env_key: str, n_envs: int, seed: int = 0) -> Any:
    # fwmrl.envs.make_env and SB3's make_vec_env exist in every revision this compares with
    from stable_baselines3.common.env_util import make_vec_env

    from fwmrl.envs import make_env

    _, env_id, kwargs = ENVS[env_key]
    return make_vec_env(functools.partial(make_env, env_id, **kwargs), n_envs=n_envs, seed=seed)


def _model(algo: str, core: str, env: Any, settings: dict[str, Any]) -> Any:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    from fwmrl.sb3 import MemoryRecurrentPPO

    common = {"seed": 0, "device": "cpu"}
    kwargs = CORE_KWARGS[core]
    if algo == "mlp":
        return PPO("MlpPolicy", env, policy_kwargs={"net_arch": [64]}, **common)
    if algo == "contrib":
        contrib = {k: v for k, v in settings.items() if k != "sequence_length"}
        return RecurrentPPO(
            "MlpLstmPolicy",
            env,
            policy_kwargs={"lstm_hidden_size": kwargs["hidden_size"], "net_arch": [64]},
            **contrib,
            **common,
        )
    policy_kwargs = {"core": core.split("_m")[0], "core_kwargs": kwargs, "net_arch": [64]}
    return MemoryRecurrentPPO(
        "MemoryPolicy", env, policy_kwargs=policy_kwargs, **settings, **common
    )


def run_one(request: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration: env steps/s (and the collect / train split), buffer, peak RSS."""
    import torch

    import fwmrl  # noqa: F401  (registers the ids)

    torch.set_num_threads(request["threads"])
    env = _vec_env(request["env"], request["n_envs"])
    model = _model(request["algo"], request["core"], env, SETTINGS[request["settings"]])
    spent = {"collect": 0.0, "train": 0.0}

    def timed(name: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return run

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.learn(model.n_envs * model.n_steps)  # warm-up (one rollout and update)
    model.collect_rollouts = timed("collect", model.collect_rollouts)
    model.train = timed("train", model.train)
    start_steps, start, cpu_start = model.num_timesteps, time.perf_counter(), time.process_time()
    model.learn(request["timesteps"], reset_num_timesteps=False)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "steps_per_s": (model.num_timesteps - start_steps) / elapsed,
        # CPU time of this process: what the run cost, less the waits for the shared cores
        "steps_per_cpu_s": (model.num_timesteps - start_steps) / cpu,
        "collect_share": spent["collect"] / elapsed,
        "sequence_length": getattr(model, "sequence_length", None),
        "buffer_mib": _buffer_bytes(model.rollout_buffer) / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
    }


def run_eval(request: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Wall-clock and CPU seconds of ``evaluate_policy`` over ``episodes`` episodes per policy
    (best of repeats): ``{"wall": {policy: s}, "cpu": {policy: s}}``."""
    import torch
    from stable_baselines3.common.evaluation import evaluate_policy

    import fwmrl  # noqa: F401

    torch.set_num_threads(request["threads"])
    env = _vec_env("gridworld", 1)
    algos = {"mlp": ("mlp", "lstm"), "contrib": ("contrib", "lstm")}
    models = {name: _model(*algos.get(name, ("ppo", name)), env, {}) for name in EVAL_POLICIES}
    best = {"wall": dict.fromkeys(models, float("inf")), "cpu": dict.fromkeys(models, float("inf"))}
    for model in models.values():
        evaluate_policy(model, env, n_eval_episodes=1)  # warm-up
    for _ in range(request["repeats"]):
        for name, model in models.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            evaluate_policy(model, env, n_eval_episodes=request["episodes"])
            best["wall"][name] = min(best["wall"][name], time.perf_counter() - start)
            best["cpu"][name] = min(best["cpu"][name], time.process_time() - cpu_start)
    return best


def run_worker(tree: Path, mode: str, request: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_one` (``mode="one"``) or :func:`run_eval` in a fresh process importing fwmrl
    from ``tree``."""
    threads = str(request["threads"])
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    done = subprocess.run(
        [sys.executable, __file__, f"--{mode}", json.dumps(request)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{mode} {request} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def state_cost_table(n_envs: int = 8, n_steps: int = 128, batch_size: int = 128) -> str:
    """Floats of state per env per core, and the bytes a rollout must keep with each buffer."""
    from fwmrl.memory import make_core
    from fwmrl.sb3.ppo import default_sequence_length

    length = default_sequence_length(n_steps, batch_size, n_envs)
    chunks = n_steps // length
    lines = [
        f"| core (config) | state floats / env | fwmrl buffer, default sequence_length={length} "
        f"({chunks} actor + critic states / env, {n_envs} envs) | sequence_length = n_steps "
        f"(1 / env) | sb3-contrib-style (4 arrays x {n_steps} steps) |",
        "|---|---:|---:|---:|---:|",
    ]
    for core, kwargs in CORE_KWARGS.items():
        numel = make_core(core.split("_m")[0], input_size=32, **kwargs).state_numel
        one = 2 * n_envs * numel * 4
        # sb3-contrib keeps (h, c) for actor and critic every step; for a general core that is the
        # whole state twice (actor, critic) per step.
        theirs = 2 * n_steps * n_envs * numel * 4
        lines.append(
            f"| {core} {kwargs} | {numel:,} | {chunks * one / 2**20:.2f} MiB "
            f"| {one / 2**20:.2f} MiB | {theirs / 2**20:.1f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="revision to compare with")
    parser.add_argument("--timesteps", type=int, default=2048, help="timed env steps per row")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--envs", nargs="+", choices=list(ENVS), default=list(ENVS))
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument(
        "--train-repeats", type=int, default=2, help="runs per row (now and before alternated)"
    )
    parser.add_argument("--episodes", type=int, default=100, help="evaluate_policy episodes")
    parser.add_argument("--repeats", type=int, default=2, help="evaluate_policy repeats")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluate_policy rows")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--eval", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT", json.dumps(run_one(json.loads(args.one))))
        return
    if args.eval:
        print("RESULT", json.dumps(run_eval(json.loads(args.eval))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        before_tree = source_tree(args.baseline, Path(tmp))
        trees = {"now": ROOT, "before": before_tree}
        print(
            f"now = {commit_label('benchmarks/sb3.py')}, before = {args.baseline}; {args.n_envs} envs, "
            f"{args.timesteps} timed env steps per row after one warm-up rollout, best of "
            f"{args.train_repeats} runs (now and before alternated), {args.threads} torch "
            f"thread(s)\n"
        )
        print(
            "| env | settings | algorithm + policy | sequence_length (now / before) "
            "| env steps/s now | before | now / before | env steps / CPU s now | before "
            "| collect share now | rollout buffer now | peak RSS now |"
        )
        print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        rates: dict[tuple[str, str, str, str], float] = {}
        cpu_rates: dict[tuple[str, str, str, str], float] = {}
        for env_key in args.envs:
            for setting in args.settings:
                for label, algo, core in POLICIES:
                    request = {
                        "env": env_key,
                        "settings": setting,
                        "algo": algo,
                        "core": core,
                        "timesteps": args.timesteps,
                        "n_envs": args.n_envs,
                        "threads": args.threads,
                    }
                    now, before = {"steps_per_s": 0.0}, {"steps_per_s": 0.0}
                    for _ in range(args.train_repeats):  # alternated, the best of each
                        result = run_worker(trees["now"], "one", request)
                        now = max(now, result, key=lambda r: r["steps_per_s"])
                        if algo == "ppo":
                            result = run_worker(trees["before"], "one", request)
                            before = max(before, result, key=lambda r: r["steps_per_s"])
                    before = before if algo == "ppo" else now
                    for when, result in (("now", now), ("before", before)):
                        rates[env_key, setting, f"{algo}-{core}", when] = result["steps_per_s"]
                        cpu_rates[env_key, setting, f"{algo}-{core}", when] = result[
                            "steps_per_cpu_s"
                        ]
                    lengths = (
                        "–"
                        if algo == "contrib"
                        else f"{now['sequence_length']} / {before['sequence_length']}"
                    )
                    before_cells = (
                        ("(same)", "–", "(same)")
                        if algo == "contrib"
                        else (
                            f"{before['steps_per_s']:,.0f}",
                            f"{now['steps_per_s'] / before['steps_per_s']:.2f}×",
                            f"{before['steps_per_cpu_s']:,.0f}",
                        )
                    )
                    print(
                        f"| {ENVS[env_key][0]} | {setting} | {label} | {lengths} "
                        f"| {now['steps_per_s']:,.0f} | {before_cells[0]} | {before_cells[1]} "
                        f"| {now['steps_per_cpu_s']:,.0f} | {before_cells[2]} "
                        f"| {now['collect_share']:.0%} | {now['buffer_mib']:.2f} MiB "
                        f"| {now['peak_rss_mib']:.0f} MiB |",
                        flush=True,
                    )
        print()
        print(
            "| env | settings | fwm / lstm now (target ≥ 0.5) | fwm / MlpLstmPolicy now "
            "(target ≥ 3) | the same per CPU s | fwm / lstm before | fwm / MlpLstmPolicy before |"
        )
        print("|---|---|---:|---:|---|---:|---:|")
        for env_key in args.envs:
            for setting in args.settings:
                cells = []
                for when, table in (("now", rates), ("cpu", cpu_rates), ("before", rates)):
                    key = "before" if when == "before" else "now"
                    fwm = table[env_key, setting, "ppo-fwm", key]
                    lstm = fwm / table[env_key, setting, "ppo-lstm", key]
                    contrib = fwm / table[env_key, setting, "contrib-lstm", key]
                    if when == "cpu":
                        cells.append(f"{lstm:.2f} / {contrib:.2f}")
                    else:
                        cells += [f"{lstm:.2f}", f"{contrib:.2f}"]
                print(f"| {ENVS[env_key][0]} | {setting} | {' | '.join(cells)} |")
        if not args.no_eval:
            request = {"episodes": args.episodes, "repeats": args.repeats, "threads": args.threads}
            seconds = {when: run_worker(tree, "eval", request) for when, tree in trees.items()}
            print(
                f"\n`evaluate_policy` over {args.episodes} episodes of FWM-Gridworld-v0 "
                f"(100 steps each, 1 env, untrained policies, best of {args.repeats}):\n"
            )
            print(
                "| policy | seconds now | × MlpPolicy now (target ≤ 2) | CPU s now | × MlpPolicy "
                "(CPU) now | seconds before | × MlpPolicy before |"
            )
            print("|---|---:|---:|---:|---:|---:|---:|")
            for name in EVAL_POLICIES:
                now, cpu = seconds["now"]["wall"], seconds["now"]["cpu"]
                before = seconds["before"]["wall"]
                print(
                    f"| {EVAL_LABELS[name]} | {now[name]:.2f} | {now[name] / now['mlp']:.2f} "
                    f"| {cpu[name]:.2f} | {cpu[name] / cpu['mlp']:.2f} "
                    f"| {before[name]:.2f} | {before[name] / before['mlp']:.2f} |"
                )
    print()
    print(state_cost_table(args.n_envs))


if __name__ == "__main__":
    main()
