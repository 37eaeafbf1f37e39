"""Device selection, autocast, and the detector call on a device shared by training, evaluation and
pool scoring."""

from __future__ import annotations

import contextlib

import torch

from huale.errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> CUDA if available else CPU; otherwise the named device (validated)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device} requested but CUDA is not available on this machine")
    return device


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on CUDA when ``enabled``; a no-op context elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def move_targets(targets: list[dict], device: torch.device) -> list[dict]:
    """Move the tensor values of detection targets to ``device`` (strings stay as they are)."""
    return [
        {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()}
        for t in targets
    ]


def detector_forward(
    model: torch.nn.Module,
    images: list[torch.Tensor],
    device: torch.device,
    *,
    amp: bool,
    targets: list[dict] | None = None,
):
    """``model(images)`` (``model(images, targets)`` with targets) on ``device`` under
    :func:`autocast`; images (3, H, W) and target tensors are moved to ``device`` first."""
    images = [image.to(device, non_blocking=True) for image in images]
    with autocast(device, amp):
        if targets is None:
            return model(images)
        return model(images, move_targets(targets, device))


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` on the CPU; floating point as float32 (AMP outputs may be float16)."""
    return (tensor.float() if tensor.is_floating_point() else tensor).cpu()
