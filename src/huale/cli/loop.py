"""``huale loop``: the active-learning protocol for several strategies and seeds (:mod:`huale.engine.loop`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from huale.cli.common import add_command_parser, is_main_process
from huale.errors import ConfigError

HELP = ("Run the active-learning protocol (train, evaluate, select, repeat) for several "
        "strategies and seeds; resumable.")
EXAMPLES = (
    "  huale loop --config synthetic-cpu --out runs/synth       # a preset shipped with huale\n"
    "  huale loop --config my.yaml --out runs/exp --seeds 0 1 --strategies random huale\n"
    "  huale loop --resume runs/synth                          # continue after a crash\n"
    "  huale loop --resume runs/exp --strategies entropy cald   # add baselines to a run: they\n"
    "                                                          # reuse its cycle-0 models\n"
    "  huale loop --resume runs/exp --config my.yaml --strategies my-variant --seeds 3 4\n"
)


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command_parser(sub, "loop", HELP, EXAMPLES)
    p.add_argument("--config", help="YAML config file, or the name of a preset shipped with huale (src/huale/presets/); "
                   "with --resume, only where added --strategies labels are defined (its other sections must "
                   "match the run's)")
    p.add_argument("--out", type=Path, help="run folder (new)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run folder")
    p.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds; with --resume, add these "
                   "seeds to the run")
    p.add_argument("--strategies", nargs="+", help="run only these strategies: labels of the config's strategies "
                   "(keeping their options) or registered names; with --resume, add these to the run (the run "
                   "then goes on over all its strategies and seeds)")
    p.add_argument("--cycles", type=int, help="override loop.cycles")
    p.add_argument("--device", help="override the config's device (cpu, cuda, auto)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    return p


def run(args: argparse.Namespace) -> int:
    from huale.engine.loop import resume_run, start_run
    from huale.engine.loop_config import load_loop_config
    from huale.reports import write_report

    if args.resume:
        if args.out or args.cycles or args.device:
            raise ConfigError("--resume continues a run with its stored config: --out, --cycles and "
                              "--device cannot change it (--strategies and --seeds add to it)")
        if args.config and not args.strategies:
            raise ConfigError("with --resume, --config only defines the --strategies to add: give --strategies")
        source = load_loop_config(args.config) if args.config else None
        records = resume_run(args.resume, progress=not args.quiet, add_strategies=args.strategies,
                             add_seeds=args.seeds, source=source)
        run_dir = args.resume
    else:
        if not (args.config and args.out):
            raise ConfigError("give --config and --out for a new run, or --resume RUN_DIR")
        overrides: dict = {}
        if args.seeds:
            overrides["seeds"] = args.seeds
        if args.cycles:
            overrides["loop"] = {"cycles": args.cycles}
        if args.device:
            overrides["device"] = args.device
        config = load_loop_config(args.config, overrides=overrides)
        if args.strategies:
            config = config.with_strategies(args.strategies)
        records, run_dir = start_run(config, args.out, progress=not args.quiet), args.out
    print(f"{len(records)} cycle records in {run_dir}")
    if not args.no_report and is_main_process():
        paths = write_report([run_dir])
        print(paths["markdown"].read_text())
        print(f"learning curve: {paths['png']}")
    return 0
