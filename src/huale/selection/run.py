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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from huale import __version__
from huale.data.records import DetectionDataset
from huale.errors import ConfigError, DataError
from huale.inference import DEFAULT_SHARD_SIZE, ScoringReport, score_pool
from huale.locking import FolderLock
from huale.models.checkpoint import build_from_checkpoint, load_checkpoint
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

log = logging.getLogger(__name__)

BUDGET_UNITS = ("images", "boxes")
SCORING_DIR = ".scoring"


@dataclass
class SelectConfig:
    """Inputs of one ``huale select`` run (see the CLI help for each option)."""

    checkpoint: Path
    pool: Path
    budget: int
    out: Path
    labeled: Path | None = None
    labeled_ids: Path | None = None
    budget_unit: str = "images"
    strategy: str = "huale"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    pool_split: str = "train"
    labeled_split: str = "train"
    preannotation_threshold: float = 0.5
    image_url_prefix: str | None = None
    batch_size: int = 4
    device: str = "auto"
    workers: int = 2
    amp: bool = True
    shard_size: int = DEFAULT_SHARD_SIZE
    progress: bool = True

    def __post_init__(self) -> None:
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
    skipped: list[tuple[str, str]]


def run_selection(config: SelectConfig) -> SelectResult:
    """Run the pipeline of the module docstring and write the four export files.

    The output folder is locked for the whole run: a second ``huale select`` on the same
    ``--out`` stops with an error instead of mixing its files with this one's.
    """
    with distributed.main_only(FolderLock(config.out)):
        return _run_selection(config)


def _run_selection(config: SelectConfig) -> SelectResult:
    strategy = build_strategy(config.strategy, **config.strategy_options)
    state = load_checkpoint(config.checkpoint)
    class_names = list(state["class_names"])

    pool = load_pool(config.pool, class_names, split=config.pool_split)
    labeled = (
        load_labeled(config.labeled, class_names, split=config.labeled_split)
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

    model, _ = build_from_checkpoint(state)
    scored = score_and_select(
        model, pool, labeled, strategy, config.budget, seed=config.seed,
        shard_dir=config.out / SCORING_DIR, budget_unit=config.budget_unit,
        preannotation_threshold=config.preannotation_threshold, batch_size=config.batch_size,
        device=config.device, amp=config.amp, workers=config.workers, progress=config.progress,
        shard_size=config.shard_size,
    )
    # rank 0 holds the records and writes the exports; the other ranks get its result
    return distributed.run_on_main(_export, config, scored, pool, class_names, already)


def _export(config: SelectConfig, scored: ScoredSelection, pool: DetectionDataset,
            class_names: list[str], already: list[str]) -> SelectResult:
    """Write the four export files of a scored selection (see module docstring)."""
    if not scored.records:
        raise DataError(config.pool, "no pool image could be read")
    selection, report = scored.selection, scored.report
    records, detections = scored.records, scored.detections
    selected = selection.selected

    by_id = {r.image_id: r for r in pool.records}
    chosen = set(selected)
    ranked = [
        export.RankedImage(
            rank=n,
            selected=s.image_id in chosen,
            score=s,
            record=_with_resolved_path(by_id[s.image_id]),
            detections=detections[s.image_id],
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
        "checkpoint": Path(config.checkpoint).resolve().as_posix(),
        "pool": Path(config.pool).resolve().as_posix(),
        "labeled": None if config.labeled is None else Path(config.labeled).resolve().as_posix(),
        "class_names": class_names,
        "preannotation_threshold": config.preannotation_threshold,
        "pool_images": len(records),
        "already_labeled": len(already),
        "skipped": [{"image_id": i, "reason": r} for i, r in report.skipped],
        "num_selected": len(selected),
    }
    out = config.out
    files = {
        "csv": export.write_selection_csv(out / export.SELECTION_CSV, ranked),
        "json": export.write_selection_json(out / export.SELECTION_JSON, ranked, run),
        "coco": export.write_selected_coco(
            out / export.SELECTED_COCO, ranked, class_names, config.preannotation_threshold
        ),
        "label_studio": export.write_label_studio_tasks(
            out / export.LABEL_STUDIO_TASKS,
            export.label_studio_tasks(
                ranked,
                class_names,
                image_root=pool_root(config.pool),
                url_prefix=config.image_url_prefix,
                model_version=f"huale-{config.strategy} {Path(config.checkpoint).name}",
            ),
        ),
    }
    return SelectResult(
        selection=selection,
        selected=[item.score.image_id for item in ranked if item.selected],
        files=files,
        pool_size=len(records),
        already_labeled=already,
        skipped=report.skipped,
    )


@dataclass
class ScoredSelection:
    """A selection with what it was made from.

    records: the pool's prediction records; detections: per image id, the original view's
    detections with score >= the pre-annotation threshold; report: the scoring run's report.
    """

    selection: Selection
    records: list[PredictionRecord]
    detections: dict[str, Detections]
    report: ScoringReport


def select_with_model(
    model: nn.Module,
    pool: DetectionDataset,
    labeled: DetectionDataset | None,
    strategy: Strategy,
    budget: int,
    **options,
) -> Selection:
    """Score ``pool`` with ``model`` as ``strategy`` needs and select ``budget`` images.

    ``pool`` must not contain files of ``labeled`` (ConfigError); ``labeled`` (annotated, may be
    None) gives the strategy's context. Options: see :func:`score_and_select`.
    """
    return score_and_select(model, pool, labeled, strategy, budget, **options).selection


def score_and_select(
    model: nn.Module,
    pool: DetectionDataset,
    labeled: DetectionDataset | None,
    strategy: Strategy,
    budget: int,
    *,
    seed: int = 0,
    shard_dir: str | Path | None = None,
    budget_unit: str = "images",
    preannotation_threshold: float = 0.5,
    costs: dict[str, int] | None = None,
    **score_options,
) -> ScoredSelection:
    """Score the pool (and, when needed, the labeled set), build the context and select.

    shard_dir: scoring shards go to ``shard_dir/pool-<views...>`` and ``shard_dir/labeled-...``
    (resumable). budget_unit ``"boxes"``: an image costs its detections >=
    ``preannotation_threshold`` (at least 1); ``costs`` (image id -> cost, with budget_unit
    "boxes") replaces those predicted costs, e.g. by the ground-truth box counts a simulated
    labeler pays. A budget covering the whole pool selects it all, with a warning. score_options: batch_size, device, amp, workers, progress, shard_size.
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
    needs = strategy.needs
    shard_dir = Path(shard_dir) if shard_dir is not None else None
    report = ScoringReport()
    # under torchrun every process scores its part of the pool; rank 0 gets all the records
    records = score_pool(
        model, pool, needs, seed=seed, report=report,
        shard_dir=None if shard_dir is None else shard_dir / _needs_tag("pool", needs),
        **score_options,
    )
    detections = {r.image_id: _preannotations(r, preannotation_threshold) for r in records}
    if not distributed.broadcast_object(bool(records)):
        return ScoredSelection(Selection([], []), records, detections, report)
    labeled_tag = _needs_tag("labeled", Needs(features=needs.labeled_features))
    context = build_selection_context(
        model, labeled, needs, list(pool.class_names), seed=seed,
        shard_dir=None if shard_dir is None else shard_dir / labeled_tag, **score_options,
    )
    # rank 0 selects; every process returns its selection (the loop trains on it everywhere)
    selection = distributed.run_on_main(
        _select, strategy, records, budget, context, budget_unit, detections, costs
    )
    return ScoredSelection(selection, records, detections, report)


def _select(strategy: Strategy, records: list[PredictionRecord], budget: int, context,
            budget_unit: str, detections: dict[str, Detections],
            given_costs: dict[str, int] | None = None) -> Selection:
    """The strategy's selection of ``budget`` (in ``budget_unit``) from ``records``, checked."""
    costs = None
    if budget_unit == "boxes" and given_costs is not None:
        costs = {r.image_id: max(1, int(given_costs[r.image_id])) for r in records}
    elif budget_unit == "boxes":
        costs = {image_id: max(1, len(d)) for image_id, d in detections.items()}
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
    pool_ids = {r.image_id for r in records}
    selected = list(selection.selected)
    if len(set(selected)) != len(selected) or not set(selected) <= pool_ids:
        raise RuntimeError("the strategy selected an image twice or outside the unlabeled pool")
    spent = len(selected) if costs is None else sum(costs[i] for i in selected)
    if spent > budget:
        raise RuntimeError(f"the strategy spent {spent} of a budget of {budget}")


def _with_resolved_path(record):
    return replace(record, path=Path(record.path).resolve())


def _needs_tag(kind: str, needs: Needs) -> str:
    """Folder name of a scoring run: what is scored and with which views / extras."""
    parts = [kind, "+".join(dict.fromkeys((ORIGINAL, *needs.views)))]
    if needs.prenms:
        parts.append(f"prenms{needs.prenms_threshold:g}")
    if needs.features:
        parts.append("features")
    return "-".join(parts)
