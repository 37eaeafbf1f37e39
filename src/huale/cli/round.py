"""``huale round``: train, evaluate, select and export one labeling round (:mod:`huale.project.rounds`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from huale.cli.common import Formatter

HELP = "Run the project's next labeling round: train, evaluate, pick images, write the exports."

EXAMPLES = """\
examples:
  huale round myproject --budget 50
  huale round myproject --budget 200 --budget-unit boxes --strategy cald
  huale round myproject --budget 50 --epochs 8 --device cuda

Writes PROJECT/rounds/NNN/: selection.csv/json, selected_coco.json, labelstudio_tasks.json,
labelstudio_config.xml, cvat_coco.zip, gallery.html, contact_sheet.png. The first round trains
from scratch (16 epochs, lr 0.02); later rounds fine-tune the previous model (5 epochs, lr 0.01)
unless --from-scratch. A killed round resumes when the same command runs again.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from huale.selection.run import BUDGET_UNITS
    from huale.strategies import available_strategies

    p = subparsers.add_parser("round", help=HELP, description=HELP, epilog=EXAMPLES,
                              formatter_class=Formatter)
    p.add_argument("project", type=Path, help="project folder (huale init)")
    p.add_argument("--budget", type=int, required=True, help="images (or boxes) to select")
    p.add_argument("--budget-unit", choices=BUDGET_UNITS, default="images")
    p.add_argument("--strategy", choices=available_strategies(), default="huale")
    p.add_argument("--strategy-option", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy option (repeatable), see huale select --help")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help="epochs (default: 16 first round, 5 when fine-tuning)")
    g.add_argument("--lr", type=float, help="learning rate (default: 0.02 first, 0.01 fine-tuning)")
    g.add_argument("--batch-size", type=int, default=4, help="training images per step")
    g.add_argument("--from-scratch", action="store_true",
                   help="train a new model instead of fine-tuning the previous round's")
    s = p.add_argument_group("scoring and exports")
    s.add_argument("--preannotation-threshold", type=float, default=0.5,
                   help="detection score for pre-annotations (and the box budget)")
    s.add_argument("--score-batch-size", type=int, default=8, help="images per scoring pass")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on CUDA")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    return p


def run(args: argparse.Namespace) -> int:
    from huale.project.rounds import RoundOptions, round_summary, run_round
    from huale.project.state import Project
    from huale.strategies import parse_strategy_options

    project = Project.open(args.project)
    options = RoundOptions(
        budget=args.budget, strategy=args.strategy,
        strategy_options=parse_strategy_options(args.strategy, args.strategy_option),
        budget_unit=args.budget_unit, seed=args.seed, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, from_scratch=args.from_scratch,
        preannotation_threshold=args.preannotation_threshold, device=args.device,
        workers=args.workers, score_batch_size=args.score_batch_size, amp=args.amp,
        progress=not getattr(args, "quiet", False),
    )
    result = run_round(project, options)
    rdir = project.round_dir(result.number)
    print(("resumed and finished " if result.resumed else "") + round_summary(result.record))
    for name in ("labelstudio_tasks.json", "labelstudio_config.xml", "cvat_coco.zip",
                 "selected_coco.json", "gallery.html", "contact_sheet.png"):
        print(f"  {rdir / name}")
    print(f"next: label them, then huale ingest {args.project} EXPORT")
    return 0
