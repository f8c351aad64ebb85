"""Learning curves of several agents on FWM-Gridworld-v0 at one env-step budget, on one figure.

    python benchmarks/learning.py                                   # fwm, mnm_p, lstm, mlp; 3M steps
    python benchmarks/learning.py --cores fwm mlp --steps 10000000 --size 7 --max-steps 100 --seeds 0 1

Each run is an ordinary ``fwmrl train configs/gridworld_<core>.yaml`` run directory under ``--out``
(``<core>-s<seed>``), with the env and budget overridden identically for all; ``--jobs`` runs go in
parallel (one torch thread each). The figure (``<out>/curves.png``) shows every run with the env's
random and oracle references, and a table of the final evaluation returns is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(core: str, seed: int, args: argparse.Namespace) -> Path:
    run_dir = Path(args.out) / f"{core}-s{seed}"
    command = [
        sys.executable,
        "-m",
        "fwmrl",
        "train",
        str(ROOT / f"configs/gridworld_{core}.yaml"),
        "--run-dir",
        str(run_dir),
        f"train.total_steps={args.steps}",
        f"train.seed={seed}",
        "train.progress=false",
        "train.gif_at_end=false",
        "train.plot_at_end=false",
        "logging.wandb=disabled",
        f"env.kwargs={{size: {args.size}, view: 3, max_steps: {args.max_steps}}}",
    ]
    with open(run_dir.with_suffix(".log"), "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cores", nargs="+", default=["fwm", "mnm_p", "lstm", "mlp"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=3_000_000)
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="runs/learning")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)

    runs = [(core, seed) for core in args.cores for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        run_dirs = list(pool.map(lambda cs: train(cs[0], cs[1], args), runs))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fwmrl",
            "plot",
            *map(str, run_dirs),
            "-o",
            f"{args.out}/curves.png",
        ],
        check=True,
    )
    print(f"gridworld size {args.size}, {args.max_steps}-step episodes, {args.steps:,} env steps")
    print("| run | eval return (mean ± std) | eval episodes |")
    print("|---|---|---|")
    for run_dir in run_dirs:
        result = json.loads((run_dir / "eval.json").read_text())
        print(
            f"| {run_dir.name} | {result['return_mean']:.1f} ± {result['return_std']:.1f} "
            f"| {int(result['episodes'])} |"
        )
    references = run_dirs[0] / "references.json"
    if references.exists():
        print(f"references: {references.read_text().strip()}")


if __name__ == "__main__":
    main()
