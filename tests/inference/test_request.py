"""The typed scoring request and the shard plan of a scoring run."""

from __future__ import annotations

import pytest

from huale.errors import ConfigError
from huale.inference import ScoringRequest
from huale.inference.scoring import plan_shards


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("batch_size", 0, "batch size must be >= 1"), ("shard_size", -1, "shard size must be >= 1"),
     ("batch_size", True, "batch size"), ("workers", -1, "workers must be >= 0")],
)
def test_bad_request_values_are_config_errors(field, value, message):
    with pytest.raises(ConfigError, match=message):
        ScoringRequest(**{field: value})


def test_one_process_plan_cuts_the_pool_and_skips_finished_chunks():
    ids = [f"im{i}" for i in range(7)]
    plan = plan_shards(ids, 3)
    assert plan.chunks == [["im0", "im1", "im2"], ["im3", "im4", "im5"], ["im6"]]
    assert plan.rounds == [[0], [1], [2]] and plan.mine() == [0, 1, 2] and plan.todo_images() == 7
    resumed = plan_shards(ids, 3, done=[True, False, True])
    assert resumed.rounds == [[1]] and resumed.mine() == [1] and resumed.todo_images() == 3
