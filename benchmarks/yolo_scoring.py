"""YOLO pool scoring: huale's YOLO adapter vs Ultralytics' own ``predict``, measured in one run.

Both read the same image files (one folder of JPEGs, --width x --height) and run the same
yolov8 model (built from its yaml, random weights made to score like a trained model, so that
NMS keeps a realistic number of boxes; no download) at the same imgsz, conf, iou, batch size
and thread count, single view, on the CPU:

  (a) ultralytics  ``YOLO.predict(folder, batch=B, stream=True)``: OpenCV decode, letterbox,
                   forward, NMS, boxes scaled back (Results: top class and score per box)
  (b) huale        pool scoring of the original view through the YOLO adapter: PIL decode in
                   the scoring DataLoader, letterbox, forward, NMS with kept indices, the per-box
                   (C+1) posterior and pyramid level, boxes mapped back, compact records

Each side is timed --repeats times, alternating, after one warm-up pass; the best time of each
is kept. Prints images per second (wall clock) and CPU time per image (process time: all the
work runs in this process, DataLoader workers 0, so it is the fairer figure on a shared
machine), and the ratios b / a (target >= 0.9).

    OMP_NUM_THREADS=1 python benchmarks/yolo_scoring.py
    python benchmarks/yolo_scoring.py --images 64 --imgsz 640 --threads 2 --batch-size 4
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from huale.adapters import load_adapter_class
from huale.data.loading import load_image_folder
from huale.inference.views import PoolViewDataset, collate_pool


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="yolov8n.yaml", help="Ultralytics model yaml (random weights)")
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bias", type=float, default=-5.0, help="class bias of the random model")
    return p.parse_args(argv)


def write_images(folder: Path, count: int, width: int, height: int, seed: int) -> list[Path]:
    """``count`` seeded JPEGs with smooth structure plus noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))
        noise = rng.integers(-15, 16, image.shape)
        image = np.clip(image.astype(np.int64) + noise, 0, 255).astype(np.uint8)
        path = folder / f"img{i:04d}.jpg"
        Image.fromarray(image).save(path, quality=90)
        paths.append(path)
    return paths


def give_scores(net: torch.nn.Module, folder: Path, size: tuple[int, int], bias: float) -> None:
    """Make the random-weight model score like a trained one: BatchNorm statistics from one
    batch of images (a fresh model's features are ~1e-7), class biases ``bias``; about 30 boxes
    per image pass conf 0.25 at imgsz 640, with varied scores."""
    batch = torch.stack([
        torch.from_numpy(np.array(Image.open(p).convert("RGB").resize(size))).permute(2, 0, 1)
        for p in sorted(folder.glob("*.jpg"))[:4]
    ]).float() / 255
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(batch)
        for branch in net.model[-1].cv3:
            branch[-1].bias.fill_(bias)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    net.eval()


def time_ultralytics(yolo, folder: Path, args) -> tuple[float, float, int]:
    """``YOLO.predict`` on the folder (a list of paths would be decoded all at once, as one
    batch). Its first call sets torch's thread count (to min(8, cores - 1)): reset here."""
    torch.set_num_threads(args.threads)
    start, cpu = time.perf_counter(), time.process_time()
    boxes = 0
    for result in yolo.predict(str(folder), imgsz=args.imgsz, conf=args.conf,
                               batch=args.batch_size, stream=True, verbose=False, device="cpu"):
        boxes += len(result.boxes)
    return time.perf_counter() - start, time.process_time() - cpu, boxes


def time_huale(detector, dataset, args) -> tuple[float, float, int]:
    torch.set_num_threads(args.threads)
    start, cpu = time.perf_counter(), time.process_time()
    loader = DataLoader(PoolViewDataset(dataset, ("orig",)), batch_size=args.batch_size,
                        num_workers=0, collate_fn=collate_pool)
    boxes = 0
    for batch in loader:
        for record in detector.predict_items(batch.items, ("orig",)):
            boxes += len(record.original)
    return time.perf_counter() - start, time.process_time() - cpu, boxes


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    YoloDetector = load_adapter_class("yolo")
    from huale.adapters.yolo import YOLO

    torch.manual_seed(args.seed)
    yolo = YOLO(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        pool, warm = Path(tmp) / "pool", Path(tmp) / "warm"
        write_images(pool, args.images, args.width, args.height, args.seed)
        write_images(warm, max(4, args.batch_size * 2), args.width, args.height, args.seed + 1)
        scale = args.imgsz / max(args.width, args.height)
        give_scores(yolo.model, warm, (round(args.width * scale), round(args.height * scale)),
                    args.bias)
        detector = YoloDetector(copy.deepcopy(yolo.model), imgsz=args.imgsz, conf=args.conf)
        dataset = load_image_folder(pool, class_names=detector.class_names)
        time_ultralytics(yolo, warm, args)  # sets the predictor up (and the thread count)
        if torch.get_num_threads() != args.threads:
            print(f"(ultralytics set {torch.get_num_threads()} threads; both sides are timed "
                  f"with {args.threads})")
        time_huale(detector, load_image_folder(warm, class_names=detector.class_names), args)
        theirs, ours = [], []
        for _ in range(args.repeats):
            theirs.append(time_ultralytics(yolo, pool, args))
            ours.append(time_huale(detector, dataset, args))
    n = args.images
    wall_theirs, wall_ours = min(t[0] for t in theirs), min(t[0] for t in ours)
    cpu_theirs, cpu_ours = min(t[1] for t in theirs), min(t[1] for t in ours)
    print(f"{args.model} imgsz {args.imgsz}, {n} images {args.width}x{args.height}, batch "
          f"{args.batch_size}, conf {args.conf}, {args.threads} thread(s), best of {args.repeats}")
    print(f"  ultralytics predict : {n / wall_theirs:7.2f} img/s, {cpu_theirs / n * 1000:7.1f} "
          f"CPU ms/img  ({theirs[0][2] / n:.1f} boxes/img)")
    print(f"  huale yolo scoring  : {n / wall_ours:7.2f} img/s, {cpu_ours / n * 1000:7.1f} "
          f"CPU ms/img  ({ours[0][2] / n:.1f} boxes/img)")
    print(f"  ratio huale / ultralytics: {wall_theirs / wall_ours:.3f} in images per second, "
          f"{cpu_theirs / cpu_ours:.3f} in CPU time per image  (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
