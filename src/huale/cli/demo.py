"""``huale demo``: the active-learning loop on synthetic data (:mod:`huale.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from huale.cli.common import add_command_parser

HELP = "The active-learning loop on synthetic data: random vs huale, 4 cycles, ~6 min on 2 CPU cores."
EXAMPLES = (
    "  huale demo\n  huale demo --strategies random huale cald --out runs/demo3\n"
    "  huale demo --cycles 5 --budget 30\n"
)


def add_parser(sub) -> argparse.ArgumentParser:
    from huale.demo import DemoConfig

    p = add_command_parser(sub, "demo", HELP, EXAMPLES)
    d = DemoConfig()
    p.add_argument("--out", type=Path, default=Path(d.out),
                   help="folder for data and the run; a rerun continues or reprints it")
    p.add_argument("--images", type=int, default=d.images, help="synthetic images to generate")
    p.add_argument("--initial", type=int, default=d.initial, help="labeled images at the start")
    p.add_argument("--budget", type=int, default=d.budget, help="images selected per cycle")
    p.add_argument("--cycles", type=int, default=d.cycles, help="trainings per strategy (>= 2)")
    p.add_argument("--initial-epochs", type=int, default=d.initial_epochs,
                   help="epochs of the first training, from scratch")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="fine-tuning epochs of each later cycle")
    p.add_argument("--strategies", nargs="+", default=list(d.strategies),
                   help="strategies to compare (see `huale select --help`)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    return p


def run(args: argparse.Namespace) -> int:
    from huale.demo import DemoConfig, run_demo

    config = DemoConfig(
        out=str(args.out), images=args.images, initial=args.initial, budget=args.budget,
        cycles=args.cycles, initial_epochs=args.initial_epochs, epochs=args.epochs,
        strategies=tuple(args.strategies), seed=args.seed, device=args.device,
    )
    run_demo(config, progress=not args.quiet)
    return 0
