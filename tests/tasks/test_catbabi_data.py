"""catbAbI data paths: both bAbI v1.2 namings (``en/``, ``en-10k/``: ``qa1_<name>_train.txt``;
``en-valid/``, ``en-valid-10k/``: ``qa1_train.txt``/``qa1_valid.txt``/``qa1_test.txt``), a mistyped
``task.data`` refused without writing anything, per-epoch story reshuffling (seeded, resumable
exactly), and ``data.json`` recording what a run read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fwmrl.cli import main
from fwmrl.config import ConfigError, load_config
from fwmrl.jobs import train_run
from fwmrl.rundir import load_checkpoint
from fwmrl.tasks.babi import BabiFormatError, catbabi_data, find_task_files
from fwmrl.tasks.babi_generator import format_story, generate_story
from fwmrl.tasks.job import build_trainer, load_task_data

ROOT = Path(__file__).resolve().parents[2]
COMMON = [
    "train.checkpoint_every=5",
    "train.eval_every=5",
    "train.progress=false",
    "train.plot_at_end=false",
    "logging.log_every=1",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
]
TINY = [
    "task.tasks=[1]",
    "task.batch_size=2",
    "task.eval_batch_size=2",
    "task.seq_len=40",
    "task.embedding_size=8",
    "core.hidden_size=8",
    "core.memory_size=4",
]


def _stories(task: int, n: int, seed: int) -> str:
    rng = np.random.default_rng([seed, task])
    return "".join(format_story(generate_story(task, rng)) for _ in range(n))


def _release(root: Path) -> Path:
    """A miniature of the v1.2 release: ``en/`` (train/test, long names) and ``en-valid/``
    (train/valid/test, short names) for tasks 1 and 6."""
    for task, name in ((1, "single-supporting-fact"), (6, "yes-no-questions")):
        en = root / "en"
        en.mkdir(parents=True, exist_ok=True)
        (en / f"qa{task}_{name}_train.txt").write_text(_stories(task, 10, 0))
        (en / f"qa{task}_{name}_test.txt").write_text(_stories(task, 4, 1))
        valid = root / "en-valid"
        valid.mkdir(parents=True, exist_ok=True)
        (valid / f"qa{task}_train.txt").write_text(_stories(task, 9, 0))
        (valid / f"qa{task}_valid.txt").write_text(_stories(task, 3, 2))
        (valid / f"qa{task}_test.txt").write_text(_stories(task, 4, 1))
    return root


def test_both_release_namings_are_read(tmp_path):
    root = _release(tmp_path / "tasks_1-20_v1-2")
    files = find_task_files(root / "en-valid", 6)
    assert {s: p.name for s, p in files.items()} == {
        "train": "qa6_train.txt",
        "valid": "qa6_valid.txt",
        "test": "qa6_test.txt",
    }
    assert set(find_task_files(root / "en", 1)) == {"train", "test"}
    # 5 questions per generated story of tasks 1 and 6
    answers = {}
    for layout in ("en", "en-valid"):
        data = catbabi_data(root / layout, [1, 6], valid_fraction=0.2)
        answers[layout] = {s: int(data.split(s).score_mask.sum()) for s in ("train", "valid")}
        assert [p.name.startswith("qa") for p in data.files] == [True] * len(data.files)
    assert answers["en"] == {"train": 2 * 8 * 5, "valid": 2 * 2 * 5}  # 20 % of 10 held out
    assert answers["en-valid"] == {"train": 2 * 9 * 5, "valid": 2 * 3 * 5}  # its own valid file
    with pytest.raises(BabiFormatError, match="several files for task 1.*en-10k/ or en-valid"):
        catbabi_data(root, [1])  # the release root holds both layouts


def test_mistyped_data_folder_is_refused_and_left_alone(tmp_path, capsys):
    typo = tmp_path / "en-10K"
    args = ["train", str(ROOT / "configs/catbabi_fwm.yaml"), f"task.data={typo}", *COMMON]
    assert main([*args, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"fwmrl: error: task.data: {typo} does not exist")
    assert "task.generate=true" in err and not typo.exists()
    (tmp_path / "empty").mkdir()
    config = load_config(ROOT / "configs/catbabi_fwm.yaml", [f"task.data={tmp_path / 'empty'}"])
    with pytest.raises(ConfigError, match="holds no bAbI files"):
        load_task_data(config)
    assert list((tmp_path / "empty").iterdir()) == []


def test_generation_is_explicit_and_checks_its_parameters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # task.data: null generates under ./runs/data/generated
    config = load_config(ROOT / "configs/catbabi_fwm.yaml", ["task.generate_stories=6", *TINY])
    data = load_task_data(config)
    folder = tmp_path / "runs/data/generated/babi-qa1-n6-seed0"
    assert data.origin["path"] == str(folder) and data.origin["generated_now"] is True
    assert data.origin["generator"]["parts"]["1"] == {
        "train_stories": 6,
        "test_stories": 1,
        "seed": 0,
    }
    again = load_task_data(config)
    assert again.origin["generated_now"] is False and again.vocab == data.vocab
    named = ["task.generate=true", f"task.data={folder}", "task.generate_stories=7", *TINY]
    with pytest.raises(ConfigError, match="generated with .*'train_stories': 6.*another folder"):
        load_task_data(load_config(ROOT / "configs/catbabi_fwm.yaml", named))


def _config(tmp_path: Path, extra: list[str]):
    data = tmp_path / "babi"
    overrides = [f"task.data={data}", "task.generate=true", "task.generate_stories=8", *TINY]
    return load_config(ROOT / "configs/catbabi_fwm.yaml", [*overrides, *COMMON, *extra])


def test_each_epoch_reads_a_new_story_order(tmp_path):
    trainer = build_trainer(_config(tmp_path, []))
    first = trainer.batches.inputs.clone()
    length = trainer.batches.length
    steps = -(-length // 40)  # windows per epoch
    orders = []
    for _ in range(3):
        for _ in range(steps):
            trainer.learn_update()
        orders.append(trainer.batches.inputs.clone())  # epochs 0, 1, 2
    trainer.learn_update()  # the wrap happens at the start of the next step
    assert trainer.epoch == 3
    expected = trainer.data.reorder_train(np.random.default_rng([0, 3]))
    assert torch.equal(trainer.batches.inputs, trainer._batchify("train", 2, expected).inputs)
    assert not torch.equal(first, trainer.batches.inputs)
    assert not torch.equal(orders[0], orders[1])
    a = trainer.data.reorder_train(np.random.default_rng([0, 1]))
    b = trainer.data.reorder_train(np.random.default_rng([1, 1]))
    assert np.array_equal(np.sort(a.inputs), np.sort(trainer.data.train.inputs))
    assert not np.array_equal(a.inputs, b.inputs)  # train.seed changes the order
    fixed = build_trainer(_config(tmp_path, ["task.reshuffle=false"]))
    for _ in range(steps + 1):
        fixed.learn_update()
    assert fixed.epoch == 1 and torch.equal(fixed.batches.inputs, first)


def test_resume_inside_a_reshuffled_epoch_is_exact(tmp_path):
    config = _config(tmp_path, ["train.checkpoint_every=7"])
    length = build_trainer(config).batches.length
    total = 3 * -(-length // 40) + 2  # into the fourth epoch
    cut = 2 * -(-length // 40) + 1  # a checkpoint in the third
    with_steps = lambda n: config.model_copy(  # noqa: E731
        update={"train": config.train.model_copy(update={"total_steps": n, "checkpoint_every": n})}
    )
    train_run(with_steps(total), tmp_path / "full")
    train_run(with_steps(cut), tmp_path / "split")
    assert load_checkpoint(tmp_path / "split/checkpoint.pt")["epoch"] == 2
    train_run(with_steps(total), tmp_path / "split", resume=True)
    a = load_checkpoint(tmp_path / "full/checkpoint.pt")
    b = load_checkpoint(tmp_path / "split/checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 3 and a["reshuffle"] is True
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_data_json_records_path_origin_and_digests(tmp_path, capsys):
    config = _config(tmp_path, ["train.total_steps=3"])
    run = tmp_path / "run"
    train_run(config, run)
    record = json.loads((run / "data.json").read_text())
    assert record["path"] == str((tmp_path / "babi").resolve()) and record["generated"] is True
    assert record["generated_now"] is True
    names = [f["name"] for f in record["files"]]
    assert names == ["qa1_single-supporting-fact_test.txt", "qa1_single-supporting-fact_train.txt"]
    for f in record["files"]:
        assert (
            f["sha256"] == hashlib.sha256((tmp_path / "babi" / f["name"]).read_bytes()).hexdigest()
        )
    train = tmp_path / "babi/qa1_single-supporting-fact_train.txt"
    train.write_text(train.read_text().replace("Mary", "Marie", 1))
    assert main(["train", "--resume", str(run), "train.total_steps=6"]) == 2
    err = capsys.readouterr().err
    assert "task.data: the data differ" in err and "qa1_single-supporting-fact_train.txt" in err
    released = _release(tmp_path / "release")
    overrides = [f"task.data={released / 'en-valid'}", "train.total_steps=1", *TINY, *COMMON]
    train_run(load_config(ROOT / "configs/catbabi_fwm.yaml", overrides), tmp_path / "real")
    real = json.loads((tmp_path / "real/data.json").read_text())
    assert real["generated"] is False and real["generator"] is None
    assert [f["name"] for f in real["files"]] == ["qa1_test.txt", "qa1_train.txt", "qa1_valid.txt"]
