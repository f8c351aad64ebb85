"""The commit a benchmark measured, for the header of its table, and a baseline revision's
source tree (shared by the benchmark scripts)."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def revision(script: str) -> str:
    """``git rev-parse --short HEAD``, plus a note when ``fwmrl/`` or ``script`` has uncommitted
    changes (so a table never claims a commit it did not measure)."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "fwmrl", script],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + (" + uncommitted changes" if dirty else "")


def source_tree(revision: str, into: Path, paths: tuple[str, ...] = ("fwmrl", "configs")) -> Path:
    """``paths`` of ``revision`` extracted into ``into/tree`` (``git archive``), to import a
    baseline revision's ``fwmrl`` from (``PYTHONPATH``) beside the working tree's."""
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, *paths], stdout=out, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"
