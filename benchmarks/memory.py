"""Peak resident memory of ``huale select`` against the pool size, measured in one run.

Draws ``--distinct`` synthetic images (``--image-size`` px) and fills pools of each ``--sizes``
with hard links to them (distinct file names, so every pool image is its own image to huale),
saves one small detector whose class scores are spread out (so that images carry detections),
then runs ``huale select --strategy STRATEGY`` on each pool in a fresh process and reads that
process's peak RSS (``ru_maxrss``; DataLoader workers off, so the process is the whole run).

Scoring: by default the distinct images are scored once, by ``huale select`` itself on a pool
of just them, and each larger pool's scoring folder (``OUT/.scoring/<run>/``) is filled with
copies of those records under the same manifest (only the image ids change): a pool image is a
hard link of a distinct one, so scoring it would write the same record. ``huale select`` then
resumes from those shards, and the peak RSS covers everything it does except the forward
passes (loading the pool and the model, reading the shards, the strategy, the exports).
``--score-all`` scores every pool image instead (hours for 10k images on 2 busy CPU cores).

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
from dataclasses import replace
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
    p.add_argument("--score-all", action="store_true",
                   help="score every pool image (no copied shards; slow)")
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


def copy_scoring(scored_out: Path, out: Path, pool: Path, class_names: list[str]) -> None:
    """Fill ``out/.scoring`` with the records of ``scored_out/.scoring`` (the distinct images'),
    repeated over ``pool``'s images in pool order, under the same manifest."""
    from huale.inference.shards import ShardStore
    from huale.selection.pool import load_pool

    ids = load_pool(pool, class_names).ids
    for source_dir in sorted(p for p in (scored_out / ".scoring").iterdir() if p.is_dir()):
        stored = json.loads((source_dir / "manifest.json").read_text())
        manifest = {k: v for k, v in stored.items() if k not in ("format", "version")}
        source = ShardStore(source_dir, manifest)
        records = [r for k in range(source.num_shards) for r in source.read(k)[0]]
        target = ShardStore(out / ".scoring" / source_dir.name, {**manifest, "image_ids": ids})
        for k in range(target.num_shards):
            copies = []
            for image_id in target.shard_ids(k):
                original = records[int(image_id[len("pool"):-len(".png")]) % len(records)]
                copies.append(replace(original, image_id=image_id))
            target.write(k, copies)


def measure(args, work: Path, checkpoint: Path, pool: Path, size: int, scored: Path | None,
            class_names: list[str]) -> dict:
    out = work / f"select-{size}"
    result = work / f"result-{size}.json"
    command = [
        sys.executable, "-c", RUNNER, str(result), "-q", "select",
        "--checkpoint", str(checkpoint), "--pool", str(pool), "--budget", str(args.budget),
        "--strategy", args.strategy, "--out", str(out), "--device", "cpu", "--workers", "0",
        "--batch-size", str(args.batch_size), "--shard-size", str(args.shard_size),
    ]
    shutil.rmtree(out, ignore_errors=True)  # a fresh run
    if scored is not None:
        copy_scoring(scored, out, pool, class_names)
        command.append("--resume")  # continue from the copied shards (the folder is not empty)
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
              f"batch {args.batch_size}, shards of {args.shard_size}, "
              f"{'every image scored' if args.score_all else 'shards copied from the distinct images'}")
        from huale.models.checkpoint import load_checkpoint

        class_names = list(load_checkpoint(checkpoint)["class_names"])
        scored = None
        if not args.score_all:  # score the distinct images once, as a pool of their own
            distinct_pool = make_pool(work / f"pool-{args.distinct}", args.distinct, sources)
            measure(args, work, checkpoint, distinct_pool, -args.distinct, None, class_names)
            scored = work / f"select--{args.distinct}"
        rows = []
        for size in sizes:
            pool = make_pool(work / f"pool-{size}", size, sources)
            started = time.perf_counter()
            measured = measure(args, work, checkpoint, pool, size, scored, class_names)
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
