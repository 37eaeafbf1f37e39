"""The ``huale`` command line: ``huale demo | synth | train | evaluate``.

Each subcommand is a thin layer: parse options, call the library, print the result. Every
documented error (:class:`huale.errors.HualeError`) is printed as one line and exits with 2.
``train``, ``select`` and ``loop`` also run under ``torchrun`` (:mod:`huale.engine.distributed`):
rank 0 prints the results, the other processes only their warnings and errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from huale import __version__
from huale.errors import ConfigError, HualeError

log = logging.getLogger("huale")

MAIN_EXAMPLES = """\
examples:
  huale demo                                   # the active-learning loop on synthetic data, CPU
  huale synth --out data/synth --images 600 --seed 0
  huale train --data data/synth --out runs/small --arch small --epochs 12
  huale evaluate --checkpoint runs/small/model.pt --data data/synth --split test
  huale evaluate --gt test.json --detections dets.json --metric coco --json

Run `huale COMMAND --help` for the options and examples of each command.
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _add_parser(sub, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, help=help, description=help, epilog="examples:\n" + examples, formatter_class=_Formatter
    )


def _add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (CUDA if available)")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="disable mixed precision on CUDA")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    from huale.models.detector import ARCHITECTURES

    p.add_argument("--arch", default="small", choices=ARCHITECTURES, help="detector architecture")
    p.add_argument("--weights", help="detector weights: a local file, or a torchvision name (downloads)")
    p.add_argument("--backbone-weights", help="ImageNet backbone weights: a local file or a torchvision name")
    p.add_argument("--min-size", type=int, help="resize shorter side to this (default: the arch's)")
    p.add_argument("--max-size", type=int, help="cap on the longer side (default: the arch's)")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    from huale.engine.train import TrainConfig

    d = TrainConfig()
    g = p.add_argument_group("training (defaults: CALD protocol)")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--lr-steps", type=int, nargs="*", default=list(d.lr_steps), help="epochs where lr x0.1")
    g.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="images per step and per process (torchrun: the global batch is N x this)")
    g.add_argument("--warmup-iters", type=int, default=d.warmup_iters)
    g.add_argument("--hflip-prob", type=float, default=d.hflip_prob)
    g.add_argument("--grad-clip-norm", type=float, default=d.grad_clip_norm,
                   help="clip the gradient norm to this (default: no clipping)")
    g.add_argument("--seed", type=int, default=d.seed)


def _train_config(args: argparse.Namespace):
    from huale.engine.train import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        lr_steps=tuple(args.lr_steps),
        batch_size=args.batch_size,
        warmup_iters=args.warmup_iters,
        hflip_prob=args.hflip_prob,
        workers=args.workers,
        amp=args.amp,
        grad_clip_norm=args.grad_clip_norm,
        seed=args.seed,
    )


def build_parser() -> argparse.ArgumentParser:
    from huale.engine.train_options import add_loss_options

    parser = argparse.ArgumentParser(
        prog="huale",
        description="Active learning for object detection (HUALE on torchvision Faster R-CNN).",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"huale {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _add_parser(
        sub,
        "demo",
        "The active-learning loop on synthetic data: random vs huale, 4 cycles, ~6 min on 2 CPU cores.",
        "  huale demo\n  huale demo --strategies random huale cald --out runs/demo3\n"
        "  huale demo --cycles 5 --budget 30\n",
    )
    from huale.demo import DemoConfig

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

    p = _add_parser(
        sub,
        "synth",
        "Write the synthetic detection dataset (JPEGs + COCO JSON train/test splits).",
        "  huale synth --out data/synth --images 600 --seed 0\n"
        "  huale synth --out data/synth-big --images 5000 --image-size 256\n",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=192)
    p.add_argument("--test-fraction", type=float, default=0.25)

    p = _add_parser(
        sub,
        "train",
        "Train a Faster R-CNN detector on VOC, COCO or YOLO data.",
        "  huale train --data data/synth --out runs/synth --arch small\n"
        "  huale train --data VOCdevkit/VOC2007 --split trainval --out runs/voc \\\n"
        "      --arch fasterrcnn_resnet50_fpn --backbone-weights resnet50-0676ba61.pth\n"
        "  huale train --data coco/annotations/instances_train2017.json --out runs/coco --resume\n"
        "  huale train --data data.yaml --fraction 0.1 --out runs/yolo10 --eval-data data.yaml --eval-split val\n"
        "  huale train --data data/synth --out runs/full --loss full --loss-option box_iou_loss=extended\n",
    )
    p.add_argument("--data", required=True, help="VOC folder, COCO .json, YOLO data.yaml, or synthetic folder")
    p.add_argument("--split", default="train", help="split to train on (VOC/YOLO/synthetic)")
    p.add_argument("--out", type=Path, required=True, help="output folder (checkpoints, history)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--fraction", type=float, help="train on a seeded random fraction of the split")
    sel.add_argument("--num-images", type=int, help="train on a seeded random subset of this size")
    p.add_argument("--eval-data", help="evaluate after training on this data (default: none)")
    p.add_argument("--eval-split", default="test")
    p.add_argument("--metric", nargs="+", default=["voc"], choices=["voc", "voc07", "coco"])
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    _add_model_options(p)
    _add_train_options(p)
    add_loss_options(p)
    _add_device_options(p)

    p = _add_parser(
        sub,
        "evaluate",
        "Evaluate a checkpoint on a dataset, or a COCO detections file against COCO ground truth.",
        "  huale evaluate --checkpoint runs/synth/model.pt --data data/synth --split test\n"
        "  huale evaluate --checkpoint model.pt --data VOCdevkit/VOC2007 --split test --metric voc voc07\n"
        "  huale evaluate --gt instances_val2017.json --detections dets.json --metric coco --json\n",
    )
    p.add_argument("--checkpoint", type=Path, help="huale checkpoint (model.pt)")
    p.add_argument("--data", help="dataset to evaluate the checkpoint on")
    p.add_argument("--split", default="test")
    p.add_argument("--gt", type=Path, help="COCO ground-truth JSON (with --detections)")
    p.add_argument("--detections", type=Path, help="COCO results JSON: [{image_id, category_id, bbox, score}]")
    p.add_argument("--metric", nargs="+", default=None, choices=["voc", "voc07", "coco"],
                   help="default: voc for --checkpoint, coco for --gt")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--save-detections", type=Path, help="write the checkpoint's detections (COCO results)")
    p.add_argument("--batch-size", type=int, default=4)
    _add_device_options(p)

    from huale.selection import command as select_command

    select_command.add_parser(sub)

    p = _add_parser(
        sub,
        "loop",
        "Run the active-learning protocol (train, evaluate, select, repeat) for several "
        "strategies and seeds; resumable.",
        "  huale loop --config synthetic-cpu --out runs/synth       # a preset from configs/\n"
        "  huale loop --config my.yaml --out runs/exp --seeds 0 1 --strategies random huale\n"
        "  huale loop --resume runs/synth                          # continue after a crash\n",
    )
    p.add_argument("--config", help="YAML config file, or a preset name from configs/")
    p.add_argument("--out", type=Path, help="run folder (new)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run folder")
    p.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    p.add_argument("--strategies", nargs="+", help="run only these strategies: labels of the config's strategies "
                   "(keeping their options) or registered names")
    p.add_argument("--cycles", type=int, help="override loop.cycles")
    p.add_argument("--device", help="override the config's device (cpu, cuda, auto)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")

    p = _add_parser(
        sub,
        "report",
        "Learning curves (PNG) and tables (markdown) from one or more loop run folders.",
        "  huale report runs/synth\n  huale report runs/a runs/b --out reports/ab --metric coco\n",
    )
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by huale loop")
    p.add_argument("--out", type=Path, help="output folder (default: the first run folder)")
    p.add_argument("--metric", default="voc", choices=["voc", "voc07", "coco"])
    p.add_argument("--baseline", default="random", help="strategy the gains are measured against")
    return parser


def _print_results(results: dict[str, dict], as_json: bool) -> None:
    from huale.evaluation import format_ap_table

    if as_json:
        flat = results[next(iter(results))] if len(results) == 1 else results
        print(json.dumps(flat, indent=2, sort_keys=True))
        return
    for metric, result in results.items():
        print(f"== {metric} ==")
        print(format_ap_table(result))


def cmd_demo(args: argparse.Namespace) -> int:
    from huale.demo import DemoConfig, run_demo

    config = DemoConfig(
        out=str(args.out), images=args.images, initial=args.initial, budget=args.budget,
        cycles=args.cycles, initial_epochs=args.initial_epochs, epochs=args.epochs,
        strategies=tuple(args.strategies), seed=args.seed, device=args.device,
    )
    run_demo(config, progress=not args.quiet)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from huale.data.synthetic import generate_synthetic

    info = generate_synthetic(
        args.out, num_images=args.images, seed=args.seed, image_size=args.image_size,
        test_fraction=args.test_fraction, progress=not args.quiet,
    )
    print(f"wrote {args.images} images to {args.out} ({info.train_json.name}, {info.test_json.name})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from huale.data.loading import load_dataset
    from huale.data.splits import sample_ids
    from huale.engine.evaluate import evaluate_model
    from huale.engine.train import train_detector
    from huale.engine.train_options import loss_config_from_args
    from huale.models.detector import build_detector

    config = _train_config(args)
    dataset = load_dataset(args.data, args.split)
    if args.fraction is not None or args.num_images is not None:
        ids = sample_ids(dataset.ids, fraction=args.fraction, count=args.num_images, seed=args.seed)
        dataset = dataset.subset(ids)
    log.info("training on %d images, %d classes: %s", len(dataset), dataset.num_classes, dataset.class_names)
    size_kwargs = {k: v for k, v in (("min_size", args.min_size), ("max_size", args.max_size)) if v}
    torch.manual_seed(args.seed)
    loss = loss_config_from_args(args, class_counts=dataset.class_counts().tolist())
    model = build_detector(
        args.arch, dataset.num_classes, weights=args.weights, backbone_weights=args.backbone_weights,
        loss=loss, **size_kwargs,
    )
    result = train_detector(
        model, dataset, config, out_dir=args.out, resume=args.resume,
        device=args.device, progress=not args.quiet,
    )
    print(f"trained {result.epochs_run} epochs in {result.seconds:.0f}s -> {result.model_path}")
    if args.eval_data and _is_main_process():  # under torchrun, rank 0 evaluates
        eval_set = load_dataset(args.eval_data, args.eval_split, class_names=dataset.class_names)
        results, _ = evaluate_model(
            model, eval_set, args.metric, device=args.device, amp=args.amp, workers=args.workers,
            progress=not args.quiet,
        )
        _print_results(results, as_json=False)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.gt or args.detections:
        if not (args.gt and args.detections) or args.checkpoint:
            raise ConfigError("use --gt with --detections, or --checkpoint with --data")
        from huale.evaluation import evaluate_files

        results = {m: evaluate_files(args.gt, args.detections, metric=m) for m in args.metric or ["coco"]}
        _print_results(results, args.json)
        return 0
    if not (args.checkpoint and args.data):
        raise ConfigError("use --checkpoint with --data, or --gt with --detections")
    from huale.data.coco import predictions_to_coco_results
    from huale.data.loading import load_dataset
    from huale.engine.evaluate import evaluate_model
    from huale.io import atomic_write_json
    from huale.models.checkpoint import build_from_checkpoint, load_checkpoint

    state = load_checkpoint(args.checkpoint)
    dataset = load_dataset(args.data, args.split, class_names=state["class_names"])
    model, _ = build_from_checkpoint(state)
    results, predictions = evaluate_model(
        model, dataset, args.metric or ["voc"], batch_size=args.batch_size, device=args.device,
        amp=args.amp, workers=args.workers, progress=not args.quiet,
    )
    if args.save_detections:
        atomic_write_json(args.save_detections, predictions_to_coco_results(dataset, predictions))
    _print_results(results, args.json)
    return 0


def _select_run(args: argparse.Namespace) -> int:
    from huale.selection import command as select_command

    return select_command.run(args)


def cmd_loop(args: argparse.Namespace) -> int:
    from huale.engine.loop import resume_run, start_run
    from huale.engine.loop_config import load_loop_config
    from huale.reports import write_report

    if args.resume:
        if args.config or args.out or args.seeds or args.strategies or args.cycles or args.device:
            raise ConfigError("--resume continues a run with its stored config: give no other option")
        records, run_dir = resume_run(args.resume, progress=not args.quiet), args.resume
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
    if not args.no_report and _is_main_process():
        paths = write_report([run_dir])
        print(paths["markdown"].read_text())
        print(f"learning curve: {paths['png']}")
    return 0


def _is_main_process() -> bool:
    from huale.engine import distributed

    return distributed.is_main()


def cmd_report(args: argparse.Namespace) -> int:
    from huale.reports import write_report

    paths = write_report(args.runs, args.out, metric=args.metric, baseline=args.baseline)
    print(paths["markdown"].read_text())
    print(f"learning curve: {paths['png']}")
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "synth": cmd_synth,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "select": _select_run,
    "loop": cmd_loop,
    "report": cmd_report,
}


# the commands that run as one job in several processes under torchrun (huale.engine.distributed)
DISTRIBUTED_COMMANDS = ("train", "select", "loop")


def main(argv: Sequence[str] | None = None) -> int:
    from huale.engine import distributed

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
            code = COMMANDS[args.command](args)
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
