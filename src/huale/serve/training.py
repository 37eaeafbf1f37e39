"""One labeling round at a time, in the background, with its state for ``/health``.

:class:`BackgroundRound` runs a callable (the project's round) in a daemon thread. A second
start while one runs is refused (``started`` False), never queued: Label Studio sends
``START_TRAINING`` again whenever someone clicks, and two rounds on one project would fight over
its files. The state (``idle``, ``running``, ``finished``, ``failed``) with times, the round's
result and the error message is what :meth:`state` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

IDLE, RUNNING, FINISHED, FAILED = "idle", "running", "finished", "failed"


@dataclass
class StartResult:
    """``started``: this call started a round; otherwise ``state`` says what is running."""

    started: bool
    state: dict[str, Any]


class BackgroundRound:
    """Run at most one job at a time in a background thread (see module docstring).

    on_finish: called with the job's result in the worker thread after success (e.g. to load
    the new model); its own failure marks the job failed.
    """

    def __init__(self, on_finish: Callable[[Any], None] | None = None):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._on_finish = on_finish
        self._state: dict[str, Any] = {"state": IDLE}
        self._runs = 0

    def start(self, job: Callable[[], Any], *, description: str = "round") -> StartResult:
        with self._lock:
            if self._state["state"] == RUNNING:
                return StartResult(False, dict(self._state))
            self._runs += 1
            self._state = {
                "state": RUNNING,
                "job": description,
                "run": self._runs,
                "started_at": _now(),
            }
            thread = threading.Thread(
                target=self._work, args=(job, self._runs), name=f"huale-{description}", daemon=True
            )
            self._thread = thread
            thread.start()
            return StartResult(True, dict(self._state))

    def _work(self, job: Callable[[], Any], run: int) -> None:
        started = time.monotonic()
        try:
            result = job()
            if self._on_finish is not None:
                self._on_finish(result)
        except BaseException as exc:  # noqa: BLE001 - the state tells the user; the server lives on
            log.error("background %s failed", self._state.get("job"), exc_info=True)
            update = {"state": FAILED, "error": f"{type(exc).__name__}: {exc}"}
        else:
            update = {"state": FINISHED, "result": result}
        update["finished_at"] = _now()
        update["seconds"] = round(time.monotonic() - started, 3)
        with self._lock:
            if self._state.get("run") == run:
                self._state.update(update)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._state["state"] == RUNNING

    def state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current job to end; True when none is running afterwards."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
