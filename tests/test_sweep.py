"""``fwmrl sweep``: sweep files, trials as fwmrl run directories, the results table and plot, and (slow,
needs Ray) a whole sweep on a local Ray instance."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from fwmrl.cli import main
from fwmrl.config import ConfigError
from fwmrl.rundir import read_metrics
from fwmrl.sweep import (
    SEED_KEY,
    SweepSpec,
    load_sweep,
    plot_best,
    point_id,
    results_markdown,
    run_trial,
    summarize,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "env.num_envs=4",
    "env.kwargs={size: 5, max_steps: 6}",
    "core.hidden_size=8",
    "core.memory_size=4",
    "core.read_hops=1",
    "policy.encoder_sizes=[8]",
    "algo.n_steps=4",
    "train.total_steps=48",
    "train.eval_episodes=2",
    "train.plot_at_end=false",
    "train.gif_at_end=false",
    "logging.log_every=1",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
]


def _sweep_file(tmp_path: Path, **fields) -> Path:
    data = {"base": str(ROOT / "configs/gridworld_fwm.yaml"), "overrides": TINY, **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_sweep_file_loads_and_is_checked():
    spec, base = load_sweep(ROOT / "configs/sweeps/gridworld.yaml")
    assert spec.name == "gridworld" and base["env"]["id"] == "FWM-Gridworld-v0"
    assert set(spec.space) == {"algo.lr", "core.memory_size", "algo.ent_coef"}
    assert spec.seed_list == [0, 1, 2] and spec.metric == "eval_return_mean"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"space": {"algo.lrr": {"choice": [0.1]}}}, r"algo\.lrr.*unknown key"),
        ({"space": {"algo.gamma": {"choice": [1.5]}}}, r"algo\.gamma=1\.5.*less than or equal"),
        ({"space": {"algo.lr": {"normal": [0, 1]}}}, r"a domain is one of"),
        ({"space": {"algo.lr": {"loguniform": [0.0, 1.0]}}}, r"loguniform needs low > 0"),
        ({"space": {"train.seed": {"grid": [0, 1]}}}, r"seeds are set by 'seeds'"),
        ({"seeds": 0}, r"seeds: must be a positive number"),
        ({"sample": 3}, r"sample: unknown key; allowed keys: base, overrides, space"),
        ({"overrides": ["env.nenvs=3"]}, r"sweep overrides: env\.nenvs: unknown key"),
    ],
)
def test_bad_sweep_files_fail_before_ray_starts(tmp_path, fields, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(_sweep_file(tmp_path, **fields))


def test_cli_bad_sweep_exits_2_with_one_message(tmp_path, capsys):
    path = _sweep_file(tmp_path, space={"algo.lrr": {"choice": [0.1]}})
    assert main(["sweep", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "fwmrl: error:" in err and "algo.lrr" in err
    assert not (tmp_path / "out").exists()


def test_cli_without_ray_explains_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    path = _sweep_file(tmp_path, space={"algo.lr": {"grid": [0.001]}})
    assert main(["sweep", str(path), "--output", str(tmp_path / "out")]) == 2
    assert "pip install 'fwmrl[sweep]'" in capsys.readouterr().err


def test_trial_is_a_normal_run_directory_and_reports_every_record(tmp_path):
    reports = []
    params = {"algo.lr": 0.003, "core.memory_size": 6, SEED_KEY: 2}
    spec, base = load_sweep(_sweep_file(tmp_path))
    last = run_trial(params, base, spec.overrides, str(tmp_path / "trials"), reports.append)
    run_dir = tmp_path / "trials" / f"{point_id(params)}-seed2"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["algo"]["lr"] == 0.003 and config["core"]["memory_size"] == 6
    assert config["train"]["seed"] == 2 and config["train"]["progress"] is False
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "eval.json").is_file()
    assert [r["update"] for r in reports] == [r["update"] for r in read_metrics(run_dir)]
    assert len(reports) == 3  # 48 steps / (4 envs x 4 steps)
    assert all(r["point"] == point_id(params) and r["seed"] == 2 for r in reports)
    assert last["eval_return_mean"] == reports[-1]["eval_return_mean"]
    assert math.isfinite(last["eval_return_mean"])
    # the same trial again (a retry, or a re-run sweep): resumes the finished run, reports its end
    again = []
    run_trial(params, base, spec.overrides, str(tmp_path / "trials"), again.append)
    assert len(again) == 1 and again[0]["update"] == 3
    assert again[0]["eval_return_mean"] == last["eval_return_mean"]
    assert point_id(params) == point_id({**params, SEED_KEY: 7}) != point_id({SEED_KEY: 2})


def _trials():
    rows = []
    for point, params, values in [
        ("pa", {"algo.lr": 0.1}, [1.0, 3.0]),
        ("pb", {"algo.lr": 0.2}, [4.0, float("nan")]),
        ("pc", {"algo.lr": 0.3}, [None, None]),
        ("pd", {"algo.lr": 0.4}, [0.0, 1.0]),
    ]:
        for seed, value in zip([1, 0], values, strict=True):
            rows.append({"point": point, "seed": seed, "params": params, "ret": value})
    return rows


def test_summarize_ranks_points_by_the_mean_over_seeds():
    rows = summarize(_trials(), "ret", "max")
    assert [r["point"] for r in rows] == ["pb", "pa", "pd", "pc"]
    pa = rows[1]
    assert pa["mean"] == 2.0 and pa["std"] == 1.0 and pa["n"] == 2
    assert pa["seeds"] == [0, 1] and pa["values"] == [3.0, 1.0]  # sorted by seed
    assert rows[0]["mean"] == 4.0 and rows[0]["n"] == 1  # the NaN seed does not count
    assert rows[-1]["mean"] is None  # no finite value: last
    assert [r["point"] for r in summarize(_trials(), "ret", "min")] == ["pd", "pa", "pb", "pc"]


def test_results_table_csv_and_best_plot(tmp_path):
    trials = _trials()
    rows = summarize(trials, "ret", "max")
    write_results(rows, trials, tmp_path, "ret")
    table = (tmp_path / "results.md").read_text().splitlines()
    assert table[0].startswith("| rank | point | algo.lr | ret mean | std | seeds")
    assert table[2].startswith("| 1 | pb | 0.2 | 4 | 0 | 1/2 |")
    assert table == results_markdown(rows, "ret").splitlines()
    assert len((tmp_path / "trials.csv").read_text().splitlines()) == 1 + 8
    assert (tmp_path / "results.csv").read_text().splitlines()[1].startswith("1,pb,0.2,4.0")
    curves = {(t["point"], t["seed"]): [(0.0, 0.0), (10.0, float(t["seed"]))] for t in trials}
    out = plot_best(rows, curves, tmp_path / "best.png", top_k=2)
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 5000


def test_spec_defaults():
    spec = SweepSpec()
    assert spec.seed_list == [0] and spec.mode == "max" and spec.samples == 1
    assert SweepSpec(seeds=[3, 5]).seed_list == [3, 5]


@pytest.mark.slow
def test_sweep_on_local_ray(tmp_path, capsys):
    pytest.importorskip("ray")
    path = _sweep_file(
        tmp_path,
        space={"algo.lr": {"loguniform": [1.0e-4, 1.0e-2]}, "algo.gamma": {"grid": [0.5, 0.9]}},
        samples=1,
        seeds=2,
        top_k=2,
    )
    out = tmp_path / "sweep"
    assert (
        main(["sweep", str(path), "--output", str(out), "--num-cpus", "2", "--verbose", "0"]) == 0
    )
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["trials"] == 4 and summary["failed"] == 0 and summary["points"] == 2
    runs = sorted((out / "trials").iterdir())
    assert len(runs) == 4
    configs = [yaml.safe_load((r / "config.yaml").read_text()) for r in runs]
    assert len({c["algo"]["lr"] for c in configs}) == 1  # seeds (and grid) share the random draw
    assert sorted(c["algo"]["gamma"] for c in configs) == [0.5, 0.5, 0.9, 0.9]
    assert sorted(c["train"]["seed"] for c in configs) == [0, 0, 1, 1]
    for ranked in summary["ranking"]:
        evals = [
            json.loads((out / "trials" / f"{ranked['point']}-seed{s}" / "eval.json").read_text())
            for s in ranked["seeds"]
        ]
        assert ranked["n"] == 2
        assert ranked["mean"] == pytest.approx(sum(e["return_mean"] for e in evals) / 2)
    means = [r["mean"] for r in summary["ranking"]]
    assert means == sorted(means, reverse=True)
    assert (out / "best.png").stat().st_size > 5000
    assert "| 1 | p" in capsys.readouterr().out
