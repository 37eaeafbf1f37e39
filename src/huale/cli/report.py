"""``huale report``: learning curves and tables from loop run folders (:mod:`huale.reports`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from huale.cli.common import add_command_parser

HELP = ("Learning curves (PNG) and tables (markdown) from one or more loop run folders: per "
        "split, mAP by labeled images and boxes, each strategy's gain over --baseline paired by "
        "seed (95 percent t interval, seeds won), every two strategies compared paired by seed, and "
        "the gain at equal labeled boxes.")
EXAMPLES = ("  huale report runs/synth\n  huale report runs/a runs/b --out reports/ab --metric coco\n"
            "  huale report runs/bccd --choose huale huale-no-class-weights\n")


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command_parser(sub, "report", HELP, EXAMPLES)
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by huale loop")
    p.add_argument("--out", type=Path, help="output folder (default: the first run folder)")
    p.add_argument("--metric", default="voc", choices=["voc", "voc07", "coco"],
                   help="metric of the tables and curves: voc (mAP@0.5, all-point), voc07 (11-point) "
                        "or coco (AP@[.5:.95]) (default: voc)")
    p.add_argument("--baseline", default="random", help="strategy the gains are measured against")
    p.add_argument("--choose", nargs="+", action="append", default=[], metavar="STRATEGY",
                   help="variants of one option (e.g. huale huale-no-class-weights): the one with the "
                   "highest mean gain on the validation split is chosen and reported on the test "
                   "split; repeat for several groups")
    return p


def run(args: argparse.Namespace) -> int:
    from huale.reports import write_report

    paths = write_report(args.runs, args.out, metric=args.metric, baseline=args.baseline,
                         choose=args.choose)
    print(paths["markdown"].read_text())
    print(f"learning curve: {paths['png']}")
    return 0
