"""A labeling project on disk: what ``huale init`` records and every command reads.

Layout of ``PROJECT/``::

    project.json          pool, validation set, classes (user's category ids), model settings
    labeled.json          huale's COCO copy of the labeled set (huale.project.labeled)
    ingests.json          one entry per ``huale ingest`` that changed the labeled set
    rounds/001/           one folder per round (huale.project.rounds): round.json when finished,
                          train/ (checkpoints), eval.json, the exports and the gallery

Library API (also for ``huale serve``): ``Project.open(path)`` / ``Project.create(...)``;
``project.class_names``, ``project.categories``, ``project.pool``, ``project.val``,
``project.labeled_path`` / ``project.labeled()`` (a :class:`~huale.project.labeled.LabeledSet`),
``project.rounds()`` (finished and unfinished round numbers), ``project.current_round()`` (the
newest round number, or None), ``project.round_dir(n)``, ``project.round_record(n)`` (its
round.json, or None while unfinished), ``project.latest_checkpoint()`` (the newest round's
trained ``model.pt``), ``project.lock()`` (a :class:`~huale.locking.FolderLock`: a second writer
stops with exit 2, naming the holder).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huale.errors import ConfigError, DataError
from huale.io import atomic_write_json
from huale.labeling.urls import LOCAL_FILES_PREFIX, default_document_root
from huale.locking import FolderLock
from huale.project.labeled import LabeledSet
from huale.selection.pool import pool_root

PROJECT_FILE = "project.json"
LABELED_FILE = "labeled.json"
INGESTS_FILE = "ingests.json"
ROUNDS_DIR = "rounds"
ROUND_RECORD = "round.json"
FORMAT = "huale-project"
VERSION = 1


@dataclass
class ModelSettings:
    """The detector every round trains (``huale init --arch ...``)."""

    arch: str = "small"
    weights: str | None = None
    backbone_weights: str | None = None
    min_size: int | None = None
    max_size: int | None = None


@dataclass
class ProjectConfig:
    """What project.json holds. Paths are absolute.

    image_url_prefix, document_root: Label Studio tasks point at ``prefix + path relative to
    document_root`` (default: Label Studio's local-files serving, document root = the folder
    holding the pool folder, which is Label Studio's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``).
    """

    pool: str
    labeled_source: str
    class_names: list[str]
    categories: list[dict]
    val: str | None = None
    val_split: str = "test"
    pool_split: str = "train"
    image_url_prefix: str = LOCAL_FILES_PREFIX
    document_root: str | None = None
    model: ModelSettings = field(default_factory=ModelSettings)

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict, path: Path) -> ProjectConfig:
        if data.get("format") != FORMAT:
            raise DataError(path, "not a huale project file")
        if data.get("version") != VERSION:
            raise DataError(path, f"project version {data.get('version')} (this huale reads {VERSION})")
        values = {k: v for k, v in data.items() if k not in ("format", "version")}
        values["model"] = ModelSettings(**values.get("model", {}))
        return cls(**values)


class Project:
    """An open project folder (see module docstring)."""

    def __init__(self, root: Path, config: ProjectConfig):
        self.root = Path(root)
        self.config = config

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, root: str | Path, *, pool: str | Path, labeled: str | Path,
               val: str | Path | None = None, labeled_split: str = "train", val_split: str = "test",
               pool_split: str = "train", model: ModelSettings | None = None,
               image_url_prefix: str = LOCAL_FILES_PREFIX,
               document_root: str | Path | None = None) -> Project:
        """Create the project folder (it must not hold a project yet) and copy the labeled set."""
        root = Path(root)
        if (root / PROJECT_FILE).exists():
            raise ConfigError(f"{root}: already a huale project (project.json exists)")
        pool = Path(pool)
        if not pool.exists():
            raise DataError(pool, "pool not found (expected an image folder, a .txt list or a dataset)")
        labeled_set = LabeledSet.from_annotations(labeled, split=labeled_split)
        class_names = labeled_set.class_names
        if val is not None:
            from huale.data.loading import load_dataset

            load_dataset(val, val_split, class_names=class_names)  # fails early, naming the file
        config = ProjectConfig(
            pool=str(pool.resolve()), labeled_source=str(Path(labeled).resolve()),
            class_names=class_names,
            categories=[{"id": c["id"], "name": c["name"]} for c in labeled_set.categories],
            val=None if val is None else str(Path(val).resolve()), val_split=val_split,
            pool_split=pool_split, image_url_prefix=image_url_prefix,
            document_root=str(Path(document_root).resolve() if document_root is not None
                              else default_document_root(pool_root(pool))),
            model=model or ModelSettings(),
        )
        project = cls(root, config)
        with project.lock():
            labeled_set.save(project.labeled_path)
            atomic_write_json(root / PROJECT_FILE, config.to_json())  # last: marks a complete init
        return project

    @classmethod
    def open(cls, root: str | Path) -> Project:
        root = Path(root)
        path = root / PROJECT_FILE
        if not path.is_file():
            raise DataError(root, "not a huale project (no project.json; create one with huale init)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON ({exc.msg})") from None
        return cls(root, ProjectConfig.from_json(data, path))

    def lock(self) -> FolderLock:
        return FolderLock(self.root)

    # ------------------------------------------------------------------ facts
    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    @property
    def categories(self) -> list[dict]:
        return [dict(c) for c in self.config.categories]

    @property
    def pool(self) -> Path:
        return Path(self.config.pool)

    @property
    def document_root(self) -> Path:
        """The folder Label Studio image URLs are relative to (its local-files document root)."""
        return Path(self.config.document_root or default_document_root(pool_root(self.pool)))

    @property
    def val(self) -> Path | None:
        return Path(self.config.val) if self.config.val else None

    @property
    def labeled_path(self) -> Path:
        return self.root / LABELED_FILE

    def labeled(self) -> LabeledSet:
        return LabeledSet.load(self.labeled_path)

    @property
    def rounds_dir(self) -> Path:
        return self.root / ROUNDS_DIR

    def round_dir(self, number: int) -> Path:
        return self.rounds_dir / f"{number:03d}"

    def rounds(self) -> list[int]:
        """Numbers of all round folders (finished or not), ascending."""
        if not self.rounds_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.rounds_dir.iterdir() if p.is_dir() and p.name.isdigit())

    def current_round(self) -> int | None:
        rounds = self.rounds()
        return rounds[-1] if rounds else None

    def round_record(self, number: int) -> dict[str, Any] | None:
        """The round's round.json (written when the round finished), or None."""
        path = self.round_dir(number) / ROUND_RECORD
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def finished_rounds(self) -> list[dict[str, Any]]:
        return [r for r in (self.round_record(n) for n in self.rounds()) if r is not None]

    def latest_checkpoint(self) -> Path | None:
        """The newest trained ``model.pt`` of any round, or None before the first training."""
        from huale.engine.train import MODEL_NAME

        for number in reversed(self.rounds()):
            path = self.round_dir(number) / "train" / MODEL_NAME
            if path.is_file():
                return path
        return None

    def ingests(self) -> list[dict]:
        path = self.root / INGESTS_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []

    def record_ingest(self, entry: dict) -> None:
        atomic_write_json(self.root / INGESTS_FILE, [*self.ingests(), entry])
