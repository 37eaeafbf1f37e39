"""Pool inference: run a detector (behind its adapter) over a pool with test-time views, keep
compact records."""

from huale.inference.adapters import DetectorAdapter, as_adapter, load_detector
from huale.inference.request import DEFAULT_SHARD_SIZE, ScoringRequest
from huale.inference.scoring import (
    ScoringReport,
    iter_pool_records,
    model_fingerprint,
    score_pool,
)
from huale.inference.shards import ShardStore

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "DetectorAdapter",
    "ScoringReport",
    "ScoringRequest",
    "ShardStore",
    "as_adapter",
    "iter_pool_records",
    "load_detector",
    "model_fingerprint",
    "score_pool",
]
