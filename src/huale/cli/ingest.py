"""``huale ingest``: merge labels from Label Studio, CVAT (COCO) or VOC into a project (:mod:`huale.project.ingest`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from huale.cli.common import Formatter
from huale.errors import ConfigError

HELP = "Bring labels back from a labeling tool's export into the project's labeled set."

EXAMPLES = """\
examples:
  huale ingest myproject project-1-at-2026-12-01.json          # Label Studio JSON export
  huale ingest myproject task_3-coco_1.0.zip                    # CVAT COCO 1.0 (zip or json)
  huale ingest myproject voc_export/ --map car=vehicle          # Pascal VOC folder
  huale ingest myproject export.json --allow-new --dry-run

Images are matched to the images the rounds sent (huale's id in the task, the task URL, the
path relative to the pool, or the file name). Skipped or cancelled tasks stay outstanding.
Ingesting the same export twice changes nothing; a newer annotation replaces the stored one.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from huale.project.ingest import FORMATS

    p = subparsers.add_parser("ingest", help=HELP, description=HELP, epilog=EXAMPLES,
                              formatter_class=Formatter)
    p.add_argument("project", type=Path, help="project folder (huale init)")
    p.add_argument("export", type=Path, help="Label Studio JSON, COCO json/zip, or VOC folder")
    p.add_argument("--format", choices=FORMATS, default="auto", help="export format")
    p.add_argument("--map", action="append", default=[], metavar="OLD=NEW",
                   help="rename a class of the export to a project class (repeatable)")
    p.add_argument("--allow-new", action="store_true",
                   help="also take images no round sent (pool images or already labeled ones)")
    p.add_argument("--voc-one-based", action="store_true",
                   help="VOC: coordinates are 1-based (devkit, LabelImg) instead of CVAT's 0-based")
    p.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    return p


def parse_map(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise ConfigError(f"--map {item!r}: expected OLD=NEW")
        out[old] = new
    return out


def run(args: argparse.Namespace) -> int:
    from huale.project.ingest import ingest_file
    from huale.project.state import Project

    project = Project.open(args.project)
    report = ingest_file(project, args.export, fmt=args.format, class_map=parse_map(args.map),
                         allow_new=args.allow_new, voc_one_based=args.voc_one_based,
                         dry_run=args.dry_run)
    print(("dry run, nothing written: " if args.dry_run else "") + report.summary())
    for name in report.replaced:
        print(f"  replaced (newer annotation): {name}")
    for name in report.kept_newer:
        print(f"  kept the labeled set's newer annotation: {name}")
    labeled = project.labeled()
    print(f"labeled set: {len(labeled)} images, {labeled.num_boxes()} boxes")
    return 0
