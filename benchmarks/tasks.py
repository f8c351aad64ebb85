"""Evidence for the supervised/LM trainers: the same CPU budget per model, one thread each.

    python benchmarks/tasks.py retrieval [--budget 120] [--out runs/bench_tasks]
    python benchmarks/tasks.py catbabi   [--budget 120]
    python benchmarks/tasks.py lm        [--budget 90]

* retrieval: gated FW, FWM, MNM-p and LSTM with the configs' sizes and the paper protocol (100k
  training queries as one stream, batch 256, sequence length 32, Nadam 0.002): partial accuracy on
  validation (every ``budget/6`` s on the first 20 windows, at the end on all of it) and on test.
* catbabi: FWM vs LSTM vs MNM-p on generated tasks 1, 2, 3, 6, 7 (QA mode), at CPU sizes
  (embedding 32, LSTM 64, FWM m = 16, MNM-p keys and memory MLP 16) instead of the paper's
  256 / 32: per-task test accuracy.
* lm: FWM vs LSTM on the generated grammar corpus: validation perplexity curves.

A model whose loss or gradient becomes non-finite stops there and is evaluated with its last good
weights (``diverged`` in the JSON names the step; the table marks it).

``--budget`` is training CPU seconds per model (process time, evaluation not counted), so that two
runs sharing the machine still get the same compute each; ``--set key=value`` overrides config fields
for every model. Results go to
``OUT/<task>.json`` and ``OUT/<task>.png`` (metric against training seconds) and a Markdown table on
stdout; ``--merge A.json B.json`` combines the files of runs made in parallel (``--models``,
``--tag``) into one table and plot. Absolute numbers depend on the machine and its load; the
comparison is within one run.

``--checkpoints DIR`` saves each model's run (trainer, config, CPU seconds so far, the probes' curve)
to ``DIR/<task><tag>_<model>.pt`` after every probe; the same command again continues a killed run
from its last probe, and a larger ``--budget`` takes a finished one further.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fwmrl import rundir  # noqa: E402
from fwmrl.config import load_config  # noqa: E402
from fwmrl.errors import NonFiniteLossError, RunError  # noqa: E402
from fwmrl.tasks.job import build_trainer, load_task_data  # noqa: E402
from fwmrl.tasks.streams import HEADLINE  # noqa: E402

CATBABI_CPU = [
    "task.embedding_size=32",
    "core.hidden_size=64",
    "task.generate_stories=500",
    "task.data=runs/data/babi_bench",
    "task.generate=true",
]
SETUPS = {
    "retrieval": {
        "gated_fw": ("configs/retrieval_gated_fw.yaml", []),
        "fwm": ("configs/retrieval_fwm.yaml", []),
        "mnm_p": ("configs/retrieval_mnm_p.yaml", []),
        "lstm": ("configs/retrieval_lstm.yaml", []),
    },
    "catbabi": {
        "fwm": ("configs/catbabi_fwm.yaml", [*CATBABI_CPU, "core.memory_size=16"]),
        "lstm": ("configs/catbabi_lstm.yaml", CATBABI_CPU),
        "mnm_p": (
            "configs/catbabi_mnm_p.yaml",
            [*CATBABI_CPU, "core.key_size=16", "core.memory_size=16"],
        ),
    },
    "lm": {
        "fwm": ("configs/lm_fwm.yaml", []),
        "lstm": ("configs/lm_lstm.yaml", []),
    },
}


def run_model(  # noqa: ANN001
    config, data, budget: float, probe_windows: int | None, checkpoint: Path | None = None
) -> dict:
    """Train for ``budget`` CPU seconds; probe validation 6 times on the way. With a
    ``checkpoint`` path the run is saved after every probe and continued from that file when it
    exists (a larger ``budget`` takes a finished run further)."""
    trainer = build_trainer(config, data)
    key = HEADLINE[data.kind][0]
    progress = {"trained": 0.0, "next_probe": budget / 6, "curve": []}
    if checkpoint is not None and checkpoint.exists():
        state, progress = rundir.load_progress(checkpoint, config)
        trainer.load_state_dict(state)
        print(f"  resumed {checkpoint} at step {trainer.update}", flush=True)
    curve, trained = progress["curve"], float(progress["trained"])
    next_probe = float(progress["next_probe"])
    diverged = None
    while trained < budget:
        start = time.process_time()
        try:
            trainer.learn_update()
        except NonFiniteLossError as err:  # the weights are those before the bad step
            diverged = str(err)
            print(f"  {trained:6.0f}s {diverged}: evaluating the last good weights", flush=True)
            break
        trained += time.process_time() - start
        if trained >= next_probe or trained >= budget:
            valid = trainer.evaluate("valid", max_windows=probe_windows)
            curve.append({"seconds": round(trained, 1), "steps": trainer.update, key: valid[key]})
            print(f"  {trained:6.0f}s step {trainer.update:5d} {key} {valid[key]:.4f}", flush=True)
            next_probe += budget / 6
            if checkpoint is not None:
                progress = {"trained": trained, "next_probe": next_probe, "curve": curve}
                rundir.save_progress(checkpoint, trainer.state_dict(), config, progress)
    return {
        "parameters": trainer.num_parameters,
        "steps": trainer.update,
        "train_seconds": round(trained, 1),
        "steps_per_s": trainer.update / trained,
        "curve": curve,
        "diverged": diverged,
        "valid": trainer.evaluate("valid"),
        "test": trainer.evaluate("test"),
    }


def plot(results: dict, task: str, key: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name, r in results.items():
        xs = [p["seconds"] for p in r["curve"]]
        ax.plot(xs, [p[key] for p in r["curve"]], marker="o", label=f"{name} ({r['parameters']:,})")
    ax.set_xlabel("training CPU seconds (1 thread)")
    ax.set_ylabel(f"validation {key}")
    if key == "perplexity":
        ax.set_yscale("log")
    ax.set_title(task)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def report(results: dict, task: str, png: Path) -> None:
    """Plot the curves to ``png`` and print the Markdown table."""
    key = HEADLINE[task][0]
    plot(results, task, key, png)
    extra = sorted({k for r in results.values() for k in r["test"] if k.startswith("acc_qa")})
    better = max if HEADLINE[task][1] == "max" else min
    cols = ["model", "parameters", "steps", f"best probe {key}", f"valid {key}", f"test {key}"]
    cols += extra
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for name, r in results.items():
        best = better((p[key] for p in r["curve"]), default=math.nan)
        steps = f"{r['steps']:,}" + (" (diverged)" if r.get("diverged") else "")
        row = [name, f"{r['parameters']:,}", steps, f"{best:.4f}"]
        row += [
            f"{r[s][key]:.4f}" if math.isfinite(r[s][key]) else "nan" for s in ("valid", "test")
        ]
        row += [f"{r['test'][k]:.3f}" for k in extra]
        print("| " + " | ".join(row) + " |")


def _seed(record: dict, path: str) -> int | None:
    """The record's seed (files written before it was recorded: ``_sN`` in the file name)."""
    if "seed" in record:
        return int(record["seed"])
    found = re.search(r"_s(\d+)", Path(path).stem)
    return int(found.group(1)) if found else None


def seed_summary(results: dict[str, dict], seeds: dict[str, int | None], task: str) -> None:
    """Mean ± std over seeds of each model's test metrics (rows named ``model sN``)."""
    key = HEADLINE[task][0]
    by_model: dict[str, list[str]] = {}
    for name in sorted(results):
        by_model.setdefault(name.split(" s")[0], []).append(name)
    extra = sorted({k for r in results.values() for k in r["test"] if k.startswith("acc_qa")})
    cols = ["model", "seeds", "parameters", f"test {key}", *extra]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for model, names in by_model.items():

        def mean_std(metric: str, names: list[str] = names) -> str:
            values = [results[n]["test"][metric] for n in names]
            if len(values) == 1:
                return f"{values[0]:.3f}"
            return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"

        row = [
            model,
            ", ".join(str(seeds[n]) for n in names),
            f"{results[names[0]]['parameters']:,}",
        ]
        row += [mean_std(key), *(mean_std(k) for k in extra)]
        print("| " + " | ".join(row) + " |")


def merge(task: str, paths: list[str], out: Path, tag: str) -> int:
    """One table, curve plot and JSON from result files of runs made in parallel; where a model
    ran with several seeds its rows are ``model sN`` and a mean ± std table follows."""
    records = [json.loads(Path(p).read_text()) for p in paths]
    if any(r["task"] != task for r in records):
        raise SystemExit(f"--merge: every file must hold {task!r} results")
    names = [name for record in records for name in record["results"]]
    several = len(set(names)) < len(names)
    results, seeds = {}, {}
    for path, record in zip(paths, records, strict=True):
        seed = _seed(record, path)
        for name, r in record["results"].items():
            row = f"{name} s{seed}" if several else name
            if row in results:
                raise SystemExit(f"--merge: {row!r} appears twice (same model and seed)")
            results[row], seeds[row] = r, seed
    merged = {**records[0], "results": results, "seeds": seeds, "merged_from": paths}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{task}{tag}.json").write_text(json.dumps(merged, indent=2) + "\n")
    report(results, task, out / f"{task}{tag}.png")
    if several:
        print()
        seed_summary(results, seeds, task)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=sorted(SETUPS))
    parser.add_argument(
        "--budget", type=float, default=120.0, help="training CPU seconds per model"
    )
    parser.add_argument("--models", nargs="+", help="subset of the task's models")
    parser.add_argument("--out", default="runs/bench_tasks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides"
    )
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        metavar="DIR",
        help="save each model's run after every probe to DIR/<task><tag>_<model>.pt and continue "
        "a run saved there (the same command again after a kill; a larger --budget goes further)",
    )
    parser.add_argument(
        "--merge", nargs="+", metavar="JSON", help="only combine result files of parallel runs"
    )
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.task, args.merge, Path(args.out), args.tag)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setups = {k: v for k, v in SETUPS[args.task].items() if not args.models or k in args.models}
    results = {}
    data = None
    for name, (path, overrides) in setups.items():
        config = load_config(ROOT / path, [*overrides, *args.set, f"train.seed={args.seed}"])
        if data is None:
            data = load_task_data(config)
        print(f"{args.task} / {name}: {args.budget:.0f} s", flush=True)
        probe = 20 if args.task == "retrieval" else None
        saved = args.checkpoints / f"{args.task}{args.tag}_{name}.pt" if args.checkpoints else None
        try:
            results[name] = run_model(config, data, args.budget, probe, saved)
        except RunError as error:
            parser.exit(2, f"{parser.prog}: error: {error}\n")
        record = {
            "task": args.task,
            "budget_cpu_s": args.budget,
            "threads": 1,
            "seed": args.seed,
            "overrides": args.set,
            "results": results,
        }
        (out / f"{args.task}{args.tag}.json").write_text(json.dumps(record, indent=2) + "\n")
    report(results, args.task, out / f"{args.task}{args.tag}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
