"""Scoring runs on disk: numbered ``.npz`` shards of prediction records plus a manifest.

Layout of a shard folder::

    manifest.json         what was scored: model fingerprint and settings, needs, seed, image ids
    shard-000000.npz      records of images [0, S), S = shard size, in pool order
    shard-000001.npz      images [S, 2S) ...

Each file is written atomically (:mod:`huale.io`), so a shard either exists complete or not at
all, and a stopped run resumes after its last finished shard. A folder whose manifest differs
from the current run (other model, needs, seed or pool) is refused, never mixed.

A shard is a plain ``.npz`` (read with ``allow_pickle=False``; no pickled objects): ``image_ids``,
``widths``, ``heights`` (N,); per view ``v`` and kind ``views``/``prenms``:
``{kind}.{v}.counts`` (N,) and each :class:`Detections` field concatenated over the N images;
``features`` (N, D) when kept; ``skipped_ids`` / ``skipped_reasons`` for unreadable images.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from huale.errors import ConfigError, DataError
from huale.io import atomic_write_bytes, atomic_write_json
from huale.predictions import Detections, PredictionRecord

MANIFEST = "manifest.json"
FORMAT = "huale-scoring"
VERSION = 1
_FIELDS = ("boxes", "labels", "scores", "class_probs", "max_fg_prob", "fpn_level")


class ShardStore:
    """The shard folder of one scoring run (see module docstring).

    manifest: JSON-friendly description of the run; must contain ``"image_ids"`` (the pool in
    order) and ``"shard_size"``. Opening a folder with another manifest raises ConfigError.
    """

    def __init__(self, folder: str | Path, manifest: dict):
        self.folder = Path(folder)
        self.manifest = {"format": FORMAT, "version": VERSION, **manifest}
        self.image_ids: list[str] = list(manifest["image_ids"])
        self.shard_size = int(manifest["shard_size"])
        if self.shard_size < 1:
            raise ConfigError(f"shard size must be >= 1, got {self.shard_size}")
        self._check_or_write_manifest()

    @classmethod
    def open(cls, folder: str | Path) -> ShardStore:
        """The finished or partial scoring run in ``folder``, from its own manifest."""
        path = Path(folder) / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(path, f"unreadable scoring manifest ({exc})") from None
        return cls(folder, {k: v for k, v in manifest.items() if k not in ("format", "version")})

    @property
    def num_shards(self) -> int:
        return -(-len(self.image_ids) // self.shard_size)

    def shard_ids(self, k: int) -> list[str]:
        return self.image_ids[k * self.shard_size : (k + 1) * self.shard_size]

    def path(self, k: int) -> Path:
        return self.folder / f"shard-{k:06d}.npz"

    def finished(self, k: int) -> bool:
        return self.path(k).is_file()

    def write(
        self, k: int, records: Sequence[PredictionRecord], skipped: Sequence[tuple[str, str]] = ()
    ) -> Path:
        """Write shard ``k`` atomically: its records plus (image id, reason) of skipped images."""
        covered = [r.image_id for r in records] + [image_id for image_id, _ in skipped]
        if sorted(covered) != sorted(self.shard_ids(k)):
            raise ValueError(f"shard {k} must cover exactly its {len(self.shard_ids(k))} images")
        buffer = io.BytesIO()
        np.savez(buffer, **records_to_arrays(records, skipped))
        return atomic_write_bytes(self.path(k), buffer.getvalue())

    def read(self, k: int) -> tuple[list[PredictionRecord], list[tuple[str, str]]]:
        """(records, skipped) of finished shard ``k``; DataError if it does not match the run."""
        path = self.path(k)
        try:
            with np.load(path, allow_pickle=False) as content:
                arrays = {name: content[name] for name in content.files}
            records, skipped = arrays_to_records(arrays)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            problem = f"unreadable scoring shard ({exc}); delete it to recompute"
            raise DataError(path, problem) from None
        covered = [r.image_id for r in records] + [image_id for image_id, _ in skipped]
        if sorted(covered) != sorted(self.shard_ids(k)):
            raise DataError(path, "shard does not hold the images the manifest assigns to it")
        return records, skipped

    def _check_or_write_manifest(self) -> None:
        path = self.folder / MANIFEST
        if not path.is_file():
            if any(self.folder.glob("shard-*.npz")):
                raise ConfigError(f"{self.folder}: shards without a manifest; delete the folder")
            atomic_write_json(path, self.manifest, indent=None)
            return
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(path, f"unreadable scoring manifest ({exc})") from None
        current = json.loads(json.dumps(self.manifest))  # the same JSON normalisation
        differing = sorted(
            key for key in set(stored) | set(current) if stored.get(key) != current.get(key)
        )
        if differing:
            raise ConfigError(
                f"{self.folder} holds a scoring run with other {', '.join(differing)}; "
                "delete it (or use another output folder) to score again"
            )


def records_to_arrays(
    records: Sequence[PredictionRecord], skipped: Sequence[tuple[str, str]] = ()
) -> dict[str, np.ndarray]:
    """Flat arrays of ``records`` (see module docstring); inverse of :func:`arrays_to_records`."""
    arrays = {
        "image_ids": np.array([r.image_id for r in records], dtype=str),
        "widths": np.array([r.width for r in records], dtype=np.int64),
        "heights": np.array([r.height for r in records], dtype=np.int64),
        "skipped_ids": np.array([image_id for image_id, _ in skipped], dtype=str),
        "skipped_reasons": np.array([reason for _, reason in skipped], dtype=str),
    }
    if records:
        for kind in ("views", "prenms"):
            names = list(getattr(records[0], kind))
            arrays[f"{kind}"] = np.array(names, dtype=str)
            for name in names:
                dets = [getattr(r, kind)[name] for r in records]
                arrays[f"{kind}.{name}.counts"] = np.array([len(d) for d in dets], dtype=np.int64)
                for field in _FIELDS:
                    arrays[f"{kind}.{name}.{field}"] = np.concatenate(
                        [getattr(d, field) for d in dets]
                    )
        if records[0].feature is not None:
            arrays["features"] = np.stack([r.feature for r in records]).astype(np.float32)
    return arrays


def arrays_to_records(
    arrays: dict[str, np.ndarray],
) -> tuple[list[PredictionRecord], list[tuple[str, str]]]:
    """(records, skipped) from :func:`records_to_arrays` output."""
    image_ids = [str(i) for i in arrays["image_ids"]]
    skipped = [
        (str(i), str(r))
        for i, r in zip(arrays["skipped_ids"], arrays["skipped_reasons"], strict=True)
    ]
    per_kind: dict[str, dict[str, list[Detections]]] = {"views": {}, "prenms": {}}
    for kind in per_kind:
        for name in (str(n) for n in arrays.get(kind, ())):
            counts = arrays[f"{kind}.{name}.counts"]
            split_at = np.cumsum(counts)[:-1]
            columns = {f: np.split(arrays[f"{kind}.{name}.{f}"], split_at) for f in _FIELDS}
            per_kind[kind][name] = [
                Detections(**{f: columns[f][i] for f in _FIELDS}) for i in range(len(image_ids))
            ]
    features = arrays.get("features")
    records = [
        PredictionRecord(
            image_id=image_id,
            width=int(arrays["widths"][i]),
            height=int(arrays["heights"][i]),
            views={name: dets[i] for name, dets in per_kind["views"].items()},
            prenms={name: dets[i] for name, dets in per_kind["prenms"].items()},
            feature=None if features is None else features[i],
        )
        for i, image_id in enumerate(image_ids)
    ]
    return records, skipped
