"""The prediction ``score`` ``huale serve`` gives a task: its place in the round's ranking.

Label Studio shows the task with the **lowest** prediction score first (its uncertainty
sampling, and the Data Manager sorted ascending by "Prediction score"), so the score encodes
huale's order, lowest = most informative:

- the images the round selected get ``(k - 1) / B`` for the k-th of the B selected, in
  ``[0, 1)``: exactly the score of the round's own task export
  (:func:`huale.selection.export.label_studio_tasks`), so imported and served tasks sort together;
- the rest of the pool gets ``1 + (k - 1) / (N - B)`` for the k-th of the N - B others, in
  ``[1, 2)``: below every selected image, in rank order;
- an image the round did not rank (uploaded to Label Studio, or added to the pool later) is
  scored live by the strategy and placed among the non-selected images whose stage matches, by
  score (:meth:`Ranking.place`); it takes the score of the place it lands on.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RankedEntry:
    """One image of a round's ranking (``selection.json``'s ``ranking``)."""

    image_id: str
    rank: int
    score: float | None
    stage: str
    selected: bool


class Ranking:
    """A round's ranking of the pool with the score rules of the module docstring."""

    def __init__(self, entries: Iterable[RankedEntry]):
        ordered = sorted(entries, key=lambda e: e.rank)
        self.entries = ordered
        self.by_id = {e.image_id: e for e in ordered}
        chosen = [e for e in ordered if e.selected]
        others = [e for e in ordered if not e.selected]
        self.num_selected = len(chosen)
        self.num_others = len(others)
        self._position = {e.image_id: k for k, e in enumerate(chosen)}
        self._position.update({e.image_id: k for k, e in enumerate(others)})
        # per stage: the non-selected entries' scores, negated and ascending (best first), and
        # their positions among the non-selected, for bisecting a live score into place
        self._stages: dict[str, tuple[list[float], list[int]]] = {}
        for k, e in enumerate(others):
            keys, positions = self._stages.setdefault(e.stage, ([], []))
            keys.append(-_finite(e.score))
            positions.append(k)

    @classmethod
    def from_selection(cls, ranking: Iterable[Mapping]) -> Ranking:
        """From the ``ranking`` list of ``selection.json``."""
        return cls(
            RankedEntry(
                image_id=str(item["image_id"]),
                rank=int(item["rank"]),
                score=None if item.get("score") is None else float(item["score"]),
                stage=str(item.get("stage", "ranked")),
                selected=bool(item.get("selected", False)),
            )
            for item in ranking
        )

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.by_id

    def prediction_score(self, image_id: str) -> float:
        """The task score of a ranked image (module docstring)."""
        entry = self.by_id[image_id]
        k = self._position[image_id]
        if entry.selected:
            return k / self.num_selected
        return 1.0 + k / max(self.num_others, 1)

    def place(self, score: float, stage: str) -> int:
        """Position among the non-selected images a live image of ``score`` and ``stage`` takes:
        before the first image of the same stage with a lower score (ties go after); after the
        last of its stage when none is lower; at the end when the stage is not in the ranking."""
        keys_positions = self._stages.get(stage)
        if not keys_positions:
            return self.num_others
        keys, positions = keys_positions
        i = bisect.bisect_right(keys, -_finite(score))
        return positions[i] if i < len(positions) else positions[-1] + 1

    def live_score(self, score: float, stage: str) -> float:
        """The task score of an image the round did not rank (module docstring)."""
        k = self.place(score, stage)
        return 1.0 + min(k, self.num_others) / max(self.num_others, 1)


def _finite(value: float | None) -> float:
    """Scores of images without detections are written as null (-inf): they sort last."""
    if value is None or not math.isfinite(value):
        return -math.inf
    return float(value)
