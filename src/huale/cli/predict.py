"""``huale predict``: a detector's predictions of a pool, written as a predictions file."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path

from huale.cli.common import add_command_parser, add_detector_options, load_detector_from_args
from huale.errors import ConfigError

log = logging.getLogger(__name__)

HELP = ("Write a detector's predictions of a pool as a predictions file (JSON Lines) that "
        "`huale select --predictions` ranks without the detector.")
EXAMPLES = """\
  huale predict --checkpoint runs/synth/model.pt --pool data/synth/images --out preds.jsonl \\
      --views hflip --prenms 0.3
  huale predict --checkpoint model_25.pth --arch fasterrcnn_resnet50_fpn_v2 --classes classes.txt \\
      --pool images/ --out preds.jsonl

Writes OUT (one image a line; format: docs/predictions.schema.json) and OUT's class names file
(preds.classes.txt for preds.jsonl), which `huale select --predictions OUT` reads. --views hflip
adds the flipped view (consistency, hua, huale need it); --prenms T adds the pre-NMS boxes with
max foreground probability above T (hua and huale use them with T = 0.3; without them they
group the final boxes). A killed run resumes from OUT's scoring shards (.OUT.scoring/).
"""


def add_parser(sub) -> argparse.ArgumentParser:
    from huale.inference.predictions_file import VIEW_ALIASES

    p = add_command_parser(sub, "predict", HELP, EXAMPLES)
    add_detector_options(p)
    p.add_argument("--pool", type=Path, required=True,
                   help="images: a folder, a .txt list, or a dataset (labels ignored)")
    p.add_argument("--pool-split", default="train", help="split, when --pool is a dataset")
    p.add_argument("--out", type=Path, required=True, help="predictions file to write (.jsonl)")
    p.add_argument("--views", nargs="+", default=[], choices=sorted(VIEW_ALIASES),
                   metavar="VIEW", help="test-time views besides the original (hflip, cutout, "
                                        "resize, rotate); random ones are seeded by --seed")
    p.add_argument("--prenms", type=float, metavar="T",
                   help="also write the pre-NMS boxes with max foreground probability > T")
    p.add_argument("--no-posteriors", dest="posteriors", action="store_false",
                   help="leave the class posteriors out (scores only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random views")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="disable mixed precision on CUDA")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--shard-size", type=int, default=256, help="images per scoring shard")
    return p


def run(args: argparse.Namespace) -> int:
    from huale.inference import ScoringReport, ScoringRequest, iter_pool_records
    from huale.inference.predictions_file import VIEW_ALIASES, classes_file_of, write_predictions
    from huale.io import atomic_write_text
    from huale.predictions import Needs
    from huale.selection.pool import load_pool, pool_root

    out, classes_out = args.out, classes_file_of(args.out)
    if out.suffix in (".txt",) or out == classes_out:
        raise ConfigError(f"--out {out}: give a .jsonl file name")
    existing = [p for p in (out, classes_out) if p.exists()]
    if existing and not args.overwrite:
        raise ConfigError(f"{existing[0]} exists: pass --overwrite to replace it")
    if args.prenms is not None and not 0.0 <= args.prenms < 1.0:
        raise ConfigError(f"--prenms must be in [0, 1), got {args.prenms}")
    detector, class_names = load_detector_from_args(args)
    pool = load_pool(args.pool, class_names, split=args.pool_split)
    root = pool_root(args.pool)
    needs = Needs(
        views=tuple(dict.fromkeys(["orig", *(VIEW_ALIASES[v] for v in args.views)])),
        prenms=args.prenms is not None,
        prenms_threshold=args.prenms if args.prenms is not None else Needs().prenms_threshold,
    )
    from huale.inference.adapters import check_needs

    check_needs("predict", needs, detector)
    request = ScoringRequest(batch_size=args.batch_size, device=args.device, amp=args.amp,
                             workers=args.workers, progress=not args.quiet,
                             shard_size=args.shard_size)
    shards = out.parent / f".{out.name}.scoring"
    report = ScoringReport()
    records = iter_pool_records(detector, pool, needs, request, seed=args.seed,
                                shard_dir=shards, report=report, desc="predict")
    path_of = {r.image_id: r.path for r in pool.records}

    def file_name(image_id: str) -> str:
        relative = Path(os.path.relpath(Path(path_of[image_id]).resolve(), root))
        return image_id if relative.parts[:1] == ("..",) else relative.as_posix()

    write_predictions(out, ((file_name(r.image_id), r) for r in records), class_names,
                      posteriors=args.posteriors)
    atomic_write_text(classes_out, "".join(f"{name}\n" for name in class_names))
    shutil.rmtree(shards, ignore_errors=True)
    print(f"predicted {report.scored + report.resumed} of {len(pool)} images "
          f"({len(report.skipped)} unreadable, skipped) -> {out}")
    print(f"  class names -> {classes_out}")
    return 0
