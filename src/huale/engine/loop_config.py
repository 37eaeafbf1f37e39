"""The active-learning protocol config (``huale loop --config FILE``), read from YAML.

Sections: ``data``, ``model``, ``train`` (``TrainConfig`` fields), ``loop``, ``strategies``,
``seeds``, ``evaluation``, ``scoring``. Unknown keys are errors, so a typo never silently runs
the default. The presets ship in :mod:`huale.presets`; ``--config NAME`` finds them by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from huale.engine.train import TrainConfig
from huale.errors import ConfigError
from huale.inference.adapters import DEFAULT_DETECTOR, adapter_class, check_needs
from huale.losses.config import LossConfig
from huale.options import check_known
from huale.presets import preset_names, preset_text

REINIT_MODES = ("scratch", "continue")
BUDGET_UNITS = ("images", "boxes")
TRAIN_ORDERS = ("pool", "selection")


def _take(section: str, values: Any, cls) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{section}' must be a mapping, got {type(values).__name__}")
    check_known(values, [f.name for f in fields(cls)], "keys", where=f"config section '{section}'")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"config section '{section}': {exc}") from None


@dataclass
class DataSpec:
    """Where the pool and the test set come from.

    source: any ``huale.data.load_dataset`` source (VOC folder, COCO json, data.yaml, synthetic
    folder), or a list of them whose ``train_split`` parts are concatenated (VOC07+12); relative
    paths are relative to the config file. test_source: where the test split comes from if not
    ``source`` (e.g. COCO's val2017 json). synthetic: if given, the synthetic dataset is generated
    into ``source`` first when absent (``ensure_synthetic`` arguments). pool_subsample: score only
    a random subset of this many unlabeled images per cycle (CALD's 10k for COCO); None scores
    the whole pool.
    """

    source: str | list[str] = ""
    train_split: str = "train"
    test_split: str = "test"
    test_source: str | None = None
    synthetic: dict | None = None
    pool_subsample: int | None = None

    @property
    def train_sources(self) -> list[str]:
        return list(self.source) if isinstance(self.source, list) else [self.source]


@dataclass
class ModelSpec:
    """``build_detector`` arguments; ``loss`` is a loss preset name or a loss config mapping."""

    arch: str = "small"
    weights: str | None = None
    backbone_weights: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    loss: Any = None
    options: dict = field(default_factory=dict)


@dataclass
class LoopSpec:
    """initial: labeled images at cycle 0 (count, or fraction of the pool if < 1); budget: images
    added per cycle; cycles: number of trainings (T); reinit: "scratch" re-initialises the
    detector every cycle (CALD), "continue" starts from the previous cycle's weights.
    initial_train: ``train`` options that differ for the shared cycle-0 training (e.g. more
    epochs from scratch before "continue" cycles fine-tune); None trains cycle 0 like the rest.

    budget_unit: "images" (``budget`` images a cycle) or "boxes" (``budget`` ground-truth boxes a
    cycle: the images a strategy ranks first are taken while their ground-truth boxes, what a
    labeler would draw, fit the budget; an image without boxes costs 1).

    validation: part of the pool held out as a validation split, never selectable and never
    trained on; every cycle is evaluated on it and on the test split. A fraction in (0, 1) of
    the pool (a seeded random subset, ``validation_seed``, the same for every run seed), or the
    path of a text file of image ids, one per line (relative paths: to the config file). Option
    choices (a strategy's settings) are made on its numbers, the test split reports them.

    train_order: the order a cycle's training lists its labeled images in, which its seeded
    shuffle then permutes. "pool": the pool's order, so two strategies that have labeled the
    same images train the same model, whatever order they picked them in. "selection": the
    order they were labeled in (the initial sample, then each cycle's picks by rank), what
    every run made before this option did; two such runs with equal labeled sets can differ
    by up to ~2 mAP from the order alone (docs/results/synthetic-cpu-validation-all-arms/
    analysis.md). Presets of committed studies keep "selection" so their commands reproduce
    them; a stored run config without the key reads as "selection".

    keep_checkpoints: keep each training's ``checkpoint.pt`` (weights plus optimizer state, about
    twice ``model.pt``) after the training has finished; by default it is deleted then, since
    only an unfinished training resumes from it."""

    initial: float = 0.1
    budget: int = 50
    cycles: int = 4
    reinit: str = "scratch"
    initial_train: dict | None = None
    budget_unit: str = "images"
    validation: float | str | None = None
    validation_seed: int = 0
    train_order: str = "pool"
    keep_checkpoints: bool = False

    def cycle_train_config(self, train: TrainConfig, cycle: int) -> TrainConfig:
        """The training config of ``cycle``: ``train`` with ``initial_train`` applied at cycle 0."""
        if cycle > 0 or not self.initial_train:
            return train
        return TrainConfig.from_dict({**asdict(train), **self.initial_train})


@dataclass
class StrategySpec:
    name: str
    options: dict = field(default_factory=dict)
    label: str | None = None

    @property
    def key(self) -> str:
        """Folder name of this strategy in the run directory."""
        return self.label or self.name


@dataclass
class ScoringSpec:
    """How cycles score the pool. detector: the adapter that turns the cycle's trained model
    into prediction records (``huale.inference.adapters.DETECTORS``; one the loop can train)."""

    batch_size: int = 8
    workers: int = 0
    amp: bool = True
    detector: str = DEFAULT_DETECTOR


@dataclass
class LoopConfig:
    name: str
    data: DataSpec
    model: ModelSpec
    train: TrainConfig
    loop: LoopSpec
    strategies: list[StrategySpec]
    seeds: list[int]
    metrics: list[str] = field(default_factory=lambda: ["voc"])
    scoring: ScoringSpec = field(default_factory=ScoringSpec)
    device: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)

    def with_strategies(self, keys: list[str]) -> LoopConfig:
        """Only these strategies: a key naming one of the config's strategies (its label or
        name) keeps its options; any other key is a registered strategy with default options."""
        mine = {spec.key: spec for spec in self.strategies}
        specs = _strategies([asdict(mine[k]) if k in mine else k for k in keys])
        return replace(self, strategies=specs).validate()

    def extended(self, strategy_keys: list[str] | None = None, seeds: list[int] | None = None,
                 source: LoopConfig | None = None) -> LoopConfig:
        """This run's config with more strategies and seeds (the ones it has are kept; so are
        their results). A key names one of this config's strategies, one of ``source``'s (a
        config file that defines labelled variants), or a registered strategy with default
        options. ``source`` must agree with this config in everything but strategies and seeds,
        so that the added strategies share the run's cycle-0 models and test conditions."""
        if source is not None:
            differing = [name for name in _PROTOCOL_SECTIONS if getattr(source, name) != getattr(self, name)]
            if differing:
                raise ConfigError(
                    f"the config differs from the run's stored config in {', '.join(differing)}: "
                    "a run can only gain strategies and seeds"
                )
        mine = {spec.key for spec in self.strategies}
        known = {spec.key: spec for spec in (source.strategies if source else [])}
        known.update({spec.key: spec for spec in self.strategies})
        added = _strategies([
            asdict(known[k]) if k in known else k for k in dict.fromkeys(strategy_keys or []) if k not in mine
        ])
        more_seeds = [int(s) for s in dict.fromkeys(seeds or []) if int(s) not in self.seeds]
        return replace(self, strategies=self.strategies + added, seeds=self.seeds + more_seeds).validate()

    def validate(self) -> LoopConfig:
        from huale.engine.evaluate import check_metrics
        from huale.strategies import build_strategy

        problems = []
        if not self.data.source:
            problems.append("data.source is required")
        if self.loop.cycles < 1:
            problems.append("loop.cycles must be >= 1")
        if self.loop.budget < 1:
            problems.append("loop.budget must be >= 1")
        if self.loop.initial <= 0:
            problems.append("loop.initial must be > 0")
        if self.loop.reinit not in REINIT_MODES:
            problems.append(f"loop.reinit must be one of {REINIT_MODES}")
        if self.loop.budget_unit not in BUDGET_UNITS:
            problems.append(f"loop.budget_unit must be one of {BUDGET_UNITS}")
        if self.loop.train_order not in TRAIN_ORDERS:
            problems.append(f"loop.train_order must be one of {TRAIN_ORDERS}")
        validation = self.loop.validation
        if isinstance(validation, bool) or not (
            validation is None or isinstance(validation, str)
            or (isinstance(validation, (int, float)) and 0 < validation < 1)
        ):
            problems.append("loop.validation must be a fraction in (0, 1) or the path of an id list file")
        if self.loop.initial_train is not None:
            if not isinstance(self.loop.initial_train, dict):
                problems.append("loop.initial_train must be a mapping of train options")
            else:
                try:
                    self.loop.cycle_train_config(self.train, 0)
                except ConfigError as exc:
                    problems.append(f"loop.initial_train: {exc}")
        try:
            LossConfig.check(self.model.loss)  # class_balanced counts: each cycle's labeled set
        except ConfigError as exc:
            problems.append(f"model.loss: {exc}")
        if self.data.synthetic is not None:
            from huale.data.synthetic import check_synthetic_options

            try:
                check_synthetic_options(self.data.synthetic)
            except ConfigError as exc:
                problems.append(f"data.synthetic: {exc}")
        if not self.strategies:
            problems.append("at least one strategy is required")
        if not self.seeds:
            problems.append("at least one seed is required")
        keys = [s.key for s in self.strategies]
        if len(set(keys)) != len(keys):
            problems.append(f"strategy names/labels must be unique, got {keys}")
        if problems:
            raise ConfigError("invalid loop config: " + "; ".join(problems))
        check_metrics(self.metrics)
        detector = adapter_class(self.scoring.detector)
        if not detector.trained_by_loop:
            raise ConfigError(
                f"scoring.detector {self.scoring.detector!r}: the loop trains torchvision "
                f"detectors (model.arch) and cannot train a {detector.name} model; score a "
                "team's own model with huale select"
            )
        for spec in self.strategies:
            # unknown names/options, and needs the detector cannot give, fail now, not at cycle 1
            check_needs(spec.name, build_strategy(spec.name, **spec.options).needs, detector)
        return self


# what fixes a run's protocol: a run may gain strategies and seeds, never change these
_PROTOCOL_SECTIONS = ("data", "model", "train", "loop", "metrics", "scoring")


def _strategies(values: Any) -> list[StrategySpec]:
    if not isinstance(values, list):
        raise ConfigError("'strategies' must be a list of names or {name, options, label} mappings")
    return [
        StrategySpec(name=v) if isinstance(v, str) else _take("strategies", v, StrategySpec)
        for v in values
    ]


def config_from_dict(values: dict, *, base_dir: Path | None = None) -> LoopConfig:
    """Build and validate a :class:`LoopConfig`; relative data paths are resolved on ``base_dir``."""
    if not isinstance(values, dict):
        raise ConfigError("a loop config must be a YAML mapping")
    check_known(values, [f.name for f in fields(LoopConfig)], "top-level keys")
    data = _take("data", values.get("data"), DataSpec)
    if base_dir is not None:
        def resolve(p: str) -> str:
            return p if Path(p).is_absolute() else str((base_dir / p).resolve())

        if isinstance(data.source, list):
            data.source = [resolve(p) for p in data.source]
        elif data.source:
            data.source = resolve(data.source)
        if data.test_source:
            data.test_source = resolve(data.test_source)
    loop = _take("loop", values.get("loop"), LoopSpec)
    if base_dir is not None and isinstance(loop.validation, str) and not Path(loop.validation).is_absolute():
        loop.validation = str((base_dir / loop.validation).resolve())
    config = LoopConfig(
        name=str(values.get("name", "run")),
        data=data,
        model=_take("model", values.get("model"), ModelSpec),
        train=TrainConfig.from_dict(values.get("train") or {}),
        loop=loop,
        strategies=_strategies(values.get("strategies", ["random", "huale"])),
        seeds=[int(s) for s in values.get("seeds", [0])],
        metrics=list(values.get("metrics", ["voc"])),
        scoring=_take("scoring", values.get("scoring"), ScoringSpec),
        device=str(values.get("device", "auto")),
    )
    return config.validate()


def read_config_text(name_or_path: str | Path) -> tuple[str, str, Path]:
    """``(YAML text, where it came from, base folder of relative paths)`` of a config file, or
    of the preset ``name`` shipped in :mod:`huale.presets` (relative paths: the current folder).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path), path.parent
    text = preset_text(str(name_or_path))
    if text is not None:
        return text, f"preset {name_or_path}", Path.cwd()
    raise ConfigError(
        f"{name_or_path}: no such config file or preset (presets: {', '.join(preset_names())})"
    )


def load_loop_config(name_or_path: str | Path, *, overrides: dict | None = None) -> LoopConfig:
    """Read a YAML config (or preset); ``overrides`` are merged section by section."""
    text, where, base_dir = read_config_text(name_or_path)
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML ({exc})") from None
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return config_from_dict(values, base_dir=base_dir)
