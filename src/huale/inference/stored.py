"""The records of a finished scoring run, read back from its shards as they are needed.

:class:`StoredRecords` is a :class:`~huale.predictions.RecordSource`: it holds only the image
ids (and, on request, one column of scalars); every pass over it reads one shard at a time, and
``load(ids)`` reads only the shards holding those images. A strategy ranking a 1M-image pool
therefore keeps one shard of records in memory, plus what it decides to keep.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from huale.errors import DataError
from huale.inference.shards import ShardStore
from huale.predictions import ORIGINAL, Detections, PredictionRecord


class StoredRecords:
    """The readable images' records of the finished shard folder ``folder``, in pool order."""

    def __init__(self, folder: str | Path):
        self.store = ShardStore.open(folder)
        if not all(self.store.finished(k) for k in range(self.store.num_shards)):
            raise DataError(Path(folder), "scoring run not finished: shards are missing")
        ids_per_shard = [self._column(k, "image_ids").tolist() for k in range(self.store.num_shards)]
        self._ids: list[str] = [str(i) for ids in ids_per_shard for i in ids]
        self._shard_of = np.repeat(
            np.arange(len(ids_per_shard)), [len(ids) for ids in ids_per_shard]
        )

    @property
    def ids(self) -> list[str]:
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[PredictionRecord]:
        for k in range(self.store.num_shards):
            records, _ = self.store.read(k)
            yield from records

    def load(self, ids: Sequence[str]) -> list[PredictionRecord]:
        """The records of ``ids``, in that order (KeyError for an id not in the run)."""
        position = {image_id: n for n, image_id in enumerate(self._ids)}
        missing = [i for i in ids if i not in position]
        if missing:
            raise KeyError(f"not in the scoring run: {missing[:5]}")
        wanted = set(ids)
        found: dict[str, PredictionRecord] = {}
        for k in sorted({int(self._shard_of[position[i]]) for i in ids}):
            records, _ = self.store.read(k)
            # copies: a record read from a shard is a view of the shard's arrays, and keeping
            # one view would keep the whole shard in memory
            found.update((r.image_id, _detached(r)) for r in records if r.image_id in wanted)
        return [found[i] for i in ids]

    def features(self) -> tuple[list[str], np.ndarray | None]:
        """``(ids, (N, D) float32)``: the pooled features alone, read shard by shard."""
        if not self._ids:
            return [], np.zeros((0, 0), np.float32)
        parts = []
        for k in range(self.store.num_shards):
            column = self._column(k, "features", required=False)
            if column is None:
                if self._column(k, "image_ids").size:
                    return list(self._ids), None
                continue
            parts.append(column.astype(np.float32, copy=False))
        return list(self._ids), np.concatenate(parts)

    def original_box_counts(self, min_score: float) -> np.ndarray:
        """(N,) int64: detections of the original view with score >= ``min_score`` per image,
        read from two columns of each shard (no record is built)."""
        out = []
        for k in range(self.store.num_shards):
            counts = self._column(k, f"views.{ORIGINAL}.counts", required=False)
            if counts is None:
                continue
            scores = self._column(k, f"views.{ORIGINAL}.scores")
            owner = np.repeat(np.arange(counts.size), counts)
            out.append(np.bincount(owner[scores >= min_score], minlength=counts.size))
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    def _column(self, k: int, name: str, *, required: bool = True) -> np.ndarray | None:
        """One array of shard ``k`` (an ``.npz`` member is read on its own)."""
        path = self.store.path(k)
        try:
            with np.load(path, allow_pickle=False) as content:
                if name not in content.files:
                    if required:
                        raise KeyError(name)
                    return None
                return content[name]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise DataError(path, f"unreadable scoring shard ({exc}); delete it to recompute") from None


def _detached(record: PredictionRecord) -> PredictionRecord:
    """``record`` with its own copies of every array."""

    def copy(dets: Detections) -> Detections:
        return Detections(*(np.array(getattr(dets, f)) for f in _DETECTION_FIELDS))

    return replace(
        record,
        views={name: copy(d) for name, d in record.views.items()},
        prenms={name: copy(d) for name, d in record.prenms.items()},
        feature=None if record.feature is None else np.array(record.feature),
    )


_DETECTION_FIELDS = ("boxes", "labels", "scores", "class_probs", "max_fg_prob", "fpn_level")
