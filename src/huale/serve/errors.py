"""What can go wrong answering Label Studio, without HTTP: :mod:`huale.serve.http` maps each
error to its status (bad task 400, not ready 503, Label Studio failing 502)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from huale.errors import HualeError


class TaskError(HualeError):
    """A request names something that does not exist or is malformed (a task without an image,
    an image outside the pool and the Label Studio host, a malformed event)."""


class NotReady(HualeError):
    """The backend cannot answer yet, e.g. the project has no trained model."""


class UpstreamError(HualeError):
    """Label Studio did not deliver what the request needs (an image)."""


@dataclass(frozen=True)
class TaskFailure:
    """One task of a /predict batch that got no prediction: its position, Label Studio id and
    the error (a :class:`TaskError` or :class:`UpstreamError`). The other tasks are answered."""

    index: int
    task_id: Any
    error: HualeError
