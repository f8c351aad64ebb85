"""Training throughput of fwmrl's A2C: the meta-RL targets side by side with the code before the
speed work, and (``--sb3``) fwmrl next to SB3 and sb3-contrib, in one run.

    .venv/bin/python benchmarks/throughput.py [--baseline REV] [--repeats 2] [--threads 1]
    .venv/bin/python benchmarks/throughput.py --sb3 [--envs 64] [--steps 50000] [--ppo-steps 4096]
    .venv/bin/python benchmarks/throughput.py --distributed 2 [--only graphnav_fwm_paper ...]
    .venv/bin/python benchmarks/throughput.py --kernel-ab 8 [--only graphnav_fwm_paper ...]

Target rows (issue 12): A2C training updates (collect + returns + forward/backward + Adam) of
``configs/graphnav_fwm_paper.yaml`` (FWM, 600 envs, full-episode BPTT), ``graphnav_lstm.yaml``
(LSTM 128) and the gridworld configs of FWM, MNM-p and gated FW (64 envs, 20-step truncated BPTT).
Every row runs in a fresh process, alternately on the working tree ("now") and on ``--baseline``
(a revision extracted with ``git archive`` into a temporary folder: today's implementation before
the speed work), ``--repeats`` times each; the table shows the best of the repeats and their ratio,
in wall-clock time and in the process's CPU time (``time.process_time``: on a machine shared with
other jobs the time the update itself computed, without the waits for a core).
FWM rows also run the working tree with ``core.state_form=dense`` (the dense fast-weight tensor
instead of its low-rank factors), FWM, gated-FW and MNM-p rows with ``core.kernel=eager`` (PyTorch
operations instead of the C kernels of ``fwmrl/memory/fwm_kernel.py``; its column is that run's
CPU-time ratio). The profile line splits the working tree's update: collect
(policy steps and sampling), env steps, learn forward (returns, forward and loss), backward and
optimizer (gradient clipping and Adam).

SB3 rows (all training, env steps per second, one torch thread, ``--envs`` envs):
fwmrl A2C with the fwm and lstm cores (``configs/gridworld_<core>.yaml``, batched NumPy env),
sb3-contrib ``RecurrentPPO`` + ``MlpLstmPolicy`` and SB3 ``A2C`` + ``MlpPolicy`` (``DummyVecEnv`` of
the single env, SB3's default hyper-parameters). Each row trains for ``--steps`` env steps after a
warm-up (RecurrentPPO, which is about 300 times slower, for ``--ppo-steps`` after one rollout); the
printed table has each row's ratio to sb3-contrib's RecurrentPPO.

Data-parallel rows (``--distributed N``): the same A2C updates of each target config with the
global ``env.num_envs`` of the config, on one process and on ``N`` processes of a gloo process
group (each stepping ``num_envs / N`` envs, gradients all-reduced: what ``torchrun
--nproc_per_node=N -m fwmrl train`` runs), ``--threads`` torch threads per process, alternating in
the same run; the rate is the global env steps over the slowest rank's wall time of the timed
updates (``FWMRL_BENCH_PROFILE=DIR``: every process also writes a :mod:`cProfile` file of its
timed updates, timed by its main thread's CPU clock, into ``DIR``). The speed-up can only show
when ``N`` cores are idle: the table's header gives the load
average before and after, then the ceiling on ``N`` idle cores, ``N`` times the rate of one process
that steps ``num_envs / N`` envs (a rank's own work, without communication), and last the ratio
that ``N`` such processes reach together when they run side by side without a process group (the
ceiling on this machine, where processes on different cores also slow each other down). The side
by side processes start their timed updates together (a file barrier) and keep training until
every one has timed its own, so that their timed windows overlap completely. The second table
splits rank 0's CPU time by thread (``/proc/self/task``: the main thread, gloo's threads) next to
the CPU time of one side-by-side process for the same envs and updates.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _revision import revision as commit_label  # benchmarks/_revision.py (run as a script)
from _revision import source_tree

ROOT = Path(__file__).resolve().parents[1]
ENV_KWARGS = {"size": 5, "view": 3, "max_steps": 50}
BASELINE = "7e49fde"
"""The last commit before the speed work of issue 12 (dense FWM acting and learning paths)."""

TARGETS: list[tuple[str, str, list[str], int, float]] = [
    # label, config, extra overrides, updates per measurement, target ratio
    ("GraphNav paper protocol, FWM (600 envs, episode BPTT)", "graphnav_fwm_paper", [], 6, 4.0),
    ("GraphNav paper protocol, LSTM 128", "graphnav_lstm", [], 6, 2.0),
    ("Gridworld FWM (64 envs, n_steps 20)", "gridworld_fwm", [], 40, 2.0),
    ("Gridworld MNM-p", "gridworld_mnm_p", [], 40, 2.0),
    ("Gridworld gated FW", "gridworld_gated_fw", [], 40, 2.0),
]
PARTS = ["collect", "env", "learn forward", "backward", "optimizer"]


def worker(config: str, overrides: list[str], updates: int, warmup: int) -> dict[str, Any]:
    """Train ``updates`` A2C updates of ``config`` after ``warmup`` ones; env steps per second and
    the seconds spent in each of :data:`PARTS` (timers wrapped around the env, backward and the
    optimizer; collect and learn forward are the rest of collecting and of learning)."""
    try:
        from fwmrl.agents.job import build_agent
    except ImportError:  # a revision before the trainers took objects: A2C(config)
        from fwmrl.agents import A2C as build_agent
    from fwmrl.config import load_config

    config_ = load_config(
        Path("configs") / f"{config}.yaml",
        [*overrides, "logging.wandb=disabled", "train.progress=false"],
    )
    agent = build_agent(config_)
    spent = dict.fromkeys(["env", "backward", "optimizer"], 0.0)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return call

    agent.env.step = timed("env", agent.env.step)
    agent.optimizer.step = timed("optimizer", agent.optimizer.step)
    torch.Tensor.backward = timed("backward", torch.Tensor.backward)
    clip = torch.nn.utils.clip_grad_norm_
    torch.nn.utils.clip_grad_norm_ = timed("optimizer", clip)
    for _ in range(warmup):
        agent.learn_update()
    spent.update(dict.fromkeys(spent, 0.0))
    collect = learn = 0.0
    steps = agent.env_steps
    cpu_start = time.process_time()
    for _ in range(updates):
        start = time.perf_counter()
        rollout = agent.collect_rollout()
        middle = time.perf_counter()
        agent.train_on_rollout(rollout)
        collect += middle - start
        learn += time.perf_counter() - middle
    cpu = time.process_time() - cpu_start
    parts = {
        "collect": collect - spent["env"],
        "env": spent["env"],
        "learn forward": learn - spent["backward"] - spent["optimizer"],
        "backward": spent["backward"],
        "optimizer": spent["optimizer"],
    }
    done = agent.env_steps - steps
    return {"rate": done / (collect + learn), "cpu_rate": done / cpu, "parts": parts}


COLLECTIVES = ("all_reduce_sum", "any_rank", "all_gather_objects", "broadcast_object")
"""The :mod:`fwmrl.distributed` calls the A2C makes during an update (timed by the worker, with
``EpisodeEnds.finish``; a revision before it: ``any_rank_started``, not timed)."""


def data_parallel_worker(
    config: str, overrides: list[str], updates: int, warmup: int
) -> dict[str, float]:
    """:func:`worker`'s updates on this rank of a ``torchrun``-style process group (the
    ``RANK``/``WORLD_SIZE``/``MASTER_*`` variables; one process without them). Returns the global
    env steps per second of the timed updates (the same on every rank) and this rank's split of
    their wall time: ``cpu`` (its process CPU time), ``comm`` (wall time inside the collectives,
    waiting for the other ranks included) and ``wall``."""
    from fwmrl import distributed

    try:
        from fwmrl.agents.job import build_agent
    except ImportError:  # a revision before the trainers took objects: A2C(config)
        from fwmrl.agents import A2C as build_agent
    from fwmrl.config import load_config

    distributed.init_distributed("cpu")
    config_ = load_config(
        Path("configs") / f"{config}.yaml",
        [*overrides, "logging.wandb=disabled", "train.progress=false"],
    )
    agent = build_agent(config_)
    for _ in range(warmup):
        agent.learn_update()
    spent = {"comm": 0.0}

    def timed(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent["comm"] += time.perf_counter() - start

        return call

    for name in COLLECTIVES:
        setattr(distributed, name, timed(getattr(distributed, name)))
    ends = getattr(
        distributed, "EpisodeEnds", None
    )  # (a revision before it: a collective per step)
    if ends is not None:
        ends.finish = timed(ends.finish)
    meet = os.environ.get("FWMRL_BENCH_MEET")  # independent processes: start together
    if meet:
        file_barrier(meet, "start")
    distributed.barrier()
    profile_dir = os.environ.get("FWMRL_BENCH_PROFILE")  # the main thread's CPU time by function
    profiler = cProfile.Profile(time.thread_time) if profile_dir else None
    threads_before = thread_cpu()
    start, steps, cpu = time.perf_counter(), agent.env_steps, time.process_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(updates):
        agent.learn_update()
    if profiler is not None:
        profiler.disable()
        role = f"rank{distributed.rank()}of{distributed.world_size()}-{agent.num_envs}envs"
        profiler.dump_stats(Path(profile_dir, f"{config}-{role}-{os.getpid()}.prof"))
    cpu = time.process_time() - cpu
    threads = thread_cpu_spent(threads_before, thread_cpu())
    distributed.barrier()  # the slowest rank's time
    wall = time.perf_counter() - start
    rate = (agent.env_steps - steps) / wall
    if meet:  # keep the core busy until every process has timed its updates
        file_barrier(meet, "done", agent.learn_update)
    agent.close()
    distributed.shutdown()
    return {"rate": rate, "cpu": cpu, "comm": spent["comm"], "wall": wall, "threads": threads}


def file_barrier(folder: str, name: str, work: Callable[[], Any] | None = None) -> None:
    """Wait until all ``FWMRL_BENCH_NPROC`` processes sharing ``folder`` have reached the barrier
    ``name`` (a file per process); ``work`` is called while waiting (to keep this core loaded)."""
    total = int(os.environ["FWMRL_BENCH_NPROC"])
    Path(folder, f"{name}-{os.getpid()}").touch()
    while len(list(Path(folder).glob(f"{name}-*"))) < total:
        if work is None:
            time.sleep(0.001)
        else:
            work()


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every thread of this process, ``{tid: (name, seconds)}``
    (``/proc/self/task/*/stat``; empty where there is no ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    result = {}
    for task in Path("/proc/self/task").glob("*"):
        try:
            text = (task / "stat").read_text()
        except OSError:  # the thread ended
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        result[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return result


def thread_cpu_spent(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds spent between two :func:`thread_cpu` readings: the main thread (``main``) and
    the others summed by thread name."""
    spent: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        key = "main" if tid == os.getpid() else name
        spent[key] = spent.get(key, 0.0) + seconds - before.get(tid, (name, 0.0))[1]
    return spent


def run_data_parallel(
    config: str,
    updates: int,
    nproc: int,
    threads: int,
    overrides: list[str] | None = None,
    group: bool = True,
) -> dict[str, float]:
    """:func:`data_parallel_worker` on ``nproc`` fresh processes at once (one: no process group),
    rank 0's result; ``group=False`` runs them as independent one-process jobs side by side, and
    ``rates`` holds every process's own rate."""
    code = (
        "import json, sys, torch; sys.path.insert(0, sys.argv[1]); import throughput as b; "
        "c, o, u, t = json.loads(sys.argv[2]); torch.set_num_threads(t); "
        "print('RESULT', json.dumps(b.data_parallel_worker(c, o, u, 1)))"
    )
    request = json.dumps([config, overrides or [], updates, threads])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ranks = []
    meet = tempfile.mkdtemp(prefix="fwmrl-meet-")  # independent processes start together
    for rank in range(nproc):
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
        }
        if nproc > 1 and not group:
            env.update(FWMRL_BENCH_MEET=meet, FWMRL_BENCH_NPROC=str(nproc))
        if nproc > 1 and group:
            env.update(
                RANK=str(rank),
                LOCAL_RANK=str(rank),
                WORLD_SIZE=str(nproc),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
            )
        ranks.append(
            subprocess.Popen(
                [sys.executable, "-c", code, str(Path(__file__).parent), request],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [rank.communicate() for rank in ranks]
    shutil.rmtree(meet, ignore_errors=True)
    results = []
    for (out, err), rank in zip(outputs, ranks, strict=True):
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if rank.returncode or not lines:
            raise RuntimeError(f"{config} on {nproc} processes failed:\n{err[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT ") :]))
    return {**results[0], "rates": [r["rate"] for r in results], "processes": results}


def data_parallel(nproc: int, repeats: int, threads: int, only: list[str] | None) -> None:
    """Env steps/s of the target configs on one process and on ``nproc``, their ratio, and the
    ceiling of that ratio on ``nproc`` idle cores: ``nproc`` times the rate of one process that
    steps only ``num_envs / nproc`` envs (a rank's work without communication or waiting)."""
    commit = commit_label("benchmarks/throughput.py")
    load_before = os.getloadavg()
    rows = [row for row in TARGETS if only is None or row[1] in only]
    table = []
    for label, config, _, updates, _ in rows:
        num_envs = load_config_file(config)["env"]["num_envs"]
        share = [f"env.num_envs={num_envs // nproc}"]
        best = {name: {"rate": 0.0} for name in ("one", "many", "share", "side")}
        runs = {  # name: (processes, overrides, process group)
            "one": (1, None, True),
            "many": (nproc, None, True),
            "share": (1, share, True),
            "side": (nproc, share, False),
        }
        for _ in range(repeats):
            for name, (n, extra, group) in runs.items():
                result = run_data_parallel(config, updates, n, threads, extra, group)
                if name == "side":  # all of them together, each at its own pace
                    result["rate"] = sum(result["rates"])
                if result["rate"] > best[name]["rate"]:
                    best[name] = result
        table.append((label, best["one"], best["many"], best["share"], best["side"]))
        print(
            f"{label}: 1 process {best['one']['rate']:,.0f}, {nproc}: {best['many']['rate']:,.0f}",
            file=sys.stderr,
        )
    load_after = os.getloadavg()
    print(
        f"Data-parallel A2C, env steps/s (global env.num_envs of each config), best of {repeats} "
        f"fresh runs per cell, {threads} torch thread(s) per process, {os.cpu_count()} CPUs, "
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"torch {torch.__version__}, commit {commit}\n"
    )
    print(
        f"| row | 1 process | {nproc} processes | × | target | × on {nproc} idle cores, at most "
        f"| × of {nproc} independent processes side by side |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, one, many, alone, side in table:
        print(
            f"| {label} | {one['rate']:,.0f} | {many['rate']:,.0f} | "
            f"{many['rate'] / one['rate']:.2f} | ≥ 1.7× | {nproc * alone['rate'] / one['rate']:.2f} "
            f"| {side['rate'] / one['rate']:.2f} |"
        )
    print(
        f"\nThe last column: {nproc} one-process jobs of num_envs / {nproc} envs each with no "
        "process group, their timed updates started together and overlapping throughout; the sum "
        "of their rates over the one-process rate is the ceiling on this machine when the "
        "processes slow each other down (shared caches, memory bandwidth, a hypervisor's "
        "scheduling) but never wait for each other."
    )
    print(
        f"\nWhere rank 0's time goes ({nproc} processes): its CPU time, of it the main thread's "
        "and gloo's threads', and the wall time inside fwmrl.distributed calls (waiting for the "
        f"other ranks included), against one process stepping the same num_envs / {nproc} envs "
        f"alone (the other cores idle) and side by side with {nproc - 1} other such processes.\n"
    )
    print(
        "| row | wall s | rank 0 CPU s | main thread s | gloo threads s | in collectives s "
        "| the same envs alone, CPU s | side by side, CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, _, many, alone, side in table:
        threads = many.get("threads", {})
        main = threads.get("main", 0.0)
        gloo = sum(v for k, v in threads.items() if k != "main")
        print(
            f"| {label} | {many['wall']:.2f} | {many['cpu']:.2f} | {main:.2f} | {gloo:.2f} | "
            f"{many['comm']:.2f} | {alone['cpu']:.2f} | {side['cpu']:.2f} |"
        )


def has_kernels(config: str) -> bool:
    """Whether the core of a target config has ``core.kernel`` (FWM, gated FW, MNM-p)."""
    return any(name in config for name in ("fwm", "gated_fw", "mnm_p"))


def kernel_ab(updates: int, only: list[str] | None) -> None:
    """The C kernels' own gain: per FWM, gated-FW or MNM-p target config, two agents in this process (one with
    ``core.kernel=auto``, one with ``core.kernel=eager``) alternate ``updates`` updates each after
    two warm-up updates; env steps per second of process CPU time and their ratio. Both variants
    see the same machine load, which the fresh-process table cannot promise."""
    from fwmrl.agents.job import build_agent
    from fwmrl.config import load_config

    rows = [row for row in TARGETS if has_kernels(row[1]) and (only is None or row[1] in only)]
    print("| row | kernels, env steps/CPU s | eager, env steps/CPU s | × |")
    print("|---|---:|---:|---:|")
    for label, config, overrides, row_updates, _ in rows:
        agents = {
            kernel: build_agent(
                load_config(
                    ROOT / "configs" / f"{config}.yaml",
                    [*overrides, f"core.kernel={kernel}", "logging.wandb=disabled"],
                )
            )
            for kernel in ("auto", "eager")
        }
        spent, steps = dict.fromkeys(agents, 0.0), dict.fromkeys(agents, 0)
        for agent in agents.values():
            for _ in range(2):
                agent.learn_update()
        for _ in range(updates or row_updates):
            for kernel, agent in agents.items():
                start, before = time.process_time(), agent.env_steps
                agent.learn_update()
                spent[kernel] += time.process_time() - start
                steps[kernel] += agent.env_steps - before
        rate = {kernel: steps[kernel] / spent[kernel] for kernel in agents}
        print(
            f"| {label} | {rate['auto']:,.0f} | {rate['eager']:,.0f} | "
            f"{rate['auto'] / rate['eager']:.3f} |"
        )


def load_config_file(config: str) -> dict[str, Any]:
    """``configs/<config>.yaml`` as a dict (the global ``env.num_envs`` of a row)."""
    from fwmrl.config import load_config

    return load_config(ROOT / "configs" / f"{config}.yaml").to_dict()


def run_worker(
    tree: Path, config: str, overrides: list[str], updates: int, threads: int
) -> dict[str, Any]:
    """:func:`worker` in a fresh process that imports fwmrl from ``tree``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    request = json.dumps([config, overrides, updates, threads])
    code = (
        "import json, sys, torch; sys.path.insert(0, sys.argv[1]); import throughput as b; "
        "c, o, u, t = json.loads(sys.argv[2]); torch.set_num_threads(t); "
        "print('RESULT', json.dumps(b.worker(c, o, u, 1)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), request],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{config} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def targets(
    baseline: str, repeats: int, threads: int, only: list[str] | None, dense: bool = True
) -> None:
    """Measure :data:`TARGETS` now and at ``baseline`` and print the table and profile lines
    (``dense``: FWM rows also with ``core.state_form=dense``)."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "fwmrl", "configs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    rows = [row for row in TARGETS if only is None or row[1] in only]
    table, profiles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = source_tree(baseline, Path(tmp))
        for label, config, overrides, updates, target in rows:
            variants = {"before": (before_tree, overrides), "now": (ROOT, overrides)}
            if "fwm" in config and dense:
                variants["now, dense F"] = (ROOT, [*overrides, "core.state_form=dense"])
            if has_kernels(config) and dense:
                variants["now, eager"] = (ROOT, [*overrides, "core.kernel=eager"])
            best: dict[str, dict[str, Any]] = {}
            best_cpu: dict[str, float] = {}
            for _ in range(repeats):
                for name, (tree, extra) in variants.items():
                    result = run_worker(tree, config, extra, updates, threads)
                    if name not in best or result["rate"] > best[name]["rate"]:
                        best[name] = result
                    best_cpu[name] = max(best_cpu.get(name, 0.0), result["cpu_rate"])
            before, now = best["before"]["rate"], best["now"]["rate"]
            dense_rate = best.get("now, dense F", {}).get("rate")
            cpu_ratio = best_cpu["now"] / best_cpu["before"]
            eager_ratio = best_cpu.get("now, eager", 0.0) / best_cpu["before"]
            table.append((label, before, now, cpu_ratio, dense_rate, eager_ratio, target))
            parts = best["now"]["parts"]
            total = sum(parts.values())
            profiles.append(
                (label, ", ".join(f"{p} {100 * parts[p] / total:.0f}%" for p in PARTS), total)
            )
            print(f"{label}: before {before:,.0f}, now {now:,.0f} env steps/s", file=sys.stderr)
    print(
        f"A2C training throughput, env steps/s, best of {repeats} fresh processes per cell, "
        f"{threads} torch thread(s), torch {torch.__version__}; now = commit {commit}"
        f"{' + uncommitted changes' if dirty else ''}, before = {baseline}\n"
    )
    print(
        "| row | before | now | × | × (CPU time) | target | now, dense F "
        "| × (CPU time), now without the C kernels |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, before, now, cpu_ratio, dense_rate, eager_ratio, target in table:
        dense_cell = "" if dense_rate is None else f"{dense_rate:,.0f} ({dense_rate / before:.1f}×)"
        eager_cell = f"{eager_ratio:.2f}" if eager_ratio else ""
        print(
            f"| {label} | {before:,.0f} | {now:,.0f} | {now / before:.2f} | {cpu_ratio:.2f} "
            f"| ≥ {target:g}× | {dense_cell} | {eager_cell} |"
        )
    print("\nProfile of the working tree's update (share of its time):\n")
    for label, line, _ in profiles:
        print(f"- {label}: {line}")


def fwmrl_a2c(core: str, envs: int) -> Callable[[int], int]:
    try:
        from fwmrl.agents.job import build_agent
    except ImportError:  # a revision before the trainers took objects: A2C(config)
        from fwmrl.agents import A2C as build_agent
    from fwmrl.config import load_config

    config = load_config(
        ROOT / f"configs/gridworld_{core}.yaml",
        [f"env.num_envs={envs}", "logging.wandb=disabled", "train.progress=false"],
    )
    agent = build_agent(config)

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
    parser.add_argument("--sb3", action="store_true", help="the SB3/sb3-contrib comparison")
    parser.add_argument("--baseline", default=BASELINE, help="revision to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=[row[1] for row in TARGETS])
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--ppo-steps", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--no-dense",
        action="store_true",
        help="skip the FWM rows' 'now, dense F' and the FWM, gated-FW and MNM-p rows' 'without "
        "the C kernels' columns",
    )
    parser.add_argument(
        "--distributed",
        type=int,
        metavar="N",
        help="data-parallel rows: one process against N (gloo) with the same global num_envs",
    )
    parser.add_argument(
        "--kernel-ab",
        type=int,
        metavar="UPDATES",
        help="FWM, gated-FW and MNM-p rows: the C kernels against core.kernel=eager in one "
        "process, UPDATES "
        "alternating updates each (0: the row's own count)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.kernel_ab is not None:
        kernel_ab(args.kernel_ab, args.only)
        return
    if args.distributed is not None and args.distributed < 2:
        parser.error(f"--distributed: give 2 or more processes, got {args.distributed}")
    if args.distributed:
        data_parallel(args.distributed, args.repeats, args.threads, args.only)
        return
    if not args.sb3:
        targets(args.baseline, args.repeats, args.threads, args.only, not args.no_dense)
        return

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
