"""A tiny labeling project with one real finished round, for the backend and server tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from huale.data.coco import write_coco
from tests.conftest import make_tiny_dataset

ROUND_OPTIONS = {"budget": 3, "epochs": 1, "preannotation_threshold": 0.3, "device": "cpu",
                 "progress": False}


def make_project(root: Path, *, rounds: int = 1, pool: Path | None = None):
    """``pool`` (default ``root/pool``: 10 PNGs), ``root/lab`` (4 labeled), project
    ``root/proj`` after ``rounds`` real rounds (1 epoch each, budget 3, CPU)."""
    from huale.project.rounds import RoundOptions, run_round
    from huale.project.state import ModelSettings, Project

    pool = pool or root / "pool"
    make_tiny_dataset(pool, num_images=10, seed=1)
    write_coco(make_tiny_dataset(root / "lab", num_images=4, seed=2), root / "lab" / "labeled.json")
    project = Project.create(root / "proj", pool=pool, labeled=root / "lab" / "labeled.json",
                             model=ModelSettings(min_size=64, max_size=64))
    for _ in range(rounds):
        run_round(project, RoundOptions(**ROUND_OPTIONS))
    return project


def copy_project(project, destination: Path):
    """A copy of the project folder (the pool and labeled images stay shared)."""
    from huale.project.state import Project

    shutil.copytree(project.root, destination, ignore=shutil.ignore_patterns(".huale.lock"))
    return Project.open(destination)
