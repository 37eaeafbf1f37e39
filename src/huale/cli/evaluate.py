"""``huale evaluate``: a checkpoint on a dataset, or a COCO detections file against ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from huale.cli.common import add_command_parser, add_device_options, print_results
from huale.errors import ConfigError

HELP = "Evaluate a checkpoint on a dataset, or a COCO detections file against COCO ground truth."
EXAMPLES = (
    "  huale evaluate --checkpoint runs/synth/model.pt --data data/synth --split test\n"
    "  huale evaluate --checkpoint model.pt --data VOCdevkit/VOC2007 --split test --metric voc voc07\n"
    "  huale evaluate --gt instances_val2017.json --detections dets.json --metric coco --json\n"
)


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command_parser(sub, "evaluate", HELP, EXAMPLES)
    p.add_argument("--checkpoint", type=Path, help="huale checkpoint (model.pt)")
    p.add_argument("--data", help="dataset to evaluate the checkpoint on (VOC, COCO, YOLO)")
    p.add_argument("--split", default="test",
                   help="split of --data: a VOC ImageSets/Main list, a YOLO data.yaml entry "
                        "(a yaml without test: pass val), or <split>.json of a folder")
    p.add_argument("--gt", type=Path, help="COCO ground-truth JSON (with --detections)")
    p.add_argument("--detections", type=Path, help="COCO results JSON: [{image_id, category_id, bbox, score}]")
    p.add_argument("--metric", nargs="+", default=None, choices=["voc", "voc07", "coco"],
                   help="voc (all-point AP@0.5), voc07 (11-point), coco (AP@[.5:.95]); "
                        "default: voc for --checkpoint, coco for --gt")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--save-detections", type=Path,
                   help="write the checkpoint's detections (COCO results, with the data's own "
                        "category and image ids) to this new file")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --save-detections file")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    add_device_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    if args.gt or args.detections:
        if not (args.gt and args.detections) or args.checkpoint:
            raise ConfigError("use --gt with --detections, or --checkpoint with --data")
        from huale.evaluation import evaluate_files

        results = {m: evaluate_files(args.gt, args.detections, metric=m) for m in args.metric or ["coco"]}
        print_results(results, args.json)
        return 0
    if not (args.checkpoint and args.data):
        raise ConfigError("use --checkpoint with --data, or --gt with --detections")
    from huale.data.coco import predictions_to_coco_results
    from huale.data.loading import load_dataset
    from huale.engine.evaluate import evaluate_model
    from huale.io import atomic_write_json
    from huale.models.checkpoint import (
        build_from_checkpoint,
        checkpoint_fallback_ids,
        load_checkpoint,
    )

    if args.save_detections and args.save_detections.exists() and not args.overwrite:
        raise ConfigError(f"{args.save_detections}: file exists; pass --overwrite to replace it")
    state = load_checkpoint(args.checkpoint)
    dataset = load_dataset(args.data, args.split, class_names=state["class_names"],
                           fallback_ids=checkpoint_fallback_ids(state))
    model, _ = build_from_checkpoint(state)
    results, predictions = evaluate_model(
        model, dataset, args.metric or ["voc"], batch_size=args.batch_size, device=args.device,
        amp=args.amp, workers=args.workers, progress=not args.quiet,
    )
    if args.save_detections:
        atomic_write_json(args.save_detections, predictions_to_coco_results(dataset, predictions))
    print_results(results, args.json)
    return 0
