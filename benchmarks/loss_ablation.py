"""Loss ablation: VOC mAP@0.5 of each RoI-loss preset at a fixed labeled-set size, several seeds.

Trains the `small` detector from scratch on a seeded random subset of the synthetic train split
for every (preset, seed), evaluates on the test split and prints a markdown table (mean ± std
over seeds, and the difference to the `torchvision` preset). Each training lives in
OUT/<preset>/seed<s>/ and is skipped when already finished, so the script resumes.

    python benchmarks/loss_ablation.py --out runs/loss-ablation
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/loss-ablation"))
    parser.add_argument("--data", type=Path, help="synthetic folder (default: OUT/synthetic, generated)")
    parser.add_argument("--images", type=int, default=600, help="synthetic images to generate")
    parser.add_argument("--labeled", type=int, default=150, help="training images (fixed labeled size)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
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
    results: dict[str, list[float]] = {}
    for seed in args.seeds:
        labeled = train_all.subset(sample_ids(train_all.ids, count=args.labeled, seed=seed))
        for preset in args.presets:
            run = args.out / preset.replace("+", "plus_") / f"seed{seed}"
            result_path = run / "eval.json"
            if not result_path.is_file():
                if (run / MODEL_NAME).is_file():
                    model, _ = build_from_checkpoint(run / MODEL_NAME)
                else:
                    torch.manual_seed(seed)
                    model = build_detector("small", labeled.num_classes, loss=preset)
                    started = time.perf_counter()
                    train_detector(model, labeled, replace(base, seed=seed), out_dir=run, resume=True,
                                   device=args.device, progress=False)
                    print(f"{preset} seed {seed}: trained in {time.perf_counter() - started:.0f}s", flush=True)
                metrics, _ = evaluate_model(model, test, ["voc"], device=args.device, progress=False)
                atomic_write_json(result_path, metrics)
            value = json.loads(result_path.read_text())["voc"]["mAP"]
            results.setdefault(preset, []).append(value)
            print(f"{preset} seed {seed}: VOC mAP@0.5 {value:.4f}", flush=True)

    reference = np.mean(results.get("torchvision", [np.nan]))
    print(f"\n{args.labeled} labeled synthetic images, {args.epochs} epochs, lr {args.lr}, "
          f"grad clip {args.grad_clip_norm}, seeds {args.seeds}\n")
    print("| loss preset | VOC mAP@0.5 (%) mean ± std | per seed | Δ vs torchvision |")
    print("|---|---|---|---|")
    for preset, values in results.items():
        v = np.array(values)
        delta = "—" if preset == "torchvision" else f"{100 * (v.mean() - reference):+.2f}"
        seeds = ", ".join(f"{100 * x:.2f}" for x in v)
        print(f"| {preset} | {100 * v.mean():.2f} ± {100 * v.std():.2f} | {seeds} | {delta} |")


if __name__ == "__main__":
    main()
