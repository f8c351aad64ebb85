"""ruff lint and format are part of the suite, so CI keeps the tree clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff() -> list[str]:
    local = Path(sys.executable).with_name("ruff")
    if local.exists():
        return [str(local)]
    found = shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: install the dev extras (pip install -e '.[dev]')")
    return [found]


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(args):
    result = subprocess.run([*ruff(), *args, "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docstrings_use_numpy_sections_only():
    """ruff's numpy convention checks numpy sections; a Google-style header (``Args:``) is not one
    it knows, so this keeps the package to one docstring style."""
    import re

    google = re.compile(
        r"^\s+(Args|Arguments|Returns|Raises|Attributes|Yields|Examples):\s*$", re.M
    )
    found = [
        f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}"
        for path in sorted((ROOT / "fwmrl").rglob("*.py"))
        for text in [path.read_text()]
        for m in google.finditer(text)
    ]
    assert not found, f"Google-style docstring sections (use numpy's underlined ones): {found}"
