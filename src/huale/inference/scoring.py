"""Stream a pool through a detector: every image's views in one batch, compact records out.

:func:`iter_pool_records` yields one :class:`PredictionRecord` per readable image, in pool order;
:func:`score_pool` collects them. The detector is any
:class:`~huale.inference.adapters.DetectorAdapter` (a torch detector built by huale is wrapped
in its adapter). Images are decoded and their views built in DataLoader workers; each batch of B
images goes to the adapter as one call over its V*B views. How to run is a
:class:`~huale.inference.request.ScoringRequest`; what to predict, the strategy's
:class:`~huale.predictions.Needs`.

The run, top-down (one function each):

1. :func:`plan_shards` cuts the pool into chunks (the shards of ``shard_dir``, or runs of whole
   batches) and deals the unfinished ones out in rounds, chunk r of a round to process r;
2. :func:`resume_shards` (rank 0) opens or checks the shard folder and says which chunks are
   finished (:mod:`huale.inference.shards`);
3. :func:`stream_chunks` predicts this process's chunks batch by batch;
4. :func:`gather_records` (rank 0) yields every chunk's records in pool order: read back from
   finished shards, streamed, or gathered from the other processes round by round, writing each
   new shard as it completes; :func:`follow_rounds` is the other processes' side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from huale.data.records import DetectionDataset
from huale.inference.adapters import DetectorAdapter, as_adapter
from huale.inference.adapters.base import predict_items
from huale.inference.adapters.faster_rcnn import model_fingerprint
from huale.inference.request import DEFAULT_SHARD_SIZE, ScoringRequest
from huale.inference.shards import ShardStore
from huale.inference.views import PoolViewDataset, collate_pool, view_order
from huale.predictions import Needs, PredictionRecord
from huale.runtime import distributed
from huale.runtime.device import resolve_device
from huale.runtime.distributed import local_device

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "ScoringReport",
    "ShardPlan",
    "iter_pool_records",
    "model_fingerprint",
    "score_pool",
]

# (dataset index, its record or the reason it was skipped)
Result = tuple[int, "PredictionRecord | str"]


@dataclass
class ScoringReport:
    """What a scoring run did: images scored now, read back from shards, or skipped (unreadable)."""

    images: int = 0
    scored: int = 0
    resumed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image id, reason)


@dataclass
class ShardPlan:
    """How a pool is cut into chunks and who scores which.

    ids: the pool's image ids in order; chunks: image ids of each chunk, in pool order; done: chunk already scored (in a shard);
    rounds: the unfinished chunks, ``world`` per round (process r scores the r-th of a round).
    """

    ids: list[str]
    chunks: list[list[str]]
    done: list[bool]
    rounds: list[list[int]]
    rank: int

    def mine(self) -> list[int]:
        """The chunks this process scores, in order."""
        return [chunks[self.rank] for chunks in self.rounds if self.rank < len(chunks)]

    def todo_images(self) -> int:
        return sum(len(ids) for ids, finished in zip(self.chunks, self.done, strict=True)
                   if not finished)


def score_pool(
    detector: DetectorAdapter | nn.Module,
    dataset: DetectionDataset,
    needs: Needs,
    request: ScoringRequest | None = None,
    **options,
) -> list[PredictionRecord]:
    """All records of :func:`iter_pool_records` (same arguments) as a list."""
    return list(iter_pool_records(detector, dataset, needs, request, **options))


def iter_pool_records(
    detector: DetectorAdapter | nn.Module,
    dataset: DetectionDataset,
    needs: Needs,
    request: ScoringRequest | None = None,
    *,
    seed: int = 0,
    shard_dir: str | Path | None = None,
    report: ScoringReport | None = None,
    on_shard: Callable[[int], None] | None = None,
    desc: str = "score pool",
) -> Iterator[PredictionRecord]:
    """Records of ``dataset``'s images in order, with the views and extras ``needs`` asks for.

    Each record holds post-NMS detections of every view in ``needs.views`` (original first),
    boxes in the original frame; ``needs.prenms``: also the pre-NMS boxes of RoIs with
    p̂ > ``needs.prenms_threshold``; ``needs.features``: the (D,) mean of backbone map
    ``request.feature_level`` (default the coarsest) of the original view. ``seed`` (with the
    image id) fixes the random views. Unreadable images are skipped, logged and listed in
    ``report``. shard_dir: keep records in shards of ``request.shard_size`` images there and
    resume from them; ``on_shard(k)`` is called after shard k is written. While the iteration
    runs the detector is set up for scoring (:meth:`DetectorAdapter.scoring`: eval mode, the
    pre-NMS threshold of the run); that is undone when it ends (or the iterator is closed).
    """
    request = request if request is not None else ScoringRequest()
    adapter = as_adapter(detector)
    device = local_device(resolve_device(request.device))
    views = view_order(needs.views)
    report = report if report is not None else ScoringReport()
    report.images += len(dataset)

    store, done, chunk_size = None, None, request.shard_size
    if shard_dir is None:  # chunks of whole batches, about one shard long
        chunk_size = request.batch_size * -(-request.shard_size // request.batch_size)
    else:
        store, done = resume_shards(adapter, dataset, views, needs, request, seed, device, shard_dir)
    plan = plan_shards(dataset.ids, chunk_size, done)
    bar = tqdm(total=plan.todo_images(), desc=desc, unit="img",
               disable=not request.progress or not distributed.is_main(), leave=False)
    with adapter.scoring(needs, device=device, amp=request.amp,
                         feature_level=request.feature_level):
        computed = stream_chunks(adapter, dataset, plan, views, needs, request, seed, device, bar)
        try:
            if distributed.is_main():
                yield from gather_records(plan, computed, store, report, bar, on_shard)
            else:
                follow_rounds(plan, computed)
        finally:
            computed.close()
            bar.close()


def plan_shards(ids: list[str], chunk_size: int, done: list[bool] | None = None) -> ShardPlan:
    """Cut ``ids`` into chunks of ``chunk_size`` and deal the unfinished ones (``done``: per
    chunk, default none) out to the processes, ``world_size`` chunks per round."""
    chunks = [ids[k : k + chunk_size] for k in range(0, len(ids), chunk_size)]
    done = list(done) if done is not None else [False] * len(chunks)
    todo = [k for k, finished in enumerate(done) if not finished]
    world = distributed.world_size()
    rounds = [todo[j : j + world] for j in range(0, len(todo), world)]
    return ShardPlan(ids, chunks, done, rounds, distributed.rank())


def resume_shards(
    adapter: DetectorAdapter,
    dataset: DetectionDataset,
    views: tuple[str, ...],
    needs: Needs,
    request: ScoringRequest,
    seed: int,
    device: torch.device,
    shard_dir: str | Path,
) -> tuple[ShardStore | None, list[bool]]:
    """Rank 0 opens or checks the shard folder of this run (the store: None on other ranks);
    every process learns which of its shards are finished."""
    opened: list[ShardStore] = []

    def open_store() -> list[bool]:
        manifest = _manifest(adapter, dataset, views, needs, request, seed, device)
        opened.append(ShardStore(shard_dir, manifest))
        return [opened[0].finished(k) for k in range(opened[0].num_shards)]

    done = distributed.run_on_main(open_store)
    if opened and any(done):
        log.info("resuming: %d of %d shards already scored in %s", sum(done), len(done), shard_dir)
    return (opened[0] if opened else None), done


def stream_chunks(
    adapter: DetectorAdapter,
    dataset: DetectionDataset,
    plan: ShardPlan,
    views: tuple[str, ...],
    needs: Needs,
    request: ScoringRequest,
    seed: int,
    device: torch.device,
    bar,
) -> Iterator[Result]:
    """(index, record or skip reason) of the images of this process's chunks, in order.

    A batch never spans two chunks, so every image is predicted in the same batch whichever
    process scores its chunk (and whether or not the run was resumed)."""
    index_of = {image_id: i for i, image_id in enumerate(dataset.ids)}
    chunks = [[index_of[i] for i in plan.chunks[k]] for k in plan.mine()]
    loader = DataLoader(
        PoolViewDataset(dataset, views, seed=seed, indices=[i for c in chunks for i in c]),
        batch_sampler=_chunk_batches([len(c) for c in chunks], request.batch_size),
        num_workers=request.workers,
        collate_fn=collate_pool,
        pin_memory=device.type == "cuda",
    )
    for batch in loader:
        records = iter(predict_items(adapter, batch.items, views, needs))
        for item in batch.items:
            if item.error is not None:
                log.warning("skipped %s: %s", item.path, item.error)
                yield item.index, item.error
            else:
                yield item.index, next(records)
        bar.update(len(batch.items))


def gather_records(
    plan: ShardPlan,
    computed: Iterator[Result],
    store: ShardStore | None,
    report: ScoringReport,
    bar,
    on_shard: Callable[[int], None] | None,
) -> Iterator[PredictionRecord]:
    """(rank 0) Every chunk's records in pool order; new chunks are written to ``store``."""
    scored: dict[int, list[Result]] = {}
    rounds = iter(plan.rounds)
    for k, chunk in enumerate(plan.chunks):
        if plan.done[k]:
            records, skipped = store.read(k)
            report.resumed += len(records)
            report.skipped.extend(skipped)
            yield from records
            continue
        if distributed.world_size() == 1:  # stream: records come out as their batches finish
            results = (next(computed) for _ in chunk)
        else:
            if k not in scored:
                scored = _score_round(plan, next(rounds), computed, bar)
            results = scored.pop(k)
        records, skipped = [], []
        for image_id, (index, result) in zip(chunk, results, strict=True):
            if plan.ids[index] != image_id:
                raise RuntimeError(f"scoring stream out of order at {image_id!r}")
            if isinstance(result, PredictionRecord):
                report.scored += 1
                if store is None:
                    yield result
                else:
                    records.append(result)
            else:
                report.skipped.append((image_id, result))
                skipped.append((image_id, result))
        if store is not None:
            store.write(k, records, skipped)
            if on_shard is not None:
                on_shard(k)
        yield from records


def follow_rounds(plan: ShardPlan, computed: Iterator[Result]) -> None:
    """(ranks > 0) Score this process's chunk of every round and send it to rank 0."""
    for chunks in plan.rounds:
        _score_round(plan, chunks, computed, None)


def _score_round(
    plan: ShardPlan, chunks: list[int], computed: Iterator[Result], bar
) -> dict[int, list[Result]] | None:
    """Score this process's chunk of a round; on rank 0 ``{chunk: results}`` of every chunk of
    the round (None elsewhere)."""
    rank = plan.rank
    part = [next(computed) for _ in plan.chunks[chunks[rank]]] if rank < len(chunks) else []
    parts = distributed.gather_object(part)
    if parts is None:
        return None
    for r, other in enumerate(parts):
        if r != rank:
            bar.update(len(other))
    return dict(zip(chunks, parts, strict=False))


def _chunk_batches(chunk_lengths: list[int], batch_size: int) -> list[list[int]]:
    """Batches of positions 0..sum(lengths)-1, ``batch_size`` at most, none crossing a chunk."""
    batches, start = [], 0
    for length in chunk_lengths:
        batches += [
            list(range(start + b, start + min(b + batch_size, length)))
            for b in range(0, length, batch_size)
        ]
        start += length
    return batches


def _manifest(adapter, dataset, views, needs, request, seed, device) -> dict:
    """Everything that changes the records of a scoring run (see ShardStore)."""
    feature_level = request.feature_level
    return {
        "model": adapter.manifest(),
        "views": list(views),
        "prenms_threshold": float(needs.prenms_threshold) if needs.prenms else None,
        "features": feature_level if needs.features and feature_level else bool(needs.features),
        "seed": int(seed),
        "amp": bool(request.amp and device.type == "cuda"),
        "shard_size": int(request.shard_size),
        "image_ids": dataset.ids,
    }
