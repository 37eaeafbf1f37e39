"""``huale synth``: write the synthetic detection dataset (:mod:`huale.data.synthetic`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from huale.cli.common import add_command_parser

HELP = "Write the synthetic detection dataset (JPEGs + COCO JSON train/test splits)."
EXAMPLES = (
    "  huale synth --out data/synth --images 600 --seed 0\n"
    "  huale synth --out data/synth-big --images 5000 --image-size 256\n"
    "  huale synth --out data/synth-video --images 600 --clip-length 10\n"
)


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command_parser(sub, "synth", HELP, EXAMPLES)
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out (its images, JSON files and marker are "
                        "replaced)")
    p.add_argument("--images", type=int, default=600, help="images in all (train + test)")
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p.add_argument("--image-size", type=int, default=192, help="side of the square images, px")
    p.add_argument("--test-fraction", type=float, default=0.25, help="share of images in test.json")
    p.add_argument("--clip-length", type=int, default=1,
                   help="cut the train split into clips of this many near-duplicate frames, as "
                        "pools cut from video are (1: independent images)")
    return p


def run(args: argparse.Namespace) -> int:
    from huale.data.synthetic import MARKER_NAME, generate_synthetic
    from huale.outfolder import claim_out_folder

    claim_out_folder(args.out, overwrite=args.overwrite, can_resume=False,
                     outputs=("images", "train.json", "test.json", MARKER_NAME))
    info = generate_synthetic(
        args.out, num_images=args.images, seed=args.seed, image_size=args.image_size,
        test_fraction=args.test_fraction, clip_length=args.clip_length, progress=not args.quiet,
    )
    clips = f", train split in clips of {args.clip_length} frames" if args.clip_length > 1 else ""
    print(f"wrote {args.images} images to {args.out} ({info.train_json.name}, "
          f"{info.test_json.name}{clips})")
    return 0
