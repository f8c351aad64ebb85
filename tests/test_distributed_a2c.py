"""Data-parallel A2C: ``torchrun --nproc_per_node=2 -m fwmrl train`` of an RL config on gloo/CPU
takes the updates of a one-process run with the same global ``env.num_envs`` (the same envs, the
same actions, parameters to float tolerance); rank 0 alone writes the run directory and its
checkpoints hold the whole batch, so a run resumes bit-identically on the same number of processes
and on another one that divides ``env.num_envs``."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from fwmrl.agents.job import build_agent
from fwmrl.cli import main
from fwmrl.config import load_config
from fwmrl.distributed import batch_slice, concat_batches
from fwmrl.jobs import train_run
from fwmrl.rundir import load_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[1]
GRIDWORLD = str(ROOT / "configs/gridworld_fwm.yaml")  # truncated BPTT, 20 steps per update
GRAPHNAV = str(ROOT / "configs/graphnav_fwm_paper.yaml")  # episode mode, Monte-Carlo returns
MNM_P = str(ROOT / "configs/gridworld_mnm_p.yaml")  # learned initial memory, meta (aux) loss
KEYVALUE = str(ROOT / "configs/keyvalue_fwm.yaml")  # episode mode, episodes of varying length
SMALL = [
    "env.num_envs=8",
    "train.num_threads=1",
    "train.checkpoint_every=2",
    "train.eval_episodes=4",
    "train.progress=false",
    "train.plot_at_end=false",
    "train.gif_at_end=false",
    "logging.log_every=1",
    "logging.tensorboard=false",
    "logging.wandb=disabled",
]
STEPS = {GRIDWORLD: 8 * 20, GRAPHNAV: 8 * 30, MNM_P: 8 * 20}  # env steps per update


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=N -m fwmrl ARGS`` (gloo on CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", "-m", "fwmrl", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, nproc: int, port: int, argv: list[str], log: Path) -> None:
    """One rank of :func:`fork_ranks`: the environment ``torchrun`` gives a worker, then ``fwmrl``."""
    with open(log / f"rank{rank}.out", "w") as out, open(log / f"rank{rank}.err", "w") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = out, err  # not pytest's capture
        os.environ.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(nproc),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        code = main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def fork_ranks(*args: str, log: Path, nproc: int = 2) -> list[str]:
    """``fwmrl ARGS`` on ``nproc`` ranks as ``torchrun`` starts them (its environment variables),
    forked from this process so that no rank imports torch again (seconds instead of a
    ``torchrun`` start on this busy machine); returns each rank's stderr."""
    log.mkdir(parents=True, exist_ok=True)
    port = free_port()
    context = multiprocessing.get_context("fork")
    ranks = [
        context.Process(target=_rank_main, args=(r, nproc, port, list(args), log))
        for r in range(nproc)
    ]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=300)
    for process in ranks:
        if process.is_alive():  # a rank that hangs fails the test instead of outliving it
            process.kill()
            process.join()
    errors = [(log / f"rank{r}.err").read_text() for r in range(nproc)]
    codes = [process.exitcode for process in ranks]
    assert codes == [0] * nproc, f"exit codes {codes}: {errors[0][-3000:]}"
    return errors


def updates(config: str, n: int) -> str:
    return f"train.total_steps={STEPS[config] * n}"


def leaves(data: Any, key: str = "") -> dict[str, Any]:
    """Nested dicts/lists as ``{dotted key: leaf}``."""
    if isinstance(data, dict):
        return {k: v for name, x in data.items() for k, v in leaves(x, f"{key}.{name}").items()}
    if isinstance(data, list):
        return {k: v for i, x in enumerate(data) for k, v in leaves(x, f"{key}[{i}]").items()}
    return {key: data}


def assert_equal_leaves(a: Any, b: Any) -> None:
    a, b = leaves(a), leaves(b)
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def assert_close_leaves(a: Any, b: Any, atol: float) -> None:
    a, b = leaves(a), leaves(b)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0.0, msg=key)


def assert_same_run(two: dict, one: dict, atol: float = 1e-5) -> None:
    """Two checkpoints of one run up to float tolerance in the network and its state, exactly in
    everything the envs and the sampler did."""
    assert two["update"] == one["update"] and two["env_steps"] == one["env_steps"]
    assert_close_leaves(two["policy"], one["policy"], atol)
    assert_close_leaves(two["optimizer"]["state"], one["optimizer"]["state"], atol)
    assert_equal_leaves(two["env_state"], one["env_state"])  # every env where it would be
    for key in ("obs", "starts", "autoreset", "episode_return", "episode_length"):
        assert torch.equal(two["rollout"][key], one["rollout"][key]), key
    assert_close_leaves(two["rollout"]["core_state"], one["rollout"]["core_state"], atol)
    assert torch.equal(two["sampler_rng"], one["sampler_rng"])
    assert torch.equal(two["recent_returns"], one["recent_returns"])
    assert torch.equal(two["recent_lengths"], one["recent_lengths"])
    assert two["episodes"] == one["episodes"]


@pytest.fixture(scope="module")
def gridworld(tmp_path_factory) -> tuple[Path, str]:
    """Truncated BPTT, 4 updates: under ``torchrun`` on 2 processes (``two``) and on one (``one``)."""
    root = tmp_path_factory.mktemp("gridworld")
    args = [*SMALL, updates(GRIDWORLD, 4)]
    done = torchrun("train", GRIDWORLD, "--run-dir", str(root / "two"), *args)
    train_run(load_config(GRIDWORLD, args), root / "one")
    return root, done.stdout, done.stderr


@pytest.fixture(scope="module")
def graphnav(tmp_path_factory) -> tuple[Path, str]:
    """The paper protocol's episode mode, 3 updates: 2 ranks (``two``) and one process (``one``)."""
    root = tmp_path_factory.mktemp("graphnav")
    args = [*SMALL, updates(GRAPHNAV, 3)]
    errors = fork_ranks("train", GRAPHNAV, "--run-dir", str(root / "two"), *args, log=root / "log")
    train_run(load_config(GRAPHNAV, args), root / "one")
    out = "".join((root / f"log/rank{r}.out").read_text() for r in range(2))
    return root, out, "".join(errors)


@pytest.fixture(scope="module")
def mnm_p(tmp_path_factory) -> tuple[Path, str]:
    """MNM-p (parameters without a gradient in some updates, an aux loss), 3 updates."""
    root = tmp_path_factory.mktemp("mnm_p")
    args = [*SMALL, updates(MNM_P, 3)]
    errors = fork_ranks("train", MNM_P, "--run-dir", str(root / "two"), *args, log=root / "log")
    train_run(load_config(MNM_P, args), root / "one")
    out = "".join((root / f"log/rank{r}.out").read_text() for r in range(2))
    return root, out, "".join(errors)


@pytest.mark.parametrize("runs", ["gridworld", "graphnav", "mnm_p"])
def test_two_processes_take_the_one_process_updates(request, runs):
    root, stdout, stderr = request.getfixturevalue(runs)
    config = {"gridworld": GRIDWORLD, "graphnav": GRAPHNAV, "mnm_p": MNM_P}[runs]
    n = 4 if config == GRIDWORLD else 3
    two = load_checkpoint(root / "two/checkpoint.pt")
    one = load_checkpoint(root / "one/checkpoint.pt")
    assert two["update"] == n and two["world_size"] == 2 and one["world_size"] == 1
    assert_same_run(two, one)
    assert len(two["core_state_ranks"]) == 2 and "core_state_ranks" not in one
    assert two["episodes"] > 0  # episodes finished on both ranks were counted
    # the parameters moved: the comparison is not between two untouched models
    start = build_agent(load_config(config, SMALL)).policy.state_dict()
    assert any((start[k] - one["policy"][k]).abs().max() > 1e-3 for k in start)
    # rank 0 alone logs: one record per update with the whole batch's numbers
    records_two, records_one = read_metrics(root / "two"), read_metrics(root / "one")
    assert [r["update"] for r in records_two] == list(range(1, n + 1))
    for r2, r1 in zip(records_two, records_one, strict=True):
        for key in ("loss", "policy_loss", "value_loss", "entropy", "aux_loss", "grad_norm"):
            assert r2[key] == pytest.approx(r1[key], rel=1e-5, abs=1e-6), key
        assert r2["explained_variance"] == pytest.approx(r1["explained_variance"], abs=1e-4)
        assert r2["env_steps"] == r1["env_steps"] and r2["episodes"] == r1["episodes"]
        assert r2.get("episode_return_mean") == r1.get("episode_return_mean")
    assert records_two[-1]["eval_return_mean"] == pytest.approx(records_one[-1]["eval_return_mean"])
    assert stdout.count('"run_dir"') == 1  # one summary printed (rank 0)
    assert stderr.count("run directory:") == 1
    assert sorted(p.name for p in (root / "two").iterdir()) == sorted(
        p.name for p in (root / "one").iterdir()
    )


def test_episodes_of_varying_length_end_the_rollout_on_every_rank_together(tmp_path):
    """Episode mode where one rank's envs finish before the other's: the finished rank keeps
    stepping until every env of every rank has finished, as the one-process run does (it learns
    the rollout's length from the other ranks' messages, :class:`fwmrl.distributed.EpisodeEnds`)."""
    args = [*SMALL, "train.total_steps=2400", "env.kwargs.max_items=6"]
    fork_ranks("train", KEYVALUE, "--run-dir", str(tmp_path / "two"), *args, log=tmp_path / "log")
    train_run(load_config(KEYVALUE, args), tmp_path / "one")
    two = load_checkpoint(tmp_path / "two/checkpoint.pt")
    one = load_checkpoint(tmp_path / "one/checkpoint.pt")
    assert two["update"] == one["update"] >= 2
    assert_same_run(two, one)
    lengths = [r["rollout_steps"] for r in read_metrics(tmp_path / "one")]
    assert lengths == [r["rollout_steps"] for r in read_metrics(tmp_path / "two")]
    assert len(set(lengths)) > 1  # the rollouts' lengths vary: episodes of varying length


def test_resume_is_bit_identical_on_two_processes_and_close_on_one(tmp_path, gridworld):
    straight, cut = gridworld[0] / "two", tmp_path / "cut"
    fork_ranks(
        "train", GRIDWORLD, "--run-dir", str(cut), *SMALL, updates(GRIDWORLD, 2), log=tmp_path
    )
    assert load_checkpoint(cut / "checkpoint.pt")["update"] == 2
    shutil.copytree(cut, tmp_path / "cut_on_one")
    fork_ranks("train", "--resume", str(cut), updates(GRIDWORLD, 4), log=tmp_path)  # 2 -> 2
    assert main(["train", "--resume", str(tmp_path / "cut_on_one"), updates(GRIDWORLD, 4)]) == 0

    reference = load_checkpoint(straight / "checkpoint.pt")
    resumed = load_checkpoint(cut / "checkpoint.pt")
    for key in ("policy", "optimizer", "env_state", "rollout", "core_state_ranks"):
        assert_equal_leaves(resumed[key], reference[key])  # bit for bit
    assert [r["loss"] for r in read_metrics(cut)] == [r["loss"] for r in read_metrics(straight)]
    assert [r["update"] for r in read_metrics(cut)] == [1, 2, 3, 4]
    # on one process: the same envs and actions, the network to float tolerance
    assert_same_run(load_checkpoint(tmp_path / "cut_on_one/checkpoint.pt"), reference)


def test_a_one_process_checkpoint_resumes_on_two_processes(tmp_path, graphnav):
    grown = tmp_path / "grown"
    train_run(load_config(GRAPHNAV, [*SMALL, updates(GRAPHNAV, 1)]), grown)
    fork_ranks("train", "--resume", str(grown), updates(GRAPHNAV, 3), log=tmp_path)  # 1 -> 2
    data = load_checkpoint(grown / "checkpoint.pt")
    assert data["world_size"] == 2
    assert_same_run(data, load_checkpoint(graphnav[0] / "one/checkpoint.pt"))


def test_num_envs_not_divisible_by_the_processes_is_one_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    run_dir = tmp_path / "r"
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        assert main(["train", GRIDWORLD, "--run-dir", str(run_dir), "env.num_envs=9"]) == 2
    err = capsys.readouterr().err
    assert err.count("fwmrl: error:") == 1  # rank 0 says it; rank 1 exits quietly
    assert "env.num_envs: 9 envs cannot be split evenly over 2 processes" in err
    assert "processes that divides 9 (1, 3, 9)" in err
    assert not run_dir.exists()


def test_batch_state_is_joined_and_split_in_rank_order():
    import numpy as np

    parts = [
        {"kind": "sync", "autoreset": np.array([True, False]), "envs": [{"a": 1}, {"a": 2}]},
        {"kind": "sync", "autoreset": np.array([False, False]), "envs": [{"a": 3}, {"a": 4}]},
    ]
    joined = concat_batches(parts)
    assert joined["autoreset"].tolist() == [True, False, False, False]
    assert [e["a"] for e in joined["envs"]] == [1, 2, 3, 4]
    back = batch_slice(joined, slice(2, 4), 4)
    assert back["autoreset"].tolist() == [False, False] and back["envs"] == parts[1]["envs"]
    with pytest.raises(ValueError, match="autoreset: expected 6 rows"):
        batch_slice(joined, slice(0, 3), 6)
    with pytest.raises(ValueError, match="kind: the ranks hold different values"):
        concat_batches([parts[0], {**parts[1], "kind": "batched"}])
