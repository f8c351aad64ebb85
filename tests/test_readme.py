"""Every snippet in README.md works as written.

Python blocks run in a fresh interpreter in a temporary folder, with their training budgets
(``learn(N)``) cut to a few hundred steps; every ``fwmrl`` command line in a bash block parses, and
the configs and overrides it names load.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TINY_BUDGET = 256


def _blocks(language: str) -> list[str]:
    text = README.read_text()
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def _shrink(code: str) -> str:
    return re.sub(r"\.learn\(\s*[\d_]+", f".learn({TINY_BUDGET}", code)


PYTHON_BLOCKS = _blocks("python")


def test_readme_has_python_snippets() -> None:
    assert len(PYTHON_BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_snippet_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(_shrink(PYTHON_BLOCKS[index]))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"README python block {index} failed:\n{result.stderr[-3000:]}"


def _fwmrl_commands() -> list[list[str]]:
    commands = []
    for block in _blocks("bash"):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if "fwmrl" in (words[:1] or [""])[0]:  # .venv/bin/fwmrl ...
                    commands.append(words[1:])
                elif words[:1] == ["torchrun"] and "fwmrl" in words:
                    commands.append(words[words.index("fwmrl") + 1 :])
    return commands


COMMANDS = _fwmrl_commands()


def test_readme_has_fwmrl_commands() -> None:
    assert len(COMMANDS) >= 10
    assert any(c[:1] == ["train"] for c in COMMANDS)


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_fwmrl_command_parses_and_its_config_loads(argv: list[str]) -> None:
    from fwmrl.cli import build_parser
    from fwmrl.config import load_config
    from fwmrl.sweep import load_sweep

    args, extra = build_parser().parse_known_args(argv)
    assert not [x for x in extra if x.startswith("-")], f"unknown options in {argv}"
    if args.command == "train" and not args.resume:
        items = [*args.items, *extra]
        config = next(i for i in items if "=" not in i)
        load_config(ROOT / config, [i for i in items if "=" in i])
    elif args.command == "sweep":
        load_sweep(ROOT / args.sweep)


def test_readme_quotes_the_recorded_main_job() -> None:
    """README's main-job sentence is what scripts/readme_figures.py recorded."""
    import json

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from readme_figures import readme_sentence
    finally:
        sys.path.pop(0)
    job = json.loads((ROOT / "docs/images/main_job.json").read_text())
    assert readme_sentence(job) in " ".join(README.read_text().split())
    assert job["command"].endswith("--run-dir runs/readme-main")
