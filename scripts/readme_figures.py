"""Regenerate README's main-job figures and numbers from the current commit.

    .venv/bin/python scripts/readme_figures.py [--run-dir runs/readme-main]

Runs the main job (README's first command, ``configs/gridworld_fwm.yaml``) into a fresh run
directory, then writes

- ``docs/images/main_curves.png``: its curves, titled with the commit;
- ``docs/images/main_eval.gif``: its evaluation episode;
- ``docs/images/main_job.json``: the commit, wall time, final evaluation and reference returns;

and prints the README sentence that quotes them (``tests/test_readme.py`` checks that README
quotes what ``main_job.json`` holds). The job is deterministic for a given commit and machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs/images"
CONFIG = "configs/gridworld_fwm.yaml"


def _commit() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "fwmrl", "configs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("+changes" if dirty else "")


def readme_sentence(job: dict) -> str:
    """The README sentence for ``main_job.json``'s numbers."""
    ev, refs = job["eval"], job["references"]
    return (
        f"It took {job['wall_s'] / 60:.1f} minutes here ({job['wall_s']:.0f} s wall, commit "
        f"{job['commit']}) and evaluated at {ev['return_mean']:.1f} ± {ev['return_std']:.1f} over "
        f"{ev['episodes']:.0f} episodes (random {refs['random']:.1f}, oracle {refs['oracle']:.1f}; "
        f"seed {job['seed']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/readme-main")
    args = parser.parse_args()
    run = ROOT / args.run_dir
    if run.exists():
        shutil.rmtree(run)
    commit = _commit()
    fwmrl = [sys.executable, "-m", "fwmrl"]
    start = time.perf_counter()
    subprocess.run([*fwmrl, "train", CONFIG, "--run-dir", str(run)], cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    IMAGES.mkdir(parents=True, exist_ok=True)
    title = f"main job: FWM on FWM-Gridworld-v0 (commit {commit})"
    subprocess.run(
        [*fwmrl, "plot", str(run), "-o", str(IMAGES / "main_curves.png"), "--title", title],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.copyfile(run / "eval.gif", IMAGES / "main_eval.gif")
    config = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import json,sys; from fwmrl.rundir import load_run_config; "
                "print(json.dumps(load_run_config(sys.argv[1]).to_dict()))",
                str(run),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    job = {
        "commit": commit,
        "command": f".venv/bin/fwmrl train {CONFIG} --run-dir {args.run_dir}",
        "wall_s": round(wall, 1),
        "seed": config["train"]["seed"],
        "env_steps": config["train"]["total_steps"],
        "eval": json.loads((run / "eval.json").read_text()),
        "references": json.loads((run / "references.json").read_text()),
    }
    (IMAGES / "main_job.json").write_text(json.dumps(job, indent=2) + "\n")
    print(readme_sentence(job))


if __name__ == "__main__":
    main()
