"""GraphNav paper-protocol results: our runs' evaluation CSVs against the FWM authors' published logs.

Reads ``docs/results/graphnav/*.csv`` (``fwmrl export`` output of each run, and ``paper_*.csv``, the
authors' test and training returns every 50 updates, from ``metaRL/paper_logs`` of
github.com/ischlag/Fast-Weight-Memory-public), prints a Markdown table (last evaluation, the update
at which the test return first reaches 60, 80 and 100) and draws ``graphnav.png``.

    python scripts/graphnav_results.py
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MARKS = (60, 80, 100)


def read(path: Path, x: str, y: str) -> tuple[list[float], list[float]]:
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get(y) not in (None, "")]
    return [float(r[x]) for r in rows], [float(r[y]) for r in rows]


def first_reaching(xs: list[float], ys: list[float], mark: float) -> str:
    for x, y in zip(xs, ys, strict=True):
        if y >= mark:
            return f"{int(x):,}"
    return "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "docs/results/graphnav")
    args = parser.parse_args()
    curves = []
    for path in sorted(args.dir.glob("paper_*.csv")):
        xs, ys = read(path, "update", "test_return")
        curves.append((f"paper: {path.stem[6:]} (authors' log)", xs, ys, "--"))
    for path in sorted(args.dir.glob("*.csv")):
        if path.stem.startswith("paper_"):
            continue
        xs, ys = read(path, "update", "eval_return_mean")
        curves.append((f"fwmrl: {path.stem}", xs, ys, "-"))
    print(
        "| run | updates | last test return | " + " | ".join(f"first ≥ {m}" for m in MARKS) + " |"
    )
    print("|---|---:|---:|" + "---:|" * len(MARKS))
    for name, xs, ys, _ in curves:
        marks = " | ".join(first_reaching(xs, ys, m) for m in MARKS)
        print(f"| {name} | {int(xs[-1]):,} | {ys[-1]:.1f} | {marks} |")
    fig, ax = plt.subplots(figsize=(7, 4))
    longest = max(xs[-1] for name, xs, _, _ in curves if name.startswith("fwmrl"))
    for name, xs, ys, style in curves:
        keep = [i for i, x in enumerate(xs) if x <= max(longest * 1.5, 5000)]
        ax.plot([xs[i] for i in keep], [ys[i] for i in keep], style, label=name, linewidth=1.2)
    ax.axhline(45, color="grey", linewidth=0.8, linestyle=":", label="random ≈ 45")
    ax.set_xlabel("updates (600 episodes of 30 steps each)")
    ax.set_ylabel("mean return on the 600 test graphs")
    ax.set_title("FWM-GraphNav-v0, the FWM paper's protocol")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = args.dir / "graphnav.png"
    fig.savefig(out, dpi=110)
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
