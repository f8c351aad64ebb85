"""Example renderings of the fwmrl envs, written as PNG files (for the README and docs).

Usage: ``python -m fwmrl.envs.pictures OUT_DIR`` writes ``gridworld.png``, ``graphnav.png`` and
``keyvalue.png`` into ``OUT_DIR``.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from fwmrl.envs.graphnav import GraphNavEnv
from fwmrl.envs.gridworld import GridworldEnv
from fwmrl.envs.keyvalue import BLANK, KeyValueEnv


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an ``uint8`` RGB image ``[H, W, 3]`` as PNG."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    h, w, _ = image.shape
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), image.reshape(h, w * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


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


def main(argv: list[str] | None = None) -> None:
    """Write the example frames as PNG files into the directory given on the command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m fwmrl.envs.pictures OUT_DIR")
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in example_frames().items():
        (out / f"{name}.png").write_bytes(png_bytes(frame))
        print(out / f"{name}.png")


if __name__ == "__main__":
    main()
