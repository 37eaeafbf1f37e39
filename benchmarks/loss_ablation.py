"""Loss ablation: each RoI-loss preset at a fixed labeled-set size, several seeds, at the metrics
the losses target: COCO AP@[.5:.95], AP50, AP75 (localisation) and VOC mAP@0.5.

Trains the `small` detector from scratch on a seeded random subset of the synthetic train split
for every (preset, seed), evaluates on the test split and prints (and writes to OUT/report.md) a
markdown table: mean ± std over seeds per metric, and per preset the difference to the
`torchvision` preset paired by seed (same labeled subset, same initialisation seed) with a
two-sided 95% Student t interval over seeds. Each training lives in OUT/<preset>/seed<s>/ and is
skipped when already finished, so the script resumes; an eval.json without COCO metrics (older
runs) is re-evaluated from the saved model.

    python benchmarks/loss_ablation.py --out runs/loss-ablation --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from huale.data.loading import load_dataset
from huale.data.splits import sample_ids
from huale.data.synthetic import ensure_synthetic
from huale.engine.evaluate import evaluate_model
from huale.engine.train import MODEL_NAME, TrainConfig, train_detector
from huale.io import atomic_write_json
from huale.losses.config import PRESETS
from huale.models.checkpoint import build_from_checkpoint
from huale.models.detector import build_detector
from huale.reports.stats import t_interval

METRICS = (("coco", "AP", "COCO AP"), ("coco", "AP50", "AP50"), ("coco", "AP75", "AP75"),
           ("voc", "mAP", "VOC mAP@0.5"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/loss-ablation"))
    parser.add_argument("--data", type=Path, help="synthetic folder (default: OUT/synthetic, generated)")
    parser.add_argument("--images", type=int, default=600, help="synthetic images to generate")
    parser.add_argument("--labeled", type=int, default=150, help="training images (fixed labeled size)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--lr-steps", type=int, nargs="*", default=[9])
    parser.add_argument("--grad-clip-norm", type=float, default=10.0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    data = args.data or args.out / "synthetic"
    if args.data is None:
        ensure_synthetic(data, num_images=args.images, seed=0)
    train_all = load_dataset(data, "train")
    test = load_dataset(data, "test", class_names=train_all.class_names)
    base = TrainConfig(epochs=args.epochs, lr=args.lr, lr_steps=tuple(args.lr_steps), warmup_iters=100,
                       workers=0, grad_clip_norm=args.grad_clip_norm)
    results: dict[str, dict[int, dict]] = {}
    for seed in args.seeds:
        labeled = train_all.subset(sample_ids(train_all.ids, count=args.labeled, seed=seed))
        for preset in args.presets:
            run = args.out / preset.replace("+", "plus_") / f"seed{seed}"
            result_path = run / "eval.json"
            stored = json.loads(result_path.read_text()) if result_path.is_file() else {}
            if "coco" not in stored:
                if (run / MODEL_NAME).is_file():
                    model, _ = build_from_checkpoint(run / MODEL_NAME)
                else:
                    torch.manual_seed(seed)
                    model = build_detector("small", labeled.num_classes, loss=preset)
                    started = time.perf_counter()
                    train_detector(model, labeled, replace(base, seed=seed), out_dir=run, resume=True,
                                   device=args.device, progress=False)
                    print(f"{preset} seed {seed}: trained in {time.perf_counter() - started:.0f}s", flush=True)
                stored, _ = evaluate_model(model, test, ["voc", "coco"], device=args.device, progress=False)
                atomic_write_json(result_path, stored)
            results.setdefault(preset, {})[seed] = stored
            print(f"{preset} seed {seed}: " + ", ".join(
                f"{label} {stored[m][k]:.4f}" for m, k, label in METRICS), flush=True)

    text = report_markdown(results, args)
    (args.out / "report.md").write_text(text)
    print("\n" + text)


def report_markdown(results: dict[str, dict[int, dict]], args: argparse.Namespace) -> str:
    """Mean ± std per metric, then each preset minus torchvision paired by seed (95% t interval)."""
    lines = [f"{args.labeled} labeled synthetic images, {args.epochs} epochs, lr {args.lr}, "
             f"grad clip {args.grad_clip_norm}, seeds {args.seeds}; test split of the synthetic set.", "",
             "| loss preset | " + " | ".join(f"{label} (%)" for _, _, label in METRICS) + " |",
             "|---|" + "---|" * len(METRICS)]
    for preset, by_seed in results.items():
        cells = []
        for metric, key, _ in METRICS:
            v = np.array([by_seed[s][metric][key] for s in sorted(by_seed)])
            cells.append(f"{100 * v.mean():.2f} ± {100 * v.std():.2f}")
        lines.append(f"| {preset} | " + " | ".join(cells) + " |")
    reference = results.get("torchvision")
    if reference:
        lines += ["", "Difference to torchvision, paired by seed (percentage points): mean "
                  "[95% Student t interval over seeds]", "",
                  "| loss preset | " + " | ".join(label for _, _, label in METRICS) + " |",
                  "|---|" + "---|" * len(METRICS)]
        for preset, by_seed in results.items():
            if preset == "torchvision":
                continue
            seeds = sorted(set(by_seed) & set(reference))
            cells = []
            for metric, key, _ in METRICS:
                diffs = [by_seed[s][metric][key] - reference[s][metric][key] for s in seeds]
                mean, low, high = t_interval(diffs)
                interval = "" if low is None else f" [{100 * low:+.2f}, {100 * high:+.2f}]"
                cells.append(f"{100 * mean:+.2f}{interval}")
            lines.append(f"| {preset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
