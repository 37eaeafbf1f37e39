"""Stream a pool through the detector: every image's views in one batch, compact records out.

:func:`iter_pool_records` yields one :class:`PredictionRecord` per readable image, in pool order;
:func:`score_pool` collects them. Images are decoded and their views built in DataLoader workers;
each batch of B images is one forward pass over its V*B views (AMP on CUDA). With ``shard_dir``
the records are also written to disk in shards and a stopped run resumes after the last finished
shard (:mod:`huale.inference.shards`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from huale.data.records import DetectionDataset
from huale.errors import ConfigError
from huale.inference.forward import FeatureCapture, predict_items, scoring_mode
from huale.inference.shards import ShardStore
from huale.inference.views import PoolViewDataset, collate_pool, view_order
from huale.predictions import Needs, PredictionRecord
from huale.runtime import distributed
from huale.runtime.device import resolve_device
from huale.runtime.distributed import local_device

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 256


@dataclass
class ScoringReport:
    """What a scoring run did: images scored now, read back from shards, or skipped (unreadable)."""

    images: int = 0
    scored: int = 0
    resumed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image id, reason)


def score_pool(
    model: nn.Module, dataset: DetectionDataset, needs: Needs, **options
) -> list[PredictionRecord]:
    """All records of :func:`iter_pool_records` (same arguments) as a list."""
    return list(iter_pool_records(model, dataset, needs, **options))


def iter_pool_records(
    model: nn.Module,
    dataset: DetectionDataset,
    needs: Needs,
    *,
    batch_size: int = 4,
    device: str | torch.device | None = "auto",
    amp: bool = True,
    workers: int = 0,
    progress: bool = True,
    seed: int = 0,
    feature_level: str | None = None,
    shard_dir: str | Path | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    report: ScoringReport | None = None,
    on_shard: Callable[[int], None] | None = None,
    desc: str = "score pool",
) -> Iterator[PredictionRecord]:
    """Records of ``dataset``'s images in order, with the views and extras ``needs`` asks for.

    Each record holds post-NMS detections of every view in ``needs.views`` (original first),
    boxes in the original frame; ``needs.prenms``: also the pre-NMS boxes of RoIs with
    p̂ > ``needs.prenms_threshold`` (the RoI head's threshold is set for the run and restored);
    ``needs.features``: the (D,) mean of backbone map ``feature_level`` (default the coarsest)
    of the original view. ``seed`` (with the image id) fixes the random views.
    Unreadable images are skipped, logged and listed in ``report``.
    shard_dir: keep records in shards of ``shard_size`` images there and resume from them;
    ``on_shard(k)`` is called after shard k is written.
    While the iteration runs, the model is in eval mode with the pre-NMS threshold of the run;
    both are restored when it ends (or the iterator is closed).
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if shard_size < 1:
        raise ConfigError(f"shard size must be >= 1, got {shard_size}")
    device = local_device(resolve_device(device))
    views = view_order(needs.views)
    report = report if report is not None else ScoringReport()
    report.images += len(dataset)
    model.to(device)
    prenms_threshold = float(needs.prenms_threshold) if needs.prenms else None
    main = distributed.is_main()

    def stream(chunks: list[list[int]]) -> Iterator[tuple[int, PredictionRecord | str]]:
        """(index, record or skip reason) of the dataset indices of ``chunks``, in order; a batch
        never spans two chunks, so every image is predicted in the same batch whichever process
        scores its chunk (and whether or not the run was resumed)."""
        indices = [i for chunk in chunks for i in chunk]
        loader = DataLoader(
            PoolViewDataset(dataset, views, seed=seed, indices=indices),
            batch_sampler=_chunk_batches([len(chunk) for chunk in chunks], batch_size),
            num_workers=workers,
            collate_fn=collate_pool,
            pin_memory=device.type == "cuda",
        )
        capture = FeatureCapture(model, feature_level) if needs.features else None
        try:
            with scoring_mode(model, prenms_threshold):
                for batch in loader:
                    records = iter(
                        predict_items(
                            model, batch.items, views, device=device, amp=amp,
                            prenms=needs.prenms, features=capture,
                        )
                    )
                    for item in batch.items:
                        if item.error is not None:
                            log.warning("skipped %s: %s", item.path, item.error)
                            yield item.index, item.error
                        else:
                            yield item.index, next(records)
                    bar.update(len(batch.items))
        finally:
            if capture is not None:
                capture.close()

    # The pool is cut into chunks: the shards of shard_dir, or (without one) runs of whole
    # batches. Each round, process r scores the r-th chunk still to do; rank 0 gathers the
    # round's chunks, writes their shards and yields the records in pool order.
    store: ShardStore | None = None

    def open_store() -> list[bool]:
        """(rank 0) Open or check the shard folder; which shards are finished."""
        nonlocal store
        manifest = _manifest(model, dataset, views, needs, prenms_threshold, seed, feature_level,
                             amp, device, shard_size)
        store = ShardStore(shard_dir, manifest)
        return [store.finished(k) for k in range(store.num_shards)]

    if shard_dir is None:
        chunk_size = batch_size * -(-shard_size // batch_size)
        done = [False] * -(-len(dataset) // chunk_size)
    else:
        chunk_size = shard_size
        done = distributed.run_on_main(open_store)
        if main and any(done):
            log.info("resuming: %d of %d shards already scored in %s",
                     sum(done), len(done), shard_dir)
    ids = dataset.ids
    chunk_ids = [ids[k * chunk_size : (k + 1) * chunk_size] for k in range(len(done))]
    index_of = {image_id: i for i, image_id in enumerate(ids)}
    todo = [k for k, finished in enumerate(done) if not finished]
    world, rank = distributed.world_size(), distributed.rank()
    rounds = [todo[j : j + world] for j in range(0, len(todo), world)]
    mine = [chunks[rank] for chunks in rounds if rank < len(chunks)]
    bar = tqdm(total=sum(len(chunk_ids[k]) for k in todo), desc=desc, unit="img",
               disable=not progress or not main, leave=False)
    computed = stream([[index_of[i] for i in chunk_ids[k]] for k in mine])

    def score_round(chunks: list[int]) -> dict[int, list] | None:
        """Score this process's chunk of a round; on rank 0 ``{chunk: [(index, result)]}`` of
        every chunk of the round (None elsewhere)."""
        part = [next(computed) for _ in chunk_ids[chunks[rank]]] if rank < len(chunks) else []
        parts = distributed.gather_object(part)
        if parts is None:
            return None
        for r, other in enumerate(parts):
            if r != rank:
                bar.update(len(other))
        return dict(zip(chunks, parts, strict=False))

    try:
        if not main:
            for chunks in rounds:
                score_round(chunks)
            return
        scored: dict[int, list] = {}
        next_round = 0
        for k, finished in enumerate(done):
            if finished:
                records, skipped = store.read(k)
                report.resumed += len(records)
                report.skipped.extend(skipped)
                yield from records
                continue
            if world == 1:  # stream: records come out as their batches are predicted
                results = (next(computed) for _ in chunk_ids[k])
            else:
                if k not in scored:
                    scored = score_round(rounds[next_round])
                    next_round += 1
                results = scored.pop(k)
            records, skipped = [], []
            for image_id, (index, result) in zip(chunk_ids[k], results, strict=True):
                if ids[index] != image_id:
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
    finally:
        computed.close()
        bar.close()


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


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's state dict (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _manifest(model, dataset, views, needs, prenms_threshold, seed, feature_level, amp, device,
              shard_size) -> dict:
    """Everything that changes the records of a scoring run (see ShardStore)."""
    heads = model.roi_heads
    return {
        "model": {
            "fingerprint": model_fingerprint(model),
            "spec": getattr(model, "huale_spec", None),
            "score_thresh": float(heads.score_thresh),
            "nms_thresh": float(heads.nms_thresh),
            "detections_per_img": int(heads.detections_per_img),
        },
        "views": list(views),
        "prenms_threshold": prenms_threshold,
        "features": feature_level if needs.features and feature_level else bool(needs.features),
        "seed": int(seed),
        "amp": bool(amp and device.type == "cuda"),
        "shard_size": int(shard_size),
        "image_ids": dataset.ids,
    }
