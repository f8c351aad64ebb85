"""Example renderings of the fwmrl envs as PNG files (README's env pictures).

    .venv/bin/python scripts/env_pictures.py docs/images

writes ``gridworld.png``, ``graphnav.png`` and ``keyvalue.png`` into the folder given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fwmrl.envs.graphnav import GraphNavEnv
from fwmrl.envs.gridworld import GridworldEnv
from fwmrl.envs.keyvalue import BLANK, KeyValueEnv


def example_frames(seed: int = 3) -> dict[str, np.ndarray]:
    """One mid-episode ``rgb_array`` frame of each env."""
    grid = GridworldEnv(render_mode="rgb_array", render_goal=True)
    grid.reset(seed=seed)
    for _ in range(2):
        grid.step(grid.oracle_action())
    graph = GraphNavEnv(render_mode="rgb_array")
    graph.reset(seed=seed)
    graph.step(0)
    keyvalue = KeyValueEnv(n_queries=4, render_mode="rgb_array")
    keyvalue.reset(seed=seed)
    targets = keyvalue.sequence.targets
    for t in range(len(targets) - 3):
        answer = int(targets[t]) if targets[t] != BLANK else 0
        keyvalue.step(answer if t % 3 else (answer + 1) % 8)
    return {"gridworld": grid.render(), "graphnav": graph.render(), "keyvalue": keyvalue.render()}


def main(argv: list[str] | None = None) -> list[Path]:
    """Write the example frames as PNG files into the folder given on the command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python scripts/env_pictures.py OUT_DIR")
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in example_frames().items():
        Image.fromarray(frame).save(out / f"{name}.png")
        written.append(out / f"{name}.png")
        print(written[-1])
    return written


if __name__ == "__main__":
    main()
