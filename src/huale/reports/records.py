"""The per-cycle record an active-learning run writes, and reading them back.

One JSON file per (strategy, seed, cycle): ``RUN/<strategy>/seed<seed>/cycle<t>/record.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from huale.errors import DataError
from huale.io import atomic_write_json

RECORD_NAME = "record.json"
SPLITS = ("test", "validation")


@dataclass
class CycleRecord:
    """What one cycle of one strategy and seed measured.

    metrics: the test split's ``{"voc": {"mAP", "per_class", ...}, "coco": {"AP", "AP50", ...,
    "per_class"}}``; validation_metrics: the same on the loop's validation split (empty when the
    run holds none out). selected: the images this cycle's selection added, ``[{"image_id",
    "score", "stage"}]`` (empty at the last cycle, which only trains and evaluates).
    num_boxes: ground-truth boxes of the labeled set (the labeling cost so far); None in records
    written before it was recorded. machine: what the numbers depend on besides the seed
    (:func:`huale.engine.loop.machine_fingerprint`: device, CPU and its vector kernels, threads,
    torch versions); None in records written before it was recorded.
    """

    strategy: str
    seed: int
    cycle: int
    num_labeled: int
    metrics: dict
    train_seconds: float = 0.0
    score_seconds: float = 0.0
    labeled_ids: list[str] = field(default_factory=list)
    selected: list[dict] = field(default_factory=list)
    num_boxes: int | None = None
    validation_metrics: dict = field(default_factory=dict)
    machine: dict | None = None

    def split_metrics(self, split: str = "test") -> dict:
        """The metrics of ``split``: "test" or "validation"."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.metrics if split == "test" else self.validation_metrics

    def has(self, metric: str, split: str = "test") -> bool:
        return metric in self.split_metrics(split)

    def value(self, metric: str = "voc", key: str | None = None, split: str = "test") -> float:
        """The headline number on ``split``: VOC mAP, or COCO AP (``key`` overrides)."""
        result = self.split_metrics(split)[metric]
        return float(result[key or ("AP" if metric == "coco" else "mAP")])

    def write(self, run_dir: str | Path) -> Path:
        return atomic_write_json(record_path(run_dir, self.strategy, self.seed, self.cycle), asdict(self))


def record_path(run_dir: str | Path, strategy: str, seed: int, cycle: int) -> Path:
    return Path(run_dir) / strategy / f"seed{seed}" / f"cycle{cycle}" / RECORD_NAME


def load_records(run_dirs: Iterable[str | Path]) -> list[CycleRecord]:
    """Every cycle record under the given run folders, sorted by (strategy, seed, cycle)."""
    records = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise DataError(run_dir, "run folder not found")
        for path in sorted(run_dir.glob(f"*/seed*/cycle*/{RECORD_NAME}")):
            try:
                records.append(CycleRecord(**json.loads(path.read_text())))
            except (json.JSONDecodeError, TypeError) as exc:
                raise DataError(path, f"not a cycle record ({exc})") from None
    if not records:
        raise DataError(", ".join(map(str, run_dirs)), "no cycle records found (is this a huale loop run?)")
    return sorted(records, key=lambda r: (r.strategy, r.seed, r.cycle))
