"""What a new user meets first: --version, a --help that does not load torch, the override syntax
in ``train --help``, and an interrupt that names the run folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fwmrl
from fwmrl import cli

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fwmrl {fwmrl.__version__}"


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from fwmrl.cli import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert "KEY=VALUE" in out.stdout and "env.kwargs=" in out.stdout


def test_interrupt_names_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fwmrl.jobs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fwmrl.jobs, "train_run", interrupted)
    run = tmp_path / "my-run"
    code = cli.main(["train", str(ROOT / "configs/gridworld_fwm.yaml"), "--run-dir", str(run)])
    assert code == 130
    err = capsys.readouterr().err
    assert "RUN_DIR" not in err
    assert "interrupted" in err and "no checkpoint was written yet" in err
    assert str(run) in err  # the 'run directory:' line names it


def test_interrupt_with_a_checkpoint_gives_the_resume_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fwmrl.jobs

    run = tmp_path / "my-run"

    def interrupted_after_a_checkpoint(*args, **kwargs):
        run.mkdir()
        (run / "checkpoint.pt").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(fwmrl.jobs, "train_run", interrupted_after_a_checkpoint)
    code = cli.main(["train", str(ROOT / "configs/gridworld_fwm.yaml"), "--run-dir", str(run)])
    assert code == 130
    assert f"fwmrl train --resume {run}" in capsys.readouterr().err


TINY_RL = [
    "env.num_envs=2",
    "env.kwargs={size: 5, max_steps: 12}",
    "policy.encoder_sizes=[8]",
    "algo.n_steps=4",
    "train.total_steps=16",
    "train.eval_episodes=1",
    "train.progress=false",
    "train.plot_at_end=false",
    "train.gif_at_end=false",
    "logging.tensorboard=false",
    "logging.wandb=disabled",
]


@pytest.mark.parametrize(
    "core", ["fwm core.hidden_size=8 core.memory_size=4", "mnm_p core.hidden_size=8"]
)
def test_plot_memory_on_an_rl_run(core: str, tmp_path: Path) -> None:
    from fwmrl.agents.job import load_policy
    from fwmrl.memory_plot import rollout_writes
    from fwmrl.rundir import load_run_config

    name, *core_args = core.split()
    run = tmp_path / "run"
    config = ROOT / f"configs/gridworld_{name}.yaml"
    assert cli.main(["train", str(config), "--run-dir", str(run), *TINY_RL, *core_args]) == 0
    out = tmp_path / "memory.png"
    assert cli.main(["plot-memory", str(run), "-o", str(out), "--steps", "30"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    config = load_run_config(run)
    keys, values, labels = rollout_writes(load_policy(run, config), config, steps=30)
    assert len(labels) == keys.shape[0] == values.shape[0] == 12  # the episode ends at 12 steps
    assert labels[-1].endswith("|")


def test_plot_memory_refuses_an_lstm_rl_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = str(ROOT / "configs/gridworld_lstm.yaml")
    assert cli.main(["train", config, "--run-dir", str(run), *TINY_RL, "core.hidden_size=8"]) == 0
    assert cli.main(["plot-memory", str(run)]) == 2
