"""Training throughput of the HUALE loss against torchvision's, measured in one run.

Builds the same detector twice (same seed), once with each loss preset, and times full training
steps (forward, backward, SGD step) on the same synthetic batch, alternating the presets step by
step so that machine load affects both alike. Prints images/s per preset and the ratio
``full / torchvision`` (target: >= 0.9).

    PYTHONPATH=src python benchmarks/train_step.py                      # CPU, "small", 192 px
    PYTHONPATH=src python benchmarks/train_step.py --device cuda --arch fasterrcnn_resnet50_fpn
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from huale.losses.config import PRESETS
from huale.models import ARCHITECTURES, build_detector


def synthetic_batch(batch_size: int, size: int, num_classes: int, seed: int):
    """Images (3, size, size) of dim noise with 2-5 coloured rectangles each, and targets."""
    generator = torch.Generator().manual_seed(seed)
    palette = torch.rand(num_classes, 3, generator=generator) * 0.7 + 0.3
    images, targets = [], []
    for _ in range(batch_size):
        image = torch.rand(3, size, size, generator=generator) * 0.25
        count = int(torch.randint(2, 6, (), generator=generator))
        wh = torch.randint(size // 12, size // 2, (count, 2), generator=generator)
        x1 = (torch.rand(count, generator=generator) * (size - wh[:, 0])).long()
        y1 = (torch.rand(count, generator=generator) * (size - wh[:, 1])).long()
        labels = torch.randint(1, num_classes + 1, (count,), generator=generator)
        for i in range(count):
            x, y, w, h = int(x1[i]), int(y1[i]), int(wh[i, 0]), int(wh[i, 1])
            image[:, y : y + h, x : x + w] = palette[labels[i] - 1, :, None, None]
        boxes = torch.stack([x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]], 1).float()
        images.append(image)
        targets.append({"boxes": boxes, "labels": labels})
    return images, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="small", choices=ARCHITECTURES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", nargs="+", default=["torchvision", "full"], choices=PRESETS)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per preset")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per preset")
    parser.add_argument("--lr", type=float, default=0.0025)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    images, targets = synthetic_batch(args.batch_size, args.image_size, args.num_classes, args.seed)
    images = [image.to(device) for image in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    runs = {}
    for preset in args.presets:
        torch.manual_seed(args.seed)
        model = (
            build_detector(
                args.arch,
                args.num_classes,
                loss=preset,
                min_size=args.image_size,
                max_size=args.image_size,
            )
            .to(device)
            .train()
        )
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
        runs[preset] = (model, optimizer, [])

    def step(model, optimizer) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    for index in range(args.warmup + args.steps):
        order = args.presets if index % 2 == 0 else args.presets[::-1]
        for preset in order:
            model, optimizer, times = runs[preset]
            seconds = step(model, optimizer)
            if index >= args.warmup:
                times.append(seconds)

    print(
        f"arch={args.arch} device={device} threads={torch.get_num_threads()} "
        f"batch={args.batch_size} image={args.image_size}px classes={args.num_classes} "
        f"steps={args.steps} (+{args.warmup} warm-up), median step time"
    )
    throughput = {}
    for preset, (_, _, times) in runs.items():
        median = statistics.median(times)
        throughput[preset] = args.batch_size / median
        print(f"  {preset:<12} {median * 1000:8.1f} ms/step  {throughput[preset]:7.2f} images/s")
    base = throughput.get("torchvision")
    if base:
        for preset, value in throughput.items():
            if preset != "torchvision":
                print(f"  ratio {preset}/torchvision = {value / base:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
