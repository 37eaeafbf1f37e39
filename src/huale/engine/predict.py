"""Run a detector over a dataset and collect its per-image predictions."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from huale.data.records import DetectionDataset, collate_detection
from huale.runtime.device import detector_forward, resolve_device, to_host


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    *,
    batch_size: int = 4,
    workers: int = 0,
    device: str | torch.device | None = "auto",
    amp: bool = True,
    progress: bool = True,
    desc: str = "predict",
) -> list[dict[str, torch.Tensor]]:
    """Predictions for every image, in dataset order, as CPU float32 tensors.

    Each dict holds what the detector returns: at least ``boxes (K, 4)`` xyxy in original image
    pixels, ``labels (K,)`` and ``scores (K,)``; huale's RoI head adds ``class_probs (K, C+1)``,
    ``max_fg_prob (K,)`` and ``fpn_level (K,)``.
    """
    device = resolve_device(device)
    model.to(device).eval()
    loader = DataLoader(
        dataset.with_transforms(None),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_detection,
    )
    outputs: list[dict[str, torch.Tensor]] = []
    for images, _ in tqdm(loader, desc=desc, disable=not progress, leave=False):
        batch = detector_forward(model, images, device, amp=amp)
        outputs.extend({key: to_host(value) for key, value in det.items()} for det in batch)
    return outputs
