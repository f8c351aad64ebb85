"""Data-parallel supervised training: ``torchrun --nproc_per_node=2 -m fwmrl train`` on gloo/CPU
gives the parameters of a one-process run with the same global batch; rank 0 alone writes the run
directory; checkpoints resume on either world size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fwmrl.cli import main
from fwmrl.config import load_config
from fwmrl.distributed import shard_columns
from fwmrl.jobs import train_run
from fwmrl.rundir import load_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/retrieval_fwm.yaml")
TINY = [
    "task.train_queries=400",
    "task.valid_queries=40",
    "task.test_queries=40",
    "task.batch_size=8",
    "task.eval_batch_size=4",
    "task.seq_len=8",
    "train.num_threads=1",
    "core.hidden_size=16",
    "train.checkpoint_every=2",
    "train.progress=false",
    "train.plot_at_end=false",
    "logging.log_every=1",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
]
SGD = ["task.optimizer=sgd", "task.lr=0.1"]  # a smooth regime: differences stay ~1e-7


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=N -m fwmrl ARGS`` (gloo on CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", "-m", "fwmrl", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def assert_same_parameters(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0.0, msg=key)


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    args = [*TINY, *SGD, "train.total_steps=6"]
    done = torchrun("train", CONFIG, "--run-dir", str(tmp_path / "two"), *args)
    train_run(load_config(CONFIG, args), tmp_path / "one")
    two, one = (
        load_checkpoint(tmp_path / "two/checkpoint.pt"),
        load_checkpoint(tmp_path / "one/checkpoint.pt"),
    )
    assert two["update"] == one["update"] == 6
    assert_same_parameters(two["model"], one["model"], atol=1e-5)
    # parameters moved: the comparison is not trivially true
    fresh = train_run(load_config(CONFIG, [*args, "train.total_steps=1"]), tmp_path / "fresh")
    assert fresh["update"] == 1
    moved = load_checkpoint(tmp_path / "fresh/checkpoint.pt")["model"]
    assert any((moved[k] - one["model"][k]).abs().max() > 1e-3 for k in moved)
    # the checkpoint holds the full-batch core state (both ranks' columns, in rank order)
    assert_same_parameters(two["core_state"], one["core_state"], atol=1e-5)
    assert two["tokens"] == one["tokens"] and two["position"] == one["position"]
    # rank 0 alone logs: one record per step with the global batch's loss
    records_two, records_one = read_metrics(tmp_path / "two"), read_metrics(tmp_path / "one")
    assert [r["update"] for r in records_two] == [1, 2, 3, 4, 5, 6]
    for r2, r1 in zip(records_two, records_one, strict=True):
        assert r2["loss"] == pytest.approx(r1["loss"], abs=1e-5)
        assert r2["train_accuracy"] == pytest.approx(r1["train_accuracy"])
        assert r2["tokens"] == r1["tokens"]
    assert done.stdout.count('"run_dir"') == 1  # one summary printed (rank 0)
    assert done.stderr.count("run directory:") == 1
    evaluation = json.loads((tmp_path / "two/eval.json").read_text())
    assert evaluation["steps"] == 6 and "partial_accuracy" in evaluation["valid"]


def test_shard_columns():
    assert shard_columns(8, 2, 0) == slice(0, 4) and shard_columns(8, 2, 1) == slice(4, 8)
    assert shard_columns(9, 3, 2) == slice(6, 9) and shard_columns(5, 1, 0) == slice(0, 5)
    with pytest.raises(ValueError, match="8 columns cannot be split evenly over 3"):
        shard_columns(8, 3, 0)


@pytest.mark.slow
def test_data_parallel_resume_on_either_world_size(tmp_path):
    # MNM-p: a learned initial memory (unused after the first window) and the meta (aux) loss
    args = [*TINY, *SGD, "core.name=mnm_p", "task.lr=0.2", "task.batch_size=4"]
    torchrun("train", CONFIG, "--run-dir", str(tmp_path / "a"), *args, "train.total_steps=4")
    assert load_checkpoint(tmp_path / "a/checkpoint.pt")["update"] == 4
    subprocess.run(["cp", "-r", str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    torchrun("train", "--resume", str(tmp_path / "a"), "train.total_steps=8")  # 2 -> 2 ranks
    assert main(["train", "--resume", str(tmp_path / "b"), "train.total_steps=8"]) == 0  # 2 -> 1
    train_run(load_config(CONFIG, [*args, "train.total_steps=8"]), tmp_path / "straight")
    straight = load_checkpoint(tmp_path / "straight/checkpoint.pt")
    for name in ("a", "b"):
        resumed = load_checkpoint(tmp_path / name / "checkpoint.pt")
        assert resumed["update"] == 8
        assert_same_parameters(resumed["model"], straight["model"], atol=1e-5)
        assert_same_parameters(resumed["core_state"], straight["core_state"], atol=1e-5)
        assert [r["update"] for r in read_metrics(tmp_path / name)] == list(range(1, 9))
    aux = [r["aux_loss"] for r in read_metrics(tmp_path / "a")]
    ref = [r["aux_loss"] for r in read_metrics(tmp_path / "straight")]
    assert aux == pytest.approx(ref, abs=1e-5)
