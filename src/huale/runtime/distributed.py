"""Several processes, one job: the ``torch.distributed`` process group that ``torchrun`` launches.

``torchrun --nproc_per_node N -m huale train|select|loop ...`` starts N copies of huale with
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
:func:`init_from_env` joins them into a process group (NCCL when CUDA is available, else gloo;
``HUALE_DIST_BACKEND`` overrides) and pins each process to GPU ``LOCAL_RANK``. Without those
variables (or with ``WORLD_SIZE=1``) nothing is initialised and every function here is a no-op
answering as a single process would: rank 0 of 1, ``run_on_main(fn)`` is ``fn()``.

Every collective has a deadline: ``HUALE_DIST_TIMEOUT_MIN`` minutes (default 30, fractions
allowed). A process that dies makes torchrun stop the others; one that hangs makes the others'
next collective fail after the deadline, so a job never waits forever. Python objects (scoring
records, selections, error messages) travel over a gloo group even when the tensors use NCCL, as
in detectron2: they are pickled on the CPU and need no GPU memory.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from huale.errors import ConfigError, HualeError

log = logging.getLogger(__name__)

TIMEOUT_ENV = "HUALE_DIST_TIMEOUT_MIN"
BACKEND_ENV = "HUALE_DIST_BACKEND"
DEFAULT_TIMEOUT_MIN = 30.0

T = TypeVar("T")

_object_group = None  # gloo group for Python objects and barriers (the default one under gloo)


class DistributedError(HualeError):
    """A collective failed: another process died or did not answer within the timeout."""


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    """Turn the failure of a collective (timeout, lost peer) into a :class:`DistributedError`."""
    try:
        yield
    except RuntimeError as exc:
        minutes = timeout().total_seconds() / 60
        raise DistributedError(
            f"process {rank()}: no answer from the other processes while {what} "
            f"(timeout {minutes:g} min, {TIMEOUT_ENV}); one of them failed or hangs, see its "
            f"messages ({type(exc).__name__}: {str(exc).strip()[:300]})"
        ) from exc


def launched() -> bool:
    """Whether this process was started by torchrun as one of several (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def timeout() -> datetime.timedelta:
    """The deadline of every collective: ``HUALE_DIST_TIMEOUT_MIN`` minutes (default 30)."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        minutes = float(text) if text else DEFAULT_TIMEOUT_MIN
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: expected a number of minutes") from None
    if not minutes > 0:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: the timeout must be > 0 minutes")
    return datetime.timedelta(minutes=minutes)


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment; True if there is one.

    Backend: ``HUALE_DIST_BACKEND`` if set, else ``nccl`` when CUDA is available, else ``gloo``.
    With NCCL, ``torch.cuda.set_device(LOCAL_RANK)`` first (one GPU per process). Calling it
    again, or without torchrun's variables, does nothing.
    """
    global _object_group
    if not launched():
        return False
    if dist.is_initialized():
        return True
    missing = [v for v in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} not set: "
            "start several processes with torchrun (python -m torch.distributed.run)"
        )
    backend = os.environ.get(BACKEND_ENV) or ("nccl" if torch.cuda.is_available() else "gloo")
    deadline = timeout()
    if backend == "nccl":
        gpus, index = torch.cuda.device_count(), local_rank()
        if index >= gpus:
            raise ConfigError(
                f"process with LOCAL_RANK {index} but only {gpus} GPU(s) visible: start at most "
                f"{gpus} processes per node (--nproc_per_node), or {BACKEND_ENV}=gloo for CPUs"
            )
        torch.cuda.set_device(index)
    dist.init_process_group(backend=backend, timeout=deadline)
    _object_group = None if backend == "gloo" else dist.new_group(backend="gloo", timeout=deadline)
    log.info("process %d of %d (%s, timeout %s)", rank(), world_size(), backend, deadline)
    return True


def destroy() -> None:
    """Leave the process group (after a successful run; a failing process just exits)."""
    global _object_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _object_group = None


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0


def is_main() -> bool:
    """Rank 0: the process that writes files, prints results and runs the strategies."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """``device`` with this process's GPU (``cuda:LOCAL_RANK``) when it names CUDA without an
    index and several processes share the node; otherwise unchanged."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", local_rank())
    return device


def process_group(device: torch.device):
    """The group for collectives on tensors of ``device``: the default one for CUDA tensors,
    the gloo group for CPU tensors (so CPU training works under an NCCL job too)."""
    return None if torch.device(device).type == "cuda" else _object_group


def barrier() -> None:
    """Wait until every process is here; a process missing after the timeout is named in the
    error (gloo's monitored barrier)."""
    if is_distributed():
        with _collective("waiting at a barrier"):
            dist.monitored_barrier(group=_object_group, timeout=timeout())


def all_gather_object(obj: T) -> list[T]:
    """``obj`` of every rank, in rank order (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    with _collective("exchanging results"):
        dist.all_gather_object(gathered, obj, group=_object_group)
    return gathered


def gather_object(obj: T) -> list[T] | None:
    """On rank 0, ``obj`` of every rank in rank order; None on the other ranks."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] | None = [None] * world_size() if is_main() else None
    with _collective("gathering results on rank 0"):
        dist.gather_object(obj, gathered, dst=0, group=_object_group)
    return gathered


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (the other ranks' argument is ignored)."""
    if not is_distributed():
        return obj
    box = [obj if is_main() else None]
    with _collective("waiting for rank 0"):
        dist.broadcast_object_list(box, src=0, group=_object_group)
    return box[0]


def any_true(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank (one all-reduce)."""
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    with _collective("checking the other processes' losses"):
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=process_group(device))
    return bool(value.item() > 0)


def all_reduce_mean(values: list[float], device: torch.device) -> list[float]:
    """The mean over ranks of each entry of ``values`` (same length on every rank)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    with _collective("averaging the losses"):
        dist.all_reduce(tensor, group=process_group(device))
    return (tensor / world_size()).tolist()


def run_on_main(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on rank 0 only; every rank returns its result.

    If ``fn`` raises, every rank raises an exception of the same type and message (a barrier
    that never hangs on a failed write); on the other ranks it carries ``relayed_from = 0`` so
    that only rank 0 reports it.
    """
    if not is_distributed():
        return fn(*args, **kwargs)
    if not is_main():
        status, payload = broadcast_object(None)
        if status == "ok":
            return payload
        raise _relayed(*payload)
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        broadcast_object(("error", describe_error(exc)))
        raise
    broadcast_object(("ok", result))
    return result


@contextlib.contextmanager
def main_only(context: AbstractContextManager) -> Iterator[None]:
    """``with context`` on rank 0 only (e.g. a folder lock); every rank raises if entering it
    fails there."""
    with contextlib.ExitStack() as stack:
        run_on_main(lambda: stack.enter_context(context) and None)
        yield


def raise_relayed(error: tuple[type, str], source: int) -> None:
    """Raise on this rank the error ``(type, message)`` that rank ``source`` reported."""
    raise _relayed(*error, source=source)


def describe_error(exc: BaseException) -> tuple[type, str]:
    """``(type, message)`` of ``exc``, safe to send to another rank."""
    kind = type(exc)
    try:
        pickle.loads(pickle.dumps(kind))
    except Exception:  # a class defined where the other ranks cannot import it
        kind = RuntimeError
    return kind, str(exc)


def _relayed(kind: type, message: str, source: int = 0) -> BaseException:
    """An exception of ``kind`` with ``message`` (built without calling ``kind.__init__``, whose
    arguments may differ, e.g. DataError(path, problem))."""
    if not (isinstance(kind, type) and issubclass(kind, Exception)):
        kind = RuntimeError
    exc = kind.__new__(kind)
    exc.args = (message,)
    exc.relayed_from = source
    return exc
