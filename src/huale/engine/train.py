"""The detector training loop: SGD with the CALD schedule, AMP on CUDA, resumable checkpoints.

Defaults follow the CALD protocol (method.md §8): 20 epochs, lr 0.0025, momentum 0.9, weight decay
1e-4, lr x0.1 at epochs 16 and 19, batch 4, plus the torchvision reference's linear warm-up over
the first epoch. Every epoch ends with an atomic checkpoint (``checkpoint.pt``) that holds the
optimizer, AMP scaler and RNG states, so ``resume=True`` continues as if never stopped.

Under ``torchrun`` (:mod:`huale.runtime.distributed`) the model is wrapped in
``DistributedDataParallel``: each process reads its part of every epoch (``DistributedSampler``
seeded by the config seed and the epoch) in batches of ``batch_size`` images, so the batch is per
process and the global batch is ``batch_size x processes`` (as in torchvision's references; the
learning rate is not scaled: give ``--lr`` for the global batch). Trainable BatchNorm layers
become ``SyncBatchNorm`` on GPUs (FrozenBatchNorm2d, the default with pretrained weights, needs
nothing; on CPUs each process keeps its own batch statistics). Each process reseeds its random
generator at every epoch from (seed, epoch, rank), so a resumed run repeats the same flips and
samples. Rank 0 writes the checkpoints; a non-finite loss on any process stops every process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from huale.data.records import DetectionDataset, collate_detection
from huale.data.transforms import RandomHorizontalFlip
from huale.errors import ConfigError, TrainingError
from huale.io import atomic_write_json
from huale.models.checkpoint import load_checkpoint, save_checkpoint
from huale.options import check_known
from huale.runtime import distributed
from huale.runtime.device import detector_forward, resolve_device

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"  # weights + training state, rewritten every epoch
MODEL_NAME = "model.pt"  # final weights only
HISTORY_NAME = "history.json"
OUTPUTS = (CHECKPOINT_NAME, MODEL_NAME, HISTORY_NAME)  # what a training writes in its folder


@dataclass
class TrainConfig:
    """SGD training hyper-parameters (CALD protocol defaults)."""

    epochs: int = 20
    lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_steps: tuple[int, ...] = (16, 19)
    lr_gamma: float = 0.1
    warmup_iters: int = 1000  # linear warm-up over the first epoch, capped at its length
    warmup_factor: float = 1e-3
    batch_size: int = 4
    workers: int = 2
    hflip_prob: float = 0.5
    amp: bool = True  # only takes effect on CUDA
    grad_clip_norm: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.lr_steps = tuple(int(s) for s in self.lr_steps)
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1 (got {self.epochs})")
        if self.lr <= 0:
            problems.append(f"lr must be > 0 (got {self.lr})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.workers < 0:
            problems.append(f"workers must be >= 0 (got {self.workers})")
        if not 0.0 <= self.hflip_prob <= 1.0:
            problems.append(f"hflip_prob must be in [0, 1] (got {self.hflip_prob})")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        check_known(values, [f.name for f in fields(cls)], "training options")
        return cls(**values)

    def lr_at(self, epoch: int, iteration: int, iters_per_epoch: int) -> float:
        """Learning rate for 0-based ``epoch`` and ``iteration`` within it."""
        lr = self.lr * self.lr_gamma ** sum(epoch >= step for step in self.lr_steps)
        warmup = min(self.warmup_iters, iters_per_epoch - 1)
        if epoch == 0 and warmup > 0 and iteration < warmup:
            alpha = iteration / warmup
            lr *= self.warmup_factor * (1 - alpha) + alpha
        return lr


@dataclass
class TrainResult:
    """What a training run produced."""

    out_dir: Path | None
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)

    @property
    def model_path(self) -> Path | None:
        return self.out_dir / MODEL_NAME if self.out_dir else None


def _epoch_seed(config: TrainConfig, epoch: int) -> int:
    return config.seed * 100_003 + epoch


def _loader(dataset: DetectionDataset, config: TrainConfig, epoch: int) -> DataLoader:
    # A generator seeded by (seed, epoch) fixes the shuffle and the workers' RNG seeds, so an
    # epoch's batches and flips do not depend on whether the run was resumed.
    world, rank = distributed.world_size(), distributed.rank()
    seed, sampler = _epoch_seed(config, epoch), None
    if world > 1:  # this process's share of the epoch, shuffled by (seed, epoch)
        sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=config.seed
        )
        sampler.set_epoch(epoch)
        seed = seed * 1009 + rank  # the workers' seeds differ between processes
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate_detection,
        generator=generator,
        drop_last=False,
        persistent_workers=False,
    )


def _check_finite(
    losses: dict[str, torch.Tensor], epoch: int, iteration: int, ids: list[str],
    device: torch.device,
) -> None:
    """TrainingError on every process if a loss is not finite on any (so none waits forever in
    the backward pass of the others)."""
    bad = not all(torch.isfinite(v).all() for v in losses.values())
    if not distributed.any_true(bad, device):
        return
    message = None
    if bad:
        parts = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        message = (
            f"non-finite loss at epoch {epoch + 1}, iteration {iteration + 1} ({parts}) on images "
            f"{ids[:8]}; lower the learning rate (--lr) or check these images' boxes"
        )
    messages = distributed.all_gather_object(message)
    source = next(r for r, m in enumerate(messages) if m is not None)
    if distributed.world_size() > 1:
        messages[source] += f" (process {source})"
    error = TrainingError(messages[source])
    if not distributed.is_main():
        error.relayed_from = source  # every process raises it; rank 0 reports it
    raise error


def _sync_batchnorm(model: nn.Module, device: torch.device) -> dict[str, type] | None:
    """Under torchrun, turn trainable BatchNorm layers into SyncBatchNorm (GPUs only).

    Returns the converted layers' names and classes (for :func:`_revert_sync_batchnorm`), or
    None when nothing was converted.
    """
    if distributed.world_size() == 1:
        return None
    layers = {name: type(m) for name, m in model.named_modules() if isinstance(m, _BatchNorm)}
    if not layers:
        return None
    if device.type != "cuda":
        if distributed.is_main():
            log.warning(
                "%d BatchNorm layers train with per-process batch statistics: SyncBatchNorm needs "
                "GPUs", len(layers),
            )
        return None
    nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces the children in place
    return layers


def _revert_sync_batchnorm(model: nn.Module, layers: dict[str, type]) -> None:
    """Put back the BatchNorm classes :func:`_sync_batchnorm` replaced (same tensors)."""
    for name, cls in layers.items():
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        sync = getattr(parent, child_name)
        plain = cls(sync.num_features, sync.eps, sync.momentum, sync.affine,
                    sync.track_running_stats)
        for key, value in [*sync.named_parameters(recurse=False), *sync.named_buffers(recurse=False)]:
            setattr(plain, key, value)
        plain.train(sync.training)
        setattr(parent, child_name, plain)


def train_detector(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` (a torchvision detector returning a loss dict) on ``dataset``.

    ``model`` must come from ``huale.models.build_detector`` when ``out_dir`` is given (its build
    arguments go into every checkpoint). With ``out_dir``, writes ``checkpoint.pt`` after each epoch, ``model.pt`` and
    ``history.json`` at the end; ``resume=True`` continues from ``checkpoint.pt`` if present.
    """
    if len(dataset) == 0:
        raise ConfigError("the training set is empty: nothing to train on")
    device = distributed.local_device(resolve_device(device))
    out_dir = Path(out_dir) if out_dir is not None else None
    use_amp = config.amp and device.type == "cuda"
    train_set = dataset.with_transforms(RandomHorizontalFlip(config.hflip_prob))

    model.to(device).train()
    synced = _sync_batchnorm(model, device)
    try:
        return _train(model, dataset, train_set, config, out_dir, resume, device, use_amp, progress)
    finally:
        if synced:
            _revert_sync_batchnorm(model, synced)
        model.eval()


def _train(model, dataset, train_set, config, out_dir, resume, device, use_amp, progress):
    """The body of :func:`train_detector` (``model`` on ``device``, SyncBatchNorm set up)."""
    world = distributed.world_size()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, history = 0, []
    torch.manual_seed(config.seed)

    if resume and out_dir is not None and (out_dir / CHECKPOINT_NAME).is_file():
        state = load_checkpoint(out_dir / CHECKPOINT_NAME)
        if state["class_names"] != dataset.class_names:
            raise ConfigError(
                f"{out_dir / CHECKPOINT_NAME}: resumed run has classes {state['class_names']}, "
                f"the data has {dataset.class_names}"
            )
        model.load_state_dict(state["state_dict"])
        training = state["training"] or {}
        if "optimizer" in training:
            optimizer.load_state_dict(training["optimizer"])
        if training.get("scaler") and use_amp:
            scaler.load_state_dict(training["scaler"])
        if "rng" in training:
            torch.set_rng_state(training["rng"])
        start_epoch = int(training.get("epoch", -1)) + 1
        history = list(training.get("history", []))
        log.info("resuming from %s at epoch %d", out_dir / CHECKPOINT_NAME, start_epoch + 1)
    starts = distributed.all_gather_object(start_epoch)
    if len(set(starts)) > 1:
        raise ConfigError(
            f"{out_dir}: the processes would start at epochs {[s + 1 for s in starts]}; under "
            "torchrun the output folder must be on a filesystem every node sees"
        )

    net = model
    if world > 1:
        net = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            process_group=distributed.process_group(device),
        )
    main = distributed.is_main()
    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        if world > 1:  # per process and epoch, so that a resumed run repeats the same draws
            torch.manual_seed(_epoch_seed(config, epoch) * 1009 + distributed.rank())
        net.train()
        loader = _loader(train_set, config, epoch)
        iters = len(loader)
        sums: dict[str, float] = {}
        epoch_start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or not main,
                   leave=False)
        for iteration, (images, targets) in enumerate(bar):
            lr = config.lr_at(epoch, iteration, iters)
            for group in optimizer.param_groups:
                group["lr"] = lr
            losses = detector_forward(net, images, device, amp=use_amp, targets=targets)
            _check_finite(losses, epoch, iteration, [t["image_id"] for t in targets], device)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip_norm:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            loss_value = float(loss.detach())
            sums["loss"] = sums.get("loss", 0.0) + loss_value
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
        # epoch means of each loss, averaged over the processes
        means = distributed.all_reduce_mean([v / max(iters, 1) for v in sums.values()], device)
        record = dict(zip(sums, means, strict=True))
        record.update(epoch=epoch + 1, lr=lr, seconds=round(time.perf_counter() - epoch_start, 3))
        history.append(record)
        log.info("epoch %d/%d loss %.4f (%.1fs)", epoch + 1, config.epochs, record["loss"], record["seconds"])
        if out_dir is not None:

            def write_checkpoint(epoch: int = epoch) -> None:
                training = {
                    "epoch": epoch,
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if use_amp else None,
                    "rng": torch.get_rng_state(),
                    "config": asdict(config),
                    "history": history,
                    "world_size": world,
                }
                save_checkpoint(out_dir / CHECKPOINT_NAME, model, dataset.class_names,
                                training=training, category_ids=dataset.category_ids)

            distributed.run_on_main(write_checkpoint)  # the other processes wait for it

    seconds = time.perf_counter() - started
    if out_dir is not None:

        def write_final() -> None:
            # model.pt last: its presence marks a finished training (history.json is there too)
            atomic_write_json(out_dir / HISTORY_NAME, {"config": asdict(config), "history": history})
            save_checkpoint(out_dir / MODEL_NAME, model, dataset.class_names,
                            category_ids=dataset.category_ids)

        distributed.run_on_main(write_final)
    return TrainResult(out_dir=out_dir, epochs_run=config.epochs - start_epoch, seconds=seconds, history=history)
