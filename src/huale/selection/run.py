"""``huale select``: score an unlabeled pool with a checkpoint and pick the next images to label.

Pipeline: load the checkpoint and the pool, drop images already labeled
(:mod:`huale.selection.pool`), build the strategy, score the pool with the views and extras the
strategy needs (:mod:`huale.inference`, shards under ``OUT/.scoring/`` so a killed run resumes),
measure what the strategy needs about the labeled set (class counts, the model's per-class
quality for HUALE's class weights, core-set features), select, and write the exports
(:mod:`huale.selection.export`).

:func:`select_with_model` / :func:`score_and_select` are the same scoring-and-selection core for
library callers (the active-learning loop) that already hold a model and datasets.

Under ``torchrun`` (:mod:`huale.runtime.distributed`) every process scores its share of the pool
and rank 0 gathers the records in pool order, so the strategy sees exactly what a single process
would; rank 0 selects and writes, and every process returns the selection.

Budget rules: the budget must be a positive integer (0 is a ConfigError: there is nothing to
do). ``budget_unit="boxes"`` counts the model's detections on the original view with score
>= ``preannotation_threshold``; an image without any such detection costs 1 box, because
someone still has to look at it. A budget at least as large as the whole pool selects the whole
pool, with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from huale import __version__
from huale.data.records import DetectionDataset
from huale.data.textfiles import read_class_names
from huale.errors import ConfigError, DataError
from huale.inference import (
    DEFAULT_SHARD_SIZE,
    DetectorAdapter,
    ScoringReport,
    ScoringRequest,
    as_adapter,
    iter_pool_records,
    load_detector,
    score_pool,
)
from huale.inference.adapters import DEFAULT_DETECTOR, adapter_class, check_needs
from huale.inference.predictions_file import PredictionsFile, classes_file_of, match_lines
from huale.inference.stored import StoredRecords
from huale.labeling.urls import LOCAL_FILES_PREFIX, default_document_root
from huale.locking import FolderLock
from huale.outfolder import claim_out_folder
from huale.predictions import ORIGINAL, Detections, PredictionRecord
from huale.runtime import distributed
from huale.selection import export
from huale.selection.context import build_selection_context
from huale.selection.pool import (
    labeled_in_pool,
    load_labeled,
    load_pool,
    pool_root,
    read_id_list,
    unmatched_ids,
)
from huale.strategies import Needs, Selection, Strategy, build_strategy
from huale.strategies.base import Records, load_records, record_ids

log = logging.getLogger(__name__)

BUDGET_UNITS = ("images", "boxes")
SCORING_DIR = ".scoring"
# what a run writes in its folder (deleted first by --overwrite)
OUTPUTS = (SCORING_DIR, export.SELECTION_CSV, export.SELECTION_JSON, export.SELECTED_COCO,
           export.LABEL_STUDIO_TASKS)


@dataclass(kw_only=True)
class SelectConfig:
    """Inputs of one ``huale select`` run (see the CLI help for each option).

    Scores come from ``checkpoint`` (the ``detector`` family; plain torchvision weights with
    ``arch`` and ``classes``) or, without any detector, from a ``predictions`` file (with
    ``classes``; ``labeled_predictions``: the labeled images' lines, default the same file).
    """

    pool: Path
    budget: int
    out: Path
    checkpoint: Path | None = None
    detector: str = DEFAULT_DETECTOR
    arch: str | None = None
    classes: Path | None = None
    min_size: int | None = None
    max_size: int | None = None
    predictions: Path | None = None
    labeled_predictions: Path | None = None
    labeled: Path | None = None
    labeled_ids: Path | None = None
    budget_unit: str = "images"
    strategy: str = "huale"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    pool_split: str = "train"
    labeled_split: str = "train"
    preannotation_threshold: float = 0.5
    image_url_prefix: str | None = LOCAL_FILES_PREFIX  # None: absolute file paths
    image_root: Path | None = None  # image URLs are relative to it; default: see image_url_root
    model_version: str | None = None  # Label Studio predictions' model_version; default huale-<strategy>
    task_data: dict[str, Any] = field(default_factory=dict)  # extra data fields of every task
    batch_size: int = 4
    device: str = "auto"
    workers: int = 2
    amp: bool = True
    shard_size: int = DEFAULT_SHARD_SIZE
    progress: bool = True
    resume: bool = False
    overwrite: bool = False

    def scoring_request(self) -> ScoringRequest:
        """How to run the scoring passes of this selection."""
        return ScoringRequest(
            batch_size=self.batch_size, device=self.device, amp=self.amp, workers=self.workers,
            progress=self.progress, shard_size=self.shard_size,
        )

    def __post_init__(self) -> None:
        if (self.checkpoint is None) == (self.predictions is None):
            raise ConfigError("give either --checkpoint (a detector) or --predictions (a file)")
        if self.predictions is not None and (self.arch or self.detector != DEFAULT_DETECTOR):
            raise ConfigError("--predictions needs no detector: drop --arch / --detector")
        if self.labeled_predictions is not None and self.predictions is None:
            raise ConfigError("--labeled-predictions goes with --predictions")
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise ConfigError(
                f"budget must be a positive integer, got {self.budget!r} (nothing to select)"
            )
        if self.budget_unit not in BUDGET_UNITS:
            raise ConfigError(f"budget unit must be one of {', '.join(BUDGET_UNITS)}")
        if not 0.0 <= self.preannotation_threshold <= 1.0:
            raise ConfigError("the pre-annotation threshold must be in [0, 1]")


@dataclass
class SelectResult:
    """What a run selected and wrote. ``selected``: image ids in rank order."""

    selection: Selection
    selected: list[str]
    files: dict[str, Path]
    pool_size: int
    already_labeled: list[str]
    skipped: list[tuple[str, str]]  # (image id, or file for images unreadable at loading; reason)
    resumed: int = 0  # pool images read back from the scoring shards of an earlier run


def run_selection(config: SelectConfig) -> SelectResult:
    """Run the pipeline of the module docstring and write the four export files.

    The output folder is locked for the whole run: a second ``huale select`` on the same
    ``--out`` stops with an error instead of mixing its files with this one's. A folder that is
    not empty needs ``config.resume`` (continue from its scoring shards) or ``config.overwrite``
    (delete its shards and exports first): :func:`huale.outfolder.claim_out_folder`.
    """
    with distributed.main_only(FolderLock(config.out)):
        distributed.run_on_main(
            claim_out_folder, config.out, resume=config.resume, overwrite=config.overwrite,
            outputs=OUTPUTS,
        )
        return _run_selection(config)


def _run_selection(config: SelectConfig) -> SelectResult:
    strategy = build_strategy(config.strategy, **config.strategy_options)
    # a strategy needing what the source cannot give fails now, before anything is read
    source = PredictionsFile if config.predictions is not None else adapter_class(config.detector)
    check_needs(config.strategy, strategy.needs, source)
    if config.predictions is not None:
        detector = PredictionsFile(config.predictions)
        class_names = read_class_names(config.classes or classes_file_of(config.predictions))
    else:
        classes = read_class_names(config.classes) if config.classes is not None else None
        sizes = {k: v for k, v in (("min_size", config.min_size), ("max_size", config.max_size))
                 if v is not None}
        detector = load_detector(config.detector, config.checkpoint, arch=config.arch,
                                 classes=classes, **sizes)
        class_names = list(detector.class_names)
    # the user's category id of each class (None: 1..C), so that exports keep the user's ids
    category_ids = getattr(detector, "category_ids", None)

    pool = load_pool(config.pool, class_names, split=config.pool_split, category_ids=category_ids)
    labeled = (
        load_labeled(config.labeled, class_names, split=config.labeled_split,
                     category_ids=category_ids)
        if config.labeled is not None
        else None
    )
    ids = read_id_list(config.labeled_ids) if config.labeled_ids is not None else []
    ids_folder = config.labeled_ids.parent if config.labeled_ids is not None else Path(".")
    already = labeled_in_pool(pool, labeled, ids, ids_folder)
    unmatched = unmatched_ids(pool, ids, ids_folder)
    if unmatched:
        log.warning(
            "%d of the %d lines of %s name no pool image (e.g. %r): check them for typos, a "
            "labeled image they miss can be selected again",
            len(unmatched), len(ids), config.labeled_ids, unmatched[0],
        )
    if already:
        log.info("%d pool images are already labeled and left out", len(already))
    if labeled is None and not ids:
        log.warning("no labeled set given (--labeled): no pool image is treated as labeled")
    excluded = set(already)
    pool = pool.subset([i for i in pool.ids if i not in excluded])
    if len(pool) == 0:
        detail = f" (all {len(already)} images are already labeled)" if already else ""
        raise DataError(config.pool, f"the pool is empty{detail}")

    if isinstance(detector, PredictionsFile):
        records, report, labeled_records = predictions_for_pool(
            config, pool, labeled, class_names, strategy.needs
        )
        scored = select_from_records(
            records, report, labeled, strategy, config.budget, class_names, seed=config.seed,
            budget_unit=config.budget_unit, preannotation_threshold=config.preannotation_threshold,
            labeled_records=labeled_records,
        )
    else:
        scored = score_and_select(
            detector, pool, labeled, strategy, config.budget, config.scoring_request(),
            seed=config.seed, shard_dir=config.out / SCORING_DIR, budget_unit=config.budget_unit,
            preannotation_threshold=config.preannotation_threshold,
        )
    # rank 0 holds the records and writes the exports; the other ranks get its result
    return distributed.run_on_main(_export, config, scored, pool, class_names, already)


def _export(config: SelectConfig, scored: ScoredSelection, pool: DetectionDataset,
            class_names: list[str], already: list[str]) -> SelectResult:
    """Write the four export files of a scored selection (see module docstring)."""
    if not scored.pool_size:
        raise DataError(config.pool, "no pool image could be read")
    selection, report = scored.selection, scored.report
    selected = selection.selected

    by_id = {r.image_id: r for r in pool.records}
    chosen = set(selected)
    ranked = [
        export.RankedImage(
            rank=n,
            selected=s.image_id in chosen,
            score=s,
            record=_with_absolute_path(by_id[s.image_id]),
            predicted_boxes=scored.box_counts[s.image_id],
            detections=scored.detections.get(s.image_id),
        )
        for n, s in enumerate(selection.ranked, start=1)
    ]
    run = {
        "huale_version": __version__,
        "strategy": config.strategy,
        "strategy_options": config.strategy_options,
        "budget": config.budget,
        "budget_unit": config.budget_unit,
        "seed": config.seed,
        "checkpoint": _resolved(config.checkpoint),
        "detector": None if config.predictions is not None else config.detector,
        "predictions": _resolved(config.predictions),
        "pool": Path(config.pool).resolve().as_posix(),
        "labeled": None if config.labeled is None else Path(config.labeled).resolve().as_posix(),
        "class_names": class_names,
        "category_ids": pool.category_ids,
        "preannotation_threshold": config.preannotation_threshold,
        "pool_images": scored.pool_size,
        "already_labeled": len(already),
        "skipped": [{"image_id": i, "reason": r} for i, r in report.skipped],
        "skipped_files": [{"path": f, "reason": r} for f, r in pool.report.skipped],
        "num_selected": len(selected),
    }
    out = config.out
    files = {
        "csv": export.write_selection_csv(out / export.SELECTION_CSV, ranked),
        "json": export.write_selection_json(out / export.SELECTION_JSON, ranked, run),
        "coco": export.write_selected_coco(
            out / export.SELECTED_COCO, ranked, class_names, config.preannotation_threshold,
            pool.category_ids,
        ),
        "label_studio": export.write_label_studio_tasks(
            out / export.LABEL_STUDIO_TASKS,
            export.label_studio_tasks(
                ranked,
                class_names,
                image_root=image_url_root(config),
                url_prefix=config.image_url_prefix,
                model_version=config.model_version or f"huale-{config.strategy}",
                extra_data=config.task_data,
            ),
        ),
    }
    return SelectResult(
        selection=selection,
        selected=[item.score.image_id for item in ranked if item.selected],
        files=files,
        pool_size=scored.pool_size,
        already_labeled=already,
        skipped=[*pool.report.skipped, *report.skipped],
        resumed=report.resumed,
    )


@dataclass
class ScoredSelection:
    """A selection with what the exports need of the scoring run (never every pool record).

    pool_size: readable pool images scored; box_counts: per image id, the original view's
    detections with score >= the pre-annotation threshold; detections: those detections, for
    the selected images only; report: the scoring run's report.
    """

    selection: Selection
    pool_size: int
    box_counts: dict[str, int]
    detections: dict[str, Detections]
    report: ScoringReport


def select_with_model(
    detector: DetectorAdapter | nn.Module,
    pool: DetectionDataset,
    labeled: DetectionDataset | None,
    strategy: Strategy,
    budget: int,
    request: ScoringRequest | None = None,
    **options,
) -> Selection:
    """Score ``pool`` with ``detector`` as ``strategy`` needs and select ``budget`` images.

    ``pool`` must not contain files of ``labeled`` (ConfigError); ``labeled`` (annotated, may be
    None) gives the strategy's context. Options: see :func:`score_and_select`.
    """
    return score_and_select(detector, pool, labeled, strategy, budget, request, **options).selection


def score_and_select(
    detector: DetectorAdapter | nn.Module,
    pool: DetectionDataset,
    labeled: DetectionDataset | None,
    strategy: Strategy,
    budget: int,
    request: ScoringRequest | None = None,
    *,
    seed: int = 0,
    shard_dir: str | Path | None = None,
    budget_unit: str = "images",
    preannotation_threshold: float = 0.5,
    costs: dict[str, int] | None = None,
) -> ScoredSelection:
    """Score the pool (and, when needed, the labeled set), build the context and select.

    detector: a huale torch detector or any :class:`~huale.inference.DetectorAdapter`; a
    strategy needing what it cannot give fails here, before any scoring. request: how to score
    (:class:`~huale.inference.ScoringRequest`). shard_dir: scoring shards go to
    ``shard_dir/pool-<views...>`` and ``shard_dir/labeled-...`` (resumable). budget_unit
    ``"boxes"``: an image costs its detections >= ``preannotation_threshold`` (at least 1);
    ``costs`` (image id -> cost, with budget_unit "boxes") replaces those predicted costs, e.g.
    by the ground-truth box counts a simulated labeler pays. A budget covering the whole pool
    selects it all, with a warning.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"budget must be a positive integer, got {budget!r} (nothing to select)")
    if budget_unit not in BUDGET_UNITS:
        raise ConfigError(f"budget unit must be one of {', '.join(BUDGET_UNITS)}")
    if len(pool) == 0:
        raise ConfigError("the pool is empty: nothing to select from")
    inside = labeled_in_pool(pool, labeled) if labeled is not None else []
    if inside:
        raise ConfigError(f"the pool holds labeled images (e.g. {inside[0]!r}); leave them out first")
    adapter = as_adapter(detector)
    needs = strategy.needs
    check_needs(strategy.name, needs, adapter)
    shard_dir = Path(shard_dir) if shard_dir is not None else None
    report = ScoringReport()
    # under torchrun every process scores its part of the pool; rank 0 gets all the records
    records = _score(
        adapter, pool, needs, request, seed=seed, report=report,
        shard_dir=None if shard_dir is None else shard_dir / _needs_tag("pool", needs),
    )
    box_counts = _box_counts(records, preannotation_threshold)
    if not distributed.broadcast_object(bool(records)):
        return ScoredSelection(Selection([], []), 0, box_counts, {}, report)
    labeled_tag = _needs_tag("labeled", Needs(features=needs.labeled_features))
    context = build_selection_context(
        adapter, labeled, needs, list(pool.class_names), request, seed=seed,
        shard_dir=None if shard_dir is None else shard_dir / labeled_tag,
    )
    # rank 0 selects; every process returns its selection (the loop trains on it everywhere)
    selection = distributed.run_on_main(
        _select, strategy, records, budget, context, budget_unit, box_counts, costs
    )
    detections = _selected_preannotations(records, selection, preannotation_threshold)
    return ScoredSelection(selection, len(records), box_counts, detections, report)


def select_from_records(
    records: list[PredictionRecord],
    report: ScoringReport,
    labeled: DetectionDataset | None,
    strategy: Strategy,
    budget: int,
    class_names: Sequence[str],
    *,
    seed: int = 0,
    budget_unit: str = "images",
    preannotation_threshold: float = 0.5,
    labeled_records: Mapping[str, PredictionRecord] | None = None,
) -> ScoredSelection:
    """:func:`score_and_select` for records already predicted (a predictions file): the
    labeled images' records, by image id, give the class quality where the strategy needs it."""
    box_counts = _box_counts(records, preannotation_threshold)
    if not records:
        return ScoredSelection(Selection([], []), 0, box_counts, {}, report)
    context = build_selection_context(
        None, labeled, strategy.needs, list(class_names), seed=seed,
        labeled_records=labeled_records if labeled_records is not None else {},
    )
    selection = _select(strategy, records, budget, context, budget_unit, box_counts)
    return ScoredSelection(
        selection, len(records), box_counts, _selected_preannotations(
            records, selection, preannotation_threshold), report
    )


def predictions_for_pool(
    config: SelectConfig,
    pool: DetectionDataset,
    labeled: DetectionDataset | None,
    class_names: Sequence[str],
    needs: Needs,
) -> tuple[list[PredictionRecord], ScoringReport, dict[str, PredictionRecord]]:
    """(pool records in pool order, report, labeled records by labeled id) from the predictions
    file(s) of ``config``; pool images without a line are skipped and reported."""
    pool_lines = match_lines(config.predictions, class_names, pool, pool_root(config.pool), needs)
    report = ScoringReport(images=len(pool))
    records = []
    for image_id in pool.ids:
        if image_id in pool_lines:
            records.append(pool_lines[image_id])
            report.scored += 1
        else:
            report.skipped.append((image_id, f"no line in {config.predictions}"))
    if report.skipped:
        log.warning("%d pool images have no line in %s (e.g. %r): left out",
                    len(report.skipped), config.predictions, report.skipped[0][0])
    labeled_records: dict[str, PredictionRecord] = {}
    if labeled is not None and (needs.class_quality or needs.labeled_features):
        source = config.labeled_predictions or config.predictions
        root = pool_root(config.labeled) if config.labeled_predictions else pool_root(config.pool)
        labeled_records = match_lines(source, class_names, labeled, root, Needs())
    return records, report, labeled_records


def _score(adapter: DetectorAdapter, pool: DetectionDataset, needs: Needs,
           request: ScoringRequest | None, *, shard_dir: Path | None,
           **options) -> list[PredictionRecord] | StoredRecords:
    """The pool's records: with ``shard_dir``, streamed to shards and read back from them as a
    :class:`StoredRecords` (memory flat in the pool size); without, a list in memory. Under
    torchrun only rank 0 gets them (an empty list elsewhere)."""
    if shard_dir is None:
        return score_pool(adapter, pool, needs, request, **options)
    for _ in iter_pool_records(adapter, pool, needs, request, shard_dir=shard_dir, **options):
        pass  # each record is on disk once its shard is written
    return StoredRecords(shard_dir) if distributed.is_main() else []


def _box_counts(records, threshold: float) -> dict[str, int]:
    """Per image id, its original-view detections with score >= ``threshold``."""
    if isinstance(records, StoredRecords):
        counts = records.original_box_counts(threshold)
        return dict(zip(records.ids, counts.tolist(), strict=True))
    return {r.image_id: int((r.original.scores >= threshold).sum()) for r in records}


def _selected_preannotations(records, selection: Selection,
                             threshold: float) -> dict[str, Detections]:
    """Pre-annotations of the selected images only (never every pool image's)."""
    return {
        r.image_id: _preannotations(r, threshold)
        for r in (load_records(records, selection.selected) if records else [])
    }


def _select(strategy: Strategy, records: Records, budget: int, context,
            budget_unit: str, box_counts: dict[str, int],
            given_costs: dict[str, int] | None = None) -> Selection:
    """The strategy's selection of ``budget`` (in ``budget_unit``) from ``records``, checked;
    with ``budget_unit="boxes"`` an image costs ``given_costs[id]`` when given, else its
    predicted boxes (at least 1 either way)."""
    costs = None
    if budget_unit == "boxes" and given_costs is not None:
        costs = {i: max(1, int(given_costs[i])) for i in record_ids(records)}
    elif budget_unit == "boxes":
        costs = {image_id: max(1, n) for image_id, n in box_counts.items()}
    total = len(records) if costs is None else sum(costs.values())
    if budget >= total:
        log.warning(
            "budget %d %s covers the whole pool (%d %s): selecting all %d images",
            budget, budget_unit, total, budget_unit, len(records),
        )
        budget = total
    selection = strategy.select(records, budget, context, costs=costs)
    _check_selection(selection, records, budget, costs)
    return selection


def _preannotations(record: PredictionRecord, threshold: float):
    dets = record.original
    return dets.select(dets.scores >= threshold)


def _check_selection(selection: Selection, records, budget, costs) -> None:
    """Check the strategy kept the rules: pool images only, each once, within the budget."""
    pool_ids = set(record_ids(records))
    selected = list(selection.selected)
    if len(set(selected)) != len(selected) or not set(selected) <= pool_ids:
        raise RuntimeError("the strategy selected an image twice or outside the unlabeled pool")
    spent = len(selected) if costs is None else sum(costs[i] for i in selected)
    if spent > budget:
        raise RuntimeError(f"the strategy spent {spent} of a budget of {budget}")


def _resolved(path: Path | None) -> str | None:
    return None if path is None else Path(path).resolve().as_posix()


def _with_absolute_path(record):
    """The record with an absolute path; symlinks are kept, not resolved to their targets."""
    return record.with_path(os.path.abspath(record.path))


def image_url_root(config: SelectConfig) -> Path:
    """The folder Label Studio image URLs are relative to: ``config.image_root``, else for the
    local-files prefix Label Studio's document root (the folder holding the pool folder: Label
    Studio wants its storage path, the pool, strictly below the root), else the pool folder.
    Absolute, symlinks kept (as the records' paths are)."""
    if config.image_root is not None:
        return Path(os.path.abspath(config.image_root))
    if config.image_url_prefix == LOCAL_FILES_PREFIX:
        return default_document_root(pool_root(config.pool))
    return pool_root(config.pool)


def _needs_tag(kind: str, needs: Needs) -> str:
    """Folder name of a scoring run: what is scored and with which views / extras."""
    parts = [kind, "+".join(dict.fromkeys((ORIGINAL, *needs.views)))]
    if needs.prenms:
        parts.append(f"prenms{needs.prenms_threshold:g}")
    if needs.features:
        parts.append("features")
    return "-".join(parts)
