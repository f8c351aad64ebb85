"""benchmarks/tasks.py --checkpoints: a model's run is saved after every probe and continued."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "task.train_queries=400",
    "task.valid_queries=40",
    "task.test_queries=40",
    "task.batch_size=8",
    "task.eval_batch_size=4",
    "task.seq_len=8",
    "core.hidden_size=16",
]


def _run(out: Path, budget: float, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "benchmarks" / "tasks.py"), "retrieval"]
    command += ["--models", "lstm", "--budget", str(budget), "--out", str(out)]
    command += ["--checkpoints", str(out / "ckpt"), "--set", *TINY, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _curve(out: Path) -> list[dict]:
    return json.loads((out / "retrieval.json").read_text())["results"]["lstm"]["curve"]


def test_a_larger_budget_continues_the_saved_run(tmp_path):
    first = _run(tmp_path, 0.6)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "ckpt" / "retrieval_lstm.pt").stat().st_size > 0
    before = _curve(tmp_path)
    assert len(before) == 6
    longer = _run(tmp_path, 1.2)
    assert longer.returncode == 0, longer.stderr
    assert f"resumed {tmp_path / 'ckpt' / 'retrieval_lstm.pt'} at step {before[-1]['steps']}" in (
        longer.stdout
    )
    after = _curve(tmp_path)
    assert after[: len(before)] == before  # the saved curve is kept, the new probes follow it
    steps = [p["steps"] for p in after]
    seconds = [p["seconds"] for p in after]
    assert len(after) > len(before) and steps == sorted(steps) and len(set(steps)) == len(steps)
    assert seconds[-1] >= 1.2 > seconds[len(before) - 1]
    # the same checkpoints with another config: refused in one line naming the key
    other = _run(tmp_path, 2.0, "task.lr=0.5")
    assert other.returncode == 2 and "task.lr" in other.stderr
    assert "Traceback" not in other.stderr
