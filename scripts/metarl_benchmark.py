"""PPO + FWM vs PPO + LSTM vs a memoryless MLP on an RL^2 trial env, at a fixed env-step budget.

Each (core, seed) run trains fwmrl's native PPO from a config (``--config``, any of the
``configs/ml1_*``, ``ml10_*``, ``halfcheetah_*`` files) with the core swapped, and every
``--eval-every`` env steps runs ``--eval-trials`` whole trials on the evaluation env
(``env.kwargs`` + ``env.eval_kwargs``: Meta-World's test tasks) with
:func:`fwmrl.agents.trial_eval.evaluate_trials`. One CSV row per evaluation: env steps, the
training loop's wall and CPU time (this process) and env steps per wall / CPU second (evaluation
excluded; on a shared machine the CPU rate is the less load-dependent one), the mean training trial
return, this evaluation's wall and CPU time, the run's wall and CPU time so far (building the agent,
training and evaluations), and per inner episode of the test trials the mean return and success
rate. Each row is flushed and fsynced to ``--out`` before training continues, so a killed run keeps
every evaluation it finished.

    .venv/bin/python scripts/metarl_benchmark.py --config configs/ml1_reach_fwm.yaml \\
        --cores fwm,lstm,none --seeds 0 --steps 60000 --eval-every 20000 --eval-trials 20 \\
        --out docs/results/ml1_reach/curves.csv env.num_envs=8 env.kwargs.max_steps=100

Overrides after the options are ``fwmrl train`` overrides (``KEY=VALUE``) applied to every run.
Runs go one after the other with one torch thread.

``--evaluate-only`` (with ``--checkpoints``) trains nothing: each saved run is evaluated once more
with ``--eval-trials`` trials (other draws than the curve's) and its row appended to ``--out``.

With ``--checkpoints DIR`` each run saves its trainer (:meth:`fwmrl.PPO.state_dict`, tensors and
plain data only), its timers and its next evaluation step to ``DIR/<core>_s<seed>.pt`` after every
evaluation row, and a run that finds its file there continues from it: a killed run is started
again with the same command, and a finished one is taken further with a larger ``--steps``. The
saved config must equal the run's (``--steps`` is not part of it). Meta-World cannot save its
simulator state, so a resumed run resets its envs with a seed and is not bit-identical to an
uninterrupted one (it says so).
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fwmrl import rundir
from fwmrl.agents.job import build_agent, make_eval_env
from fwmrl.agents.trial_eval import evaluate_trials
from fwmrl.config import load_config
from fwmrl.errors import RunError

CORE_DEFAULTS = {
    "fwm": ["core.hidden_size=64", "core.memory_size=32", "core.read_hops=3"],
    "lstm": ["core.hidden_size=128"],
    "none": [],
}


def run(args: argparse.Namespace, core: str, seed: int, writer: csv.DictWriter) -> None:
    overrides = [f"core.name={core}", *CORE_DEFAULTS[core], f"train.seed={seed}", *args.overrides]
    config = load_config(args.config, overrides)
    episodes = int(config.env.kwargs.get("episodes", 2 if "HalfCheetah" in config.env.id else 10))
    checkpoint = args.checkpoints / f"{core}_s{seed}.pt" if args.checkpoints else None
    if args.evaluate_only and not checkpoint.exists():
        raise RunError(f"--evaluate-only: no saved run of {core}, seed {seed} at {checkpoint}")
    run_wall, run_cpu = time.perf_counter(), time.process_time()
    trainer = build_agent(config)
    eval_env = make_eval_env(config, min(args.eval_trials, config.env.num_envs))
    progress = {"train_wall": 0.0, "train_cpu": 0.0, "next_eval": 0, "last_row": -1}
    progress.update(run_wall=0.0, run_cpu=0.0)
    if checkpoint is not None and checkpoint.exists():
        progress = resume(trainer, config, checkpoint)
    steps = trainer.env_steps if args.evaluate_only else args.steps
    train_wall, train_cpu = progress["train_wall"], progress["train_cpu"]
    next_eval = progress["next_eval"]
    run_wall -= progress["run_wall"]  # the clocks go on from the saved run's time
    run_cpu -= progress["run_cpu"]
    try:
        while True:
            done = trainer.env_steps >= steps
            due = trainer.env_steps >= next_eval or done  # also a last row at the end
            if due and (args.evaluate_only or trainer.env_steps != progress["last_row"]):
                eval_wall, eval_cpu = time.perf_counter(), time.process_time()
                # the extra evaluation's trials are other draws than the curve's
                first = (20_000 if args.evaluate_only else 10_000) + seed
                out = evaluate_trials(
                    trainer.policy, eval_env, args.eval_trials, episodes, seed=first
                )
                eval_wall = time.perf_counter() - eval_wall
                eval_cpu = time.process_time() - eval_cpu
                stats = trainer.episode_stats()
                row = {
                    "env_id": config.env.id,
                    "core": core,
                    "seed": seed,
                    "env_steps": trainer.env_steps,
                    "train_wall_s": round(train_wall, 1),
                    "train_cpu_s": round(train_cpu, 1),
                    "train_steps_per_s": round(trainer.env_steps / train_wall, 1)
                    if train_wall
                    else "",
                    "train_steps_per_cpu_s": round(trainer.env_steps / train_cpu, 1)
                    if train_cpu
                    else "",
                    "train_trial_return": round(stats.get("episode_return_mean", float("nan")), 3),
                    "test_trials": args.eval_trials,
                    "eval_wall_s": round(eval_wall, 1),
                    "eval_cpu_s": round(eval_cpu, 1),
                    "run_wall_s": round(time.perf_counter() - run_wall, 1),
                    "run_cpu_s": round(time.process_time() - run_cpu, 1),
                }
                for k in range(episodes):
                    row[f"test_return_ep{k + 1}"] = round(float(out["returns"][:, k].mean()), 3)
                    row[f"test_success_ep{k + 1}"] = round(float(out["success"][:, k].mean()), 3)
                writer.writerow(row)  # on disk before training goes on: a kill keeps every row
                args.file.flush()
                os.fsync(args.file.fileno())
                print(row, flush=True)
                if args.evaluate_only:
                    break
                while next_eval <= trainer.env_steps:
                    next_eval += args.eval_every
                progress["last_row"] = trainer.env_steps
                if checkpoint is not None:
                    progress.update(
                        train_wall=train_wall,
                        train_cpu=train_cpu,
                        next_eval=next_eval,
                        run_wall=time.perf_counter() - run_wall,
                        run_cpu=time.process_time() - run_cpu,
                    )
                    rundir.save_progress(checkpoint, trainer.state_dict(), config, progress)
            if done:
                break
            start, cpu = time.perf_counter(), time.process_time()
            trainer.learn_update()
            train_wall += time.perf_counter() - start
            train_cpu += time.process_time() - cpu
    finally:
        eval_env.close()
        trainer.env.close()


def resume(trainer: Any, config: Any, path: Path) -> dict[str, Any]:
    """Load a run saved by :func:`fwmrl.rundir.save_progress` into ``trainer`` and return its
    progress (a :class:`RunError` when the file is damaged or holds another config's run)."""
    data, progress = rundir.load_progress(path, config)
    restored = trainer.load_state_dict(data)
    print(
        f"resumed {path} at {trainer.env_steps} env steps"
        + (
            ""
            if restored
            else " (envs reset with a seed: not bit-identical to an uninterrupted run)"
        ),
        flush=True,
    )
    return {k: float(v) if k.endswith(("wall", "cpu")) else int(v) for k, v in progress.items()}


def env_speed(config_path: str, overrides: list[str], num_envs: tuple[int, ...] = (1, 4)) -> None:
    """Env steps per wall and CPU second with random actions (no policy): the env's own cost."""
    from fwmrl.envs import make_vec_env

    config = load_config(config_path, overrides)
    for n in num_envs:
        env = make_vec_env(config.env.id, n, **config.env.kwargs)
        env.reset(seed=0)
        actions = [env.action_space.sample() for _ in range(300)]
        wall, cpu = time.perf_counter(), time.process_time()
        for action in actions:
            env.step(action)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{config.env.id} num_envs={n}: {300 * n / wall:.0f} env steps/s wall, "
            f"{300 * n / cpu:.0f} per CPU-s (random actions)"
        )
        env.close()


def plot(csv_path: str, png_path: str) -> None:
    """Test-trial return of the first and of the last inner episode, their difference (what the
    memory gains within a trial) and, for Meta-World, the last inner episode's success, against
    env steps: one colour per core, one line style per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    has_success = "MetaWorld" in rows[0]["env_id"]  # the HalfCheetah tasks have no success info
    ret_keys = [k for k in rows[0] if k.startswith("test_return_ep")]
    first, last = ret_keys[0], ret_keys[-1]
    panels = 3 + has_success
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 3.4))
    cores = sorted({r["core"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for core in cores:
        for seed in seeds:
            mine = [r for r in rows if (r["core"], r["seed"]) == (core, seed)]
            if not mine:
                continue
            steps = [int(r["env_steps"]) for r in mine]
            ep1 = np.array([float(r[first]) for r in mine])
            epk = np.array([float(r[last]) for r in mine])
            style = {
                "color": colours[cores.index(core) % len(colours)],
                "linestyle": styles[seeds.index(seed) % len(styles)],
                "marker": "o",
                "markersize": 3,
                "label": f"{'mlp' if core == 'none' else core} s{seed}",
            }
            axes[0].plot(steps, ep1, **style)
            axes[1].plot(steps, epk, **style)
            axes[2].plot(steps, epk - ep1, **style)
            if has_success:
                axes[3].plot(
                    steps, [float(r[f"test_success_ep{len(ret_keys)}"]) for r in mine], **style
                )
    k = len(ret_keys)
    axes[0].set(xlabel="env steps", ylabel="test return", title="inner episode 1")
    axes[1].set(xlabel="env steps", ylabel="test return", title=f"inner episode {k}")
    axes[1].sharey(axes[0])
    axes[2].set(xlabel="env steps", ylabel="return difference", title=f"episode {k} − episode 1")
    axes[2].axhline(0.0, color="grey", linewidth=0.8)
    if has_success:
        axes[3].set(
            xlabel="env steps",
            ylabel="test success",
            title=f"success, inner episode {k}",
            ylim=(-0.05, 1.05),
        )
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.title.set_fontsize(9)
    fig.suptitle(rows[0]["env_id"], fontsize=9)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)


def table(csv_paths: list[str], last: int = 3) -> str:
    """A Markdown table of CSV files' runs (one row per core and seed): the mean over the last
    ``last`` evaluations of the test return in the first and last inner episodes and, for
    Meta-World (whose envs report ``success``), of the success in those episodes and over all
    inner episodes, with the run's env steps, training CPU seconds and env steps per training
    CPU second."""
    rows: list[dict[str, str]] = []
    for path in csv_paths:
        with open(path, newline="") as f:
            rows += list(csv.DictReader(f))
    runs: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        runs.setdefault((row["core"], row["seed"]), []).append(row)
    k = len([key for key in rows[0] if key.startswith("test_return_ep")])
    has_success = "MetaWorld" in rows[0]["env_id"]
    head = ["core", "seed", "env steps", "return ep 1", f"return ep {k}"]
    if has_success:
        head += ["success ep 1", f"success ep {k}", "success, all eps"]
    head += ["training CPU-s", "env steps / CPU-s"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for (core, seed), mine in sorted(runs.items()):
        mine = sorted(mine, key=lambda r: int(r["env_steps"]))
        tail = mine[-last:]

        def mean(key: str, tail: list[dict[str, str]] = tail) -> float:
            return float(np.mean([float(r[key]) for r in tail]))

        end = mine[-1]
        cells = ["mlp" if core == "none" else core, seed, f"{int(end['env_steps']):,}"]
        cells += [f"{mean('test_return_ep1'):.1f}", f"{mean(f'test_return_ep{k}'):.1f}"]
        if has_success:
            every = np.mean([mean(f"test_success_ep{e + 1}") for e in range(k)])
            cells += [f"{mean('test_success_ep1'):.3f}", f"{mean(f'test_success_ep{k}'):.3f}"]
            cells.append(f"{every:.3f}")
        cells += [
            f"{float(end['train_cpu_s']):,.0f}",
            f"{float(end['train_steps_per_cpu_s']):,.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="the run's config file (not for --plot or --table)")
    parser.add_argument("--cores", default="fwm,lstm,none")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, help="env steps per run")
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--eval-trials", type=int, default=20)
    parser.add_argument("--out", help="CSV file (appended to)")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        metavar="DIR",
        help="save each run after every evaluation and continue a run saved there",
    )
    parser.add_argument(
        "--env-speed", action="store_true", help="only time the env with random actions"
    )
    parser.add_argument("--plot", metavar="PNG", help="only draw --out's curves into PNG")
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="no training: evaluate each run saved in --checkpoints once with --eval-trials trials "
        "(other trials than the curve's) and append its row to --out",
    )
    parser.add_argument(
        "--table",
        nargs="+",
        metavar="CSV",
        help="only print a Markdown table of these CSV files' runs (means of the last --last rows)",
    )
    parser.add_argument("--last", type=int, default=3, help="evaluations averaged by --table")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.plot:
        plot(args.out, args.plot)
        return
    if args.table:
        print(table(args.table, args.last))
        return
    if args.config is None:
        parser.error("--config is needed (except with --plot or --table)")
    if args.env_speed:
        env_speed(args.config, args.overrides)
        return
    if args.evaluate_only and (args.checkpoints is None or args.out is None):
        parser.error("--evaluate-only needs --checkpoints and --out")
    if not args.evaluate_only and (
        args.steps is None or args.eval_every is None or args.out is None
    ):
        parser.error("--steps, --eval-every and --out are needed (or --env-speed)")
    np.seterr(all="ignore")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    config = load_config(args.config, args.overrides)
    episodes = int(config.env.kwargs.get("episodes", 2 if "HalfCheetah" in config.env.id else 10))
    fields = [
        "env_id",
        "core",
        "seed",
        "env_steps",
        "train_wall_s",
        "train_cpu_s",
        "train_steps_per_s",
        "train_steps_per_cpu_s",
        "train_trial_return",
        "test_trials",
        "eval_wall_s",
        "eval_cpu_s",
        "run_wall_s",
        "run_cpu_s",
    ]
    for k in range(episodes):
        fields += [f"test_return_ep{k + 1}", f"test_success_ep{k + 1}"]
    new = not out.exists() or out.stat().st_size == 0
    if not new:
        with out.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != fields:
            parser.error(
                f"--out {out} has the columns {header}, not this run's {fields}; "
                "give a new file (rows are appended)"
            )
    with out.open("a", newline="") as args.file:
        writer = csv.DictWriter(args.file, fieldnames=fields)
        if new:
            writer.writeheader()
        for seed in [int(s) for s in args.seeds.split(",")]:
            for core in args.cores.split(","):
                try:
                    run(args, core, seed, writer)
                except RunError as error:
                    parser.exit(2, f"{parser.prog}: error: {error}\n")


if __name__ == "__main__":
    main()
