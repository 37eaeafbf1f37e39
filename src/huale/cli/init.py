"""``huale init``: create a labeling project folder (:mod:`huale.project.state`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from huale.cli.common import Formatter
from huale.labeling.urls import LOCAL_FILES_PREFIX

HELP = "Create a project for labeling in rounds: the pool, the labeled set, the classes."

EXAMPLES = """\
examples:
  huale init myproject --pool images/ --labeled labeled.json --val val.json
  huale init myproject --pool pool.txt --labeled data/VOC2007 --labeled-split trainval --arch small

The labeled set is copied into PROJECT/labeled.json (COCO; the user's category and image ids
kept, file names made absolute). Classes come from it, in category-id order. Then run
`huale round PROJECT --budget N`.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from huale.models.detector import ARCHITECTURES

    p = subparsers.add_parser("init", help=HELP, description=HELP, epilog=EXAMPLES,
                              formatter_class=Formatter)
    p.add_argument("project", type=Path, help="project folder to create")
    p.add_argument("--pool", type=Path, required=True,
                   help="unlabeled images: a folder, a .txt list, or a dataset (labels ignored)")
    p.add_argument("--labeled", type=Path, required=True,
                   help="annotations of the images labeled so far (COCO JSON, VOC, YOLO)")
    p.add_argument("--labeled-split", default="train", help="split of --labeled (VOC, YOLO)")
    p.add_argument("--val", type=Path, help="validation set: val mAP per round, learning curve")
    p.add_argument("--val-split", default="test", help="split of --val (VOC, YOLO, folders)")
    p.add_argument("--pool-split", default="train", help="split, when --pool is a dataset")
    p.add_argument("--arch", default="small", choices=ARCHITECTURES, help="detector of every round")
    p.add_argument("--weights", help="detector weights for the first round (a local file)")
    p.add_argument("--backbone-weights", help="ImageNet backbone weights (a local file)")
    p.add_argument("--min-size", type=int, help="resize shorter side to this (default: the arch's)")
    p.add_argument("--max-size", type=int, help="cap on the longer side (default: the arch's)")
    p.add_argument("--image-url-prefix", default=LOCAL_FILES_PREFIX,
                   help="Label Studio task image URL = prefix + path relative to the pool folder "
                        "(default: Label Studio local files)")
    p.add_argument("--document-root", type=Path,
                   help="folder the image URLs are relative to: Label Studio's "
                        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: the folder holding the "
                        "pool folder)")
    return p


def run(args: argparse.Namespace) -> int:
    from huale.project.state import ModelSettings, Project

    model = ModelSettings(arch=args.arch, weights=args.weights, backbone_weights=args.backbone_weights,
                          min_size=args.min_size, max_size=args.max_size)
    project = Project.create(args.project, pool=args.pool, labeled=args.labeled, val=args.val,
                             labeled_split=args.labeled_split, val_split=args.val_split,
                             pool_split=args.pool_split, model=model,
                             image_url_prefix=args.image_url_prefix,
                             document_root=args.document_root)
    labeled = project.labeled()
    print(f"created {args.project}: {len(labeled)} labeled images ({labeled.num_boxes()} boxes), "
          f"{len(project.class_names)} classes ({', '.join(project.class_names)}), pool {project.pool}"
          + (f", val {project.val}" if project.val else ", no validation set"))
    print(f"Label Studio: LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={project.document_root}, "
          f"Local files storage path {project.pool if project.pool.is_dir() else project.pool.parent}")
    print(f"next: huale round {args.project} --budget N")
    return 0
