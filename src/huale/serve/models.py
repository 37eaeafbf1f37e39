"""The detector shared by ``huale serve``'s request threads.

The model is loaded once per round. Scoring puts it in eval mode and sets the RoI head's
pre-NMS threshold for the run (:func:`huale.inference.forward.scoring_mode`), which is state on
the module: two threads must not run the same module at once. :class:`ModelPool` therefore
lends each request one of ``replicas`` copies, exclusively; with one replica (the default) that
is a lock around inference. ``benchmarks/serve_load.py`` measures both.
"""

from __future__ import annotations

import contextlib
import copy
import queue
from collections.abc import Iterator

from torch import nn


class ModelPool:
    """``replicas`` copies of ``model`` lent one request at a time (see module docstring)."""

    def __init__(self, model: nn.Module, replicas: int = 1):
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        model.eval()
        self.replicas = replicas
        self._free: queue.Queue[nn.Module] = queue.Queue()
        self._free.put(model)
        for _ in range(replicas - 1):
            self._free.put(copy.deepcopy(model))

    @contextlib.contextmanager
    def borrow(self) -> Iterator[nn.Module]:
        """A model no other thread uses until the block ends."""
        model = self._free.get()
        try:
            yield model
        finally:
            self._free.put(model)
