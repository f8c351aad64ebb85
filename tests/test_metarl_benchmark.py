"""scripts/metarl_benchmark.py: one CSV row per evaluation, on disk as soon as it is written.

Skipped when MuJoCo (the extra ``fwmrl[metaworld]``) is not installed: the runs use
FWM-HalfCheetahVel-v0, shrunk to a few steps.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import mujoco  # noqa: F401

    HAVE_MUJOCO = True
except ImportError:
    HAVE_MUJOCO = False
pytestmark = pytest.mark.skipif(
    not HAVE_MUJOCO, reason="MuJoCo is in the optional extra: pip install 'fwmrl[metaworld]'"
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "metarl_benchmark.py"
TINY = [
    "env.num_envs=2",
    "env.kwargs.max_steps=10",
    "env.kwargs.episodes=2",
    "algo.n_steps=10",
    "algo.num_minibatches=2",
    "algo.n_epochs=1",
]


def _command(out: Path, steps: int, eval_every: int, cores: str = "none", *extra: str) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--config",
        str(ROOT / "configs" / "halfcheetah_vel_fwm.yaml"),
        "--cores",
        cores,
        "--seeds",
        "0",
        "--steps",
        str(steps),
        "--eval-every",
        str(eval_every),
        "--eval-trials",
        "2",
        "--out",
        str(out),
        *extra,
        *TINY,
    ]


def _env() -> dict[str, str]:
    # the checkout's fwmrl, whatever the venv's editable install points at
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_rows_per_evaluation_with_times(tmp_path):
    out = tmp_path / "curves.csv"
    subprocess.run(_command(out, 40, 20), check=True, env=_env(), capture_output=True, timeout=300)
    rows = _rows(out)
    assert [int(r["env_steps"]) for r in rows] == [0, 20, 40]
    assert {r["core"] for r in rows} == {"none"}
    for key in ("test_return_ep1", "test_return_ep2", "eval_wall_s", "eval_cpu_s"):
        assert all(r[key] != "" for r in rows), key
    run_wall = [float(r["run_wall_s"]) for r in rows]
    run_cpu = [float(r["run_cpu_s"]) for r in rows]
    assert run_wall == sorted(run_wall) and run_cpu == sorted(run_cpu)
    train_cpu = [float(r["train_cpu_s"]) for r in rows]
    assert train_cpu[0] == 0.0 and train_cpu == sorted(train_cpu)
    # the run's CPU time holds its training and its evaluations (0.1 s rounding each)
    assert run_cpu[-1] >= train_cpu[-1] + sum(float(r["eval_cpu_s"]) for r in rows) - 0.5
    png = tmp_path / "curves.png"
    subprocess.run(
        [*_command(out, 40, 20)[:2], "--config", "x", "--out", str(out), "--plot", str(png)],
        check=True,
        env=_env(),
        capture_output=True,
        timeout=120,
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # the table: one row per run, its means over the last evaluations (HalfCheetah: no success)
    printed = subprocess.run(
        [*_command(out, 40, 20)[:2], "--table", str(out), "--last", "2"],
        check=True,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.splitlines()
    assert printed[0].startswith("| core | seed | env steps | return ep 1 | return ep 2 |")
    assert "success" not in printed[0] and len(printed) == 3
    cells = [c.strip() for c in printed[2].strip("|").split("|")]
    assert cells[:3] == ["mlp", "0", "40"]
    last_two = [float(r["test_return_ep2"]) for r in rows[-2:]]
    assert float(cells[4]) == pytest.approx(sum(last_two) / 2, abs=0.06)
    # appending to a file of other columns is refused (rows would be misread)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    failed = subprocess.run(_command(other, 20, 20), env=_env(), capture_output=True, text=True)
    assert failed.returncode != 0 and "columns" in failed.stderr
    assert other.read_text() == "a,b\n1,2\n"


def test_killed_run_keeps_its_finished_evaluations(tmp_path):
    out = tmp_path / "curves.csv"
    # a budget it cannot finish in the test: killed after its second evaluation is on disk
    proc = subprocess.Popen(
        _command(out, 10**9, 20),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= 3:  # header + 2 rows
                break
            assert proc.poll() is None, "the run ended before it was killed"
            time.sleep(0.2)
        else:
            pytest.fail("no second evaluation row within 240 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rows = _rows(out)
    assert len(rows) >= 2
    assert [int(r["env_steps"]) for r in rows[:2]] == [0, 20]
    assert all(r["test_return_ep2"] != "" for r in rows)  # whole rows, not a cut line


def test_checkpointed_run_continues_where_it_stopped(tmp_path):
    out, saved = tmp_path / "curves.csv", tmp_path / "ckpt"
    first = _command(out, 20, 20, "none", "--checkpoints", str(saved))
    subprocess.run(first, check=True, env=_env(), capture_output=True, timeout=300)
    assert (saved / "none_s0.pt").stat().st_size > 0
    # the same command again: the run is finished, no row is repeated
    subprocess.run(first, check=True, env=_env(), capture_output=True, timeout=300)
    assert [int(r["env_steps"]) for r in _rows(out)] == [0, 20]
    # a larger budget continues from the checkpoint: no second evaluation at 0 steps
    longer = _command(out, 40, 20, "none", "--checkpoints", str(saved))
    done = subprocess.run(
        longer, check=True, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert "resumed" in done.stdout and "not bit-identical" in done.stdout
    rows = _rows(out)
    assert [int(r["env_steps"]) for r in rows] == [0, 20, 40]
    train_cpu = [float(r["train_cpu_s"]) for r in rows]
    assert train_cpu == sorted(train_cpu)
    # the run's clocks go on from the saved time: the resumed process adds its own building of
    # the agent (about row 0's time) to row 1's, where a restarted clock would read that alone
    for key in ("run_cpu_s", "run_wall_s"):
        values = [float(r[key]) for r in rows]
        assert values[2] >= values[1] + 0.5 * values[0] > values[1], key
    # one more evaluation of the saved run, with more trials, into another file; no training
    final = tmp_path / "final.csv"
    extra = ("--checkpoints", str(saved), "--evaluate-only", "--eval-trials", "3")
    evaluated = _command(final, 40, 20, "none", *extra)
    subprocess.run(evaluated, check=True, env=_env(), capture_output=True, timeout=300)
    (row,) = _rows(final)
    assert (row["env_steps"], row["test_trials"]) == ("40", "3")
    assert row["train_cpu_s"] == rows[-1]["train_cpu_s"]
    assert [int(r["env_steps"]) for r in _rows(out)] == [0, 20, 40]
    missing = _command(final, 40, 20, "lstm", "--checkpoints", str(saved), "--evaluate-only")
    failed = subprocess.run(missing, env=_env(), capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2 and "no saved run of lstm, seed 0" in failed.stderr
    # another config over the same checkpoints is refused, naming what differs
    other = _command(out, 60, 20, "none", "--checkpoints", str(saved)) + ["algo.lr=0.1"]
    failed = subprocess.run(other, env=_env(), capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2 and "algo.lr" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert len(_rows(out)) == 3
