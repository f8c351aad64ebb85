"""Draw the validation partial accuracy of ``variant.py`` CSVs against CPU seconds.

    python docs/results/retrieval/plot_csv.py OUT.png A.csv B.csv ...

Each CSV is one curve, labelled by its file name; its key-blind bound is drawn dashed.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out, paths = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    fig, ax = plt.subplots(figsize=(7, 4))
    bounds = {}
    for path in paths:
        with open(path) as f:
            rows = list(csv.DictReader(f))
        x = [float(r["cpu_s"]) for r in rows]
        y = [float(r["valid_partial_accuracy"]) for r in rows]
        (line,) = ax.plot(x, y, marker=".", label=path.stem)
        bounds.setdefault(rows[0]["key_blind"], line.get_color())
    for value, color in bounds.items():
        ax.axhline(float(value), ls="--", lw=1, color=color, alpha=0.6)
    ax.set_xlabel("training CPU seconds (one thread)")
    ax.set_ylabel("validation partial accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("dashed: key-blind bound of the validation stream")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
