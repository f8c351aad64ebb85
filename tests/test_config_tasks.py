"""``task`` is validated per kind (a discriminated union on ``task.kind``): each trainer lists only
its own keys, a key of another kind or an unknown kind is one clear error naming the field and what
is allowed, every shipped config and sweep still loads, and a flat ``task`` section saved before the
per-kind sections (config.yaml and checkpoints of older runs) loads as its kind's keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fwmrl.config import (
    TASK_KINDS,
    TASKS,
    CatbabiTask,
    ConfigError,
    LMTask,
    RetrievalTask,
    RLTask,
    config_from_dict,
    load_config,
)
from fwmrl.rundir import CHECKPOINT, load_run_config
from fwmrl.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]

# every key of the one flat task model before the per-kind sections, with its default
LEGACY_TASK = {
    "kind": "rl",
    "data": None,
    "generate": False,
    "reshuffle": True,
    "seq_len": 32,
    "batch_size": 32,
    "eval_batch_size": 32,
    "embedding_size": 32,
    "optimizer": "adam",
    "lr": 0.001,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "train_queries": 100000,
    "valid_queries": 5000,
    "test_queries": 5000,
    "vocab_size": None,
    "tasks": [1, 2, 3, 6, 7],
    "mode": "qa",
    "valid_fraction": 0.1,
    "generate_stories": 1000,
    "dropout_embedding": 0.0,
    "dropout_input": 0.0,
    "dropout_output": 0.0,
    "dropout_weight": 0.0,
    "data_seed": 0,
}


def error_of(*overrides: str, path: str | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, list(overrides))
    return str(caught.value)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_as_its_kind(path: Path) -> None:
    config = load_config(path)
    kind = (yaml.safe_load(path.read_text()).get("task") or {}).get("kind", "rl")
    assert type(config.task) is TASKS[kind]
    assert config_from_dict(config.to_dict()) == config  # and round-trips


@pytest.mark.parametrize("path", sorted((ROOT / "configs/sweeps").glob("*.yaml")), ids=str)
def test_every_shipped_sweep_loads(path: Path) -> None:
    spec, base = load_sweep(path)
    assert spec.space


def test_each_kind_lists_only_its_own_keys() -> None:
    assert list(RLTask.model_fields) == ["kind"]
    assert "train_queries" in RetrievalTask.model_fields
    assert "tasks" not in RetrievalTask.model_fields and "data" not in RetrievalTask.model_fields
    assert {"tasks", "mode", "reshuffle", "data"} <= set(CatbabiTask.model_fields)
    assert "train_queries" not in CatbabiTask.model_fields
    assert "data" in LMTask.model_fields and "tasks" not in LMTask.model_fields
    for model in TASKS.values():  # kind comes first in every dump
        assert next(iter(model.model_fields)) == "kind"
    assert load_config(None).to_dict()["task"] == {"kind": "rl"}


def test_a_key_of_another_kind_names_the_field_the_kind_and_the_kinds_that_have_it() -> None:
    message = error_of("task.seq_len=16")
    assert message.startswith("task.seq_len: not a key of task.kind rl; allowed keys: kind;")
    assert "seq_len is a key of task.kind retrieval / catbabi / lm" in message
    message = error_of("task.tasks=[1]", path=str(ROOT / "configs/retrieval_fwm.yaml"))
    assert message.startswith("task.tasks: not a key of task.kind retrieval; allowed keys: kind,")
    assert "train_queries" in message and "tasks is a key of task.kind catbabi" in message
    message = error_of("task.kind=lm", "task.colour=red")
    assert message.startswith("task.colour: not a key of task.kind lm")
    assert "is a key of" not in message  # no kind has it


def test_an_unknown_kind_lists_the_allowed_ones() -> None:
    message = error_of("task.kind=vision", path=str(ROOT / "configs/lm_fwm.yaml"))
    assert message == f"task.kind: unknown kind vision; allowed: {', '.join(TASK_KINDS)}"


def test_values_are_checked_per_kind() -> None:
    assert "task.tasks: bAbI task numbers are 1..20" in error_of(
        "task.kind=catbabi", "task.tasks=[30]"
    )
    assert error_of("task.kind=retrieval", "task.vocab_size=3").startswith("task.vocab_size:")
    assert "task.mode:" in error_of("task.kind=catbabi", "task.mode=story")


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_a_flat_legacy_task_section_loads_as_its_kind(kind: str) -> None:
    data = {"task": {**LEGACY_TASK, "kind": kind, "seq_len": 12}}
    task = config_from_dict(data).task
    assert type(task) is TASKS[kind]
    assert task.model_dump() == {
        k: v for k, v in data["task"].items() if k in TASKS[kind].model_fields
    }
    # a hand-written section that is not a full dump is checked key by key
    with pytest.raises(ConfigError, match="not a key of task.kind"):
        config_from_dict({"task": {"kind": "retrieval", "tasks": [1, 2, 3, 6, 7]}})


def test_a_run_directory_written_before_the_per_kind_sections_still_loads(tmp_path: Path) -> None:
    """config.yaml and the checkpoint's config both hold the flat section: they agree, and the
    run's config is the kind's (what ``fwmrl eval``, ``plot`` and ``--resume`` read)."""
    config = load_config(ROOT / "configs/retrieval_fwm.yaml")
    flat = config.to_dict()
    flat["task"] = {**LEGACY_TASK, **flat["task"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(flat, sort_keys=False))
    torch.save({"update": 3, "config": flat}, tmp_path / CHECKPOINT)
    assert load_run_config(tmp_path) == config
