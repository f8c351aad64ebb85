"""``best.pt``: written whenever the validation headline metric improves (the checkpoint format,
loadable with ``weights_only=True``); ``fwmrl eval RUN --checkpoint best|last`` evaluates either;
RL runs refuse ``best``; a resume drops a ``best.pt`` from the abandoned steps."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fwmrl.cli import main
from fwmrl.config import load_config
from fwmrl.jobs import train_run
from fwmrl.rundir import load_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[2]
RETRIEVAL = [
    "task.train_queries=300",
    "task.valid_queries=30",
    "task.test_queries=30",
    "task.batch_size=8",
    "task.eval_batch_size=4",
    "task.seq_len=16",
    "task.lr=0.01",
    "core.hidden_size=16",
    "core.memory_size=6",
    "train.total_steps=40",
    "train.checkpoint_every=10",
    "train.eval_every=4",
    "train.progress=false",
    "train.plot_at_end=false",
    "logging.log_every=4",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
]


def test_best_checkpoint_is_the_best_validation_step(tmp_path, capsys):
    run = tmp_path / "run"
    train_run(load_config(ROOT / "configs/retrieval_fwm.yaml", RETRIEVAL), run)
    records = [r for r in read_metrics(run) if "valid_partial_accuracy" in r]
    values = [r["valid_partial_accuracy"] for r in records]
    best = max(values)
    best_step = records[values.index(best)]["update"]  # the first step reaching the best value
    saved = load_checkpoint(run / "best.pt")
    assert saved["update"] == best_step and saved["best"] == best
    assert set(saved) == set(load_checkpoint(run / "checkpoint.pt"))  # the same format
    torch.load(run / "best.pt", weights_only=True)  # tensors and plain data only

    assert main(["eval", str(run), "--checkpoint", "best", "--splits", "valid"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == str(run / "best.pt") and result["steps"] == best_step
    assert result["valid"]["partial_accuracy"] == best
    assert main(["eval", str(run), "--splits", "valid"]) == 0  # default: last
    last = json.loads(capsys.readouterr().out)
    assert last["steps"] == 40 and last["checkpoint"] == str(run / "checkpoint.pt")
    assert last["valid"]["partial_accuracy"] == values[-1]


def test_resume_drops_a_best_checkpoint_of_abandoned_steps(tmp_path, capsys):
    overrides = [*RETRIEVAL, "train.total_steps=8", "train.checkpoint_every=4"]
    run = tmp_path / "run"
    train_run(load_config(ROOT / "configs/retrieval_fwm.yaml", overrides), run)
    assert load_checkpoint(run / "best.pt")["update"] in (4, 8)
    # the run as if killed after step 4's checkpoint but with a best.pt of step 8
    best = load_checkpoint(run / "best.pt")
    early = {**best, "update": 4, "best": 1.0}  # a step-4 checkpoint no later step can beat
    torch.save(early, run / "checkpoint.pt")
    torch.save({**best, "update": 8}, run / "best.pt")
    assert main(["train", "--resume", str(run), "train.total_steps=6"]) == 0
    capsys.readouterr()
    assert load_checkpoint(run / "checkpoint.pt")["update"] == 6
    assert not (run / "best.pt").exists()  # step 8's was dropped, nothing improved on 1.0
    assert main(["eval", str(run), "--checkpoint", "best"]) == 2
    assert "--checkpoint best" in capsys.readouterr().err


def test_rl_runs_evaluate_the_last_checkpoint_only(tmp_path, capsys):
    run = tmp_path / "rl"
    tiny = [
        "env.num_envs=2",
        "env.kwargs={size: 5, max_steps: 6}",
        "core.hidden_size=8",
        "policy.encoder_sizes=[8]",
        "algo.n_steps=4",
        "train.total_steps=16",
        "train.eval_episodes=1",
        "train.progress=false",
        "train.plot_at_end=false",
        "train.gif_at_end=false",
        "logging.wandb=disabled",
        "logging.tensorboard=false",
    ]
    train_run(load_config(ROOT / "configs/gridworld_lstm.yaml", tiny), run)
    assert main(["eval", str(run), "--checkpoint", "best", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "RL runs keep only their last checkpoint" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", str(run), "--checkpoint", "last", "--episodes", "1"]) == 0
    assert "return" in capsys.readouterr().out
