"""FWM's acting step against ``torch.nn.LSTMCell(256)``, interleaved in each process.

    python benchmarks/acting_step.py [--batch 1 64] [--processes 5] [--baseline REV]
        [--state factors|dense] [--memory-size 32] [--hidden-size 256]

The reference size of the core benchmark (LSTM 256 + m 32, N_r 3; ``--hidden-size``,
``--memory-size``): ``FWMCore.step`` over a 64-step episode from ``initial_episode_state`` (the
fast weights as factors, as A2C and PPO episodes start; ``--state dense``: from ``initial_state``'s
dense ``F``, as steps past ``lowrank_max_writes`` run) and an ``nn.LSTMCell`` of the same size over
the same inputs, timed in turns inside one process (three rounds of
20 episodes each, CPU time of one thread), so a burst of load on this shared machine hits both.
Each of ``--processes`` fresh processes reports the median of its rounds; the table gives the
median over the processes and their range. With ``--baseline REV`` the processes alternate
between the working tree's ``fwmrl/`` and that revision's. ``benchmarks/cores.py`` times its
rows one after another, so its acting-step ratio at small batches moves with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _revision import ROOT, revision, source_tree  # noqa: E402

STEPS, EPISODES, ROUNDS = 64, 20, 3


def measure(batch: int, state_form: str, hidden: int, memory: int) -> dict[str, float]:
    """µs per step of the FWM core and of the LSTM cell, the medians of interleaved rounds."""
    import torch

    from fwmrl.memory import make_core

    torch.set_num_threads(1)
    torch.manual_seed(0)
    core = make_core("fwm", input_size=256, hidden_size=hidden, memory_size=memory, read_hops=3)
    cell = torch.nn.LSTMCell(256, hidden)
    x = torch.randn(STEPS, batch, 256)
    start_state = core.initial_episode_state if state_form == "factors" else core.initial_state

    def fwm() -> None:
        state = start_state(batch, "cpu")
        for t in range(STEPS):
            _, state = core.step(x[t], state)

    def lstm_cell() -> None:
        h = c = torch.zeros(batch, hidden)
        for t in range(STEPS):
            h, c = cell(x[t], (h, c))

    times: dict[str, list[float]] = {"fwm": [], "lstm_cell": []}
    with torch.no_grad():
        fwm(), lstm_cell()  # warm-up (the kernels' first call, the allocator)
        for _ in range(ROUNDS):
            for name, episode in (("fwm", fwm), ("lstm_cell", lstm_cell)):
                start = time.process_time()
                for _ in range(EPISODES):
                    episode()
                times[name].append((time.process_time() - start) / EPISODES / STEPS * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def run_process(batch: int, tree: Path | None, args: argparse.Namespace) -> dict[str, float]:
    """:func:`measure` in a fresh process importing ``fwmrl`` from ``tree`` (None: this one)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(tree or ROOT)
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one",
            str(batch),
            "--state",
            args.state,
            "--hidden-size",
            str(args.hidden_size),
            "--memory-size",
            str(args.memory_size),
        ],
        env=env,
        cwd=tempfile.gettempdir(),  # so that `fwmrl` is imported from PYTHONPATH
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"acting-step process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32, 64])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--baseline", help="revision whose fwmrl/ is timed too (alternated)")
    parser.add_argument("--state", choices=["factors", "dense"], default="factors")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--memory-size", type=int, default=32)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.state, args.hidden_size, args.memory_size)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"now": None}
        if args.baseline:
            trees[args.baseline] = source_tree(args.baseline, Path(tmp), ("fwmrl",))
        print(
            f"commit {revision('benchmarks/acting_step.py')}: FWM d={args.hidden_size} "
            f"m={args.memory_size} Nr=3 step from {args.state} vs LSTMCell({args.hidden_size}), "
            f"{STEPS}-step episodes, 1 thread, CPU time, {args.processes} processes per cell "
            "(median [min–max] of their medians)\n"
        )
        print("| fwmrl | B | FWM µs/step | LSTMCell µs/step | FWM / LSTMCell |")
        print("|---|---:|---:|---:|---:|")
        for batch in args.batch:
            results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            for _ in range(args.processes):
                for name, tree in trees.items():
                    results[name].append(run_process(batch, tree, args))
            for name, rows in results.items():
                ratios = [r["fwm"] / r["lstm_cell"] for r in rows]
                cells = [
                    f"{statistics.median(v):.{digits}f} [{min(v):.{digits}f}–{max(v):.{digits}f}]"
                    for v, digits in (
                        ([r["fwm"] for r in rows], 1),
                        ([r["lstm_cell"] for r in rows], 1),
                        (ratios, 2),
                    )
                ]
                print(f"| {name} | {batch} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
