"""The ``huale`` command line: one module per command, registered in :data:`COMMANDS`.

Commands: ``demo``, ``synth``, ``train``, ``evaluate``, ``select``, ``loop``, ``report``,
``init``, ``round``, ``ingest``, ``status`` (labeling in rounds, :mod:`huale.project`). Each
command module has ``add_parser(subparsers)`` and ``run(args) -> exit code``: parse options, call
the library, print the result. Every documented error (:class:`huale.errors.HualeError`) is
printed as one line and exits with 2. ``train``, ``select`` and ``loop`` also run under
``torchrun`` (:mod:`huale.runtime.distributed`): rank 0 prints the results, the other processes
only their warnings and errors.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from huale import __version__
from huale.errors import HualeError

log = logging.getLogger("huale")

# command name -> module of huale.cli (in the order `huale --help` lists them)
COMMAND_MODULES = {
    "demo": "demo",
    "synth": "synth",
    "train": "train",
    "evaluate": "evaluate",
    "select": "select",
    "loop": "loop",
    "report": "report",
    "init": "init",
    "round": "round",
    "ingest": "ingest",
    "status": "status",
    "serve": "serve",
}
COMMANDS = tuple(COMMAND_MODULES)

# the commands that run as one job in several processes under torchrun (huale.runtime.distributed)
DISTRIBUTED_COMMANDS = ("train", "select", "loop")

MAIN_EXAMPLES = """\
examples:
  huale demo                                   # the active-learning loop on synthetic data, CPU
  huale synth --out data/synth --images 600 --seed 0
  huale train --data data/synth --out runs/small --arch small --epochs 12
  huale evaluate --checkpoint runs/small/model.pt --data data/synth --split test
  huale select --checkpoint runs/small/model.pt --pool images/ --budget 50 --out sel
  huale loop --config synthetic-cpu --out runs/synth && huale report runs/synth
  huale init proj --pool images/ --labeled labeled.json --val val.json
  huale round proj --budget 50 && huale ingest proj export.json && huale status proj

Run `huale COMMAND --help` for the options and examples of each command.
"""


def command_module(name: str) -> ModuleType:
    """The module of command ``name`` (``add_parser`` and ``run``)."""
    return importlib.import_module(f"huale.cli.{COMMAND_MODULES[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="huale",
        description="Active learning for object detection (HUALE on torchvision Faster R-CNN).",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"huale {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        command_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from huale.runtime import distributed

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if distributed.launched() and args.command not in DISTRIBUTED_COMMANDS:
        print(f"huale {args.command}: error: runs in one process; under torchrun only "
              f"{', '.join(DISTRIBUTED_COMMANDS)} run", file=sys.stderr)
        return 2
    try:
        distributed.init_from_env()
    except HualeError as exc:
        print(f"huale {args.command}: error: {exc}", file=sys.stderr)
        return 2
    # under torchrun: rank 0 prints results and progress; the others only warnings and errors
    main_process = distributed.is_main()
    prefix = f"[rank {distributed.rank()}] " if distributed.world_size() > 1 else ""
    if not main_process:
        args.quiet = True
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format=prefix + "%(levelname)s %(name)s: %(message)s",
    )
    try:
        with contextlib.ExitStack() as stack:
            if not main_process:
                stack.enter_context(contextlib.redirect_stdout(stack.enter_context(
                    open(os.devnull, "w")  # noqa: SIM115 (closed by the stack)
                )))
            code = command_module(args.command).run(args)
    except HualeError as exc:
        # an error every process raised (relayed from another) is reported by rank 0 only
        if main_process or getattr(exc, "relayed_from", None) is None:
            print(f"{prefix}huale {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}huale {args.command}: interrupted", file=sys.stderr)
        return 130
    distributed.destroy()  # after success only: a failed process just exits (torchrun ends the job)
    return code


if __name__ == "__main__":
    sys.exit(main())
