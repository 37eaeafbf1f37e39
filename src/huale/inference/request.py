"""How to run a scoring pass: one typed :class:`ScoringRequest` from the CLI or the loop down to
:mod:`huale.inference` (what to predict is the strategy's :class:`~huale.predictions.Needs`)."""

from __future__ import annotations

from dataclasses import dataclass

from huale.errors import ConfigError

DEFAULT_SHARD_SIZE = 256


@dataclass(frozen=True)
class ScoringRequest:
    """Execution settings of pool scoring; none of them changes a record except ``amp`` on CUDA
    (and ``feature_level``, which picks the backbone map that core-set features come from).

    batch_size: images per forward pass (each with all its views); device: ``"auto"``, ``"cpu"``,
    ``"cuda"``, ``"cuda:1"``; amp: mixed precision on CUDA; workers: DataLoader processes that
    decode images and build views; progress: show a tqdm bar; shard_size: images per scoring
    shard (the unit of resume and of the work split under torchrun); feature_level: key of the
    backbone output map pooled into features (default: the coarsest).
    """

    batch_size: int = 4
    device: str = "auto"
    amp: bool = True
    workers: int = 0
    progress: bool = True
    shard_size: int = DEFAULT_SHARD_SIZE
    feature_level: str | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "shard_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be >= 1, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers!r}")
