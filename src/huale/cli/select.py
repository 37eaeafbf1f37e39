"""``huale select``: options -> :class:`~huale.selection.run.SelectConfig` -> ``run_selection``."""

from __future__ import annotations

import argparse
from pathlib import Path

from huale.cli.common import Formatter, add_detector_options
from huale.labeling.urls import LOCAL_FILES_PREFIX
from huale.selection.run import BUDGET_UNITS, SelectConfig, run_selection

HELP = "Pick the next images to label from an unlabeled pool with a trained checkpoint."

EXAMPLES = """\
examples:
  huale select --checkpoint runs/synth/model.pt --pool data/unlabeled --labeled data/synth \\
      --budget 100 --out runs/select1
  huale select --checkpoint model.pt --pool pool.txt --labeled train.json --budget 2000 \\
      --budget-unit boxes --strategy cald --strategy-option beta=1.2 --out runs/select2
  huale select --checkpoint model.pt --pool images/ --labeled-ids labeled.txt --budget 50 \\
      --out sel --image-url-prefix /data/local-files/?d=images/
  huale select --checkpoint model_25.pth --arch fasterrcnn_resnet50_fpn_v2 \\
      --classes classes.txt --pool images/ --budget 50 --out sel   # torchvision-trained weights
  huale select --predictions preds.jsonl --pool images/ --strategy consistency --budget 50 \\
      --out sel                                 # from a predictions file (`huale predict`)

Pool images that are files of the labeled dataset (compared by resolved absolute path) or that
are named in --labeled-ids are never selected. Outputs in --out: selection.csv, selection.json,
selected_coco.json, labelstudio_tasks.json; scoring shards in --out/.scoring/. A folder that is
not empty is refused unless --resume (a killed run started again with the same options and
--resume scores only what is left) or --overwrite (delete the shards and the four files first).
labelstudio_tasks.json fits a Label Studio labeling config with <Image name="image"
value="$image"/> and <RectangleLabels name="label" toName="image"> holding the class names.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``select`` on an ``argparse`` subparsers object; returns its parser."""
    from huale.strategies import available_strategies, format_strategy_help

    p = subparsers.add_parser(
        "select",
        help=HELP,
        description=HELP,
        epilog=EXAMPLES + "\nstrategies and their options (defaults):\n" + format_strategy_help(),
        formatter_class=Formatter,
    )
    add_detector_options(p, required=False)
    p.add_argument("--predictions", type=Path,
                   help="score from a predictions file (JSON Lines, `huale predict`) instead of "
                        "--checkpoint; --classes defaults to PREDICTIONS.classes.txt beside it")
    p.add_argument("--labeled-predictions", type=Path,
                   help="predictions file of the --labeled images (class quality); default: "
                        "their lines in --predictions")
    p.add_argument("--pool", type=Path, required=True,
                   help="unlabeled images: a folder, a .txt list, or a dataset (labels ignored)")
    p.add_argument("--pool-split", default="train", help="split, when --pool is a dataset")
    p.add_argument("--labeled", type=Path,
                   help="annotations of the already labeled images (VOC, COCO, YOLO)")
    p.add_argument("--labeled-split", default="train", help="split of --labeled")
    p.add_argument("--labeled-ids", type=Path,
                   help="text file: ids or paths of already labeled pool images, one per line")
    p.add_argument("--budget", type=int, required=True, help="how many images (or boxes) to select")
    p.add_argument("--budget-unit", choices=BUDGET_UNITS, default="images",
                   help="boxes: count the model's detections >= --preannotation-threshold "
                        "(at least 1 per image)")
    p.add_argument("--strategy", choices=available_strategies(), default="huale",
                   help="how to rank the pool (see the strategies below)")
    p.add_argument("--strategy-option", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy option (repeatable), value parsed as YAML, "
                        "e.g. pool_multiplier=3")
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in a non-empty --out from its scoring shards")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in a non-empty --out (its shards and outputs)")
    p.add_argument("--seed", type=int, default=0, help="seed of random views and random choices")
    p.add_argument("--preannotation-threshold", type=float, default=0.5,
                   help="detection score for pre-annotations (and for the box budget)")
    p.add_argument("--image-url-prefix", default=LOCAL_FILES_PREFIX,
                   help="Label Studio image URL = prefix + path relative to --image-root (the "
                        "default is Label Studio's local-files serving: start it with "
                        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
                        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<the folder holding the pool "
                        "folder>, and add the pool folder as a Local files storage)")
    p.add_argument("--image-root", type=Path,
                   help="folder the image URLs are relative to (default: with the local-files "
                        "prefix the pool folder's parent, Label Studio's document root; with "
                        "another prefix the pool folder)")
    p.add_argument("--absolute-image-paths", dest="image_url_prefix", action="store_const",
                   const=None, help="write the absolute file path as the task's image instead")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto")
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="disable mixed precision on CUDA (it is on by default; no effect on CPU)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--shard-size", type=int, default=256,
                   help="images per scoring shard (the unit a killed run resumes from)")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``huale select`` from parsed arguments; prints a summary. Returns the exit code 0."""
    from huale.strategies import parse_strategy_options

    if args.checkpoint is None and args.predictions is None:
        from huale.errors import ConfigError

        raise ConfigError("give --checkpoint (a detector) or --predictions (a predictions file)")
    config = SelectConfig(
        checkpoint=args.checkpoint,
        detector=args.detector,
        arch=args.arch,
        classes=args.classes,
        min_size=args.min_size,
        max_size=args.max_size,
        predictions=args.predictions,
        labeled_predictions=args.labeled_predictions,
        pool=args.pool,
        budget=args.budget,
        out=args.out,
        labeled=args.labeled,
        labeled_ids=args.labeled_ids,
        budget_unit=args.budget_unit,
        strategy=args.strategy,
        strategy_options=parse_strategy_options(args.strategy, args.strategy_option),
        seed=args.seed,
        pool_split=args.pool_split,
        labeled_split=args.labeled_split,
        preannotation_threshold=args.preannotation_threshold,
        image_url_prefix=args.image_url_prefix,
        image_root=args.image_root,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        amp=args.amp,
        shard_size=args.shard_size,
        progress=not getattr(args, "quiet", False),
        resume=args.resume,
        overwrite=args.overwrite,
    )
    result = run_selection(config)
    if result.resumed:
        print(f"resumed: {result.resumed} of {result.pool_size} pool images read back from "
              f"{args.out / '.scoring'}, {result.pool_size - result.resumed} scored now")
    print(
        f"selected {len(result.selected)} of {result.pool_size} pool images "
        f"({len(result.already_labeled)} already labeled left out) -> {args.out}"
    )
    for path in result.files.values():
        print(f"  {path}")
    if result.skipped:
        image_id, reason = result.skipped[0]
        print(f"skipped {len(result.skipped)} unreadable pool images (e.g. {image_id}: {reason}); "
              f"listed in {result.files['json']}")
    return 0
