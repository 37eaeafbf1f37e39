"""The active-learning protocol: train, evaluate, score, select, grow the labeled set, repeat.

Run directory (everything written atomically; each file marks a finished step)::

    RUN/config.yaml, RUN/environment.json
    RUN/shared/seed<s>/cycle0/{model.pt, checkpoint.pt, history.json, eval.json}
        cycle 0 uses the same labeled set for every strategy of a seed, so it is trained once
    RUN/<strategy>/seed<s>/cycle<t>/train/...      (cycles >= 1)
    RUN/<strategy>/seed<s>/cycle<t>/eval.json       (test split; eval-validation.json: validation)
    RUN/<strategy>/seed<s>/cycle<t>/scoring/       (resumable pool-scoring shards)
    RUN/<strategy>/seed<s>/cycle<t>/record.json    (the cycle's result: see huale.reports)

``resume`` skips every finished step and continues an unfinished training from its last epoch
checkpoint, so a run killed at any point (``kill -9`` included) ends with the same selections as
an uninterrupted one. A folder lock stops a second process from writing the same run.

Under ``torchrun`` every process trains (DDP) and scores its share of the pool; rank 0 holds the
lock, evaluates, selects and writes, and every process continues with its selection. The run
folder must be on a filesystem every node sees.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from huale import __version__
from huale.data.loading import load_dataset
from huale.data.records import DetectionDataset
from huale.data.splits import sample_ids
from huale.data.textfiles import read_list_file
from huale.engine.evaluate import evaluate_model
from huale.engine.loop_config import DataSpec, LoopConfig, LoopSpec, StrategySpec, config_from_dict
from huale.engine.train import CHECKPOINT_NAME, MODEL_NAME, train_detector
from huale.errors import ConfigError, DataError
from huale.inference import ScoringRequest
from huale.inference.adapters import adapter_class
from huale.io import atomic_write_json, atomic_write_text
from huale.locking import FolderLock
from huale.losses.config import with_class_counts
from huale.models.checkpoint import build_from_checkpoint
from huale.models.detector import build_detector
from huale.outfolder import folder_contents
from huale.reports.records import CycleRecord, record_path
from huale.runtime import distributed
from huale.runtime.device import resolve_device
from huale.selection.run import select_with_model
from huale.strategies import build_strategy

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
ENVIRONMENT_NAME = "environment.json"
EVAL_NAME = "eval.json"
VALIDATION_EVAL_NAME = "eval-validation.json"


def environment(device: torch.device) -> dict:
    """Versions and hardware, stored with every run."""
    import torchvision

    env = {
        "huale": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "cpu": _cpu_model(),
        # the vector kernels torch picked (AVX2, AVX512...): CPU results depend on them
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_threads": torch.get_num_threads(),
        "processes": distributed.world_size(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


# the environment entries a run's numbers depend on (the same seed on two machines differing in
# one of them can differ by points of mAP: CPU kernels, thread counts, library versions)
MACHINE_KEYS = ("device", "gpu", "cpu", "cpu_capability", "cpu_threads", "torch", "torchvision")


def machine_fingerprint(device: torch.device) -> dict:
    """The part of :func:`environment` that a cycle record keeps (``CycleRecord.machine``), so
    that a report can tell when the runs it pairs came from different machines."""
    env = environment(device)
    return {key: env[key] for key in MACHINE_KEYS if key in env}


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def _cycle_seed(seed: int, cycle: int) -> int:
    return seed * 1000 + cycle


class ActiveLearningLoop:
    """Runs a :class:`LoopConfig` in a run directory (see module docstring)."""

    def __init__(self, config: LoopConfig, run_dir: str | Path, *, progress: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress and distributed.is_main()
        self.device = distributed.local_device(resolve_device(config.device))
        self.machine = machine_fingerprint(self.device)  # named by every cycle record

    # ----------------------------------------------------------------- data and models
    def _datasets(self) -> tuple[DetectionDataset, DetectionDataset | None, DetectionDataset]:
        """(pool, validation or None, test): ``loop.validation`` is held out of the pool."""
        train, test = load_run_datasets(self.config.data, progress=self.progress)
        held_out = validation_ids(train, self.config.loop)
        if not held_out:
            return train, None, test
        kept = set(held_out)
        return train.subset([i for i in train.ids if i not in kept]), train.subset(held_out), test

    def _build_model(self, num_classes: int, seed: int, init_from: Path | None,
                     class_counts: list[int] | None = None) -> torch.nn.Module:
        """A fresh detector, or (``reinit: continue``) the previous cycle's model rebuilt from its
        checkpoint with the same modules: from-scratch BatchNorm and trainable layers stay as they
        were, rather than switching to the frozen settings meant for pretrained weights."""
        spec = self.config.model
        _seed_everything(seed)
        if init_from is not None:
            model, _ = build_from_checkpoint(init_from)
            heads = model.roi_heads
            if heads.loss_config.emphasis == "class_balanced" and class_counts is not None:
                heads.loss_config = replace(heads.loss_config, class_counts=tuple(class_counts))
                model.huale_spec["kwargs"]["loss"] = heads.loss_config.to_dict()  # checkpointed
            return model
        kwargs = dict(spec.options)
        if spec.loss is not None:
            # emphasis "class_balanced" weighs classes by the counts of this cycle's labeled set
            kwargs["loss"] = with_class_counts(spec.loss, class_counts)
        return build_detector(
            spec.arch, num_classes, weights=spec.weights, backbone_weights=spec.backbone_weights,
            min_size=spec.min_size, max_size=spec.max_size, **kwargs,
        )

    def _train(self, labeled: DetectionDataset, train_dir: Path, seed: int, cycle: int,
               init_from: Path | None) -> tuple[torch.nn.Module, float]:
        if (train_dir / MODEL_NAME).is_file():
            model, _ = build_from_checkpoint(train_dir / MODEL_NAME, device=self.device)
            history = json.loads((train_dir / "history.json").read_text())["history"]
            self._drop_checkpoint(train_dir)  # a kill may have come between model.pt and the drop
            return model, float(sum(h["seconds"] for h in history))
        model = self._build_model(labeled.num_classes, _cycle_seed(seed, cycle), init_from,
                                  class_counts=labeled.class_counts().tolist())
        train_config = replace(
            self.config.loop.cycle_train_config(self.config.train, cycle), seed=_cycle_seed(seed, cycle)
        )
        result = train_detector(
            model, labeled, train_config, out_dir=train_dir, resume=True, device=self.device,
            progress=self.progress,
        )
        self._drop_checkpoint(train_dir)
        return model, float(sum(h["seconds"] for h in result.history))

    def _drop_checkpoint(self, train_dir: Path) -> None:
        """Delete a finished training's checkpoint.pt: only an unfinished training resumes from it."""
        if not self.config.loop.keep_checkpoints:
            distributed.run_on_main((train_dir / CHECKPOINT_NAME).unlink, missing_ok=True)

    def _evaluate(self, model, test: DetectionDataset, path: Path) -> dict:
        if path.is_file():
            return json.loads(path.read_text())
        scoring = self.config.scoring

        def evaluate() -> dict:  # on rank 0; the other processes wait for its results
            results, _ = evaluate_model(
                model, test, self.config.metrics, batch_size=scoring.batch_size,
                device=self.device, amp=scoring.amp, workers=scoring.workers,
                progress=self.progress,
            )
            atomic_write_json(path, results)
            return results

        return distributed.run_on_main(evaluate)

    # ----------------------------------------------------------------- one strategy and seed
    def _run_strategy(self, spec: StrategySpec, seed: int, train: DetectionDataset,
                      validation: DetectionDataset | None, test: DetectionDataset,
                      initial_ids: list[str]) -> list[CycleRecord]:
        config, records = self.config, []
        strategy = build_strategy(spec.name, **spec.options)
        labeled_ids = list(initial_ids)
        previous_model: Path | None = None
        for cycle in range(config.loop.cycles):
            path = record_path(self.run_dir, spec.key, seed, cycle)
            cycle_dir = path.parent
            if path.is_file():
                record = CycleRecord(**json.loads(path.read_text()))
                records.append(record)
                labeled_ids = record.labeled_ids + [s["image_id"] for s in record.selected]
                previous_model = self._train_dir(spec, seed, cycle) / MODEL_NAME
                continue
            labeled = train.subset(training_order(train.ids, labeled_ids, config.loop.train_order))
            train_dir = self._train_dir(spec, seed, cycle)
            init_from = previous_model if config.loop.reinit == "continue" else None
            model, train_seconds = self._train(labeled, train_dir, seed, cycle, init_from)
            eval_dir = train_dir if cycle == 0 else cycle_dir
            metrics = self._evaluate(model, test, eval_dir / EVAL_NAME)
            validation_metrics = {} if validation is None else self._evaluate(
                model, validation, eval_dir / VALIDATION_EVAL_NAME)

            selected, score_seconds = [], 0.0
            if cycle < config.loop.cycles - 1:
                started = time.perf_counter()
                selected = self._select(model, strategy, train, labeled, seed, cycle, cycle_dir)
                score_seconds = time.perf_counter() - started
            record = CycleRecord(
                strategy=spec.key, seed=seed, cycle=cycle, num_labeled=len(labeled_ids),
                metrics=metrics, train_seconds=train_seconds, score_seconds=score_seconds,
                labeled_ids=labeled_ids, selected=selected, num_boxes=labeled.num_boxes,
                validation_metrics=validation_metrics, machine=self.machine,
            )
            distributed.run_on_main(record.write, self.run_dir)
            records.append(record)
            log.info("%s seed %d cycle %d: %d labeled (%d boxes), test %s%s", spec.key, seed, cycle,
                     len(labeled_ids), labeled.num_boxes,
                     ", ".join(f"{m} {record.value(m):.4f}" for m in config.metrics),
                     "" if validation is None else ", validation " + ", ".join(
                         f"{m} {record.value(m, split='validation'):.4f}" for m in config.metrics))
            labeled_ids = labeled_ids + [s["image_id"] for s in selected]
            previous_model = train_dir / MODEL_NAME
        return records

    def _train_dir(self, spec: StrategySpec, seed: int, cycle: int) -> Path:
        return train_dir(self.run_dir, spec.key, seed, cycle)

    def _select(self, model, strategy, train: DetectionDataset, labeled: DetectionDataset,
                seed: int, cycle: int, cycle_dir: Path) -> list[dict]:
        config = self.config
        labeled_set = set(labeled.ids)
        pool_ids = [i for i in train.ids if i not in labeled_set]
        if config.data.pool_subsample and len(pool_ids) > config.data.pool_subsample:
            pool_ids = sample_ids(pool_ids, count=config.data.pool_subsample,
                                  seed=_cycle_seed(seed, cycle))
        if not pool_ids:
            log.warning("cycle %d: the unlabeled pool is empty, nothing to select", cycle)
            return []
        boxes = config.loop.budget_unit == "boxes"
        # a simulated labeler pays the ground-truth boxes of each image (at least 1: it is looked at)
        costs = {i: max(1, train.record(i).num_boxes) for i in pool_ids} if boxes else None
        budget = min(config.loop.budget, sum(costs.values()) if boxes else len(pool_ids))
        scoring = config.scoring
        detector = adapter_class(scoring.detector).from_model(model, train.class_names)
        request = ScoringRequest(batch_size=scoring.batch_size, device=self.device,
                                 amp=scoring.amp, workers=scoring.workers, progress=self.progress)
        selection = select_with_model(
            detector, train.subset(pool_ids), labeled, strategy, budget, request,
            seed=_cycle_seed(seed, cycle), shard_dir=cycle_dir / "scoring",
            budget_unit=config.loop.budget_unit, costs=costs,
        )
        by_id = {s.image_id: s for s in selection.ranked}
        chosen = [
            {"image_id": i, "score": _json_float(by_id[i].score), "stage": by_id[i].stage}
            for i in selection.selected
        ]
        overlap = labeled_set.intersection(c["image_id"] for c in chosen)
        if overlap or len({c["image_id"] for c in chosen}) != len(chosen):
            raise RuntimeError(f"selection repeated labeled or duplicate images: {sorted(overlap)[:5]}")
        return chosen

    # ----------------------------------------------------------------- the whole run
    def run(self) -> list[CycleRecord]:
        config = self.config
        train, validation, test = self._datasets()
        records = []
        initial = config.loop.initial
        count = int(initial) if initial >= 1 else max(1, round(initial * len(train)))
        if count > len(train):
            raise ConfigError(f"loop.initial={count} exceeds the {len(train)} images of the pool")
        jobs = [(seed, spec) for seed in config.seeds for spec in config.strategies]
        bar = tqdm(jobs, desc="strategies x seeds", disable=not self.progress)
        for seed, spec in bar:
            bar.set_postfix(strategy=spec.key, seed=seed)
            initial_ids = sample_ids(train.ids, count=count, seed=seed)
            records += self._run_strategy(spec, seed, train, validation, test, initial_ids)
        return records


def _json_float(value: float) -> float | None:
    return float(value) if value == value and abs(value) != float("inf") else None


def start_run(config: LoopConfig, run_dir: str | Path, *, progress: bool = True) -> list[CycleRecord]:
    """Start a new run in ``run_dir`` (refused if it already holds a run: use :func:`resume_run`)."""
    run_dir = Path(run_dir)
    with distributed.main_only(FolderLock(run_dir)):
        loop = ActiveLearningLoop(config, run_dir, progress=progress)

        def write_config() -> None:
            if (run_dir / CONFIG_NAME).is_file():
                raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir}")
            contents = folder_contents(run_dir)
            if contents:
                raise ConfigError(
                    f"{run_dir}: folder is not empty ({', '.join(contents[:3])}) and holds no "
                    "huale run; choose a new or empty folder"
                )
            atomic_write_json(run_dir / ENVIRONMENT_NAME, environment(loop.device))
            atomic_write_text(run_dir / CONFIG_NAME, yaml.safe_dump(config.to_dict(), sort_keys=False))

        distributed.run_on_main(write_config)
        return loop.run()


def resume_run(run_dir: str | Path, *, progress: bool = True, add_strategies: list[str] | None = None,
               add_seeds: list[int] | None = None, source: LoopConfig | None = None) -> list[CycleRecord]:
    """Continue the run in ``run_dir`` from its last finished step, with its stored config.

    ``add_strategies`` / ``add_seeds`` extend the run first (:meth:`LoopConfig.extended`; labels
    defined in ``source``): its stored config is rewritten with them, and the run goes on over
    all its strategies and seeds, so an added strategy reuses the seeds' cycle-0 models and is
    paired with the strategies already run."""
    run_dir = Path(run_dir)
    with distributed.main_only(FolderLock(run_dir)):
        config = load_run_config(run_dir)
        if add_strategies or add_seeds:
            config = config.extended(add_strategies, add_seeds, source=source)
            distributed.run_on_main(
                atomic_write_text, run_dir / CONFIG_NAME, yaml.safe_dump(config.to_dict(), sort_keys=False))
        return ActiveLearningLoop(config, run_dir, progress=progress).run()


def load_run_config(run_dir: str | Path) -> LoopConfig:
    """The config a run folder was started with (its ``config.yaml``)."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {CONFIG_NAME}, not a huale loop run")
    return config_from_dict(_stored_to_input(yaml.safe_load(path.read_text())))


def load_run_datasets(data: DataSpec, *, progress: bool = True) -> tuple[DetectionDataset, DetectionDataset]:
    """(pool, test) of a loop config's ``data``: the ``train_split`` of every source concatenated,
    and the test split; a synthetic source is generated first when absent (on rank 0)."""
    if data.synthetic is not None:
        from huale.data.synthetic import ensure_synthetic

        distributed.run_on_main(ensure_synthetic, data.source, progress=progress, **data.synthetic)
    parts = [load_dataset(source, data.train_split) for source in data.train_sources]
    train = parts[0]
    for part in parts[1:]:
        train = train.concat(part)
    test_source = data.test_source or data.train_sources[0]
    test = load_dataset(
        test_source, data.test_split, class_names=train.class_names,
        fallback_ids=dict(zip(train.class_names, train.category_ids, strict=True)),
    )
    return train, test


def validation_ids(pool: DetectionDataset, loop: LoopSpec) -> list[str]:
    """The ids ``loop.validation`` holds out of ``pool`` (pool order): a seeded fraction
    (``loop.validation_seed``), or the ids of a list file; [] when there is no validation split.
    An id of the file that names no pool image is an error (a typo would shrink the split)."""
    spec = loop.validation
    if spec is None:
        return []
    if not isinstance(spec, str):
        held_out = sample_ids(pool.ids, fraction=float(spec), seed=loop.validation_seed)
    else:
        listed = list(dict.fromkeys(read_list_file(spec, what="validation id list")))
        known = set(pool.ids)
        missing = [i for i in listed if i not in known]
        if missing:
            raise DataError(spec, f"{len(missing)} validation id(s) name no pool image, e.g. {missing[0]!r}")
        wanted = set(listed)
        held_out = [i for i in pool.ids if i in wanted]
    if len(held_out) >= len(pool):
        raise ConfigError(f"loop.validation holds out all {len(pool)} pool images: nothing left to select")
    return held_out


def train_dir(run_dir: str | Path, strategy: str, seed: int, cycle: int) -> Path:
    """Where the model of (strategy, seed, cycle) is trained: cycle 0 has the same labeled set
    and seed for every strategy, so it is trained once per seed under ``shared/``."""
    if cycle == 0:
        return Path(run_dir) / "shared" / f"seed{seed}" / "cycle0"
    return Path(run_dir) / strategy / f"seed{seed}" / f"cycle{cycle}" / "train"


def training_order(pool_ids: list[str], labeled_ids: list[str], order: str) -> list[str]:
    """``labeled_ids`` in the order a cycle trains on them (``loop.train_order``): "pool" lists
    them in ``pool_ids`` order, so equal labeled sets give equal trainings; "selection" keeps
    the order they were labeled in."""
    if order == "selection":
        return list(labeled_ids)
    wanted = set(labeled_ids)
    return [i for i in pool_ids if i in wanted]


def _stored_to_input(values: dict) -> dict:
    """The stored (asdict) config in the shape ``config_from_dict`` reads. A run stored before
    ``loop.train_order`` existed trained in selection order, and resumes so."""
    values = dict(values)
    values["loop"] = {"train_order": "selection", **values.get("loop", {})}
    values["train"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values["train"].items()}
    return values
