"""Run directories you can trust (issue 15): nothing in a run directory runs code, one writer at a
time, the checkpoint's config is the truth, resume overrides are applied or refused, and every
damaged file is one line naming it."""

from __future__ import annotations

import json
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fwmrl.agents.a2c import NonFiniteLossError
from fwmrl.agents.job import build_agent
from fwmrl.cli import main
from fwmrl.config import ConfigError, load_config
from fwmrl.errors import RunError
from fwmrl.jobs import train_run
from fwmrl.rundir import RunLock, RunNote, atomic_torch_save, load_checkpoint, read_metrics

CFG = str(Path(__file__).resolve().parents[1] / "configs/gridworld_fwm.yaml")
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
    "train.plot_at_end=false",
    "train.gif_at_end=false",
    "logging.log_every=1",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
]


def tiny(*overrides: str):
    return load_config(None, [*TINY, *overrides])


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished tiny run of 5 updates (40 env steps), checkpoint at update 5."""
    path = tmp_path / "run"
    train_run(tiny("train.total_steps=40"), path)
    return path


def _snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("fwmrl: error")]
    assert len(lines) == 1, err
    return lines[0]


class _Payload:
    """Unpickling this creates a file: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# ---------------------------------------------------------------------- 1. no code execution
def test_a_crafted_pickled_env_in_a_checkpoint_never_runs(run, tmp_path):
    marker = tmp_path / "pwned"
    data = load_checkpoint(run / "checkpoint.pt")
    payload = pickle.dumps(_Payload(marker))
    pickle.loads(payload).close()  # control: unpickling it does create the marker ...
    assert marker.exists()
    marker.unlink()
    data["format"], data["env_state"] = 1, None  # ... so craft a format-1 checkpoint with it
    data["env_pickle"] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    atomic_torch_save(data, run / "checkpoint.pt")
    with pytest.warns(RunNote, match="pickled env, which is never loaded; the envs were reset"):
        summary = train_run(tiny("train.total_steps=56"), run, resume=True)
    assert summary["env_steps"] == 56
    assert not marker.exists()


def test_a_checkpoint_that_needs_unpickling_is_refused(run, tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"update": 5, "config": {}, "x": _Payload(marker)}, run / "checkpoint.pt")
    assert main(["train", "--resume", str(run)]) == 2
    line = _error_line(capsys)
    assert "checkpoint.pt: cannot be loaded as a checkpoint" in line
    assert main(["eval", str(run)]) == 2
    assert "cannot be loaded as a checkpoint" in _error_line(capsys)
    assert not marker.exists()


def test_a_checkpoint_holds_tensors_and_plain_data_only(run):
    def plain(value) -> bool:
        if isinstance(value, dict):
            return all(plain(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return isinstance(value, (torch.Tensor, str, int, float, bool, type(None)))

    data = load_checkpoint(run / "checkpoint.pt")
    assert plain(data) and "env_pickle" not in data
    assert data["env_state"]["kind"] == "batched"
    assert data["env_state"]["state"]["streams.rngs"].dtype == torch.int64


def test_env_id_of_a_run_dir_does_not_import_modules(run, tmp_path, capsys, monkeypatch):
    marker = tmp_path / "imported"
    name = "fwmrl_test_crafted_envmod"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_checkpoint(run / "checkpoint.pt")
    data["config"]["env"]["id"] = f"{name}:Evil-v0"
    atomic_torch_save(data, run / "checkpoint.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(data["config"]))
    for argv in (["eval", str(run)], ["train", "--resume", str(run)], ["plot", str(run)]):
        assert main(argv) == 2
        line = _error_line(capsys)
        assert "would import the module" in line and "FWMRL_TRUSTED_ENV_MODULES" in line
    assert not marker.exists() and name not in sys.modules
    monkeypatch.setenv("FWMRL_TRUSTED_ENV_MODULES", name)  # an explicit allow lets it through
    assert main(["eval", str(run)]) == 2  # ... to Gymnasium, which imports it (and finds no env)
    assert marker.exists()


# ---------------------------------------------------------------------- 2-4. one writer, truth
def test_a_second_writer_is_refused_in_one_line(run, capsys):
    before = _snapshot(run)
    with RunLock(run):
        assert main(["train", "--resume", str(run), "train.total_steps=56"]) == 2
        assert "is in use by another fwmrl process (pid" in _error_line(capsys)
        with pytest.raises(RunError, match="in use by another fwmrl process"):
            train_run(tiny("train.total_steps=40"), run.parent / "run")
    assert _snapshot(run) == before
    assert main(["train", "--resume", str(run), "train.total_steps=56"]) == 0  # released


def test_lock_is_released_when_the_owner_dies(tmp_path):
    import subprocess

    code = (
        "import os, sys; from fwmrl.rundir import RunLock; "
        f"RunLock({str(tmp_path)!r}).acquire(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with RunLock(tmp_path) as lock:
        assert lock.held


def test_damaged_or_differing_config_yaml_is_one_clear_error(run, capsys):
    config = run / "config.yaml"
    text = config.read_text()
    before = _snapshot(run)
    cases = {
        "": "config.yaml is damaged (the file is empty)",
        "\n".join(text.splitlines()[:5]) + "\n": "differs from the checkpoint's config",
        "env: [unclosed\n": "is damaged",
        "- a list\n": "is damaged",
        text.replace("size: 5", "size: 7"): "env.kwargs.size (checkpoint 5, file 7)",
    }
    for content, expected in cases.items():
        config.write_text(content)
        assert main(["train", "--resume", str(run), "train.total_steps=56"]) == 2
        assert expected in _error_line(capsys)
        assert main(["eval", str(run)]) == 2  # eval never evaluates a default env instead
        assert expected in _error_line(capsys)
        assert _snapshot(run) == {**before, "config.yaml": content.encode()}
    config.unlink()  # a missing config.yaml is rewritten from the checkpoint
    assert main(["train", "--resume", str(run), "train.total_steps=48"]) == 0
    assert yaml.safe_load(config.read_text())["env"]["kwargs"] == {"size": 5, "max_steps": 6}


def test_resume_through_a_symlinked_config_leaves_the_target_alone(run, tmp_path):
    target = tmp_path / "elsewhere.yaml"
    target.write_text((run / "config.yaml").read_text())
    original = target.read_text()
    (run / "config.yaml").unlink()
    (run / "config.yaml").symlink_to(target)
    train_run(tiny("train.total_steps=56"), run, resume=True)
    assert target.read_text() == original
    assert not (run / "config.yaml").is_symlink()
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["total_steps"] == 56


def test_resume_overrides_are_applied(run, capsys):
    args = ["train", "--resume", str(run), "train.total_steps=56", "algo.lr=0.01"]
    assert main(args) == 0
    data = load_checkpoint(run / "checkpoint.pt")
    assert data["env_steps"] == 56
    assert all(g["lr"] == 0.01 for g in data["optimizer"]["param_groups"])
    assert data["config"]["algo"]["lr"] == 0.01
    assert yaml.safe_load((run / "config.yaml").read_text())["algo"]["lr"] == 0.01
    meta = json.loads((run / "meta.json").read_text())
    assert "pytest" in meta["command"] or meta["command"]  # the first start's command stays
    (resume,) = meta["resumes"]
    assert resume["from_update"] == 5 and resume["env_restored"] is True
    assert resume["overrides"] == {"algo.lr": [0.0007, 0.01], "train.total_steps": [40, 56]}


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("env.kwargs={size: 7, max_steps: 6}", "env.kwargs.size (checkpoint 5, requested 7)"),
        ("env.num_envs=5", "env.num_envs (checkpoint 2, requested 5)"),
        ("core.hidden_size=16", "core.hidden_size"),
        ("algo.optimizer=rmsprop", "algo.optimizer"),
        ("train.seed=3", "train.seed"),
    ],
)
def test_resume_overrides_that_cannot_apply_are_refused_before_any_write(
    run, capsys, override, key
):
    before = _snapshot(run)
    assert main(["train", "--resume", str(run), "train.total_steps=56", override]) == 2
    line = _error_line(capsys)
    assert f"cannot change {key}" in line and "a resume can change" in line
    assert _snapshot(run) == before
    with pytest.raises(RunError, match="cannot change"):  # the API refuses the same way
        train_run(tiny("train.total_steps=56", override), run, resume=True)
    assert _snapshot(run) == before


def test_resume_with_a_spent_budget_says_so(run, capsys):
    assert main(["train", "--resume", str(run), "train.total_steps=16"]) == 0
    err = capsys.readouterr().err
    assert "fwmrl: note:" in err and "has done 40 env steps" in err and "nothing to train" in err
    data = load_checkpoint(run / "checkpoint.pt")
    assert data["env_steps"] == 40
    # the checkpoint carries the config.yaml the resume wrote, so the run stays usable
    assert data["config"]["train"]["total_steps"] == 16
    assert main(["eval", str(run), "--episodes", "1"]) == 0


def test_a_bad_env_or_eval_env_leaves_no_run_folder(tmp_path, capsys):
    for override, expected in [
        ("env.id=Nope-v0", "env: cannot make 'Nope-v0'"),
        ("env.eval_kwargs={size: 2}", "env.eval_kwargs: env: cannot make"),
    ]:
        run = tmp_path / "r"
        assert main(["train", CFG, "--run-dir", str(run), *TINY, override]) == 2
        assert expected in _error_line(capsys)
        assert not run.exists()


def test_a_run_killed_before_its_first_checkpoint_restarts_without_duplicate_rows(
    tmp_path, monkeypatch
):
    from fwmrl.agents.a2c import A2C

    config = tiny("train.total_steps=40", "train.checkpoint_every=100")
    original = A2C.train_on_rollout

    def crash(self, rollout):
        if self.update == 3:
            raise KeyboardInterrupt
        return original(self, rollout)

    monkeypatch.setattr(A2C, "train_on_rollout", crash)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "run")
    assert [r["update"] for r in read_metrics(tmp_path / "run")] == [1, 2, 3]
    assert not (tmp_path / "run/checkpoint.pt").exists()
    (tmp_path / "run/.checkpoint.pt.abc.tmp").write_bytes(b"half")  # a killed write's leftover
    monkeypatch.setattr(A2C, "train_on_rollout", original)
    train_run(config, tmp_path / "run")
    assert [r["update"] for r in read_metrics(tmp_path / "run")] == [1, 2, 3, 4, 5]
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_killed_at_chosen_writes_and_resumed_matches_uninterrupted(tmp_path, monkeypatch):
    """Kill (an exception) inside the k-th atomic write (config, meta, metrics, checkpoint) and
    resume, or restart when no checkpoint was kept: the final weights and metrics equal those of an
    uninterrupted run."""
    import fwmrl.config
    import fwmrl.jobloop
    import fwmrl.rundir

    config = tiny("train.total_steps=48", "env.num_envs=3")
    train_run(config, tmp_path / "full")
    full = load_checkpoint(tmp_path / "full/checkpoint.pt")
    writers = {
        "save_config": fwmrl.config.save_config,
        "atomic_write_text": fwmrl.rundir.atomic_write_text,
        "atomic_torch_save": fwmrl.rundir.atomic_torch_save,
    }
    kills = [("save_config", 1), ("atomic_write_text", 1), ("atomic_torch_save", 2)]
    # the module each writer is called through: the job loop writes the config, the run-dir
    # services meta.json, metrics.jsonl and the checkpoints
    module = {"save_config": fwmrl.jobloop}
    for case, (name, k) in enumerate(kills):

        def dying(*args, _real=writers[name], _k=k, _calls=[0], **kwargs):  # noqa: B006
            _calls[0] += 1
            if _calls[0] == _k:
                raise KeyboardInterrupt  # killed before os.replace: the old file stays
            return _real(*args, **kwargs)

        monkeypatch.setattr(module.get(name, fwmrl.rundir), name, dying)
        cut = tmp_path / f"cut{case}"
        with pytest.raises(KeyboardInterrupt):
            train_run(config, cut)
        monkeypatch.setattr(module.get(name, fwmrl.rundir), name, writers[name])
        train_run(config, cut, resume=(cut / "checkpoint.pt").exists())
        data = load_checkpoint(cut / "checkpoint.pt")
        assert all(torch.equal(full["policy"][p], data["policy"][p]) for p in full["policy"])
        strip = ("time_s", "cpu_time_s", "steps_per_s")
        rows = [
            [{k: v for k, v in r.items() if k not in strip} for r in read_metrics(d)]
            for d in (tmp_path / "full", cut)
        ]
        assert rows[0] == rows[1]


# ---------------------------------------------------------------------- 7. damaged files
def _flip_tensor_byte(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # a tensor's storage
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack(
        "<HH", raw[info.header_offset + 26 : info.header_offset + 30]
    )
    raw[info.header_offset + 30 + name_len + extra_len + 8] ^= 0xFF  # inside the stored data
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda p: p.write_bytes(b""), "checkpoint.pt: empty file"),
        (
            lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
            "not a torch checkpoint",
        ),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "not a torch checkpoint"),
        (_flip_tensor_byte, "fails its CRC check"),
        (lambda p: torch.save([1, 2, 3], p), "not an fwmrl checkpoint (holds a list)"),
        (lambda p: torch.save({"update": 1}, p), "not an fwmrl checkpoint (no config)"),
    ],
)
def test_damaged_checkpoints_are_one_line_naming_the_file(run, capsys, damage, expected):
    damage(run / "checkpoint.pt")
    for argv in (["train", "--resume", str(run), "train.total_steps=56"], ["eval", str(run)]):
        assert main(argv) == 2
        line = _error_line(capsys)
        assert str(run / "checkpoint.pt") in line and expected in line


def test_a_checkpoint_that_does_not_fit_is_one_line(run, capsys):
    data = load_checkpoint(run / "checkpoint.pt")
    data["env_state"]["state"]["cell"] = torch.zeros(7, dtype=torch.int64)
    atomic_torch_save(data, run / "checkpoint.pt")
    assert main(["train", "--resume", str(run), "train.total_steps=56"]) == 2
    assert "the saved env state does not fit this env: cell: expected shape (2)" in _error_line(
        capsys
    )
    del data["policy"]
    atomic_torch_save(data, run / "checkpoint.pt")
    assert main(["train", "--resume", str(run), "train.total_steps=56"]) == 2
    assert "not a complete A2C checkpoint (no entry 'policy')" in _error_line(capsys)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("meta.json", "{not json", "meta.json: not valid JSON"),
        ("meta.json", "[1, 2]", "meta.json: not a JSON object"),
        ("metrics.jsonl", '{"update": 1}\n[1, 2]\n{"update": 2}\n', "line 2 is not a JSON object"),
        ("metrics.jsonl", '{"update": 1}\n{"upd\n{"update": 2}\n', "line 2 is not valid JSON"),
    ],
)
def test_damaged_run_files_are_one_line_naming_the_file(run, capsys, name, content, expected):
    (run / name).write_text(content)
    before = _snapshot(run)
    assert main(["train", "--resume", str(run), "train.total_steps=56"]) == 2
    line = _error_line(capsys)
    assert str(run / name) in line and expected in line
    assert _snapshot(run) == before


def test_a_metrics_line_cut_by_a_crash_is_skipped(run):
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"update": 6, "env_st')
    assert [r["update"] for r in read_metrics(run)] == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------- 5. NaN guard, validation
def test_non_finite_weights_after_a_step_stop_and_keep_the_last_finite_checkpoint(
    tmp_path, monkeypatch
):
    from fwmrl.agents.a2c import A2C

    original = A2C.train_on_rollout

    def bad_step(self, rollout):
        out = original(self, rollout)
        if self.update == 3:
            with torch.no_grad():
                next(self.policy.parameters()).mul_(float("nan"))
        return out

    monkeypatch.setattr(A2C, "train_on_rollout", bad_step)
    config = tiny("train.total_steps=80", "train.checkpoint_every=1")
    with pytest.raises(NonFiniteLossError, match="parameter .* became non-finite after update 3"):
        train_run(config, tmp_path / "run")
    data = load_checkpoint(tmp_path / "run/checkpoint.pt")
    assert data["update"] == 2
    assert all(torch.isfinite(v).all() for v in data["policy"].values())


def test_a_huge_learning_rate_stops_cleanly(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", CFG, "--run-dir", str(run), *TINY, "algo.lr=1e30"]
    assert main([*args, "train.checkpoint_every=1", "train.total_steps=200"]) == 1
    err = capsys.readouterr().err
    assert "fwmrl: training stopped:" in err and "non-finite" in err and "Traceback" not in err
    if (run / "checkpoint.pt").exists():  # a kept checkpoint has weights that act
        data = load_checkpoint(run / "checkpoint.pt")
        assert all(torch.isfinite(v).all() for v in data["policy"].values())


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("algo.lr=.inf", "algo.lr: must be a finite number, got inf"),
        ("algo.ent_coef=.nan", "algo.ent_coef: must be a finite number, got nan"),
        ("env.kwargs={goal_reward: .inf}", "env.kwargs.goal_reward: must be a finite number"),
        ("train.device=gpu", "train.device: unknown device 'gpu'; allowed: cpu, cuda, cuda:N"),
        ("train.seed=-1", "train.seed: Input should be greater than or equal to 0"),
        ("train.seed=99999999999", "train.seed: Input should be less than or equal to 4294967295"),
    ],
)
def test_config_validation_rejects_non_finite_devices_and_seeds(override, expected):
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, [override])


# ---------------------------------------------------------------------- 8. bounded loops


def _endless_env():
    """An env that never terminates or truncates."""
    import gymnasium as gym

    class Endless(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.zeros(2, np.float32), {}

        def step(self, action):
            return np.zeros(2, np.float32), 1.0, False, False, {}

    return Endless()


def test_evaluation_and_references_cap_endless_episodes():
    import gymnasium as gym

    from fwmrl.agents.evaluation import evaluate, reference_returns
    from fwmrl.agents.job import evaluate_from_config, references_from_config

    if "FwmrlTestEndless-v0" not in gym.registry:
        gym.register("FwmrlTestEndless-v0", entry_point=_endless_env)
    base = [o for o in TINY if not o.startswith("env.kwargs")]
    config = load_config(None, [*base, "env.id=FwmrlTestEndless-v0", "algo.max_episode_steps=30"])
    agent = build_agent(config)
    try:
        with pytest.warns(RunNote, match="3 evaluation episode.* cut at 30 steps"):
            result = evaluate_from_config(agent.policy, config, episodes=3)
        assert result["length_mean"] == 30 and result["return_mean"] == 30
        with pytest.warns(RunNote, match="2 reference episode.* cut at 30 steps"):
            assert references_from_config(config, episodes=2) == {"random": 30.0}
        # the plain-value functions the config layer calls: the cap is theirs
        with pytest.warns(RunNote, match="2 evaluation episode.* cut at 7 steps"):
            plain = evaluate(agent.policy, "FwmrlTestEndless-v0", episodes=2, max_steps=7)
        assert plain["length_mean"] == 7
        with pytest.warns(RunNote, match="1 reference episode.* cut at 9 steps"):
            assert reference_returns("FwmrlTestEndless-v0", episodes=1, max_steps=9) == {
                "random": 9.0
            }
    finally:
        agent.close()


def test_meta_names_the_code_that_trained_the_run(tmp_path):
    """meta.json says where fwmrl was imported from and, in a git checkout, its commit and
    whether fwmrl/ had uncommitted changes; a copy of the package outside git has no commit."""
    import shutil
    import subprocess

    import fwmrl
    from fwmrl.rundir import code_revision

    package = Path(fwmrl.__file__).resolve().parent
    found = code_revision()
    assert found["fwmrl_path"] == str(package)
    if (package.parent / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(package.parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(package.parent), "status", "--porcelain", "--", str(package)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert found["fwmrl_commit"] == head
        assert found["fwmrl_uncommitted_changes"] is bool(status)
    else:
        assert found["fwmrl_commit"] is None
    copy = tmp_path / "site" / "fwmrl"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    code = "import json, fwmrl.rundir as r; print(json.dumps(r.code_revision()))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "site",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == {"fwmrl_path": str(copy.resolve()), "fwmrl_commit": None}
    assert (
        main(["train", CFG, "--run-dir", str(tmp_path / "run"), *TINY, "train.total_steps=8"]) == 0
    )
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["fwmrl_path"] == str(package) and meta["fwmrl_commit"] == found["fwmrl_commit"]
