"""Pieces shared by the subcommands: the help formatter, device/model/training option groups."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (unless it is a flag, None, or the help already says it) and
    keeps the examples' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
        if flag or action.default in (None, argparse.SUPPRESS, []) or "default" in text:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def add_command_parser(sub, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand parser whose description is ``help`` and whose epilog lists ``examples``."""
    return sub.add_parser(
        name, help=help, description=help, epilog="examples:\n" + examples, formatter_class=Formatter
    )


def add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (CUDA if available)")
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="disable mixed precision on CUDA (it is on by default; no effect on CPU)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")


def add_model_options(p: argparse.ArgumentParser) -> None:
    from huale.models.detector import ARCHITECTURES, default_input_size

    sizes = "; ".join(
        f"{arch} {'/'.join(str(v) for v in default_input_size(arch))}"
        for arch in ("small", "fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_resnet50_fpn")
    )
    p.add_argument("--arch", default="small", choices=ARCHITECTURES, help="detector architecture")
    p.add_argument("--weights", help="detector weights: a local file, or a torchvision name such "
                   "as DEFAULT (downloaded once into ~/.cache/torch; offline, pass the file)")
    p.add_argument("--backbone-weights", help="ImageNet backbone weights: a local file or a "
                   "torchvision name such as DEFAULT (downloaded, as --weights)")
    p.add_argument("--min-size", type=int, help="resize the shorter image side to this many px "
                   f"(default min/max size by arch: {sizes}; other archs as resnet50)")
    p.add_argument("--max-size", type=int, help="cap on the longer image side, px (default: the "
                   "arch's, see --min-size)")


def add_train_options(p: argparse.ArgumentParser) -> None:
    from huale.engine.train import TrainConfig

    d = TrainConfig()
    g = p.add_argument_group("training (defaults: CALD protocol)")
    g.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training images")
    g.add_argument("--lr", type=float, default=d.lr,
                   help="SGD learning rate (after warm-up; x0.1 at each --lr-steps epoch)")
    g.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="SGD weight decay")
    g.add_argument("--lr-steps", type=int, nargs="*", default=list(d.lr_steps), help="epochs where lr x0.1")
    g.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="images per step and per process (torchrun: the global batch is N x this)")
    g.add_argument("--warmup-iters", type=int, default=d.warmup_iters,
                   help="iterations of linear learning-rate warm-up")
    g.add_argument("--hflip-prob", type=float, default=d.hflip_prob,
                   help="probability of a horizontal flip of each training image")
    g.add_argument("--grad-clip-norm", type=float, default=d.grad_clip_norm,
                   help="clip the gradient norm to this (default: no clipping)")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of initialisation, order and flips")


def train_config(args: argparse.Namespace):
    """The :class:`~huale.engine.train.TrainConfig` of the training options."""
    from huale.engine.train import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        lr_steps=tuple(args.lr_steps),
        batch_size=args.batch_size,
        warmup_iters=args.warmup_iters,
        hflip_prob=args.hflip_prob,
        workers=args.workers,
        amp=args.amp,
        grad_clip_norm=args.grad_clip_norm,
        seed=args.seed,
    )


def print_results(results: dict[str, dict], as_json: bool) -> None:
    """Print per-metric AP results as tables, or as one JSON object."""
    from huale.evaluation import format_ap_table

    if as_json:
        flat = results[next(iter(results))] if len(results) == 1 else results
        print(json.dumps(flat, indent=2, sort_keys=True))
        return
    for metric, result in results.items():
        print(f"== {metric} ==")
        print(format_ap_table(result))


def is_main_process() -> bool:
    """True outside torchrun, and on rank 0 under it."""
    from huale.runtime import distributed

    return distributed.is_main()


def add_detector_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """--checkpoint with the detector family and, for plain torchvision weights, --arch/--classes."""
    from huale.inference.adapters import DEFAULT_DETECTOR, available_detectors
    from huale.models.detector import ARCHITECTURES

    g = p.add_argument_group("detector (docs: README, 'Use your own detector')")
    g.add_argument("--checkpoint", type=Path, required=required,
                   help="a huale checkpoint (model.pt), or plain torchvision weights with --arch "
                        "(a bare state_dict or the reference scripts' {'model': ...})")
    g.add_argument("--detector", default=DEFAULT_DETECTOR, choices=available_detectors(),
                   help="detector family of --checkpoint")
    g.add_argument("--arch", choices=ARCHITECTURES,
                   help="torchvision architecture of plain weights (needs --classes)")
    g.add_argument("--classes", type=Path,
                   help="object class names, one per line in label order, background not listed")
    g.add_argument("--min-size", type=int, help="detector input: resize shorter side to this "
                                                "(default: the checkpoint's / the arch's)")
    g.add_argument("--max-size", type=int, help="cap on the longer side (default: as --min-size)")


def load_detector_from_args(args: argparse.Namespace):
    """(detector adapter, class names) of the options of :func:`add_detector_options`."""
    from huale.data.textfiles import read_class_names
    from huale.inference import load_detector

    classes = read_class_names(args.classes) if args.classes is not None else None
    sizes = {k: getattr(args, k) for k in ("min_size", "max_size") if getattr(args, k) is not None}
    detector = load_detector(args.detector, args.checkpoint, arch=args.arch, classes=classes, **sizes)
    return detector, list(detector.class_names)
