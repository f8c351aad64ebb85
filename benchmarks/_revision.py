"""The commit a benchmark measured, for the header of its table (shared by the benchmark scripts)."""

from __future__ import annotations

import subprocess
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
