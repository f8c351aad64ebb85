"""Speed and memory of every memory core at its reference sizes, against ``torch.nn.LSTM(256)``.

    python benchmarks/cores.py                       # all cores, B = 32, T = 64, CPU
    python benchmarks/cores.py --fwm-impl naive checkpoint --device cuda
    python benchmarks/cores.py --only fwm --baseline REV  # also each row's times at REV

With ``--baseline REV`` every selected row's times are also measured with ``fwmrl/`` of revision
``REV`` (extracted with ``git archive``, imported through ``PYTHONPATH``), the two processes
alternated, and a second table gives now / before for each time.

Each row runs in fresh subprocesses (one for times, one for memory) so that its peak memory is its
own. Columns: forward time per
step (no grad, whole window), training time per step (forward + backward of a sum over outputs),
rollout time per step (``step`` called T times with T = 1, no grad, from ``initial_episode_state``
where the core has one, as A2C and PPO act: the RL acting path, against
``torch.nn.LSTMCell(256)``), peak training
memory (on CPU the growth of the process's peak resident set during one training window, with
glibc's dynamic mmap threshold switched off so freed memory goes back to the system; on CUDA
``torch.cuda.max_memory_allocated``), parameters, state floats per sequence, and the ratio of each
to the ``torch.nn.LSTM(256)`` baseline measured in the same run. Rows marked "from a nonzero F"
start every window (and the rollout) from the state after one window, detached, as windows in
the middle of episodes do; the others from the initial state (FWM: ``F = 0``). Times are the
process's CPU time by default (``--clock wall``: elapsed time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from _revision import revision as commit_label  # benchmarks/_revision.py (run as a script)
from torch import nn

from fwmrl.memory import make_core


@dataclass
class Row:
    label: str
    core: str | None  # None: the torch.nn.LSTM baseline
    input_size: int
    kwargs: dict = field(default_factory=dict)
    warm: bool = False  # start every window from the state after one window (a nonzero F)


def rows(fwm_impls: list[str]) -> list[Row]:
    table = [
        Row("torch.nn.LSTM(256) [baseline]", None, 256, {"hidden_size": 256}),
        Row("lstm d=256", "lstm", 256, {"hidden_size": 256}),
    ]
    for impl in fwm_impls:
        table.append(
            Row(
                f"fwm d=256 m=32 Nr=3 [{impl}]",
                "fwm",
                256,
                {"hidden_size": 256, "memory_size": 32, "read_hops": 3, "implementation": impl},
            )
        )
    for impl in fwm_impls:
        table.append(
            Row(
                f"fwm d=256 m=32 Nr=3 [{impl}, from a nonzero F]",
                "fwm",
                256,
                {"hidden_size": 256, "memory_size": 32, "read_hops": 3, "implementation": impl},
                warm=True,
            )
        )
    for impl in fwm_impls:
        table.append(
            Row(
                f"fwm d=32 m=16 Nr=3 [{impl}] (meta-RL)",
                "fwm",
                16,
                {"hidden_size": 32, "memory_size": 16, "read_hops": 3, "implementation": impl},
            )
        )
    table += [
        Row("gated_fw paper (15/40/40/100)", "gated_fw", 15, {}),
    ]
    for rule in ("mnm_g", "mnm_p"):
        table += [
            Row(f"{rule} d=128 H=1 [naive]", rule, 256, {"implementation": "naive"}),
            Row(
                f"{rule} d=128 H=1 [naive, recompute 8]",
                rule,
                256,
                {"implementation": "naive", "recompute_chunk": 8},
            ),
            Row(f"{rule} d=128 H=1 [lowrank]", rule, 256, {"implementation": "lowrank"}),
        ]
    return table


def _rss_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        return int(re.search(rf"{key}:\s+(\d+)", status.read()).group(1))


def measure(
    row: Row, batch: int, steps: int, repeats: int, device: str, clock: str = "cpu"
) -> dict:
    torch.manual_seed(0)
    if row.core is None:
        model: nn.Module = nn.LSTM(row.input_size, row.kwargs["hidden_size"])
    else:
        model = make_core(row.core, input_size=row.input_size, **row.kwargs)
    model = model.to(device)
    x = torch.randn(steps, batch, row.input_size, device=device)
    params = sum(p.numel() for p in model.parameters())
    state_floats = 2 * row.kwargs["hidden_size"] if row.core is None else model.state_numel

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    start = None
    if row.warm:  # the state after one window, detached: windows from the middle of episodes
        with torch.no_grad():
            start = model(x).state

    def forward() -> tuple[torch.Tensor, torch.Tensor | None]:
        result = model(x, start)  # nn.LSTM: (y, (h, c)); a core: CoreOutput(y, state, aux_loss)
        return result[0], getattr(result, "aux_loss", None)

    if row.core is None:
        cell = nn.LSTMCell(row.input_size, row.kwargs["hidden_size"]).to(device)

        def rollout() -> None:
            h = c = torch.zeros(batch, cell.hidden_size, device=device)
            for t in range(steps):
                h, c = cell(x[t], (h, c))

    else:
        # the acting path of A2C and PPO: their episodes start from initial_episode_state (FWM:
        # the fast weights as factors), or the warm row's state
        initial = getattr(model, "initial_episode_state", model.initial_state)

        def rollout() -> None:
            state = start if row.warm else initial(batch, device)
            for t in range(steps):
                _, state = model.step(x[t], state)

    def train() -> None:
        model.zero_grad(set_to_none=True)
        y, aux = forward()
        loss = y.sum()
        if aux is not None:
            loss = loss + aux.mean()
        loss.backward()

    now = time.process_time if clock == "cpu" else time.perf_counter

    def timed(fn) -> float:
        times = []
        for _ in range(repeats):
            sync()
            start = now()
            fn()
            sync()
            times.append(now() - start)
        return statistics.median(times) / steps

    with torch.no_grad():
        forward()
        forward()
        fwd = timed(forward)
        rollout()
        roll = timed(rollout)
    train()
    train()
    trn = timed(train)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        train()
        sync()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        model.zero_grad(set_to_none=True)
        before = _rss_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        train()
        peak = (_rss_kib("VmHWM") - before) * 1024
    return {
        "label": row.label,
        "forward_ms": fwd * 1e3,
        "train_ms": trn * 1e3,
        "rollout_ms": roll * 1e3,
        "peak_mb": peak / 2**20,
        "params": params,
        "state_floats": state_floats,
    }


def run_in_subprocess(
    index: int, args: argparse.Namespace, for_memory: bool, tree: Path | None = None
) -> dict:
    """One row in a fresh process. Memory is read in a process whose allocator returns freed memory
    to the system at once (so the resident peak is the live peak); times in one with the allocator's
    defaults (which reuse freed memory, as any training run does). ``tree``: import ``fwmrl`` from
    there (a baseline revision) instead of the working tree."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    if for_memory:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    command = [
        sys.executable,
        __file__,
        "--one",
        str(index),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--repeats",
        str(args.repeats),
        "--device",
        args.device,
        "--clock",
        args.clock,
        "--fwm-impl",
        *args.fwm_impl,
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark row {index} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_table(results: list[dict]) -> str:
    base = results[0]
    header = (
        "| core | fwd ms/step | train ms/step | rollout ms/step | peak train MB | params "
        "| state floats/seq | fwd × LSTM | train × LSTM | rollout × LSTMCell | memory × LSTM |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in results:
        lines.append(
            f"| {r['label']} | {r['forward_ms']:.3f} | {r['train_ms']:.3f} | {r['rollout_ms']:.3f} "
            f"| {r['peak_mb']:.1f} | {r['params']:,} | {r['state_floats']:,} "
            f"| {r['forward_ms'] / base['forward_ms']:.1f} | {r['train_ms'] / base['train_ms']:.1f} "
            f"| {r['rollout_ms'] / base['rollout_ms']:.1f} "
            f"| {r['peak_mb'] / max(base['peak_mb'], 1e-9):.1f} |"
        )
    return "\n".join(lines)


def format_baseline_table(now: list[dict], before: list[dict]) -> str:
    """Times now and at the baseline revision, their ratio, and both against the LSTM baseline."""
    lines = [
        "| core | train ms/step now | before | now / before | train × LSTM now | before "
        "| rollout ms/step now | before | now / before | rollout × LSTMCell now | before |",
        "|" + "---|" * 11,
    ]
    for r, b in zip(now, before, strict=True):
        lines.append(
            f"| {r['label']} | {r['train_ms']:.3f} | {b['train_ms']:.3f} "
            f"| {r['train_ms'] / b['train_ms']:.2f} | {r['train_ms'] / now[0]['train_ms']:.1f} "
            f"| {b['train_ms'] / before[0]['train_ms']:.1f} | {r['rollout_ms']:.3f} "
            f"| {b['rollout_ms']:.3f} | {r['rollout_ms'] / b['rollout_ms']:.2f} "
            f"| {r['rollout_ms'] / now[0]['rollout_ms']:.1f} "
            f"| {b['rollout_ms'] / before[0]['rollout_ms']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="cpu: the process's CPU time (all its threads; robust to other jobs on the machine); "
        "wall: elapsed time",
    )
    parser.add_argument(
        "--fwm-impl",
        nargs="+",
        default=["naive", "checkpoint"],
        help="FWM scan implementations to compare (see fwmrl.memory.fwm_scan.FWM_SCANS)",
    )
    parser.add_argument(
        "--only", nargs="*", help="substrings of row labels to run (baseline always)"
    )
    parser.add_argument(
        "--baseline", help="revision whose fwmrl/ is timed too (same run, alternated)"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    table = rows(args.fwm_impl)
    if args.one is not None:
        print(
            json.dumps(
                measure(
                    table[args.one], args.batch, args.steps, args.repeats, args.device, args.clock
                )
            )
        )
        return

    selected = [0] + [
        i
        for i, row in enumerate(table)
        if i > 0 and (not args.only or any(s in row.label for s in args.only))
    ]
    results, before = [], []
    with tempfile.TemporaryDirectory() as tmp:
        from _revision import source_tree  # benchmarks/_revision.py (run as a script)

        baseline_tree = source_tree(args.baseline, Path(tmp)) if args.baseline else None
        for i in selected:
            row = run_in_subprocess(i, args, for_memory=False)
            if baseline_tree is not None:
                before.append(run_in_subprocess(i, args, for_memory=False, tree=baseline_tree))
            row["peak_mb"] = run_in_subprocess(i, args, for_memory=True)["peak_mb"]
            results.append(row)
            print(f"measured {results[-1]['label']}", file=sys.stderr, flush=True)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"commit {commit_label('benchmarks/cores.py')}: B={args.batch} T={args.steps} "
        f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"clock={args.clock} (median of {args.repeats})"
    )
    print(format_table(results))
    if before:
        print(f"\nThe same rows at {args.baseline} (alternated with the rows above):\n")
        print(format_baseline_table(results, before))


if __name__ == "__main__":
    main()
