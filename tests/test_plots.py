"""``fwmrl plot`` draws something from the first log row, refuses to mix RL and supervised runs,
and draws the references of every env it is given."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from fwmrl import plots
from fwmrl.cli import main
from fwmrl.config import load_config, save_config

ROOT = Path(__file__).resolve().parents[1]


def _fake_run(path: Path, config: str, records: list[dict], overrides=(), refs=None) -> Path:
    path.mkdir(parents=True)
    save_config(load_config(ROOT / config, list(overrides)), path / "config.yaml")
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if refs is not None:  # cached references: no rollouts in this test
        (path / "references.json").write_text(json.dumps(refs))
    return path


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The Axes of every figure plot_runs saves."""
    axes = []
    original = plots.save_figure

    def keep(fig, out):
        axes.extend(fig.axes)
        fig.canvas.draw()
        return original(fig, out)

    monkeypatch.setattr(plots, "save_figure", keep)
    return axes


def test_one_log_row_draws_a_visible_point(tmp_path: Path, drawn: list) -> None:
    row = {"update": 20, "env_steps": 25600, "episode_return_mean": 12.5, "eval_return_mean": 20.0}
    run = _fake_run(
        tmp_path / "a", "configs/gridworld_fwm.yaml", [row], refs={"random": 1.0, "oracle": 9.0}
    )
    out = plots.plot_runs([run], tmp_path / "c.png")
    assert out.stat().st_size > 1000
    train_line = next(line for line in drawn[0].lines if line.get_label() == "a (train)")
    assert train_line.get_marker() == "o" and list(train_line.get_xdata()) == [25600]


def test_many_rows_are_a_plain_line(tmp_path: Path, drawn: list) -> None:
    rows = [{"update": i, "env_steps": 100 * i, "episode_return_mean": float(i)} for i in range(50)]
    run = _fake_run(tmp_path / "a", "configs/gridworld_fwm.yaml", rows, refs={"random": 1.0})
    plots.plot_runs([run], tmp_path / "c.png")
    train_line = next(line for line in drawn[0].lines if line.get_label() == "a (train)")
    assert train_line.get_marker() in ("None", None, "")


def test_references_of_every_env(tmp_path: Path, drawn: list) -> None:
    row = [{"update": 1, "env_steps": 10, "episode_return_mean": 1.0}]
    a = _fake_run(tmp_path / "a", "configs/gridworld_fwm.yaml", row, refs={"random": 1.0})
    b = _fake_run(
        tmp_path / "b",
        "configs/gridworld_fwm.yaml",
        row,
        overrides=["env.kwargs={size: 7}"],
        refs={"random": 2.0, "oracle": 30.0},
    )
    plots.plot_runs([a, b], tmp_path / "c.png")
    labels = [line.get_label() for line in drawn[0].lines]
    assert sum("random" in x for x in labels) == 2 and sum("oracle" in x for x in labels) == 1
    assert any("'size': 7" in x for x in labels)
    plt.close("all")


def test_mixing_rl_and_supervised_runs_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rl = _fake_run(tmp_path / "rl", "configs/gridworld_fwm.yaml", [], refs={"random": 1.0})
    sup = _fake_run(tmp_path / "sup", "configs/retrieval_fwm.yaml", [])
    assert main(["plot", str(rl), str(sup), "-o", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert "separate" in err and str(rl) in err and str(sup) in err


def test_eval_gif_is_large_and_captioned(tmp_path: Path) -> None:
    import gymnasium as gym
    import numpy as np
    from PIL import Image

    from fwmrl.agents.evaluation import GIF_MIN_HEIGHT, record_gif
    from fwmrl.agents.policy import MemoryActorCritic

    config = load_config(ROOT / "configs/gridworld_fwm.yaml", ["env.kwargs={max_steps: 5}"])
    env = gym.make(config.env.id, **config.env.kwargs)
    policy = MemoryActorCritic(env.observation_space, env.action_space, core="lstm")
    frames = record_gif(policy, config.env.id, tmp_path / "e.gif", config.env.kwargs)
    image = Image.open(tmp_path / "e.gif")
    assert frames == 6 and image.n_frames == 6
    assert image.height > GIF_MIN_HEIGHT  # the maze scaled up, plus the caption band
    band = np.asarray(image.convert("RGB"))[-40:]
    assert (band < 128).any(), "the caption band holds no text"


def test_sweep_best_plot_shows_single_point_curves(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """A quick sweep logs one row per trial: its best.png must still show each point."""
    from fwmrl import sweep

    axes = []
    original = plots.save_figure

    def keep(fig, out):
        axes.extend(fig.axes)
        return original(fig, out)

    monkeypatch.setattr(plots, "save_figure", keep)
    rows = [{"point": "p0", "seeds": [0, 1], "params": {"algo.lr": 0.001}, "n": 2}]
    curves = {("p0", 0): [(1280.0, 3.0)], ("p0", 1): [(1280.0, 5.0)]}
    sweep.plot_best(rows, curves, tmp_path / "best.png", top_k=1)
    (line,) = [x for x in axes[0].lines if x.get_label().startswith("#1")]
    assert line.get_marker() == "o" and list(line.get_ydata()) == [4.0]


def test_plot_runs_only_reads_files(tmp_path: Path, drawn: list) -> None:
    """plots.py draws from the run's files: with no references.json it draws none and runs no
    env (the CLI and the end of a run compute references first)."""
    row = [{"update": 1, "env_steps": 10, "episode_return_mean": 1.0}]
    run = _fake_run(tmp_path / "a", "configs/gridworld_fwm.yaml", row)
    plots.plot_runs([run], tmp_path / "c.png")
    assert not (run / "references.json").exists()
    assert not any("random" in line.get_label() for line in drawn[0].lines)


def test_cli_plot_computes_missing_references(tmp_path: Path) -> None:
    row = [{"update": 1, "env_steps": 10, "episode_return_mean": 1.0}]
    run = _fake_run(
        tmp_path / "a", "configs/gridworld_fwm.yaml", row, overrides=["env.kwargs={size: 5}"]
    )
    assert main(["plot", str(run), "-o", str(tmp_path / "c.png")]) == 0
    refs = json.loads((run / "references.json").read_text())
    assert set(refs) == {"random", "oracle"} and refs["oracle"] > refs["random"]
