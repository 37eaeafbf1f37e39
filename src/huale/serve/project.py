"""What ``huale serve`` reads from a project folder (:mod:`huale.project`): the round it serves.

The served round is the newest round with a trained model and a selection: its checkpoint
(``rounds/NNN/train/model.pt``), the strategy and threshold it selected with and its ranking
of the pool (``rounds/NNN/selection.json``). Before the first round there is no model:
``model_version`` is still given (Label Studio needs one to connect) and predictions wait.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huale.data.records import DetectionDataset
from huale.errors import DataError
from huale.selection.export import SELECTION_JSON, image_location
from huale.selection.pool import load_pool, pool_root
from huale.serve.ranking import Ranking

log = logging.getLogger(__name__)

NO_MODEL_VERSION = "huale-round-000"


def round_model_version(number: int | None) -> str:
    """The ``model_version`` of round ``number`` (the one its Label Studio tasks carry)."""
    return NO_MODEL_VERSION if number is None else f"huale-round-{number:03d}"


@dataclass
class ServedRound:
    """The round ``huale serve`` answers with. ``number`` None: no round has a model yet."""

    number: int | None
    checkpoint: Path | None = None
    ranking: Ranking = field(default_factory=lambda: Ranking([]))
    strategy: str = "huale"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    preannotation_threshold: float = 0.5
    seed: int = 0
    budget: int | None = None

    @property
    def model_version(self) -> str:
        return round_model_version(self.number)


def served_round_number(project) -> int | None:
    """The newest round of ``project`` with both ``train/model.pt`` and ``selection.json``
    (files only checked for existence: cheap enough for every request)."""
    from huale.engine.train import MODEL_NAME

    for number in reversed(project.rounds()):
        folder = project.round_dir(number)
        if (folder / "train" / MODEL_NAME).is_file() and (folder / SELECTION_JSON).is_file():
            return number
    return None


def served_round(project, number: int | None) -> ServedRound:
    """Round ``number`` of ``project`` as served (None: no model yet)."""
    from huale.engine.train import MODEL_NAME

    if number is not None:
        folder = project.round_dir(number)
        checkpoint = folder / "train" / MODEL_NAME
        selection = folder / SELECTION_JSON
        try:
            data = json.loads(selection.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(selection, f"cannot read the round's selection ({exc})") from None
        return ServedRound(
            number=number,
            checkpoint=checkpoint,
            ranking=Ranking.from_selection(data.get("ranking", [])),
            strategy=str(data.get("strategy", "huale")),
            strategy_options=dict(data.get("strategy_options") or {}),
            preannotation_threshold=float(data.get("preannotation_threshold", 0.5)),
            seed=int(data.get("seed", 0)),
            budget=data.get("budget"),
        )
    return ServedRound(number=None)


def pool_dataset(project) -> DetectionDataset:
    """The project's pool as ``huale select`` lists it (same image ids as the rankings)."""
    return load_pool(project.pool, project.class_names, split=project.config.pool_split)


def task_references(project, pool: DetectionDataset) -> dict[str, str]:
    """``data.image`` as the project's task export writes it -> pool image id."""
    root = pool_root(project.pool)
    prefix = project.config.image_url_prefix
    references = {}
    for record in pool.records:
        path = Path(record.path).resolve()
        references[image_location(path, root, prefix)] = record.image_id
        references[image_location(path, root, None)] = record.image_id
    return references
