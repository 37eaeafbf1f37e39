"""Peak resident memory of ``huale select`` against the pool size, measured in one run.

Draws ``--distinct`` synthetic images (``--image-size`` px) and fills pools of each ``--sizes``
with hard links to them (distinct file names, so every pool image is its own image to huale),
saves one small detector whose class scores are spread out (so that images carry detections),
then runs ``huale select --strategy STRATEGY`` on each pool in a fresh process and reads that
process's peak RSS (``ru_maxrss``; DataLoader workers off, so the process is the whole run).

Prints, per pool size, the peak RSS, the wall time, and the memory per pool image beyond the
smallest pool: ``(RSS(N) - RSS(N0)) / (N - N0)``; that slope is the figure the target
(<= 2 KB per pool image) is about, the smallest pool's RSS being the fixed base (Python, torch,
the model, one shard of records).

    python benchmarks/memory.py                                # 1k and 10k pool images
    python benchmarks/memory.py --sizes 200 1000 --strategy cald
    PYTHONPATH=/path/to/other/checkout/src python benchmarks/memory.py   # compare two versions
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNNER = """
import json, resource, sys, time
from huale.cli import main
started = time.perf_counter()
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
with open(sys.argv[1], "w") as handle:
    json.dump({"code": code, "peak_kb": peak_kb, "seconds": time.perf_counter() - started}, handle)
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000],
                   help="pool sizes, smallest first (the smallest is the base)")
    p.add_argument("--strategy", default="huale")
    p.add_argument("--budget", type=int, default=50)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--distinct", type=int, default=100, help="distinct images drawn")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--work", type=Path, default=None, help="working folder (default: a temp one)")
    return p.parse_args(argv)


def make_images(folder: Path, count: int, image_size: int) -> list[Path]:
    from PIL import Image

    from huale.data.synthetic import render_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"distinct{index:04d}.png"
        if not path.is_file():
            Image.fromarray(render_image(0, index, image_size).pixels).save(path)
        paths.append(path)
    return paths


def make_pool(folder: Path, size: int, sources: list[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(size):
        link = folder / f"pool{index:07d}.png"
        if not link.exists():
            os.link(sources[index % len(sources)], link)
    return folder


def make_checkpoint(path: Path, image_size: int) -> Path:
    import torch

    from huale.data.synthetic import synthetic_classes
    from huale.models.checkpoint import save_checkpoint
    from huale.models.detector import build_detector

    if path.is_file():
        return path
    classes = synthetic_classes()
    torch.manual_seed(0)
    model = build_detector("small", len(classes), min_size=image_size, max_size=image_size)
    with torch.no_grad():  # spread the class scores out: images get detections of every kind
        model.roi_heads.box_predictor.cls_score.weight.mul_(30.0)
    return save_checkpoint(path, model, classes)


def measure(args, work: Path, checkpoint: Path, pool: Path, size: int) -> dict:
    out = work / f"select-{size}"
    result = work / f"result-{size}.json"
    command = [
        sys.executable, "-c", RUNNER, str(result), "-q", "select",
        "--checkpoint", str(checkpoint), "--pool", str(pool), "--budget", str(args.budget),
        "--strategy", args.strategy, "--out", str(out), "--device", "cpu", "--workers", "0",
        "--batch-size", str(args.batch_size), "--shard-size", str(args.shard_size),
    ]
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: no shards to resume from
    subprocess.run(command, check=True)
    measured = json.loads(result.read_text())
    if measured["code"] not in (0, None):
        raise SystemExit(f"huale select failed on the {size}-image pool (exit {measured['code']})")
    return measured


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = sorted(args.sizes)
    with tempfile.TemporaryDirectory(prefix="huale-memory-") as tmp:
        work = args.work or Path(tmp)
        sources = make_images(work / "distinct", args.distinct, args.image_size)
        checkpoint = make_checkpoint(work / "model.pt", args.image_size)
        import torch

        import huale

        print(f"huale {huale.__version__} from {Path(huale.__file__).parent}; torch "
              f"{torch.__version__}; Python {platform.python_version()}; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        print(f"strategy {args.strategy}, budget {args.budget}, {args.image_size} px images, "
              f"batch {args.batch_size}, shards of {args.shard_size}")
        rows = []
        for size in sizes:
            pool = make_pool(work / f"pool-{size}", size, sources)
            started = time.perf_counter()
            measured = measure(args, work, checkpoint, pool, size)
            rows.append((size, measured["peak_kb"], time.perf_counter() - started))
            print(f"  pool {size:>7d}: peak RSS {measured['peak_kb'] / 1024:8.1f} MiB, "
                  f"{measured['seconds']:7.1f} s", flush=True)
        base_size, base_kb, _ = rows[0]
        print(f"base (pool of {base_size}): {base_kb / 1024:.1f} MiB")
        for size, kb, _ in rows[1:]:
            per_image = (kb - base_kb) * 1024 / (size - base_size)
            print(f"pool {size}: {per_image / 1024:.2f} KiB per pool image beyond the base "
                  f"({(kb - base_kb) / 1024:+.1f} MiB for {size - base_size} more images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
