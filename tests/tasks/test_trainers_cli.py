"""Each trainer end to end through ``fwmrl``: train into a run dir, resume, evaluate, plot-memory;
the loss decreases on a tiny problem; resuming continues exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fwmrl.cli import main
from fwmrl.config import load_config
from fwmrl.jobs import train_run
from fwmrl.rundir import load_checkpoint, read_metrics
from fwmrl.tasks.corpus import write_corpus

ROOT = Path(__file__).resolve().parents[2]
COMMON = [
    "train.checkpoint_every=10",
    "train.eval_every=20",
    "train.progress=false",
    "logging.log_every=1",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
]


def _tiny(kind: str, tmp_path: Path) -> tuple[str, list[str]]:
    if kind == "retrieval":
        return "configs/retrieval_fwm.yaml", [
            "task.train_queries=400",
            "task.valid_queries=40",
            "task.test_queries=40",
            "task.batch_size=8",
            "task.eval_batch_size=4",
            "task.seq_len=16",
            "task.lr=0.01",
            "core.hidden_size=16",
            "core.memory_size=6",
        ]
    if kind == "catbabi":
        return "configs/catbabi_fwm.yaml", [
            f"task.data={tmp_path / 'babi'}",
            "task.generate=true",
            "task.generate_stories=20",
            "task.tasks=[1, 6]",
            "task.mode=lm",
            "task.batch_size=4",
            "task.eval_batch_size=2",
            "task.seq_len=20",
            "task.embedding_size=16",
            "task.lr=0.01",
            "core.hidden_size=16",
            "core.memory_size=6",
        ]
    write_corpus(tmp_path / "corpus", train_lines=400, seed=0)
    return "configs/lm_lstm.yaml", [
        f"task.data={tmp_path / 'corpus'}",
        "task.batch_size=4",
        "task.eval_batch_size=2",
        "task.seq_len=12",
        "task.embedding_size=16",
        "task.lr=0.01",
        "core.hidden_size=24",
    ]


@pytest.mark.parametrize("kind", ["retrieval", "catbabi", "lm"])
def test_train_resume_eval(kind, tmp_path, capsys):
    config, tiny = _tiny(kind, tmp_path)
    run = tmp_path / "run"
    args = ["train", str(ROOT / config), "--run-dir", str(run), *tiny, *COMMON]
    assert main([*args, "train.total_steps=40"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["update"] == 40 and summary["eval"]["parameters"] > 0
    for name in ["config.yaml", "meta.json", "metrics.jsonl", "checkpoint.pt", "eval.json"]:
        assert (run / name).is_file(), name
    assert (run / "curves.png").stat().st_size > 1000
    records = read_metrics(run)
    assert [r["update"] for r in records] == list(range(1, 41))
    losses = [r["loss"] for r in records]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    headline = {"retrieval": "partial_accuracy", "catbabi": "accuracy", "lm": "perplexity"}[kind]
    assert f"valid_{headline}" in records[19] and f"valid_{headline}" in records[-1]
    evaluation = json.loads((run / "eval.json").read_text())
    assert set(evaluation) >= {"valid", "test"} and headline in evaluation["test"]
    if kind == "catbabi":
        assert {"acc_qa1", "acc_qa6", "perplexity"} <= set(evaluation["test"])

    assert main(["train", "--resume", str(run), "train.total_steps=50"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["update"] == 50
    assert [r["update"] for r in read_metrics(run)] == list(range(1, 51))
    capsys.readouterr()
    assert main(["eval", str(run), "--splits", "test"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 50 and headline in result["test"]

    if kind != "lm":  # FWM runs: the memory plot
        out = tmp_path / "memory.png"
        assert main(["plot-memory", str(run), "-o", str(out), "--steps", "24"]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    else:  # an LSTM has no fast weights to show
        assert main(["plot-memory", str(run)]) == 2
        assert "FWM or MNM" in capsys.readouterr().err


def test_resume_is_exact_with_dropout(tmp_path):
    _, tiny = _tiny("lm", tmp_path)
    overrides = [*tiny, *COMMON, "task.dropout_input=0.2", "task.dropout_embedding=0.1"]
    overrides.append("task.dropout_weight=0.3")
    config = load_config(ROOT / "configs/lm_fwm.yaml", [*overrides, "core.hidden_size=16"])
    full, split = tmp_path / "full", tmp_path / "split"
    train_run(
        config.model_copy(update={"train": config.train.model_copy(update={"total_steps": 14})}),
        full,
    )
    short = config.model_copy(update={"train": config.train.model_copy(update={"total_steps": 7})})
    train_run(short, split)
    train_run(
        config.model_copy(update={"train": config.train.model_copy(update={"total_steps": 14})}),
        split,
        resume=True,
    )
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert a["update"] == b["update"] == 14 and a["position"] == b["position"]
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], msg=key)
    assert [r["loss"] for r in read_metrics(full)] == [r["loss"] for r in read_metrics(split)]


def test_mnm_retrieval_adds_the_meta_loss_and_plots(tmp_path, capsys):
    config, tiny = _tiny("retrieval", tmp_path)
    run = tmp_path / "mnm"
    args = [
        "train",
        str(ROOT / "configs/retrieval_mnm_p.yaml"),
        "--run-dir",
        str(run),
        *tiny[:-2],
        "core.hidden_size=12",
        "core.key_size=6",
        "core.memory_size=6",
        *COMMON,
        "train.total_steps=3",
    ]
    assert main(args) == 0
    assert all(r["aux_loss"] > 0 for r in read_metrics(run))
    out = tmp_path / "m.png"
    assert main(["plot-memory", str(run), "--input", "ab=c;ba=d;?ab.", "-o", str(out)]) == 0
    assert out.stat().st_size > 5000


def test_bad_task_configs_exit_with_one_line(tmp_path, capsys):
    assert main(["train", str(ROOT / "configs/lm_fwm.yaml"), "task.kind=vision"]) == 2
    assert "task.kind" in capsys.readouterr().err
    missing = tmp_path / "nothing"
    args = [
        "train",
        str(ROOT / "configs/lm_fwm.yaml"),
        f"task.data={missing}",
        "task.generate=false",
    ]
    assert main([*args, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"task.data: {missing} does not exist" in err and "task.generate=true" in err
    assert not missing.exists()  # nothing generated into a mistyped folder
    args = [
        "train",
        str(ROOT / "configs/catbabi_fwm.yaml"),
        f"task.data={missing}",
        "task.generate=true",
        "task.tasks=[4]",
    ]
    assert main([*args, "--run-dir", str(tmp_path / "r2")]) == 2
    assert "cannot generate bAbI task(s) [4]" in capsys.readouterr().err
