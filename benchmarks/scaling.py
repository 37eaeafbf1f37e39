"""Scaling of pool scoring and DDP training from 1 to N processes, measured in one run.

Draws a synthetic dataset and saves one detector checkpoint, then runs this script as a
``torchrun --standalone --nproc_per_node n`` job for n = 1 and n = N (``--processes``). Each job
times, after a warm-up:

  scoring   ``huale.inference.score_pool`` of the pool with the needs of ``--strategy``: every
            process scores its chunks, rank 0 gathers the records in pool order (as ``huale
            select`` under torchrun). Images/s = pool images / wall seconds on rank 0.
  training  ``huale.engine.train.train_detector`` (DDP when n > 1, batch ``--batch-size`` per
            process): images/s = images seen per epoch / seconds of the fastest epoch.

and prints both with the efficiency ``(N-process images/s) / (N x 1-process images/s)``
(1.0 = perfect linear scaling). The 1- and N-process jobs alternate ``--repeats`` times and each
keeps its best figures, so that a load spike on a shared machine does not hit one side only. Each process uses ``--threads`` CPU threads, so on a CPU the
N-process job uses N times the cores of the 1-process one; on GPUs each process takes one GPU.

    python benchmarks/scaling.py                                       # CPU: 1 vs 2 processes
    python benchmarks/scaling.py --device cuda --processes 1 --arch fasterrcnn_resnet50_fpn
    python benchmarks/scaling.py --device cuda --processes 8 --arch fasterrcnn_resnet50_fpn --no-amp
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--processes", type=int, default=2, help="N, compared with 1 process")
    p.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per process)")
    p.add_argument("--arch", default="small")
    p.add_argument("--image-size", type=int, default=128,
                   help="synthetic image size; the small arch is also built for it (others use "
                        "their own min/max size: 800/1333 for the R50-FPN)")
    p.add_argument("--pool-images", type=int, default=64)
    p.add_argument("--train-images", type=int, default=32)
    p.add_argument("--strategy", default="huale", help="whose scoring needs (views) to time")
    p.add_argument("--batch-size", type=int, default=2, help="images per batch and process")
    p.add_argument("--shard-size", type=int, default=16, help="images per scoring chunk")
    p.add_argument("--train-epochs", type=int, default=3, help="the fastest epoch counts")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per process")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="fp32 on CUDA")
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds; the best counts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: the work folder
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker is not None:
        return worker(args)
    with tempfile.TemporaryDirectory(prefix="huale-scaling-") as work:
        return launcher(args, argv, Path(work))


def launcher(args: argparse.Namespace, argv: list[str], work: Path) -> int:
    """Prepare data and checkpoint, run the 1- and N-process jobs, print the table."""
    from huale.data.synthetic import generate_synthetic
    from huale.models.checkpoint import save_checkpoint
    from huale.models.detector import build_detector

    total = args.pool_images + args.train_images
    info = generate_synthetic(work / "data", num_images=total, seed=args.seed,
                              image_size=args.image_size,
                              test_fraction=args.pool_images / total, progress=False)
    torch.manual_seed(args.seed)
    size = {"min_size": args.image_size, "max_size": args.image_size} if args.arch == "small" else {}
    model = build_detector(args.arch, 10, **size)
    save_checkpoint(work / "model.pt", model, info.class_names)

    results: dict[int, dict[str, float]] = {}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    for _ in range(args.repeats):
        for n in sorted({1, args.processes}):
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node", str(n), str(Path(__file__).resolve()),
                       *argv, "--worker", str(work)]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-4000:], file=sys.stderr)
                return done.returncode
            result = json.loads((work / f"result-{n}.json").read_text())
            best = results.setdefault(n, result)
            for key in ("scoring", "training"):
                best[key] = max(best[key], result[key])

    amp = args.amp and args.device.startswith("cuda")
    print(f"huale scaling: arch {args.arch}, device {args.device}, amp {amp}, "
          f"{args.threads} thread(s) per process, batch {args.batch_size} per process, "
          f"strategy {args.strategy}, pool {args.pool_images} / train {args.train_images} images "
          f"at {args.image_size} px, best of {args.repeats}")
    print(f"machine: {machine(args.device)}; torch {torch.__version__}")
    print(f"{'processes':>9} | {'scoring img/s':>13} | {'training img/s':>14}")
    for n, r in results.items():
        print(f"{n:>9} | {r['scoring']:>13.2f} | {r['training']:>14.2f}")
    n = args.processes
    if n > 1:
        one, many = results[1], results[n]
        print(f"efficiency {n} vs 1 = (N-process img/s) / ({n} x 1-process img/s): "
              f"scoring {many['scoring'] / (n * one['scoring']):.2f}, "
              f"training {many['training'] / (n * one['training']):.2f}")
    return 0


def machine(device: str) -> str:
    """The CPU model and core count, plus the GPU name on CUDA."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return text


def worker(args: argparse.Namespace) -> int:
    """One process of a torchrun job: time scoring and training, rank 0 writes the result."""
    from huale.data.loading import load_dataset
    from huale.engine.train import TrainConfig, train_detector
    from huale.inference import ScoringRequest, score_pool
    from huale.models.checkpoint import build_from_checkpoint
    from huale.runtime import distributed
    from huale.strategies import build_strategy

    distributed.init_from_env()
    torch.set_num_threads(args.threads)
    work, world = args.worker, distributed.world_size()
    device = distributed.local_device(torch.device(args.device))
    model, class_names = build_from_checkpoint(work / "model.pt", device=device)
    pool = load_dataset(work / "data", "test", class_names=class_names)
    train = load_dataset(work / "data", "train", class_names=class_names)
    needs = build_strategy(args.strategy).needs
    request = ScoringRequest(batch_size=args.batch_size, device=device, amp=args.amp,
                             workers=args.workers, progress=False, shard_size=args.shard_size)

    score_pool(model, pool.subset(pool.ids[: args.batch_size * world]), needs,
               replace(request, shard_size=args.batch_size))  # warm-up
    distributed.barrier()
    started = time.perf_counter()
    records = score_pool(model, pool, needs, request)
    distributed.barrier()
    scoring_seconds = time.perf_counter() - started

    model.train()
    config = TrainConfig(epochs=args.train_epochs, lr=0.005, lr_steps=(), warmup_iters=0,
                         batch_size=args.batch_size, workers=args.workers, amp=args.amp,
                         seed=args.seed)
    result = train_detector(model, train, config, device=device, progress=False)
    per_epoch = world * -(-len(train) // world)  # what the samplers hand out, padding included
    fastest = min(h["seconds"] for h in result.history)

    if distributed.is_main():
        assert len(records) == len(pool)
        summary = {"scoring": len(pool) / scoring_seconds, "training": per_epoch / fastest,
                   "scoring_seconds": scoring_seconds, "epoch_seconds": fastest}
        (work / f"result-{world}.json").write_text(json.dumps(summary))
    distributed.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
