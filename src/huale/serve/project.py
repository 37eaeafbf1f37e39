"""What ``huale serve`` reads from a project folder (:mod:`huale.project`): the round it serves,
and the round ``START_TRAINING`` runs.

The served round is the newest finished round (``rounds/NNN/round.json`` written) with a trained
model: its checkpoint (``rounds/NNN/train/model.pt``), the strategy and threshold it selected
with and its ranking of the pool (``rounds/NNN/selection.json``). Before the first round there is
no model: ``model_version`` is still given (Label Studio needs one to connect) and predictions
wait. :func:`next_round` runs the project's next round with the last finished round's options.
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
    from huale.project.state import ROUND_RECORD

    for number in reversed(project.rounds()):
        folder = project.round_dir(number)
        if all((folder / name).is_file() for name in (ROUND_RECORD, SELECTION_JSON)) and \
                (folder / "train" / MODEL_NAME).is_file():
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
    root = getattr(project, "document_root", None) or pool_root(project.pool)
    prefix = project.config.image_url_prefix
    references = {}
    for record in pool.records:
        path = Path(record.path).resolve()
        references[image_location(path, root, prefix)] = record.image_id
        references[image_location(path, root, None)] = record.image_id
    return references


def next_round(project, *, budget: int | None = None, device: str = "auto") -> dict[str, Any]:
    """Run the project's next round (:func:`huale.project.rounds.run_round`) with the options of
    its last finished round; ``budget`` replaces that round's budget, and is required before
    the first round. Returns what the round did, for ``/health``."""
    from dataclasses import fields

    from huale.project.rounds import RoundOptions, run_round
    from huale.serve.errors import NotReady

    finished = project.finished_rounds()
    options = dict(finished[-1].get("options") or {}) if finished else {}
    if budget is not None:
        options["budget"] = budget
    if "budget" not in options:
        raise NotReady(
            f"{project.root}: no finished round to take the options from; run `huale round "
            f"{project.root} --budget N` once, or start huale serve with --budget N"
        )
    known = {f.name for f in fields(RoundOptions)}
    values = {k: v for k, v in options.items() if k in known}
    values.update(device=device, progress=False, workers=0)
    result = run_round(project, RoundOptions(**values))
    return {"round": result.number, "selected": len(result.selected), "resumed": result.resumed}
