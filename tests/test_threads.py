"""fwmrl chooses one torch thread when it builds a model, unless the user chose a count."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import torch
{before}
import gymnasium as gym
import fwmrl
from fwmrl.agents.policy import MemoryActorCritic
env = gym.make("FWM-Gridworld-v0")
MemoryActorCritic(env.observation_space, env.action_space, core="fwm")
print(torch.get_num_threads())
"""


def _threads_after_build(env: dict[str, str], before: str = "") -> int:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(before=before)],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def _torch_default() -> int:
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def test_one_thread_by_default() -> None:
    assert _threads_after_build({}) == 1


def test_fwmrl_num_threads_sets_the_count() -> None:
    assert _threads_after_build({"FWMRL_NUM_THREADS": "3"}) == 3


def test_zero_and_omp_leave_torch_alone() -> None:
    default = _torch_default()
    if default == 1:
        pytest.skip("torch defaults to one thread here: nothing to tell apart")
    assert _threads_after_build({"FWMRL_NUM_THREADS": "0"}) == default
    assert _threads_after_build({"OMP_NUM_THREADS": str(default)}) == default


def test_a_count_the_program_chose_is_kept() -> None:
    assert _threads_after_build({}, before="torch.set_num_threads(3)") == 3


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from fwmrl import threads

    monkeypatch.setattr(threads, "_chosen", False)
    monkeypatch.setenv("FWMRL_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="FWMRL_NUM_THREADS"):
        threads.default_threads()
