"""The one job loop drives any trainer through the small ``Job`` protocol: a counting toy trainer
gets the records, evaluations, best and periodic checkpoints, resume, eval.json and pictures that
A2C, PPO and the supervised trainers get; both adapters implement the whole protocol."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from fwmrl.config import Config, load_config
from fwmrl.errors import NonFiniteLossError
from fwmrl.jobloop import Job, run_job
from fwmrl.rundir import BEST_CHECKPOINT, CHECKPOINT, load_checkpoint, read_metrics

QUIET = [
    "train.progress=false",
    "train.plot_at_end=false",
    "train.gif_at_end=false",
    "logging.tensorboard=false",
]


class CountingJob:
    """A trainer whose weight is the number of updates; its validation score peaks at update 4."""

    steps_unit = "toy steps"
    headline = "valid_score"
    evaluation_label = "the toy split"

    def __init__(self, config: Config, fail_at: int | None = None) -> None:
        self.config, self.fail_at = config, fail_at
        self.update, self.rank, self.world = 0, 0, 1
        self.weight = torch.zeros(1)
        self.calls: list[str] = []
        self.best = -1.0

    @property
    def steps(self) -> int:
        return 10 * self.update

    def restore(self, data: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        self.update, self.weight = int(data["update"]), data["weight"].clone()
        return {"restored_weight": float(self.weight)}

    def write_files(self, run_dir: Path, resume: bool) -> None:
        (run_dir / "toy.txt").write_text(f"resume={resume}\n")

    def learn_update(self) -> dict[str, float]:
        self.update += 1
        if self.update == self.fail_at:
            raise NonFiniteLossError(f"the toy loss became nan at update {self.update}")
        self.weight += 1
        return {"loss": float(self.update)}

    def record(self, seconds: float) -> dict[str, Any]:
        return {"weight": float(self.weight)}

    def evaluate(self) -> tuple[dict[str, float], bool]:
        score = -abs(self.update - 4)
        improved = score > self.best
        self.best = max(self.best, score)
        return {"valid_score": score}, improved

    def check_finite(self) -> None:
        self.calls.append(f"check {self.update}")

    def state_dict(self) -> dict[str, Any]:
        return {
            "update": self.update,
            "weight": self.weight.clone(),
            "config": self.config.to_dict(),
        }

    def final_evaluation(self, last_record: dict[str, Any]) -> dict[str, Any]:
        return {"score": last_record.get("valid_score"), "weight": float(self.weight)}

    def summary(self) -> dict[str, Any]:
        return {"toy_steps": self.steps}

    def pictures(self, run_dir: Path) -> dict[str, str]:
        return {"picture": str(run_dir / "toy.png")}

    def close(self) -> None:
        self.calls.append("close")


def config(*overrides: str) -> Config:
    return load_config(None, [*QUIET, *overrides])


def test_the_loop_logs_evaluates_checkpoints_and_summarises(tmp_path: Path) -> None:
    jobs: list[CountingJob] = []

    def make(c: Config) -> Job:
        jobs.append(CountingJob(c))
        return jobs[-1]

    run = tmp_path / "run"
    cfg = config(
        "train.total_steps=70",
        "train.eval_every=2",
        "train.checkpoint_every=3",
        "logging.log_every=5",
    )
    seen: list[dict[str, Any]] = []
    summary = run_job(make, cfg, run, on_log=seen.append)
    job = jobs[0]
    records = read_metrics(run)
    assert records == seen
    # a record at every 5th update, at every evaluation (2, 4, 6) and at the last one (7)
    assert [r["update"] for r in records] == [2, 4, 5, 6, 7]
    assert [r["env_steps"] for r in records] == [20, 40, 50, 60, 70]
    assert [r.get("valid_score") for r in records] == [-2, 0, None, -2, -3]
    assert records[2]["loss"] == pytest.approx(5.0)  # the mean since the previous record (update 5)
    assert records[1]["loss"] == pytest.approx(3.5)  # updates 3 and 4
    assert all("time_s" in r and "cpu_time_s" in r and "weight" in r for r in records)
    # checkpoints every 3 updates and at the end, each after check_finite; best.pt at update 4
    assert job.calls == ["check 3", "check 6", "check 7", "close"]
    assert load_checkpoint(run / CHECKPOINT)["update"] == 7
    assert load_checkpoint(run / BEST_CHECKPOINT)["update"] == 4
    assert json.loads((run / "eval.json").read_text()) == {"score": -3, "weight": 7.0}
    assert (run / "toy.txt").read_text() == "resume=False\n"
    assert summary == {
        "run_dir": str(run),
        "update": 7,
        "toy_steps": 70,
        "eval": {"score": -3, "weight": 7.0},
        "picture": str(run / "toy.png"),
    }
    meta = json.loads((run / "meta.json").read_text())
    assert "resumes" not in meta and "started" in meta

    # resume with a larger budget: the job restores, meta.json records it, training continues
    more = cfg.model_copy(update={"train": cfg.train.model_copy(update={"total_steps": 90})})
    summary = run_job(make, more, run, resume=True)
    assert jobs[1].update == 9 and summary["update"] == 9
    assert [r["update"] for r in read_metrics(run)] == [2, 4, 5, 6, 7, 8, 9]
    resume = json.loads((run / "meta.json").read_text())["resumes"][-1]
    assert resume["from_update"] == 7 and resume["env_steps"] == 70
    assert resume["restored_weight"] == 7.0
    assert resume["overrides"] == {"train.total_steps": [70, 90]}
    assert (run / "toy.txt").read_text() == "resume=True\n"


def test_a_spent_budget_checkpoints_at_once_and_says_so(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = config("train.total_steps=30")
    run_job(CountingJob, cfg, run)
    with pytest.warns(UserWarning, match="has done 30 toy steps, train.total_steps is 30"):
        run_job(CountingJob, cfg, run, resume=True)
    assert load_checkpoint(run / CHECKPOINT)["update"] == 3


def test_a_nonfinite_loss_stops_the_loop_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    jobs: list[CountingJob] = []

    def make(c: Config) -> Job:
        jobs.append(CountingJob(c, fail_at=5))
        return jobs[-1]

    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="update 5"):
        run_job(make, config("train.total_steps=100", "train.checkpoint_every=2"), run)
    assert load_checkpoint(run / CHECKPOINT)["update"] == 4
    assert jobs[0].calls[-1] == "close"
    assert not (run / "eval.json").exists()


@pytest.mark.parametrize("adapter", ["fwmrl.agents.job:RLJob", "fwmrl.tasks.job:TaskJob"])
def test_each_adapter_implements_the_whole_protocol(adapter: str) -> None:
    import importlib

    module, name = adapter.split(":")
    cls = getattr(importlib.import_module(module), name)
    members = {m for m in dir(Job) if not m.startswith("_")} | set(Job.__annotations__)
    instance_attributes = {"update", "rank", "world", "evaluation_label", "headline"}
    missing = sorted(m for m in members - instance_attributes if not hasattr(cls, m))
    assert missing == []


class BusyJob(CountingJob):
    """A :class:`CountingJob` whose updates each take about 20 ms of CPU."""

    def learn_update(self) -> dict[str, float]:
        end = time.process_time() + 0.02
        while time.process_time() < end:
            pass
        return super().learn_update()


def test_a_resumed_run_continues_its_wall_and_cpu_time(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = config("train.total_steps=60", "train.checkpoint_every=3", "logging.log_every=1")
    run_job(BusyJob, cfg, run)
    spent = read_metrics(run)[-1]
    assert spent["cpu_time_s"] >= 0.1 and spent["time_s"] >= 0.1  # 6 updates of 20 ms
    more = cfg.model_copy(update={"train": cfg.train.model_copy(update={"total_steps": 90})})
    run_job(BusyJob, more, run, resume=True)
    records = read_metrics(run)
    for key in ("time_s", "cpu_time_s"):
        values = [r[key] for r in records]
        assert values == sorted(values), (key, values)  # no fall back at the resume
        assert values[-1] >= spent[key] + 0.05  # 3 more updates of 20 ms on top
