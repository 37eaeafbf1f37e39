"""``huale ingest``: bring labels back from a labeling tool into the project's labeled set.

Steps: read the export with its format's converter (:mod:`huale.labeling`), match each image to
an image a finished round sent (by huale's id in the task, then the task URL, then the path
relative to the pool, then the file name), map class names (``class_map``), bring boxes into the
image's pixel frame (rescaled when the tool states another image size, clipped to the image,
zero-area boxes dropped; all counted), and merge into ``labeled.json`` in one atomic write.

Rules: an unknown class name is an error naming it; an image no round sent is refused (error)
unless ``allow_new`` (then it must be a pool image or already labeled); skipped, cancelled or
unlabeled tasks change nothing and stay outstanding; an image that comes back with the same
boxes is unchanged (so ingesting one export twice changes nothing); different boxes replace the
stored ones and are reported, unless the stored annotation is newer (both times known), which is
kept and reported. Within one export, an image present twice keeps its newest annotation.

Library API: :func:`ingest_file` (a path), :func:`ingest_label_studio` (an in-memory Label
Studio export list, e.g. from its API), :func:`ingest_returned` (converter output).
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from huale.errors import ConfigError, DataError
from huale.labeling.coco_export import is_coco, parse_coco, read_coco_export
from huale.labeling.labelstudio import is_label_studio_export, parse_label_studio_export
from huale.labeling.returned import ANNOTATED, ReturnedImage
from huale.labeling.urls import path_of_url
from huale.labeling.voc_export import read_voc_export
from huale.project.labeled import ADDED, REPLACED, UNCHANGED
from huale.project.state import Project

log = logging.getLogger(__name__)

FORMATS = ("auto", "label-studio", "coco", "voc")


@dataclass
class IngestReport:
    """What an ingest did; lists hold image names (paths relative to the pool where possible)."""

    source: str
    format: str
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_newer: list[str] = field(default_factory=list)
    outstanding: list[str] = field(default_factory=list)  # skipped / cancelled / not labeled yet
    new: list[str] = field(default_factory=list)  # never sent, taken with allow_new
    duplicates: list[str] = field(default_factory=list)  # in the export twice: older ignored
    clipped_boxes: int = 0
    dropped_boxes: int = 0
    rescaled_images: int = 0
    rotated_boxes: int = 0
    mapped_boxes: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced)

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.replaced)} replaced",
                 f"{len(self.unchanged)} unchanged", f"{len(self.outstanding)} still outstanding"]
        if self.kept_newer:
            parts.append(f"{len(self.kept_newer)} kept (the labeled set's annotation is newer)")
        if self.new:
            parts.append(f"{len(self.new)} never sent, taken (--allow-new)")
        notes = []
        for count, what in ((self.clipped_boxes, "boxes clipped to the image"),
                            (self.dropped_boxes, "empty boxes dropped"),
                            (self.rescaled_images, "images rescaled to their file's size"),
                            (self.rotated_boxes, "rotated boxes replaced by their enclosing box"),
                            (self.mapped_boxes, "boxes renamed by --map"),
                            (len(self.duplicates), "images found twice (newest kept)")):
            if count:
                notes.append(f"{count} {what}")
        text = f"{self.source} ({self.format}): " + ", ".join(parts)
        return text + (f"; {', '.join(notes)}" if notes else "")

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class _Target:
    """An image a returned annotation may belong to."""

    path: Path
    name: str  # relative to the pool (or absolute) for messages
    width: int
    height: int
    round: int | None
    pool_id: str | None


def detect_format(path: Path) -> str:
    """``label-studio``, ``coco`` or ``voc`` for an export file or folder."""
    if path.is_dir():
        return "voc"
    if not path.is_file():
        raise DataError(path, "export not found")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith(".json") for n in names):
            return "coco"
        if any(n.endswith(".xml") for n in names):
            return "voc"
        raise DataError(path, "the zip holds neither COCO JSON nor VOC XML files")
    if path.suffix.lower() == ".xml":
        return "voc"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a JSON export, zip or VOC folder ({exc})") from None
    if is_label_studio_export(data):
        return "label-studio"
    if is_coco(data):
        return "coco"
    raise DataError(path, "JSON is neither a Label Studio export (a list of tasks) nor COCO")


def read_export(path: str | Path, fmt: str = "auto", *, voc_one_based: bool = False
                ) -> tuple[str, list[ReturnedImage]]:
    """``(format, returned images)`` of an export, with the format's converter."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "label-studio":
        from huale.labeling.labelstudio import read_label_studio_export

        return fmt, read_label_studio_export(path)
    if fmt == "coco":
        return fmt, read_coco_export(path)
    if path.is_file() and path.suffix.lower() == ".xml":
        from huale.labeling.voc_export import parse_voc_xml

        return fmt, [parse_voc_xml(path.read_bytes(), path, path.stem, one_based=voc_one_based)]
    return fmt, read_voc_export(path, one_based=voc_one_based)


def ingest_file(project: Project, export: str | Path, *, fmt: str = "auto",
                class_map: dict[str, str] | None = None, allow_new: bool = False,
                voc_one_based: bool = False, dry_run: bool = False) -> IngestReport:
    """Read ``export`` and merge it (see module docstring), holding the project's lock."""
    export = Path(export)
    fmt, returned = read_export(export, fmt, voc_one_based=voc_one_based)
    return ingest_returned(project, returned, source=str(export.resolve()), fmt=fmt,
                           class_map=class_map, allow_new=allow_new, dry_run=dry_run)


def ingest_label_studio(project: Project, tasks: list, *, source: str = "label-studio",
                        **options) -> IngestReport:
    """Merge an in-memory Label Studio export (list of task dicts)."""
    returned = parse_label_studio_export(tasks, source=source)
    return ingest_returned(project, returned, source=source, fmt="label-studio", **options)


def ingest_coco(project: Project, coco: dict, *, source: str = "coco", **options) -> IngestReport:
    """Merge an in-memory COCO dict (e.g. CVAT's instances_default.json)."""
    return ingest_returned(project, parse_coco(coco, source), source=source, fmt="coco", **options)


def ingest_returned(project: Project, returned: list[ReturnedImage], *, source: str, fmt: str,
                    class_map: dict[str, str] | None = None, allow_new: bool = False,
                    dry_run: bool = False) -> IngestReport:
    """Match, check and merge converter output; one atomic write of labeled.json."""
    with project.lock():
        return _ingest(project, returned, source, fmt, dict(class_map or {}), allow_new, dry_run)


def _ingest(project: Project, returned: list[ReturnedImage], source: str, fmt: str,
            class_map: dict[str, str], allow_new: bool, dry_run: bool) -> IngestReport:
    report = IngestReport(source=source, format=fmt)
    known = set(project.class_names)
    bad_targets = [new for new in class_map.values() if new not in known]
    if bad_targets:
        raise ConfigError(f"--map target {bad_targets[0]!r} is not a class of the project "
                          f"({', '.join(project.class_names)})")
    labeled = project.labeled()
    matcher = _Matcher(project, labeled)

    unknown: dict[str, list[str]] = {}
    for item in returned:
        for name in item.class_names:
            if class_map.get(name, name) not in known:
                unknown.setdefault(name, []).append(item.where)
    if unknown:
        name, places = next(iter(unknown.items()))
        others = f" (and {len(unknown) - 1} more unknown classes: {', '.join(list(unknown)[1:4])})" if len(unknown) > 1 else ""
        raise DataError(source, f"unknown class {name!r} ({len(places)} boxes, e.g. {places[0]}){others}; "
                        f"the project's classes are {', '.join(project.class_names)}; "
                        f"rename it with --map {name!r}=CLASS")

    chosen: dict[Path, tuple[ReturnedImage, _Target]] = {}
    never_sent = []
    for item in returned:
        target = matcher.sent(item)
        if target is None:
            target = matcher.elsewhere(item) if allow_new else None
            if target is None:
                never_sent.append(item)
                continue
            report.new.append(target.name)
        if item.status != ANNOTATED:
            report.outstanding.append(target.name)
            continue
        previous = chosen.get(target.path)
        if previous is not None:
            report.duplicates.append(target.name)
            if str(item.updated_at or "") < str(previous[0].updated_at or ""):
                continue
        chosen[target.path] = (item, target)
    if never_sent:
        names = ", ".join(_describe(i) for i in never_sent[:3])
        hint = " (not found in the pool either)" if allow_new else "; add --allow-new to take them"
        raise DataError(source, f"{len(never_sent)} images were never sent in a round of this project, "
                        f"e.g. {names}{hint}")
    # an image both skipped (one task) and annotated (another) is annotated
    report.outstanding = [n for n in report.outstanding
                          if n not in {t.name for _, t in chosen.values()}]

    for item, target in chosen.values():
        boxes = _to_pixels(item, target, report)
        names = [class_map.get(n, n) for n in item.class_names]
        report.mapped_boxes += sum(n in class_map for n in item.class_names)
        boxes, names = _clip(boxes, names, target.width, target.height, report)
        report.rotated_boxes += item.rotated_boxes
        existing = labeled.image_at(target.path)
        if existing is not None and item.updated_at:
            stored = (existing.get("huale") or {}).get("updated_at")
            if stored and str(stored) > str(item.updated_at):
                report.kept_newer.append(target.name)
                continue
        meta = {"round": target.round, "source": fmt, "export": source,
                "updated_at": item.updated_at, "pool_id": target.pool_id}
        if existing is not None and (existing.get("huale") or {}).get("round") == 0:
            meta["file_name"] = existing["huale"].get("file_name")
        status = labeled.put(target.path, target.width, target.height, boxes, names,
                             {k: v for k, v in meta.items() if v is not None})
        {ADDED: report.added, REPLACED: report.replaced, UNCHANGED: report.unchanged}[status].append(target.name)
    if report.replaced:
        log.warning("%d images already labeled got newer annotations, which replace the stored "
                    "ones: %s", len(report.replaced), ", ".join(report.replaced[:5]))
    if report.changed and not dry_run:
        labeled.save(project.labeled_path)
        project.record_ingest({k: (len(v) if isinstance(v, list) else v)
                               for k, v in report.to_json().items()})
    return report


class _Matcher:
    """Finds the image of a returned annotation among the rounds' sent images (or elsewhere)."""

    def __init__(self, project: Project, labeled):
        self.project = project
        self.labeled = labeled
        self.by_id: dict[str, _Target] = {}
        self.by_url: dict[str, _Target] = {}
        self.by_rel: dict[str, _Target] = {}
        self.by_base: dict[str, list[_Target]] = {}
        for record in project.finished_rounds():
            for s in record["selected"]:
                target = _Target(Path(s["path"]), s["file_name"], int(s["width"]), int(s["height"]),
                                 int(record["round"]), s["image_id"])
                self._index(target, s["image_id"], s.get("url"), s["file_name"])
        self._pool: _Matcher | None = None

    def _index(self, target: _Target, image_id: str | None, url: str | None, rel: str) -> None:
        if image_id is not None:
            self.by_id[image_id] = target
        if url:
            self.by_url[url] = target
        self.by_rel[rel] = target
        self.by_base.setdefault(PurePosixPath(rel).name, []).append(target)

    def sent(self, item: ReturnedImage) -> _Target | None:
        if item.huale_id is not None and item.huale_id in self.by_id:
            return self.by_id[item.huale_id]
        if item.url and item.url in self.by_url:
            return self.by_url[item.url]
        for name in (item.file_name, path_of_url(item.url) if item.url else None):
            if name:
                name = name.replace("\\", "/").lstrip("/")
                if name in self.by_rel:
                    return self.by_rel[name]
        base = item.base_name
        candidates = self.by_base.get(base, []) if base else []
        if len(candidates) > 1:
            raise DataError(item.where, f"file name {base!r} matches {len(candidates)} sent images "
                            f"({', '.join(t.name for t in candidates[:3])}); export with paths")
        return candidates[0] if candidates else None

    def elsewhere(self, item: ReturnedImage) -> _Target | None:
        """A never-sent image: a pool image, or an image of the labeled set."""
        if self._pool is None:
            from huale.selection.pool import load_pool, pool_root

            pool = _Matcher.__new__(_Matcher)
            pool.by_id, pool.by_url, pool.by_rel, pool.by_base = {}, {}, {}, {}
            root = pool_root(self.project.pool)
            dataset = load_pool(self.project.pool, self.project.class_names,
                                split=self.project.config.pool_split)
            for r in dataset.records:
                path = Path(r.path).resolve()
                rel = _relative(path, root)
                pool._index(_Target(path, rel, r.width, r.height, None, r.image_id), r.image_id, None, rel)
            for image in self.labeled.images:
                path = Path(image["file_name"])
                rel = (image.get("huale") or {}).get("file_name") or path.name
                if _relative(path, root) in pool.by_rel:
                    continue
                pool._index(_Target(path, rel, int(image["width"]), int(image["height"]), None, None),
                            None, None, rel)
            self._pool = pool
        return self._pool.sent(item)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _describe(item: ReturnedImage) -> str:
    return repr(item.file_name or item.url or item.huale_id or item.where)


def _to_pixels(item: ReturnedImage, target: _Target, report: IngestReport) -> np.ndarray:
    """Boxes in the image file's pixel frame: rescaled when the tool states another size."""
    boxes = item.boxes.copy()
    if item.width and item.height and (abs(item.width - target.width) > 0.5
                                       or abs(item.height - target.height) > 0.5):
        boxes[:, 0::2] *= target.width / item.width
        boxes[:, 1::2] *= target.height / item.height
        report.rescaled_images += 1
    return boxes


def _clip(boxes: np.ndarray, names: list[str], width: int, height: int,
          report: IngestReport) -> tuple[np.ndarray, list[str]]:
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, height)
    report.clipped_boxes += int(np.any(np.abs(clipped - boxes) > 1e-9, axis=1).sum())
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    report.dropped_boxes += int((~keep).sum())
    return clipped[keep], [n for n, k in zip(names, keep, strict=True) if k]
