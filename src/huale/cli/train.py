"""``huale train``: train a detector on VOC, COCO, YOLO or synthetic data (:mod:`huale.engine.train`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from huale.cli.common import (
    add_command_parser,
    add_device_options,
    add_model_options,
    add_train_options,
    is_main_process,
    print_results,
    train_config,
)
from huale.cli.loss_options import add_loss_options, loss_config_from_args

log = logging.getLogger("huale")

HELP = "Train a Faster R-CNN detector on VOC, COCO or YOLO data."
EXAMPLES = (
    "  huale train --data data/synth --out runs/synth --arch small\n"
    "  huale train --data VOCdevkit/VOC2007 --split trainval --out runs/voc \\\n"
    "      --arch fasterrcnn_resnet50_fpn --backbone-weights resnet50-0676ba61.pth\n"
    "  huale train --data coco/annotations/instances_train2017.json --out runs/coco --resume\n"
    "  huale train --data data.yaml --fraction 0.1 --out runs/yolo10 --eval-data data.yaml --eval-split val\n"
    "  huale train --data data/synth --out runs/full --loss full --loss-option box_iou_loss=extended\n"
)


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command_parser(sub, "train", HELP, EXAMPLES)
    p.add_argument("--data", required=True, help="VOC folder, COCO .json, YOLO data.yaml, or synthetic folder")
    p.add_argument("--split", default="train",
                   help="split to train on: a VOC ImageSets/Main list, a YOLO data.yaml entry "
                        "(train/val/test) or <split>.json of a folder; not used for a .json file")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (checkpoints, history); new or empty unless --resume or "
                        "--overwrite")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--fraction", type=float, help="train on a seeded random fraction of the split")
    sel.add_argument("--num-images", type=int, help="train on a seeded random subset of this size")
    p.add_argument("--eval-data", help="evaluate after training on this data (default: no evaluation)")
    p.add_argument("--eval-split", default="test", help="split of --eval-data")
    p.add_argument("--metric", nargs="+", default=["voc"], choices=["voc", "voc07", "coco"],
                   help="metrics of the evaluation: voc (all-point AP@0.5), voc07 (11-point), "
                        "coco (AP@[.5:.95], pycocotools)")
    p.add_argument("--drop-empty-classes", action="store_true",
                   help="leave out classes with no box in the training set (e.g. a Roboflow "
                        "supercategory); the others keep their ids")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="train afresh in a non-empty --out (its model, checkpoint and history are "
                        "deleted first)")
    add_model_options(p)
    add_train_options(p)
    add_loss_options(p)
    add_device_options(p)
    return p


def _check_classes(dataset, *, drop_empty: bool):
    """Warn about (or, with ``drop_empty``, leave out) classes without any training box."""
    counts = dataset.class_counts()
    empty = [name for name, count in zip(dataset.class_names, counts, strict=True) if count == 0]
    if not empty:
        return dataset
    ids = [dataset.category_ids[dataset.class_names.index(name)] for name in empty]
    described = ", ".join(f"{name!r} (id {i})" for name, i in zip(empty, ids, strict=True))
    if drop_empty:
        log.warning("left out %d classes without boxes in the training set: %s",
                    len(empty), described)
        return dataset.without_classes(empty)
    log.warning(
        "%d classes have no box in the training set: %s; they are trained as classes that never "
        "occur (pass --drop-empty-classes to leave them out)", len(empty), described,
    )
    return dataset


def log_input_size(model, dataset) -> None:
    """Log how the detector resizes the dataset's images (a warning below half size)."""
    import numpy as np

    from huale.models.detector import resize_factor

    if not len(dataset):
        return
    spec = model.huale_spec["kwargs"]
    width = int(np.median([r.width for r in dataset.records]))
    height = int(np.median([r.height for r in dataset.records]))
    factor = resize_factor(spec["min_size"], spec["max_size"], width, height)
    level = logging.WARNING if factor < 0.5 else logging.INFO
    log.log(
        level,
        "input size: %s resizes %dx%d images (median) to %dx%d (x%.2f; --min-size %d, "
        "--max-size %d)%s",
        model.huale_spec["arch"], width, height, round(width * factor), round(height * factor),
        factor, spec["min_size"], spec["max_size"],
        "; small objects may vanish: raise --min-size/--max-size" if factor < 0.5 else "",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from huale.data.loading import load_dataset
    from huale.data.splits import sample_ids
    from huale.engine.evaluate import evaluate_model
    from huale.engine.train import OUTPUTS, train_detector
    from huale.models.detector import build_detector
    from huale.outfolder import claim_out_folder
    from huale.runtime import distributed

    config = train_config(args)
    distributed.run_on_main(
        claim_out_folder, args.out, resume=args.resume, overwrite=args.overwrite, outputs=OUTPUTS
    )
    dataset = load_dataset(args.data, args.split)
    if args.fraction is not None or args.num_images is not None:
        ids = sample_ids(dataset.ids, fraction=args.fraction, count=args.num_images, seed=args.seed)
        dataset = dataset.subset(ids)
    dataset = _check_classes(dataset, drop_empty=args.drop_empty_classes)
    log.info("training on %d images, %d classes: %s", len(dataset), dataset.num_classes, dataset.class_names)
    size_kwargs = {k: v for k, v in (("min_size", args.min_size), ("max_size", args.max_size)) if v}
    torch.manual_seed(args.seed)
    loss = loss_config_from_args(args, class_counts=dataset.class_counts().tolist())
    model = build_detector(
        args.arch, dataset.num_classes, weights=args.weights, backbone_weights=args.backbone_weights,
        loss=loss, **size_kwargs,
    )
    result = train_detector(
        model, dataset, config, out_dir=args.out, resume=args.resume,
        device=args.device, progress=not args.quiet,
    )
    log_input_size(model, dataset)
    print(f"trained {result.epochs_run} epochs in {result.seconds:.0f}s -> {result.model_path}")
    if args.eval_data and is_main_process():  # under torchrun, rank 0 evaluates
        eval_set = load_dataset(
            args.eval_data, args.eval_split, class_names=dataset.class_names,
            fallback_ids=dict(zip(dataset.class_names, dataset.category_ids, strict=True)),
        )
        results, _ = evaluate_model(
            model, eval_set, args.metric, device=args.device, amp=args.amp, workers=args.workers,
            progress=not args.quiet,
        )
        print_results(results, as_json=False)
    return 0
