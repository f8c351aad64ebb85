"""``fwmrl export``: a run's evaluations as CSV with the documented columns, its config beside it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fwmrl.cli import main
from fwmrl.results import COLUMNS, evaluation_rows


def test_rows_pair_each_evaluation_with_the_last_training_return() -> None:
    records = [
        {"update": 10, "env_steps": 100, "episode_return_mean": 1.0},
        {"update": 20, "env_steps": 200, "episode_return_mean": 2.0, "eval_return_mean": 5.0},
        {"update": 25, "env_steps": 250, "eval_return_mean": 6.0, "eval_return_std": 0.5},
    ]
    rows = evaluation_rows(records)
    assert [r["update"] for r in rows] == [20, 25]
    assert [r["train_return_mean"] for r in rows] == [2.0, 2.0]
    assert rows[1]["eval_return_std"] == 0.5 and list(rows[0]) == list(COLUMNS)


def test_export_a_real_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    tiny = [
        "env.num_envs=2",
        "env.kwargs={size: 5, max_steps: 6}",
        "core.hidden_size=8",
        "core.memory_size=4",
        "policy.encoder_sizes=[8]",
        "algo.n_steps=4",
        "train.total_steps=24",
        "train.eval_every=2",
        "train.eval_episodes=2",
        "train.progress=false",
        "train.plot_at_end=false",
        "train.gif_at_end=false",
        "logging.log_every=1",
    ]
    assert (
        main(["train", str(root / "configs/gridworld_fwm.yaml"), "--run-dir", str(run), *tiny]) == 0
    )
    out = tmp_path / "results/exp/fwm_s0.csv"
    assert main(["export", str(run), "-o", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert [int(r["update"]) for r in rows] == [2, 3]  # every 2 updates, and the final one
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert float(rows[-1]["eval_return_mean"]) == pytest.approx(metrics[-1]["eval_return_mean"])
    assert out.with_suffix(".yaml").read_text() == (run / "config.yaml").read_text()


def test_export_of_a_run_without_evaluations_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "x.csv")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_rows_add_up_the_times_of_processes_that_counted_from_their_own_start() -> None:
    records = [
        {"update": 1, "env_steps": 10, "time_s": 5.0, "cpu_time_s": 4.0, "eval_return_mean": 1.0},
        {"update": 2, "env_steps": 20, "time_s": 8.0, "cpu_time_s": 6.0},
        # a resumed process of an older fwmrl: its times restart at 0
        {"update": 3, "env_steps": 30, "time_s": 2.0, "cpu_time_s": 1.5, "eval_return_mean": 2.0},
    ]
    rows = evaluation_rows(records)
    assert [(r["time_s"], r["cpu_time_s"]) for r in rows] == [(5.0, 4.0), (10.0, 7.5)]
