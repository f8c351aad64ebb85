"""The ``fwmrl`` command (also ``python -m fwmrl``).

::

    fwmrl train CONFIG [--run-dir DIR] [KEY=VALUE ...]     train (run dir: runs/<config>-<time>)
    fwmrl train --resume RUN_DIR [KEY=VALUE ...]           continue from the run's last checkpoint
    fwmrl eval RUN_DIR [--episodes N] [--gif out.gif]      evaluate the run's last checkpoint
    fwmrl eval RUN_DIR --checkpoint best                   supervised/LM: the best-on-validation one
    fwmrl plot RUN_DIR... -o curves.png [--x cpu_time]     learning curves with random/oracle references
    fwmrl plot-memory RUN_DIR [--input TEXT] [-o memory.png]  write-key / value similarity (FWM, MNM)
    fwmrl envs                                             list the registered fwmrl env ids
    fwmrl export RUN_DIR -o docs/results/EXP/RUN.csv       evaluation history as CSV (+ config)
    fwmrl compare A_s0.csv B_s0.csv ... [--plot PNG] [--parameters]  mean ± std over seeds
    fwmrl sweep SWEEP.yaml [--address ADDR] [KEY=VALUE ...]   Ray Tune sweep (pip install fwmrl[sweep])

The same commands train and evaluate the supervised and language-modelling trainers
(``task.kind: retrieval | catbabi | lm``, e.g. ``fwmrl train configs/retrieval_gated_fw.yaml``).

Overrides are dotted keys of the config: ``train.total_steps=200000 core.memory_size=16``. A bad
config, override or run directory exits with status 2 and one message naming the key and what is
allowed; a NaN/inf loss stops training with status 1, keeping the last good checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from fwmrl.errors import ConfigError, NonFiniteLossError, RunError, SweepError
from fwmrl.version import __version__

# Everything that imports torch is imported inside the commands: ``fwmrl --help`` stays fast.


def _split_items(items: list[str]) -> tuple[str | None, list[str]]:
    """First item without ``=`` is the config file; the rest are overrides."""
    config, overrides = None, []
    for item in items:
        if "=" not in item and config is None:
            config = item
        elif "=" not in item:
            raise ConfigError(f"unexpected argument {item!r}; overrides look like train.seed=1")
        else:
            overrides.append(item)
    return config, overrides


def _cmd_train(args: argparse.Namespace) -> int:
    from fwmrl import distributed
    from fwmrl.config import load_config
    from fwmrl.rundir import CHECKPOINT, new_run_dir, resume_config

    config_path, overrides = _split_items(args.items)
    if args.resume:
        if config_path is not None:
            raise ConfigError(
                f"--resume takes the run's own config; drop {config_path!r} (use overrides)"
            )
        run_dir = Path(args.resume)
        config = resume_config(run_dir, overrides)  # the checkpoint's config + the overrides
    else:
        if config_path is None:
            raise ConfigError(
                "give a config file (e.g. configs/gridworld_fwm.yaml) or --resume RUN_DIR"
            )
        config = load_config(config_path, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else new_run_dir(config_path)
    check = _PARALLEL_CHECKS.get(config.task.kind)
    if distributed.world_size() > 1 and check is not None:
        try:
            check(config, distributed.world_size(), distributed.rank())
        except ConfigError:
            if not distributed.is_main():
                return 2  # every rank finds the same; rank 0 says it
            raise
    with _process_group(config.train.device):
        if not args.resume:
            run_dir = distributed.broadcast_object(run_dir)  # rank 0's name (time stamp)
            taken = distributed.broadcast_object((run_dir / CHECKPOINT).exists())
            if taken:
                raise RunError(
                    f"{run_dir} already holds a run; use --resume {run_dir} to continue it"
                )
        return _train(config, run_dir, bool(args.resume))


def _check_env_shard(config, world: int, rank: int) -> None:  # noqa: ANN001
    """Data-parallel A2C/PPO: each rank steps ``env.num_envs / N`` of the envs."""
    from fwmrl.agents.a2c import env_shard

    env_shard(config.env.num_envs, world, rank)


_PARALLEL_CHECKS = {"rl": _check_env_shard}
"""``task.kind`` -> what must hold before ``torchrun`` starts its ranks (the supervised trainers
check their batch split when they build it)."""


@contextlib.contextmanager
def _process_group(device: str):  # noqa: ANN202
    """Join the ``torchrun`` process group for the command (nothing outside ``torchrun``)."""
    from fwmrl import distributed

    distributed.init_distributed(device)
    try:
        yield
    finally:
        distributed.shutdown()


def _train(config, run_dir: Path, resume: bool) -> int:  # noqa: ANN001
    from fwmrl import distributed
    from fwmrl.jobs import train_run
    from fwmrl.rundir import CHECKPOINT

    main = distributed.is_main()
    if main:
        print(f"run directory: {run_dir}", file=sys.stderr)
    try:
        with _one_line_notes():
            summary = train_run(config, run_dir, resume=resume)
    except NonFiniteLossError as error:
        last = run_dir / CHECKPOINT
        kept = (
            f"last good checkpoint: {last}" if last.is_file() else "no checkpoint was written yet"
        )
        print(f"fwmrl: training stopped: {error}; {kept}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if main:
            kept = (
                f"the last checkpoint is kept: fwmrl train --resume {run_dir}"
                if (run_dir / CHECKPOINT).is_file()
                else "no checkpoint was written yet"
            )
            print(f"fwmrl: interrupted; {kept}", file=sys.stderr)
        return 130
    if main:
        print(json.dumps(summary, indent=2))
    return 0


@contextlib.contextmanager
def _one_line_notes():  # noqa: ANN202
    """Print the run's notes (:class:`fwmrl.rundir.RunNote`) as ``fwmrl: note: ...`` lines."""
    import warnings

    from fwmrl.rundir import RunNote

    show = warnings.showwarning

    def note(message, category, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if issubclass(category, RunNote):
            print(f"fwmrl: note: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    warnings.showwarning = note
    try:
        yield
    finally:
        warnings.showwarning = show


def _cmd_eval(args: argparse.Namespace) -> int:
    from fwmrl.rundir import load_run_config

    config = load_run_config(args.run_dir, args.overrides)
    return _EVALUATORS[config.task.kind](args, config)


def _eval_rl(args: argparse.Namespace, config) -> int:  # noqa: ANN001
    from fwmrl.agents.evaluation import record_gif
    from fwmrl.agents.job import (
        eval_env_kwargs,
        evaluate_from_config,
        load_policy,
        references_from_config,
        run_references,
    )

    if args.checkpoint != "last":
        raise RunError(
            "--checkpoint best: RL runs keep only their last checkpoint (checkpoint.pt); "
            "best.pt is written by the supervised/LM trainers"
        )
    policy = load_policy(args.run_dir, config)
    result = evaluate_from_config(
        policy, config, args.episodes, seed=args.seed, deterministic=args.deterministic
    )
    if config.env.eval_kwargs:  # a different eval env: its own references, the run's recipe
        refs = references_from_config(config, episodes=100, seed=config.train.seed, eval_env=True)
    else:  # the numbers of the run's curves (references.json)
        refs = run_references(args.run_dir, config)
    result["references"] = refs
    if args.gif:
        kwargs = eval_env_kwargs(config)
        result["gif_frames"] = record_gif(policy, config.env.id, args.gif, kwargs, seed=args.seed)
        result["gif"] = args.gif
    print(json.dumps(result, indent=2))
    return 0


def _eval_task(args: argparse.Namespace, config) -> int:  # noqa: ANN001
    from fwmrl.rundir import load_checkpoint
    from fwmrl.tasks.job import build_trainer, checkpoint_path

    path = checkpoint_path(args.run_dir, args.checkpoint)
    data = load_checkpoint(path)
    trainer = build_trainer(config)
    trainer.load_state_dict(data)
    result = {
        "checkpoint": str(path),
        "steps": trainer.update,
        "parameters": trainer.num_parameters,
        **{split: trainer.evaluate(split) for split in args.splits},
    }
    print(json.dumps(result, indent=2))
    return 0


_EVALUATORS = {"rl": _eval_rl, "retrieval": _eval_task, "catbabi": _eval_task, "lm": _eval_task}
"""``fwmrl eval`` per ``task.kind``: the RL policy on the eval env, or a supervised/LM model on its
splits."""


def _cmd_plot_memory(args: argparse.Namespace) -> int:
    from fwmrl.memory_plot import plot_memory
    from fwmrl.rundir import load_run_config

    load_run_config(args.run_dir)  # a clear error for a folder that is not a run
    out = plot_memory(args.run_dir, args.output, text=args.input, steps=args.steps)
    print(out)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from fwmrl.plots import plot_runs
    from fwmrl.rundir import load_run_config

    configs = [load_run_config(run_dir) for run_dir in args.run_dirs]  # clear errors first
    if not args.no_references:  # the plot only reads them: compute what is missing here
        from fwmrl.agents.job import run_references

        for run_dir, config in zip(args.run_dirs, configs, strict=True):
            if config.task.kind == "rl":
                run_references(run_dir, config)
    out = plot_runs(
        args.run_dirs,
        args.output,
        references=not args.no_references,
        title=args.title,
        x=args.x,
    )
    print(out)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from fwmrl.results import export_run

    print(export_run(args.run_dir, args.output))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from fwmrl.plots import X_AXES, plot_seed_bands
    from fwmrl.results import seed_groups, seed_table

    column, x_label = X_AXES[args.x]
    groups = seed_groups(args.csvs, x=column)
    parameters = (
        {g.label: _policy_parameters(g.paths[0].with_suffix(".yaml")) for g in groups}
        if args.parameters
        else None
    )
    print(seed_table(groups, random=args.random, oracle=args.oracle, parameters=parameters))
    if args.plot:
        references = {
            name: value
            for name, value in (("random", args.random), ("oracle", args.oracle))
            if value is not None
        }
        print(plot_seed_bands(groups, args.plot, x_label, references, args.title))
    return 0


def _policy_parameters(config_path: Path) -> int:
    """The parameter count of the policy an exported run's config builds (on its eval env)."""
    from fwmrl.agents.job import make_eval_env, policy_from_config
    from fwmrl.config import load_config

    config = load_config(config_path)
    env = make_eval_env(config, 1)
    try:
        return sum(p.numel() for p in policy_from_config(config, env).parameters())
    finally:
        env.close()


def _cmd_sweep(args: argparse.Namespace) -> int:
    from fwmrl.sweep import load_sweep, new_sweep_dir, run_sweep

    spec, base = load_sweep(args.sweep)
    spec.overrides = [*spec.overrides, *args.overrides]
    if args.samples is not None:
        spec.samples = args.samples
    if args.seeds is not None:
        spec.seeds = args.seeds
    if args.overrides:
        from fwmrl.sweep import check_space

        check_space(spec, base)
    out = Path(args.output) if args.output else new_sweep_dir(spec.name or "sweep")
    print(f"sweep directory: {out}", file=sys.stderr)
    summary = run_sweep(
        spec, base, out, address=args.address, num_cpus=args.num_cpus, verbose=args.verbose
    )
    print(Path(summary["results"]).read_text())
    print(json.dumps({k: v for k, v in summary.items() if k != "best"}, indent=2))
    return 0


def _cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from fwmrl.envs import ENV_IDS, EXTRA_ENV_IDS
    from fwmrl.envs.registration import SINGLE_ENV_SPECS

    for env_id in (*ENV_IDS, *SINGLE_ENV_SPECS):
        doc = (gym.spec(env_id).entry_point or "").split(":")[-1]
        print(f"{env_id:20s} {doc}")
    for env_id in EXTRA_ENV_IDS:
        doc = (gym.spec(env_id).entry_point or "").split(":")[-1]
        print(f"{env_id:20s} {doc}  (RL^2 trials; pip install 'fwmrl[metaworld]')")
    print("Any Gymnasium id also works whose observations are Box, Discrete, MultiDiscrete,")
    print("MultiBinary, Dict or Tuple and whose actions are Discrete, MultiDiscrete, MultiBinary")
    print("or Box, e.g. MiniGrid-MemoryS7-v0 (observations flattened), CartPole-v1, Pendulum-v1.")
    return 0


_TRAIN_EPILOG = """\
overrides (KEY=VALUE, after the config file; values are read as YAML):
  train.total_steps=200000          a number
  core.memory_size=8 core.read_hops=1
  env.kwargs='{size: 7, max_steps: 100}'   a mapping (quote it for the shell)
  policy.encoder_sizes='[64, 64]'   a list
  logging.wandb=offline             disabled (default) | offline | online
  a key that does not exist, or a bad value, exits with status 2 and names the key.

examples:
  fwmrl train configs/gridworld_fwm.yaml --run-dir runs/a train.total_steps=200000
  fwmrl train --resume runs/a train.total_steps=400000
data-parallel (A2C and the supervised/LM trainers; gloo on CPU, nccl on GPU):
  torchrun --nproc_per_node=2 -m fwmrl train configs/graphnav_fwm_paper.yaml --run-dir runs/g
  (each process steps env.num_envs / N envs; rank 0 writes the run; resume on any N dividing it)
threads: torch uses train.num_threads (default 1, fastest for fwmrl's small models);
  FWMRL_NUM_THREADS overrides it for the Python API, the examples and the SB3 policies.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fwmrl`` command."""
    parser = argparse.ArgumentParser(
        prog="fwmrl", description="Meta-RL with fast-weight memory: train, evaluate, plot."
    )
    parser.add_argument("--version", action="version", version=f"fwmrl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train an A2C agent from a config (or resume a run)",
        description="Train from a config file, or continue a run from its last checkpoint.",
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "items",
        nargs="*",
        metavar="CONFIG|KEY=VALUE",
        help="a config file (configs/*.yaml), then any number of dotted overrides",
    )
    train.add_argument("--run-dir", help="run directory (default runs/<config>-<time>)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its checkpoint")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="evaluate a run's last (or best) checkpoint")
    ev.add_argument("run_dir")
    ev.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    ev.add_argument("--episodes", type=int, default=32)
    ev.add_argument("--seed", type=int, default=12345)
    ev.add_argument("--deterministic", action="store_true", help="take the argmax action")
    ev.add_argument("--gif", metavar="OUT.gif", help="also record one episode as a GIF")
    ev.add_argument(
        "--splits",
        nargs="+",
        default=["valid", "test"],
        choices=["train", "valid", "test"],
        help="supervised/LM runs: the splits to evaluate",
    )
    ev.add_argument(
        "--checkpoint",
        choices=["last", "best"],
        default="last",
        help="last: checkpoint.pt; best: best.pt, the best validation headline metric "
        "(supervised/LM runs only)",
    )
    ev.set_defaults(func=_cmd_eval)

    plot = sub.add_parser("plot", help="learning curves of runs on one figure")
    plot.add_argument("run_dirs", nargs="+")
    plot.add_argument("-o", "--output", default="curves.png")
    plot.add_argument("--no-references", action="store_true")
    plot.add_argument("--title", help="figure title (default: the env ids or task kinds)")
    plot.add_argument(
        "--x",
        choices=["env_steps", "updates", "wall_time", "cpu_time"],
        default=None,
        help="x axis: environment steps (RL default), updates (optimizer steps: the supervised "
        "default), wall_time (time_s) or cpu_time (cpu_time_s, process CPU seconds); times add "
        "up over resumes",
    )
    plot.set_defaults(func=_cmd_plot)

    pm = sub.add_parser(
        "plot-memory",
        help="similarity of write keys and written values across time steps (FWM, MNM runs)",
    )
    pm.add_argument("run_dir")
    pm.add_argument(
        "--input",
        help="tokens to read (retrieval: symbols like 'ab=c;?ab.'; catbabi/lm: words); "
        "default: the start of the validation stream",
    )
    pm.add_argument("--steps", type=int, default=40, help="steps of the default input")
    pm.add_argument("-o", "--output", default=None, help="PNG path (default RUN_DIR/memory.png)")
    pm.set_defaults(func=_cmd_plot_memory)

    ex = sub.add_parser(
        "export",
        help="a run's evaluation history as CSV (+ its config) for docs/results/",
    )
    ex.add_argument("run_dir")
    ex.add_argument("-o", "--output", required=True, help="CSV path; the config goes beside it")
    ex.set_defaults(func=_cmd_export)

    cp = sub.add_parser(
        "compare",
        help="exported runs grouped by agent over seeds: final return mean ± std, band curves",
    )
    cp.add_argument("csvs", nargs="+", metavar="CSV", help="`fwmrl export` CSVs (config beside)")
    cp.add_argument(
        "--x", default="env_steps", choices=["env_steps", "updates", "wall_time", "cpu_time"]
    )
    cp.add_argument("--random", type=float, default=None, help="random policy's return")
    cp.add_argument("--oracle", type=float, default=None, help="oracle's return")
    cp.add_argument("--plot", default=None, metavar="PNG", help="curves with a ± std band")
    cp.add_argument(
        "--parameters",
        action="store_true",
        help="add each agent's policy parameter count (builds the policy from its config)",
    )
    cp.add_argument("--title", default=None)
    cp.set_defaults(func=_cmd_compare)

    sw = sub.add_parser(
        "sweep", help="hyper-parameter sweep / several seeds on Ray Tune (pip install fwmrl[sweep])"
    )
    sw.add_argument("sweep", metavar="SWEEP.yaml", help="e.g. configs/sweeps/gridworld.yaml")
    sw.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="fixed for every trial")
    sw.add_argument("--output", help="sweep directory (default runs/sweeps/<name>-<time>)")
    sw.add_argument(
        "--address",
        help="an existing Ray cluster (auto, HOST:6379 or ray://HOST:10001); default: local Ray",
    )
    sw.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    sw.add_argument("--samples", type=int, help="override the sweep file's samples")
    sw.add_argument("--seeds", type=int, help="override the sweep file's seeds per point")
    sw.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Ray Tune output")
    sw.set_defaults(func=_cmd_sweep)

    envs = sub.add_parser("envs", help="list the registered fwmrl env ids")
    envs.set_defaults(func=_cmd_envs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fwmrl``; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # positionals after an option (``train CONFIG --run-dir D key=value``) land in ``extra``
    unknown = [x for x in extra if x.startswith("-")]
    if unknown or (extra and args.command not in ("train", "eval", "sweep")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        if args.command == "train":
            args.items += extra
        else:
            args.overrides += extra
    if args.command == "sweep" and any(
        n is not None and n < 1 for n in (args.samples, args.seeds, args.num_cpus)
    ):
        parser.error("--samples, --seeds and --num-cpus must be positive integers")
    if args.command == "eval" and args.episodes < 1:
        parser.error(f"--episodes must be a positive integer, got {args.episodes}")
    try:
        return int(args.func(args))
    except (ConfigError, RunError, SweepError) as error:
        print(f"fwmrl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fwmrl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (``fwmrl compare ... | head``): stop quietly, and point
        # stdout at /dev/null so the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
