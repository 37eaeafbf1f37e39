"""``huale status``: each round's numbers, the learning curve and how much more is worth labeling."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from huale.cli.common import Formatter

HELP = "Show a labeling project's rounds (selected, returned, outstanding, val mAP) and its learning curve."

EXAMPLES = """\
examples:
  huale status myproject
  huale status myproject --json

Writes PROJECT/learning_curve.png when the project has a validation set. From the third round
with a val mAP on, fits 1 - mAP = b * n^-c and gives the expected gain of a next round of the
last round's size, with an 80% interval, and says when the fit is not trustworthy.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("status", help=HELP, description=HELP, epilog=EXAMPLES,
                              formatter_class=Formatter)
    p.add_argument("project", type=Path, help="project folder (huale init)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    from huale.project.state import Project
    from huale.project.status import project_status, write_learning_curve

    project = Project.open(args.project)
    status = project_status(project)
    curve = write_learning_curve(project, status)
    if args.json:
        print(json.dumps({**status.to_json(), "learning_curve": None if curve is None else str(curve)},
                         indent=2))
        return 0
    print(f"{args.project}: {status.labeled_images} labeled images ({status.labeled_boxes} boxes), "
          f"classes {', '.join(project.class_names)}")
    if status.rows:
        print(status.table())
    else:
        print("no finished round yet: huale round PROJECT --budget N")
    if status.unfinished_round is not None:
        print(f"round {status.unfinished_round} is unfinished: run huale round again to resume it")
    if status.outstanding:
        shown = ", ".join(status.outstanding[:5]) + (" ..." if len(status.outstanding) > 5 else "")
        print(f"{len(status.outstanding)} sent images not labeled yet: {shown}")
    if status.fit_note:
        print(status.fit_note)
    if curve is not None:
        print(f"learning curve: {curve}")
    return 0
