"""``fwmrl plot --x env_steps|updates|wall_time|cpu_time`` for RL and supervised runs: both
trainers log ``cpu_time_s`` (process CPU seconds) beside ``time_s``; times add up over resumes; a
run that never logged the chosen key is one clear error."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fwmrl import plots
from fwmrl.cli import main
from fwmrl.config import load_config, save_config
from fwmrl.jobs import train_run
from fwmrl.rundir import read_metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The Axes of every figure the plots save."""
    axes = []
    original = plots.save_figure

    def keep(fig, out):
        axes.extend(fig.axes)
        return original(fig, out)

    monkeypatch.setattr(plots, "save_figure", keep)
    return axes


def _fake_run(path: Path, config: str, records: list[dict], refs=None) -> Path:
    path.mkdir(parents=True)
    save_config(load_config(ROOT / config), path / "config.yaml")
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if refs is not None:
        (path / "references.json").write_text(json.dumps(refs))
    return path


def test_times_add_up_over_resumes():
    records = [
        {"update": 1, "env_steps": 10, "time_s": 2.0, "cpu_time_s": 1.5},
        {"update": 2, "env_steps": 20, "time_s": 4.0, "cpu_time_s": 3.0},
        {"update": 3, "env_steps": 30, "time_s": 1.0, "cpu_time_s": 0.5},  # a resumed process
        {"update": 4, "env_steps": 40, "time_s": 3.0},  # an older row without cpu_time_s
    ]
    assert plots.x_values(records, "wall_time") == [2.0, 4.0, 5.0, 7.0]
    assert plots.x_values(records, "cpu_time") == [1.5, 3.0, 3.5, None]
    assert plots.x_values(records, "updates") == [1, 2, 3, 4]
    assert plots.x_values(records, "env_steps") == [10, 20, 30, 40]
    with pytest.raises(plots.ConfigError, match="plot --x: one of env_steps, updates"):
        plots.x_values(records, "epochs")


def test_rl_plot_against_each_axis(tmp_path, drawn, capsys):
    rows = [
        {"update": u, "env_steps": 8 * u, "time_s": 0.5 * u, "cpu_time_s": 0.25 * u}
        | {"episode_return_mean": float(u)}
        for u in range(1, 5)
    ]
    run = _fake_run(tmp_path / "rl", "configs/gridworld_lstm.yaml", rows, {"random": 0.0})
    expected = {
        "env_steps": ([8, 16, 24, 32], "environment steps"),
        "updates": ([1, 2, 3, 4], "updates (optimizer steps)"),
        "wall_time": ([0.5, 1.0, 1.5, 2.0], "wall-clock time (s)"),
        "cpu_time": ([0.25, 0.5, 0.75, 1.0], "process CPU time (s)"),
    }
    for x, (xs, label) in expected.items():
        drawn.clear()
        assert main(["plot", str(run), "-o", str(tmp_path / f"{x}.png"), "--x", x]) == 0
        (ax,) = drawn
        assert list(ax.lines[0].get_xdata()) == xs and ax.get_xlabel() == label
    with pytest.raises(SystemExit) as exit_info:  # argparse names the allowed values
        main(["plot", str(run), "-o", str(tmp_path / "bad.png"), "--x", "epochs"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'epochs' (choose from 'env_steps'" in capsys.readouterr().err


def test_supervised_run_logs_cpu_time_and_plots_against_it(tmp_path, drawn, capsys):
    overrides = [
        "task.train_queries=200",
        "task.valid_queries=20",
        "task.test_queries=20",
        "task.batch_size=4",
        "task.eval_batch_size=4",
        "task.seq_len=16",
        "core.hidden_size=8",
        "core.memory_size=4",
        "train.total_steps=6",
        "train.eval_every=3",
        "train.progress=false",
        "train.plot_at_end=false",
        "logging.log_every=1",
        "logging.tensorboard=false",
    ]
    run = tmp_path / "run"
    cpu_before = time.process_time()
    train_run(load_config(ROOT / "configs/retrieval_fwm.yaml", overrides), run)
    cpu_spent = time.process_time() - cpu_before
    records = read_metrics(run)
    cpu = [r["cpu_time_s"] for r in records]
    assert cpu == sorted(cpu) and 0 < cpu[-1] <= cpu_spent + 1e-3
    assert all(r["time_s"] >= 0 for r in records)
    assert main(["plot", str(run), "-o", str(tmp_path / "c.png"), "--x", "cpu_time"]) == 0
    loss_ax, valid_ax = drawn
    assert list(loss_ax.lines[0].get_xdata()) == cpu
    assert list(valid_ax.lines[0].get_xdata()) == [cpu[2], cpu[5]]  # validation at 3 and 6
    assert loss_ax.get_xlabel() == "process CPU time (s)"
    drawn.clear()
    assert main(["plot", str(run), "-o", str(tmp_path / "d.png")]) == 0  # default: updates
    assert list(drawn[0].lines[0].get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert drawn[0].get_xlabel() == "optimizer steps"
    # a run from before cpu_time_s was logged
    rows = [{k: v for k, v in r.items() if k != "cpu_time_s"} for r in records]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    assert main(["plot", str(run), "-o", str(tmp_path / "e.png"), "--x", "cpu_time"]) == 2
    err = capsys.readouterr().err
    assert f"plot --x cpu_time: {run} logged no cpu_time_s" in err


def test_rl_run_logs_cpu_time(tmp_path):
    tiny = [
        "env.num_envs=2",
        "env.kwargs={size: 5, max_steps: 6}",
        "core.hidden_size=8",
        "policy.encoder_sizes=[8]",
        "algo.n_steps=4",
        "train.total_steps=24",
        "train.eval_episodes=1",
        "train.progress=false",
        "train.plot_at_end=false",
        "train.gif_at_end=false",
        "logging.log_every=1",
        "logging.tensorboard=false",
    ]
    train_run(load_config(ROOT / "configs/gridworld_lstm.yaml", tiny), tmp_path / "rl")
    cpu = [r["cpu_time_s"] for r in read_metrics(tmp_path / "rl")]
    assert len(cpu) == 3 and cpu == sorted(cpu) and cpu[-1] > 0
