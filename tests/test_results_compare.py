"""`fwmrl compare`: exported runs grouped by agent over seeds, mean ± std, band curves."""

from __future__ import annotations

import csv
import math

import pytest
import yaml

from fwmrl.cli import main
from fwmrl.errors import RunError
from fwmrl.results import COLUMNS, seed_groups, seed_table


def export(folder, name, core, seed, returns, steps_per_eval=1000):
    """A CSV + config pair in the layout `fwmrl export` writes."""
    path = folder / f"{name}.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for i, value in enumerate(returns, start=1):
            row = dict.fromkeys(COLUMNS, "")
            row.update(update=i, env_steps=i * steps_per_eval, eval_return_mean=value)
            writer.writerow(row)
    config = {"core": {"name": core}, "train": {"seed": seed, "total_steps": 3000}}
    path.with_suffix(".yaml").write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def runs(tmp_path):
    return [
        export(tmp_path, "fwm_s0", "fwm", 0, [1.0, 2.0, 4.0]),
        export(tmp_path, "lstm_s0", "lstm", 0, [1.0, 1.0, 1.0]),
        export(tmp_path, "fwm_s1", "fwm", 1, [1.0, 3.0, 6.0]),
        export(tmp_path, "lstm_s1", "lstm", 1, [2.0, 2.0], steps_per_eval=1500),
    ]


def test_runs_group_by_config_without_the_seed(runs):
    fwm, lstm = seed_groups(runs)
    assert (fwm.label, fwm.seeds, fwm.finals) == ("fwm", [0, 1], [4.0, 6.0])
    assert fwm.curve_x == [1000.0, 2000.0, 3000.0]
    assert fwm.curve_mean == [1.0, 2.5, 5.0]
    assert fwm.curve_std[2] == pytest.approx(math.sqrt(2.0))  # sample std over seeds
    assert (lstm.label, lstm.seeds, lstm.finals) == ("lstm", [0, 1], [1.0, 2.0])
    assert lstm.final_x == [3000.0, 3000.0]
    assert lstm.curve_x == [3000.0]  # the only x both seeds evaluated at


def test_runs_group_whatever_they_showed_or_logged(tmp_path, runs):
    shown = runs[2].with_suffix(".yaml")  # fwm seed 1 with a progress bar, another log interval
    config = yaml.safe_load(shown.read_text())
    config["train"]["progress"] = True
    config["logging"] = {"log_every": 7}
    shown.write_text(yaml.safe_dump(config))
    assert [g.seeds for g in seed_groups(runs)] == [[0, 1], [0, 1]]
    config["train"]["total_steps"] = 6000  # a change of what is trained still splits the group
    shown.write_text(yaml.safe_dump(config))
    assert [g.seeds for g in seed_groups(runs)] == [[0], [0, 1], [1]]


def test_table_has_mean_std_per_seed_and_the_normalised_score(runs):
    table = seed_table(seed_groups(runs), random=1.0, oracle=6.0)
    fwm_row = next(line for line in table.splitlines() if line.startswith("| fwm "))
    assert "5.0 ± 1.4" in fwm_row and "4.0, 6.0" in fwm_row
    assert "0.80 ± 0.28" in fwm_row  # (4-1)/5 = 0.6 and (6-1)/5 = 1.0
    assert "normalised score" in table
    assert "normalised score" not in seed_table(seed_groups(runs))
    with pytest.raises(RunError, match="random/oracle"):
        seed_table(seed_groups(runs), random=1.0)


def test_bad_input_names_what_is_wrong(tmp_path, runs):
    runs[0].with_suffix(".yaml").unlink()
    with pytest.raises(RunError, match="fwm_s0.yaml"):
        seed_groups(runs)
    with pytest.raises(RunError, match="x: 'steps' is not a column"):
        seed_groups(runs[1:], x="steps")


def test_cli_prints_the_table_and_draws_bands(runs, tmp_path, capsys):
    out = tmp_path / "bands.png"
    code = main(["compare", *map(str, runs), "--random", "1", "--oracle", "6", "--plot", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| fwm | 0, 1 |" in printed and "| lstm | 0, 1 |" in printed
    assert out.stat().st_size > 1000


def test_table_gives_env_steps_per_cpu_second_where_the_export_has_cpu_times(tmp_path, runs):
    timed = export(tmp_path, "mlp_s0", "none", 0, [1.0, 2.0])
    rows = list(csv.DictReader(timed.open()))
    rows[-1]["cpu_time_s"] = "4.0"  # 2,000 env steps in 4 CPU seconds
    with timed.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    groups = seed_groups([*runs, timed])
    assert groups[-1].steps_per_cpu_s == [500.0]
    assert groups[0].steps_per_cpu_s == [None, None]
    table = seed_table(groups, parameters={"fwm": 12345})
    lines = table.splitlines()
    assert lines[0].endswith("| env steps / CPU s | parameters |")
    assert next(line for line in lines if line.startswith("| mlp ")).endswith("| 500 | — |")
    assert next(line for line in lines if line.startswith("| fwm ")).endswith("| — | 12,345 |")


def test_cli_counts_each_agents_policy_parameters(runs, capsys):
    from fwmrl.agents.job import make_eval_env, policy_from_config
    from fwmrl.config import load_config

    assert main(["compare", *map(str, runs), "--parameters"]) == 0
    printed = capsys.readouterr().out
    for name in ("fwm", "lstm"):
        config = load_config(runs[0].parent / f"{name}_s0.yaml")
        env = make_eval_env(config, 1)
        count = sum(p.numel() for p in policy_from_config(config, env).parameters())
        env.close()
        row = next(line for line in printed.splitlines() if line.startswith(f"| {name} "))
        assert row.endswith(f"| {count:,} |")


def test_compare_into_a_closed_pipe_exits_quietly(runs):
    """`fwmrl compare ... | head`: no BrokenPipeError traceback once the reader is gone."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first write: every write fails
    code = "import sys; from fwmrl.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["compare", *map(str, runs)]
    try:
        writer = subprocess.run(
            [sys.executable, "-c", code, *argv], stdout=write_end, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in writer.stderr, writer.stderr
    assert writer.returncode == 141
