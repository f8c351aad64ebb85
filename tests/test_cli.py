"""The ``fwmrl`` command end to end with tiny configs, and exact resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fwmrl.cli import main
from fwmrl.config import load_config
from fwmrl.jobs import train_run
from fwmrl.rundir import load_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "env.num_envs=2",
    "env.kwargs={size: 5, max_steps: 6}",
    "core.hidden_size=8",
    "core.memory_size=4",
    "core.read_hops=1",
    "policy.encoder_sizes=[8]",
    "algo.n_steps=4",
    "train.checkpoint_every=2",
    "train.eval_episodes=2",
    "train.progress=false",
    "logging.log_every=1",
    "logging.wandb=disabled",
]


def test_train_resume_eval_plot(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = str(ROOT / "configs/gridworld_fwm.yaml")
    code = main(["train", cfg, "--run-dir", str(run), *TINY, "train.total_steps=40"])
    assert code == 0
    for name in ["config.yaml", "meta.json", "metrics.jsonl", "checkpoint.pt", "eval.json"]:
        assert (run / name).is_file(), name
    assert (run / "curves.png").stat().st_size > 1000
    assert (run / "eval.gif").read_bytes()[:3] == b"GIF"
    assert list((run / "tb").iterdir())
    meta = json.loads((run / "meta.json").read_text())
    assert meta["fwmrl_version"] == "0.1.0"
    data = torch.load(run / "checkpoint.pt", weights_only=True)
    assert data["update"] == 5 and data["env_steps"] == 40
    assert [r["update"] for r in read_metrics(run)] == [1, 2, 3, 4, 5]

    assert main(["train", "--resume", str(run), "train.total_steps=64"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["update"] == 8
    assert [r["update"] for r in read_metrics(run)] == list(range(1, 9))
    capsys.readouterr()

    gif = tmp_path / "ep.gif"
    assert main(["eval", str(run), "--episodes", "3", "--gif", str(gif)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 3 and set(result["references"]) == {"random", "oracle"}
    assert gif.read_bytes()[:3] == b"GIF"

    out = tmp_path / "curves.png"
    assert main(["plot", str(run), str(run), "-o", str(out)]) == 0
    assert out.stat().st_size > 1000


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fwmrl", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_bad_override_is_one_clean_line_with_exit_code_2(tmp_path):
    proc = _run_cli(
        "train", "configs/gridworld_fwm.yaml", "--run-dir", str(tmp_path / "r"), "algo.optimizr=sgd"
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("fwmrl: error")]
    assert len(lines) == 1
    assert "algo.optimizr: unknown key" in lines[0] and "optimizer" in lines[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["algo.optimizer=sgd"], "algo.optimizer: Input should be 'adam' or 'rmsprop'"),
        (["core.memry_size=3"], "core 'fwm' has no argument(s) ['memry_size']; allowed arguments:"),
        (["core.name=gru"], "core.name: unknown core 'gru'; allowed: none, fwm"),
        (["train.total_steps=lots"], "train.total_steps: Input should be a valid integer"),
        (["env.kwargs={size: 2}"], "env: cannot make 'FWM-Gridworld-v0'"),
        (["trainn.seed=1"], "trainn: unknown key; allowed keys: env, core, policy"),
        (["seed"], "unexpected argument 'seed'"),
    ],
)
def test_config_errors_name_the_key(tmp_path, capsys, args, expected):
    cfg = str(ROOT / "configs/gridworld_fwm.yaml")
    code = main(["train", cfg, "--run-dir", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


def test_resume_and_eval_need_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_envs_lists_ids():
    proc = _run_cli("envs")
    assert proc.returncode == 0
    for env_id in [
        "FWM-Gridworld-v0",
        "FWM-GraphNav-v0",
        "FWM-KeyValue-v0",
        "FWM-CueRecall-v0",
        "FWM-MetaWorld-ML45-v0",
    ]:
        assert env_id in proc.stdout


def _params(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoint.pt")["policy"]


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, monkeypatch):
    from fwmrl.agents.a2c import A2C

    overrides = [
        *TINY,
        "env.num_envs=3",
        "train.total_steps=96",
        "train.checkpoint_every=3",
        "train.plot_at_end=false",
        "train.gif_at_end=false",
        "logging.tensorboard=false",
    ]
    config = load_config(ROOT / "configs/gridworld_fwm.yaml", overrides)
    train_run(config, tmp_path / "full")

    # the same run "killed" during update 5 (after the checkpoint of update 3) ...
    original = A2C.train_on_rollout

    def crash(self, rollout):
        if self.update == 4:
            raise RuntimeError("killed")
        return original(self, rollout)

    monkeypatch.setattr(A2C, "train_on_rollout", crash)
    with pytest.raises(RuntimeError, match="killed"):
        train_run(config, tmp_path / "cut")
    assert load_checkpoint(tmp_path / "cut/checkpoint.pt")["update"] == 3
    monkeypatch.setattr(A2C, "train_on_rollout", original)
    # ... and resumed ends with exactly the same parameters and metrics
    train_run(config, tmp_path / "cut", resume=True)
    full, cut = _params(tmp_path / "full"), _params(tmp_path / "cut")
    assert all(torch.equal(full[k], cut[k]) for k in full)
    strip = ("time_s", "cpu_time_s", "steps_per_s")
    rows = [
        [{k: v for k, v in r.items() if k not in strip} for r in read_metrics(tmp_path / d)]
        for d in ("full", "cut")
    ]
    assert rows[0] == rows[1]
